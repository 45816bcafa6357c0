"""Non-standard bounces: plain-text reports from qmail, Exim, old Sendmail,
Exchange, Domino, Courier, Gmail, Yahoo, Google Groups, Mail.ru, Yandex,
the Japanese carriers and others.

These formats differ in layout but share a shape: a bounce sender
(``MAILER-DAEMON``, ``postmaster``) or subject, a paragraph naming each
failed recipient followed by the remote server's reply, and a copy of the
original after a separator line. Recipients are found in that order of
confidence: on a line of their own (Exim, Gmail), as ``<address>:``
(qmail, Yahoo), after a recipient label, then anywhere in the report.
"""

from __future__ import annotations

import re

from watchdog.classify.message import ParsedMessage
from watchdog.classify.original import Original, address_of, find_original
from watchdog.classify.reasons import reply_code_in, status_in
from watchdog.classify.recipients import (
    MAX_RECIPIENTS,
    build_recipient,
    human_text,
    normalise_cached,
)
from watchdog.classify.rules import Rules
from watchdog.classify.verdict import Kind, RecipientVerdict, Verdict, unknown

NAME = "vendor"
_BOUNCE_SENDERS = re.compile(
    r"^(mailer-daemon|post_?master|mail-?daemon|mailerdaemon|mdaemon|bounces?|"
    r"mail delivery (system|subsystem)|nobody|root|no-?reply)\b",
    re.IGNORECASE,
)
_BOUNCE_SUBJECTS = re.compile(
    r"undeliver|undelivered|delivery (status notification|failure|failed|problem|"
    r"has failed|notification)|failure notice|returned mail|mail delivery failed|"
    r"mail system error|nondeliverable|non[- ]?delivery|could not be delivered|"
    r"delivery report|warning: could not send|returned to sender|message not "
    r"delivered|non remis|unzustellbar|nicht zustellbar|不達|配信不能|エラー|"
    r"error sending|failed delivery|mail failure|bounce|"
    # The fml mailing-list manager reports a post it dropped as a loop.
    r"^loop alert:",
    re.IGNORECASE,
)
# Lines after which a bounce quotes the original message.
_ORIGINAL_MARKERS = re.compile(
    r"^\s*(-{2,}.*(below this line|copy of (the|your) message|original message|"
    r"message (header|text|body)s?|headers? (of|from) the original|returned "
    r"message|unsent message|forwarded message)|original message follows|"
    r"-+ ?original message ?-+|"
    r"included is a copy|content-type: message/rfc822|received: ?from|"
    r"message headers follow|original message headers)",
    re.IGNORECASE,
)
_ADDRESS = re.compile(r"[^\s<>()\[\]\"',;:]+@[A-Za-z0-9\-.\[\]]+[A-Za-z0-9\]]")
# A line that starts with the address, after an optional reply code:
# "  user@example.com" (Exim, Gmail), "<user@example.com>:" (qmail, Yahoo),
# "554 <user@example.com>... Host unknown" (Sendmail), "user@example.com on
# <date>" (Exchange 2003), "user@example.com [User unknown]".
_OWN_LINE = re.compile(
    r"^\s*(?:[245][0-9]{2}[ -])?<?(" + _ADDRESS.pattern + r")>?(?:[\s:.,(\[]|$)"
)
# Exim's "Mail failure - malformed recipient address": the line starts with
# the whole To value, and the address it rejected follows "malformed address".
_MALFORMED = re.compile(
    r"malformed address: <?(" + _ADDRESS.pattern + r")>? may not follow",
    re.IGNORECASE,
)
_LABELLED = re.compile(
    r"(recipient|address|to|rcpt|destinataire|宛先|送信先)[^:\n]{0,30}:\s*<?("
    + _ADDRESS.pattern
    + r")>?",
    re.IGNORECASE,
)
_IGNORED_LOCAL_PARTS = frozenset({"mailer-daemon", "postmaster", "noreply"})


