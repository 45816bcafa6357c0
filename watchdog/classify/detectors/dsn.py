"""RFC 3464 delivery status notifications, and RFC 6533 global ones.

Reads the ``message/delivery-status`` part, one block of fields per
recipient. When a broken report has no such part but its text carries
``Final-Recipient:`` blocks, those are read instead.
"""

from __future__ import annotations

import email.message
import re

from watchdog.classify.message import ParsedMessage
from watchdog.classify.original import find_original
from watchdog.classify.reasons import status_in
from watchdog.classify.recipients import (
    MAX_RECIPIENTS,
    build_recipient,
    content_type,
    human_text,
)
from watchdog.classify.rules import Rules
from watchdog.classify.verdict import Kind, RecipientVerdict, Verdict

NAME = "rfc3464"
_STATUS_PARTS = ("message/delivery-status", "message/global-delivery-status")
_FIELDS = (
    "final-recipient",
    "original-recipient",
    "x-actual-recipient",
    "action",
    "status",
    "diagnostic-code",
    "remote-mta",
)
_STATUS_COMMENT = re.compile(r"\(([^()]{1,200})\)")
_ADDRESS_ONLY = re.compile(r"<?[^\s<>]+@[^\s<>]+>?")
_FIELD_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)\s*:\s*(.*)$")
# Lines read after a recipient's address when the report text explains it.
_PARAGRAPH_LINES = 6
_FAILURE_ACTIONS = frozenset({"failed", "delayed"})
_SUCCESS_ACTIONS = frozenset({"delivered", "relayed", "expanded"})

Block = dict[str, str]


def detect(message: ParsedMessage, rules: Rules) -> Verdict | None:
    """Return a verdict for a delivery status notification, or None."""
    blocks = _status_blocks(message)
    text = human_text(message)
    if not blocks:
        blocks = _parse_text(text) if "final-recipient" in text.lower() else []
    blocks = [b for b in blocks if "final-recipient" in b or "original-recipient" in b]
    if not blocks:
        return None
    failed: list[RecipientVerdict] = []
    delivered: list[RecipientVerdict] = []
    for block in blocks[:MAX_RECIPIENTS]:
        recipient = _recipient(rules, block, text)
        if recipient is None:
            continue
        is_success = recipient.reason == "delivered"
        (delivered if is_success else failed).append(recipient)
    if not failed and not delivered:
        return None
    original = find_original(message)
    return Verdict(
        kind=Kind.BOUNCE if failed else Kind.DELIVERY_REPORT,
        detector=NAME,
        recipients=tuple(_unique(failed or delivered)),
        message_id=message.header("Message-ID"),
        original_message_id=original.message_id,
        original_sender=original.sender,
    )


def _recipient(rules: Rules, block: Block, context: str) -> RecipientVerdict | None:
    final = block.get("final-recipient") or block.get("original-recipient", "")
    action = block.get("action", "").strip().lower().split(" ")[0] or None
    status = status_in(block.get("status", ""))
    if action in _SUCCESS_ACTIONS and status is None:
        status = "2.0.0"
    if action in _FAILURE_ACTIONS and status is not None and status[0] == "2":
        # Action and Status disagree: a success code cannot make a failure
        # delivered, so the reason comes from the diagnostic instead.
        status = None
    diagnostic = _strip_type(block.get("diagnostic-code", ""))
    if not diagnostic:
        diagnostic = _text_about(context, _strip_type(final))
    comment = _STATUS_COMMENT.search(block.get("status", ""))
    if comment is not None and status is not None and status[0] != "2":
        # PowerMTA and others explain the status in a comment, e.g. "5.2.1
        # (mailbox disabled, not accepting messages)". It is the reporting
        # MTA's own reading of the failure, so its words come first.
        diagnostic = f"{comment.group(1)}; {diagnostic}"
    return build_recipient(
        rules,
        _strip_type(final),
        diagnostic=diagnostic or None,
        status=status,
        context=context,
        transcript=context,
        original_address=_strip_type(block.get("original-recipient", "")) or None,
        remote_mta=_strip_type(block.get("remote-mta", "")) or None,
        action=action,
    )


