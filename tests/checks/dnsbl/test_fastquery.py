"""The fast query path against rbldnsd, unbound, nsd and a lying UDP server.

Where a test must show that the fast path alone returned the records, the
Lookup's dnspython resolver points at a port where nothing listens, so a
fallback would time out instead of returning the same records.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

import dns.nameserver
import pytest

from tests.checks.dnsbl.conftest import DnsServers
from tests.servers.common import free_port
from tests.servers.nsd import run_nsd, zone_text
from watchdog.checks.dnsbl.answer import State, interpret
from watchdog.checks.dnsbl.catalogue import Zone
from watchdog.checks.dnsbl.fastquery import (
    FastResolver,
    QueryTimeout,
    fast_resolver_for,
)
from watchdog.checks.dnsbl.lookup import MAX_REASON_CHARS, Lookup
from watchdog.checks.dnsbl.wire import TYPE_A, TYPE_TXT, Unusual
from watchdog.checks.resolver import make_resolver, parse_nameserver
from watchdog.config import Dns
from watchdog.errors import DnsError

pytestmark = pytest.mark.dns


def _fast(nameserver: str, *, lifetime: float = 2.0) -> FastResolver:
    return FastResolver([parse_nameserver(nameserver)], timeout=0.5, lifetime=lifetime)


def _lookup(fast: FastResolver, fallback: str, *, lifetime: float = 2.0) -> Lookup:
    settings = Dns(
        nameservers=[fallback], timeout_seconds=0.5, lifetime_seconds=lifetime
    )
    return Lookup(
        make_resolver(settings), concurrency=8, per_zone=4, retries=0, fast=fast
    )


def _dead() -> str:
    return f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}"


async def test_listed_several_codes(dns_servers: DnsServers) -> None:
    """Both ZEN codes and both TXT reasons come from the fast path alone."""
    fast = _fast(dns_servers.unbound.nameserver)
    records = await _lookup(fast, _dead()).records("10.2.0.192.zen.test", "zen.test")

    assert records.addresses == ("127.0.0.2", "127.0.0.4")
    assert "Listed in SBL: 192.0.2.10" in records.reason
    assert "Listed in XBL: 192.0.2.10" in records.reason
    assert fast.sent == 2


async def test_nxdomain_negative_ttl(dns_servers: DnsServers) -> None:
    """NXDOMAIN is absent, cached for the SOA minimum (120 s in the test zone)."""
    fast = _fast(f"127.0.0.1:{dns_servers.rbldnsd.port}")
    reply = await fast.resolve("99.2.0.192.zen.test", TYPE_A, 60.0)

    assert reply.negative
    assert reply.records == ()
    assert reply.ttl == 120


async def test_nodata_is_negative(dns_servers: DnsServers) -> None:
    """NOERROR without a TXT record (the zone apex) is negative too."""
    fast = _fast(f"127.0.0.1:{dns_servers.rbldnsd.port}")
    reply = await fast.resolve("zen.test", TYPE_TXT, 60.0)

    assert reply.negative
    assert reply.records == ()


@pytest.mark.parametrize(
    ("name", "zone", "state"),
    [
        ("10.2.0.192.zen.test", "zen.test", State.LISTED),
        ("99.2.0.192.zen.test", "zen.test", State.NOT_LISTED),
        ("10.2.0.192.refuse.test", "refuse.test", State.OPERATOR_ERROR),
        ("30.2.0.192.bogus.test", "bogus.test", State.BOGUS),
    ],
)
async def test_states_through_unbound(
    dns_servers: DnsServers,
    test_zones: dict[str, Zone],
    name: str,
    zone: str,
    state: State,
) -> None:
    fast = _fast(dns_servers.unbound.nameserver)
    records = await _lookup(fast, _dead()).records(name, zone)

    assert interpret(test_zones[zone], records.addresses).state is state


async def test_dead_stub_falls_back(dns_servers: DnsServers) -> None:
    """unbound's SERVFAIL for a dead stub goes to dnspython and ends in DnsError."""
    fast = _fast(dns_servers.unbound.nameserver, lifetime=5.0)
    lookup = _lookup(fast, dns_servers.unbound.nameserver, lifetime=5.0)

    with pytest.raises(DnsError) as caught:
        await lookup.records("2.0.0.127.dead.test", "dead.test")
    assert caught.value.reason == "servfail"


async def test_silent_server_times_out() -> None:
    fast = _fast(_dead(), lifetime=1.0)

    with pytest.raises(QueryTimeout):
        await fast.resolve("2.0.0.127.zen.test", TYPE_A, 60.0)
    assert fast.sent == 2