def detect(message: ParsedMessage, rules: Rules) -> Verdict | None:
    """Return a verdict for a plain-text bounce, or None if it is not one."""
    if not _looks_like_bounce(message):
        return None
    full = human_text(message)
    report, quoted = _split_report(full)
    original = find_original(message, quoted or full)
    ignored = _ignored_addresses(message, original)
    senders = {a for a in (address_of(message.header("From")),) if a is not None}
    gateway = rules.is_filtering_gateway(message.header, report)
    listed = _failed_recipients(message, rules, report, gateway)
    found = listed
    if not listed or _report_overrides(listed, report, original.recipient):
        bounce_senders = {a.lower() for a in senders}
        found = _recipients(rules, report, ignored, bounce_senders, gateway) or listed
    if not found and original.recipient and original.recipient not in ignored:
        recipient = build_recipient(
            rules, original.recipient, diagnostic=report, filtering_gateway=gateway
        )
        found = [recipient] if recipient is not None else []
    if not found:
        return unknown(NAME)
    return Verdict(
        kind=Kind.BOUNCE,
        detector=NAME,
        recipients=tuple(found),
        message_id=message.header("Message-ID"),
        original_message_id=original.message_id,
        original_sender=original.sender,
    )


def _report_overrides(
    listed: list[RecipientVerdict], report: str, original_recipient: str | None
) -> bool:
    """Tell whether the report's recipients replace X-Failed-Recipients.

    Exim may list an address as rewritten before routing while the report
    and the original's ``To`` name the address as sent. The report wins
    when it names no listed address but does name the original's recipient.
    """
    text = report.lower()
    if any(recipient.address.lower() in text for recipient in listed):
        return False
    return original_recipient is not None and original_recipient.lower() in text


def _failed_recipients(
    message: ParsedMessage, rules: Rules, report: str, gateway: bool
) -> list[RecipientVerdict]:
    """Read the ``X-Failed-Recipients`` header that Exim and Gmail add.

    Each address gets the report's text about it, or the whole report when
    the text does not name it.
    """
    found: list[RecipientVerdict] = []
    lines = report.splitlines()
    for value in message.headers("X-Failed-Recipients"):
        for address in _ADDRESS.findall(value):
            spans = _spans(
                lines,
                [
                    (i, address)
                    for i, line in enumerate(lines)
                    if address.lower() in line.lower()
                ][:1],
            )
            diagnostic = spans[0][1] if spans else report
            recipient = build_recipient(
                rules,
                address,
                diagnostic=diagnostic,
                context=report,
                filtering_gateway=gateway,
            )
            if recipient is not None:
                found.append(recipient)
    return found


def _looks_like_bounce(message: ParsedMessage) -> bool:
    sender = message.header("From") or ""
    name_or_address = sender.strip().strip('"').lower()
    local = (address_of(sender) or "").split("@")[0]
    if _BOUNCE_SENDERS.match(name_or_address) or _BOUNCE_SENDERS.match(local):
        return True
    return _BOUNCE_SUBJECTS.search(message.header("Subject") or "") is not None


def _split_report(text: str) -> tuple[str, str]:
    """Split ``text`` into the bounce's report and the quoted original.

    Lines quoted with "> " belong to the original and are left out of the
    report, unless most of the report is quoted, as in a forwarded bounce.
    """
    lines = text.splitlines()
    cut = len(lines)
    for index, line in enumerate(lines):
        if index > 0 and _ORIGINAL_MARKERS.match(line):
            cut = index
            break
    head = lines[:cut]
    quoted = [line for line in head if line.startswith(">")]
    if len(quoted) * 2 > len(head):
        # A forwarded bounce: the whole report is quoted, so unquote it.
        report = [
            line[1:].removeprefix(" ") if line.startswith(">") else line
            for line in head
        ]
    else:
        report = [line for line in head if not line.startswith("> ")]
    return "\n".join(report), "\n".join(lines[cut:])


