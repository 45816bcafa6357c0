"""The daemon: wire the store, classifier pool, sources, scheduler and HTTP.

``run_daemon`` returns after SIGTERM or SIGINT. Shutdown stops scheduling
and lets each mailbox worker finish the COMMIT and MOVE of the message in
hand. It then logs out and closes the pool and the store. Running polls get
``POLL_BUDGET`` seconds and each later step ``STEP_BUDGET``, which keeps the
whole shutdown near 8 s, inside Docker's default 10 s grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import FrameType

import structlog
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from watchdog import __version__
from watchdog.classify.worker import ClassifierPool
from watchdog.config import LocalSource, Settings
from watchdog.errors import ConfigError
from watchdog.http import HttpServer, create_app
from watchdog.jobs.checks import audit_poll, blocklist_poll, suppression_gauge_poll
from watchdog.jobs.local import process_path
from watchdog.jobs.mailbox import MailboxWorker
from watchdog.jobs.mta_log import (
    POLL_DEADLINE_SECONDS,
    SOURCE_NAME,
    LogLock,
    MtaLogSource,
)
from watchdog.jobs.scheduler import Scheduler
from watchdog.metrics import Metrics
from watchdog.pipeline import Outcome, Processor, Result
from watchdog.preflight import check_data
from watchdog.providers import default_provider_map
from watchdog.sources.local import LocalMessage
from watchdog.store import Store
from watchdog.store.mta_log_state import MtaLogState

# Seconds running polls get after the signal before they are cancelled.
POLL_BUDGET = 5.0
# Seconds for each later step: IDLE watchers, logouts, the HTTP listener.
STEP_BUDGET = 1.0
# Seconds after the first signal at which a shutdown still running is cut
# short with exit code 1, before Docker's SIGKILL at 10 s.
SHUTDOWN_DEADLINE = 9.0
# Job names of the scheduled checks; mailbox and local source names must differ.
CHECK_BLOCKLISTS = "check-blocklists"
CHECK_AUDIT = "check-audit"
SUPPRESSION_GAUGE = "suppression-gauge"
SUPPRESSION_GAUGE_INTERVAL = 60.0
# A digest no message has, so looking it up only proves the database responds.
_PROBE_DIGEST = "0" * 64

log = structlog.get_logger("watchdog.daemon")


@dataclass(frozen=True, slots=True)
class _Parts:
    store: Store
    pool: ClassifierPool
    scheduler: Scheduler
    workers: dict[str, MailboxWorker]
    http: HttpServer | None
    mta_log: MtaLogSource | None = None


async def run_daemon(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set or SIGTERM or SIGINT arrives.

    Raises ConfigError when a mailbox and a local source share a name,
    StoreError when the database cannot be opened or migrated, ClassifyFailed
    when the classifier workers cannot start, and OSError when the HTTP
    address cannot be bound. Nothing is left running then.
    """
    # Handlers first, so a SIGTERM during the checks below still stops cleanly.
    stop = stop if stop is not None else asyncio.Event()
    signals = _Signals(stop)
    started = time.monotonic()
    try:
        _check_source_names(settings)
        check_data(settings)
        store = Store(
            settings.database.url,
            busy_timeout=settings.database.busy_timeout_seconds,
        )
    except BaseException:
        signals.restore()
        raise
    metrics = Metrics()
    try:
        store.upgrade()
        store.check()
        parts = await _start(settings, store, metrics, stop)
    except BaseException:
        store.close()
        signals.restore()
        raise
    _log_started(settings, parts, started)

    watchers = [
        asyncio.create_task(worker.watch(), name=f"idle {name}")
        for name, worker in parts.workers.items()
    ]
    await stop.wait()
    received = signals.received
    log.info("daemon_stopping", signal=received[0] if received else None)
    stopping = time.monotonic()
    await _shutdown(parts, watchers)
    signals.restore()
    log.info("daemon_stopped", shutdown_seconds=round(time.monotonic() - stopping, 3))


def _check_source_names(settings: Settings) -> None:
    for name in [*settings.mailboxes, *settings.local]:
        if name in (CHECK_BLOCKLISTS, CHECK_AUDIT, SUPPRESSION_GAUGE, SOURCE_NAME):
            msg = f"source name {name!r} is reserved for a scheduled check: rename it"
            raise ConfigError(msg, key=name)
    for name in settings.local:
        if name in settings.mailboxes:
            msg = (
                f"source name {name!r} is used by [mailboxes.{name}] and "
                f"[local.{name}]: rename one, because metrics and logs use the name"
            )
            raise ConfigError(msg, key=f"local.{name}")


