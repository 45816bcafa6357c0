"""Readers for the parts of aioimaplib responses the session uses.

aioimaplib 2.0.3 returns ``Response(result, lines)`` with the ``* `` of
untagged lines stripped and the tagged completion text as the last line.
IDLE pushes arrive on a queue as lists of such lines.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aioimaplib

from watchdog.errors import ImapError

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_EXISTS = re.compile(rb"^(\d+) EXISTS$")


@dataclass(frozen=True, slots=True)
class Selected:
    """The state of a folder after SELECT."""

    uidvalidity: int
    exists: int


def parse_select(lines: Sequence[bytes], folder: str, mailbox: str) -> Selected:
    """Read UIDVALIDITY and EXISTS from the lines of a SELECT response.

    Raises ImapError when the server sent no UIDVALIDITY.
    """
    uidvalidity: int | None = None
    exists = 0
    for line in lines:
        raw = bytes(line)
        if (match := _UIDVALIDITY.search(raw)) is not None:
            uidvalidity = int(match.group(1))
        elif (match := _EXISTS.match(raw)) is not None:
            exists = int(match.group(1))
    if uidvalidity is None:
        msg = f"SELECT {folder!r} on mailbox {mailbox!r} returned no UIDVALIDITY"
        raise ImapError(msg, mailbox=mailbox)
    return Selected(uidvalidity=uidvalidity, exists=exists)


def completion_text(response: Any) -> bytes:
    """Return the text of the tagged completion, the last line of a response."""
    return bytes(response.lines[-1]) if response.lines else b""


def drain_pushes(queue: asyncio.Queue[Any]) -> list[bytes]:
    """Take every IDLE push waiting in ``queue`` and return their lines."""
    lines: list[bytes] = []
    while not queue.empty():
        item = queue.get_nowait()
        if item != aioimaplib.STOP_WAIT_SERVER_PUSH:
            lines.extend(item)
    return lines


def announces_mail(lines: Sequence[bytes]) -> bool:
    """Tell whether untagged lines include ``n EXISTS``."""
    return any(_EXISTS.match(bytes(line)) for line in lines)