def _ignored_addresses(message: ParsedMessage, original: Original) -> set[str]:
    ignored = {original.sender} if original.sender else set()
    for name in ("From", "To", "Return-Path", "Reply-To"):
        address = address_of(message.header(name))
        if address is not None:
            ignored.add(address)
    return {a.lower() for a in ignored}


def _recipients(
    rules: Rules,
    report: str,
    ignored: set[str],
    bounce_senders: set[str],
    gateway: bool,
) -> list[RecipientVerdict]:
    lines = report.splitlines()
    spans = _own_line_spans(lines, {a for a in ignored if a in bounce_senders})
    spans = spans or _labelled_spans(lines, ignored)
    if not spans:
        spans = _anywhere_spans(lines, ignored)
    found: list[RecipientVerdict] = []
    seen: set[str] = set()
    for address, diagnostic in spans[:MAX_RECIPIENTS]:
        recipient = build_recipient(
            rules,
            address,
            diagnostic=diagnostic,
            context=report,
            filtering_gateway=gateway,
        )
        if recipient is not None and recipient.address.lower() not in seen:
            seen.add(recipient.address.lower())
            found.append(recipient)
    return found


def _own_line_spans(lines: list[str], ignored: set[str]) -> list[tuple[str, str]]:
    """Find recipients on lines of their own; each owns the lines up to the next."""
    starts: list[tuple[int, str]] = []
    for index, line in enumerate(lines):
        match = _MALFORMED.search(line) or _OWN_LINE.match(line)
        if match is not None and _is_candidate(match.group(1), ignored):
            starts.append((index, match.group(1)))
    return _spans(lines, starts)


def _labelled_spans(lines: list[str], ignored: set[str]) -> list[tuple[str, str]]:
    starts: list[tuple[int, str]] = []
    for index, line in enumerate(lines):
        match = _LABELLED.search(line)
        if match is not None and _is_candidate(match.group(2), ignored):
            starts.append((index, match.group(2)))
    return _spans(lines, starts)


def _anywhere_spans(lines: list[str], ignored: set[str]) -> list[tuple[str, str]]:
    starts: list[tuple[int, str]] = []
    for index, line in enumerate(lines):
        if "http" in line.lower() and "@" not in line.split("http")[0]:
            continue
        for match in _ADDRESS.finditer(line):
            if _is_candidate(match.group(0), ignored):
                starts.append((index, match.group(0)))
    return _spans(lines, starts)


def _spans(lines: list[str], starts: list[tuple[int, str]]) -> list[tuple[str, str]]:
    """Pair each recipient with its text: its line and those that follow.

    A recipient named again on a later line keeps its first position. The
    text stops at the next different recipient, or at a blank line once
    some text has been collected.
    """
    first: dict[str, tuple[int, str]] = {}
    for index, address in starts:
        first.setdefault(address.lower(), (index, address))
    ordered = sorted(first.values())
    spans: list[tuple[str, str]] = []
    for position, (index, address) in enumerate(ordered):
        end = ordered[position + 1][0] if position + 1 < len(ordered) else len(lines)
        collected: list[str] = [lines[index]]
        for line in lines[index + 1 : end]:
            if not line.strip() and len(collected) > 1 and not _continues(collected):
                break
            collected.append(line)
        spans.append((address, "\n".join(collected)))
    return spans


def _continues(collected: list[str]) -> bool:
    """Tell whether a recipient's text goes on past a blank line.

    qmail and DragonFly put a blank line between the address and the remote
    reply, so the text continues until it contains a reply code.
    """
    return (
        status_in("\n".join(collected)) is None
        and reply_code_in(" ".join(collected)) is None
        and len(collected) < 6
    )


def _is_candidate(address: str, ignored: set[str]) -> bool:
    normalised = normalise_cached(address)
    if normalised is None or normalised.lower() in ignored:
        return False
    return normalised.split("@")[0].lower() not in _IGNORED_LOCAL_PARTS
