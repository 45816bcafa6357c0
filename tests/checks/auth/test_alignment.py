"""The DMARC alignment check against the adkim and aspf of real DMARC records."""

from __future__ import annotations

from pathlib import Path

import dns.asyncresolver
import pytest

from watchdog.checks.auth import Check, Finding, Status, run_audit, worst
from watchdog.checks.auth.alignment import is_aligned
from watchdog.checks.auth.learned import Learned, LearnedKind, learn_from_message
from watchdog.config import Sending, Settings

DKIM = LearnedKind.DKIM_DOMAIN
RETURN_PATH = LearnedKind.RETURN_PATH


def test_relaxed_and_strict() -> None:
    """Relaxed compares organisational domains, strict the names."""
    assert is_aligned("mail.good.example", "good.example", "r")
    assert not is_aligned("mail.good.example", "good.example", "s")
    assert is_aligned("good.example", "good.example", "s")
    assert not is_aligned("esp.example", "good.example", "r")
    # Two registrations under the public suffix co.uk are different owners.
    assert not is_aligned("a.co.uk", "b.co.uk", "r")
    assert is_aligned("x.a.co.uk", "a.co.uk", "r")


async def _alignment(
    resolver: dns.asyncresolver.Resolver,
    domain: str,
    learned: set[Learned],
    return_path_domains: list[str] | None = None,
) -> list[Finding]:
    settings = Settings(sending=Sending(return_path_domains=return_path_domains or []))
    findings = await run_audit(settings, [domain], [], resolver, learned=learned)
    return [finding for finding in findings if finding.check is Check.ALIGNMENT]


def _reasons(findings: list[Finding]) -> dict[tuple[str, str], Status]:
    return {(f.reason, f.subject): f.status for f in findings}


@pytest.mark.dns
async def test_strict_subdomains_fail(resolver: dns.asyncresolver.Resolver) -> None:
    """adkim=s aspf=s: subdomain signer and Return-Path both fail, so DMARC fails."""
    learned = {
        Learned(DKIM, "strict.test", "mail.strict.test"),
        Learned(RETURN_PATH, "strict.test", "bounce.strict.test"),
    }
    findings = await _alignment(resolver, "strict.test", learned)
    reasons = _reasons(findings)
    assert reasons[("alignment_dkim_unaligned", "mail.strict.test")] is Status.WARNING
    assert reasons[("alignment_spf_unaligned", "bounce.strict.test")] is Status.WARNING
    assert reasons[("alignment_fails", "")] is Status.ERROR
    assert worst(findings) is Status.ERROR


@pytest.mark.dns
async def test_relaxed_subdomains_ok(resolver: dns.asyncresolver.Resolver) -> None:
    """adkim=r aspf=r: subdomains of the From domain align."""
    learned = {
        Learned(DKIM, "relaxed.test", "mail.relaxed.test"),
        Learned(RETURN_PATH, "relaxed.test", "bounce.relaxed.test"),
    }
    findings = await _alignment(resolver, "relaxed.test", learned)
    assert {f.reason for f in findings} == {"alignment_dkim_ok", "alignment_spf_ok"}
    assert worst(findings) is Status.OK


@pytest.mark.dns
async def test_mixed_modes_warn(resolver: dns.asyncresolver.Resolver) -> None:
    """adkim=s aspf=r: DKIM of a subdomain fails, SPF of one passes."""
    learned = {
        Learned(DKIM, "mixed.test", "mail.mixed.test"),
        Learned(RETURN_PATH, "mixed.test", "bounce.mixed.test"),
    }
    findings = await _alignment(resolver, "mixed.test", learned)
    reasons = _reasons(findings)
    assert reasons[("alignment_dkim_unaligned", "mail.mixed.test")] is Status.WARNING
    assert reasons[("alignment_spf_ok", "bounce.mixed.test")] is Status.OK
    assert worst(findings) is Status.WARNING


@pytest.mark.dns
async def test_invalid_mode_is_relaxed(resolver: dns.asyncresolver.Resolver) -> None:
    """adkim=x is treated as relaxed, as receivers do."""
    learned = {Learned(DKIM, "badmode.test", "mail.badmode.test")}
    findings = await _alignment(resolver, "badmode.test", learned)
    assert _reasons(findings) == {("alignment_dkim_ok", "mail.badmode.test"): Status.OK}


@pytest.mark.dns
async def test_no_observation_no_finding(resolver: dns.asyncresolver.Resolver) -> None:
    """Nothing learned for the domain: no alignment finding at all."""
    learned = {Learned(DKIM, "other.test", "esp.example")}
    assert await _alignment(resolver, "strict.test", learned) == []


@pytest.mark.dns
async def test_configured_return_path(resolver: dns.asyncresolver.Resolver) -> None:
    """sending.return_path_domains is judged with the learned values."""
    learned = {Learned(DKIM, "relaxed.test", "relaxed.test")}
    findings = await _alignment(
        resolver, "relaxed.test", learned, return_path_domains=["bounces.esp.example"]
    )
    reasons = _reasons(findings)
    assert reasons[("alignment_spf_unaligned", "bounces.esp.example")] is (
        Status.WARNING
    )
    assert reasons[("alignment_dkim_ok", "relaxed.test")] is Status.OK
    spf = next(f for f in findings if f.subject == "bounces.esp.example")
    assert "sending.return_path_domains" in spf.detail


@pytest.mark.dns
async def test_dead_resolver_lookup_failed(
    resolver: dns.asyncresolver.Resolver,
) -> None:
    """Without the DMARC record the modes are unknown: lookup_failed."""
    learned = {Learned(DKIM, "dead.test", "esp.example")}
    findings = await _alignment(resolver, "dead.test", learned)
    assert [f.status for f in findings] == [Status.LOOKUP_FAILED]


@pytest.mark.dns
async def test_bounce_to_alignment_error(
    resolver: dns.asyncresolver.Resolver, corpus_dir: Path
) -> None:
    """A real bounce of our mail, signed by a subdomain and sent with a
    subdomain Return-Path, fails alignment under adkim=s aspf=s."""
    raw = (corpus_dir / "emails/rhost-gsuite/rhost-gsuite-07.eml").read_bytes()
    raw = raw.replace(b"d=gmail.example.com;", b"d=mail.strict.test;")
    raw = raw.replace(b"kijitora@gmail.example.com", b"news@strict.test")
    raw = raw.replace(
        b"Delivered-To: news@strict.test", b"Delivered-To: b@b.strict.test"
    )
    learned = learn_from_message(
        raw, ["strict.test"], delivered_to_envelope_sender=True, links=False
    )
    findings = await _alignment(resolver, "strict.test", learned)
    reasons = _reasons(findings)
    assert reasons[("alignment_dkim_unaligned", "mail.strict.test")] is Status.WARNING
    assert reasons[("alignment_spf_unaligned", "b.strict.test")] is Status.WARNING
    assert reasons[("alignment_fails", "")] is Status.ERROR
