"""Labelling conventions: filtering gateways, status comments, encoded-words."""

from __future__ import annotations

from watchdog.classify import classify
from watchdog.classify.reasons import reply_code_in
from watchdog.classify.recipients import decode_local_part

_ORIGINAL = (
    "From: Sender <sender@ours.example>\r\n"
    "To: rcpt@their.example\r\n"
    "Message-ID: <orig-1@ours.example>\r\n"
    "Subject: hello\r\n\r\nbody\r\n"
)


def _zoho(reply: str) -> bytes:
    text = (
        "From: mailer-daemon@mail.zoho.example\r\n"
        "To: sender@ours.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "X-Mailer: Zoho Mail\r\n\r\n"
        "This message was created automatically by mail delivery software.\r\n\r\n"
        f"rcpt@their.example Invalid Address, ERROR_CODE :550, ERROR_CODE :{reply}"
        "\r\n\r\n\r\n" + _ORIGINAL
    )
    return text.encode()


def _dsn(fields: str) -> bytes:
    text = (
        "From: MAILER-DAEMON@mx.example\r\n"
        "To: sender@ours.example\r\n"
        "Subject: Undelivered Mail\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n--B\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example\r\n\r\n"
        f"{fields}\r\n"
        "--B\r\nContent-Type: message/rfc822\r\n\r\n" + _ORIGINAL + "--B--\r\n"
    )
    return text.encode()


def test_gateway_unknown_is_filtered() -> None:
    verdict = classify(_zoho("Requested action not taken: mailbox unavailable"))
    (recipient,) = verdict.recipients
    assert recipient.reason == "filtered"
    assert recipient.hard is False
    assert recipient.status == "5.0.910"


def test_gateway_status_511_stays_unknown() -> None:
    verdict = classify(_zoho("5.1.1 <rcpt@their.example>... User Unknown"))
    (recipient,) = verdict.recipients
    assert recipient.reason == "userunknown"
    assert recipient.hard is True


def test_plain_bounce_unknown_stays() -> None:
    raw = _zoho("Requested action not taken: mailbox unavailable")
    verdict = classify(raw.replace(b"X-Mailer: Zoho Mail\r\n", b""))
    assert verdict.recipients[0].reason == "userunknown"


def test_quoted_mailer_not_gateway() -> None:
    raw = _zoho("Requested action not taken: mailbox unavailable")
    raw = raw.replace(b"X-Mailer: Zoho Mail\r\n", b"")
    raw = raw.replace(b"From: Sender", b"X-Mailer: Zoho Mail\r\nFrom: Sender")
    assert classify(raw).recipients[0].reason == "userunknown"


def test_zoho_reply_code_before_comma() -> None:
    verdict = classify(_zoho("").replace(b":550,", b":421,"))
    assert verdict.recipients[0].reply_code == "421"


def test_status_comment_decides() -> None:
    verdict = classify(
        _dsn(
            "Final-Recipient: rfc822; rcpt@their.example\r\nAction: failed\r\n"
            "Status: 5.2.1 (mailbox disabled, not accepting messages)\r\n"
            "Diagnostic-Code: smtp;550 5.2.1 <rcpt@their.example>... User Unknown\r\n"
        )
    )
    assert verdict.recipients[0].reason == "suspend"


def test_data_phase_other_domain() -> None:
    raw = _dsn(
        "Final-Recipient: rfc822; rcpt@their.example\r\nAction: failed\r\n"
        "Status: 5.2.1\r\n"
        "Diagnostic-Code: smtp; 550 5.2.1 <rcpt@their.example>... User Unknown\r\n"
    ).replace(
        b"Delivery failed.\r\n",
        b"... while talking to mx.their.example:\r\n<rcpt@relay.example>\r\n"
        b">>> DATA\r\n<<< 550 5.2.1 <rcpt@relay.example>... User Unknown\r\n",
    )
    assert classify(raw).recipients[0].reason == "filtered"


def test_dsn_encoded_local_part() -> None:
    verdict = classify(
        _dsn(
            "Final-Recipient: RFC822; =?utf-8?B?8J+QiPCfkIg=?=@example.org\r\n"
            "Action: failed\r\nStatus: 5.1.1\r\n"
        )
    )
    assert verdict.recipients[0].address == "\U0001f408\U0001f408@example.org"


def test_encoded_local_part_decoded() -> None:
    decoded = decode_local_part("=?utf-8?Q?caf=C3=A9?=@example.org")
    assert decoded == "caf\u00e9@example.org"


def test_encoded_local_part_unsafe_kept() -> None:
    address = "=?utf-8?Q?a=40b?=@example.org"
    assert decode_local_part(address) == address


def test_encoded_local_part_invalid_kept() -> None:
    address = "=?utf-8?B?////?=@example.org"
    assert decode_local_part(address) == address


