"""The ``mail-watchdog`` command."""

from __future__ import annotations

import typer

from watchdog.cli import check, classify, config_cmd, db, run, scan_log, suppress
from watchdog.cli.help_format import Command, Group

app = typer.Typer(
    name="mail-watchdog",
    help="Bounce processing and deliverability monitoring for self-hosted senders.",
    no_args_is_help=True,
    cls=Group,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(config_cmd.app, name="config")
app.add_typer(db.app, name="db")
app.add_typer(suppress.app, name="suppress")
app.add_typer(check.app, name="check")
app.command("classify", cls=Command)(classify.classify_command)
app.command("scan", cls=Command)(run.scan_command)
app.command("scan-log", cls=Command)(scan_log.scan_log_command)
app.command("run", cls=Command)(run.run_command)


def main() -> None:
    """Run the command line."""
    app()
