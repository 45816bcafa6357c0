"""The MTA-STS check (RFC 8461): the ``_mta-sts`` TXT record and the policy file."""

from __future__ import annotations

import re

from watchdog.checks.auth.findings import Check, Finding, Status, lookup_failed
from watchdog.checks.auth.lookup import Lookup
from watchdog.checks.auth.mta_sts_drift import (
    PolicyHistory,
    UnavailableHistory,
    check_drift,
)
from watchdog.checks.auth.mta_sts_policy import (
    POLICY_PATH,
    Policy,
    PolicyFetcher,
    PolicyFetchError,
    PolicySyntaxError,
    mx_matches,
    parse_policy,
)
from watchdog.errors import DnsError

_POLICY_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
MIN_MAX_AGE = 86_400


async def check_mta_sts(
    lookup: Lookup,
    fetcher: PolicyFetcher,
    domain: str,
    mx_hosts: list[str] | None,
    history: PolicyHistory | UnavailableHistory | None = None,
) -> list[Finding]:
    """Check the MTA-STS record and policy of ``domain`` against its MX hosts.

    An absent record is reported as ok with reason ``mta_sts_missing``,
    because MTA-STS is optional. ``mx_hosts`` is None when the MX lookup
    failed, so the match of the MX hosts is reported as unknown. With
    ``history``, a policy that parses is compared with the one stored by
    the previous audit (see ``mta_sts_drift``) and then stored.
    """
    try:
        _answer, texts = await lookup.txt(f"_mta-sts.{domain}")
    except DnsError as exc:
        return [lookup_failed(domain, Check.MTA_STS, exc)]

    records = [text for text in texts if text.startswith("v=STSv1")]
    if not records:
        detail = (
            f"no 'v=STSv1' TXT record at _mta-sts.{domain}: MTA-STS is not deployed"
        )
        return [_finding(domain, Status.OK, "mta_sts_missing", detail)]
    if len(records) > 1:
        detail = f"{len(records)} 'v=STSv1' records: senders ignore MTA-STS"
        return [_finding(domain, Status.ERROR, "mta_sts_multiple", detail)]
    policy_id = _record_id(records[0])
    if policy_id is None:
        detail = f"record {records[0]!r} has no id= of 1-32 letters and digits"
        return [_finding(domain, Status.ERROR, "mta_sts_invalid_record", detail)]

    policy, findings = await _fetch_policy(fetcher, lookup, domain)
    if policy is None:
        return findings
    findings += _policy_findings(domain, policy, mx_hosts)
    if not findings:
        detail = f"id={policy_id}, mode {policy.mode}, every MX host matches"
        findings.append(_finding(domain, Status.OK, "mta_sts_ok", detail))
    if history is not None:
        findings += await check_drift(history, domain, policy_id, policy)
    return findings


def _record_id(record: str) -> str | None:
    for part in record.split(";"):
        name, _, value = part.strip().partition("=")
        if name == "id":
            return value if _POLICY_ID.match(value) else None
    return None


async def _fetch_policy(
    fetcher: PolicyFetcher, lookup: Lookup, domain: str
) -> tuple[Policy | None, list[Finding]]:
    try:
        response = await fetcher.fetch(domain, lookup)
    except PolicyFetchError as exc:
        return None, [_finding(domain, Status.ERROR, "mta_sts_fetch_failed", str(exc))]
    except DnsError as exc:
        return None, [lookup_failed(domain, Check.MTA_STS, exc)]
    if response.status != 200:
        detail = (
            f"policy fetch returned HTTP {response.status}, not 200, and senders "
            "do not follow redirects: serve the policy at "
            f"https://mta-sts.{domain}{POLICY_PATH}"
        )
        return None, [_finding(domain, Status.ERROR, "mta_sts_http_status", detail)]
    findings: list[Finding] = []
    if response.content_type.split(";")[0].strip().lower() != "text/plain":
        detail = f"policy Content-Type is {response.content_type!r}, not text/plain"
        findings.append(_finding(domain, Status.ERROR, "mta_sts_content_type", detail))
    try:
        return parse_policy(response.body), findings
    except PolicySyntaxError as exc:
        detail = f"invalid policy file: {exc}"
        return None, [
            *findings,
            _finding(domain, Status.ERROR, "mta_sts_policy_syntax", detail),
        ]


def _policy_findings(
    domain: str, policy: Policy, mx_hosts: list[str] | None
) -> list[Finding]:
    findings: list[Finding] = []
    if policy.mode == "none":
        detail = "mode none: the domain is withdrawing its MTA-STS policy"
        findings.append(_finding(domain, Status.OK, "mta_sts_mode_none", detail))
        return findings
    if policy.max_age < MIN_MAX_AGE:
        detail = (
            f"max_age {policy.max_age} s is under a day: a sender's cached copy "
            "expires soon, and a sender that cannot fetch the policy again "
            "then delivers without MTA-STS"
        )
        findings.append(
            _finding(domain, Status.WARNING, "mta_sts_short_max_age", detail)
        )
    if mx_hosts is None:
        detail = "the MX lookup failed, so whether every MX host matches is unknown"
        findings.append(_finding(domain, Status.LOOKUP_FAILED, "lookup_failed", detail))
        return findings
    unmatched = [host for host in mx_hosts if not mx_matches(host, policy.mx_patterns)]
    if unmatched:
        status = Status.ERROR if policy.mode == "enforce" else Status.WARNING
        effect = "refuse to deliver" if status is Status.ERROR else "report failures"
        detail = (
            f"MX hosts {', '.join(unmatched)} match no mx pattern "
            f"{policy.mx_patterns!r}: senders {effect} for them (mode {policy.mode})"
        )
        findings.append(_finding(domain, status, "mta_sts_mx_mismatch", detail))
    return findings


def _finding(domain: str, status: Status, reason: str, detail: str) -> Finding:
    return Finding(domain, Check.MTA_STS, status, reason, detail)
