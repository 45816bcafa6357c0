"""Distinguish a resolver that stopped responding from a dead domain.

A recursive resolver times out on a name when the name's authoritative
nameservers are down, so timeouts alone cannot tell the two apart. The
lookups of one audit share a ``ResolverHealth``: after
``UNREACHABLE_AFTER_TIMEOUTS`` timeouts in a row with no response in
between, it sends a liveness probe: a query for the root NS records with
RD=0, to which a resolver replies from its cache, or with REFUSED,
without recursing. Any reply that matches the probe's ID and question,
REFUSED included, proves the resolver alive and resets the count. Only
when the probe gets no such reply either is the resolver taken as
unreachable, and later queries of the run are not sent.

After a probe proves the resolver alive, the lookups of the domain keep
failing with reason ``timeout``. Each domain's lookups also share a
``DomainTimeouts``, which stops sending queries for names at or below the
domain after the same number of timeouts in a row. So a domain with dead
nameservers costs about one lookup lifetime, not one per check.
"""

from __future__ import annotations

import asyncio
import time

import dns.asyncquery
import dns.exception
import dns.flags
import dns.inet
import dns.message
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

# Two, so that one name whose nameservers are down does not stop the
# audit, because a live resolver responds to other lookups in between.
UNREACHABLE_AFTER_TIMEOUTS = 2

# (address, port) of a nameserver reached over UDP.
Endpoint = tuple[str, int]


class TimeoutStreak:
    """Consecutive timeouts of the lookups that share this object.

    Any answer, NXDOMAIN, SERVFAIL and REFUSED included, resets the count.
    A timeout counts only when no answer arrived while that query was in
    flight, so the timeouts of queries sent together with one that got an
    answer do not count.
    """

    def __init__(self, limit: int = UNREACHABLE_AFTER_TIMEOUTS) -> None:
        self.limit = limit
        self.consecutive_timeouts = 0
        # time.monotonic() of the last answer, -inf before the first one.
        self.last_response = float("-inf")

    @property
    def exceeded(self) -> bool:
        """True once ``limit`` queries in a row timed out."""
        return self.consecutive_timeouts >= self.limit

    def record_answer(self) -> None:
        """Note an answer to one of the lookups."""
        self.consecutive_timeouts = 0
        self.last_response = time.monotonic()

    def record_timeout(self, sent_at: float) -> None:
        """Note a query sent at ``sent_at`` (monotonic) that timed out."""
        if self.last_response < sent_at:
            self.consecutive_timeouts += 1


class DomainTimeouts(TimeoutStreak):
    """Consecutive timeouts of the names at or below one audited domain.

    Names elsewhere, such as SPF include targets or MX hosts in other
    zones, are neither counted nor cut off.
    """

    def __init__(self, domain: str, limit: int = UNREACHABLE_AFTER_TIMEOUTS) -> None:
        super().__init__(limit)
        self.domain = domain

    def covers(self, name: str) -> bool:
        """Return whether ``name`` (lower case, no final dot) is under the domain.

        The domain itself counts as under it.
        """
        return name == self.domain or name.endswith("." + self.domain)


