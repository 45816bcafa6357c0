"""Fetching and parsing the MTA-STS policy file (RFC 8461 sections 3.2 and 3.3).

The fetcher is an interface so that tests and lab setups can point it at a
local HTTPS server with their own CA bundle.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import re
import socket
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import dns.asyncresolver

from watchdog.checks.auth.lookup import Lookup, is_ip_literal
from watchdog.errors import WatchdogError

POLICY_PATH = "/.well-known/mta-sts.txt"
# RFC 8461 section 3.3 caps max_age at one year.
MAX_AGE_LIMIT = 31_557_600
MAX_POLICY_BYTES = 64 * 1024
MODES = ("enforce", "testing", "none")
# RFC 8461 section 3.2: max_age is 1*10DIGIT, and str.isdigit() also
# accepts other scripts' digits and superscripts, which int() may reject.
_MAX_AGE = re.compile(r"[0-9]{1,10}")


class PolicyFetchError(WatchdogError):
    """The policy file could not be fetched: TLS, connection or timeout."""


class PolicySyntaxError(ValueError):
    """The policy file breaks RFC 8461 section 3.2; the message names the line."""


@dataclass(frozen=True)
class PolicyResponse:
    """The HTTP response to a policy fetch, before any parsing."""

    status: int
    content_type: str
    body: str


class PolicyFetcher(Protocol):
    """Something that fetches ``https://mta-sts.<domain>/.well-known/mta-sts.txt``."""

    async def fetch(self, domain: str, lookup: Lookup | None = None) -> PolicyResponse:
        """Return the response without following redirects; raise PolicyFetchError.

        ``lookup`` is the audit's DNS layer, for fetchers that resolve the
        policy host, so that those queries count toward its ResolverHealth.
        """
        ...


class HttpsPolicyFetcher:
    """Fetch policies over HTTPS with certificate checks and no redirects.

    ``base_url`` replaces ``https://mta-sts.<domain>`` (``{domain}`` is
    substituted), and ``ca_file`` replaces the system CA bundle. The policy
    host is resolved through the audit's resolver rather than the system's:
    through the ``lookup`` given to ``fetch``, else through ``resolver``. A
    DNS failure raises DnsError.
    """

    def __init__(
        self,
        *,
        resolver: dns.asyncresolver.Resolver | None = None,
        base_url: str = "https://mta-sts.{domain}",
        ca_file: Path | None = None,
        timeout_seconds: float = 10.0,
    ) -> None:
        self.resolver = resolver
        self.base_url = base_url
        self.context = ssl.create_default_context(
            cafile=str(ca_file) if ca_file is not None else None
        )
        self.timeout_seconds = timeout_seconds

    async def fetch(self, domain: str, lookup: Lookup | None = None) -> PolicyResponse:
        """Fetch the policy of ``domain`` in a worker thread.

        The policy host is resolved through ``lookup`` when given, else
        through ``resolver``.
        """
        url = urlsplit(self.base_url.format(domain=domain))
        if url.scheme != "https" or not url.hostname:
            msg = f"policy URL {url.geturl()!r} is not https://HOST[:PORT]"
            raise PolicyFetchError(msg)
        address = await self._address(url.hostname, lookup)
        return await asyncio.to_thread(
            self._fetch, url.hostname, address, url.port or 443, f"mta-sts.{domain}"
        )

    async def _address(self, host: str, lookup: Lookup | None) -> str:
        if is_ip_literal(host):
            return host
        if lookup is None:
            if self.resolver is None:
                return host
            lookup = Lookup(self.resolver)
        addresses = await lookup.addresses(host)
        if not addresses:
            msg = (
                f"policy host {host!r} has no A or AAAA record, so senders "
                f"cannot fetch https://{host}{POLICY_PATH}, and those without a "
                "cached policy deliver without MTA-STS: publish an address for it"
            )
            raise PolicyFetchError(msg)
        return addresses[0]

    def _fetch(
        self, host: str, address: str, port: int, virtual_host: str
    ) -> PolicyResponse:
        connection = _PinnedConnection(
            host, address, port, context=self.context, timeout=self.timeout_seconds
        )
        url = f"https://{host}:{port}{POLICY_PATH}"
        # The socket timeout bounds each read, not the whole response, so a
        # server sending one byte at a time never trips it. This timer shuts
        # the socket down once the fetch has taken timeout_seconds.
        deadline = threading.Timer(self.timeout_seconds, connection.abort)
        deadline.start()

        try:
            # Host names the policy host even when base_url points elsewhere.
            connection.request("GET", POLICY_PATH, headers={"Host": virtual_host})
            response = connection.getresponse()
            body = response.read(MAX_POLICY_BYTES + 1)
        except (OSError, http.client.HTTPException) as exc:
            if connection.aborted:
                raise PolicyFetchError(self._timeout_message(url)) from exc
            msg = f"fetching {url} failed: {exc}"
            raise PolicyFetchError(msg) from exc
        finally:
            deadline.cancel()
            connection.close()

        # A body without Content-Length ends quietly when the socket shuts.
        if connection.aborted:
            raise PolicyFetchError(self._timeout_message(url))
        if len(body) > MAX_POLICY_BYTES:
            msg = f"policy at {host!r} is over {MAX_POLICY_BYTES} bytes"
            raise PolicyFetchError(msg)
        content_type = response.getheader("Content-Type", "")
        return PolicyResponse(
            response.status, content_type, body.decode("utf-8", "replace")
        )

    def _timeout_message(self, url: str) -> str:
        return (
            f"fetching {url} timed out after {self.timeout_seconds} s "
            "in total: the server is too slow to send the policy"
        )


