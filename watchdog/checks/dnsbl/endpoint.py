"""One connected UDP socket to a nameserver and the queries waiting on it.

An ``Endpoint`` sends a question under a random ID and hands each reply to
the callback of the query it answers. A reply counts only if it comes from
the nameserver's address and port (the socket is connected), carries the
ID of a pending query, has QR set and echoes that query's question.
Anything else is dropped and the query keeps waiting.

Query IDs come from ``secrets`` and source ports from
``random.SystemRandom``. The caller reads the socket: ``fastquery``
registers ``drain`` as an event-loop reader and calls ``expire`` from
time to time.
"""

from __future__ import annotations

import random
import secrets
import socket
import struct
from collections.abc import Callable, Sequence

from watchdog.checks.dnsbl.wire import encode_query

# Random source ports are drawn from the range above the well-known ports.
FIRST_PORT = 1024
PORT_TRIES = 16
QUERY_ID_SPACE = 1 << 16
IDS_PER_DRAW = 2048
# Replies read from one socket per call of ``drain``.
DRAIN_LIMIT = 256
# A blocklist reply without EDNS fits in 512 octets; a larger read costs
# nothing and keeps an oversized reply whole so that parsing rejects it.
MAX_REPLY = 4096
HEADER_SIZE = 12

_random = random.SystemRandom()
_ID_BLOCK = struct.Struct(f"!{IDS_PER_DRAW}H")

# Called with the reply of one query, or None when its try timed out.
OnReply = Callable[[bytes | None], None]
# The callback of one pending query, its question, and its deadline (in
# the time of the caller's clock).
Waiter = tuple[OnReply, bytes, float]


class QueryIds:
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


class QueryTimeout(Exception):
    """No matching reply came from any nameserver within the lifetime."""


class Endpoint:
    """One connected non-blocking UDP socket and its pending queries."""

    def __init__(self, address: str, port: int) -> None:
        self.sock = bound_socket(address, port)
        self.waiters: dict[int, Waiter] = {}
        self.ids = QueryIds()

    def fileno(self) -> int:
        """Return the socket's file descriptor, for a selector or event loop."""
        return self.sock.fileno()

    def send(self, question: bytes, deadline: float, on_reply: OnReply) -> int:
        """Send ``question`` under a fresh random ID and return the ID.

        ``on_reply`` is called once: with the matching reply, or with None
        from the first ``expire`` after ``deadline``. A datagram the kernel
        does not take (a full send buffer, or an ICMP error left from an
        earlier datagram) is sent once more, then left to that timeout.
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

    def drain(self) -> None:
        """Read the queued replies, at most ``DRAIN_LIMIT`` per call.

        A burst of replies costs one call rather than one per datagram. The
        limit keeps one busy socket from starving other work; a readable
        socket is reported again while data is queued.
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
        if len(data) < HEADER_SIZE or not data[2] & 0x80 or data[4:6] != b"\x00\x01":
            return
        query_id = (data[0] << 8) | data[1]
        waiter = self.waiters.get(query_id)
        if waiter is None:
            return
        on_reply, question, _ = waiter
        echoed = data[HEADER_SIZE : HEADER_SIZE + len(question)]
        if echoed != question and echoed.lower() != question:
            return
        del self.waiters[query_id]
        on_reply(data)

    def expire(self, now: float) -> None:
        """End the wait of every query whose deadline is before ``now``."""
        expired = [key for key, waiter in self.waiters.items() if waiter[2] <= now]
        for key in expired:
            on_reply = self.waiters.pop(key)[0]
            on_reply(None)

    def close(self) -> None:
        """Close the socket; waiting queries are dropped without a call.

        Their callbacks may belong to an event loop that has already closed.
        """
        self.sock.close()
        self.waiters.clear()


class EndpointPool:
    """A few endpoints per nameserver, and the choice of one for each try.

    Tries of one query go to the nameservers in turn, and the queries to
    one nameserver are spread over its sockets.
    """

    def __init__(self, nameservers: Sequence[tuple[str, int]], sockets: int) -> None:
        self._turn = 0
        self.nameservers = list(nameservers)
        self.pools = [
            [Endpoint(address, port) for _ in range(sockets)]
            for address, port in nameservers
        ]

    def endpoints(self) -> list[Endpoint]:
        """Return every endpoint of every nameserver."""
        return [endpoint for pool in self.pools for endpoint in pool]

    def endpoint(self, attempt: int) -> Endpoint:
        """Return the endpoint for try number ``attempt`` (from 0) of a query."""
        pool = self.pools[attempt % len(self.pools)]
        self._turn += 1
        return pool[self._turn % len(pool)]

    def expire(self, now: float) -> None:
        """End the wait of every query on any endpoint past its deadline."""
        for endpoint in self.endpoints():
            endpoint.expire(now)

    def pending(self) -> bool:
        """Tell whether any query is still waiting for a reply."""
        return any(endpoint.waiters for endpoint in self.endpoints())

    def close(self) -> None:
        """Close every socket."""
        for endpoint in self.endpoints():
            endpoint.close()


def timed_out(nameservers: Sequence[tuple[str, int]], lifetime: float) -> QueryTimeout:
    """Return the error for a query no nameserver answered within ``lifetime``."""
    return QueryTimeout(f"no reply from {list(nameservers)} within {lifetime} s")


def bound_socket(address: str, port: int) -> socket.socket:
    """Return a non-blocking UDP socket on a random source port, connected."""
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
