"""A safe YAML loader whose mappings and lists remember their lines.

Schema errors in the rules files name the line of the offending field, and
plain ``yaml.safe_load`` output has lost it. The loader also rejects a key
repeated in one mapping, which ``yaml.safe_load`` silently resolves to the
last value.
"""

from __future__ import annotations

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
