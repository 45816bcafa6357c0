"""The suppression-list methods of ``Store``: lookups, edits, import, export."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import Connection

from watchdog.addresses import address_key, normalise_address
from watchdog.policy import Entry, SuppressionReason, replaces
from watchdog.store import suppressions
from watchdog.store.records import (
    AuditAction,
    AuditRecord,
    EventRecord,
    ImportResult,
    ImportRow,
    Stats,
    Suppression,
)

# Rows written per transaction by an import, and read per query by export.
CHUNK_ROWS = 1000


class InvalidAddress(ValueError):
    """An address that does not normalise: no ``@``, control characters ..."""


def require_address(text: str) -> str:
    """Return ``text`` normalised, or raise InvalidAddress naming it."""
    address = normalise_address(text)
    if address is None:
        msg = (
            f"invalid address {text!r}: expected local@domain without control "
            "characters, at most 254 octets"
        )
        raise InvalidAddress(msg)
    return address


class _Transactions(Protocol):
    def _read(
        self, operation: str
    ) -> contextlib.AbstractContextManager[Connection]: ...
    def _write(
        self, operation: str
    ) -> contextlib.AbstractContextManager[Connection]: ...


class SuppressionList:
    """Methods on the suppression list, mixed into ``Store``."""

    def suppression(self: _Transactions, address: str) -> Suppression | None:
        """Return the entry of ``address`` (any spelling), expired or not, or None.

        Matching ignores the case of the whole address.
        """
        normalised = normalise_address(address)
        if normalised is None:
            return None
        with self._read("looking up a suppression") as conn:
            return suppressions.get(conn, address_key(normalised))

    def iter_suppressions(
        self: _Transactions,
        *,
        reason: SuppressionReason | None = None,
        since: datetime | None = None,
        chunk: int = CHUNK_ROWS,
    ) -> Iterator[Suppression]:
        """Yield entries ordered by address, reading ``chunk`` rows per query.

        Each query is its own short transaction, so a slow consumer never
        keeps a transaction open.
        """
        after: str | None = None
        while True:
            with self._read("listing suppressions") as conn:
                rows = suppressions.page(
                    conn, reason=reason, since=since, after=after, limit=chunk
                )
            yield from rows
            if len(rows) < chunk:
                return
            after = rows[-1].lookup_key

    def list_suppressions(
        self,
        *,
        reason: SuppressionReason | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[Suppression]:
        """Return entries ordered by address, at most ``limit`` of them."""
        entries = self.iter_suppressions(reason=reason, since=since)  # type: ignore[misc]
        return list(itertools.islice(entries, limit))

    def add_suppression(
        self: _Transactions,
        address: str,
        *,
        actor: str,
        reason: SuppressionReason = SuppressionReason.MANUAL,
        note: str | None = None,
        expires_at: datetime | None = None,
        now: datetime | None = None,
    ) -> AuditAction | None:
        """Put ``address`` on the list, overwriting any entry, and audit it.

        An entry for another spelling of the address (any case) is the same
        entry and keeps its spelling. Raises InvalidAddress when the address
        does not normalise.
        """
        normalised = require_address(address)
        key = address_key(normalised)
        with self._write("adding a suppression") as conn:
            return suppressions.write(
                conn,
                key,
                display=normalised,
                current=suppressions.get(conn, key, for_update=True),
                reason=reason,
                expires_at=expires_at,
                actor=actor,
                now=now or datetime.now(UTC),
                note=note,
            )

    def remove_suppression(
        self: _Transactions, address: str, *, actor: str, note: str | None = None
    ) -> bool:
        """Take ``address`` off the list and audit it; False when it was absent."""
        key = address_key(require_address(address))
        with self._write("removing a suppression") as conn:
            return suppressions.remove(
                conn, key, actor=actor, now=datetime.now(UTC), note=note
            )

    def import_suppressions(
        self: _Transactions,
        rows: Iterable[ImportRow],
        *,
        actor: str = "import",
        chunk: int = CHUNK_ROWS,
    ) -> ImportResult:
        """Write imported rows, ``chunk`` per transaction.

        A row replaces an entry only as the policy allows: never a manual
        entry with an imported one, never a complaint with a soft bounce.
        Rows whose addresses differ only in case write one entry.
        """
        total = ImportResult()
        iterator = iter(rows)
        while batch := list(itertools.islice(iterator, chunk)):
            with self._write("importing suppressions") as conn:
                total += _import_chunk(conn, batch, actor)
        return total

    def suppression_history(self: _Transactions, address: str) -> list[AuditRecord]:
        """Return the audit rows of ``address``, oldest first."""
        key = address_key(require_address(address))
        with self._read("reading suppression history") as conn:
            return suppressions.history(conn, key)

    def events_for(
        self: _Transactions, address: str, *, limit: int = 100
    ) -> list[EventRecord]:
        """Return the newest events of ``address``, newest first."""
        key = address_key(require_address(address))
        with self._read("reading events") as conn:
            return suppressions.events_for(conn, key, limit=limit)

    def stats(self: _Transactions) -> Stats:
        """Count messages by outcome, events and suppressions by reason."""
        with self._read("counting rows") as conn:
            return suppressions.stats(conn)


def _import_chunk(conn: Connection, rows: list[ImportRow], actor: str) -> ImportResult:
    now = datetime.now(UTC)
    added = updated = unchanged = 0
    for row in rows:
        key = address_key(row.address)
        current = suppressions.get(conn, key, for_update=True)
        entry = None if current is None else current.entry()
        if not replaces(entry, row.reason, now) or _same(entry, row, now):
            unchanged += 1
            continue
        action = suppressions.write(
            conn,
            key,
            display=row.address,
            current=current,
            reason=row.reason,
            expires_at=row.expires_at,
            actor=actor,
            now=now,
            note=row.note,
            created_at=row.created_at,
            respect_rank=True,
        )
        if action is None:
            unchanged += 1
            continue
        if action is AuditAction.ADD:
            added += 1
        else:
            updated += 1
    return ImportResult(added, updated, unchanged)


def _same(entry: Entry | None, row: ImportRow, now: datetime) -> bool:
    """Tell whether importing ``row`` would change nothing, so a re-import is idle."""
    return (
        entry is not None
        and entry.is_active(now)
        and entry.reason is row.reason
        and entry.expires_at == row.expires_at
    )
