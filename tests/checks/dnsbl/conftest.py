"""A private rbldnsd serving the test zones, and unbound in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers.common import free_port
from tests.servers.dns import (
    Rbldnsd,
    RblZone,
    StubZone,
    Unbound,
    run_rbldnsd,
    run_unbound,
)
from watchdog.checks.dnsbl.catalogue import Zone, load_catalogue
from watchdog.config import Blocklists, Dns, Settings

DATA = Path(__file__).parent / "data"
ZONES_FILE = DATA / "zones.yaml"


def _soa(zone: str) -> str:
    # A negative answer carries the SOA minimum (120 s), unlike the 60 s
    # the lookup falls back to, so a test can tell the two apart.
    return (
        f"$SOA 600 ns.{zone} hostmaster.example.com 0 1h 5m 1d 120\n"
        f"$NS 60 ns.{zone}\n$TTL 60\n"
    )


FLIP_CLEAN = _soa("flip.test") + ":2:Listed\n127.0.0.2\n"

FILES = {
    "zen.combined": _soa("zen.test")
    + "$DATASET ip4set:sbl @\n:2:Listed in SBL: $\n127.0.0.2\n192.0.2.10\n"
    + "192.0.2.13 :77:Unknown code\n"
    + "$DATASET ip4set:xbl @\n:4:Listed in XBL: $\n127.0.0.2\n192.0.2.10\n"
    + "$DATASET ip4set:pbl @\n:10:Listed in PBL: $\n127.0.0.2\n192.0.2.11\n",
    "refuse.ip4set": _soa("refuse.test")
    + ":127.255.255.254:Query refused\n0.0.0.0/1\n128.0.0.0/1\n",
    "bogus.ip4set": _soa("bogus.test")
    + ":2:Listed\n127.0.0.2\n192.0.2.30 :192.0.2.1:Parked\n",
    "all.ip4set": _soa("all.test") + ":2:Listed\n0.0.0.0/1\n128.0.0.0/1\n",
    "empty.ip4set": _soa("empty.test"),
    "flip.ip4set": FLIP_CLEAN,
    "info.ip4set": _soa("info.test") + ":2:Listed\n127.0.0.2\n192.0.2.10\n",
    "v6.ip6trie": _soa("v6.test") + ":2:Listed v6\n::ffff:7f00:2\n2001:db8:1::/48\n",
    "dbl.dnset": _soa("dbl.test")
    + ":127.0.1.2:Spam domain\ntest\nspam.example\n"
    + "phish.example :127.0.1.4:Phishing domain\n",
    "bits.dnset": _soa("bits.test")
    + ":127.0.0.2:Black\ntest\nbad.example :127.0.0.80:Malware and abuse\n"
    + "blocked.example :127.0.0.1:Blocked\n",
}

RBL_ZONES = [
    RblZone("zen.test", "combined", "zen.combined"),
    RblZone("refuse.test", "ip4set", "refuse.ip4set"),
    RblZone("bogus.test", "ip4set", "bogus.ip4set"),
    RblZone("all.test", "ip4set", "all.ip4set"),
    RblZone("empty.test", "ip4set", "empty.ip4set"),
    RblZone("flip.test", "ip4set", "flip.ip4set"),
    RblZone("info.test", "ip4set", "info.ip4set"),
    RblZone("v6.test", "ip6trie", "v6.ip6trie"),
    RblZone("dbl.test", "dnset", "dbl.dnset"),
    RblZone("bits.test", "dnset", "bits.dnset"),
]


@dataclass(frozen=True)
class DnsServers:
    """The running rbldnsd and the unbound that recurses to it."""

    rbldnsd: Rbldnsd
    unbound: Unbound


@pytest.fixture(scope="session")
def dns_servers() -> Iterator[DnsServers]:
    """Start rbldnsd, check that it answers, then start unbound in front."""
    with run_rbldnsd(RBL_ZONES, FILES) as rbldnsd:
        stubs = [StubZone(zone.name, rbldnsd.port) for zone in RBL_ZONES]
        stubs.append(StubZone("dead.test", free_port(), ready=False))
        with run_unbound(stubs) as unbound:
            yield DnsServers(rbldnsd, unbound)


@pytest.fixture(scope="session")
def test_zones() -> dict[str, Zone]:
    """The catalogue of the test zones, keyed by name."""
    return load_catalogue(ZONES_FILE)


@pytest.fixture
def settings(dns_servers: DnsServers) -> Settings:
    """Settings that query the private unbound and use the test catalogue."""
    return Settings(
        dns=Dns(
            nameservers=[dns_servers.unbound.nameserver],
            timeout_seconds=1.0,
            lifetime_seconds=3.0,
        ),
        blocklists=Blocklists(zones_file=ZONES_FILE),
    )
