"""Compare the blocklist checker's query rate with dnsperf's on one rbldnsd.

Usage::

    PYTHONPATH=. .venv/bin/python bench/dnsbl_speed.py
    PYTHONPATH=. .venv/bin/python bench/dnsbl_speed.py --targets 1000 --zones 15
    PYTHONPATH=. .venv/bin/python bench/dnsbl_speed.py --no-fast-path --rounds 1

The bench starts its own rbldnsd on 127.0.0.1 (in a /tmp directory) serving
``--zones`` ip4set zones that each list every tenth target and the RFC 5782
test point. dnsperf (Debian package ``dnsperf``) sends the same A queries
at several client and in-flight settings, and the best rate is its maximum.
Our checker then runs whole cycles (test points, A queries, TXT queries for
listings, history and the Prometheus export, as in the daemon) straight
against rbldnsd with an empty cache each round, through
the fast path (``fastquery`` and ``batch``) unless ``--no-fast-path`` sends
every query through dnspython's Resolver. The
figure reported is our best queries per second divided by dnsperf's
maximum. CPU time per query is printed too, because it varies less than
the rate when other work shares the machine. RSS is printed at
checkpoints so that growth over the rounds shows.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.servers.common import require_binary
from tests.servers.dns import RblZone, run_rbldnsd
from watchdog import log as logging_setup
from watchdog.checks.dnsbl.catalogue import CodeMeaning, Severity, Zone, ZoneKind
from watchdog.checks.dnsbl.cycle import BlocklistMonitor
from watchdog.checks.dnsbl.targets import Target, parse_target
from watchdog.checks.resolver import make_resolver
from watchdog.config import Blocklists, Dns, Settings
from watchdog.metrics import Metrics

FIRST_TARGET = ipaddress.IPv4Address("198.18.0.1")  # RFC 2544 benchmark range
DNSPERF_SETTINGS = [(1, 100), (4, 100), (4, 500), (8, 1000)]  # (clients, in flight)
DNSPERF_SECONDS = 5
TARGET_RATIO = 0.3


def rss_mb() -> float:
    """Return this process's resident set size in MB, from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def checkpoint(label: str) -> None:
    """Print the RSS at a named point of the run."""
    print(f"rss {label}: {rss_mb():.1f} MB")


def make_targets(count: int) -> list[Target]:
    """Return ``count`` consecutive IPv4 targets from the benchmark range."""
    return [parse_target(str(FIRST_TARGET + index)) for index in range(count)]


def zone_file(name: str, targets: list[Target]) -> str:
    """Return an ip4set listing the test point and every tenth target."""
    listed = "\n".join(target.value for target in targets[::10])
    return (
        f"$SOA 60 ns.{name} hostmaster.example.com 0 1h 5m 1d 60\n"
        f"$NS 60 ns.{name}\n$TTL 60\n:2:Listed: $\n127.0.0.2\n{listed}\n"
    )


def catalogue_zone(name: str) -> Zone:
    """Return the catalogue entry of one bench zone."""
    codes = {"127.0.0.2": CodeMeaning("listed", Severity.CRITICAL)}
    return Zone(name=name, kinds=frozenset({ZoneKind.IP4}), codes=codes)


def dnsperf_rate(port: int, queries: Path, clients: int, in_flight: int) -> float:
    """Run dnsperf once and return its queries per second."""
    command = [
        require_binary("dnsperf"), "-s", "127.0.0.1", "-p", str(port),
        "-d", str(queries), "-l", str(DNSPERF_SECONDS), "-c", str(clients),
        "-T", str(min(clients, 2)), "-q", str(in_flight),
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True)
    match = re.search(r"Queries per second:\s+([\d.]+)", output.stdout)
    if match is None:
        raise RuntimeError(f"dnsperf printed no rate:\n{output.stdout}")
    return float(match.group(1))


