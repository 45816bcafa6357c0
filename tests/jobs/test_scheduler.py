"""Scheduler: real APScheduler jobs driving stand-in polls."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio
from structlog.testing import capture_logs

from watchdog.jobs.scheduler import Scheduler
from watchdog.metrics import Metrics


class Counter:
    """A poll that counts its calls and tracks how many run at once."""

    def __init__(self, seconds: float = 0.0, error: Exception | None = None) -> None:
        self.seconds = seconds
        self.error = error
        self.calls = 0
        self.running = 0
        self.max_running = 0
        self.finished = 0

    async def __call__(self) -> None:
        self.calls += 1
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await asyncio.sleep(self.seconds)
            if self.error is not None:
                raise self.error
            self.finished += 1
        finally:
            self.running -= 1


async def wait_for(condition, seconds: float = 5.0) -> None:
    """Poll ``condition`` every 10 ms until it is true or ``seconds`` pass."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - the polls set no event
            await asyncio.sleep(0.01)


@pytest_asyncio.fixture(loop_scope="function")
async def scheduler():
    sched = Scheduler(Metrics())
    yield sched
    await sched.stop(budget=1)


async def test_first_poll_at_start(scheduler) -> None:
    poll = Counter()
    scheduler.add("bounces", poll, interval=3600, deadline=None)
    scheduler.start()
    await wait_for(lambda: poll.calls == 1)
    assert poll.finished == 1


async def test_polls_repeat_at_interval(scheduler) -> None:
    poll = Counter()
    scheduler.add("bounces", poll, interval=0.2, deadline=None)
    scheduler.start()
    await asyncio.sleep(1.1)
    # About six runs (0, 0.2 ... 1.0 s). Jitter only delays runs and a loaded
    # machine falls behind, so the bounds are loose below and tight above.
    assert 3 <= poll.calls <= 7


async def test_polls_never_overlap(scheduler) -> None:
    poll = Counter(seconds=0.5)
    scheduler.add("bounces", poll, interval=0.1, deadline=None)
    scheduler.start()
    await wait_for(lambda: poll.finished >= 2)
    assert poll.max_running == 1


async def test_wake_polls_now(scheduler) -> None:
    poll = Counter()
    scheduler.add("bounces", poll, interval=3600, deadline=None)
    scheduler.start()
    await wait_for(lambda: poll.finished == 1)
    scheduler.wake("bounces")
    await wait_for(lambda: poll.finished == 2, seconds=2)
    assert poll.calls == 2


async def test_wake_during_poll_reruns(scheduler) -> None:
    poll = Counter(seconds=0.3)
    scheduler.add("bounces", poll, interval=3600, deadline=None)
    scheduler.start()
    await wait_for(lambda: poll.running == 1)
    scheduler.wake("bounces")
    await wait_for(lambda: poll.finished == 2, seconds=2)
    assert poll.max_running == 1


async def test_wake_unknown_source_ignored(scheduler) -> None:
    scheduler.start()
    scheduler.wake("nonexistent")


async def test_failed_poll_logged_and_retried(scheduler) -> None:
    poll = Counter(error=ConnectionResetError("reset by peer"))
    scheduler.add("bounces", poll, interval=0.2, deadline=None)
    with capture_logs() as logs:
        scheduler.start()
        await wait_for(lambda: poll.calls >= 2)
    failures = [e for e in logs if e["event"] == "poll_failed"]
    assert failures[0]["source"] == "bounces"
    assert failures[0]["error"] == "ConnectionResetError: reset by peer"
    assert failures[0]["log_level"] == "error"
    assert failures[0]["attempt"] == 1
    assert 0.0 <= failures[0]["retry_in_seconds"] <= 0.3
    [health] = scheduler.source_health()
    assert health.state == "failing"
    assert health.last_error == "ConnectionResetError: reset by peer"


