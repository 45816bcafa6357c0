"""One pass over an IMAP folder: select, fetch, classify, commit, then move.

The order makes every step safe to repeat. The messages of a batch are
classified first, outside any transaction, then recorded together in one
short ``store.batch()`` and moved only after it has committed. A crash
before the commit leaves them unrecorded in the source folder, and a crash
after it leaves them recorded there, so the next pass finds them as
duplicates by SHA-256 and only moves them.

A message is counted when its row is first marked moved, never at the
commit. If the connection drops after the server moved a batch but before
its reply arrived, the next pass finds the recorded messages gone from the
source folder, marks them moved then and counts them. If the MOVE never
ran, the next pass moves the duplicates and counts them under the outcome
stored for the first copy. Either way each message is counted once. When
UIDVALIDITY changed meanwhile, the stored UIDs are cleared. The pass that
has read the whole folder again then does the same with the recorded
messages it did not find there. A message left in place is counted when
its UID is first stored as left, in the transaction of its record, and
later passes skip that UID. Once mail is no longer left, they read it
again and move it without counting it.

Every store call runs on the store's thread through ``store.call``, so a
database that stops responding never blocks the event loop.

This module does no logging: it returns a report per batch and the mailbox
worker logs it and updates the metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import Counter
from collections.abc import (
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
    Set,
)
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ParamSpec, Protocol, TypeVar

from watchdog.classify.verdict import Kind
from watchdog.pipeline import Classified, MessageRef, Outcome, Pending, Result
from watchdog.sources.imap.faults import fault_point
from watchdog.sources.imap.session import ImapSession, MoveMethod
from watchdog.sources.imap.uidset import chunks
from watchdog.store.records import Counted, Unmoved

P = ParamSpec("P")
T = TypeVar("T")

BODY_GROUP_UIDS = 20
"""UIDs per ``BODY.PEEK[]`` FETCH: small, because aioimaplib buffers each whole."""

BATCH_BODY_BYTES = 32_000_000
"""Bytes of bodies held in memory per batch before it is processed and moved."""


class CycleStore(Protocol):
    """The part of ``watchdog.store.Store`` the cycle uses."""

    async def call(
        self, function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T: ...
    def uidvalidity(self, source: str, folder: str) -> int | None: ...
    def set_uidvalidity(self, source: str, folder: str, value: int) -> bool: ...
    def mark_moved_many(
        self, sha256s: Sequence[str], folder: str
    ) -> dict[str, Counted]: ...
    def unmoved(
        self,
        source: str,
        folder: str,
        uidvalidity: int,
        outcomes: Sequence[Outcome],
    ) -> list[Unmoved]: ...
    def unmoved_without_uid(
        self,
        source: str,
        folder: str,
        uidvalidity: int,
        outcomes: Sequence[Outcome],
    ) -> dict[str, Outcome]: ...
    def adopt_uids(
        self, source: str, folder: str, uidvalidity: int, uids: Mapping[str, int]
    ) -> set[str]: ...
    def adopt_oversize(self, ref: MessageRef, size: int) -> str | None: ...
    def batch(self) -> contextlib.AbstractContextManager[None]: ...
    def left_uids(
        self, source: str, folder: str, uidvalidity: int, present: Set[int]
    ) -> set[int]: ...
    def remember_left(
        self, source: str, folder: str, uidvalidity: int, uids: Iterable[int]
    ) -> set[int]: ...


class MessageProcessor(Protocol):
    """The part of ``watchdog.pipeline.Processor`` the cycle uses."""

    def prepare(self, items: Sequence[tuple[MessageRef, bytes]]) -> list[Pending]: ...
    async def classify_pending(self, pending: Pending) -> Classified: ...
    def record(self, item: Classified) -> Result: ...
    def quarantine_oversize(
        self, ref: MessageRef, size: int, digest: str
    ) -> Result: ...


@dataclass(frozen=True, slots=True)
class FolderPlan:
    """Destination folders of a source folder's messages, and batch bounds."""

    source: str
    folder: str
    processed_folder: str
    quarantine_folder: str
    batch_size: int
    max_message_bytes: int
    leave_unrecognised: bool


