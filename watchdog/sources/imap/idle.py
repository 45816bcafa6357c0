"""IDLE as a wake-up hint: a second connection that waits for new mail.

The watcher never processes mail. It calls ``wake`` when the server
announces new messages, and the mailbox poll then does the work, so mail is
still processed on schedule when IDLE fails or the server lacks it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from watchdog.errors import ConfigError, ImapAuthError, SourceError
from watchdog.sources.backoff import Backoff, FailureKind
from watchdog.sources.imap.session import Endpoint, ImapSession


@dataclass(frozen=True, slots=True)
class IdleSettings:
    """The connection and timing of one IDLE watcher."""

    endpoint: Endpoint
    mailbox: str
    folder: str
    renew_seconds: float


class IdleWatcher:
    """Hold IDLE on ``settings.folder`` and call ``wake`` for each new arrival.

    IDLE is re-issued every ``renew_seconds``. A failed connection is dropped
    and re-opened after the backoff delay. ``on_failure`` receives the error,
    that delay and the number of consecutive failures, so the caller can log
    it. The watcher returns when
    ``stop`` is set, or at once when the server does not offer IDLE.
    """

    def __init__(
        self,
        settings: IdleSettings,
        *,
        password: Callable[[], str],
        wake: Callable[[], None],
        on_failure: Callable[[Exception, float, int], None],
        backoff: Backoff | None = None,
    ) -> None:
        self._settings = settings
        self._password = password
        self._wake = wake
        self._on_failure = on_failure
        self._backoff = backoff if backoff is not None else Backoff()
        self.supported = True

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until ``stop`` is set or the server turns out to lack IDLE."""
        while not stop.is_set() and self.supported:
            await _sleep_unless(stop, self._backoff.remaining())
            if stop.is_set():
                return
            session = ImapSession(
                self._settings.endpoint, mailbox=self._settings.mailbox
            )
            try:
                await _until_stopped(stop, self._watch(session))
            except (SourceError, ConfigError) as exc:
                kind = (
                    FailureKind.AUTH
                    if isinstance(exc, ImapAuthError | ConfigError)
                    else FailureKind.TRANSIENT
                )
                delay = self._backoff.record_failure(kind)
                self._on_failure(exc, delay, self._backoff.failures)
            finally:
                await _close(session)

    async def _watch(self, session: ImapSession) -> None:
        await session.open(self._password())
        if "IDLE" not in session.capabilities:
            self.supported = False
            return
        selected = await session.select(self._settings.folder)
        self._backoff.record_success()
        if selected.exists:
            # Mail that arrived while this connection was down gets no push.
            self._wake()
        while True:
            if await session.idle_wait(self._settings.renew_seconds):
                self._wake()


async def _until_stopped(stop: asyncio.Event, work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` until it ends or ``stop`` is set, whichever is first."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not task.done():
            task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _close(session: ImapSession) -> None:
    """Log out when the session is still usable, else just close the socket."""
    if session.healthy:
        with contextlib.suppress(SourceError, asyncio.CancelledError):
            await asyncio.wait_for(session.logout(), 5.0)
    session.drop()
