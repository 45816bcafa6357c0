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
    from watchdog.config import Settings
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

    overrides = {"database.url": database} if database else {}
    try:
        settings = load_settings(config, **overrides)
    except WatchdogError as exc:
        fail(str(exc))
    return open_database(settings, create=create)


def open_database(settings: Settings, *, create: bool = True) -> Store:
    """Open ``settings.database`` and bring its schema up to date.

    ``create`` is as in ``open_store``. Exits with status 1 and the error,
    which names the database, on stderr when the database fails.
    """
    from watchdog.store import Store  # noqa: PLC0415

    url = settings.database.url
    try:
        if create:
            _require_sqlite_folder(url)
        else:
            _require_sqlite_file(url)
        store = Store(url, busy_timeout=settings.database.busy_timeout_seconds)
        store.upgrade()
    except ConfigError as exc:
        fail(str(exc))
    except WatchdogError as exc:
        # The store's messages state what failed but not on which database,
        # except for a URL that does not parse, which they quote.
        safe_url = _parsed_url(url)
        fail(str(exc) if safe_url is None else f"database {safe_url}: {exc}")
    return store


def _parsed_url(url: str) -> str | None:
    """Return ``url`` without its password, or None if it does not parse."""
    from sqlalchemy.engine import make_url  # noqa: PLC0415
    from sqlalchemy.exc import ArgumentError  # noqa: PLC0415

    from watchdog.daemon import safe_database_url  # noqa: PLC0415

    # SQLAlchemy 2.1 raises ValueError, not ArgumentError, for a bad port
    # such as "[::1/x".
    try:
        make_url(url)
    except (ArgumentError, ValueError):
        return None
    return safe_database_url(url)


def _sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite:///"):
        return None
    return Path(url.removeprefix("sqlite:///").split("?", 1)[0])


def _require_sqlite_folder(url: str) -> None:
    # SQLite reports a missing folder as "unable to open database file".
    path = _sqlite_path(url)
    if path is None or path.parent.is_dir():
        return
    msg = (
        f"folder {str(path.parent)!r} of database file {str(path)!r} not found: "
        "create the folder, or check --database"
    )
    raise ConfigError(msg, key="database.url")


def _require_sqlite_file(url: str) -> None:
    path = _sqlite_path(url)
    if path is None or path.exists():
        return
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
