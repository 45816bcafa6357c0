"""Attacks on the blocklist and authentication DNS paths.

Each test either proves that a fault is fixed or, marked xfail(strict),
reproduces a fault that is still open. Lying nameservers are UDP sockets on
127.0.0.1 served from a thread: ``scripted_server`` sends back whatever
datagrams its function builds for each query.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool

import pytest

from watchdog.checks.dnsbl.fastquery import FastResolver
from watchdog.checks.dnsbl.processes import QueryProcesses
from watchdog.checks.dnsbl.wire import TYPE_A, Reply

pytestmark = pytest.mark.dns

# Builds the datagrams sent back for one query (none drops the query).
Responder = Callable[[bytes], list[bytes]]


@contextlib.contextmanager
def scripted_server(respond: Responder) -> Iterator[int]:
    """Serve UDP on 127.0.0.1 from a thread and yield the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                query, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            for datagram in respond(query):
                sock.sendto(datagram, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stopping.set()
        thread.join()
        sock.close()


def nxdomain(query: bytes) -> list[bytes]:
    """Return an NXDOMAIN reply without an SOA that echoes ``query``."""
    header = query[:2] + b"\x81\x83\x00\x01\x00\x00\x00\x00\x00\x00"
    return [header + query[12:]]


async def test_reused_query_id_not_dropped() -> None:
    """A query that draws the ID of one just answered still gets its reply.

    The first query's ID is free once its reply is taken, so the second
    query may draw it before the first task resumes. The first task must
    not then remove the second query's waiter, which would leave the
    second query waiting forever, with no deadline sweep to end it.
    """
    with scripted_server(nxdomain) as port:
        fast = FastResolver([("127.0.0.1", port)], timeout=0.5, lifetime=1.0, sockets=1)
        loop = fast.ready()
        assert fast._pool is not None
        (endpoint,) = fast._pool.endpoints()
        ids = iter([7, 7, *range(100, 200)])
        endpoint.ids.draw = lambda: next(ids)  # type: ignore[method-assign]

        # Read the socket by hand, so that the first reply is taken in the
        # same step of the loop as the second query's first step runs.
        loop.remove_reader(endpoint.fileno())
        first = asyncio.create_task(fast.resolve("a.zen.test", TYPE_A, 60.0))
        await asyncio.sleep(0.3)
        second = asyncio.create_task(fast.resolve("b.zen.test", TYPE_A, 60.0))
        endpoint.drain()
        loop.add_reader(endpoint.fileno(), endpoint.drain)

        first_reply = await first
        second_reply = await asyncio.wait_for(second, 3.0)
        fast.close()

    assert first_reply == Reply((), 60.0, negative=True)
    assert second_reply == Reply((), 60.0, negative=True)


async def test_idle_killed_worker_replaced() -> None:
    """A worker killed between batches fails one batch; the next gets new workers.

    The pool notices the death while idle, so the next ``submit`` raises
    BrokenProcessPool before any call runs. Without closing the pool then,
    every later batch failed the same way and fell back to the event loop.
    """
    processes = QueryProcesses(1)
    with scripted_server(nxdomain) as port:
        nameservers = [("127.0.0.1", port)]
        queries = [("2.0.0.127.zen.test", TYPE_A, "zen.test")]

        async def resolve() -> list[tuple[object, float]]:
            pairs = await processes.resolve(
                nameservers,
                queries,
                timeouts=(0.5, 1.0),
                limits=(8, 4),
                default_ttl=60.0,
            )
            return list(pairs)

        try:
            await resolve()
            executor = processes._executor
            assert executor is not None
            for pid in list(executor._processes):
                os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(1.0)
            with pytest.raises(BrokenProcessPool):
                await resolve()
            again = await resolve()
        finally:
            processes.close()

    assert [outcome for outcome, _ in again] == [Reply((), 60.0, negative=True)]
