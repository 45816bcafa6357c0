"""Messages from disk: single files, folders of .eml files, Maildirs, mbox files.

Each message is read when the caller asks for it, so a folder of any size
streams in constant memory apart from the largest message.
"""

from __future__ import annotations

import mailbox
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog

from watchdog.config import LocalFormat
from watchdog.errors import MailboxMissing, SourceError

log = structlog.get_logger("watchdog.sources.local")

_MAILDIR_SUBDIRS = ("cur", "new", "tmp")
_MBOX_MAGIC = b"From "
# An asctime() date: weekday, month, day (space-padded), time, year.
_ASCTIME = re.compile(r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]?\d \d{2}:\d{2}:\d{2} \d{4}")
_ASCTIME_FORMAT = "%a %b %d %H:%M:%S %Y"


@dataclass(frozen=True, slots=True)
class LocalMessage:
    """One message read from disk; ``key`` is stable across runs.

    ``raw`` is empty when the file was over the size limit; ``size`` is then
    the size on disk.
    """

    path: Path
    key: str
    raw: bytes
    size: int
    # The date on an mbox message's From_ line, when it parses; the receipt
    # time of other messages is their file's mtime.
    received_at: datetime | None = None


def detect_format(path: Path) -> LocalFormat:
    """Tell whether ``path`` is a Maildir, an mbox file, one .eml file or a folder.

    Raises MailboxMissing when ``path`` does not exist and SourceError when
    it is neither a folder nor a regular file, because opening a FIFO
    blocks until a writer appears.
    """
    if not path.exists():
        msg = f"mail source {str(path)!r} not found: check the path"
        raise MailboxMissing(msg, mailbox=str(path))
    if _is_special(path):
        msg = (
            f"mail source {str(path)!r} is not a regular file or folder: give a "
            "Maildir, an mbox file, an .eml file or a folder of them"
        )
        raise SourceError(msg, mailbox=str(path))
    if path.is_dir():
        if all((path / sub).is_dir() for sub in _MAILDIR_SUBDIRS):
            return LocalFormat.MAILDIR
        return LocalFormat.EML
    with path.open("rb") as stream:
        head = stream.read(len(_MBOX_MAGIC))
    return LocalFormat.MBOX if head == _MBOX_MAGIC else LocalFormat.EML


def iter_messages(
    path: Path, fmt: LocalFormat = LocalFormat.AUTO, *, max_bytes: int | None = None
) -> Iterator[LocalMessage]:
    """Yield the messages under ``path`` in a stable order.

    Folders are walked recursively; a sub-folder that is a Maildir is read as
    one. Files larger than ``max_bytes`` are yielded with empty ``raw`` so the
    caller can record and quarantine them without reading them. Entries that
    are not regular files (directories inside ``cur``, FIFOs, sockets,
    dangling symlinks) and files that vanish before they are read are logged
    and skipped, so one of them neither hangs the read nor hides the files
    after it. So is ``path`` itself when it is such an entry. Raises
    SourceError for a file that exists but cannot be read.
    """
    if _is_special(path):
        log.warning("local_file_skipped", path=str(path), reason="not a regular file")
        return
    if fmt is LocalFormat.AUTO:
        fmt = detect_format(path)
    if fmt is LocalFormat.MAILDIR:
        yield from _iter_maildir(path, max_bytes)
    elif fmt is LocalFormat.MBOX:
        yield from _iter_mbox(path)
    elif path.is_dir():
        yield from _iter_folder(path, max_bytes)
    else:
        yield _read_file(path, path.name, max_bytes)


def count_messages(path: Path, fmt: LocalFormat = LocalFormat.AUTO) -> int:
    """Count the messages under ``path`` without reading them (for progress bars)."""
    if _is_special(path):
        return 0
    if fmt is LocalFormat.AUTO:
        fmt = detect_format(path)
    if fmt is LocalFormat.MAILDIR:
        return sum(1 for file in _maildir_files(path) if _is_regular(file))
    if fmt is LocalFormat.MBOX:
        with path.open("rb") as stream:
            return sum(1 for line in stream if line.startswith(_MBOX_MAGIC))
    if path.is_dir():
        return sum(1 for file in _folder_files(path) if _is_regular(file))
    return 1


