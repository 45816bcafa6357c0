"""Import and export files that are hostile, or written by spreadsheets."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest

from watchdog.store import ImportRow, Store, Suppression, SuppressionReason
from watchdog.store.transfer import FileFormat, Rejected, read_rows, write_rows


def _parse(text: str) -> list[ImportRow | Rejected]:
    return list(read_rows(io.StringIO(text, newline=""), FileFormat.CSV))


def test_csv_bom_header() -> None:
    """A header after a byte order mark is still read as the header."""
    rows = _parse("\ufeffaddress,reason\r\na@example.com,manual\r\n")
    assert rows == [ImportRow(2, "a@example.com", SuppressionReason.MANUAL)]


def test_jsonl_bom() -> None:
    """A JSON Lines file may start with a byte order mark."""
    stream = io.StringIO('\ufeff{"address": "a@example.com"}\n')
    rows = list(read_rows(stream, FileFormat.JSONL))
    assert rows == [ImportRow(1, "a@example.com")]


def test_jsonl_deep_nesting() -> None:
    """JSON nested past the recursion limit rejects its line, not the file."""
    stream = io.StringIO("[" * 100_000 + '\n{"address": "a@example.com"}\n')
    rows = list(read_rows(stream, FileFormat.JSONL))
    assert isinstance(rows[0], Rejected)
    assert "nested too deeply" in rows[0].error
    assert rows[1] == ImportRow(2, "a@example.com")


def test_csv_huge_field() -> None:
    """A field past the csv module's limit rejects its line, not the file."""
    text = "a@example.com," + "x" * 200_000 + "\nb@example.com\n"
    rows = _parse(text)
    assert isinstance(rows[0], Rejected)
    assert rows[0].line == 1
    assert rows[1] == ImportRow(2, "b@example.com")


def test_csv_unclosed_quote() -> None:
    """An unclosed quote is reported at the line that opens it."""
    rows = _parse('ok@example.com\n"a@example.com\nb@example.com\nc@example.com\n')
    assert rows[0] == ImportRow(1, "ok@example.com")
    assert isinstance(rows[1], Rejected)
    assert rows[1].line == 2
    assert "close the quote" in rows[1].error


def test_csv_multiline_note() -> None:
    """A note may span lines; its row is named by its first line."""
    rows = _parse('address,note\na@example.com,"two\nlines"\nb@example.com,\n')
    assert rows[0] == ImportRow(2, "a@example.com", note="two\nlines")
    assert rows[1] == ImportRow(4, "b@example.com")


def test_csv_unknown_column() -> None:
    """A header with an unknown column rejects the file at line 1."""
    rows = _parse("address,reasn\nb@example.com,manual\n")
    assert len(rows) == 1
    assert isinstance(rows[0], Rejected)
    assert "'reasn'" in rows[0].error


def test_csv_extra_cells_without_header() -> None:
    """Without a header, a line with more than an address is rejected."""
    rows = _parse("email,reason\nb@example.com,manual\n")
    assert all(isinstance(row, Rejected) for row in rows)


@pytest.mark.parametrize(
    "created", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+05:00"]
)
def test_created_out_of_range(created: str) -> None:
    """A time outside the range in UTC rejects its line, not the import."""
    rows = _parse(f"address,created_at\na@example.com,{created}\nb@example.com,\n")
    assert isinstance(rows[0], Rejected)
    assert rows[0].line == 2
    assert rows[1] == ImportRow(3, "b@example.com")


def test_csv_more_cells_than_header() -> None:
    """A row longer than the header is rejected, not cut."""
    rows = _parse("address,reason\nb@example.com,manual,oops\n")
    assert isinstance(rows[0], Rejected)


def test_export_formula_escaped() -> None:
    """Export prefixes cells a spreadsheet would run as a formula."""
    entry = _entry("=1+2@example.com")
    out = io.StringIO()
    write_rows(out, [entry], FileFormat.CSV)
    assert out.getvalue().splitlines()[1].startswith("'=1+2@example.com,")


@pytest.mark.parametrize(
    "address", ["=1+2@example.com", "+1@example.com", "'=x@example.com", "a@b.com"]
)
def test_export_round_trip_exact(address: str) -> None:
    """Export then import gives back the address, reason and expiry."""
    expires = datetime(2026, 5, 1, tzinfo=UTC)
    entry = _entry(address, SuppressionReason.SOFT_BOUNCE, expires)
    out = io.StringIO()
    write_rows(out, [entry], FileFormat.CSV)
    (row,) = _parse(out.getvalue())
    assert isinstance(row, ImportRow)
    assert row.address == address
    assert row.reason is SuppressionReason.SOFT_BOUNCE
    assert row.expires_at == expires


def test_import_keeps_expiry(store: Store) -> None:
    """An imported soft bounce with an expiry does not become permanent."""
    expires = datetime.now(UTC) + timedelta(days=3)
    row = ImportRow(
        1, "s@example.com", SuppressionReason.SOFT_BOUNCE, expires_at=expires
    )
    store.import_suppressions([row])
    entry = store.suppression("s@example.com")
    assert entry is not None
    assert entry.expires_at == expires


@pytest.mark.parametrize("note", ["a\x00b", "x\ud800y"])
def test_import_hostile_note(store: Store, note: str) -> None:
    """NUL and lone surrogates in a note are stored replaced, not fatal."""
    store.import_suppressions([ImportRow(1, "n@example.com", note=note)])
    (audit,) = store.suppression_history("n@example.com")
    assert audit.note is not None
    assert "\x00" not in audit.note


def _entry(
    address: str,
    reason: SuppressionReason = SuppressionReason.MANUAL,
    expires_at: datetime | None = None,
) -> Suppression:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    return Suppression(address, reason, now, now, expires_at)
