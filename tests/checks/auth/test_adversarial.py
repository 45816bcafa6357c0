"""Hostile DNS data, hostile policy servers and hostile command lines.

A private nsd serves the whole ``test.`` zone with records built to break
the audit, and a private unbound recurses to it, with ``dead.test`` stubbed
to a closed port for failed lookups.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import dns.asyncresolver
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from typer.testing import CliRunner, Result

from tests.checks.auth.policy_server import Reply, run_policy_server
from tests.checks.auth.slow_server import POLICY, run_drip_server
from tests.checks.auth.zones import GOOD_IP, txt
from tests.servers.common import free_port
from tests.servers.dns import StubZone, Unbound, run_unbound
from tests.servers.nsd import run_nsd, zone_text
from watchdog.checks.auth import run_audit
from watchdog.checks.auth.dkim import check_dkim
from watchdog.checks.auth.dmarc import check_dmarc
from watchdog.checks.auth.findings import Check, Status
from watchdog.checks.auth.learned import Learned, LearnedKind
from watchdog.checks.auth.lookup import Lookup
from watchdog.checks.auth.mta_sts_policy import (
    HttpsPolicyFetcher,
    PolicyFetchError,
    PolicySyntaxError,
    parse_policy,
)
from watchdog.checks.auth.ptr import check_ptr
from watchdog.checks.auth.spf import check_spf
from watchdog.checks.resolver import make_resolver
from watchdog.cli import app
from watchdog.config import Dns, Sending, Settings

pytestmark = pytest.mark.dns

# DER of the rsaEncryption algorithm OID (1.2.840.113549.1.1.1) and of
# sha256WithRSAEncryption (1.2.840.113549.1.1.11), which names no key type.
RSA_KEY_OID = bytes.fromhex("06092a864886f70d010101")
SIGNATURE_OID = bytes.fromhex("06092a864886f70d01010b")
LONG_LABEL = "a" * 64


def _unknown_algorithm_key() -> str:
    key = rsa.generate_private_key(65537, 2048).public_key()
    der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der.replace(RSA_KEY_OID, SIGNATURE_OID, 1)).decode()


def _zone() -> str:
    exists = " ".join(f"exists:nx{n}.adv.test" for n in (1, 2, 3))
    return f"""
exists3.adv TXT "v=spf1 {exists} ip4:{GOOD_IP} -all"
emptylabel.adv TXT "v=spf1 include:a..b.adv.test ip4:{GOOD_IP} -all"
longlabel.adv TXT "v=spf1 a:{LONG_LABEL}.adv.test ip4:{GOOD_IP} -all"
oid._domainkey.adv {txt(f"v=DKIM1; p={_unknown_algorithm_key()}")}
bytes._domainkey.adv TXT "v=DKIM1; p=\\255\\254\\253\\252"
_dmarc.spaced.adv TXT "v=DMARC1; p=reject; rua=mailto:agg@rep.test"
spaced.adv.test._report._dmarc.rep TXT "v = DMARC1"
rep MX 10 mx.rep.test.
mx.rep A 127.0.0.1
markup.adv TXT "v=spf1 [/bogus] -all"
_dmarc.esc.adv TXT "v=DMARC1; p=reject; x=\\027[2J"
_dmarc.bimidead.adv CNAME x.dead.test.
default._bimi.bimidead.adv TXT "v=BIMI1; l=https://bimidead.adv.test/logo.svg"
rloop1.adv TXT "v=spf1 redirect=rloop2.adv.test"
rloop2.adv TXT "v=spf1 redirect=rloop1.adv.test"
half.adv A 127.0.0.15
stsdead.adv CNAME x.dead.test.
_mta-sts.stsdead.adv TXT "v=STSv1; id=a1"
"""


# 127.0.0.15 has one PTR name that confirms and one behind the dead stub.
HALF_DEAD_IP = "127.0.0.15"
REVERSE_ZONE = "0.0.127.in-addr.arpa"
REVERSE_RECORDS = """
15 PTR half.adv.test.
15 PTR x.dead.test.
"""


@pytest.fixture(scope="module")
def hostile() -> Iterator[Unbound]:
    """unbound in front of an nsd serving the hostile ``test.`` zone."""
    zones = {
        "test": zone_text("test", _zone()),
        REVERSE_ZONE: zone_text(REVERSE_ZONE, REVERSE_RECORDS),
    }
    with run_nsd(zones) as nsd:
        stubs = [
            StubZone("test", nsd.port),
            StubZone(REVERSE_ZONE, nsd.port),
            StubZone("dead.test", free_port(), ready=False),
        ]
        nodefault = ("test.", "127.in-addr.arpa.")
        with run_unbound(stubs, nodefault=nodefault) as unbound:
            yield unbound


@pytest.fixture
def resolver(hostile: Unbound) -> dns.asyncresolver.Resolver:
    """A resolver querying the hostile unbound with the daemon's timeouts."""
    return make_resolver(Dns(nameservers=[hostile.nameserver]))


