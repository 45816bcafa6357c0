"""Attacks on the blocklist and authentication DNS paths.

Each test either proves that a fault is fixed or, marked xfail(strict),
reproduces a fault that is still open. Lying nameservers are UDP sockets on
127.0.0.1 served from a thread: ``scripted_server`` sends back whatever
datagrams its function builds for each query.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import pytest
from prometheus_client import generate_latest
from structlog.testing import capture_logs

from watchdog.checks.dnsbl.answer import State
from watchdog.checks.dnsbl.catalogue import Zone, ZoneKind, load_catalogue
from watchdog.checks.dnsbl.cycle import BlocklistMonitor
from watchdog.checks.dnsbl.fastquery import FastResolver
from watchdog.checks.dnsbl.lookup import MAX_REASON_CHARS
from watchdog.checks.dnsbl.selection import catalogue_path
from watchdog.checks.dnsbl.targets import parse_target
from watchdog.checks.dnsbl.wire import TYPE_A, TYPE_TXT, Reply
from watchdog.config import Dns, Settings
from watchdog.metrics import Metrics

pytestmark = pytest.mark.dns

# Builds the datagrams sent back for one query (none drops the query).
Responder = Callable[[bytes], list[bytes]]


@contextlib.contextmanager
def scripted_server(respond: Responder) -> Iterator[int]:
    """Serve UDP on 127.0.0.1 from a thread and yield the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                query, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            for datagram in respond(query):
                sock.sendto(datagram, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stopping.set()
        thread.join()
        sock.close()


def nxdomain(query: bytes) -> list[bytes]:
    """Return an NXDOMAIN reply without an SOA that echoes ``query``."""
    return [reply(query, rcode=3)]


def reply(
    query: bytes,
    records: Sequence[bytes] = (),
    *,
    rcode: int = 0,
    flags: int = 0x8180,
) -> bytes:
    """Return a reply that echoes ``query`` with ``records`` as its answers.

    ``flags`` is the header's flag word without the RCODE; the default has
    QR, RD and RA set.
    """
    query_id = (query[0] << 8) | query[1]
    header = struct.pack("!HHHHHH", query_id, flags | rcode, 1, len(records), 0, 0)
    return header + query[12:] + b"".join(records)


def a_record(address: str, ttl: int = 60) -> bytes:
    """Return an A record owned by the question name (pointer to offset 12)."""
    rdata = bytes(int(octet) for octet in address.split("."))
    return b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, ttl, 4) + rdata


def txt_record(text: bytes, ttl: int = 60) -> bytes:
    """Return a TXT record of one string owned by the question name."""
    rdata = bytes((len(text),)) + text
    return b"\xc0\x0c" + struct.pack("!HHIH", 16, 1, ttl, len(rdata)) + rdata


def question_of(query: bytes) -> tuple[str, int]:
    """Return the lower-case name and the type asked in ``query``."""
    labels = []
    offset = 12
    while query[offset]:
        size = query[offset]
        labels.append(query[offset + 1 : offset + 1 + size].decode("ascii"))
        offset += 1 + size
    (rdtype,) = struct.unpack_from("!H", query, offset + 1)
    return ".".join(labels).lower(), rdtype


async def test_reused_query_id_not_dropped() -> None:
    """A query that draws the ID of one just answered still gets its reply.

    The first query's ID is free once its reply is taken, so the second
    query may draw it before the first task resumes. The first task must
    not then remove the second query's waiter, which would leave the
    second query waiting forever, with no deadline sweep to end it.
    """
    with scripted_server(nxdomain) as port:
        fast = FastResolver([("127.0.0.1", port)], timeout=0.5, lifetime=1.0, sockets=1)
        loop = fast.ready()
        assert fast._pool is not None
        (endpoint,) = fast._pool.endpoints()
        ids = iter([7, 7, *range(100, 200)])
        endpoint.ids.draw = lambda: next(ids)  # type: ignore[method-assign]

        # Read the socket by hand, so that the first reply is taken in the
        # same step of the loop as the second query's first step runs.
        loop.remove_reader(endpoint.fileno())
        first = asyncio.create_task(fast.resolve("a.zen.test", TYPE_A, 60.0))
        await asyncio.sleep(0.3)
        second = asyncio.create_task(fast.resolve("b.zen.test", TYPE_A, 60.0))
        endpoint.drain()
        loop.add_reader(endpoint.fileno(), endpoint.drain)

        first_reply = await first
        second_reply = await asyncio.wait_for(second, 3.0)
        fast.close()

    assert first_reply == Reply((), 60.0, negative=True)
    assert second_reply == Reply((), 60.0, negative=True)


