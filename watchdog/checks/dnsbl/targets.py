"""Targets (sending IPs and domains) and the names queried for them."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

import idna

from watchdog.checks.dnsbl.catalogue import Zone, ZoneKind
from watchdog.config import Settings
from watchdog.errors import ConfigError

_REVERSE_SUFFIXES = (".in-addr.arpa", ".ip6.arpa")
# Above the number of sending IPs, or a cycle that walks them zone by zone
# would evict each name before the next zone asks for it again.
REVERSED_CACHE_SIZE = 65_536
# Learned link domains checked per cycle, so that learning cannot multiply
# the queries sent to the lists without bound.
MAX_LEARNED_LINK_TARGETS = 200


class TargetSource(StrEnum):
    """The reason a target is checked.

    ``sending``: a sending IP or domain, or a target named on the command
    line. ``link``: a domain our mail links to, from
    ``blocklists.link_domains`` or learned from our mail quoted in bounces.
    """

    SENDING = "sending"
    LINK = "link"


@dataclass(frozen=True)
class Target:
    """An IPv4 address, an IPv6 address or a domain name to look up.

    ``source`` is not part of equality, so a name that is both a sending
    domain and a link domain is one target, checked once.
    """

    value: str
    kind: ZoneKind
    source: TargetSource = field(default=TargetSource.SENDING, compare=False)


def parse_target(text: str) -> Target:
    """Classify ``text`` as an IP address or a domain, in canonical form.

    An IPv4-mapped IPv6 address (``::ffff:192.0.2.1``, as dual-stack
    sockets report IPv4 peers) is the IPv4 address it maps. Raises
    ConfigError for text that is neither, for an IPv6 address with a zone
    index (``fe80::1%eth0``) and for a name whose last label is all digits,
    which is a mistyped IPv4 address (``192.0.2.300``, ``10.1``), not a
    domain.
    """
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return _parse_domain(text)
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        msg = f"invalid target {text!r}: remove the IPv6 zone index after '%'"
        raise ConfigError(msg)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    kind = ZoneKind.IP4 if address.version == 4 else ZoneKind.IP6
    return Target(str(address), kind)


def _parse_domain(text: str) -> Target:
    try:
        domain = idna.encode(text.strip().rstrip("."), uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        msg = f"invalid target {text!r}: expected an IP address or a domain name"
        raise ConfigError(msg) from exc
    # RFC 3696 section 2: a top-level domain is never all digits.
    if domain.rsplit(".", 1)[-1].isdigit():
        msg = f"invalid target {text!r}: not a valid IP address or domain name"
        raise ConfigError(msg)
    return Target(domain.lower(), ZoneKind.DOMAIN)


def targets_from_settings(
    settings: Settings, learned_links: Iterable[str] = ()
) -> list[Target]:
    """Return the sending IPs and domains, then the link domains, as targets.

    Link domains are ``blocklists.link_domains`` and, when
    ``blocklists.learn_link_domains`` is set, ``learned_links`` (at most
    ``MAX_LEARNED_LINK_TARGETS`` of them, in sorted order). A learned name
    that is not a valid domain is skipped. Duplicates keep their first
    source, so a sending domain stays ``sending``.
    """
    texts = [*settings.sending.ips, *settings.sending.domains]
    targets = [parse_target(text) for text in texts]
    links = [parse_target(text) for text in settings.blocklists.link_domains]
    if settings.blocklists.learn_link_domains:
        links += _learned_targets(learned_links)
    targets += [Target(link.value, link.kind, TargetSource.LINK) for link in links]
    return list(dict.fromkeys(targets))


def _learned_targets(names: Iterable[str]) -> list[Target]:
    targets: list[Target] = []
    for name in sorted(set(names)):
        if len(targets) >= MAX_LEARNED_LINK_TARGETS:
            break
        try:
            target = parse_target(name)
        except ConfigError:
            continue
        if target.kind is ZoneKind.DOMAIN:
            targets.append(target)
    return targets


def query_name(target: Target, zone: Zone) -> str:
    """Return the name to ask ``zone`` about ``target``.

    IPv4 addresses are reversed by octet and IPv6 addresses by nibble (32
    labels), as in their reverse-DNS names without the ``arpa`` suffix.
    """
    if target.kind is ZoneKind.DOMAIN:
        return f"{target.value}.{zone.query_zone}"
    return f"{_reversed(target.value)}.{zone.query_zone}"


@functools.lru_cache(maxsize=REVERSED_CACHE_SIZE)
def _reversed(address: str) -> str:
    # Cached because every zone asks for the same target's name.
    reverse = ipaddress.ip_address(address).reverse_pointer
    for suffix in _REVERSE_SUFFIXES:
        reverse = reverse.removesuffix(suffix)
    return reverse


# RFC 5782 section 5: every list must list the first and must not list the
# second of its kind's test points.
TEST_POINTS: dict[ZoneKind, tuple[Target, Target]] = {
    ZoneKind.IP4: (
        Target("127.0.0.2", ZoneKind.IP4),
        Target("127.0.0.1", ZoneKind.IP4),
    ),
    ZoneKind.IP6: (
        Target("::ffff:7f00:2", ZoneKind.IP6),
        Target("::ffff:7f00:1", ZoneKind.IP6),
    ),
    ZoneKind.DOMAIN: (
        Target("test", ZoneKind.DOMAIN),
        Target("invalid", ZoneKind.DOMAIN),
    ),
}
