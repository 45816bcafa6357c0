"""Blocklist listing history in the database, one row per target and zone.

A row contains the last known state (``listed`` or ``not_listed``), the return
codes of the last listing, and when the target was first and last seen
listed and when it was delisted. ``ListingHistory`` implements the
blocklist cycle's ``TransitionStore``: the monitor loads the rows once at
start, so a restart neither forgets a listing nor reports it again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Column, Insert, UniqueConstraint, delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, SQLModel

from watchdog.checks.dnsbl.answer import State
from watchdog.checks.dnsbl.history import Entry, Transition
from watchdog.store.engine import READ_ONLY, translated
from watchdog.store.models import UtcDateTime
from watchdog.store.side_table import SideTable
from watchdog.store.transactions import utcnow

HistoryKey = tuple[str, str]
# Keys per DELETE. Each binds two parameters, and SQLite before 3.32
# allows at most 999 in one statement.
FORGET_CHUNK = 400


def _moment(*, nullable: bool) -> Any:
    return Field(default=None, sa_column=Column(UtcDateTime(), nullable=nullable))


class DnsblListing(SQLModel, table=True):
    """The last known blocklist state of one target in one zone.

    ``codes`` is a JSON list of the return codes of the last listing, such
    as ``["127.0.0.2", "127.0.0.4"]``.
    """

    __tablename__ = "dnsbl_listing"
    __table_args__ = (
        UniqueConstraint("target", "zone", name="uq_dnsbl_listing_target_zone"),
    )

    id: int | None = Field(default=None, primary_key=True)
    target: str
    zone: str
    state: str
    codes: str = "[]"
    first_listed: datetime | None = _moment(nullable=True)
    last_listed: datetime | None = _moment(nullable=True)
    delisted: datetime | None = _moment(nullable=True)
    updated_at: datetime = _moment(nullable=False)


listing_table = DnsblListing.__table__  # type: ignore[attr-defined]
L = listing_table.c


class ListingHistory(SideTable):
    """Load and save blocklist listing history through ``engine``.

    Built with ``of``, its database calls run on the store thread.
    """

    async def load(self) -> dict[HistoryKey, Entry]:
        """Return every stored entry, keyed by (target, zone).

        Raises StoreError (StoreBusy when a retry may help) on a database
        failure.
        """
        entries = await self.runner(self._load)
        return cast("dict[HistoryKey, Entry]", entries)

    async def save(
        self,
        transitions: Sequence[Transition],
        entries: Mapping[HistoryKey, Entry],
    ) -> None:
        """Write the entries that changed this cycle, in one transaction.

        Transitions are already folded into ``entries``, so only the
        entries are written. Writing the same entries twice leaves the
        same rows, so a transaction retried after a lost COMMIT is safe.
        Raises StoreError (StoreBusy when a retry may help).
        """
        del transitions
        if entries:
            await self.runner(self._save, dict(entries))

    async def forget(self, keys: Sequence[HistoryKey]) -> None:
        """Delete the rows of ``keys`` that never recorded a listing.

        Rows whose target was once listed stay, as the record of that
        listing. Raises StoreError (StoreBusy when a retry may help).
        """
        if keys:
            await self.runner(self._forget, list(keys))

    def _forget(self, keys: list[HistoryKey]) -> None:
        with translated("forgetting blocklist history"), self.engine.begin() as conn:
            for start in range(0, len(keys), FORGET_CHUNK):
                chunk = keys[start : start + FORGET_CHUNK]
                conn.execute(
                    delete(listing_table).where(
                        L.first_listed.is_(None), tuple_(L.target, L.zone).in_(chunk)
                    )
                )

    def _load(self) -> dict[HistoryKey, Entry]:
        with translated("loading blocklist history"), self.engine.connect() as plain:
            conn = plain.execution_options(**{READ_ONLY: True})
            with conn.begin():
                rows = conn.execute(select(listing_table)).all()
        return {
            (row.target, row.zone): Entry(
                state=State(row.state),
                first_listed=_unix(row.first_listed),
                last_listed=_unix(row.last_listed),
                delisted=_unix(row.delisted),
                codes=tuple(json.loads(row.codes)),
            )
            for row in rows
        }

    def _save(self, entries: Mapping[HistoryKey, Entry]) -> None:
        now = utcnow()
        with translated("saving blocklist history"), self.engine.begin() as conn:
            for (target, zone), entry in entries.items():
                conn.execute(self._upsert(target, zone, entry, now))

    def _upsert(self, target: str, zone: str, entry: Entry, now: datetime) -> Insert:
        values: dict[str, Any] = {
            "state": entry.state.value,
            "codes": json.dumps(list(entry.codes)),
            "first_listed": _datetime(entry.first_listed),
            "last_listed": _datetime(entry.last_listed),
            "delisted": _datetime(entry.delisted),
            "updated_at": now,
        }
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(listing_table).values(
            target=target, zone=zone, **values
        )
        upsert: Insert = statement.on_conflict_do_update(
            index_elements=["target", "zone"], set_=values
        )
        return upsert


def _datetime(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _unix(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()
