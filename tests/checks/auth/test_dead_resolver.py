"""The audit against a resolver that drops every packet, and one that is slow."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import dns.asyncresolver
import pytest
from typer.testing import CliRunner

from tests.checks.auth.udp_resolvers import (
    UdpResolver,
    run_blackhole,
    run_slow_forwarder,
)
from tests.checks.auth.zones import GOOD_IP, UNCONFIRMED_IP
from tests.servers.dns import Unbound
from watchdog.checks.auth import Finding, Status, run_audit
from watchdog.checks.resolver import make_resolver
from watchdog.cli import app
from watchdog.config import Audit, Dns, Sending, Settings

pytestmark = pytest.mark.dns

LIFETIME = 1.0
# Without the cut-off, an audit of one domain waits for about four
# lifetimes in a row (SPF/DMARC/MX/PTR, MTA-STS, TLS-RPT, BIMI). The
# margin above one lifetime is for a loaded test machine.
MAX_AUDIT_SECONDS = 2.5 * LIFETIME


@pytest.fixture
def blackhole() -> Iterator[UdpResolver]:
    """A UDP socket on 127.0.0.1 that reads every query and never replies."""
    with run_blackhole() as server:
        yield server


def _settings() -> Settings:
    return Settings(
        sending=Sending(
            ips=[GOOD_IP, UNCONFIRMED_IP],
            helo="mail.good.test",
            dkim_selectors=["s2048"],
        ),
        audit=Audit(allow_private_mx=True),
    )


def _resolver(
    nameserver: str, timeout: float, lifetime: float
) -> dns.asyncresolver.Resolver:
    settings = Dns(
        nameservers=[nameserver], timeout_seconds=timeout, lifetime_seconds=lifetime
    )
    return make_resolver(settings)


async def _audit(resolver: dns.asyncresolver.Resolver) -> list[Finding]:
    return await run_audit(_settings(), ["good.test", "clean.test"], [], resolver)


async def test_blackhole_audit_fast(blackhole: UdpResolver) -> None:
    """The audit stops sending after the first timeouts, about one lifetime in."""
    resolver = _resolver(blackhole.nameserver, LIFETIME / 2, LIFETIME)
    started = time.monotonic()
    findings = await _audit(resolver)
    elapsed = time.monotonic() - started

    assert elapsed < MAX_AUDIT_SECONDS
    assert findings
    assert all(f.status is Status.LOOKUP_FAILED for f in findings), findings
    reasons = {f.reason for f in findings}
    assert reasons == {"lookup_failed", "resolver_unreachable"}
    unsent = [f for f in findings if f.reason == "resolver_unreachable"]
    assert {f.check.value for f in unsent} >= {"mta_sts", "tls_rpt", "bimi"}
    for finding in unsent:
        assert "not sent" in finding.detail
        assert "unknown, not absent" in finding.detail
    # No query of the later steps (MTA-STS, TLS-RPT, BIMI) went out.
    assert not any("_mta-sts" in name for name in blackhole.received)
    assert not any("_smtp._tls" in name for name in blackhole.received)
    assert not any("_bimi" in name for name in blackhole.received)


async def test_slow_resolver_answers(unbound: Unbound) -> None:
    """A resolver that answers every query late is never taken as unreachable."""
    direct = await _audit(_resolver(unbound.nameserver, 1.0, 3.0))
    with run_slow_forwarder(unbound.port, delay=0.6) as slow:
        through_slow = await _audit(_resolver(slow.nameserver, 1.0, 3.0))

    def outcome(findings: list[Finding]) -> set[tuple[str, str, str, str]]:
        return {(f.domain, f.check.value, f.reason, f.subject) for f in findings}

    assert outcome(through_slow) == outcome(direct)
    assert not any(f.status is Status.LOOKUP_FAILED for f in through_slow)


async def test_slow_resolver_one_dead_name(unbound: Unbound) -> None:
    """Timeouts of single names among late answers fail only those lookups."""
    drop = frozenset({"_mta-sts.good.test.", "_mta-sts.clean.test."})
    with run_slow_forwarder(unbound.port, delay=0.3, drop=drop) as slow:
        findings = await _audit(_resolver(slow.nameserver, 0.5, 1.0))

    failed = {
        (f.domain, f.check.value, f.reason)
        for f in findings
        if f.status is Status.LOOKUP_FAILED
    }
    assert failed == {
        ("good.test", "mta_sts", "lookup_failed"),
        ("clean.test", "mta_sts", "lookup_failed"),
    }


def test_cli_blackhole(blackhole: UdpResolver, monkeypatch: pytest.MonkeyPatch) -> None:
    """check domain against a blackhole exits 3 with unsent lookups."""
    monkeypatch.delenv("WATCHDOG_CONFIG", raising=False)
    monkeypatch.setenv("WATCHDOG_DNS__TIMEOUT_SECONDS", str(LIFETIME / 2))
    monkeypatch.setenv("WATCHDOG_DNS__LIFETIME_SECONDS", str(LIFETIME))
    command = [
        "check",
        "domain",
        "example.test",
        "--nameserver",
        blackhole.nameserver,
        "--format",
        "json",
    ]
    result = CliRunner().invoke(app, command)

    # The run time is measured by test_blackhole_audit_fast, because here it
    # includes the command's first imports.
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.exit_code == 3
    assert "resolver_unreachable" in {row["reason"] for row in rows}
    assert not any(row["status"] == "ok" for row in rows)
    assert not any("_mta-sts" in name for name in blackhole.received)


async def test_lame_domain_spares_others(unbound: Unbound) -> None:
    """A domain whose nameservers drop every query does not stop other lookups."""
    drop = frozenset({"lame.test."})
    with run_slow_forwarder(unbound.port, delay=0.0, drop=drop) as forwarder:
        resolver = _resolver(forwarder.nameserver, LIFETIME / 2, LIFETIME)
        findings = await run_audit(
            _settings(), ["lame.test", "clean.test"], [], resolver
        )

    lame = [f for f in findings if f.domain == "lame.test"]
    others = [f for f in findings if f.domain != "lame.test"]
    assert lame
    assert all(
        f.status is Status.LOOKUP_FAILED for f in lame if f.check.value != "dkim"
    )
    assert others
    assert not any(f.status is Status.LOOKUP_FAILED for f in others), others
    ptr = [f for f in others if f.check.value == "ptr"]
    assert {f.subject for f in ptr} == {GOOD_IP, UNCONFIRMED_IP}
