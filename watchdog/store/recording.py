"""The statements behind ``Store.record``: message row, events, suppressions.

Everything here runs inside one transaction that ``Store`` opens, so a
message, its events and the suppressions they cause are committed together
or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, func, select, text, update

from watchdog.addresses import address_key, normalise_address
from watchdog.classify.verdict import Category, RecipientVerdict, Verdict
from watchdog.config import Policy
from watchdog.pipeline import MessageRef, Outcome
from watchdog.policy import decide, soft_window_start
from watchdog.store import locks, suppressions
from watchdog.store.models import (
    MAX_DIAGNOSTIC_CHARS,
    UtcDateTime,
    clean,
    event_table,
    message_table,
)
from watchdog.store.records import NOT_RECORDED, AuditAction, Recorded

M = message_table.c
E = event_table.c

_COUNT_SOFT = select(func.count()).where(
    E.recipient == bindparam("match_recipient"),
    E.category == Category.MAILBOX.value,
    E.verified.is_(True),
    E.arrived_at >= bindparam("since", type_=UtcDateTime()),
    E.arrived_at <= bindparam("until", type_=UtcDateTime()),
)

_ADDRESS_LOCK = text("SELECT pg_advisory_xact_lock(:k)")

# Categories the policy may act on; the rest are stored for statistics only.
_POLICY_CATEGORIES = frozenset({Category.ADDRESS, Category.COMPLAINT, Category.MAILBOX})


@dataclass(frozen=True, slots=True)
class _NewEvent:
    """A stored event: ``recipient`` is the key, ``display`` the spelling seen."""

    id: int
    recipient: str
    display: str
    category: Category


def record(
    conn: Connection,
    ref: MessageRef,
    *,
    sha256: str,
    size: int,
    verdict: Verdict,
    outcome: Outcome,
    verified: bool,
    policy: Policy,
    now: datetime,
    arrived: datetime | None = None,
) -> Recorded:
    """Write one classified message; see ``Store.record``.

    ``arrived`` is when the message arrived, ``now`` when it is recorded.
    """
    arrived = arrived or now
    values = message_values(ref, sha256=sha256, size=size, outcome=outcome, now=now)
    values |= {
        "kind": verdict.kind.value,
        "detector": clean(verdict.detector, 200),
        "message_id": clean(verdict.message_id, 998),
        "last_error": clean(verdict.limit, 200),
    }
    message_id = claim_message(conn, values)
    if message_id is None:
        return NOT_RECORDED
    if outcome is Outcome.QUARANTINED:
        return Recorded(inserted=True)

    added = _insert_events(
        conn, message_id, verdict, verified, now=now, arrived=arrived
    )
    suppressed: list[str] = []
    if verified and outcome is Outcome.PROCESSED:
        suppressed = [
            e.display for e in added if _apply_policy(conn, e, policy, now, arrived)
        ]
    return Recorded(True, len(added), tuple(suppressed))


def message_values(
    ref: MessageRef, *, sha256: str, size: int, outcome: Outcome, now: datetime
) -> dict[str, object]:
    """Return the message row for ``ref`` without classification fields."""
    return {
        "source": clean(ref.source, 200),
        "folder": clean(ref.folder, 1000),
        "uidvalidity": ref.uidvalidity,
        "uid": ref.uid,
        "path": clean(ref.path, 4096),
        "sha256": sha256,
        "size": size,
        "attempts": 0,
        "outcome": outcome.value,
        "first_seen": now,
    }


def claim_message(conn: Connection, values: dict[str, object]) -> int | None:
    """Insert the message row, or take over a failed row with these bytes.

    Returns the row id, or None when the bytes already reached a final
    outcome and nothing may be written.
    """
    inserted = suppressions.insert_ignoring_conflict(
        conn, message_table, values, ("sha256",)
    )
    if inserted is not None:
        return int(inserted)

    query = select(M.id, M.outcome).where(M.sha256 == values["sha256"])
    row = conn.execute(query.with_for_update()).one()
    if row.outcome != Outcome.FAILED.value:
        return None
    keep = {"attempts", "first_seen", "sha256"}
    changes = {k: v for k, v in values.items() if k not in keep}
    conn.execute(update(message_table).where(M.id == row.id).values(**changes))
    return int(row.id)


def _insert_events(
    conn: Connection,
    message_id: int,
    verdict: Verdict,
    verified: bool,
    *,
    now: datetime,
    arrived: datetime,
) -> list[_NewEvent]:
    added: list[_NewEvent] = []
    for item in verdict.recipients:
        display = _mailed_address(item)
        if display is None:
            continue
        recipient = address_key(display)
        values = _event_values(item, recipient, verdict, verified, now)
        values["message_id"] = message_id
        values["arrived_at"] = arrived
        event_id = suppressions.insert_ignoring_conflict(
            conn, event_table, values, ("message_id", "recipient")
        )
        if event_id is not None:
            added.append(_NewEvent(int(event_id), recipient, display, item.category))
    return added


def _mailed_address(item: RecipientVerdict) -> str | None:
    """Return the address we sent to, as the suppression list keys it.

    A DSN's Original-Recipient is the address our MTA was given. The
    Final-Recipient may be where the receiving site forwarded it (an alias
    or a mailbox on another host), which we never mail, so the original
    one is used when it is a valid address.
    """
    if item.original_address:
        original = normalise_address(item.original_address)
        if original is not None:
            return original
    return normalise_address(item.address)


def _event_values(
    item: RecipientVerdict,
    recipient: str,
    verdict: Verdict,
    verified: bool,
    now: datetime,
) -> dict[str, object]:
    return {
        "recipient": recipient,
        "original_recipient": clean(item.original_address or item.address, 1000),
        "kind": verdict.kind.value,
        "reason": clean(item.reason, 100) or "undefined",
        "category": item.category.value,
        "hard": item.hard,
        "status": clean(item.status, 32),
        "reply_code": clean(item.reply_code, 8),
        "diagnostic": clean(item.diagnostic, MAX_DIAGNOSTIC_CHARS),
        "remote_mta": clean(item.remote_mta, 255),
        "verified": verified,
        "created_at": now,
    }


def _apply_policy(
    conn: Connection,
    event: _NewEvent,
    policy: Policy,
    now: datetime,
    arrived: datetime,
) -> bool:
    """Apply the policy to one new event; True when it newly suppresses.

    Soft bounces are counted by arrival: those that arrived within the
    window up to this event's arrival. An event that arrived before the
    address's entry was last removed changes nothing, because removing the
    entry marks the address as mailable again from then on.
    """
    if event.category not in _POLICY_CATEGORIES:
        return False
    _lock_address(conn, event.recipient)
    removed = suppressions.last_removed(conn, event.recipient)
    if removed is not None and arrived <= removed:
        return False
    soft = 0
    if event.category is Category.MAILBOX:
        since = soft_window_start(policy, arrived)
        if removed is not None and removed > since:
            # Removing the entry marks the address as mailable again, so
            # bounces from before the removal no longer count.
            since = removed
        soft = count_soft_bounces(conn, event.recipient, since, arrived)
    current = suppressions.get(conn, event.recipient, for_update=True)
    change = decide(
        event.category,
        verified=True,
        soft_bounces=soft,
        current=None if current is None else current.entry(),
        policy=policy,
        now=now,
    )
    if change is None:
        return False
    action = suppressions.write(
        conn,
        event.recipient,
        display=event.display,
        current=current,
        reason=change.reason,
        expires_at=change.expires_at,
        actor="daemon",
        now=now,
        event_id=event.id,
        respect_rank=True,
    )
    was_active = current is not None and current.is_active(now)
    return action is AuditAction.ADD or (action is not None and not was_active)


def _lock_address(conn: Connection, recipient: str) -> None:
    """Make concurrent policy decisions on one address on PostgreSQL wait in turn.

    Without it two transactions that each add a soft bounce count only
    their own event plus the committed ones, and both can stay below the
    threshold. The lock lasts to the end of the transaction, so the second
    counts after the first has committed. SQLite needs none, because BEGIN
    IMMEDIATE already runs writers one at a time.
    """
    if conn.dialect.name == "postgresql":
        key = locks.lock_key("suppression", recipient)
        conn.execute(_ADDRESS_LOCK, {"k": key})


def count_soft_bounces(
    conn: Connection, recipient: str, since: datetime, until: datetime
) -> int:
    """Count the verified ``mailbox`` events of ``recipient`` that arrived in a span.

    The span runs from ``since`` to ``until``, both included.

    NOTE: bounces processed out of arrival order are missed. An event
    that arrived after ``until`` but was recorded earlier does not count for
    this one, and this one did not exist when that one was counted.
    """
    params = {"match_recipient": recipient, "since": since, "until": until}
    return int(conn.execute(_COUNT_SOFT, params).scalar_one())
