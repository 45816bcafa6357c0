"""Helpers for the mailbox worker tests and the drain benchmark.

Builds a worker against a private Dovecot and a store, appends corpus
bounces made unique, and checks the no-loss invariants by reading both the
mailbox and the database.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine, func, select

from tests.servers.dovecot import PASSWORD, Dovecot
from watchdog.classify import classify
from watchdog.classify.verdict import Verdict
from watchdog.config import Limits, Settings
from watchdog.jobs.mailbox import MailboxWorker
from watchdog.metrics import Metrics
from watchdog.pipeline import Processor, sha256_hex
from watchdog.sources.backoff import Backoff, Schedule
from watchdog.store import Store
from watchdog.store.engine import database_url as sqlalchemy_url
from watchdog.store.models import event_table, message_table

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "emails"
FAMILIES = ("lhost-postfix", "lhost-exim", "lhost-sendmail", "lhost-gmail", "rfc3464")
_TAGS = itertools.count(1)


def bounce_samples() -> list[bytes]:
    """Return real DSNs from the corpus, in a stable order."""
    paths = sorted(p for family in FAMILIES for p in (CORPUS / family).glob("*.eml"))
    return [path.read_bytes() for path in paths]


def ordinary_samples() -> list[bytes]:
    """Return messages from the corpus that are no bounce."""
    return [p.read_bytes() for p in sorted((CORPUS / "not-bounce").glob("*.eml"))]


def unique(raw: bytes, tag: str | None = None) -> bytes:
    """Prefix a header so every copy has different bytes and SHA-256."""
    label = tag if tag is not None else f"t{next(_TAGS)}"
    return (
        b"X-Watchdog-Test: "
        + label.encode()
        + b"\r\n"
        + raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    )


def make_bounces(count: int, prefix: str) -> list[bytes]:
    """Return ``count`` distinct bounces cycling through the corpus samples."""
    samples = bounce_samples()
    return [unique(samples[n % len(samples)], f"{prefix}-{n}") for n in range(count)]


def settings_for(
    dovecot: Dovecot, user: str, *, port: int | None = None, **mailbox: Any
) -> Settings:
    """Build settings with one mailbox ``bounces`` for ``user`` over IMAPS."""
    return Settings(
        mailboxes={"bounces": mailbox_entry(dovecot, user, port=port, **mailbox)}
    )


def mailbox_entry(
    dovecot: Dovecot, user: str, *, port: int | None = None, **mailbox: Any
) -> dict[str, Any]:
    """Return the ``mailboxes.bounces`` settings table for ``user``."""
    entry: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port if port is not None else dovecot.imaps_port,
        "ca_file": str(dovecot.ca_file),
        "username": user,
        "password": PASSWORD,
        "timeout_seconds": 5.0,
        "cycle_timeout_seconds": 60.0,
        "idle_renew_seconds": 5.0,
    }
    entry.update(mailbox)
    return entry


class InProcessClassifier:
    """Run ``classify`` in a thread: the pool's role, without its processes."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits

    async def __call__(self, raw: bytes) -> Verdict:
        return await asyncio.to_thread(classify, raw, self._limits)


def fast_backoff() -> Backoff:
    """A backoff with delays short enough for tests."""
    return Backoff(
        transient=Schedule(initial=0.05, maximum=0.2),
        auth=Schedule(initial=60.0, maximum=900.0),
        jitter=0.0,
    )


@dataclass
class Rig:
    """A worker with its store, metrics and settings."""

    worker: MailboxWorker
    store: Store
    metrics: Metrics
    settings: Settings
    stop: asyncio.Event


def make_rig(
    settings: Settings,
    url: str,
    *,
    classifier: Any = None,
    backoff: Backoff | None = None,
    wake: Any = None,
    concurrency: int = 1,
) -> Rig:
    """Open the store, upgrade it and build the worker for mailbox ``bounces``."""
    store = Store(url)
    store.upgrade()
    metrics = Metrics(CollectorRegistry())
    stop = asyncio.Event()
    processor = Processor(
        store, classifier or InProcessClassifier(settings.limits), settings
    )
    worker = MailboxWorker(
        "bounces",
        settings.mailboxes["bounces"],
        store=store,
        processor=processor,
        metrics=metrics,
        limits=settings.limits,
        stop=stop,
        wake=wake,
        backoff=backoff or fast_backoff(),
        concurrency=concurrency,
    )
    return Rig(worker, store, metrics, settings, stop)


@dataclass(frozen=True)
class Audit:
    """Where each appended message ended up, computed, never assumed."""

    lost: int
    in_several_folders: int
    rows_missing: int
    rows_duplicated: int
    events_double_counted: int
    where: dict[str, int]


def audit(dovecot: Dovecot, user: str, raws: Iterable[bytes], url: str) -> Audit:
    """Check every message is in exactly one folder and has exactly one row."""
    folders = ("INBOX", "Processed", "Quarantine")
    found = {
        folder: [sha256_hex(b) for b in dovecot.bodies(user, folder)]
        for folder in folders
    }
    digests = [sha256_hex(raw) for raw in raws]
    counts = {d: sum(found[f].count(d) for f in folders) for d in digests}
    where = {
        folder: sum(1 for d in digests if d in found[folder]) for folder in folders
    }

    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            rows = dict(
                conn.execute(
                    select(message_table.c.sha256, func.count()).group_by(
                        message_table.c.sha256
                    )
                ).all()
            )
            double = conn.execute(
                select(func.count()).select_from(
                    select(event_table.c.message_id, event_table.c.recipient)
                    .group_by(event_table.c.message_id, event_table.c.recipient)
                    .having(func.count() > 1)
                    .subquery()
                )
            ).scalar_one()
    finally:
        engine.dispose()
    return Audit(
        lost=sum(1 for d in digests if counts[d] == 0),
        in_several_folders=sum(1 for d in digests if counts[d] > 1),
        rows_missing=sum(1 for d in digests if rows.get(d, 0) == 0),
        rows_duplicated=sum(1 for d in digests if rows.get(d, 0) > 1),
        events_double_counted=int(double),
        where=where,
    )


async def drain(rig: Rig, *, attempts: int = 20) -> list[Any]:
    """Poll until a cycle finds nothing left to do; return every summary."""
    summaries = []
    for _ in range(attempts):
        await asyncio.sleep(rig.worker.backoff.remaining())
        summary = await rig.worker.poll()
        summaries.append(summary)
        if summary.state.value == "done" and summary.messages == 0:
            break
    return summaries
