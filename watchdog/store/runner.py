"""Where a side table's database calls run: the store thread or inline.

The daemon reads and writes its side tables (blocklist history, MTA-STS
policies) through the ``Store`` thread, so a slow database never blocks
the event loop. A one-shot command has no store thread and nothing else
to keep responsive, so it runs the same calls inline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

# Runs a blocking function with its arguments and returns its result.
Runner = Callable[..., Awaitable[object]]


async def run_inline(
    function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """Call ``function`` on the caller's thread and return its result."""
    return function(*args, **kwargs)