async def test_hung_poll_hits_deadline(scheduler) -> None:
    poll = Counter(seconds=3600)
    scheduler.add("bounces", poll, interval=3600, deadline=0.2)
    with capture_logs() as logs:
        scheduler.start()
        await wait_for(lambda: scheduler.source_health()[0].state == "failing")
    assert poll.running == 0
    assert logs[-1]["error"] == "poll timed out after 0.2 s"


async def test_recovery_logged(scheduler) -> None:
    poll = Counter(error=OSError("down"))
    scheduler.add("bounces", poll, interval=0.2, deadline=None)
    with capture_logs() as logs:
        scheduler.start()
        await wait_for(lambda: poll.calls >= 1)
        poll.error = None
        await wait_for(lambda: poll.finished >= 1)
    recovered = [e for e in logs if e["event"] == "poll_recovered"]
    assert recovered[0]["source"] == "bounces"
    assert scheduler.source_health()[0].state == "ok"


async def test_stop_waits_for_running_poll() -> None:
    scheduler = Scheduler(Metrics())
    poll = Counter(seconds=0.3)
    scheduler.add("bounces", poll, interval=3600, deadline=None)
    scheduler.start()
    await wait_for(lambda: poll.running == 1)
    cancelled = await scheduler.stop(budget=5)
    assert cancelled == []
    assert poll.finished == 1


async def test_stop_cancels_after_budget() -> None:
    scheduler = Scheduler(Metrics())
    poll = Counter(seconds=3600)
    scheduler.add("bounces", poll, interval=3600, deadline=None)
    scheduler.start()
    await wait_for(lambda: poll.running == 1)
    cancelled = await scheduler.stop(budget=0.2)
    assert cancelled == ["bounces"]
    assert poll.running == 0


async def test_no_polls_after_stop() -> None:
    scheduler = Scheduler(Metrics())
    poll = Counter()
    scheduler.add("bounces", poll, interval=0.1, deadline=None)
    scheduler.start()
    await wait_for(lambda: poll.calls >= 1)
    await scheduler.stop(budget=1)
    calls = poll.calls
    await asyncio.sleep(0.3)
    assert poll.calls == calls


async def test_duplicate_name_rejected(scheduler) -> None:
    scheduler.add("bounces", Counter(), interval=60, deadline=None)
    with pytest.raises(ValueError, match="'bounces'"):
        scheduler.add("bounces", Counter(), interval=60, deadline=None)


async def test_health_age_and_staleness() -> None:
    now = [1000.0]
    scheduler = Scheduler(Metrics(), clock=lambda: now[0])
    poll = Counter()
    scheduler.add("bounces", poll, interval=60, deadline=None)
    now[0] += 100
    [before] = scheduler.source_health()
    assert before.state == "starting"
    assert before.age_seconds == 100
    scheduler.start()
    await wait_for(lambda: scheduler.source_health()[0].state == "ok")
    now[0] += 180
    assert not scheduler.source_health()[0].stale
    now[0] += 1
    assert scheduler.source_health()[0].stale
    await scheduler.stop(budget=1)


async def test_metrics_after_poll() -> None:
    metrics = Metrics()
    sched = Scheduler(metrics)
    poll = Counter()
    sched.add("bounces", poll, interval=60, deadline=None)
    sched.start()
    await wait_for(lambda: poll.finished == 1)
    await sched.stop(budget=1)
    registry = metrics.registry
    interval = registry.get_sample_value(
        "mailwatchdog_mailbox_poll_interval_seconds", {"mailbox": "bounces"}
    )
    last = registry.get_sample_value(
        "mailwatchdog_mailbox_last_success_timestamp_seconds", {"mailbox": "bounces"}
    )
    count = registry.get_sample_value(
        "mailwatchdog_mailbox_poll_duration_seconds_count", {"mailbox": "bounces"}
    )
    assert interval == 60
    assert last is not None and last > 0
    assert count == 1


