"""Batched fast queries and the Lookup cache they fill, against rbldnsd."""

from __future__ import annotations

import socket

import pytest

from tests.checks.dnsbl.conftest import DnsServers
from tests.servers.common import free_port
from watchdog.checks.dnsbl.batch import resolve_many
from watchdog.checks.dnsbl.fastquery import FastResolver, QueryTimeout
from watchdog.checks.dnsbl.lookup import Lookup
from watchdog.checks.dnsbl.wire import TYPE_A, Reply, Unusual
from watchdog.checks.resolver import make_resolver
from watchdog.config import Dns

pytestmark = pytest.mark.dns

NAMES = [f"{n}.2.0.192.zen.test" for n in range(20, 59)] + ["10.2.0.192.zen.test"]


def _fast(port: int, *, lifetime: float = 2.0) -> FastResolver:
    return FastResolver([("127.0.0.1", port)], timeout=0.5, lifetime=lifetime)


async def test_outcomes_in_order(dns_servers: DnsServers) -> None:
    """With one query in flight, every query gets its outcome, in order."""
    fast = _fast(dns_servers.rbldnsd.port)
    queries = [(name, TYPE_A, "zen.test") for name in NAMES]
    outcomes = await resolve_many(fast, queries, limit=1, per_zone=1, default_ttl=60)
    replies = [outcome for outcome, _ in outcomes]

    assert all(isinstance(reply, Reply) for reply in replies)
    assert [r.negative for r in replies if isinstance(r, Reply)] == [True] * 39 + [
        False
    ]


async def test_silent_server_outcomes() -> None:
    fast = _fast(free_port(socket.SOCK_DGRAM), lifetime=1.0)
    queries = [("2.0.0.127.zen.test", TYPE_A, "zen.test")] * 3
    outcomes = await resolve_many(fast, queries, limit=8, per_zone=2, default_ttl=60)

    assert all(isinstance(outcome, QueryTimeout) for outcome, _ in outcomes)


async def test_invalid_name_outcome(dns_servers: DnsServers) -> None:
    fast = _fast(dns_servers.rbldnsd.port)
    outcomes = await resolve_many(
        fast, [("a..zen.test", TYPE_A, "zen.test")], limit=8, per_zone=2, default_ttl=60
    )

    assert isinstance(outcomes[0][0], Unusual)


async def test_prefetch_fills_cache(dns_servers: DnsServers) -> None:
    """After a prefetch, records() answers from the cache with no server at all."""
    fast = _fast(dns_servers.rbldnsd.port)
    dead = Dns(nameservers=[f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}"])
    lookup = Lookup(
        make_resolver(dead), concurrency=8, per_zone=4, retries=0, fast=fast
    )
    await lookup.prefetch([(name, "zen.test") for name in NAMES])
    lookup.fast = None
    listed = await lookup.records("10.2.0.192.zen.test", "zen.test")
    absent = await lookup.records("20.2.0.192.zen.test", "zen.test")

    assert listed.addresses == ("127.0.0.2", "127.0.0.4")
    assert "Listed in SBL: 192.0.2.10" in listed.reason
    assert absent.addresses == ()
    assert absent.ttl == 120
