"""A batch of fast-path queries run to the end without an event loop.

``resolve_blocking`` drives a ``batch.Run`` with epoll over its own
socket. It is the function the blocklist query processes run (see
``processes``), so it returns only picklable values.

NOTE: epoll makes this Linux only, like the rest of the daemon's
deployment; the event-loop path in ``batch.resolve_many`` has no such
limit.
"""

from __future__ import annotations

import select
import time
from collections.abc import Sequence

from watchdog.checks.dnsbl.batch import Outcome, Query, Run
from watchdog.checks.dnsbl.endpoint import EndpointPool

# One socket per worker: replies arrive while the worker sends, so one
# drain reads many of them, and more sockets would only add wakeups.
SOCKETS = 1
# Deadlines are checked this many times per ``timeout``, as in FastResolver.
SWEEPS_PER_TIMEOUT = 4


def resolve_blocking(
    nameservers: Sequence[tuple[str, int]],
    queries: Sequence[Query],
    *,
    timeouts: tuple[float, float],
    limits: tuple[int, int],
    default_ttl: float,
) -> tuple[list[tuple[Outcome, float]], int]:
    """Send ``queries``; return each outcome with its seconds, and the tries sent.

    The outcomes are in the order of ``queries``.
    ``timeouts`` is (try timeout, lifetime) and ``limits`` is (overall,
    per zone) queries in flight, with the meanings of ``resolve_many``.
    Fresh sockets on random ports are opened for the call and closed after.
    """
    if not queries:
        # ``Run`` reports done only after the last outcome, so an empty
        # batch would poll forever.
        return [], 0
    timeout, lifetime = timeouts
    pool = EndpointPool(nameservers, SOCKETS, timeout=timeout, lifetime=lifetime)
    finished = []
    run = Run(
        pool,
        queries,
        limits,
        default_ttl=default_ttl,
        clock=time.monotonic,
        on_done=lambda: finished.append(True),
    )
    poller = select.epoll()
    try:
        by_fd = {endpoint.fileno(): endpoint for endpoint in pool.endpoints()}
        for fd in by_fd:
            poller.register(fd, select.EPOLLIN)
        run.fill(time.monotonic())
        sweep_every = timeout / SWEEPS_PER_TIMEOUT
        next_sweep = time.monotonic() + sweep_every
        while not finished:
            for fd, _ in poller.poll(max(0.0, next_sweep - time.monotonic())):
                by_fd[fd].drain()
            if time.monotonic() >= next_sweep:
                pool.expire(time.monotonic())
                next_sweep = time.monotonic() + sweep_every
    finally:
        poller.close()
        pool.close()
    return run.results(), pool.sent
