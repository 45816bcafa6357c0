"""Parse the delivery lines of Postfix's mail log.

A delivery agent (smtp, lmtp, local, virtual, pipe, error, retry) logs one
line per recipient and attempt, as Postfix 3.7 writes it::

    Dec  4 22:05:03 mx postfix/smtp[123]: 4F1A2B3C4D: to=<a@example.com>,
        [orig_to=<b@example.com>, ]relay=mx.example.com[192.0.2.1]:25,
        delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, status=sent (250 Ok)

(one line in the log). The queue manager logs a message that reached
``maximal_queue_lifetime``, or that ``postsuper -e`` expired, once per
message and without recipients::

    ... postfix/qmgr[99]: 4F1A2B3C4D: from=<app@example.com>, status=expired,
        returned to sender

and ``QID: removed`` when a message leaves the queue. The cleanup daemon
logs ``QID: message-id=<...>`` when a message enters it. Three timestamp forms
precede the host: traditional syslog (``Dec  4 22:05:03``), Postfix's own
``maillog_file`` (``Dec 04 22:05:03``) and RFC 3339 from rsyslog or journald
(``2026-12-04T22:05:03.123456+00:00``).

The parser works on bytes and rejects most lines with a few substring
tests before any regular expression, because a busy log contains several
other lines per delivery line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from watchdog.config import MtaLog


class Status(StrEnum):
    """Outcome of one delivery attempt, as the ``status`` metric label."""

    SENT = "sent"
    DEFERRED = "deferred"
    BOUNCED = "bounced"
    EXPIRED = "expired"


class LineKind(StrEnum):
    """Kind of log line, as the ``result`` label of the lines counter."""

    DELIVERY = "delivery"
    SKIPPED = "skipped"
    QUEUE = "queue"
    MALFORMED = "malformed"
    TOO_LONG = "too_long"


# Postfix's status words, as in the format strings of Postfix 3.7.11
# (``, dsn=%s, status=%s (%s)`` in libpostfix-global, ``status=%s,
# returned to sender`` in qmgr). ``SOFTBOUNCE`` is a bounce that
# soft_bounce = yes turned into a deferral. ``deliverable`` and
# ``undeliverable`` are results of address verification probes (verify(8),
# sendmail -bv), which are never delivered, so they are skipped.
_STATUS_WORDS: dict[bytes, Status | None] = {
    b"sent": Status.SENT,
    b"deferred": Status.DEFERRED,
    b"SOFTBOUNCE": Status.DEFERRED,
    b"bounced": Status.BOUNCED,
    b"expired": Status.EXPIRED,
    b"force-expired": Status.EXPIRED,
    b"deliverable": None,
    b"undeliverable": None,
}

DELIVERY_AGENTS = ("smtp", "lmtp", "local", "virtual", "pipe", "error", "retry")
QUEUE_MANAGER = b"qmgr"
DEFAULT_SYSLOG_NAMES = ("postfix", "postfix/*", "postfix-*")

_HEADER = re.compile(
    rb"(?:(?P<rfc>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
    rb"|(?P<bsd>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)?))"
    rb" \S+ (?P<tag>[^\s\[]+)\[\d+\]: (?P<qid>[0-9A-Za-z]+): "
)
# The recipient and orig_to addresses, as Postfix 3.5 and later log them
# (info_log_address_format = external): a local part that contains spaces,
# commas or angle brackets is in double quotes, with a backslash before
# each '"' and "\\" inside. Whoever supplies an address chooses its local
# part, so a field written inside the quotes is not the line's own.
# NOTE: Postfix 3.4 and earlier, and info_log_address_format = internal,
# log them unquoted, and such a recipient can then hide the real fields.
_ADDRESS = rb'[^"<>]*+(?:"(?:[^"\\]++|\\.)*+"[^"<>]*+)*+'
_ADDRESSES = re.compile(
    rb"to=<(?P<to>" + _ADDRESS + rb")>, (?:orig_to=<" + _ADDRESS + rb">, )?relay="
)
_EXPIRED_SUFFIX = b"expired, returned to sender"
_REMOVED = b"removed"
_MESSAGE_ID = b": message-id="
CLEANUP = b"cleanup"
# Syslog names matched so far. A log with more distinct names than this
# contains garbage, and further names are matched without the cache.
_NAME_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt, or one message expiry (``recipient`` empty).

    ``stamp`` is the line's timestamp as written, parsed only on request by
    ``line_time``. ``dsn`` and ``relay`` are empty on expiry lines.
    """

    queue_id: str
    status: Status
    recipient: str
    dsn: str
    relay: str
    stamp: bytes


