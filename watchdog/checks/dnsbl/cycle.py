"""The blocklist cycle the scheduler runs: check, record history, export.

This is the daemon layer of the blocklist checks, so it logs: one
``dnsbl_cycle_done`` line per cycle, an event per transition
(``dnsbl_listed``, ``dnsbl_delisted``), and warnings for unhealthy zones,
paused zones and public resolvers.
"""

from __future__ import annotations

import contextlib
import gc
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol

import dns.asyncresolver
import structlog

from watchdog.checks.dnsbl.answer import KNOWN_STATES, State
from watchdog.checks.dnsbl.catalogue import Zone, load_catalogue
from watchdog.checks.dnsbl.checker import Pass, ZoneBackoff, check_zones
from watchdog.checks.dnsbl.exporting import Exporter
from watchdog.checks.dnsbl.fastquery import fast_resolver_for
from watchdog.checks.dnsbl.history import Entry, History, Transition
from watchdog.checks.dnsbl.lookup import Lookup
from watchdog.checks.dnsbl.results import ZoneResult
from watchdog.checks.dnsbl.selection import catalogue_path, select_zones
from watchdog.checks.dnsbl.targets import Target, targets_from_settings
from watchdog.checks.resolver import make_resolver, public_resolvers
from watchdog.config import Settings
from watchdog.errors import StoreError
from watchdog.metrics import Metrics

LOGGER_NAME = "watchdog.checks.dnsbl"

JITTER_FRACTION = 0.1


class TransitionStore(Protocol):
    """Somewhere to persist listing history, such as a database table.

    ``watchdog.store.dnsbl_history.ListingHistory`` is the database one.
    """

    async def load(self) -> Mapping[tuple[str, str], Entry]:
        """Return the saved entries, keyed by (target, zone)."""

    async def save(
        self,
        transitions: Sequence[Transition],
        entries: Mapping[tuple[str, str], Entry],
    ) -> None:
        """Persist one cycle: its transitions and every entry it changed."""

    async def forget(self, keys: Sequence[tuple[str, str]]) -> None:
        """Delete the saved entries of ``keys`` that never recorded a listing."""


