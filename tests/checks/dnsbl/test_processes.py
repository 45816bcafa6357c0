"""Batches sent from worker processes, against rbldnsd and a silent port."""

from __future__ import annotations

import os
import signal
import socket
import time
from concurrent.futures.process import BrokenProcessPool

import pytest

from tests.checks.dnsbl.conftest import DnsServers
from tests.servers.common import free_port
from watchdog.checks.dnsbl.answer import State
from watchdog.checks.dnsbl.batch import resolve_many
from watchdog.checks.dnsbl.burst import resolve_blocking
from watchdog.checks.dnsbl.catalogue import Zone
from watchdog.checks.dnsbl.cycle import BlocklistMonitor
from watchdog.checks.dnsbl.fastquery import FastResolver, QueryTimeout
from watchdog.checks.dnsbl.lookup import PROCESS_MIN_QUERIES, Lookup
from watchdog.checks.dnsbl.processes import QueryProcesses, _deal
from watchdog.checks.dnsbl.targets import parse_target
from watchdog.checks.dnsbl.wire import TYPE_A, TYPE_TXT, Reply, Unusual
from watchdog.checks.resolver import make_resolver
from watchdog.config import Blocklists, Dns, Settings

pytestmark = pytest.mark.dns

ZONES = ("zen.test", "info.test", "flip.test")
LISTED = {"10.2.0.192.zen.test", "10.2.0.192.info.test", "2.0.0.127.flip.test"}


def _queries(count: int) -> list[tuple[str, int, str]]:
    """Return ``count`` A queries spread over three zones, a few of them listed."""
    names = [f"{n % 250}.{n // 250}.18.198" for n in range(count - len(LISTED))]
    queries = [
        (f"{name}.{ZONES[i % 3]}", TYPE_A, ZONES[i % 3]) for i, name in enumerate(names)
    ]
    queries += [(name, TYPE_A, name.split(".", 4)[-1]) for name in sorted(LISTED)]
    return queries


def _summary(outcome: object) -> object:
    if isinstance(outcome, Reply):
        return outcome.records, outcome.negative
    return type(outcome).__name__


def test_deal_keeps_zones_whole() -> None:
    queries = [("a", TYPE_A, "big")] * 6 + [("b", TYPE_A, "one")] * 3
    queries += [("c", TYPE_A, "two")] * 3

    shards = _deal(queries, 2)

    assert sorted(sorted(shard) for shard in shards) == [
        [0, 1, 2, 3, 4, 5],
        [6, 7, 8, 9, 10, 11],
    ]


def test_deal_caps_shards_at_zones() -> None:
    assert len(_deal([("a", TYPE_A, "only")] * 5, 4)) == 1
    assert _deal([], 4) == []


def test_blocking_run_outcomes(dns_servers: DnsServers) -> None:
    queries = [*_queries(60), ("a..zen.test", TYPE_A, "zen.test")]
    pairs, sent = resolve_blocking(
        [("127.0.0.1", dns_servers.rbldnsd.port)],
        queries,
        timeouts=(0.5, 2.0),
        limits=(8, 2),
        default_ttl=60,
    )
    outcomes = [outcome for outcome, _ in pairs]

    assert len(outcomes) == len(queries)
    assert isinstance(outcomes[-1], Unusual)
    listed = [q[0] for q, o in zip(queries, outcomes, strict=True) if _is_listed(o)]
    assert sorted(listed) == sorted(LISTED)
    assert sent == len(queries) - 1  # the invalid name is never sent


def test_blocking_run_silent_server() -> None:
    started = time.monotonic()
    pairs, sent = resolve_blocking(
        [("127.0.0.1", free_port(socket.SOCK_DGRAM))],
        _queries(6),
        timeouts=(0.2, 0.5),
        limits=(8, 4),
        default_ttl=60,
    )

    assert all(isinstance(outcome, QueryTimeout) for outcome, _ in pairs)
    assert sent >= 2 * len(pairs)  # every query was tried again
    assert time.monotonic() - started < 3