class _PinnedConnection(http.client.HTTPSConnection):
    """An HTTPS connection to a given address that verifies ``host``'s certificate."""

    def __init__(
        self,
        host: str,
        address: str,
        port: int,
        *,
        context: ssl.SSLContext,
        timeout: float,
    ) -> None:
        super().__init__(host, port, context=context, timeout=timeout)
        self.address = address
        self.tls_context = context
        self.tls_socket: ssl.SSLSocket | None = None
        self.aborted = False

    def connect(self) -> None:
        raw = socket.create_connection((self.address, self.port), self.timeout)
        # The handshake runs after self.sock is set, so abort() can cut it off.
        self.sock = self.tls_context.wrap_socket(
            raw, server_hostname=self.host, do_handshake_on_connect=False
        )
        # getresponse() clears self.sock when the server will close, while
        # the response still reads from the socket.
        self.tls_socket = self.sock
        if self.aborted:
            raise TimeoutError("the fetch deadline passed before the TLS handshake")
        self.sock.do_handshake()

    def abort(self) -> None:
        """Shut the socket down so that a read blocked in another thread returns."""
        self.aborted = True
        if self.tls_socket is not None:
            # socket.socket.shutdown, because SSLSocket.shutdown also drops
            # the TLS state that the blocked reader is still using.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(self.tls_socket, socket.SHUT_RDWR)


@dataclass(frozen=True)
class Policy:
    """A parsed policy file."""

    version: str
    mode: str
    max_age: int
    mx_patterns: list[str] = field(default_factory=list)


def parse_policy(body: str) -> Policy:
    """Parse a policy body with CRLF or LF line endings; raise PolicySyntaxError."""
    fields: dict[str, str] = {}
    patterns: list[str] = []
    for line in body.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise PolicySyntaxError(f"line {line!r} is not 'key: value'")
        key, value = key.strip().lower(), value.strip()
        if key == "mx":
            patterns.append(_checked_pattern(value))
        else:
            fields.setdefault(key, value)
    return _build_policy(fields, patterns)


def _checked_pattern(pattern: str) -> str:
    if "*" in pattern and (not pattern.startswith("*.") or "*" in pattern[1:]):
        raise PolicySyntaxError(
            f"mx pattern {pattern!r}: '*' must be the whole first label"
        )
    return pattern.lower().rstrip(".")


def _build_policy(fields: dict[str, str], patterns: list[str]) -> Policy:
    if fields.get("version") != "STSv1":
        raise PolicySyntaxError(f"version is {fields.get('version')!r}, not 'STSv1'")
    mode = fields.get("mode", "")
    if mode not in MODES:
        raise PolicySyntaxError(f"mode {mode!r} is not enforce, testing or none")
    age = fields.get("max_age", "")
    if not _MAX_AGE.fullmatch(age) or int(age) > MAX_AGE_LIMIT:
        raise PolicySyntaxError(f"max_age {age!r} is not a number 0-{MAX_AGE_LIMIT}")
    if mode != "none" and not patterns:
        raise PolicySyntaxError("no 'mx:' line: a policy in force needs one")
    return Policy("STSv1", mode, int(age), patterns)


def mx_matches(host: str, patterns: list[str]) -> bool:
    """Tell whether an MX host matches a policy pattern (``*.`` covers one label)."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        if pattern.startswith("*."):
            label, _, rest = host.partition(".")
            if label and rest == pattern[2:]:
                return True
        elif host == pattern:
            return True
    return False
