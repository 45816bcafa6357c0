"""The SPF check (RFC 7208): one record, valid syntax, limits, and each sending IP."""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.asyncresolver

from watchdog.checks.auth import spf_eval
from watchdog.checks.auth.findings import Check, Finding, Status, lookup_failed
from watchdog.checks.auth.lookup import Lookup
from watchdog.checks.auth.spf_record import (
    MAX_LOOKUPS,
    MAX_VOID_LOOKUPS,
    SpfSyntaxError,
    Term,
    WalkResult,
    parse_record,
    spf_records,
    walk,
)
from watchdog.errors import DnsError

# RFC 7208 section 3.4: a record should fit a 512-byte UDP answer with the
# rest of the message, which leaves about 450 bytes for the TXT data.
MAX_RECORD_BYTES = 450
LOOKUP_WARNING = 8


@dataclass(frozen=True)
class SpfReport:
    """The SPF findings of one domain and the counts exported as metrics.

    The counts are None when the record could not be read or walked.
    """

    findings: list[Finding]
    lookups: int | None = None
    void_lookups: int | None = None
    record: str | None = None
    host_results: list[spf_eval.HostResult] = field(default_factory=list)


async def check_spf(
    lookup: Lookup,
    resolver: dns.asyncresolver.Resolver,
    domain: str,
    ips: list[str],
    helo: str | None = None,
) -> SpfReport:
    """Audit the SPF record of ``domain`` and evaluate it for each of ``ips``."""
    try:
        _answer, texts = await lookup.txt(domain)
    except DnsError as exc:
        return SpfReport([lookup_failed(domain, Check.SPF, exc)])

    records = spf_records(texts)
    if not records:
        return SpfReport(
            [_error(domain, "spf_missing", "no TXT record starts 'v=spf1'")]
        )
    if len(records) > 1:
        detail = f"{len(records)} SPF records {records!r}: receivers return permerror"
        return SpfReport([_error(domain, "spf_multiple", detail)])

    record = records[0]
    try:
        terms = parse_record(record)
    except SpfSyntaxError as exc:
        detail = f"invalid SPF record {record!r}: {exc}; receivers return permerror"
        return SpfReport([_error(domain, "spf_syntax", detail)], record=record)

    findings = _record_findings(domain, record, terms)
    findings += await _type99_finding(lookup, domain)
    try:
        walked = await walk(lookup, domain, terms)
    except DnsError as exc:
        findings.append(lookup_failed(domain, Check.SPF, exc))
        return SpfReport(findings, record=record)
    findings += _walk_findings(domain, walked)

    results = [
        await spf_eval.check_host(
            resolver,
            ip,
            domain,
            helo,
            health=lookup.health,
            domain_timeouts=lookup.domain_timeouts,
        )
        for ip in ips
    ]
    findings += [_host_finding(domain, result) for result in results]
    if not findings:
        findings.append(Finding(domain, Check.SPF, Status.OK, "spf_ok", record))
    return SpfReport(findings, walked.lookups, walked.void_lookups, record, results)


def _record_findings(domain: str, record: str, terms: list[Term]) -> list[Finding]:
    findings: list[Finding] = []
    size = len(record.encode())
    if size > MAX_RECORD_BYTES:
        detail = f"record is {size} bytes, over {MAX_RECORD_BYTES}: it may not fit UDP"
        findings.append(_warning(domain, "spf_record_size", detail))
    findings += _ending_findings(domain, terms)
    if any(term.name == "ptr" and not term.modifier for term in terms):
        detail = "the 'ptr' mechanism is slow and discouraged (RFC 7208 section 5.5)"
        findings.append(_warning(domain, "spf_ptr", detail))
    return findings


def _ending_findings(domain: str, terms: list[Term]) -> list[Finding]:
    alls = [term for term in terms if term.name == "all" and not term.modifier]
    if not alls:
        if any(term.name == "redirect" for term in terms):
            return []
        detail = "no 'all' and no 'redirect': unmatched senders get neutral"
        return [_warning(domain, "spf_no_all", detail)]
    qualifier = alls[0].qualifier
    if qualifier == "+":
        detail = "'+all' (or a bare 'all') authorises every host on the internet"
        return [_error(domain, "spf_pass_all", detail)]
    if qualifier == "?":
        detail = "'?all' gives unmatched senders neutral: use '~all' or '-all'"
        return [_warning(domain, "spf_neutral_all", detail)]
    return []


async def _type99_finding(lookup: Lookup, domain: str) -> list[Finding]:
    try:
        answer = await lookup.query(domain, "SPF")
    except DnsError:
        # Some servers never answer type 99; that says nothing about TXT.
        return []
    if answer.absent:
        return []
    detail = "an RR of type SPF (99) exists; RFC 7208 removed it, only TXT is used"
    return [_warning(domain, "spf_type99", detail)]


def _walk_findings(domain: str, walked: WalkResult) -> list[Finding]:
    findings: list[Finding] = []
    if walked.lookups > MAX_LOOKUPS:
        detail = f"{walked.lookups} DNS lookups, over the limit of {MAX_LOOKUPS}"
        findings.append(_error(domain, "spf_lookup_limit", detail))
    elif walked.lookups >= LOOKUP_WARNING:
        detail = f"{walked.lookups} DNS lookups, close to the limit of {MAX_LOOKUPS}"
        findings.append(_warning(domain, "spf_lookups_near_limit", detail))
    if walked.void_lookups > MAX_VOID_LOOKUPS:
        detail = (
            f"{walked.void_lookups} void lookups (NXDOMAIN or NODATA), "
            f"over the limit of {MAX_VOID_LOOKUPS}"
        )
        findings.append(_error(domain, "spf_void_limit", detail))
    for loop in walked.loops:
        findings.append(_error(domain, "spf_include_loop", loop))
    for target in walked.missing_targets:
        detail = f"include or redirect target {target!r} has no single SPF record"
        findings.append(_error(domain, "spf_include_missing", detail))
    for problem in walked.broken_targets:
        findings.append(_error(domain, "spf_include_syntax", problem))
    if walked.macro_terms:
        detail = (
            f"terms with macros ({', '.join(walked.macro_terms)}) count as lookups "
            "but resolve only in check_host for each sending IP"
        )
        findings.append(Finding(domain, Check.SPF, Status.OK, "spf_macros", detail))
    for target in walked.mx_overflow:
        detail = f"'mx' target {target!r} has more than 10 MX names: permerror"
        findings.append(_error(domain, "spf_mx_limit", detail))
    return findings


def _host_finding(domain: str, result: spf_eval.HostResult) -> Finding:
    if result.result == "pass":
        detail = f"check_host({result.ip}) = pass"
        return Finding(domain, Check.SPF, Status.OK, "spf_ip_pass", detail, result.ip)
    detail = f"check_host({result.ip}) = {result.result}: {result.explanation}"
    if result.result == "temperror":
        return Finding(
            domain, Check.SPF, Status.LOOKUP_FAILED, "lookup_failed", detail, result.ip
        )
    detail += "; add this sending IP to the record"
    return Finding(
        domain, Check.SPF, Status.ERROR, "spf_ip_not_pass", detail, result.ip
    )


def _error(domain: str, reason: str, detail: str) -> Finding:
    return Finding(domain, Check.SPF, Status.ERROR, reason, detail)


def _warning(domain: str, reason: str, detail: str) -> Finding:
    return Finding(domain, Check.SPF, Status.WARNING, reason, detail)
