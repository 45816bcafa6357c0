"""Remove the audit series of domains, selectors and IPs that a run left out.

A gauge keeps a label set until it is removed. Without this, a domain taken
out of ``sending.domains``, a learned DKIM selector or alignment identifier
that expired, or an IP dropped from ``sending.ips`` would keep its last
value on ``/metrics`` for the life of the process, and an alert could fire
for a domain nobody sends from. Only the ``mailwatchdog_auth_*`` gauges are
touched.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from prometheus_client import Gauge

from watchdog.checks.auth.findings import Finding
from watchdog.metrics import Metrics


@dataclass(frozen=True)
class AuditScope:
    """The domains, selectors, IPs and checks of one audit run, whose series stay.

    ``checks`` contains the (domain, check) pairs that got findings in this
    run, where the domain of a PTR finding is the IP address.
    """

    domains: frozenset[str]
    selectors: frozenset[tuple[str, str]]
    ips: frozenset[str]
    checks: frozenset[tuple[str, str]]

    @classmethod
    def of(
        cls,
        findings: Iterable[Finding],
        domains: Iterable[str],
        selectors: Iterable[tuple[str, str]],
        ips: Iterable[str],
    ) -> AuditScope:
        """Build the scope of a run from its findings and what it audited."""
        checks = frozenset((f.domain, f.check.value) for f in findings)
        return cls(frozenset(domains), frozenset(selectors), frozenset(ips), checks)


def drop_stale_series(metrics: Metrics, scope: AuditScope) -> None:
    """Remove every audit series outside ``scope``.

    A series of a domain, selector or IP inside the scope stays even when
    this run could not set it (a failed lookup keeps the last known value).
    """
    domains = {(domain,) for domain in scope.domains}
    # Each gauge, its label names in order, and the label values it keeps.
    rules: list[tuple[Gauge, tuple[str, ...], Collection[tuple[str, ...]]]] = [
        (metrics.auth_check_status, ("domain", "check"), scope.checks),
        (metrics.auth_spf_dns_lookups, ("domain",), domains),
        (metrics.auth_spf_void_lookups, ("domain",), domains),
        (metrics.auth_dmarc_policy, ("domain",), domains),
        (metrics.auth_dkim_key_bits, ("domain", "selector"), scope.selectors),
        (metrics.auth_ptr_fcrdns_ok, ("ip",), {(ip,) for ip in scope.ips}),
    ]
    for gauge, names, kept in rules:
        for labels in _label_sets(gauge):
            values = tuple(labels[name] for name in names)
            if values not in kept:
                gauge.remove(*values)


def _label_sets(gauge: Gauge) -> list[dict[str, str]]:
    """Return the labels of every series ``gauge`` exports now."""
    return [
        dict(sample.labels) for family in gauge.collect() for sample in family.samples
    ]
