"""Turn pydantic validation errors into messages that name the key and the fix."""

from __future__ import annotations

import difflib
import os
import re
import typing
from collections.abc import Collection
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from watchdog.errors import ConfigError

ENV_PREFIX = "WATCHDOG_"
_URL_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def config_error(
    exc: ValidationError,
    path: Path | None,
    model: type[BaseModel],
    overridden: Collection[str] = (),
) -> ConfigError:
    """Build one ConfigError listing every invalid key of ``exc``.

    ``overridden`` lists the dotted keys that the command line set.
    """
    where = f" in {str(path)!r}" if path is not None else ""
    lines = [_line(error, model, overridden) for error in exc.errors()]
    first_key = ".".join(str(part) for part in exc.errors()[0]["loc"])
    count = len(lines)
    header = f"invalid configuration{where}: {count} error{'s' if count > 1 else ''}"
    return ConfigError("\n".join([header, *lines]), key=first_key)


def _line(
    error: ErrorDetails, model: type[BaseModel], overridden: Collection[str]
) -> str:
    loc = [str(part) for part in error["loc"]]
    key = ".".join(loc)
    env = ENV_PREFIX + "__".join(loc).upper()
    if error["type"] == "extra_forbidden":
        return f"  {key}: unknown key{_suggestion(loc, model)}"

    message = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    if isinstance(value, dict):
        # A check across several keys of one table, such as [mailboxes.NAME].
        return f"  [{key}]: {message.replace('<name>', loc[-1].upper())}"
    if key in overridden:
        origin = "from the command line"
    elif env in os.environ:
        origin = f"from {env}"
    else:
        origin = f"set it in the file or {env}"
    return f"  {key}: {message}{_shown_value(key, value)}; {origin}"


def _suggestion(loc: list[str], model: type[BaseModel]) -> str:
    """Suggest the key meant, or the TOML placement mistake that caused it."""
    *parents, name = loc
    fields = _fields_at(model, parents)
    close = difflib.get_close_matches(name, fields, n=1)
    if close:
        return f"; did you mean {'.'.join([*parents, close[0]])!r}?"
    if parents and name in model.model_fields:
        return (
            f"; {name!r} is a top-level key, so it must come before the first "
            "[table] in the file"
        )
    if fields:
        return f"; valid keys here: {', '.join(sorted(fields))}"
    return ""


def _fields_at(model: type[BaseModel], parents: list[str]) -> list[str]:
    current: Any = model
    for part in parents:
        if typing.get_origin(current) is dict:
            # The part is a table name such as mailboxes.NAME: step into it.
            current = typing.get_args(current)[-1]
            continue
        fields = getattr(current, "model_fields", None)
        if fields is None or part not in fields:
            return []
        current = fields[part].annotation
    fields = getattr(current, "model_fields", None)
    return list(fields) if fields else []


def _shown_value(key: str, value: Any) -> str:
    """Return the rejected value for an error message, with secrets masked."""
    if key.endswith("password"):
        return " (value hidden)"
    if isinstance(value, str):
        value = _URL_PASSWORD.sub(r"\1***@", value)
    return f" (got {value!r})"
