"""Faulty resolvers on 127.0.0.1 over UDP: a blackhole and a slow forwarder.

No real resolver drops every packet or delays every answer on demand, so
these stand in for one. Both count the queries they receive, so that tests
can tell whether a lookup was sent at all.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import dns.exception
import dns.message

_POLL_SECONDS = 0.05
_MAX_DATAGRAM = 65_535


@dataclass
class UdpResolver:
    """A running fake resolver: its port and the queries it received."""

    port: int
    received: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def nameserver(self) -> str:
        """The ``HOST:PORT`` string for ``dns.nameservers`` or ``--nameserver``."""
        return f"127.0.0.1:{self.port}"

    def count(self) -> int:
        """Return how many queries arrived so far."""
        with self.lock:
            return len(self.received)

    def note(self, data: bytes) -> dns.message.Message | None:
        """Record the query name of ``data``; return the parsed query or None."""
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            query = None
        name = query.question[0].name.to_text() if query and query.question else "?"
        with self.lock:
            self.received.append(name)
        return query


# Called with each datagram the socket receives and the client's address.
Handler = Callable[[bytes, tuple[str, int]], None]


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(_POLL_SECONDS)
    return sock


@contextlib.contextmanager
def _serving(
    sock: socket.socket, handle: Handler, stop: threading.Event | None = None
) -> Iterator[None]:
    """Hand every datagram on ``sock`` to ``handle`` from a thread until exit.

    On exit ``stop`` (a new event by default) is set, which ends the thread,
    and ``sock`` is closed.
    """
    stop = stop or threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, client = sock.recvfrom(_MAX_DATAGRAM)
            except TimeoutError:
                continue
            handle(data, client)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2)
        sock.close()


@contextlib.contextmanager
def run_blackhole() -> Iterator[UdpResolver]:
    """Bind a UDP socket on 127.0.0.1 that reads every query and never replies."""
    sock = _bound_socket()
    resolver = UdpResolver(sock.getsockname()[1])
    with _serving(sock, lambda data, _client: resolver.note(data)):
        yield resolver


@contextlib.contextmanager
def run_slow_forwarder(
    upstream_port: int, *, delay: float, drop: frozenset[str] = frozenset()
) -> Iterator[UdpResolver]:
    """Forward UDP queries to ``127.0.0.1:upstream_port`` and reply ``delay`` s late.

    Queries for a name in ``drop`` (absolute, lower case, with the final
    dot) or below it get no reply, as if that zone's nameservers were down.
    """
    sock = _bound_socket()
    resolver = UdpResolver(sock.getsockname()[1])
    stop = threading.Event()

    def answer(data: bytes, client: tuple[str, int]) -> None:
        started = time.monotonic()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as upstream:
            upstream.settimeout(2.0)
            upstream.sendto(data, ("127.0.0.1", upstream_port))
            try:
                reply, _address = upstream.recvfrom(_MAX_DATAGRAM)
            except TimeoutError:
                return
        remaining = delay - (time.monotonic() - started)
        if remaining > 0 and stop.wait(remaining):
            return
        with contextlib.suppress(OSError):
            sock.sendto(reply, client)

    def forward(data: bytes, client: tuple[str, int]) -> None:
        query = resolver.note(data)
        if query is None or not query.question:
            return
        name = query.question[0].name.to_text().lower()
        if any(name == zone or name.endswith("." + zone) for zone in drop):
            return
        worker = threading.Thread(target=answer, args=(data, client), daemon=True)
        worker.start()

    # The delayed answers end early on the event that stops the server.
    with _serving(sock, forward, stop):
        yield resolver


# How ``run_mismatched_replier`` replies: with the query ID plus one, from
# another port than the one queried, or with five zero octets.
MISMATCHES = ("wrong_id", "other_port", "garbage")


@contextlib.contextmanager
def run_mismatched_replier(mismatch: str) -> Iterator[UdpResolver]:
    """Reply to every query with a datagram that does not match it.

    ``mismatch`` is one of ``MISMATCHES``. Such a reply is what a forger
    who cannot see the query sends, so a client must keep waiting.
    """
    sock = _bound_socket()
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))
    resolver = UdpResolver(sock.getsockname()[1])

    def reply_to(query: dns.message.Message) -> tuple[socket.socket, bytes]:
        wire = bytearray(dns.message.make_response(query).to_wire())
        if mismatch == "wrong_id":
            wire[0:2] = ((query.id + 1) & 0xFFFF).to_bytes(2, "big")
            return sock, bytes(wire)
        if mismatch == "other_port":
            return other, bytes(wire)
        return sock, bytes(5)

    def mismatch_reply(data: bytes, client: tuple[str, int]) -> None:
        query = resolver.note(data)
        if query is None:
            return
        sender, wire = reply_to(query)
        with contextlib.suppress(OSError):
            sender.sendto(wire, client)

    with other, _serving(sock, mismatch_reply):
        yield resolver
