"""The DMARC identifier alignment check (RFC 7489 section 3.1).

DMARC passes only when DKIM or SPF passes for a domain aligned with the
From domain: the DKIM ``d=`` domain, or the envelope sender (Return-Path)
domain that SPF checks. Relaxed mode (``adkim=r``, ``aspf=r``, the default)
requires the same organisational domain, strict mode (``s``) the same name.

DNS shows neither identifier, so the check judges the ``d=`` and
Return-Path domains learned from our own mail quoted in bounces, plus
``sending.return_path_domains``. Without such an observation it reports
nothing.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from watchdog.checks.auth.dkim import parse_tags
from watchdog.checks.auth.dmarc import DmarcReport
from watchdog.checks.auth.dmarc_discovery import organisational_domain
from watchdog.checks.auth.findings import Check, Finding, Status
from watchdog.checks.auth.learned import Learned, LearnedKind

RELAXED = "r"
STRICT = "s"
_MODE_NAMES = {RELAXED: "relaxed", STRICT: "strict"}


@dataclass(frozen=True)
class Identifiers:
    """The DKIM ``d=`` and Return-Path domains seen with one From domain.

    ``configured`` are the Return-Path domains from the settings, judged
    like the learned ones but named as configured in the findings.
    """

    dkim: frozenset[str]
    return_paths: frozenset[str]
    configured: frozenset[str] = frozenset()


def identifiers_for(
    domain: str, learned: Collection[Learned], configured: Collection[str]
) -> Identifiers:
    """Collect the identifiers learned with From domain ``domain``.

    NOTE: only mail whose From domain is exactly ``domain`` counts. Mail
    from a subdomain is judged only when that subdomain is audited itself.
    """
    dkim = {
        item.value
        for item in learned
        if item.kind is LearnedKind.DKIM_DOMAIN and item.domain == domain
    }
    return_paths = {
        item.value
        for item in learned
        if item.kind is LearnedKind.RETURN_PATH and item.domain == domain
    }
    return Identifiers(frozenset(dkim), frozenset(return_paths), frozenset(configured))


def is_aligned(identifier: str, from_domain: str, mode: str) -> bool:
    """Tell whether ``identifier`` aligns with ``from_domain`` under ``mode``.

    Relaxed mode compares organisational domains taken from the Public
    Suffix List, strict mode compares the names.
    """
    if mode == STRICT:
        return identifier == from_domain
    return organisational_domain(identifier) == organisational_domain(from_domain)


def alignment_modes(dmarc: DmarcReport) -> tuple[str, str]:
    """Return ``(adkim, aspf)`` of the domain's DMARC record.

    A missing record, a missing tag or an invalid value means relaxed, as
    receivers treat them. The DMARC check reports the invalid value.
    """
    tags = parse_tags(dmarc.record or "")
    modes = []
    for tag in ("adkim", "aspf"):
        value = tags.get(tag, RELAXED).lower()
        modes.append(value if value in _MODE_NAMES else RELAXED)
    return modes[0], modes[1]


def check_alignment(
    domain: str, dmarc: DmarcReport, identifiers: Identifiers
) -> list[Finding]:
    """Judge each identifier seen with From domain ``domain``.

    ``ok`` for an aligned identifier, ``warning`` for one that does not
    align, and ``error`` when identifiers of both kinds were seen and none
    aligns, because DMARC then fails for that mail. Returns nothing when
    no identifier was seen, and ``lookup_failed`` when the DMARC lookup
    failed, because the modes are unknown.
    """
    return_paths = identifiers.return_paths | identifiers.configured
    if not identifiers.dkim and not return_paths:
        return []
    if dmarc.record is None and any(
        finding.status is Status.LOOKUP_FAILED for finding in dmarc.findings
    ):
        detail = "the DMARC lookup failed, so adkim and aspf are unknown"
        return [_finding(domain, Status.LOOKUP_FAILED, "lookup_failed", detail)]

    adkim, aspf = alignment_modes(dmarc)
    findings: list[Finding] = []
    dkim_aligned = False
    for signer in sorted(identifiers.dkim):
        aligned = is_aligned(signer, domain, adkim)
        dkim_aligned = dkim_aligned or aligned
        findings.append(_dkim_finding(domain, signer, adkim, aligned=aligned))
    spf_aligned = False
    for envelope in sorted(return_paths):
        aligned = is_aligned(envelope, domain, aspf)
        spf_aligned = spf_aligned or aligned
        source = "configured" if envelope in identifiers.configured else "learned"
        findings.append(_spf_finding(domain, envelope, aspf, source, aligned=aligned))

    if identifiers.dkim and return_paths and not dkim_aligned and not spf_aligned:
        detail = (
            f"neither DKIM (adkim={adkim}) nor SPF (aspf={aspf}) can align with "
            f"From domain {domain}, so DMARC fails for this mail: sign with "
            f"d={domain} or use a Return-Path under it"
        )
        findings.append(_finding(domain, Status.ERROR, "alignment_fails", detail))
    return findings


def _dkim_finding(domain: str, signer: str, mode: str, *, aligned: bool) -> Finding:
    name = _MODE_NAMES[mode]
    if aligned:
        detail = f"DKIM d={signer} aligns with From domain {domain} ({name})"
        return _finding(domain, Status.OK, "alignment_dkim_ok", detail, signer)
    detail = (
        f"DKIM d={signer}, seen in returned mail, does not align with From "
        f"domain {domain} under adkim={mode} ({name}): DMARC relies on SPF "
        "for that mail"
    )
    return _finding(domain, Status.WARNING, "alignment_dkim_unaligned", detail, signer)


def _spf_finding(
    domain: str, envelope: str, mode: str, source: str, *, aligned: bool
) -> Finding:
    name = _MODE_NAMES[mode]
    where = (
        "in sending.return_path_domains"
        if source == "configured"
        else "seen in returned mail"
    )
    if aligned:
        detail = (
            f"Return-Path domain {envelope} ({where}) aligns with From domain "
            f"{domain} ({name})"
        )
        return _finding(domain, Status.OK, "alignment_spf_ok", detail, envelope)
    detail = (
        f"Return-Path domain {envelope} ({where}) does not align with From "
        f"domain {domain} under aspf={mode} ({name}): DMARC relies on DKIM "
        "for that mail"
    )
    return _finding(domain, Status.WARNING, "alignment_spf_unaligned", detail, envelope)


def _finding(
    domain: str, status: Status, reason: str, detail: str, subject: str = ""
) -> Finding:
    return Finding(domain, Check.ALIGNMENT, status, reason, detail, subject)
