"""Tests for reading the embedded original's addresses."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.classify.original import (
    _SIMPLE_ADDRESS,
    address_of,
    parsed_address_of,
)


@settings(max_examples=300, deadline=None)
@given(st.from_regex(_SIMPLE_ADDRESS, fullmatch=True))
def test_simple_shape_same_as_parser(value: str) -> None:
    """The regex shortcut returns what getaddresses would."""
    assert address_of(value) == parsed_address_of(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Alice Smith <alice@Example.COM>", "alice@example.com"),
        ("J. Smith <j@example.com>", "j@example.com"),
        ("<bob@example.com>", "bob@example.com"),
        ("  bob@example.com ", "bob@example.com"),
        ('"Smith, J" <j@example.com>', "j@example.com"),
        ("Smith, J <j@example.com>", "j@example.com"),
        ("no address here", None),
    ],
)
def test_address_of(value: str, expected: str | None) -> None:
    assert address_of(value) == expected
