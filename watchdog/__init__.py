"""Mail Watchdog: bounce processing and deliverability monitoring."""

from __future__ import annotations

__version__ = "0.1.0"
