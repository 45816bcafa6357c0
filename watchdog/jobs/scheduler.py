"""Poll every source on its interval with APScheduler's AsyncIOScheduler.

Each source (an IMAP mailbox or a local Maildir, mbox file or folder) is one
interval job with ``coalesce=True`` and ``max_instances=1``, so missed runs
collapse into one and two polls of one source never overlap. ``wake(name)``
runs a job now, which is how an IMAP IDLE push shortens the wait. A poll that
raises is logged with the source name and retried at the next interval. A
source that reports its own failures logs them itself, and its next poll is
moved to the end of the backoff delay it reports, so the delay it logs is
the delay used.

APScheduler has no way to end a job that hangs, and with ``max_instances=1``
a hung job blocks every later run of that source. Each mailbox poll therefore
runs under a deadline slightly longer than the worker's own cycle deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

import structlog
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from watchdog.http import SourceHealth
from watchdog.metrics import Metrics

JITTER_FRACTION = 0.1
MAX_JITTER_SECONDS = 30.0
# Extra time the outer deadline gives a mailbox cycle to fail on its own.
DEADLINE_MARGIN_SECONDS = 30.0

log = structlog.get_logger("watchdog.jobs")


class _SkipFilter(logging.Filter):
    """Drop APScheduler's warning for a run skipped behind a running poll.

    With ``max_instances=1`` that skip is the intended behaviour, and a poll
    longer than its interval would log it on every tick.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in str(record.msg)


_SKIP_FILTER = _SkipFilter()


class PollOutcome(Protocol):
    """Result of one poll of a source that reports on itself.

    ``state`` is ``done``, ``locked`` (another process polls the source),
    ``backoff`` or ``stopped`` (the poll was skipped) or ``failed``. The
    mailbox worker's CycleSummary has this shape.
    """

    @property
    def state(self) -> str: ...

    @property
    def error(self) -> str | None: ...

    @property
    def retry_in_seconds(self) -> float | None:
        """Seconds until the source may be polled again after a failure."""
        ...


Poll = Callable[[], Awaitable[PollOutcome | None]]


class SourceState(StrEnum):
    """State of a source after its latest poll."""

    STARTING = "starting"
    OK = "ok"
    LOCKED = "locked"
    FAILING = "failing"


@dataclass(slots=True)
class _Source:
    """Mutable bookkeeping of one source, touched only from the event loop."""

    name: str
    poll: Poll
    interval: float
    deadline: float | None
    since: float
    reports_itself: bool
    background: bool = False
    state: SourceState = SourceState.STARTING
    last_success: float | None = None
    last_error: str | None = None
    task: asyncio.Task[None] | None = None
    rerun: bool = False
    failures: int = 0


