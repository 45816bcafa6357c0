"""Pieces every detector uses: the report's human text and recipient records."""

from __future__ import annotations

import email.message
import functools
import html
import re

from watchdog.addresses import normalise_address
from watchdog.classify.decoding import decode_header
from watchdog.classify.message import ParsedMessage
from watchdog.classify.reasons import (
    REPLY_CODE_IN_TEXT,
    Decision,
    decide,
    decision_for,
    last_status_in,
    reply_code_in,
)
from watchdog.classify.rules import Rules
from watchdog.classify.verdict import RecipientVerdict

# Recipients read from one report at most. Deciding a reason costs about a
# millisecond per recipient, and the daemon quarantines any message with
# more than ``Limits.max_recipients`` anyway, so the rest are dropped.
MAX_RECIPIENTS = 1000
_ORIGINAL_PARTS = frozenset(
    {
        "message/rfc822",
        "message/global",
        "text/rfc822-headers",
        "message/rfc822-headers",
    }
)
_TAG = re.compile(r"<[^>]{0,2000}>")
# An "unknown user" reply to DATA comes from a content filter that hides
# behind the wording: the address was accepted at RCPT TO.
_DATA_PHASE = re.compile(
    r"(end of )?data command|>>> data\b|after (end of )?data\b|\[data\]",
    re.IGNORECASE,
)
# Only the bare wording is ambiguous after DATA; "This user doesn't have a
# yahoo.com account" or "Invalid recipient" name a missing mailbox outright.
_BARE_UNKNOWN = re.compile(
    r"user unknown|unknown user|no such user|unknown recipient", re.IGNORECASE
)
# Wording of a bounce that gave up after temporary failures; its pseudo
# status takes the 4 class.
_TEMPORARY = re.compile(
    r"temporary failure|retry timeout exceeded|will be retried", re.IGNORECASE
)
# "RCPT TO", Yahoo's "[RCPT_TO]", and qmail's "does not like recipient",
# which it writes only for a reply to RCPT TO.
_RCPT_COMMAND = re.compile(r"rcpt.to|does not like recipient", re.IGNORECASE)
# A local part made only of RFC 2047 encoded-words, as some mail clients
# (Apple Mail among them) write a non-ASCII one: "=?utf-8?B?8J+QiA==?=@host".
_ENCODED_LOCAL_PART = re.compile(r"(?:=\?[^?\s@]{1,75}\?[bBqQ]\?[^?\s@]*\?=)+")
_UNSAFE_DECODED = re.compile(r"[\s@\x00-\x1f\x7f\ufffd\\\"]")
# How far after a recipient's address the report is searched for the command.
_COMMAND_WINDOW = 400


def normalise_cached(text: str) -> str | None:
    """Return ``normalise_address(text)``, cached for address-sized values.

    A report names each address in several places (its headers, the text,
    X-Failed-Recipients), and each normalisation costs a few microseconds.
    """
    if len(text) > _MAX_CACHED_CHARS:
        return normalise_address(text)
    return _normalised(text)


# Longer values are rare because normalise_address rejects addresses over
# 254 octets, and leaving them out keeps the cache small on any input.
_MAX_CACHED_CHARS = 300


@functools.lru_cache(maxsize=256)
def _normalised(text: str) -> str | None:
    return normalise_address(text)


def human_text(message: ParsedMessage) -> str:
    """Return the text parts written by the reporting MTA, before the original.

    HTML parts are used, with tags removed, only when there is no plain text.
    """
    plain: list[str] = []
    markup: list[str] = []
    unsplit: list[str] = []
    for part in message.walk():
        kind = content_type(message, part)
        if kind in _ORIGINAL_PARTS:
            break
        if kind == "text/plain":
            plain.append(message.text(part))
        elif kind == "text/html":
            markup.append(html.unescape(_TAG.sub(" ", message.text(part))))
        elif kind.startswith("multipart/") and not message.children(part):
            # A multipart whose boundary is missing or never appears parses
            # as one text body.
            unsplit.append(message.text(part))
    return "\n".join(plain or markup or unsplit)


def content_type(
    message: ParsedMessage, part: email.message.Message | None = None
) -> str:
    """Return the part's ``type/subtype``, cut at a missing ``;`` separator.

    ``Content-Type: text/plain`` folded onto a ``charset=`` line without
    the semicolon otherwise reads as one long type.
    """
    value = message.content_type(part)
    return value.split(None, 1)[0].rstrip(";") if value else value


