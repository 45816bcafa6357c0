"""Tables of the store's database that other parts of the daemon keep.

The blocklist history and the MTA-STS policies live in the store's
database but are read and written by the checks. In the daemon their
calls run on the ``Store`` thread, so a slow database does not block the
event loop; only an in-memory SQLite database, as tests use, runs them
inline there. A one-shot command has no store thread and nothing else to
keep responsive, so it runs the same calls inline too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, ParamSpec, Self, TypeVar

from sqlalchemy import Engine

if TYPE_CHECKING:
    from watchdog.store.store import Store

P = ParamSpec("P")
T = TypeVar("T")

# Runs a blocking function with its arguments and returns its result.
Runner = Callable[..., Awaitable[object]]


async def run_inline(
    function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """Call ``function`` on the caller's thread and return its result."""
    return function(*args, **kwargs)


class SideTable:
    """Access to one such table through ``engine``.

    ``runner`` runs each blocking database call: the store thread when
    built with ``of``, else inline on the caller's thread.
    """

    def __init__(self, engine: Engine, runner: Runner = run_inline) -> None:
        self.engine = engine
        self.runner = runner

    @classmethod
    def of(cls, store: Store) -> Self:
        """Return the table kept in ``store``'s database, used on its thread."""
        # The Store exposes no public engine; its tables share this one.
        return cls(store._engine, store.call)
