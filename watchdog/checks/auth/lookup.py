"""A small DNS layer: records, a named "absent" answer, or DnsError.

NXDOMAIN and NODATA are answers ("absent"), which the checks report as
findings. A timeout, SERVFAIL or REFUSED from every nameserver raises
``DnsError``, which the checks report as ``lookup_failed``.

The lookups of one audit share a ``ResolverHealth``. Once it has seen
``UNREACHABLE_AFTER_TIMEOUTS`` timeouts in a row with no response during
their lifetimes, and a liveness probe got no reply either, later queries
are not sent: they raise DnsError with reason ``resolver_unreachable`` at
once, so a resolver that drops every packet costs one lookup lifetime
instead of one per lookup. The lookups of one audited domain also share a
``DomainTimeouts``, which stops queries for that domain's names the same
way with reason ``timeout`` while the resolver still responds (see
``watchdog.checks.auth.health``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
from dataclasses import dataclass
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.resolver
import dns.reversename

from watchdog.checks.auth.health import (
    DomainTimeouts,
    ResolverHealth,
    udp_endpoints,
)
from watchdog.errors import DnsError


@dataclass(frozen=True)
class Answer:
    """The records of one query, after any CNAME chain.

    ``canonical`` is the name the records were found at, which differs from
    ``name`` when a CNAME was followed. ``nxdomain`` tells NXDOMAIN from
    NODATA when there are no records.
    """

    name: str
    rdtype: str
    records: tuple[Any, ...]
    canonical: str
    nxdomain: bool = False

    @property
    def absent(self) -> bool:
        """True for NXDOMAIN or NODATA."""
        return not self.records

    @property
    def via_cname(self) -> bool:
        """True when a CNAME led from ``name`` to ``canonical``."""
        return self.canonical != self.name


def absent_answer(name: str, rdtype: str, *, nxdomain: bool) -> Answer:
    """Build the answer for a name without records of ``rdtype``."""
    return Answer(name, rdtype, (), name, nxdomain=nxdomain)


def normalise(name: str) -> str:
    """Lower-case a domain name and drop the trailing dot."""
    return name.rstrip(".").lower()


# dnspython raises these while building the query name, before any I/O.
_INVALID_NAME = (
    dns.name.EmptyLabel,
    dns.name.LabelTooLong,
    dns.name.NameTooLong,
    dns.name.BadEscape,
    dns.name.IDNAException,
)


# A label of letters, digits and hyphens, not starting or ending with a
# hyphen. Underscores are allowed too, because names such as _dmarc use them.
_HOST_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")


class Lookup:
    """Query DNS through one resolver and translate dnspython's outcomes.

    ``health`` is shared by every lookup of one audit run. Without one, this
    object counts the timeouts of its own queries. With ``domain``, the
    queries for names at or below it stop after their own timeouts, even
    while the resolver answers other names.
    """

    def __init__(
        self,
        resolver: dns.asyncresolver.Resolver,
        health: ResolverHealth | None = None,
        *,
        domain: str | None = None,
    ) -> None:
        self.resolver = resolver
        # The nameservers that a liveness probe goes to.
        self.probe_endpoints = udp_endpoints(resolver)
        self.health = health if health is not None else ResolverHealth()
        self.domain_timeouts = (
            DomainTimeouts(domain, self.health.limit) if domain else None
        )
        self.queries = 0

    async def query(self, name: str, rdtype: str) -> Answer:
        """Return the records of ``rdtype`` at ``name``, following CNAMEs.

        A name that is not a valid DNS name (an empty label, a label over 63
        bytes, over 255 bytes in all) is absent, because no record can exist
        there. RFC 7208 section 4.3 gives such a domain the result none.
        Raises DnsError (reason ``timeout``, ``servfail`` or ``error``) when
        no nameserver gave an answer. Raises it without sending the query
        with reason ``resolver_unreachable`` once ``health`` counts the
        resolver as unreachable, and with reason ``timeout`` once the
        domain's earlier queries timed out while the resolver responded.
        """
        name = normalise(name)
        domain = self.domain_timeouts
        if domain is not None and not domain.covers(name):
            domain = None
        await self._raise_if_cut_off(name, rdtype, domain)
        self.queries += 1
        sent_at = time.monotonic()
        # A query still unanswered after one try's timeout starts a probe,
        # so that its outcome is known when the query's lifetime runs out.
        probe_timer = asyncio.get_running_loop().call_later(
            self.resolver.timeout,
            self.health.probe_soon,
            self.probe_endpoints,
            self.resolver.timeout,
            sent_at,
        )
        try:
            answer = await self.resolver.resolve(
                name, rdtype, search=False, raise_on_no_answer=False
            )
        except dns.resolver.NXDOMAIN:
            self._record_answer(domain)
            return absent_answer(name, rdtype, nxdomain=True)
        except _INVALID_NAME:
            # No query is sent, and no record can exist at such a name.
            return absent_answer(name, rdtype, nxdomain=True)
        except dns.exception.Timeout as exc:
            self.health.record_timeout(sent_at)
            if domain is not None:
                domain.record_timeout(sent_at)
            msg = (
                f"DNS query {name!r} {rdtype} to {self._nameservers()} timed out "
                f"after {self.resolver.lifetime:g} s: check that the resolver in "
                "dns.nameservers or --nameserver answers, and that the "
                "nameservers of the name's zone do"
            )
            raise DnsError(msg, name=name, reason="timeout") from exc
        except dns.resolver.NoNameservers as exc:
            # SERVFAIL and REFUSED are responses, and a closed port fails
            # at once, so neither counts toward an unreachable resolver.
            self._record_answer(domain)
            msg = f"DNS query {name!r} {rdtype} failed: {_failure_summary(exc)}"
            raise DnsError(msg, name=name, reason="servfail") from exc
        except dns.exception.DNSException as exc:
            msg = f"DNS query {name!r} {rdtype} failed: {exc}"
            raise DnsError(msg, name=name, reason="error") from exc
        finally:
            probe_timer.cancel()

        self._record_answer(domain)
        records = tuple(answer.rrset) if answer.rrset is not None else ()
        canonical = normalise(answer.canonical_name.to_text())
        return Answer(name, rdtype, records, canonical)

    async def _raise_if_cut_off(
        self, name: str, rdtype: str, domain: DomainTimeouts | None
    ) -> None:
        """Raise DnsError, sending nothing, when the resolver or domain is cut off.

        ``domain`` is the audited domain's timeout count, or None for a name
        outside it.

        Timeouts alone do not cut the resolver off: a probe must get no
        reply first. When the probe gets a reply, the count starts again
        and the query is sent, unless the domain's own count cuts it off.
        """
        health = self.health
        if health.needs_probe:
            await health.probe(self.probe_endpoints, self.resolver.timeout)
        if health.unreachable:
            msg = (
                f"DNS query {name!r} {rdtype} not sent: the last "
                f"{health.consecutive_timeouts} queries of this audit to "
                f"{self._nameservers()} timed out with no answer in between, and "
                "so did a non-recursive probe for the root, so the resolver is "
                "taken as unreachable: check that the resolver in dns.nameservers "
                "or --nameserver answers"
            )
            raise DnsError(msg, name=name, reason="resolver_unreachable")
        if domain is not None and domain.exceeded:
            msg = (
                f"DNS query {name!r} {rdtype} not sent: the last "
                f"{domain.consecutive_timeouts} queries for names under "
                f"{domain.domain!r} timed out while {self._nameservers()} kept "
                "responding, so the domain's nameservers are taken as unreachable: "
                "check its NS records and that those nameservers answer"
            )
            raise DnsError(msg, name=name, reason="timeout")

    def _record_answer(self, domain: DomainTimeouts | None) -> None:
        self.health.record_answer()
        if domain is not None:
            domain.record_answer()

    def _nameservers(self) -> str:
        shown = []
        for nameserver in self.resolver.nameservers:
            if isinstance(nameserver, dns.nameserver.Nameserver):
                address = nameserver.answer_nameserver()
                port = nameserver.answer_port()
            else:
                address, port = str(nameserver), self.resolver.port
            shown.append(_host_port(address, port))
        return ", ".join(shown)

    async def txt(self, name: str) -> tuple[Answer, list[str]]:
        """Return the TXT answer and each record's strings joined with no separator.

        RFC 7208 section 3.3 and RFC 6376 section 3.6.2.2 join the strings
        of one record without a space. Bytes outside ASCII are kept as
        U+FFFD so that a broken record still shows in the finding.
        """
        answer = await self.query(name, "TXT")
        texts = [
            b"".join(record.strings).decode("utf-8", errors="replace")
            for record in answer.records
        ]
        return answer, texts

    async def addresses(self, name: str) -> list[str]:
        """Return the A and AAAA addresses of ``name``; empty when absent."""
        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            answer = await self.query(name, rdtype)
            found.extend(record.address for record in answer.records)
        return found

    async def ptr(self, ip: str) -> Answer:
        """Return the PTR answer for an IPv4 or IPv6 address."""
        reverse = dns.reversename.from_address(str(ipaddress.ip_address(ip)))
        return await self.query(reverse.to_text(), "PTR")


def _host_port(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _failure_summary(exc: dns.resolver.NoNameservers) -> str:
    """Return the last outcome of each nameserver, such as ``127.0.0.1:53 SERVFAIL``.

    dnspython's own message lists every attempt, timeouts before the final
    SERVFAIL included, which buries the outcome that decided the lookup.
    """
    last: dict[str, str] = {}
    for server, _tcp, port, error, *_rest in exc.kwargs.get("errors") or []:
        # dnspython names a server "Do53:ADDRESS@PORT".
        address = str(server).removeprefix("Do53:").rsplit("@", 1)[0]
        # A response's rcode is text such as "SERVFAIL"; an I/O failure is
        # the exception.
        verb = "answered" if isinstance(error, str) else "failed:"
        last[_host_port(address, port)] = f"{verb} {error}"
    if not last:
        return str(exc)
    return "; ".join(f"{server} {outcome}" for server, outcome in last.items())


def host_name(text: str) -> str:
    """Return ``text`` as a lower-case host name in A-labels, without the final dot.

    Raises ValueError for an empty name, an IP address, an empty label, a
    label over 63 bytes, a name over 255 bytes, or a label with characters
    other than letters, digits, hyphens and underscores.
    """
    if is_ip_literal(text):
        raise ValueError(f"{text!r} is an IP address, not a domain name")
    try:
        name = dns.name.from_text(text)
    except dns.exception.DNSException as exc:
        raise ValueError(f"{text!r} is not a valid domain name: {exc}") from None
    ascii_name = name.to_text(omit_final_dot=True).lower()
    labels = ascii_name.split(".")
    if not ascii_name or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        msg = (
            f"{text!r} is not a valid domain name: use letters, digits and "
            "hyphens in dot-separated labels"
        )
        raise ValueError(msg)
    return ascii_name


def is_ip_literal(name: str) -> bool:
    """Tell whether ``name`` is an IPv4 or IPv6 address rather than a host name."""
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def is_public_address(ip: str) -> bool:
    """Tell whether ``ip`` is a global unicast address.

    Private, loopback, link-local, documentation and reserved ranges are not.
    """
    address = ipaddress.ip_address(ip)
    return address.is_global and not address.is_multicast


def dns_name_text(name: dns.name.Name) -> str:
    """Return a dnspython name as lower-case text without the trailing dot."""
    return normalise(name.to_text())
