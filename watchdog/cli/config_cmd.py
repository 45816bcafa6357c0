"""``mail-watchdog config``: validate settings."""

from __future__ import annotations

import typer

app = typer.Typer(help="Validate the configuration.", no_args_is_help=True)
