"""One IMAP connection behind a small interface of our own.

``ImapSession`` wraps an aioimaplib 2.0.3 client and exposes only the
commands the mailbox cycle needs, each in its UID form and each under its own
deadline. aioimaplib's per-command ``timeout`` is an inactivity timer that a
server dripping bytes never trips, and its move, copy, store and expunge
have none at all, so every await here runs inside ``asyncio.timeout``.

After any timeout, ``Abort``, cancellation or lost connection the session is
unusable (aioimaplib may then pair tagged responses with the wrong command)
and ``healthy`` turns false: drop it and open a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import aioimaplib

from watchdog.errors import ImapAuthError, ImapError, ImapTimeout, MailboxMissing
from watchdog.sources.imap.fetch import FetchItem, parse_fetch
from watchdog.sources.imap.names import quote, wire_name
from watchdog.sources.imap.responses import (
    Selected,
    announces_mail,
    completion_text,
    drain_pushes,
    parse_select,
)
from watchdog.sources.imap.uidset import format_uid_set

T = TypeVar("T")

_KEEPALIVE_OPTIONS = (
    ("TCP_KEEPIDLE", 60),
    ("TCP_KEEPINTVL", 20),
    ("TCP_KEEPCNT", 3),
)
# aioimaplib's wrapper exceptions plus what the transport raises underneath.
_LIBRARY_ERRORS = (aioimaplib.AioImapException, OSError, EOFError)


class MoveMethod(StrEnum):
    """Method used to take messages out of the source folder."""

    MOVE = "move"
    COPY_EXPUNGE = "copy_expunge"
    FLAGGED = "flagged"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Server address, credentials and TLS; ``ssl_context`` None means plaintext."""

    host: str
    port: int
    username: str
    ssl_context: ssl.SSLContext | None
    timeout: float


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Build the client TLS context: system or given CA, TLS 1.2 at least."""
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class ImapSession:
    """An authenticated IMAP connection used by one task at a time.

    Every method raises ImapTimeout when its deadline expires, ImapError when
    the server returns NO or BAD or the connection fails, and leaves
    ``healthy`` false in both cases.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        mailbox: str,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._mailbox = mailbox
        self._on_lost = on_lost
        self._client: Any = None
        self._healthy = False
        self.capabilities: frozenset[str] = frozenset()

    @property
    def healthy(self) -> bool:
        """Tell whether the connection is open and in a known state."""
        return self._healthy and self._client is not None

    async def open(self, password: str) -> None:
        """Connect, authenticate and read the capabilities offered after login.

        Raises ImapAuthError when the server rejects the credentials, except
        for ``[UNAVAILABLE]``, which is transient and raises ImapError.
        """
        endpoint = self._endpoint
        self._client = aioimaplib.IMAP4(
            host=endpoint.host,
            port=endpoint.port,
            timeout=endpoint.timeout,
            ssl_context=endpoint.ssl_context,
            conn_lost_cb=self._connection_lost,
        )
        self._healthy = True
        await self._call("connect", self._client.wait_hello_from_server())
        self._enable_keepalive()

        response = await self._call(
            "LOGIN", self._client.login(quote(endpoint.username), password)
        )
        if response.result != "OK":
            raise self._login_error(response)
        # Capabilities from the greeting lack MOVE and UIDPLUS on Dovecot, and
        # login() merges new ones only when its OK line carries them.
        await self._call("CAPABILITY", self._client.protocol.capability())
        self.capabilities = frozenset(self._client.protocol.capabilities)

    async def ensure_folder(self, folder: str) -> None:
        """Create ``folder`` unless it exists already."""
        response = await self._call("CREATE", self._client.create(wire_name(folder)))
        if response.result != "OK" and b"[ALREADYEXISTS]" not in completion_text(
            response
        ):
            raise self._failed("CREATE", folder, response)

    async def select(self, folder: str) -> Selected:
        """Select ``folder`` read-write; return its UIDVALIDITY and EXISTS.

        Raises MailboxMissing when the folder does not exist.
        """
        response = await self._call("SELECT", self._client.select(wire_name(folder)))
        if response.result != "OK":
            self._healthy = False
            if b"[NONEXISTENT]" in completion_text(
                response
            ) or b"exist" in completion_text(response):
                msg = (
                    f"IMAP folder {folder!r} of mailbox {self._mailbox!r} not found: "
                    "create it or fix the folder setting"
                )
                raise MailboxMissing(msg, mailbox=self._mailbox)
            raise self._failed("SELECT", folder, response)
        return parse_select(response.lines, folder, self._mailbox)

    async def search_uids(self) -> list[int]:
        """Return every UID in the selected folder, ascending."""
        response = await self._call(
            "UID SEARCH", self._client.uid_search("ALL", charset=None)
        )
        if response.result != "OK":
            raise self._failed("UID SEARCH", "ALL", response)
        return _search_uids(response.lines)

    async def fetch_sizes(self, uids: Sequence[int]) -> dict[int, int]:
        """Return RFC822.SIZE by UID for the requested UIDs that still exist."""
        sizes: dict[int, int] = {}
        for uid, item in (await self.fetch_info(uids)).items():
            if item.size is not None:
                sizes[uid] = item.size
        return sizes

    async def fetch_info(self, uids: Sequence[int]) -> dict[int, FetchItem]:
        """Return the size and INTERNALDATE by UID for the UIDs that still exist.

        Every returned item has a size; ``internal_date`` is None when the
        server sent none that parses.
        """
        items = await self._fetch(uids, "(UID RFC822.SIZE INTERNALDATE)")
        return {i.uid: i for i in items if i.uid is not None and i.size is not None}

    async def fetch_bodies(self, uids: Sequence[int]) -> dict[int, bytes]:
        """Return the raw bytes by UID, without setting ``\\Seen``."""
        items = await self._fetch(uids, "(UID BODY.PEEK[])")
        return {
            i.uid: i.body for i in items if i.uid is not None and i.body is not None
        }

    @property
    def can_move(self) -> bool:
        """Tell whether ``move`` takes messages out of the folder.

        False when the server offers neither MOVE nor UIDPLUS, so ``move``
        only flags the messages.
        """
        return bool({"MOVE", "UIDPLUS"} & self.capabilities)

    async def move(self, uids: Sequence[int], target: str) -> MoveMethod:
        """Take ``uids`` out of the selected folder into ``target``.

        Uses UID MOVE when offered. Without MOVE but with UIDPLUS it sends UID
        COPY, UID STORE \\Deleted and UID EXPUNGE of exactly these UIDs.
        With neither it only flags them ``\\Flagged`` and leaves them. A
        missing ``target`` (``[TRYCREATE]``) is created and the command
        retried once.
        """
        if not uids:
            return MoveMethod.MOVE
        if "MOVE" in self.capabilities:
            await self._with_trycreate("UID MOVE", target, uids, self._uid_move)
            return MoveMethod.MOVE
        uid_set = format_uid_set(uids)
        if "UIDPLUS" in self.capabilities:
            await self._with_trycreate("UID COPY", target, uids, self._uid_copy)
            await self._uid_command("store", uid_set, "+FLAGS.SILENT", r"(\Deleted)")
            await self._uid_command("expunge", uid_set)
            return MoveMethod.COPY_EXPUNGE
        await self._uid_command("store", uid_set, "+FLAGS.SILENT", r"(\Flagged)")
        return MoveMethod.FLAGGED

    async def idle_wait(self, renew_seconds: float) -> bool:
        """Wait in IDLE until new mail arrives or ``renew_seconds`` pass.

        Returns True when the server announced new messages (``EXISTS``),
        including announcements that arrived while IDLE was being ended or
        between two IDLE commands. IDLE is always ended with DONE and its
        command awaited, so the session can be reused afterwards.
        """
        queue = self._client.protocol.idle_queue
        if announces_mail(drain_pushes(queue)):
            return True
        idle_task = await self._call(
            "IDLE", self._client.idle_start(timeout=renew_seconds)
        )
        try:
            arrived = await self._wait_pushes(renew_seconds)
        finally:
            if self.healthy:
                self._client.idle_done()
                await self._call("DONE", idle_task)
        return arrived or announces_mail(drain_pushes(queue))

    async def _wait_pushes(self, renew_seconds: float) -> bool:
        # aioimaplib queues STOP_WAIT_SERVER_PUSH after renew_seconds; the
        # grace beyond it catches a server or loop that never delivers it.
        grace = self._endpoint.timeout
        while True:
            lines = await self._call(
                "IDLE push",
                self._client.wait_server_push(timeout=renew_seconds + grace),
                seconds=renew_seconds + 2 * grace,
            )
            if not self.healthy:
                mailbox = self._mailbox
                msg = f"IMAP server closed the IDLE connection of mailbox {mailbox!r}"
                raise ImapError(msg, mailbox=self._mailbox)
            if lines == aioimaplib.STOP_WAIT_SERVER_PUSH:
                return False
            if announces_mail(lines):
                return True

    async def logout(self) -> None:
        """Send LOGOUT and close; errors are ignored because the session ends."""
        if self.healthy:
            with contextlib.suppress(ImapError):
                await self._call("LOGOUT", self._client.logout())
        self.drop()

    def drop(self) -> None:
        """Close the socket at once without LOGOUT; the session is unusable."""
        self._healthy = False
        client, self._client = self._client, None
        transport = getattr(getattr(client, "protocol", None), "transport", None)
        if transport is not None:
            transport.close()

    async def _fetch(self, uids: Sequence[int], parts: str) -> list[FetchItem]:
        if not uids:
            return []
        requested = set(uids)
        uid_set = format_uid_set(uids)
        response = await self._uid_command("fetch", uid_set, parts)
        # Items for UIDs we did not request are flag updates of other clients.
        return [i for i in parse_fetch(response.lines) if i.uid in requested]

    async def _uid_move(self, uid_set: str, target: str) -> Any:
        return await self._uid_command("move", uid_set, wire_name(target), check=False)

    async def _uid_copy(self, uid_set: str, target: str) -> Any:
        return await self._uid_command("copy", uid_set, wire_name(target), check=False)

    async def _with_trycreate(
        self,
        name: str,
        target: str,
        uids: Sequence[int],
        command: Callable[[str, str], Awaitable[Any]],
    ) -> None:
        uid_set = format_uid_set(uids)
        response = await command(uid_set, target)
        if response.result != "OK" and b"[TRYCREATE]" in completion_text(response):
            await self.ensure_folder(target)
            response = await command(uid_set, target)
        if response.result != "OK" and b"[EXPUNGEISSUED]" in completion_text(response):
            # Another client expunged some of these messages. Dovecot 2.3.19
            # then rejects the whole command and moves none of them, so retry
            # once with the messages that are still there.
            remaining = await self._existing(uid_set)
            if not remaining:
                return
            uid_set = format_uid_set(remaining)
            response = await command(uid_set, target)
        if response.result != "OK":
            raise self._failed(name, f"{uid_set} -> {target}", response)

    async def _existing(self, uid_set: str) -> list[int]:
        """Return the UIDs of ``uid_set`` still in the selected folder."""
        response = await self._call(
            "UID SEARCH", self._client.uid_search("UID", uid_set, charset=None)
        )
        if response.result != "OK":
            raise self._failed("UID SEARCH", f"UID {uid_set}", response)
        return _search_uids(response.lines)

    async def _uid_command(self, verb: str, *args: str, check: bool = True) -> Any:
        name = f"UID {verb.upper()}"
        response = await self._call(name, self._client.uid(verb, *args))
        if check and response.result != "OK":
            raise self._failed(name, args[0], response)
        return response

    async def _call(
        self, name: str, awaitable: Awaitable[T], *, seconds: float | None = None
    ) -> T:
        """Await one step under a deadline and translate library failures."""
        if not self.healthy:
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            msg = f"IMAP connection of mailbox {self._mailbox!r} is closed: reconnect"
            raise ImapError(msg, mailbox=self._mailbox)
        limit = self._endpoint.timeout if seconds is None else seconds
        try:
            async with asyncio.timeout(limit):
                return await awaitable
        except asyncio.CancelledError:
            # The command may still be pending inside aioimaplib, and a later
            # command would wait behind it: the connection must not be reused.
            self._healthy = False
            raise
        except (TimeoutError, aioimaplib.CommandTimeout) as exc:
            self._healthy = False
            msg = (
                f"IMAP {name} on mailbox {self._mailbox!r} timed out after "
                f"{limit:g} s: the server or network stalled; raise "
                "timeout_seconds if the server is slow"
            )
            raise ImapTimeout(msg, mailbox=self._mailbox) from exc
        except _LIBRARY_ERRORS as exc:
            self._healthy = False
            reason = describe_error(exc, self._endpoint)
            msg = f"IMAP {name} on mailbox {self._mailbox!r} failed: {reason}"
            raise ImapError(msg, mailbox=self._mailbox) from exc

    def _connection_lost(self, exc: Exception | None) -> None:
        del exc
        was_healthy = self._healthy
        self._healthy = False
        if self._client is not None:
            # Wake a wait in IDLE, which would otherwise go on until
            # renew_seconds pass, with no push ever coming.
            self._client.protocol.idle_queue.put_nowait([])
        if was_healthy and self._on_lost is not None:
            self._on_lost()

    def _enable_keepalive(self) -> None:
        """Turn on TCP keepalive so a silently dropped peer is noticed."""
        transport = self._client.protocol.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is None:
            return
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in _KEEPALIVE_OPTIONS:
            if hasattr(socket, option):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)

    def _login_error(self, response: Any) -> ImapError:
        self._healthy = False
        text = completion_text(response).decode("utf-8", "replace")
        user = self._endpoint.username
        if "[UNAVAILABLE]" in text:
            msg = (
                f"IMAP login of {user!r} on mailbox {self._mailbox!r} is "
                f"temporarily unavailable: {text}"
            )
            return ImapError(msg, mailbox=self._mailbox)
        msg = (
            f"IMAP login of {user!r} on mailbox {self._mailbox!r} was rejected "
            f"({text}): check username and password or password_file"
        )
        return ImapAuthError(msg, mailbox=self._mailbox)

    def _failed(self, name: str, argument: str, response: Any) -> ImapError:
        text = completion_text(response).decode("utf-8", "replace")
        msg = (
            f"IMAP {name} {argument!r} on mailbox {self._mailbox!r} failed: "
            f"{response.result} {text}"
        )
        return ImapError(msg, mailbox=self._mailbox)