async def test_exists_void_counted(resolver: dns.asyncresolver.Resolver) -> None:
    """exists: without macros queries DNS, so each NXDOMAIN is a void lookup."""
    report = await check_spf(Lookup(resolver), resolver, "exists3.adv.test", [])
    reasons = {finding.reason for finding in report.findings}
    assert report.void_lookups == 3
    assert "spf_void_limit" in reasons


@pytest.mark.parametrize("domain", ["emptylabel.adv.test", "longlabel.adv.test"])
async def test_invalid_target_not_lookup_failed(
    resolver: dns.asyncresolver.Resolver, domain: str
) -> None:
    """A target that is no valid DNS name is absent, never a failed lookup."""
    report = await check_spf(Lookup(resolver), resolver, domain, [GOOD_IP])
    statuses = {finding.status for finding in report.findings}
    assert Status.LOOKUP_FAILED not in statuses


async def test_invalid_include_missing(resolver: dns.asyncresolver.Resolver) -> None:
    """include: of an invalid name is an include without an SPF record."""
    report = await check_spf(Lookup(resolver), resolver, "emptylabel.adv.test", [])
    reasons = {finding.reason for finding in report.findings}
    assert "spf_include_missing" in reasons


async def test_redirect_loop_named(resolver: dns.asyncresolver.Resolver) -> None:
    """A loop made of redirect= is reported as a redirect loop."""
    report = await check_spf(Lookup(resolver), resolver, "rloop1.adv.test", [])
    details = [f.detail for f in report.findings if f.reason == "spf_include_loop"]
    assert details == [
        "redirect loop: rloop1.adv.test -> rloop2.adv.test -> rloop1.adv.test"
    ]


async def test_unknown_key_algorithm(resolver: dns.asyncresolver.Resolver) -> None:
    """A key whose algorithm OID names no key type is invalid, not a crash."""
    report = await check_dkim(Lookup(resolver), "adv.test", "oid")
    reasons = {finding.reason for finding in report.findings}
    assert reasons == {"dkim_invalid_key"}


async def test_non_ascii_key(resolver: dns.asyncresolver.Resolver) -> None:
    """Bytes outside ASCII in p= are reported as bad base64."""
    report = await check_dkim(Lookup(resolver), "adv.test", "bytes")
    details = [finding.detail for finding in report.findings]
    assert details == ["p= is not valid base64"]


async def test_spaced_report_authorisation(
    resolver: dns.asyncresolver.Resolver,
) -> None:
    """'v = DMARC1' at the destination authorises reports like 'v=DMARC1'."""
    report = await check_dmarc(Lookup(resolver), "spaced.adv.test")
    reasons = {finding.reason for finding in report.findings}
    assert "dmarc_report_unauthorised" not in reasons


async def test_learned_selector_not_error(
    resolver: dns.asyncresolver.Resolver,
) -> None:
    """A selector known only from a returned message, which anyone can forge,
    gives a warning when it has no key, while a configured one gives an error."""
    settings = Settings(sending=Sending(dkim_selectors=["configured"]))
    learned = {Learned(LearnedKind.DKIM_SELECTOR, "adv.test", "forged")}
    findings = await run_audit(settings, ["adv.test"], [], resolver, learned=learned)
    missing = {
        finding.subject: finding.status
        for finding in findings
        if finding.reason == "dkim_missing"
    }
    assert missing["forged"] is Status.WARNING
    assert missing["configured"] is Status.ERROR


async def _audit_findings(
    resolver: dns.asyncresolver.Resolver, domain: str, check: Check, tmp_path: Path
) -> dict[str, Status]:
    replies = {f"mta-sts.{domain}": Reply(POLICY)}
    with run_policy_server(replies, tmp_path) as (port, ca_file):
        fetcher = HttpsPolicyFetcher(
            base_url=f"https://127.0.0.1:{port}", ca_file=ca_file
        )
        findings = await run_audit(Settings(), [domain], [], resolver, fetcher=fetcher)
    return {f.reason: f.status for f in findings if f.check is check}


async def test_bimi_dmarc_unknown(
    resolver: dns.asyncresolver.Resolver, tmp_path: Path
) -> None:
    """BIMI never reports DMARC as unenforced when the DMARC lookup failed."""
    found = await _audit_findings(resolver, "bimidead.adv.test", Check.BIMI, tmp_path)
    assert "bimi_dmarc_not_enforced" not in found
    assert found.get("lookup_failed") is Status.LOOKUP_FAILED


async def test_mta_sts_mx_unknown(
    resolver: dns.asyncresolver.Resolver, tmp_path: Path
) -> None:
    """MTA-STS never reports every MX as matching when the MX lookup failed."""
    found = await _audit_findings(resolver, "stsdead.adv.test", Check.MTA_STS, tmp_path)
    assert "mta_sts_ok" not in found
    assert found.get("lookup_failed") is Status.LOOKUP_FAILED


async def test_ptr_one_name_confirms(resolver: dns.asyncresolver.Resolver) -> None:
    """One confirmed PTR name is enough, even when another name's lookup fails."""
    report = await check_ptr(Lookup(resolver), HALF_DEAD_IP, None)
    statuses = {finding.status for finding in report.findings}
    assert report.fcrdns_ok is True
    assert Status.LOOKUP_FAILED not in statuses


