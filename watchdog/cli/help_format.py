"""Typer command and group classes whose help shows no Python type names.

Typer 0.29 prints a type label next to every parameter in ``--help``:
``<bool>`` after flags such as ``--help``, and ``<list[str]>`` or
``<path>`` after arguments, even when the argument has a metavar. These
classes drop the label of flags and arguments. Options that take a value
set their own metavar (``FILE``, ``URL``, ``ZONE``), which Typer prints in
place of the type.

``ctx`` and the parameters are typed ``Any`` because their classes moved
from click into the private ``typer._click`` package in Typer 0.29.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption


class _Argument(TyperArgument):
    """A positional argument listed in help by its name and help text only."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


def _drop_type_labels(params: Iterable[object]) -> None:
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            # Typer prints a metavar in place of the type, so "" prints nothing.
            param.metavar = ""
        elif isinstance(param, TyperArgument) and not isinstance(param, _Argument):
            # Typer builds its own TyperArgument objects and has no hook to
            # choose their class. _Argument adds no state, so the swap only
            # changes how help shows the argument.
            param.__class__ = _Argument


class Command(TyperCommand):
    """A Typer command whose help shows metavars, never type labels."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        _drop_type_labels(params)
        return params


class Group(TyperGroup):
    """A Typer command group whose help shows metavars, never type labels."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        _drop_type_labels(params)
        return params
