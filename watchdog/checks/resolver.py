"""The DNS resolver used by blocklist and authentication checks."""

from __future__ import annotations

import dns.asyncresolver
import dns.nameserver

from watchdog.config import Dns
from watchdog.errors import ConfigError

DEFAULT_DNS_PORT = 53


def parse_nameserver(text: str) -> tuple[str, int]:
    """Split ``HOST``, ``HOST:PORT`` or ``[V6]:PORT`` into host and port.

    Raises ConfigError on a port that is not a number from 1 to 65535.
    """
    host, port = text, str(DEFAULT_DNS_PORT)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") or port
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        msg = f"invalid nameserver {text!r}: use HOST or HOST:PORT with a port 1-65535"
        raise ConfigError(msg, key="dns.nameservers")
    return host, int(port)


def make_resolver(
    settings: Dns, nameservers: list[str] | None = None
) -> dns.asyncresolver.Resolver:
    """Build an asynchronous resolver from settings, without a cache.

    ``nameservers`` (from ``--nameserver``) replace the configured ones; with
    neither, the system's resolver configuration is read.
    """
    chosen = nameservers if nameservers else settings.nameservers
    resolver = dns.asyncresolver.Resolver(configure=not chosen)
    if chosen:
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(*parse_nameserver(entry)) for entry in chosen
        ]
    resolver.timeout = settings.timeout_seconds
    resolver.lifetime = settings.lifetime_seconds
    resolver.cache = None
    return resolver