@dataclass(frozen=True, slots=True)
class Start:
    """The folder's state when the pass began.

    ``confirmed`` lists the messages an earlier pass recorded and moved
    without seeing the server's reply, found gone from the folder and
    counted now.
    """

    uidvalidity: int
    uidvalidity_changed: bool
    uids: tuple[int, ...]
    confirmed: tuple[Counted, ...] = ()


@dataclass(frozen=True, slots=True)
class MessageReport:
    """Outcome of one message; ``destination`` is None when it stays in place."""

    uid: int
    result: Result
    destination: str | None

    @property
    def message_id(self) -> str | None:
        """The Message-ID header, for log lines only."""
        verdict = self.result.verdict
        return verdict.message_id if verdict is not None else None


@dataclass(frozen=True, slots=True)
class BatchReport:
    """One committed and moved batch."""

    uidvalidity: int
    messages: tuple[MessageReport, ...]
    moved: tuple[tuple[str, int], ...]
    method: MoveMethod | None
    seconds: float
    counted: tuple[Counted, ...] = ()
    """The kind and outcome to count for each message counted in this batch."""

    def outcomes(self) -> dict[str, int]:
        """Count the messages of the batch by outcome."""
        return dict(Counter(m.result.outcome.value for m in self.messages))


def oversize_digest(plan: FolderPlan, uidvalidity: int, uid: int) -> str:
    """Return the key of a message never fetched because it is too large.

    Its bytes are unknown, so the key is the SHA-256 of where it was found.
    """
    where = f"imap:{plan.source}:{plan.folder}:{uidvalidity}:{uid}"
    return hashlib.sha256(where.encode()).hexdigest()


def destination(result: Result, plan: FolderPlan) -> str | None:
    """Return the folder a message goes to after the commit, or None to leave it.

    In a folder shared with people, unrecognised mail stays where it is. A
    duplicate follows the outcome stored for its first copy, so a message
    recorded just before a crash goes where that copy was meant to go.
    """
    outcome = result.outcome
    if outcome is Outcome.DUPLICATE and result.earlier is not None:
        outcome = result.earlier
    return outcome_destination(outcome, plan)


def outcome_destination(outcome: Outcome, plan: FolderPlan) -> str | None:
    """Return the folder a message with ``outcome`` goes to, or None to leave it."""
    if outcome is Outcome.FAILED:
        return None
    if outcome is Outcome.QUARANTINED:
        return plan.quarantine_folder
    if outcome in (Outcome.UNRECOGNISED, Outcome.DUPLICATE) and plan.leave_unrecognised:
        # A duplicate whose first copy's outcome is unknown may be
        # unrecognised mail, so it is left in place too.
        return None
    return plan.processed_folder