class Scheduler:
    """Interval jobs for every source, plus their health for ``/healthz``.

    ``clock`` returns monotonic seconds, and tests replace it to age sources.
    """

    def __init__(
        self,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self._clock = clock
        self._sources: dict[str, _Source] = {}
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        logging.getLogger("apscheduler.scheduler").addFilter(_SKIP_FILTER)
        self._stopping = False

    def add(
        self,
        name: str,
        poll: Poll,
        *,
        interval: float,
        deadline: float | None,
        reports_itself: bool = False,
        background: bool = False,
    ) -> None:
        """Add a source polled every ``interval`` seconds, first right at start.

        ``deadline`` bounds one poll in seconds, and None leaves it unbounded.
        A source that ``reports_itself`` records its own poll metrics and logs
        its own failures, so the scheduler only tracks its health. It still
        logs and counts a poll that raises or misses the deadline. A
        ``background`` job (a reputation check, a gauge refresh) is no mail
        source: it is left out of ``/healthz`` and of the mailbox metrics.
        """
        if name in self._sources:
            msg = f"duplicate source name {name!r}: names must be unique"
            raise ValueError(msg)
        source = _Source(
            name,
            poll,
            interval,
            deadline,
            since=self._clock(),
            reports_itself=reports_itself,
            background=background,
        )
        self._sources[name] = source
        if not background:
            self._metrics.poll_interval.labels(name).set(interval)
            # Until the first success the start time stands in, so a source
            # that never connects still ages into the stalled-ingestion alert.
            self._metrics.last_success.labels(name).set_to_current_time()
        self._scheduler.add_job(
            self._run,
            "interval",
            args=[name],
            id=name,
            name=f"poll {name}",
            seconds=interval,
            jitter=min(interval * JITTER_FRACTION, MAX_JITTER_SECONDS),
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
            next_run_time=datetime.now(UTC),
        )

    def add_mailbox(
        self, name: str, poll: Poll, *, interval: float, cycle_timeout: float
    ) -> None:
        """Add an IMAP mailbox worker's poll, which has its own ``cycle_timeout``."""
        self.add(
            name,
            poll,
            interval=interval,
            deadline=cycle_timeout + DEADLINE_MARGIN_SECONDS,
            reports_itself=True,
        )

    def start(self) -> None:
        """Start scheduling; call from inside the running event loop."""
        self._scheduler.start()

    def wake(self, name: str) -> None:
        """Poll ``name`` now, or right after the poll in progress ends."""
        source = self._sources.get(name)
        if source is None or self._stopping:
            return
        if source.task is not None:
            source.rerun = True
            return
        with contextlib.suppress(JobLookupError):
            self._scheduler.modify_job(name, next_run_time=datetime.now(UTC))

    async def stop(self, budget: float) -> list[str]:
        """Stop scheduling and wait up to ``budget`` seconds for running polls.

        Polls still running after the budget are cancelled. Returns the names
        of the cancelled sources.
        """
        self._stopping = True
        if not self._scheduler.running:
            return []
        # Pause first: in APScheduler 3.11, shutting the asyncio executor down cancels
        # the running jobs at once.
        self._scheduler.pause()
        running = {s.task: s.name for s in self._sources.values() if s.task}
        pending: set[asyncio.Task[None]] = set()
        if running:
            _, pending = await asyncio.wait(running, timeout=budget)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        self._scheduler.shutdown(wait=False)
        return sorted(running[task] for task in pending)

    def source_health(self) -> list[SourceHealth]:
        """Report each source's state and the age of its last successful poll."""
        now = self._clock()
        return [
            SourceHealth(
                name=s.name,
                state=s.state.value,
                poll_interval_seconds=s.interval,
                age_seconds=now - (s.last_success or s.since),
                last_error=s.last_error,
            )
            for s in self._sources.values()
            if not s.background
        ]

    async def _run(self, name: str) -> None:
        source = self._sources[name]
        source.task = asyncio.current_task()
        try:
            while True:
                source.rerun = False
                await self._poll_once(source)
                if not source.rerun or self._stopping:
                    return
        except asyncio.CancelledError:
            # stop() cancels a poll that outlives its budget and reports it.
            # Raising would make APScheduler log a traceback for every one.
            if not self._stopping:
                raise
        finally:
            source.task = None

    async def _poll_once(self, source: _Source) -> None:
        started = self._clock()
        deadline = asyncio.timeout(source.deadline)
        try:
            async with deadline:
                outcome = await source.poll()
        except TimeoutError as exc:
            if deadline.expired():
                error = f"poll timed out after {source.deadline:g} s"
            else:
                error = f"TimeoutError: {exc}"
            self._failed(source, started, error, reported=False)
        except Exception as exc:  # a failed poll must not end the daemon
            error = f"{type(exc).__name__}: {exc}"
            self._failed(source, started, error, reported=False)
        else:
            self._settle(source, started, outcome)

    def _settle(
        self, source: _Source, started: float, outcome: PollOutcome | None
    ) -> None:
        state = outcome.state if outcome is not None else "done"
        if outcome is not None and state == "failed":
            self._failed(source, started, outcome.error or "failed", reported=True)
            self._retry_after(source, outcome.retry_in_seconds)
        elif state in ("done", "locked"):
            self._succeeded(source, started, locked=state == "locked")
        # A poll skipped for backoff or stop changes nothing.

    def _succeeded(self, source: _Source, started: float, *, locked: bool) -> None:
        now = self._clock()
        if source.state is SourceState.FAILING:
            log.info("poll_recovered", source=source.name, failures=source.failures)
        # NOTE: a poll skipped because another process holds the consumer lock
        # counts as fresh, so a standby instance stays healthy.
        source.state = SourceState.LOCKED if locked else SourceState.OK
        source.last_success = now
        source.last_error = None
        source.failures = 0
        if not source.reports_itself and not source.background:
            self._metrics.poll_done(source.name, now - started, succeeded=True)

    def _next_run_in(self, source: _Source) -> float:
        """Return the seconds until the job's next run, jitter included."""
        job = self._scheduler.get_job(source.name)
        if job is None or job.next_run_time is None:
            return source.interval
        next_run: datetime = job.next_run_time
        seconds = (next_run - datetime.now(UTC)).total_seconds()
        return round(max(seconds, 0.0), 1)

    def _retry_after(self, source: _Source, delay: float | None) -> None:
        """Run the next poll of ``source`` when its backoff delay ends."""
        if delay is None or self._stopping:
            return
        when = datetime.now(UTC) + timedelta(seconds=delay)
        with contextlib.suppress(JobLookupError):
            self._scheduler.modify_job(source.name, next_run_time=when)

    def _failed(
        self, source: _Source, started: float, error: str, *, reported: bool
    ) -> None:
        source.state = SourceState.FAILING
        source.last_error = error
        source.failures += 1
        if reported:
            return
        seconds = self._clock() - started
        if not source.background:
            self._metrics.poll_done(source.name, seconds, succeeded=False)
        log.error(
            "poll_failed",
            source=source.name,
            error=error,
            attempt=source.failures,
            retry_in_seconds=self._next_run_in(source),
        )
