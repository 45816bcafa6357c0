"""The daemon's MTA log source: counts, restarts and faults, on a real store."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog
from prometheus_client import CollectorRegistry

from tests.sources.mta_log.samples import (
    DELIVERY_LINES,
    EXPECTED_ATTEMPTS,
    EXPECTED_DEFERRALS,
    sample_lines,
)
from watchdog.config import MtaLog, StartAt
from watchdog.errors import SourceError
from watchdog.jobs.mta_log import SOURCE_NAME, LogLock, MtaLogSource
from watchdog.metrics import Metrics
from watchdog.providers import default_provider_map
from watchdog.store import Store
from watchdog.store.mta_log_state import MtaLogState


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = Store(database_url, busy_timeout=1.0)
    opened.upgrade()
    try:
        yield opened
    finally:
        opened.close()


def _settings(path: Path, **extra: object) -> MtaLog:
    return MtaLog(enabled=True, path=path, start_at=StartAt.START, **extra)


def _source(store: Store, metrics: Metrics, settings: MtaLog) -> MtaLogSource:
    return MtaLogSource(
        settings, MtaLogState.of(store), metrics, default_provider_map()
    )


def _attempts(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    found: dict[tuple[str, str], float] = {}
    for family in registry.collect():
        if family.name != "mailwatchdog_delivery_attempts":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.value:
                key = (sample.labels["status"], sample.labels["provider"])
                found[key] = sample.value
    return found


def _lines(registry: CollectorRegistry, result: str) -> float:
    value = registry.get_sample_value(
        "mailwatchdog_mta_log_lines_total", {"result": result}
    )
    return value or 0.0


def _write(path: Path, lines: list[bytes]) -> None:
    with path.open("ab") as stream:
        stream.write(b"".join(line + b"\n" for line in lines))


async def test_sample_counted(store: Store, tmp_path: Path) -> None:
    """The real sample gives exactly the expected metric values."""
    log = tmp_path / "mail.log"
    _write(log, sample_lines())
    metrics = Metrics()
    await _source(store, metrics, _settings(log)).poll()
    assert _attempts(metrics.registry) == EXPECTED_ATTEMPTS
    for (provider, reason), count in EXPECTED_DEFERRALS.items():
        value = metrics.registry.get_sample_value(
            "mailwatchdog_delivery_deferrals_total",
            {"provider": provider, "reason": reason},
        )
        assert value == count
    assert _lines(metrics.registry, "delivery") == DELIVERY_LINES
    stamp = metrics.registry.get_sample_value(
        "mailwatchdog_mta_log_last_line_timestamp_seconds"
    )
    assert stamp is not None
    assert stamp > 0


@pytest.mark.parametrize("cut", [10, 40, 70])
async def test_restart_counts_once(store: Store, tmp_path: Path, cut: int) -> None:
    """Stopping between two parts of the log loses and repeats nothing.

    The cuts fall before, among and after the deferrals, so the expiries
    of the second part need the deferred recipients stored by the first.
    """
    log = tmp_path / "mail.log"
    lines = sample_lines()
    _write(log, lines[:cut])
    metrics = Metrics()
    first = _source(store, metrics, _settings(log))
    await first.poll()
    await first.poll()
    first.close()
    _write(log, lines[cut:])
    second = _source(store, metrics, _settings(log))
    await second.poll()
    await second.poll()
    assert _attempts(metrics.registry) == EXPECTED_ATTEMPTS


async def test_restart_after_rotation(store: Store, tmp_path: Path) -> None:
    """Lines written before a rotation while stopped are still counted once."""
    log = tmp_path / "mail.log"
    lines = sample_lines()
    _write(log, lines[:30])
    metrics = Metrics()
    first = _source(store, metrics, _settings(log))
    await first.poll()
    first.close()
    _write(log, lines[30:60])
    log.rename(tmp_path / "mail.log.1")
    _write(log, lines[60:])
    await _source(store, metrics, _settings(log)).poll()
    assert _attempts(metrics.registry) == EXPECTED_ATTEMPTS
    rotations = metrics.registry.get_sample_value(
        "mailwatchdog_mta_log_rotations_total", {"kind": "renamed"}
    )
    assert rotations == 1


async def test_live_rotation(store: Store, tmp_path: Path) -> None:
    """A rename between two polls of a running source loses nothing."""
    log = tmp_path / "mail.log"
    lines = sample_lines()
    _write(log, lines[:50])
    metrics = Metrics()
    source = _source(store, metrics, _settings(log))
    await source.poll()
    _write(log, lines[50:70])
    log.rename(tmp_path / "mail.log.1")
    _write(log, lines[70:])
    await source.poll()
    assert _attempts(metrics.registry) == EXPECTED_ATTEMPTS


async def test_start_at_end(store: Store, tmp_path: Path) -> None:
    """By default the backlog is skipped and only new lines count."""
    log = tmp_path / "mail.log"
    _write(log, sample_lines())
    metrics = Metrics()
    source = _source(store, metrics, MtaLog(enabled=True, path=log))
    await source.poll()
    assert _attempts(metrics.registry) == {}
    sent = next(line for line in sample_lines() if b"to=<ok1@gmail.com>" in line)
    _write(log, [sent])
    await source.poll()
    assert _attempts(metrics.registry) == {("sent", "gmail"): 1}


async def test_hostile_lines(store: Store, tmp_path: Path) -> None:
    """Garbage, binary and overlong lines are counted, and the rest still is."""
    log = tmp_path / "mail.log"
    lines = sample_lines()
    bounced = next(line for line in lines if b"status=bounced" in line)
    noise = [
        os.urandom(300).replace(b"\n", b"."),
        b"\x00" * 100,
        b"x" * 200_000,
        bounced[:120],
        b"Dec 04 22:11:13 mta postfix/smtp[1]: ABC: to=<a@b>, relay=x, "
        b"delay=1, delays=1/0/0/0, dsn=2.0.0, status=exploded (boom)",
    ]
    _write(log, lines[:20] + noise + lines[20:])
    metrics = Metrics()
    await _source(store, metrics, _settings(log)).poll()
    assert _attempts(metrics.registry) == EXPECTED_ATTEMPTS
    assert _lines(metrics.registry, "too_long") == 1
    assert _lines(metrics.registry, "malformed") == 2


async def test_nul_in_deferred_recipient(store: Store, tmp_path: Path) -> None:
    """A NUL byte in a deferred recipient is stored, so the reader goes on.

    PostgreSQL's text type cannot hold NUL, and a failed save makes every
    later poll read the same batch and fail again.
    """
    log = tmp_path / "mail.log"
    deferred = (
        b"Dec 04 22:11:13 mta postfix/smtp[1]: ABC: to=<a\x00b@outlook.com>, "
        b"relay=x, delay=1, delays=1/0/0/0, dsn=4.2.2, status=deferred (full)"
    )
    _write(log, [deferred, *sample_lines()])
    metrics = Metrics()
    await _source(store, metrics, _settings(log)).poll()
    expected = dict(EXPECTED_ATTEMPTS)
    expected["deferred", "outlook"] += 1
    assert _attempts(metrics.registry) == expected


async def test_long_deferred_recipient(store: Store, tmp_path: Path) -> None:
    """A deferred recipient too long for an index entry is stored all the same.

    PostgreSQL's B-tree index entries hold at most 2704 bytes, and a
    syslog client can write a line with an 8000-byte recipient under
    Postfix's tag. Its expiry still counts under its provider.
    """
    log = tmp_path / "mail.log"
    local = bytes(random.Random(1).choices(b"abcdefghijklmnopqrstuvwxyz0123", k=8000))
    head = b"Dec 04 22:11:13 mta postfix/"
    deferred = (
        head + b"smtp[1]: ABC: to=<" + local + b"@outlook.com>, relay=x, "
        b"delay=1, delays=1/0/0/0, dsn=4.2.2, status=deferred (full)"
    )
    expired = (
        head + b"qmgr[2]: ABC: from=<a@b.test>, status=expired, returned to sender"
    )
    _write(log, [deferred])
    metrics = Metrics()
    settings = _settings(log)
    await _source(store, metrics, settings).poll()
    _write(log, [expired])
    await _source(store, metrics, settings).poll()
    assert _attempts(metrics.registry) == {
        ("deferred", "outlook"): 1,
        ("expired", "outlook"): 1,
    }


async def test_partial_line_waits(store: Store, tmp_path: Path) -> None:
    """A line without its newline yet is counted once, when it is complete."""
    log = tmp_path / "mail.log"
    sent = next(line for line in sample_lines() if b"to=<ok1@gmail.com>" in line)
    log.write_bytes(sent[:50])
    metrics = Metrics()
    source = _source(store, metrics, _settings(log))
    await source.poll()
    assert _attempts(metrics.registry) == {}
    source.close()
    with log.open("ab") as stream:
        stream.write(sent[50:] + b"\n")
    restarted = _source(store, metrics, _settings(log))
    await restarted.poll()
    await restarted.poll()
    assert _attempts(metrics.registry) == {("sent", "gmail"): 1}


async def test_missing_then_created(store: Store, tmp_path: Path) -> None:
    """A log that appears after the start is read from its first line."""
    log = tmp_path / "mail.log"
    metrics = Metrics()
    source = _source(store, metrics, MtaLog(enabled=True, path=log))
    await source.poll()
    _write(log, sample_lines())
    await source.poll()
    assert _attempts(metrics.registry) == EXPECTED_ATTEMPTS


async def test_unreadable_then_fixed(store: Store, tmp_path: Path) -> None:
    """A poll on an unreadable path raises; the next one after the fix counts."""
    log = tmp_path / "mail.log"
    log.mkdir()
    metrics = Metrics()
    source = _source(store, metrics, _settings(log))
    with pytest.raises(SourceError, match="cannot read MTA log"):
        await source.poll()
    shutil.rmtree(log)
    _write(log, sample_lines())
    await source.poll()
    assert _attempts(metrics.registry) == EXPECTED_ATTEMPTS


async def test_failed_save_rereads(store: Store, tmp_path: Path) -> None:
    """When the position cannot be stored, the batch is read again later."""
    log = tmp_path / "mail.log"
    _write(log, sample_lines())
    metrics = Metrics()
    state = MtaLogState.of(store)
    real_save = state.save
    calls = 0

    async def failing_save(*args: object, **kwargs: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise asyncio.CancelledError
        await real_save(*args, **kwargs)  # type: ignore[arg-type]

    state.save = failing_save  # type: ignore[method-assign]
    source = MtaLogSource(_settings(log), state, metrics, default_provider_map())
    with pytest.raises(asyncio.CancelledError):
        await source.poll()
    assert _attempts(metrics.registry) == {}
    await source.poll()
    assert _attempts(metrics.registry) == EXPECTED_ATTEMPTS


async def test_cancelled_during_commit(store: Store, tmp_path: Path) -> None:
    """A poll cancelled while its save commits still counts that batch, once.

    The store commits on its own thread, so cancelling the poll does not
    stop the COMMIT, and the next poll must resume after the batch.
    """
    log = tmp_path / "mail.log"
    _write(log, sample_lines())
    metrics = Metrics()
    state = MtaLogState.of(store)
    real_save = state.save
    committed = asyncio.Event()

    async def late_save(*args: object, **kwargs: object) -> None:
        async def commit() -> None:
            await asyncio.sleep(0.2)
            await real_save(*args, **kwargs)  # type: ignore[arg-type]
            committed.set()

        await asyncio.shield(asyncio.ensure_future(commit()))

    state.save = late_save  # type: ignore[method-assign]
    source = MtaLogSource(_settings(log), state, metrics, default_provider_map())
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(source.poll(), 0.1)
    assert not committed.is_set()
    # The next poll waits for that commit instead of rereading the batch.
    await source.poll()
    assert committed.is_set()
    assert _attempts(metrics.registry) == EXPECTED_ATTEMPTS


async def test_shared_database_one_reader(database_url: str, tmp_path: Path) -> None:
    """Two daemons on one database: one reads, the other waits, no line twice."""
    log = tmp_path / "mail.log"
    lines = sample_lines()
    _write(log, lines[:45])
    settings = _settings(log)
    first_store = Store(database_url, busy_timeout=1.0)
    first_store.upgrade()
    second_store = Store(database_url, busy_timeout=1.0)
    try:
        first_metrics, second_metrics = Metrics(), Metrics()
        first = MtaLogSource(
            settings,
            MtaLogState.of(first_store),
            first_metrics,
            default_provider_map(),
            lock=LogLock(first_store, settings.key),
        )
        second = MtaLogSource(
            settings,
            MtaLogState.of(second_store),
            second_metrics,
            default_provider_map(),
            lock=LogLock(second_store, settings.key),
        )

        held = second_store.take_consumer_lock(SOURCE_NAME, settings.key)
        assert held.won
        assert (await first.poll()).state == "locked"
        held.release()
        assert (await second.poll()).state == "done"

        _write(log, lines[45:])
        # The poll's release is queued on the store thread: let it run.
        await second_store.call(lambda: None)
        held = second_store.take_consumer_lock(SOURCE_NAME, settings.key)
        assert held.won
        assert (await first.poll()).state == "locked"
        held.release()
        assert (await first.poll()).state == "done"
    finally:
        first_store.close()
        second_store.close()

    total = _attempts(first_metrics.registry)
    for key, value in _attempts(second_metrics.registry).items():
        total[key] = total.get(key, 0) + value
    assert total == EXPECTED_ATTEMPTS
    assert _attempts(first_metrics.registry) != {}
    assert _attempts(second_metrics.registry) != {}


async def test_malformed_warning_limited(store: Store, tmp_path: Path) -> None:
    """Malformed lines are logged once an hour at most, with their count."""
    log = tmp_path / "mail.log"
    bounced = next(line for line in sample_lines() if b"status=bounced" in line)
    metrics = Metrics()
    source = _source(store, metrics, _settings(log))
    with structlog.testing.capture_logs() as events:
        for _ in range(3):
            _write(log, [bounced[:120]])
            await source.poll()
    warnings = [e for e in events if e["event"] == "mta_log_lines_malformed"]
    assert len(warnings) == 1
    assert warnings[0]["since_last_warning"] == {"malformed": 1, "too_long": 0}
    assert _lines(metrics.registry, "malformed") == 3


async def test_idle_poll_writes_nothing(store: Store, tmp_path: Path) -> None:
    """Polls that find no new line store nothing."""
    log = tmp_path / "mail.log"
    _write(log, sample_lines())
    state = MtaLogState.of(store)
    real_save = state.save
    saves = 0

    async def counting_save(*args: object, **kwargs: object) -> None:
        nonlocal saves
        saves += 1
        await real_save(*args, **kwargs)  # type: ignore[arg-type]

    state.save = counting_save  # type: ignore[method-assign]
    source = MtaLogSource(_settings(log), state, Metrics(), default_provider_map())
    for _ in range(3):
        await source.poll()
    assert saves == 1
    _write(log, sample_lines()[:1])
    await source.poll()
    assert saves == 2


async def test_backlog_drains_in_steps(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backlog is read a bounded amount per poll, each asking for the next."""
    monkeypatch.setattr("watchdog.jobs.mta_log.BATCH_BYTES", 1500)
    monkeypatch.setattr("watchdog.jobs.mta_log.POLL_BYTES", 4000)
    log = tmp_path / "mail.log"
    _write(log, sample_lines())
    metrics = Metrics()
    wakes = 0

    def wake() -> None:
        nonlocal wakes
        wakes += 1

    source = MtaLogSource(
        _settings(log),
        MtaLogState.of(store),
        metrics,
        default_provider_map(),
        wake=wake,
    )
    polls = 0
    while polls == 0 or wakes >= polls:
        polls += 1
        await source.poll()
    assert polls > 3
    assert wakes == polls - 1
    assert _attempts(metrics.registry) == EXPECTED_ATTEMPTS
