"""Prometheus export of blocklist passes."""

from __future__ import annotations

from collections.abc import Collection

from watchdog.checks.dnsbl.answer import KNOWN_STATES, Code, State
from watchdog.checks.dnsbl.checker import Pass
from watchdog.metrics import Metrics

_ERROR_STATES = frozenset({State.BOGUS, State.OPERATOR_ERROR, State.ZONE_UNHEALTHY})


class Exporter:
    """Set the blocklist metrics from each pass, removing codes that went away.

    The value last set for each series is remembered, so a pass touches
    only the series whose value changed: most of a large cycle's thousands
    of results repeat the one before. The series of a target or zone that
    a pass no longer checks (a learned link domain that expired, a zone
    taken out of the configuration) are removed, so no alert fires for it.
    """

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._exported: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self._sources: dict[tuple[str, str], str] = {}
        self._listed: dict[tuple[str, str, str], int] = {}
        self._zones: set[str] = set()

    def export(self, outcome: Pass, now: float) -> None:
        """Set the gauges from ``outcome`` and count its errors.

        A result without a known answer leaves ``dnsbl_listed`` and the return
        codes as they were, so a DNS failure neither raises nor clears a
        listing.
        """
        metrics = self.metrics
        for zone, health in outcome.health.items():
            metrics.dnsbl_zone_healthy.labels(zone).set(1 if health.healthy else 0)
            if health.healthy:
                metrics.dnsbl_last_success.labels(zone).set(now)

        sources = {(r.target, r.kind): r.source for r in outcome.results}
        self._drop_unchecked(sources.keys(), outcome.health.keys())
        for (target, kind), source in sources.items():
            self._set_source(target, kind, source)

        for result in outcome.results:
            state = result.state
            if state is State.DNS_ERROR:
                # The reason is one of timeout, servfail, refused,
                # no_nameservers or error.
                metrics.dnsbl_check_errors.labels(result.zone, result.reason).inc()
            elif state in _ERROR_STATES:
                metrics.dnsbl_check_errors.labels(result.zone, state.value).inc()
            if state not in KNOWN_STATES:
                continue
            self._set_listed(result.target, result.kind, result.zone, result.alerts)
            if result.codes or (result.target, result.zone) in self._exported:
                self._replace_codes(result.target, result.zone, result.codes)

    def _drop_unchecked(
        self, targets: Collection[tuple[str, str]], zones: Collection[str]
    ) -> None:
        """Remove the series of targets and zones missing from this pass."""
        metrics = self.metrics
        gone_targets = self._sources.keys() - targets
        gone_zones = self._zones - set(zones)
        self._zones = set(zones)
        if not gone_targets and not gone_zones:
            return
        for target, kind in gone_targets:
            metrics.dnsbl_target_info.remove(
                target, kind, self._sources.pop((target, kind))
            )
        for zone in gone_zones:
            # remove() ignores a series that was never set.
            metrics.dnsbl_zone_healthy.remove(zone)
            metrics.dnsbl_last_success.remove(zone)

        gone_values = {target for target, _ in gone_targets}
        listed = [k for k in self._listed if k[0] in gone_values or k[2] in gone_zones]
        for series in listed:
            metrics.dnsbl_listed.remove(*series)
            del self._listed[series]
        coded = [k for k in self._exported if k[0] in gone_values or k[1] in gone_zones]
        for target, zone in coded:
            for code, severity in self._exported.pop((target, zone)):
                metrics.dnsbl_return_code.remove(target, zone, code, severity)

    def _set_listed(self, target: str, kind: str, zone: str, alerts: bool) -> None:
        value = 1 if alerts else 0
        if self._listed.get((target, kind, zone)) != value:
            self.metrics.dnsbl_listed.labels(target, kind, zone).set(value)
            self._listed[(target, kind, zone)] = value

    def _set_source(self, target: str, kind: str, source: str) -> None:
        gauge = self.metrics.dnsbl_target_info
        old = self._sources.get((target, kind))
        if old == source:
            return
        if old is not None:
            gauge.remove(target, kind, old)
        gauge.labels(target, kind, source).set(1)
        self._sources[(target, kind)] = source

    def _replace_codes(self, target: str, zone: str, codes: tuple[Code, ...]) -> None:
        gauge = self.metrics.dnsbl_return_code
        current = {(code.address, code.severity.value) for code in codes}
        exported = self._exported.get((target, zone), set())
        if current == exported:
            return
        for code, severity in exported - current:
            gauge.remove(target, zone, code, severity)
        for code, severity in current:
            gauge.labels(target, zone, code, severity).set(1)
        if current:
            self._exported[(target, zone)] = current
        else:
            # Pairs without codes are left out, so that the many clean
            # results skip this method.
            del self._exported[(target, zone)]
