"""Follow a growing log file across rotation, in bounded chunks.

``LogFollower`` keeps the file open between reads, like ``tail -F``, and
hands each complete line to a callback. Its ``Position`` (device, inode,
offset and a hash of the file's first bytes) is what the daemon stores, so
that after a restart reading resumes at the first line not yet counted.

Rotation:

- rename and a new file (logrotate's default, ``mail.log`` becomes
  ``mail.log.1``): the open file is read to its end first, so the lines
  written just before the rename are counted. The reader moves to the new
  file once that file has data, because the writer keeps writing to the old
  one until it reopens its log. When the path was rotated twice before
  the reader noticed, the file in between (``mail.log.1`` by then) is read
  whole before the new one;
- ``copytruncate``: the file shrinks below the offset, or its first bytes
  change. The lines after the offset that were written before the copy are
  read from the copy (the rotation-named sibling that starts with the same
  bytes, ``mail.log.1``), then reading starts again at offset 0. Lines
  written between the copy and the truncation are lost, as
  ``copytruncate`` documents;
- a rename while the daemon was stopped: the stored inode is looked for
  among the uncompressed siblings of the path (``mail.log.1``,
  ``mail.log-20261204``) and the rest of that file is read first.

A partial last line stays in the file until its newline arrives: it is
neither counted nor skipped, and the stored offset stays before it.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import re
import stat
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from watchdog.errors import SourceError

CHUNK_BYTES = 1 << 20
DEFAULT_MAX_LINE_BYTES = 64 * 1024
# Bytes at the start of the file hashed to recognise it after a restart.
HEAD_BYTES = 1024
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".Z")
_GZIP_MAGIC = b"\x1f\x8b"
# Suffixes of rotated copies: ".1", "-20261204", ".2026-12-04". Other
# siblings, such as SUSE's "mail.info" next to "mail", are other live logs.
_ROTATION_SUFFIX = re.compile(r"[.\-_]\d[\d.\-_]*")

OnLine = Callable[[bytes], None]


@dataclass(frozen=True, slots=True)
class Position:
    """Reading position: the file's identity and the next byte to read.

    ``head`` is the SHA-256 of the file's first ``head_size`` bytes, which
    distinguishes a truncated or replaced file from the one read before, even
    when the new one reuses the inode.
    """

    device: int
    inode: int
    offset: int
    head: str
    head_size: int


class Rotation(StrEnum):
    """Kind of change to the file at the path, as a metric label."""

    RENAMED = "renamed"
    TRUNCATED = "truncated"


@dataclass(slots=True)
class ReadResult:
    """Outcome of one ``read``.

    ``position`` is None while no file has been opened (the path does not
    exist yet). ``more`` is true when the byte budget ran out before the end
    of the file. ``position_lost`` is true when the stored position pointed
    into a file that is gone or was truncated, so the lines after it in that
    file were not read.
    """

    position: Position | None
    bytes_read: int = 0
    too_long: int = 0
    more: bool = False
    position_lost: bool = False
    rotations: list[Rotation] = field(default_factory=list)

    @property
    def missing(self) -> bool:
        """Whether the path did not exist, so no file was read."""
        return self.position is None


class LineSplitter:
    """Split chunks into lines, dropping lines over ``max_line_bytes``.

    ``consumed`` counts the bytes of every complete line handed out or
    dropped, so it is the offset to resume at.
    """

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self.max_line_bytes = max_line_bytes
        self.consumed = 0
        self.too_long = 0
        self._partial = b""
        self._dropping = False

    def feed(self, chunk: bytes, on_line: OnLine) -> None:
        """Pass each complete line of ``chunk`` (without its newline) on."""
        data = self._partial + chunk if self._partial else chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        if self._dropping and lines:
            # The rest of an overlong line ends at the first newline.
            self.consumed += len(lines[0]) + 1
            lines = lines[1:]
            self._dropping = False
        for line in lines:
            self.consumed += len(line) + 1
            if len(line) > self.max_line_bytes:
                self.too_long += 1
                continue
            on_line(line)
        if len(self._partial) > self.max_line_bytes:
            if not self._dropping:
                self.too_long += 1
            self._dropping = True
            self.consumed += len(self._partial)
            self._partial = b""

    def finish(self, on_line: OnLine) -> None:
        """Pass on a last line that has no newline, at the end of a file."""
        if self._partial and not self._dropping:
            self.consumed += len(self._partial)
            on_line(self._partial)
        self._partial = b""
        self._dropping = False

    def reset(self, offset: int, *, inside_line: bool = False) -> None:
        """Forget any partial line and continue counting from ``offset``.

        With ``inside_line`` the bytes up to the next newline are the rest
        of a line that started before ``offset``, and they are dropped.
        """
        self._partial = b""
        self._dropping = inside_line
        self.consumed = offset


class LogFollower:
    """Read the log at ``path`` from ``position`` on, surviving rotation.

    Without a position the first read starts at the end of the file (the
    start of its last complete line) unless ``from_start`` is set. Raises
    SourceError when the file exists but cannot be opened or read.
    """

    def __init__(
        self,
        path: Path,
        position: Position | None = None,
        *,
        from_start: bool = False,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        self.path = path
        self._saved = position
        self._from_start = from_start
        self._chunk = chunk_bytes
        self._file: BinaryIO | None = None
        self._identity: tuple[int, int] | None = None
        self._splitter = LineSplitter(max_line_bytes)
        self._head = ("", 0)
        self._waited = False
        self._reading_copy = False

    def close(self) -> None:
        """Close the open file, if any."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def read(self, budget: int, on_line: OnLine) -> ReadResult:
        """Read up to about ``budget`` bytes of complete lines into ``on_line``."""
        result = ReadResult(position=None)
        if self._file is not None:
            # Before reading on: content written after a truncation must not
            # be taken for the rest of the old file.
            self._truncated(self._stat_open(), result)
        elif not self._open_saved(result):
            return result
        too_long = self._splitter.too_long
        while True:
            self._drain(budget - result.bytes_read, on_line, result)
            if result.more or not self._rotated(budget, on_line, result):
                break
        result.too_long = self._splitter.too_long - too_long
        result.position = self._position()
        return result

    # -- opening ---------------------------------------------------------

    def _open_saved(self, result: ReadResult) -> bool:
        """Open the file to resume in; return False when there is none yet."""
        saved = self._saved
        current = _stat(self.path)
        if saved is not None:
            rotated = self._find_rotated(saved, current)
            if rotated is not None:
                self._saved = None
                self._use(rotated, saved.offset)
                return True
        if current is None:
            self._waited = True
            return False
        if saved is not None:
            identity = (saved.device, saved.inode)
            same = (current.st_dev, current.st_ino) == identity
            result.rotations.append(Rotation.TRUNCATED if same else Rotation.RENAMED)
            copy = self._find_copy(saved.head, saved.head_size, saved.offset, identity)
            if copy is not None:
                self._use(copy, saved.offset)
                self._reading_copy = True
            else:
                result.position_lost = True
                self._use(self.path, 0)
        elif self._from_start or self._waited:
            # A file that appears after the reader started contains only new
            # lines.
            self._use(self.path, 0)
        else:
            self._use(self.path, None)
        self._saved = None
        return True

    def _find_rotated(
        self, saved: Position, current: os.stat_result | None
    ) -> Path | None:
        """Return the file ``saved`` points into: the path or a rotated sibling."""
        candidates = [self.path, *self._siblings()]
        for candidate in candidates:
            info = current if candidate == self.path else _stat(candidate)
            if info is None or (info.st_dev, info.st_ino) != (
                saved.device,
                saved.inode,
            ):
                continue
            if (
                info.st_size >= saved.offset
                and _head_digest(candidate, saved.head_size) == saved.head
            ):
                return candidate
        return None

    def _find_copy(
        self, head: str, head_size: int, offset: int, identity: tuple[int, int]
    ) -> Path | None:
        """Return the copy that ``copytruncate`` made of a truncated file.

        It is the rotation-named sibling, other than the file ``identity``,
        that starts with the same ``head_size`` bytes and reaches ``offset``.
        The lines after ``offset`` in it were written before the copy and
        not read yet.
        """
        if not head_size:
            return None
        for sibling in self._rotations():
            info = _stat(sibling)
            if info is None or info.st_size < offset:
                continue
            if (info.st_dev, info.st_ino) == identity:
                continue
            if _head_digest(sibling, head_size) == head:
                return sibling
        return None

    def _siblings(self) -> list[Path]:
        """Return the uncompressed files whose names extend the path's name."""
        with contextlib.suppress(OSError):
            return sorted(
                p
                for p in self.path.parent.iterdir()
                if p.name.startswith(self.path.name)
                and p != self.path
                and not p.name.endswith(_COMPRESSED)
            )
        return []

    def _rotations(self) -> list[Path]:
        """Return the siblings named as rotations (``mail.log.1``)."""
        start = len(self.path.name)
        return [
            sibling
            for sibling in self._siblings()
            if _ROTATION_SUFFIX.fullmatch(sibling.name[start:]) is not None
        ]

    def _next_rotation(self, current: os.stat_result) -> Path | None:
        """Return the rotated file written after the open one, if any.

        When the path was rotated twice since the open file's last line,
        the file in between (now ``mail.log.1``) was written after the open
        one and before the path, so its modification time is later than
        the open file's. Of several such files, the oldest comes next.
        NOTE: a sibling copied by hand at that moment would be read too, and
        one compressed already (no delaycompress) is lost without a warning.
        """
        opened = self._stat_open()
        later: list[tuple[int, Path]] = []
        for sibling in self._rotations():
            info = _stat(sibling)
            if info is None or not info.st_size:
                continue
            identity = (info.st_dev, info.st_ino)
            if identity in (self._identity, (current.st_dev, current.st_ino)):
                continue
            if info.st_mtime_ns > opened.st_mtime_ns:
                later.append((info.st_mtime_ns, sibling))
        return min(later)[1] if later else None

    def _use(self, path: Path, offset: int | None) -> None:
        """Open ``path`` at ``offset``, or at its last line when None."""
        self.close()
        self._reading_copy = False
        stream, info = _open_regular(path)
        if offset is None:
            offset = _last_line_start(stream, info.st_size)
        # The offset is inside a line when it was stored while an overlong
        # line was being dropped, or when the file's last DEFAULT_MAX_LINE_BYTES
        # contain no newline.
        inside_line = offset > 0 and os.pread(stream.fileno(), 1, offset - 1) != b"\n"
        stream.seek(offset)
        self._file = stream
        self._identity = (info.st_dev, info.st_ino)
        self._splitter.reset(offset, inside_line=inside_line)
        self._head = ("", 0)

    # -- reading -----------------------------------------------------------

    def _drain(self, budget: int, on_line: OnLine, result: ReadResult) -> None:
        assert self._file is not None
        while budget > 0:
            try:
                chunk = self._file.read(min(self._chunk, budget))
            except OSError as exc:
                raise _read_error(self.path, exc) from exc
            if not chunk:
                return
            budget -= len(chunk)
            result.bytes_read += len(chunk)
            self._splitter.feed(chunk, on_line)
        result.more = True

    def _rotated(self, budget: int, on_line: OnLine, result: ReadResult) -> bool:
        """Switch files after a rotation; return True when reading goes on."""
        assert self._file is not None
        current = _stat(self.path)
        if current is None:
            return False
        if (current.st_dev, current.st_ino) != self._identity:
            if current.st_size == 0:
                return False
            # The writer has moved to the new file, so the old one is
            # complete, but lines may have reached it after the last read.
            self._drain(budget - result.bytes_read, on_line, result)
            if result.more:
                return False
            self._splitter.finish(on_line)
            # Leaving the copy of a copytruncate rotation, counted already.
            renamed = not self._reading_copy
            self._use(self._next_rotation(current) or self.path, 0)
            if renamed:
                result.rotations.append(Rotation.RENAMED)
            return True
        return self._truncated(current, result)

    def _truncated(self, current: os.stat_result, result: ReadResult) -> bool:
        """Start over at offset 0 when the open file was truncated or replaced."""
        if current.st_size >= self._splitter.consumed and not self._replaced():
            return False
        result.rotations.append(Rotation.TRUNCATED)
        digest, size = self._head
        assert self._identity is not None
        offset = self._splitter.consumed
        copy = self._find_copy(digest, size, offset, self._identity)
        if copy is not None:
            self._use(copy, offset)
            self._reading_copy = True
            return True
        self._file_handle().seek(0)
        self._splitter.reset(0)
        self._head = ("", 0)
        return True

    def _stat_open(self) -> os.stat_result:
        return os.fstat(self._file_handle().fileno())

    def _replaced(self) -> bool:
        """Return whether the file's first bytes differ from those hashed before."""
        digest, size = self._head
        if not size:
            return False
        return _hash_at(self._file_handle(), size) != digest

    def _file_handle(self) -> BinaryIO:
        assert self._file is not None
        return self._file

    def _position(self) -> Position:
        stream = self._file_handle()
        assert self._identity is not None
        digest, size = self._head
        if size < HEAD_BYTES:
            size = min(HEAD_BYTES, self._splitter.consumed)
            digest = _hash_at(stream, size)
            self._head = (digest, size)
        return Position(
            device=self._identity[0],
            inode=self._identity[1],
            offset=self._splitter.consumed,
            head=digest,
            head_size=size,
        )


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _read_error(path, exc) from exc


