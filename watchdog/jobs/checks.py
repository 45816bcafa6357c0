"""Scheduled reputation checks: DNS blocklists and the authentication audit.

Both run only when ``[sending]`` names something to check. Their DNS
failures become ``dns_error`` and ``lookup_failed`` results inside the
cycle, so a poll here raises only on invalid rules or settings.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable

import structlog

from watchdog.checks.auth.audit import run_audit
from watchdog.checks.auth.learned import Learned, LearnedKind
from watchdog.checks.dnsbl.cycle import run_blocklist_cycle
from watchdog.checks.dnsbl.targets import targets_from_settings
from watchdog.checks.resolver import make_resolver
from watchdog.config import Settings
from watchdog.errors import StoreError
from watchdog.metrics import Metrics
from watchdog.store import Store
from watchdog.store.dnsbl_history import ListingHistory
from watchdog.store.learned import load_learned
from watchdog.store.mta_sts_history import MtaStsHistory

log = structlog.get_logger("watchdog.jobs.checks")

Poll = Callable[[], Awaitable[None]]


def blocklist_poll(settings: Settings, store: Store, metrics: Metrics) -> Poll:
    """Return a poll that checks every sending IP and domain against the zones.

    With ``blocklists.learn_link_domains`` set, the domains our mail links
    to, as learned from bounces, are checked too.
    """
    history = ListingHistory.of(store)
    learned = LearnedReader(store)

    async def poll() -> None:
        # The cycle logs its own summary (dnsbl_cycle_done).
        links: list[str] = []
        if settings.blocklists.learn_link_domains:
            links = [
                item.value
                for item in await learned.read()
                if item.kind is LearnedKind.LINK_DOMAIN
            ]
        targets = targets_from_settings(settings, links)
        await run_blocklist_cycle(settings, history, metrics, targets)

    return poll


def audit_poll(
    settings: Settings, metrics: Metrics, store: Store | None = None
) -> Poll:
    """Return a poll that audits the authentication records of our domains.

    The selectors and alignment identifiers learned from bounces come from
    ``store``, read afresh each poll, and the MTA-STS policy of each audit
    is stored there for the next one to compare with.
    """
    policy_history = MtaStsHistory.of(store) if store is not None else None
    reader = LearnedReader(store) if store is not None else None

    async def poll() -> None:
        started = time.monotonic()
        resolver = make_resolver(settings.dns)
        learned = await reader.read() if reader is not None else set()
        findings = await run_audit(
            settings,
            list(settings.sending.domains),
            [],
            resolver,
            learned=learned,
            metrics=metrics,
            policy_history=policy_history,
        )
        statuses = Counter(finding.status.value for finding in findings)
        log.info(
            "audit_done",
            findings=len(findings),
            seconds=round(time.monotonic() - started, 3),
            **{f"status_{name}": count for name, count in sorted(statuses.items())},
        )
        for finding in findings:
            if finding.status.value in ("error", "lookup_failed"):
                log.warning(
                    "audit_finding",
                    domain=finding.domain,
                    check=finding.check.value,
                    status=finding.status.value,
                    reason=finding.reason,
                    detail=finding.detail,
                )

    return poll


class LearnedReader:
    """Read the learned identifiers for each poll, keeping the last good read.

    When the database fails, ``read`` returns the values of the last read
    that worked (none before the first), so the checks keep running on the
    configured and last learned values. Checking fewer would remove the
    metric series of the learned targets, selectors and identifiers, and
    their alerts would resolve during the outage and fire again after it.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.last: set[Learned] = set()

    async def read(self) -> set[Learned]:
        """Return the learned identifiers now in the store, or the last ones."""
        try:
            self.last = await self.store.call(load_learned, self.store)
        except StoreError as exc:
            log.warning("learned_load_failed", error=str(exc), kept=len(self.last))
        return self.last


def suppression_gauge_poll(store: Store, metrics: Metrics) -> Poll:
    """Return a poll that sets the suppression-list size gauge by reason."""

    async def poll() -> None:
        counts = (await store.call(store.stats)).suppressions
        for reason in ("hard_bounce", "soft_bounce", "complaint", "manual", "import"):
            metrics.suppressions.labels(reason).set(counts.get(reason, 0))

    return poll
