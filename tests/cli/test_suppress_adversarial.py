"""``mail-watchdog suppress`` fed hostile files, options and database URLs."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.store.conftest import bounce
from watchdog.cli import app
from watchdog.config import Policy
from watchdog.pipeline import MessageRef, Outcome
from watchdog.store import Store, SuppressionReason
from watchdog.store import engine as store_engine

Invoke = Callable[..., Result]


@pytest.fixture
def run(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Run ``mail-watchdog ARGS --database URL``; return the result."""
    monkeypatch.delenv("WATCHDOG_CONFIG", raising=False)
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None) -> Result:
        return runner.invoke(app, [*args, "--database", database_url], input=stdin)

    return invoke


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections and never replies."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.close()


def _no_traceback(result: Result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )


def test_import_bom_header(run: Invoke, tmp_path: Path) -> None:
    """A CSV saved by Excel (BOM, CRLF) keeps its header and reasons."""
    source = tmp_path / "list.csv"
    source.write_bytes(b"\xef\xbb\xbfaddress,reason\r\na@example.com,complaint\r\n")
    result = run("suppress", "import", str(source))
    assert result.exit_code == 0, result.output
    listed = run("suppress", "list", "--format", "csv").output.splitlines()
    assert listed[1].startswith("a@example.com,complaint,")


def test_import_huge_line(run: Invoke, tmp_path: Path) -> None:
    """A line past the CSV field limit is rejected by number, no traceback."""
    source = tmp_path / "list.csv"
    source.write_text("x" * 300_000 + "@example.com\nb@example.com\n")
    result = run("suppress", "import", str(source))
    _no_traceback(result)
    assert result.exit_code == 1
    assert "line 1: unreadable CSV" in result.output
    assert "added 1," in result.output


def test_import_nul_bytes(run: Invoke, tmp_path: Path) -> None:
    """NUL bytes reject the address and are replaced in a note."""
    source = tmp_path / "list.csv"
    source.write_bytes(b"address,note\na\x00b@example.com,\nc@example.com,x\x00y\n")
    result = run("suppress", "import", str(source))
    _no_traceback(result)
    assert result.exit_code == 1
    assert "line 2: invalid address" in result.output
    assert "added 1," in result.output


def test_import_latin1(run: Invoke, tmp_path: Path) -> None:
    """A Latin-1 line is rejected with the fix, not stored with U+FFFD."""
    source = tmp_path / "list.csv"
    source.write_bytes(b"address\nj\xf6rg@example.com\nok@example.com\n")
    result = run("suppress", "import", str(source))
    assert result.exit_code == 1
    assert "line 2: invalid address" in result.output
    assert "save the file as UTF-8" in result.output
    assert "added 1," in result.output


def test_import_hostile_jsonl(run: Invoke) -> None:
    """Lone surrogates and NUL in a JSON note do not abort the import."""
    stdin = '{"address": "a@example.com", "note": "\\ud800\\u0000"}\n[1]\n'
    result = run("suppress", "import", "-", "--format", "jsonl", stdin=stdin)
    _no_traceback(result)
    assert "added 1," in result.output
    assert "line 2: expected a JSON object" in result.output


def test_import_wrong_columns(run: Invoke, tmp_path: Path) -> None:
    """A misspelt column rejects the file and imports nothing."""
    source = tmp_path / "list.csv"
    source.write_text("address,reasn\na@example.com,manual\n")
    result = run("suppress", "import", str(source))
    assert result.exit_code == 1
    assert "line 1: unknown column 'reasn'" in result.output
    assert "added 0," in result.output


def test_export_formula(run: Invoke) -> None:
    """CSV export escapes a cell that starts a spreadsheet formula."""
    run("suppress", "add", "=1+2@example.com")
    result = run("suppress", "export")
    assert result.exit_code == 0, result.output
    assert "\n'=1+2@example.com,manual," in result.output


def test_round_trip_exact(run: Invoke, database_url: str, tmp_path: Path) -> None:
    """Export, remove everything, import: the same entries come back."""
    store = Store(database_url)
    store.upgrade()
    expires = datetime.now(UTC) + timedelta(days=5)
    store.add_suppression(
        "-x@example.com",
        actor="t",
        reason=SuppressionReason.SOFT_BOUNCE,
        expires_at=expires,
    )
    store.add_suppression('"a b"@bücher.example', actor="t")
    before = store.list_suppressions()
    target = tmp_path / "out.csv"
    assert run("suppress", "export", "-o", str(target)).exit_code == 0
    for entry in before:
        store.remove_suppression(entry.address, actor="t", note="round trip")
    imported = run("suppress", "import", str(target))
    after = store.list_suppressions()
    store.close()
    assert imported.exit_code == 0, imported.output
    keys = [(e.address, e.reason, e.created_at, e.expires_at) for e in after]
    assert keys == [(e.address, e.reason, e.created_at, e.expires_at) for e in before]


