"""TLS-RPT and BIMI records."""

from __future__ import annotations

import dns.asyncresolver
import pytest

from watchdog.checks.auth.bimi import check_bimi
from watchdog.checks.auth.dmarc import check_dmarc
from watchdog.checks.auth.findings import Status
from watchdog.checks.auth.lookup import Lookup
from watchdog.checks.auth.tls_rpt import check_tls_rpt

pytestmark = pytest.mark.dns


@pytest.mark.parametrize(
    ("domain", "mta_sts", "reason", "status"),
    [
        ("good.test", True, "tls_rpt_ok", Status.OK),
        ("nothere.test", True, "tls_rpt_missing", Status.WARNING),
        ("nothere.test", False, "tls_rpt_missing", Status.OK),
        ("badrpt.test", False, "tls_rpt_invalid", Status.ERROR),
        ("x.dead.test", False, "lookup_failed", Status.LOOKUP_FAILED),
    ],
)
async def test_tls_rpt(
    resolver: dns.asyncresolver.Resolver,
    domain: str,
    mta_sts: bool,
    reason: str,
    status: Status,
) -> None:
    """The record is checked, and its absence matters only with MTA-STS."""
    findings = await check_tls_rpt(Lookup(resolver), domain, mta_sts=mta_sts)
    assert [(f.reason, f.status) for f in findings] == [(reason, status)]


@pytest.mark.parametrize(
    ("domain", "reason", "status"),
    [
        ("good.test", "bimi_ok", Status.OK),
        ("mid.good.test", "bimi_dmarc_not_enforced", Status.WARNING),
        ("declined.test", "bimi_declined", Status.OK),
        ("nothere.test", "bimi_missing", Status.OK),
    ],
)
async def test_bimi(
    resolver: dns.asyncresolver.Resolver, domain: str, reason: str, status: Status
) -> None:
    """BIMI is informational but needs an enforcing DMARC policy."""
    lookup = Lookup(resolver)
    dmarc = await check_dmarc(lookup, domain)
    findings = await check_bimi(lookup, domain, dmarc.policy, dmarc.record)
    assert [(f.reason, f.status) for f in findings] == [(reason, status)]
