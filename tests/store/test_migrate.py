"""Schema migrations."""

from __future__ import annotations

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
