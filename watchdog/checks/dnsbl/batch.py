"""Many fast-path queries driven by reply callbacks, without a task per query.

An asyncio task and future per query cost more CPU than the query itself,
so ``resolve_many`` keeps a window of queries in flight and sends the next
one from the callback that receives a reply. It honours the same limits as
``Lookup``: at most ``limit`` queries in flight, ``per_zone`` to one zone,
with the zones taken in turn.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Sequence

from watchdog.checks.dnsbl.fastquery import FastResolver, QueryTimeout
from watchdog.checks.dnsbl.wire import Reply, Unusual, encode_question, parse_reply

# One query: the name, the record type and the zone that counts it.
Query = tuple[str, int, str]
Outcome = Reply | Unusual | QueryTimeout


async def resolve_many(
    resolver: FastResolver,
    queries: Sequence[Query],
    *,
    limit: int,
    per_zone: int,
    default_ttl: float,
) -> list[tuple[Outcome, float]]:
    """Send ``queries`` and return, in their order, each outcome and its seconds.

    An outcome is the Reply, or the Unusual or QueryTimeout that
    ``FastResolver.resolve`` would have raised for that query.
    """
    loop = await resolver.ready()
    run = _Run(resolver, loop, queries, (limit, per_zone), default_ttl)
    if queries:
        run.fill()
        await run.done
    return run.results()


class _Run:
    """The state of one ``resolve_many`` call."""

    def __init__(
        self,
        resolver: FastResolver,
        loop: asyncio.AbstractEventLoop,
        queries: Sequence[Query],
        limits: tuple[int, int],
        default_ttl: float,
    ) -> None:
        self.resolver = resolver
        self.loop = loop
        self.queries = queries
        self.limit, self.per_zone = limits
        self.default_ttl = default_ttl
        self.queues: dict[str, deque[int]] = {}
        for index, (_, _, zone) in enumerate(queries):
            self.queues.setdefault(zone, deque()).append(index)
        # Zones that still have queries to send, taken in turn.
        self.turns = deque(self.queues)
        self.busy = dict.fromkeys(self.queues, 0)
        self.in_flight = 0
        self.left = len(queries)
        self.outcomes: list[Outcome | None] = [None] * len(queries)
        self.started = [0.0] * len(queries)
        self.seconds = [0.0] * len(queries)
        self.questions: list[bytes] = [b""] * len(queries)
        self.attempts = [0] * len(queries)
        self.done: asyncio.Future[None] = loop.create_future()

    def results(self) -> list[tuple[Outcome, float]]:
        """Return each outcome with its seconds; call after ``done``."""
        pairs = []
        for outcome, seconds in zip(self.outcomes, self.seconds, strict=True):
            assert outcome is not None
            pairs.append((outcome, seconds))
        return pairs

    def fill(self) -> None:
        """Send queries until the window or every zone's share is full."""
        blocked = 0
        while self.in_flight < self.limit and blocked < len(self.turns):
            zone = self.turns[0]
            self.turns.rotate(-1)
            if self.busy[zone] >= self.per_zone:
                blocked += 1
                continue
            blocked = 0
            queue = self.queues[zone]
            index = queue.popleft()
            if not queue:
                self.turns.pop()
            self._start(index)

    def _start(self, index: int) -> None:
        name, rdtype, zone = self.queries[index]
        self.busy[zone] += 1
        self.in_flight += 1
        self.started[index] = self.loop.time()
        try:
            self.questions[index] = encode_question(name, rdtype)
        except (ValueError, UnicodeError) as exc:
            self._finish(index, Unusual(str(exc)))
            return
        self._send(index)

    def _send(self, index: int) -> None:
        now = self.loop.time()
        wait = self.started[index] + self.resolver.lifetime - now
        wait = min(self.resolver.timeout, wait)
        if wait <= 0:
            self._finish(index, self.resolver.timed_out())
            return
        endpoint = self.resolver.endpoint(self.attempts[index])
        self.attempts[index] += 1
        on_reply = functools.partial(self._on_reply, index)
        endpoint.send(self.questions[index], now + wait, on_reply)

    def _on_reply(self, index: int, data: bytes | None) -> None:
        if data is None:
            self._send(index)
        else:
            _, rdtype, _ = self.queries[index]
            question = self.questions[index]
            try:
                outcome: Outcome = parse_reply(data, question, rdtype, self.default_ttl)
            except Unusual as exc:
                outcome = exc
            self._finish(index, outcome)
        if self.left == 0:
            if not self.done.done():
                self.done.set_result(None)
        elif self.in_flight < self.limit:
            self.fill()

    def _finish(self, index: int, outcome: Outcome) -> None:
        self.outcomes[index] = outcome
        self.seconds[index] = self.loop.time() - self.started[index]
        self.busy[self.queries[index][2]] -= 1
        self.in_flight -= 1
        self.left -= 1
        if self.left == 0 and not self.done.done():
            self.done.set_result(None)