async def test_processes_match_event_loop(dns_servers: DnsServers) -> None:
    """Worker processes and the event loop give the same outcome per query."""
    port = dns_servers.rbldnsd.port
    queries = _queries(300)
    queries += [(name, TYPE_TXT, name.split(".", 4)[-1]) for name in sorted(LISTED)]
    processes = QueryProcesses(2)
    try:
        from_workers = await processes.resolve(
            [("127.0.0.1", port)],
            queries,
            timeouts=(0.5, 2.0),
            limits=(16, 4),
            default_ttl=60,
        )
    finally:
        processes.close()
    fast = FastResolver([("127.0.0.1", port)], timeout=0.5, lifetime=2.0)
    from_loop = await resolve_many(fast, queries, limit=16, per_zone=4, default_ttl=60)

    assert [_summary(o) for o, _ in from_workers] == [_summary(o) for o, _ in from_loop]
    assert processes.sent == len(queries)


async def test_killed_worker_is_replaced(dns_servers: DnsServers) -> None:
    """A dead worker fails one batch with BrokenProcessPool; the next one works."""
    nameservers = [("127.0.0.1", dns_servers.rbldnsd.port)]
    processes = QueryProcesses(1)
    try:
        await _resolve(processes, nameservers)
        _kill_workers(processes)
        with pytest.raises(BrokenProcessPool):
            await _resolve(processes, nameservers)
        again = await _resolve(processes, nameservers)
    finally:
        processes.close()

    assert all(isinstance(outcome, Reply) for outcome, _ in again)


async def test_lookup_falls_back_to_loop(dns_servers: DnsServers) -> None:
    """A broken worker pool costs the prefetch time, not its answers."""
    fast = FastResolver(
        [("127.0.0.1", dns_servers.rbldnsd.port)], timeout=0.5, lifetime=2.0
    )
    processes = QueryProcesses(1)
    lookup = Lookup(
        make_resolver(Dns(nameservers=[f"127.0.0.1:{dns_servers.rbldnsd.port}"])),
        concurrency=16,
        per_zone=4,
        fast=fast,
        processes=processes,
    )
    requests = [(name, zone) for name, _, zone in _queries(PROCESS_MIN_QUERIES)]
    try:
        await lookup.prefetch(requests[:PROCESS_MIN_QUERIES])
        assert processes.sent >= PROCESS_MIN_QUERIES
        _kill_workers(processes)
        lookup.forget()
        fast.sent = 0
        await lookup.prefetch(requests)
    finally:
        processes.close()

    assert fast.sent >= PROCESS_MIN_QUERIES
    for name in sorted(LISTED):
        records = lookup.cached(name)
        assert records is not None
        assert records.addresses


def _is_listed(outcome: object) -> bool:
    return isinstance(outcome, Reply) and not outcome.negative


async def _resolve(
    processes: QueryProcesses, nameservers: list[tuple[str, int]]
) -> list[tuple[object, float]]:
    pairs = await processes.resolve(
        nameservers, _queries(10), timeouts=(0.5, 2.0), limits=(8, 4), default_ttl=60
    )
    return list(pairs)


def _kill_workers(processes: QueryProcesses) -> None:
    """Kill every worker process, as the kernel's OOM killer would."""
    executor = processes._executor
    assert executor is not None
    for pid in list(executor._processes):
        os.kill(pid, signal.SIGKILL)


async def test_cycle_same_with_processes(
    settings: Settings, dns_servers: DnsServers, test_zones: dict[str, Zone]
) -> None:
    """A cycle large enough for the workers gives the event loop's results."""
    zones = [test_zones[name] for name in ("zen.test", "bogus.test", "refuse.test")]
    targets = [parse_target(f"192.0.2.{n}") for n in range(1, 255)]
    targets += [parse_target(f"198.18.{n // 250}.{n % 250}") for n in range(200)]
    direct = settings.model_copy(
        update={"dns": Dns(nameservers=[f"127.0.0.1:{dns_servers.rbldnsd.port}"])}
    )
    by_workers = BlocklistMonitor(
        direct.model_copy(update={"blocklists": Blocklists(query_processes=2)}),
        zones=zones,
    )
    on_loop = BlocklistMonitor(
        direct.model_copy(update={"blocklists": Blocklists(query_processes=0)}),
        zones=zones,
    )
    try:
        from_workers = await by_workers.run(targets)
    finally:
        by_workers.close()
    from_loop = await on_loop.run(targets)

    assert by_workers.lookup.processes is not None
    assert by_workers.lookup.processes.sent >= PROCESS_MIN_QUERIES
    assert on_loop.lookup.processes is None
    assert from_workers == from_loop
    states = {result.state for result in from_workers}
    assert {State.LISTED, State.NOT_LISTED, State.BOGUS} <= states
