"""The SPF check against nsd through unbound."""

from __future__ import annotations

import dns.asyncresolver
import dns.resolver
import pytest
import spf

from tests.checks.auth.udp_resolvers import run_blackhole
from tests.checks.auth.zones import GOOD_IP, GOOD_IPV6
from watchdog.checks.auth.findings import Status
from watchdog.checks.auth.health import ResolverHealth
from watchdog.checks.auth.lookup import Lookup
from watchdog.checks.auth.spf import SpfReport, check_spf
from watchdog.checks.auth.spf_eval import resolver_lookup
from watchdog.checks.auth.spf_record import SpfSyntaxError, parse_record

pytestmark = pytest.mark.dns


async def _spf(
    resolver: dns.asyncresolver.Resolver, domain: str, ips: list[str] | None = None
) -> SpfReport:
    return await check_spf(Lookup(resolver), resolver, domain, ips or [])


def _reasons(report: SpfReport) -> set[str]:
    return {finding.reason for finding in report.findings}


async def test_good_record_passes(resolver: dns.asyncresolver.Resolver) -> None:
    """A valid record with the sending IP gives pass and no defect."""
    report = await _spf(resolver, "good.test", [GOOD_IP])
    assert {f.status for f in report.findings} == {Status.OK}
    assert report.host_results[0].result == "pass"
    assert report.lookups == 2


async def test_include_ip_passes(resolver: dns.asyncresolver.Resolver) -> None:
    """An IP authorised only through include and a: still passes."""
    report = await _spf(resolver, "good.test", ["127.0.0.20"])
    assert report.host_results[0].result == "pass"


async def test_ipv6_passes(resolver: dns.asyncresolver.Resolver) -> None:
    """check_host runs for IPv6 sending addresses too."""
    report = await _spf(resolver, "good.test", [GOOD_IPV6, "2001:db8:1::1"])
    assert [r.result for r in report.host_results] == ["pass", "fail"]


async def test_split_strings_joined(resolver: dns.asyncresolver.Resolver) -> None:
    """A record split mid-token evaluates as one string."""
    report = await _spf(resolver, "split.test", [GOOD_IP])
    assert report.record == f"v=spf1 ip4:{GOOD_IP} -all"
    assert report.host_results[0].result == "pass"


async def test_unlisted_ip_fails(resolver: dns.asyncresolver.Resolver) -> None:
    """A sending IP outside the record is an error finding."""
    report = await _spf(resolver, "other.test", [GOOD_IP])
    assert "spf_ip_not_pass" in _reasons(report)
    assert report.host_results[0].result == "fail"


async def test_macro_exists(resolver: dns.asyncresolver.Resolver) -> None:
    """An exists: term with %{i} counts one lookup and passes per IP."""
    report = await _spf(resolver, "macro.test", [GOOD_IP, "127.0.0.20"])
    assert report.lookups == 1
    assert "spf_macros" in _reasons(report)
    assert [r.result for r in report.host_results] == ["pass", "fail"]


@pytest.mark.parametrize("domain", ["mxspf.test", "ptrspf.test"])
async def test_mx_and_ptr_mechanisms(
    resolver: dns.asyncresolver.Resolver, domain: str
) -> None:
    """mx: and ptr: resolve through the real MX and reverse zones."""
    report = await _spf(resolver, domain, [GOOD_IP, "127.0.0.20"])
    assert [r.result for r in report.host_results] == ["pass", "fail"]


async def test_lookup_limit(resolver: dns.asyncresolver.Resolver) -> None:
    """Eleven includes exceed the 10-lookup limit."""
    report = await _spf(resolver, "many.test", [GOOD_IP])
    assert report.lookups == 11
    assert "spf_lookup_limit" in _reasons(report)
    assert report.host_results[0].result == "permerror"


async def test_lookups_near_limit(resolver: dns.asyncresolver.Resolver) -> None:
    """Eight lookups warn before the limit."""
    report = await _spf(resolver, "nearly.test")
    assert report.lookups == 8
    assert "spf_lookups_near_limit" in _reasons(report)


async def test_include_loop(resolver: dns.asyncresolver.Resolver) -> None:
    """A loop of includes is reported as such."""
    report = await _spf(resolver, "loop.test")
    assert "spf_include_loop" in _reasons(report)


async def test_void_lookup_limit(resolver: dns.asyncresolver.Resolver) -> None:
    """Three void lookups exceed the limit of two, each counted once."""
    report = await _spf(resolver, "void.test", [GOOD_IP])
    assert report.void_lookups == 3
    assert "spf_void_limit" in _reasons(report)
    assert report.host_results[0].result == "permerror"


@pytest.mark.parametrize(
    ("domain", "reason", "status"),
    [
        ("passall.test", "spf_pass_all", Status.ERROR),
        ("neutral.test", "spf_neutral_all", Status.WARNING),
        ("noall.test", "spf_no_all", Status.WARNING),
        ("ptr.test", "spf_ptr", Status.WARNING),
        ("twospf.test", "spf_multiple", Status.ERROR),
        ("nospf.test", "spf_missing", Status.ERROR),
        ("nothere.test", "spf_missing", Status.ERROR),
        ("missinc.test", "spf_include_missing", Status.ERROR),
        ("badsyntax.test", "spf_syntax", Status.ERROR),
        ("big.test", "spf_record_size", Status.WARNING),
    ],
)
async def test_record_defects(
    resolver: dns.asyncresolver.Resolver, domain: str, reason: str, status: Status
) -> None:
    """Each defect gives its reason at its level."""
    report = await _spf(resolver, domain)
    found = {f.reason: f.status for f in report.findings}
    assert reason in found
    assert found[reason] is status


async def test_dead_upstream(resolver: dns.asyncresolver.Resolver) -> None:
    """SERVFAIL from a dead upstream is lookup_failed, not spf_missing."""
    report = await _spf(resolver, "x.dead.test", [GOOD_IP])
    assert [f.status for f in report.findings] == [Status.LOOKUP_FAILED]
    assert report.lookups is None


@pytest.mark.parametrize(
    "record",
    [
        "v=spf1 foo -all",
        "v=spf1 include -all",
        "v=spf1 ip4:300.1.1.1 -all",
        "v=spf1 ip6:192.0.2.1 -all",
        "v=spf1 redirect=a.test redirect=b.test",
        "v=spf1 all:x.test",
    ],
)
def test_syntax_rejected(record: str) -> None:
    """Records breaking the RFC 7208 grammar raise SpfSyntaxError."""
    with pytest.raises(SpfSyntaxError):
        parse_record(record)


def test_unknown_modifier_ignored() -> None:
    """Unknown modifiers are legal and kept as terms."""
    terms = parse_record("v=spf1 moo=bar -all")
    assert [t.name for t in terms] == ["moo", "all"]


def test_check_host_follows_cutoff() -> None:
    """Once the audit's probe confirms the timeouts, pyspf sends nothing more.

    The third lookup sends only the liveness probe, a query for the root.
    """
    with run_blackhole() as blackhole:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = blackhole.port
        resolver.timeout = resolver.lifetime = 0.3
        health = ResolverHealth(limit=2)
        lookup = resolver_lookup(resolver, health)

        for _ in range(2):
            with pytest.raises(spf.TempError):
                lookup("example.test", "TXT")
        sent = list(blackhole.received)
        with pytest.raises(spf.TempError, match="unreachable"):
            lookup("example.test", "TXT")

    assert health.unreachable
    assert len(sent) >= 2
    assert blackhole.received == [*sent, "."]
