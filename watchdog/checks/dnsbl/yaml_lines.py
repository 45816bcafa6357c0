"""A safe YAML loader whose mappings remember the line of each key.

Schema errors in the rules files name the line of the offending field, and
plain ``yaml.safe_load`` output has lost it.
"""

from __future__ import annotations

from typing import Any

import yaml


class LineMapping(dict[Any, Any]):
    """A YAML mapping that remembers the line of each of its keys."""

    line: int = 0
    lines: dict[Any, int]


class LineLoader(yaml.SafeLoader):
    """A safe YAML loader whose mappings carry line numbers."""


def _construct_mapping(loader: LineLoader, node: yaml.MappingNode) -> LineMapping:
    mapping = LineMapping(loader.construct_mapping(node, deep=True))
    mapping.line = node.start_mark.line + 1
    mapping.lines = {
        loader.construct_object(key, deep=True): key.start_mark.line + 1
        for key, _ in node.value
    }
    return mapping


LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)
