"""The liveness probe against datagrams that do not match it.

A datagram with another ID, from another port or too short to parse is
not the resolver's reply to the probe, so it must not prove the resolver
alive.
"""

from __future__ import annotations

import pytest

from tests.checks.auth.udp_resolvers import MISMATCHES, run_mismatched_replier
from watchdog.checks.auth.health import Endpoint, ResolverHealth

pytestmark = pytest.mark.dns

REPLY_SECONDS = 0.3


@pytest.mark.parametrize("mismatch", MISMATCHES)
async def test_probe_ignores_mismatch(mismatch: str) -> None:
    """The asynchronous probe waits past a mismatched reply and fails."""
    health = ResolverHealth(limit=0)
    with run_mismatched_replier(mismatch) as replier:
        endpoints: list[Endpoint] = [("127.0.0.1", replier.port)]
        await health.probe(endpoints, REPLY_SECONDS)

    assert replier.received == ["."]
    assert health.unreachable


@pytest.mark.parametrize("mismatch", MISMATCHES)
def test_blocking_probe_ignores_mismatch(mismatch: str) -> None:
    """The probe of pyspf's lookups waits past a mismatched reply and fails."""
    health = ResolverHealth(limit=0)
    with run_mismatched_replier(mismatch) as replier:
        health.probe_blocking([("127.0.0.1", replier.port)], REPLY_SECONDS)

    assert replier.received == ["."]
    assert health.unreachable
