"""Where the MTA log reader stopped, and the recipients of deferred mail.

``mta_log_position`` contains one row per log, keyed by the configured
path unless ``mta_log.state_key`` names another key. Each row has the
file's device and inode, the offset of the first line not yet counted, a
hash of the file's first bytes and the time of the last delivery line.
``mta_log_pending`` contains the deferred recipients of queued messages,
so that an expiry after a restart still counts under the right providers.

Both change in one transaction per read, and the reader adds the counts of
that read to the metrics only after the COMMIT. A restart therefore resumes
at the first line not counted, and no line is counted twice. A crash
between the COMMIT and the metric update loses that read's counts, but the
counters of a crashed process are gone anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Connection, Text, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, SQLModel

from watchdog.sources.mta_log.follow import Position
from watchdog.store.engine import READ_ONLY, translated
from watchdog.store.models import UtcDateTime
from watchdog.store.side_table import SideTable
from watchdog.store.transactions import utcnow


class MtaLogPosition(SQLModel, table=True):
    """The reading position in one MTA log; see the module docstring."""

    __tablename__ = "mta_log_position"

    key: str = Field(primary_key=True)
    device: int = Field(sa_column=Column(BigInteger(), nullable=False))
    inode: int = Field(sa_column=Column(BigInteger(), nullable=False))
    byte_offset: int = Field(sa_column=Column(BigInteger(), nullable=False))
    head: str = Field(max_length=64)
    head_size: int
    last_line_at: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )
    updated_at: datetime = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=False)
    )


class MtaLogPending(SQLModel, table=True):
    """One deferred recipient of a queued message, with its provider group."""

    __tablename__ = "mta_log_pending"

    key: str = Field(primary_key=True)
    queue_id: str = Field(primary_key=True)
    recipient: str = Field(sa_column=Column(Text(), primary_key=True))
    provider: str


position_table = MtaLogPosition.__table__  # type: ignore[attr-defined]
pending_table = MtaLogPending.__table__  # type: ignore[attr-defined]
P = position_table.c
Q = pending_table.c

# Queue IDs per DELETE statement, to keep its IN list short.
_DELETE_BATCH = 500

PendingRow = tuple[str, str, str]
"""(queue ID, recipient, provider)."""


@dataclass(frozen=True, slots=True)
class SavedState:
    """Stored state of one log: the position (None before the first read),
    the time of the last delivery line, and the pending deferred recipients."""

    position: Position | None
    last_line_at: datetime | None
    pending: list[PendingRow]


class MtaLogState(SideTable):
    """Load and save the reader's state of one log, named by ``key``."""

    async def load(self, key: str) -> SavedState:
        """Return the stored state of ``key``.

        Raises StoreError (StoreBusy when a retry may help).
        """
        state = await self.runner(self.load_now, key)
        assert isinstance(state, SavedState)
        return state

    async def save(
        self,
        key: str,
        position: Position,
        last_line_at: datetime | None,
        changed: dict[str, list[tuple[str, str]]],
    ) -> None:
        """Store ``position`` and replace the pending rows of each changed
        queue ID with ``changed[queue_id]`` ((recipient, provider) pairs), in
        one transaction.

        Raises StoreError (StoreBusy when a retry may help).
        """
        await self.runner(self.save_now, key, position, last_line_at, changed)

    def load_now(self, key: str) -> SavedState:
        """Return the stored state of ``key`` on the caller's thread."""
        with translated("loading the MTA log position"), self.engine.connect() as c:
            conn = c.execution_options(**{READ_ONLY: True})
            with conn.begin():
                row = conn.execute(
                    select(position_table).where(P.key == key)
                ).one_or_none()
                pending = conn.execute(
                    select(Q.queue_id, Q.recipient, Q.provider).where(Q.key == key)
                ).all()
        position = None
        if row is not None:
            position = Position(
                device=row.device,
                inode=row.inode,
                offset=row.byte_offset,
                head=row.head,
                head_size=row.head_size,
            )
        return SavedState(
            position=position,
            last_line_at=row.last_line_at if row is not None else None,
            pending=[(r.queue_id, r.recipient, r.provider) for r in pending],
        )

    def save_now(
        self,
        key: str,
        position: Position,
        last_line_at: datetime | None,
        changed: dict[str, list[tuple[str, str]]],
    ) -> None:
        """Store the state of ``key`` on the caller's thread; see ``save``."""
        with translated("saving the MTA log position"), self.engine.begin() as conn:
            self._upsert_position(conn, key, position, last_line_at)
            _replace_pending(conn, key, changed)

    def _upsert_position(
        self,
        conn: Connection,
        key: str,
        position: Position,
        last_line_at: datetime | None,
    ) -> None:
        values: dict[str, Any] = {
            "device": position.device,
            "inode": position.inode,
            "byte_offset": position.offset,
            "head": position.head,
            "head_size": position.head_size,
            "updated_at": utcnow(),
        }
        if last_line_at is not None:
            values["last_line_at"] = last_line_at
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(position_table).values(key=key, **values)
        conn.execute(
            statement.on_conflict_do_update(index_elements=["key"], set_=values)
        )


def _replace_pending(
    conn: Connection, key: str, changed: dict[str, list[tuple[str, str]]]
) -> None:
    if not changed:
        return
    queue_ids = list(changed)
    for start in range(0, len(queue_ids), _DELETE_BATCH):
        part = queue_ids[start : start + _DELETE_BATCH]
        conn.execute(delete(pending_table).where(Q.key == key, Q.queue_id.in_(part)))
    rows = list(_rows(key, changed.items()))
    if rows:
        conn.execute(pending_table.insert(), rows)


def _rows(
    key: str, changed: Iterable[tuple[str, list[tuple[str, str]]]]
) -> Iterable[dict[str, str]]:
    for queue_id, recipients in changed:
        for recipient, provider in recipients:
            yield {
                "key": key,
                "queue_id": queue_id,
                "recipient": recipient,
                "provider": provider,
            }
