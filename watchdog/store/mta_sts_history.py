"""The last fetched MTA-STS policy of each domain, for the policy drift check.

``MtaStsHistory`` implements ``mta_sts_drift.PolicyHistory`` on the
``mta_sts_policy`` table, one row per domain. The daemon uses the store's
database. ``open_policy_history`` is for one-off commands, which use the
configured database only when it already exists and never create it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Column, Engine, Insert, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlmodel import Field, SQLModel

from watchdog.checks.auth.mta_sts_drift import (
    PolicyHistory,
    PolicySnapshot,
    UnavailableHistory,
)
from watchdog.config import Database
from watchdog.errors import StoreError
from watchdog.store.engine import (
    READ_ONLY,
    create_store_engine,
    database_url,
    translated,
)
from watchdog.store.models import UtcDateTime
from watchdog.store.side_table import SideTable

TABLE = "mta_sts_policy"


def _moment(*, nullable: bool) -> Any:
    return Field(default=None, sa_column=Column(UtcDateTime(), nullable=nullable))


class MtaStsPolicyRow(SQLModel, table=True):
    """The last MTA-STS policy fetched for one domain.

    ``body_sha256`` is the SHA-256 of ``mta_sts_drift.normalised_body`` and
    ``mx`` a JSON list of the mx patterns. ``stale_until`` and
    ``stale_changes`` describe a change made under the same id that
    senders may not have seen yet.
    """

    __tablename__ = TABLE

    domain: str = Field(primary_key=True)
    policy_id: str
    body_sha256: str = Field(max_length=64)
    mode: str
    mx: str
    max_age: int
    fetched_at: datetime = _moment(nullable=False)
    changed_at: datetime = _moment(nullable=False)
    stale_until: datetime | None = _moment(nullable=True)
    stale_changes: str | None = None


policy_table = MtaStsPolicyRow.__table__  # type: ignore[attr-defined]
P = policy_table.c


class MtaStsHistory(SideTable):
    """Load and save the last fetched MTA-STS policy of each domain.

    Built with ``of``, its database calls run on the store thread.
    """

    async def load(self, domain: str) -> PolicySnapshot | None:
        """Return the stored policy of ``domain``, or None.

        Raises StoreError (StoreBusy when a retry may help).
        """
        snapshot = await self.runner(self._load, domain)
        return cast("PolicySnapshot | None", snapshot)

    async def save(self, domain: str, snapshot: PolicySnapshot) -> None:
        """Insert or replace the stored policy of ``domain``.

        Raises StoreError (StoreBusy when a retry may help).
        """
        await self.runner(self._save, domain, snapshot)

    def _load(self, domain: str) -> PolicySnapshot | None:
        with translated("loading an MTA-STS policy"), self.engine.connect() as plain:
            conn = plain.execution_options(**{READ_ONLY: True})
            with conn.begin():
                row = conn.execute(
                    select(policy_table).where(P.domain == domain)
                ).one_or_none()
        if row is None:
            return None
        return PolicySnapshot(
            policy_id=row.policy_id,
            body_sha256=row.body_sha256,
            mode=row.mode,
            mx=tuple(json.loads(row.mx)),
            max_age=row.max_age,
            fetched_at=row.fetched_at,
            changed_at=row.changed_at,
            stale_until=row.stale_until,
            stale_changes=row.stale_changes or "",
        )

    def _save(self, domain: str, snapshot: PolicySnapshot) -> None:
        values: dict[str, Any] = {
            "policy_id": snapshot.policy_id,
            "body_sha256": snapshot.body_sha256,
            "mode": snapshot.mode,
            "mx": json.dumps(list(snapshot.mx)),
            "max_age": snapshot.max_age,
            "fetched_at": snapshot.fetched_at,
            "changed_at": snapshot.changed_at,
            "stale_until": snapshot.stale_until,
            "stale_changes": snapshot.stale_changes or None,
        }
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(policy_table).values(domain=domain, **values)
        upsert: Insert = statement.on_conflict_do_update(
            index_elements=["domain"], set_=values
        )
        with translated("saving an MTA-STS policy"), self.engine.begin() as conn:
            conn.execute(upsert)

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


@contextlib.contextmanager
def open_policy_history(
    settings: Database,
) -> Iterator[PolicyHistory | UnavailableHistory]:
    """Open the configured database for the drift check, without creating it.

    Yields an ``UnavailableHistory`` that explains why and what to do when the
    SQLite file does not exist, the database cannot be reached, or its
    schema has no ``mta_sts_policy`` table yet.
    """
    missing = _missing_sqlite_file(settings.url)
    if missing is not None:
        yield UnavailableHistory(
            f"database file {missing!r} not found, so this policy is not "
            "compared with an earlier one. Set database.url to the daemon's "
            "database, or create one with mail-watchdog db upgrade"
        )
        return
    try:
        engine = create_store_engine(
            settings.url, busy_timeout=settings.busy_timeout_seconds
        )
    except StoreError as exc:
        yield UnavailableHistory(str(exc))
        return
    try:
        yield _usable_history(engine)
    finally:
        engine.dispose()


def _usable_history(engine: Engine) -> PolicyHistory | UnavailableHistory:
    try:
        with translated("opening the database"), engine.connect() as conn:
            has_table = inspect(conn).has_table(TABLE)
    except StoreError as exc:
        return UnavailableHistory(f"the database cannot be opened: {exc}")
    if not has_table:
        return UnavailableHistory(
            f"the database has no {TABLE} table yet: run mail-watchdog db upgrade"
        )
    return MtaStsHistory(engine)


def _missing_sqlite_file(url: str) -> str | None:
    try:
        parsed = make_url(database_url(url))
    except (ArgumentError, ValueError):
        # create_store_engine reports the invalid URL.
        return None
    if parsed.get_backend_name() != "sqlite":
        return None
    path = parsed.database or ""
    if path in ("", ":memory:") or Path(path).exists():
        return None
    return path
