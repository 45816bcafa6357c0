"""ParsedMessage accessors, the fast MIME splitter and the bounds pre-scan."""

from __future__ import annotations

import email.message
import email.parser
import email.policy
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.classify import bounds, fastparse
from watchdog.classify.message import (
    LimitHit,
    ParsedMessage,
    Part,
    decode_bytes,
    decode_header,
    parse,
)
from watchdog.config import Limits

LIMITS = Limits()

REPORT = b"""\
From: MAILER-DAEMON@mx.example.net
To: bounces@example.com
Subject: =?utf-8?q?Undelivered_Mail?= =?utf-8?b?IMOp?=
Message-ID: <report-1@mx.example.net>
Content-Type: multipart/report; report-type=delivery-status;
 boundary="outer"

--outer
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

Caf=E9 mailbox is unavailable.
--outer
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; alice@example.org
Action: failed
Status: 5.1.1

--outer
Content-Type: message/rfc822

From: sender@example.com
Message-ID: <original-1@example.com>

original body
--outer--
"""


def parsed(raw: bytes, limits: Limits = LIMITS) -> ParsedMessage:
    result = parse(raw, limits)
    assert isinstance(result, ParsedMessage)
    return result


def test_header_decodes_adjacent_words() -> None:
    assert parsed(REPORT).header("subject") == "Undelivered Mail é"


def test_header_missing_is_none() -> None:
    assert parsed(REPORT).header("X-Absent") is None


def test_raw_header_keeps_encoded_words() -> None:
    assert parsed(REPORT).raw_header("Subject", None) == (
        "=?utf-8?q?Undelivered_Mail?= =?utf-8?b?IMOp?="
    )


def test_headers_of_part() -> None:
    message = parsed(REPORT)
    original = message.find("message/rfc822")
    assert original is not None
    inner = original.get_payload()[0]
    assert message.headers("Message-ID", inner) == ["<original-1@example.com>"]


def test_walk_order() -> None:
    types = [parsed(REPORT).content_type(part) for part in parsed(REPORT).walk()]
    assert types == [
        "multipart/report",
        "text/plain",
        "message/delivery-status",
        "message/rfc822",
        "text/plain",
    ]


def test_text_decodes_charset() -> None:
    message = parsed(REPORT)
    part = message.find("text/plain")
    assert part is not None
    assert message.text(part).strip() == "Café mailbox is unavailable."


def test_text_of_delivery_status() -> None:
    message = parsed(REPORT)
    part = message.find("message/delivery-status")
    assert part is not None
    text = message.text(part)
    assert "Final-Recipient: rfc822; alice@example.org" in text
    assert "Status: 5.1.1" in text


def test_addresses_reads_list() -> None:
    message = parsed(b"To: Alice <a@example.org>, b@example.org\n\nx\n")
    assert message.addresses("To") == ["a@example.org", "b@example.org"]


def test_utf8_header_repaired() -> None:
    value = parsed(b"To: j\xc3\xb6rg@example.org\n\nx\n").header("To")
    assert value == "jörg@example.org"


def test_invalid_utf8_header_replaced() -> None:
    value = parsed(b"To: a\xff@example.org\n\nx\n").header("To")
    assert value == "a\ufffd@example.org"


def test_repaired_header_encodes() -> None:
    value = parsed(b"Subject: \xed\xa0\x80 \xff\n\nx\n").header("Subject")
    assert value is not None
    assert value.encode("utf-8")


def test_decode_header_keeps_bad_base64() -> None:
    assert decode_header("=?utf-8?b?@@@?=") in {"", "=?utf-8?b?@@@?="}


def test_decode_header_unfolds() -> None:
    assert decode_header("a\r\n b") == "a b"


@pytest.mark.parametrize("charset", ["x-bogus", "base64", "idna", "undefined", ""])
def test_decode_bytes_unknown_charset(charset: str) -> None:
    assert decode_bytes(b"caf\xc3\xa9", charset) == "café"


def test_decode_bytes_language_suffix() -> None:
    assert decode_bytes(b"caf\xe9", "iso-8859-1*fr") == "café"


def test_long_body_truncated() -> None:
    limits = Limits(max_text_bytes=1_000)
    message = parsed(b"Subject: x\n\n" + b"0123456789\n" * 500, limits)
    assert len(message.text(message.root)) <= 1_000
    assert "part_truncated" in message.defects


def test_part_header_block_limited() -> None:
    limits = Limits(max_header_bytes=200)
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\nX-Big: "
        + b"y" * 300
        + b"\n\nz\n--b--\n"
    )
    assert parse(raw, limits) == LimitHit("max_header_bytes")


def test_parser_defects_recorded() -> None:
    raw = b"Content-Type: multipart/mixed\n\nno boundary\n"
    assert "NoBoundaryInMultipartDefect" in parsed(raw).defects


