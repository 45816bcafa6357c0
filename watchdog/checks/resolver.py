"""The DNS resolver used by blocklist and authentication checks."""

from __future__ import annotations

import ipaddress

import dns.asyncresolver
import dns.nameserver

from watchdog.config import Dns
from watchdog.errors import ConfigError

DEFAULT_DNS_PORT = 53


def parse_nameserver(text: str) -> tuple[str, int]:
    """Split ``IP``, ``IP:PORT`` or ``[V6]:PORT`` into address and port.

    Raises ConfigError when the host is not an IP address (dnspython sends
    queries to addresses only, so a host name would time out on every query)
    or the port is not a number from 1 to 65535.
    """
    host, port = text, str(DEFAULT_DNS_PORT)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") or port
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        msg = f"invalid nameserver {text!r}: use IP or IP:PORT with a port 1-65535"
        raise ConfigError(msg, key="dns.nameservers")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        msg = (
            f"invalid nameserver {text!r}: {host!r} is not an IP address; "
            "give the resolver's address, for example 127.0.0.1:53"
        )
        raise ConfigError(msg, key="dns.nameservers") from None
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


# Anycast public resolvers. Spamhaus answers 127.255.255.254 to queries
# through them, and URIBL and SURBL refuse or block them too.
PUBLIC_RESOLVERS = frozenset(
    {
        "8.8.8.8",
        "8.8.4.4",
        "1.1.1.1",
        "1.0.0.1",
        "9.9.9.9",
        "149.112.112.112",
        "208.67.222.222",
        "208.67.220.220",
        "94.140.14.14",
        "94.140.15.15",
        "2001:4860:4860::8888",
        "2001:4860:4860::8844",
        "2606:4700:4700::1111",
        "2606:4700:4700::1001",
        "2620:fe::fe",
        "2620:fe::9",
    }
)


def public_resolvers(resolver: dns.asyncresolver.Resolver) -> list[str]:
    """Return the resolver's nameservers that are well-known public resolvers."""
    found = []
    for nameserver in resolver.nameservers:
        address = (
            nameserver.answer_nameserver()
            if isinstance(nameserver, dns.nameserver.Nameserver)
            else str(nameserver)
        )
        if address.lower() in PUBLIC_RESOLVERS:
            found.append(address)
    return found
