"""The delivery date on an mbox From_ line."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from watchdog.sources.local import from_line_date


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"From MAILER-DAEMON Wed Dec  4 19:00:00 2026", datetime(2026, 12, 4, 19)),
        (b"From a@b.example Thu Oct 15 09:00:00 2026", datetime(2026, 10, 15, 9)),
        (b"From a Thu Oct  1 09:00:00 2026 remote from x", datetime(2026, 10, 1, 9)),
    ],
)
def test_date_read(line: bytes, expected: datetime) -> None:
    assert from_line_date(line) == expected.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    "line", [b"From MAILER-DAEMON", b"From a Mon Feb 30 00:00:00 2026", b"\xff\xfe"]
)
def test_no_date(line: bytes) -> None:
    assert from_line_date(line) is None