async def _start(
    settings: Settings, store: Store, metrics: Metrics, stop: asyncio.Event
) -> _Parts:
    pool = ClassifierPool(
        settings.limits,
        size=settings.limits.workers,
        metrics=metrics,
        rules_dir=settings.rules_dir,
    )
    await pool.start()
    processor = Processor(store, pool, settings, metrics=metrics)
    scheduler = Scheduler(metrics)
    workers: dict[str, MailboxWorker] = {}
    for name, mailbox in settings.mailboxes.items():
        worker = MailboxWorker(
            name,
            mailbox,
            store=store,
            processor=processor,
            metrics=metrics,
            limits=settings.limits,
            stop=stop,
            wake=functools.partial(scheduler.wake, name),
            concurrency=pool.size,
        )
        workers[name] = worker
        scheduler.add_mailbox(
            name,
            worker.poll,
            interval=mailbox.poll_interval_seconds,
            cycle_timeout=mailbox.cycle_timeout_seconds,
        )
    for name, local in settings.local.items():
        poll = _local_poll(processor, metrics, settings, name, local)
        scheduler.add(name, poll, interval=local.poll_interval_seconds, deadline=None)
    mta_log = _add_mta_log(settings, store, metrics, scheduler, stop)
    _add_checks(settings, store, metrics, scheduler)

    http = None
    if settings.http.enabled:
        app = create_app(metrics, scheduler, functools.partial(_probe, store))
        http = HttpServer(app, settings.http.host, settings.http.port)
        try:
            await http.start()
        except OSError:
            await pool.close()
            raise
    scheduler.start()
    return _Parts(store, pool, scheduler, workers, http, mta_log)


def _add_mta_log(
    settings: Settings,
    store: Store,
    metrics: Metrics,
    scheduler: Scheduler,
    stop: asyncio.Event,
) -> MtaLogSource | None:
    """Schedule the MTA log reader when ``mta_log.enabled`` is set."""
    if not settings.mta_log.enabled:
        return None
    source = MtaLogSource(
        settings.mta_log,
        MtaLogState.of(store),
        metrics,
        default_provider_map(settings.rules_dir),
        wake=functools.partial(scheduler.wake, SOURCE_NAME),
        stop=stop,
        lock=LogLock(store, settings.mta_log.key),
    )
    scheduler.add(
        SOURCE_NAME,
        source.poll,
        interval=settings.mta_log.poll_interval_seconds,
        deadline=POLL_DEADLINE_SECONDS,
    )
    return source


def _add_checks(
    settings: Settings, store: Store, metrics: Metrics, scheduler: Scheduler
) -> None:
    """Schedule the reputation checks and the suppression gauge.

    The blocklist checks run when ``[sending]`` names IPs or domains or
    ``blocklists.link_domains`` names domains; the audit needs ``[sending]``.
    """
    sending = settings.sending
    if sending.ips or sending.domains or settings.blocklists.link_domains:
        scheduler.add(
            CHECK_BLOCKLISTS,
            blocklist_poll(settings, store, metrics),
            interval=settings.blocklists.interval_seconds,
            deadline=settings.blocklists.interval_seconds,
            background=True,
        )
    if sending.ips or sending.domains:
        scheduler.add(
            CHECK_AUDIT,
            audit_poll(settings, metrics, store),
            interval=settings.audit.interval_seconds,
            deadline=settings.audit.interval_seconds,
            background=True,
        )
    scheduler.add(
        SUPPRESSION_GAUGE,
        suppression_gauge_poll(store, metrics),
        interval=SUPPRESSION_GAUGE_INTERVAL,
        deadline=SUPPRESSION_GAUGE_INTERVAL,
        background=True,
    )


