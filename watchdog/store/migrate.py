"""Schema migrations, run from code: no alembic.ini is needed at run time."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(conn: Connection | None = None) -> Config:
    """Return an Alembic configuration that uses ``conn`` for its work."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if conn is not None:
        config.attributes["connection"] = conn
    return config


def upgrade(conn: Connection, revision: str = "head") -> None:
    """Upgrade the schema on ``conn`` to ``revision``."""
    command.upgrade(alembic_config(conn), revision)


def current_revision(conn: Connection) -> str | None:
    """Return the schema revision stored in the database, or None."""
    return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """Return the newest revision shipped with the package."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
