"""History records listings, delistings, and ignores unknown answers."""

from __future__ import annotations

from watchdog.checks.dnsbl.answer import State
from watchdog.checks.dnsbl.history import History
from watchdog.checks.dnsbl.results import ZoneResult


def _result(state: State) -> ZoneResult:
    return ZoneResult(target="192.0.2.10", kind="ip4", zone="zen.test", state=state)


def test_first_clean_is_silent() -> None:
    assert History().update(_result(State.NOT_LISTED), 1.0) is None


def test_first_listing_is_transition() -> None:
    transition = History().update(_result(State.LISTED), 1.0)
    assert transition is not None
    assert transition.old is None
    assert transition.new is State.LISTED


def test_listing_then_delisting() -> None:
    history = History()
    history.update(_result(State.NOT_LISTED), 1.0)
    listed = history.update(_result(State.LISTED), 2.0)
    history.update(_result(State.LISTED), 3.0)
    delisted = history.update(_result(State.NOT_LISTED), 4.0)
    entry = history.get("192.0.2.10", "zen.test")
    assert listed is not None
    assert listed.old is State.NOT_LISTED
    assert delisted is not None
    assert delisted.new is State.NOT_LISTED
    assert entry is not None
    assert entry.first_listed == 2.0
    assert entry.last_listed == 3.0
    assert entry.delisted == 4.0


def test_errors_keep_last_state() -> None:
    history = History()
    history.update(_result(State.LISTED), 1.0)
    for state in (
        State.DNS_ERROR,
        State.BOGUS,
        State.OPERATOR_ERROR,
        State.ZONE_UNHEALTHY,
    ):
        assert history.update(_result(state), 2.0) is None
    entry = history.get("192.0.2.10", "zen.test")
    assert entry is not None
    assert entry.state is State.LISTED
    assert entry.last_listed == 1.0


def test_relisting_resets_first_listed() -> None:
    history = History()
    history.update(_result(State.LISTED), 1.0)
    history.update(_result(State.NOT_LISTED), 2.0)
    history.update(_result(State.LISTED), 3.0)
    entry = history.get("192.0.2.10", "zen.test")
    assert entry is not None
    assert entry.first_listed == 3.0


def _pair_result(target: str, state: State) -> ZoneResult:
    return ZoneResult(target=target, kind="ip4", zone="zen.test", state=state)


def test_retain_forgets_unchecked_pairs() -> None:
    history = History()
    history.update(_pair_result("192.0.2.1", State.LISTED), 1.0)
    history.update(_pair_result("192.0.2.2", State.NOT_LISTED), 1.0)
    history.mark_saved()

    forgotten = history.retain([("192.0.2.1", "zen.test")])

    assert forgotten == [("192.0.2.2", "zen.test")]
    assert len(history) == 1
    assert history.get("192.0.2.2", "zen.test") is None
    assert history.get("192.0.2.1", "zen.test") is not None


def test_retain_keeps_unsaved_entries() -> None:
    """An entry whose save failed stays until a save writes it."""
    history = History()
    history.update(_pair_result("192.0.2.2", State.LISTED), 1.0)

    assert history.retain([]) == []
    assert set(history.changed()) == {("192.0.2.2", "zen.test")}


def test_retain_keeps_listing_records() -> None:
    """An unchecked entry that records a listing stays, as its row does."""
    history = History()
    history.update(_pair_result("192.0.2.3", State.LISTED), 1.0)
    history.update(_pair_result("192.0.2.3", State.NOT_LISTED), 2.0)
    history.mark_saved()

    assert history.retain([]) == []
    entry = history.get("192.0.2.3", "zen.test")
    assert entry is not None
    assert entry.first_listed == 1.0