def _text_about(text: str, address: str) -> str:
    """Return the paragraph of ``text`` from the first line naming ``address``.

    The paragraph ends at a blank line or at a line that starts with another
    address. OpenSMTPD and others write the remote reply only in the human-readable
    part and leave Diagnostic-Code out. A paragraph holding only the address,
    as in Sendmail's list of failed recipients, gives way to a later one that
    explains it ("<address>... Deferred: Connection refused").
    """
    if not address:
        return ""
    lines = text.splitlines()
    needle = address.lower()
    first = ""
    for index, line in enumerate(lines):
        if needle not in line.lower():
            continue
        paragraph = [line]
        for following in lines[index + 1 : index + _PARAGRAPH_LINES]:
            words = following.split()
            if not words or "@" in words[0]:
                break
            paragraph.append(following)
        if first:
            # A transcript line above without an address is about this one
            # ("mail.local: unknown user: x" before "554 <x@host>...").
            paragraph[:0] = _lines_above(lines, index)
        found = "\n".join(paragraph)
        if len(paragraph) > 1 or _ADDRESS_ONLY.fullmatch(line.strip()) is None:
            return found
        first = first or found
    return first


def _lines_above(lines: list[str], index: int) -> list[str]:
    """Return the transcript lines just above ``index`` that name no address."""
    start = index
    while start > max(0, index - _PARAGRAPH_LINES):
        above = lines[start - 1].strip()
        if not above or above.startswith("-") or "@" in above:
            break
        start -= 1
    return lines[start:index]


def _strip_type(value: str) -> str:
    """Remove an RFC 3464 type prefix such as ``rfc822;`` or ``smtp;``."""
    head, sep, tail = value.partition(";")
    if sep and " " not in head.strip() and len(head) < 40:
        return tail.strip()
    return value.strip()


def _status_blocks(message: ParsedMessage) -> list[Block]:
    """Read the recipient blocks of the delivery-status part.

    Some MTAs (AOL among them) omit the blank line between recipients, so a
    block with several Final-Recipient fields is split again from its text.
    """
    for part in message.walk():
        if content_type(message, part) not in _STATUS_PARTS:
            continue
        blocks = message.children(part)
        crowded = any(len(message.headers("Final-Recipient", b)) > 1 for b in blocks)
        if blocks and not crowded:
            return [_read_block(message, block) for block in blocks]
        return _parse_text(message.text(part))
    return []


def _read_block(message: ParsedMessage, block: email.message.Message) -> Block:
    found: Block = {}
    for name in _FIELDS:
        # Raw values: build_recipient decodes an address's local part written
        # as RFC 2047 encoded-words itself, and other fields are read as sent.
        value = message.raw_header(name, block)
        if value is not None:
            found[name] = value
    return found


def _parse_text(text: str) -> list[Block]:
    """Split ``text`` into blocks of ``Name: value`` fields at blank lines."""
    blocks: list[Block] = []
    current: Block = {}
    last: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
            current, last = {}, None
            continue
        if line[0] in " \t" and last is not None:
            current[last] += " " + line.strip()
            continue
        match = _FIELD_LINE.match(line)
        if match is None:
            last = None
            continue
        last = match.group(1).lower()
        if last in current and last == "final-recipient":
            blocks.append(current)
            current = {}
        current.setdefault(last, match.group(2).strip())
    if current:
        blocks.append(current)
    return blocks


def _unique(recipients: list[RecipientVerdict]) -> list[RecipientVerdict]:
    seen: set[str] = set()
    unique: list[RecipientVerdict] = []
    for recipient in recipients:
        if recipient.address.lower() not in seen:
            seen.add(recipient.address.lower())
            unique.append(recipient)
    return unique
