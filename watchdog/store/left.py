"""Statements on ``left_message``: IMAP messages left in their folder.

A message left in place is identified by its folder's UIDVALIDITY and its
UID, not by its bytes: two copies with the same bytes are two messages,
and each is counted once. Every function takes a connection inside an open
transaction; ``Store`` owns the transactions.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from datetime import datetime

from sqlalchemy import Connection, delete, select, update

from watchdog.store import suppressions
from watchdog.store.models import folder_key, left_table, message_table

L = left_table.c
M = message_table.c
_KEYS = ("source", "folder", "uidvalidity", "uid")

UIDS_PER_STATEMENT = 500
"""UIDs bound in one IN list, well under SQLite's bound-parameter cap."""


def still_present(
    conn: Connection, source: str, folder: str, uidvalidity: int, present: Set[int]
) -> set[int]:
    """Return the left UIDs still in the folder, deleting the others.

    Rows of another UIDVALIDITY name other messages now, and a UID missing
    from ``present`` was moved or deleted by someone else. A message row
    still at such a UID loses its UID and UIDVALIDITY, because the message
    is no longer in the folder: a later pass must neither confirm it as
    moved nor count it again.
    """
    source, folder = folder_key(source, folder)
    in_folder = (L.source == source) & (L.folder == folder)
    conn.execute(delete(left_table).where(in_folder, L.uidvalidity != uidvalidity))
    stored = {
        int(uid)
        for uid in conn.execute(
            select(L.uid).where(in_folder, L.uidvalidity == uidvalidity)
        ).scalars()
    }
    vanished = sorted(stored - present)
    for start in range(0, len(vanished), UIDS_PER_STATEMENT):
        chunk = vanished[start : start + UIDS_PER_STATEMENT]
        conn.execute(
            delete(left_table).where(
                in_folder, L.uidvalidity == uidvalidity, L.uid.in_(chunk)
            )
        )
        conn.execute(
            update(message_table)
            .where(
                M.source == source,
                M.folder == folder,
                M.uidvalidity == uidvalidity,
                M.uid.in_(chunk),
                M.moved_to.is_(None),
            )
            .values(uid=None, uidvalidity=None)
        )
    return stored & set(present)


def remember(
    conn: Connection,
    source: str,
    folder: str,
    uidvalidity: int,
    uids: Iterable[int],
    *,
    now: datetime,
) -> set[int]:
    """Store UIDs left in the folder; return those not stored before."""
    source, folder = folder_key(source, folder)
    new: set[int] = set()
    for uid in uids:
        row = {
            "source": source,
            "folder": folder,
            "uidvalidity": uidvalidity,
            "uid": uid,
            "left_at": now,
        }
        key = suppressions.insert_ignoring_conflict(conn, left_table, row, _KEYS)
        if key is not None:
            new.add(uid)
    return new
