"""The PTR check: reverse DNS with forward confirmation (FCrDNS, RFC 8601 ``iprev``).

Findings about a sending IP carry the IP as their ``domain`` and ``subject``,
because a PTR belongs to the address, not to any one sending domain.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from watchdog.checks.auth.dmarc_discovery import organisational_domain
from watchdog.checks.auth.findings import Check, Finding, Status, lookup_failed
from watchdog.checks.auth.lookup import Lookup, dns_name_text
from watchdog.errors import DnsError

# Words that mark access-network names, which blocklists such as PBLs target.
_GENERIC_WORDS = re.compile(r"(^|[.\-])(dyn|dynamic|dhcp|pool)", re.IGNORECASE)


@dataclass(frozen=True)
class PtrReport:
    """The findings for one IP and whether its PTR name confirms forward.

    ``fcrdns_ok`` is None when a lookup failed.
    """

    ip: str
    findings: list[Finding]
    fcrdns_ok: bool | None = None


async def check_ptr(lookup: Lookup, ip: str, helo: str | None) -> PtrReport:
    """Check the PTR of ``ip``, its forward confirmation and its name."""
    try:
        answer = await lookup.ptr(ip)
    except DnsError as exc:
        return PtrReport(ip, [lookup_failed(ip, Check.PTR, exc, ip)])
    if answer.absent:
        detail = (
            f"{ip} has no PTR record: receivers such as Gmail reject or junk its mail"
        )
        return PtrReport(ip, [_finding(ip, Status.ERROR, "ptr_missing", detail)], False)

    names = sorted(dns_name_text(record.target) for record in answer.records)
    findings: list[Finding] = []
    if len(names) > 1:
        detail = f"{ip} has {len(names)} PTR records {names!r}: publish one"
        findings.append(_finding(ip, Status.WARNING, "ptr_multiple", detail))
    confirmed, failure = await _confirmed_names(lookup, ip, names)
    if not confirmed and failure is not None:
        return PtrReport(ip, [*findings, lookup_failed(ip, Check.PTR, failure, ip)])
    if not confirmed:
        detail = f"no PTR name of {ip} ({', '.join(names)}) resolves back to {ip}"
        findings.append(_finding(ip, Status.ERROR, "ptr_not_confirmed", detail))
        return PtrReport(ip, findings, False)
    findings += _name_findings(ip, confirmed[0], helo)
    if not any(finding.status is not Status.OK for finding in findings):
        detail = f"{ip} -> {confirmed[0]} -> {ip}"
        findings.append(_finding(ip, Status.OK, "ptr_ok", detail))
    return PtrReport(ip, findings, True)


async def _confirmed_names(
    lookup: Lookup, ip: str, names: list[str]
) -> tuple[list[str], DnsError | None]:
    """Return the PTR names that resolve back to ``ip`` and the last lookup error.

    One confirmed name is enough for FCrDNS, so a failed lookup of another
    name matters only when no name confirms.
    """
    confirmed: list[str] = []
    failure: DnsError | None = None
    for name in names:
        try:
            addresses = await _forward(lookup, ip, name)
        except DnsError as exc:
            failure = exc
            continue
        if ip_in(ip, addresses):
            confirmed.append(name)
    return confirmed, failure


async def _forward(lookup: Lookup, ip: str, name: str) -> list[str]:
    rdtype = "A" if ipaddress.ip_address(ip).version == 4 else "AAAA"
    answer = await lookup.query(name, rdtype)
    return [record.address for record in answer.records]


def ip_in(ip: str, addresses: list[str]) -> bool:
    """Tell whether ``ip`` equals one of ``addresses`` (IPv6 forms compared parsed)."""
    wanted = ipaddress.ip_address(ip)
    return any(ipaddress.ip_address(address) == wanted for address in addresses)


def _name_findings(ip: str, name: str, helo: str | None) -> list[Finding]:
    findings: list[Finding] = []
    if helo and organisational_domain(name) != organisational_domain(helo):
        detail = f"PTR name {name!r} is outside the HELO name's domain {helo!r}"
        findings.append(_finding(ip, Status.WARNING, "ptr_helo_mismatch", detail))
    if is_generic_name(ip, name):
        detail = f"PTR name {name!r} looks generic (address digits or dyn/dhcp/pool)"
        findings.append(_finding(ip, Status.WARNING, "ptr_generic", detail))
    return findings


def is_generic_name(ip: str, name: str) -> bool:
    """Tell whether a PTR name looks like an access network's generated name."""
    if _GENERIC_WORDS.search(name):
        return True
    address = ipaddress.ip_address(ip)
    if address.version != 4:
        return False
    octets = str(address).split(".")
    digits = re.findall(r"\d+", name)
    return any(
        digits[i : i + 4] in (octets, octets[::-1]) for i in range(len(digits) - 3)
    )


def _finding(ip: str, status: Status, reason: str, detail: str) -> Finding:
    return Finding(ip, Check.PTR, status, reason, detail, ip)
