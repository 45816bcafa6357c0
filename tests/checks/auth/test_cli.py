"""``mail-watchdog check domain`` against nsd through unbound."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.checks.auth.zones import GOOD_IP
from tests.servers.dns import Unbound
from watchdog.cli import app

pytestmark = pytest.mark.dns


def _run(unbound: Unbound, *args: str) -> tuple[int, str]:
    runner = CliRunner()
    command = ["check", "domain", "--nameserver", unbound.nameserver, *args]
    result = runner.invoke(app, command)
    return result.exit_code, result.stdout


@pytest.fixture(autouse=True)
def _private_mx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_CONFIG", raising=False)
    monkeypatch.setenv("WATCHDOG_AUDIT__ALLOW_PRIVATE_MX", "true")


def test_json_lines(unbound: Unbound) -> None:
    """JSON output has one object per finding with the documented keys."""
    code, output = _run(unbound, "clean.test", "--ip", GOOD_IP, "--format", "json")
    rows = [json.loads(line) for line in output.splitlines()]
    assert rows
    assert {"domain", "check", "status", "detail"} <= set(rows[0])
    assert {row["check"] for row in rows} >= {"spf", "dkim", "dmarc", "mx", "ptr"}
    assert code == 0


def test_error_exit(unbound: Unbound) -> None:
    """An error finding exits 1."""
    code, _output = _run(unbound, "nospf.test", "--format", "json")
    assert code == 1


def test_lookup_failed_exit(unbound: Unbound) -> None:
    """Only failed lookups exit 3."""
    code, output = _run(unbound, "x.dead.test", "--format", "json")
    statuses = {json.loads(line)["status"] for line in output.splitlines()}
    assert "lookup_failed" in statuses
    assert code == 3


def test_bad_ip_usage(unbound: Unbound) -> None:
    """An invalid --ip is a usage error."""
    code, _output = _run(unbound, "clean.test", "--ip", "not-an-ip")
    assert code == 2


def test_table_output(unbound: Unbound) -> None:
    """The default table names the domain and the checks."""
    code, output = _run(unbound, "clean.test", "--selector", "nosuch")
    assert "clean.test" in output
    assert "dmarc" in output
    assert code == 1
