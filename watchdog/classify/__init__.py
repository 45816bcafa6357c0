"""Classification: a pure function from the raw bytes of a message to a Verdict.

No network, database or logging happens here. The daemon runs ``classify``
inside a worker process with CPU, memory and wall-clock limits.
"""

from __future__ import annotations

from watchdog.classify.verdict import (
    Category,
    Feedback,
    Kind,
    RecipientVerdict,
    Verdict,
    unknown,
)
from watchdog.config import Limits

__all__ = [
    "Category",
    "Feedback",
    "Kind",
    "RecipientVerdict",
    "Verdict",
    "classify",
    "unknown",
]


def classify(raw: bytes, limits: Limits | None = None) -> Verdict:
    """Classify one message given as its raw bytes."""
    del raw, limits
    return unknown("none")
