"""DNS authentication audit of sending domains and IPs.

One module per check (SPF, DKIM, DMARC, MX, MTA-STS, TLS-RPT, BIMI, PTR) on
a small lookup layer; ``run_audit`` runs them all and returns findings.
"""

from __future__ import annotations

from watchdog.checks.auth.audit import run_audit
from watchdog.checks.auth.findings import Check, Finding, Status, worst
from watchdog.checks.auth.selectors import selectors_from_message

__all__ = ["Check", "Finding", "Status", "run_audit", "selectors_from_message", "worst"]
