"""Normalisation of e-mail addresses taken from untrusted messages.

Bounce and feedback reports write the same address in many forms:
``rfc822;<Alice@Example.COM>``, ``utf-8;ålice@bücher.example``, with
surrogate escapes left by the ``email`` package, or with stray control
characters. ``normalise_address`` reduces each to one canonical string so
that the classifier and the store compare equal addresses as equal.
"""

from __future__ import annotations

import re

import idna

# RFC 3464 and RFC 6533 address types that may prefix an address.
_ADDRESS_TYPES = ("rfc822;", "utf-8;", "x-unknown;")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ANGLE = re.compile(r"<([^<>]*)>")
# RFC 5321 section 4.1.2: a source route ("@relay1,@relay2:") before the
# mailbox is obsolete and must be ignored; only the mailbox names a user.
_SOURCE_ROUTE = re.compile(r"^@[^\s:@,]+(?:,\s*@[^\s:@,]+)*:")
_REPLACEMENT = "\ufffd"
# An unquoted local part (RFC 5322 dot-atom, with RFC 6531 non-ASCII text).
_DOT_ATOM = re.compile(r'[^\s"(),.:;<>@\[\\\]]+(?:\.[^\s"(),.:;<>@\[\\\]]+)*')
# Maximum lengths of an address and of its local part, in octets (RFC 5321
# sections 4.5.3.1.1 and 4.5.3.1.3).
_MAX_ADDRESS_LENGTH = 254
_MAX_LOCAL_LENGTH = 64


def normalise_address(text: str) -> str | None:
    """Return ``text`` as ``local@domain`` with a lower-case ASCII domain.

    Strips an address-type prefix, angle brackets, a source route and
    surrounding blanks, keeps the local part as written (a quoted dot-atom
    loses its quotes) and IDNA-encodes (UTS 46) a non-ASCII domain.
    Returns None for anything that is not one plausible address: no ``@``,
    control characters or NUL, an empty part, or a domain that does not
    encode. It also returns None for bytes that are not UTF-8 and
    for more than 64 octets in the local part or 254 in all.
    """
    value = _redecode(text).lstrip("\ufeff").strip()
    lowered = value.lower()
    for prefix in _ADDRESS_TYPES:
        if lowered.startswith(prefix):
            value = value[len(prefix) :].strip()
            break
    bracketed = _ANGLE.search(value)
    if bracketed is not None:
        value = bracketed.group(1).strip()
    value = _strip_wrapping(value)
    value = _SOURCE_ROUTE.sub("", value)
    if _CONTROL.search(value) or len(value) > _MAX_ADDRESS_LENGTH:
        return None
    if _REPLACEMENT in value:
        # The bytes were not UTF-8, so the real address is unknown. Storing
        # U+FFFD would suppress an address that does not exist.
        return None
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        return None
    quoted = len(local) >= 2 and local[0] == local[-1] == '"'
    if any(c.isspace() for c in (domain if quoted else value)):
        return None
    if quoted and _DOT_ATOM.fullmatch(local[1:-1]):
        # RFC 5321 section 4.1.2: quoting a dot-atom changes nothing.
        local = local[1:-1]
    ascii_domain = _encode_domain(domain.rstrip("."))
    if ascii_domain is None:
        return None
    address = f"{local}@{ascii_domain}"
    # The length check above counts characters; the limits are in octets.
    if len(local.encode()) > _MAX_LOCAL_LENGTH:
        return None
    if len(address.encode()) > _MAX_ADDRESS_LENGTH:
        return None
    return address


def address_key(address: str) -> str:
    """Return the key that the suppression list and events store for ``address``.

    ``address`` is a result of ``normalise_address``, whose domain is
    already lower-case. The key lower-cases the local part too, so
    ``Alice@example.com`` and ``alice@example.com`` are one entry. RFC 5321
    lets a server treat local parts as case-sensitive, but mailbox providers
    do not, and a bounce for one spelling means the other bounces too.
    """
    return address.lower()


def _strip_wrapping(value: str) -> str:
    """Strip quotes and punctuation that reports put around an address.

    A leading quote stays when nothing closes it at the end, because then
    it opens a quoted local part (``"a b"@example.com``) or is an apostrophe
    the local part starts with. The domain never ends in a quote.
    """
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1].strip()
    return value.lstrip("<([;:,. ").rstrip(">)];:,. \"'")


def _redecode(text: str) -> str:
    """Turn surrogate escapes of raw UTF-8 bytes back into characters."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeError:
        return text.encode("utf-8", "replace").decode("utf-8", "replace")


def _encode_domain(domain: str) -> str | None:
    """Return the lower-case A-label form of ``domain``, or None if invalid."""
    if not domain:
        return None
    if domain.isascii():
        return domain.lower()
    try:
        return idna.encode(domain, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError, ValueError):
        return None
