"""Learn our signing, envelope and link domains from our own mail quoted in bounces.

A bounce or a feedback report usually quotes the original message, or at
least its headers. When that original is ours, it shows what DNS cannot:
the DKIM selectors we sign with, the ``d=`` domains of those signatures,
the envelope sender (Return-Path) domain, and the domains our mail links to.

Trust rule: a quoted message counts as ours only when its From domain or
the ``d=`` domain of one of its DKIM-Signature headers is one of our
sending domains or a subdomain of one. A forged bounce can still claim
that, so callers cap what they store and never treat learned values as
proof (see ``audit._learned_missing``).
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from email.message import Message
from enum import StrEnum
from functools import cache

from publicsuffixlist import PublicSuffixList

from watchdog.checks.auth.dkim import parse_tags
from watchdog.checks.auth.lookup import host_name, is_ip_literal
from watchdog.checks.auth.selectors import quoted_messages

# Characters of body text scanned for links in one message, over all its
# quoted originals. Links sit near the top of most mail, and the bound keeps
# a hostile message from costing more than a few milliseconds here.
MAX_LINK_TEXT_CHARS = 262_144
# Link domains taken from one message; the store caps the total per domain.
MAX_LINKS_PER_MESSAGE = 100

# The host part of an http or https URL: everything up to the path, query,
# fragment or a character that cannot be part of a URL in running text.
_URL_HOST = re.compile(r"https?://([^/?#\s\"'<>()\[\]\\]+|\[[^\]\s]*\])", re.IGNORECASE)
_BODY_TYPES = ("text/plain", "text/html")


class LearnedKind(StrEnum):
    """The kind of a learned value, named as in the ``learned_identifier`` table.

    ``dkim_selector``: ``domain`` is the ``d=`` domain, ``value`` the ``s=``
    selector. ``dkim_domain``, ``return_path`` and ``link_domain``:
    ``domain`` is the From domain of our quoted message, and ``value`` is a
    ``d=`` domain, the envelope sender domain or the registered domain of a
    link.
    """

    DKIM_SELECTOR = "dkim_selector"
    DKIM_DOMAIN = "dkim_domain"
    RETURN_PATH = "return_path"
    LINK_DOMAIN = "link_domain"


@dataclass(frozen=True, order=True)
class Learned:
    """One value learned about one of our domains."""

    kind: LearnedKind
    domain: str
    value: str


def is_ours(domain: str, our_domains: Collection[str]) -> bool:
    """Tell whether ``domain`` is one of ``our_domains`` or a subdomain of one."""
    return any(domain == ours or domain.endswith("." + ours) for ours in our_domains)


def learn_from_message(
    raw: bytes,
    our_domains: Collection[str],
    *,
    delivered_to_envelope_sender: bool,
    links: bool,
) -> set[Learned]:
    """Return what the quoted originals of ``raw`` that are ours show.

    ``our_domains`` are lower-case sending domains; with none, nothing is
    ours and the result is empty. ``delivered_to_envelope_sender`` is True
    for a delivery status notification, which RFC 3464 sends to the
    envelope sender, so its own recipient domain is our Return-Path domain.
    Feedback reports and auto-replies go elsewhere and must pass False.
    ``links`` turns on the scan of quoted bodies for http and https links.
    """
    if not our_domains:
        return set()
    outer = email.message_from_bytes(raw, policy=email.policy.compat32)
    recipient = (
        envelope_recipient_domain(outer) if delivered_to_envelope_sender else None
    )
    found: set[Learned] = set()
    link_budget = _Budget(MAX_LINK_TEXT_CHARS, MAX_LINKS_PER_MESSAGE)
    for quoted in quoted_messages(outer):
        found |= _learn_from_quoted(
            quoted, our_domains, recipient, link_budget if links else None
        )
    return found


def _learn_from_quoted(
    quoted: Message,
    our_domains: Collection[str],
    recipient: str | None,
    link_budget: _Budget | None,
) -> set[Learned]:
    from_domain = _address_domain(str(quoted.get("From", "")))
    signatures = _signatures(quoted)
    signing_ours = [domain for domain, _ in signatures if is_ours(domain, our_domains)]
    if from_domain is not None and is_ours(from_domain, our_domains):
        owner = from_domain
    elif signing_ours:
        owner = signing_ours[0]
    else:
        return set()

    found = {
        Learned(LearnedKind.DKIM_SELECTOR, domain, selector)
        for domain, selector in signatures
        if is_ours(domain, our_domains)
    }
    # Alignment compares with the From domain, so it needs one.
    if from_domain is not None:
        found |= {
            Learned(LearnedKind.DKIM_DOMAIN, from_domain, domain)
            for domain, _ in signatures
        }
        envelope = {recipient} if recipient else set()
        envelope |= _return_path_domains(quoted)
        found |= {
            Learned(LearnedKind.RETURN_PATH, from_domain, domain) for domain in envelope
        }
    if link_budget is not None:
        found |= {
            Learned(LearnedKind.LINK_DOMAIN, owner, domain)
            for domain in _link_domains(quoted, link_budget)
        }
    return found


def _signatures(quoted: Message) -> set[tuple[str, str]]:
    """Return the valid ``(d=, s=)`` pairs of the DKIM-Signature headers."""
    pairs: set[tuple[str, str]] = set()
    for value in quoted.get_all("DKIM-Signature") or []:
        tags = parse_tags(" ".join(str(value).split()))
        domain = _name_or_none(tags.get("d", ""))
        selector = _name_or_none(tags.get("s", ""))
        if domain is not None and selector is not None:
            pairs.add((domain, selector))
    return pairs


def _return_path_domains(quoted: Message) -> set[str]:
    domains = set()
    for value in quoted.get_all("Return-Path") or []:
        domain = _address_domain(str(value))
        if domain is not None:
            domains.add(domain)
    return domains


def envelope_recipient_domain(outer: Message) -> str | None:
    """Return the domain of the address a bounce was delivered to.

    The receiving MTA prepends X-Original-To (Postfix, before alias
    expansion) and Delivered-To, so the first occurrence is ours and any
    further one may come from the sender. To is the last resort because
    the bounce's author writes it.
    """
    for name in ("X-Original-To", "Delivered-To", "To"):
        value = outer.get(name)
        if value is not None:
            return _address_domain(str(value))
    return None


def _address_domain(value: str) -> str | None:
    """Return the checked, lower-case domain of the first address in ``value``."""
    addresses = email.utils.getaddresses([value])
    if not addresses:
        return None
    _name, address = addresses[0]
    local, at, domain = address.rpartition("@")
    if not at or not local:
        return None
    return _name_or_none(domain)


def _name_or_none(text: str) -> str | None:
    try:
        return host_name(text.strip())
    except ValueError:
        return None


@dataclass
class _Budget:
    """The characters and links the link scan of one message may still use."""

    chars: int
    links: int


def _link_domains(quoted: Message, budget: _Budget) -> set[str]:
    domains: set[str] = set()
    for text in _body_texts(quoted, budget):
        for match in _URL_HOST.finditer(text):
            if budget.links <= 0:
                return domains
            domain = registered_domain(match.group(1))
            if domain is not None and domain not in domains:
                domains.add(domain)
                budget.links -= 1
    return domains


def _body_texts(quoted: Message, budget: _Budget) -> Iterator[str]:
    """Yield the decoded text parts of ``quoted``, cut to the budget.

    Messages quoted inside ``quoted`` are skipped: they are not ours, and
    ``quoted_messages`` yields them on their own.
    """
    stack = [quoted]
    while stack and budget.chars > 0:
        part = stack.pop()
        if part.get_content_maintype() == "message" and part is not quoted:
            continue
        if part.is_multipart():
            payload = part.get_payload()
            if isinstance(payload, list):
                children = [child for child in payload if isinstance(child, Message)]
                stack.extend(reversed(children))
            continue
        if part.get_content_type() not in _BODY_TYPES:
            continue
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            continue
        charset = part.get_content_charset() or "utf-8"
        text = _decode(data[: budget.chars * 4], charset)[: budget.chars]
        budget.chars -= len(text)
        yield text


def _decode(data: bytes, charset: str) -> str:
    try:
        return data.decode(charset, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def registered_domain(host: str) -> str | None:
    """Return the registered domain of a URL host, using the Public Suffix List.

    Returns None for an IP literal, an invalid name and a name that is
    itself a public suffix. User information and the port are dropped.
    """
    host = host.rpartition("@")[2]
    if host.startswith("["):
        return None
    host = host.partition(":")[0].rstrip(".")
    if not host or is_ip_literal(host):
        return None
    name = _name_or_none(host)
    if name is None:
        return None
    return _suffix_list().privatesuffix(name)


@cache
def _suffix_list() -> PublicSuffixList:
    # The copy shipped in the publicsuffixlist package, never fetched.
    return PublicSuffixList()
