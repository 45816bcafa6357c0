"""Each detector on small hand-written messages."""

from __future__ import annotations

from watchdog.classify import Kind, classify
from watchdog.classify.recipients import MAX_RECIPIENTS
from watchdog.classify.verdict import Category
from watchdog.config import Limits

_ORIGINAL = (
    "From: Sender <sender@ours.example>\r\n"
    "To: rcpt@their.example\r\n"
    "Message-ID: <orig-1@ours.example>\r\n"
    "Subject: hello\r\n\r\nbody\r\n"
)


def _dsn(fields: str, *, original: str = _ORIGINAL) -> bytes:
    text = (
        "From: MAILER-DAEMON@mx.example\r\n"
        "To: sender@ours.example\r\n"
        "Subject: Undelivered Mail\r\n"
        "Message-ID: <dsn-1@mx.example>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n--B\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example\r\n\r\n"
        f"{fields}\r\n"
        "--B\r\nContent-Type: message/rfc822\r\n\r\n"
        f"{original}"
        "--B--\r\n"
    )
    return text.encode("utf-8")


def test_dsn_user_unknown() -> None:
    verdict = classify(
        _dsn(
            "Final-Recipient: rfc822; Rcpt@Their.Example\r\n"
            "Original-Recipient: rfc822; alias@their.example\r\n"
            "Action: failed\r\nStatus: 5.1.1\r\n"
            "Remote-MTA: dns; mx.their.example\r\n"
            "Diagnostic-Code: smtp; 550 5.1.1 <rcpt@their.example>: User unknown\r\n"
        )
    )
    assert verdict.kind is Kind.BOUNCE
    assert verdict.detector == "rfc3464"
    (recipient,) = verdict.recipients
    assert recipient.address == "Rcpt@their.example"
    assert recipient.original_address == "alias@their.example"
    assert recipient.reason == "userunknown"
    assert recipient.hard is True
    assert recipient.category is Category.ADDRESS
    assert recipient.reply_code == "550"
    assert recipient.remote_mta == "mx.their.example"
    assert verdict.original_message_id == "<orig-1@ours.example>"
    assert verdict.original_sender == "sender@ours.example"


def test_dsn_several_recipients() -> None:
    verdict = classify(
        _dsn(
            "Final-Recipient: rfc822; a@their.example\r\nAction: failed\r\n"
            "Status: 5.2.2\r\n\r\n"
            "Final-Recipient: rfc822; b@their.example\r\nAction: delivered\r\n"
            "Status: 2.0.0\r\n\r\n"
            "Final-Recipient: rfc822; c@their.example\r\nAction: delayed\r\n"
            "Status: 4.4.1\r\n"
        )
    )
    addresses = [r.address for r in verdict.recipients]
    assert addresses == ["a@their.example", "c@their.example"]
    assert verdict.recipients[0].reason == "mailboxfull"
    assert verdict.recipients[1].category is Category.TRANSIENT


def test_dsn_success_report() -> None:
    verdict = classify(
        _dsn("Final-Recipient: rfc822; a@their.example\r\nAction: delivered\r\n")
    )
    assert verdict.kind is Kind.DELIVERY_REPORT
    assert verdict.recipients[0].reason == "delivered"


def test_dsn_utf8_address() -> None:
    verdict = classify(
        _dsn(
            "Final-Recipient: utf-8; ålice@bücher.example\r\n"
            "Action: failed\r\nStatus: 5.1.1\r\n"
        )
    )
    assert verdict.recipients[0].address == "ålice@xn--bcher-kva.example"


def test_dsn_gmail_block_is_reputation() -> None:
    verdict = classify(
        _dsn(
            "Final-Recipient: rfc822; a@gmail.example\r\nAction: failed\r\n"
            "Status: 5.7.1\r\nDiagnostic-Code: smtp; 550-5.7.1 [192.0.2.1] Our "
            "system has detected that this message is likely unsolicited mail.\r\n"
        )
    )
    recipient = verdict.recipients[0]
    assert recipient.category is Category.REPUTATION
    assert recipient.hard is False


