"""The BIMI check (draft-brand-indicators-for-message-identification): informational.

BIMI is not an RFC, so an absent record is ok. A published record is
checked for https locations and for a DMARC policy that mailbox providers
require before they show the logo.
"""

from __future__ import annotations

from watchdog.checks.auth.dkim import parse_tags
from watchdog.checks.auth.findings import Check, Finding, Status, lookup_failed
from watchdog.checks.auth.lookup import Lookup
from watchdog.errors import DnsError

ENFORCING = ("quarantine", "reject")


async def check_bimi(
    lookup: Lookup,
    domain: str,
    dmarc_policy: str | None,
    dmarc_record: str | None,
    *,
    dmarc_known: bool = True,
) -> list[Finding]:
    """Check ``default._bimi.<domain>`` against the domain's DMARC policy.

    ``dmarc_known`` is false when the DMARC lookup failed, so the policy is
    unknown rather than missing.
    """
    name = f"default._bimi.{domain}"
    try:
        _answer, texts = await lookup.txt(name)
    except DnsError as exc:
        return [lookup_failed(domain, Check.BIMI, exc)]

    records = [text for text in texts if text.startswith("v=BIMI1")]
    if not records:
        return [
            _finding(domain, Status.OK, "bimi_missing", f"no BIMI record at {name}")
        ]
    if len(records) > 1:
        detail = f"{len(records)} 'v=BIMI1' records at {name}: providers use none"
        return [_finding(domain, Status.WARNING, "bimi_multiple", detail)]

    tags = parse_tags(records[0])
    location, evidence = tags.get("l", ""), tags.get("a", "")
    if not location and not evidence:
        detail = "empty l= and a=: the domain declines BIMI"
        return [_finding(domain, Status.OK, "bimi_declined", detail)]
    findings: list[Finding] = []
    for tag, value in (("l", location), ("a", evidence)):
        if value and not value.lower().startswith("https://"):
            detail = f"{tag}={value!r} must be an https:// URL"
            findings.append(_finding(domain, Status.WARNING, "bimi_invalid", detail))
    if dmarc_known:
        findings += _dmarc_findings(domain, dmarc_policy, dmarc_record)
    else:
        detail = (
            "the DMARC lookup failed, so whether providers show the logo is unknown"
        )
        findings.append(_finding(domain, Status.LOOKUP_FAILED, "lookup_failed", detail))
    if not findings:
        detail = f"{records[0]!r} with an enforcing DMARC policy"
        findings.append(_finding(domain, Status.OK, "bimi_ok", detail))
    return findings


def _dmarc_findings(
    domain: str, policy: str | None, record: str | None
) -> list[Finding]:
    tags = parse_tags(record or "")
    weak = (
        policy not in ENFORCING
        or tags.get("pct", "100").strip() != "100"
        or tags.get("sp", "").lower() == "none"
    )
    if not weak:
        return []
    detail = (
        "BIMI logos are shown only with DMARC p=quarantine or p=reject, "
        "pct=100 and sp not none"
    )
    return [_finding(domain, Status.WARNING, "bimi_dmarc_not_enforced", detail)]


def _finding(domain: str, status: Status, reason: str, detail: str) -> Finding:
    return Finding(domain, Check.BIMI, status, reason, detail)
