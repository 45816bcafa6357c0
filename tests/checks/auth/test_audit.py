"""run_audit: every check for a domain, and the metrics it exports."""

from __future__ import annotations

import dns.asyncresolver
import pytest
from prometheus_client import CollectorRegistry

from tests.checks.auth.zones import GOOD_IP, UNCONFIRMED_IP
from watchdog.checks.auth import Check, Finding, Status, run_audit
from watchdog.checks.auth.learned import Learned, LearnedKind
from watchdog.config import Audit, Sending, Settings
from watchdog.metrics import Metrics

pytestmark = pytest.mark.dns


def _settings(selectors: list[str] | None = None) -> Settings:
    return Settings(
        sending=Sending(
            ips=[GOOD_IP, UNCONFIRMED_IP],
            helo="mail.good.test",
            dkim_selectors=selectors or [],
        ),
        audit=Audit(allow_private_mx=True),
    )


def _sample(metrics: Metrics, name: str, labels: dict[str, str]) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def _audit(
    resolver: dns.asyncresolver.Resolver, domains: list[str], metrics: Metrics
) -> list[Finding]:
    return await run_audit(
        _settings(["s2048"]),
        domains,
        ["s1024"],
        resolver,
        learned={
            Learned(LearnedKind.DKIM_SELECTOR, "good.test", "ed"),
            Learned(LearnedKind.DKIM_SELECTOR, "other.test", "x"),
            Learned(LearnedKind.DKIM_DOMAIN, "good.test", "good.test"),
        },
        metrics=metrics,
    )


async def test_every_check_runs(resolver: dns.asyncresolver.Resolver) -> None:
    """Each check reports at least one finding for the domain."""
    findings = await _audit(resolver, ["good.test"], Metrics(CollectorRegistry()))
    checks = {finding.check for finding in findings}
    assert checks == set(Check)


async def test_selectors_merged(resolver: dns.asyncresolver.Resolver) -> None:
    """Configured, requested and learned selectors of the domain are checked."""
    findings = await _audit(resolver, ["good.test"], Metrics(CollectorRegistry()))
    subjects = {f.subject for f in findings if f.check is Check.DKIM}
    assert subjects == {"s2048", "s1024", "ed"}


async def test_metrics_exported(resolver: dns.asyncresolver.Resolver) -> None:
    """Status, SPF counts, DMARC policy, key sizes and FCrDNS are exported."""
    metrics = Metrics(CollectorRegistry())
    await _audit(resolver, ["good.test"], metrics)
    prefix = "mailwatchdog_auth_"
    domain = {"domain": "good.test"}
    assert _sample(metrics, prefix + "spf_dns_lookups", domain) == 2
    assert _sample(metrics, prefix + "spf_void_lookups", domain) == 0
    assert _sample(metrics, prefix + "dmarc_policy", domain) == 2
    key = {"domain": "good.test", "selector": "s1024"}
    assert _sample(metrics, prefix + "dkim_key_bits", key) == 1024
    assert _sample(metrics, prefix + "ptr_fcrdns_ok", {"ip": GOOD_IP}) == 1
    assert _sample(metrics, prefix + "ptr_fcrdns_ok", {"ip": UNCONFIRMED_IP}) == 0
    status = {"domain": "good.test", "check": "dkim"}
    assert _sample(metrics, prefix + "check_status", status) == 1


async def test_dead_domain_unknown(resolver: dns.asyncresolver.Resolver) -> None:
    """A domain behind a dead upstream exports status 3 and no SPF counts."""
    metrics = Metrics(CollectorRegistry())
    findings = await _audit(resolver, ["x.dead.test"], metrics)
    dead = [f for f in findings if f.domain == "x.dead.test" and f.check is Check.SPF]
    assert [f.status for f in dead] == [Status.LOOKUP_FAILED]
    labels = {"domain": "x.dead.test", "check": "spf"}
    assert _sample(metrics, "mailwatchdog_auth_check_status", labels) == 3
    spf = {"domain": "x.dead.test"}
    assert _sample(metrics, "mailwatchdog_auth_spf_dns_lookups", spf) is None