def build_recipient(
    rules: Rules,
    address: str,
    *,
    diagnostic: str | None = None,
    status: str | None = None,
    reply_code: str | None = None,
    context: str | None = None,
    transcript: str | None = None,
    original_address: str | None = None,
    remote_mta: str | None = None,
    action: str | None = None,
    filtering_gateway: bool = False,
) -> RecipientVerdict | None:
    """Decide the reason for one recipient and build its record.

    ``status`` and ``reply_code`` default to the first ones written in
    ``diagnostic``. A generic status (``5.0.0``) gives way to a specific one
    in the diagnostic. ``context`` is text to try when the diagnostic and
    status decide nothing. ``transcript`` is the report's text, searched
    near the address for the SMTP command that failed. ``filtering_gateway``
    marks a report from a content filter, whose "user unknown" means
    ``filtered``. Returns None when ``address`` is not an address.
    """
    normalised = normalise_cached(address)
    if normalised is None:
        return None
    normalised = decode_local_part(normalised)
    text = _join_continuations(" ".join((diagnostic or "").split()))
    in_text = last_status_in(text) if text else None
    if in_text is not None and in_text[0] == (status or in_text)[0]:
        status = in_text
    reply_code = reply_code or (reply_code_in(text) if text else None)
    temporary = action == "delayed" or _TEMPORARY.search(text) is not None
    decision = decide(
        rules, text, status, reply_code, context=context, temporary=temporary
    )
    if _is_filtered(decision, text, transcript, normalised, filtering_gateway):
        # The status as given, so that a missing one gets filtered's pseudo code.
        decision = decision_for(rules, "filtered", status, reply_code)
    original = normalise_cached(original_address) if original_address else None
    original = decode_local_part(original) if original else None
    return RecipientVerdict(
        address=normalised,
        reason=decision.reason,
        hard=decision.hard,
        category=decision.category,
        original_address=original,
        status=decision.status,
        reply_code=reply_code,
        diagnostic=text or None,
        remote_mta=remote_mta,
        action=action,
    )


def decode_local_part(address: str) -> str:
    """Decode a local part written as RFC 2047 encoded-words.

    RFC 2047 forbids encoded-words in an address, but mail clients that
    encode a non-ASCII local part this way send it so, and the DSN fields
    and the transcript repeat it. The decoded text is the address the user
    meant, so it is returned instead, unless it does not decode cleanly or
    contains white space, ``@``, quotes, backslashes or control characters.
    """
    local, _at, domain = address.rpartition("@")
    if "=?" not in local or not _ENCODED_LOCAL_PART.fullmatch(local):
        return address
    decoded = decode_header(local)
    if not decoded or decoded == local or _UNSAFE_DECODED.search(decoded):
        return address
    return normalise_address(f"{decoded}@{domain}") or address


def _is_filtered(
    decision: Decision,
    text: str,
    transcript: str | None,
    address: str,
    filtering_gateway: bool,
) -> bool:
    """Tell whether an unknown-user reply came from a filter, not a mailbox lookup.

    A content-filtering gateway, or a reply to DATA after RCPT TO accepted
    the address, uses the wording for mail it refused. So does an x.2.1
    status ("mailbox disabled, not accepting messages") given outside the
    RCPT TO phase. An x.1.1 status still names a missing mailbox.
    """
    status = decision.status or ""
    if decision.reason != "userunknown" or status.endswith(".1.1"):
        return False
    if filtering_gateway:
        return True
    phase = _phase(text, transcript, address)
    if status[1:] == ".2.1" and phase != "rcpt":
        return True
    return phase == "data" and _BARE_UNKNOWN.search(text) is not None


def _phase(diagnostic: str, context: str | None, address: str) -> str | None:
    """Return the SMTP phase the failing reply came in: "rcpt", "data" or None.

    The diagnostic is read first, then the report's text just after the
    address, where a transcript shows the command (">>> DATA").
    """
    if _RCPT_COMMAND.search(diagnostic):
        return "rcpt"
    window = diagnostic
    if context:
        start = _position(context.lower(), address.lower())
        if start >= 0:
            window += "\n" + context[start : start + _COMMAND_WINDOW]
    window = " ".join(window.split())
    if _DATA_PHASE.search(window):
        return "data"
    return "rcpt" if _RCPT_COMMAND.search(window) else None


def _position(text: str, address: str) -> int:
    """Return where ``text`` first names ``address``, or -1.

    Falls back to the local part with its ``@``, because a relay may rewrite
    the domain between the DSN fields and the session transcript.
    """
    found = text.find(address)
    if found < 0:
        found = text.find(address.rpartition("@")[0] + "@")
    return found


def _join_continuations(text: str) -> str:
    """Drop the reply codes repeated on the continuation lines of ``text``.

    A multi-line SMTP reply repeats its codes on every line ("550-5.7.1 ...
    550-5.7.1 ..."); after the first, they only split the sentence. A code
    followed by neither "-" nor a status starts a quoted reply instead
    ("... unknown recipient -> 550 : User unknown") and stays.
    """
    first = REPLY_CODE_IN_TEXT.search(text)
    if first is None:
        return text
    head, tail = text[: first.end()], text[first.end() :]
    code = first.group(1)
    return head + re.sub(
        rf"(?<=\S) {code}(?:-| (?=[245]\.))(?:[245]\.[0-9]{{1,3}}\.[0-9]{{1,3}} )?",
        " ",
        tail,
    )