async def test_truncated_txt_falls_back() -> None:
    """nsd sets TC on a TXT set over 512 octets, and dnspython retries over TCP."""
    strings = " ".join(f'"{index}{"x" * 200}"' for index in range(4))
    body = f"50.2.0.192 IN A 127.0.0.2\n50.2.0.192 IN TXT {strings}\n"
    with run_nsd({"big.test": zone_text("big.test", body)}) as nsd:
        fast = _fast(nsd.nameserver)
        with pytest.raises(Unusual):
            await fast.resolve("50.2.0.192.big.test", TYPE_TXT, 60.0)
        records = await _lookup(fast, nsd.nameserver).records(
            "50.2.0.192.big.test", "big.test"
        )

    assert records.addresses == ("127.0.0.2",)
    # Over TCP the whole 804-octet record came back, cut to the reason limit.
    assert len(records.reason) == MAX_REASON_CHARS
    assert records.reason.startswith("0" + "x" * 200 + "1" + "x" * 200 + "2")


# Replies the garbage server sends. Each gets the query's ID and question
# unless its name says otherwise, then the bytes shown.
A_LISTED = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x7f\x00\x00\x02"
GARBAGE: dict[str, Callable[[bytes], bytes]] = {
    "rdata past end": lambda q: _reply(q, 1, A_LISTED[:-2]),
    "pointer loop": lambda q: _reply(q, 1, _pointer(len(q)) + A_LISTED[2:]),
    "wrong id": lambda q: bytes([q[0] ^ 0xFF, q[1]]) + _reply(q, 1, A_LISTED)[2:],
    "other question": lambda q: _reply(q[:13] + b"9" + q[14:], 1, A_LISTED),
    "servfail": lambda q: _reply(q, 0, b"", rcode=2),
    "short header": lambda q: q[:6],
}


def _pointer(offset: int) -> bytes:
    # The answer section starts right after the echoed query, at offset len(query),
    # so a pointer to that offset points at itself.
    return bytes([0xC0 | offset >> 8, offset & 0xFF])


def _reply(query: bytes, answers: int, tail: bytes, rcode: int = 0) -> bytes:
    flags = bytes([0x81, 0x80 | rcode])
    return (
        query[:2]
        + flags
        + b"\x00\x01"
        + bytes([0, answers])
        + b"\0" * 4
        + (query[12:] + tail)
    )


@contextlib.contextmanager
def garbage_server(make: Callable[[bytes], bytes]) -> Iterator[str]:
    """Reply to every UDP query on 127.0.0.1 with ``make(query)``, from a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                query, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            sock.sendto(make(query), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stopping.set()
        thread.join()
        sock.close()


@pytest.mark.parametrize("kind", sorted(GARBAGE))
async def test_garbage_is_error(kind: str) -> None:
    """A malformed or mismatched reply ends in DnsError, never in a listing."""
    with garbage_server(GARBAGE[kind]) as address:
        lookup = _lookup(_fast(address, lifetime=1.0), address, lifetime=1.0)
        with pytest.raises(DnsError):
            await lookup.records("2.0.0.127.zen.test", "zen.test")


def test_resolver_nameservers_reused() -> None:
    resolver = make_resolver(Dns(nameservers=["127.0.0.1:5353", "[::1]:53"]))
    fast = fast_resolver_for(resolver)

    assert fast is not None
    assert fast.nameservers == [("127.0.0.1", 5353), ("::1", 53)]
    assert fast.timeout == resolver.timeout
    assert fast.lifetime == resolver.lifetime


def test_https_nameserver_keeps_dnspython() -> None:
    """A DNS-over-HTTPS nameserver has no address to send UDP to."""
    resolver = make_resolver(Dns(nameservers=["127.0.0.1"]))
    resolver.nameservers = [dns.nameserver.DoHNameserver("https://127.0.0.1/q")]

    assert fast_resolver_for(resolver) is None


async def test_prefetch_draws_new_ports(dns_servers: DnsServers) -> None:
    """Each prefetch sends from new random source ports, in one event loop.

    The daemon runs every cycle in one event loop, so ports drawn once per
    loop would stay the same for the life of the process.
    """
    fast = _fast(f"127.0.0.1:{dns_servers.rbldnsd.port}")
    lookup = _lookup(fast, _dead())
    request = [("2.0.0.127.zen.test", "zen.test")]

    await lookup.prefetch(request)
    first = fast.source_ports()
    lookup.forget()
    await lookup.prefetch(request)
    second = fast.source_ports()

    assert len(first) == 4
    assert len(second) == 4
    assert first != second
    assert lookup.cached(request[0][0]) is not None
