"""Classification: a pure function from the raw bytes of a message to a Verdict.

No network, database or logging happens here. The daemon runs ``classify``
inside a worker process with CPU, memory and wall-clock limits.
"""

from __future__ import annotations

from watchdog.classify.detectors import (
    Detector,
    arf,
    autoreply,
    dsn,
    fallback,
    ses,
    vendor,
)
from watchdog.classify.message import LimitHit, parse
from watchdog.classify.rules import Rules, default_rules
from watchdog.classify.verdict import (
    Category,
    Feedback,
    Kind,
    RecipientVerdict,
    Verdict,
    unknown,
)
from watchdog.config import Limits
from watchdog.errors import RulesError

__all__ = [
    "DETECTORS",
    "Category",
    "Feedback",
    "Kind",
    "RecipientVerdict",
    "Verdict",
    "classify",
    "unknown",
]

# Tried in this order; the first verdict wins. Structured reports come
# before text heuristics, and auto-replies after bounces because Exim and
# RFC 3464 bounces carry "Auto-Submitted: auto-replied" too.
DETECTORS: tuple[tuple[str, Detector], ...] = (
    (ses.NAME, ses.detect),
    (arf.NAME, arf.detect),
    (dsn.NAME, dsn.detect),
    (vendor.NAME, vendor.detect),
    (autoreply.NAME, autoreply.detect),
    (fallback.NAME, fallback.detect),
)


def classify(
    raw: bytes, limits: Limits | None = None, rules: Rules | None = None
) -> Verdict:
    """Classify one message given as its raw bytes.

    Never raises an ``Exception``: a message that breaks a detector, or a
    rules directory that fails to load, yields an ``unknown`` verdict that
    names the cause in ``detector`` (``rules`` for a rules error, ``error``
    for anything else).
    The daemon and the CLI load the rules first so that a broken rules file
    stops them at start-up instead. ``rules`` defaults to the files under
    ``rules/classify``.
    """
    try:
        return _classify(raw, limits or Limits(), rules)
    except RulesError:
        return unknown("rules")
    except RecursionError:
        return unknown("error", limit="max_depth")
    except Exception:  # the contract is to never raise on any input
        return unknown("error")


def _classify(raw: bytes, limits: Limits, rules: Rules | None) -> Verdict:
    parsed = parse(raw, limits)
    if isinstance(parsed, LimitHit):
        return unknown("limits", limit=parsed.name)
    active = rules if rules is not None else default_rules()
    for _name, detect in DETECTORS:
        verdict = detect(parsed, active)
        if verdict is not None:
            return _with_defects(verdict, parsed.defects)
    return Verdict(
        kind=Kind.NOT_BOUNCE,
        detector="none",
        message_id=parsed.header("Message-ID"),
        defects=tuple(parsed.defects),
    )


def _with_defects(verdict: Verdict, defects: list[str]) -> Verdict:
    if not defects:
        return verdict
    limit = "max_parts" if "max_parts" in defects else verdict.limit
    return Verdict(
        kind=verdict.kind,
        detector=verdict.detector,
        recipients=verdict.recipients,
        message_id=verdict.message_id,
        original_message_id=verdict.original_message_id,
        original_sender=verdict.original_sender,
        feedback=verdict.feedback,
        limit=limit,
        defects=tuple(defects),
    )