class BlocklistMonitor:
    """The state kept between cycles: cache, paused zones and history.

    ``fast_path`` sends queries through ``FastResolver`` when the resolver's
    nameservers are IP addresses; False keeps every query in dnspython.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        zones: Sequence[Zone] | None = None,
        resolver: dns.asyncresolver.Resolver | None = None,
        metrics: Metrics | None = None,
        wall_clock: Callable[[], float] = time.time,
        fast_path: bool = True,
    ) -> None:
        self.settings = settings
        if zones is None:
            catalogue = load_catalogue(catalogue_path(settings))
            zones = select_zones(catalogue, settings.blocklists)
        self.zones = list(zones)
        self.resolver = resolver or make_resolver(settings.dns)
        self.metrics = metrics
        self.exporter = Exporter(metrics) if metrics is not None else None
        duration = (
            metrics.dns_query_duration.labels("dnsbl").observe
            if metrics is not None
            else None
        )
        self.lookup = Lookup(
            self.resolver,
            concurrency=settings.blocklists.concurrency,
            per_zone=settings.blocklists.per_zone_concurrency,
            on_query=duration,
            fast=fast_resolver_for(self.resolver) if fast_path else None,
        )
        self.backoff = ZoneBackoff()
        self.history = History()
        self._restored_from: TransitionStore | None = None
        self._wall_clock = wall_clock
        self._warned_public = False
        # (kind of trouble, reason) last logged for each troubled zone.
        self._zone_trouble: dict[str, tuple[str, str]] = {}
        # One logger per monitor: structlog caches a logger on first use, and
        # a module-level one would keep whatever configuration came first.
        self.log = structlog.get_logger(LOGGER_NAME)

    async def run(
        self,
        targets: Sequence[Target] | None = None,
        store: TransitionStore | None = None,
    ) -> list[ZoneResult]:
        """Check ``targets`` (default: ``targets_from_settings``) once.

        The first run with a ``store`` loads its history, so listings known
        before a restart are not reported again. DNS failures never escape
        as exceptions: each appears as a result in state ``dns_error``,
        ``bogus``, ``operator_error`` or ``zone_unhealthy``. Raises
        ConfigError when a sending IP or domain in the settings is invalid,
        and StoreError when loading the store's history fails. A failed
        save is logged and retried with the next cycle.
        """
        self._warn_public_resolver()
        if store is not None and store is not self._restored_from:
            self.history.restore(await store.load())
            self._restored_from = store
        chosen = (
            list(targets)
            if targets is not None
            else targets_from_settings(self.settings)
        )
        started = time.perf_counter()
        with collector_paused():
            outcome = await check_zones(self.lookup, self.zones, chosen, self.backoff)
            now = self._wall_clock()
            transitions = self._record(outcome, now)
            forgotten = self._forget_unchecked(outcome)
            if self.exporter is not None:
                self.exporter.export(outcome, now)
        if store is not None:
            await self._save(store, transitions)
            await self._forget(store, forgotten)
        else:
            # Nothing will save the changed entries, so none is kept for it.
            self.history.mark_saved()
        self._log_pass(outcome, time.perf_counter() - started)
        return outcome.results

    def _forget_unchecked(self, outcome: Pass) -> list[tuple[str, str]]:
        """Forget the history of pairs ``outcome`` did not check; return their keys."""
        # Every result in a known state has an entry, so no more entries
        # than such results means none belongs to an unchecked pair.
        known = sum(1 for r in outcome.results if r.state in KNOWN_STATES)
        if len(self.history) <= known:
            return []
        return self.history.retain((r.target, r.zone) for r in outcome.results)

    async def _save(
        self, store: TransitionStore, transitions: list[Transition]
    ) -> None:
        changed = self.history.changed()
        if not transitions and not changed:
            return
        try:
            await store.save(transitions, changed)
        except StoreError as exc:
            # The entries stay marked as changed, so the next cycle writes
            # them again.
            self.log.error(
                "dnsbl_history_save_failed", error=str(exc), entries=len(changed)
            )
            return
        self.history.mark_saved()

    async def _forget(
        self, store: TransitionStore, keys: list[tuple[str, str]]
    ) -> None:
        # Rows of pairs no longer checked that never recorded a listing
        # carry nothing worth keeping, so the table does not grow with
        # every target that ever came and went. Rows with a listing stay.
        if not keys:
            return
        try:
            await store.forget(keys)
        except StoreError as exc:
            # Left for the next process, which loads and forgets them again.
            self.log.error(
                "dnsbl_history_forget_failed", error=str(exc), entries=len(keys)
            )

    def _record(self, outcome: Pass, now: float) -> list[Transition]:
        transitions = []
        for result in outcome.results:
            transition = self.history.update(result, now)
            if transition is None:
                continue
            transitions.append(transition)
            event = (
                "dnsbl_listed" if transition.new is State.LISTED else "dnsbl_delisted"
            )
            # The first cycle is a baseline: a listing found then is recorded
            # at info, and only later changes are warnings.
            emit = self.log.warning if transition.old is not None else self.log.info
            emit(
                event,
                target=transition.target,
                zone=transition.zone,
                codes=list(transition.codes),
                previous=transition.old.value if transition.old else None,
                reputation=result.alerts,
            )
        return transitions

    def _log_pass(self, outcome: Pass, seconds: float) -> None:
        # A zone's trouble is logged when it starts or its reason changes,
        # and its recovery once. A zone down for days thus does not repeat
        # its warning every cycle, and the metrics show it meanwhile.
        for zone, health in outcome.health.items():
            paused = zone in outcome.backed_off
            state = ("paused" if paused else "unhealthy", health.reason)
            before = self._zone_trouble.get(zone)
            if health.healthy and not paused:
                if before is not None:
                    self.log.info("dnsbl_zone_recovered", zone=zone)
                    del self._zone_trouble[zone]
                continue
            if state != before:
                event = "dnsbl_zone_paused" if paused else "dnsbl_zone_unhealthy"
                self.log.warning(event, zone=zone, reason=health.reason)
                self._zone_trouble[zone] = state
        counts = Counter(result.state for result in outcome.results)
        states = {state.value: count for state, count in counts.items()}
        self.log.info(
            "dnsbl_cycle_done",
            zones=len(outcome.health),
            results=len(outcome.results),
            seconds=round(seconds, 3),
            **states,
        )

    def _warn_public_resolver(self) -> None:
        public = public_resolvers(self.resolver)
        if public and not self._warned_public:
            self._warned_public = True
            self.log.warning(
                "dnsbl_public_resolver",
                nameservers=public,
                fix="run a local recursive resolver and set dns.nameservers to it",
            )


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the body, then restore it.

    A pass builds a few objects per query, nearly all freed by reference
    counting, yet enough to set off a full collection over every object of
    the process about once a pass. That collection cost 15 to 20 % of the
    pass's CPU in bench/dnsbl_speed.py. Cyclic garbage made meanwhile, by
    this pass or by other tasks, waits for the first collection after it.
    A collector disabled by someone else stays disabled.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_default_monitor: BlocklistMonitor | None = None


async def run_blocklist_cycle(
    settings: Settings,
    store: TransitionStore | None = None,
    metrics: Metrics | None = None,
    targets: Sequence[Target] | None = None,
) -> list[ZoneResult]:
    """Run one blocklist cycle for ``targets``.

    ``targets`` defaults to the sending IPs and domains and the configured
    link domains (``targets_from_settings``).

    State (cache, paused zones, history) is kept in a process-wide monitor
    that is rebuilt when the settings or the metrics change. Raises
    ConfigError or RulesError when the catalogue or the settings are invalid.
    """
    global _default_monitor  # noqa: PLW0603
    monitor = _default_monitor
    if (
        monitor is None
        or monitor.settings != settings
        or monitor.metrics is not metrics
    ):
        rebuilt = BlocklistMonitor(settings, metrics=metrics)
        if monitor is not None and monitor.metrics is metrics:
            # The old exporter records which series it set, so the new
            # settings' first pass can remove those it no longer checks.
            rebuilt.exporter = monitor.exporter
        monitor = _default_monitor = rebuilt
    return await monitor.run(targets, store=store)


def next_delay(interval: float, rng: Callable[[], float] = random.random) -> float:
    """Return ``interval`` jittered by up to 10 % either way.

    Spreading cycles keeps many installations from asking a list at the
    same second.
    """
    return interval * (1 + JITTER_FRACTION * (2 * rng() - 1))
