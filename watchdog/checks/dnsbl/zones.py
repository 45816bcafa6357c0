"""Blocklist zones as records: kinds of target, severities and code meanings.

``catalogue`` loads them from ``rules/dnsbl.yaml``. A return code is either
an exact address (``codes``) or a bit of the last octet of 127.0.0.x
(``bits``, for SURBL and URIBL).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

DQS_SUFFIX = "dq.spamhaus.net"

# Labels of 1 to 63 lowercase letters, digits, hyphens or underscores,
# joined by dots. 180 characters in all leave room for the 64 of a reversed
# IPv6 address within the 253 of a DNS name.
_DNS_NAME = re.compile(
    r"(?=.{1,180}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
    r"(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*"
)


class ZoneKind(StrEnum):
    """Kind of target a zone lists: IPv4 address, IPv6 address or domain name."""

    IP4 = "ip4"
    IP6 = "ip6"
    DOMAIN = "domain"


class Severity(StrEnum):
    """Importance of a return code to a sender."""

    CRITICAL = "critical"
    WARNING = "warning"
    # A policy listing such as Spamhaus PBL: the IP should not send direct
    # to MX. It is a configuration finding, not a reputation listing.
    CONFIGURATION = "configuration"
    INFO = "info"
    UNKNOWN = "unknown"


REPUTATION_SEVERITIES = frozenset(
    {Severity.CRITICAL, Severity.WARNING, Severity.UNKNOWN}
)


@dataclass(frozen=True)
class CodeMeaning:
    """Meaning and severity of one return code or bit of a zone."""

    meaning: str
    severity: Severity


@dataclass(frozen=True)
class Zone:
    """One blocklist zone and how to read its answers."""

    name: str
    kinds: frozenset[ZoneKind]
    lists: str = ""
    codes: Mapping[str, CodeMeaning] = field(default_factory=dict)
    bits: Mapping[int, CodeMeaning] = field(default_factory=dict)
    operator_errors: Mapping[str, str] = field(default_factory=dict)
    operator_error_bits: Mapping[int, str] = field(default_factory=dict)
    informational: bool = False
    enabled: bool = True
    needs_key: bool = False
    dqs: str | None = None
    delist_url: str | None = None
    query_zone: str = ""

    def __post_init__(self) -> None:
        if not self.query_zone:
            object.__setattr__(self, "query_zone", self.name)

    def with_dqs_key(self, key: str) -> Zone:
        """Return this zone queried as ``<key>.<dqs>.dq.spamhaus.net``."""
        if self.dqs is None:
            return self
        return _replace(self, query_zone=f"{key}.{self.dqs}.{DQS_SUFFIX}")


def _replace(zone: Zone, **changes: Any) -> Zone:
    values = {name: getattr(zone, name) for name in zone.__dataclass_fields__}
    values.update(changes)
    return Zone(**values)


def adhoc_zone(name: str) -> Zone:
    """Build a zone absent from the catalogue: IP lists, every code unknown."""
    return Zone(name=name, kinds=frozenset({ZoneKind.IP4, ZoneKind.IP6}))


def is_dns_name(name: str) -> bool:
    """Tell whether ``name`` (lowercase, no final dot) can be a zone name."""
    return _DNS_NAME.fullmatch(name) is not None


DNS_NAME_RULE = (
    "use at most 180 characters in labels of letters, digits, hyphens or "
    "underscores joined by single dots"
)
