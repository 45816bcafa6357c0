"""Recorded verdicts are counted once in the bounce and complaint metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from watchdog.classify.verdict import (
    Category,
    Feedback,
    Kind,
    RecipientVerdict,
    Verdict,
)
from watchdog.metrics import Metrics
from watchdog.outcomes import count_verdict
from watchdog.providers import default_provider_map


def _value(metrics: Metrics, name: str, labels: dict[str, str]) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_hard_bounce_counted_and_suppression_added() -> None:
    metrics = Metrics(CollectorRegistry())
    verdict = Verdict(
        kind=Kind.BOUNCE,
        detector="rfc3464",
        recipients=(
            RecipientVerdict("a@gmail.com", "userunknown", True, Category.ADDRESS),
            RecipientVerdict("b@example.com", "blocked", False, Category.REPUTATION),
        ),
    )
    count_verdict(metrics, default_provider_map(), verdict, ("a@gmail.com",))

    hard = {
        "type": "hard",
        "category": "address",
        "reason": "userunknown",
        "provider": "gmail",
        "source": "mailbox",
    }
    blocked = {
        "type": "soft",
        "category": "reputation",
        "reason": "blocked",
        "provider": "other",
        "source": "mailbox",
    }
    added = {"reason": "hard_bounce", "source": "daemon"}
    assert _value(metrics, "mailwatchdog_bounces_total", hard) == 1
    assert _value(metrics, "mailwatchdog_bounces_total", blocked) == 1
    assert _value(metrics, "mailwatchdog_suppressions_added_total", added) == 1


def test_complaint_feedback_type_bounded() -> None:
    metrics = Metrics(CollectorRegistry())
    verdict = Verdict(
        kind=Kind.COMPLAINT,
        detector="arf",
        recipients=(
            RecipientVerdict("a@yahoo.com", "feedback", False, Category.COMPLAINT),
        ),
        feedback=Feedback(feedback_type="Opt-Out-Something"),
    )
    count_verdict(metrics, default_provider_map(), verdict, ())

    labels = {"provider": "yahoo", "feedback_type": "other"}
    assert _value(metrics, "mailwatchdog_complaints_total", labels) == 1
    assert (
        _value(
            metrics,
            "mailwatchdog_suppressions_added_total",
            {"reason": "complaint", "source": "daemon"},
        )
        == 0
    )
