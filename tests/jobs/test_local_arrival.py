"""Local sources: a file's modification time bounds its messages' arrival."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, select

from tests.jobs.mailbox_support import InProcessClassifier
from tests.jobs.test_mailbox import soft_bounce
from watchdog.config import Settings
from watchdog.jobs.local import process_path
from watchdog.pipeline import Processor
from watchdog.store import Store
from watchdog.store.engine import database_url as sqlalchemy_url
from watchdog.store.models import event_table


async def test_mtime_bounds_arrival(tmp_path: Path) -> None:
    """A bounce dated after its file was written arrives at the file's mtime."""
    url = f"sqlite:///{tmp_path / 'watchdog.db'}"
    folder = tmp_path / "bounces"
    folder.mkdir()
    written = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    early = folder / "early.eml"
    late = folder / "late.eml"
    early.write_bytes(soft_bounce(1, "a@x.test", written - timedelta(hours=2)))
    late.write_bytes(soft_bounce(2, "b@x.test", written + timedelta(days=3)))
    for path in (early, late):
        os.utime(path, (written.timestamp(), written.timestamp()))
    settings = Settings()
    store = Store(url)
    store.upgrade()
    try:
        processor = Processor(store, InProcessClassifier(settings.limits), settings)
        count = await process_path(processor, "files", folder)
    finally:
        store.close()

    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            query = select(event_table.c.recipient, event_table.c.arrived_at)
            arrivals = {row[0]: row[1] for row in conn.execute(query)}
    finally:
        engine.dispose()
    assert count == 2
    assert arrivals["a@x.test"] == written - timedelta(hours=2)
    assert arrivals["b@x.test"] == written
