"""Many fast-path queries driven by reply callbacks, without a task per query.

An asyncio task and future per query cost more CPU than the query itself,
so a ``Run`` keeps a window of queries in flight and sends the next one
from the callback that receives a reply. It honours the same limits as
``Lookup``: at most ``limit`` queries in flight, ``per_zone`` to one zone,
with the zones taken in turn.

A ``Run`` does not read sockets itself: ``resolve_many`` drives one on the
running event loop through a ``FastResolver``.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from watchdog.checks.dnsbl.endpoint import Endpoint, QueryTimeout
from watchdog.checks.dnsbl.fastquery import FastResolver
from watchdog.checks.dnsbl.wire import Reply, Unusual, encode_question, parse_reply

# One query: the name, the record type and the zone that counts it.
Query = tuple[str, int, str]
# Queries in a row that timed out on every try, with no reply from any
# nameserver since they were sent, after which the resolver is taken as
# unreachable and the rest of the batch fails without being sent.
UNREACHABLE_AFTER = 2
Outcome = Reply | Unusual | QueryTimeout


class Sender(Protocol):
    """The sockets a ``Run`` sends through, and the wait of each try."""

    timeout: float
    lifetime: float

    def endpoint(self, attempt: int) -> Endpoint:
        """Return the endpoint for try number ``attempt`` of a query."""

    def timed_out(self) -> QueryTimeout:
        """Return the error for a query without a reply within the lifetime."""


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
    loop = resolver.ready()
    done: asyncio.Future[None] = loop.create_future()

    def finish() -> None:
        if not done.done():
            done.set_result(None)

    run = Run(
        resolver,
        queries,
        (limit, per_zone),
        default_ttl=default_ttl,
        clock=loop.time,
        on_done=finish,
    )
    if queries:
        run.fill(loop.time())
        await done
    return run.results()


class Run:
    """The state of one batch of queries, from the first send to the last reply.

    ``clock`` gives the time the endpoints' deadlines are in, and
    ``on_done`` is called once, when the last query has its outcome.

    A resolver that stops replying would cost one lifetime per window of
    queries. Once ``UNREACHABLE_AFTER`` queries in a row time out with no
    reply since they were sent, every query still without an outcome gets
    a QueryTimeout at once, so such a batch costs about one lifetime.
    Replies to other queries keep the count at zero, so one zone whose
    servers are down does not stop the others.
    """

    def __init__(
        self,
        sender: Sender,
        queries: Sequence[Query],
        limits: tuple[int, int],
        *,
        default_ttl: float,
        clock: Callable[[], float],
        on_done: Callable[[], None],
    ) -> None:
        self.sender = sender
        self.clock = clock
        self.queries = queries
        self.limit, self.per_zone = limits
        self.default_ttl = default_ttl
        self.on_done = on_done
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
        self.last_reply = float("-inf")
        self.silent_timeouts = 0

    def results(self) -> list[tuple[Outcome, float]]:
        """Return each outcome with its seconds; call after ``on_done``."""
        pairs = []
        for outcome, seconds in zip(self.outcomes, self.seconds, strict=True):
            assert outcome is not None
            pairs.append((outcome, seconds))
        return pairs

    def fill(self, now: float) -> None:
        """Send queries until the window or every zone's share is full.

        ``now`` is the clock's time, read once by the caller for the whole
        burst of sends.
        """
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
            self._start(index, now)

    def _start(self, index: int, now: float) -> None:
        name, rdtype, zone = self.queries[index]
        self.busy[zone] += 1
        self.in_flight += 1
        self.started[index] = now
        try:
            self.questions[index] = encode_question(name, rdtype)
        except (ValueError, UnicodeError) as exc:
            self._finish(index, Unusual(str(exc)), now)
            return
        self._send(index, now)

    def _send(self, index: int, now: float) -> None:
        sender = self.sender
        wait = min(sender.timeout, self.started[index] + sender.lifetime - now)
        if wait <= 0:
            self._time_out(index, now)
            return
        endpoint = sender.endpoint(self.attempts[index])
        self.attempts[index] += 1
        on_reply = functools.partial(self.on_reply, index)
        endpoint.send(self.questions[index], now + wait, on_reply)

    def on_reply(self, index: int, data: bytes | None) -> None:
        """Take the reply of query ``index``, or resend it when its try timed out.

        A query that already has its outcome (the batch gave up on the
        resolver) ignores late replies and timeouts.
        """
        if self.outcomes[index] is not None:
            return
        now = self.clock()
        if data is None:
            self._send(index, now)
        else:
            self.last_reply = now
            self.silent_timeouts = 0
            _, rdtype, _ = self.queries[index]
            question = self.questions[index]
            try:
                outcome: Outcome = parse_reply(data, question, rdtype, self.default_ttl)
            except Unusual as exc:
                outcome = exc
            self._finish(index, outcome, now)
        if self.left and self.in_flight < self.limit:
            self.fill(now)

    def _time_out(self, index: int, now: float) -> None:
        if self.last_reply < self.started[index]:
            self.silent_timeouts += 1
        self._finish(index, self.sender.timed_out(), now)
        if self.left and self.silent_timeouts >= UNREACHABLE_AFTER:
            self._abandon(now)

    def _abandon(self, now: float) -> None:
        """Time out every query without an outcome, sent or not."""
        error = QueryTimeout(
            f"{self.sender.timed_out()}: {UNREACHABLE_AFTER} queries in a row got "
            "no reply, so the rest of the batch was given up"
        )
        in_flight = [
            index
            for index, outcome in enumerate(self.outcomes)
            if outcome is None and self.attempts[index]
        ]
        for queue in self.queues.values():
            while queue:
                index = queue.popleft()
                self.started[index] = now
                self.busy[self.queries[index][2]] += 1
                self.in_flight += 1
                in_flight.append(index)
        self.turns.clear()
        for index in in_flight:
            self._finish(index, error, now)

    def _finish(self, index: int, outcome: Outcome, now: float) -> None:
        self.outcomes[index] = outcome
        self.seconds[index] = now - self.started[index]
        self.busy[self.queries[index][2]] -= 1
        self.in_flight -= 1
        self.left -= 1
        if self.left == 0:
            self.on_done()
