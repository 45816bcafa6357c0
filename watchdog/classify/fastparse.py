"""A fast MIME splitter for well-formed messages, equal to CPython's parser.

``email.feedparser`` handles every malformed shape, but it moves each line
through several generator layers. On CPython 3.11 it parses a 5 KB bounce
in about 140 microseconds, and ``split`` builds the same tree of compat32
``Part`` objects in about half that with a few string searches per part.
It accepts CRLF or LF line endings, header lines the parser reads without
a defect, and multiparts with a start delimiter and no empty parts. A
multipart without its close delimiter gets ``CloseBoundaryNotFoundDefect``,
as from the parser. For anything else ``split`` returns None, so the caller
falls back to ``email.parser``. A differential test compares both trees
over the corpus and over mutated messages.

Feedparser behaviour reproduced here (CPython 3.11 ``email/feedparser.py``):

- Headers end at the first empty line. A header value keeps the line ends
  of its continuation lines but not its last one.
- The line end before a delimiter line belongs to the delimiter. It is cut
  from the part the parser created last: a leaf's payload, a nested
  multipart's epilogue, or the innermost part of an embedded message.
- A ``message/delivery-status`` body becomes one header-only part per block
  of fields, and each extra empty line adds an empty block.
"""

from __future__ import annotations

import email.utils
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from email import errors
from email.message import Message

# A field: the name, then the value after leading blanks, with continuation
# lines and line ends, which the feedparser keeps except at the very end.
# Every step is possessive or atomic: with the ambiguous ``[ \t]*[^\n]*``
# a failing match backtracked exponentially in the number of fields.
_FIELD = (
    r"([\041-\071\073-\176]++):[ \t]*+"
    r"((?>[^ \t\n][^\n]*+)?(?>\n[ \t][^\n]*+)*+(?:\n|\Z))"
)
_HEADER_FIELD = re.compile(_FIELD)
_HEADER_BLOCK = re.compile(f"(?>{_FIELD})*+")
_SIMPLE_ENCODINGS = frozenset({"7bit", "8bit", "binary"})
_CONTAINERS = frozenset({"multipart", "message"})
_BLANKS = re.compile(r"[ \t]*+")
# A multipart Content-Type of plain parameters: token names, and values
# that are tokens or quoted strings without backslashes. For these the
# boundary is read without ``get_param``, in about 40 % of its time.
_PARAMETER = r'\s*([\w-]+)\s*=\s*("[^"\\]*"|[^\s;"\\()*]+)\s*'
_SIMPLE_PARAMETERS = re.compile(rf"\s*multipart/[\w.+-]+\s*(?:;{_PARAMETER})*;?\s*")
_PARAMETER_PAIR = re.compile(rf";{_PARAMETER}")
# Each nesting level keeps its own copy of its body, so a large, deeply
# nested message would need many copies. A multipart or message/* body
# larger than this goes to the feedparser, which keeps about one. Bounces
# are mostly 2 to 60 KB, and a large single part is split cheaply.
MAX_NESTED_CHARS = 262_144

PartFactory = Callable[[], Message]


class _Unsupported(Exception):
    """The text needs the full parser: a defect or an unusual shape."""


def split(text: str, factory: PartFactory) -> Message | None:
    """Return the message tree of ``text``, or None when the parser must decide.

    ``text`` is the raw message decoded as ASCII with ``surrogateescape``,
    as ``BytesParser`` does. ``factory`` creates each part.
    """
    if "\r" in text and text.count("\r") != text.count("\r\n"):
        return None
    try:
        return _entity(text, factory, "text/plain", ())
    except _Unsupported:
        return None


