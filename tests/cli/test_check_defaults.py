"""check ip and check domain without arguments: the targets of sending.*.

Both commands query a private rbldnsd on 127.0.0.1 that serves one
blocklist zone, zen.test.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from click.testing import Result
from typer.testing import CliRunner

from tests.servers.dns import Rbldnsd, RblZone, run_rbldnsd
from watchdog.cli import app

pytestmark = pytest.mark.dns

SOA = (
    "$SOA 600 ns.zen.test hostmaster.example.com 0 1h 5m 1d 120\n"
    "$NS 60 ns.zen.test\n$TTL 60\n"
)
# 127.0.0.2 is the RFC 5782 test point every IPv4 list must list.
ZEN = SOA + ":2:Listed in SBL: $\n127.0.0.2\n192.0.2.10\n"

CATALOGUE = """\
zones:
  - zone: zen.test
    kind: ip4
    lists: the listed addresses in the test data
    codes:
      127.0.0.2: {meaning: SBL, severity: critical}
"""


@pytest.fixture(scope="module")
def rbldnsd() -> Iterator[Rbldnsd]:
    with run_rbldnsd(
        [RblZone("zen.test", "ip4set", "zen.ip4set")], {"zen.ip4set": ZEN}
    ) as server:
        yield server


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


def write_config(tmp_path: Path, sending: str) -> Path:
    catalogue = tmp_path / "zones.yaml"
    catalogue.write_text(CATALOGUE)
    path = tmp_path / "watchdog.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path}/watchdog.db"\n\n'
        f'[blocklists]\nzones_file = "{catalogue}"\n\n'
        f"[sending]\n{sending}\n"
    )
    return path


def invoke(rbldnsd: Rbldnsd, config: Path, *args: str) -> Result:
    nameserver = f"127.0.0.1:{rbldnsd.port}"
    return CliRunner().invoke(
        app,
        [*args, "--nameserver", nameserver, "--config", str(config)],
        env={"COLUMNS": "200", "WATCHDOG_CONFIG": None},
    )


def json_rows(result: Result) -> list[dict[str, object]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_check_ip_defaults_to_sending_ips(rbldnsd: Rbldnsd, tmp_path: Path) -> None:
    config = write_config(tmp_path, 'ips = ["127.0.0.2", "192.0.2.99"]')

    result = invoke(rbldnsd, config, "check", "ip", "--format", "json")

    assert result.exit_code == 1, result.output
    states = {row["target"]: row["state"] for row in json_rows(result)}
    assert states == {"127.0.0.2": "listed", "192.0.2.99": "not_listed"}


def test_check_ip_argument_replaces_sending_ips(
    rbldnsd: Rbldnsd, tmp_path: Path
) -> None:
    config = write_config(tmp_path, 'ips = ["127.0.0.2"]')

    result = invoke(rbldnsd, config, "check", "ip", "192.0.2.99", "--format", "json")

    assert result.exit_code == 0, result.output
    assert [row["target"] for row in json_rows(result)] == ["192.0.2.99"]


def test_check_ip_without_targets(rbldnsd: Rbldnsd, tmp_path: Path) -> None:
    config = write_config(tmp_path, "ips = []")

    result = invoke(rbldnsd, config, "check", "ip")

    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "no IP to check" in message
    assert "mail-watchdog check ip 192.0.2.25" in message
    assert f"set sending.ips in {config}" in message


def test_check_ip_without_config_names_config_option(
    rbldnsd: Rbldnsd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    nameserver = f"127.0.0.1:{rbldnsd.port}"

    result = CliRunner().invoke(
        app,
        ["check", "ip", "--nameserver", nameserver],
        env={"WATCHDOG_CONFIG": None},
    )

    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "set sending.ips in a configuration file and pass it with --config" in (
        message
    )


def test_check_ip_names_unlisted_target_kind(rbldnsd: Rbldnsd, tmp_path: Path) -> None:
    config = write_config(tmp_path, "")

    result = invoke(rbldnsd, config, "check", "ip", "::1")

    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "no selected blocklist zone lists IPv6 addresses" in message
    assert "--zone" in message


def test_check_ip_explains_failed_lookups(rbldnsd: Rbldnsd, tmp_path: Path) -> None:
    config = write_config(tmp_path, "")

    # rbldnsd returns REFUSED for a zone it does not serve.
    result = invoke(
        rbldnsd, config, "check", "ip", "192.0.2.99", "--zone", "absent.test"
    )

    assert result.exit_code == 3, result.output
    message = " ".join(result.stderr.split())
    assert "1 of 1 lookups failed (absent.test)" in message
    assert "--nameserver" in message


def test_check_domain_defaults_to_sending_domains(
    rbldnsd: Rbldnsd, tmp_path: Path
) -> None:
    config = write_config(tmp_path, 'domains = ["one.test", "two.test"]\nips = []')

    # rbldnsd refuses these names, so every DNS check ends as lookup_failed.
    result = invoke(rbldnsd, config, "check", "domain", "--format", "json")

    assert result.exit_code == 3, result.output
    domains = {row["domain"] for row in json_rows(result)}
    assert domains == {"one.test", "two.test"}


def test_check_domain_without_targets(rbldnsd: Rbldnsd, tmp_path: Path) -> None:
    config = write_config(tmp_path, "domains = []")

    result = invoke(rbldnsd, config, "check", "domain")

    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "no domain to audit" in message
    assert "mail-watchdog check domain example.com" in message
    assert f"set sending.domains in {config}" in message
