"""Finding the DMARC record that applies to a domain, in both standard ways.

RFC 7489 looks at ``_dmarc.<domain>`` and then at the organisational domain
taken from the Public Suffix List (the copy shipped in ``publicsuffixlist``,
never fetched at run time). RFC 9989 (DMARCbis) replaces the list with a
walk up the DNS tree of at most 8 queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from publicsuffixlist import PublicSuffixList

from watchdog.checks.auth.dkim import parse_tags
from watchdog.checks.auth.lookup import Lookup, normalise

MAX_WALK_QUERIES = 8
# A name longer than this many labels jumps straight to its last 7 labels.
WALK_JUMP_LABELS = 7


@dataclass(frozen=True)
class Discovery:
    """Location of the DMARC policy one discovery method found for a domain.

    ``found_at`` is the domain owning the ``_dmarc`` record, or None when no
    record was found. ``records`` are all DMARC records there, and more than
    one means no policy applies. ``queries`` counts the TXT queries made.
    ``other_texts`` are the non-DMARC TXT strings at the found name, or at
    the queried domain when nothing was found.
    """

    method: str
    found_at: str | None
    records: tuple[str, ...]
    queries: int
    other_texts: tuple[str, ...] = ()


@cache
def _suffix_list() -> PublicSuffixList:
    return PublicSuffixList()


def organisational_domain(domain: str) -> str:
    """Return the RFC 7489 organisational domain of ``domain``.

    A name that is itself a public suffix is its own organisational domain.
    """
    domain = normalise(domain)
    return _suffix_list().privatesuffix(domain) or domain


def is_dmarc_record(text: str) -> bool:
    """Tell whether a TXT string is a DMARC record: first tag ``v=DMARC1``.

    The tag name may be upper case, spaces around ``=`` are legal, and the
    value ``DMARC1`` is case-sensitive.
    """
    first = text.split(";", 1)[0]
    name, sep, value = first.partition("=")
    return bool(sep) and name.strip().lower() == "v" and value.strip() == "DMARC1"


async def records_at(lookup: Lookup, domain: str) -> tuple[list[str], list[str]]:
    """Return the DMARC records at ``_dmarc.<domain>`` and its other TXT strings.

    CNAMEs are followed by the resolver. Raises DnsError when the query fails.
    """
    _answer, texts = await lookup.txt(f"_dmarc.{domain}")
    dmarc = [text for text in texts if is_dmarc_record(text)]
    others = [text for text in texts if not is_dmarc_record(text)]
    return dmarc, others


async def discover_rfc7489(lookup: Lookup, domain: str) -> Discovery:
    """Look at the domain, then at its organisational domain."""
    domain = normalise(domain)
    candidates = [domain]
    organisational = organisational_domain(domain)
    if organisational != domain:
        candidates.append(organisational)
    return await _first_found(lookup, "rfc7489", candidates)


def tree_walk_names(domain: str) -> list[str]:
    """Return the names the RFC 9989 tree walk queries, in order (at most 8)."""
    labels = normalise(domain).split(".")
    names = [".".join(labels)]
    if len(labels) > WALK_JUMP_LABELS + 1:
        labels = labels[-WALK_JUMP_LABELS:]
        names.append(".".join(labels))
    while len(labels) > 1:
        labels = labels[1:]
        names.append(".".join(labels))
    return names[:MAX_WALK_QUERIES]


async def discover_tree_walk(lookup: Lookup, domain: str) -> Discovery:
    """Walk from the domain towards the root until a DMARC record is found.

    A record with ``psd=y`` belongs to a public suffix operator. It still
    gives the policy, and the organisational domain is the name one label
    below it.
    """
    return await _first_found(lookup, "tree_walk", tree_walk_names(domain))


async def _first_found(lookup: Lookup, method: str, names: list[str]) -> Discovery:
    first_others: tuple[str, ...] = ()
    for count, name in enumerate(names, start=1):
        records, others = await records_at(lookup, name)
        if records:
            return Discovery(method, name, tuple(records), count, tuple(others))
        if count == 1:
            first_others = tuple(others)
    return Discovery(method, None, (), len(names), first_others)


def is_public_suffix_policy(record: str) -> bool:
    """Tell whether a record carries ``psd=y``."""
    return parse_tags(record).get("psd", "").lower() == "y"
