"""The catalogue of DNS blocklist zones, loaded from ``rules/dnsbl.yaml``.

Each zone entry names the zone, the kinds of target it lists (``ip4``,
``ip6``, ``domain``), the meaning and severity of each return code, the
codes an operator answers instead of a listing (query refused, blocked or
malformed), and flags: ``informational`` (never alerts), ``needs_key``
(queryable only through Spamhaus DQS), ``enabled`` (part of the default set).
A return code is either an exact address (``codes``) or a bit of the last
octet of 127.0.0.x (``bits``, for SURBL and URIBL).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NoReturn

import yaml

from watchdog.checks.dnsbl.yaml_lines import (
    LineList,
    LineLoader,
    LineMapping,
    short_repr,
)
from watchdog.checks.dnsbl.zones import (
    DNS_NAME_RULE,
    DQS_SUFFIX,
    REPUTATION_SEVERITIES,
    CodeMeaning,
    Severity,
    Zone,
    ZoneKind,
    adhoc_zone,
    is_dns_name,
)
from watchdog.errors import RulesError

# The zone records live in ``zones``. They are imported here too, so that
# callers can keep importing them from the catalogue.
__all__ = [
    "DNS_NAME_RULE",
    "DQS_SUFFIX",
    "MAX_CATALOGUE_BYTES",
    "REPUTATION_SEVERITIES",
    "CodeMeaning",
    "Severity",
    "Zone",
    "ZoneKind",
    "adhoc_zone",
    "is_dns_name",
    "load_catalogue",
]

# The shipped catalogue is about 10 KiB, and PyYAML's pure-Python loader
# needs seconds per MiB (a 2 MiB file of 20,000 zones took 20 s on a shared
# test machine). A larger file is a mistake, so it is rejected unparsed.
MAX_CATALOGUE_BYTES = 1 << 20

_REQUIRED = ("zone", "kind", "lists")
_OPTIONAL = frozenset(
    {
        "codes",
        "bits",
        "operator_errors",
        "operator_error_bits",
        "informational",
        "enabled",
        "needs_key",
        "dqs",
        "delist_url",
    }
)


def load_catalogue(path: Path) -> dict[str, Zone]:
    """Load and check a zone catalogue, keyed by zone name.

    Raises RulesError naming the file, line and field of the first problem.
    """
    try:
        with path.open("rb") as file:
            data = file.read(MAX_CATALOGUE_BYTES + 1)
    except OSError as exc:
        msg = f"cannot read blocklist catalogue {str(path)!r}: {exc.strerror}"
        raise RulesError(msg, path=str(path)) from exc
    if len(data) > MAX_CATALOGUE_BYTES:
        msg = (
            f"blocklist catalogue {str(path)!r} is larger than "
            f"{MAX_CATALOGUE_BYTES} bytes: point blocklists.zones_file at the "
            "zone catalogue"
        )
        raise RulesError(msg, path=str(path))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        msg = f"blocklist catalogue {str(path)!r} is not UTF-8 text: {exc.reason}"
        raise RulesError(msg, path=str(path)) from exc
    try:
        document = yaml.load(text, Loader=LineLoader)  # noqa: S506
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        msg = f"{path}:{line}: invalid YAML: {exc}"
        raise RulesError(msg, path=str(path), line=line) from exc

    zones = _zone_list(document, path)
    catalogue: dict[str, Zone] = {}
    for entry in zones:
        zone = _parse_zone(entry, path)
        if zone.name in catalogue:
            _fail(path, entry, "zone", f"zone {zone.name!r} is listed twice")
        catalogue[zone.name] = zone
    return catalogue


def _zone_list(document: Any, path: Path) -> list[LineMapping]:
    if not isinstance(document, LineMapping) or not isinstance(
        document.get("zones"), list
    ):
        msg = f"{path}:1: field 'zones' is missing: expected a list of zones"
        raise RulesError(msg, path=str(path), line=1, field="zones")
    entries: list[LineMapping] = document["zones"]
    for index, entry in enumerate(entries):
        if not isinstance(entry, LineMapping):
            line = _item_line(document["zones"], index)
            msg = f"{path}:{line}: zones[{index}] is not a mapping: write 'zone: NAME'"
            raise RulesError(msg, path=str(path), line=line, field="zones")
    return entries


def _item_line(sequence: Any, index: int) -> int | None:
    if isinstance(sequence, LineList):
        return sequence.lines[index]
    return None


def _fail(path: Path, entry: LineMapping, key: str, problem: str) -> NoReturn:
    line = entry.lines.get(key, entry.line)
    name = entry.get("zone", "?")
    msg = f"{path}:{line}: zone {short_repr(name)}, field {key!r}: {problem}"
    raise RulesError(msg, path=str(path), line=line, field=key)


def _parse_zone(entry: LineMapping, path: Path) -> Zone:
    for key in _REQUIRED:
        if key not in entry:
            _fail(path, entry, key, "required field is missing")
    for key in entry:
        if key not in _OPTIONAL and key not in _REQUIRED:
            _fail(path, entry, key, "unknown field")

    return Zone(
        name=_dns_name(entry, "zone", path),
        kinds=_kinds(entry, path),
        lists=_text(entry, "lists", path),
        codes=_codes(entry, path),
        bits=_bits(entry, path),
        operator_errors=_operator_errors(entry, path),
        operator_error_bits=_operator_error_bits(entry, path),
        informational=_flag(entry, "informational", path, default=False),
        enabled=_flag(entry, "enabled", path, default=True),
        needs_key=_flag(entry, "needs_key", path, default=False),
        dqs=_dns_name(entry, "dqs", path) if "dqs" in entry else None,
        delist_url=_optional_text(entry, "delist_url", path),
    )


def _text(entry: LineMapping, key: str, path: Path) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        _fail(
            path,
            entry,
            key,
            f"expected a non-empty string, got {short_repr(value)}",
        )
    return str(value).strip()


def _dns_name(entry: LineMapping, key: str, path: Path) -> str:
    name = _text(entry, key, path).lower().rstrip(".")
    if not is_dns_name(name):
        _fail(path, entry, key, f"{name!r} is not a DNS name: {DNS_NAME_RULE}")
    return name


def _optional_text(entry: LineMapping, key: str, path: Path) -> str | None:
    return _text(entry, key, path) if key in entry else None


def _flag(entry: LineMapping, key: str, path: Path, *, default: bool) -> bool:
    value = entry.get(key, default)
    if not isinstance(value, bool):
        _fail(path, entry, key, f"expected true or false, got {short_repr(value)}")
    return bool(value)


def _kinds(entry: LineMapping, path: Path) -> frozenset[ZoneKind]:
    raw = entry["kind"]
    names: Iterable[Any] = raw if isinstance(raw, list) else [raw]
    try:
        kinds = frozenset(ZoneKind(name) for name in names)
    except ValueError:
        problem = f"expected ip4, ip6 or domain, got {short_repr(raw)}"
        _fail(path, entry, "kind", problem)
    if not kinds:
        _fail(path, entry, "kind", "expected at least one of ip4, ip6, domain")
    return kinds


def _meaning(entry: LineMapping, key: str, value: Any, path: Path) -> CodeMeaning:
    if not isinstance(value, LineMapping) or "meaning" not in value:
        problem = f"expected {{meaning, severity}}, got {short_repr(value)}"
        _fail(path, entry, key, problem)
    try:
        severity = Severity(value.get("severity", "unknown"))
    except ValueError:
        allowed = ", ".join(member.value for member in Severity)
        _fail(path, entry, key, f"severity must be one of {allowed}")
    return CodeMeaning(meaning=str(value["meaning"]), severity=severity)


def _address(entry: LineMapping, key: str, value: Any, path: Path) -> str:
    try:
        address = ipaddress.IPv4Address(str(value))
    except ValueError:
        _fail(path, entry, key, f"{short_repr(value)} is not an IPv4 address")
    if not address.is_loopback:
        _fail(path, entry, key, f"{short_repr(value)} is outside 127.0.0.0/8")
    return str(address)


def _bit(entry: LineMapping, key: str, value: Any, path: Path) -> int:
    # YAML reads true as a bool, and bool is an int equal to 1 in Python.
    bits = {1 << n for n in range(8)}
    if isinstance(value, bool) or not isinstance(value, int) or value not in bits:
        problem = f"{short_repr(value)} is not a bit value 1, 2, 4 ... 128"
        _fail(path, entry, key, problem)
    return int(value)


def _section(entry: LineMapping, key: str, path: Path) -> LineMapping:
    value = entry.get(key, LineMapping())
    if not isinstance(value, LineMapping):
        _fail(path, entry, key, f"expected a mapping, got {short_repr(value)}")
    return value


def _codes(entry: LineMapping, path: Path) -> dict[str, CodeMeaning]:
    section = _section(entry, "codes", path)
    return {
        _address(entry, "codes", code, path): _meaning(entry, "codes", value, path)
        for code, value in section.items()
    }


def _bits(entry: LineMapping, path: Path) -> dict[int, CodeMeaning]:
    section = _section(entry, "bits", path)
    return {
        _bit(entry, "bits", bit, path): _meaning(entry, "bits", value, path)
        for bit, value in section.items()
    }


def _operator_errors(entry: LineMapping, path: Path) -> dict[str, str]:
    section = _section(entry, "operator_errors", path)
    return {
        _address(entry, "operator_errors", code, path): _meaning_text(
            entry, "operator_errors", meaning, path
        )
        for code, meaning in section.items()
    }


def _meaning_text(entry: LineMapping, key: str, value: Any, path: Path) -> str:
    if not isinstance(value, str) or not value.strip():
        problem = f"expected a meaning as text, got {short_repr(value)}"
        _fail(path, entry, key, problem)
    return value.strip()


def _operator_error_bits(entry: LineMapping, path: Path) -> dict[int, str]:
    section = _section(entry, "operator_error_bits", path)
    return {
        _bit(entry, "operator_error_bits", bit, path): _meaning_text(
            entry, "operator_error_bits", meaning, path
        )
        for bit, meaning in section.items()
    }
