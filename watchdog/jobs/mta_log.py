"""The daemon's MTA log source: read new lines, store the position, count.

Each poll reads the lines added since the last one in batches of
``BATCH_BYTES``, parsing them on a worker thread so the event loop stays
free. After each batch the position and the changed deferred recipients
are committed, and only then are the batch's counts added to the metrics
(see ``watchdog.store.mta_log_state``). A poll reads at most
``POLL_BYTES`` and requests another poll at once when more is waiting,
so a backlog drains without one poll running for minutes.

When a poll fails (an unreadable file, a database error, a cancelled
poll) the reader is rebuilt from the stored state at the next poll, so the
lines of a batch that was not committed are read again. A cancelled poll
does not stop a COMMIT already on the store's thread, so a batch's save
and count run on to the end, and the next poll waits for them.

Daemons that share a database take the store's consumer lock of the log
(``state_key``) for each poll, so only one of them reads a given log. The
others stand by, and one that takes over starts from the stored position.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from watchdog.config import MtaLog, StartAt
from watchdog.metrics import Metrics
from watchdog.providers import ProviderMap
from watchdog.sources.mta_log.follow import LogFollower, Position, ReadResult
from watchdog.sources.mta_log.lines import LineKind, LineParser, line_time
from watchdog.sources.mta_log.tally import Counts, Pending, Tally
from watchdog.store import Store
from watchdog.store.locks import ConsumerLock
from watchdog.store.mta_log_state import MtaLogState

SOURCE_NAME = "mta-log"
BATCH_BYTES = 8 << 20
POLL_BYTES = 64 << 20
# Seconds one poll of at most POLL_BYTES may take before it is cancelled.
POLL_DEADLINE_SECONDS = 300.0
# Seconds between two warnings about malformed or overlong lines. The
# metric counts every one of them.
DAMAGED_WARNING_INTERVAL = 3600.0

log = structlog.get_logger("watchdog.jobs.mta_log")


@dataclass(slots=True)
class _Reader:
    """The follower and tally of one run, rebuilt after a failed poll."""

    follower: LogFollower
    tally: Tally
    parser: LineParser
    saved: Position | None = None


@dataclass(frozen=True, slots=True)
class PollSummary:
    """Result of one poll, in the shape the scheduler reads.

    ``state`` is ``done``, or ``locked`` when another daemon reads the log.
    """

    state: str
    error: str | None = None
    retry_in_seconds: float | None = None


class LogLock:
    """The store's consumer lock of one log, taken for each poll."""

    def __init__(self, store: Store, key: str) -> None:
        self._store = store
        self._key = key

    async def take(self) -> ConsumerLock:
        """Try to take the lock; ``won`` is False when another process holds it.

        A poll cancelled while the lock is being taken releases it once taken.
        """
        store = self._store
        taking = asyncio.ensure_future(
            store.call(store.take_consumer_lock, SOURCE_NAME, self._key)
        )
        try:
            return await asyncio.shield(taking)
        except asyncio.CancelledError:
            taking.add_done_callback(self._release_taken)
            raise

    async def check(self, lock: ConsumerLock) -> None:
        """Raise ConsumerLockLost when ``lock`` is no longer held."""
        await self._store.call(lock.check)

    def release(self, lock: ConsumerLock) -> None:
        """Queue the release on the store thread without waiting for it."""
        self._store.submit(lock.release)

    def _release_taken(self, taking: asyncio.Future[ConsumerLock]) -> None:
        if not taking.cancelled() and taking.exception() is None:
            self.release(taking.result())


@dataclass(slots=True)
class _Batch:
    result: ReadResult
    counts: Counts
    changed: dict[str, list[tuple[str, str]]]