@dataclass(frozen=True, slots=True)
class QueueChange:
    """A message entered or left the queue under ``queue_id``.

    It left when every recipient was delivered, bounced or expired, or
    ``postsuper -d`` deleted it. Either way the deferrals recorded under
    this ID no longer apply, which matters because Postfix reuses IDs.
    """

    queue_id: str
    stamp: bytes


Parsed = Attempt | QueueChange | LineKind


class LineParser:
    """Parse the lines of the configured Postfix instances and agents.

    ``syslog_names`` are patterns for the part of the tag before the last
    ``/`` (``postfix``, ``postfix-out``, ``postfix/submission``).
    ``ignore_relays`` are patterns for the ``relay=`` value of attempts to
    leave out, such as a content filter on 127.0.0.1:10024 that would
    otherwise count each message twice. In both, ``*`` matches any run of
    characters and every other character matches itself, so
    ``127.0.0.1[127.0.0.1]:10024`` needs no escaping.
    """

    def __init__(
        self,
        *,
        syslog_names: Iterable[str] = DEFAULT_SYSLOG_NAMES,
        agents: Iterable[str] = DELIVERY_AGENTS,
        ignore_relays: Iterable[str] = (),
    ) -> None:
        self._name_pattern = wildcard_pattern(syslog_names)
        self._agents = frozenset(agent.encode() for agent in agents)
        relays = list(ignore_relays)
        self._ignore_relays = wildcard_pattern(relays) if relays else None
        self._names: dict[bytes, bool] = {}

    @classmethod
    def from_settings(cls, settings: MtaLog) -> LineParser:
        """Return a parser for the names, agents and relays of ``settings``."""
        return cls(
            syslog_names=settings.syslog_names,
            agents=settings.agents,
            ignore_relays=settings.ignore_relays,
        )

    def parse(self, line: bytes) -> Parsed:
        """Return the attempt or queue change of ``line``, or why it is neither.

        ``line`` has no line ending. Never raises: text that is not a
        Postfix line is SKIPPED, and a delivery line with a missing or
        unknown field is MALFORMED.
        """
        if (
            b"status=" not in line
            and not line.endswith(_REMOVED)
            and _MESSAGE_ID not in line
        ):
            # A delivery line cut before its status is damaged, not foreign.
            return _unmatched(line)
        match = _HEADER.match(line)
        if match is None:
            return _unmatched(line)
        name, _, process = match["tag"].rpartition(b"/")
        if not name or not self._counts_name(name):
            return LineKind.SKIPPED
        body = line[match.end() :]
        stamp = match["rfc"] or match["bsd"]
        queue_id = match["qid"].decode("ascii")
        if body == _REMOVED or (process == CLEANUP and body.startswith(b"message-id=")):
            return QueueChange(queue_id, stamp)
        if process in self._agents:
            return self._attempt(queue_id, body, stamp)
        if process == QUEUE_MANAGER:
            if body.endswith(_EXPIRED_SUFFIX):
                return _expiry(queue_id, body, stamp)
            # The queue manager logs the recipients it defers itself, in the
            # agents' format, with reasons such as "mail transport
            # unavailable" (a string of Postfix 3.7.11's qmgr).
            if body.startswith(b"to=<"):
                return self._attempt(queue_id, body, stamp)
        return LineKind.SKIPPED

    def _counts_name(self, name: bytes) -> bool:
        known = self._names.get(name)
        if known is not None:
            return known
        text = name.decode("utf-8", "replace")
        found = self._name_pattern.fullmatch(text) is not None
        if len(self._names) < _NAME_CACHE_SIZE:
            self._names[name] = found
        return found

    def _attempt(self, queue_id: str, body: bytes, stamp: bytes) -> Parsed:
        if not body.startswith(b"to=<"):
            return LineKind.SKIPPED
        addresses = _ADDRESSES.match(body)
        if addresses is None:
            return LineKind.MALFORMED

        relay_at = addresses.end()
        dsn_at = body.find(b", dsn=", relay_at)
        status_at = body.find(b", status=", dsn_at)
        if min(dsn_at, status_at) < 0:
            return LineKind.MALFORMED

        word = body[status_at + 9 :].partition(b" ")[0]
        if word not in _STATUS_WORDS:
            return LineKind.MALFORMED
        status = _STATUS_WORDS[word]
        if status is None:
            return LineKind.SKIPPED

        relay = body[relay_at:].partition(b",")[0].decode("utf-8", "replace")
        if self._ignore_relays and self._ignore_relays.fullmatch(relay):
            return LineKind.SKIPPED

        # NUL becomes U+FFFD like invalid UTF-8, because PostgreSQL's text
        # type, where deferred recipients are stored, rejects it.
        recipient = addresses["to"].decode("utf-8", "replace").replace("\0", "\ufffd")
        return Attempt(
            queue_id=queue_id,
            status=status,
            recipient=recipient,
            dsn=body[dsn_at + 6 : status_at].decode("ascii", "replace"),
            relay=relay,
            stamp=stamp,
        )