def count_queries(monitor: BlocklistMonitor) -> list[int]:
    """Wrap the monitor's resolver so that every dnspython query is counted.

    Queries sent by the fast path are counted by ``FastResolver.sent``.
    """
    counter = [0]
    resolve: Callable[..., Awaitable[Any]] = monitor.resolver.resolve

    async def counted(*args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        return await resolve(*args, **kwargs)

    monitor.resolver.resolve = counted  # type: ignore[method-assign]
    return counter


def queries_sent(monitor: BlocklistMonitor, counter: list[int]) -> int:
    """Return the queries sent by dnspython and by the fast path."""
    fast = monitor.lookup.fast
    return counter[0] + (fast.sent if fast is not None else 0)


def checker_rate(
    monitor: BlocklistMonitor, targets: list[Target], counter: list[int]
) -> float:
    """Run one cycle with an empty cache and return its queries per second."""
    counter[0] = 0
    if monitor.lookup.fast is not None:
        monitor.lookup.fast.sent = 0
    monitor.lookup.forget()
    started = time.perf_counter()
    cpu_started = time.process_time()
    results = asyncio.run(monitor.run(targets))
    cpu = time.process_time() - cpu_started
    seconds = time.perf_counter() - started

    sent = queries_sent(monitor, counter)
    listed = sum(1 for result in results if result.state.value == "listed")
    print(
        f"checker: {sent} queries ({counter[0]} through dnspython) in "
        f"{seconds:.2f} s = {sent / seconds:.0f}/s, {cpu / sent * 1e6:.0f} us "
        f"CPU per query ({len(results)} results, {listed} listed)"
    )
    return sent / seconds


def main() -> int:
    """Run the benchmark and return 0 when the ratio reaches the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--zones", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--no-fast-path",
        action="store_true",
        help="send every query through dnspython's Resolver, for comparison",
    )
    parser.add_argument("--concurrency", type=int, default=Blocklists().concurrency)
    parser.add_argument(
        "--per-zone", type=int, default=Blocklists().per_zone_concurrency
    )
    options = parser.parse_args()
    logging_setup.configure(level="error", fmt="console")
    checkpoint("start")

    targets = make_targets(options.targets)
    names = [f"z{index:02d}.bench.test" for index in range(1, options.zones + 1)]
    files = {f"{name}.ip4set": zone_file(name, targets) for name in names}
    rbl_zones = [RblZone(name, "ip4set", f"{name}.ip4set") for name in names]

    with run_rbldnsd(rbl_zones, files) as rbldnsd:
        checkpoint("rbldnsd up")
        queries = rbldnsd.directory / "queries.txt"
        reversed_names = [
            ".".join(reversed(target.value.split("."))) for target in targets
        ]
        queries.write_text(
            "".join(f"{ip}.{name} A\n" for name in names for ip in reversed_names)
        )
        rates = []
        for clients, in_flight in DNSPERF_SETTINGS:
            rate = dnsperf_rate(rbldnsd.port, queries, clients, in_flight)
            print(f"dnsperf -c {clients} -q {in_flight}: {rate:.0f}/s")
            rates.append(rate)
        maximum = max(rates)
        checkpoint("after dnsperf")

        settings = Settings(
            dns=Dns(nameservers=[f"127.0.0.1:{rbldnsd.port}"]),
            blocklists=Blocklists(
                concurrency=options.concurrency,
                per_zone_concurrency=options.per_zone,
            ),
        )
        zones = [catalogue_zone(name) for name in names]
        monitor = BlocklistMonitor(
            settings,
            zones=zones,
            resolver=make_resolver(settings.dns),
            metrics=Metrics(),  # exported as in the daemon, to a private registry
            fast_path=not options.no_fast_path,
        )
        counter = count_queries(monitor)
        ours = []
        for round_number in range(1, options.rounds + 1):
            ours.append(checker_rate(monitor, targets, counter))
            checkpoint(f"after round {round_number}")

    best = max(ours)
    ratio = best / maximum
    print(
        f"result: checker best {best:.0f}/s, dnsperf max {maximum:.0f}/s, "
        f"ratio {ratio:.3f} (target >= {TARGET_RATIO})"
    )
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
