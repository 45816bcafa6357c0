"""Time the authentication audit against a resolver that drops every packet.

Binds a UDP socket on 127.0.0.1 that reads queries and never replies, then
runs ``run_audit`` through it twice: with the unreachable-resolver and
per-domain cut-offs of ``watchdog.checks.auth.health`` and with both
disabled, which is how the audit behaved before it had them. Prints one
line per run with the wall time and how many queries reached the socket,
liveness probes (queries for the root) included.

    .venv/bin/python bench/audit_blackhole.py --domains 3 --ips 2
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading
import time

from watchdog.checks.auth import audit
from watchdog.checks.auth.health import ResolverHealth
from watchdog.checks.resolver import make_resolver
from watchdog.config import Dns, Sending, Settings


class _Blackhole:
    """A UDP socket on 127.0.0.1 that counts queries and never replies."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.received = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                self.sock.recvfrom(65_535)
            except TimeoutError:
                continue
            self.received += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        self.sock.close()


class _NeverUnreachable(ResolverHealth):
    """The health tracker with both cut-offs disabled.

    ``Lookup`` gives each domain's cut-off the limit of the run's tracker.
    """

    def __init__(self) -> None:
        super().__init__(limit=2**31)


async def _run(settings: Settings, domains: list[str], nameserver: str) -> int:
    resolver = make_resolver(settings.dns, [nameserver])
    findings = await audit.run_audit(settings, domains, ["s1"], resolver)
    return len(findings)


def main() -> None:
    """Run the audit with and without the cut-off and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=1, help="domains to audit")
    parser.add_argument("--ips", type=int, default=0, help="sending IPs (PTR)")
    parser.add_argument(
        "--lifetime", type=float, default=3.0, help="dns.lifetime_seconds"
    )
    args = parser.parse_args()

    domains = [f"d{index}.example.test" for index in range(args.domains)]
    ips = [f"192.0.2.{index + 1}" for index in range(args.ips)]
    settings = Settings(
        sending=Sending(ips=ips),
        dns=Dns(timeout_seconds=args.lifetime / 3, lifetime_seconds=args.lifetime),
    )
    for label, health in (("cut-off", ResolverHealth), ("disabled", _NeverUnreachable)):
        audit.ResolverHealth = health  # type: ignore[misc]
        blackhole = _Blackhole()
        started = time.monotonic()
        try:
            count = asyncio.run(_run(settings, domains, blackhole.nameserver))
        finally:
            blackhole.close()
        elapsed = time.monotonic() - started
        print(
            f"{label:9} domains={len(domains)} ips={len(ips)} findings={count} "
            f"queries_received={blackhole.received} seconds={elapsed:.2f}"
        )


if __name__ == "__main__":
    main()
