"""Database URLs are shown without their password, even when malformed."""

from __future__ import annotations

import pytest

from watchdog.daemon import safe_database_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://user:s3cret@db.example:5432/mw",
            "postgresql://user:***@db.example:5432/mw",
        ),
        ("postgresql://user:s3cret@[::1/mw", "[::1/mw"),
        (
            "sqlite:///var/lib/mail-watchdog/watchdog.db",
            "sqlite:///var/lib/mail-watchdog/watchdog.db",
        ),
    ],
)
def test_password_hidden(url: str, shown: str) -> None:
    assert safe_database_url(url) == shown
    assert "s3cret" not in safe_database_url(url)
