"""Learning DKIM selectors from our signatures quoted in bounces."""

from __future__ import annotations

from watchdog.checks.auth.selectors import selectors_for, selectors_from_message

BOUNCE = b"""\
From: MAILER-DAEMON@mx.receiver.test
To: bounces@good.test
Subject: Undelivered Mail Returned to Sender
DKIM-Signature: v=1; a=rsa-sha256; d=receiver.test; s=theirs; bh=x; b=y
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

The mail system could not deliver your message.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.receiver.test

Final-Recipient: rfc822; gone@receiver.test
Action: failed
Status: 5.1.1

--B
Content-Type: message/rfc822

DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;
 d=Good.Test; s=s2048;
 h=from:to:subject; bh=abc; b=def
DKIM-Signature: v=1; a=ed25519-sha256; d=good.test; s=ed; bh=abc; b=def
From: news@good.test
To: gone@receiver.test
Subject: hello

body
--B--
"""

HEADERS_ONLY = b"""\
From: MAILER-DAEMON@mx.receiver.test
To: bounces@good.test
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/rfc822-headers

DKIM-Signature: v=1; d=esp.test; s=k1; bh=abc; b=def
From: news@good.test

--B--
"""


def test_quoted_signatures_found() -> None:
    """Selectors of the quoted original are found, folded headers included."""
    assert selectors_from_message(BOUNCE) == {
        ("good.test", "s2048"),
        ("good.test", "ed"),
    }


def test_outer_signature_ignored() -> None:
    """The reporting system's own signature is not ours."""
    pairs = selectors_from_message(BOUNCE)
    assert ("receiver.test", "theirs") not in pairs


def test_rfc822_headers_part() -> None:
    """A text/rfc822-headers part is searched too."""
    assert selectors_from_message(HEADERS_ONLY) == {("esp.test", "k1")}


def test_selectors_for_domain() -> None:
    """Selectors are filtered by domain and sorted."""
    pairs = {("good.test", "b"), ("good.test", "a"), ("esp.test", "c")}
    assert selectors_for(pairs, "Good.Test.") == ["a", "b"]
