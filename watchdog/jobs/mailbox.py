"""The mailbox worker: one per configured IMAP mailbox.

``poll`` runs one pass over the source folder under the consumer lock and a
single deadline for the whole cycle, reusing a healthy connection. A
timeout, protocol error or lost connection drops the connection, and later
polls are skipped until the backoff delay has passed. ``watch`` keeps a
second connection in IDLE and calls ``wake`` when new mail arrives. IDLE is
only a wake-up hint, so polling goes on when IDLE fails.

Each failure is logged once, here: ``poll_failed`` for the polling
connection, ``idle_failed`` for the IDLE connection while polling works.
While polls fail, IDLE failures are part of the same fault and are logged
at debug level only.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from watchdog.config import Limits, Mailbox, TlsMode, Unrecognised
from watchdog.errors import (
    ConfigError,
    ImapAuthError,
    ImapError,
    ImapTimeout,
    SourceError,
    StoreError,
)
from watchdog.metrics import Metrics
from watchdog.sources.backoff import Backoff, FailureKind
from watchdog.sources.imap.cycle import (
    BatchReport,
    CycleStore,
    FolderPass,
    FolderPlan,
    MessageProcessor,
)
from watchdog.sources.imap.idle import IdleSettings, IdleWatcher
from watchdog.sources.imap.session import Endpoint, ImapSession, tls_context
from watchdog.store.locks import ConsumerLock
from watchdog.store.records import Counted

log = structlog.get_logger("watchdog.jobs.mailbox")


class MailboxStore(CycleStore, Protocol):
    """The store calls of the worker: the cycle's plus the consumer lock."""

    def take_consumer_lock(self, source: str, folder: str) -> ConsumerLock: ...
    def submit(self, function: Callable[[], object]) -> object: ...


class CycleState(enum.StrEnum):
    """Final state of one poll."""

    DONE = "done"
    STOPPED = "stopped"
    LOCKED = "locked"
    BACKOFF = "backoff"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class CycleSummary:
    """The result of one poll.

    ``error`` is set when ``state`` is failed, and ``retry_in_seconds`` is
    then the backoff delay before the next poll may run.
    """

    mailbox: str
    state: CycleState
    outcomes: dict[str, int] = field(default_factory=dict)
    backlog: int = 0
    uidvalidity_changed: bool = False
    seconds: float = 0.0
    error: str | None = None
    retry_in_seconds: float | None = None

    @property
    def messages(self) -> int:
        """Messages processed in this poll."""
        return sum(self.outcomes.values())


class _ConnectionLost(ImapError):
    """The server closed the connection while a cycle was running."""


