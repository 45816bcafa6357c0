"""run_audit removes the series of domains, selectors and IPs a run left out."""

from __future__ import annotations

import dns.asyncresolver
import pytest
from prometheus_client import CollectorRegistry

from tests.checks.auth.udp_resolvers import run_blackhole
from tests.checks.auth.zones import GOOD_IP, UNCONFIRMED_IP
from watchdog.checks.auth import run_audit
from watchdog.checks.auth.learned import Learned, LearnedKind
from watchdog.checks.resolver import make_resolver
from watchdog.config import Audit, Dns, Sending, Settings
from watchdog.metrics import Metrics

pytestmark = pytest.mark.dns

PREFIX = "mailwatchdog_auth_"
# The learned values of good.test: a DKIM selector and a DKIM d= domain,
# which gives good.test an alignment finding.
LEARNED = frozenset(
    {
        Learned(LearnedKind.DKIM_SELECTOR, "good.test", "ed"),
        Learned(LearnedKind.DKIM_DOMAIN, "good.test", "good.test"),
    }
)


def _series(metrics: Metrics) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """Return the name and labels of every audit series in the registry."""
    found = set()
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name.startswith(PREFIX):
                found.add((sample.name, tuple(sorted(sample.labels.items()))))
    return found


def _has(metrics: Metrics, name: str, **labels: str) -> bool:
    value = metrics.registry.get_sample_value(PREFIX + name, labels)
    return value is not None


async def _audit(
    resolver: dns.asyncresolver.Resolver,
    metrics: Metrics,
    domains: list[str],
    ips: list[str],
    learned: frozenset[Learned] = frozenset(),
) -> None:
    settings = Settings(
        sending=Sending(ips=ips, helo="mail.good.test", dkim_selectors=["s2048"]),
        audit=Audit(allow_private_mx=True),
    )
    await run_audit(settings, domains, [], resolver, learned=learned, metrics=metrics)


async def test_dropped_domain_series_removed(
    resolver: dns.asyncresolver.Resolver,
) -> None:
    """Auditing A and B, then only A, removes B's series and keeps A's."""
    metrics = Metrics(CollectorRegistry())
    ips = [GOOD_IP, UNCONFIRMED_IP]
    await _audit(resolver, metrics, ["good.test", "clean.test"], ips, LEARNED)
    assert _has(metrics, "check_status", domain="clean.test", check="spf")
    assert _has(metrics, "spf_dns_lookups", domain="clean.test")
    assert _has(metrics, "dmarc_policy", domain="clean.test")
    assert _has(metrics, "dkim_key_bits", domain="clean.test", selector="s2048")
    assert _has(metrics, "ptr_fcrdns_ok", ip=UNCONFIRMED_IP)
    assert _has(metrics, "check_status", domain="good.test", check="alignment")
    assert _has(metrics, "dkim_key_bits", domain="good.test", selector="ed")

    await _audit(resolver, metrics, ["good.test"], [GOOD_IP])

    left = _series(metrics)
    assert not [s for s in left if ("domain", "clean.test") in s[1]]
    assert not [s for s in left if ("ip", UNCONFIRMED_IP) in s[1]]
    assert not _has(metrics, "check_status", domain=UNCONFIRMED_IP, check="ptr")
    assert not _has(metrics, "check_status", domain="good.test", check="alignment")
    assert not _has(metrics, "dkim_key_bits", domain="good.test", selector="ed")
    assert _has(metrics, "check_status", domain="good.test", check="spf")
    assert _has(metrics, "check_status", domain="good.test", check="dkim")
    assert _has(metrics, "spf_dns_lookups", domain="good.test")
    assert _has(metrics, "spf_void_lookups", domain="good.test")
    assert _has(metrics, "dmarc_policy", domain="good.test")
    assert _has(metrics, "dkim_key_bits", domain="good.test", selector="s2048")
    assert _has(metrics, "ptr_fcrdns_ok", ip=GOOD_IP)
    assert _has(metrics, "check_status", domain=GOOD_IP, check="ptr")


async def test_same_scope_keeps_series(resolver: dns.asyncresolver.Resolver) -> None:
    """A second audit of the same domains and IPs keeps every series."""
    metrics = Metrics(CollectorRegistry())
    await _audit(resolver, metrics, ["good.test", "clean.test"], [GOOD_IP], LEARNED)
    first = _series(metrics)

    await _audit(resolver, metrics, ["good.test", "clean.test"], [GOOD_IP], LEARNED)

    assert first
    assert _series(metrics) == first


async def test_blocklist_series_untouched(resolver: dns.asyncresolver.Resolver) -> None:
    """Removing audit series leaves the blocklist gauges alone."""
    metrics = Metrics(CollectorRegistry())
    metrics.dnsbl_zone_healthy.labels("zen.example").set(1)
    metrics.dnsbl_listed.labels("clean.test", "domain", "dbl.example").set(1)
    await _audit(resolver, metrics, ["clean.test"], [GOOD_IP])

    await _audit(resolver, metrics, ["good.test"], [])

    healthy = {"zone": "zen.example"}
    listed = {"target": "clean.test", "kind": "domain", "zone": "dbl.example"}
    registry = metrics.registry
    assert registry.get_sample_value("mailwatchdog_dnsbl_zone_healthy", healthy) == 1
    assert registry.get_sample_value("mailwatchdog_dnsbl_listed", listed) == 1
    assert not _has(metrics, "check_status", domain="clean.test", check="spf")


async def test_dead_resolver_keeps_series(
    resolver: dns.asyncresolver.Resolver,
) -> None:
    """An audit whose every lookup times out removes no series."""
    metrics = Metrics(CollectorRegistry())
    await _audit(resolver, metrics, ["good.test", "clean.test"], [GOOD_IP], LEARNED)
    first = _series(metrics)

    with run_blackhole() as blackhole:
        dead = make_resolver(
            Dns(
                nameservers=[blackhole.nameserver],
                timeout_seconds=0.2,
                lifetime_seconds=0.4,
            )
        )
        await _audit(dead, metrics, ["good.test", "clean.test"], [GOOD_IP], LEARNED)

    assert first
    assert _series(metrics) == first
