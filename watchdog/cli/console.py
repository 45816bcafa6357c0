"""Rich consoles for command output."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Column
from rich.text import Text

# Width used when output goes to a pipe or a file, where Rich would otherwise
# assume 80 columns and cut addresses to fit.
PIPE_WIDTH = 250


def output_console(*, stderr: bool = False) -> Console:
    """Return a console sized to the terminal, or wide when not a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else PIPE_WIDTH
    return Console(stderr=stderr, highlight=False, width=width)


def address_column(header: str = "address") -> Column:
    """Return a column that folds a long address instead of cutting it."""
    return Column(header, overflow="fold", min_width=20)


def time_column(header: str) -> Column:
    """Return a column for timestamps that never wraps."""
    return Column(header, no_wrap=True)


class OutputFormat(StrEnum):
    """Output format of a check command."""

    TABLE = "table"
    JSON = "json"


OutputFormatOption = Annotated[
    OutputFormat,
    typer.Option("--format", metavar="FORMAT", help="table, or json for JSON Lines."),
]
NameserverOption = Annotated[
    list[str] | None,
    typer.Option(
        "--nameserver",
        metavar="IP:PORT",
        help="Resolver to query instead of dns.nameservers (repeatable; port 53 "
        "when omitted).",
    ),
]


def error_text(exc: BaseException) -> str:
    """Return the message of ``exc`` for a user, without Python's decorations.

    ``str(OSError)`` starts with ``[Errno N]`` and an exception without a
    message prints as nothing, so those get the strerror or the class name.
    """
    if isinstance(exc, OSError) and exc.strerror:
        if exc.filename is not None:
            return f"{exc.strerror}: {str(exc.filename)!r}"
        return exc.strerror
    return str(exc) or type(exc).__name__


def literal_text(text: str) -> Text:
    """Return text from the network (DNS, HTTP, mail) as literal terminal text.

    Square brackets are not read as Rich markup, and characters that are not
    printable (escape sequences, bidirectional overrides) are shown as Python
    escapes such as ``\\x1b`` instead of reaching the terminal.
    """
    return Text("".join(c if c.isprintable() else repr(c)[1:-1] for c in text))
