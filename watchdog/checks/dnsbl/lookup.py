"""Asynchronous blocklist lookups: bounded concurrency, retries and a TTL cache.

This is the network boundary. dnspython's exceptions end here: NXDOMAIN
and NODATA become an empty answer, and timeouts, SERVFAIL and REFUSED
become ``DnsError``, which callers must never read as absent.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.message
import dns.rdatatype
import dns.resolver

from watchdog.checks.dnsbl.batch import Outcome, resolve_many
from watchdog.checks.dnsbl.fastquery import FastResolver, QueryTimeout
from watchdog.checks.dnsbl.wire import TYPE_A, TYPE_TXT, Reply, Unusual
from watchdog.errors import DnsError

MIN_CACHE_SECONDS = 60.0
MAX_CACHE_SECONDS = 3600.0
DEFAULT_RETRIES = 1
RETRY_PAUSE_SECONDS = 0.2
MAX_REASON_CHARS = 512


@dataclass(frozen=True, slots=True)
class Records:
    """The A records and the joined TXT reason for one query name."""

    addresses: tuple[str, ...] = ()
    reason: str = ""
    ttl: float = MIN_CACHE_SECONDS


ABSENT = Records()


@functools.lru_cache(maxsize=256)
def _absent(ttl: float) -> Records:
    # Most names of a cycle are absent with one of a few TTLs, so the
    # records are shared rather than built per name.
    return Records(ttl=ttl)


def joined_reason(texts: Iterable[str]) -> str:
    """Join the TXT records of a listing, cut to ``MAX_REASON_CHARS``.

    Lists explain a listing in a line or two, so a longer TXT reply is cut
    rather than carried whole into results, logs and the command line.
    """
    reason = " ".join(sorted(texts))
    if len(reason) > MAX_REASON_CHARS:
        return reason[: MAX_REASON_CHARS - 1] + "…"
    return reason


def clamp_ttl(ttl: float) -> float:
    """Clamp a TTL to the cache bounds, 60 s to 1 h."""
    return min(max(ttl, MIN_CACHE_SECONDS), MAX_CACHE_SECONDS)


class Lookup:
    """Query blocklist names through one resolver, at most ``concurrency`` at once.

    ``per_zone`` caps the queries in flight to any one zone, so a slow list
    cannot take every slot and a fast one is not flooded. Answers, absent
    ones included, are cached for their TTL clamped to 60 s .. 1 h.
    ``on_query`` receives the seconds each uncached lookup took.

    With ``fast``, queries go through that FastResolver first, and only a
    reply it cannot handle (truncated, malformed, SERVFAIL, REFUSED, a
    CNAME ...) is asked again through ``resolver``.
    """

    def __init__(
        self,
        resolver: dns.asyncresolver.Resolver,
        *,
        concurrency: int,
        per_zone: int,
        retries: int = DEFAULT_RETRIES,
        clock: Callable[[], float] = time.monotonic,
        on_query: Callable[[float], None] | None = None,
        fast: FastResolver | None = None,
    ) -> None:
        self.resolver = resolver
        self.fast = fast
        self.on_query = on_query
        self.retries = retries
        self._clock = clock
        self._limit = concurrency
        self._per_zone_limit = per_zone
        self._loop: asyncio.AbstractEventLoop | None = None
        self._overall = asyncio.Semaphore(concurrency)
        self._per_zone: dict[str, asyncio.Semaphore] = {}
        # The cache is two dicts rather than one of (expiry, records) pairs,
        # so a cycle builds no tuple per name for the garbage collector to
        # walk: absent names share their Records.
        self._records: dict[str, Records] = {}
        self._expires: dict[str, float] = {}
        # Names whose prefetch ran out of its lifetime, with the error
        # ``records`` raises for them until the next prefetch.
        self._timed_out: dict[str, DnsError] = {}

    def forget(self, names: Iterable[str] | None = None) -> None:
        """Drop the cached answers of ``names``, or every one without names."""
        if names is None:
            self._records.clear()
            self._expires.clear()
            self._timed_out.clear()
            return
        for name in names:
            self._records.pop(name, None)
            self._expires.pop(name, None)
            self._timed_out.pop(name, None)

    def cached_count(self) -> int:
        """Return the number of cached names, expired or not."""
        return len(self._expires)

    def cached(self, name: str) -> Records | None:
        """Return the cached records of ``name``, or None when absent or expired."""
        return self.cached_many([name])[0]

    def cached_many(self, names: Iterable[str]) -> list[Records | None]:
        """Return the cached records of each of ``names``, reading the clock once.

        An absent or expired name gets None.
        """
        now = self._clock()
        expires = self._expires.get
        records = self._records
        return [records[name] if expires(name, now) > now else None for name in names]

    async def records(self, name: str, zone: str) -> Records:
        """Return the A records (and TXT reason when listed) for ``name``.

        Raises DnsError after the retries when every try timed out or was
        answered SERVFAIL or REFUSED, and at once for a name whose prefetch
        already timed out: that batch spent the whole lifetime on it, so a
        dead resolver costs one lifetime per cycle, not three.
        """
        cached = self.cached(name)
        if cached is not None:
            return cached
        failed = self._timed_out.get(name)
        if failed is not None:
            raise failed

        self._bind_to_running_loop()
        gate = self._per_zone.setdefault(zone, asyncio.Semaphore(self._per_zone_limit))
        async with gate, self._overall:
            started = time.perf_counter()
            try:
                records = await self._with_retries(name)
            finally:
                if self.on_query is not None:
                    self.on_query(time.perf_counter() - started)
        self._store(name, records, self._clock())
        return records

    async def prefetch(self, requests: Sequence[tuple[str, str]]) -> None:
        """Fill the cache for (name, zone) pairs in one batch of fast queries.

        Only answers the fast path reads completely are cached. A name whose
        A query needed dnspython is left for ``records``, which asks again
        with its retries and fallback; one whose A query timed out makes
        ``records`` raise DnsError until the next prefetch. Sends nothing
        without a FastResolver. A resolver that stops replying costs the batch
        about one lifetime (see ``batch.Run``).

        Every expired entry is dropped first, so the names of targets that
        are no longer checked do not stay cached for the life of the process.
        The FastResolver then draws new source ports for the pass.
        """
        now = self._clock()
        self._drop_expired(now)
        if self.fast is None:
            return
        self.fast.renew()
        self._timed_out = {}
        # Expired names were just dropped, so every name still cached is fresh.
        pending: dict[str, str] = {}
        for name, zone in requests:
            if name not in self._expires:
                pending.setdefault(name, zone)

        found = await self._batch(
            [(name, TYPE_A, zone) for name, zone in pending.items()]
        )
        now = self._clock()
        listed: list[tuple[str, str, Reply, float]] = []
        for (name, zone), (outcome, seconds) in zip(
            pending.items(), found, strict=True
        ):
            if isinstance(outcome, QueryTimeout):
                self._timed_out[name] = _error(name, "timeout", outcome)
                continue
            if not isinstance(outcome, Reply):
                continue
            if outcome.negative:
                self._remember(name, _absent(outcome.ttl), seconds, now)
            else:
                listed.append((name, zone, outcome, seconds))

        texts = await self._batch(
            [(name, TYPE_TXT, zone) for name, zone, _, _ in listed]
        )
        now = self._clock()
        for (name, _, reply, seconds), (text, more) in zip(listed, texts, strict=True):
            if isinstance(text, Unusual):
                continue
            reason = ""
            if isinstance(text, Reply) and not text.negative:
                reason = joined_reason(text.records)
            addresses = tuple(sorted(reply.records))
            records = Records(addresses=addresses, reason=reason, ttl=reply.ttl)
            self._remember(name, records, seconds + more, now)

    async def _batch(
        self, queries: list[tuple[str, int, str]]
    ) -> list[tuple[Outcome, float]]:
        fast = self.fast
        assert fast is not None
        return await resolve_many(
            fast,
            queries,
            limit=self._limit,
            per_zone=self._per_zone_limit,
            default_ttl=MIN_CACHE_SECONDS,
        )

    def _remember(
        self, name: str, records: Records, seconds: float, now: float
    ) -> None:
        self._store(name, records, now)
        if self.on_query is not None:
            self.on_query(seconds)

    def _drop_expired(self, now: float) -> None:
        expired = [name for name, expires in self._expires.items() if expires <= now]
        for name in expired:
            del self._records[name]
            del self._expires[name]

    def _store(self, name: str, records: Records, now: float) -> None:
        self._records[name] = records
        self._expires[name] = now + clamp_ttl(records.ttl)

    def _bind_to_running_loop(self) -> None:
        # A semaphore belongs to the event loop it first waited in, so a
        # Lookup reused under a new loop (one asyncio.run per cycle) needs
        # fresh ones. No query of the old loop can still be in flight.
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop = loop
            self._overall = asyncio.Semaphore(self._limit)
            self._per_zone = {}

    async def _with_retries(self, name: str) -> Records:
        for attempt in range(self.retries + 1):
            try:
                return await self._query(name)
            except DnsError:
                if attempt == self.retries:
                    raise
            await asyncio.sleep(RETRY_PAUSE_SECONDS * (attempt + 1))
        raise AssertionError("unreachable")

    async def _query(self, name: str) -> Records:
        addresses = await self._resolve(name, dns.rdatatype.A)
        if isinstance(addresses, float):
            return Records(ttl=addresses)
        # The TXT record only explains a listing the A records already
        # establish, so a failed TXT lookup leaves the reason empty.
        try:
            texts = await self._resolve(name, dns.rdatatype.TXT)
        except DnsError:
            texts = MIN_CACHE_SECONDS
        reason = "" if isinstance(texts, float) else joined_reason(texts[0])
        return Records(addresses=addresses[0], reason=reason, ttl=addresses[1])

    async def _resolve(
        self, name: str, rdtype: dns.rdatatype.RdataType
    ) -> tuple[tuple[str, ...], float] | float:
        """Return (texts, ttl) of the answer, or the negative TTL when absent."""
        if self.fast is not None:
            try:
                reply = await self.fast.resolve(name, rdtype, MIN_CACHE_SECONDS)
            except QueryTimeout as exc:
                raise _error(name, "timeout", exc) from exc
            except Unusual:
                pass  # dnspython below decides what the reply means
            else:
                if reply.negative:
                    return reply.ttl
                return tuple(sorted(reply.records)), reply.ttl
        try:
            answer = await self.resolver.resolve(name, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer) as exc:
            return _negative_ttl(exc)
        except dns.resolver.LifetimeTimeout as exc:
            raise _error(name, "timeout", exc) from exc
        except dns.resolver.NoNameservers as exc:
            raise _error(name, _failure_reason(exc), exc) from exc
        except dns.exception.DNSException as exc:
            raise _error(name, "error", exc) from exc
        if rdtype == dns.rdatatype.TXT:
            texts = tuple(
                b"".join(r.strings).decode("utf-8", "replace") for r in answer
            )
        else:
            texts = tuple(sorted(r.address for r in answer))
        return texts, float(answer.rrset.ttl if answer.rrset else MIN_CACHE_SECONDS)


def _negative_ttl(exc: dns.exception.DNSException) -> float:
    """Return the SOA minimum of a negative answer (RFC 2308), or 60 s."""
    responses: dict[object, dns.message.Message] = {}
    if isinstance(exc, dns.resolver.NXDOMAIN):
        responses = dict(exc.kwargs.get("responses", {}))
    elif isinstance(exc, dns.resolver.NoAnswer):
        response = exc.kwargs.get("response")
        responses = {None: response} if response is not None else {}
    for response in responses.values():
        for rrset in response.authority:
            if rrset.rdtype == dns.rdatatype.SOA:
                return float(min(rrset.ttl, rrset[0].minimum))
    return MIN_CACHE_SECONDS


def _failure_reason(exc: dns.resolver.NoNameservers) -> str:
    text = str(exc)
    if "REFUSED" in text:
        return "refused"
    if "SERVFAIL" in text:
        return "servfail"
    return "no_nameservers"


def _error(name: str, reason: str, exc: Exception) -> DnsError:
    # The message leaves out the query name because it may embed a DQS key.
    # Callers log the zone name instead of ``DnsError.name``.
    msg = (
        f"DNS lookup failed ({reason}): {exc.__class__.__name__}; check that the "
        "resolver in dns.nameservers answers and does not forward to a public "
        "resolver"
    )
    return DnsError(msg, name=name, reason=reason)