def test_dsn_blocklist_is_reputation() -> None:
    verdict = classify(
        _dsn(
            "Final-Recipient: rfc822; a@their.example\r\nAction: failed\r\n"
            "Status: 5.1.1\r\nDiagnostic-Code: smtp; 554 5.7.1 Service unavailable; "
            "Client host [192.0.2.1] blocked using zen.spamhaus.org\r\n"
        )
    )
    assert verdict.recipients[0].reason == "blocked"
    assert verdict.recipients[0].hard is False


def test_dsn_missing_status_part() -> None:
    raw = (
        b"From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail\r\n"
        b"Content-Type: multipart/report; boundary=B\r\n\r\n--B\r\n"
        b"Content-Type: text/plain\r\n\r\nSomething failed.\r\n--B--\r\n"
    )
    assert classify(raw).kind is Kind.UNKNOWN


def test_arf_complaint() -> None:
    raw = (
        "From: feedback@arf.mail.example\r\nSubject: FW: hello\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="B"\r\n'
        "\r\n--B\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n"
        "--B\r\nContent-Type: message/feedback-report\r\n\r\n"
        "Feedback-Type: abuse\r\nUser-Agent: ExampleFBL/1.0\r\nVersion: 1\r\n"
        "Source-IP: 192.0.2.7\r\nReported-Domain: ours.example\r\n"
        "Original-Rcpt-To: rcpt@their.example\r\n"
        f"--B\r\nContent-Type: message/rfc822\r\n\r\n{_ORIGINAL}--B--\r\n"
    ).encode()
    verdict = classify(raw)
    assert verdict.kind is Kind.COMPLAINT
    assert verdict.recipients[0].address == "rcpt@their.example"
    assert verdict.feedback is not None
    assert verdict.feedback.feedback_type == "abuse"
    assert verdict.feedback.source_ip == "192.0.2.7"
    assert verdict.feedback.reported_domain == "ours.example"
    assert verdict.original_sender == "sender@ours.example"


def test_arf_recipient_from_original() -> None:
    raw = (
        'Content-Type: multipart/report; report-type=feedback-report; boundary="B"\r\n'
        "\r\n--B\r\nContent-Type: message/feedback-report\r\n\r\n"
        "Feedback-Type: abuse\r\nSource-IP: not-an-ip\r\n"
        f"--B\r\nContent-Type: message/rfc822\r\n\r\n{_ORIGINAL}--B--\r\n"
    ).encode()
    verdict = classify(raw)
    assert verdict.recipients[0].address == "rcpt@their.example"
    assert verdict.feedback is not None
    assert verdict.feedback.source_ip is None


def test_auto_reply_header() -> None:
    raw = (
        b"From: Rcpt <rcpt@their.example>\r\nAuto-Submitted: auto-replied\r\n"
        b"Subject: Away\r\nIn-Reply-To: <orig-1@ours.example>\r\n\r\nAway.\r\n"
    )
    verdict = classify(raw)
    assert verdict.kind is Kind.AUTO_REPLY
    assert verdict.recipients[0].reason == "vacation"
    assert verdict.original_message_id == "<orig-1@ours.example>"


def test_auto_reply_subject() -> None:
    raw = b"From: rcpt@their.example\r\nSubject: Automatic reply: hello\r\n\r\nx\r\n"
    assert classify(raw).kind is Kind.AUTO_REPLY


def test_auto_submitted_no() -> None:
    raw = b"From: a@their.example\r\nAuto-Submitted: no\r\nSubject: hi\r\n\r\nx\r\n"
    assert classify(raw).kind is Kind.NOT_BOUNCE


