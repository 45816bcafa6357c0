"""Errors the command line prints: plain sentences that name the value."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from click.testing import Result
from typer.testing import CliRunner

from tests.servers.common import free_port
from watchdog.cli import app
from watchdog.cli.console import error_text

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "emails"
MAIN_SCRIPT = "from watchdog.cli import main; main()"
# A Python repr of an exception, such as ConnectionRefusedError(111, ...).
EXCEPTION_REPR = re.compile(r"\b\w*(Error|Exception)\(")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo the logging setup of classify and scan, whose stderr CliRunner closes."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"WATCHDOG_CONFIG": None})


def one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (OSError(98, "cannot listen on 127.0.0.1:9465: in use"), "cannot listen"),
        (ConnectionRefusedError(111, "Connection refused"), "Connection refused"),
        (
            FileNotFoundError(2, "No such file or directory", "/x.toml"),
            "No such file or directory: '/x.toml'",
        ),
        (ValueError(), "ValueError"),
        (ValueError("bad value"), "bad value"),
    ],
)
def test_error_text_drops_python_decorations(exc: BaseException, expected: str) -> None:
    text = error_text(exc)

    assert text.startswith(expected)
    assert "[Errno" not in text
    assert EXCEPTION_REPR.search(text) is None


def test_missing_sqlite_folder_is_named(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/absent/watchdog.db"

    for args in (
        ["suppress", "add", "a@example.com"],
        ["db", "upgrade"],
        ["scan", str(CORPUS / "arf")],
    ):
        result = invoke(*args, "--database", url)

        assert result.exit_code == 1, args
        message = one_line(result.stderr)
        assert f"folder '{tmp_path}/absent' of database file" in message, args
        assert "create the folder" in message, args
        assert "unable to open database file" not in message, args


def test_unreachable_database_is_named() -> None:
    # Nothing listens on a port that was free a moment ago.
    url = f"postgresql://watchdog@127.0.0.1:{free_port()}/watchdog"

    result = invoke("suppress", "list", "--database", url)

    assert result.exit_code == 1
    message = one_line(result.stderr)
    assert message.startswith(f"error: database {url}:")
    assert "check that the database server is running" in message
    assert EXCEPTION_REPR.search(message) is None


def test_config_check_names_mailbox_of_password_file(tmp_path: Path) -> None:
    config = tmp_path / "watchdog.toml"
    config.write_text(
        "[mailboxes.bounces]\n"
        'host = "imap.example.com"\n'
        'username = "bounces@example.com"\n'
        f'password_file = "{tmp_path}/absent"\n'
    )

    result = invoke("config", "check", "--config", str(config))

    assert result.exit_code == 2
    message = one_line(result.stderr)
    assert message.startswith("error: mailboxes.bounces: cannot read password file")
    assert f"'{tmp_path}/absent'" in message


def test_classify_hides_library_tracebacks(tmp_path: Path) -> None:
    # flufl.bounce logs a traceback when its Yale detector reads a message
    # without a From header. A fresh interpreter is needed because pytest
    # puts its own handler on the root logger.
    message = tmp_path / "plain.eml"
    message.write_text("Subject: hello\n\nno bounce here\n")

    completed = subprocess.run(
        [sys.executable, "-c", MAIN_SCRIPT, "classify", str(message)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert "Traceback" not in completed.stderr
    assert "Exception in detector" not in completed.stderr
    assert "not_bounce" in completed.stdout


def test_classify_prints_markup_literally(tmp_path: Path) -> None:
    message = tmp_path / "[red]x.eml"
    message.write_text("Subject: hello\n\nno bounce here\n")

    result = invoke("classify", str(message))

    assert result.exit_code == 0, result.output
    assert "[red]x.eml" in result.stdout


def test_suppress_list_shows_never_for_no_expiry(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/watchdog.db"
    added = invoke("suppress", "add", "a@example.com", "--database", url)
    assert added.exit_code == 0, added.output

    result = invoke("suppress", "list", "--database", url)

    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if "a@example.com" in line)
    assert "never" in row
