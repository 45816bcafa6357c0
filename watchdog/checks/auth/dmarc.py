"""The DMARC check (RFC 7489 and RFC 9989): discovery, tags and report destinations."""

from __future__ import annotations

from dataclasses import dataclass

from watchdog.checks.auth.dkim import parse_tags
from watchdog.checks.auth.dmarc_discovery import (
    Discovery,
    discover_rfc7489,
    discover_tree_walk,
    is_dmarc_record,
    is_public_suffix_policy,
    organisational_domain,
)
from watchdog.checks.auth.findings import Check, Finding, Status, lookup_failed
from watchdog.checks.auth.lookup import Lookup, normalise
from watchdog.errors import DnsError

POLICIES = ("none", "quarantine", "reject")
REMOVED_TAGS = ("pct", "rf", "ri")


@dataclass(frozen=True)
class DmarcReport:
    """The DMARC findings of one domain and the policy a receiver applies to it.

    ``policy`` is one of "none", "quarantine" or "reject". It is None when no
    single record applies or the lookup failed.
    """

    findings: list[Finding]
    policy: str | None = None
    record: str | None = None
    found_at: str | None = None


async def check_dmarc(lookup: Lookup, domain: str) -> DmarcReport:
    """Discover the policy of ``domain`` both ways and audit the record found."""
    domain = normalise(domain)
    try:
        legacy = await discover_rfc7489(lookup, domain)
        walked = await discover_tree_walk(lookup, domain)
    except DnsError as exc:
        return DmarcReport([lookup_failed(domain, Check.DMARC, exc)])

    findings = _discovery_findings(domain, legacy, walked)
    chosen = walked if walked.found_at is not None else legacy
    if chosen.found_at is None:
        detail = f"no DMARC record at _dmarc.{domain} or any parent domain"
        findings.append(_finding(domain, Status.ERROR, "dmarc_missing", detail))
        return DmarcReport(findings)
    if len(chosen.records) > 1:
        detail = (
            f"{len(chosen.records)} DMARC records at _dmarc.{chosen.found_at}: "
            "receivers apply no policy at all; keep one"
        )
        findings.append(_finding(domain, Status.ERROR, "dmarc_multiple", detail))
        return DmarcReport(findings, found_at=chosen.found_at)

    record = chosen.records[0]
    tags = parse_tags(record)
    policy = effective_policy(domain, chosen.found_at, tags)
    findings += _tag_findings(domain, tags, record)
    findings += await _destination_findings(lookup, domain, chosen.found_at, tags)
    if not any(f.status is not Status.OK for f in findings):
        detail = f"policy {policy} from _dmarc.{chosen.found_at}: {record}"
        findings.append(_finding(domain, Status.OK, "dmarc_ok", detail))
    return DmarcReport(findings, policy, record, chosen.found_at)


def effective_policy(domain: str, found_at: str, tags: dict[str, str]) -> str:
    """Return the policy applied to mail from ``domain`` under a record at ``found_at``.

    ``sp`` applies to subdomains of the record's domain, falling back to
    ``p``. A missing or invalid ``p`` means none.
    """
    policy = tags.get("p", "none").lower()
    if domain != found_at and "sp" in tags:
        policy = tags["sp"].lower()
    return policy if policy in POLICIES else "none"


def _discovery_findings(
    domain: str, legacy: Discovery, walked: Discovery
) -> list[Finding]:
    findings: list[Finding] = []
    for discovery in (legacy, walked):
        if any(text.lower().startswith("v=spf1") for text in discovery.other_texts):
            detail = (
                f"an SPF record is published at _dmarc.{discovery.found_at or domain}"
            )
            findings.append(
                _finding(domain, Status.WARNING, "dmarc_spf_at_dmarc", detail)
            )
            break
    if legacy.found_at != walked.found_at:
        detail = (
            f"RFC 7489 discovery finds {_where(legacy)}, the RFC 9989 tree walk "
            f"finds {_where(walked)}: receivers of each kind apply different policies"
        )
        findings.append(
            _finding(domain, Status.WARNING, "dmarc_discovery_differs", detail)
        )
    else:
        detail = f"both RFC 7489 and RFC 9989 discovery find {_where(walked)}"
        findings.append(_finding(domain, Status.OK, "dmarc_discovery", detail))
    if walked.records and is_public_suffix_policy(walked.records[0]):
        detail = (
            f"the policy comes from a public suffix operator at {walked.found_at!r}"
        )
        findings.append(_finding(domain, Status.WARNING, "dmarc_psd_policy", detail))
    return findings


def _where(discovery: Discovery) -> str:
    if discovery.found_at is None:
        return "no record"
    return f"the record at _dmarc.{discovery.found_at}"