class Outcome:
    """A poll result shaped like the mailbox worker's CycleSummary."""

    def __init__(
        self, state: str, error: str | None = None, retry: float | None = None
    ) -> None:
        self.state = state
        self.error = error
        self.retry_in_seconds = retry


def returning(*outcomes: Outcome):
    remaining = list(outcomes)

    async def poll() -> Outcome:
        return remaining.pop(0) if len(remaining) > 1 else remaining[0]

    return poll


async def test_reported_failure_not_logged_twice(scheduler) -> None:
    poll = returning(Outcome("failed", "IMAP login rejected"))
    scheduler.add_mailbox("bounces", poll, interval=3600, cycle_timeout=10)
    with capture_logs() as logs:
        scheduler.start()
        await wait_for(lambda: scheduler.source_health()[0].state == "failing")
    [health] = scheduler.source_health()
    assert health.last_error == "IMAP login rejected"
    assert [e for e in logs if e["event"] == "poll_failed"] == []


async def test_reported_poll_metrics_left_to_source() -> None:
    metrics = Metrics()
    sched = Scheduler(metrics)
    sched.add_mailbox(
        "bounces", returning(Outcome("done")), interval=60, cycle_timeout=10
    )
    sched.start()
    await wait_for(lambda: sched.source_health()[0].state == "ok")
    await sched.stop(budget=1)
    count = metrics.registry.get_sample_value(
        "mailwatchdog_mailbox_poll_duration_seconds_count", {"mailbox": "bounces"}
    )
    assert count is None


async def test_locked_poll_counts_as_fresh(scheduler) -> None:
    scheduler.add_mailbox(
        "bounces", returning(Outcome("locked")), interval=3600, cycle_timeout=10
    )
    scheduler.start()
    await wait_for(lambda: scheduler.source_health()[0].state == "locked")
    assert scheduler.source_health()[0].age_seconds < 1


async def test_backoff_poll_keeps_state(scheduler) -> None:
    poll = returning(Outcome("failed", "refused"), Outcome("backoff"))
    scheduler.add_mailbox("bounces", poll, interval=0.1, cycle_timeout=10)
    scheduler.start()
    await asyncio.sleep(0.5)
    [health] = scheduler.source_health()
    assert health.state == "failing"
    assert health.last_error == "refused"


async def test_last_success_starts_at_add() -> None:
    metrics = Metrics()
    scheduler = Scheduler(metrics)
    scheduler.add("bounces", Counter(), interval=60, deadline=None)
    started = metrics.registry.get_sample_value(
        "mailwatchdog_mailbox_last_success_timestamp_seconds", {"mailbox": "bounces"}
    )
    assert started is not None
    assert started > 0


async def test_background_job_not_a_source(scheduler) -> None:
    poll = Counter()
    scheduler.add("check-audit", poll, interval=3600, deadline=None, background=True)
    scheduler.start()
    await wait_for(lambda: poll.finished == 1)
    assert scheduler.source_health() == []
    interval = scheduler._metrics.registry.get_sample_value(
        "mailwatchdog_mailbox_poll_interval_seconds", {"mailbox": "check-audit"}
    )
    assert interval is None


async def test_failure_retried_after_reported_delay(scheduler) -> None:
    """A reported failure runs the next poll when its backoff delay ends."""
    calls: list[float] = []
    outcomes = [Outcome("failed", "refused", retry=0.3), Outcome("done")]

    async def poll() -> Outcome:
        calls.append(asyncio.get_running_loop().time())
        return outcomes.pop(0) if len(outcomes) > 1 else outcomes[0]

    scheduler.add_mailbox("bounces", poll, interval=3600, cycle_timeout=10)
    scheduler.start()
    await wait_for(lambda: len(calls) == 2, seconds=5.0)
    waited = calls[1] - calls[0]
    assert 0.25 <= waited < 1.5
    assert scheduler.source_health()[0].state == "ok"
