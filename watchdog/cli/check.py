"""``mail-watchdog check``: blocklist and authentication checks."""

from __future__ import annotations

import typer

app = typer.Typer(help="Check sending IPs and domains.", no_args_is_help=True)