def test_export_unwritable(run: Invoke, tmp_path: Path) -> None:
    """export -o into a missing folder exits 1 naming the file."""
    target = tmp_path / "missing" / "out.csv"
    result = run("suppress", "export", "-o", str(target))
    _no_traceback(result)
    assert result.exit_code == 1
    assert "cannot write" in result.output


def test_add_invalid_writes_nothing(run: Invoke) -> None:
    """add with one invalid address among several adds none of them."""
    result = run("suppress", "add", "a@example.com", "no-at-sign")
    assert result.exit_code == 2
    assert run("suppress", "show", "a@example.com").exit_code == 1


def test_remove_invalid_removes_nothing(run: Invoke) -> None:
    """remove with one invalid address among several removes none of them."""
    run("suppress", "add", "a@example.com")
    result = run("suppress", "remove", "a@example.com", "x@", "--note", "ok")
    assert result.exit_code == 2
    assert run("suppress", "show", "a@example.com").exit_code == 0


def test_remove_empty_note(run: Invoke) -> None:
    """remove rejects a blank --note."""
    run("suppress", "add", "a@example.com")
    result = run("suppress", "remove", "a@example.com", "--note", " ")
    assert result.exit_code == 2
    assert "--note is empty" in result.output


def _record_hard_bounces(database_url: str, count: int) -> None:
    """Record ``count`` verified 5.1.1 bounces of a@example.com."""
    store = Store(database_url)
    store.upgrade()
    for uid in range(1, count + 1):
        store.record(
            MessageRef("bounces", "INBOX", uidvalidity=1, uid=uid),
            sha256=hashlib.sha256(b"bounce %d" % uid).hexdigest(),
            size=10,
            verdict=bounce("a@example.com", status="5.1.1"),
            outcome=Outcome.PROCESSED,
            verified=True,
            policy=Policy(),
        )
    store.close()


def test_show_events(run: Invoke, database_url: str) -> None:
    """show lists the events that put the address on the list."""
    _record_hard_bounces(database_url, 1)
    result = run("suppress", "show", "a@EXAMPLE.COM")
    assert result.exit_code == 0, result.output
    assert "5.1.1" in result.output
    assert "hard_bounce" in result.output


def test_url_bad_port() -> None:
    """A URL that does not parse exits 1 without the password or a traceback."""
    url = "postgresql://u:hunter2@[::1/x"
    result = CliRunner().invoke(app, ["suppress", "list", "--database", url])
    _no_traceback(result)
    assert result.exit_code == 1
    assert "invalid database URL" in result.output
    assert "hunter2" not in result.output


def test_url_silent_server(silent_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that never replies fails after the connect timeout."""
    monkeypatch.setattr(store_engine, "CONNECT_TIMEOUT_SECONDS", 2)
    url = f"postgresql://u@127.0.0.1:{silent_port}/x"
    started = time.monotonic()
    result = CliRunner().invoke(app, ["suppress", "list", "--database", url])
    elapsed = time.monotonic() - started
    _no_traceback(result)
    assert result.exit_code == 1
    assert elapsed < 8


@pytest.mark.parametrize("command", [["list"], ["export"]])
def test_read_command_missing_sqlite_file(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "typo.db"
    result = CliRunner().invoke(
        app, ["suppress", *command, "--database", f"sqlite:///{path}"]
    )
    assert result.exit_code == 1
    assert "not found" in result.output
    assert not path.exists()


def test_show_notes_older_events(run: Invoke, database_url: str) -> None:
    """show names the option that shows the older events it left out."""
    _record_hard_bounces(database_url, 3)

    some = run("suppress", "show", "a@example.com", "--events", "2")
    every = run("suppress", "show", "a@example.com", "--events", "3")

    assert some.exit_code == 0, some.output
    assert "pass --events 4 to see more" in some.output
    assert every.exit_code == 0, every.output
    assert "left out" not in every.output


@pytest.mark.parametrize(
    "args",
    [
        ["show", "a@example.com", "--events", str(2**63 - 1)],
        ["list", "--limit", str(2**63)],
    ],
)
def test_huge_count_rejected(run: Invoke, args: list[str]) -> None:
    """A count past what the database takes as a LIMIT is a usage error."""
    run("suppress", "add", "a@example.com")

    result = run("suppress", *args)

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, OverflowError)


def test_json_export_imports_back(run: Invoke, tmp_path: Path) -> None:
    """A file written by export --format json imports without --format."""
    run("suppress", "add", "a@example.com", "--note", "kept")
    exported = tmp_path / "list.json"
    run("suppress", "export", "--format", "json", "-o", str(exported))
    run("suppress", "remove", "a@example.com", "--note", "test")

    result = run("suppress", "import", str(exported))

    assert result.exit_code == 0, result.output
    assert "added 1," in result.output
