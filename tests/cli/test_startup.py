"""Start-up cost of the command line: light commands skip the heavy modules."""

from __future__ import annotations

import json
import subprocess
import sys
from enum import StrEnum

import pytest

from watchdog.checks.auth import Status
from watchdog.checks.dnsbl.answer import State
from watchdog.cli import check_domain, check_ip
from watchdog.cli.choices import KindChoice, ReasonChoice, TransferFormat
from watchdog.config import MailboxKind
from watchdog.policy import SuppressionReason
from watchdog.store.transfer import FileFormat

# Packages that take most of the import time of the daemon. None of them is
# needed to print help or the sample configuration.
HEAVY_MODULES = [
    "aioimaplib",
    "alembic",
    "apscheduler",
    "dns",
    "flufl",
    "prometheus_client",
    "psycopg",
    "pydantic_settings",
    "sqlalchemy",
    "sqlmodel",
    "structlog",
    "watchdog.classify",
    "watchdog.config",
    "watchdog.store",
]

# Runs the command line in a fresh interpreter and prints the imported
# module names, because this test process has imported everything already.
IMPORTED_MODULES_SCRIPT = """
import json, sys
from typer.testing import CliRunner
from watchdog.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
assert result.exit_code == 0, result.output
print(json.dumps(sorted(sys.modules)))
"""

LIGHT_COMMANDS = [
    ["--help"],
    ["config", "example"],
    ["config", "check", "--help"],
    ["check", "ip", "--help"],
    ["check", "domain", "--help"],
    ["scan", "--help"],
    ["scan-log", "--help"],
    ["run", "--help"],
    ["suppress", "list", "--help"],
    ["suppress", "import", "--help"],
    ["db", "upgrade", "--help"],
]


def imported_modules(args: list[str]) -> set[str]:
    completed = subprocess.run(
        [sys.executable, "-c", IMPORTED_MODULES_SCRIPT, *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return set(json.loads(completed.stdout))


@pytest.mark.parametrize("args", LIGHT_COMMANDS, ids=" ".join)
def test_light_command_skips_heavy_modules(args: list[str]) -> None:
    modules = imported_modules(args)
    for heavy in HEAVY_MODULES:
        loaded = sorted(m for m in modules if m == heavy or m.startswith(heavy + "."))
        assert loaded == [], f"{' '.join(args)} imported {heavy}"


@pytest.mark.parametrize(
    ("choice", "original"),
    [
        (KindChoice, MailboxKind),
        (ReasonChoice, SuppressionReason),
    ],
)
def test_choice_values_match_original(
    choice: type[StrEnum], original: type[StrEnum]
) -> None:
    assert [member.value for member in choice] == [member.value for member in original]


def test_transfer_format_names_every_file_format() -> None:
    """Every --format choice of suppress import|export names a FileFormat."""
    named = {FileFormat(member.file_format) for member in TransferFormat}
    assert named == set(FileFormat)
    assert TransferFormat.JSON.file_format == FileFormat.JSONL


def test_check_table_styles_cover_every_state() -> None:
    assert set(check_ip._STATE_STYLES) == {state.value for state in State}
    assert set(check_domain._STATUS_STYLES) == {status.value for status in Status}
