"""The lookup layer: records, absent answers and failures stay distinct."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import dns.asyncresolver
import pytest

from tests.checks.auth.udp_resolvers import (
    UdpResolver,
    run_blackhole,
    run_slow_forwarder,
)
from tests.servers.nsd import Nsd
from watchdog.checks.auth.health import ResolverHealth
from watchdog.checks.auth.lookup import Lookup
from watchdog.checks.resolver import make_resolver
from watchdog.config import Dns
from watchdog.errors import DnsError

pytestmark = pytest.mark.dns


async def test_txt_joins_strings_without_space(
    direct: dns.asyncresolver.Resolver,
) -> None:
    """Strings of one TXT record are joined with no separator."""
    _answer, texts = await Lookup(direct).txt("split.test")
    assert texts == ["v=spf1 ip4:127.0.0.10 -all"]


async def test_nxdomain_is_absent(resolver: dns.asyncresolver.Resolver) -> None:
    """NXDOMAIN is an answer: absent, flagged nxdomain."""
    answer = await Lookup(resolver).query("nothere.test", "TXT")
    assert answer.absent
    assert answer.nxdomain


async def test_nodata_is_absent(resolver: dns.asyncresolver.Resolver) -> None:
    """NODATA is absent but not NXDOMAIN."""
    answer = await Lookup(resolver).query("implicit.test", "MX")
    assert answer.absent
    assert not answer.nxdomain


async def test_cname_followed(resolver: dns.asyncresolver.Resolver) -> None:
    """The answer shows the name the CNAME chain ended at."""
    answer = await Lookup(resolver).query("esp._domainkey.good.test", "TXT")
    assert answer.via_cname
    assert answer.canonical == "key.esp.test"


async def test_dead_upstream_raises(resolver: dns.asyncresolver.Resolver) -> None:
    """SERVFAIL or a timeout from a dead upstream raises DnsError, never absent."""
    with pytest.raises(DnsError) as caught:
        await Lookup(resolver).query("x.dead.test", "TXT")
    assert caught.value.reason in ("servfail", "timeout")


async def test_refused_raises(direct: dns.asyncresolver.Resolver) -> None:
    """REFUSED for a zone nsd does not serve raises DnsError."""
    with pytest.raises(DnsError) as caught:
        await Lookup(direct).query("example.org", "TXT")
    assert caught.value.reason == "servfail"


@pytest.fixture
def blackhole() -> Iterator[UdpResolver]:
    """A UDP socket on 127.0.0.1 that reads every query and never replies."""
    with run_blackhole() as server:
        yield server


def _quick(nameserver: str) -> dns.asyncresolver.Resolver:
    return make_resolver(
        Dns(nameservers=[nameserver], timeout_seconds=0.2, lifetime_seconds=0.4)
    )


async def test_unreachable_after_two_timeouts(blackhole: UdpResolver) -> None:
    """After two timeouts in a row the next query fails at once, unsent."""
    lookup = Lookup(_quick(blackhole.nameserver))
    for name in ("one.test", "two.test"):
        with pytest.raises(DnsError) as caught:
            await lookup.query(name, "TXT")
        assert caught.value.reason == "timeout"
        assert f"to {blackhole.nameserver} timed out after 0.4 s" in str(caught.value)
    sent = blackhole.count()

    started = time.monotonic()
    with pytest.raises(DnsError) as caught:
        await lookup.query("three.test", "TXT")
    elapsed = time.monotonic() - started

    assert caught.value.reason == "resolver_unreachable"
    assert "not sent" in str(caught.value)
    assert elapsed < 0.1
    assert blackhole.count() == sent
    assert "three.test." not in blackhole.received


async def test_one_timeout_keeps_sending(blackhole: UdpResolver) -> None:
    """A single timeout does not stop the next query from being sent."""
    lookup = Lookup(_quick(blackhole.nameserver))
    with pytest.raises(DnsError):
        await lookup.query("one.test", "TXT")
    assert not lookup.health.unreachable
    with pytest.raises(DnsError) as caught:
        await lookup.query("two.test", "TXT")
    assert caught.value.reason == "timeout"
    assert "two.test." in blackhole.received


async def test_answer_resets_timeouts(nsd: Nsd) -> None:
    """An answer between two timeouts, even NXDOMAIN, keeps the resolver usable."""
    drop = frozenset({"lost1.test.", "lost2.test.", "lost3.test."})
    with run_slow_forwarder(nsd.port, delay=0.0, drop=drop) as forwarder:
        lookup = Lookup(_quick(forwarder.nameserver))
        with pytest.raises(DnsError):
            await lookup.query("lost1.test", "TXT")
        answer = await lookup.query("nothere.test", "TXT")
        assert answer.nxdomain
        with pytest.raises(DnsError) as caught:
            await lookup.query("lost2.test", "TXT")
        assert caught.value.reason == "timeout"
        assert not lookup.health.unreachable

        _answer, texts = await lookup.txt("split.test")
        assert texts == ["v=spf1 ip4:127.0.0.10 -all"]
        with pytest.raises(DnsError):
            await lookup.query("lost3.test", "TXT")
        assert not lookup.health.unreachable


async def test_health_shared_between_lookups(blackhole: UdpResolver) -> None:
    """Lookups that share a ResolverHealth stop together."""
    resolver = _quick(blackhole.nameserver)
    health = ResolverHealth()
    first, second = Lookup(resolver, health), Lookup(resolver, health)
    for lookup in (first, second):
        with pytest.raises(DnsError):
            await lookup.query("x.test", "MX")
    with pytest.raises(DnsError) as caught:
        await Lookup(resolver, health).addresses("mx.test")
    assert caught.value.reason == "resolver_unreachable"


async def test_unreachable_never_absent(blackhole: UdpResolver) -> None:
    """Once unreachable, each helper raises rather than returning no records.

    With a limit of 0 the first lookup sends the liveness probe (a query
    for the root) and nothing else reaches the resolver.
    """
    health = ResolverHealth(limit=0)
    lookup = Lookup(_quick(blackhole.nameserver), health)
    for call in (
        lookup.txt("good.test"),
        lookup.addresses("mail.good.test"),
        lookup.ptr("127.0.0.1"),
    ):
        with pytest.raises(DnsError) as caught:
            await call
        assert caught.value.reason == "resolver_unreachable"
    assert blackhole.received == ["."]


async def test_failure_names_outcome(
    direct: dns.asyncresolver.Resolver, nsd: Nsd
) -> None:
    """A failed lookup names the nameserver and its last response only."""
    with pytest.raises(DnsError) as caught:
        await Lookup(direct).query("example.org", "TXT")
    message = str(caught.value)
    assert f"{nsd.nameserver} answered REFUSED" in message
    assert "All nameservers failed" not in message


async def test_timeout_spanning_answer_ignored(nsd: Nsd) -> None:
    """Timeouts of queries in flight while another got an answer do not count."""
    drop = frozenset({"lost1.test.", "lost2.test."})
    with run_slow_forwarder(nsd.port, delay=0.0, drop=drop) as forwarder:
        lookup = Lookup(_quick(forwarder.nameserver))
        lost1, lost2, answered = await asyncio.gather(
            lookup.query("lost1.test", "TXT"),
            lookup.query("lost2.test", "TXT"),
            lookup.query("nothere.test", "TXT"),
            return_exceptions=True,
        )
    assert isinstance(lost1, DnsError)
    assert isinstance(lost2, DnsError)
    assert not isinstance(answered, BaseException)
    assert answered.nxdomain
    assert lookup.health.consecutive_timeouts == 0
    assert not lookup.health.unreachable
