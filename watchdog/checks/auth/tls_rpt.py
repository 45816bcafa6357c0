"""The TLS-RPT check (RFC 8460): one ``_smtp._tls`` record with valid ``rua=``."""

from __future__ import annotations

from watchdog.checks.auth.findings import Check, Finding, Status, lookup_failed
from watchdog.checks.auth.lookup import Lookup
from watchdog.errors import DnsError


async def check_tls_rpt(lookup: Lookup, domain: str, *, mta_sts: bool) -> list[Finding]:
    """Check the TLS reporting record of ``domain``.

    An absent record is a warning when MTA-STS is deployed (``mta_sts``),
    because then failures go unreported, and ok otherwise.
    """
    name = f"_smtp._tls.{domain}"
    try:
        _answer, texts = await lookup.txt(name)
    except DnsError as exc:
        return [lookup_failed(domain, Check.TLS_RPT, exc)]

    records = [text for text in texts if text.startswith("v=TLSRPTv1")]
    if not records:
        status = Status.WARNING if mta_sts else Status.OK
        detail = f"no 'v=TLSRPTv1' TXT record at {name}: TLS failures go unreported"
        return [_finding(domain, status, "tls_rpt_missing", detail)]
    if len(records) > 1:
        detail = f"{len(records)} 'v=TLSRPTv1' records at {name}: reporters use none"
        return [_finding(domain, Status.ERROR, "tls_rpt_multiple", detail)]

    uris = _rua(records[0])
    bad = [uri for uri in uris if not uri.lower().startswith(("mailto:", "https:"))]
    if not uris or bad:
        detail = f"rua= in {records[0]!r} needs mailto: or https: URIs"
        return [_finding(domain, Status.ERROR, "tls_rpt_invalid", detail)]
    return [
        _finding(domain, Status.OK, "tls_rpt_ok", f"reports go to {', '.join(uris)}")
    ]


def _rua(record: str) -> list[str]:
    for part in record.split(";"):
        name, _, value = part.strip().partition("=")
        if name.strip() == "rua":
            return [uri.strip() for uri in value.split(",") if uri.strip()]
    return []


def _finding(domain: str, status: Status, reason: str, detail: str) -> Finding:
    return Finding(domain, Check.TLS_RPT, status, reason, detail)
