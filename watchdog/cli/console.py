"""Rich consoles for command output."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Column

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
