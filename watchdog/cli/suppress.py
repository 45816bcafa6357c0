"""``mail-watchdog suppress``: read and edit the suppression list.

Every change is written to the audit history with its actor (``--actor``,
default ``$USER``) and note. Import and export stream, so lists of a
million addresses need no more memory than a few thousand.
"""

from __future__ import annotations

import contextlib
import getpass
import itertools
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer
from rich.markup import escape
from rich.table import Table

from watchdog.cli.choices import ReasonChoice, TransferFormat
from watchdog.cli.console import address_column, output_console, time_column
from watchdog.cli.db import EXIT_USAGE, ConfigOption, DatabaseOption, fail, open_store
from watchdog.cli.help_format import Command, Group
from watchdog.errors import WatchdogError

if TYPE_CHECKING:
    from watchdog.store import ImportRow, Store, Suppression
    from watchdog.store.transfer import Rejected

EXIT_NOT_FOUND = 1
EXIT_REJECTED_ROWS = 1
# Rejected import rows printed one by one; the rest are only counted.
MAX_REPORTED_REJECTIONS = 100
# Largest --limit and --events. Both become an SQL LIMIT, which is a signed
# 64-bit integer in SQLite and PostgreSQL, and show requests one row more.
MAX_COUNT = 2**31 - 1

app = typer.Typer(
    help="Read and edit the suppression list.", no_args_is_help=True, cls=Group
)
out = output_console()
err = output_console(stderr=True)


class ListFormat(StrEnum):
    """Output format of ``suppress list``; ``json`` is another name for ``jsonl``."""

    TABLE = "table"
    CSV = "csv"
    JSONL = "jsonl"
    JSON = "json"


ActorOption = Annotated[
    str | None,
    typer.Option(
        "--actor",
        metavar="NAME",
        help="Name recorded in the audit history; default $USER.",
    ),
]


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _since(text: str | None) -> datetime | None:
    from watchdog.store.transfer import parse_time  # noqa: PLC0415

    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError:
        fail(f"invalid --since {text!r}: use a date such as 2026-01-31", EXIT_USAGE)


def _check_addresses(addresses: Iterable[str]) -> None:
    """Exit with status 2 on the first invalid address, before anything is written."""
    from watchdog.store import InvalidAddress  # noqa: PLC0415
    from watchdog.store.listing import require_address  # noqa: PLC0415

    for address in addresses:
        try:
            require_address(address)
        except InvalidAddress as exc:
            fail(str(exc), EXIT_USAGE)


@contextlib.contextmanager
def _opened(
    database: str | None, config: Path | None, *, create: bool = True
) -> Iterator[Store]:
    from watchdog.store import InvalidAddress  # noqa: PLC0415

    store = open_store(database, config, create=create)
    try:
        yield store
    except InvalidAddress as exc:
        fail(str(exc), EXIT_USAGE)
    except WatchdogError as exc:
        fail(str(exc))
    finally:
        store.close()


