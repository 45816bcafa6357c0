"""Tests for the flufl.bounce fallback on bounces no other detector reads."""

from __future__ import annotations

from watchdog.classify import Kind, classify
from watchdog.classify.detectors import fallback
from watchdog.classify.message import ParsedMessage, parse
from watchdog.classify.rules import default_rules
from watchdog.config import Limits

# Written after the caiwireless.net format that flufl.bounce's caiwireless
# detector reads: labelled multipart/mixed with no MIME parts, the failed
# recipient after a fixed sentence, and a sender and subject that carry no
# bounce marker, so the vendor detector passes it on.
CAIWIRELESS = b"""\
From: Gateway <gw@caiwireless.example>
To: news@example.org
Subject: Message status
Message-ID: <bounce-1@mail.caiwireless.example>
Date: Mon, 2 Mar 2026 10:00:00 +0000
Content-Type: multipart/mixed

The following recipients did not receive this message:

     <gone.reader@caiwireless.example>

Please reply to postmaster@caiwireless.example
if you feel this message to be in error.
"""

# Written after the MessageSwitch delay warning that flufl.bounce's
# simplewarning detector reads: the recipient follows "Your message to:"
# and the warning ends with a fixed sentence.
MESSAGESWITCH = b"""\
From: MessageSwitch <switch@relay.example>
To: news@example.org
Subject: Message status
Message-ID: <warn-1@relay.example>
Date: Mon, 2 Mar 2026 10:00:00 +0000
Content-Type: text/plain

Your message to:
    slow.reader@relay.example
has not been delivered yet. The server will keep trying.
This is just a warning, you do not need to take any action.
"""


def _parsed(raw: bytes) -> ParsedMessage:
    parsed = parse(raw, Limits())
    assert isinstance(parsed, ParsedMessage)
    return parsed


def test_fallback_reads_permanent() -> None:
    verdict = fallback.detect(_parsed(CAIWIRELESS), default_rules())
    assert verdict is not None
    assert [r.address for r in verdict.recipients] == [
        "gone.reader@caiwireless.example"
    ]


def test_fallback_wins_in_classify() -> None:
    verdict = classify(CAIWIRELESS)
    assert verdict.detector == fallback.NAME
    assert verdict.kind is Kind.BOUNCE


def test_fallback_warning_in_classify() -> None:
    verdict = classify(MESSAGESWITCH)
    assert verdict.detector == fallback.NAME
    assert verdict.recipients[0].action == "delayed"


def test_fallback_temporary_is_soft() -> None:
    verdict = fallback.detect(_parsed(MESSAGESWITCH), default_rules())
    assert verdict is not None
    recipient = verdict.recipients[0]
    assert recipient.address == "slow.reader@relay.example"
    assert recipient.action == "delayed"
    assert recipient.hard is False


def test_fallback_ignores_plain_mail() -> None:
    plain = b"From: a@example.com\nSubject: hi\n\nHello\n"
    assert fallback.detect(_parsed(plain), default_rules()) is None