@pytest.mark.parametrize("max_age", ["\u00b2", "\u0661\u0662\u0663", "+86400", " "])
def test_max_age_ascii_digits(max_age: str) -> None:
    """max_age is 1 to 10 ASCII digits, so other digits raise PolicySyntaxError."""
    body = f"version: STSv1\nmode: enforce\nmx: a.test\nmax_age: {max_age}\n"
    with pytest.raises(PolicySyntaxError):
        parse_policy(body)


@pytest.mark.parametrize("drip_headers", [False, True])
async def test_dripping_server_bounded(tmp_path: Path, drip_headers: bool) -> None:
    """A server sending one byte per 0.2 s is cut off at the fetch timeout."""
    with run_drip_server(tmp_path, pause=0.2, drip_headers=drip_headers) as (
        port,
        ca_file,
    ):
        fetcher = HttpsPolicyFetcher(
            base_url=f"https://127.0.0.1:{port}", ca_file=ca_file, timeout_seconds=1
        )
        started = time.monotonic()
        with pytest.raises(PolicyFetchError, match="timed out"):
            await fetcher.fetch("good.test")
        elapsed = time.monotonic() - started
    assert elapsed < 3


async def test_huge_policy_rejected(tmp_path: Path) -> None:
    """A policy body over 64 KiB raises instead of being read to the end."""
    huge = POLICY + "# padding\n" * 200_000
    with run_policy_server({"mta-sts.good.test": Reply(huge)}, tmp_path) as (
        port,
        ca_file,
    ):
        fetcher = HttpsPolicyFetcher(
            base_url=f"https://127.0.0.1:{port}", ca_file=ca_file
        )
        with pytest.raises(PolicyFetchError, match="over 65536 bytes"):
            await fetcher.fetch("good.test")


def _run(unbound: Unbound, *args: str) -> Result:
    command = ["check", "domain", "--nameserver", unbound.nameserver, *args]
    return CliRunner().invoke(app, command)


@pytest.fixture
def _no_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_CONFIG", raising=False)
    monkeypatch.setenv("WATCHDOG_AUDIT__ALLOW_PRIVATE_MX", "true")


@pytest.mark.usefixtures("_no_config")
@pytest.mark.parametrize(
    "domain",
    [
        "",
        " ",
        "a..b.test",
        f"{'a' * 300}.test",
        ".".join(["a" * 60] * 5),
        "127.0.0.1",
        "[::1]",
        "2001:db8::1",
        "a/b.test",
        "a b.test",
    ],
)
def test_invalid_domain_usage(hostile: Unbound, domain: str) -> None:
    """A DOMAIN that is no valid host name exits 2 before any lookup."""
    result = _run(hostile, "--format", "json", "--", domain)
    assert result.exit_code == 2
    assert result.stdout == ""


@pytest.mark.usefixtures("_no_config")
@pytest.mark.parametrize("selector", ["", "a..b", LONG_LABEL])
def test_invalid_selector_usage(hostile: Unbound, selector: str) -> None:
    """A --selector that cannot form a DNS name exits 2."""
    result = _run(hostile, "--selector", selector, "adv.test")
    assert result.exit_code == 2


@pytest.mark.usefixtures("_no_config")
def test_nameserver_host_name_usage(hostile: Unbound) -> None:
    """--nameserver takes an IP address, so a host name exits 2, not 3."""
    result = CliRunner().invoke(
        app, ["check", "domain", "--nameserver", "resolver.test:53", "adv.test"]
    )
    assert result.exit_code == 2


def test_config_directory_usage(hostile: Unbound, tmp_path: Path) -> None:
    """A --config that is a directory exits 2 with a message, not a traceback."""
    result = _run(hostile, "--config", str(tmp_path), "adv.test")
    assert result.exit_code == 2
    assert "could not be read" in result.output


@pytest.mark.usefixtures("_no_config")
def test_idn_queried_as_a_label(hostile: Unbound) -> None:
    """A Unicode domain is audited under its A-label."""
    result = _run(hostile, "--format", "json", "b\u00fccher.adv.test")
    domains = {json.loads(line)["domain"] for line in result.stdout.splitlines()}
    assert domains == {"xn--bcher-kva.adv.test"}
    assert result.exit_code == 1


@pytest.mark.usefixtures("_no_config")
def test_table_markup_literal(hostile: Unbound) -> None:
    """Rich markup inside DNS data is printed as text, not parsed."""
    result = _run(hostile, "markup.adv.test")
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "[/bogus]" in result.stdout
    assert result.exit_code == 1


@pytest.mark.usefixtures("_no_config")
def test_table_control_characters(hostile: Unbound) -> None:
    """Escape sequences inside DNS data never reach the terminal."""
    result = _run(hostile, "esc.adv.test")
    assert "esc.adv.test" in result.stdout
    assert "\x1b" not in result.stdout
