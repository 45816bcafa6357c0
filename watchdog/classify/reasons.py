"""Reasons, their categories, and the decision from diagnostic and status.

Reasons use Sisimai's vocabulary. The decision tries the diagnostic text
against the rules' patterns first, because providers put the real cause in
the text ("550 5.1.1 ... blocked using zen.spamhaus.org" is a blocklist,
not an unknown user), then the RFC 3463 status, then gives up with
``undefined``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from watchdog.classify.verdict import Category

if TYPE_CHECKING:
    from watchdog.classify.rules import Pattern, Rules

CATEGORIES: dict[str, Category] = {
    "userunknown": Category.ADDRESS,
    "hostunknown": Category.ADDRESS,
    "hasmoved": Category.ADDRESS,
    "notaccept": Category.ADDRESS,
    "mailboxfull": Category.MAILBOX,
    "suspend": Category.MAILBOX,
    **dict.fromkeys(
        (
            "blocked",
            "badreputation",
            "spamdetected",
            "virusdetected",
            "authfailure",
            "requireptr",
            "policyviolation",
            "ratelimited",
            "securityerror",
            "failedstarttls",
            "rejected",
            "norelaying",
            "filtered",
            "contenterror",
            "emailtoolarge",
            "notcompliantrfc",
            "syntaxerror",
        ),
        Category.REPUTATION,
    ),
    **dict.fromkeys(
        (
            "expired",
            "networkerror",
            "systemerror",
            "systemfull",
            "mailererror",
            "onhold",
            "undefined",
        ),
        Category.TRANSIENT,
    ),
    "feedback": Category.COMPLAINT,
    "vacation": Category.AUTO_REPLY,
    "delivered": Category.DELIVERED,
}
REASONS = frozenset(CATEGORIES)
_ALWAYS_HARD = frozenset({"userunknown", "hostunknown", "hasmoved"})
# x.0.0 and x.5.0 mean only that something failed, not what.
_GENERIC_STATUS = re.compile(r"^[45]\.[05]\.0$")
# RFC 3463 allows three-digit subjects, but only 0 to 7 are defined; the
# narrower form keeps version numbers such as "2.753.1" out.
_ADDRESS = re.compile(r"[^\s<>()\[\]\"',;:]+@[A-Za-z0-9][A-Za-z0-9.-]*")
_URL_FRAGMENT = re.compile(r"(https?://[^\s#]*)#\S*")
STATUS_IN_TEXT = re.compile(r"(?<![\d.])([245])\.([0-7])\.(\d{1,3})(?![\d.])")
# Zoho Mail writes the code as "ERROR_CODE :421, ERROR_CODE :, Host not
# reachable", so a comma may end a code that follows a colon.
REPLY_CODE_IN_TEXT = re.compile(
    r"(?<![\d.])([245][0-5]\d)(?:(?=[ -]|$)|(?<=:\d\d\d)(?=,))"
)


@dataclass(frozen=True, slots=True)
class Decision:
    """The reason chosen for one recipient and what it implies."""

    reason: str
    hard: bool
    category: Category
    status: str | None


def is_hard(reason: str, status: str | None, reply_code: str | None) -> bool:
    """Tell whether ``reason`` means the address itself is bad for good.

    ``notaccept`` (a domain that takes no mail) counts only when the
    server's reply was permanent (5xx).
    """
    if reason in _ALWAYS_HARD:
        return True
    if reason != "notaccept":
        return False
    code = reply_code or status or ""
    return code.startswith("5")


def decide(
    rules: Rules,
    diagnostic: str | None,
    status: str | None,
    reply_code: str | None,
    *,
    context: str | None = None,
    temporary: bool = False,
) -> Decision:
    """Choose the reason for one recipient.

    The order is: patterns over ``diagnostic``, a specific ``status``,
    patterns over ``context`` (the report's human-readable text), a
    generic status such as ``5.0.0``, and finally ``undefined``.
    ``temporary`` marks a failure the reporting MTA called temporary (an
    Action of ``delayed``); it picks the 4 class for a pseudo status.
    """
    reason = _reason(rules, diagnostic, status, context)
    final_status = status or _pseudo_status(rules, reason, reply_code, temporary)
    return Decision(
        reason=reason,
        hard=is_hard(reason, final_status, reply_code),
        category=CATEGORIES[reason],
        status=final_status,
    )


def decision_for(
    rules: Rules, reason: str, status: str | None, reply_code: str | None
) -> Decision:
    """Build the decision for a reason chosen by a detector's own logic."""
    final_status = status or _pseudo_status(rules, reason, reply_code, False)
    return Decision(
        reason=reason,
        hard=is_hard(reason, final_status, reply_code),
        category=CATEGORIES[reason],
        status=final_status,
    )


def _reason(
    rules: Rules, diagnostic: str | None, status: str | None, context: str | None
) -> str:
    if status is not None and status.startswith("2."):
        return "delivered"
    generic = status is not None and _GENERIC_STATUS.match(status) is not None
    by_status = rules.reason_for_status(status) if status else None
    found = _match(rules, diagnostic)
    if found is None and by_status is not None and not generic:
        return by_status
    found = found or _match(rules, context)
    return found or by_status or "undefined"


def _match(rules: Rules, text: str | None) -> str | None:
    if not text:
        return None
    return _first_reason(rules.patterns, text)


# Every recipient of one report is matched against the same report text,
# so the result is cached to keep a report naming many recipients linear.
@lru_cache(maxsize=32)
def _first_reason(patterns: tuple[Pattern, ...], text: str) -> str | None:
    # Splitting on white space also removes U+001C to U+001F, as the ASCII
    # forms of the patterns require (see rules.ascii_variant).
    prepared = _masked(" ".join(text.split()))
    if not prepared.isascii():
        for pattern in patterns:
            if pattern.regex.search(prepared):
                return pattern.reason
        return None
    # The literal test is exact only on ASCII text (see literals.py). It is
    # written out here because a function call per pattern costs as much.
    lowered = prepared.lower()
    for pattern in patterns:
        if pattern.literals is not None:
            for literal in pattern.literals:
                if literal in lowered:
                    break
            else:
                continue
        regex = pattern.ascii_regex or pattern.regex
        if regex.search(prepared):
            return pattern.reason
    return None


def _masked(text: str) -> str:
    """Hide addresses and URL fragments, whose words are not the reason.

    A recipient named ``filtered@example.com`` or a link ending in
    ``#mailboxfull`` must not decide the reason.
    """
    text = _ADDRESS.sub("<address>", text)
    return _URL_FRAGMENT.sub(r"\1", text)


def _pseudo_status(
    rules: Rules, reason: str, reply_code: str | None, temporary: bool
) -> str | None:
    code = rules.pseudo_statuses.get(reason)
    if code is None:
        return None
    soft_class = temporary or (reply_code or "").startswith("4")
    return ("4" if soft_class else "5") + code[1:]


def status_in(text: str) -> str | None:
    """Return the first RFC 3463 code written in ``text``, or None."""
    found = STATUS_IN_TEXT.search(text)
    return None if found is None else ".".join(found.groups())


def last_status_in(text: str) -> str | None:
    """Return the last RFC 3463 code in ``text``, or None.

    A relaying MTA quotes the reply it received after its own code
    ("554 4.4.7 Message expired ... <421 4.4.2 Connection timed out>"), so the
    last code is the closest to the cause.
    """
    codes = [".".join(match.groups()) for match in STATUS_IN_TEXT.finditer(text)]
    return codes[-1] if codes else None


def reply_code_in(text: str) -> str | None:
    """Return the first SMTP reply code (``550``) in ``text``, or None."""
    found = REPLY_CODE_IN_TEXT.search(text)
    return None if found is None else found.group(1)
