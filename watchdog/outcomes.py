"""Count what a recorded message means in the reputation metrics.

Only messages recorded for the first time are counted, so a rescan after a
UIDVALIDITY change or a duplicate delivery adds nothing.
"""

from __future__ import annotations

from watchdog.classify.verdict import Category, Kind, RecipientVerdict, Verdict
from watchdog.metrics import Metrics
from watchdog.providers import ProviderMap

# ARF feedback types kept as label values; anything else counts as "other".
_FEEDBACK_TYPES = frozenset({"abuse", "fraud", "virus"})
_SUPPRESSION_REASONS = {
    Category.ADDRESS: "hard_bounce",
    Category.MAILBOX: "soft_bounce",
    Category.COMPLAINT: "complaint",
}


def count_verdict(
    metrics: Metrics,
    providers: ProviderMap,
    verdict: Verdict,
    suppressed: tuple[str, ...],
    *,
    source: str = "mailbox",
) -> None:
    """Count the bounces, complaints and new suppressions of one verdict."""
    for recipient in verdict.recipients:
        provider = providers.provider(recipient.address)
        if verdict.kind is Kind.BOUNCE:
            metrics.bounces.labels(
                _bounce_type(recipient),
                recipient.category.value,
                recipient.reason,
                provider,
                source,
            ).inc()
        elif verdict.kind is Kind.COMPLAINT:
            feedback = verdict.feedback.feedback_type if verdict.feedback else ""
            feedback = feedback.lower()
            label = feedback if feedback in _FEEDBACK_TYPES else "other"
            metrics.complaints.labels(provider, label).inc()

    newly = set(suppressed)
    for recipient in verdict.recipients:
        reason = _SUPPRESSION_REASONS.get(recipient.category)
        if reason is not None and recipient.address in newly:
            metrics.suppressions_added.labels(reason, "daemon").inc()
            newly.discard(recipient.address)


def _bounce_type(recipient: RecipientVerdict) -> str:
    if recipient.hard:
        return "hard"
    if recipient.category in (Category.MAILBOX, Category.REPUTATION):
        return "soft"
    return "undetermined"