def wildcard_pattern(patterns: Iterable[str]) -> re.Pattern[str]:
    """Compile patterns where ``*`` matches any run of characters into one."""
    parts = (".*".join(re.escape(piece) for piece in p.split("*")) for p in patterns)
    return re.compile("|".join(f"(?:{part})" for part in parts))


def _expiry(queue_id: str, body: bytes, stamp: bytes) -> Parsed:
    if not body.startswith(b"from=<"):
        return LineKind.MALFORMED
    word = body.rpartition(b"status=")[2].partition(b",")[0]
    if _STATUS_WORDS.get(word) is not Status.EXPIRED:
        return LineKind.MALFORMED
    return Attempt(queue_id, Status.EXPIRED, "", "", "", stamp)


def _unmatched(line: bytes) -> LineKind:
    """Classify a line that lacks the syslog header or the status.

    A line that names a Postfix delivery field is damaged (cut by a full
    disk, two writers interleaved) and counts as malformed. Other programs'
    lines are skipped.
    """
    if b"postfix" in line and b": to=<" in line:
        return LineKind.MALFORMED
    return LineKind.SKIPPED


_MONTHS = {
    name.encode(): number
    for number, name in enumerate(
        [
            "Jan",
            "Feb",
            "Mar",
            "Apr",
            "May",
            "Jun",
            "Jul",
            "Aug",
            "Sep",
            "Oct",
            "Nov",
            "Dec",
        ],
        start=1,
    )
}


def line_time(stamp: bytes, now: datetime) -> datetime | None:
    """Return the time of a line's ``stamp``, or None when it does not parse.

    RFC 3339 stamps carry their offset; one without an offset is taken as
    UTC. Traditional stamps have no year and no zone: they are read in the
    local time zone of this process, in the year that puts them at most a
    day after ``now`` (a December line read in January is last year's).
    """
    text = stamp.decode("ascii", "replace")
    if stamp[:1].isdigit():
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    month = _MONTHS.get(stamp[:3])
    if month is None:
        return None
    try:
        day = int(stamp[4:6])
        hour, minute, second = (int(part) for part in text[7:15].split(":"))
        # A naive datetime's astimezone() takes the local offset in force
        # on that date, so a winter line read in summer is not an hour off.
        wall = datetime(now.astimezone().year, month, day, hour, minute, second)
    except ValueError:
        return None
    moment = wall.astimezone()
    if moment > now + timedelta(days=1):
        try:
            moment = wall.replace(year=wall.year - 1).astimezone()
        except ValueError:  # 29 February
            return None
    return moment