def _entity(
    text: str, factory: PartFactory, default_type: str, boundaries: tuple[str, ...]
) -> Message:
    part = factory()
    if default_type != "text/plain":
        part.set_default_type(default_type)
    body = _read_headers(text, part)
    content_type = part.get_content_type()
    if part.get_content_maintype() in _CONTAINERS and len(body) > MAX_NESTED_CHARS:
        raise _Unsupported
    if content_type == "message/delivery-status":
        _read_status(body, part, factory)
    elif part.get_content_maintype() == "message":
        if not body:
            raise _Unsupported
        part.attach(_entity(body, factory, "text/plain", boundaries))
    elif part.get_content_maintype() == "multipart":
        _read_multipart(body, part, factory, boundaries)
    else:
        part.set_payload(body)
    return part


def _read_headers(text: str, part: Message) -> str:
    """Set the headers of ``part`` from ``text`` and return the body after them.

    The header block must consist of ``Name: value`` fields and their
    continuation lines only; anything else is a parser defect.
    """
    start = 0
    if text.startswith("From "):
        start = text.find("\n") + 1 or len(text)
        part.set_unixfrom(text[:start].rstrip("\r\n"))
    end, body = _blank_line(text, start)
    if _HEADER_BLOCK.fullmatch(text, start, end) is None:
        raise _Unsupported
    for name, value in _HEADER_FIELD.findall(text, start, end):
        part.set_raw(name, value.rstrip("\r\n"))
    return text[body:]


def _blank_line(text: str, start: int) -> tuple[int, int]:
    """Return where the first empty line at or after ``start`` begins and ends.

    Without an empty line, both are the end of ``text``.
    """
    for line_end in ("\n", "\r\n"):
        if text.startswith(line_end, start):
            return start, start + len(line_end)
    lf = text.find("\n\n", start)
    limit = len(text) if lf < 0 else lf + 2
    crlf = text.find("\n\r\n", start, limit)
    if crlf >= 0:
        return crlf + 1, crlf + 3
    if lf >= 0:
        return lf + 1, lf + 2
    return len(text), len(text)


def _read_status(body: str, part: Message, factory: PartFactory) -> None:
    """Read a delivery-status body as blocks of fields separated by empty lines."""
    lines = _split_lines(body)
    current: list[str] = []
    for line in lines:
        if line in ("\n", "\r\n"):
            part.attach(_block(current, factory))
            current = []
        else:
            current.append(line)
    # An empty body still gives one empty block, as from the feedparser.
    if current or not lines:
        part.attach(_block(current, factory))


def _block(lines: list[str], factory: PartFactory) -> Message:
    block = factory()
    body = _read_headers("".join(lines), block)
    if body or "content-type" in block:
        raise _Unsupported
    block.set_payload("")
    return block


def _read_multipart(
    body: str, part: Message, factory: PartFactory, boundaries: tuple[str, ...]
) -> None:
    boundary = _simple_boundary(part)
    if boundary is None:
        boundary = part.get_boundary()
    if boundary is None or boundary in boundaries:
        raise _Unsupported
    encoding = str(part.get("content-transfer-encoding", "8bit")).lower()
    if encoding not in _SIMPLE_ENCODINGS:
        raise _Unsupported
    delimiters = _delimiters(body, "--" + boundary)
    if not delimiters or delimiters[0].close:
        raise _Unsupported
    if delimiters[0].start > 0:
        part.preamble = _cut_line_end(body[: delimiters[0].start])
    last = delimiters[-1]
    if not last.close:
        # A truncated multipart: the last part runs to the end of the body.
        if last.end == len(body):
            raise _Unsupported
        delimiters.append(_Delimiter(len(body), len(body), close=True, line_end=False))
    inner = (*boundaries, boundary)
    for opening, closing in itertools.pairwise(delimiters):
        if opening.end == closing.start:
            raise _Unsupported
        child_text = body[opening.end : closing.start]
        part.attach(_child(child_text, part, factory, inner))
    if last.close:
        part.epilogue = body[last.end :] if last.line_end else ""
    else:
        part.defects.append(errors.CloseBoundaryNotFoundDefect())


