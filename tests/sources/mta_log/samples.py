"""The Postfix log sample and its expected counts, shared by the tests.

``data/postfix-3.7.11.log`` is the ``maillog_file`` of a run of the
Postfix fixture (Debian's 3.7.11) relaying to the SMTP sink. It has two
delivered gmail.com recipients and one rejected with 550 5.1.1. Four
recipients of three messages were deferred with 452 4.2.2 or 450 4.7.28
until their message expired, two messages by ``maximal_queue_lifetime``
and one by ``postsuper -e``.
Four non-delivery notifications went to the sender app@bounce.test.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.cli.test_run import daemon_sections

SAMPLE = Path(__file__).parent / "data" / "postfix-3.7.11.log"

EXPECTED_ATTEMPTS = {
    ("sent", "gmail"): 2,
    ("sent", "other"): 5,
    ("bounced", "gmail"): 1,
    ("deferred", "outlook"): 14,
    ("deferred", "yahoo"): 7,
    ("deferred", "icloud"): 2,
    ("expired", "outlook"): 2,
    ("expired", "yahoo"): 1,
    ("expired", "icloud"): 1,
}
EXPECTED_DEFERRALS = {
    ("outlook", "mailbox"): 14,
    ("yahoo", "policy"): 7,
    ("icloud", "mailbox"): 2,
}
DELIVERY_LINES = 34
# Four messages and four notifications entered and left the queue.
QUEUE_LINES = 16
TOTAL_LINES = 93

_STAMP = re.compile(rb"^([A-Z][a-z]{2}) (\d\d) (\d\d:\d\d:\d\d) ")


def sample_lines() -> list[bytes]:
    """Return the sample's lines without their newlines."""
    return SAMPLE.read_bytes().splitlines()


def as_syslog(line: bytes) -> bytes:
    """Rewrite a ``maillog_file`` stamp the way traditional syslog writes it.

    ``Dec 04`` becomes ``Dec  4``: syslog pads the day with a space.
    """
    return _STAMP.sub(
        lambda m: m[1] + b" " + m[2].lstrip(b"0").rjust(2) + b" " + m[3] + b" ",
        line,
    )


def as_rfc3339(line: bytes) -> bytes:
    """Rewrite a ``maillog_file`` stamp as rsyslog's RFC 3339 format does."""
    return _STAMP.sub(
        lambda m: b"2026-12-" + m[2] + b"T" + m[3] + b".123456+00:00 ", line
    )


def daemon_config(work: Path, log: Path, *, start_at: str = "end") -> Path:
    """Write a test daemon's config that reads ``log`` every 0.2 s; return it."""
    config = work / "watchdog.toml"
    config.write_text(
        daemon_sections(work)
        + f"""
[mta_log]
enabled = true
path = "{log}"
poll_interval_seconds = 0.2
start_at = "{start_at}"
"""
    )
    return config
