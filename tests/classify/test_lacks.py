"""Tests for ParsedMessage.lacks, which lets detectors skip decoding."""

from __future__ import annotations

import base64
import email.message
import json

import pytest

from watchdog.classify import classify
from watchdog.classify.decoding import keeps_ascii
from watchdog.classify.message import ParsedMessage, parse
from watchdog.config import Limits

HEAD = b"From: a@example.com\nTo: b@example.org\nSubject: s\nMIME-Version: 1.0\n"


def _leaf(raw: bytes) -> tuple[ParsedMessage, email.message.Message]:
    parsed = parse(raw, Limits())
    assert isinstance(parsed, ParsedMessage)
    return parsed, parsed.root


def test_lacks_plain_text() -> None:
    parsed, part = _leaf(HEAD + b"Content-Type: text/plain\n\nhello\n")
    assert parsed.lacks(part, "notificationType") is True


def test_lacks_false_when_present() -> None:
    parsed, part = _leaf(HEAD + b"Content-Type: text/plain\n\nnotificationType\n")
    assert parsed.lacks(part, "notificationType") is False


def test_lacks_false_for_base64() -> None:
    body = base64.b64encode(b"notificationType")
    raw = HEAD + b"Content-Transfer-Encoding: base64\n\n" + body + b"\n"
    parsed, part = _leaf(raw)
    assert parsed.lacks(part, "notificationType") is False


def test_lacks_false_for_utf16() -> None:
    raw = HEAD + b"Content-Type: text/plain; charset=utf-16\n\nhello\n"
    parsed, part = _leaf(raw)
    assert parsed.lacks(part, "notificationType") is False


def test_lacks_reads_embedded_headers() -> None:
    raw = (
        HEAD
        + b'Content-Type: multipart/mixed; boundary="b"\n\n--b\n'
        + b"Content-Type: message/rfc822\n\nX-Note: notificationType\n\nbody\n"
        + b"--b--\n"
    )
    parsed = parse(raw, Limits())
    assert isinstance(parsed, ParsedMessage)
    embedded = parsed.find("message/rfc822")
    assert embedded is not None
    assert parsed.lacks(embedded, "notificationType") is False


@pytest.mark.parametrize(
    ("charset", "expected"),
    [
        ("utf-8", True),
        ("us-ascii", True),
        ("ISO-8859-15", True),
        ("shift_jis", True),
        ("iso-2022-jp", False),
        ("utf-7", False),
        ("utf-16", False),
        ("cp037", False),
    ],
)
def test_keeps_ascii(charset: str, expected: bool) -> None:
    assert keeps_ascii(charset) is expected


def test_ses_bounce_in_base64() -> None:
    """An SES notification is still found when its body is base64."""
    notice = {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": "Permanent",
            "bouncedRecipients": [
                {
                    "emailAddress": "gone@example.org",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
        },
        "mail": {"messageId": "0100-abc", "source": "news@example.com"},
    }
    body = base64.encodebytes(json.dumps(notice).encode())
    raw = HEAD + b"Content-Transfer-Encoding: base64\n\n" + body
    verdict = classify(raw)
    assert verdict.detector == "amazonses_json"
    assert verdict.recipients[0].address == "gone@example.org"