class ResolverHealth(TimeoutStreak):
    """Consecutive timeouts of an audit's lookups, and the probes they caused.

    Any answer, even one that arrives after the resolver was taken as
    unreachable, resets the count. ``unreachable`` turns true only after a
    probe sent since the last answer got no reply.
    """

    def __init__(self, limit: int = UNREACHABLE_AFTER_TIMEOUTS) -> None:
        super().__init__(limit)
        # time.monotonic() when the last unanswered probe was sent.
        self.failed_probe_at = float("-inf")
        self._probe: asyncio.Task[None] | None = None

    @property
    def unreachable(self) -> bool:
        """True once ``limit`` queries in a row timed out and a probe did too."""
        return self.exceeded and self.failed_probe_at > self.last_response

    @property
    def needs_probe(self) -> bool:
        """True when the timeouts reached ``limit`` and no probe has judged them."""
        return self.exceeded and not self.unreachable

    async def probe(self, endpoints: list[Endpoint], reply_seconds: float) -> None:
        """Probe ``endpoints`` and record the outcome, or wait for a probe in flight.

        A probe waits ``reply_seconds`` for a reply from each endpoint.
        """
        await asyncio.shield(self._start_probe(endpoints, reply_seconds))

    def probe_soon(
        self, endpoints: list[Endpoint], reply_seconds: float, sent_at: float
    ) -> None:
        """Start a probe for a query sent at ``sent_at`` that has no answer yet.

        Called when a query has waited one try's timeout, so that a probe
        has its outcome by the time the query's lifetime runs out. Does
        nothing when an answer or a failed probe came after ``sent_at``, or
        a probe is in flight.
        """
        if self.last_response < sent_at and self.failed_probe_at < sent_at:
            self._start_probe(endpoints, reply_seconds)

    def probe_blocking(self, endpoints: list[Endpoint], reply_seconds: float) -> None:
        """Probe ``endpoints`` in an event loop of its own and record the outcome.

        For pyspf's lookups, which run in a worker thread with no event loop.
        """
        asyncio.run(self._send_probe(endpoints, reply_seconds))

    def _start_probe(
        self, endpoints: list[Endpoint], reply_seconds: float
    ) -> asyncio.Task[None]:
        """Start a probe unless one is in flight, and return the one in flight."""
        if self._probe is None or self._probe.done():
            sending = self._send_probe(endpoints, reply_seconds)
            self._probe = asyncio.ensure_future(sending)
        return self._probe

    async def _send_probe(
        self, endpoints: list[Endpoint], reply_seconds: float
    ) -> None:
        sent_at = time.monotonic()
        replies = await asyncio.gather(
            *(_probe_async(endpoint, reply_seconds) for endpoint in endpoints)
        )
        self._record_probe(sent_at, alive=any(replies))

    def _record_probe(self, sent_at: float, *, alive: bool) -> None:
        if alive:
            self.record_answer()
        else:
            self.failed_probe_at = max(self.failed_probe_at, sent_at)


def udp_endpoints(resolver: dns.resolver.BaseResolver) -> list[Endpoint]:
    """Return the address and port of each plain-DNS nameserver of ``resolver``.

    NOTE: DNS-over-HTTPS, TLS and QUIC nameservers are left out. A resolver
    made only of those gets a probe with no endpoint, which counts as no
    reply, so ``limit`` timeouts alone take it as unreachable.
    """
    endpoints: list[Endpoint] = []
    for nameserver in resolver.nameservers:
        if isinstance(nameserver, dns.nameserver.Do53Nameserver):
            endpoints.append((nameserver.address, nameserver.port))
        elif isinstance(nameserver, str) and dns.inet.is_address(nameserver):
            port = resolver.nameserver_ports.get(nameserver, resolver.port)
            endpoints.append((nameserver, port))
    return endpoints


def _probe_query() -> dns.message.Message:
    query = dns.message.make_query(dns.name.root, dns.rdatatype.NS)
    query.flags &= ~dns.flags.RD
    return query


async def _probe_async(endpoint: Endpoint, reply_seconds: float) -> bool:
    address, port = endpoint
    query = _probe_query()
    # A datagram from another address or port, one that does not parse, or
    # one whose ID or question differs is skipped and the probe keeps
    # waiting, because anyone can send those. A matching reply that raises
    # (truncated, say) still came from the resolver.
    try:
        await dns.asyncquery.udp(
            query,
            address,
            timeout=reply_seconds,
            port=port,
            ignore_unexpected=True,
            ignore_errors=True,
        )
    except (dns.exception.Timeout, OSError):
        return False
    except dns.exception.DNSException:
        return True
    return True
