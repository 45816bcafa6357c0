"""``mail-watchdog suppress``: the suppression list."""

from __future__ import annotations

import typer

app = typer.Typer(help="Read and edit the suppression list.", no_args_is_help=True)
