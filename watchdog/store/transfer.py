"""Suppression-list files: CSV, JSON Lines and plain address lists.

Both directions stream: rows are parsed and written one at a time, so a
list of a million addresses never sits in memory. CSV has the columns
``address,reason,created_at,expires_at,note`` (import) and
``address,reason,created_at,updated_at,expires_at`` (export); import also
takes a file with one address per line and no header. Exported cells that
a spreadsheet would run as a formula get a leading ``'``, which import
removes again.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TextIO

from watchdog.addresses import normalise_address
from watchdog.policy import SuppressionReason
from watchdog.store.records import ImportRow, Suppression

EXPORT_COLUMNS = ("address", "reason", "created_at", "updated_at", "expires_at")
# Columns an import header may name; updated_at is read and ignored, so an
# export imports as it is.
IMPORT_COLUMNS = ("address", "reason", "created_at", "expires_at", "note", "updated_at")
MAX_NOTE_CHARS = 500
# First characters that make Excel and LibreOffice evaluate a cell (OWASP
# "CSV Injection"), plus the quote the escape itself adds.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


class FileFormat(StrEnum):
    """Layout of an import or export file."""

    CSV = "csv"
    JSONL = "jsonl"


@dataclass(frozen=True, slots=True)
class Rejected:
    """An import line that was not imported, and why."""

    line: int
    error: str


def read_rows(lines: Iterable[str], fmt: FileFormat) -> Iterator[ImportRow | Rejected]:
    """Parse an import file line by line into rows and rejections."""
    if fmt is FileFormat.JSONL:
        yield from _read_jsonl(lines)
    else:
        yield from _read_csv(lines)


def _read_csv(lines: Iterable[str]) -> Iterator[ImportRow | Rejected]:
    reader = csv.reader(_without_bom(lines))
    header: list[str] | None = None
    seen_row = False
    end = 0
    for record in _records(reader):
        # A quoted cell may span lines; rows are named by their first line.
        line, end = end + 1, reader.line_num
        if isinstance(record, Rejected):
            yield Rejected(line, record.error)
            continue
        if end > line and _csv_spans_rows(record):
            yield Rejected(line, _unclosed_quote_error(line, end))
            continue
        cells = [cell.strip() for cell in record]
        if not cells or not any(cells) or cells[0].startswith("#"):
            continue
        if not seen_row and "address" in (c.lower() for c in cells):
            header = [c.lower() for c in cells]
            unknown = [c for c in header if c not in IMPORT_COLUMNS]
            if unknown:
                yield Rejected(line, _header_error(unknown[0]))
                return
            seen_row = True
            continue
        seen_row = True
        yield _csv_row(line, cells, header)


def _records(reader: Any) -> Iterator[list[str] | Rejected]:
    """Yield the reader's records, and a rejection for each it cannot parse."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Rejected(reader.line_num, f"unreadable CSV: {exc}")


def _csv_row(
    line: int, cells: list[str], header: list[str] | None
) -> ImportRow | Rejected:
    columns = header or ["address"]
    extra = [c for c in cells[len(columns) :] if c]
    if extra and header is None:
        return Rejected(
            line,
            "expected one address per line, or a first line naming the columns: "
            + ",".join(IMPORT_COLUMNS),
        )
    if extra:
        return Rejected(
            line, f"{len(cells)} cells but the header names {len(columns)} columns"
        )
    fields: dict[str, Any] = dict(zip(columns, cells, strict=False))
    fields["address"] = unescape_formula(fields.get("address", ""))
    return parse_fields(line, fields)


def _csv_spans_rows(record: list[str]) -> bool:
    """Tell whether a record swallowed whole rows, so its address has a newline."""
    return bool(record) and "\n" in record[0]


def _unclosed_quote_error(line: int, end: int) -> str:
    return (
        f"a quoted cell runs from line {line} to line {end}: "
        "close the quote that opens it"
    )


def _header_error(column: str) -> str:
    allowed = ", ".join(IMPORT_COLUMNS)
    return f"unknown column {column!r} in the header: use {allowed}"


def _without_bom(lines: Iterable[str]) -> Iterator[str]:
    """Yield ``lines`` with a UTF-8 byte order mark cut from the first."""
    iterator = iter(lines)
    first = next(iterator, None)
    if first is None:
        return
    yield first.removeprefix("\ufeff")
    yield from iterator


