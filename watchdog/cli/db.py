"""``mail-watchdog db``: database schema, and opening the store for commands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from watchdog.cli.help_format import Command, Group
from watchdog.errors import ConfigError, WatchdogError

if TYPE_CHECKING:
    from watchdog.store import Store

EXIT_ERROR = 1
EXIT_USAGE = 2

app = typer.Typer(help="Manage the database schema.", no_args_is_help=True, cls=Group)
err = Console(stderr=True, soft_wrap=True, highlight=False)

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        metavar="URL",
        help="sqlite:///PATH or postgresql://USER@HOST/DB; overrides database.url.",
        show_default=False,
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="WATCHDOG_CONFIG",
        metavar="FILE",
        help="Settings file (TOML).",
        show_default=False,
    ),
]


def open_store(
    database: str | None, config: Path | None, *, create: bool = True
) -> Store:
    """Open the configured database and bring its schema up to date.

    With ``create`` false, a missing SQLite file is an error instead of a new
    empty database, so a mistyped path is not read as an empty list. Exits
    with status 1 and the error on stderr when the settings or the database
    fail.
    """
    # Imported here because pydantic, SQLAlchemy and Alembic take longer to
    # import than the rest of the command line together.
    from watchdog.config import load_settings  # noqa: PLC0415
    from watchdog.store import Store  # noqa: PLC0415

    try:
        overrides = {"database.url": database} if database else {}
        settings = load_settings(config, **overrides)
        if not create:
            _require_sqlite_file(settings.database.url)
        store = Store(
            settings.database.url,
            busy_timeout=settings.database.busy_timeout_seconds,
        )
        store.upgrade()
    except WatchdogError as exc:
        fail(str(exc))
    return store


def _require_sqlite_file(url: str) -> None:
    if not url.startswith("sqlite:///"):
        return
    path = Path(url.removeprefix("sqlite:///"))
    if not path.exists():
        msg = (
            f"database file {str(path)!r} not found: check --database, or create "
            f"it with mail-watchdog db upgrade --database {url}"
        )
        raise ConfigError(msg, key="database.url")


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print ``message`` to stderr and exit with ``code``."""
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)


@app.command("upgrade", cls=Command)
def upgrade_command(
    database: DatabaseOption = None, config: ConfigOption = None
) -> None:
    """Create or migrate the schema to the newest revision."""
    store = open_store(database, config)
    store.close()
    err.print("database schema is up to date", highlight=False)


@app.command("check", cls=Command)
def check_command(database: DatabaseOption = None, config: ConfigOption = None) -> None:
    """Check that the database accepts queries and passes PRAGMA quick_check."""
    store = open_store(database, config, create=False)
    try:
        store.check()
    except WatchdogError as exc:
        fail(str(exc))
    finally:
        store.close()
    err.print("database is healthy", highlight=False)
