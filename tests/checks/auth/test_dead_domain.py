"""A domain whose nameservers are down, behind a resolver that still responds.

A fresh unbound per test recurses to nsd for the test zones and to a
loopback port where nothing listens for ``gone.test``. So every lookup of
``x.gone.test`` times out in unbound while unbound answers everything else.
It is fresh because unbound learns that a silent server is down and then
answers SERVFAIL at once instead of timing out.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import dns.asyncresolver
import pytest
import spf

from tests.checks.auth.udp_resolvers import UdpResolver, run_blackhole
from tests.checks.auth.zones import IPV6_REVERSE_ZONE
from tests.servers.common import free_port
from tests.servers.dns import StubZone, Unbound, run_unbound
from tests.servers.nsd import Nsd
from watchdog.checks.auth import Check, Finding, Status, run_audit
from watchdog.checks.auth.health import (
    DomainTimeouts,
    ResolverHealth,
    udp_endpoints,
)
from watchdog.checks.auth.lookup import Lookup
from watchdog.checks.auth.spf_eval import resolver_lookup, sync_resolver
from watchdog.checks.resolver import make_resolver
from watchdog.config import Audit, Dns, Sending, Settings
from watchdog.errors import DnsError

pytestmark = pytest.mark.dns

TIMEOUT = 0.5
LIFETIME = 1.0
DEAD = "x.gone.test"


@pytest.fixture
def lame_unbound(nsd: Nsd) -> Iterator[Unbound]:
    """A fresh unbound with ``gone.test`` stubbed to a port where nothing listens."""
    stubs = [StubZone(zone, nsd.port) for zone in nsd.zones]
    stubs.append(StubZone("gone.test", free_port(socket.SOCK_DGRAM), ready=False))
    nodefault = ("test.", "127.in-addr.arpa.", IPV6_REVERSE_ZONE + ".")
    with run_unbound(stubs, nodefault=nodefault) as server:
        yield server


@pytest.fixture
def blackhole() -> Iterator[UdpResolver]:
    """A UDP socket on 127.0.0.1 that reads every query and never replies."""
    with run_blackhole() as server:
        yield server


def _resolver(nameserver: str) -> dns.asyncresolver.Resolver:
    dns_settings = Dns(
        nameservers=[nameserver], timeout_seconds=TIMEOUT, lifetime_seconds=LIFETIME
    )
    return make_resolver(dns_settings)


async def _audit_alone(nameserver: str) -> tuple[list[Finding], float]:
    """Audit ``DEAD`` with no sending IPs, so no other lookup gets an answer."""
    settings = Settings(
        sending=Sending(ips=[], dkim_selectors=["s1"]),
        audit=Audit(allow_private_mx=True),
    )
    started = time.monotonic()
    findings = await run_audit(settings, [DEAD], [], _resolver(nameserver))
    return findings, time.monotonic() - started


async def test_probe_reply_from_unbound(lame_unbound: Unbound) -> None:
    """unbound replies to the non-recursive root probe, so the count resets."""
    health = ResolverHealth(limit=0)
    resolver = _resolver(lame_unbound.nameserver)
    await health.probe(udp_endpoints(resolver), TIMEOUT)

    assert health.consecutive_timeouts == 0
    assert not health.unreachable


async def test_probe_silence_from_blackhole(blackhole: UdpResolver) -> None:
    """A probe that gets no reply makes the resolver unreachable."""
    health = ResolverHealth(limit=0)
    await health.probe(udp_endpoints(_resolver(blackhole.nameserver)), 0.2)

    assert health.unreachable
    assert blackhole.received == ["."]


async def test_dead_domain_alone_times_out(lame_unbound: Unbound) -> None:
    """A dead domain audited alone reads timeout, never resolver_unreachable."""
    findings, seconds = await _audit_alone(lame_unbound.nameserver)

    assert findings
    assert all(f.status is Status.LOOKUP_FAILED for f in findings), findings
    assert {f.reason for f in findings} == {"lookup_failed"}
    for finding in findings:
        assert "timed out" in finding.detail
        assert "taken as unreachable: check that the resolver" not in finding.detail
    # The first lookups go out together, and the later checks are cut off
    # by the domain's own timeouts instead of waiting a lifetime each.
    unsent = {f.check for f in findings if "not sent" in f.detail}
    assert unsent >= {Check.MTA_STS, Check.TLS_RPT, Check.BIMI}
    assert seconds < 2.5 * LIFETIME


async def test_dead_domain_spares_other_names(lame_unbound: Unbound) -> None:
    """The domain's cut-off stops only the names under that domain."""
    lookup = Lookup(_resolver(lame_unbound.nameserver), domain=DEAD)
    for name in (DEAD, "_dmarc." + DEAD):
        with pytest.raises(DnsError) as caught:
            await lookup.query(name, "TXT")
        assert caught.value.reason == "timeout"

    with pytest.raises(DnsError) as caught:
        await lookup.query("_mta-sts." + DEAD, "TXT")
    assert caught.value.reason == "timeout"
    assert "not sent" in str(caught.value)
    _answer, texts = await lookup.txt("split.test")
    assert texts == ["v=spf1 ip4:127.0.0.10 -all"]


