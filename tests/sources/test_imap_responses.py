"""Readers of aioimaplib responses: SELECT lines and IDLE pushes."""

from __future__ import annotations

import asyncio

import aioimaplib
import pytest

from watchdog.errors import ImapError
from watchdog.sources.imap.responses import (
    announces_mail,
    drain_pushes,
    parse_select,
)

# SELECT INBOX as Dovecot 2.3.19 returns it through aioimaplib 2.0.3.
SELECT_LINES = [
    b"FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
    b"OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] "
    b"Flags permitted.",
    b"3 EXISTS",
    b"0 RECENT",
    b"OK [UIDVALIDITY 1796401300] UIDs valid",
    b"OK [UIDNEXT 4] Predicted next UID",
    b"[READ-WRITE] Select completed (0.001 + 0.000 secs).",
]


def test_select_fields() -> None:
    """UIDVALIDITY and EXISTS are read from their lines."""
    selected = parse_select(SELECT_LINES, "INBOX", "bounces")
    assert selected.uidvalidity == 1796401300
    assert selected.exists == 3


def test_select_without_uidvalidity() -> None:
    """A SELECT response without UIDVALIDITY is an error naming the folder."""
    with pytest.raises(ImapError, match="'INBOX'"):
        parse_select(SELECT_LINES[:3], "INBOX", "bounces")


async def test_drain_pushes() -> None:
    """Queued pushes are flattened and the stop marker is dropped."""
    queue: asyncio.Queue[list[bytes]] = asyncio.Queue()
    queue.put_nowait([b"1 FETCH (FLAGS (\\Seen))"])
    queue.put_nowait(aioimaplib.STOP_WAIT_SERVER_PUSH)
    queue.put_nowait([b"4 EXISTS", b"1 RECENT"])
    lines = drain_pushes(queue)
    assert lines == [b"1 FETCH (FLAGS (\\Seen))", b"4 EXISTS", b"1 RECENT"]
    assert queue.empty()
    assert announces_mail(lines)


def test_flags_only_no_mail() -> None:
    """A flag update alone does not announce new mail."""
    assert not announces_mail([b"1 FETCH (FLAGS (\\Seen))", b"2 EXPUNGE"])
