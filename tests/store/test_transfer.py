"""Import and export files."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from watchdog.store import ImportRow, Suppression, SuppressionReason
from watchdog.store.transfer import FileFormat, Rejected, read_rows, write_rows

R = SuppressionReason


def parse(text: str, fmt: FileFormat = FileFormat.CSV) -> list[ImportRow | Rejected]:
    return list(read_rows(io.StringIO(text), fmt))


def test_csv_with_header() -> None:
    """CSV columns are matched by the header, in any order."""
    rows = parse(
        "note,address,reason,created_at\nhi,a@example.com,complaint,2026-01-02\n"
    )
    assert rows == [
        ImportRow(
            2, "a@example.com", R.COMPLAINT, datetime(2026, 1, 2, tzinfo=UTC), "hi"
        )
    ]


def test_plain_list() -> None:
    """A file of bare addresses imports each line with reason import."""
    rows = parse("a@example.com\n\n# comment\nb@Example.ORG\n")
    assert rows == [ImportRow(1, "a@example.com"), ImportRow(4, "b@example.org")]


def test_rejected_line_numbers() -> None:
    """Rejected rows carry their line number and the reason."""
    rows = parse("address,reason\nbad,\nc@example.com,nonsense\nd@example.com,manual\n")
    rejected = [r for r in rows if isinstance(r, Rejected)]
    assert [r.line for r in rejected] == [2, 3]
    assert "invalid address 'bad'" in rejected[0].error
    assert "invalid reason 'nonsense'" in rejected[1].error
    assert rows[-1] == ImportRow(4, "d@example.com", R.MANUAL)


def test_bad_created_at() -> None:
    """A created_at that is not ISO 8601 is rejected."""
    rows = parse("address,created_at\na@example.com,yesterday\n")
    assert isinstance(rows[0], Rejected)
    assert "created_at" in rows[0].error


def test_jsonl() -> None:
    """JSON Lines rows are objects; anything else is rejected."""
    text = '{"address": "a@example.com", "reason": "hard_bounce"}\n[1]\n{oops\n'
    rows = parse(text, FileFormat.JSONL)
    assert rows[0] == ImportRow(1, "a@example.com", R.HARD_BOUNCE)
    assert isinstance(rows[1], Rejected)
    assert rows[1].line == 2
    assert isinstance(rows[2], Rejected)
    assert rows[2].line == 3


def test_export_round_trip() -> None:
    """An exported CSV imports back to the same addresses and reasons."""
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    entries = [
        Suppression("a@example.com", R.HARD_BOUNCE, when, when),
        Suppression("b@example.com", R.SOFT_BOUNCE, when, when, expires_at=when),
    ]
    for fmt in FileFormat:
        buffer = io.StringIO()
        assert write_rows(buffer, entries, fmt) == 2
        rows = parse(buffer.getvalue(), fmt)
        assert [(r.address, r.reason, r.created_at) for r in rows] == [  # type: ignore[union-attr]
            ("a@example.com", R.HARD_BOUNCE, when),
            ("b@example.com", R.SOFT_BOUNCE, when),
        ]