class FolderPass:
    """Run one pass over ``plan.folder`` on an open session.

    ``stop`` set during a batch ends the pass once the messages in flight are
    done: what was processed is committed and moved, the rest stays for
    later.
    Messages left in place are not fetched again while their UIDs stay
    valid and the plan still leaves them. The store keeps their UIDs, so a
    restarted daemon skips them too.
    ``concurrency`` messages are classified at once, to keep a worker pool
    busy.
    ``check_lock`` raises when the consumer lock was lost; it runs on the
    store thread before each batch is recorded. ``count`` receives the
    messages to count. For moved messages it runs on the store thread right
    after the rows are marked moved, so a cycle cancelled meanwhile (a lost
    connection cancels it) cannot mark a message without counting it.
    """

    def __init__(
        self,
        plan: FolderPlan,
        store: CycleStore,
        processor: MessageProcessor,
        *,
        stop: asyncio.Event,
        concurrency: int = 1,
        check_lock: Callable[[], None] | None = None,
        count: Callable[[Sequence[Counted]], None] | None = None,
    ) -> None:
        if concurrency < 1:
            msg = f"concurrency must be at least 1, not {concurrency!r}"
            raise ValueError(msg)
        self._concurrency = concurrency
        self._plan = plan
        self._store = store
        self._processor = processor
        self._stop = stop
        self._check_lock = check_lock
        self._count = count if count is not None else _ignore
        # INTERNALDATE by UID for the current batch, which bounds the
        # arrival time the soft-bounce window uses.
        self._received: dict[int, datetime | None] = {}
        # UIDs left in place and counted by an earlier pass. This pass reads
        # them again because mail is no longer left, and does not count them.
        self._counted_before: frozenset[int] = frozenset()
        # Keys of rows that took a new UID after a UIDVALIDITY change in
        # this pass. Their messages stayed in place and were counted before.
        self._adopted: set[str] = set()

    async def start(self, session: ImapSession) -> Start:
        """Select the folder, check UIDVALIDITY and list the UIDs to process."""
        plan, store = self._plan, self._store
        selected = await session.select(plan.folder)
        uidvalidity = selected.uidvalidity
        changed = False
        stored = await store.call(store.uidvalidity, plan.source, plan.folder)
        if stored != uidvalidity:
            changed = await store.call(
                store.set_uidvalidity, plan.source, plan.folder, uidvalidity
            )
        present = await session.search_uids()
        # Left mail gone from the folder is forgotten first, so that it is
        # not confirmed as moved.
        left = await store.call(
            store.left_uids, plan.source, plan.folder, uidvalidity, set(present)
        )
        confirmed = await self._confirm_moves(uidvalidity, set(present))
        if plan.leave_unrecognised or not session.can_move:
            uids = [uid for uid in present if uid not in left]
        else:
            # Mail left while ``unrecognised = "leave"`` was set is moved
            # now, but it was counted when it was first left.
            uids = list(present)
            self._counted_before = frozenset(left)
        return Start(uidvalidity, changed, tuple(uids), confirmed)

    async def _confirm_moves(
        self, uidvalidity: int, present: Set[int]
    ) -> tuple[Counted, ...]:
        """Mark moved the recorded messages that left the folder unconfirmed.

        A recorded message bound for another folder that is no longer in
        the source folder was taken out by a MOVE whose reply never
        arrived. NOTE: a message that another client expunged after the
        commit and before the MOVE is marked moved and counted the same way.
        """
        plan, store = self._plan, self._store
        unmoved = await store.call(
            store.unmoved, plan.source, plan.folder, uidvalidity, self._movable()
        )
        gone = {row.sha256: row.outcome for row in unmoved if row.uid not in present}
        return await self._confirm(gone)

    async def settle(self, uidvalidity: int) -> tuple[Counted, ...]:
        """Mark moved the messages that left the folder before UIDVALIDITY changed.

        Call it only after a pass that read every UID listed at its start.
        Each read gives a recorded message still in the folder its new UID
        back. A row still without a UID therefore belongs to a message that
        left the folder before the change, by a MOVE whose reply was lost.
        NOTE: as in ``_confirm_moves``, a message that another client
        expunged meanwhile is counted the same way.
        """
        plan, store = self._plan, self._store
        gone = await store.call(
            store.unmoved_without_uid,
            plan.source,
            plan.folder,
            uidvalidity,
            self._movable(),
        )
        return await self._confirm(gone)

    def _movable(self) -> list[Outcome]:
        """Return the outcomes whose messages leave the source folder."""
        return [o for o in Outcome if outcome_destination(o, self._plan) is not None]

    async def _confirm(self, gone: Mapping[str, Outcome]) -> tuple[Counted, ...]:
        """Mark moved and count recorded messages found gone from the folder."""
        by_folder: dict[str, list[str]] = {}
        for digest, outcome in gone.items():
            folder = outcome_destination(outcome, self._plan)
            if folder is not None:
                by_folder.setdefault(folder, []).append(digest)
        confirmed: list[Counted] = []
        for folder, digests in by_folder.items():
            marked = await self._store.call(self._mark_confirmed, digests, folder)
            confirmed.extend(marked)
        return tuple(confirmed)

    def _mark_confirmed(self, digests: Sequence[str], folder: str) -> list[Counted]:
        """Mark confirmed moves and count them, on the store thread."""
        counted = list(self._store.mark_moved_many(digests, folder).values())
        self._count(counted)
        return counted

    async def batches(
        self, session: ImapSession, start: Start
    ) -> AsyncIterator[BatchReport]:
        """Process the listed UIDs in ascending batches and yield each report."""
        for batch in chunks(start.uids, self._plan.batch_size):
            if self._stop.is_set():
                return
            began = time.monotonic()
            info = await session.fetch_info(batch)
            sizes = {uid: item.size or 0 for uid, item in info.items()}
            self._received = {uid: item.internal_date for uid, item in info.items()}
            for group in _budget_groups(batch, sizes, self._plan.max_message_bytes):
                if self._stop.is_set():
                    return
                yield await self._run(session, start.uidvalidity, group, sizes, began)
                began = time.monotonic()

    async def _run(
        self,
        session: ImapSession,
        uidvalidity: int,
        uids: Sequence[int],
        sizes: dict[int, int],
        began: float,
    ) -> BatchReport:
        classified = await self._classify_all(session, uidvalidity, uids, sizes)
        reports, left = await self._store.call(
            self._record_all, uidvalidity, uids, sizes, classified
        )
        fault_point("after_commit")
        moved, method, counted = await self._move(session, uidvalidity, reports)
        fault_point("after_move")
        return BatchReport(
            uidvalidity=uidvalidity,
            messages=tuple(reports),
            moved=moved,
            method=method,
            seconds=time.monotonic() - began,
            counted=left + counted,
        )

    async def _classify_all(
        self,
        session: ImapSession,
        uidvalidity: int,
        uids: Sequence[int],
        sizes: dict[int, int],
    ) -> dict[int, Classified]:
        """Fetch the bodies in groups and classify them, ``concurrency`` at a time.

        The next group is fetched while the current one is classified. On a
        stop request no further group is fetched and no new message starts,
        and those in flight finish. Messages expunged by another client
        since the size FETCH have no body and are left out.
        """
        plan = self._plan
        small = [uid for uid in uids if sizes[uid] <= plan.max_message_bytes]
        groups = chunks(small, BODY_GROUP_UIDS)
        turns = asyncio.Semaphore(self._concurrency)
        tasks: dict[int, asyncio.Task[Classified | None]] = {}
        fetching = _fetch_next(session, groups)
        try:
            while fetching is not None:
                bodies = await fetching
                fault_point("after_fetch")
                fetching = None if self._stop.is_set() else _fetch_next(session, groups)
                tasks |= await self._start_group(turns, uidvalidity, bodies)
            await asyncio.gather(*tasks.values())
        finally:
            if fetching is not None and not fetching.done():
                # The reply is only partly read, so the connection is unusable.
                session.drop()
                await _cancel_all({fetching})
            await _cancel_all(set(tasks.values()))
        return {uid: item for uid, task in tasks.items() if (item := task.result())}

    async def _start_group(
        self, turns: asyncio.Semaphore, uidvalidity: int, bodies: dict[int, bytes]
    ) -> dict[int, asyncio.Task[Classified | None]]:
        """Look up one group's earlier copies, then start classifying each."""
        fetched = list(bodies)
        items = [(self._ref(uidvalidity, uid), bodies[uid]) for uid in fetched]
        prepared = await self._store.call(self._processor.prepare, items)
        return {
            uid: asyncio.create_task(self._classify(turns, pending))
            for uid, pending in zip(fetched, prepared, strict=True)
        }

    def _ref(self, uidvalidity: int, uid: int) -> MessageRef:
        plan = self._plan
        received = self._received.get(uid)
        return MessageRef(
            plan.source, plan.folder, uidvalidity, uid, received_at=received
        )

    async def _classify(
        self, turns: asyncio.Semaphore, pending: Pending
    ) -> Classified | None:
        """Classify one message in its turn; None when a stop came first."""
        async with turns:
            if self._stop.is_set():
                return None
            return await self._processor.classify_pending(pending)

    def _record_all(
        self,
        uidvalidity: int,
        uids: Sequence[int],
        sizes: dict[int, int],
        classified: dict[int, Classified],
    ) -> tuple[list[MessageReport], tuple[Counted, ...]]:
        """Record the batch in one transaction, in UID order, on the store thread.

        If one record raises, the whole transaction rolls back and nothing
        of the batch moves. A lost consumer lock raises before anything is
        written, because another process may be working on the folder.
        Returns the reports and the counts of the messages left in place,
        which are counted once the transaction has committed.
        """
        plan = self._plan
        reports: list[MessageReport] = []
        if self._check_lock is not None:
            self._check_lock()
        with self._store.batch():
            for uid in uids:
                if sizes[uid] > plan.max_message_bytes:
                    result = self._oversize(uidvalidity, uid, sizes[uid])
                elif uid in classified:
                    result = self._processor.record(classified[uid])
                else:
                    continue  # expunged meanwhile, or not started before a stop
                reports.append(MessageReport(uid, result, destination(result, plan)))
                if len(reports) == 1:
                    fault_point("mid_batch")
            self._adopted |= self._adopt(uidvalidity, reports)
            staying = [
                r
                for r in reports
                if r.destination is None and r.result.outcome is not Outcome.FAILED
            ]
            left = self._remember_left(uidvalidity, staying)
        self._count(left)
        return reports, tuple(left)

    def _oversize(self, uidvalidity: int, uid: int, size: int) -> Result:
        """Quarantine an oversized message unread, on the store thread.

        After a UIDVALIDITY change the message may have a row under the key
        of its old UID, and then it is that row's duplicate.
        """
        ref = self._ref(uidvalidity, uid)
        adopted = self._store.adopt_oversize(ref, size)
        if adopted is not None:
            return Result(
                Outcome.DUPLICATE, Kind.UNKNOWN, adopted, earlier=Outcome.QUARANTINED
            )
        digest = oversize_digest(self._plan, uidvalidity, uid)
        return self._processor.quarantine_oversize(ref, size, digest)

    def _adopt(self, uidvalidity: int, reports: Sequence[MessageReport]) -> set[str]:
        """Give the rows of duplicates their UID if a UIDVALIDITY change cleared it.

        Returns the keys of the rows that took a UID.
        """
        uids = {
            r.result.sha256: r.uid
            for r in reports
            if r.result.outcome is Outcome.DUPLICATE
        }
        plan = self._plan
        return self._store.adopt_uids(plan.source, plan.folder, uidvalidity, uids)

    def _remember_left(
        self, uidvalidity: int, reports: Sequence[MessageReport]
    ) -> list[Counted]:
        """Store the UIDs of messages that stay in place; return those to count.

        A message is counted by the pass that first stores its UID, so a
        pass that finds it in place again, in this process or after a
        restart, counts nothing. Nor is one counted whose key is in
        ``_adopted``: its row took a new UID after a UIDVALIDITY change, so
        the copies of those bytes were left and counted under the old
        UIDVALIDITY. NOTE: a copy appended after the change and read in
        the same pass is therefore not counted either.
        """
        plan = self._plan
        by_uid = {r.uid: r for r in reports}
        new = self._store.remember_left(plan.source, plan.folder, uidvalidity, by_uid)
        return [
            _as_counted(by_uid[uid].result)
            for uid in sorted(new)
            if by_uid[uid].result.sha256 not in self._adopted
        ]

    async def _move(
        self,
        session: ImapSession,
        uidvalidity: int,
        reports: Sequence[MessageReport],
    ) -> tuple[tuple[tuple[str, int], ...], MoveMethod | None, tuple[Counted, ...]]:
        """Move committed messages by destination, mark them moved and count them.

        Returns the folders with how many went to each, the method used and
        the counts. A moved message is counted under its stored outcome when
        this batch is first to mark it moved, and as a duplicate otherwise.
        One only flagged, because the server cannot move, is counted when
        its UID is first stored as left. A failed message stays, uncounted,
        for the next pass, and is counted once it is recorded with a final
        outcome or quarantined when its attempts run out.
        """
        by_folder: dict[str, list[MessageReport]] = {}
        for report in reports:
            if report.destination is not None:
                by_folder.setdefault(report.destination, []).append(report)

        method: MoveMethod | None = None
        moved: list[tuple[str, int]] = []
        counted: list[Counted] = []
        for folder, group in by_folder.items():
            method = await session.move([r.uid for r in group], folder)
            moved.append((folder, len(group)))
            if method is MoveMethod.FLAGGED:
                flagged = await self._store.call(self._flagged, uidvalidity, group)
                counted.extend(flagged)
                continue
            counted.extend(await self._store.call(self._mark_moved, group, folder))
        return tuple(moved), method, tuple(counted)

    def _flagged(
        self, uidvalidity: int, group: Sequence[MessageReport]
    ) -> list[Counted]:
        """Store flagged messages as left in place and count them.

        Runs on the store thread.
        """
        counted = self._remember_left(uidvalidity, group)
        self._count(counted)
        return counted

    def _mark_moved(self, group: Sequence[MessageReport], folder: str) -> list[Counted]:
        """Mark a moved group and count it, on the store thread.

        A message is counted under its stored outcome by the first call
        that marks it moved, and as a duplicate by any later one.
        """
        digests = [r.result.sha256 for r in group]
        marked = self._store.mark_moved_many(digests, folder)
        counted: list[Counted] = []
        for report in group:
            first = marked.pop(report.result.sha256, None)
            if report.uid in self._counted_before:
                continue
            if first is None:
                first = Counted(report.result.kind.value, Outcome.DUPLICATE.value)
            counted.append(first)
        self._count(counted)
        return counted