def _tag_findings(domain: str, tags: dict[str, str], record: str) -> list[Finding]:
    findings: list[Finding] = []
    if not record.lstrip().startswith("v"):
        detail = "the tag name is 'V': write 'v=DMARC1' for old parsers"
        findings.append(_finding(domain, Status.WARNING, "dmarc_version_case", detail))
    findings += _policy_findings(domain, tags)
    for tag in ("adkim", "aspf"):
        if tags.get(tag, "r").lower() not in ("r", "s"):
            detail = f"{tag}={tags[tag]!r} is invalid: use r or s"
            findings.append(_finding(domain, Status.ERROR, "dmarc_invalid_tag", detail))
    removed = [tag for tag in REMOVED_TAGS if tag in tags]
    if removed:
        detail = f"tags {', '.join(removed)} are removed in RFC 9989"
        findings.append(_finding(domain, Status.WARNING, "dmarc_removed_tag", detail))
    if tags.get("pct", "100").strip() == "0":
        detail = "pct=0: RFC 7489 receivers apply no policy to any message"
        findings.append(_finding(domain, Status.ERROR, "dmarc_pct_zero", detail))
    if "!" in tags.get("ruf", "") or "!" in tags.get("rua", ""):
        detail = "the '!size' suffix on report URIs is deprecated in RFC 9990"
        findings.append(_finding(domain, Status.WARNING, "dmarc_size_suffix", detail))
    return findings


def _policy_findings(domain: str, tags: dict[str, str]) -> list[Finding]:
    findings: list[Finding] = []
    policy = tags.get("p")
    if policy is None:
        detail = "no p= tag: RFC 7489 receivers ignore the record, RFC 9989 uses none"
        findings.append(_finding(domain, Status.WARNING, "dmarc_no_policy", detail))
    elif policy.lower() not in POLICIES:
        detail = f"p={policy!r} is invalid: use none, quarantine or reject"
        findings.append(_finding(domain, Status.ERROR, "dmarc_invalid_tag", detail))
    elif policy.lower() == "none":
        detail = "p=none only monitors: receivers do not act on failing mail"
        findings.append(_finding(domain, Status.WARNING, "dmarc_policy_none", detail))
    for tag in ("sp", "np"):
        value = tags.get(tag)
        if value is not None and value.lower() not in POLICIES:
            detail = f"{tag}={value!r} is invalid: use none, quarantine or reject"
            findings.append(_finding(domain, Status.ERROR, "dmarc_invalid_tag", detail))
    if (policy or "").lower() == "reject" and tags.get("sp", "").lower() == "none":
        detail = "p=reject with sp=none leaves every subdomain open to spoofing"
        findings.append(_finding(domain, Status.WARNING, "dmarc_sp_none", detail))
    return findings


async def _destination_findings(
    lookup: Lookup, domain: str, policy_domain: str, tags: dict[str, str]
) -> list[Finding]:
    findings: list[Finding] = []
    for destination in sorted(report_destinations(tags)):
        try:
            findings += await _check_destination(
                lookup, domain, policy_domain, destination
            )
        except DnsError as exc:
            findings.append(lookup_failed(domain, Check.DMARC, exc, destination))
    return findings


def report_destinations(tags: dict[str, str]) -> set[str]:
    """Return the domains of the ``mailto:`` URIs in ``rua`` and ``ruf``."""
    domains: set[str] = set()
    for tag in ("rua", "ruf"):
        for entry in tags.get(tag, "").split(","):
            uri = entry.strip().split("!", 1)[0]
            if uri.lower().startswith("mailto:") and "@" in uri:
                domains.add(normalise(uri.rpartition("@")[2]))
    return domains


async def _check_destination(
    lookup: Lookup, domain: str, policy_domain: str, destination: str
) -> list[Finding]:
    findings: list[Finding] = []
    if organisational_domain(destination) != organisational_domain(policy_domain):
        name = f"{policy_domain}._report._dmarc.{destination}"
        _answer, texts = await lookup.txt(name)
        if not any(is_dmarc_record(text) for text in texts):
            detail = (
                f"report destination {destination!r} has not authorised reports "
                f"for {policy_domain!r}: publish TXT 'v=DMARC1' at {name!r}"
            )
            findings.append(
                _finding(
                    domain,
                    Status.WARNING,
                    "dmarc_report_unauthorised",
                    detail,
                    destination,
                )
            )
    mx = await lookup.query(destination, "MX")
    if mx.absent and not await lookup.addresses(destination):
        detail = f"report destination {destination!r} has no MX or address record"
        findings.append(
            _finding(domain, Status.WARNING, "dmarc_report_no_mx", detail, destination)
        )
    return findings


def _finding(
    domain: str, status: Status, reason: str, detail: str, subject: str = ""
) -> Finding:
    return Finding(domain, Check.DMARC, status, reason, detail, subject)
