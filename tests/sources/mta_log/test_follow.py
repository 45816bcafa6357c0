"""Following a log file: start, partial lines, rotation, restart, limits."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from tests.servers.common import service_dir
from watchdog.errors import SourceError
from watchdog.sources.mta_log import follow
from watchdog.sources.mta_log.follow import (
    LineSplitter,
    LogFollower,
    Position,
    ReadResult,
    Rotation,
)

BUDGET = 1 << 20


class Lines:
    """Collects the lines a follower hands out."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def __call__(self, line: bytes) -> None:
        self.seen.append(line)

    def take(self) -> list[bytes]:
        seen, self.seen = self.seen, []
        return seen


def _append(path: Path, text: str) -> None:
    with path.open("ab") as stream:
        stream.write(text.encode())


def _read(follower: LogFollower, lines: Lines) -> tuple[list[bytes], ReadResult]:
    result = follower.read(BUDGET, lines)
    return lines.take(), result


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "mail.log"
    path.write_text("old 1\nold 2\n")
    return path


def test_start_at_end(log: Path) -> None:
    """Without a position, reading starts after the lines already there."""
    follower, lines = LogFollower(log), Lines()
    assert _read(follower, lines)[0] == []
    _append(log, "new 1\n")
    assert _read(follower, lines)[0] == [b"new 1"]


def test_start_at_end_partial(log: Path) -> None:
    """Starting at the end begins at the start of a partial last line."""
    _append(log, "half")
    follower, lines = LogFollower(log), Lines()
    assert _read(follower, lines)[0] == []
    _append(log, " done\n")
    assert _read(follower, lines)[0] == [b"half done"]


def test_from_start(log: Path) -> None:
    """``from_start`` counts the lines already in the file."""
    follower, lines = LogFollower(log, from_start=True), Lines()
    seen, result = _read(follower, lines)
    assert seen == [b"old 1", b"old 2"]
    assert result.position is not None
    assert result.position.offset == log.stat().st_size


def test_partial_line_counted_once(log: Path) -> None:
    """A line is handed out once, after its newline arrives."""
    follower, lines = LogFollower(log), Lines()
    _read(follower, lines)
    _append(log, "first\nsec")
    seen, result = _read(follower, lines)
    assert seen == [b"first"]
    assert result.position is not None
    assert result.position.offset == log.stat().st_size - 3
    _append(log, "ond\n")
    assert _read(follower, lines)[0] == [b"second"]


def test_restart_resumes(log: Path) -> None:
    """A new follower at the stored position reads each line once."""
    follower, lines = LogFollower(log, from_start=True), Lines()
    _, result = _read(follower, lines)
    follower.close()
    _append(log, "after 1\nafter 2\npart")
    again = LogFollower(log, result.position)
    seen, result = _read(again, lines)
    assert seen == [b"after 1", b"after 2"]
    again.close()
    _append(log, "ial\n")
    third = LogFollower(log, result.position)
    assert _read(third, lines)[0] == [b"partial"]


def test_rename_rotation(log: Path) -> None:
    """After a rename the old file's tail is read, then the new file."""
    follower, lines = LogFollower(log), Lines()
    _read(follower, lines)
    _append(log, "tail 1\n")
    log.rename(log.with_name("mail.log.1"))
    log.write_text("fresh 1\n")
    seen, result = _read(follower, lines)
    assert seen == [b"tail 1", b"fresh 1"]
    assert result.rotations == [Rotation.RENAMED]
    assert result.position is not None
    assert result.position.inode == log.stat().st_ino


def _rotate(log: Path, text: str) -> None:
    """Rename mail.log.1 to mail.log.2 and mail.log to mail.log.1, then write
    ``text`` to a new mail.log, a second later by the files' clocks."""
    first = log.with_name("mail.log.1")
    if first.exists():
        first.rename(log.with_name("mail.log.2"))
    log.rename(first)
    log.write_text(text)
    later = first.stat().st_mtime + 1
    os.utime(log, (later, later))


def test_two_renames_between_reads(log: Path) -> None:
    """A file rotated in and out between two reads is read too."""
    follower, lines = LogFollower(log), Lines()
    _read(follower, lines)
    _append(log, "tail 1\n")
    _rotate(log, "middle 1\nmiddle 2\n")
    _rotate(log, "fresh 1\n")
    seen, result = _read(follower, lines)
    assert seen == [b"tail 1", b"middle 1", b"middle 2", b"fresh 1"]
    assert result.rotations == [Rotation.RENAMED, Rotation.RENAMED]
    assert result.position is not None
    assert result.position.inode == log.stat().st_ino


