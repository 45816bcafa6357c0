"""``mail-watchdog check ip`` against the private unbound: output and exit codes."""

from __future__ import annotations

import json
import logging
import pathlib
from collections.abc import Iterator

import pytest
import structlog
from typer.testing import CliRunner

from tests.checks.dnsbl.conftest import ZONES_FILE, DnsServers
from watchdog.cli import app

pytestmark = pytest.mark.dns


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


def _run(dns_servers: DnsServers, *args: str) -> tuple[int, str]:
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["check", "ip", *args, "--nameserver", dns_servers.unbound.nameserver],
        env={"WATCHDOG_BLOCKLISTS__ZONES_FILE": str(ZONES_FILE), "COLUMNS": "200"},
    )
    return result.exit_code, result.stdout


EXIT_CODES = [
    # (arguments, exit code)
    (["192.0.2.10", "--zone", "zen.test"], 1),
    (["192.0.2.99", "--zone", "zen.test"], 0),
    (["192.0.2.11", "--zone", "zen.test"], 0),
    (["192.0.2.10", "--zone", "info.test"], 0),
    (["192.0.2.99", "--zone", "refuse.test"], 3),
    (["192.0.2.99", "--zone", "zen.test", "--zone", "all.test"], 3),
    (["192.0.2.10", "--zone", "zen.test", "--zone", "all.test"], 1),
    (["not an ip!", "--zone", "zen.test"], 2),
    (["192.0.2.10", "--format", "xml"], 2),
]


@pytest.mark.parametrize(("args", "code"), EXIT_CODES)
def test_exit_code(dns_servers: DnsServers, args: list[str], code: int) -> None:
    assert _run(dns_servers, *args)[0] == code


def test_json_lines(dns_servers: DnsServers) -> None:
    _, output = _run(
        dns_servers,
        "192.0.2.10",
        "192.0.2.99",
        "--zone",
        "zen.test",
        "--zone",
        "all.test",
        "--format",
        "json",
    )
    rows = [json.loads(line) for line in output.splitlines()]
    states = {(row["target"], row["zone"]): row["state"] for row in rows}
    listed = rows[0]

    assert states == {
        ("192.0.2.10", "zen.test"): "listed",
        ("192.0.2.99", "zen.test"): "not_listed",
        ("192.0.2.10", "all.test"): "zone_unhealthy",
        ("192.0.2.99", "all.test"): "zone_unhealthy",
    }
    assert [code["code"] for code in listed["codes"]] == ["127.0.0.2", "127.0.0.4"]
    assert listed["reason"].startswith("Listed in SBL")


def test_unknown_zone_probed(dns_servers: DnsServers) -> None:
    code, output = _run(
        dns_servers, "192.0.2.10", "--zone", "nowhere.test", "--format", "json"
    )
    (row,) = [json.loads(line) for line in output.splitlines()]
    assert code == 3
    assert row["state"] == "dns_error"


def test_table_output(dns_servers: DnsServers) -> None:
    _, output = _run(dns_servers, "192.0.2.10", "--zone", "zen.test")
    assert "listed" in output
    assert "127.0.0.4 XBL (critical)" in output
    assert "delisting for zen.test: https://zen.test/remove" in output


def test_table_no_delisting_when_clean(dns_servers: DnsServers) -> None:
    _, output = _run(dns_servers, "192.0.2.99", "--zone", "zen.test")
    assert "not_listed" in output
    assert "delisting" not in output


def test_table_delisting_page_literal(
    dns_servers: DnsServers, tmp_path: pathlib.Path
) -> None:
    """A delisting page from an edited catalogue reaches the terminal as text.

    It also stays on one line however long, so it can be copied whole.
    """
    path = "x" * 300
    hostile = (
        rf'"https://zen.test/\e[2J\e]0;owned\a[bold]remove[/bold] :warning:{path}"'
    )
    catalogue = tmp_path / "zones.yaml"
    catalogue.write_text(
        ZONES_FILE.read_text().replace("https://zen.test/remove", hostile, 1)
    )
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "check",
            "ip",
            "192.0.2.10",
            "--zone",
            "zen.test",
            "--nameserver",
            dns_servers.unbound.nameserver,
        ],
        env={"WATCHDOG_BLOCKLISTS__ZONES_FILE": str(catalogue), "COLUMNS": "200"},
    )

    assert "\x1b" not in result.stdout
    assert "\a" not in result.stdout
    assert f"[bold]remove[/bold] :warning:{path}\n" in result.stdout
