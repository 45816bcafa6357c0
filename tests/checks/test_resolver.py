"""Nameserver entries are IP addresses with an optional port."""

from __future__ import annotations

import pytest

from watchdog.checks.resolver import parse_nameserver
from watchdog.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("::1", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
    ],
)
def test_parse_valid(text: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(text) == expected


@pytest.mark.parametrize("text", ["dns.example", "127.0.0.1:0", "127.0.0.1:x", ""])
def test_parse_invalid(text: str) -> None:
    with pytest.raises(ConfigError, match="invalid nameserver"):
        parse_nameserver(text)
