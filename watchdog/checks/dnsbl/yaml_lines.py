"""A safe YAML loader whose mappings and lists remember their lines.

Schema errors in the rules files name the line of the offending field, and
plain ``yaml.safe_load`` output has lost it. The loader also rejects a key
repeated in one mapping, which ``yaml.safe_load`` silently resolves to the
last value.

``short_repr`` shows a loaded value in such an error without expanding
aliases.
"""

from __future__ import annotations

import reprlib
from typing import Any

import yaml


class LineMapping(dict[Any, Any]):
    """A YAML mapping that remembers the line of each of its keys."""

    line: int = 0
    lines: dict[Any, int]


class LineList(list[Any]):
    """A YAML sequence that remembers the line of each of its items."""

    line: int = 0
    lines: list[int]


class LineLoader(yaml.SafeLoader):
    """A safe YAML loader whose mappings and lists carry line numbers."""


def _construct_mapping(loader: LineLoader, node: yaml.MappingNode) -> LineMapping:
    mapping = LineMapping(loader.construct_mapping(node, deep=True))
    mapping.line = node.start_mark.line + 1
    mapping.lines = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping.lines:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r} (first on line {mapping.lines[key]})",
                key_node.start_mark,
            )
        mapping.lines[key] = key_node.start_mark.line + 1
    return mapping


def _construct_sequence(loader: LineLoader, node: yaml.SequenceNode) -> LineList:
    sequence = LineList(loader.construct_sequence(node, deep=True))
    sequence.line = node.start_mark.line + 1
    sequence.lines = [item.start_mark.line + 1 for item in node.value]
    return sequence


LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)
LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG,
    _construct_sequence,
)


class _ShortRepr(reprlib.Repr):
    """Shortened reprs of YAML values for error messages.

    An aliased YAML structure (a "billion laughs" file) is small in memory
    but enormous as text, so nesting, lengths and strings are capped.
    reprlib picks a method by type name, hence the loader's own types.
    """

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 2
        self.maxstring = 80
        self.maxother = 80

    def repr_LineList(self, value: list[Any], level: int) -> str:
        return self.repr_list(value, level)

    def repr_LineMapping(self, value: dict[Any, Any], level: int) -> str:
        return self.repr_dict(value, level)


_SHORT_REPR = _ShortRepr()


def short_repr(value: Any) -> str:
    """Return the repr of a loaded YAML value, shortened for an error message."""
    return _SHORT_REPR.repr(value)
