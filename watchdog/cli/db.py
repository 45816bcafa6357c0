"""``mail-watchdog db``: database schema."""

from __future__ import annotations

import typer

app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