DQS_KEY = "Br3akerDqsKey42"
# The prefix of each target's query name, and what the lying server does.
HOSTILE = {
    "1.2.0.192": "drop",
    "2.2.0.192": "servfail",
    "3.2.0.192": "truncated",
    "4.2.0.192": "listed",
    "5.2.0.192": "garbage",
    "6.2.0.192": "bogus",
    "2.0.0.127": "listed",
    # The IPv6 test point, ::ffff:7f00:2 nibble-reversed.
    "2.0.0.0.0.0.f.7.f.f.f.f" + ".0" * 20: "listed",
    "test": "listed",
}


def hostile_dqs(query: bytes) -> list[bytes]:
    """Reply to DQS test points truthfully and to targets with every kind of failure."""
    name, rdtype = question_of(query)
    behaviour = next(
        (what for prefix, what in HOSTILE.items() if name.startswith(prefix + ".")),
        "nxdomain",
    )
    code = "127.0.1.2" if name.startswith("test.") else "127.0.0.2"
    if behaviour == "drop":
        return []
    if behaviour == "servfail":
        return [reply(query, rcode=2)]
    if behaviour == "truncated":
        return [reply(query, [a_record(code)], flags=0x8380)]
    if behaviour == "garbage":
        return [reply(query)[:-3] + b"\xc0"]
    if behaviour == "bogus":
        return [reply(query, [a_record("192.0.2.99")])]
    if behaviour == "listed" and rdtype == TYPE_TXT:
        return [reply(query, [txt_record(b"Listed, see https://check.example/")])]
    if behaviour == "listed":
        return [reply(query, [a_record(code)])]
    return nxdomain(query)


async def test_dqs_key_not_leaked() -> None:
    """The DQS key appears in no result, log line or metric, whatever fails."""
    settings = Settings()
    catalogue = load_catalogue(catalogue_path(settings))
    zones = [
        catalogue[name].with_dqs_key(DQS_KEY)
        for name in ("zen.spamhaus.org", "dbl.spamhaus.org")
    ]
    long_domain = ".".join(["a" * 60] * 4) + ".example"
    targets = [parse_target(f"192.0.2.{n}") for n in range(1, 7)]
    targets += [parse_target("spam.example"), parse_target(long_domain)]
    metrics = Metrics()

    with scripted_server(hostile_dqs) as port:
        dns = Dns(
            nameservers=[f"127.0.0.1:{port}"], timeout_seconds=0.3, lifetime_seconds=0.6
        )
        monitor = BlocklistMonitor(
            settings.model_copy(update={"dns": dns}), zones=zones, metrics=metrics
        )
        with capture_logs() as logs:
            results = await monitor.run(targets)

    states = {(r.target, r.zone): r.state for r in results}
    assert states[("192.0.2.4", "zen.spamhaus.org")] is State.LISTED
    assert states[("192.0.2.1", "zen.spamhaus.org")] is State.DNS_ERROR
    assert states[("192.0.2.2", "zen.spamhaus.org")] is State.DNS_ERROR
    assert states[("192.0.2.3", "zen.spamhaus.org")] is State.DNS_ERROR
    assert states[("192.0.2.5", "zen.spamhaus.org")] is State.DNS_ERROR
    assert states[("192.0.2.6", "zen.spamhaus.org")] is State.BOGUS
    # The query name is over 255 octets with the key in it.
    assert states[(long_domain, "dbl.spamhaus.org")] is State.DNS_ERROR
    texts = {
        "results": json.dumps([result.to_json() for result in results]),
        "logs": repr(logs),
        "metrics": generate_latest(metrics.registry).decode(),
    }
    for where, text in texts.items():
        assert DQS_KEY.lower() not in text.lower(), where


def silent(query: bytes) -> list[bytes]:
    """Read the query and never reply, as a dead resolver behind a firewall."""
    return []


