"""``mail-watchdog check``: blocklist and authentication checks."""

from __future__ import annotations

import typer

from watchdog.cli import check_domain, check_ip
from watchdog.cli.help_format import Command, Group

app = typer.Typer(
    help="Check sending IPs and domains.", no_args_is_help=True, cls=Group
)
app.command("ip", cls=Command)(check_ip.check_ip_command)
app.command("domain", cls=Command)(check_domain.check_domain_command)
