"""Literal substrings that every match of a regular expression contains.

The reason patterns are tried in turn against each diagnostic, and most of
them fail. A cheap ``in`` test for the literals a pattern cannot match
without skips its regex search when none of them occurs in the text.

``required_literals`` walks the parse tree of CPython's ``re`` module
(``re._parser``, a private module), so it is only a speed-up: when the tree
contains anything it does not understand, it returns None and the pattern is
always searched.
"""

from __future__ import annotations

import re
from typing import Any

try:
    from re import _constants as _sre  # type: ignore[attr-defined]
    from re import _parser  # type: ignore[attr-defined]
except ImportError:  # NOTE: CPython 3.11 has these; others get no prefilter.
    _sre = None
    _parser = None

Requirement = frozenset[str] | None

# Literals shorter than this are too common to skip any search.
_MIN_LENGTH = 3


def required_literals(pattern: re.Pattern[str]) -> tuple[str, ...] | None:
    """Return lower-case ASCII strings of which every match contains one.

    Returns None when no such set was found, and then the pattern must
    always be searched. Only ASCII literals are returned, so the test is
    exact only on ASCII text: with ``re.IGNORECASE`` an ASCII letter also
    matches a few non-ASCII ones (``k`` matches the Kelvin sign U+212A).
    """
    if _parser is None:
        return None
    try:
        tree = _parser.parse(pattern.pattern, pattern.flags)
    except (re.error, RecursionError, TypeError):
        return None
    found = _sequence(list(tree))
    return None if found is None else _without_redundant(found)


def _without_redundant(literals: frozenset[str]) -> tuple[str, ...]:
    """Drop each literal that contains another one, which then occurs too."""
    kept = [
        literal
        for literal in literals
        if not any(other != literal and other in literal for other in literals)
    ]
    return tuple(sorted(kept))


def _sequence(items: list[tuple[Any, Any]]) -> Requirement:
    """Return the most selective requirement among the items of a sequence.

    Every item of a sequence must match, so the requirement of any one item,
    or of any run of consecutive literal characters, applies to the whole.
    """
    best: Requirement = None
    run: list[str] = []
    for op, value in items:
        if op is _sre.LITERAL and value < 128:
            run.append(chr(value).lower())
            continue
        best = _better(best, _run(run))
        run = []
        best = _better(best, _item(op, value))
    return _better(best, _run(run))


def _run(characters: list[str]) -> Requirement:
    text = "".join(characters)
    return frozenset({text}) if len(text) >= _MIN_LENGTH else None


def _item(op: Any, value: Any) -> Requirement:
    """Return the requirement of one non-literal item, or None."""
    if op is _sre.SUBPATTERN:
        return _sequence(list(value[3]))
    if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT):
        minimum, _maximum, body = value
        return _sequence(list(body)) if minimum >= 1 else None
    if op is _sre.ATOMIC_GROUP:
        return _sequence(list(value))
    if op is _sre.BRANCH:
        return _branch(value[1])
    return None


def _branch(alternatives: list[Any]) -> Requirement:
    """Return the union of the alternatives' requirements, if each has one."""
    union: set[str] = set()
    for alternative in alternatives:
        found = _sequence(list(alternative))
        if found is None:
            return None
        union |= found
    return frozenset(union)


def _better(first: Requirement, second: Requirement) -> Requirement:
    """Return the more selective requirement: the longer shortest literal."""
    if first is None:
        return second
    if second is None:
        return first
    return second if _score(second) > _score(first) else first


def _score(requirement: frozenset[str]) -> tuple[int, int]:
    return (min(map(len, requirement)), -len(requirement))
