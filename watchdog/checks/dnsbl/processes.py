"""Large blocklist batches split over worker processes.

One Python process spends most of a query's CPU in the interpreter, so a
cycle of many thousand queries is bound by one core and, run on the event
loop, delays everything else the daemon does for that long. A
``QueryProcesses`` sends such a batch from worker processes instead: the
zones are dealt out to the workers, each worker runs
``burst.resolve_blocking`` over its own sockets, and the event loop only
waits for the results.

Each worker gets whole zones, so the per-zone limit holds as it is; the
overall limit is divided between the workers. The workers start on first
use from the ``forkserver`` (as the classifier pool's do) and stay until
``close``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from watchdog.checks.dnsbl.batch import Outcome, Query
from watchdog.checks.dnsbl.burst import resolve_blocking
from watchdog.checks.dnsbl.endpoint import QueryTimeout
from watchdog.checks.dnsbl.wire import Reply, Unusual


class QueryProcesses:
    """``count`` worker processes that send batches of fast-path queries."""

    def __init__(self, count: int) -> None:
        if count < 1:
            msg = f"invalid worker process count {count}: expected 1 or more"
            raise ValueError(msg)
        self.count = count
        self.sent = 0
        self._executor: ProcessPoolExecutor | None = None

    async def resolve(
        self,
        nameservers: Sequence[tuple[str, int]],
        queries: Sequence[Query],
        *,
        timeouts: tuple[float, float],
        limits: tuple[int, int],
        default_ttl: float,
    ) -> list[tuple[Outcome, float]]:
        """Send ``queries`` from the workers; return outcomes in their order.

        The arguments mean what they mean for ``burst.resolve_blocking``.
        Raises BrokenProcessPool when a worker died (the next call starts
        new ones) and OSError when a worker could not open its sockets.
        """
        shards = _deal(queries, self.count)
        limit, per_zone = limits
        shard_limits = (max(1, limit // len(shards)), per_zone) if shards else limits
        loop = asyncio.get_running_loop()
        executor = self._start()
        try:
            # A worker that died while the pool was idle makes ``submit``
            # raise here, before any call runs.
            calls = [
                loop.run_in_executor(
                    executor,
                    _resolve_shard,
                    list(nameservers),
                    [queries[index] for index in shard],
                    (timeouts, shard_limits, default_ttl),
                )
                for shard in shards
            ]
            answered = await asyncio.gather(*calls)
        except BrokenProcessPool:
            self.close()
            raise

        results: list[tuple[Outcome, float] | None] = [None] * len(queries)
        for shard, (packed, sent) in zip(shards, answered, strict=True):
            self.sent += sent
            for index, one in zip(shard, packed, strict=True):
                results[index] = _unpack(one)
        return [pair for pair in results if pair is not None]

    def close(self) -> None:
        """Stop the workers; a later ``resolve`` starts new ones."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def _start(self) -> ProcessPoolExecutor:
        if self._executor is None:
            context = multiprocessing.get_context("forkserver")
            self._executor = ProcessPoolExecutor(self.count, mp_context=context)
        return self._executor


def _deal(queries: Sequence[Query], count: int) -> list[list[int]]:
    """Split the query indexes into at most ``count`` shards of whole zones.

    Zones go to the shard with the fewest queries so far, largest first,
    so the shards come out about equal.
    """
    by_zone: dict[str, list[int]] = {}
    for index, (_, _, zone) in enumerate(queries):
        by_zone.setdefault(zone, []).append(index)
    shards: list[list[int]] = [[] for _ in range(min(count, len(by_zone)))]
    for indexes in sorted(by_zone.values(), key=len, reverse=True):
        min(shards, key=len).extend(indexes)
    return shards


# An outcome as it crosses the process boundary: plain tuples pickle many
# times faster than the Reply and exception objects they stand for.
_REPLY, _UNUSUAL, _TIMEOUT = 0, 1, 2
Packed = tuple[int, tuple[str, ...], float, bool, str, float]


def _resolve_shard(
    nameservers: list[tuple[str, int]],
    queries: list[Query],
    settings: tuple[tuple[float, float], tuple[int, int], float],
) -> tuple[list[Packed], int]:
    timeouts, limits, default_ttl = settings
    pairs, sent = resolve_blocking(
        nameservers, queries, timeouts=timeouts, limits=limits, default_ttl=default_ttl
    )
    return [_pack(outcome, seconds) for outcome, seconds in pairs], sent


def _pack(outcome: Outcome, seconds: float) -> Packed:
    if isinstance(outcome, Reply):
        return (_REPLY, outcome.records, outcome.ttl, outcome.negative, "", seconds)
    kind = _UNUSUAL if isinstance(outcome, Unusual) else _TIMEOUT
    return (kind, (), 0.0, False, str(outcome), seconds)


def _unpack(packed: Packed) -> tuple[Outcome, float]:
    kind, records, ttl, negative, message, seconds = packed
    if kind == _REPLY:
        return Reply(records, ttl, negative), seconds
    if kind == _UNUSUAL:
        return Unusual(message), seconds
    return QueryTimeout(message), seconds
