"""Run every authentication check for a set of domains and export the results."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, replace

import dns.asyncresolver

from watchdog.checks.auth.alignment import (
    Identifiers,
    check_alignment,
    identifiers_for,
)
from watchdog.checks.auth.bimi import check_bimi
from watchdog.checks.auth.dkim import DkimReport, check_dkim
from watchdog.checks.auth.dmarc import DmarcReport, check_dmarc
from watchdog.checks.auth.findings import Check, Finding, Status, worst
from watchdog.checks.auth.health import ResolverHealth
from watchdog.checks.auth.learned import Learned, LearnedKind
from watchdog.checks.auth.lookup import Lookup, normalise
from watchdog.checks.auth.mta_sts import check_mta_sts
from watchdog.checks.auth.mta_sts_drift import PolicyHistory, UnavailableHistory
from watchdog.checks.auth.mta_sts_policy import HttpsPolicyFetcher, PolicyFetcher
from watchdog.checks.auth.mx import check_mx
from watchdog.checks.auth.ptr import PtrReport, check_ptr
from watchdog.checks.auth.series import AuditScope, drop_stale_series
from watchdog.checks.auth.spf import SpfReport, check_spf
from watchdog.checks.auth.tls_rpt import check_tls_rpt
from watchdog.config import Settings
from watchdog.metrics import Metrics

_POLICY_VALUES = {"none": 0, "quarantine": 1, "reject": 2}


@dataclass(frozen=True)
class _Run:
    """Settings and clients shared by every domain of one audit."""

    resolver: dns.asyncresolver.Resolver
    ips: list[str]
    helo: str | None
    fetcher: PolicyFetcher
    allow_private_mx: bool
    metrics: Metrics | None
    # One for the whole run, so that every lookup stops once the resolver
    # stops answering.
    health: ResolverHealth
    policy_history: PolicyHistory | UnavailableHistory | None


async def run_audit(
    settings: Settings,
    domains: list[str],
    selectors: list[str],
    resolver: dns.asyncresolver.Resolver,
    *,
    ips: list[str] | None = None,
    helo: str | None = None,
    learned: Collection[Learned] = (),
    fetcher: PolicyFetcher | None = None,
    metrics: Metrics | None = None,
    policy_history: PolicyHistory | UnavailableHistory | None = None,
) -> list[Finding]:
    """Audit SPF, DKIM, DMARC, MX, MTA-STS, TLS-RPT and BIMI of each domain,
    and the PTR of each sending IP.

    ``ips`` and ``helo`` default to ``settings.sending``. The DKIM selectors
    of a domain are ``settings.sending.dkim_selectors``, ``selectors`` and
    the selectors in ``learned`` (see ``learned.learn_from_message``). The
    alignment check judges the ``d=`` and Return-Path domains in ``learned``
    and ``settings.sending.return_path_domains``. DNS failures become
    ``lookup_failed`` findings; nothing is raised for them. With
    ``policy_history``, each MTA-STS policy is compared with the one the
    previous audit stored. With ``metrics``, the results are exported and
    the series of domains, selectors, IPs and checks that this run left
    out are removed.
    """
    sending = settings.sending
    ips = sending.ips if ips is None else ips
    helo = helo or sending.helo
    fetcher = fetcher or HttpsPolicyFetcher(resolver=resolver)
    configured = [*sending.dkim_selectors, *selectors]

    health = ResolverHealth()
    run = _Run(
        resolver,
        ips,
        helo,
        fetcher,
        settings.audit.allow_private_mx,
        metrics,
        health,
        policy_history,
    )
    # Each audited domain, its selectors and those known only as learned.
    audited = [
        (normalise(domain), *_selectors_for(domain, configured, learned))
        for domain in domains
    ]
    domain_runs = [
        _audit_domain(
            run,
            domain,
            selectors,
            learned_only,
            identifiers_for(domain, learned, sending.return_path_domains),
        )
        for domain, selectors, learned_only in audited
    ]
    ptr_runs = [check_ptr(Lookup(resolver, health), ip, helo) for ip in ips]
    # PTR lookups run beside the domains, so that the timeouts of a domain
    # whose nameservers are down cannot mark the resolver unreachable first.
    domain_results, ptr_reports = await asyncio.gather(
        asyncio.gather(*domain_runs), asyncio.gather(*ptr_runs)
    )

    findings = [finding for result in domain_results for finding in result]
    for report in ptr_reports:
        findings += report.findings
        if metrics is not None:
            _record_ptr(metrics, report)
    if metrics is not None:
        _record_status(metrics, findings)
        selector_pairs = [
            (domain, selector)
            for domain, selectors, _ in audited
            for selector in selectors
        ]
        names = [domain for domain, _, _ in audited]
        drop_stale_series(metrics, AuditScope.of(findings, names, selector_pairs, ips))
    return findings


def _selectors_for(
    domain: str, configured: list[str], learned: Collection[Learned]
) -> tuple[list[str], set[str]]:
    """Return every selector of ``domain`` and those known only from ``learned``."""
    domain = normalise(domain)
    extra = {
        item.value
        for item in learned
        if item.kind is LearnedKind.DKIM_SELECTOR and item.domain == domain
    }
    return sorted(set(configured) | extra), extra - set(configured)


async def _audit_domain(
    run: _Run,
    domain: str,
    selectors: list[str],
    learned_only: set[str],
    identifiers: Identifiers,
) -> list[Finding]:
    lookup = Lookup(run.resolver, run.health, domain=domain)
    # The independent checks run together, so the timeouts of a dead
    # resolver arrive at once and mark it unreachable for the rest of the run.
    selector_checks = asyncio.gather(
        *(check_dkim(lookup, domain, selector) for selector in selectors)
    )
    spf, dmarc, mx, dkim = await asyncio.gather(
        check_spf(lookup, run.resolver, domain, run.ips, run.helo),
        check_dmarc(lookup, domain),
        check_mx(lookup, domain, allow_private=run.allow_private_mx),
        selector_checks,
    )
    dkim = [
        _learned_missing(report) if report.selector in learned_only else report
        for report in dkim
    ]
    # Without hosts, a failed lookup can only be the MX query itself.
    mx_failed = not mx.hosts and _any_failed(mx.findings)
    mx_hosts = None if mx_failed else mx.hosts
    mta_sts = await check_mta_sts(
        lookup, run.fetcher, domain, mx_hosts, run.policy_history
    )
    deployed = any(f.reason != "mta_sts_missing" for f in mta_sts)
    tls_rpt = await check_tls_rpt(lookup, domain, mta_sts=deployed)
    dmarc_known = dmarc.record is not None or not _any_failed(dmarc.findings)
    bimi = await check_bimi(
        lookup, domain, dmarc.policy, dmarc.record, dmarc_known=dmarc_known
    )
    alignment = check_alignment(domain, dmarc, identifiers)
    if run.metrics is not None:
        _record_domain(run.metrics, domain, spf, dkim, dmarc)

    findings = list(spf.findings)
    findings += [finding for report in dkim for finding in report.findings]
    if not selectors:
        findings.append(_no_selector_finding(domain))
    findings += dmarc.findings + alignment
    return findings + mx.findings + mta_sts + tls_rpt + bimi


def _any_failed(findings: list[Finding]) -> bool:
    return any(finding.status is Status.LOOKUP_FAILED for finding in findings)


def _learned_missing(report: DkimReport) -> DkimReport:
    """Lower ``dkim_missing`` to a warning for a selector learned from a bounce.

    Anyone can put a DKIM-Signature with our ``d=`` into mail that bounces
    back to us, so a learned selector does not prove that we sign with it.
    """
    findings = [
        replace(
            finding,
            status=Status.WARNING,
            detail=f"{finding.detail} (selector seen only in a returned message, "
            "which may be forged: add it to sending.dkim_selectors if it is ours)",
        )
        if finding.reason == "dkim_missing"
        else finding
        for finding in report.findings
    ]
    return replace(report, findings=findings)


def _no_selector_finding(domain: str) -> Finding:
    detail = (
        "no DKIM selector to check: DNS cannot list selectors, so set "
        "sending.dkim_selectors or pass --selector"
    )
    return Finding(domain, Check.DKIM, Status.WARNING, "dkim_no_selector", detail)


def _record_domain(
    metrics: Metrics,
    domain: str,
    spf: SpfReport,
    dkim: list[DkimReport],
    dmarc: DmarcReport,
) -> None:
    if spf.lookups is not None:
        metrics.auth_spf_dns_lookups.labels(domain).set(spf.lookups)
    if spf.void_lookups is not None:
        metrics.auth_spf_void_lookups.labels(domain).set(spf.void_lookups)
    for report in dkim:
        failed = any(f.status is Status.LOOKUP_FAILED for f in report.findings)
        if not failed:
            bits = report.key_bits or 0
            metrics.auth_dkim_key_bits.labels(domain, report.selector).set(bits)
    failed = any(f.status is Status.LOOKUP_FAILED for f in dmarc.findings)
    if not failed:
        value = _POLICY_VALUES.get(dmarc.policy or "", -1)
        metrics.auth_dmarc_policy.labels(domain).set(value)


def _record_ptr(metrics: Metrics, report: PtrReport) -> None:
    if report.fcrdns_ok is not None:
        metrics.auth_ptr_fcrdns_ok.labels(report.ip).set(int(report.fcrdns_ok))


def _record_status(metrics: Metrics, findings: list[Finding]) -> None:
    grouped: dict[tuple[str, Check], list[Finding]] = defaultdict(list)
    for finding in findings:
        grouped[(finding.domain, finding.check)].append(finding)
    for (domain, check), group in grouped.items():
        severity = worst(group).severity
        metrics.auth_check_status.labels(domain, check.value).set(int(severity))
