"""The lookup layer: records, absent answers and failures stay distinct."""

from __future__ import annotations

import dns.asyncresolver
import pytest

from watchdog.checks.auth.lookup import Lookup
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
