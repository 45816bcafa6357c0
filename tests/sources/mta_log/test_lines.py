"""Postfix log lines: what each one records, from real and real-shaped lines."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.sources.mta_log.samples import as_rfc3339, as_syslog, sample_lines
from watchdog.sources.mta_log.lines import (
    Attempt,
    LineKind,
    LineParser,
    QueueChange,
    Status,
    line_time,
)

RELAY = "127.0.0.1[127.0.0.1]:50469"
HEAD = b"Dec 04 22:11:13 mta postfix/smtp[16916]: 92CAE20ED9D: "
TAIL = b"delay=0.03, delays=0.01/0.01/0/0.02, dsn=4.2.2, status=deferred (x)"


def _line(prefix: str, body: str) -> bytes:
    return f"Dec 04 22:11:13 mta {prefix}: 92CAE20ED9D: {body}".encode()


# Lines copied from the fixture's log (data/postfix-3.7.11.log, and a run
# with soft_bounce = yes), then lines of other agents in the same format as
# Postfix 3.7 writes them.
ATTEMPTS = [
    pytest.param(
        _line(
            "postfix/smtp[16917]",
            f"to=<ok2@gmail.com>, relay={RELAY}, delay=0.02, "
            "delays=0/0.01/0/0.01, dsn=2.0.0, status=sent (250 2.0.0 Ok: "
            "queued as SINK)",
        ),
        Status.SENT,
        "ok2@gmail.com",
        "2.0.0",
        id="smtp-sent",
    ),
    pytest.param(
        _line(
            "postfix/smtp[16916]",
            f"to=<unknown1@gmail.com>, relay={RELAY}, delay=0.03, "
            "delays=0.01/0.01/0/0.01, dsn=5.1.1, status=bounced (host "
            "127.0.0.1[127.0.0.1] said: 550 5.1.1 <unknown1@gmail.com>: "
            "Recipient address rejected: User unknown (in reply to RCPT TO "
            "command))",
        ),
        Status.BOUNCED,
        "unknown1@gmail.com",
        "5.1.1",
        id="smtp-bounced",
    ),
    pytest.param(
        _line(
            "postfix/smtp[16916]",
            f"to=<throttled1@yahoo.com>, relay={RELAY}, delay=0.04, "
            "delays=0.01/0.01/0/0.02, dsn=4.7.28, status=deferred (host "
            "127.0.0.1[127.0.0.1] said: 450 4.7.28 Our system has detected an "
            "unusual rate of mail (in reply to RCPT TO command))",
        ),
        Status.DEFERRED,
        "throttled1@yahoo.com",
        "4.7.28",
        id="smtp-deferred",
    ),
    pytest.param(
        _line(
            "postfix/lmtp[2001]",
            "to=<bounces@bounce.test>, orig_to=<postmaster@bounce.test>, "
            "relay=127.0.0.1[127.0.0.1]:24, delay=0.1, delays=0.05/0/0/0.05, "
            "dsn=2.0.0, status=sent (250 2.0.0 <bounces@bounce.test> Saved)",
        ),
        Status.SENT,
        "bounces@bounce.test",
        "2.0.0",
        id="lmtp-orig-to",
    ),
    pytest.param(
        _line(
            "postfix/local[2002]",
            "to=<root@mta.test>, orig_to=<root>, relay=local, delay=0.01, "
            "delays=0/0/0/0, dsn=2.0.0, status=sent (delivered to mailbox)",
        ),
        Status.SENT,
        "root@mta.test",
        "2.0.0",
        id="local",
    ),
    pytest.param(
        _line(
            "postfix/virtual[2003]",
            "to=<user@example.net>, relay=virtual, delay=0.02, "
            "delays=0.01/0/0/0.01, dsn=5.2.2, status=bounced (maildir delivery "
            "failed: mailbox is full)",
        ),
        Status.BOUNCED,
        "user@example.net",
        "5.2.2",
        id="virtual",
    ),
    pytest.param(
        _line(
            "postfix/pipe[2004]",
            "to=<list@example.net>, relay=mlmmj, delay=0.2, "
            "delays=0.1/0/0/0.1, dsn=2.0.0, status=sent (delivered via mlmmj "
            "service)",
        ),
        Status.SENT,
        "list@example.net",
        "2.0.0",
        id="pipe",
    ),
    pytest.param(
        _line(
            "postfix/error[2005]",
            "to=<a@outlook.com>, relay=none, delay=301, "
            "delays=300/1/0/0, dsn=4.4.1, status=deferred (delivery temporarily "
            "suspended: connect to outlook-com.olc.protection.outlook.com"
            "[192.0.2.7]:25: Connection timed out)",
        ),
        Status.DEFERRED,
        "a@outlook.com",
        "4.4.1",
        id="error",
    ),
    pytest.param(
        _line(
            "postfix/retry[2006]",
            "to=<b@gmail.com>, relay=none, delay=2, delays=2/0/0/0, "
            "dsn=4.3.0, status=deferred (mail transport unavailable)",
        ),
        Status.DEFERRED,
        "b@gmail.com",
        "4.3.0",
        id="retry",
    ),
    pytest.param(
        _line(
            "postfix/smtp[7108]",
            f"to=<unknown9@gmail.com>, relay={RELAY}, delay=0.03, "
            "delays=0.01/0.01/0/0.01, dsn=4.1.1, status=SOFTBOUNCE (host "
            "127.0.0.1[127.0.0.1] said: 550 5.1.1 <unknown9@gmail.com>: "
            "Recipient address rejected: User unknown (in reply to RCPT TO "
            "command))",
        ),
        Status.DEFERRED,
        "unknown9@gmail.com",
        "4.1.1",
        id="softbounce-real",
    ),
    pytest.param(
        _line(
            "postfix/qmgr[99]",
            "to=<e@yahoo.com>, relay=none, delay=0.1, delays=0.1/0/0/0, "
            "dsn=4.3.0, status=deferred (mail transport unavailable)",
        ),
        Status.DEFERRED,
        "e@yahoo.com",
        "4.3.0",
        id="qmgr-deferral",
    ),
    pytest.param(
        _line(
            "postfix-out/smtp[2007]",
            "to=<c@gmail.com>, relay=gmail-smtp-in.l.google.com"
            "[192.0.2.8]:25, delay=1.5, delays=0.1/0/0.4/1, dsn=5.7.1, "
            "status=SOFTBOUNCE (host said: 550 5.7.1 blocked)",
        ),
        Status.DEFERRED,
        "c@gmail.com",
        "5.7.1",
        id="instance-softbounce",
    ),
    pytest.param(
        _line(
            "postfix/smtp[2008]",
            "to=<d@gmail.com>, relay=mx[192.0.2.9]:25, conn_use=3, delay=0.5, "
            "delays=0/0/0/0.5, dsn=2.0.0, status=sent (250 ok)",
        ),
        Status.SENT,
        "d@gmail.com",
        "2.0.0",
        id="conn-use",
    ),
]


@pytest.mark.parametrize(("line", "status", "recipient", "dsn"), ATTEMPTS)
def test_attempt_fields(line: bytes, status: Status, recipient: str, dsn: str) -> None:
    """Each delivery agent's line gives its status, recipient and DSN."""
    parsed = LineParser().parse(line)
    assert isinstance(parsed, Attempt)
    assert parsed.status is status
    assert parsed.recipient == recipient
    assert parsed.dsn == dsn
    assert parsed.queue_id == "92CAE20ED9D"


