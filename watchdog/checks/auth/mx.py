"""The MX check (RFC 5321 section 5.1, RFC 2181 section 10.3, null MX in RFC 7505)."""

from __future__ import annotations

from dataclasses import dataclass, field

from watchdog.checks.auth.findings import Check, Finding, Status, lookup_failed
from watchdog.checks.auth.lookup import (
    Lookup,
    dns_name_text,
    is_ip_literal,
    is_public_address,
)
from watchdog.errors import DnsError


@dataclass(frozen=True)
class MxReport:
    """The MX findings of a domain and its MX host names, best preference first."""

    findings: list[Finding]
    hosts: list[str] = field(default_factory=list)
    null_mx: bool = False


async def check_mx(
    lookup: Lookup, domain: str, *, allow_private: bool = False
) -> MxReport:
    """Check that ``domain`` publishes working MX hosts or a null MX.

    ``allow_private`` accepts loopback, private and documentation addresses
    for the MX hosts, which only test and lab setups need.
    """
    try:
        answer = await lookup.query(domain, "MX")
        if answer.absent:
            return MxReport(await _no_mx_findings(lookup, domain))
    except DnsError as exc:
        return MxReport([lookup_failed(domain, Check.MX, exc)])

    ranked = sorted(answer.records, key=lambda record: record.preference)
    hosts = [dns_name_text(record.exchange) for record in ranked]
    if "" in hosts:
        return _null_mx_report(domain, hosts)

    findings: list[Finding] = []
    for host in hosts:
        try:
            findings += await _host_findings(lookup, domain, host, allow_private)
        except DnsError as exc:
            findings.append(lookup_failed(domain, Check.MX, exc, host))
    if not findings:
        scope = "addresses" if allow_private else "public addresses"
        detail = f"MX hosts {', '.join(hosts)} resolve to {scope}"
        findings.append(_finding(domain, Status.OK, "mx_ok", detail))
    return MxReport(findings, hosts)


async def _no_mx_findings(lookup: Lookup, domain: str) -> list[Finding]:
    if await lookup.addresses(domain):
        detail = (
            "no MX record, so mail goes to the domain's A/AAAA (implicit MX); "
            "publish an MX, or '0 .' (null MX) if the domain receives no mail"
        )
        return [_finding(domain, Status.WARNING, "mx_implicit", detail)]
    detail = "no MX and no address record: bounces and replies to it fail"
    return [_finding(domain, Status.ERROR, "mx_missing", detail)]


def _null_mx_report(domain: str, hosts: list[str]) -> MxReport:
    if len(hosts) > 1:
        detail = "a null MX ('0 .') must be the only MX record (RFC 7505)"
        return MxReport([_finding(domain, Status.ERROR, "mx_null_mixed", detail)])
    detail = "null MX ('0 .'): the domain declares that it receives no mail"
    return MxReport([_finding(domain, Status.OK, "mx_null", detail)], null_mx=True)


async def _host_findings(
    lookup: Lookup, domain: str, host: str, allow_private: bool
) -> list[Finding]:
    if is_ip_literal(host):
        detail = f"MX target {host!r} is an IP address: MX must name a host"
        return [_finding(domain, Status.ERROR, "mx_ip_literal", detail, host)]

    findings: list[Finding] = []
    answers = [await lookup.query(host, rdtype) for rdtype in ("A", "AAAA")]
    if any(answer.via_cname for answer in answers):
        detail = f"MX target {host!r} is a CNAME, which RFC 2181 section 10.3 forbids"
        findings.append(_finding(domain, Status.WARNING, "mx_cname", detail, host))
    addresses = [record.address for answer in answers for record in answer.records]
    if not addresses:
        detail = f"MX target {host!r} has no A or AAAA record"
        findings.append(_finding(domain, Status.ERROR, "mx_unresolved", detail, host))
    hidden = [ip for ip in addresses if not is_public_address(ip)]
    if hidden and not allow_private:
        detail = (
            f"MX target {host!r} resolves to non-public {', '.join(hidden)}: "
            "senders on the internet cannot deliver there"
        )
        findings.append(
            _finding(domain, Status.ERROR, "mx_private_address", detail, host)
        )
    return findings


def _finding(
    domain: str, status: Status, reason: str, detail: str, subject: str = ""
) -> Finding:
    return Finding(domain, Check.MX, status, reason, detail, subject)
