"""A private nsd on 127.0.0.1 serving test zones (``*.test`` and reverse zones).

nsd answers UDP and TCP on one port, so truncated answers fall back to TCP
as they would on the internet. Every state file lives in the service
directory, because otherwise nsd writes to system paths.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from tests.servers.common import (
    free_port,
    require_binary,
    service_dir,
    stop,
    wait_until,
)

QUERY_TIMEOUT = 0.5
SOA_TTL = 5


@dataclass
class Nsd:
    """A running nsd: its directory, port and the zones it serves."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes]
    zones: tuple[str, ...]

    @property
    def nameserver(self) -> str:
        """The ``HOST:PORT`` string for ``dns.nameservers`` or ``--nameserver``."""
        return f"127.0.0.1:{self.port}"


def zone_text(origin: str, body: str) -> str:
    """Return a zone file for ``origin``: SOA and NS with short TTLs, then ``body``.

    ``body`` contains records relative to the origin, one per line.
    """
    origin = origin.rstrip(".") + "."
    header = (
        f"$ORIGIN {origin}\n$TTL {SOA_TTL}\n"
        f"@ IN SOA ns.{origin} hostmaster.{origin} 1 3600 600 86400 {SOA_TTL}\n"
        f"@ IN NS ns.{origin}\n"
    )
    return header + body.strip() + "\n"


def nsd_config(directory: Path, port: int, zones: Mapping[str, str | None]) -> str:
    """Return an nsd.conf that serves ``zones`` from ``DIRECTORY/<zone>.zone``."""
    lines = [
        "server:",
        f"    ip-address: 127.0.0.1@{port}",
        "    do-ip6: no",
        '    username: ""',
        f'    zonesdir: "{directory}"',
        '    database: ""',
        f'    pidfile: "{directory}/nsd.pid"',
        f'    xfrdfile: "{directory}/xfrd.state"',
        f'    zonelistfile: "{directory}/zone.list"',
        f'    logfile: "{directory}/nsd.log"',
        "    server-count: 1",
        "remote-control:",
        "    control-enable: no",
    ]
    for name in zones:
        lines += ["zone:", f'    name: "{name}"', f'    zonefile: "{name}.zone"']
    return "\n".join(lines) + "\n"


def _answers_noerror(port: int, zone: str) -> bool:
    query = dns.message.make_query(zone, dns.rdatatype.SOA)
    try:
        reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=QUERY_TIMEOUT)
    except dns.exception.Timeout:
        return False
    return reply.rcode() == dns.rcode.NOERROR


@contextlib.contextmanager
def run_nsd(zones: Mapping[str, str | None]) -> Iterator[Nsd]:
    """Run nsd serving ``zones`` (name to zone file text).

    A zone mapped to None is configured without a zone file, so nsd answers
    SERVFAIL for every name in it: the fault of a broken authoritative
    server. Ready when the SOA of every loaded zone answers NOERROR.
    """
    binary = require_binary("nsd")
    with service_dir("nsd") as directory:
        for name, text in zones.items():
            if text is not None:
                (directory / f"{name}.zone").write_text(text)
        port = free_port()
        config = directory / "nsd.conf"
        config.write_text(nsd_config(directory, port, zones))
        subprocess.run(
            [require_binary("nsd-checkconf"), str(config)],
            check=True,
            capture_output=True,
        )
        log = directory / "nsd.log"
        process = subprocess.Popen(
            [binary, "-d", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        loaded = [name for name, text in zones.items() if text is not None]
        try:
            wait_until(
                lambda: all(_answers_noerror(port, name) for name in loaded),
                what="nsd",
                process=process,
                log=log,
            )
            yield Nsd(directory, port, process, tuple(zones))
        finally:
            stop(process)
