"""Classification rules read from ``rules/classify/*.yaml``.

Each file is a YAML mapping with any of these sections, every entry a
mapping whose fields are checked at load time:

``patterns``
    ``reason``, one of ``regex`` or ``substring`` (case-insensitive), and a
    ``note`` naming the provider or sample the wording came from. Matched
    against a recipient's diagnostic text with blanks collapsed, every
    address replaced by ``<address>`` and URL fragments removed. The first
    match wins.
``statuses``
    ``status`` (``5.1.1``, or ``x.1.1`` for either class), ``reason``,
    ``note``. Used when no pattern matches.
``pseudo_statuses``
    ``reason`` and ``status`` (``x.0.9nn``): the code reported for a
    recipient whose message carries no RFC 3463 status, as Sisimai does.
``auto_reply_subjects``
    ``regex`` or ``substring`` and ``note``: subjects of auto-replies.
``filtering_gateways``
    ``regex`` or ``substring``, ``note``, and an optional ``header``:
    marks of a content-filtering gateway, matched against that header of
    a plain-text bounce, or against its report text when ``header`` is
    absent. Such a gateway replies "user unknown" to mail its filter
    refused, so that wording becomes ``filtered`` unless the status is
    x.1.1.

Files are read in name order, so ``05-local.yaml`` is tried before
``10-provider-blocks.yaml``. Any error raises RulesError naming the file,
line and field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import yaml

from watchdog.classify.literals import required_literals
from watchdog.classify.reasons import REASONS
from watchdog.errors import RulesError
from watchdog.rules_path import rules_dir

if TYPE_CHECKING:
    from collections.abc import Callable

_STATUS = re.compile(r"^[45x]\.\d{1,3}\.\d{1,3}$")
_SECTIONS = frozenset(
    {
        "patterns",
        "statuses",
        "pseudo_statuses",
        "auto_reply_subjects",
        "filtering_gateways",
    }
)


@dataclass(frozen=True, slots=True, eq=False)
class Pattern:
    """One wording that maps a diagnostic or a subject to a reason."""

    reason: str
    regex: re.Pattern[str]
    note: str
    source: str
    # The header a filtering-gateway mark is matched against; None means the
    # report text.
    header: str | None = None
    # Lower-case strings of which every match contains one, or None when
    # unknown; see ``watchdog.classify.literals``.
    literals: tuple[str, ...] | None = None
    # ``regex`` compiled with re.ASCII, or None for a pattern with non-ASCII
    # characters. See ``ascii_variant`` for the texts on which both agree.
    ascii_regex: re.Pattern[str] | None = None


@dataclass(frozen=True, slots=True)
class Rules:
    """Every classification rule, in the order they are tried."""

    patterns: tuple[Pattern, ...]
    statuses: dict[str, str]
    pseudo_statuses: dict[str, str]
    auto_reply_subjects: tuple[Pattern, ...]
    filtering_gateways: tuple[Pattern, ...] = ()

    def reason_for_text(self, text: str) -> Pattern | None:
        """Return the first pattern that matches ``text``, or None."""
        for pattern in self.patterns:
            if pattern.regex.search(text):
                return pattern
        return None

    def is_filtering_gateway(
        self, header: Callable[[str], str | None], report: str
    ) -> bool:
        """Tell whether a bounce carries a mark of a content-filtering gateway.

        ``header`` returns the bounce's own header of a given name, or None.
        """
        for gateway in self.filtering_gateways:
            text = report if gateway.header is None else header(gateway.header)
            if text and gateway.regex.search(text):
                return True
        return False

    def reason_for_status(self, status: str) -> str | None:
        """Return the reason for an RFC 3463 code, exact code first."""
        found = self.statuses.get(status)
        if found is None and len(status) > 2:
            found = self.statuses.get("x" + status[1:])
        return found


EMPTY_RULES = Rules((), {}, {}, ())


@cache
def default_rules() -> Rules:
    """Load and cache the rules under ``rules_dir() / "classify"``."""
    return load_rules(rules_dir() / "classify")


def load_rules(directory: Path) -> Rules:
    """Load every ``*.yaml`` file in ``directory``, checking each entry.

    Raises RulesError naming file, line and field for any invalid entry.
    """
    patterns: list[Pattern] = []
    subjects: list[Pattern] = []
    gateways: list[Pattern] = []
    statuses: dict[str, str] = {}
    pseudo: dict[str, str] = {}
    for path in sorted(directory.glob("*.yaml")):
        sections = _read_sections(path)
        for node in sections.get("patterns", []):
            patterns.append(_pattern(path, node, need_reason=True))
        for node in sections.get("auto_reply_subjects", []):
            subjects.append(_pattern(path, node, need_reason=False))
        for node in sections.get("filtering_gateways", []):
            gateways.append(_pattern(path, node, need_reason=False, gateway=True))
        for node in sections.get("statuses", []):
            status, reason = _status_entry(path, node, need_note=True)
            statuses.setdefault(status, reason)
        for node in sections.get("pseudo_statuses", []):
            status, reason = _status_entry(path, node, need_note=False)
            pseudo.setdefault(reason, status)
    return Rules(tuple(patterns), statuses, pseudo, tuple(subjects), tuple(gateways))


def _read_sections(path: Path) -> dict[str, list[yaml.MappingNode]]:
    """Parse ``path`` into its sections, each a list of mapping nodes."""
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeError) as exc:
        msg = f"cannot read rules file {str(path)!r}: {exc}"
        raise RulesError(msg, path=str(path)) from exc
    except yaml.YAMLError as exc:
        line = _yaml_error_line(exc)
        msg = f"invalid YAML in {str(path)!r} at line {line}: {exc}"
        raise RulesError(msg, path=str(path), line=line) from exc
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        _fail(path, root, None, "the file must be a mapping of sections")
    sections: dict[str, list[yaml.MappingNode]] = {}
    for key_node, value_node in root.value:
        key = key_node.value
        if key not in _SECTIONS:
            _fail(path, key_node, key, f"unknown section, expected {sorted(_SECTIONS)}")
        if not isinstance(value_node, yaml.SequenceNode):
            _fail(path, value_node, key, "the section must be a list of entries")
        sections[key] = [_entry(path, key, item) for item in value_node.value]
    return sections


def _entry(path: Path, section: str, node: yaml.Node) -> yaml.MappingNode:
    if not isinstance(node, yaml.MappingNode):
        _fail(path, node, section, "each entry must be a mapping")
    return node


def _fields(path: Path, node: yaml.MappingNode, allowed: set[str]) -> dict[str, str]:
    """Return the scalar fields of ``node``, rejecting unknown or non-text ones."""
    fields: dict[str, str] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        if key not in allowed:
            _fail(path, key_node, key, f"unknown field, expected {sorted(allowed)}")
        if not isinstance(value_node, yaml.ScalarNode) or not value_node.value:
            _fail(path, value_node, key, "the value must be non-empty text")
        fields[key] = str(value_node.value)
    return fields


def _pattern(
    path: Path, node: yaml.MappingNode, *, need_reason: bool, gateway: bool = False
) -> Pattern:
    allowed = {"regex", "substring", "note"} | ({"reason"} if need_reason else set())
    allowed |= {"header"} if gateway else set()
    fields = _fields(path, node, allowed)
    if need_reason:
        _check_reason(path, node, fields)
    _require(path, node, fields, "note")
    if ("regex" in fields) == ("substring" in fields):
        _fail(path, node, "regex", "give exactly one of 'regex' or 'substring'")
    text = fields.get("regex") or re.escape(fields["substring"])
    try:
        compiled = re.compile(text, re.IGNORECASE)
    except re.error as exc:
        _fail(path, node, "regex", f"invalid regular expression {text!r}: {exc}")
    source = f"{path.name}:{node.start_mark.line + 1}"
    reason = fields.get("reason", "vacation")
    return Pattern(
        reason,
        compiled,
        fields["note"],
        source,
        fields.get("header"),
        required_literals(compiled),
        ascii_variant(compiled),
    )


def ascii_variant(pattern: re.Pattern[str]) -> re.Pattern[str] | None:
    """Compile ``pattern`` again with re.ASCII, which searches faster.

    Both compiled forms match the same spans in ASCII text without the
    separators U+001C to U+001F, which only Unicode ``\\s`` matches,
    unless the pattern itself contains non-ASCII characters: with
    re.IGNORECASE, U+212A (Kelvin sign) matches ``k``, for example. For
    those patterns, and for any that do not compile again, returns None.
    """
    if not pattern.pattern.isascii():
        return None
    flags = (pattern.flags & ~re.UNICODE) | re.ASCII
    try:
        return re.compile(pattern.pattern, flags)
    except (re.error, ValueError):
        return None


def _status_entry(
    path: Path, node: yaml.MappingNode, *, need_note: bool
) -> tuple[str, str]:
    allowed = {"status", "reason"} | ({"note"} if need_note else set())
    fields = _fields(path, node, allowed)
    _check_reason(path, node, fields)
    _require(path, node, fields, "status")
    if need_note:
        _require(path, node, fields, "note")
    if not _STATUS.match(fields["status"]):
        _fail(path, node, "status", f"invalid status {fields['status']!r}, e.g. 5.1.1")
    return fields["status"], fields["reason"]


def _check_reason(path: Path, node: yaml.MappingNode, fields: dict[str, str]) -> None:
    _require(path, node, fields, "reason")
    if fields["reason"] not in REASONS:
        _fail(path, node, "reason", f"unknown reason {fields['reason']!r}")


def _require(
    path: Path, node: yaml.MappingNode, fields: dict[str, str], name: str
) -> None:
    if name not in fields:
        _fail(path, node, name, "missing required field")


def _fail(path: Path, node: yaml.Node, field: str | None, problem: str) -> NoReturn:
    line = node.start_mark.line + 1
    where = f"{path.name}, line {line}" + (f", field {field!r}" if field else "")
    msg = f"invalid rules file {str(path)!r} ({where}): {problem}"
    raise RulesError(msg, path=str(path), line=line, field=field)


def _yaml_error_line(exc: yaml.YAMLError) -> int | None:
    mark = getattr(exc, "problem_mark", None)
    return None if mark is None else int(mark.line) + 1