def _iter_folder(root: Path, max_bytes: int | None) -> Iterator[LocalMessage]:
    for file in _folder_files(root):
        message = _read_listed(file, str(file.relative_to(root)), max_bytes)
        if message is not None:
            yield message


def _folder_files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        here = Path(dirpath)
        if all(sub in dirnames for sub in _MAILDIR_SUBDIRS):
            yield from _maildir_files(here)
            dirnames.clear()
            continue
        for name in sorted(filenames):
            if not name.startswith("."):
                yield here / name


def _iter_maildir(root: Path, max_bytes: int | None) -> Iterator[LocalMessage]:
    for file in _maildir_files(root):
        # A Maildir file name changes when flags change; the part before ":"
        # does not, so it is the stable key.
        message = _read_listed(file, file.name.split(":", 1)[0], max_bytes)
        if message is not None:
            yield message


def _maildir_files(root: Path) -> Iterator[Path]:
    for sub in ("new", "cur"):
        folder = root / sub
        if folder.is_dir():
            yield from sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _iter_mbox(path: Path) -> Iterator[LocalMessage]:
    box = mailbox.mbox(path, create=False)
    try:
        for key in box.iterkeys():
            with_from = box.get_bytes(key, from_=True)
            from_line, _, raw = with_from.partition(b"\n")
            yield LocalMessage(
                path=path,
                key=f"{path.name}#{key}",
                raw=raw,
                size=len(raw),
                received_at=from_line_date(from_line),
            )
    finally:
        box.close()


def from_line_date(line: bytes) -> datetime | None:
    """Return the delivery time on an mbox From_ line, or None when absent.

    The line ends with an asctime() date, such as ``From MAILER-DAEMON
    Wed Dec  4 19:00:00 2026``, sometimes followed by a zone or "remote
    from" text. The date has no zone and is read as UTC, so it may be off
    by the writer's UTC offset: hours, against soft-bounce windows of days.
    """
    match = _ASCTIME.search(line.decode("ascii", "replace"))
    if match is None:
        return None
    try:
        moment = datetime.strptime(" ".join(match.group(0).split()), _ASCTIME_FORMAT)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC)


def _is_regular(path: Path) -> bool:
    """Return whether ``path`` is, or links to, a regular file."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def _is_special(path: Path) -> bool:
    """Return whether ``path`` exists but is neither a folder nor a regular file."""
    return path.exists() and not path.is_dir() and not _is_regular(path)


def _read_listed(path: Path, key: str, max_bytes: int | None) -> LocalMessage | None:
    """Read a listed entry, or log it and return None when it is no regular file.

    Reading a FIFO would block until a writer appears, and a directory or a
    dangling symlink would end the whole read with an error. A Maildir file
    that a mail client renames (``new`` to ``cur``) after the listing is
    picked up under its new name by the next read.
    """
    if not _is_regular(path):
        reason = "vanished" if not os.path.lexists(path) else "not a regular file"
        log.warning("local_file_skipped", path=str(path), reason=reason)
        return None
    try:
        return _read_file(path, key, max_bytes)
    except SourceError as exc:
        if isinstance(exc.__cause__, FileNotFoundError):
            log.warning("local_file_skipped", path=str(path), reason="vanished")
            return None
        raise


def _read_file(path: Path, key: str, max_bytes: int | None) -> LocalMessage:
    try:
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            return LocalMessage(path=path, key=key, raw=b"", size=size)
        raw = path.read_bytes()
        return LocalMessage(path=path, key=key, raw=raw, size=len(raw))
    except OSError as exc:
        msg = f"cannot read {str(path)!r}: {exc.strerror}"
        raise SourceError(msg, mailbox=str(path)) from exc