def _local_poll(
    processor: Processor,
    metrics: Metrics,
    settings: Settings,
    name: str,
    local: LocalSource,
) -> Callable[[], Awaitable[None]]:
    async def poll() -> None:
        new = 0

        def count(message: LocalMessage, result: Result) -> None:
            nonlocal new
            # Every poll reads every file again, so duplicates are not news.
            # A failed message is retried and counted once it is final.
            if result.outcome not in (Outcome.DUPLICATE, Outcome.FAILED):
                new += 1
                metrics.message(name, result.kind.value, result.outcome.value)
            if result.error is not None:
                log.warning(
                    "message_not_processed",
                    source=name,
                    path=message.key,
                    outcome=result.outcome.value,
                    error=result.error,
                    sha256=result.sha256,
                )

        total = await process_path(
            processor,
            name,
            local.path,
            fmt=local.format,
            max_bytes=settings.limits.max_message_bytes,
            on_result=count,
        )
        log.info("local_poll_done", source=name, messages=total, new=new)

    return poll


async def _probe(store: Store) -> None:
    # Runs on the store thread behind any call in progress, so a database
    # call that hangs makes the probe time out rather than block the loop.
    await store.call(store.is_recorded, _PROBE_DIGEST)


class _Signals:
    """SIGTERM and SIGINT handlers that set ``stop`` and arm a shutdown deadline.

    They are plain ``signal`` handlers, not the event loop's, because a
    synchronous database call that never returns (PostgreSQL behind a
    firewall that drops the flow) blocks the loop. Python still runs these
    handlers then, and the first signal starts a timer that calls
    ``_force_exit`` unless ``restore`` cancels it first.
    """

    def __init__(self, stop: asyncio.Event) -> None:
        self.received: list[str] = []
        self._stop = stop
        self._loop = asyncio.get_running_loop()
        self._timer: threading.Timer | None = None
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)

    def restore(self) -> None:
        """Put back the default handlers and cancel the deadline timer."""
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if self._timer is not None:
            self._timer.cancel()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del frame
        name = signal.Signals(signum).name
        if self._timer is None:
            self._timer = threading.Timer(SHUTDOWN_DEADLINE, _force_exit, [name])
            self._timer.daemon = True
            self._timer.start()
        self.received.append(name)
        self._loop.call_soon_threadsafe(self._stop.set)


def _force_exit(signal_name: str) -> None:
    """End the process when shutdown has not finished in time; exit code 1."""
    log.error(
        "shutdown_timed_out",
        signal=signal_name,
        deadline_seconds=SHUTDOWN_DEADLINE,
        hint="a database or IMAP call did not return; uncommitted messages "
        "stay in the source folder and are processed after the restart",
    )
    sys.stderr.flush()
    os._exit(1)


async def _shutdown(parts: _Parts, watchers: list[asyncio.Task[None]]) -> None:
    cancelled = await parts.scheduler.stop(budget=POLL_BUDGET)
    if cancelled:
        log.warning("polls_cancelled", sources=cancelled, budget_seconds=POLL_BUDGET)
    await _finish(watchers)
    if parts.mta_log is not None:
        parts.mta_log.stop()
    logouts = [_bounded(worker.close()) for worker in parts.workers.values()]
    await asyncio.gather(*logouts)
    if parts.http is not None:
        await _bounded(parts.http.stop())
    await parts.pool.close()
    parts.store.close()


async def _finish(tasks: list[asyncio.Task[None]]) -> None:
    """Give ``tasks`` one step of the budget to end, then cancel them."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=STEP_BUDGET)
    for task in pending:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*tasks, return_exceptions=True)


async def _bounded(step: Awaitable[None]) -> None:
    """Await one shutdown step for at most STEP_BUDGET seconds, logging failures."""
    try:
        async with asyncio.timeout(STEP_BUDGET):
            await step
    except Exception as exc:  # shutdown goes on whatever one step does
        log.warning("shutdown_step_failed", error=f"{type(exc).__name__}: {exc}")


def _log_started(settings: Settings, parts: _Parts, started: float) -> None:
    listen = None
    if parts.http is not None:
        listen = f"{settings.http.host}:{parts.http.port}"
    log.info(
        "daemon_started",
        version=__version__,
        mailboxes=sorted(settings.mailboxes),
        local=sorted(settings.local),
        mta_log=str(settings.mta_log.path) if settings.mta_log.enabled else None,
        database=safe_database_url(settings.database.url),
        http=listen,
        classifier_workers=parts.pool.size,
        startup_seconds=round(time.monotonic() - started, 3),
    )


def safe_database_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        # SQLAlchemy 2.1 raises ValueError for a malformed host, such as an
        # unclosed IPv6 bracket; the part after the last "@" has no password.
        return url.rsplit("@", maxsplit=1)[-1]