@app.command("list", cls=Command)
def list_command(
    *,
    reason: Annotated[
        ReasonChoice | None,
        typer.Option(
            "--reason",
            metavar="REASON",
            help="Only entries with this reason: hard_bounce, soft_bounce, "
            "complaint, manual or import.",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", metavar="DATE", help="Only entries updated since (ISO 8601)."
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            "--limit",
            min=0,
            max=MAX_COUNT,
            metavar="N",
            help="Print at most N entries; 0 prints all.",
        ),
    ] = 100,
    output_format: Annotated[
        ListFormat,
        typer.Option(
            "--format", metavar="FORMAT", help="table, csv or jsonl (or json)."
        ),
    ] = ListFormat.TABLE,
    database: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """List entries ordered by address."""
    from watchdog.policy import SuppressionReason  # noqa: PLC0415
    from watchdog.store.transfer import FileFormat, write_rows  # noqa: PLC0415

    updated_since = _since(since)
    with _opened(database, config, create=False) as store:
        entries: Iterable[Suppression] = store.iter_suppressions(
            reason=None if reason is None else SuppressionReason(reason),
            since=updated_since,
        )
        if limit:
            entries = itertools.islice(entries, limit)
        if output_format is ListFormat.TABLE:
            out.print(_entries_table(entries))
        else:
            transfer = TransferFormat(output_format.value)
            write_rows(sys.stdout, entries, FileFormat(transfer.file_format))


@app.command("show", cls=Command)
def show_command(
    address: Annotated[
        str, typer.Argument(metavar="ADDRESS", help="The address to look up.")
    ],
    events_shown: Annotated[
        int,
        typer.Option(
            "--events",
            min=1,
            max=MAX_COUNT,
            metavar="N",
            help="Show the newest N events.",
        ),
    ] = 20,
    database: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Show an entry, its audit history and the events behind it.

    Exits with status 1 when the address is not on the list.
    """
    with _opened(database, config) as store:
        entry = store.suppression(address)
        history = store.suppression_history(address)
        # One more than shown reveals whether older events were left out.
        events = store.events_for(address, limit=events_shown + 1)
    older = len(events) > events_shown
    events = events[:events_shown]
    if entry is None:
        out.print(f"{escape(address)} is not suppressed")
    else:
        out.print(_entries_table([entry]))
    if history:
        table = Table(
            time_column("at"),
            "action",
            "reason",
            "actor",
            "event",
            "note",
            title="history",
        )
        for row in history:
            table.add_row(
                _time(row.at),
                row.action,
                row.reason,
                escape(row.actor),
                _text(row.event_id),
                escape(row.note or ""),
            )
        out.print(table)
    if events:
        table = Table(
            "id",
            time_column("at"),
            "reason",
            "category",
            "status",
            "verified",
            "diagnostic",
            title="events",
        )
        for event in events:
            table.add_row(
                str(event.id),
                _time(event.created_at),
                event.reason,
                event.category,
                escape(event.status or ""),
                "yes" if event.verified else "no",
                escape(event.diagnostic or ""),
            )
        out.print(table)
    if older:
        more = min(2 * events_shown, MAX_COUNT)
        hint = f"; pass --events {more} to see more" if more > events_shown else ""
        out.print(f"older events left out{hint}")
    if entry is None:
        raise typer.Exit(EXIT_NOT_FOUND)


@app.command("add", cls=Command)
def add_command(
    addresses: Annotated[
        list[str],
        typer.Argument(metavar="ADDRESS", help="One or more email addresses."),
    ],
    *,
    reason: Annotated[
        ReasonChoice,
        typer.Option(
            "--reason",
            metavar="REASON",
            help="Reason recorded for the entries: hard_bounce, soft_bounce, "
            "complaint, manual or import.",
        ),
    ] = ReasonChoice.MANUAL,
    note: Annotated[
        str | None,
        typer.Option(
            "--note", metavar="TEXT", help="Why, recorded in the audit history."
        ),
    ] = None,
    actor: ActorOption = None,
    database: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Add addresses, overwriting any entry they have."""
    from watchdog.policy import SuppressionReason  # noqa: PLC0415

    _check_addresses(addresses)
    actor_name = _actor(actor)
    with _opened(database, config) as store:
        for address in addresses:
            action = store.add_suppression(
                address,
                actor=actor_name,
                reason=SuppressionReason(reason),
                note=note,
            )
            out.print(f"{escape(address)}: {action or 'unchanged'}")


@app.command("remove", cls=Command)
def remove_command(
    addresses: Annotated[
        list[str],
        typer.Argument(metavar="ADDRESS", help="One or more email addresses."),
    ],
    note: Annotated[
        str,
        typer.Option(
            "--note",
            metavar="TEXT",
            help="Why the addresses may be mailed again, recorded in the audit "
            "history.",
        ),
    ],
    actor: ActorOption = None,
    database: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Remove addresses; the removal is audited with actor and note.

    Exits with status 1 when any address was not on the list.
    """
    if not note.strip():
        fail("--note is empty: say why the addresses may be mailed again", EXIT_USAGE)
    _check_addresses(addresses)
    actor_name = _actor(actor)
    missing = 0
    with _opened(database, config) as store:
        for address in addresses:
            removed = store.remove_suppression(address, actor=actor_name, note=note)
            missing += not removed
            out.print(
                f"{escape(address)}: {'removed' if removed else 'not suppressed'}"
            )
    if missing:
        raise typer.Exit(EXIT_NOT_FOUND)


@app.command("import", cls=Command)
def import_command(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="CSV, JSON Lines or one address per line; - reads stdin.",
        ),
    ],
    input_format: Annotated[
        TransferFormat | None,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help=(
                "csv or jsonl (or json); default jsonl for a .jsonl or .json file,"
                " else csv."
            ),
        ),
    ] = None,
    actor: Annotated[
        str,
        typer.Option(
            "--actor", metavar="NAME", help="Name recorded in the audit history."
        ),
    ] = "import",
    database: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Import entries; an import never overwrites a manual entry.

    Rejected rows are listed with their line numbers on stderr and the
    command exits with status 1; the valid rows are imported anyway.
    """
    from watchdog.store.transfer import FileFormat, read_rows  # noqa: PLC0415

    if input_format is not None:
        fmt = FileFormat(input_format.file_format)
    elif file.suffix in (".jsonl", ".json"):
        fmt = FileFormat.JSONL
    else:
        fmt = FileFormat.CSV
    rejected = _Rejections()
    with _opened(database, config) as store, _open_input(file) as stream:
        rows = _collect_rejections(read_rows(stream, fmt), rejected)
        result = store.import_suppressions(rows, actor=actor)
    for item in rejected.first:
        err.print(f"line {item.line}: {escape(item.error)}")
    out.print(
        f"added {result.added}, updated {result.updated}, "
        f"unchanged {result.unchanged}, rejected {rejected.count}"
    )
    if rejected.count:
        raise typer.Exit(EXIT_REJECTED_ROWS)


@app.command("export", cls=Command)
def export_command(
    output_format: Annotated[
        TransferFormat,
        typer.Option("--format", metavar="FORMAT", help="csv or jsonl (or json)."),
    ] = TransferFormat.CSV,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", metavar="FILE", help="File to write; default stdout."
        ),
    ] = None,
    database: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Export every entry ordered by address."""
    from watchdog.store.transfer import FileFormat, write_rows  # noqa: PLC0415

    file_format = FileFormat(output_format.file_format)
    if output is not None and not output.parent.is_dir():
        fail(f"cannot write {str(output)!r}: folder {str(output.parent)!r} not found")
    with _opened(database, config, create=False) as store:
        if output is None:
            count = write_rows(sys.stdout, store.iter_suppressions(), file_format)
        else:
            with _open_output(output) as stream:
                count = write_rows(stream, store.iter_suppressions(), file_format)
    err.print(f"exported {count} entries")


@dataclass(slots=True)
class _Rejections:
    """The first rejected rows of an import, and how many there were in all."""

    first: list[Rejected] = field(default_factory=list)
    count: int = 0


def _collect_rejections(
    items: Iterable[ImportRow | Rejected], rejected: _Rejections
) -> Iterator[ImportRow]:
    # Only the printed rejections are kept, so a file of a million bad
    # lines needs no more memory than a good one.
    from watchdog.store.transfer import Rejected  # noqa: PLC0415

    for item in items:
        if not isinstance(item, Rejected):
            yield item
            continue
        rejected.count += 1
        if len(rejected.first) < MAX_REPORTED_REJECTIONS:
            rejected.first.append(item)


@contextlib.contextmanager
def _open_input(file: Path) -> Iterator[TextIO]:
    if str(file) == "-":
        yield sys.stdin
        return
    try:
        stream = file.open(encoding="utf-8", errors="replace", newline="")
    except OSError as exc:
        fail(f"cannot read {str(file)!r}: {exc.strerror}", EXIT_USAGE)
    with stream:
        yield stream


@contextlib.contextmanager
def _open_output(file: Path) -> Iterator[TextIO]:
    try:
        stream = file.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        fail(f"cannot write {str(file)!r}: {exc.strerror}")
    with stream:
        yield stream


def _entries_table(entries: Iterable[Suppression]) -> Table:
    table = Table(
        address_column(),
        "reason",
        time_column("created"),
        time_column("updated"),
        time_column("expires"),
    )
    for entry in entries:
        table.add_row(
            escape(entry.address),
            entry.reason,
            _time(entry.created_at),
            _time(entry.updated_at),
            "never" if entry.expires_at is None else _time(entry.expires_at),
        )
    return table


def _time(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _text(value: object) -> str:
    return "" if value is None else str(value)
