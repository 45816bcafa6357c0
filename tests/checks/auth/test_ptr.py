"""The PTR and forward-confirmed reverse DNS check."""

from __future__ import annotations

import dns.asyncresolver
import pytest

from tests.checks.auth.zones import (
    GENERIC_IP,
    GOOD_IP,
    GOOD_IPV6,
    NO_PTR_IP,
    TWO_PTR_IP,
    UNCONFIRMED_IP,
)
from watchdog.checks.auth.findings import Status
from watchdog.checks.auth.lookup import Lookup
from watchdog.checks.auth.ptr import PtrReport, check_ptr, is_generic_name

pytestmark = pytest.mark.dns


async def _ptr(
    resolver: dns.asyncresolver.Resolver, ip: str, helo: str = "mail.good.test"
) -> PtrReport:
    return await check_ptr(Lookup(resolver), ip, helo)


def _found(report: PtrReport) -> dict[str, Status]:
    return {finding.reason: finding.status for finding in report.findings}


async def test_confirmed(resolver: dns.asyncresolver.Resolver) -> None:
    """A PTR whose name resolves back to the IP is ok."""
    report = await _ptr(resolver, GOOD_IP)
    assert report.fcrdns_ok is True
    assert _found(report) == {"ptr_ok": Status.OK}


async def test_ipv6_confirmed(resolver: dns.asyncresolver.Resolver) -> None:
    """An IPv6 PTR confirmed by AAAA is ok."""
    report = await _ptr(resolver, GOOD_IPV6)
    assert report.fcrdns_ok is True
    assert _found(report) == {"ptr_ok": Status.OK}


async def test_not_confirmed(resolver: dns.asyncresolver.Resolver) -> None:
    """A PTR name resolving elsewhere is an error."""
    report = await _ptr(resolver, UNCONFIRMED_IP)
    assert report.fcrdns_ok is False
    assert _found(report) == {"ptr_not_confirmed": Status.ERROR}


async def test_missing(resolver: dns.asyncresolver.Resolver) -> None:
    """No PTR at all is an error."""
    report = await _ptr(resolver, NO_PTR_IP)
    assert report.fcrdns_ok is False
    assert _found(report) == {"ptr_missing": Status.ERROR}


async def test_generic(resolver: dns.asyncresolver.Resolver) -> None:
    """A name with the address digits and 'dyn' is a warning."""
    report = await _ptr(resolver, GENERIC_IP)
    assert report.fcrdns_ok is True
    assert _found(report) == {"ptr_generic": Status.WARNING}


async def test_two_ptrs(resolver: dns.asyncresolver.Resolver) -> None:
    """Two PTR records warn, and each may confirm."""
    report = await _ptr(resolver, TWO_PTR_IP)
    assert report.fcrdns_ok is True
    assert _found(report) == {"ptr_multiple": Status.WARNING}


async def test_helo_mismatch(resolver: dns.asyncresolver.Resolver) -> None:
    """A PTR name outside the HELO name's domain warns."""
    found = _found(await _ptr(resolver, GOOD_IP, helo="mx.other.test"))
    assert found == {"ptr_helo_mismatch": Status.WARNING}


@pytest.mark.parametrize(
    ("ip", "name", "expected"),
    [
        ("192.0.2.10", "192-0-2-10.static.isp.test", True),
        ("192.0.2.10", "10.2.0.192.isp.test", True),
        ("192.0.2.10", "pool-12.isp.test", True),
        ("192.0.2.10", "dhcp.isp.test", True),
        ("192.0.2.10", "mail.good.test", False),
        ("192.0.2.10", "mx2.good.test", False),
    ],
)
def test_generic_names(ip: str, name: str, expected: bool) -> None:
    """Address digits and dyn/dhcp/pool words mark generic names."""
    assert is_generic_name(ip, name) is expected
