"""``mail-watchdog check``: blocklist and authentication checks."""

from __future__ import annotations

import typer

from watchdog.cli import check_domain, check_ip

app = typer.Typer(help="Check sending IPs and domains.", no_args_is_help=True)
app.command("ip")(check_ip.check_ip_command)
app.command("domain")(check_domain.check_domain_command)
