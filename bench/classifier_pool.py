"""Measure what ClassifierPool adds per message, and how long a respawn takes.

Usage::

    .venv/bin/python bench/classifier_pool.py [--count 2000] [--workers 2]

The corpus is classified in this process, after one warm-up pass, for the
bare cost. Then ``count`` messages go through a pool, one at a time and
then with ``workers`` messages in flight. The per-message overhead is the pool's wall
time per message minus the in-process time. A worker killed at a limit is
replaced on the next request, which then waits one worker start.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from watchdog.classify import classify
from watchdog.classify.worker import ClassifierPool
from watchdog.config import Limits

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "corpus" / "emails"


def in_process_seconds(messages: list[bytes]) -> float:
    """Return the mean wall time of classify in this process, in seconds."""
    limits = Limits()
    for raw in messages:
        classify(raw, limits)
    started = time.perf_counter()
    for raw in messages:
        classify(raw, limits)
    return (time.perf_counter() - started) / len(messages)


async def pool_seconds(messages: list[bytes], count: int, in_flight: int) -> float:
    """Return the mean wall time per message through a pool of ``in_flight``."""
    pool = ClassifierPool(Limits(), size=in_flight)
    await pool.start()
    try:
        for raw in messages[: in_flight * 4]:
            await pool(raw)
        queue = [messages[index % len(messages)] for index in range(count)]
        started = time.perf_counter()
        await asyncio.gather(*(_drain(pool, queue) for _ in range(in_flight)))
        return (time.perf_counter() - started) / count
    finally:
        await pool.close()


async def _drain(pool: ClassifierPool, queue: list[bytes]) -> None:
    while queue:
        await pool(queue.pop())


async def spawn_seconds() -> float:
    """Return how long one worker takes to start, which is also a respawn's cost.

    The fork server is started first, as it is in a daemon that already runs.
    """
    warm = ClassifierPool(Limits(), size=1)
    await warm.start()
    await warm.close()
    pool = ClassifierPool(Limits(), size=1)
    started = time.perf_counter()
    await pool.start()
    seconds = time.perf_counter() - started
    await pool.close()
    return seconds


def main() -> None:
    """Print the in-process cost, the pool's cost and the respawn time."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    messages = [path.read_bytes() for path in sorted(CORPUS.rglob("*.eml"))]
    bare = in_process_seconds(messages)
    sequential = asyncio.run(pool_seconds(messages, args.count, 1))
    parallel = asyncio.run(pool_seconds(messages, args.count, args.workers))
    spawn = asyncio.run(spawn_seconds())
    print(f"corpus messages:              {len(messages)}")
    print(f"in process:                   {bare * 1e3:.2f} ms per message")
    print(f"pool of 1, one at a time:     {sequential * 1e3:.2f} ms per message")
    print(f"overhead per message:         {(sequential - bare) * 1e3:.2f} ms")
    print(
        f"pool of {args.workers}, all in flight:  {parallel * 1e3:.2f} ms per message"
    )
    print(f"one worker start (respawn):   {spawn * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
