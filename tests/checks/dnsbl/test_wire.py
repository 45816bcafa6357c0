"""The minimal DNS parser on replies no real server sends."""

from __future__ import annotations

import struct

import dns.message
import dns.rdatatype
import pytest

from watchdog.checks.dnsbl import wire
from watchdog.checks.dnsbl.wire import (
    TYPE_A,
    TYPE_TXT,
    Unusual,
    encode_query,
    encode_question,
    parse_reply,
    read_name,
)

NAME = "2.0.0.127.zen.test"
QUESTION = encode_question(NAME, TYPE_A)
OFFSET = 12 + len(QUESTION)


def _reply(tail: bytes, *, answers: int = 1, flags: int = 0x8180) -> bytes:
    return struct.pack("!HHHHHH", 7, flags, 1, answers, 0, 0) + QUESTION + tail


def _a(owner: bytes = b"\xc0\x0c", rdata: bytes = b"\x7f\x00\x00\x02") -> bytes:
    return owner + struct.pack("!HHIH", TYPE_A, 1, 300, len(rdata)) + rdata


def test_query_matches_dnspython() -> None:
    """dnspython reads the encoded query back as one A question for the name."""
    query = dns.message.from_wire(encode_query(7, QUESTION))

    assert query.question[0].name.to_text() == NAME + "."
    assert query.question[0].rdtype == dns.rdatatype.A


def test_listed_reply() -> None:
    reply = parse_reply(_reply(_a()), QUESTION, TYPE_A, 60.0)

    assert reply.records == ("127.0.0.2",)
    assert reply.ttl == 300
    assert not reply.negative


def test_owner_spelled_out() -> None:
    """An owner written without compression still matches the question."""
    reply = parse_reply(_reply(_a(QUESTION[:-4])), QUESTION, TYPE_A, 60.0)

    assert reply.records == ("127.0.0.2",)


@pytest.mark.parametrize(
    ("case", "data"),
    [
        ("truncated", _reply(_a(), flags=0x8380)),
        ("servfail", _reply(b"", answers=0, flags=0x8182)),
        ("refused", _reply(b"", answers=0, flags=0x8185)),
        ("nxdomain with answer", _reply(_a(), flags=0x8183)),
        ("short rdata", _reply(_a(rdata=b"\x7f\x00\x00"))),
        ("rdata past end", _reply(_a()[:-1])),
        ("missing record", _reply(b"")),
        ("pointer loop", _reply(_a(bytes([0xC0, OFFSET])))),
        ("reserved label", _reply(_a(b"\x80"))),
        ("other owner", _reply(_a(b"\x03foo\x00"))),
        (
            "cname",
            _reply(b"\xc0\x0c" + struct.pack("!HHIH", 5, 1, 60, 2) + b"\xc0\x0c"),
        ),
    ],
)
def test_unusual_reply(case: str, data: bytes) -> None:
    with pytest.raises(Unusual):
        parse_reply(data, QUESTION, TYPE_A, 60.0)


def test_txt_string_past_record() -> None:
    question = encode_question(NAME, TYPE_TXT)
    rdata = b"\x09short"
    record = b"\xc0\x0c" + struct.pack("!HHIH", TYPE_TXT, 1, 60, len(rdata)) + rdata
    data = struct.pack("!HHHHHH", 7, 0x8180, 1, 1, 0, 0) + question + record

    with pytest.raises(Unusual):
        parse_reply(data, question, TYPE_TXT, 60.0)


def test_name_over_255_octets() -> None:
    label = b"\x3f" + b"a" * 63
    data = label * 5 + b"\x00"

    with pytest.raises(Unusual):
        read_name(data, 0)


@pytest.mark.parametrize("name", ["a..b", "x" * 64 + ".test", "bücher.test"])
def test_invalid_name_rejected(name: str) -> None:
    with pytest.raises((ValueError, UnicodeError)):
        encode_question(name, TYPE_A)


def test_invalid_name_rejected_again() -> None:
    """A name that failed is not kept, so it fails every time."""
    for _ in range(2):
        with pytest.raises(ValueError):
            encode_question("a..b", TYPE_A)


def test_question_table_emptied_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "QUESTION_TABLE_SIZE", 2)
    monkeypatch.setattr(wire, "_QUESTIONS", {})
    names = ["1.zen.test", "2.zen.test", "3.zen.test"]

    questions = [encode_question(name, TYPE_A) for name in names]

    assert len(wire._QUESTIONS) == 1
    assert questions == [wire._encode_question(name, TYPE_A) for name in names]
    assert encode_question(names[0], TYPE_TXT).endswith(b"\x00\x10\x00\x01")


def _soa(minimum: int, ttl: int = 3600) -> bytes:
    rdata = b"\xc0\x0c\xc0\x0c" + struct.pack("!IIIII", 1, 3600, 600, 86400, minimum)
    return b"\xc0\x0c" + struct.pack("!HHIH", 6, 1, ttl, len(rdata)) + rdata


def _negative(tail: bytes) -> bytes:
    return struct.pack("!HHHHHH", 7, 0x8183, 1, 0, 1, 0) + QUESTION + tail


def test_negative_ttl_per_soa() -> None:
    """Replies with the same SOA share a TTL, and another SOA gets its own."""
    first = parse_reply(_negative(_soa(60)), QUESTION, TYPE_A, 30.0)
    again = parse_reply(_negative(_soa(60)), QUESTION, TYPE_A, 30.0)
    other = parse_reply(_negative(_soa(900)), QUESTION, TYPE_A, 30.0)
    capped = parse_reply(_negative(_soa(900, ttl=120)), QUESTION, TYPE_A, 30.0)

    assert first == again == ((), 60.0, True)
    assert other.ttl == 900.0
    assert capped.ttl == 120.0


def test_negative_ttl_malformed_every_time() -> None:
    """A malformed authority section is not kept, so it raises each time."""
    truncated = _negative(_soa(60)[:-6])
    for _ in range(2):
        with pytest.raises(Unusual):
            parse_reply(truncated, QUESTION, TYPE_A, 30.0)


def test_ttl_with_top_bit_is_zero() -> None:
    """A TTL with the top bit set reads as 0 (RFC 2181 section 8), as in dnspython.

    Read as a number it would keep a listing or an absence cached for the
    1 h maximum instead of the 60 s minimum.
    """
    huge = 0x8000_0000 + 300
    record = b"\xc0\x0c" + struct.pack("!HHIH", TYPE_A, 1, huge, 4) + b"\x7f\0\0\2"

    listed = parse_reply(_reply(record), QUESTION, TYPE_A, 60.0)
    absent = parse_reply(_negative(_soa(900, ttl=huge)), QUESTION, TYPE_A, 60.0)

    assert listed.ttl == 0
    assert absent.ttl == 0
