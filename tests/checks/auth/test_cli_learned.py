"""``check domain`` reads what the daemon learned from bounces, when it can."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.servers.dns import Unbound
from watchdog.checks.auth.learned import Learned, LearnedKind
from watchdog.cli import app
from watchdog.store import Store
from watchdog.store.learned import record_learned

pytestmark = pytest.mark.dns


@pytest.fixture(autouse=True)
def _private_mx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_CONFIG", raising=False)
    monkeypatch.setenv("WATCHDOG_AUDIT__ALLOW_PRIVATE_MX", "true")


def _run(
    unbound: Unbound, database: Path, monkeypatch: pytest.MonkeyPatch, domain: str
) -> tuple[int, list[dict[str, str]], str]:
    monkeypatch.setenv("WATCHDOG_DATABASE__URL", f"sqlite:///{database}")
    command = [
        "check",
        "domain",
        "--nameserver",
        unbound.nameserver,
        "--format",
        "json",
        domain,
    ]
    result = CliRunner().invoke(app, command)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    return result.exit_code, rows, result.stderr


def test_learned_selector_and_alignment(
    unbound: Unbound, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A selector and identifiers in the database join the audit."""
    database = tmp_path / "w.db"
    store = Store(f"sqlite:///{database}")
    store.upgrade()
    record_learned(
        store,
        {
            Learned(LearnedKind.DKIM_SELECTOR, "strict.test", "learned1"),
            Learned(LearnedKind.DKIM_DOMAIN, "strict.test", "mail.strict.test"),
            Learned(LearnedKind.RETURN_PATH, "strict.test", "strict.test"),
        },
    )
    store.close()
    _code, rows, stderr = _run(unbound, database, monkeypatch, "strict.test")
    dkim = {row["subject"]: row for row in rows if row["check"] == "dkim"}
    assert dkim["learned1"]["status"] == "warning"
    alignment = {
        (row["reason"], row["subject"]) for row in rows if row["check"] == "alignment"
    }
    assert ("alignment_dkim_unaligned", "mail.strict.test") in alignment
    assert ("alignment_spf_ok", "strict.test") in alignment
    assert stderr == ""


def test_missing_database_ignored(
    unbound: Unbound, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a database file the audit runs and creates none."""
    database = tmp_path / "absent.db"
    code, rows, stderr = _run(unbound, database, monkeypatch, "clean.test")
    assert rows
    assert not database.exists()
    assert stderr == ""
    assert code in (0, 1)


def test_unmigrated_database_warns(
    unbound: Unbound, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database without the table gives a warning, not a failure."""
    database = tmp_path / "old.db"
    sqlite3.connect(database).close()
    code, rows, stderr = _run(unbound, database, monkeypatch, "clean.test")
    assert rows
    assert "warning: selectors and identifiers learned from bounces" in stderr
    assert code != 2
