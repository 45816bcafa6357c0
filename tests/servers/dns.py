"""Private rbldnsd and unbound instances on 127.0.0.1 for DNS tests.

Start rbldnsd first and wait until it answers, then unbound with one stub
zone per served zone: unbound marks a stub that does not answer as down and
returns SERVFAIL for it for minutes (``infra-host-ttl``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Iterator, Mapping, Sequence
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


def ask(host: str, port: int, name: str, rdtype: str = "A") -> dns.message.Message:
    """Send one UDP query for ``name`` to ``host:port`` and return the reply."""
    query = dns.message.make_query(name, dns.rdatatype.from_text(rdtype))
    return dns.query.udp(query, host, port=port, timeout=QUERY_TIMEOUT)


def _answers_noerror(port: int, name: str) -> bool:
    try:
        reply = ask("127.0.0.1", port, name, "SOA")
    except dns.exception.Timeout:
        return False
    return reply.rcode() == dns.rcode.NOERROR


@dataclass(frozen=True)
class RblZone:
    """One zone served by rbldnsd: name, dataset type and data file name."""

    name: str
    dataset: str
    file: str


@dataclass
class Rbldnsd:
    """A running rbldnsd: its directory and UDP port."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes]

    def write(self, file: str, text: str) -> None:
        """Replace a data file atomically. rbldnsd rereads it within about 1 s."""
        path = self.directory / file
        temporary = path.with_suffix(path.suffix + ".new")
        temporary.write_text(text)
        temporary.chmod(0o644)
        os.replace(temporary, path)


@contextlib.contextmanager
def run_rbldnsd(
    zones: Sequence[RblZone], files: Mapping[str, str], *, ttl: int = 60
) -> Iterator[Rbldnsd]:
    """Run rbldnsd serving ``zones`` from ``files`` (name to contents).

    ``-c 1s`` makes it reread changed files, so a test can add and remove a
    listing without a restart. Ready when the first zone's SOA answers.
    """
    binary = require_binary("rbldnsd")
    with service_dir("rbldnsd") as directory:
        for name, text in files.items():
            path = directory / name
            path.write_text(text)
            path.chmod(0o644)
        port = free_port(socket.SOCK_DGRAM)
        log = directory / "rbldnsd.log"
        specs = [f"{zone.name}:{zone.dataset}:{zone.file}" for zone in zones]
        command = [
            binary, "-n", "-b", f"127.0.0.1/{port}", "-w", str(directory),
            "-p", str(directory / "rbldnsd.pid"), "-t", str(ttl), "-c", "1s",
            *specs,
        ]  # fmt: skip
        with log.open("wb") as output:
            process = subprocess.Popen(command, stdout=output, stderr=output)
        try:
            wait_until(
                lambda: _answers_noerror(port, zones[0].name),
                what="rbldnsd",
                process=process,
                log=log,
            )
            yield Rbldnsd(directory, port, process)
        finally:
            stop(process)


@dataclass(frozen=True)
class StubZone:
    """A zone unbound forwards to an authoritative server (rbldnsd, nsd).

    ``ready`` is false for a stub that points at a dead port on purpose.
    """

    name: str
    port: int
    host: str = "127.0.0.1"
    ready: bool = True


@dataclass
class Unbound:
    """A running unbound: its directory and port (UDP and TCP)."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def nameserver(self) -> str:
        """The ``HOST:PORT`` string for ``dns.nameservers`` or ``--nameserver``."""
        return f"127.0.0.1:{self.port}"


def unbound_config(
    directory: Path,
    port: int,
    stubs: Sequence[StubZone],
    *,
    nodefault: Sequence[str] = ("test.",),
    cache_max_ttl: int = 5,
) -> str:
    """Return an unbound.conf answering only through ``stubs``.

    unbound answers ``test.`` and the documentation reverse zones itself
    unless each is named in ``nodefault``. Names outside the stubs get
    SERVFAIL.
    """
    lines = [
        "server:",
        f"    interface: 127.0.0.1@{port}",
        "    do-ip6: no",
        "    do-daemonize: no",
        '    username: ""',
        '    chroot: ""',
        f'    directory: "{directory}"',
        f'    pidfile: "{directory}/unbound.pid"',
        "    use-syslog: no",
        f'    logfile: "{directory}/unbound.log"',
        "    access-control: 127.0.0.0/8 allow",
        "    do-not-query-localhost: no",
        f"    cache-max-ttl: {cache_max_ttl}",
        f"    cache-max-negative-ttl: {cache_max_ttl}",
        "    infra-cache-max-rtt: 1000",
    ]
    lines += [f'    local-zone: "{zone}" nodefault' for zone in nodefault]
    # The root is a stub to a loopback port where nothing listens, so a name
    # outside the stubs gets SERVFAIL and unbound never queries the Internet.
    root = StubZone(".", free_port(socket.SOCK_DGRAM), ready=False)
    for stub in [*stubs, root]:
        lines += [
            "stub-zone:",
            f'    name: "{stub.name}"',
            f"    stub-addr: {stub.host}@{stub.port}",
        ]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def run_unbound(
    stubs: Sequence[StubZone],
    *,
    nodefault: Sequence[str] = ("test.",),
    cache_max_ttl: int = 5,
) -> Iterator[Unbound]:
    """Run unbound in front of ``stubs``, whose servers must already answer.

    Ready when the SOA of the first stub marked ``ready`` answers through it.
    """
    binary = require_binary("unbound")
    with service_dir("unbound") as directory:
        port = free_port()
        config = directory / "unbound.conf"
        config.write_text(
            unbound_config(
                directory,
                port,
                stubs,
                nodefault=nodefault,
                cache_max_ttl=cache_max_ttl,
            )
        )
        subprocess.run(
            [require_binary("unbound-checkconf"), str(config)],
            check=True,
            capture_output=True,
        )
        log = directory / "unbound.log"
        process = subprocess.Popen(
            [binary, "-d", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        probe = next((stub.name for stub in stubs if stub.ready), None)
        try:
            wait_until(
                lambda: probe is None or _answers_noerror(port, probe),
                what="unbound",
                process=process,
                log=log,
            )
            yield Unbound(directory, port, process)
        finally:
            stop(process)
