"""RFC 7208 ``check_host`` through pyspf, with its DNS sent to our resolver.

pyspf looks names up through the module attribute ``spf.DNSLookup``. This
module replaces it once with a dispatcher that uses the lookup function of
the calling thread, so each evaluation runs in a worker thread with its own
resolver, and code that never sets one keeps pyspf's own dnspython lookup.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.resolver
import spf

from watchdog.checks.auth.health import DomainTimeouts, ResolverHealth, udp_endpoints
from watchdog.checks.auth.lookup import normalise

# One row of pyspf's lookup contract: ((name, type), value).
SpfRow = tuple[tuple[str, str], Any]
SpfLookupFunction = Callable[[str, str], list[SpfRow]]

_thread_state = threading.local()
_pyspf_default_lookup: Callable[..., list[SpfRow]] = spf.DNSLookup


def _dispatch_lookup(
    name: str, qtype: str, strict: object = True, timeout: float = 20
) -> list[SpfRow]:
    function: SpfLookupFunction | None = getattr(_thread_state, "lookup", None)
    if function is None:
        return _pyspf_default_lookup(name, qtype, strict, timeout)
    return function(name, qtype)


spf.DNSLookup = _dispatch_lookup


@dataclass(frozen=True)
class HostResult:
    """The outcome of ``check_host`` for one IP address.

    ``result`` is one of pass, fail, softfail, neutral, none, permerror or
    temperror. ``lookups`` and ``void_lookups`` are pyspf's counts along the
    path this IP took, which stops early at the first matching mechanism.
    """

    ip: str
    result: str
    explanation: str
    lookups: int
    void_lookups: int


def run_check_host(
    lookup: SpfLookupFunction, ip: str, domain: str, helo: str | None = None
) -> HostResult:
    """Evaluate ``check_host(ip, domain)`` with ``lookup`` answering DNS queries.

    Blocks, so async callers use ``check_host``. The sender is
    ``postmaster@domain``, as for a bounce address at the domain.
    """
    return evaluate(lookup, ip=ip, sender=f"postmaster@{domain}", helo=helo or domain)


def evaluate(
    lookup: SpfLookupFunction, *, ip: str, sender: str, helo: str
) -> HostResult:
    """Evaluate SPF for a MAIL FROM of ``sender`` (empty: the HELO identity)."""
    _thread_state.lookup = lookup
    try:
        query = spf.query(i=ip, s=sender, h=helo)
        result, _code, explanation = query.check()
    finally:
        _thread_state.lookup = None
    return HostResult(ip, result, explanation, query.lookups, query.void_lookups)


def resolver_lookup(
    resolver: dns.resolver.Resolver,
    health: ResolverHealth | None = None,
    domain_timeouts: DomainTimeouts | None = None,
) -> SpfLookupFunction:
    """Return a pyspf lookup function that queries ``resolver``.

    NXDOMAIN and NODATA return no rows, which pyspf counts as void lookups.
    A timeout, SERVFAIL or REFUSED raises ``spf.TempError``, which pyspf turns
    into the ``temperror`` result. With ``health`` (the audit run's), every
    response and timeout is counted there as in ``Lookup.query``: once the
    timeouts reach its limit a blocking probe is sent, and once the probe
    gets no reply either a lookup raises ``spf.TempError`` without being
    sent. ``domain_timeouts`` (the audited domain's) cuts off the names
    under that domain in the same way.
    """

    def lookup(name: str, qtype: str) -> list[SpfRow]:
        domain = domain_timeouts
        if domain is not None and not domain.covers(normalise(name)):
            domain = None
        _raise_if_cut_off(resolver, health, domain, name, qtype)
        counters = [c for c in (health, domain) if c is not None]
        sent_at = time.monotonic()
        try:
            answer = resolver.resolve(
                name, qtype, search=False, raise_on_no_answer=False
            )
        except dns.resolver.NXDOMAIN:
            for counter in counters:
                counter.record_answer()
            return []
        except dns.resolver.LifetimeTimeout as exc:
            for counter in counters:
                counter.record_timeout(sent_at)
            raise spf.TempError(f"DNS {name} {qtype}: {exc}") from exc
        except dns.resolver.NoNameservers as exc:
            # SERVFAIL and REFUSED are responses, so they reset the counts.
            for counter in counters:
                counter.record_answer()
            raise spf.TempError(f"DNS {name} {qtype}: {exc}") from exc
        except dns.exception.DNSException as exc:
            raise spf.TempError(f"DNS {name} {qtype}: {exc}") from exc
        for counter in counters:
            counter.record_answer()
        if answer.rrset is None:
            return []
        return [((name, qtype), _row_value(qtype, rdata)) for rdata in answer.rrset]

    return lookup


def _raise_if_cut_off(
    resolver: dns.resolver.Resolver,
    health: ResolverHealth | None,
    domain: DomainTimeouts | None,
    name: str,
    qtype: str,
) -> None:
    """Raise ``spf.TempError`` when the resolver or ``domain`` is cut off.

    ``domain`` is the audited domain's timeout count, or None for a name
    outside it.
    """
    if health is not None and health.needs_probe:
        health.probe_blocking(udp_endpoints(resolver), resolver.timeout)
    if health is not None and health.unreachable:
        raise spf.TempError(f"DNS {name} {qtype}: resolver unreachable, not sent")
    if domain is not None and domain.exceeded:
        msg = (
            f"DNS {name} {qtype}: not sent, because the nameservers of "
            f"{domain.domain} stopped answering"
        )
        raise spf.TempError(msg)


def _row_value(qtype: str, rdata: Any) -> Any:
    if qtype in ("A", "AAAA"):
        return rdata.address
    if qtype == "MX":
        return (rdata.preference, rdata.exchange)
    if qtype == "PTR":
        return rdata.target.to_text(True)
    return rdata.strings


def sync_resolver(resolver: dns.asyncresolver.Resolver) -> dns.resolver.Resolver:
    """Build a blocking resolver with the nameservers and timeouts of ``resolver``."""
    blocking = dns.resolver.Resolver(configure=False)
    blocking.nameservers = list(resolver.nameservers)
    blocking.timeout = resolver.timeout
    blocking.lifetime = resolver.lifetime
    blocking.cache = None
    return blocking


async def check_host(
    resolver: dns.asyncresolver.Resolver,
    ip: str,
    domain: str,
    helo: str | None = None,
    *,
    health: ResolverHealth | None = None,
    domain_timeouts: DomainTimeouts | None = None,
) -> HostResult:
    """Evaluate ``check_host(ip, domain)`` in a worker thread against ``resolver``.

    ``health`` is the audit run's count of resolver timeouts and
    ``domain_timeouts`` the audited domain's; see ``resolver_lookup``.
    """
    lookup = resolver_lookup(sync_resolver(resolver), health, domain_timeouts)
    return await asyncio.to_thread(run_check_host, lookup, ip, domain, helo)