def _open_regular(path: Path) -> tuple[BinaryIO, os.stat_result]:
    """Open ``path`` for reading; raise SourceError unless it is a regular file.

    O_NONBLOCK keeps the open of a FIFO from waiting for a writer, and has
    no effect on reads of a regular file.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise _read_error(path, exc) from exc
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode):
        os.close(descriptor)
        msg = (
            f"cannot read MTA log {str(path)!r}: not a regular file, so set "
            "mta_log.path to the log file itself"
        )
        raise SourceError(msg, mailbox="mta-log")
    return os.fdopen(descriptor, "rb", buffering=0), info


def _hash_at(stream: BinaryIO, size: int) -> str:
    data = os.pread(stream.fileno(), size, 0)
    return hashlib.sha256(data).hexdigest()


def _head_digest(path: Path, size: int) -> str | None:
    """Return the hash of the first ``size`` bytes of ``path``, or None."""
    try:
        with path.open("rb") as stream:
            return _hash_at(stream, size)
    except OSError:
        return None


def _last_line_start(stream: BinaryIO, size: int) -> int:
    """Return the offset just after the last newline before ``size``."""
    start = max(0, size - DEFAULT_MAX_LINE_BYTES)
    tail = os.pread(stream.fileno(), size - start, start)
    newline = tail.rfind(b"\n")
    return size if newline < 0 else start + newline + 1


def _read_error(path: Path, exc: OSError) -> SourceError:
    reason = exc.strerror or type(exc).__name__
    hint = ""
    if isinstance(exc, PermissionError):
        hint = (
            ": give the daemon's user read access, for example by adding it to "
            "the group that owns the log (adm on Debian)"
        )
    msg = f"cannot read MTA log {str(path)!r}: {reason}{hint}"
    return SourceError(msg, mailbox="mta-log")


def read_lines(path: Path, on_line: OnLine, *, max_line_bytes: int) -> int:
    """Pass every line of a whole file on, gzip-compressed or not.

    Returns how many lines were too long and dropped. Raises SourceError
    when the file cannot be read.
    """
    splitter = LineSplitter(max_line_bytes)
    try:
        with _open_whole(path) as stream:
            for chunk in iter(lambda: stream.read(CHUNK_BYTES), b""):
                splitter.feed(chunk, on_line)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        reason = "is cut short" if isinstance(exc, EOFError) else f"is damaged ({exc})"
        msg = f"cannot read MTA log {str(path)!r}: the compressed data {reason}"
        raise SourceError(msg, mailbox="mta-log") from exc
    except OSError as exc:
        raise _read_error(path, exc) from exc
    splitter.finish(on_line)
    return splitter.too_long


@contextlib.contextmanager
def _open_whole(path: Path) -> Iterator[io.BufferedIOBase]:
    """Open ``path``, uncompressing it when it starts with gzip's magic bytes.

    The content decides, not the name, because a pipe has no ``.gz``.
    """
    with path.open("rb") as stream:
        if not stream.peek(len(_GZIP_MAGIC)).startswith(_GZIP_MAGIC):
            yield stream
            return
        with gzip.GzipFile(fileobj=stream, mode="rb") as unpacked:
            yield unpacked
