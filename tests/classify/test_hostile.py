"""Hostile input: crafted costs of CPython's email package, and properties.

Each crafted case is a known way to make CPython 3.11's ``email`` package
or flufl.bounce slow or raise. ``classify`` must return a verdict for all of
them within ``BOUND_SECONDS``: either ``unknown`` with ``limit`` naming the
bound hit, or a lenient parse with defects recorded.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchdog.classify import Kind, classify
from watchdog.classify.message import LimitHit, ParsedMessage, parse
from watchdog.config import Limits

LIMITS = Limits()
# CPU seconds one crafted message may take. The slowest, an 8 MB body,
# took about 0.3 s on a 2-core development VM.
BOUND_SECONDS = 2.0
CORPUS = sorted((Path(__file__).parents[1] / "corpus" / "emails").glob("*/*"))


def timed_classify(raw: bytes) -> tuple[float, object]:
    started = time.process_time()
    verdict = classify(raw, LIMITS)
    return time.process_time() - started, verdict


def many_parts(count: int) -> bytes:
    parts = b"".join(b"--b\n\nx\n" for _ in range(count))
    return b"Content-Type: multipart/mixed; boundary=b\n\n" + parts + b"--b--\n"


def nested_multiparts(depth: int, newline: bytes = b"\n") -> bytes:
    level = b"Content-Type: multipart/mixed; boundary=b%d" + newline * 2 + b"--b%d"
    return b"".join(level % (i, i) + newline for i in range(depth))


LIMIT_CASES = {
    "parts_50000": (many_parts(50_000), "max_parts"),
    "nested_2000": (nested_multiparts(2_000), "max_depth"),
    "nested_2000_bare_cr": (nested_multiparts(2_000, b"\r"), "max_depth"),
    "rfc822_chain_2000": (
        b"Content-Type: message/rfc822\n\n" * 2_000 + b"\nx\n",
        "max_depth",
    ),
    "subject_words_20000": (
        b"Subject: " + b" ".join([b"=?utf-8?q?a?="] * 20_000) + b"\n\nx\n",
        "max_header_bytes",
    ),
    "body_words_20000": (
        b"Subject: x\n\n" + b" ".join([b"=?utf-8?q?a?="] * 20_000) + b"\n",
        "max_encoded_words",
    ),
    "to_addresses_20000": (
        b"To: " + b", ".join(b"a%d@example.com" % i for i in range(20_000)) + b"\n\n",
        "max_header_bytes",
    ),
    "body_20mb": (
        b"Subject: x\n\n" + b"hello world\n" * 1_700_000,
        "max_message_bytes",
    ),
    "no_blank_line": (b"X-Filler: " + b"y" * 100_000, "max_header_bytes"),
}


@pytest.mark.parametrize("name", sorted(LIMIT_CASES))
def test_parse_limit_named(name: str) -> None:
    raw, limit = LIMIT_CASES[name]
    assert parse(raw, LIMITS) == LimitHit(limit)


@pytest.mark.parametrize("name", sorted(LIMIT_CASES))
def test_classify_limit_unknown(name: str) -> None:
    raw, limit = LIMIT_CASES[name]
    elapsed, verdict = timed_classify(raw)
    assert elapsed < BOUND_SECONDS
    assert getattr(verdict, "kind", None) == Kind.UNKNOWN
    assert getattr(verdict, "limit", None) == limit


LENIENT_CASES = {
    "to_open_quote": b'To: "\n',
    "to_open_angle": b"To: b<\n",
    "to_group_comment": b"To: (c):\n",
    "cc_brackets": b"Cc: ,b[:?\n",
    "message_id_literal": b"Message-ID: <[x@example.com]>\n",
    "content_type_bare_star": b"Content-Type: text/plain; name*\n",
    "content_type_bogus_charset": b"Content-Type: text/plain; charset=x-bogus\n",
    "rfc2231_bogus_charset": b"Content-Type: text/plain; name*=x-bogus''%41\n",
    "subject_bogus_charset": b"Subject: =?x-bogus?q?caf=E9?=\n",
    "subject_base64_codec": b"Subject: =?base64?b?YWJj?=\n",
    "from_comments_500": b"From: " + b"(" * 500 + b"a@example.com\n",
    "to_raw_utf8": b"To: j\xc3\xb6rg@ex\xc3\xa4mple.com\n",
    "to_invalid_utf8": b"To: \xed\xa0\x80@example.com\n",
    "nul_in_header": b"To: a\x00b@example.com\n",
    "fields_then_bad_line": b"".join(b"X-H%d:  v\n" % i for i in range(200))
    + b"not a header\n",
}


def lenient(name: str) -> bytes:
    return LENIENT_CASES[name] + b"From: x@example.com\n\nbody \xff\n"


@pytest.mark.parametrize("name", sorted(LENIENT_CASES))
def test_accessors_never_raise(name: str) -> None:
    message = parse(lenient(name), LIMITS)
    assert isinstance(message, ParsedMessage)
    for header in ("To", "Cc", "From", "Message-ID", "Subject", "Content-Type"):
        message.header(header)
        message.addresses(header)
    for part in message.walk():
        message.content_type(part)
        message.text(part)


@pytest.mark.parametrize("name", sorted(LENIENT_CASES))
def test_classify_lenient(name: str) -> None:
    elapsed, verdict = timed_classify(lenient(name))
    assert elapsed < BOUND_SECONDS
    assert getattr(verdict, "limit", "missing") is None


# Shapes within every limit that once cost a Python loop step per byte or
# per repeat in the pre-scan or the fast MIME splitter.
SLOW_SHAPES = {
    "separators_one_line": b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\n"
    + b"--b" * 3_000_000
    + b"\n--b--\n",
    "blanks_after_delimiter": b"Content-Type: multipart/mixed; boundary=b\n\n--b"
    + b" " * 9_000_000
    + b"\n\nx\n--b--\n",
    "dash_lines": b"Subject: x\n\n" + b"--x\n" * 2_400_000,
}


@pytest.mark.parametrize("name", sorted(SLOW_SHAPES))
def test_slow_shape_bounded(name: str) -> None:
    elapsed, verdict = timed_classify(SLOW_SHAPES[name])
    assert elapsed < BOUND_SECONDS
    assert getattr(verdict, "limit", "missing") is None


def test_comments_defect_recorded() -> None:
    message = parse(lenient("from_comments_500"), LIMITS)
    assert isinstance(message, ParsedMessage)
    assert message.addresses("From") == []
    assert "address_unparsable:From" in message.defects


@pytest.mark.parametrize("name", ["to_raw_utf8", "to_invalid_utf8"])
def test_addresses_encode_utf8(name: str) -> None:
    message = parse(lenient(name), LIMITS)
    assert isinstance(message, ParsedMessage)
    for address in message.addresses("To"):
        assert address.encode("utf-8")


def test_bogus_charset_body() -> None:
    message = parse(lenient("content_type_bogus_charset"), LIMITS)
    assert isinstance(message, ParsedMessage)
    assert message.text(message.root).startswith("body \ufffd")


def test_large_body_truncated() -> None:
    raw = b"Subject: x\n\n" + b"hello world\n" * 700_000
    elapsed, verdict = timed_classify(raw)
    assert elapsed < BOUND_SECONDS
    assert getattr(verdict, "limit", "missing") is None


def test_nesting_within_limit() -> None:
    message = parse(nested_multiparts(LIMITS.max_depth), LIMITS)
    assert isinstance(message, ParsedMessage)


def test_nesting_past_limit() -> None:
    raw = nested_multiparts(LIMITS.max_depth + 1)
    assert parse(raw, LIMITS) == LimitHit("max_depth")


# Property tests: whatever the bytes, classify returns in bounded time.

PROPERTY_SETTINGS = settings(
    max_examples=300,
    deadline=BOUND_SECONDS * 1000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PROPERTY_SETTINGS
@given(st.binary(max_size=4_096))
def test_random_bytes(raw: bytes) -> None:
    classify(raw, LIMITS)


HEADER_NAMES = ["To", "Cc", "From", "Message-ID", "Subject", "Content-Type"]
HEADER_TEXT = st.text(
    alphabet=st.sampled_from(list(" \"()<>[]:;,@\\=?*'%._-abcxyz\t\u00e9\x00")),
    max_size=60,
)


@PROPERTY_SETTINGS
@given(st.lists(st.tuples(st.sampled_from(HEADER_NAMES), HEADER_TEXT), max_size=8))
def test_random_headers(fields: list[tuple[str, str]]) -> None:
    head = "".join(f"{name}: {value}\n" for name, value in fields)
    raw = head.encode("utf-8", "surrogateescape") + b"\nbody\n"
    classify(raw, LIMITS)
    message = parse(raw, LIMITS)
    assert isinstance(message, ParsedMessage)
    for name in HEADER_NAMES:
        message.headers(name)
        message.addresses(name)


EDITS = st.lists(
    st.tuples(
        st.sampled_from(["flip", "insert", "delete", "repeat"]),
        st.floats(min_value=0, max_value=1),
        st.binary(min_size=1, max_size=8),
    ),
    min_size=1,
    max_size=6,
)


def apply_edit(raw: bytes, edit: tuple[str, float, bytes]) -> bytes:
    kind, where, data = edit
    at = int(where * len(raw))
    if kind == "flip":
        return raw[:at] + data + raw[at + len(data) :]
    if kind == "insert":
        return raw[:at] + data + raw[at:]
    if kind == "delete":
        return raw[:at] + raw[at + len(data) * 16 :]
    line_end = raw.find(b"\n", at)
    line_start = raw.rfind(b"\n", 0, at) + 1
    line = raw[line_start : line_end + 1 if line_end >= 0 else len(raw)]
    return raw[:line_start] + line * (len(data) * 8) + raw[line_start:]


@PROPERTY_SETTINGS
@given(st.sampled_from(CORPUS), EDITS)
def test_mutated_corpus(path: Path, edits: list[tuple[str, float, bytes]]) -> None:
    raw = path.read_bytes()
    for edit in edits:
        raw = apply_edit(raw, edit)
    classify(raw, LIMITS)
