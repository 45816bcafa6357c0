"""Schema migrations."""

from __future__ import annotations

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from watchdog.store import Store
from watchdog.store.migrate import current_revision, head_revision
from watchdog.store.models import metadata


def test_upgrade_reaches_head(store: Store) -> None:
    """upgrade stores the newest revision."""
    with store._engine.connect() as conn:
        assert current_revision(conn) == head_revision()


def test_upgrade_twice(store: Store) -> None:
    """A second upgrade changes nothing."""
    store.upgrade()
    with store._engine.connect() as conn:
        assert current_revision(conn) == head_revision()


def test_migration_matches_models(store: Store) -> None:
    """The migrated schema is the schema the models declare."""
    with store._engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_concurrent_upgrades(database_url: str) -> None:
    """Processes that upgrade an empty database at once all succeed."""
    script = (
        "import sys; from watchdog.store import Store; Store(sys.argv[1]).upgrade()"
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, database_url], stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    for child in children:
        _, stderr = child.communicate(timeout=120)
        assert child.returncode == 0, stderr.decode()
    store = Store(database_url)
    with store._engine.connect() as conn:
        assert current_revision(conn) == head_revision()
    store.close()
