"""``mail-watchdog scan-log``: count the delivery attempts in Postfix log files.

It parses and counts the way the daemon's ``[mta_log]`` source does, but
reads whole files (gzip-compressed ones too), stores nothing and needs no
database. Files are read in the order given, so name rotated logs oldest
first: the expiry of a message counts under the providers of the
recipients whose deferrals were read before it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from watchdog.cli.console import OutputFormat, OutputFormatOption, output_console
from watchdog.cli.db import EXIT_ERROR, EXIT_USAGE, ConfigOption, fail
from watchdog.errors import ConfigError, RulesError, SourceError

if TYPE_CHECKING:
    from watchdog.sources.mta_log.tally import Counts


def scan_log_command(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="FILE",
            help="Postfix log files (mail.log, maillog_file, .gz rotations), "
            "oldest first.",
            show_default=False,
        ),
    ],
    output_format: OutputFormatOption = OutputFormat.TABLE,
    config: ConfigOption = None,
) -> None:
    """Count delivery attempts by status and provider in Postfix log files.

    Uses the mta_log settings (syslog_names, agents, ignore_relays) and the
    provider groups of rules_dir. Writes nothing. Exits 2 when a file is
    missing or a setting is invalid, 1 when a file cannot be read.
    """
    # Imported here so that --help does not load pydantic and the rules.
    from watchdog.config import load_settings  # noqa: PLC0415
    from watchdog.providers import default_provider_map  # noqa: PLC0415
    from watchdog.sources.mta_log.follow import read_lines  # noqa: PLC0415
    from watchdog.sources.mta_log.lines import LineKind, LineParser  # noqa: PLC0415
    from watchdog.sources.mta_log.tally import Pending, Tally  # noqa: PLC0415

    try:
        settings = load_settings(config)
        providers = default_provider_map(settings.rules_dir)
    except (ConfigError, RulesError) as exc:
        fail(str(exc), EXIT_USAGE)
    for path in paths:
        if not path.exists():
            fail(f"log file {str(path)!r} not found: check the path", EXIT_USAGE)
        if path.is_dir():
            fail(f"{str(path)!r} is a folder: name the log files in it", EXIT_USAGE)
        # A pipe is read too, for scan-log <(zcat mail.log.2.gz).
        if not path.is_file() and not path.is_fifo():
            msg = f"{str(path)!r} is not a regular file or a pipe: name a log file"
            fail(msg, EXIT_USAGE)

    options = settings.mta_log
    parser = LineParser.from_settings(options)
    tally = Tally(providers, Pending(max_recipients=options.max_pending_recipients))

    def on_line(line: bytes) -> None:
        tally.add(parser.parse(line))

    started = time.monotonic()
    too_long = 0
    for path in paths:
        try:
            too_long += read_lines(path, on_line, max_line_bytes=options.max_line_bytes)
        except SourceError as exc:
            fail(str(exc), EXIT_ERROR)
    counts = tally.take()
    if too_long:
        counts.lines[LineKind.TOO_LONG] += too_long
    seconds = time.monotonic() - started
    if output_format is OutputFormat.JSON:
        typer.echo(json.dumps(_as_json(counts, len(tally.pending), seconds)))
    else:
        _print_tables(counts, len(tally.pending), seconds)


def _as_json(counts: Counts, pending: int, seconds: float) -> dict[str, Any]:
    return {
        "attempts": [
            {"status": status.value, "provider": provider, "count": count}
            for (status, provider), count in sorted(counts.attempts.items())
        ],
        "deferrals": [
            {"provider": provider, "reason": reason, "count": count}
            for (provider, reason), count in sorted(counts.deferrals.items())
        ],
        "lines": {kind.value: count for kind, count in sorted(counts.lines.items())},
        "still_deferred_recipients": pending,
        "seconds": round(seconds, 3),
    }


def _print_tables(counts: Counts, pending: int, seconds: float) -> None:
    from watchdog.sources.mta_log.lines import Status  # noqa: PLC0415

    console = output_console()
    providers = sorted({provider for _, provider in counts.attempts})
    statuses = list(Status)
    table = Table(
        "provider",
        *(status.value for status in statuses),
        "delivered",
        title="Delivery attempts by provider",
    )
    for provider in providers:
        row = [counts.attempts.get((status, provider), 0) for status in statuses]
        table.add_row(provider, *(str(n) for n in row), _rate(row))
    if not providers:
        table.add_row("(none)", "0", "0", "0", "0", "")
    console.print(table)

    reasons = Table("provider", "reason", "deferrals", title="Deferrals by reason")
    for (provider, reason), count in sorted(counts.deferrals.items()):
        reasons.add_row(provider, reason, str(count))
    if not counts.deferrals:
        reasons.add_row("(none)", "", "0")
    console.print(reasons)

    lines = ", ".join(f"{kind.value} {n}" for kind, n in sorted(counts.lines.items()))
    console.print(f"\nlines: {lines or 'none'}")
    if pending:
        console.print(f"recipients still deferred at the end of the log: {pending}")
    console.print(f"read in {seconds:.1f} s")


def _rate(row: list[int]) -> str:
    """Return sent / (sent + bounced + expired), the DeliveryRateLow ratio."""
    sent, _, bounced, expired = row
    final = sent + bounced + expired
    return f"{sent / final:.1%}" if final else ""