def test_restart_after_two_renames(log: Path) -> None:
    """Two rotations while stopped: mail.log.2, mail.log.1, then mail.log."""
    follower, lines = LogFollower(log, from_start=True), Lines()
    _, result = _read(follower, lines)
    follower.close()
    _append(log, "unread 1\n")
    _rotate(log, "middle 1\n")
    _rotate(log, "fresh 1\n")
    seen, result = _read(LogFollower(log, result.position), lines)
    assert seen == [b"unread 1", b"middle 1", b"fresh 1"]
    assert not result.position_lost


def test_other_live_logs_not_read(tmp_path: Path) -> None:
    """Beside SUSE's /var/log/mail, mail.info is another log, not a rotation."""
    log = tmp_path / "mail"
    log.write_text("old 1\n")
    follower, lines = LogFollower(log), Lines()
    _read(follower, lines)
    log.rename(tmp_path / "mail-20261204")
    info = tmp_path / "mail.info"
    info.write_text("copy 1\n")
    log.write_text("fresh 1\n")
    later = log.with_name("mail-20261204").stat().st_mtime + 1
    os.utime(info, (later, later))
    assert _read(follower, lines)[0] == [b"fresh 1"]


def test_older_rotations_not_reread(log: Path) -> None:
    """Files rotated before the open one are not read again."""
    follower, lines = LogFollower(log, from_start=True), Lines()
    _read(follower, lines)
    _rotate(log, "second 1\n")
    assert _read(follower, lines)[0] == [b"second 1"]
    _rotate(log, "third 1\n")
    assert _read(follower, lines)[0] == [b"third 1"]