def test_encoded_word_inside_local_part_kept() -> None:
    address = "x=?utf-8?B?8J+QiA==?=@example.org"
    assert decode_local_part(address) == address


def _exim(headers: str, report: str, original: str = _ORIGINAL) -> bytes:
    text = (
        "From: Mail Delivery System <Mailer-Daemon@mx.example>\r\n"
        "Subject: Mail delivery failed: returning message to sender\r\n"
        f"{headers}\r\n"
        "This message was created automatically by mail delivery software.\r\n\r\n"
        f"{report}\r\n\r\n"
        "------ This is a copy of the message, including all the headers. ------\r\n"
        "\r\n" + original
    )
    return text.encode()


def test_exim_report_beats_header() -> None:
    raw = _exim(
        "X-Failed-Recipients: rcpt@rewritten.example\r\n",
        "  rcpt@their.example\r\n"
        "    host mx.their.example [192.0.2.1]: 552 5.2.2 Mailbox full",
    )
    addresses = [r.address for r in classify(raw).recipients]
    assert addresses == ["rcpt@their.example"]


def test_exim_header_kept_for_others() -> None:
    raw = _exim(
        "X-Failed-Recipients: list@groups.example\r\n",
        "  someone@elsewhere.example\r\n    host mx: 550 5.1.1 No such user",
    )
    addresses = [r.address for r in classify(raw).recipients]
    assert addresses == ["list@groups.example"]


def test_exim_malformed_address() -> None:
    raw = _exim(
        "",
        "  a@ours.example <b@their.example>: malformed address: "
        "<b@their.example> may not follow a@ours.example",
    )
    (recipient,) = classify(raw).recipients
    assert recipient.address == "b@their.example"
    assert recipient.reason == "syntaxerror"


def test_fml_loop_alert() -> None:
    raw = (
        b"From: list-admin@ours.example\r\nTo: list-admin@ours.example\r\n"
        b"Subject: Loop Alert: Duplicated Message-ID (list ML)\r\n"
        b"X-MLServer: fml [fml 4.0.3 release]\r\n\r\n"
        b"Duplicated Message-ID in <list@ours.example>.\r\n"
    )
    (recipient,) = classify(raw).recipients
    assert recipient.address == "list@ours.example"
    assert recipient.reason == "systemerror"
    assert recipient.status == "5.0.930"


def test_disabled_status_outside_rcpt() -> None:
    verdict = classify(
        _dsn(
            "Final-Recipient: rfc822; rcpt@their.example\r\nAction: failed\r\n"
            "Status: 5.2.1\r\n"
            "Diagnostic-Code: smtp; 550 5.2.1 <rcpt@their.example>... User Unknown\r\n"
        )
    )
    assert verdict.recipients[0].reason == "filtered"


def test_disabled_status_at_rcpt() -> None:
    verdict = classify(
        _dsn(
            "Final-Recipient: rfc822; rcpt@their.example\r\nAction: failed\r\n"
            "Status: 5.2.1\r\n"
            "Diagnostic-Code: smtp; 550 5.2.1 <rcpt@their.example>... User Unknown"
            " (in reply to RCPT TO command)\r\n"
        )
    )
    assert verdict.recipients[0].reason == "userunknown"


def test_quoted_reply_code_kept() -> None:
    verdict = classify(
        _dsn(
            "Final-Recipient: rfc822; rcpt@their.example\r\nAction: failed\r\n"
            "Status: 5.1.351\r\n"
            "Diagnostic-Code: smtp;550 5.1.351 Remote server returned unknown "
            "recipient or mailbox unavailable -> 550 : User unknown\r\n"
        )
    )
    assert verdict.recipients[0].reason == "filtered"


def _sendmail(transcript: str) -> bytes:
    return _dsn(
        "Final-Recipient: RFC822; rcpt@their.example\r\nAction: failed\r\n"
        "Status: 4.4.7\r\n"
    ).replace(
        b"Delivery failed.\r\n",
        b"   ----- The following addresses had permanent fatal errors -----\r\n"
        b"<rcpt@their.example>\r\n\r\n"
        b"   ----- Transcript of session follows -----\r\n" + transcript.encode(),
    )


def test_sendmail_deferred_line_read() -> None:
    raw = _sendmail(
        "<rcpt@their.example>... Deferred: Connection refused by mx.their.example\r\n"
    )
    assert classify(raw).recipients[0].reason == "blocked"


def test_sendmail_line_above_read() -> None:
    raw = _sendmail(
        "mail.local: unknown user: rcpt\r\n"
        "554 <rcpt@their.example>... Service unavailable\r\n"
    )
    assert classify(raw).recipients[0].reason == "userunknown"


def test_number_before_comma_no_code() -> None:
    assert reply_code_in("mailbox holds 450, over the limit") is None
