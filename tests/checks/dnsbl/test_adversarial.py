"""Hostile input for the blocklist checks: targets, catalogues, replies.

The servers are a private rbldnsd with hostile zone data and a small UDP
server in this file that sends malformed, mismatched or lying replies.
Both listen on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
import structlog
from rich.console import Console
from typer.testing import CliRunner

from tests.checks.dnsbl.conftest import ZONES_FILE, DnsServers
from tests.servers.common import free_port, wait_until
from tests.servers.dns import RblZone, ask, run_rbldnsd
from watchdog.checks.dnsbl.answer import State, interpret
from watchdog.checks.dnsbl.catalogue import (
    MAX_CATALOGUE_BYTES,
    CodeMeaning,
    Severity,
    Zone,
    ZoneKind,
    load_catalogue,
)
from watchdog.checks.dnsbl.cycle import BlocklistMonitor
from watchdog.checks.dnsbl.results import ZoneResult
from watchdog.checks.dnsbl.selection import read_dqs_key, select_zones
from watchdog.checks.dnsbl.targets import parse_target
from watchdog.cli import app
from watchdog.cli.check_ip import _table
from watchdog.config import Blocklists, Dns, Settings
from watchdog.errors import ConfigError, RulesError

# Seconds a check may take against a server that never sends a usable
# reply. With the default 3 s resolver lifetime, tried more than once by
# the lookup, such a check took 9.3 s here, and the rest is slack.
BOUNDED_SECONDS = 15.0


# Targets


def test_mapped_ipv4_is_ipv4() -> None:
    target = parse_target("::ffff:192.0.2.10")
    assert target.kind is ZoneKind.IP4
    assert target.value == "192.0.2.10"


@pytest.mark.parametrize(
    "text",
    ["999.1.1.1", "192.0.2", "127.1", "0x7f.0.0.1", "192.0.2.1.", "fe80::1%eth0"],
)
def test_bad_ip_rejected(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_target(text)


# Answers


def test_bitmask_no_bit_unknown() -> None:
    black = CodeMeaning("black list", Severity.CRITICAL)
    zone = Zone("bits.test", frozenset({ZoneKind.DOMAIN}), bits={2: black})
    answer = interpret(zone, ["127.0.0.0"])
    assert answer.state is State.LISTED
    assert [code.severity for code in answer.codes] == [Severity.UNKNOWN]


# Zone selection


@pytest.mark.parametrize("name", ["", "a b", "x..y", "-.test", "zen.test/x"])
def test_only_zone_validated(name: str) -> None:
    with pytest.raises(ConfigError, match="--zone"):
        select_zones({}, Blocklists(), only=[name])


def test_dqs_key_ascii(tmp_path: Path) -> None:
    key = tmp_path / "dqs.key"
    key.write_text("ключ123\n")
    key.chmod(0o600)
    with pytest.raises(ConfigError, match="does not contain a key"):
        read_dqs_key(key)


# Catalogue


def _catalogue(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dnsbl.yaml"
    path.write_text(text)
    return path


ENTRY = "zones:\n  - zone: x.test\n    kind: ip4\n    lists: x\n"

BAD_CATALOGUES = [
    # (text, line in the message, field in the message)
    (
        ENTRY
        + "    codes:\n"
        + "      127.0.0.2: {meaning: SBL, severity: critical}\n"
        + "      127.0.0.2: {meaning: PBL, severity: configuration}\n",
        7,
        "127.0.0.2",
    ),
    (ENTRY + "    enabled: false\n    enabled: true\n", 6, "enabled"),
    (ENTRY + "  - just a string\n", 5, "zones[1]"),
    ("zones:\n  - zone: zen spamhaus..org\n    kind: ip4\n    lists: x\n", 2, "zone"),
    (ENTRY + "    dqs: 'a b'\n", 5, "dqs"),
    (ENTRY + "    bits:\n      true: {meaning: x}\n", 5, "bits"),
    (ENTRY + "    operator_errors: {127.255.255.254: [1, 2]}\n", 5, "operator_errors"),
]


@pytest.mark.parametrize(("text", "line", "field"), BAD_CATALOGUES)
def test_catalogue_error_located(
    tmp_path: Path, text: str, line: int, field: str
) -> None:
    with pytest.raises(RulesError) as caught:
        load_catalogue(_catalogue(tmp_path, text))
    assert f"dnsbl.yaml:{line}:" in str(caught.value)
    assert field in str(caught.value)


def _laughs(levels: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        items = ", ".join([f"*a{level - 1}"] * 8)
        lines.append(f"a{level}: &a{level} [{items}]")
    return "\n".join(lines) + f"\n{ENTRY.replace('lists: x', f'lists: *a{levels - 1}')}"


def test_catalogue_bomb_fast(tmp_path: Path) -> None:
    path = _catalogue(tmp_path, _laughs(7))
    started = time.perf_counter()
    with pytest.raises(RulesError) as caught:
        load_catalogue(path)
    assert time.perf_counter() - started < 5.0
    assert len(str(caught.value)) < 2000


def test_catalogue_huge_rejected(tmp_path: Path) -> None:
    path = _catalogue(tmp_path, ENTRY + "#" * MAX_CATALOGUE_BYTES + "\n")
    with pytest.raises(RulesError, match="larger than"):
        load_catalogue(path)


def test_catalogue_binary_rejected(tmp_path: Path) -> None:
    path = tmp_path / "dnsbl.yaml"
    path.write_bytes(b"zones: \xff\n")
    with pytest.raises(RulesError, match="UTF-8"):
        load_catalogue(path)


# Table output


@pytest.mark.parametrize(
    "reason",
    ["Listed [/bold] here", "[link=http://evil.test]x[/link]", "red \x1b[31m!"],
)
def test_table_reason_literal(reason: str) -> None:
    result = ZoneResult("192.0.2.1", "ip4", "x.test", State.LISTED, (), reason)
    console = Console(width=200, force_terminal=True, record=True)
    console.print(_table([result]))
    text = console.export_text(styles=True)
    assert reason.replace("\x1b", "\\x1b") in text
    assert "\x1b]8;" not in text
    assert "\x1b[31m" not in text


# The CLI against real and hostile servers


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo the command's logging setup, whose stderr CliRunner closes."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


def _cli(nameserver: str, *args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(
        app,
        ["check", "ip", *args, "--nameserver", nameserver],
        env={"WATCHDOG_BLOCKLISTS__ZONES_FILE": str(ZONES_FILE), "COLUMNS": "200"},
    )
    error = None if isinstance(result.exception, SystemExit) else result.exception
    return result.exit_code, result.stdout, error


def _rows(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines()]


@pytest.mark.dns
def test_cli_mapped_ipv4_listed(dns_servers: DnsServers) -> None:
    code, output, error = _cli(
        dns_servers.unbound.nameserver,
        "::ffff:192.0.2.10",
        "--zone",
        "zen.test",
        "--format",
        "json",
    )
    assert error is None
    assert code == 1
    assert [row["state"] for row in _rows(output)] == ["listed"]


@pytest.mark.dns
def test_cli_repeated_target_once(dns_servers: DnsServers) -> None:
    code, output, error = _cli(
        dns_servers.unbound.nameserver,
        "192.0.2.10",
        "::ffff:192.0.2.10",
        "--zone",
        "zen.test",
        "--format",
        "json",
    )
    assert error is None
    assert code == 1
    assert [row["target"] for row in _rows(output)] == ["192.0.2.10"]


@pytest.mark.dns
def test_cli_no_matching_zone(dns_servers: DnsServers) -> None:
    code, output, error = _cli(
        dns_servers.unbound.nameserver, "2001:db8::1", "--zone", "zen.test"
    )
    assert error is None
    assert code == 2
    assert output == ""


@pytest.mark.parametrize(
    "nameserver", ["garbage", "localhost", "127.0.0.1:53:53", ":53", "[::1"]
)
def test_cli_bad_nameserver(nameserver: str) -> None:
    started = time.perf_counter()
    code, _, error = _cli(nameserver, "192.0.2.1", "--zone", "zen.test")
    assert error is None
    assert code == 2
    assert time.perf_counter() - started < 2.0


HOSTILE_TXT = ":2:Listed [/bold] \x1b[31mred [link=http://evil.test]x[/link]\n"


@pytest.fixture(scope="module")
def hostile_rbldnsd() -> Iterator[int]:
    """rbldnsd serving zen.test with TXT records full of markup and escapes."""
    soa = "$SOA 60 ns.zen.test hostmaster.example.com 0 1h 5m 1d 60\n$TTL 60\n"
    files = {"zen.ip4set": soa + HOSTILE_TXT + "127.0.0.2\n192.0.2.10\n"}
    with run_rbldnsd([RblZone("zen.test", "ip4set", "zen.ip4set")], files) as server:
        yield server.port


@pytest.mark.dns
def test_cli_hostile_txt_table(hostile_rbldnsd: int) -> None:
    code, output, error = _cli(
        f"127.0.0.1:{hostile_rbldnsd}", "192.0.2.10", "--zone", "zen.test"
    )
    assert error is None
    assert code == 1
    assert "[/bold]" in output
    assert "\x1b[31m" not in output


# A UDP server that replies in one hostile way per test.

Reply = Callable[[bytes], bytes | None]


def _answer(query: bytes, address: str) -> bytes:
    message = dns.message.from_wire(query)
    response = dns.message.make_response(message)
    question = message.question[0]
    if question.rdtype == dns.rdatatype.A:
        response.answer.append(
            dns.rrset.from_text(question.name, 60, "IN", "A", address)
        )
    return response.to_wire()


def _refused(query: bytes) -> bytes:
    response = dns.message.make_response(dns.message.from_wire(query))
    response.set_rcode(dns.rcode.REFUSED)
    return response.to_wire()


def _wrong_id(query: bytes) -> bytes:
    wire = bytearray(_answer(query, "127.0.0.2"))
    wire[0] ^= 0xFF
    return bytes(wire)


def _bad_body(query: bytes) -> bytes:
    # The header and question echo the query, and the answer count promises
    # a record that is not there.
    wire = bytearray(query)
    wire[2] |= 0x80
    wire[7] = 1
    return bytes(wire) + b"\xc0\x0c\x00"


def _oversized(query: bytes) -> bytes:
    message = dns.message.from_wire(query)
    response = dns.message.make_response(message)
    question = message.question[0]
    rrset = dns.rrset.from_text_list(
        question.name,
        60,
        "IN",
        "A",
        [f"127.0.{n // 256}.{n % 256}" for n in range(300)],
    )
    response.answer.append(rrset)
    return response.to_wire()[:1400]


HOSTILE_REPLIES: dict[str, tuple[Reply, str]] = {
    # name: (reply, expected state)
    "nxdomain_rewritten": (lambda q: _answer(q, "192.0.2.1"), "bogus"),
    "lists_everything": (lambda q: _answer(q, "127.0.0.2"), "zone_unhealthy"),
    "refused": (_refused, "dns_error"),
    "wrong_id": (_wrong_id, "dns_error"),
    "short_garbage": (lambda q: b"\x00\x01garbage", "dns_error"),
    "bad_body": (_bad_body, "dns_error"),
    "oversized_cut": (_oversized, "dns_error"),
    "silent": (lambda q: None, "dns_error"),
}


@contextlib.contextmanager
def _udp_server(reply: Reply) -> Iterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                query, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            data = reply(query)
            if data is not None:
                sock.sendto(data, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        stopping.set()
        thread.join()
        sock.close()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(HOSTILE_REPLIES))
def test_cli_hostile_server(name: str) -> None:
    reply, state = HOSTILE_REPLIES[name]
    started = time.perf_counter()
    with _udp_server(reply) as port:
        code, output, error = _cli(
            f"127.0.0.1:{port}", "192.0.2.10", "--zone", "zen.test", "--format", "json"
        )
    assert error is None
    assert code == 3
    assert [row["state"] for row in _rows(output)] == [state]
    assert time.perf_counter() - started < BOUNDED_SECONDS


@pytest.mark.slow
def test_cli_unreachable_port() -> None:
    started = time.perf_counter()
    code, output, error = _cli(
        f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}",
        "192.0.2.10",
        "--zone",
        "zen.test",
        "--format",
        "json",
    )
    assert error is None
    assert code == 3
    assert [row["state"] for row in _rows(output)] == ["dns_error"]
    assert time.perf_counter() - started < BOUNDED_SECONDS


# A zone that starts listing everything between two cycles.

FLIP_SOA = (
    "$SOA 600 ns.flip.test hostmaster.example.com 0 1h 5m 1d 600\n"
    "$NS 60 ns.flip.test\n$TTL 60\n"
)


@pytest.mark.dns
def test_canary_not_cached(tmp_path: Path) -> None:
    """A zone gone list-everything is unhealthy at the next cycle.

    The unlisted test point's NXDOMAIN carries a 600 s negative TTL. Were it
    served from the cache, the second cycle would trust the dead zone and
    report a new target as listed.
    """
    files = {"flip.ip4set": FLIP_SOA + ":2:Listed\n127.0.0.2\n"}
    catalogue = _catalogue(
        tmp_path,
        "zones:\n  - zone: flip.test\n    kind: ip4\n    lists: x\n"
        "    codes:\n      127.0.0.2: {meaning: listed, severity: critical}\n",
    )
    with run_rbldnsd([RblZone("flip.test", "ip4set", "flip.ip4set")], files) as rbl:
        settings = Settings(
            dns=Dns(nameservers=[f"127.0.0.1:{rbl.port}"]),
            blocklists=Blocklists(zones_file=catalogue),
        )
        monitor = BlocklistMonitor(settings)
        first = asyncio.run(monitor.run([parse_target("192.0.2.50")]))
        rbl.write("flip.ip4set", FLIP_SOA + ":2:Listed\n0.0.0.0/1\n128.0.0.0/1\n")
        wait_until(
            lambda: bool(ask("127.0.0.1", rbl.port, "1.0.0.127.flip.test").answer),
            what="rbldnsd reload",
        )
        second = asyncio.run(monitor.run([parse_target("192.0.2.51")]))

    assert [result.state for result in first] == [State.NOT_LISTED]
    assert [result.state for result in second] == [State.ZONE_UNHEALTHY]