def _as_counted(result: Result) -> Counted:
    return Counted(result.kind.value, result.outcome.value)


def _ignore(counted: Sequence[Counted]) -> None:
    del counted


def _budget_groups(
    uids: Sequence[int], sizes: dict[int, int], max_message_bytes: int
) -> Iterator[list[int]]:
    """Split a batch so the bodies held at once stay under BATCH_BODY_BYTES.

    UIDs missing from ``sizes`` were expunged by another client and are
    dropped. Oversized messages are never fetched, so they count as 0.
    """
    group: list[int] = []
    buffered = 0
    for uid in uids:
        if uid not in sizes:
            continue
        size = sizes[uid] if sizes[uid] <= max_message_bytes else 0
        if group and buffered + size > BATCH_BODY_BYTES:
            yield group
            group, buffered = [], 0
        group.append(uid)
        buffered += size
    if group:
        yield group


def _fetch_next(
    session: ImapSession, groups: Iterator[list[int]]
) -> asyncio.Task[dict[int, bytes]] | None:
    """Start fetching the next group of bodies; None when none is left."""
    group = next(groups, None)
    if group is None:
        return None
    return asyncio.create_task(session.fetch_bodies(group))


async def _cancel_all(tasks: Set[asyncio.Task[Any]]) -> None:
    """Cancel unfinished tasks and wait until they have ended."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
