"""Cycles keep history across runs, export metrics and survive DNS failures."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Mapping, Sequence

import pytest
import structlog.testing
from prometheus_client import CollectorRegistry

from tests.checks.dnsbl.conftest import FLIP_CLEAN, DnsServers
from tests.servers.common import free_port, wait_until
from tests.servers.dns import ask
from watchdog.checks.dnsbl import cycle
from watchdog.checks.dnsbl.answer import State
from watchdog.checks.dnsbl.catalogue import Zone
from watchdog.checks.dnsbl.cycle import (
    BlocklistMonitor,
    next_delay,
    run_blocklist_cycle,
)
from watchdog.checks.dnsbl.fastquery import fast_resolver_for
from watchdog.checks.dnsbl.history import Entry, Transition
from watchdog.checks.dnsbl.targets import parse_target
from watchdog.checks.resolver import make_resolver, public_resolvers
from watchdog.config import Blocklists, Dns, Sending, Settings
from watchdog.metrics import Metrics

pytestmark = pytest.mark.dns


class ListStore:
    """A transition store that keeps what it is given, in memory."""

    def __init__(self) -> None:
        self.saved: list[Transition] = []
        self.entries: dict[tuple[str, str], Entry] = {}

    async def load(self) -> dict[tuple[str, str], Entry]:
        return dict(self.entries)

    async def save(
        self,
        transitions: Sequence[Transition],
        entries: Mapping[tuple[str, str], Entry],
    ) -> None:
        self.saved.extend(transitions)
        self.entries.update(entries)

    async def forget(self, keys: Sequence[tuple[str, str]]) -> None:
        for key in keys:
            if self.entries[key].first_listed is None:
                del self.entries[key]


def _direct(settings: Settings, dns_servers: DnsServers) -> Settings:
    """Return settings that ask rbldnsd itself, so no resolver cache delays a flip."""
    nameserver = f"127.0.0.1:{dns_servers.rbldnsd.port}"
    return settings.model_copy(update={"dns": Dns(nameservers=[nameserver])})


def _flip(dns_servers: DnsServers, text: str, ip: str, *, listed: bool) -> None:
    rbldnsd = dns_servers.rbldnsd
    rbldnsd.write("flip.ip4set", text)
    name = ".".join(reversed(ip.split("."))) + ".flip.test"
    wait_until(
        lambda: bool(ask("127.0.0.1", rbldnsd.port, name).answer) is listed,
        what="rbldnsd reload",
    )


async def test_listing_added_and_removed(
    settings: Settings, dns_servers: DnsServers, test_zones: dict[str, Zone]
) -> None:
    monitor = BlocklistMonitor(
        _direct(settings, dns_servers), zones=[test_zones["flip.test"]]
    )
    store = ListStore()
    target = [parse_target("192.0.2.60")]
    states = []
    try:
        states.append((await monitor.run(target, store))[0].state)
        _flip(dns_servers, FLIP_CLEAN + "192.0.2.60\n", "192.0.2.60", listed=True)
        monitor.lookup.forget()
        states.append((await monitor.run(target, store))[0].state)
        _flip(dns_servers, FLIP_CLEAN, "192.0.2.60", listed=False)
        monitor.lookup.forget()
        states.append((await monitor.run(target, store))[0].state)
    finally:
        dns_servers.rbldnsd.write("flip.ip4set", FLIP_CLEAN)
    entry = monitor.history.get("192.0.2.60", "flip.test")

    assert states == [State.NOT_LISTED, State.LISTED, State.NOT_LISTED]
    assert [(t.old, t.new) for t in store.saved] == [
        (State.NOT_LISTED, State.LISTED),
        (State.LISTED, State.NOT_LISTED),
    ]
    assert entry is not None
    assert entry.delisted is not None


async def test_test_points_not_cached(
    settings: Settings, dns_servers: DnsServers, test_zones: dict[str, Zone]
) -> None:
    """A zone that starts listing everything is unhealthy at the next cycle."""
    monitor = BlocklistMonitor(
        _direct(settings, dns_servers), zones=[test_zones["flip.test"]]
    )
    everything = FLIP_CLEAN + "0.0.0.0/1\n128.0.0.0/1\n"
    try:
        (first,) = await monitor.run([parse_target("192.0.2.61")])
        _flip(dns_servers, everything, "127.0.0.1", listed=True)
        (second,) = await monitor.run([parse_target("192.0.2.62")])
    finally:
        dns_servers.rbldnsd.write("flip.ip4set", FLIP_CLEAN)

    assert first.state is State.NOT_LISTED
    assert second.state is State.ZONE_UNHEALTHY


async def test_restart_keeps_listing(
    settings: Settings, test_zones: dict[str, Zone]
) -> None:
    """A new monitor on the same store reports no listing already known."""
    store = ListStore()
    target = [parse_target("192.0.2.10")]
    first = BlocklistMonitor(settings, zones=[test_zones["info.test"]])
    await first.run(target, store)
    restarted = BlocklistMonitor(settings, zones=[test_zones["info.test"]])
    with structlog.testing.capture_logs() as logs:
        results = await restarted.run(target, store)

    assert results[0].state is State.LISTED
    assert len(store.saved) == 1
    assert [log for log in logs if log["event"] == "dnsbl_listed"] == []


async def test_dns_failure_keeps_listing(
    settings: Settings, dns_servers: DnsServers, test_zones: dict[str, Zone]
) -> None:
    metrics = Metrics(CollectorRegistry())
    monitor = BlocklistMonitor(
        _direct(settings, dns_servers), zones=[test_zones["zen.test"]], metrics=metrics
    )
    target = [parse_target("192.0.2.10")]
    await monitor.run(target)
    dead = Dns(nameservers=[f"127.0.0.1:{free_port()}"], lifetime_seconds=0.5)
    monitor.lookup.resolver = make_resolver(dead)
    monitor.lookup.fast = fast_resolver_for(monitor.lookup.resolver)
    monitor.lookup.retries = 0
    monitor.lookup.forget()

    (result,) = await monitor.run(target)
    entry = monitor.history.get("192.0.2.10", "zen.test")
    labels = {"target": "192.0.2.10", "kind": "ip4", "zone": "zen.test"}
    errors = {"zone": "zen.test", "reason": "timeout"}

    assert result.state is State.DNS_ERROR
    assert entry is not None
    assert entry.state is State.LISTED
    assert _sample(metrics, "mailwatchdog_dnsbl_listed", labels) == 1
    assert _sample(metrics, "mailwatchdog_dnsbl_check_errors_total", errors) == 1
    assert (
        _sample(metrics, "mailwatchdog_dnsbl_zone_healthy", {"zone": "zen.test"}) == 0
    )


def _sample(metrics: Metrics, name: str, labels: dict[str, str]) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


@pytest.fixture(scope="module")
async def exported(dns_servers: DnsServers, test_zones: dict[str, Zone]) -> Metrics:
    metrics = Metrics(CollectorRegistry())
    settings = Settings(dns=Dns(nameservers=[dns_servers.unbound.nameserver]))
    names = ["zen.test", "all.test", "info.test", "refuse.test"]
    monitor = BlocklistMonitor(
        settings, zones=[test_zones[name] for name in names], metrics=metrics
    )
    targets = [parse_target(ip) for ip in ("192.0.2.10", "192.0.2.11")]
    await monitor.run(targets)
    return metrics


GAUGES = [
    ("mailwatchdog_dnsbl_listed",
     {"target": "192.0.2.10", "kind": "ip4", "zone": "zen.test"}, 1),
    ("mailwatchdog_dnsbl_listed",
     {"target": "192.0.2.11", "kind": "ip4", "zone": "zen.test"}, 0),
    ("mailwatchdog_dnsbl_listed",
     {"target": "192.0.2.10", "kind": "ip4", "zone": "info.test"}, 0),
    ("mailwatchdog_dnsbl_listed",
     {"target": "192.0.2.10", "kind": "ip4", "zone": "all.test"}, None),
    ("mailwatchdog_dnsbl_return_code_info",
     {"target": "192.0.2.11", "zone": "zen.test", "code": "127.0.0.10",
      "severity": "configuration"}, 1),
    ("mailwatchdog_dnsbl_return_code_info",
     {"target": "192.0.2.10", "zone": "zen.test", "code": "127.0.0.4",
      "severity": "critical"}, 1),
    ("mailwatchdog_dnsbl_zone_healthy", {"zone": "zen.test"}, 1),
    ("mailwatchdog_dnsbl_zone_healthy", {"zone": "all.test"}, 0),
    ("mailwatchdog_dnsbl_zone_healthy", {"zone": "refuse.test"}, 0),
    ("mailwatchdog_dnsbl_check_errors_total",
     {"zone": "all.test", "reason": "zone_unhealthy"}, 2),
    ("mailwatchdog_dnsbl_check_errors_total",
     {"zone": "refuse.test", "reason": "operator_error"}, 2),
    ("mailwatchdog_dnsbl_last_success_timestamp_seconds", {"zone": "all.test"}, None),
]  # fmt: skip


@pytest.mark.parametrize(("name", "labels", "value"), GAUGES)
def test_exported_metric(
    exported: Metrics, name: str, labels: dict[str, str], value: float | None
) -> None:
    assert _sample(exported, name, labels) == value


def test_exported_last_success(exported: Metrics) -> None:
    seconds = _sample(
        exported,
        "mailwatchdog_dnsbl_last_success_timestamp_seconds",
        {"zone": "zen.test"},
    )
    assert seconds is not None
    assert seconds > 1_700_000_000


def test_exported_query_duration(exported: Metrics) -> None:
    count = _sample(
        exported, "mailwatchdog_dns_query_duration_seconds_count", {"check": "dnsbl"}
    )
    assert count is not None
    assert count >= 12


async def test_run_blocklist_cycle(
    settings: Settings, test_zones: dict[str, Zone]
) -> None:
    del test_zones
    configured = settings.model_copy(
        update={
            "sending": Sending(ips=["192.0.2.10"], domains=["spam.example"]),
            "blocklists": Blocklists(
                zones_file=settings.blocklists.zones_file,
                disable=["dead.test", "refuse.test"],
            ),
        }
    )
    results = await run_blocklist_cycle(configured)
    again = await run_blocklist_cycle(configured)
    listed = {(r.target, r.zone) for r in results if r.state is State.LISTED}

    assert ("192.0.2.10", "zen.test") in listed
    assert ("spam.example", "dbl.test") in listed
    assert len(again) == len(results)
    assert cycle._default_monitor is not None
    assert cycle._default_monitor.history.get("192.0.2.10", "zen.test") is not None


def test_public_resolver_detected() -> None:
    resolver = make_resolver(Dns(nameservers=["8.8.8.8", "127.0.0.1:5353"]))
    assert public_resolvers(resolver) == ["8.8.8.8"]


@pytest.mark.parametrize(("draw", "delay"), [(0.0, 810.0), (0.5, 900.0), (1.0, 990.0)])
def test_next_delay_jitter(draw: float, delay: float) -> None:
    assert next_delay(900.0, rng=lambda: draw) == pytest.approx(delay)


def test_monitor_reused_across_loops(
    settings: Settings, dns_servers: DnsServers, test_zones: dict[str, Zone]
) -> None:
    # With one slot every query but the first waits on a semaphore, which
    # binds the semaphore to the running loop.
    serial = _direct(settings, dns_servers).model_copy(
        update={"blocklists": Blocklists(concurrency=1, per_zone_concurrency=1)}
    )
    monitor = BlocklistMonitor(serial, zones=[test_zones["zen.test"]])
    target = [parse_target("192.0.2.10")]
    first = asyncio.run(monitor.run(target))
    monitor.lookup.forget()
    second = asyncio.run(monitor.run(target))
    assert first[0].state is State.LISTED
    assert second[0].state is State.LISTED


async def test_public_resolver_warned(settings: Settings) -> None:
    # No zones and no targets, so nothing is ever sent to 8.8.8.8.
    public = settings.model_copy(update={"dns": Dns(nameservers=["8.8.8.8"])})
    monitor = BlocklistMonitor(public, zones=[])
    with structlog.testing.capture_logs() as logs:
        await monitor.run([])
        await monitor.run([])
    warnings = [entry for entry in logs if entry["event"] == "dnsbl_public_resolver"]
    assert len(warnings) == 1
    assert warnings[0]["nameservers"] == ["8.8.8.8"]


async def test_unhealthy_zone_logged_once(
    settings: Settings, dns_servers: DnsServers, test_zones: dict[str, Zone]
) -> None:
    """A zone failing its test points is logged when it fails and recovers."""
    monitor = BlocklistMonitor(
        _direct(settings, dns_servers), zones=[test_zones["flip.test"]]
    )
    target = [parse_target("192.0.2.61")]
    broken = FLIP_CLEAN.replace("127.0.0.2\n", "")
    try:
        _flip(dns_servers, broken, "127.0.0.2", listed=False)
        with structlog.testing.capture_logs() as logs:
            for _ in range(3):
                await monitor.run(target)
            _flip(dns_servers, FLIP_CLEAN, "127.0.0.2", listed=True)
            await monitor.run(target)
            await monitor.run(target)
    finally:
        dns_servers.rbldnsd.write("flip.ip4set", FLIP_CLEAN)
    events = [log["event"] for log in logs if log["event"].startswith("dnsbl_zone")]

    assert events == ["dnsbl_zone_unhealthy", "dnsbl_zone_recovered"]


def _listed_series(metrics: Metrics) -> set[tuple[str, str]]:
    return {
        (sample.labels["target"], sample.labels["zone"])
        for family in metrics.registry.collect()
        if family.name == "mailwatchdog_dnsbl_listed"
        for sample in family.samples
    }


async def test_unchecked_series_removed(
    dns_servers: DnsServers, test_zones: dict[str, Zone]
) -> None:
    """A target or zone left out of a pass loses its series."""
    metrics = Metrics(CollectorRegistry())
    settings = Settings(dns=Dns(nameservers=[dns_servers.unbound.nameserver]))
    zones = [test_zones["zen.test"], test_zones["info.test"]]
    monitor = BlocklistMonitor(settings, zones=zones, metrics=metrics)
    kept, dropped = parse_target("192.0.2.10"), parse_target("192.0.2.11")

    await monitor.run([kept, dropped])
    monitor.zones = zones[:1]
    await monitor.run([kept])

    assert _listed_series(metrics) == {("192.0.2.10", "zen.test")}
    info = {"target": "192.0.2.11", "kind": "ip4", "source": "sending"}
    assert _sample(metrics, "mailwatchdog_dnsbl_target_info", info) is None
    code = {"target": "192.0.2.11", "zone": "zen.test", "code": "127.0.0.10",
            "severity": "configuration"}  # fmt: skip
    assert _sample(metrics, "mailwatchdog_dnsbl_return_code_info", code) is None
    healthy = {"zone": "info.test"}
    assert _sample(metrics, "mailwatchdog_dnsbl_zone_healthy", healthy) is None
    assert _sample(metrics, "mailwatchdog_dnsbl_zone_healthy", {"zone": "zen.test"})


async def test_new_settings_remove_old_series(
    settings: Settings, test_zones: dict[str, Zone]
) -> None:
    """A sending IP taken out of the settings loses its series."""
    del test_zones
    metrics = Metrics(CollectorRegistry())
    blocklists = Blocklists(
        zones_file=settings.blocklists.zones_file,
        disable=["dead.test", "refuse.test"],
    )
    before = settings.model_copy(
        update={
            "sending": Sending(ips=["192.0.2.10", "192.0.2.11"]),
            "blocklists": blocklists,
        }
    )
    after = before.model_copy(update={"sending": Sending(ips=["192.0.2.10"])})

    await run_blocklist_cycle(before, metrics=metrics)
    await run_blocklist_cycle(after, metrics=metrics)

    targets = {target for target, _ in _listed_series(metrics)}
    assert targets == {"192.0.2.10"}


@pytest.mark.parametrize("enabled", [True, False])
def test_collector_paused_restores_state(enabled: bool) -> None:
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        with cycle.collector_paused():
            paused = gc.isenabled()
        after = gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()

    assert not paused
    assert after is enabled


def test_collector_restored_after_error() -> None:
    with pytest.raises(RuntimeError), cycle.collector_paused():
        raise RuntimeError("pass failed")

    assert gc.isenabled()


async def test_history_of_unchecked_targets_forgotten(
    dns_servers: DnsServers, test_zones: dict[str, Zone]
) -> None:
    """History held in memory stays bounded when targets come and go."""
    settings = Settings(dns=Dns(nameservers=[dns_servers.unbound.nameserver]))
    monitor = BlocklistMonitor(settings, zones=[test_zones["zen.test"]])

    for last_octet in range(20, 25):
        await monitor.run([parse_target(f"192.0.2.{last_octet}")])

    assert len(monitor.history) == 1
    assert monitor.history.get("192.0.2.24", "zen.test") is not None


async def test_history_rows_of_unchecked_targets_deleted(
    dns_servers: DnsServers, test_zones: dict[str, Zone]
) -> None:
    """Saved rows of pairs no longer checked go, unless they hold a listing."""
    settings = Settings(dns=Dns(nameservers=[dns_servers.unbound.nameserver]))
    monitor = BlocklistMonitor(settings, zones=[test_zones["zen.test"]])
    store = ListStore()
    listed, clean = parse_target("192.0.2.10"), parse_target("192.0.2.99")

    await monitor.run([listed, clean], store=store)
    await monitor.run([parse_target("192.0.2.98")], store=store)

    assert set(store.entries) == {
        ("192.0.2.10", "zen.test"),
        ("192.0.2.98", "zen.test"),
    }


async def test_readded_target_delisting_reported(
    settings: Settings, dns_servers: DnsServers, test_zones: dict[str, Zone]
) -> None:
    """A listed target that leaves and returns delisted is reported as delisted.

    A restart reports it so, from the saved row, and so must a process
    that kept running.
    """
    monitor = BlocklistMonitor(
        _direct(settings, dns_servers), zones=[test_zones["flip.test"]]
    )
    store = ListStore()
    target, other = parse_target("192.0.2.63"), parse_target("192.0.2.64")
    try:
        _flip(dns_servers, FLIP_CLEAN + "192.0.2.63\n", "192.0.2.63", listed=True)
        await monitor.run([target, other], store)
        await monitor.run([other], store)
        _flip(dns_servers, FLIP_CLEAN, "192.0.2.63", listed=False)
        monitor.lookup.forget()
        with structlog.testing.capture_logs() as logs:
            await monitor.run([target, other], store)
    finally:
        dns_servers.rbldnsd.write("flip.ip4set", FLIP_CLEAN)
    events = [(log["event"], log["log_level"]) for log in logs]
    entry = store.entries[("192.0.2.63", "flip.test")]

    assert ("dnsbl_delisted", "warning") in events
    assert entry.first_listed is not None
    assert entry.delisted is not None


async def test_history_forgotten_beside_failing_zone(
    dns_servers: DnsServers, test_zones: dict[str, Zone]
) -> None:
    """A zone whose results are all errors does not hide unchecked pairs.

    Its results add no entry, so the results outnumber the entries while
    an entry of a target no longer checked is still kept.
    """
    settings = Settings(dns=Dns(nameservers=[dns_servers.unbound.nameserver]))
    zones = [test_zones["zen.test"], test_zones["refuse.test"]]
    monitor = BlocklistMonitor(settings, zones=zones)
    store = ListStore()

    await monitor.run([parse_target("192.0.2.99")], store=store)
    for _ in range(2):
        await monitor.run([parse_target("192.0.2.98")], store=store)

    assert monitor.history.get("192.0.2.99", "zen.test") is None
    assert set(store.entries) == {("192.0.2.98", "zen.test")}
