"""``mail-watchdog run`` and ``scan``."""

from __future__ import annotations


def run_command() -> None:
    """Run the daemon."""


def scan_command() -> None:
    """Scan local mail."""
