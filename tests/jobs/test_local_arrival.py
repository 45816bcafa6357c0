"""Local sources: arrival times and what the daemon counts."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine, select

from tests.jobs.mailbox_support import InProcessClassifier
from tests.jobs.test_mailbox import soft_bounce
from watchdog.classify.verdict import Verdict
from watchdog.config import LocalSource, Settings
from watchdog.daemon import _local_poll
from watchdog.jobs.local import process_path
from watchdog.metrics import Metrics
from watchdog.pipeline import ClassifyFailed, Processor
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


class FailingClassifier:
    """Fail every message, as a classifier worker killed at its limit does."""

    async def __call__(self, raw: bytes) -> Verdict:
        raise ClassifyFailed("worker killed at its CPU limit", reason="cpu")


async def test_local_failed_counted_once(tmp_path: Path) -> None:
    """A file that fails until quarantined is counted once, as quarantined."""
    folder = tmp_path / "bounces"
    folder.mkdir()
    (folder / "one.eml").write_bytes(soft_bounce(1, "a@x.test", datetime.now(UTC)))
    settings = Settings()
    metrics = Metrics(CollectorRegistry())
    store = Store(f"sqlite:///{tmp_path / 'watchdog.db'}")
    store.upgrade()
    processor = Processor(store, FailingClassifier(), settings)
    poll = _local_poll(processor, metrics, settings, "files", LocalSource(path=folder))
    try:
        for _ in range(settings.policy.max_attempts + 1):
            await poll()
    finally:
        store.close()

    def counted(outcome: str) -> float | None:
        labels = {"mailbox": "files", "kind": "unknown", "outcome": outcome}
        return metrics.registry.get_sample_value(
            "mailwatchdog_mailbox_messages_total", labels
        )

    assert counted("failed") is None
    assert counted("quarantined") == 1
