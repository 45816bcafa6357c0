"""Counting parsed lines: statuses, providers, expiries and deferral reasons."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.sources.mta_log.samples import (
    DELIVERY_LINES,
    EXPECTED_ATTEMPTS,
    EXPECTED_DEFERRALS,
    QUEUE_LINES,
    TOTAL_LINES,
    as_rfc3339,
    as_syslog,
    sample_lines,
)
from watchdog.providers import default_provider_map
from watchdog.sources.mta_log.lines import Attempt, LineKind, LineParser, Status
from watchdog.sources.mta_log.tally import (
    MAX_RECIPIENT_BYTES,
    Pending,
    Tally,
    deferral_reason,
)


def _count(lines: list[bytes], tally: Tally | None = None) -> Tally:
    tally = tally or Tally(default_provider_map())
    parser = LineParser()
    for line in lines:
        tally.add(parser.parse(line))
    return tally


def _attempts(tally: Tally) -> dict[tuple[str, str], int]:
    return {(s.value, p): n for (s, p), n in tally.counts.attempts.items()}


@pytest.mark.parametrize(
    "rewrite",
    [lambda line: line, as_syslog, as_rfc3339],
    ids=["maillog_file", "syslog", "rfc3339"],
)
def test_sample_counts(rewrite: Callable[[bytes], bytes]) -> None:
    """The real sample gives the expected count per status and provider."""
    tally = _count([rewrite(line) for line in sample_lines()])
    assert _attempts(tally) == EXPECTED_ATTEMPTS
    assert dict(tally.counts.deferrals) == EXPECTED_DEFERRALS
    assert tally.counts.lines[LineKind.DELIVERY] == DELIVERY_LINES
    assert tally.counts.lines[LineKind.QUEUE] == QUEUE_LINES
    assert sum(tally.counts.lines.values()) == TOTAL_LINES
    assert len(tally.pending) == 0


def test_split_anywhere() -> None:
    """Counting the sample in two parts, pending state carried, changes nothing."""
    lines = sample_lines()
    for cut in range(0, len(lines), 7):
        first = _count(lines[:cut])
        carried = Pending(first.pending)
        second = _count(lines[cut:], Tally(default_provider_map(), carried))
        first.counts.merge(second.counts)
        assert _attempts(first) == EXPECTED_ATTEMPTS, cut


def test_expiry_unknown_provider() -> None:
    """An expiry whose deferrals were never read counts once as unknown."""
    lines = sample_lines()
    expiry = next(line for line in lines if b"status=expired" in line)
    tally = _count([expiry])
    assert _attempts(tally) == {("expired", "unknown"): 1}


def test_pending_bounded() -> None:
    """Past its bound, Pending forgets the messages deferred longest ago."""
    pending = Pending(max_recipients=3)
    for number in range(5):
        pending.add(f"Q{number}", f"r{number}@gmail.com", "gmail")
    assert len(pending) == 3
    assert pending.pop("Q0") == []
    assert pending.pop("Q4") == ["gmail"]


def test_pending_eviction_cost() -> None:
    """Forgetting the oldest message costs about as much as adding one.

    Taking the first key of a plain dict scans the slots of the keys
    deleted before it, so with 100,000 recipients each eviction cost
    about 0.1 ms, and a flood of distinct deferred recipients took
    minutes of CPU. The check compares rates, so a slow machine passes.
    """
    limit = 100_000
    pending = Pending(max_recipients=limit)
    started = time.perf_counter()
    for number in range(limit):
        pending.add(f"Q{number}", f"r{number}@x.test", "other")
    filling = time.perf_counter() - started
    started = time.perf_counter()
    for number in range(limit, limit + limit // 2):
        pending.add(f"Q{number}", f"r{number}@x.test", "other")
    evicting = time.perf_counter() - started
    assert len(pending) == limit
    assert evicting / (limit // 2) < 5 * filling / limit


def test_pending_long_recipient() -> None:
    """A recipient over MAX_RECIPIENT_BYTES is kept short and still resolves."""
    long = "a" * 5000 + "@outlook.com"
    pending = Pending()
    pending.add("Q1", long, "outlook")
    stored = pending.recipients("Q1")
    assert len(stored) == 1
    assert len(stored[0][0].encode()) <= MAX_RECIPIENT_BYTES
    pending.resolve("Q1", long)
    assert len(pending) == 0


def test_pending_dirty() -> None:
    """Only changed queue IDs are reported for saving, once."""
    pending = Pending([("Q1", "a@x", "other")])
    assert pending.take_dirty() == set()
    pending.add("Q2", "b@x", "other")
    pending.resolve("Q1", "a@x")
    assert pending.take_dirty() == {"Q1", "Q2"}
    assert pending.take_dirty() == set()


def test_deferral_repeats_one_recipient() -> None:
    """Each retry counts as an attempt, but the recipient expires once."""
    tally = Tally(default_provider_map())
    for _ in range(3):
        tally.add(Attempt("Q1", Status.DEFERRED, "a@gmail.com", "4.7.0", "x", b""))
    tally.add(Attempt("Q1", Status.EXPIRED, "", "", "", b""))
    assert _attempts(tally) == {("deferred", "gmail"): 3, ("expired", "gmail"): 1}


@pytest.mark.parametrize(
    ("dsn", "reason"),
    [
        ("4.7.0", "policy"),
        ("4.7.28", "policy"),
        ("4.2.2", "mailbox"),
        ("4.4.1", "network"),
        ("4.3.0", "mail_system"),
        ("4.1.8", "address"),
        ("4.5.0", "protocol"),
        ("4.6.0", "content"),
        ("4.9.9", "other"),
        ("5.7.1", "other"),
        ("", "other"),
        ("4.x", "other"),
    ],
)
def test_deferral_reason(dsn: str, reason: str) -> None:
    """The reason class is the subject of the enhanced status code."""
    assert deferral_reason(dsn) == reason


def test_reused_queue_id() -> None:
    """A new message under a reused ID does not inherit old deferrals."""
    lines = sample_lines()
    deferred = next(line for line in lines if b"to=<full1@outlook.com>" in line)
    enqueued = deferred.split(b": to=<")[0].replace(b"smtp[", b"cleanup[")
    expiry = deferred.split(b": to=<")[0].replace(b"smtp[", b"qmgr[")
    tally = _count(
        [
            deferred,
            enqueued + b": message-id=<new@app>",
            expiry + b": from=<a@b>, status=expired, returned to sender",
        ]
    )
    assert _attempts(tally) == {("deferred", "outlook"): 1, ("expired", "unknown"): 1}