class MailboxWorker:
    """Poll one IMAP mailbox and watch it with IDLE.

    ``stop`` set (on SIGTERM) ends a running poll after the messages in
    flight are committed and moved, and ends ``watch``. ``wake`` is called
    from ``watch`` when the server announces new mail. ``concurrency`` is
    how many messages are classified at once; set it to the classifier
    pool's size.
    """

    def __init__(
        self,
        name: str,
        mailbox: Mailbox,
        *,
        store: MailboxStore,
        processor: MessageProcessor,
        metrics: Metrics,
        limits: Limits,
        stop: asyncio.Event | None = None,
        wake: Callable[[], None] | None = None,
        backoff: Backoff | None = None,
        concurrency: int = 1,
    ) -> None:
        self.name = name
        self._concurrency = concurrency
        self._mailbox = mailbox
        self._store = store
        self._processor = processor
        self._metrics = metrics
        self._stop = stop if stop is not None else asyncio.Event()
        self._wake = wake
        self._backoff = backoff if backoff is not None else Backoff()
        self._plan = FolderPlan(
            source=name,
            folder=mailbox.folder,
            processed_folder=mailbox.processed_folder,
            quarantine_folder=mailbox.quarantine_folder,
            batch_size=mailbox.batch_size,
            max_message_bytes=mailbox.max_message_bytes or limits.max_message_bytes,
            leave_unrecognised=mailbox.unrecognised is Unrecognised.LEAVE,
        )
        self._session: ImapSession | None = None
        self._cycle_task: asyncio.Task[CycleSummary] | None = None
        self._lost = False
        self._log = log.bind(mailbox=name)

    @property
    def connected(self) -> bool:
        """Tell whether the polling connection is open and reusable."""
        return self._session is not None and self._session.healthy

    @property
    def backoff(self) -> Backoff:
        """The reconnect backoff of ``poll``; the IDLE watcher keeps its own."""
        return self._backoff

    async def poll(self) -> CycleSummary:
        """Run one cycle and return its summary.

        IMAP, database and configuration errors, the cycle deadline and a
        lost connection do not raise: the summary's state is then failed and
        ``error`` contains the text. A skipped cycle (lock held elsewhere,
        backoff delay not over, stop requested) has its own state.
        """
        if self._stop.is_set():
            return CycleSummary(self.name, CycleState.STOPPED)
        if self._backoff.remaining() > 0:
            return CycleSummary(self.name, CycleState.BACKOFF)

        began = time.monotonic()
        try:
            lock = await self._take_lock()
        except StoreError as exc:
            summary = self._failed(exc, began)
        else:
            try:
                if not lock.won:
                    self._log.info("poll_skipped", reason="consumer_lock_held")
                    return CycleSummary(self.name, CycleState.LOCKED)
                summary = await self._guarded_cycle(began, lock)
            finally:
                # Queued, not awaited: a cancelled poll must not wait for a
                # store thread that a hung database call holds.
                self._store.submit(lock.release)

        succeeded = summary.state is not CycleState.FAILED
        self._metrics.poll_done(
            self.name, time.monotonic() - began, succeeded=succeeded
        )
        if self._stop.is_set():
            await self.close()
        return summary

    async def close(self) -> None:
        """Log out of the polling connection, as a poll does once ``stop`` is set."""
        if self._session is not None:
            await self._session.logout()
            self._session = None

    async def watch(self) -> None:
        """Keep a connection in IDLE and call ``wake`` on new mail until stopped.

        Returns at once when IDLE is disabled for the mailbox, and as soon as
        the server turns out not to offer it.
        """
        if not self._mailbox.idle:
            return
        settings = IdleSettings(
            endpoint=self._endpoint,
            mailbox=self.name,
            folder=self._mailbox.folder,
            renew_seconds=self._mailbox.idle_renew_seconds,
        )
        watcher = IdleWatcher(
            settings,
            password=self._mailbox.read_password,
            wake=self.wake,
            on_failure=self._idle_failed,
        )
        await watcher.run(self._stop)
        if not watcher.supported:
            self._log.warning("idle_unsupported", action="polling only")

    def wake(self) -> None:
        """Tell the scheduler that new mail arrived, and end the poll backoff.

        The IDLE connection that calls this is logged in, so the server is
        back and a poll skipped for backoff would only delay the mail.
        """
        self._backoff.record_success()
        if self._wake is not None:
            self._wake()

    async def _take_lock(self) -> ConsumerLock:
        """Take the consumer lock on the store thread.

        When the poll is cancelled while the store thread takes the lock,
        the lock is released as soon as it has been taken.
        """
        store = self._store
        taking = asyncio.ensure_future(
            store.call(store.take_consumer_lock, self.name, self._mailbox.folder)
        )
        try:
            return await asyncio.shield(taking)
        except asyncio.CancelledError:
            taking.add_done_callback(self._release_taken)
            raise

    def _release_taken(self, taking: asyncio.Future[ConsumerLock]) -> None:
        if not taking.cancelled() and taking.exception() is None:
            self._store.submit(taking.result().release)

    async def _guarded_cycle(self, began: float, lock: ConsumerLock) -> CycleSummary:
        """Run the cycle under its deadline and turn failures into a summary."""
        self._lost = False
        self._cycle_task = asyncio.create_task(self._cycle(began, lock))
        try:
            async with asyncio.timeout(self._mailbox.cycle_timeout_seconds):
                summary = await asyncio.shield(self._cycle_task)
        except TimeoutError:
            self._cycle_task.cancel()
            await _settle(self._cycle_task)
            error = ImapTimeout(
                f"IMAP cycle of mailbox {self.name!r} did not finish within "
                f"{self._mailbox.cycle_timeout_seconds:g} s: raise "
                "cycle_timeout_seconds if the mailbox is large and the server slow",
                mailbox=self.name,
            )
            return self._failed(error, began)
        except asyncio.CancelledError:
            if not self._lost:
                self._cycle_task.cancel()
                raise
            lost = _ConnectionLost(
                f"IMAP server closed the connection of mailbox {self.name!r}",
                mailbox=self.name,
            )
            return self._failed(lost, began)
        except (SourceError, StoreError, ConfigError) as exc:
            return self._failed(exc, began)
        finally:
            self._cycle_task = None
        self._backoff.record_success()
        return summary

    async def _cycle(self, began: float, lock: ConsumerLock) -> CycleSummary:
        await self._store.call(lock.check)
        session = await self._connected()
        folder_pass = FolderPass(
            self._plan,
            self._store,
            self._processor,
            stop=self._stop,
            concurrency=self._concurrency,
            check_lock=lock.check,
            count=self._count,
        )
        start = await folder_pass.start(session)
        if start.confirmed:
            self._log.info(
                "moves_confirmed",
                folder=self._mailbox.folder,
                messages=len(start.confirmed),
                reason="recorded messages left the folder without a MOVE reply",
            )
        self._metrics.backlog.labels(self.name).set(len(start.uids))
        if start.uidvalidity_changed:
            self._metrics.uidvalidity_changes.labels(self.name).inc()
            self._log.warning(
                "uidvalidity_changed",
                folder=self._mailbox.folder,
                uidvalidity=start.uidvalidity,
            )

        outcomes: Counter[str] = Counter()
        async for report in folder_pass.batches(session, start):
            self._report(report)
            outcomes.update(report.outcomes())
        if not self._stop.is_set():
            settled = await folder_pass.settle(start.uidvalidity)
            if settled:
                self._log.info(
                    "moves_confirmed",
                    folder=self._mailbox.folder,
                    messages=len(settled),
                    reason="recorded messages left the folder before its "
                    "UIDVALIDITY changed",
                )
        state = CycleState.STOPPED if self._stop.is_set() else CycleState.DONE
        return CycleSummary(
            self.name,
            state,
            outcomes=dict(outcomes),
            backlog=len(start.uids),
            uidvalidity_changed=start.uidvalidity_changed,
            seconds=time.monotonic() - began,
        )

    async def _connected(self) -> ImapSession:
        """Return the healthy session, or open one and create the folders."""
        if self._session is not None and self._session.healthy:
            return self._session
        session = ImapSession(
            self._endpoint, mailbox=self.name, on_lost=self._connection_lost
        )
        self._session = session
        await session.open(self._mailbox.read_password())
        for folder in (self._mailbox.processed_folder, self._mailbox.quarantine_folder):
            await session.ensure_folder(folder)
        return session

    @property
    def _endpoint(self) -> Endpoint:
        mailbox = self._mailbox
        context = None
        if mailbox.tls is TlsMode.IMPLICIT:
            ca_file = str(mailbox.ca_file) if mailbox.ca_file is not None else None
            context = tls_context(ca_file)
        return Endpoint(
            host=mailbox.host,
            port=mailbox.effective_port,
            username=mailbox.username,
            ssl_context=context,
            timeout=mailbox.timeout_seconds,
        )

    def _idle_failed(self, error: Exception, delay: float, attempt: int) -> None:
        """Log an IDLE failure: a warning for the first of a run, then debug.

        Polls go on without IDLE and report an outage themselves, so the
        retries of one IDLE failure, and any while polls fail too, are
        logged at debug level only.
        """
        quiet = self._backoff.failures or attempt > 1
        level = self._log.debug if quiet else self._log.warning
        level(
            "idle_failed",
            error=str(error),
            attempt=attempt,
            retry_in_seconds=round(delay, 1),
        )

    def _connection_lost(self) -> None:
        """Cancel the running cycle at once instead of waiting for its timers."""
        self._lost = True
        if self._cycle_task is not None and not self._cycle_task.done():
            self._cycle_task.cancel()

    def _count(self, counted: Sequence[Counted]) -> None:
        # Also runs on the store thread; prometheus_client counters are
        # thread-safe.
        for item in counted:
            self._metrics.message(self.name, item.kind, item.outcome)

    def _report(self, report: BatchReport) -> None:
        for message in report.messages:
            result = message.result
            if result.error is not None:
                self._log.warning(
                    "message_not_processed",
                    uid=message.uid,
                    message_id=message.message_id,
                    outcome=result.outcome.value,
                    error=result.error,
                    sha256=result.sha256,
                )
        self._log.info(
            "batch_done",
            uidvalidity=report.uidvalidity,
            messages=len(report.messages),
            moved=dict(report.moved),
            method=report.method.value if report.method is not None else None,
            seconds=round(report.seconds, 3),
            **report.outcomes(),
        )

    def _failed(self, error: Exception, began: float) -> CycleSummary:
        """Drop the connection when it is at fault, back off and log once.

        The scheduler runs the next poll when the backoff delay ends, so
        the logged delay is the one used.
        """
        kind = (
            FailureKind.AUTH
            if isinstance(error, ImapAuthError | ConfigError)
            else (FailureKind.TRANSIENT)
        )
        if isinstance(error, ImapError):
            reason = _reconnect_reason(error)
            self._metrics.reconnect(self.name, reason)
            if self._session is not None:
                self._session.drop()
                self._session = None
        if isinstance(error, ImapAuthError):
            self._metrics.auth_failures.labels(self.name).inc()

        delay = self._backoff.record_failure(kind)
        self._log.error(
            "poll_failed",
            error=str(error),
            attempt=self._backoff.failures,
            retry_in_seconds=round(delay, 1),
        )
        return CycleSummary(
            self.name,
            CycleState.FAILED,
            seconds=time.monotonic() - began,
            error=str(error),
            retry_in_seconds=delay,
        )


def _reconnect_reason(error: ImapError) -> str:
    if isinstance(error, ImapTimeout):
        return "timeout"
    if isinstance(error, _ConnectionLost):
        return "lost"
    return "error"


async def _settle(task: asyncio.Task[CycleSummary]) -> None:
    """Wait for a cancelled task to finish, ignoring how it ended."""
    with contextlib.suppress(BaseException):
        await task
