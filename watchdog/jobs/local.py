"""Run the messages of a local Maildir, mbox file or folder through a Processor.

``mail-watchdog scan`` and the daemon's ``[local.NAME]`` sources share this
loop. Files are never moved or changed. Reading them again costs a hash per
message, because the store recognises bytes it has already recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from watchdog.config import LocalFormat
from watchdog.pipeline import MessageRef, Processor, Result
from watchdog.sources.local import LocalMessage, iter_messages

OnResult = Callable[[LocalMessage, Result], None]
Batch = Callable[[], contextlib.AbstractContextManager[None]]


async def process_path(
    processor: Processor,
    source: str,
    path: Path,
    *,
    fmt: LocalFormat = LocalFormat.AUTO,
    max_bytes: int | None = None,
    on_result: OnResult | None = None,
    batch: Batch | None = None,
    batch_size: int = 100,
) -> int:
    """Process every message under ``path`` and return how many were read.

    ``on_result`` is called after each message. A file larger than
    ``max_bytes`` is recorded as quarantined without being read into memory.
    ``batch`` (``Store.batch``) groups the writes of ``batch_size`` messages
    into one transaction, one fsync instead of one per message. Only a
    caller that owns the store may pass it, because the transaction stays
    open while messages are classified. Raises SourceError when a file cannot
    be read and StoreError when the database fails. The messages of an
    unfinished batch are then rolled back.
    """
    messages = iter_messages(path, fmt, max_bytes=max_bytes)
    count = 0
    while True:
        with batch() if batch is not None else contextlib.nullcontext():
            done = 0
            for message in _take(messages, batch_size if batch else None):
                result = await _process_one(processor, source, path, message)
                done += 1
                if on_result is not None:
                    on_result(message, result)
        count += done
        if batch is None or done < batch_size:
            return count


def _take(messages: Iterator[LocalMessage], size: int | None) -> Iterator[LocalMessage]:
    """Yield the next ``size`` messages, or all of them when ``size`` is None."""
    for index, message in enumerate(messages, start=1):
        yield message
        if size is not None and index == size:
            return


async def _process_one(
    processor: Processor, source: str, root: Path, message: LocalMessage
) -> Result:
    ref = MessageRef(
        source=source,
        folder=str(root),
        path=message.key,
        received_at=_received(message),
    )
    if message.raw or message.size == 0:
        return await processor.process(ref, message.raw)
    # iter_messages leaves ``raw`` empty for a file over the size limit.
    digest = _file_sha256(message.path)
    return await processor.quarantine_file(ref, message.size, digest)


def _received(message: LocalMessage) -> datetime | None:
    """Return when ``message`` arrived, at the latest its file's mtime."""
    modified = _modified(message.path)
    if message.received_at is None or modified is None:
        return message.received_at or modified
    return min(message.received_at, modified)


def _modified(path: Path) -> datetime | None:
    """Return the file's modification time, which bounds its messages' arrival."""
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return None


def _file_sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()
