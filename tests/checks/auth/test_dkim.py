"""The DKIM key check against keys generated for this session."""

from __future__ import annotations

import dns.asyncresolver
import pytest

from watchdog.checks.auth.dkim import DkimReport, check_dkim, key_bits, parse_tags
from watchdog.checks.auth.findings import Status
from watchdog.checks.auth.lookup import Lookup

pytestmark = pytest.mark.dns


async def _dkim(resolver: dns.asyncresolver.Resolver, selector: str) -> DkimReport:
    return await check_dkim(Lookup(resolver), "good.test", selector)


def _found(report: DkimReport) -> dict[str, Status]:
    return {finding.reason: finding.status for finding in report.findings}


async def test_rsa2048_ok(resolver: dns.asyncresolver.Resolver) -> None:
    """A 2048-bit key split over several strings is valid."""
    report = await _dkim(resolver, "s2048")
    assert report.key_bits == 2048
    assert _found(report) == {"dkim_ok": Status.OK}


async def test_rsa1024_warns(resolver: dns.asyncresolver.Resolver) -> None:
    """A 1024-bit key is a warning."""
    report = await _dkim(resolver, "s1024")
    assert report.key_bits == 1024
    assert _found(report) == {"dkim_key_size": Status.WARNING}


async def test_rsa512_fails(resolver: dns.asyncresolver.Resolver) -> None:
    """A key under 1024 bits is an error."""
    report = await _dkim(resolver, "s512")
    assert report.key_bits == 512
    assert _found(report) == {"dkim_key_size": Status.ERROR}


async def test_ed25519_ok(resolver: dns.asyncresolver.Resolver) -> None:
    """An Ed25519 key is valid at 256 bits."""
    report = await _dkim(resolver, "ed")
    assert report.key_bits == 256
    assert _found(report) == {"dkim_ok": Status.OK}


async def test_revoked_key(resolver: dns.asyncresolver.Resolver) -> None:
    """An empty p= is a revoked key."""
    report = await _dkim(resolver, "old")
    assert _found(report) == {"dkim_revoked": Status.ERROR}
    assert report.key_bits is None


async def test_testing_and_sha1(resolver: dns.asyncresolver.Resolver) -> None:
    """t=y and h=sha1 are warnings."""
    found = _found(await _dkim(resolver, "testing"))
    assert found["dkim_testing"] is Status.WARNING
    assert found["dkim_sha1"] is Status.WARNING


async def test_undecodable_key(resolver: dns.asyncresolver.Resolver) -> None:
    """A p= that is base64 but no key is an error."""
    found = _found(await _dkim(resolver, "garbage"))
    assert found == {"dkim_invalid_key": Status.ERROR}


async def test_version_not_first(resolver: dns.asyncresolver.Resolver) -> None:
    """v=DKIM1 after another tag is an error (RFC 6376 section 3.6.1)."""
    found = _found(await _dkim(resolver, "late"))
    assert found == {"dkim_version": Status.ERROR}


async def test_cname_to_esp(resolver: dns.asyncresolver.Resolver) -> None:
    """A CNAME to an ESP's key is followed and noted."""
    report = await _dkim(resolver, "esp")
    found = _found(report)
    assert found["dkim_cname"] is Status.OK
    assert report.key_bits == 2048


async def test_missing_selector(resolver: dns.asyncresolver.Resolver) -> None:
    """A configured selector without a record is an error."""
    found = _found(await _dkim(resolver, "nosuch"))
    assert found == {"dkim_missing": Status.ERROR}


async def test_dead_upstream(resolver: dns.asyncresolver.Resolver) -> None:
    """A failed lookup is lookup_failed, never dkim_missing."""
    report = await check_dkim(Lookup(resolver), "x.dead.test", "s1")
    assert _found(report) == {"lookup_failed": Status.LOOKUP_FAILED}


@pytest.mark.parametrize(
    ("key_type", "value"),
    [("rsa", "!!!"), ("rsa", "bm90IGEga2V5"), ("ed25519", "AAAA"), ("dsa", "AAAA")],
)
def test_key_bits_rejects(key_type: str, value: str) -> None:
    """Bad base64, non-keys, short Ed25519 keys and unknown types raise ValueError."""
    with pytest.raises(ValueError, match=r"\S"):
        key_bits(key_type, value)


def test_parse_tags_whitespace() -> None:
    """Whitespace around tags is dropped and the first occurrence wins."""
    tags = parse_tags(" v = DKIM1 ; p = abc ; p = other ")
    assert tags == {"v": "DKIM1", "p": "abc"}
