"""One pass over the test zones through unbound: every answer state."""

from __future__ import annotations

import dataclasses

import pytest

from tests.checks.dnsbl.conftest import DnsServers
from watchdog.checks.dnsbl.answer import State
from watchdog.checks.dnsbl.catalogue import Zone, ZoneKind
from watchdog.checks.dnsbl.checker import Pass, ZoneBackoff, check_zones
from watchdog.checks.dnsbl.lookup import Lookup
from watchdog.checks.dnsbl.targets import parse_target
from watchdog.checks.resolver import make_resolver
from watchdog.config import Dns

pytestmark = pytest.mark.dns

TARGETS = [
    "192.0.2.10",
    "192.0.2.11",
    "192.0.2.13",
    "192.0.2.30",
    "192.0.2.99",
    "2001:db8:1::5",
    "2001:db8:2::5",
    "spam.example",
    "bad.example",
    "clean.example",
]

EXPECTED = [
    # (target, zone, state, code addresses)
    ("192.0.2.10", "zen.test", State.LISTED, ["127.0.0.2", "127.0.0.4"]),
    ("192.0.2.11", "zen.test", State.LISTED, ["127.0.0.10"]),
    ("192.0.2.13", "zen.test", State.LISTED, ["127.0.0.77"]),
    ("192.0.2.99", "zen.test", State.NOT_LISTED, []),
    ("192.0.2.99", "refuse.test", State.OPERATOR_ERROR, []),
    ("192.0.2.30", "bogus.test", State.BOGUS, []),
    ("192.0.2.99", "bogus.test", State.NOT_LISTED, []),
    ("192.0.2.99", "all.test", State.ZONE_UNHEALTHY, ["127.0.0.2"]),
    ("192.0.2.10", "empty.test", State.ZONE_UNHEALTHY, []),
    ("192.0.2.10", "dead.test", State.DNS_ERROR, []),
    ("192.0.2.10", "info.test", State.LISTED, ["127.0.0.2"]),
    ("2001:db8:1::5", "v6.test", State.LISTED, ["127.0.0.2"]),
    ("2001:db8:2::5", "v6.test", State.NOT_LISTED, []),
    ("spam.example", "dbl.test", State.LISTED, ["127.0.1.2"]),
    ("clean.example", "dbl.test", State.NOT_LISTED, []),
    ("bad.example", "bits.test", State.LISTED,
     ["127.0.0.80 bit 16", "127.0.0.80 bit 64"]),
]  # fmt: skip


@pytest.fixture(scope="module")
async def full_pass(dns_servers: DnsServers, test_zones: dict[str, Zone]) -> Pass:
    lookup = _lookup(dns_servers)
    targets = [parse_target(text) for text in TARGETS]
    return await check_zones(lookup, list(test_zones.values()), targets, ZoneBackoff())


def _lookup(dns_servers: DnsServers) -> Lookup:
    dns_settings = Dns(nameservers=[dns_servers.unbound.nameserver])
    return Lookup(make_resolver(dns_settings), concurrency=16, per_zone=4)


@pytest.mark.parametrize(("target", "zone", "state", "codes"), EXPECTED)
def test_pass_state(
    full_pass: Pass, target: str, zone: str, state: State, codes: list[str]
) -> None:
    (result,) = [r for r in full_pass.results if (r.target, r.zone) == (target, zone)]
    assert result.state is state
    assert [code.address for code in result.codes] == codes


def test_ips_only_to_ip_zones(full_pass: Pass) -> None:
    assert not [
        r for r in full_pass.results if r.kind == "domain" and r.zone == "zen.test"
    ]


def test_domains_only_to_domain_zones(full_pass: Pass) -> None:
    assert not [
        r for r in full_pass.results if r.kind != "domain" and r.zone == "dbl.test"
    ]


