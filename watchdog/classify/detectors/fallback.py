"""flufl.bounce as the last resort for recipients of unrecognised bounces.

flufl.bounce recognises many old vendor formats but returns only addresses and
whether each failure was temporary, so the reason comes from our rules over
the report's text. It runs only on messages that already passed the parse
limits.

In flufl.bounce 4 and later, ``scan_message`` returns only the permanent
failures as one ``frozenset[bytes]``; ``all_failures`` returns the
``(temporary, permanent)`` pair used here. Its scanner logs every
exception raised inside its detectors with a traceback at ERROR on the
``flufl.bounce`` logger: the worker process disables logging, and
``watchdog.log`` sets that logger to CRITICAL in the daemon.
"""

from __future__ import annotations

from flufl.bounce import all_failures

from watchdog.classify.message import ParsedMessage
from watchdog.classify.original import find_original
from watchdog.classify.recipients import MAX_RECIPIENTS, build_recipient, human_text
from watchdog.classify.rules import Rules
from watchdog.classify.verdict import Kind, RecipientVerdict, Verdict

NAME = "flufl.bounce"


def detect(message: ParsedMessage, rules: Rules) -> Verdict | None:
    """Return a bounce verdict for the addresses flufl.bounce finds, or None."""
    try:
        temporary, permanent = all_failures(message.root)
    except Exception:  # flufl.bounce heuristics crash on odd input: "not found"
        return None
    failures = {_decode(address): False for address in temporary}
    failures.update({_decode(address): True for address in permanent})
    if not failures:
        return None
    text = human_text(message)
    found: list[RecipientVerdict] = []
    for address in sorted(failures)[:MAX_RECIPIENTS]:
        # flufl.bounce reports only warnings of delayed delivery as temporary.
        action = None if failures[address] else "delayed"
        recipient = build_recipient(rules, address, diagnostic=text, action=action)
        if recipient is not None:
            found.append(recipient)
    if not found:
        return None
    original = find_original(message, text)
    return Verdict(
        kind=Kind.BOUNCE,
        detector=NAME,
        recipients=tuple(found),
        message_id=message.header("Message-ID"),
        original_message_id=original.message_id,
        original_sender=original.sender,
    )


def _decode(address: bytes | str) -> str:
    if isinstance(address, bytes):
        return address.decode("utf-8", "surrogateescape")
    return address
