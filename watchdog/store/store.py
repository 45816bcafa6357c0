"""``Store``: the database the daemon commits to before it moves a message.

Each public method runs in its own transaction, or in the transaction of an
enclosing ``batch()``. Database errors leave as StoreBusy (locked, disk
full, disconnected: retry later) or StoreError, chained to the driver's
exception, and the transaction is rolled back.

The methods block. Code on the event loop runs them through ``call``, which
hands them to the store's single thread, so a database that stops responding
stalls that thread and not the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
from collections.abc import (
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
    Set,
)
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from datetime import datetime
from pathlib import Path
from typing import ParamSpec, TypeVar

from sqlalchemy import Connection, case, select, text, update
from sqlalchemy.engine import make_url

from watchdog.classify.verdict import Verdict
from watchdog.config import Policy
from watchdog.errors import StoreError
from watchdog.pipeline import MessageRef, Outcome
from watchdog.store import left, locks, recording, suppressions, uid_change
from watchdog.store.engine import (
    READ_ONLY,
    create_store_engine,
    database_url,
    translated,
)
from watchdog.store.listing import SuppressionList
from watchdog.store.locks import ConsumerLock
from watchdog.store.migrate import upgrade as run_upgrade
from watchdog.store.models import clean, mailbox_table, message_table
from watchdog.store.records import Counted, Recorded, Unmoved
from watchdog.store.transactions import Batch, utcnow

M = message_table.c
B = mailbox_table.c

KEYS_PER_STATEMENT = 500
"""Keys bound in one IN list, well under SQLite's bound-parameter cap."""

P = ParamSpec("P")
T = TypeVar("T")