@pytest.mark.parametrize(
    "word", ["status=expired", "status=force-expired"], ids=["expired", "forced"]
)
def test_expiry_line(word: str) -> None:
    """The queue manager's expiry is an attempt without a recipient."""
    line = _line(
        "postfix/qmgr[16911]",
        f"from=<app@bounce.test>, {word}, returned to sender",
    )
    parsed = LineParser().parse(line)
    assert isinstance(parsed, Attempt)
    assert parsed.status is Status.EXPIRED
    assert parsed.recipient == ""


def test_removed_line() -> None:
    """``QID: removed`` ends a message's stay in the queue."""
    parsed = LineParser().parse(_line("postfix/qmgr[16911]", "removed"))
    assert parsed == QueueChange("92CAE20ED9D", b"Dec 04 22:11:13")


def test_message_id_line() -> None:
    """The cleanup daemon's message-id line starts a message's stay."""
    line = _line("postfix/cleanup[16882]", "message-id=<x@mta.test>")
    assert LineParser().parse(line) == QueueChange("92CAE20ED9D", b"Dec 04 22:11:13")
    other = _line("postfix/smtpd[1]", "message-id=<x@mta.test>")
    assert LineParser().parse(other) is LineKind.SKIPPED


SKIPPED = [
    pytest.param(
        _line(
            "postfix/qmgr[16911]", "from=<a@b.test>, size=463, nrcpt=4 (queue active)"
        ),
        id="queue-active",
    ),
    pytest.param(
        b"Dec 04 22:11:13 mta postfix/smtpd[16914]: connect from localhost[127.0.0.1]",
        id="smtpd",
    ),
    pytest.param(
        _line(
            "postfix/bounce[16918]",
            "sender non-delivery notification: 9ADBD20ED9E",
        ),
        id="bounce-notice",
    ),
    pytest.param(
        _line(
            "postfix/smtp[1]",
            "to=<a@b.test>, relay=mx[192.0.2.1]:25, delay=1, delays=1/0/0/0, "
            "dsn=2.1.5, status=deliverable (250 2.1.5 Ok)",
        ),
        id="verify-probe",
    ),
    pytest.param(
        _line(
            "postfix/smtp[1]",
            "to=<a@b.test>, relay=mx[192.0.2.1]:25, delay=1, delays=1/0/0/0, "
            "dsn=5.1.1, status=undeliverable (550 5.1.1 unknown)",
        ),
        id="verify-undeliverable",
    ),
    pytest.param(
        _line(
            "opendkim/smtp[1]",
            "to=<a@b.test>, relay=x, delay=1, delays=1, dsn=2.0.0, status=sent",
        ),
        id="other-syslog-name",
    ),
    pytest.param(b"Dec 04 22:11:13 mta dovecot: imap(x): status=ok", id="dovecot"),
    pytest.param(b"\x00\xff\xfe\x80 status= \x1b[31m", id="binary"),
    pytest.param(b"", id="empty"),
]


