"""SPF record selection, syntax (RFC 7208 section 12) and the static lookup walk.

The walk follows ``include`` and ``redirect`` from the published record. It
counts the DNS lookups and void lookups of the whole tree without any
sending IP, so the limits are judged on what the record can cost a receiver. Targets
containing macros are evaluated only by ``check_host``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from watchdog.checks.auth.lookup import Lookup

MAX_LOOKUPS = 10
MAX_VOID_LOOKUPS = 2
MAX_MX_NAMES = 10
# The walk stops after this many queries so that a runaway tree costs a
# bounded number. Each counted term makes at most 2 queries, so a walk that
# stops here has already counted 30 lookups, far over the limit of 10.
WALK_QUERY_BUDGET = 60

_SPF_PREFIX = re.compile(r"^v=spf1( |$)", re.IGNORECASE)
_MODIFIER = re.compile(r"^([a-z][a-z0-9_.\-]*)=(.*)$", re.IGNORECASE)
_MECHANISM = re.compile(r"^([+\-~?]?)([a-z0-9]+)([:/].*)?$", re.IGNORECASE)
_MECHANISMS = {"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"}
_NEEDS_DOMAIN = {"include", "exists"}
LOOKUP_TERMS = {"include", "a", "mx", "ptr", "exists"}


class SpfSyntaxError(ValueError):
    """An SPF record breaks the RFC 7208 grammar; the message names the term."""


@dataclass(frozen=True)
class Term:
    """One mechanism or modifier. ``value`` is the text after ``:`` or ``=``."""

    name: str
    value: str
    qualifier: str = "+"
    modifier: bool = False


def spf_records(texts: list[str]) -> list[str]:
    """Return the TXT strings that are SPF records (``v=spf1`` then space or end)."""
    return [text for text in texts if _SPF_PREFIX.match(text)]


def parse_record(record: str) -> list[Term]:
    """Split an SPF record into terms, raising SpfSyntaxError on the first bad one."""
    terms: list[Term] = []
    seen_modifiers: set[str] = set()
    for token in record.split(" ")[1:]:
        if not token:
            continue
        term = _parse_term(token)
        if term.modifier and term.name in ("redirect", "exp"):
            if term.name in seen_modifiers:
                msg = f"modifier {term.name!r} appears more than once"
                raise SpfSyntaxError(msg)
            seen_modifiers.add(term.name)
        terms.append(term)
    return terms


def _parse_term(token: str) -> Term:
    modifier = _MODIFIER.match(token)
    if modifier:
        name, value = modifier.group(1).lower(), modifier.group(2)
        if name in ("redirect", "exp") and not value:
            raise SpfSyntaxError(f"modifier {token!r} has no domain")
        return Term(name, value, modifier=True)

    mechanism = _MECHANISM.match(token)
    if not mechanism or mechanism.group(2).lower() not in _MECHANISMS:
        raise SpfSyntaxError(f"unknown mechanism {token!r}")
    qualifier = mechanism.group(1) or "+"
    name = mechanism.group(2).lower()
    value = mechanism.group(3) or ""
    _check_value(token, name, value)
    return Term(name, value.removeprefix(":"), qualifier)


def _check_value(token: str, name: str, value: str) -> None:
    if name == "all" and value:
        raise SpfSyntaxError(f"mechanism {token!r}: 'all' takes no value")
    if name in _NEEDS_DOMAIN and not value.startswith(":"):
        raise SpfSyntaxError(f"mechanism {token!r} needs ':domain'")
    if name in ("ip4", "ip6"):
        try:
            network = ipaddress.ip_network(value.removeprefix(":"), strict=False)
        except ValueError:
            raise SpfSyntaxError(f"mechanism {token!r}: invalid network") from None
        if network.version != int(name[-1]):
            raise SpfSyntaxError(f"mechanism {token!r}: wrong address family")


def target_domain(term: Term, current: str) -> str:
    """Return the domain a lookup term queries, without any ``/cidr`` suffix."""
    domain = term.value.split("/", 1)[0] if term.value else ""
    return domain or current


@dataclass
class WalkResult:
    """Counts and defects found by the walk below one published record."""

    lookups: int = 0
    void_lookups: int = 0
    uses_ptr: bool = False
    # "include loop: a -> b -> a", or "redirect loop: ..." by the closing term.
    loops: list[str] = field(default_factory=list)
    missing_targets: list[str] = field(default_factory=list)
    broken_targets: list[str] = field(default_factory=list)
    mx_overflow: list[str] = field(default_factory=list)
    macro_terms: list[str] = field(default_factory=list)
    query_limit: int = 0


async def walk(lookup: Lookup, domain: str, terms: list[Term]) -> WalkResult:
    """Count the lookups and void lookups of ``terms`` and every nested record.

    Raises DnsError when a query fails, because a partial count would be
    wrong in an unknown direction.
    """
    result = WalkResult(query_limit=lookup.queries + WALK_QUERY_BUDGET)
    await _walk_terms(lookup, domain, terms, (domain,), result)
    return result


async def _walk_terms(
    lookup: Lookup,
    domain: str,
    terms: list[Term],
    chain: tuple[str, ...],
    result: WalkResult,
) -> None:
    has_all = any(term.name == "all" for term in terms)
    for term in terms:
        if lookup.queries > result.query_limit:
            return
        if term.modifier and not (term.name == "redirect" and not has_all):
            continue
        if not term.modifier and term.name not in LOOKUP_TERMS:
            continue
        result.lookups += 1
        target = target_domain(term, domain)
        if "%" in target:
            result.macro_terms.append(f"{term.name}:{target}")
            continue
        await _walk_term(lookup, term, target, chain, result)


async def _walk_term(
    lookup: Lookup,
    term: Term,
    target: str,
    chain: tuple[str, ...],
    result: WalkResult,
) -> None:
    if term.name in ("include", "redirect"):
        await _walk_nested(lookup, term.name, target, chain, result)
    elif term.name == "a":
        if not await lookup.addresses(target):
            result.void_lookups += 1
    elif term.name == "mx":
        answer = await lookup.query(target, "MX")
        if answer.absent:
            result.void_lookups += 1
        elif len(answer.records) > MAX_MX_NAMES:
            result.mx_overflow.append(target)
    elif term.name == "exists":
        # Without macros the target is fixed, so every receiver sends the same
        # A query, and NXDOMAIN or NODATA counts as a void lookup.
        answer = await lookup.query(target, "A")
        if answer.absent:
            result.void_lookups += 1
    elif term.name == "ptr":
        result.uses_ptr = True


async def _walk_nested(
    lookup: Lookup,
    kind: str,
    target: str,
    chain: tuple[str, ...],
    result: WalkResult,
) -> None:
    if target.lower() in chain:
        path = " -> ".join([*chain, target.lower()])
        result.loops.append(f"{kind} loop: {path}")
        return
    answer, texts = await lookup.txt(target)
    if answer.absent:
        result.void_lookups += 1
    records = spf_records(texts)
    if len(records) != 1:
        result.missing_targets.append(target)
        return
    try:
        terms = parse_record(records[0])
    except SpfSyntaxError as exc:
        result.broken_targets.append(f"{target}: {exc}")
        return
    await _walk_terms(lookup, target, terms, (*chain, target.lower()), result)