def test_qmail_bounce() -> None:
    raw = (
        b"From: MAILER-DAEMON@mx.example\r\nSubject: failure notice\r\n\r\n"
        b"Hi. This is the qmail-send program at mx.example.\r\n"
        b"I'm afraid I wasn't able to deliver your message.\r\n\r\n"
        b"<rcpt@their.example>:\r\n"
        b"192.0.2.1 does not like recipient.\r\n"
        b"Remote host said: 550 5.1.1 No such user\r\n\r\n"
        b"--- Below this line is a copy of the message.\r\n\r\n" + _ORIGINAL.encode()
    )
    verdict = classify(raw)
    assert verdict.detector == "vendor"
    assert [r.address for r in verdict.recipients] == ["rcpt@their.example"]
    assert verdict.recipients[0].reason == "userunknown"
    assert verdict.original_message_id == "<orig-1@ours.example>"
    assert verdict.original_sender == "sender@ours.example"


def test_exim_bounce() -> None:
    raw = (
        b"From: Mail Delivery System <Mailer-Daemon@mx.example>\r\n"
        b"Subject: Mail delivery failed: returning message to sender\r\n\r\n"
        b"This message was created automatically by mail delivery software.\r\n"
        b"The following address(es) failed:\r\n\r\n"
        b"  full@their.example\r\n"
        b"    host mx.their.example [192.0.2.1]: 552 5.2.2 Mailbox full\r\n\r\n"
        b"------ This is a copy of the message, including all the headers.\r\n\r\n"
        + _ORIGINAL.encode()
    )
    verdict = classify(raw)
    assert verdict.recipients[0].address == "full@their.example"
    assert verdict.recipients[0].category is Category.MAILBOX


def test_ses_json_bounce() -> None:
    body = (
        '{"notificationType":"Bounce","bounce":{"bounceType":"Permanent",'
        '"bouncedRecipients":[{"emailAddress":"rcpt@their.example",'
        '"action":"failed","status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 '
        'user unknown"}]},"mail":{"source":"sender@ours.example",'
        '"messageId":"0100-abc"}}'
    )
    raw = f"From: no-reply@sns.example\r\nSubject: AWS Notification\r\n\r\n{body}\r\n"
    verdict = classify(raw.encode())
    assert verdict.detector == "amazonses_json"
    assert verdict.recipients[0].reason == "userunknown"
    assert verdict.original_sender == "sender@ours.example"
    assert verdict.original_message_id == "0100-abc"


def test_plain_message() -> None:
    raw = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nhello\r\n"
    assert classify(raw).kind is Kind.NOT_BOUNCE


def test_garbage_never_raises() -> None:
    assert classify(b"\x00\xff" * 1000).kind in {Kind.NOT_BOUNCE, Kind.UNKNOWN}


def test_oversized_message() -> None:
    verdict = classify(b"x" * 200, Limits(max_message_bytes=100))
    assert verdict.kind is Kind.UNKNOWN
    assert verdict.limit == "max_message_bytes"


def test_recipients_capped() -> None:
    lines = "".join(f"user{i}@their.example\r\n" for i in range(MAX_RECIPIENTS + 50))
    raw = (
        "From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail\r\n\r\n"
        f"The following addresses failed:\r\n{lines}"
    ).encode()
    verdict = classify(raw)
    assert verdict.kind is Kind.BOUNCE
    assert len(verdict.recipients) == MAX_RECIPIENTS


def test_address_words_ignored() -> None:
    verdict = classify(
        _dsn(
            "Final-Recipient: rfc822; overquota@their.example\r\n"
            "Action: failed\r\nStatus: 5.1.1\r\n"
            "Diagnostic-Code: smtp; 550 5.1.1 <overquota@their.example>... "
            "User unknown\r\n"
        )
    )
    assert verdict.recipients[0].reason == "userunknown"


def test_dsn_action_status_disagree() -> None:
    verdict = classify(
        _dsn(
            "Final-Recipient: rfc822; a@their.example\r\nAction: failed\r\n"
            "Status: 2.0.0\r\nDiagnostic-Code: smtp; 550 mailbox full\r\n"
        )
    )
    assert verdict.kind is Kind.BOUNCE
    assert verdict.recipients[0].reason == "mailboxfull"
