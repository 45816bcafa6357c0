"""One pass over every zone: test points first, then the targets.

The decisions (what an answer means, whether a zone is healthy, when to
back off) are pure and live in ``answer`` and ``ZoneBackoff``. This module
only drives them with lookups run concurrently.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from watchdog.checks.dnsbl.answer import (
    HEALTHY,
    KNOWN_STATES,
    NOT_LISTED,
    Answer,
    Health,
    State,
    interpret,
    judge_canary,
)
from watchdog.checks.dnsbl.catalogue import Zone, ZoneKind
from watchdog.checks.dnsbl.lookup import Lookup
from watchdog.checks.dnsbl.results import ZoneResult
from watchdog.checks.dnsbl.targets import TEST_POINTS, Target, query_name
from watchdog.errors import DnsError

# A zone that answered an operator-error code is not queried again for
# 5 minutes, so an operator that refuses or rate-limits us is not hammered.
BACKOFF_SECONDS = 300.0


class ZoneBackoff:
    """Zones that answered an operator-error code, paused until a deadline."""

    def __init__(
        self,
        seconds: float = BACKOFF_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self._clock = clock
        self._until: dict[str, float] = {}

    def start(self, zone: str) -> None:
        """Pause ``zone`` for ``seconds`` from now."""
        self._until[zone] = self._clock() + self.seconds

    def remaining(self, zone: str) -> float:
        """Return the seconds ``zone`` stays paused, 0 when it is not."""
        return max(0.0, self._until.get(zone, 0.0) - self._clock())


@dataclass(frozen=True)
class Pass:
    """Everything one pass learned: results, zone health and paused zones."""

    results: list[ZoneResult]
    health: dict[str, Health] = field(default_factory=dict)
    backed_off: frozenset[str] = frozenset()


async def check_zones(
    lookup: Lookup,
    zones: Sequence[Zone],
    targets: Sequence[Target],
    backoff: ZoneBackoff,
) -> Pass:
    """Check every target against every zone of its kind.

    IPs go only to IP zones and domains only to domain zones. Test points
    are asked afresh every pass: a cached NXDOMAIN for 127.0.0.1 would keep
    trusting a zone that began listing everything. A zone that fails its
    test points turns its listed and not-listed answers into
    ``zone_unhealthy``. A zone whose test points all fail with a DNS error
    is not asked about the targets the prefetch left unanswered, which come
    back ``dns_error`` with the test points' reason. A zone paused by
    ``backoff`` is not queried, and its targets come back ``operator_error``.
    """
    # Each pause is read once, so a pause that ends meanwhile cannot leave
    # a zone in neither list, and so out of the pass and its metrics.
    waits = {zone.name: backoff.remaining(zone.name) for zone in zones}
    active = [zone for zone in zones if not waits[zone.name]]
    paused = [zone for zone in zones if waits[zone.name]]
    plans = [_ZonePlan.of(zone, targets) for zone in active]
    lookup.forget(name for plan in plans for name in plan.names[: plan.points])
    await lookup.prefetch(
        [(name, plan.zone.name) for plan in plans for name in plan.names]
    )
    passes = await asyncio.gather(
        *(_check_zone(lookup, plan, backoff) for plan in plans)
    )

    results = [result for zone_results, _ in passes for result in zone_results]
    health = {
        zone.name: zone_health
        for zone, (_, zone_health) in zip(active, passes, strict=True)
    }
    for zone in paused:
        wait = waits[zone.name]
        answer = Answer(
            State.OPERATOR_ERROR,
            reason=f"zone paused for {wait:.0f} s after an operator-error code",
        )
        results.extend(ZoneResult.of(t, zone, answer) for t in _matching(zone, targets))
        health[zone.name] = Health(False, answer.reason)
    return Pass(results, health, frozenset(zone.name for zone in paused))


def _matching(zone: Zone, targets: Sequence[Target]) -> list[Target]:
    return [target for target in targets if target.kind in zone.kinds]


@dataclass(frozen=True)
class _ZonePlan:
    """The names one zone is asked in a pass: its test points, then the targets.

    The first ``points`` of ``names`` are the test points of ``kinds``, two
    per kind, and the rest are ``targets`` in order.
    """

    zone: Zone
    kinds: list[ZoneKind]
    targets: list[Target]
    names: list[str]
    points: int

    @classmethod
    def of(cls, zone: Zone, targets: Sequence[Target]) -> _ZonePlan:
        kinds = sorted(zone.kinds)
        chosen = _matching(zone, targets)
        points = [point for kind in kinds for point in TEST_POINTS[kind]]
        names = [query_name(target, zone) for target in [*points, *chosen]]
        return cls(zone, kinds, chosen, names, len(points))


async def _check_zone(
    lookup: Lookup, plan: _ZonePlan, backoff: ZoneBackoff
) -> tuple[list[ZoneResult], Health]:
    zone = plan.zone
    canaries = await _answers(lookup, zone, plan.names[: plan.points])
    health = _zone_health(plan.kinds, canaries)
    # When every test point failed with a DNS error, the zone is void this
    # pass anyway. So the targets the prefetch could not answer are not
    # asked again, which in a SERVFAIL storm would cost each a retry.
    failed = canaries[0] if _all_failed(canaries) else None
    found = await _answers(lookup, zone, plan.names[plan.points :], failed)

    if any(answer.state is State.OPERATOR_ERROR for answer in [*canaries, *found]):
        backoff.start(zone.name)

    if not health.healthy:
        found = [
            Answer(State.ZONE_UNHEALTHY, answer.codes, health.reason)
            if answer.state in KNOWN_STATES
            else answer
            for answer in found
        ]
    of = ZoneResult.of
    results = [
        of(target, zone, answer)
        for target, answer in zip(plan.targets, found, strict=True)
    ]
    return results, health


def _zone_health(kinds: Sequence[ZoneKind], canaries: Sequence[Answer]) -> Health:
    """Judge a zone by the test points of every kind it lists.

    One failed kind makes the whole zone unhealthy, for every target: the
    metrics and alerts report health per zone, so a listing that alerts
    always comes from a zone that passed all of its test points.
    """
    for index, kind in enumerate(kinds):
        health = judge_canary(canaries[2 * index], canaries[2 * index + 1])
        if not health.healthy:
            return Health(False, f"{kind} {health.reason}")
    return HEALTHY


def _all_failed(canaries: Sequence[Answer]) -> bool:
    return bool(canaries) and all(a.state is State.DNS_ERROR for a in canaries)


async def _answers(
    lookup: Lookup, zone: Zone, names: Sequence[str], failed: Answer | None = None
) -> list[Answer]:
    """Return the interpreted answer of ``zone`` for each name, in order.

    Cached records (the prefetch fills the cache) are read without a task;
    only the names missing from the cache are looked up concurrently, or
    given ``failed`` without a lookup when it is set.
    """
    answers: list[Answer | None] = []
    missing: list[int] = []
    for index, records in enumerate(lookup.cached_many(names)):
        if records is None:
            missing.append(index)
            answers.append(None)
        elif not records.addresses:
            answers.append(NOT_LISTED)
        else:
            answers.append(interpret(zone, records.addresses, records.reason))
    if failed is not None:
        looked_up = [failed] * len(missing)
    else:
        looked_up = await asyncio.gather(
            *(_answer(lookup, zone, names[index]) for index in missing)
        )
    for index, answer in zip(missing, looked_up, strict=True):
        answers[index] = answer
    return [answer for answer in answers if answer is not None]


async def _answer(lookup: Lookup, zone: Zone, name: str) -> Answer:
    try:
        records = await lookup.records(name, zone.name)
    except DnsError as exc:
        return Answer(State.DNS_ERROR, reason=exc.reason)
    return interpret(zone, records.addresses, records.reason)