class Store(SuppressionList):
    """Messages, events, suppressions and mailbox state in one database.

    ``url`` is ``sqlite:///PATH`` or ``postgresql://USER@HOST/DB``;
    ``busy_timeout`` is how long an SQLite writer waits for the lock, in
    seconds.
    """

    def __init__(self, url: str, *, busy_timeout: float = 5.0) -> None:
        self.url = url
        self._engine = create_store_engine(url, busy_timeout=busy_timeout)
        self._batch: ContextVar[Batch | None] = ContextVar(
            f"watchdog_store_batch_{id(self)}", default=None
        )
        self._writer_turn: asyncio.Lock | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        parsed = make_url(database_url(url))
        self._sqlite_path: Path | None = None
        self._in_memory = parsed.get_backend_name() == "sqlite" and (
            parsed.database in (None, "", ":memory:")
        )
        if parsed.get_backend_name() == "sqlite" and not self._in_memory:
            self._sqlite_path = Path(parsed.database or "").resolve()

    @property
    def dialect(self) -> str:
        """The database kind: ``sqlite`` or ``postgresql``."""
        return self._engine.dialect.name

    # -- lifecycle ---------------------------------------------------------

    def upgrade(self) -> None:
        """Apply every pending migration (``alembic upgrade head``).

        Safe when several processes start at once: SQLite's BEGIN IMMEDIATE
        and a transaction-scoped advisory lock on PostgreSQL run them one
        after the other.
        """
        with translated("upgrading the database schema"), self._engine.begin() as conn:
            if self.dialect == "postgresql":
                key = locks.lock_key("mail-watchdog", "schema")
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
            run_upgrade(conn)

    def is_suppressed(self, address: str, now: datetime | None = None) -> bool:
        """Tell whether ``address`` (any spelling) has an active entry at ``now``."""
        entry = self.suppression(address)
        return entry is not None and entry.is_active(now or utcnow())

    def check(self) -> None:
        """Check that the database accepts queries and, on SQLite, is not corrupt.

        Raises StoreError naming the first problem ``PRAGMA quick_check``
        reports.
        """
        with self._read("checking the database") as conn:
            if self.dialect != "sqlite":
                conn.execute(text("SELECT 1"))
                return
            result = conn.execute(text("PRAGMA quick_check")).scalar()
        if result != "ok":
            msg = (
                f"database {self.url!r} failed PRAGMA quick_check: {result!r}; "
                "restore it from a backup"
            )
            raise StoreError(msg)

    def close(self) -> None:
        """Stop the store thread and close every pooled connection.

        Queued calls that have not started are cancelled, and the call in
        progress is waited for. A call that never returns (a database that
        stopped responding) therefore blocks here; the daemon's shutdown
        deadline ends the process then.
        """
        self._closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._engine.dispose()

    # -- calls from the event loop -----------------------------------------

    async def call(
        self, function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``function`` on the store thread and return its result.

        One thread runs the calls of this store in the order they were made,
        so their transactions never overlap. The call runs in a copy of the
        caller's context, so it joins a ``batch()`` the caller has open.
        Cancelling the awaiting task does not stop a call that has started.
        An in-memory SQLite database belongs to the connection of one
        thread, so there the call runs inline.
        """
        bound = functools.partial(function, *args, **kwargs)
        if self._in_memory:
            return bound()
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        return await loop.run_in_executor(self._thread(), context.run, bound)

    def submit(self, function: Callable[[], object]) -> Future[object] | None:
        """Queue ``function`` on the store thread without waiting for it.

        For cleanup that must not hold up a cancelled task, such as
        releasing the consumer lock. Returns None when the store is closed.
        """
        if self._in_memory:
            function()
            return None
        if self._closed:
            return None
        return self._thread().submit(function)

    def _thread(self) -> ThreadPoolExecutor:
        if self._closed:
            msg = "the store is closed: open a new Store to run database calls"
            raise StoreError(msg)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="watchdog-store"
            )
        return self._executor

    # -- transactions ------------------------------------------------------

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group the writes of the block into one transaction (one fsync).

        Each write inside runs in a savepoint, so one failed ``record``
        does not undo the others. Nothing is committed before the block
        ends; if the block raises, everything is rolled back. The batch
        belongs to the current asyncio task or thread (a context variable),
        so other tasks keep their own transactions. Nested batches join the
        outer one.

        NOTE: on SQLite the first write takes the database's write lock
        and holds it to the end of the block. Tasks on an event loop whose
        batches span an ``await`` must use ``abatch()``, or classify before
        the block and keep only the ``record`` calls inside.
        """
        if self._batch.get() is not None:
            yield
            return
        holder = Batch()
        token = self._batch.set(holder)
        try:
            yield
        except BaseException:
            holder.rollback()
            raise
        else:
            with translated("committing a batch"):
                holder.commit()
        finally:
            self._batch.reset(token)
            holder.close()

    @contextlib.asynccontextmanager
    async def abatch(self) -> AsyncIterator[None]:
        """Run ``batch()`` for a task on the event loop, waiting its turn.

        The driver calls block the event loop. So when a second task writes
        while another task's batch holds a lock across an ``await`` (the
        SQLite write lock, or a PostgreSQL row lock on the same address),
        the first task can never finish. The second then fails with
        StoreBusy after the busy or lock timeout. ``abatch`` makes such
        tasks take turns on an ``asyncio.Lock`` instead; a nested call
        joins the enclosing batch.
        """
        if self._batch.get() is not None:
            with self.batch():
                yield
            return
        if self._writer_turn is None:
            self._writer_turn = asyncio.Lock()
        async with self._writer_turn:
            with self.batch():
                yield

    @contextlib.contextmanager
    def _write(self, operation: str) -> Iterator[Connection]:
        holder = self._batch.get()
        with translated(operation):
            if holder is None:
                with self._engine.begin() as conn:
                    yield conn
                return
            conn = holder.open(self._engine)
            with conn.begin_nested():
                yield conn

    @contextlib.contextmanager
    def _read(self, operation: str) -> Iterator[Connection]:
        holder = self._batch.get()
        with translated(operation):
            if holder is not None and holder.conn is not None:
                yield holder.conn
                return
            with self._engine.connect() as plain:
                conn = plain.execution_options(**{READ_ONLY: True})
                with conn.begin():
                    yield conn

    # -- the pipeline ------------------------------------------------------

    def is_recorded(self, sha256: str) -> bool:
        """Tell whether these bytes reached a final outcome (anything but failed)."""
        outcome = self.recorded_outcome(sha256)
        return outcome is not None and outcome is not Outcome.FAILED

    def recorded_outcome(self, sha256: str) -> Outcome | None:
        """Return the outcome stored for these bytes, or None if never recorded.

        ``Outcome.FAILED`` means earlier attempts failed and the message is
        to be classified again.
        """
        return self.recorded_outcomes([sha256]).get(sha256)

    def recorded_outcomes(self, sha256s: Sequence[str]) -> dict[str, Outcome]:
        """Return the stored outcome of each of these keys that has a row.

        One SELECT per ``KEYS_PER_STATEMENT`` keys.
        """
        found: dict[str, Outcome] = {}
        with self._read("looking up messages") as conn:
            for chunk in _chunks(sha256s):
                query = select(M.sha256, M.outcome).where(M.sha256.in_(chunk))
                found.update(
                    (row.sha256, Outcome(row.outcome)) for row in conn.execute(query)
                )
        return found

    def record(
        self,
        ref: MessageRef,
        *,
        sha256: str,
        size: int,
        verdict: Verdict,
        outcome: Outcome,
        verified: bool,
        policy: Policy,
        now: datetime | None = None,
        arrived_at: datetime | None = None,
    ) -> Recorded:
        """Record a classified message, its events and the suppressions they cause.

        One transaction: the message row (ON CONFLICT on sha256 DO NOTHING,
        or taking over a failed row), one event per recipient, then the
        policy for verified, processed messages. ``arrived_at`` places the
        events in the soft-bounce window and defaults to ``now``. Returns
        ``Recorded(inserted=False)`` when these bytes were already final.
        """
        when = now or utcnow()
        with self._write("recording a message") as conn:
            return recording.record(
                conn,
                ref,
                sha256=sha256,
                size=size,
                verdict=verdict,
                outcome=outcome,
                verified=verified,
                policy=policy,
                now=when,
                arrived=min(arrived_at or when, when),
            )

    def record_failure(
        self, ref: MessageRef, *, sha256: str, size: int, error: str
    ) -> int:
        """Count one failed classification of these bytes; return the attempts."""
        values = recording.message_values(
            ref, sha256=sha256, size=size, outcome=Outcome.FAILED, now=utcnow()
        )
        values |= {"attempts": 1, "last_error": clean(error, 500)}
        with self._write("recording a failed attempt") as conn:
            if suppressions.insert_ignoring_conflict(
                conn, message_table, values, ("sha256",)
            ):
                return 1
            conn.execute(
                update(message_table)
                .where(M.sha256 == sha256, M.outcome == Outcome.FAILED.value)
                .values(attempts=M.attempts + 1, last_error=values["last_error"])
            )
            return int(
                conn.execute(select(M.attempts).where(M.sha256 == sha256)).scalar_one()
            )

    def record_rejected(
        self, ref: MessageRef, *, sha256: str, size: int, error: str
    ) -> None:
        """Record a quarantined message: over size, over limits or out of attempts."""
        values = recording.message_values(
            ref, sha256=sha256, size=size, outcome=Outcome.QUARANTINED, now=utcnow()
        )
        values["last_error"] = clean(error, 500)
        with self._write("recording a quarantined message") as conn:
            recording.claim_message(conn, values)

    # -- the IMAP cycle ----------------------------------------------------

    def uidvalidity(self, source: str, folder: str) -> int | None:
        """Return the UIDVALIDITY stored for a folder, or None if never seen."""
        query = select(B.uidvalidity).where(B.source == source, B.folder == folder)
        with self._read("reading UIDVALIDITY") as conn:
            value = conn.execute(query).scalar()
        return None if value is None else int(value)

    def set_uidvalidity(self, source: str, folder: str, value: int) -> bool:
        """Store a folder's UIDVALIDITY; True when it changed.

        On a change every stored UID of that folder is cleared, because the
        numbers now name other messages. The SHA-256 key still prevents
        counting a message twice when the folder is scanned again. Rows not
        yet marked moved also take the new UIDVALIDITY, so that
        ``unmoved_without_uid`` finds them for the pass that settles them.
        """
        now = utcnow()
        with self._write("storing UIDVALIDITY") as conn:
            query = select(B.uidvalidity).where(B.source == source, B.folder == folder)
            old = conn.execute(query.with_for_update()).scalar()
            if old is None:
                row = {
                    "source": source,
                    "folder": folder,
                    "uidvalidity": value,
                    "updated_at": now,
                }
                suppressions.insert_ignoring_conflict(
                    conn, mailbox_table, row, ("source", "folder")
                )
                return False
            if int(old) == value:
                return False
            conn.execute(
                update(mailbox_table)
                .where(B.source == source, B.folder == folder)
                .values(uidvalidity=value, updated_at=now)
            )
            unmoved_value = case((M.moved_to.is_(None), value), else_=M.uidvalidity)
            conn.execute(
                update(message_table)
                .where(M.source == source, M.folder == folder, M.uidvalidity != value)
                .values(uid=None, uidvalidity=unmoved_value)
            )
            return True

    def mark_moved(self, sha256: str, folder: str) -> None:
        """Note that the message with these bytes now sits in ``folder``."""
        with self._write("marking a message moved") as conn:
            conn.execute(
                update(message_table)
                .where(M.sha256 == sha256)
                .values(moved_to=clean(folder, 1000), moved_at=utcnow())
            )

    def mark_moved_many(
        self, sha256s: Sequence[str], folder: str
    ) -> dict[str, Counted]:
        """Note that the messages with these bytes now sit in ``folder``.

        Only rows not yet marked moved change. Returns the kind and outcome
        of each row this call marked, so the caller counts each message
        once, however often it is moved or confirmed. One SELECT and one
        UPDATE per ``KEYS_PER_STATEMENT`` keys, all in one transaction.
        """
        values = {"moved_to": clean(folder, 1000), "moved_at": utcnow()}
        marked: dict[str, Counted] = {}
        with self._write("marking messages moved") as conn:
            for chunk in _chunks(list(dict.fromkeys(sha256s))):
                pending = M.sha256.in_(chunk) & M.moved_to.is_(None)
                query = select(M.sha256, M.kind, M.outcome).where(pending)
                for row in conn.execute(query.with_for_update()):
                    marked[row.sha256] = Counted(row.kind or "unknown", row.outcome)
                conn.execute(update(message_table).where(pending).values(**values))
        return marked

    def unmoved(
        self,
        source: str,
        folder: str,
        uidvalidity: int,
        outcomes: Sequence[Outcome],
    ) -> list[Unmoved]:
        """Return the messages of a folder recorded with ``outcomes`` but not moved.

        These are committed messages whose MOVE never reported success,
        for instance because the connection dropped before the server's
        reply. Rows whose UID was cleared by a UIDVALIDITY change are left
        out, because their UIDs no longer name them.
        """
        query = select(M.sha256, M.uid, M.kind, M.outcome).where(
            M.source == source,
            M.folder == folder,
            M.uidvalidity == uidvalidity,
            M.uid.is_not(None),
            M.moved_to.is_(None),
            M.outcome.in_([outcome.value for outcome in outcomes]),
        )
        with self._read("listing unmoved messages") as conn:
            return [
                Unmoved(
                    row.sha256,
                    int(row.uid),
                    row.kind or "unknown",
                    Outcome(row.outcome),
                )
                for row in conn.execute(query)
            ]

    def left_uids(
        self, source: str, folder: str, uidvalidity: int, present: Set[int]
    ) -> set[int]:
        """Return the UIDs of ``present`` left in the folder by earlier passes.

        Forgets left UIDs of another UIDVALIDITY and those no longer present.
        The message rows of the latter lose their UID and UIDVALIDITY (see
        ``watchdog.store.left.still_present``).
        """
        with self._write("reading messages left in place") as conn:
            return left.still_present(conn, source, folder, uidvalidity, present)

    def remember_left(
        self, source: str, folder: str, uidvalidity: int, uids: Iterable[int]
    ) -> set[int]:
        """Store UIDs left in the folder; return those not stored before.

        Inside a ``batch()`` they commit with the messages' records, so a
        message left in place is counted by the pass that first stores it.
        """
        with self._write("storing messages left in place") as conn:
            return left.remember(conn, source, folder, uidvalidity, uids, now=utcnow())

    def unmoved_without_uid(
        self,
        source: str,
        folder: str,
        uidvalidity: int,
        outcomes: Sequence[Outcome],
    ) -> dict[str, Outcome]:
        """Return the unmoved rows whose UID a UIDVALIDITY change cleared.

        See ``watchdog.store.uid_change.unmoved_without_uid``.
        """
        with self._read("listing unmoved messages without a UID") as conn:
            return uid_change.unmoved_without_uid(
                conn, source, folder, uidvalidity, outcomes
            )

    def adopt_uids(
        self, source: str, folder: str, uidvalidity: int, uids: Mapping[str, int]
    ) -> set[str]:
        """Give rows whose UID a UIDVALIDITY change cleared their new UID.

        ``uids`` maps SHA-256 digests to the UID where those bytes were read.
        Returns the digests of the rows that took a UID.
        """
        if not uids:
            return set()
        with self._write("storing the new UIDs of messages") as conn:
            return uid_change.adopt_uids(conn, source, folder, uidvalidity, uids)

    def adopt_oversize(self, ref: MessageRef, size: int) -> str | None:
        """Give a waiting oversized row of ``size`` bytes the UID of ``ref``.

        Returns that row's SHA-256 key, or None when no such row exists.
        See ``watchdog.store.uid_change.adopt_oversize``.
        """
        with self._write("storing the new UID of an oversized message") as conn:
            return uid_change.adopt_oversize(conn, ref, size)

    @contextlib.contextmanager
    def consumer_lock(self, source: str, folder: str) -> Iterator[bool]:
        """Hold the lock that makes this process the folder's only consumer.

        Yields False, holding nothing, when another process has it. An
        in-memory SQLite database cannot be shared, so there it always wins.
        """
        lock = self.take_consumer_lock(source, folder)
        try:
            yield lock.won
        finally:
            lock.release()

    def take_consumer_lock(self, source: str, folder: str) -> ConsumerLock:
        """Try to take the folder's consumer lock; see ``consumer_lock``.

        The caller must call ``release`` on the result, won or not.
        """
        key = locks.lock_key(source, folder)
        if self.dialect == "postgresql":
            return locks.PostgresLock.take(self._engine, key)
        if self._sqlite_path is not None:
            return locks.FileLock.take(self._sqlite_path, key)
        return locks.ConsumerLock(won=True)


def _chunks(keys: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(keys), KEYS_PER_STATEMENT):
        yield list(keys[start : start + KEYS_PER_STATEMENT])
