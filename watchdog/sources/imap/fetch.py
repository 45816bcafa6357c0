"""Parse the flat FETCH response that aioimaplib 2.0.3 returns.

aioimaplib hands back a list in which each ``* n FETCH (...)`` response is a
``bytes`` line, every literal that follows it is a ``bytearray``, and the text
after a literal (``)`` or `` UID 7)``) is another ``bytes`` line. Untagged
responses from other clients (``* 3 EXPUNGE``, flag updates) arrive mixed
in, and the last element is the text of the tagged completion. This module
turns that list into one record per FETCH response and leaves the choice of
which UIDs to keep to the caller.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

_FETCH_START = re.compile(rb"^(\d+) FETCH \(")
_UID = re.compile(rb"[(\s]UID (\d+)")
_SIZE = re.compile(rb"[(\s]RFC822\.SIZE (\d+)")
_BODY_LITERAL = re.compile(rb"[(\s]BODY\[\](?:<\d+>)? \{(\d+)\}$")
# RFC 3501 date-time: "dd-Mon-yyyy hh:mm:ss +zzzz", the day may be space-padded.
_INTERNALDATE = re.compile(
    rb'[(\s]INTERNALDATE "\s?(\d{1,2})-([A-Za-z]{3})-(\d{4}) '
    rb'(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})"'
)
_MONTHS = {
    name.encode(): number
    for number, name in enumerate(
        [
            "jan",
            "feb",
            "mar",
            "apr",
            "may",
            "jun",
            "jul",
            "aug",
            "sep",
            "oct",
            "nov",
            "dec",
        ],
        start=1,
    )
}


@dataclass(frozen=True, slots=True)
class FetchItem:
    """One ``* n FETCH`` response: the fields we request, when present.

    ``body`` is the literal that followed ``BODY[]``; it is None when the
    response carried no body. ``internal_date`` is the time the server
    received the message (INTERNALDATE), aware.
    """

    uid: int | None
    size: int | None = None
    body: bytes | None = None
    internal_date: datetime | None = None


@dataclass(slots=True)
class _Pending:
    text: list[bytes] = field(default_factory=list)
    body: bytes | None = None
    depth: int = 0

    def finish(self) -> FetchItem:
        joined = b"".join(self.text)
        return FetchItem(
            uid=_int_or_none(_UID.search(joined)),
            size=_int_or_none(_SIZE.search(joined)),
            body=self.body,
            internal_date=parse_internal_date(joined),
        )


def parse_fetch(lines: Iterable[bytes | bytearray]) -> list[FetchItem]:
    """Group a flat FETCH response into one item per ``* n FETCH`` response.

    Lines that belong to no FETCH response (EXISTS, EXPUNGE, the completion
    text) are skipped. A literal that does not follow ``BODY[] {n}`` is
    skipped too, so only the message body is ever kept.
    """
    return list(_iter_items(lines))


def _iter_items(lines: Iterable[bytes | bytearray]) -> Iterator[FetchItem]:
    pending: _Pending | None = None
    for line in lines:
        if isinstance(line, bytearray):
            if pending is not None and _BODY_LITERAL.search(pending.text[-1]):
                pending.body = bytes(line)
            continue

        if pending is None:
            if not _FETCH_START.match(line):
                continue
            pending = _Pending()

        pending.text.append(line)
        pending.depth += _paren_balance(line)
        if pending.depth <= 0 and not line.endswith(b"}"):
            yield pending.finish()
            pending = None

    if pending is not None:
        yield pending.finish()


def _paren_balance(line: bytes) -> int:
    """Count opening minus closing parentheses outside quoted strings."""
    balance = 0
    quoted = False
    escaped = False
    for byte in line:
        if quoted:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                quoted = False
        elif byte == 0x22:
            quoted = True
        elif byte == 0x28:
            balance += 1
        elif byte == 0x29:
            balance -= 1
    return balance


def parse_internal_date(text: bytes) -> datetime | None:
    """Return the INTERNALDATE in a FETCH response, or None if absent or invalid."""
    match = _INTERNALDATE.search(text)
    if match is None:
        return None
    day, month, year, hour, minute, second, sign, zone_h, zone_m = match.groups()
    number = _MONTHS.get(month.lower())
    if number is None:
        return None
    offset = timedelta(hours=int(zone_h), minutes=int(zone_m))
    try:
        return datetime(
            int(year),
            number,
            int(day),
            int(hour),
            int(minute),
            int(second),
            tzinfo=timezone(-offset if sign == b"-" else offset),
        )
    except ValueError:
        return None


def _int_or_none(match: re.Match[bytes] | None) -> int | None:
    return int(match.group(1)) if match is not None else None
