"""--help of every command: metavars instead of Python types, and 80 columns."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from watchdog.cli import app

runner = CliRunner()

# A type label as Typer 0.29 prints it: <bool>, <str>, <path>, <list[str]>,
# <int range>. Choices (<csv|jsonl>) are caught as well, because their
# options now name a metavar and list the choices in the help text.
TYPE_LABEL = re.compile(r"<[a-z_]+(\[[^\]]*\]| range|\|[a-z_|]+)?>")


def command_paths() -> list[list[str]]:
    """Return the words of every command and group, the root included."""
    paths: list[list[str]] = []

    def walk(command: object, words: list[str]) -> None:
        paths.append(words)
        for name, child in sorted(getattr(command, "commands", {}).items()):
            walk(child, [*words, name])

    walk(typer.main.get_command(app), [])
    return paths


COMMAND_PATHS = command_paths()


def render_help(words: list[str]) -> str:
    result = runner.invoke(app, [*words, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_command_paths_cover_every_command() -> None:
    assert ["suppress", "list"] in COMMAND_PATHS
    assert ["check", "ip"] in COMMAND_PATHS
    assert ["config", "example"] in COMMAND_PATHS
    assert len(COMMAND_PATHS) >= 19


@pytest.mark.parametrize("words", COMMAND_PATHS, ids=" ".join)
def test_help_has_no_type_labels(words: list[str]) -> None:
    output = render_help(words)
    labels = [match.group(0) for match in TYPE_LABEL.finditer(output)]
    assert labels == []


@pytest.mark.parametrize("words", COMMAND_PATHS, ids=" ".join)
def test_help_fits_80_columns(words: list[str]) -> None:
    for line in render_help(words).splitlines():
        assert len(line) <= 80, f"line wider than 80 columns: {line!r}"


@pytest.mark.parametrize("words", COMMAND_PATHS, ids=" ".join)
def test_help_shows_no_rst_markup(words: list[str]) -> None:
    assert "``" not in render_help(words)


def test_reason_help_keeps_each_reason_whole() -> None:
    output = render_help(["suppress", "list"])
    text = " ".join(output.replace("│", " ").split())

    assert "--reason REASON" in text
    for reason in ["hard_bounce", "soft_bounce", "complaint", "manual", "import"]:
        assert reason in text, f"{reason} is split or missing in --reason help"


def test_flags_show_no_value() -> None:
    output = render_help([])
    help_row = next(line for line in output.splitlines() if "--help" in line)

    assert "Show this message and exit." in help_row
    assert "bool" not in output


def test_variadic_arguments_show_metavar() -> None:
    output = render_help(["scan"])

    assert "Usage: mail-watchdog scan [OPTIONS] {PATH}..." in output
    assert "list[Path]" not in output
