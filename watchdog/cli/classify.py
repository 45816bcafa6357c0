"""``mail-watchdog classify``: classify files without a database."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Column, Table

from watchdog.cli.console import address_column, literal_text, output_console
from watchdog.cli.db import ConfigOption
from watchdog.errors import ConfigError, RulesError, SourceError
from watchdog.rules_path import export_rules_dir

if TYPE_CHECKING:
    from watchdog.classify import Verdict
    from watchdog.config import Limits

_RECIPIENT_FIELDS = (
    "address",
    "original_address",
    "reason",
    "hard",
    "category",
    "status",
    "reply_code",
    "diagnostic",
)


class OutputFormat(StrEnum):
    """Output format of ``classify``."""

    JSON = "json"
    TABLE = "table"


def classify_command(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="PATH",
            help="Files, folders of .eml files, Maildirs or mbox files.",
            show_default=False,
        ),
    ],
    output: Annotated[
        OutputFormat,
        typer.Option(
            "--format",
            "-f",
            metavar="FORMAT",
            help="table prints a summary; json prints JSON Lines, one object per "
            "message.",
        ),
    ] = OutputFormat.TABLE,
    config: ConfigOption = None,
) -> None:
    """Classify messages and print one verdict per message.

    Only the limits and rules_dir settings apply.
    """
    from watchdog.config import load_settings  # noqa: PLC0415

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    # The classifier is imported here so that --help starts fast.
    from watchdog import log as logging_setup  # noqa: PLC0415
    from watchdog.classify.rules import default_rules  # noqa: PLC0415

    # Besides the format, this sets flufl.bounce's logger to CRITICAL,
    # because it logs a traceback for each message its detectors fail on.
    logging_setup.configure("warning", settings.log.format)
    limits = settings.limits
    export_rules_dir(settings.rules_dir)
    try:
        default_rules()
    except RulesError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    rows = _verdicts(paths, limits)
    try:
        if output is OutputFormat.JSON:
            for row in rows:
                sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
                sys.stdout.flush()
        else:
            _print_table(rows)
    except SourceError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc


def _verdicts(paths: list[Path], limits: Limits) -> Iterator[dict[str, Any]]:
    """Classify each message under ``paths`` as it is read."""
    from watchdog.classify import classify  # noqa: PLC0415
    from watchdog.sources.local import iter_messages  # noqa: PLC0415

    for path in paths:
        for message in iter_messages(path, max_bytes=limits.max_message_bytes):
            if not message.raw:
                yield _oversized(message.path, message.key)
                continue
            verdict = classify(message.raw, limits)
            yield verdict_row(_display_path(message.path, message.key), verdict)


def _display_path(path: Path, key: str) -> str:
    """Name a message: its file, or ``mbox-file:key`` inside an mbox."""
    if path.is_file() and path.name != key and not key.endswith(path.name):
        return f"{path}:{key}"
    return str(path)


def verdict_row(path: str, verdict: Verdict) -> dict[str, Any]:
    """Return the JSON object printed for one message."""
    recipients = [
        {name: _plain(getattr(r, name)) for name in _RECIPIENT_FIELDS}
        for r in verdict.recipients
    ]
    return {
        "path": path,
        "kind": str(verdict.kind),
        "detector": verdict.detector,
        "recipients": recipients,
    }


def _oversized(path: Path, key: str) -> dict[str, Any]:
    return {
        "path": _display_path(path, key),
        "kind": "unknown",
        "detector": "limits",
        "recipients": [],
    }


def _plain(value: object) -> object:
    return str(value) if isinstance(value, StrEnum) else value


def _print_table(rows: Iterator[dict[str, Any]]) -> None:
    table = Table(
        Column("path", overflow="fold"),
        "kind",
        "detector",
        address_column("recipient"),
        "reason",
        "hard",
        "status",
    )
    for row in rows:
        recipients = row["recipients"] or [{}]
        for recipient in recipients:
            # Addresses and status codes come from the message, so they are
            # printed as literal text, never as Rich markup or escapes.
            table.add_row(
                literal_text(row["path"]),
                row["kind"],
                row["detector"],
                literal_text(recipient.get("address") or ""),
                recipient.get("reason") or "",
                "yes" if recipient.get("hard") else "",
                literal_text(recipient.get("status") or ""),
            )
    output_console().print(table)
