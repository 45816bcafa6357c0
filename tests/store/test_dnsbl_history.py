"""Blocklist listing history in the database, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import func, select

from watchdog.checks.dnsbl.answer import State
from watchdog.checks.dnsbl.history import Entry, History
from watchdog.checks.dnsbl.results import ZoneResult
from watchdog.store import Store
from watchdog.store.dnsbl_history import ListingHistory, listing_table

LISTED = Entry(
    State.LISTED,
    first_listed=1_700_000_000.0,
    last_listed=1_700_000_900.0,
    codes=("127.0.0.2", "127.0.0.4 bit 4"),
)
KEY = ("192.0.2.10", "zen.test")


async def test_empty_store_loads_nothing(store: Store) -> None:
    assert await ListingHistory.of(store).load() == {}


async def test_saved_entry_loads_back(store: Store) -> None:
    history = ListingHistory.of(store)
    await history.save([], {KEY: LISTED})

    assert await history.load() == {KEY: LISTED}


async def test_save_updates_row(store: Store) -> None:
    """A second save of the same pair replaces the row instead of adding one."""
    history = ListingHistory.of(store)
    await history.save([], {KEY: LISTED})
    delisted = Entry(
        State.NOT_LISTED,
        first_listed=LISTED.first_listed,
        last_listed=LISTED.last_listed,
        delisted=1_700_001_800.0,
        codes=LISTED.codes,
    )
    await history.save([], {KEY: delisted})
    with store._engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(listing_table)).scalar()

    assert await history.load() == {KEY: delisted}
    assert rows == 1


async def test_save_twice_is_idempotent(store: Store) -> None:
    history = ListingHistory.of(store)
    await history.save([], {KEY: LISTED})
    await history.save([], {KEY: LISTED})

    assert await history.load() == {KEY: LISTED}


async def test_history_survives_reopen(database_url: str) -> None:
    """A new Store on the same database returns what an earlier one saved."""
    first = Store(database_url)
    first.upgrade()
    await ListingHistory.of(first).save([], {KEY: LISTED})
    first.close()
    second = Store(database_url)
    try:
        loaded = await ListingHistory.of(second).load()
    finally:
        second.close()

    assert loaded == {KEY: LISTED}


async def test_restored_history_makes_no_transition(store: Store) -> None:
    """A listing loaded from the database is not reported as new."""
    await ListingHistory.of(store).save([], {KEY: LISTED})
    history = History()
    history.restore(await ListingHistory.of(store).load())
    result = ZoneResult(target=KEY[0], kind="ip4", zone=KEY[1], state=State.LISTED)

    assert history.update(result, 1_700_002_000.0) is None
    assert history.changed()[KEY].first_listed == LISTED.first_listed


async def test_forget_keeps_listed_rows(store: Store) -> None:
    """forget deletes rows that never recorded a listing and keeps the others."""
    history = ListingHistory.of(store)
    clean = ("192.0.2.99", "zen.test")
    await history.save([], {KEY: LISTED, clean: Entry(State.NOT_LISTED)})

    await history.forget([KEY, clean, ("192.0.2.1", "nowhere.test")])

    assert await history.load() == {KEY: LISTED}


async def test_forget_many_keys(store: Store) -> None:
    """More keys than one DELETE takes are all forgotten."""
    history = ListingHistory.of(store)
    keys = [(f"198.18.{n // 250}.{n % 250}", "zen.test") for n in range(1_200)]
    await history.save([], dict.fromkeys(keys, Entry(State.NOT_LISTED)))

    await history.forget(keys)

    assert await history.load() == {}