def describe_error(exc: BaseException, endpoint: Endpoint) -> str:
    """Return a connection or library error as a sentence naming the server.

    ``ConnectionRefusedError(111, ...)`` becomes ``connection to HOST:PORT
    refused``, and a failed certificate check keeps OpenSSL's reason.
    """
    where = f"{endpoint.host}:{endpoint.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or "verification failed"
        return f"TLS certificate of {where} not trusted: {reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake with {where} failed: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection to {where} refused"
    if isinstance(exc, ConnectionResetError):
        return f"connection to {where} reset by the server"
    if isinstance(exc, ConnectionAbortedError | BrokenPipeError | EOFError):
        return f"connection to {where} closed by the server"
    if isinstance(exc, socket.gaierror):
        return f"host name {endpoint.host!r} not resolved: {exc.strerror}"
    if isinstance(exc, OSError):
        detail = exc.strerror or str(exc) or type(exc).__name__
        return f"connection to {where} failed: {detail}"
    text = str(exc).strip()
    return text or f"{type(exc).__name__} from aioimaplib"


def _search_uids(lines: Sequence[bytes]) -> list[int]:
    """Return the UIDs of a UID SEARCH response's untagged lines, ascending."""
    uids: set[int] = set()
    for line in lines[:-1]:
        tokens = bytes(line).split()
        if all(token.isdigit() for token in tokens):
            uids.update(int(token) for token in tokens)
    return sorted(uids)
