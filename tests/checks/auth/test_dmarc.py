"""DMARC discovery (RFC 7489 and the RFC 9989 tree walk) and record checks."""

from __future__ import annotations

import dns.asyncresolver
import pytest

from watchdog.checks.auth.dmarc import DmarcReport, check_dmarc
from watchdog.checks.auth.dmarc_discovery import (
    discover_tree_walk,
    is_dmarc_record,
    organisational_domain,
    tree_walk_names,
)
from watchdog.checks.auth.findings import Status
from watchdog.checks.auth.lookup import Lookup

pytestmark = pytest.mark.dns


async def _dmarc(resolver: dns.asyncresolver.Resolver, domain: str) -> DmarcReport:
    return await check_dmarc(Lookup(resolver), domain)


def _found(report: DmarcReport) -> dict[str, Status]:
    return {finding.reason: finding.status for finding in report.findings}


async def test_good_policy(resolver: dns.asyncresolver.Resolver) -> None:
    """A reject policy with an authorised external destination is ok."""
    report = await _dmarc(resolver, "good.test")
    assert report.policy == "reject"
    assert report.found_at == "good.test"
    assert {status for status in _found(report).values()} == {Status.OK}


async def test_subdomain_inherits(resolver: dns.asyncresolver.Resolver) -> None:
    """A subdomain without a record uses its organisational domain's policy."""
    report = await _dmarc(resolver, "news.good.test")
    assert report.found_at == "good.test"
    assert report.policy == "reject"
    assert _found(report)["dmarc_discovery"] is Status.OK


async def test_long_name_walk(resolver: dns.asyncresolver.Resolver) -> None:
    """A 10-label name jumps to 7 labels and finds the record in 7 queries."""
    lookup = Lookup(resolver)
    discovery = await discover_tree_walk(lookup, "a.b.c.d.e.f.g.h.good.test")
    assert discovery.found_at == "good.test"
    assert discovery.queries == 7


def test_walk_names_bounded() -> None:
    """The walk never makes more than 8 queries."""
    names = tree_walk_names("a.b.c.d.e.f.g.h.i.j.k.l.example.test")
    assert len(names) == 8
    assert names[1] == "h.i.j.k.l.example.test"
    assert names[-1] == "test"


async def test_methods_disagree(resolver: dns.asyncresolver.Resolver) -> None:
    """A record between the domain and its organisational domain splits the methods."""
    report = await _dmarc(resolver, "x.mid.good.test")
    found = _found(report)
    assert found["dmarc_discovery_differs"] is Status.WARNING
    assert report.found_at == "mid.good.test"
    assert report.policy == "none"


async def test_public_suffix_policy(resolver: dns.asyncresolver.Resolver) -> None:
    """Only the tree walk finds a psd=y record at the public suffix."""
    report = await _dmarc(resolver, "shop.psdtest")
    found = _found(report)
    assert found["dmarc_psd_policy"] is Status.WARNING
    assert found["dmarc_discovery_differs"] is Status.WARNING
    assert report.policy == "quarantine"


@pytest.mark.parametrize(
    ("domain", "reason", "status"),
    [
        ("nothere.test", "dmarc_missing", Status.ERROR),
        ("twodmarc.test", "dmarc_multiple", Status.ERROR),
        ("pct0.test", "dmarc_pct_zero", Status.ERROR),
        ("pct0.test", "dmarc_removed_tag", Status.WARNING),
        ("mid.good.test", "dmarc_policy_none", Status.WARNING),
        ("casebad.test", "dmarc_missing", Status.ERROR),
        ("spaced.test", "dmarc_version_case", Status.WARNING),
        ("subnone.test", "dmarc_sp_none", Status.WARNING),
        ("unauth.test", "dmarc_report_unauthorised", Status.WARNING),
    ],
)
async def test_record_defects(
    resolver: dns.asyncresolver.Resolver, domain: str, reason: str, status: Status
) -> None:
    """Each defect gives its reason at its level."""
    found = _found(await _dmarc(resolver, domain))
    assert reason in found
    assert found[reason] is status


async def test_two_records_no_policy(resolver: dns.asyncresolver.Resolver) -> None:
    """Two records mean no policy applies."""
    report = await _dmarc(resolver, "twodmarc.test")
    assert report.policy is None


async def test_spaces_around_equals(resolver: dns.asyncresolver.Resolver) -> None:
    """'V = DMARC1' is a record, and sp applies only to subdomains."""
    report = await _dmarc(resolver, "spaced.test")
    assert report.policy == "quarantine"
    sub = await _dmarc(resolver, "a.spaced.test")
    assert sub.policy == "reject"


async def test_dead_upstream(resolver: dns.asyncresolver.Resolver) -> None:
    """A failed lookup is lookup_failed, never dmarc_missing."""
    report = await _dmarc(resolver, "x.dead.test")
    assert _found(report) == {"lookup_failed": Status.LOOKUP_FAILED}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v=DMARC1; p=none", True),
        ("V=DMARC1; p=none", True),
        ("v = DMARC1 ;p=none", True),
        ("v=dmarc1; p=none", False),
        ("p=none; v=DMARC1", False),
        ("v=spf1 -all", False),
    ],
)
def test_record_selection(text: str, expected: bool) -> None:
    """The value DMARC1 is case-sensitive and must be the first tag."""
    assert is_dmarc_record(text) is expected


def test_organisational_domain() -> None:
    """The Public Suffix List shipped with publicsuffixlist decides."""
    assert organisational_domain("a.b.example.co.uk") == "example.co.uk"
    assert organisational_domain("x.good.test") == "good.test"
