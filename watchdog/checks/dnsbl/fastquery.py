"""Many A and TXT queries in flight over a few UDP sockets, for the common case.

dnspython's Resolver spends about 0.5 ms of CPU per query, which held a
cycle of bench/dnsbl_speed.py under 1,000 queries per second.
``FastResolver`` sends queries itself over the connected non-blocking UDP
sockets of an ``EndpointPool``, read by event-loop readers; the endpoint
matches replies to waiters (see ``endpoint`` for what a reply must echo).

Each try waits ``timeout`` seconds, then the query is resent with a new ID
to the next nameserver until ``lifetime`` runs out, and ``QueryTimeout`` is
raised. A reply that is truncated, malformed, SERVFAIL, REFUSED or
otherwise unusual raises ``wire.Unusual``, so the caller asks dnspython's
Resolver, whose outcome then decides the state.

Concurrency limits (overall and per zone) are the caller's: see ``Lookup``
and ``batch.resolve_many``.

NOTE: source ports are drawn when sockets open: under each new event loop
and at each ``renew`` (``Lookup.prefetch`` calls it once per pass), not per
query, so for the length of a pass the port a forged reply must hit stays
the same.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence

import dns.asyncresolver
import dns.nameserver

from watchdog.checks.dnsbl.endpoint import (
    Endpoint,
    EndpointPool,
    QueryTimeout,
    timed_out,
)
from watchdog.checks.dnsbl.wire import Reply, Unusual, encode_question, parse_reply

__all__ = ["FastResolver", "QueryTimeout", "fast_resolver_for"]

SOCKETS_PER_NAMESERVER = 4
# Pending queries are checked for their deadline this many times per
# ``timeout``, so a try may wait up to a quarter longer than ``timeout``.
# One periodic check costs far less than one timer per query.
SWEEPS_PER_TIMEOUT = 4


class FastResolver:
    """Send A and TXT queries straight to ``nameservers`` (address, port).

    Sockets belong to the event loop that first used them. Under a new
    loop (one ``asyncio.run`` per cycle) or after ``renew``, fresh sockets
    on new random ports are opened and the old ones closed.
    """

    def __init__(
        self,
        nameservers: Sequence[tuple[str, int]],
        *,
        timeout: float,
        lifetime: float,
        sockets: int = SOCKETS_PER_NAMESERVER,
    ) -> None:
        if not nameservers:
            msg = "FastResolver needs at least one nameserver address"
            raise ValueError(msg)
        self.nameservers = [(str(ipaddress.ip_address(a)), p) for a, p in nameservers]
        self.timeout = timeout
        self.lifetime = lifetime
        self.sockets = sockets
        self.sent = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: EndpointPool | None = None
        self._sweeping = False
        self._sweep_timer: asyncio.TimerHandle | None = None

    async def resolve(self, name: str, rdtype: int, default_ttl: float) -> Reply:
        """Return the records of type ``rdtype`` for ``name``.

        Raises QueryTimeout when no nameserver replied within the lifetime,
        and Unusual when the name cannot be encoded or the reply needs the
        full resolver.
        """
        try:
            question = encode_question(name, rdtype)
        except (ValueError, UnicodeError) as exc:
            raise Unusual(str(exc)) from exc
        loop = self.ready()
        deadline = loop.time() + self.lifetime
        attempt = 0
        while (wait := min(self.timeout, deadline - loop.time())) > 0:
            data = await self._exchange(loop, self.endpoint(attempt), question, wait)
            if data is not None:
                return parse_reply(data, question, rdtype, default_ttl)
            attempt += 1
        raise self.timed_out()

    def ready(self) -> asyncio.AbstractEventLoop:
        """Open the sockets for the running loop if needed, and return the loop."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop or self._pool is None:
            self.close()
            self._loop = loop
            self._pool = EndpointPool(self.nameservers, self.sockets)
            for endpoint in self._pool.endpoints():
                loop.add_reader(endpoint.fileno(), endpoint.drain)
        return loop

    def renew(self) -> None:
        """Close the sockets unless a query waits on them.

        The next query opens new sockets on new random source ports. One
        event loop can last as long as the process, as in the daemon, and
        ports kept that long would leave a forger only the query ID to guess.
        """
        if self._pool is not None and not self._pool.pending():
            self.close()

    def source_ports(self) -> list[int]:
        """Return the local ports of the open sockets, none before a query."""
        if self._pool is None:
            return []
        return [endpoint.sock.getsockname()[1] for endpoint in self._pool.endpoints()]

    def endpoint(self, attempt: int) -> Endpoint:
        """Return the socket for try number ``attempt`` (from 0) of a query.

        Counts the query as sent and makes sure the deadlines are swept.
        """
        assert self._pool is not None and self._loop is not None
        self.sent += 1
        if not self._sweeping:
            self._schedule_sweep(self._loop)
        return self._pool.endpoint(attempt)

    def timed_out(self) -> QueryTimeout:
        """Return the error for a query that got no reply within the lifetime."""
        return timed_out(self.nameservers, self.lifetime)

    async def _exchange(
        self,
        loop: asyncio.AbstractEventLoop,
        endpoint: Endpoint,
        question: bytes,
        wait: float,
    ) -> bytes | None:
        future: asyncio.Future[bytes | None] = loop.create_future()

        def settle(data: bytes | None) -> None:
            if not future.done():
                future.set_result(data)

        query_id = endpoint.send(question, loop.time() + wait, settle)
        try:
            return await future
        finally:
            # Once this query was settled its ID is free, and another query
            # may have drawn it before this task resumed: remove the waiter
            # only if it is still this query's.
            waiter = endpoint.waiters.get(query_id)
            if waiter is not None and waiter[0] is settle:
                del endpoint.waiters[query_id]

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        # Runs while queries are pending, so an idle daemon schedules nothing.
        self._sweeping = False
        if loop is not self._loop or self._pool is None:
            return
        self._pool.expire(loop.time())
        if self._pool.pending():
            self._schedule_sweep(loop)

    def _schedule_sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sweeping = True
        self._sweep_timer = loop.call_later(
            self.timeout / SWEEPS_PER_TIMEOUT, self._sweep, loop
        )

    def close(self) -> None:
        """Close every socket. Queries still waiting on them get no reply."""
        if self._pool is not None:
            if self._loop is not None and not self._loop.is_closed():
                for endpoint in self._pool.endpoints():
                    self._loop.remove_reader(endpoint.fileno())
            self._pool.close()
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
            self._sweep_timer = None
        self._pool = None
        self._loop = None
        self._sweeping = False


def fast_resolver_for(resolver: dns.asyncresolver.Resolver) -> FastResolver | None:
    """Build a FastResolver on the same nameservers, or None when it cannot.

    Only plain UDP/TCP nameservers given by IP address qualify; with
    DNS-over-HTTPS, TLS or QUIC nameservers the caller keeps dnspython.
    A resolver built with ``configure=True`` already holds the system's
    nameservers from /etc/resolv.conf.
    """
    servers = []
    for nameserver in resolver.nameservers:
        if isinstance(nameserver, dns.nameserver.Do53Nameserver):
            address, port = nameserver.address, nameserver.port
        elif isinstance(nameserver, str):
            address, port = nameserver, resolver.port
        else:
            return None
        try:
            ipaddress.ip_address(address)
        except ValueError:
            return None
        servers.append((address, port))
    if not servers:
        return None
    return FastResolver(servers, timeout=resolver.timeout, lifetime=resolver.lifetime)
