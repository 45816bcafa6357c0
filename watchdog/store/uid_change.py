"""Statements that settle the message rows of a folder after UIDVALIDITY changed.

``Store.set_uidvalidity`` clears the UIDs of the folder's rows, because the
numbers name other messages now, and gives the rows not yet marked moved
the new UIDVALIDITY. Each such row whose message is still in the folder
takes its new UID when a pass reads it again. After a pass over the whole
folder, the rows still without a UID are of messages that left the folder
before the change, for instance by a MOVE whose reply was lost. Every
function takes a connection inside an open transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import ColumnElement, Connection, and_, bindparam, select, update

from watchdog.pipeline import MessageRef, Outcome
from watchdog.store.models import folder_key, message_table

M = message_table.c

OVERSIZE_ERROR = "max_message_bytes"
"""``last_error`` of a message quarantined unread for its size."""

_ADOPT = (
    update(message_table)
    .where(
        M.sha256 == bindparam("match_sha256"),
        M.source == bindparam("match_source"),
        M.folder == bindparam("match_folder"),
        M.uidvalidity == bindparam("match_uidvalidity"),
        M.uid.is_(None),
    )
    .values(uid=bindparam("new_uid"))
)


def unmoved_without_uid(
    conn: Connection,
    source: str,
    folder: str,
    uidvalidity: int,
    outcomes: Sequence[Outcome],
) -> dict[str, Outcome]:
    """Return the SHA-256 and outcome of the folder's unmoved rows without a UID."""
    query = select(M.sha256, M.outcome).where(
        _waiting(source, folder, uidvalidity),
        M.outcome.in_([outcome.value for outcome in outcomes]),
    )
    return {row.sha256: Outcome(row.outcome) for row in conn.execute(query)}


def adopt_uids(
    conn: Connection,
    source: str,
    folder: str,
    uidvalidity: int,
    uids: Mapping[str, int],
) -> set[str]:
    """Set the UID of each row in ``uids`` (SHA-256 to UID) that has none.

    Returns the keys of the rows that took a UID.
    """
    source_name, folder_name = folder_key(source, folder)
    adopted: set[str] = set()
    for digest, uid in uids.items():
        params = {
            "match_sha256": digest,
            "match_source": source_name,
            "match_folder": folder_name,
            "match_uidvalidity": uidvalidity,
            "new_uid": uid,
        }
        if conn.execute(_ADOPT, params).rowcount:
            adopted.add(digest)
    return adopted


def adopt_oversize(conn: Connection, ref: MessageRef, size: int) -> str | None:
    """Give ``ref``'s UID to a waiting oversized row of ``size`` bytes.

    An oversized message is never read, so its key is where it was found
    (``watchdog.sources.imap.cycle.oversize_digest``) and changes with
    UIDVALIDITY. Matching a waiting row by its size keeps the message from
    being recorded, and counted, a second time under its new key. Returns
    the adopted row's key, or None. NOTE: another oversized message of the
    same size, arriving after a lost MOVE took the row's message out, takes
    the row too. It is then moved without a row of its own and not counted.
    """
    if ref.uidvalidity is None or ref.uid is None:
        return None
    query = (
        select(M.id, M.sha256)
        .where(
            _waiting(ref.source, ref.folder, ref.uidvalidity),
            M.size == size,
            M.last_error == OVERSIZE_ERROR,
        )
        .limit(1)
    )
    row = conn.execute(query.with_for_update()).first()
    if row is None:
        return None
    conn.execute(update(message_table).where(M.id == row.id).values(uid=ref.uid))
    return str(row.sha256)


def _waiting(source: str, folder: str, uidvalidity: int) -> ColumnElement[bool]:
    """Return the condition of rows that wait for their new UID."""
    source_name, folder_name = folder_key(source, folder)
    return and_(
        M.source == source_name,
        M.folder == folder_name,
        M.uidvalidity == uidvalidity,
        M.uid.is_(None),
        M.moved_to.is_(None),
    )
