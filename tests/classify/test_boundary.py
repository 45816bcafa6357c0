"""Tests for the plain-Content-Type shortcut to a multipart's boundary."""

from __future__ import annotations

from email.message import Message

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.classify.fastparse import _SIMPLE_PARAMETERS, _simple_boundary


def _part(content_type: str) -> Message:
    part = Message()
    part["Content-Type"] = content_type
    return part


@settings(max_examples=300, deadline=None)
@given(st.from_regex(_SIMPLE_PARAMETERS, fullmatch=True))
def test_boundary_same_as_get_boundary(content_type: str) -> None:
    """The shortcut returns what get_boundary does, or leaves it undecided."""
    part = _part(content_type)
    found = _simple_boundary(part)
    if found is not None:
        assert found == part.get_boundary()


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ('multipart/mixed; boundary="abc"', "abc"),
        ("multipart/mixed; BOUNDARY=abc; charset=x", "abc"),
        ('multipart/mixed;\n boundary="<a b>"', "a b"),
        ('multipart/mixed; boundary="x "', "x"),
        ('multipart/report; report-type=delivery-status; boundary="=_x=1"', "=_x=1"),
    ],
)
def test_boundary_read(content_type: str, expected: str) -> None:
    assert _simple_boundary(_part(content_type)) == expected


@pytest.mark.parametrize(
    "content_type",
    [
        'multipart/mixed; boundary="a\\"b"',
        "multipart/mixed; boundary*=utf-8''abc",
        "multipart/mixed; (comment) boundary=abc",
        "multipart/mixed",
    ],
)
def test_boundary_left_to_parser(content_type: str) -> None:
    assert _simple_boundary(_part(content_type)) is None
