"""Just enough DNS wire format (RFC 1035) for blocklist A and TXT queries.

``encode_question`` and ``encode_query`` build a query with RD set and no
EDNS. ``parse_reply`` reads a reply that already matched its query (ID,
question and QR bit, see ``fastquery``): the header, the answer records of
the asked type and, for a negative answer, the SOA minimum (RFC 2308).
Everything else raises ``Unusual``: TC, an opcode or RCODE other than
NOERROR and NXDOMAIN, a CNAME, another owner, a record past the end. The
caller then asks dnspython's full resolver, so this parser never has to
decide a rare case.
"""

from __future__ import annotations

import struct
from typing import NamedTuple, TypeVar

Key = TypeVar("Key")
Value = TypeVar("Value")

HEADER = struct.Struct("!HHHHHH")
RR_FIXED = struct.Struct("!HHIH")
SOA_MINIMUM = struct.Struct("!I")

TYPE_A = 1
TYPE_SOA = 6
TYPE_TXT = 16
CLASS_IN = 1

FLAG_QR = 0x8000
FLAG_TC = 0x0200
FLAG_RD = 0x0100
OPCODE_MASK = 0x7800
RCODE_MASK = 0x000F
RCODE_NOERROR = 0
RCODE_NXDOMAIN = 3

HEADER_SIZE = 12
# Questions kept encoded: 2,000 targets in 15 zones, with their TXT queries
# for listings, fit.
QUESTION_TABLE_SIZE = 32_768
MAX_LABEL = 63
MAX_NAME = 255
POINTER_FLAGS = 0xC0
# A compressed name needs at most 127 pointers to stay under 255 octets, so
# more means a pointer loop.
MAX_POINTERS = 127
# Owner name written as a pointer to the question name. rbldnsd and unbound
# write answers this way; any other owner is decoded and compared in full.
QNAME_POINTER = b"\xc0\x0c"
# RFC 2181 section 8: a TTL with the top bit set is read as 0.
MAX_TTL = 0x7FFF_FFFF


class Unusual(Exception):
    """A reply the minimal parser does not handle; ask the full resolver."""


class Reply(NamedTuple):
    """The records of the asked type, their TTL, and whether none came back.

    ``records`` are dotted IPv4 addresses for A and the joined character
    strings of each record for TXT. ``ttl`` is the smallest record TTL, or
    for a negative answer the SOA minimum capped by the SOA's own TTL.
    A named tuple rather than a dataclass, because a cycle builds one per
    query and worker processes send them back pickled, and tuples are the
    cheapest to build and to pickle.
    """

    records: tuple[str, ...]
    ttl: float
    negative: bool


def encode_question(name: str, rdtype: int) -> bytes:
    """Return the question section for ``name`` in lower case.

    Raises ValueError for a name that is not ASCII, has an empty label or
    a label over 63 octets, or is longer than 255 octets. Questions are
    kept in a bounded table, because every cycle requests the same names
    again.
    """
    key = (name, rdtype)
    question = _QUESTIONS.get(key)
    if question is None:
        question = _encode_question(name, rdtype)
        _keep(_QUESTIONS, key, question, QUESTION_TABLE_SIZE)
    return question


def _encode_question(name: str, rdtype: int) -> bytes:
    labels = name.lower().rstrip(".").encode("ascii").split(b".")
    try:
        wire = b"".join([_label_wire(label) for label in labels]) + b"\0"
    except ValueError:
        msg = f"invalid DNS name {name!r}: empty label or label over 63 octets"
        raise ValueError(msg) from None
    if len(wire) > MAX_NAME:
        msg = f"DNS name {name!r} is longer than {MAX_NAME} octets"
        raise ValueError(msg)
    return wire + struct.pack("!HH", rdtype, CLASS_IN)


def _label_wire(label: bytes) -> bytes:
    """Return ``label`` with its length octet in front."""
    if not 0 < len(label) <= MAX_LABEL:
        raise ValueError(label)
    return bytes((len(label),)) + label


def _keep(table: dict[Key, Value], key: Key, value: Value, size: int) -> None:
    """Store ``value`` under ``key``, emptying ``table`` first when it is full.

    Emptying costs less than tracking which entry is oldest, and the next
    cycle fills the table again with the names it uses.
    """
    if len(table) >= size:
        table.clear()
    table[key] = value


_QUESTIONS: dict[tuple[str, int], bytes] = {}


def encode_query(query_id: int, question: bytes) -> bytes:
    """Return a recursive query (RD set) with ID ``query_id`` and one question."""
    return HEADER.pack(query_id, FLAG_RD, 1, 0, 0, 0) + question


def parse_reply(data: bytes, question: bytes, rdtype: int, default_ttl: float) -> Reply:
    """Read the answer of a reply to ``question``.

    ``default_ttl`` is the TTL of a negative answer without an SOA.
    Raises Unusual for anything but a clean NOERROR or NXDOMAIN answer.
    """
    try:
        return _parse(data, question, rdtype, default_ttl)
    except (struct.error, IndexError) as exc:
        raise Unusual(f"malformed reply: {exc}") from exc