def test_ipv4_not_sent_to_ipv6_zone(full_pass: Pass) -> None:
    assert not [r for r in full_pass.results if r.kind == "ip4" and r.zone == "v6.test"]


@pytest.mark.parametrize(
    ("zone", "healthy"),
    [
        ("zen.test", True),
        ("v6.test", True),
        ("dbl.test", True),
        ("bits.test", True),
        ("all.test", False),
        ("empty.test", False),
        ("dead.test", False),
        ("refuse.test", False),
    ],
)
def test_zone_health(full_pass: Pass, zone: str, healthy: bool) -> None:
    assert full_pass.health[zone].healthy is healthy


def test_pbl_alone_does_not_alert(full_pass: Pass) -> None:
    (result,) = [
        r for r in full_pass.results if (r.target, r.zone) == ("192.0.2.11", "zen.test")
    ]
    assert not result.alerts


def test_informational_does_not_alert(full_pass: Pass) -> None:
    (result,) = [
        r
        for r in full_pass.results
        if (r.target, r.zone) == ("192.0.2.10", "info.test")
    ]
    assert not result.alerts


async def test_operator_error_pauses_zone(
    dns_servers: DnsServers, test_zones: dict[str, Zone]
) -> None:
    now = [0.0]
    backoff = ZoneBackoff(clock=lambda: now[0])
    lookup = _lookup(dns_servers)
    zones = [test_zones["refuse.test"]]
    target = [parse_target("192.0.2.99")]

    first = await check_zones(lookup, zones, target, backoff)
    paused = await check_zones(lookup, zones, target, backoff)
    now[0] = 301.0
    lookup.forget()
    resumed = await check_zones(lookup, zones, target, backoff)

    assert first.backed_off == frozenset()
    assert paused.backed_off == {"refuse.test"}
    assert paused.results[0].state is State.OPERATOR_ERROR
    assert resumed.backed_off == frozenset()


async def test_bitmask_blocked_pauses_zone(
    dns_servers: DnsServers, test_zones: dict[str, Zone]
) -> None:
    backoff = ZoneBackoff()
    zones = [test_zones["bits.test"]]
    targets = [parse_target("blocked.example")]
    outcome = await check_zones(_lookup(dns_servers), zones, targets, backoff)
    assert outcome.results[0].state is State.OPERATOR_ERROR
    assert backoff.remaining("bits.test") > 0


async def test_failed_kind_voids_zone(
    dns_servers: DnsServers, test_zones: dict[str, Zone]
) -> None:
    """A zone failing its IPv4 test points is unhealthy for IPv6 targets too."""
    v6 = test_zones["v6.test"]
    dual = dataclasses.replace(v6, kinds=frozenset({ZoneKind.IP4, ZoneKind.IP6}))
    targets = [parse_target("2001:db8:1::5")]

    outcome = await check_zones(_lookup(dns_servers), [dual], targets, ZoneBackoff())

    health = outcome.health["v6.test"]
    assert not health.healthy
    assert health.reason.startswith("ip4 ")
    assert outcome.results[0].state is State.ZONE_UNHEALTHY
    assert not outcome.results[0].alerts


async def test_pause_ending_mid_pass_keeps_zone(
    dns_servers: DnsServers, test_zones: dict[str, Zone]
) -> None:
    """A pause that ends while a pass starts leaves the zone in the pass.

    The clock moves one second per reading, so the pause ends between two
    readings. A zone missing from a pass would lose its metric series.
    """
    now = [0.0]

    def tick() -> float:
        now[0] += 1.0
        return now[0]

    backoff = ZoneBackoff(seconds=2.0, clock=tick)
    backoff.start("refuse.test")
    zones = [test_zones["refuse.test"]]
    target = [parse_target("192.0.2.99")]

    outcome = await check_zones(_lookup(dns_servers), zones, target, backoff)

    assert list(outcome.health) == ["refuse.test"]
    assert [result.zone for result in outcome.results] == ["refuse.test"]
