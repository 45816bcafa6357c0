"""The pipeline stores what our own quoted mail shows when it records a bounce."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from watchdog.checks.auth.learned import Learned, LearnedKind
from watchdog.classify import classify
from watchdog.classify.verdict import Verdict
from watchdog.config import Blocklists, Sending, Settings
from watchdog.pipeline import MessageRef, Outcome, Processor
from watchdog.store import Store
from watchdog.store.learned import load_learned

GSUITE = "emails/rhost-gsuite/rhost-gsuite-07.eml"


async def _classify(raw: bytes) -> Verdict:
    return classify(raw)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(f"sqlite:///{tmp_path / 'w.db'}")
    opened.upgrade()
    try:
        yield opened
    finally:
        opened.close()


def _bounce(corpus_dir: Path) -> bytes:
    raw = (corpus_dir / GSUITE).read_bytes()
    return raw.replace(b"\nNyaan\n", b"\nOffer: https://www.shop.example/x\n")


async def _process(store: Store, settings: Settings, raw: bytes) -> Outcome:
    processor = Processor(store, _classify, settings)
    result = await processor.process(MessageRef("test", "INBOX"), raw)
    return result.outcome


async def test_bounce_of_our_mail(store: Store, corpus_dir: Path) -> None:
    """Selector, signing domain, Return-Path and link domain are stored."""
    settings = Settings(
        sending=Sending(domains=["gmail.example.com"]),
        blocklists=Blocklists(learn_link_domains=True),
    )
    outcome = await _process(store, settings, _bounce(corpus_dir))
    assert outcome is Outcome.PROCESSED
    ours = "gmail.example.com"
    assert load_learned(store) == {
        Learned(LearnedKind.DKIM_SELECTOR, ours, "20161025"),
        Learned(LearnedKind.DKIM_DOMAIN, ours, ours),
        Learned(LearnedKind.RETURN_PATH, ours, ours),
        Learned(LearnedKind.LINK_DOMAIN, ours, "shop.example"),
    }


async def test_links_not_learned_by_default(store: Store, corpus_dir: Path) -> None:
    """Without learn_link_domains no link domain is stored."""
    settings = Settings(sending=Sending(domains=["gmail.example.com"]))
    await _process(store, settings, _bounce(corpus_dir))
    kinds = {item.kind for item in load_learned(store)}
    assert LearnedKind.LINK_DOMAIN not in kinds
    assert LearnedKind.DKIM_SELECTOR in kinds


async def test_forged_bounce_stores_nothing(store: Store, corpus_dir: Path) -> None:
    """A bounce of mail from another domain stores nothing."""
    settings = Settings(
        sending=Sending(domains=["good.example"]),
        blocklists=Blocklists(learn_link_domains=True),
    )
    outcome = await _process(store, settings, _bounce(corpus_dir))
    assert outcome is Outcome.UNVERIFIED
    assert load_learned(store) == set()