class MtaLogSource:
    """Read Postfix's log for ``Metrics.delivery_attempts``.

    ``wake`` requests another poll right after this one; the
    daemon passes ``Scheduler.wake`` bound to ``SOURCE_NAME``. With a
    ``lock``, a poll reads only while it holds the log's consumer lock.
    """

    def __init__(
        self,
        settings: MtaLog,
        state: MtaLogState,
        metrics: Metrics,
        providers: ProviderMap,
        *,
        wake: Callable[[], None] | None = None,
        stop: asyncio.Event | None = None,
        lock: LogLock | None = None,
    ) -> None:
        self._settings = settings
        self._state = state
        self._metrics = metrics
        self._providers = providers
        self._wake = wake
        self._stop = stop
        self._lock = lock
        self._reader: _Reader | None = None
        self._missing_logged = False
        self._standby = False
        self._damaged = {"malformed": 0, "too_long": 0}
        self._damaged_warned_at: float | None = None
        self._late_commit: asyncio.Future[None] | None = None

    async def poll(self) -> PollSummary:
        """Read and count the lines added since the last poll.

        Raises SourceError when the log cannot be read, and StoreError when
        the position cannot be stored or the lock was lost. The scheduler
        logs both and retries at the next interval.
        """
        consumer_lock = await self._lock.take() if self._lock is not None else None
        try:
            if consumer_lock is not None and not consumer_lock.won:
                self._stand_by()
                return PollSummary("locked")
            if self._standby:
                log.info("mta_log_taken_over", path=str(self._settings.path))
                self._standby = False
            await self._poll(consumer_lock)
        except BaseException:
            self.close()
            raise
        finally:
            if consumer_lock is not None and self._lock is not None:
                self._lock.release(consumer_lock)
        return PollSummary("done")

    def close(self) -> None:
        """Close the log file; the next poll resumes from the stored state."""
        if self._reader is not None:
            self._reader.follower.close()
            self._reader = None

    def stop(self) -> None:
        """Close the log file at shutdown and log where reading stopped."""
        saved = self._reader.saved if self._reader is not None else None
        self.close()
        log.info(
            "mta_log_stopped",
            path=str(self._settings.path),
            offset=saved.offset if saved is not None else None,
        )

    def _stand_by(self) -> None:
        """Drop the reader: the daemon holding the lock moves the position."""
        self.close()
        if not self._standby:
            log.info(
                "mta_log_standby",
                path=str(self._settings.path),
                reason="consumer_lock_held",
            )
            self._standby = True

    async def _poll(self, consumer_lock: ConsumerLock | None) -> None:
        reader = self._reader or await self._open()
        read = 0
        while True:
            batch = await asyncio.to_thread(_read_batch, reader)
            result = batch.result
            if result.position is None:
                self._log_missing()
                return
            self._log_found()
            if result.position_lost:
                log.warning(
                    "mta_log_position_lost",
                    path=str(self._settings.path),
                    hint="the file read before the stop was rotated away or "
                    "truncated; lines written to it after the stop were not "
                    "counted. Keep one rotation uncompressed (delaycompress)",
                )
            # Shielded, because a cancelled await does not stop a COMMIT on
            # the store's thread, and a committed batch must be counted.
            commit = asyncio.ensure_future(self._commit(consumer_lock, reader, batch))
            try:
                await asyncio.shield(commit)
            except asyncio.CancelledError:
                commit.add_done_callback(self._log_late_failure)
                self._late_commit = commit
                raise
            read += result.bytes_read
            stopping = self._stop is not None and self._stop.is_set()
            if not result.more or stopping:
                return
            if read >= POLL_BYTES:
                if self._wake is not None:
                    self._wake()
                return

    async def _commit(
        self, consumer_lock: ConsumerLock | None, reader: _Reader, batch: _Batch
    ) -> None:
        """Store the batch's position and changes, then count the batch."""
        result = batch.result
        assert result.position is not None
        stamp = self._line_time(batch.counts)
        if result.position != reader.saved or batch.changed:
            # An idle poll changes nothing, so it writes nothing either.
            if consumer_lock is not None and self._lock is not None:
                await self._lock.check(consumer_lock)
            await self._state.save(
                self._settings.key, result.position, stamp, batch.changed
            )
            reader.saved = result.position
        self._count(batch.counts, result, stamp)

    def _log_late_failure(self, commit: asyncio.Future[None]) -> None:
        """Log the failure of a commit that outlived its cancelled poll."""
        if commit.cancelled() or commit.exception() is None:
            return
        log.warning(
            "mta_log_commit_failed",
            path=str(self._settings.path),
            error=str(commit.exception()),
            hint="the batch is read again at the next poll",
        )

    async def _open(self) -> _Reader:
        if self._late_commit is not None:
            # The stored position is only final once that commit has ended.
            await asyncio.wait([self._late_commit])
            self._late_commit = None
        settings = self._settings
        saved = await self._state.load(settings.key)
        if saved.last_line_at is not None:
            self._metrics.mta_log_last_line.set(saved.last_line_at.timestamp())
        pending = Pending(saved.pending, max_recipients=settings.max_pending_recipients)
        follower = LogFollower(
            settings.path,
            saved.position,
            from_start=settings.start_at is StartAt.START,
            max_line_bytes=settings.max_line_bytes,
        )
        parser = LineParser.from_settings(settings)
        tally = Tally(self._providers, pending)
        self._reader = _Reader(follower, tally, parser, saved.position)
        log.info(
            "mta_log_opened",
            path=str(settings.path),
            state_key=settings.key,
            offset=saved.position.offset if saved.position else None,
            start_at=None if saved.position else settings.start_at.value,
            pending_recipients=len(pending),
        )
        return self._reader

    def _line_time(self, counts: Counts) -> datetime | None:
        if counts.last_stamp is None:
            return None
        return line_time(counts.last_stamp, datetime.now(UTC))

    def _count(
        self, counts: Counts, result: ReadResult, stamp: datetime | None
    ) -> None:
        metrics = self._metrics
        for (status, provider), number in counts.attempts.items():
            metrics.delivery_attempts.labels(status.value, provider).inc(number)
        for (provider, reason), number in counts.deferrals.items():
            metrics.delivery_deferrals.labels(provider, reason).inc(number)
        for kind, number in counts.lines.items():
            metrics.mta_log_lines.labels(kind.value).inc(number)
        if result.too_long:
            metrics.mta_log_lines.labels(LineKind.TOO_LONG.value).inc(result.too_long)
        for rotation in result.rotations:
            metrics.mta_log_rotations.labels(rotation.value).inc()
            log.info("mta_log_rotated", path=str(self._settings.path), kind=rotation)
        if stamp is not None:
            metrics.mta_log_last_line.set(stamp.timestamp())
        self._damaged["malformed"] += counts.lines[LineKind.MALFORMED]
        self._damaged["too_long"] += result.too_long
        self._warn_damaged()
        log.debug(
            "mta_log_read",
            path=str(self._settings.path),
            bytes=result.bytes_read,
            deliveries=counts.lines[LineKind.DELIVERY],
            offset=result.position.offset if result.position else None,
        )

    def _warn_damaged(self) -> None:
        """Log the malformed and overlong lines, at most once an hour."""
        if not any(self._damaged.values()):
            return
        now = time.monotonic()
        last = self._damaged_warned_at
        if last is not None and now - last < DAMAGED_WARNING_INTERVAL:
            return
        log.warning(
            "mta_log_lines_malformed",
            path=str(self._settings.path),
            since_last_warning=dict(self._damaged),
            hint="see mailwatchdog_mta_log_lines_total; raise "
            "mta_log.max_line_bytes if the too_long lines are real",
        )
        self._damaged = dict.fromkeys(self._damaged, 0)
        self._damaged_warned_at = now

    def _log_missing(self) -> None:
        if not self._missing_logged:
            log.warning(
                "mta_log_missing",
                path=str(self._settings.path),
                hint="waiting for the file; check mta_log.path if it never appears",
            )
            self._missing_logged = True

    def _log_found(self) -> None:
        if self._missing_logged:
            log.info("mta_log_found", path=str(self._settings.path))
            self._missing_logged = False


def _read_batch(reader: _Reader) -> _Batch:
    """Read one batch on a worker thread; return its counts and changes."""
    parser, tally = reader.parser, reader.tally

    def on_line(line: bytes) -> None:
        tally.add(parser.parse(line))

    result = reader.follower.read(BATCH_BYTES, on_line)
    pending = tally.pending
    changed = {qid: pending.recipients(qid) for qid in pending.take_dirty()}
    return _Batch(result, tally.take(), changed)
