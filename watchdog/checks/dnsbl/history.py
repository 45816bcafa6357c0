"""History of listings: when a target was first and last seen listed, delisted.

Only ``listed`` and ``not_listed`` are known states. Errors, bogus answers and
unhealthy zones leave the last known state in place, so a DNS failure never
reads as a delisting or a new listing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from watchdog.checks.dnsbl.answer import KNOWN_STATES, State
from watchdog.checks.dnsbl.results import ZoneResult


@dataclass(frozen=True)
class Entry:
    """The last known state of one target in one zone, with its times (Unix).

    ``codes`` are the return codes of the last listing, kept after a
    delisting.
    """

    state: State
    first_listed: float | None = None
    last_listed: float | None = None
    delisted: float | None = None
    codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Transition:
    """A change of known state: a new listing or a delisting."""

    target: str
    zone: str
    old: State | None
    new: State
    at: float
    codes: tuple[str, ...]


class History:
    """Known states per (target, zone), updated from each cycle's results."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], Entry] = {}
        self._changed: set[tuple[str, str]] = set()

    def restore(self, entries: Mapping[tuple[str, str], Entry]) -> None:
        """Load entries saved by an earlier process, replacing those held."""
        self._entries.update(entries)
        self._changed.difference_update(entries)

    def changed(self) -> dict[tuple[str, str], Entry]:
        """Return the entries changed since the last ``mark_saved``."""
        return {key: self._entries[key] for key in self._changed}

    def mark_saved(self) -> None:
        """Record that every changed entry has been persisted."""
        self._changed.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def retain(self, checked: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Forget the saved entries of pairs not in ``checked`` and return their keys.

        A target that left the settings (a learned link domain that expired)
        would otherwise keep its entries in memory for the life of the
        process. Entries not yet saved stay, so the next save still writes
        them. Entries that record a listing stay too, as their rows stay in
        the store: a target that returns is then compared with its last
        known state, as it is after a restart. Any other pair checked again
        later starts from a new baseline.
        """
        keep = set(checked) | self._changed
        unchecked = [
            key
            for key, entry in self._entries.items()
            if key not in keep and entry.first_listed is None
        ]
        for key in unchecked:
            del self._entries[key]
        return unchecked

    def get(self, target: str, zone: str) -> Entry | None:
        """Return the entry of ``target`` in ``zone``, or None before any."""
        return self._entries.get((target, zone))

    def update(self, result: ZoneResult, now: float) -> Transition | None:
        """Record one result and return the transition it makes, or None.

        The first known state of a pair is a silent baseline unless it is
        a listing. Results in unknown states change nothing.
        """
        if result.state not in KNOWN_STATES:
            return None
        key = (result.target, result.zone)
        old = self._entries.get(key)
        if (
            old is not None
            and old.state is State.NOT_LISTED
            and result.state is State.NOT_LISTED
        ):
            return None  # the common case: nothing changed
        codes = tuple(code.address for code in result.codes)
        entry = self._next_entry(old, result.state, now, codes)
        self._entries[key] = entry
        if entry != old:
            self._changed.add(key)

        old_state = old.state if old is not None else None
        if old_state == result.state:
            return None
        if old_state is None and result.state is State.NOT_LISTED:
            return None
        return Transition(
            result.target, result.zone, old_state, result.state, now, codes
        )

    @staticmethod
    def _next_entry(
        old: Entry | None, state: State, now: float, codes: tuple[str, ...]
    ) -> Entry:
        if old is None:
            old = Entry(state=state)
        if state is State.LISTED:
            first = old.first_listed
            if old.state is not State.LISTED or first is None:
                first = now
            return replace(
                old, state=state, first_listed=first, last_listed=now, codes=codes
            )
        delisted = now if old.state is State.LISTED else old.delisted
        return replace(old, state=state, delisted=delisted)
