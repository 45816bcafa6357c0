"""Tests for reading the embedded original's addresses."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.addresses import normalise_address
from watchdog.classify.original import (
    _SIMPLE_ADDRESS,
    address_of,
    parsed_address_of,
)
from watchdog.classify.recipients import normalise_cached


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


@pytest.mark.parametrize(
    "value",
    ["Bob@Example.COM", "rfc822;<bob@example.com>", "x" * 400 + "@example.com", ""],
)
def test_normalise_cached_same(value: str) -> None:
    """The cached form returns what normalise_address does, twice in a row."""
    first = normalise_cached(value)
    assert first == normalise_address(value)
    assert normalise_cached(value) == first
