"""The result of the authentication audit: one finding per check and subject."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from watchdog.errors import DnsError


class Check(StrEnum):
    """The DNS authentication checks, named as in the CLI and the metrics."""

    SPF = "spf"
    DKIM = "dkim"
    DMARC = "dmarc"
    MX = "mx"
    MTA_STS = "mta_sts"
    TLS_RPT = "tls_rpt"
    BIMI = "bimi"
    PTR = "ptr"
    ALIGNMENT = "alignment"


class Status(StrEnum):
    """Verdict on a finding, as a receiver would judge it.

    ``error`` is a defect a receiver acts on. ``lookup_failed`` means a query
    timed out or returned SERVFAIL or REFUSED, so the record is unknown: it
    is never reported as absent.
    """

    OK = "ok"
    WARNING = "warning"
    ERROR = "error"
    LOOKUP_FAILED = "lookup_failed"

    @property
    def severity(self) -> Severity:
        """The value exported as ``mailwatchdog_auth_check_status``."""
        return _SEVERITY[self]


class Severity(IntEnum):
    """Metric value of a status: higher is worse, 3 means "could not check"."""

    OK = 0
    WARNING = 1
    FAIL = 2
    UNKNOWN = 3


_SEVERITY = {
    Status.OK: Severity.OK,
    Status.WARNING: Severity.WARNING,
    Status.ERROR: Severity.FAIL,
    Status.LOOKUP_FAILED: Severity.UNKNOWN,
}


@dataclass(frozen=True)
class Finding:
    """One observation about a domain, a DKIM selector or a sending IP.

    ``reason`` is a stable snake_case code such as ``spf_missing`` for
    programs; ``detail`` is a sentence for people that shows the value.
    ``subject`` names the selector, IP or MX host the finding is about when
    that is not the domain itself.
    """

    domain: str
    check: Check
    status: Status
    reason: str
    detail: str
    subject: str = ""

    def as_dict(self) -> dict[str, str]:
        """Return the finding as the JSON object the CLI prints."""
        return {
            "domain": self.domain,
            "check": self.check.value,
            "status": self.status.value,
            "reason": self.reason,
            "subject": self.subject,
            "detail": self.detail,
        }


def worst(findings: list[Finding]) -> Status:
    """Return the most severe status among ``findings`` (ok when empty)."""
    statuses = [finding.status for finding in findings]
    return max(statuses, key=lambda status: status.severity, default=Status.OK)


def lookup_failed(
    domain: str, check: Check, error: DnsError, subject: str = ""
) -> Finding:
    """Build the finding for a check that could not run because DNS failed.

    The reason is ``resolver_unreachable`` for a query that was not sent
    because the resolver stopped answering, else ``lookup_failed``.
    """
    detail = f"{error} (the record is unknown, not absent)"
    reason = error.reason if error.reason == "resolver_unreachable" else "lookup_failed"
    return Finding(domain, check, Status.LOOKUP_FAILED, reason, detail, subject)
