"""UID sets and batches: the decisions about which UIDs to send next."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

MAX_FETCH_UIDS = 200
"""More UIDs per FETCH risk a response long enough to crash aioimaplib 2.0.3.

Its response parser recurses once per line, so a response past about 1000
lines raises RecursionError inside the transport and the command never
completes.
"""


def format_uid_set(uids: Sequence[int]) -> str:
    """Format UIDs as an IMAP sequence set of ranges, such as ``1:3,7``.

    Raises ValueError for an empty list or a UID outside 1 .. 2**32 - 1.
    """
    if not uids:
        msg = "cannot format an empty UID set: pass at least one UID"
        raise ValueError(msg)
    ordered = sorted(set(uids))
    if ordered[0] < 1 or ordered[-1] > 2**32 - 1:
        msg = f"UIDs must be in 1 .. 4294967295, got {ordered[0]} .. {ordered[-1]}"
        raise ValueError(msg)
    parts: list[str] = []
    start = previous = ordered[0]
    for uid in ordered[1:]:
        if uid != previous + 1:
            parts.append(_range(start, previous))
            start = uid
        previous = uid
    parts.append(_range(start, previous))
    return ",".join(parts)


def chunks(uids: Sequence[int], size: int) -> Iterator[list[int]]:
    """Yield ``uids`` in ascending order in lists of at most ``size``.

    ``size`` is capped at MAX_FETCH_UIDS.
    """
    if size < 1:
        msg = f"chunk size must be at least 1, not {size!r}"
        raise ValueError(msg)
    step = min(size, MAX_FETCH_UIDS)
    ordered = sorted(uids)
    for start in range(0, len(ordered), step):
        yield ordered[start : start + step]


def _range(start: int, end: int) -> str:
    return str(start) if start == end else f"{start}:{end}"
