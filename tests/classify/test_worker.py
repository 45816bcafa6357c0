"""ClassifierPool: real worker processes hitting real resource limits."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import time
from pathlib import Path

import pytest
import pytest_asyncio

from watchdog.classify.verdict import Kind, Verdict
from watchdog.classify.worker import ClassifierPool
from watchdog.config import Limits
from watchdog.metrics import Metrics
from watchdog.pipeline import ClassifyFailed

HERE = __name__


def echo(raw: bytes, limits: Limits) -> Verdict:
    """Return a verdict naming the worker's pid and the message length."""
    return Verdict(kind=Kind.NOT_BOUNCE, detector=f"{os.getpid()}:{len(raw)}")


def burn_cpu(raw: bytes, limits: Limits) -> Verdict:
    """Spin until the CPU limit ends the process."""
    while True:
        pass


def eat_memory(raw: bytes, limits: Limits) -> Verdict:
    """Allocate 1 MB blocks until the address-space limit refuses one."""
    blocks = []
    while True:
        blocks.append(bytearray(1024 * 1024))


def sleep_long(raw: bytes, limits: Limits) -> Verdict:
    """Block without using CPU, so only the wall-clock deadline stops it."""
    time.sleep(60)
    raise AssertionError("not reached")


def nap(raw: bytes, limits: Limits) -> Verdict:
    """Sleep 1 s, then return like ``echo``."""
    time.sleep(1)
    return echo(raw, limits)


def fail(raw: bytes, limits: Limits) -> Verdict:
    """Raise like a bug in a detector."""
    raise ValueError("detector bug")


def crash(raw: bytes, limits: Limits) -> Verdict:
    """Exit the worker without a reply."""
    os._exit(3)


def rules_env(raw: bytes, limits: Limits) -> Verdict:
    """Return a verdict naming the worker's WATCHDOG_RULES_DIR."""
    detector = os.environ.get("WATCHDOG_RULES_DIR", "unset")
    return Verdict(kind=Kind.NOT_BOUNCE, detector=detector)


def pick(raw: bytes, limits: Limits) -> Verdict:
    """Dispatch on the message text, so one pool can run every case."""
    cases = {
        b"cpu": burn_cpu,
        b"memory": eat_memory,
        b"sleep": sleep_long,
        b"nap": nap,
        b"fail": fail,
        b"crash": crash,
    }
    return cases.get(raw, echo)(raw, limits)


# The wall deadline leaves room for 2 s of CPU on a busy machine.
LIMITS = Limits(cpu_seconds=1, memory_mb=256, wall_seconds=8.0)


@pytest_asyncio.fixture(loop_scope="function")
async def pool_and_metrics():
    metrics = Metrics()
    pool = ClassifierPool(LIMITS, size=1, metrics=metrics, target=f"{HERE}:pick")
    await pool.start()
    yield pool, metrics
    await pool.close()


def kills(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "mailwatchdog_parse_worker_kills_total", {"reason": reason}
    )
    return value or 0.0


async def test_worker_returns_verdict(pool_and_metrics) -> None:
    pool, _ = pool_and_metrics
    verdict = await pool(b"hello")
    assert verdict.kind is Kind.NOT_BOUNCE
    assert verdict.detector.endswith(":5")


async def test_worker_reused_between_messages(pool_and_metrics) -> None:
    pool, _ = pool_and_metrics
    first = await pool(b"a")
    second = await pool(b"b")
    assert first.detector.split(":")[0] == second.detector.split(":")[0]


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"cpu", "cpu"),
        (b"memory", "memory"),
        (b"sleep", "deadline"),
        (b"crash", "error"),
    ],
)
async def test_worker_killed_at_limit(pool_and_metrics, message, reason) -> None:
    pool, metrics = pool_and_metrics
    before = await pool(b"x")
    with pytest.raises(ClassifyFailed) as caught:
        await pool(message)
    assert caught.value.reason == reason
    assert kills(metrics, reason) == 1
    after = await pool(b"x")
    assert after.detector != before.detector, "the killed worker was not replaced"


async def test_cpu_limit_per_message(pool_and_metrics) -> None:
    """CPU used by earlier messages does not count against a later one."""
    pool, _ = pool_and_metrics
    for _ in range(3):
        started = time.process_time()
        await pool(b"x")
        assert time.process_time() - started < 1
    with pytest.raises(ClassifyFailed):
        await pool(b"cpu")


async def test_exception_reported_as_error(pool_and_metrics) -> None:
    pool, metrics = pool_and_metrics
    before = await pool(b"x")
    with pytest.raises(ClassifyFailed) as caught:
        await pool(b"fail")
    assert caught.value.reason == "error"
    assert "ValueError: detector bug" in str(caught.value)
    assert kills(metrics, "error") == 0
    after = await pool(b"x")
    assert after.detector == before.detector, "a worker was killed for an exception"


async def test_pool_runs_messages_in_parallel() -> None:
    """Two 1 s messages on two workers take about 1 s, not 2 s."""
    pool = ClassifierPool(LIMITS, size=2, target=f"{HERE}:pick")
    await pool.start()
    try:
        started = time.monotonic()
        verdicts = await asyncio.gather(pool(b"nap"), pool(b"nap"))
        elapsed = time.monotonic() - started
    finally:
        await pool.close()
    workers = {verdict.detector.split(":")[0] for verdict in verdicts}
    assert len(workers) == 2
    assert elapsed < 1.8


async def test_closed_pool_rejects_messages() -> None:
    pool = ClassifierPool(LIMITS, size=1, target=f"{HERE}:pick")
    await pool.close()
    with pytest.raises(RuntimeError):
        await pool(b"x")


async def test_close_fails_message_in_flight() -> None:
    pool = ClassifierPool(LIMITS, size=1, target=f"{HERE}:pick")
    await pool.start()
    pending = asyncio.create_task(pool(b"sleep"))
    await asyncio.sleep(0.3)
    await pool.close()
    with pytest.raises(ClassifyFailed) as caught:
        await asyncio.wait_for(pending, 2)
    assert caught.value.reason == "error"


async def test_unimportable_target_fails_start() -> None:
    pool = ClassifierPool(LIMITS, size=1, target="nonexistent_module:classify")
    with pytest.raises(ClassifyFailed, match="failed to start") as caught:
        await pool.start()
    assert caught.value.reason == "error"
    await pool.close()


async def test_worker_rules_dir(tmp_path: Path) -> None:
    """The pool's rules_dir reaches every worker as WATCHDOG_RULES_DIR."""
    pool = ClassifierPool(
        LIMITS, size=1, target=f"{HERE}:rules_env", rules_dir=tmp_path
    )
    await pool.start()
    try:
        verdict = await pool(b"x")
    finally:
        await pool.close()
    assert verdict.detector == str(tmp_path)


async def test_cancelled_start_leaves_no_worker() -> None:
    """A start cancelled while the worker boots kills that worker."""
    pool = ClassifierPool(LIMITS, size=1, target=f"{HERE}:pick")
    before = {child.pid for child in multiprocessing.active_children()}
    for delay in (0.0, 0.05, 0.2):
        starting = asyncio.create_task(pool.start())
        await asyncio.sleep(delay)
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
    await asyncio.sleep(1.0)  # a start already in its thread finishes, then dies
    await pool.close()

    left = {
        child.pid
        for child in multiprocessing.active_children()
        if child.pid not in before and child.name == "mail-watchdog-classify"
    }
    assert left == set()