def test_rename_write_after_last_read(
    log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line the writer adds to the old file after the reader reached its
    end, and before the reader looks at the path, is still read.

    The writer plays that moment inside the reader's stat of the path.
    """
    follower, lines = LogFollower(log), Lines()
    _read(follower, lines)
    rotated = log.with_name("mail.log.1")
    log.rename(rotated)
    real_stat = follow._stat

    def stat_after_write(path: Path) -> os.stat_result | None:
        if path == log and not log.exists():
            _append(rotated, "last 1\n")
            log.write_text("fresh 1\n")
        return real_stat(path)

    monkeypatch.setattr(follow, "_stat", stat_after_write)
    seen, result = _read(follower, lines)
    assert seen == [b"last 1", b"fresh 1"]
    assert result.rotations == [Rotation.RENAMED]


def test_rename_waits_for_writer(log: Path) -> None:
    """While the new file is empty the writer may still use the old one."""
    follower, lines = LogFollower(log), Lines()
    _read(follower, lines)
    rotated = log.with_name("mail.log.1")
    log.rename(rotated)
    log.write_text("")
    _append(rotated, "late 1\n")
    assert _read(follower, lines)[0] == [b"late 1"]
    _append(rotated, "late 2\n")
    _append(log, "fresh 1\n")
    seen, result = _read(follower, lines)
    assert seen == [b"late 2", b"fresh 1"]
    assert result.rotations == [Rotation.RENAMED]


def test_rotated_partial_line(log: Path) -> None:
    """An unfinished last line of a rotated file still counts once."""
    follower, lines = LogFollower(log), Lines()
    _read(follower, lines)
    _append(log, "cut")
    log.rename(log.with_name("mail.log.1"))
    log.write_text("fresh\n")
    assert _read(follower, lines)[0] == [b"cut", b"fresh"]


def test_copytruncate(log: Path) -> None:
    """A truncated file is read again from its start."""
    follower, lines = LogFollower(log), Lines()
    _append(log, "x" * 50 + "\n")
    _read(follower, lines)
    with log.open("r+b") as stream:
        stream.truncate(0)
    _append(log, "after\n")
    seen, result = _read(follower, lines)
    assert seen == [b"after"]
    assert result.rotations == [Rotation.TRUNCATED]


def _copytruncate(log: Path) -> Path:
    """Copy mail.log to mail.log.1 and empty mail.log, as logrotate does."""
    copy = log.with_name("mail.log.1")
    shutil.copyfile(log, copy)
    with log.open("r+b") as stream:
        stream.truncate(0)
    return copy


def test_copytruncate_unread_lines(log: Path) -> None:
    """Lines written before the copy but not read yet are read from the copy."""
    follower, lines = LogFollower(log, from_start=True), Lines()
    _read(follower, lines)
    _append(log, "unread 1\n")
    _copytruncate(log)
    _append(log, "after 1\n")
    seen, result = _read(follower, lines)
    assert seen == [b"unread 1", b"after 1"]
    assert result.rotations == [Rotation.TRUNCATED]
    assert not result.position_lost


def test_copytruncate_new_file_empty(log: Path) -> None:
    """The copy is read while the truncated file is still empty."""
    follower, lines = LogFollower(log, from_start=True), Lines()
    _read(follower, lines)
    _append(log, "unread 1\n")
    _copytruncate(log)
    assert _read(follower, lines)[0] == [b"unread 1"]
    _append(log, "after 1\n")
    seen, result = _read(follower, lines)
    assert seen == [b"after 1"]
    assert result.rotations == []


def test_restart_after_copytruncate(log: Path) -> None:
    """copytruncate while stopped: the rest of the copy, then mail.log."""
    follower, lines = LogFollower(log, from_start=True), Lines()
    _, result = _read(follower, lines)
    follower.close()
    _append(log, "unread 1\n")
    _copytruncate(log)
    _append(log, "after 1\n")
    seen, result = _read(LogFollower(log, result.position), lines)
    assert seen == [b"unread 1", b"after 1"]
    assert result.rotations == [Rotation.TRUNCATED]
    assert not result.position_lost


def test_truncated_and_regrown(log: Path) -> None:
    """A file truncated and refilled past the offset is recognised by its head."""
    follower, lines = LogFollower(log, from_start=True), Lines()
    _read(follower, lines)
    with log.open("r+b") as stream:
        stream.truncate(0)
    log.write_text("other 1\nother 2\nother 3\n")
    seen, result = _read(follower, lines)
    assert seen == [b"other 1", b"other 2", b"other 3"]
    assert result.rotations == [Rotation.TRUNCATED]


def test_restart_after_rename(log: Path) -> None:
    """A rotation while stopped: the rest of mail.log.1 first, then mail.log."""
    follower, lines = LogFollower(log, from_start=True), Lines()
    _, result = _read(follower, lines)
    follower.close()
    _append(log, "unread 1\n")
    log.rename(log.with_name("mail.log.1"))
    log.write_text("fresh 1\n")
    again = LogFollower(log, result.position)
    seen, result = _read(again, lines)
    assert seen == [b"unread 1", b"fresh 1"]
    assert result.rotations == [Rotation.RENAMED]
    assert not result.position_lost


def test_restart_rotated_away(log: Path) -> None:
    """When the old file is gone (compressed), the new one is read whole."""
    follower, lines = LogFollower(log, from_start=True), Lines()
    _, result = _read(follower, lines)
    follower.close()
    log.rename(log.with_name("mail.log.1.gz"))
    log.write_text("fresh 1\n")
    seen, result = _read(LogFollower(log, result.position), lines)
    assert seen == [b"fresh 1"]
    assert result.rotations == [Rotation.RENAMED]
    assert result.position_lost


def test_restart_after_truncation(log: Path) -> None:
    """Truncated and refilled while stopped: the same inode, another head."""
    follower, lines = LogFollower(log, from_start=True), Lines()
    _, result = _read(follower, lines)
    follower.close()
    log.write_text("Dec 05 other content, longer than before\n")
    seen, _ = _read(LogFollower(log, result.position), lines)
    assert seen == [b"Dec 05 other content, longer than before"]


def test_missing_file(tmp_path: Path) -> None:
    """A log that does not exist yet is waited for, then read from its start."""
    path = tmp_path / "mail.log"
    follower, lines = LogFollower(path), Lines()
    seen, result = _read(follower, lines)
    assert result.missing
    assert result.position is None
    path.write_text("first\n")
    seen, result = _read(follower, lines)
    assert seen == [b"first"]
    assert not result.missing


def test_missing_keeps_position(log: Path) -> None:
    """A stored position survives polls while the path is missing."""
    follower, lines = LogFollower(log, from_start=True), Lines()
    _, result = _read(follower, lines)
    follower.close()
    log.rename(log.with_name("elsewhere"))
    again = LogFollower(log, result.position)
    assert _read(again, lines)[1].missing
    log.write_text("new file\n")
    assert _read(again, lines)[0] == [b"new file"]


def test_budget(log: Path) -> None:
    """A read stops near its byte budget and reports that more is waiting."""
    _append(log, "".join(f"line {n:04}\n" for n in range(1000)))
    follower = LogFollower(log, from_start=True, chunk_bytes=1000)
    lines = Lines()
    result = follower.read(5000, lines)
    assert result.more
    first = lines.take()
    while follower.read(5000, lines).more:
        pass
    assert len(first) + len(lines.take()) == 1002


def test_too_long_line(log: Path) -> None:
    """A line over the limit is dropped and counted; its neighbours are not."""
    _append(log, "before\n" + "x" * 5000 + "\nafter\n")
    follower = LogFollower(log, from_start=True, max_line_bytes=1024, chunk_bytes=700)
    lines = Lines()
    seen, result = _read(follower, lines)
    assert seen == [b"old 1", b"old 2", b"before", b"after"]
    assert result.too_long == 1
    assert result.position is not None
    assert result.position.offset == log.stat().st_size


def test_restart_inside_too_long_line(log: Path) -> None:
    """A position inside a dropped line resumes after that line's end.

    The rest of the line could otherwise pass for a line of its own, such
    as a forged delivery line at its end.
    """
    forged = b"Dec 04 22:11:13 mta postfix/smtp[1]: ABC: to=<a@gmail.com>"
    log.write_bytes(b"x" * 2000 + forged + b"\nafter\n")
    follower = LogFollower(log, from_start=True, max_line_bytes=1024)
    seen, result = _read_budget(follower, 2000)
    assert seen == []
    assert result.position is not None
    assert result.position.offset == 2000
    follower.close()
    seen, result = _read(
        LogFollower(log, result.position, max_line_bytes=1024), Lines()
    )
    assert seen == [b"after"]
    assert result.too_long == 0


def test_start_at_end_inside_long_line(log: Path) -> None:
    """Starting at the end inside an overlong last line skips its rest."""
    _append(log, "y" * (70 * 1024))
    follower, lines = LogFollower(log), Lines()
    assert _read(follower, lines)[0] == []
    _append(log, "z\nnew 1\n")
    assert _read(follower, lines)[0] == [b"new 1"]


def _read_budget(follower: LogFollower, budget: int) -> tuple[list[bytes], ReadResult]:
    lines = Lines()
    result = follower.read(budget, lines)
    return lines.take(), result


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
def test_splitter_chunk_sizes(chunk: int) -> None:
    """Lines come out the same whatever the chunk size."""
    data = b"a\nbb\n\nccc\n" + b"y" * 20 + b"\ndd"
    splitter, lines = LineSplitter(max_line_bytes=10), Lines()
    for start in range(0, len(data), chunk):
        splitter.feed(data[start : start + chunk], lines)
    assert lines.take() == [b"a", b"bb", b"", b"ccc"]
    assert splitter.too_long == 1
    assert splitter.consumed == len(data) - 2
    splitter.finish(lines)
    assert lines.take() == [b"dd"]


def test_unreadable_path(tmp_path: Path) -> None:
    """A path that cannot be read raises SourceError naming it."""
    path = tmp_path / "mail.log"
    path.mkdir()
    with pytest.raises(SourceError, match="cannot read MTA log"):
        LogFollower(path).read(BUDGET, Lines())


def test_fifo_path_rejected(tmp_path: Path) -> None:
    """A FIFO at the path fails the read at once instead of blocking.

    Opening a FIFO for reading waits for a writer, which held the reader's
    worker thread until the process exited.
    """
    path = tmp_path / "mail.log"
    os.mkfifo(path)
    outcome: list[BaseException | ReadResult] = []

    def read() -> None:
        try:
            outcome.append(LogFollower(path).read(BUDGET, Lines()))
        except SourceError as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    if reader.is_alive():
        # Unblock the thread before failing.
        with path.open("wb"):
            pass
    assert not reader.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], SourceError)
    assert "not a regular file" in str(outcome[0])


def test_position_identity(log: Path) -> None:
    """The position names the file by device and inode."""
    _, result = _read(LogFollower(log), Lines())
    info = os.stat(log)
    assert isinstance(result.position, Position)
    assert (result.position.device, result.position.inode) == (
        info.st_dev,
        info.st_ino,
    )


def _read_as_nobody(path: Path) -> str:
    """Read ``path`` with a follower in a child that runs as user nobody.

    Root reads any file, so the real EACCES needs another user. The child
    runs the already imported code after fork, without exec.
    """
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        os.close(reader)
        text = "read"
        try:
            os.setgid(65534)
            os.setuid(65534)
            LogFollower(path).read(BUDGET, Lines())
        except SourceError as exc:
            text = str(exc)
        except BaseException as exc:
            text = f"unexpected {type(exc).__name__}: {exc}"
        os.write(writer, text.encode())
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as stream:
        text = stream.read().decode()
    os.waitpid(pid, 0)
    return text


def test_permission_denied() -> None:
    """A log the daemon's user may not read raises SourceError with the fix."""
    # Not tmp_path: nobody cannot traverse pytest's 0700 directories, and
    # the file itself must be what is denied.
    with service_dir("mta-log") as root:
        log = root / "mail.log"
        log.write_text("line\n")
        log.chmod(0o600)
        if os.geteuid() == 0:
            message = _read_as_nobody(log)
        else:
            log.chmod(0)
            with pytest.raises(SourceError) as caught:
                LogFollower(log).read(BUDGET, Lines())
            message = str(caught.value)
    assert "Permission denied" in message
    assert repr(str(log)) in message
    assert "adm" in message
