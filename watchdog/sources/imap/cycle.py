"""One pass over an IMAP folder: select, fetch, process, commit, then move.

The order makes every step safe to repeat. Messages of a batch are processed
inside one ``store.batch()`` and moved only after it has committed. A crash
before the commit leaves them unrecorded in the source folder, and a crash
after it leaves them recorded there, so the next pass finds them as
duplicates by SHA-256 and only moves them.

This module does no logging: it returns a report per batch and the mailbox
worker logs it and updates the metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from watchdog.pipeline import MessageRef, Outcome, Result
from watchdog.sources.imap.faults import fault_point
from watchdog.sources.imap.session import ImapSession, MoveMethod
from watchdog.sources.imap.uidset import chunks

BODY_GROUP_UIDS = 20
"""UIDs per ``BODY.PEEK[]`` FETCH: small, because aioimaplib buffers each whole."""

BATCH_BODY_BYTES = 32_000_000
"""Bytes of bodies held in memory per batch before it is processed and moved."""


class CycleStore(Protocol):
    """The part of ``watchdog.store.Store`` the cycle uses."""

    def uidvalidity(self, source: str, folder: str) -> int | None: ...
    def set_uidvalidity(self, source: str, folder: str, value: int) -> bool: ...
    def mark_moved(self, sha256: str, folder: str) -> None: ...
    def batch(self) -> contextlib.AbstractContextManager[None]: ...


class MessageProcessor(Protocol):
    """The part of ``watchdog.pipeline.Processor`` the cycle uses."""

    async def process(self, ref: MessageRef, raw: bytes) -> Result: ...
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
    """The folder's state when the pass began."""

    uidvalidity: int
    uidvalidity_changed: bool
    uids: tuple[int, ...]


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

    In a folder shared with people, unrecognised mail stays where it is.
    A duplicate was recorded with a final outcome before, but the store does
    not say which, so with ``leave_unrecognised`` it is left too.
    """
    outcome = result.outcome
    if outcome is Outcome.FAILED:
        return None
    if outcome is Outcome.QUARANTINED:
        return plan.quarantine_folder
    if outcome in (Outcome.UNRECOGNISED, Outcome.DUPLICATE) and plan.leave_unrecognised:
        # NOTE: a bounce committed just before a crash is also a duplicate,
        # so with unrecognised = "leave" it stays in the source folder; it is
        # counted once and never lost, but it is fetched again each pass.
        return None
    return plan.processed_folder


class FolderPass:
    """Run one pass over ``plan.folder`` on an open session.

    ``stop`` set during a batch ends the pass once the messages in flight are
    done: what was processed is committed and moved, the rest stays for
    later.
    ``left`` contains UIDs left in place during earlier passes of this
    process, which are not fetched again until UIDVALIDITY changes. ``concurrency``
    messages are classified at once, to keep a worker pool busy.
    """

    def __init__(
        self,
        plan: FolderPlan,
        store: CycleStore,
        processor: MessageProcessor,
        *,
        stop: asyncio.Event,
        left: set[int],
        concurrency: int = 1,
    ) -> None:
        if concurrency < 1:
            msg = f"concurrency must be at least 1, not {concurrency!r}"
            raise ValueError(msg)
        self._concurrency = concurrency
        self._plan = plan
        self._store = store
        self._processor = processor
        self._stop = stop
        self._left = left

    async def start(self, session: ImapSession) -> Start:
        """Select the folder, check UIDVALIDITY and list the UIDs to process."""
        plan = self._plan
        selected = await session.select(plan.folder)
        changed = False
        if self._store.uidvalidity(plan.source, plan.folder) != selected.uidvalidity:
            changed = self._store.set_uidvalidity(
                plan.source, plan.folder, selected.uidvalidity
            )
        if changed:
            self._left.clear()
        uids = [uid for uid in await session.search_uids() if uid not in self._left]
        return Start(selected.uidvalidity, changed, tuple(uids))

    async def batches(
        self, session: ImapSession, start: Start
    ) -> AsyncIterator[BatchReport]:
        """Process the listed UIDs in ascending batches and yield each report."""
        for batch in chunks(start.uids, self._plan.batch_size):
            if self._stop.is_set():
                return
            began = time.monotonic()
            sizes = await session.fetch_sizes(batch)
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
        small = [uid for uid in uids if sizes[uid] <= self._plan.max_message_bytes]
        bodies: dict[int, bytes] = {}
        for group in chunks(small, BODY_GROUP_UIDS):
            bodies.update(await session.fetch_bodies(group))
        fault_point("after_fetch")

        reports = await self._process_all(uidvalidity, uids, sizes, bodies)
        fault_point("after_commit")
        moved, method = await self._move(session, reports)
        fault_point("after_move")
        return BatchReport(
            uidvalidity=uidvalidity,
            messages=tuple(reports),
            moved=moved,
            method=method,
            seconds=time.monotonic() - began,
        )

    async def _process_all(
        self,
        uidvalidity: int,
        uids: Sequence[int],
        sizes: dict[int, int],
        bodies: dict[int, bytes],
    ) -> list[MessageReport]:
        """Process the batch in one transaction, ``concurrency`` messages at a time.

        Store calls are synchronous, so concurrent messages overlap only
        while they wait for the classifier. On a stop request no new message
        starts and those in flight finish. If one raises, the others are
        cancelled and the whole transaction rolls back.
        """
        plan = self._plan
        reports: list[MessageReport] = []
        waiting = iter(uids)
        running: set[asyncio.Task[MessageReport | None]] = set()
        with self._store.batch():
            try:
                while True:
                    while len(running) < self._concurrency and not self._stop.is_set():
                        uid = next(waiting, None)
                        if uid is None:
                            break
                        ref = MessageRef(plan.source, plan.folder, uidvalidity, uid)
                        body = bodies.pop(uid, None)
                        running.add(
                            asyncio.create_task(self._one(ref, sizes[uid], body))
                        )
                    if not running:
                        break
                    done, running = await asyncio.wait(
                        running, return_when=asyncio.FIRST_COMPLETED
                    )
                    for task in done:
                        if (report := task.result()) is not None:
                            reports.append(report)
                            if len(reports) == 1:
                                fault_point("mid_batch")
            finally:
                await _cancel_all(running)
        return reports

    async def _one(
        self, ref: MessageRef, size: int, body: bytes | None
    ) -> MessageReport | None:
        """Process one message; None when it vanished since the size FETCH."""
        assert ref.uid is not None and ref.uidvalidity is not None
        if size > self._plan.max_message_bytes:
            digest = oversize_digest(self._plan, ref.uidvalidity, ref.uid)
            result = self._processor.quarantine_oversize(ref, size, digest)
        elif body is not None:
            result = await self._processor.process(ref, body)
        else:
            return None  # expunged by another client since the size FETCH
        return MessageReport(ref.uid, result, destination(result, self._plan))

    async def _move(
        self, session: ImapSession, reports: Sequence[MessageReport]
    ) -> tuple[tuple[tuple[str, int], ...], MoveMethod | None]:
        """Move committed messages by destination, then note where they went."""
        by_folder: dict[str, list[MessageReport]] = {}
        for report in reports:
            if report.result.outcome is Outcome.FAILED:
                continue  # retried by the next pass until its attempts run out
            if report.destination is None:
                self._left.add(report.uid)
            else:
                by_folder.setdefault(report.destination, []).append(report)

        method: MoveMethod | None = None
        moved: list[tuple[str, int]] = []
        for folder, group in by_folder.items():
            method = await session.move([r.uid for r in group], folder)
            moved.append((folder, len(group)))
            if method is MoveMethod.FLAGGED:
                self._left.update(r.uid for r in group)
                continue
            with self._store.batch():
                for report in group:
                    self._store.mark_moved(report.result.sha256, folder)
        return tuple(moved), method


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


async def _cancel_all(tasks: set[asyncio.Task[MessageReport | None]]) -> None:
    """Cancel unfinished tasks and wait until they have ended."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