@pytest.mark.parametrize("line", SKIPPED)
def test_skipped(line: bytes) -> None:
    """Lines that record no delivery are skipped."""
    assert LineParser().parse(line) is LineKind.SKIPPED


MALFORMED = [
    pytest.param(
        HEAD + b"to=<a@gmail.com>, relay=mx[192.0.2.1]:25, delay=0.03",
        id="cut-after-delay",
    ),
    pytest.param(
        HEAD + b"to=<a@gmail.com>, relay=x, " + TAIL.replace(b"deferred", b"lost"),
        id="unknown-status",
    ),
    pytest.param(HEAD + b"to=<a@gmail.com status=sent", id="unclosed-address"),
    pytest.param(
        b"mta postfix/smtp[1]: 92CAE20ED9D: to=<a@gmail.com>, relay=x, " + TAIL,
        id="no-timestamp",
    ),
    pytest.param(
        _line("postfix/qmgr[1]", "status=expired, returned to sender"),
        id="expiry-without-from",
    ),
]


@pytest.mark.parametrize("line", MALFORMED)
def test_malformed(line: bytes) -> None:
    """A delivery line with a missing or unknown field is malformed."""
    assert LineParser().parse(line) is LineKind.MALFORMED


def test_ignored_relay() -> None:
    """Attempts to an ignored relay, such as a content filter, are skipped."""
    line = HEAD + b"to=<a@gmail.com>, relay=127.0.0.1[127.0.0.1]:10024, " + TAIL
    parser = LineParser(ignore_relays=["127.0.0.1[127.0.0.1]:10024"])
    assert parser.parse(line) is LineKind.SKIPPED
    assert isinstance(LineParser().parse(line), Attempt)


def test_agents_setting() -> None:
    """Agents left out of ``agents`` are skipped."""
    line = _line(
        "postfix/lmtp[1]",
        "to=<a@b.test>, relay=x, delay=1, delays=1/0/0/0, dsn=2.0.0, status=sent",
    )
    assert LineParser(agents=["smtp"]).parse(line) is LineKind.SKIPPED
    assert isinstance(LineParser(agents=["lmtp"]).parse(line), Attempt)


def test_syslog_name_patterns() -> None:
    """Only the configured syslog names count."""
    line = HEAD.replace(b"postfix/", b"postfix-out/") + b"to=<a@b>, relay=x, " + TAIL
    assert isinstance(LineParser().parse(line), Attempt)
    assert LineParser(syslog_names=["postfix"]).parse(line) is LineKind.SKIPPED


