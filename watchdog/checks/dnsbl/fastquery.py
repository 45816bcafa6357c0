"""Many A and TXT queries in flight over a few UDP sockets, for the common case.

dnspython's Resolver spends about 0.5 ms of CPU per query, which held a
cycle of bench/dnsbl_speed.py under 1,000 queries per second.
``FastResolver`` sends queries itself over connected non-blocking UDP
sockets, read by event-loop readers, and matches replies to waiters by
query ID. A reply
counts only if it comes from the nameserver's address and port (the socket
is connected), carries the ID of a pending query, has QR set and echoes
that query's question. Anything else is dropped and the query keeps
waiting.

Query IDs come from ``secrets`` and source ports from
``random.SystemRandom``. Each try waits ``timeout`` seconds, then the query
is resent with a new ID to the next nameserver until ``lifetime`` runs out,
and ``QueryTimeout`` is raised. A reply that is truncated, malformed,
SERVFAIL, REFUSED or otherwise unusual raises ``wire.Unusual``, so the
caller asks dnspython's Resolver, whose outcome then decides the state.

Concurrency limits (overall and per zone) are the caller's: see ``Lookup``
and ``batch.resolve_many``.

NOTE: source ports are drawn once per event loop (one per cycle), not per
query, so for the length of a cycle the port a forged reply must hit stays
the same.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import secrets
import socket
import struct
from collections.abc import Callable, Sequence

import dns.asyncresolver
import dns.nameserver

from watchdog.checks.dnsbl.wire import (
    Reply,
    Unusual,
    encode_query,
    encode_question,
    parse_reply,
)

SOCKETS_PER_NAMESERVER = 4
# Random source ports are drawn from the range above the well-known ports.
FIRST_PORT = 1024
PORT_TRIES = 16
QUERY_ID_SPACE = 1 << 16
# Pending queries are checked for their deadline this many times per
# ``timeout``, so a try may wait up to a quarter longer than ``timeout``.
# One periodic check costs far less than one timer per query.
SWEEPS_PER_TIMEOUT = 4
IDS_PER_DRAW = 2048
# Replies read from one socket per event-loop wakeup.
DRAIN_LIMIT = 256
# A blocklist reply without EDNS fits in 512 octets; a larger read costs
# nothing and keeps an oversized reply whole so that parsing rejects it.
MAX_REPLY = 4096

_random = random.SystemRandom()


class _QueryIds:
    """Random 16-bit query IDs, drawn from ``secrets`` a block at a time.

    One ``os.urandom`` call per ID would cost a system call per query.
    """

    def __init__(self) -> None:
        self._block: tuple[int, ...] = ()
        self._next = 0

    def draw(self) -> int:
        """Return the next unpredictable ID."""
        if self._next >= len(self._block):
            self._block = _ID_BLOCK.unpack(secrets.token_bytes(_ID_BLOCK.size))
            self._next = 0
        self._next += 1
        return self._block[self._next - 1]


_ID_BLOCK = struct.Struct(f"!{IDS_PER_DRAW}H")


class QueryTimeout(Exception):
    """No matching reply came from any nameserver within the lifetime."""


# Called with the reply of one query, or None when its try timed out.
OnReply = Callable[[bytes | None], None]
# The callback of one pending query, its question, and its deadline
# (event-loop time).
Waiter = tuple[OnReply, bytes, float]


class _Endpoint:
    """One connected UDP socket and the queries waiting for a reply on it.

    The socket is read by an event-loop reader that drains every datagram
    queued on it per wakeup, so a burst of replies costs one callback
    rather than one per datagram as with an asyncio datagram transport.
    """

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self.sock = sock
        self.loop = loop
        self.waiters: dict[int, Waiter] = {}
        self.ids = _QueryIds()
        loop.add_reader(sock.fileno(), self.drain)

    def drain(self) -> None:
        """Read the queued replies, at most ``DRAIN_LIMIT`` per wakeup.

        The limit keeps one busy socket from starving the loop's other
        callbacks; the reader is called again while data is queued.
        """
        recv = self.sock.recv
        for _ in range(DRAIN_LIMIT):
            try:
                data = recv(MAX_REPLY)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # NOTE: an ICMP error (port unreachable) arrives as an error
                # on the next read and cannot be tied to one query on a
                # shared socket, so the queries on it run into their timeout.
                continue
            self.accept(data)

    def accept(self, data: bytes) -> None:
        """Hand ``data`` to the query it answers, or drop it."""
        if len(data) < 12 or not data[2] & 0x80 or data[4:6] != b"\x00\x01":
            return
        query_id = (data[0] << 8) | data[1]
        waiter = self.waiters.get(query_id)
        if waiter is None:
            return
        on_reply, question, _ = waiter
        if data[12 : 12 + len(question)].lower() != question:
            return
        del self.waiters[query_id]
        on_reply(data)

    def expire(self, now: float) -> None:
        """End the wait of every query whose deadline is before ``now``."""
        expired = [key for key, waiter in self.waiters.items() if waiter[2] <= now]
        for key in expired:
            on_reply = self.waiters.pop(key)[0]
            on_reply(None)

    def send(self, question: bytes, deadline: float, on_reply: OnReply) -> int:
        """Send ``question`` under a fresh random ID and return the ID.

        ``on_reply`` is called once: with the matching reply, or with None
        at the first sweep after ``deadline``. A datagram the kernel does
        not take (a full send buffer, or an ICMP error left from an earlier
        datagram) is sent once more, then left to that timeout.
        """
        query_id = self.ids.draw()
        while query_id in self.waiters:
            query_id = self.ids.draw()
        self.waiters[query_id] = (on_reply, question, deadline)
        packet = encode_query(query_id, question)
        for _ in range(2):
            try:
                self.sock.send(packet)
                break
            except OSError:
                continue
        return query_id

    def close(self) -> None:
        """Stop reading and close the socket; waiting queries are dropped.

        Their callbacks are not called, because they may belong to an
        event loop that has already closed.
        """
        if not self.loop.is_closed():
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        self.waiters.clear()


class FastResolver:
    """Send A and TXT queries straight to ``nameservers`` (address, port).

    Sockets belong to the event loop that first used them. Under a new
    loop (one ``asyncio.run`` per cycle) fresh sockets on new random ports
    are opened and the old ones closed.
    """

    def __init__(
        self,
        nameservers: Sequence[tuple[str, int]],
        *,
        timeout: float,
        lifetime: float,
        sockets: int = SOCKETS_PER_NAMESERVER,
    ) -> None:
        if not nameservers:
            msg = "FastResolver needs at least one nameserver address"
            raise ValueError(msg)
        self.nameservers = [(str(ipaddress.ip_address(a)), p) for a, p in nameservers]
        self.timeout = timeout
        self.lifetime = lifetime
        self.sockets = sockets
        self.sent = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._endpoints: list[list[_Endpoint]] = []
        self._sweeping = False

    async def resolve(self, name: str, rdtype: int, default_ttl: float) -> Reply:
        """Return the records of type ``rdtype`` for ``name``.

        Raises QueryTimeout when no nameserver replied within the lifetime,
        and Unusual when the name cannot be encoded or the reply needs the
        full resolver.
        """
        try:
            question = encode_question(name, rdtype)
        except (ValueError, UnicodeError) as exc:
            raise Unusual(str(exc)) from exc
        loop = await self.ready()
        deadline = loop.time() + self.lifetime
        attempt = 0
        while (wait := min(self.timeout, deadline - loop.time())) > 0:
            data = await self._exchange(loop, self.endpoint(attempt), question, wait)
            if data is not None:
                return parse_reply(data, question, rdtype, default_ttl)
            attempt += 1
        raise self.timed_out()

    async def ready(self) -> asyncio.AbstractEventLoop:
        """Open the sockets for the running loop if needed, and return the loop."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self.close()
            self._loop = loop
            self._open(loop)
        return loop

    def endpoint(self, attempt: int) -> _Endpoint:
        """Return the socket for try number ``attempt`` (from 0) of a query.

        Tries go to the nameservers in turn, and the queries to one
        nameserver are spread over its sockets. Counts the query as sent.
        """
        pool = self._endpoints[attempt % len(self._endpoints)]
        self.sent += 1
        if not self._sweeping and self._loop is not None:
            self._schedule_sweep(self._loop)
        return pool[self.sent % len(pool)]

    def timed_out(self) -> QueryTimeout:
        """Return the error for a query that got no reply within the lifetime."""
        msg = f"no reply from {self.nameservers} within {self.lifetime} s"
        return QueryTimeout(msg)

    async def _exchange(
        self,
        loop: asyncio.AbstractEventLoop,
        endpoint: _Endpoint,
        question: bytes,
        wait: float,
    ) -> bytes | None:
        future: asyncio.Future[bytes | None] = loop.create_future()

        def settle(data: bytes | None) -> None:
            if not future.done():
                future.set_result(data)

        query_id = endpoint.send(question, loop.time() + wait, settle)
        try:
            return await future
        finally:
            endpoint.waiters.pop(query_id, None)

    def _open(self, loop: asyncio.AbstractEventLoop) -> None:
        self._endpoints = [
            [_Endpoint(_bound_socket(address, port), loop) for _ in range(self.sockets)]
            for address, port in self.nameservers
        ]

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        # Runs while queries are pending, so an idle daemon schedules nothing.
        self._sweeping = False
        if loop is not self._loop:
            return
        now = loop.time()
        for pool in self._endpoints:
            for endpoint in pool:
                endpoint.expire(now)
        if any(endpoint.waiters for pool in self._endpoints for endpoint in pool):
            self._schedule_sweep(loop)

    def _schedule_sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sweeping = True
        loop.call_later(self.timeout / SWEEPS_PER_TIMEOUT, self._sweep, loop)

    def close(self) -> None:
        """Close every socket. Queries still waiting on them get no reply."""
        for pool in self._endpoints:
            for endpoint in pool:
                endpoint.close()
        self._endpoints = []
        self._loop = None
        self._sweeping = False