def test_bounds_pass_corpus(corpus_dir: Path) -> None:
    hits = {
        path.name: bounds.check(path.read_bytes(), LIMITS)
        for path in sorted((corpus_dir / "emails").glob("*/*"))
    }
    assert {name: hit for name, hit in hits.items() if hit} == {}


def test_bounds_sibling_parts_not_nested() -> None:
    limits = Limits(max_depth=2)
    parts = b"".join(b"--b\nContent-Type: message/rfc822\n\nx\n" for _ in range(5))
    raw = b"Content-Type: multipart/mixed; boundary=b\n\n" + parts + b"--b--\n"
    assert bounds.check(raw, limits) is None


def test_bounds_prefix_boundaries() -> None:
    limits = Limits(max_depth=2)
    inner = b"Content-Type: multipart/mixed; boundary=ab\n\n--ab\n\nx\n--ab--\n"
    part = b"--a\n" + inner
    raw = b"Content-Type: multipart/mixed; boundary=a\n\n" + part * 3 + b"--a--\n"
    assert bounds.check(raw, limits) is None


def tree(part: email.message.Message) -> tuple[object, ...]:
    """Return everything the feedparser sets on a part, recursively."""
    payload = fastparse.raw_payload(part)
    children = [tree(child) for child in payload] if isinstance(payload, list) else []
    return (
        part.get_unixfrom(),
        list(part.raw_items()),
        part.get_default_type(),
        part.preamble,
        part.epilogue,
        [type(defect).__name__ for defect in part.defects],
        children or payload,
    )


def feedparser_tree(raw: bytes) -> tuple[object, ...]:
    parser = email.parser.BytesParser(_class=Part, policy=email.policy.compat32)
    return tree(parser.parsebytes(raw))


def test_fastparse_matches_feedparser(corpus_dir: Path) -> None:
    mismatched = []
    for path in sorted((corpus_dir / "emails").glob("*/*")):
        raw = path.read_bytes()
        fast = fastparse.split(raw.decode("ascii", "surrogateescape"), Part)
        if fast is not None and tree(fast) != feedparser_tree(raw):
            mismatched.append(path.name)
    assert mismatched == []


def test_fastparse_covers_corpus(corpus_dir: Path) -> None:
    paths = sorted((corpus_dir / "emails").glob("*/*"))
    texts = [path.read_bytes().decode("ascii", "surrogateescape") for path in paths]
    fallbacks = [text for text in texts if fastparse.split(text, Part) is None]
    assert len(fallbacks) < len(texts) // 10


@pytest.mark.parametrize(
    "raw",
    [
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n",
        b"Content-Type: multipart/mixed; boundary=b\n\npre\n--b\n\nx\n--b--\npost\n",
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--",
        b"From sender@example.com Mon Jan  1 00:00:00 2024\nSubject: x\n\nbody\n",
        b"Content-Type: message/delivery-status\n\nA: 1\n\n\nB: 2\n c\n\n",
        b"Content-Type: multipart/digest; boundary=d\n\n"
        b"--d\n\nSubject: y\n\nz\n--d--\n",
        b"Subject: only headers",
    ],
)
def test_fastparse_shapes(raw: bytes) -> None:
    fast = fastparse.split(raw.decode("ascii", "surrogateescape"), Part)
    assert fast is not None
    assert tree(fast) == feedparser_tree(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"Content-Type: multipart/mixed\n\nno boundary\n",
        b"Content-Type: multipart/mixed; boundary=b\n\nno delimiter\n",
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\n--b\n\nx\n--b--\n",
        b" continuation first\n\nx\n",
        b"Subject: x\nnot a header\n\nx\n",
        b"Subject: x\r\rbare carriage returns\n",
    ],
)
def test_fastparse_declines(raw: bytes) -> None:
    assert fastparse.split(raw.decode("ascii", "surrogateescape"), Part) is None


CORPUS = sorted((Path(__file__).parents[1] / "corpus" / "emails").glob("*/*"))
TOKENS = [b"\n", b"\r\n", b"\r", b"--", b"\n--", b" ", b"\t", b":", b"From ", b"\n\n"]


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(CORPUS),
    st.lists(
        st.tuples(st.floats(0, 1), st.sampled_from(TOKENS), st.booleans()),
        max_size=4,
    ),
)
def test_fastparse_mutants(path: Path, edits: list[tuple[float, bytes, bool]]) -> None:
    raw = path.read_bytes()
    for where, token, insert in edits:
        at = int(where * len(raw))
        raw = raw[:at] + token + raw[at + (0 if insert else len(token)) :]
    fast = fastparse.split(raw.decode("ascii", "surrogateescape"), Part)
    if fast is not None:
        assert tree(fast) == feedparser_tree(raw)
