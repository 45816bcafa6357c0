"""Lookups against the private rbldnsd and unbound: answers, errors, cache."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import dns.rdatatype
import dns.resolver
import pytest

from tests.checks.dnsbl.conftest import FLIP_CLEAN, DnsServers
from tests.servers.common import free_port, wait_until
from tests.servers.dns import ask
from watchdog.checks.dnsbl.fastquery import fast_resolver_for
from watchdog.checks.dnsbl.lookup import Lookup, clamp_ttl
from watchdog.checks.resolver import make_resolver
from watchdog.config import Dns
from watchdog.errors import DnsError

pytestmark = pytest.mark.dns


def _lookup(
    nameserver: str,
    *,
    lifetime: float = 3.0,
    clock: Callable[[], float] = time.monotonic,
) -> Lookup:
    dns_settings = Dns(
        nameservers=[nameserver], timeout_seconds=1.0, lifetime_seconds=lifetime
    )
    resolver = make_resolver(dns_settings)
    return Lookup(resolver, concurrency=4, per_zone=2, retries=0, clock=clock)


async def test_listed_with_reason(dns_servers: DnsServers) -> None:
    records = await _lookup(dns_servers.unbound.nameserver).records(
        "10.2.0.192.zen.test", "zen.test"
    )
    assert records.addresses == ("127.0.0.2", "127.0.0.4")
    assert "Listed in SBL: 192.0.2.10" in records.reason
    assert "Listed in XBL: 192.0.2.10" in records.reason


async def test_nxdomain_is_absent(dns_servers: DnsServers) -> None:
    records = await _lookup(dns_servers.unbound.nameserver).records(
        "99.2.0.192.zen.test", "zen.test"
    )
    assert records.addresses == ()


async def test_nxdomain_ttl_from_soa(dns_servers: DnsServers) -> None:
    port = dns_servers.rbldnsd.port
    records = await _lookup(f"127.0.0.1:{port}").records(
        "99.2.0.192.zen.test", "zen.test"
    )
    assert records.ttl == 120


async def test_servfail_is_error(dns_servers: DnsServers) -> None:
    with pytest.raises(DnsError) as caught:
        await _lookup(dns_servers.unbound.nameserver).records(
            "2.0.0.127.dead.test", "dead.test"
        )
    assert caught.value.reason in {"servfail", "timeout"}


async def test_refused_is_error(dns_servers: DnsServers) -> None:
    port = dns_servers.rbldnsd.port
    with pytest.raises(DnsError) as caught:
        await _lookup(f"127.0.0.1:{port}").records("2.0.0.127.other.test", "other")
    assert caught.value.reason == "refused"


async def test_dead_server_times_out() -> None:
    lookup = _lookup(f"127.0.0.1:{free_port()}", lifetime=1.5)
    with pytest.raises(DnsError) as caught:
        await lookup.records("2.0.0.127.zen.test", "zen.test")
    assert caught.value.reason == "timeout"


async def test_error_message_hides_name() -> None:
    lookup = _lookup(f"127.0.0.1:{free_port()}", lifetime=1.0)
    with pytest.raises(DnsError) as caught:
        await lookup.records("2.0.0.127.secretkey.zen.dq.test", "zen")
    assert "secretkey" not in str(caught.value)


async def test_answer_cached_until_ttl(dns_servers: DnsServers) -> None:
    now = [0.0]
    rbldnsd = dns_servers.rbldnsd
    lookup = _lookup(f"127.0.0.1:{rbldnsd.port}", clock=lambda: now[0])
    name = "51.2.0.192.flip.test"

    assert (await lookup.records(name, "flip.test")).addresses == ()
    rbldnsd.write("flip.ip4set", FLIP_CLEAN + "192.0.2.51\n")
    try:
        wait_until(
            lambda: bool(ask("127.0.0.1", rbldnsd.port, name).answer),
            what="rbldnsd reload",
        )
        cached = await lookup.records(name, "flip.test")
        now[0] = 121.0
        fresh = await lookup.records(name, "flip.test")
    finally:
        rbldnsd.write("flip.ip4set", FLIP_CLEAN)
    assert cached.addresses == ()
    assert fresh.addresses == ("127.0.0.2",)


@pytest.mark.parametrize(
    ("ttl", "clamped"), [(0, 60.0), (5, 60.0), (300, 300.0), (86400, 3600.0)]
)
def test_clamp_ttl(ttl: float, clamped: float) -> None:
    assert clamp_ttl(ttl) == clamped


async def test_txt_failure_keeps_listing(dns_servers: DnsServers) -> None:
    lookup = _lookup(f"127.0.0.1:{dns_servers.rbldnsd.port}")
    resolve = lookup.resolver.resolve

    async def without_txt(name: str, rdtype: Any, **kwargs: Any) -> Any:
        # rbldnsd cannot be made to fail TXT alone, so the fault is injected.
        if rdtype == dns.rdatatype.TXT:
            raise dns.resolver.NoNameservers
        return await resolve(name, rdtype, **kwargs)

    lookup.resolver.resolve = without_txt  # type: ignore[method-assign]
    records = await lookup.records("10.2.0.192.zen.test", "zen.test")
    assert records.addresses == ("127.0.0.2", "127.0.0.4")
    assert records.reason == ""


async def test_prefetch_timeout_not_asked_again() -> None:
    """A name whose prefetch timed out fails at once, without more queries."""
    dns_settings = Dns(
        nameservers=[f"127.0.0.1:{free_port()}"],
        timeout_seconds=0.2,
        lifetime_seconds=0.5,
    )
    resolver = make_resolver(dns_settings)
    fast = fast_resolver_for(resolver)
    lookup = Lookup(resolver, concurrency=4, per_zone=2, retries=1, fast=fast)
    asked = []

    async def count(*args: Any, **kwargs: Any) -> Any:
        asked.append(args)
        raise AssertionError("dnspython must not be asked")

    resolver.resolve = count  # type: ignore[method-assign]
    names = ["2.0.0.127.zen.test", "1.0.0.127.zen.test"]
    await lookup.prefetch([(name, "zen.test") for name in names])
    assert fast is not None
    sent = fast.sent

    for name in names:
        with pytest.raises(DnsError) as caught:
            await lookup.records(name, "zen.test")
        assert caught.value.reason == "timeout"
    assert fast.sent == sent
    assert asked == []


async def test_prefetch_drops_expired_names(dns_servers: DnsServers) -> None:
    """Expired answers of names no longer asked leave the cache.

    A daemon checks a changing set of learned link domains, so a cache that
    kept every name it ever asked would grow for the life of the process.
    """
    now = [0.0]
    resolver = make_resolver(Dns(nameservers=[dns_servers.unbound.nameserver]))
    fast = fast_resolver_for(resolver)
    lookup = Lookup(
        resolver, concurrency=4, per_zone=2, clock=lambda: now[0], fast=fast
    )
    first = [(f"{n}.2.0.192.zen.test", "zen.test") for n in range(100, 110)]
    second = [(f"{n}.2.0.192.zen.test", "zen.test") for n in range(110, 120)]

    await lookup.prefetch(first)
    assert lookup.cached_count() == len(first)
    now[0] += 7200.0
    await lookup.prefetch(second)

    assert lookup.cached_count() == len(second)
    assert all(lookup.cached(name) is not None for name, _ in second)
