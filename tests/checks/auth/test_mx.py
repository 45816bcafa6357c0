"""The MX check against nsd through unbound."""

from __future__ import annotations

import dns.asyncresolver
import pytest

from watchdog.checks.auth.findings import Status
from watchdog.checks.auth.lookup import Lookup
from watchdog.checks.auth.mx import MxReport, check_mx

pytestmark = pytest.mark.dns


async def _mx(
    resolver: dns.asyncresolver.Resolver, domain: str, allow_private: bool = True
) -> MxReport:
    return await check_mx(Lookup(resolver), domain, allow_private=allow_private)


def _found(report: MxReport) -> dict[str, Status]:
    return {finding.reason: finding.status for finding in report.findings}


async def test_good_mx(resolver: dns.asyncresolver.Resolver) -> None:
    """An MX host with an address is ok when private addresses are allowed."""
    report = await _mx(resolver, "good.test")
    assert _found(report) == {"mx_ok": Status.OK}
    assert report.hosts == ["mail.good.test"]


async def test_loopback_rejected(resolver: dns.asyncresolver.Resolver) -> None:
    """By default a loopback MX address is an error."""
    found = _found(await _mx(resolver, "good.test", allow_private=False))
    assert found == {"mx_private_address": Status.ERROR}


async def test_null_mx(resolver: dns.asyncresolver.Resolver) -> None:
    """'0 .' declares that the domain receives no mail."""
    report = await _mx(resolver, "nullmx.test")
    assert report.null_mx
    assert _found(report) == {"mx_null": Status.OK}


@pytest.mark.parametrize(
    ("domain", "reason", "status"),
    [
        ("implicit.test", "mx_implicit", Status.WARNING),
        ("nothere.test", "mx_missing", Status.ERROR),
        ("ipmx.test", "mx_ip_literal", Status.ERROR),
        ("cnamemx.test", "mx_cname", Status.WARNING),
        ("deadmx.test", "mx_unresolved", Status.ERROR),
    ],
)
async def test_mx_defects(
    resolver: dns.asyncresolver.Resolver, domain: str, reason: str, status: Status
) -> None:
    """Each defect gives its reason at its level."""
    found = _found(await _mx(resolver, domain))
    assert reason in found
    assert found[reason] is status


async def test_dead_upstream(resolver: dns.asyncresolver.Resolver) -> None:
    """A failed lookup is lookup_failed, never mx_missing."""
    found = _found(await _mx(resolver, "x.dead.test"))
    assert found == {"lookup_failed": Status.LOOKUP_FAILED}
