"""The FETCH parser over the flat lists aioimaplib 2.0.3 returns."""

from __future__ import annotations

from watchdog.sources.imap.fetch import FetchItem, parse_fetch
from watchdog.sources.imap.uidset import chunks, format_uid_set

BODY_1 = bytearray(b"Subject: one\r\n\r\nfirst (with a paren\r\n")
BODY_2 = bytearray(b"Subject: two\r\n\r\n) unbalanced\r\n")


def test_sizes() -> None:
    """Each FETCH line yields its UID and size."""
    lines = [
        b"1 FETCH (UID 11 RFC822.SIZE 120)",
        b"2 FETCH (UID 12 RFC822.SIZE 4096)",
        b"Fetch completed (0.001 + 0.000 secs).",
    ]
    assert parse_fetch(lines) == [
        FetchItem(uid=11, size=120),
        FetchItem(uid=12, size=4096),
    ]


def test_bodies() -> None:
    """Each literal after BODY[] becomes the body of its UID."""
    lines = [
        b"1 FETCH (UID 11 BODY[] {%d}" % len(BODY_1),
        BODY_1,
        b")",
        b"2 FETCH (UID 12 BODY[] {%d}" % len(BODY_2),
        BODY_2,
        b")",
        b"Fetch completed.",
    ]
    items = parse_fetch(lines)
    assert [item.uid for item in items] == [11, 12]
    assert items[0].body == bytes(BODY_1)
    assert items[1].body == bytes(BODY_2)


def test_uid_after_literal() -> None:
    """A UID sent after the literal still names the body."""
    lines = [
        b"1 FETCH (BODY[] {%d}" % len(BODY_1),
        BODY_1,
        b" UID 11)",
        b"Fetch completed.",
    ]
    assert parse_fetch(lines) == [FetchItem(uid=11, body=bytes(BODY_1))]


def test_unsolicited_lines() -> None:
    """EXISTS, EXPUNGE and flag updates of other clients are kept apart."""
    lines = [
        b"4 EXPUNGE",
        b"3 FETCH (FLAGS (\\Seen) UID 13)",
        b"1 FETCH (UID 11 BODY[] {%d}" % len(BODY_1),
        BODY_1,
        b")",
        b"7 EXISTS",
        b"Fetch completed.",
    ]
    items = parse_fetch(lines)
    assert [item.uid for item in items] == [13, 11]
    assert items[0].body is None
    assert items[1].body == bytes(BODY_1)


def test_other_literal_ignored() -> None:
    """A literal that is not BODY[] is never taken as the body."""
    lines = [
        b"1 FETCH (UID 11 BODY[HEADER.FIELDS (SUBJECT)] {5}",
        bytearray(b"x\r\n\r\n"),
        b")",
    ]
    assert parse_fetch(lines) == [FetchItem(uid=11)]


def test_empty() -> None:
    """A FETCH of UIDs that no longer exist returns no item."""
    assert parse_fetch([b"Fetch completed."]) == []


def test_uid_set_ranges() -> None:
    """Consecutive UIDs collapse into ranges."""
    assert format_uid_set([7, 1, 2, 3, 9, 10]) == "1:3,7,9:10"


def test_chunks_capped() -> None:
    """Batches never exceed 200 UIDs, whatever size is asked."""
    sizes = [len(chunk) for chunk in chunks(list(range(1, 451)), 500)]
    assert sizes == [200, 200, 50]