def escape_formula(cell: str) -> str:
    """Prefix ``'`` to a cell a spreadsheet would run as a formula.

    Cells that start with ``'`` get one too, so ``unescape_formula`` can
    remove exactly one and give back every address as it was exported.
    """
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def unescape_formula(cell: str) -> str:
    """Undo ``escape_formula``; other cells are returned as they are."""
    if cell.startswith("'") and cell[1:].startswith(_FORMULA_STARTS):
        return cell[1:]
    return cell


def _read_jsonl(lines: Iterable[str]) -> Iterator[ImportRow | Rejected]:
    for line, text in enumerate(_without_bom(lines), start=1):
        if not text.strip():
            continue
        try:
            fields = json.loads(text)
        except json.JSONDecodeError as exc:
            yield Rejected(line, f"invalid JSON: {exc.msg}")
            continue
        except RecursionError:
            # json.loads recurses once per nesting level, so "[[[[..." of
            # about 1,000 levels or more exhausts Python's recursion limit.
            yield Rejected(line, "invalid JSON: nested too deeply")
            continue
        if not isinstance(fields, dict):
            yield Rejected(line, "expected a JSON object with an 'address' key")
            continue
        yield parse_fields(line, fields)


def parse_fields(line: int, fields: dict[str, Any]) -> ImportRow | Rejected:
    """Validate the fields of one import row."""
    raw = fields.get("address")
    address = normalise_address(raw) if isinstance(raw, str) else None
    if address is None and isinstance(raw, str) and _not_utf8(raw):
        return Rejected(line, f"invalid address {raw!r}: save the file as UTF-8")
    if address is None:
        return Rejected(line, f"invalid address {raw!r}")

    reason_text = fields.get("reason") or SuppressionReason.IMPORT.value
    try:
        reason = SuppressionReason(str(reason_text).strip().lower())
    except ValueError:
        allowed = ", ".join(r.value for r in SuppressionReason)
        return Rejected(line, f"invalid reason {reason_text!r}: use one of {allowed}")

    created_text = fields.get("created_at") or None
    try:
        created_at = None if created_text is None else parse_time(str(created_text))
    except ValueError:
        return Rejected(line, f"invalid created_at {created_text!r}: use ISO 8601")

    expires_text = fields.get("expires_at") or None
    try:
        expires_at = None if expires_text is None else parse_time(str(expires_text))
    except ValueError:
        return Rejected(line, f"invalid expires_at {expires_text!r}: use ISO 8601")

    note = fields.get("note")
    note_text = None if note in (None, "") else str(note)[:MAX_NOTE_CHARS]
    return ImportRow(line, address, reason, created_at, note_text, expires_at)


def _not_utf8(text: str) -> bool:
    """Tell whether ``text`` was decoded from bytes that are not UTF-8."""
    return "\ufffd" in text or any("\udc80" <= c <= "\udcff" for c in text)


def parse_time(text: str) -> datetime:
    """Parse an ISO 8601 date or time into UTC; a time without an offset is UTC.

    Raises ValueError for text that does not parse and for times that
    leave the datetime range once moved to UTC (9999-12-31T23:00-05:00).
    """
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        msg = f"time {text!r} is out of range in UTC"
        raise ValueError(msg) from exc


def write_rows(out: TextIO, entries: Iterable[Suppression], fmt: FileFormat) -> int:
    """Write ``entries`` to ``out``; return how many were written."""
    count = 0
    writer = csv.writer(out, lineterminator="\n")
    if fmt is FileFormat.CSV:
        writer.writerow(EXPORT_COLUMNS)
    for entry in entries:
        row = export_fields(entry)
        if fmt is FileFormat.CSV:
            writer.writerow([escape_formula(row[c] or "") for c in EXPORT_COLUMNS])
        else:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count


def export_fields(entry: Suppression) -> dict[str, str | None]:
    """Return the exported columns of one entry, times in ISO 8601."""
    return {
        "address": entry.address,
        "reason": entry.reason.value,
        "created_at": entry.created_at.isoformat(),
        "updated_at": entry.updated_at.isoformat(),
        "expires_at": None
        if entry.expires_at is None
        else entry.expires_at.isoformat(),
    }