def _bound_socket(address: str, port: int) -> socket.socket:
    """Return a UDP socket on a random source port, connected to the server."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    for _ in range(PORT_TRIES):
        try:
            sock.bind(("", _random.randrange(FIRST_PORT, QUERY_ID_SPACE)))
            break
        except OSError:
            continue
    else:
        sock.bind(("", 0))
    sock.connect((address, port))
    return sock


def fast_resolver_for(resolver: dns.asyncresolver.Resolver) -> FastResolver | None:
    """Build a FastResolver on the same nameservers, or None when it cannot.

    Only plain UDP/TCP nameservers given by IP address qualify; with
    DNS-over-HTTPS, TLS or QUIC nameservers the caller keeps dnspython.
    A resolver built with ``configure=True`` already holds the system's
    nameservers from /etc/resolv.conf.
    """
    servers = []
    for nameserver in resolver.nameservers:
        if isinstance(nameserver, dns.nameserver.Do53Nameserver):
            address, port = nameserver.address, nameserver.port
        elif isinstance(nameserver, str):
            address, port = nameserver, resolver.port
        else:
            return None
        try:
            ipaddress.ip_address(address)
        except ValueError:
            return None
        servers.append((address, port))
    if not servers:
        return None
    return FastResolver(servers, timeout=resolver.timeout, lifetime=resolver.lifetime)