async def test_blackhole_alone_unreachable(blackhole: UdpResolver) -> None:
    """A resolver that drops everything still reads resolver_unreachable, fast."""
    findings, seconds = await _audit_alone(blackhole.nameserver)

    reasons = {f.reason for f in findings}
    assert reasons == {"lookup_failed", "resolver_unreachable"}
    unsent = {f.check for f in findings if f.reason == "resolver_unreachable"}
    assert unsent >= {Check.MTA_STS, Check.TLS_RPT, Check.BIMI}
    assert seconds < 2.5 * LIFETIME
    assert "." in blackhole.received


def test_pyspf_probes_before_cut_off(lame_unbound: Unbound) -> None:
    """pyspf's lookups keep going while the probe finds the resolver alive."""
    resolver = sync_resolver(_resolver(lame_unbound.nameserver))
    health = ResolverHealth(limit=2)
    lookup = resolver_lookup(resolver, health)
    for _ in range(2):
        with pytest.raises(spf.TempError):
            lookup(DEAD, "TXT")

    rows = lookup("split.test", "TXT")

    assert rows == [(("split.test", "TXT"), (b"v=spf1 ip4:127.0.", b"0.10 -all"))]
    assert not health.unreachable


def test_pyspf_domain_cut_off(lame_unbound: Unbound) -> None:
    """pyspf stops querying the audited domain after its own timeouts."""
    resolver = sync_resolver(_resolver(lame_unbound.nameserver))
    domain_timeouts = DomainTimeouts(DEAD)
    lookup = resolver_lookup(resolver, ResolverHealth(), domain_timeouts)
    for _ in range(2):
        with pytest.raises(spf.TempError, match="timed out"):
            lookup(DEAD, "TXT")

    with pytest.raises(spf.TempError, match="not sent"):
        lookup("_spf." + DEAD, "TXT")
    assert lookup("split.test", "TXT")


def test_pyspf_refused_resets_count(nsd: Nsd) -> None:
    """A REFUSED response to pyspf resets the timeout counts, as in Lookup."""
    resolver = sync_resolver(_resolver(nsd.nameserver))
    health = ResolverHealth()
    domain_timeouts = DomainTimeouts("example.org")
    lookup = resolver_lookup(resolver, health, domain_timeouts)
    health.record_timeout(time.monotonic())
    domain_timeouts.record_timeout(time.monotonic())

    with pytest.raises(spf.TempError, match="REFUSED"):
        lookup("example.org", "TXT")

    assert health.consecutive_timeouts == 0
    assert domain_timeouts.consecutive_timeouts == 0
