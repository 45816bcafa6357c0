"""Mailbox names on the wire: modified UTF-7 (RFC 3501 §5.1.3) and quoting.

aioimaplib joins command arguments with spaces and quotes nothing, so every
mailbox name passes through ``wire_name`` before it reaches a command.
Without quoting, Dovecot reads ``CREATE Two Words`` as ``CREATE Two``.
"""

from __future__ import annotations

import base64

_SHIFT = "&"
_PRINTABLE_LOW = 0x20
_PRINTABLE_HIGH = 0x7E


def encode_modified_utf7(name: str) -> str:
    """Encode a mailbox name in IMAP's modified UTF-7.

    Printable ASCII stays as it is, ``&`` becomes ``&-`` and every run of
    other characters becomes ``&`` + modified base64 of its UTF-16BE + ``-``.
    """
    out: list[str] = []
    pending: list[str] = []
    for char in name:
        if _PRINTABLE_LOW <= ord(char) <= _PRINTABLE_HIGH:
            _flush(pending, out)
            out.append("&-" if char == _SHIFT else char)
        else:
            pending.append(char)
    _flush(pending, out)
    return "".join(out)


def decode_modified_utf7(encoded: str) -> str:
    """Decode a mailbox name from IMAP's modified UTF-7.

    Raises ValueError when a shifted run is not terminated by ``-`` or is not
    valid modified base64 of UTF-16BE.
    """
    out: list[str] = []
    index = 0
    while index < len(encoded):
        char = encoded[index]
        if char != _SHIFT:
            out.append(char)
            index += 1
            continue
        end = encoded.find("-", index)
        if end < 0:
            msg = f"unterminated modified UTF-7 run in {encoded!r}: expected '-'"
            raise ValueError(msg)
        run = encoded[index + 1 : end]
        out.append(_SHIFT if not run else _decode_run(run, encoded))
        index = end + 1
    return "".join(out)


def quote(text: str) -> str:
    """Return ``text`` as an IMAP quoted string, escaping ``\\`` and ``"``.

    Raises ValueError for CR, LF and NUL, which a quoted string cannot carry.
    """
    if any(char in text for char in "\r\n\0"):
        msg = f"IMAP quoted string cannot contain CR, LF or NUL: {text!r}"
        raise ValueError(msg)
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def wire_name(name: str) -> str:
    """Return a mailbox name ready to be sent: modified UTF-7, then quoted."""
    return quote(encode_modified_utf7(name))


def _flush(pending: list[str], out: list[str]) -> None:
    if not pending:
        return
    utf16 = "".join(pending).encode("utf-16-be")
    encoded = base64.b64encode(utf16).decode("ascii").rstrip("=").replace("/", ",")
    out.append(f"&{encoded}-")
    pending.clear()


def _decode_run(run: str, encoded: str) -> str:
    padded = run.replace(",", "/") + "=" * (-len(run) % 4)
    try:
        return base64.b64decode(padded, validate=True).decode("utf-16-be")
    except ValueError as exc:
        msg = f"invalid modified UTF-7 run {run!r} in {encoded!r}: {exc}"
        raise ValueError(msg) from exc
