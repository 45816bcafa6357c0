"""Modified UTF-7 and quoting of mailbox names."""

from __future__ import annotations

import pytest

from watchdog.sources.imap.names import (
    decode_modified_utf7,
    encode_modified_utf7,
    quote,
    wire_name,
)

# Pairs from RFC 3501 §5.1.3 and from names Dovecot created for us.
CASES = [
    ("INBOX", "INBOX"),
    ("Processed", "Processed"),
    ("Tom & Jerry", "Tom &- Jerry"),
    ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
    ("Quarantäne", "Quarant&AOQ-ne"),
    ("Bounces 📬", "Bounces &2D3c7A-"),
]


@pytest.mark.parametrize(("name", "encoded"), CASES)
def test_encode(name: str, encoded: str) -> None:
    """Each name encodes to the wire form the RFC gives."""
    assert encode_modified_utf7(name) == encoded


@pytest.mark.parametrize(("name", "encoded"), CASES)
def test_decode(name: str, encoded: str) -> None:
    """Each wire form decodes back to the name."""
    assert decode_modified_utf7(encoded) == name


def test_decode_unterminated() -> None:
    """A shifted run without '-' is rejected."""
    with pytest.raises(ValueError, match="unterminated"):
        decode_modified_utf7("&U,BTFw")


def test_quote_escapes() -> None:
    """Backslash and double quote are escaped inside the quotes."""
    assert quote('a "b" \\c') == '"a \\"b\\" \\\\c"'


def test_quote_rejects_newline() -> None:
    """CR and LF cannot travel in a quoted string."""
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        quote("a\r\nb")


def test_wire_name() -> None:
    """A name with spaces and non-ASCII is encoded, then quoted."""
    assert wire_name("Two Wörds") == '"Two W&APY-rds"'
