"""Arrival times: the Date header, INTERNALDATE and the soft-bounce window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from watchdog.pipeline import header_date
from watchdog.policy import MAX_DATE_LAG, arrival_time
from watchdog.sources.imap.fetch import parse_fetch, parse_internal_date

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("dated", "received", "expected"),
    [
        (None, None, NOW),
        (NOW - DAY, None, NOW - DAY),
        (None, NOW - 2 * DAY, NOW - 2 * DAY),
        (NOW - 3 * DAY, NOW - 2 * DAY, NOW - 3 * DAY),
        (NOW - DAY, NOW - 2 * DAY, NOW - 2 * DAY),
        (NOW + DAY, None, NOW),
        (None, NOW + DAY, NOW),
        (NOW - 2 * DAY - MAX_DATE_LAG - DAY, NOW - 2 * DAY, NOW - 2 * DAY),
    ],
    ids=[
        "nothing known",
        "date only",
        "received only",
        "date before receipt",
        "date after receipt",
        "date in the future",
        "receipt in the future",
        "date far before receipt",
    ],
)
def test_arrival_time(
    dated: datetime | None, received: datetime | None, expected: datetime
) -> None:
    assert arrival_time(dated, received, NOW) == expected


def test_header_date_parsed() -> None:
    """The top-level Date header is read, folded or not, with its zone."""
    raw = (
        b"From: a@x.test\r\nDate: Fri, 04 Dec 2026\r\n 10:00:00 -0500\r\n"
        b"Subject: s\r\n\r\nDate: Sat, 05 Dec 2026 10:00:00 +0000\r\n"
    )
    assert header_date(raw) == datetime(2026, 12, 4, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "raw",
    [
        b"From: a@x.test\r\n\r\nDate: Fri, 04 Dec 2026 10:00:00 +0000\r\n",
        b"Date: yesterday\r\n\r\nbody",
        b"Date: Fri, 99 Dec 2026 10:00:00 +0000\r\n\r\n",
        b"",
    ],
    ids=["only in body", "not a date", "invalid day", "empty"],
)
def test_header_date_missing(raw: bytes) -> None:
    assert header_date(raw) is None


def test_header_date_without_zone() -> None:
    """A date with -0000 (zone unknown) is taken as UTC."""
    raw = b"Date: Fri, 04 Dec 2026 10:00:00 -0000\r\n\r\n"
    assert header_date(raw) == datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


def test_internal_date_fetched() -> None:
    """INTERNALDATE in a FETCH response becomes an aware datetime."""
    lines = [
        b'1 FETCH (UID 11 RFC822.SIZE 120 INTERNALDATE " 4-Dec-2026 10:00:00 -0700")',
        b"Fetch completed.",
    ]
    [item] = parse_fetch(lines)
    zone = timezone(-timedelta(hours=7))
    assert item.size == 120
    assert item.internal_date == datetime(2026, 12, 4, 10, 0, tzinfo=zone)


@pytest.mark.parametrize(
    "text",
    [
        b'(INTERNALDATE "04-Foo-2026 10:00:00 +0000")',
        b'(INTERNALDATE "31-Feb-2026 10:00:00 +0000")',
        b"(UID 3)",
    ],
    ids=["unknown month", "invalid day", "absent"],
)
def test_internal_date_invalid(text: bytes) -> None:
    assert parse_internal_date(text) is None