def _parse(data: bytes, question: bytes, rdtype: int, default_ttl: float) -> Reply:
    _, flags, _, answers, authorities, _ = HEADER.unpack_from(data)
    if flags & FLAG_TC:
        raise Unusual("truncated reply")
    if flags & OPCODE_MASK:
        raise Unusual(f"opcode {(flags & OPCODE_MASK) >> 11} in reply")
    rcode = flags & RCODE_MASK
    if rcode not in (RCODE_NOERROR, RCODE_NXDOMAIN):
        raise Unusual(f"rcode {rcode} in reply")
    if rcode == RCODE_NXDOMAIN and answers:
        raise Unusual("NXDOMAIN with answer records")

    qname = question[:-4]
    offset = HEADER_SIZE + len(question)
    records: list[str] = []
    ttl: float | None = None
    for _ in range(answers):
        offset = _expect_owner(data, offset, qname)
        rtype, rclass, rttl, length = RR_FIXED.unpack_from(data, offset)
        start = offset + RR_FIXED.size
        offset = start + length
        if offset > len(data):
            raise Unusual("record data past the end of the reply")
        if rtype != rdtype or rclass != CLASS_IN:
            raise Unusual(f"record of type {rtype} class {rclass} in the answer")
        records.append(_rdata_text(data, start, offset, rtype))
        if rttl > MAX_TTL:
            rttl = 0
        ttl = rttl if ttl is None else min(ttl, rttl)

    if records:
        return Reply(tuple(records), float(ttl or 0), negative=False)
    negative_ttl = _negative_ttl(data, offset, authorities)
    return Reply((), default_ttl if negative_ttl is None else negative_ttl, True)


def _rdata_text(data: bytes, start: int, end: int, rtype: int) -> str:
    if rtype == TYPE_A:
        if end - start != 4:
            raise Unusual(f"A record of {end - start} octets")
        return f"{data[start]}.{data[start + 1]}.{data[start + 2]}.{data[start + 3]}"
    parts = []
    while start < end:
        size = data[start]
        start += 1 + size
        if start > end:
            raise Unusual("TXT string past the end of its record")
        parts.append(data[start - size : start])
    return b"".join(parts).decode("utf-8", "replace")


def _negative_ttl(data: bytes, offset: int, count: int) -> float | None:
    """Return ``_soa_minimum`` of the records from ``offset``, from a table.

    The result depends only on the bytes from ``offset`` to the end and
    on ``count``. Those bytes repeat across the negative replies of one
    zone (an SOA owner written as a pointer and the same SOA data), so
    most replies cost one table look-up instead of a walk.
    """
    key = (count, data[offset:])
    try:
        return _NEGATIVE_TTLS[key]
    except KeyError:
        pass
    ttl = _soa_minimum(data, offset, count)
    _keep(_NEGATIVE_TTLS, key, ttl, NEGATIVE_TABLE_SIZE)
    return ttl


_NEGATIVE_TTLS: dict[tuple[int, bytes], float | None] = {}
NEGATIVE_TABLE_SIZE = 1024


def _soa_minimum(data: bytes, offset: int, count: int) -> float | None:
    """Return min(SOA TTL, SOA minimum) from the authority section, if any."""
    for _ in range(count):
        offset = skip_name(data, offset)
        rtype, _, rttl, length = RR_FIXED.unpack_from(data, offset)
        offset += RR_FIXED.size + length
        if offset > len(data):
            raise Unusual("authority record past the end of the reply")
        if rtype == TYPE_SOA:
            # The RDATA ends with SERIAL REFRESH RETRY EXPIRE MINIMUM.
            if length < 22:
                raise Unusual(f"SOA record of {length} octets")
            (minimum,) = SOA_MINIMUM.unpack_from(data, offset - 4)
            return float(0 if rttl > MAX_TTL else min(rttl, minimum))
    return None


def _expect_owner(data: bytes, offset: int, qname: bytes) -> int:
    """Skip an answer's owner name, raising Unusual unless it is ``qname``."""
    if data[offset : offset + 2] == QNAME_POINTER:
        return offset + 2
    owner, offset = read_name(data, offset)
    if owner != qname:
        raise Unusual("answer record for another name")
    return offset


def skip_name(data: bytes, offset: int) -> int:
    """Return the offset after the (possibly compressed) name at ``offset``.

    Only the labels in place are walked: a pointer ends the name, so its
    target need not be read. Raises Unusual on a reserved label type or a
    name that runs past the reply.
    """
    while True:
        size = data[offset]
        if size & POINTER_FLAGS == POINTER_FLAGS:
            return offset + 2
        if size & POINTER_FLAGS:
            raise Unusual(f"reserved label type {size:#x}")
        offset += 1 + size
        if offset > len(data):
            raise Unusual("name past the end of the reply")
        if size == 0:
            return offset


def read_name(data: bytes, offset: int) -> tuple[bytes, int]:
    """Return the name at ``offset`` uncompressed in lower case, and the end.

    Raises Unusual on a pointer loop, a reserved label type, a name over 255
    octets or one that runs past the reply.
    """
    name = bytearray()
    end: int | None = None
    for _ in range(MAX_POINTERS + 1):
        while True:
            size = data[offset]
            if size & POINTER_FLAGS == POINTER_FLAGS:
                break
            if size & POINTER_FLAGS:
                raise Unusual(f"reserved label type {size:#x}")
            name += data[offset : offset + 1 + size]
            if offset + 1 + size > len(data) or len(name) > MAX_NAME:
                raise Unusual("name past the end of the reply or over 255 octets")
            offset += 1 + size
            if size == 0:
                return bytes(name).lower(), end if end is not None else offset
        if end is None:
            end = offset + 2
        offset = ((size & ~POINTER_FLAGS) << 8) | data[offset + 1]
    raise Unusual("compression pointer loop")