def test_master_cf_service_name() -> None:
    """Debian's master.cf names the relay transport postfix/relay.

    Its ``-o syslog_name=postfix/$service_name`` makes the tag
    postfix/relay/smtp. The line is from the fixture, with relay_domains
    sent through that transport.
    """
    line = (
        b"Dec 04 22:52:17 mta postfix/relay/smtp[5235]: 987A820C2B0: "
        b"to=<ok@relay.test>, relay=127.0.0.1[127.0.0.1]:45881, delay=0.03, "
        b"delays=0.02/0.01/0/0, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued "
        b"as SINK)"
    )
    parsed = LineParser().parse(line)
    assert isinstance(parsed, Attempt)
    assert parsed.status is Status.SENT
    instance = line.replace(b"postfix/relay/", b"postfix-out/relay/")
    assert isinstance(LineParser().parse(instance), Attempt)


def test_long_queue_id() -> None:
    """Long queue IDs (enable_long_queue_ids = yes) parse like short ones."""
    line = HEAD.replace(b"92CAE20ED9D", b"4Kc7SZ3Pqkz9sxY") + b"to=<a@b>, relay=x, "
    parsed = LineParser().parse(line + TAIL)
    assert isinstance(parsed, Attempt)
    assert parsed.queue_id == "4Kc7SZ3Pqkz9sxY"


def test_utf8_recipient() -> None:
    """An SMTPUTF8 recipient is decoded; invalid bytes become U+FFFD."""
    line = HEAD + "to=<jöran@exämple.de>, relay=x, ".encode() + TAIL
    parsed = LineParser().parse(line)
    assert isinstance(parsed, Attempt)
    assert parsed.recipient == "jöran@exämple.de"
    broken = LineParser().parse(HEAD + b"to=<a\xff@b.de>, relay=x, " + TAIL)
    assert isinstance(broken, Attempt)
    assert broken.recipient == "a\ufffd@b.de"


@pytest.mark.parametrize("rewrite", [as_syslog, as_rfc3339], ids=["syslog", "rfc3339"])
def test_stamp_formats(rewrite: object) -> None:
    """Every sample line parses the same under the other two stamp formats."""
    assert callable(rewrite)
    parser = LineParser()
    for line in sample_lines():
        original = parser.parse(line)
        other = parser.parse(rewrite(line))
        if isinstance(original, Attempt | QueueChange):
            assert type(other) is type(original), line
            assert other.queue_id == original.queue_id
        else:
            assert other == original, line


NOW = datetime(2026, 12, 4, 23, 0, tzinfo=UTC)


def test_time_of_syslog_stamp() -> None:
    """Traditional stamps are local time in the year that fits ``now``."""
    moment = line_time(b"Dec  4 22:05:03", NOW)
    assert moment is not None
    local = moment.astimezone(NOW.astimezone().tzinfo)
    assert (local.month, local.day, local.hour, local.second) == (12, 4, 22, 3)


def test_time_of_rfc3339_stamp() -> None:
    """RFC 3339 stamps keep their offset."""
    moment = line_time(b"2026-12-04T22:05:03.123456+01:00", NOW)
    assert moment == datetime(
        2026, 12, 4, 22, 5, 3, 123456, tzinfo=timezone(timedelta(hours=1))
    )


@pytest.mark.parametrize(
    ("stamp", "offset"),
    [
        (b"2026-12-04T22:05:03+0000", 0),
        (b"2026-12-04T22:05:03.5-05:00", -5),
        (b"2026-12-04T22:05:03Z", 0),
    ],
    ids=["journald-short-iso", "fraction", "zulu"],
)
def test_rfc3339_variants(stamp: bytes, offset: int) -> None:
    """journald's and rsyslog's ISO stamps parse in the header and in time."""
    line = stamp + b" mx postfix/smtp[1]: ABC: to=<a@gmail.com>, relay=x, "
    assert isinstance(LineParser().parse(line + TAIL), Attempt)
    moment = line_time(stamp, NOW)
    assert moment is not None
    assert moment.utcoffset() == timedelta(hours=offset)