async def test_silent_resolver_one_lifetime() -> None:
    """A cycle against a resolver that never replies ends about one lifetime in.

    42 queries per zone (40 targets and 2 test points) over a per-zone
    window of 4 would take 11 lifetimes if every window waited out its
    lifetime.
    """
    lifetime = 0.3
    zones = [Zone(name=f"z{n}.test", kinds=frozenset({ZoneKind.IP4})) for n in (1, 2)]
    targets = [parse_target(f"192.0.2.{n}") for n in range(1, 41)]
    with scripted_server(silent) as port:
        dns = Dns(
            nameservers=[f"127.0.0.1:{port}"],
            timeout_seconds=lifetime / 2,
            lifetime_seconds=lifetime,
        )
        monitor = BlocklistMonitor(Settings(dns=dns), zones=zones)
        started = time.monotonic()
        results = await monitor.run(targets)
        seconds = time.monotonic() - started

    assert {result.state for result in results} == {State.DNS_ERROR}
    assert seconds < 4 * lifetime


def one_zone_dead(query: bytes) -> list[bytes]:
    """Drop every query for z1.test and answer z2.test truthfully."""
    name, _ = question_of(query)
    if name.endswith(".z1.test"):
        return []
    if name.startswith("2.0.0.127."):
        return [reply(query, [a_record("127.0.0.2")])]
    return nxdomain(query)


async def test_dead_zone_spares_others() -> None:
    """Timeouts of one zone do not fail the zone that still answers."""
    lifetime = 0.3
    zones = [Zone(name=f"z{n}.test", kinds=frozenset({ZoneKind.IP4})) for n in (1, 2)]
    targets = [parse_target(f"192.0.2.{n}") for n in range(1, 41)]
    with scripted_server(one_zone_dead) as port:
        dns = Dns(
            nameservers=[f"127.0.0.1:{port}"],
            timeout_seconds=lifetime / 2,
            lifetime_seconds=lifetime,
        )
        monitor = BlocklistMonitor(Settings(dns=dns), zones=zones)
        results = await monitor.run(targets)

    states = {
        zone: {r.state for r in results if r.zone == zone}
        for zone in ("z1.test", "z2.test")
    }
    assert states["z1.test"] == {State.DNS_ERROR}
    assert states["z2.test"] == {State.NOT_LISTED}


async def test_servfail_zone_skips_targets() -> None:
    """A zone whose test points fail with SERVFAIL is not asked about each target.

    The prefetch already got SERVFAIL for every target, and a zone that fails
    its test points voids its answers, so asking each target again through
    dnspython, with a retry, would only hammer the failing resolver.
    """
    zones = [Zone(name="z1.test", kinds=frozenset({ZoneKind.IP4}))]
    targets = [parse_target(f"192.0.2.{n}") for n in range(1, 41)]
    received: list[bytes] = []

    def servfail(query: bytes) -> list[bytes]:
        received.append(query)
        return [reply(query, rcode=2)]

    with scripted_server(servfail) as port:
        dns = Dns(
            nameservers=[f"127.0.0.1:{port}"], timeout_seconds=0.5, lifetime_seconds=1
        )
        monitor = BlocklistMonitor(Settings(dns=dns), zones=zones)
        results = await monitor.run(targets)

    assert {result.state for result in results} == {State.DNS_ERROR}
    assert {result.reason for result in results} == {"servfail"}
    assert len(received) < 2 * (len(targets) + 2)


def long_reasons(query: bytes) -> list[bytes]:
    """List every target, with 200 TXT strings of 255 octets as its reason."""
    name, rdtype = question_of(query)
    if name.startswith("1.0.0.127."):
        return nxdomain(query)
    if rdtype == TYPE_TXT:
        records = [txt_record(b"%03d" % n + b"x" * 252) for n in range(200)]
        return [reply(query, records)]
    return [reply(query, [a_record("127.0.0.2")])]


async def test_long_txt_reason_cut() -> None:
    """A listing's TXT reason is cut, not carried whole into the results."""
    zones = [Zone(name="z1.test", kinds=frozenset({ZoneKind.IP4}))]
    with scripted_server(long_reasons) as port:
        dns = Dns(nameservers=[f"127.0.0.1:{port}"])
        monitor = BlocklistMonitor(Settings(dns=dns), zones=zones)
        (result,) = await monitor.run([parse_target("192.0.2.1")])

    assert result.state is State.LISTED
    assert len(result.reason) == MAX_REASON_CHARS
    assert result.reason.endswith("…")
