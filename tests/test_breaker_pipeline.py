"""Attacks on counting in the IMAP pipeline: left mail, UIDVALIDITY, removals.

Each test checks one promise against a real Dovecot and database: every
message is counted once across restarts and configuration changes, and
ends in the folder its outcome names.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator

import pytest

from tests.jobs.mailbox_support import (
    audit,
    drain,
    make_bounces,
    make_rig,
    ordinary_samples,
    settings_for,
    unique,
)
from tests.jobs.test_mailbox import assert_clean
from tests.servers.dovecot import Dovecot, running_dovecot
from tests.servers.faultproxy import Fault, FaultProxy, Mode
from tests.test_breaker_daemon import counted_in, stop_rig
from watchdog.sources.imap.faults import FaultInjected, reset_fault_points

USERS = itertools.count(1)


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    with running_dovecot() as instance:
        yield instance


@pytest.mark.dovecot
async def test_left_mail_moved_after_leave_off(
    dovecot: Dovecot, database_url: str
) -> None:
    """Mail left under ``leave`` moves, counted once, once ``move`` is set."""
    user = f"pipeleaveoff{next(USERS)}"
    dovecot.add_user(user)
    ordinary = [unique(raw, f"{user}-{n}") for n, raw in enumerate(ordinary_samples())]
    for raw in ordinary:
        dovecot.append(user, raw)

    leaving = make_rig(settings_for(dovecot, user, unrecognised="leave"), database_url)
    await drain(leaving)
    await stop_rig(leaving)
    moving = make_rig(settings_for(dovecot, user, unrecognised="move"), database_url)
    await drain(moving)
    await stop_rig(moving)

    report = audit(dovecot, user, ordinary, database_url)
    assert report.where["INBOX"] == 0
    assert report.where["Processed"] == len(ordinary)
    assert counted_in(leaving.metrics) == len(ordinary)
    assert counted_in(moving.metrics) == 0


@pytest.mark.dovecot
async def test_left_mail_uidvalidity_change(
    dovecot: Dovecot, database_url: str
) -> None:
    """Mail left in place is not counted again after UIDVALIDITY changes."""
    user = f"pipeleftuv{next(USERS)}"
    dovecot.add_user(user)
    ordinary = [unique(raw, f"{user}-{n}") for n, raw in enumerate(ordinary_samples())]
    for raw in ordinary:
        dovecot.append(user, raw)
    settings = settings_for(dovecot, user, unrecognised="leave")

    first = make_rig(settings, database_url)
    await drain(first)
    await stop_rig(first)
    dovecot.reset_uidvalidity(user)
    second = make_rig(settings, database_url)
    summaries = await drain(second)
    await stop_rig(second)

    assert summaries[0].uidvalidity_changed
    assert counted_in(first.metrics) == len(ordinary)
    assert counted_in(second.metrics) == 0


@pytest.mark.dovecot
async def test_lost_move_two_uidvalidity_changes(
    dovecot: Dovecot, database_url: str
) -> None:
    """A lost MOVE, a change, a pass cut short, a second change: each counts once.

    The first batch is moved but its reply is lost. After the first change
    a pass records the next batch and fails before moving it. After the
    second change the whole folder is read again.
    """
    user = f"piptwouv{next(USERS)}"
    dovecot.add_user(user)
    raws = make_bounces(10, user)
    for raw in raws:
        dovecot.append(user, raw)
    proxy = FaultProxy(dovecot.imap_port)
    proxy.start()
    rigs = []
    try:
        settings = settings_for(
            dovecot, user, port=proxy.port, tls="none", batch_size=4
        )
        lost = make_rig(settings, database_url)
        rigs.append(lost)
        proxy.set_fault(Fault(Mode.RST, trigger=b"[COPYUID"))
        await lost.worker.poll()
        await stop_rig(lost)
        proxy.set_fault(Fault(Mode.PASS))
        await asyncio.to_thread(dovecot.reset_uidvalidity, user)

        cut = make_rig(settings, database_url)
        rigs.append(cut)
        reset_fault_points()
        os.environ["WATCHDOG_TEST_FAULT"] = "after_commit:raise"
        try:
            with pytest.raises(FaultInjected):
                await cut.worker.poll()
        finally:
            del os.environ["WATCHDOG_TEST_FAULT"]
        await stop_rig(cut)
        await asyncio.to_thread(dovecot.reset_uidvalidity, user)

        last = make_rig(settings, database_url)
        rigs.append(last)
        summaries = await drain(last)
        await stop_rig(last)
    finally:
        proxy.stop()

    assert summaries[0].uidvalidity_changed
    assert dovecot.uids(user) == []
    assert_clean(audit(dovecot, user, raws, database_url), 10)
    assert sum(counted_in(rig.metrics) for rig in rigs) == 10
