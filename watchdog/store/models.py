"""Tables of the store.

Natural keys carry UNIQUE constraints so that every insert can use
``ON CONFLICT DO NOTHING`` and a transaction retried after a lost COMMIT
adds nothing twice. Counters such as soft bounces in a window are counted
from ``event`` rows, never stored, so a replay cannot inflate them.

Timestamps are stored in UTC: as ``timestamptz`` on PostgreSQL, as naive
UTC text on SQLite, and always read back as aware datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Dialect, Index, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

# Maximum characters of diagnostic text kept per event; the rest is cut.
MAX_DIAGNOSTIC_CHARS = 1000


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every dialect."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            msg = f"naive datetime {value!r}: pass an aware datetime in UTC"
            raise ValueError(msg)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def clean(text: str | None, limit: int) -> str | None:
    """Return ``text`` safe to store: no NUL or lone surrogates, cut to ``limit``.

    PostgreSQL rejects NUL in text and both drivers reject surrogate escapes.
    """
    if text is None:
        return None
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text.replace("\x00", "\ufffd")[:limit]


def folder_key(source: str, folder: str) -> tuple[str, str]:
    """Return ``source`` and ``folder`` cut as a message row stores them."""
    return clean(source, 200) or "", clean(folder, 1000) or ""


def _time(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=nullable, index=index)
    )


class Message(SQLModel, table=True):
    """One message a source handed over, keyed by the SHA-256 of its bytes.

    ``message_id`` is the Message-ID header, stored for lookups only: it can
    be missing, repeated or forged. ``uid`` is cleared when the folder's
    UIDVALIDITY changes, and a row not yet moved then takes the new
    UIDVALIDITY (see ``watchdog.store.uid_change``). ``outcome`` is a
    ``watchdog.pipeline.Outcome``.
    """

    __tablename__ = "message"
    __table_args__ = (
        Index("ix_message_uid", "source", "folder", "uidvalidity", "uid"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str
    folder: str
    # IMAP UIDs are unsigned 32-bit numbers, past PostgreSQL's INTEGER.
    uidvalidity: int | None = Field(default=None, sa_type=BigInteger)
    uid: int | None = Field(default=None, sa_type=BigInteger)
    path: str | None = None
    sha256: str = Field(unique=True, max_length=64)
    message_id: str | None = None
    size: int
    attempts: int = 0
    outcome: str = Field(index=True)
    kind: str | None = None
    detector: str | None = None
    last_error: str | None = None
    first_seen: datetime = _time()
    moved_to: str | None = None
    moved_at: datetime | None = _time(nullable=True)


class Event(SQLModel, table=True):
    """One recipient verdict of one message.

    ``message_id`` here is the ``message`` row id. ``recipient`` is the
    normalised address with its local part lower-cased, the suppression
    key; ``original_recipient`` is as the report wrote it.
    """

    __tablename__ = "event"
    __table_args__ = (
        UniqueConstraint("message_id", "recipient", name="uq_event_message_recipient"),
        Index("ix_event_recipient_time", "recipient", "created_at"),
        Index("ix_event_recipient_arrived", "recipient", "arrived_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="message.id")
    recipient: str
    original_recipient: str | None = None
    kind: str
    reason: str = Field(index=True)
    category: str
    hard: bool
    status: str | None = None
    reply_code: str | None = None
    diagnostic: str | None = None
    remote_mta: str | None = None
    verified: bool
    created_at: datetime = _time()
    # When the message arrived (policy.arrival_time); soft-bounce windows
    # count by it. Rows from before revision 0006 have their created_at.
    arrived_at: datetime | None = _time(nullable=True)


class SuppressionRow(SQLModel, table=True):
    """An address that must not be mailed, with the events behind it.

    ``address`` is the key: the normalised address with its local part
    lower-cased (``watchdog.addresses.address_key``). ``display_address`` is
    the spelling first seen, shown in listings and exports.
    """

    __tablename__ = "suppression"

    address: str = Field(primary_key=True)
    display_address: str | None = None
    reason: str = Field(index=True)
    first_event_id: int | None = None
    last_event_id: int | None = None
    created_at: datetime = _time()
    updated_at: datetime = _time(index=True)
    expires_at: datetime | None = _time(nullable=True)


class SuppressionAudit(SQLModel, table=True):
    """One change to the suppression list: who, when, why.

    ``address`` is the entry's key, so every spelling shares one history.

    ``action`` is ``add``, ``update`` or ``remove``; ``actor`` is
    ``daemon``, ``import`` or the person who ran the command.
    """

    __tablename__ = "suppression_audit"

    id: int | None = Field(default=None, primary_key=True)
    address: str = Field(index=True)
    action: str
    reason: str
    actor: str
    note: str | None = None
    event_id: int | None = None
    at: datetime = _time()


class MailboxState(SQLModel, table=True):
    """The last UIDVALIDITY seen for one folder of one source."""

    __tablename__ = "mailbox_state"

    source: str = Field(primary_key=True)
    folder: str = Field(primary_key=True)
    uidvalidity: int = Field(sa_type=BigInteger)
    updated_at: datetime = _time()


class LeftMessage(SQLModel, table=True):
    """An IMAP message the daemon left in its folder and has counted.

    Unrecognised mail in a folder shared with people stays where it is, so
    its UID is kept here: a restarted daemon neither fetches it again nor
    counts it a second time. Rows of another UIDVALIDITY and UIDs gone from
    the folder are deleted at the start of the next pass.
    """

    __tablename__ = "left_message"

    source: str = Field(primary_key=True)
    folder: str = Field(primary_key=True)
    uidvalidity: int = Field(sa_type=BigInteger, primary_key=True)
    uid: int = Field(sa_type=BigInteger, primary_key=True)
    left_at: datetime = _time()


metadata = SQLModel.metadata

# Core tables, for statements that need ON CONFLICT or RETURNING.
message_table = metadata.tables["message"]
event_table = metadata.tables["event"]
suppression_table = metadata.tables["suppression"]
audit_table = metadata.tables["suppression_audit"]
mailbox_table = metadata.tables["mailbox_state"]
left_table = metadata.tables["left_message"]