def test_time_last_year() -> None:
    """A December line read on 1 January belongs to last year."""
    moment = line_time(b"Dec 31 23:59:59", datetime(2027, 1, 1, 0, 5, tzinfo=UTC))
    assert moment is not None
    assert moment.year == 2026


@pytest.fixture
def berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run in Europe/Berlin, whose offset is +01:00 in winter, +02:00 in summer."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("berlin")
@pytest.mark.parametrize(
    ("stamp", "now", "expected"),
    [
        (
            b"Mar 29 01:59:00",
            datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
            datetime(2026, 3, 29, 0, 59, tzinfo=UTC),
        ),
        (
            b"Jan 15 12:00:00",
            datetime(2026, 7, 1, 12, 0, tzinfo=UTC),
            datetime(2026, 1, 15, 11, 0, tzinfo=UTC),
        ),
        (
            b"Jul  1 12:00:00",
            datetime(2026, 12, 1, 12, 0, tzinfo=UTC),
            datetime(2026, 7, 1, 10, 0, tzinfo=UTC),
        ),
    ],
    ids=["before-spring-change", "winter-read-in-summer", "summer-read-in-winter"],
)
def test_time_daylight_saving(stamp: bytes, now: datetime, expected: datetime) -> None:
    """A traditional stamp takes the local offset of its own date, not of now."""
    assert line_time(stamp, now) == expected


@pytest.mark.parametrize(
    "stamp", [b"Foo 04 22:05:03", b"Feb 30 22:05:03", b"2026-13-01T00:00:00"]
)
def test_time_invalid(stamp: bytes) -> None:
    """A stamp that names no real moment gives None."""
    assert line_time(stamp, NOW) is None


# Postfix 3.5 and later log addresses in external form: a local part with
# spaces, commas or ">" is quoted, and '"' and "\" inside it are escaped.
# The first line is from the fixture's log, for RCPT TO:<"a\"b>, relay=c,
# ..., status=bounced (\\"@gmail.com>; the others are built like it.
QUOTED = [
    pytest.param(
        _line(
            "postfix/smtp[14093]",
            r'to=<"a\"b>, relay=c, delay=1, delays=1/1/1/1, dsn=5.0.0, '
            r'status=bounced (\\"@gmail.com>, relay=127.0.0.1[127.0.0.1]:45881, '
            "delay=0.02, delays=0.01/0/0/0, dsn=2.0.0, status=sent (250 2.0.0 "
            "Ok: queued as SINK)",
        ),
        Status.SENT,
        r'"a\"b>, relay=c, delay=1, delays=1/1/1/1, dsn=5.0.0, '
        r'status=bounced (\\"@gmail.com',
        "127.0.0.1[127.0.0.1]:45881",
        id="forged-bounce",
    ),
    pytest.param(
        _line(
            "postfix/smtp[1]",
            'to=<"full>, relay=x, delay=1, delays=1/1/1/1, dsn=2.0.0, '
            'status=sent (ok"@outlook.com>, relay=mx[192.0.2.1]:25, delay=1, '
            "delays=1/0/0/0, dsn=4.2.2, status=deferred (452 4.2.2 full)",
        ),
        Status.DEFERRED,
        '"full>, relay=x, delay=1, delays=1/1/1/1, dsn=2.0.0, status=sent '
        '(ok"@outlook.com',
        "mx[192.0.2.1]:25",
        id="forged-sent",
    ),
    pytest.param(
        _line(
            "postfix/smtp[1]",
            'to=<a@gmail.com>, orig_to=<"x>, relay=y, dsn=2.0.0, status=sent '
            '(z"@alias.test>, relay=mx[192.0.2.1]:25, delay=1, '
            "delays=1/0/0/0, dsn=5.1.1, status=bounced (550 5.1.1 unknown)",
        ),
        Status.BOUNCED,
        "a@gmail.com",
        "mx[192.0.2.1]:25",
        id="forged-orig-to",
    ),
]


@pytest.mark.parametrize(("line", "status", "recipient", "relay"), QUOTED)
def test_quoted_recipient(
    line: bytes, status: Status, recipient: str, relay: str
) -> None:
    """Fields inside a quoted address do not count as the line's own."""
    parsed = LineParser().parse(line)
    assert isinstance(parsed, Attempt)
    assert parsed.status is status
    assert parsed.recipient == recipient
    assert parsed.relay == relay
