"""``mail-watchdog classify``: classify files without a database."""

from __future__ import annotations


def classify_command() -> None:
    """Classify messages and print one verdict per message."""
