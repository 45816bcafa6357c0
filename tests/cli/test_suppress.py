"""``mail-watchdog suppress`` and ``db`` against a real database."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from watchdog.cli import app
from watchdog.store import Store, SuppressionReason

Invoke = Callable[..., Result]


@pytest.fixture
def run(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Run ``mail-watchdog ARGS --database URL``; return the result."""
    monkeypatch.delenv("WATCHDOG_CONFIG", raising=False)
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None) -> Result:
        return runner.invoke(app, [*args, "--database", database_url], input=stdin)

    return invoke


def test_db_upgrade(run: Invoke, database_url: str) -> None:
    """db upgrade creates the schema."""
    result = run("db", "upgrade")
    assert result.exit_code == 0, result.output
    store = Store(database_url)
    assert store.list_suppressions() == []
    store.close()


def test_add_then_show(run: Invoke) -> None:
    """add records actor and note; show prints the entry and its history."""
    added = run(
        "suppress", "add", "a@example.com", "--note", "asked", "--actor", "alice"
    )
    assert added.exit_code == 0, added.output
    output = run("suppress", "show", "a@example.com")
    assert output.exit_code == 0, output.output
    assert "manual" in output.output
    assert "alice" in output.output
    assert "asked" in output.output


def test_show_missing(run: Invoke) -> None:
    """show exits 1 for an address not on the list."""
    result = run("suppress", "show", "nobody@example.com")
    assert result.exit_code == 1
    assert "not suppressed" in result.output


def test_add_invalid(run: Invoke) -> None:
    """add rejects an invalid address with exit status 2."""
    result = run("suppress", "add", "no-at-sign")
    assert result.exit_code == 2
    assert "invalid address 'no-at-sign'" in result.output


def test_remove_needs_note(run: Invoke) -> None:
    """remove refuses to run without --note."""
    run("suppress", "add", "a@example.com")
    result = run("suppress", "remove", "a@example.com")
    assert result.exit_code == 2


def test_remove(run: Invoke) -> None:
    """remove deletes the entry and exits 1 if any address was absent."""
    run("suppress", "add", "a@example.com")
    result = run("suppress", "remove", "a@example.com", "b@example.com", "--note", "ok")
    assert result.exit_code == 1
    assert "a@example.com: removed" in result.output
    assert "b@example.com: not suppressed" in result.output
    assert run("suppress", "show", "a@example.com").exit_code == 1


def test_list_formats(run: Invoke) -> None:
    """list prints a table, CSV or JSON Lines, filtered by reason."""
    run("suppress", "add", "a@example.com")
    run("suppress", "add", "b@example.com", "--reason", "complaint")
    table = run("suppress", "list")
    assert "a@example.com" in table.output
    csv_out = run("suppress", "list", "--format", "csv", "--reason", "complaint")
    assert csv_out.output.splitlines()[1].startswith("b@example.com,complaint,")
    lines = run(
        "suppress", "list", "--format", "jsonl", "--limit", "1"
    ).output.splitlines()
    assert [json.loads(line)["address"] for line in lines] == ["a@example.com"]


def test_list_bad_since(run: Invoke) -> None:
    """list rejects a --since that is no date."""
    result = run("suppress", "list", "--since", "last week")
    assert result.exit_code == 2
    assert "invalid --since 'last week'" in result.output


def test_import_reports_lines(run: Invoke, tmp_path: Path) -> None:
    """import imports valid rows and lists rejected ones by line number."""
    source = tmp_path / "list.csv"
    source.write_text("address,reason,created_at,note\na@example.com,,,\nbad,,,\n")
    result = run("suppress", "import", str(source))
    assert result.exit_code == 1
    assert "line 3: invalid address 'bad'" in result.output
    assert "added 1, updated 0, unchanged 0, rejected 1" in result.output


def test_import_stdin_jsonl(run: Invoke) -> None:
    """import - reads JSON Lines from stdin."""
    stdin = '{"address": "a@example.com", "reason": "complaint"}\n'
    result = run("suppress", "import", "-", "--format", "jsonl", stdin=stdin)
    assert result.exit_code == 0, result.output
    assert "added 1" in result.output


def test_export_file(run: Invoke, tmp_path: Path, database_url: str) -> None:
    """export -o writes every entry, which imports back unchanged."""
    run("suppress", "add", "a@example.com", "b@example.com")
    target = tmp_path / "out.jsonl"
    result = run("suppress", "export", "--format", "jsonl", "-o", str(target))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["reason"] for r in rows] == [SuppressionReason.MANUAL] * 2
    again = run("suppress", "import", str(target))
    assert "unchanged 2" in again.output


def test_bad_database(tmp_path: Path) -> None:
    """A database that cannot be opened exits 1 with the error."""
    url = f"sqlite:///{tmp_path / 'missing' / 'w.db'}"
    result = CliRunner().invoke(app, ["suppress", "list", "--database", url])
    assert result.exit_code == 1
    assert "error:" in result.output


@pytest.mark.parametrize("command", ["list", "export"])
def test_json_means_json_lines(run: Invoke, command: str) -> None:
    """--format json prints JSON Lines, as check and classify do."""
    run("suppress", "add", "a@example.com", "b@example.com")
    result = run("suppress", command, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["address"] for row in rows] == ["a@example.com", "b@example.com"]


def test_import_json_stdin(run: Invoke) -> None:
    stdin = '{"address": "a@example.com", "reason": "complaint"}\n'
    result = run("suppress", "import", "-", "--format", "json", stdin=stdin)
    assert result.exit_code == 0, result.output
    assert "added 1" in result.output
