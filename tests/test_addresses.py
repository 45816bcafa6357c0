"""Address normalisation shared by the classifier and the store."""

from __future__ import annotations

import pytest

from watchdog.addresses import normalise_address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rfc822;<Alice@Example.COM>", "Alice@example.com"),
        ("RFC822; bob@example.org", "bob@example.org"),
        ("utf-8;ålice@bücher.example", "ålice@xn--bcher-kva.example"),
        ("  <carol@example.net>  ", "carol@example.net"),
        ("Dave <dave@example.com>", "dave@example.com"),
        ("eve@example.com.", "eve@example.com"),
        ("@smtp.example.net:kijitora@server.example", "kijitora@server.example"),
        ("<@a.example,@b.example:Frank@B.Example>", "Frank@b.example"),
    ],
)
def test_normalises(text: str, expected: str) -> None:
    assert normalise_address(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "no-at-sign", "@example.com", "user@", "a\x00b@example.com", "a\nb@x.org"],
)
def test_rejects(text: str) -> None:
    assert normalise_address(text) is None


def test_surrogate_escapes() -> None:
    escaped = "f\udcc3\udcbc@example.com"
    assert normalise_address(escaped) == "fü@example.com"


def test_invalid_idna_domain() -> None:
    assert normalise_address("user@\u0300ab.example") is None
