"""Fixtures: nsd serving the test zones, unbound in front of it, DKIM keys."""

from __future__ import annotations

from collections.abc import Iterator

import dns.asyncresolver
import pytest

from tests.checks.auth.zones import (
    IPV6_REVERSE_ZONE,
    DkimKeys,
    generate_keys,
    zone_files,
)
from tests.servers.common import free_port
from tests.servers.dns import StubZone, Unbound, run_unbound
from tests.servers.nsd import Nsd, run_nsd
from watchdog.checks.resolver import make_resolver
from watchdog.config import Dns


@pytest.fixture(scope="session")
def dkim_keys() -> DkimKeys:
    """Fresh RSA keys of 512, 1024 and 2048 bits and an Ed25519 key."""
    return generate_keys()


@pytest.fixture(scope="session")
def nsd(dkim_keys: DkimKeys) -> Iterator[Nsd]:
    """nsd serving ``test.``, ``psdtest.`` and the two reverse zones."""
    with run_nsd(zone_files(dkim_keys)) as server:
        yield server


@pytest.fixture(scope="session")
def unbound(nsd: Nsd) -> Iterator[Unbound]:
    """unbound recursing to nsd, plus ``dead.test`` stubbed to a closed port."""
    stubs = [StubZone(zone, nsd.port) for zone in nsd.zones]
    stubs.append(StubZone("dead.test", free_port(), ready=False))
    # unbound answers these itself unless told not to.
    nodefault = ("test.", "127.in-addr.arpa.", IPV6_REVERSE_ZONE + ".")
    with run_unbound(stubs, nodefault=nodefault) as server:
        yield server


@pytest.fixture
def resolver(unbound: Unbound) -> dns.asyncresolver.Resolver:
    """A resolver querying unbound, with the daemon's 1 s / 3 s timeouts."""
    return make_resolver(Dns(nameservers=[unbound.nameserver]))


@pytest.fixture
def direct(nsd: Nsd) -> dns.asyncresolver.Resolver:
    """A resolver asking nsd itself, where recursion does not matter."""
    return make_resolver(Dns(nameservers=[nsd.nameserver]))
