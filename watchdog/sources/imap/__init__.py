"""IMAP access: one session wrapper around aioimaplib and its pure helpers."""

from __future__ import annotations

from watchdog.sources.imap.fetch import FetchItem, parse_fetch
from watchdog.sources.imap.names import (
    decode_modified_utf7,
    encode_modified_utf7,
    quote,
    wire_name,
)
from watchdog.sources.imap.responses import Selected
from watchdog.sources.imap.session import (
    Endpoint,
    ImapSession,
    MoveMethod,
    tls_context,
)
from watchdog.sources.imap.uidset import MAX_FETCH_UIDS, chunks, format_uid_set

__all__ = [
    "MAX_FETCH_UIDS",
    "Endpoint",
    "FetchItem",
    "ImapSession",
    "MoveMethod",
    "Selected",
    "chunks",
    "decode_modified_utf7",
    "encode_modified_utf7",
    "format_uid_set",
    "parse_fetch",
    "quote",
    "tls_context",
    "wire_name",
]
