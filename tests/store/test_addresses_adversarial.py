"""Address normalisation fed quoted local parts and byte order marks."""

from __future__ import annotations

import pytest

from watchdog.addresses import normalise_address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"john.doe"@example.com', "john.doe@example.com"),
        ('"john doe"@example.com', '"john doe"@example.com'),
        ("'o@example.com", "'o@example.com"),
        ("<'o@example.com>", "'o@example.com"),
        ("'o@example.com'", "o@example.com"),
    ],
)
def test_quoted_local_part(text: str, expected: str) -> None:
    """Quotes that belong to the local part survive normalisation."""
    assert normalise_address(text) == expected


def test_quoted_local_part_control() -> None:
    """A quoted local part still rejects control characters."""
    assert normalise_address('"a\tb"@example.com') is None


def test_byte_order_mark() -> None:
    """A UTF-8 byte order mark is not part of the first address."""
    assert normalise_address("\ufeffa@example.com") == "a@example.com"


@pytest.mark.parametrize("text", ["j\udcf6rg@example.com", "j\ufffdrg@example.com"])
def test_not_utf8_rejected(text: str) -> None:
    """A Latin-1 byte in the address rejects it instead of storing U+FFFD."""
    assert normalise_address(text) is None
