"""The DKIM key check (RFC 6376, RFC 8301, Ed25519 keys from RFC 8463).

DNS cannot list the names under ``_domainkey``, so only selectors from the
configuration, the command line or our own signatures returned in bounces
are checked. Nothing here reports "DKIM missing" for a guessed selector.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from watchdog.checks.auth.findings import Check, Finding, Status, lookup_failed
from watchdog.checks.auth.lookup import Lookup
from watchdog.errors import DnsError

MIN_RSA_BITS = 1024
GOOD_RSA_BITS = 2048
ED25519_KEY_BYTES = 32


@dataclass(frozen=True)
class DkimReport:
    """The findings for one selector and the key size exported as a metric."""

    selector: str
    findings: list[Finding]
    key_bits: int | None = None


def parse_tags(text: str) -> dict[str, str]:
    """Split a ``tag=value; ...`` list (DKIM and DMARC) into a dict.

    Tag names are lower-cased, and the first occurrence of a tag wins.
    Whitespace around names and values is dropped.
    """
    tags: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        if sep and name and name not in tags:
            tags[name] = value.strip()
    return tags


async def check_dkim(lookup: Lookup, domain: str, selector: str) -> DkimReport:
    """Check the key published at ``<selector>._domainkey.<domain>``."""
    name = f"{selector}._domainkey.{domain}"
    try:
        answer, texts = await lookup.txt(name)
    except DnsError as exc:
        return DkimReport(selector, [lookup_failed(domain, Check.DKIM, exc, selector)])

    if answer.absent:
        detail = f"no TXT record at {name!r}, so mail signed with s={selector} fails"
        return DkimReport(
            selector, [_finding(domain, selector, "error", detail, "dkim_missing")]
        )
    if len(texts) > 1:
        detail = f"{len(texts)} TXT records at {name!r}: verifiers may pick either"
        multiple = _finding(domain, selector, "error", detail, "dkim_multiple")
        return DkimReport(selector, [multiple])

    findings: list[Finding] = []
    if answer.via_cname:
        detail = f"{name!r} is a CNAME to {answer.canonical!r} (ESP-hosted key)"
        findings.append(_finding(domain, selector, "ok", detail, "dkim_cname"))
    bits, key_findings = _key_findings(domain, selector, parse_tags(texts[0]))
    findings += key_findings
    if not any(f.status is not Status.OK for f in findings):
        detail = f"key at {name!r} is valid ({bits} bits)"
        findings.append(_finding(domain, selector, "ok", detail, "dkim_ok"))
    return DkimReport(selector, findings, bits)


def _key_findings(
    domain: str, selector: str, tags: dict[str, str]
) -> tuple[int | None, list[Finding]]:
    findings = _tag_findings(domain, selector, tags)
    public_key = "".join(tags.get("p", "").split())
    if "p" not in tags:
        detail = "the record has no p= tag"
        missing = _finding(domain, selector, "error", detail, "dkim_no_key")
        return None, [*findings, missing]
    if not public_key:
        detail = "empty p=: the key is revoked and signatures with it fail"
        revoked = _finding(domain, selector, "error", detail, "dkim_revoked")
        return None, [*findings, revoked]

    try:
        bits = key_bits(tags.get("k", "rsa").lower(), public_key)
    except ValueError as exc:
        invalid = _finding(domain, selector, "error", str(exc), "dkim_invalid_key")
        return None, [*findings, invalid]
    findings += _size_findings(domain, selector, tags, bits)
    return bits, findings


def _tag_findings(domain: str, selector: str, tags: dict[str, str]) -> list[Finding]:
    findings: list[Finding] = []
    version = tags.get("v")
    if version is not None and version != "DKIM1":
        detail = f"v={version!r} is not 'DKIM1': verifiers ignore the record"
        findings.append(_finding(domain, selector, "error", detail, "dkim_version"))
    elif version is not None and next(iter(tags)) != "v":
        detail = "v=DKIM1 is not the first tag, so verifiers may ignore the record"
        findings.append(_finding(domain, selector, "error", detail, "dkim_version"))
    if "y" in tags.get("t", "").split(":"):
        detail = "t=y: the domain is testing DKIM and verifiers may ignore failures"
        findings.append(_finding(domain, selector, "warning", detail, "dkim_testing"))
    hashes = {h.strip().lower() for h in tags.get("h", "").split(":") if h.strip()}
    if hashes == {"sha1"}:
        detail = "h=sha1 only: RFC 8301 forbids SHA-1, so signatures fail"
        findings.append(_finding(domain, selector, "warning", detail, "dkim_sha1"))
    services = {s.strip() for s in tags.get("s", "*").split(":")}
    if not services & {"*", "email"}:
        detail = f"s={tags['s']!r} excludes email: the key cannot sign mail"
        findings.append(_finding(domain, selector, "error", detail, "dkim_service"))
    return findings


def key_bits(key_type: str, public_key: str) -> int:
    """Return the size in bits of a base64 ``p=`` value of type ``key_type``.

    Raises ValueError naming the defect for bad base64, an undecodable key or
    an unknown ``k=``.
    """
    try:
        # Characters outside ASCII raise a plain ValueError, not binascii.Error.
        raw = base64.b64decode(public_key, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("p= is not valid base64") from None
    if key_type == "ed25519":
        if len(raw) != ED25519_KEY_BYTES:
            raise ValueError(f"ed25519 key is {len(raw)} bytes, expected 32")
        ed25519.Ed25519PublicKey.from_public_bytes(raw)
        return ED25519_KEY_BYTES * 8
    if key_type != "rsa":
        raise ValueError(f"unknown key type k={key_type!r}: use rsa or ed25519")
    try:
        key = load_der_public_key(raw)
    except (ValueError, UnsupportedAlgorithm):
        # UnsupportedAlgorithm: valid DER whose algorithm OID names no key type.
        raise ValueError("p= is not a DER-encoded RSA public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("k=rsa but p= contains a key of another type")
    return key.key_size


def _size_findings(
    domain: str, selector: str, tags: dict[str, str], bits: int
) -> list[Finding]:
    if tags.get("k", "rsa").lower() != "rsa":
        return []
    if bits < MIN_RSA_BITS:
        detail = f"RSA key of {bits} bits: RFC 8301 requires at least 1024"
        return [_finding(domain, selector, "error", detail, "dkim_key_size")]
    if bits < GOOD_RSA_BITS:
        detail = f"RSA key of {bits} bits: rotate to 2048 bits"
        return [_finding(domain, selector, "warning", detail, "dkim_key_size")]
    return []


def _finding(
    domain: str, selector: str, status: str, detail: str, reason: str
) -> Finding:
    return Finding(domain, Check.DKIM, Status(status), reason, detail, selector)