def _simple_boundary(part: Message) -> str | None:
    """Return ``part.get_boundary()`` for a plain Content-Type, else None.

    None means only that ``get_boundary`` has to decide. The value is
    unquoted twice, as compat32's ``get_param`` and ``get_boundary`` do.
    """
    value = part.get("content-type")
    if not isinstance(value, str) or not _SIMPLE_PARAMETERS.fullmatch(value):
        return None
    for name, raw in _PARAMETER_PAIR.findall(value):
        if name.lower() == "boundary":
            return email.utils.unquote(email.utils.unquote(raw)).rstrip()
    return None


@dataclass(frozen=True, slots=True)
class _Delimiter:
    start: int
    end: int
    close: bool
    line_end: bool


def _delimiters(body: str, separator: str) -> list[_Delimiter]:
    """Find the delimiter lines of ``separator`` up to the first close delimiter.

    A line is a delimiter when it starts with ``separator``, then has an
    optional ``--``, blanks, and the line end, as the feedparser's
    ``boundaryre`` requires.
    """
    found: list[_Delimiter] = []
    # Searching from line starts only keeps a line full of repeated
    # separators from costing one loop iteration each.
    line_start = "\n" + separator
    position = 0 if body.startswith(separator) else _next_line(body, line_start, 0)
    while position >= 0:
        delimiter = _delimiter_at(body, position, len(separator))
        if delimiter is not None:
            found.append(delimiter)
            if delimiter.close:
                break
        position = _next_line(body, line_start, position)
    return found


def _next_line(body: str, line_start: str, after: int) -> int:
    """Return where the next line that starts ``line_start[1:]`` begins, or -1."""
    found = body.find(line_start, after)
    return -1 if found < 0 else found + 1


def _delimiter_at(body: str, start: int, length: int) -> _Delimiter | None:
    cursor = start + length
    close = body.startswith("--", cursor)
    if close:
        cursor += 2
    blanks = _BLANKS.match(body, cursor)
    if blanks is not None:
        cursor = blanks.end()
    if cursor == len(body):
        return _Delimiter(start, cursor, close, line_end=False)
    for line_end in ("\n", "\r\n"):
        if body.startswith(line_end, cursor):
            return _Delimiter(start, cursor + len(line_end), close, line_end=True)
    return None


def _child(
    text: str, parent: Message, factory: PartFactory, boundaries: tuple[str, ...]
) -> Message:
    if parent.get_content_type() == "multipart/digest":
        child = _entity(text, factory, "message/rfc822", boundaries)
    else:
        child = _entity(text, factory, "text/plain", boundaries)
    last = _last_created(child)
    if last.get_content_maintype() == "multipart":
        epilogue = last.epilogue
        last.epilogue = None if epilogue == "" else _cut_line_end(epilogue)
    else:
        payload = raw_payload(last)
        if isinstance(payload, str):
            last.set_payload(_cut_line_end(payload) or "")
    return child


def raw_payload(part: Message) -> object:
    """Return the payload as the parser stored it.

    ``get_payload()`` decodes a string payload that contains surrogate
    escapes with the part's charset, so it does not return what was read.
    """
    payload: object = part._payload  # type: ignore[attr-defined]
    return payload


def _last_created(part: Message) -> Message:
    """Return the part the feedparser created last while reading ``part``.

    The feedparser cuts the line end before a delimiter from that part, not
    from the child itself: for an embedded message it is the innermost
    leaf or multipart, for a delivery-status part its last block.
    """
    while part.get_content_maintype() == "message":
        payload = part.get_payload()
        if not isinstance(payload, list) or not payload:
            break
        last = payload[-1]
        if not isinstance(last, Message):
            break
        part = last
    return part


def _cut_line_end(text: str | None) -> str | None:
    if text is None:
        return None
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text


def _split_lines(text: str) -> list[str]:
    lines = text.split("\n")
    last = lines.pop()
    result = [line + "\n" for line in lines]
    if last:
        result.append(last)
    return result
