"""The mailbox worker against a private Dovecot, on SQLite and PostgreSQL.

Every fault case ends with the same check, computed from the mailbox and
the database: each message sits in exactly one of INBOX, Processed and
Quarantine, has exactly one message row, and no recipient of a message is
counted twice.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, select
from structlog.testing import capture_logs

from tests.jobs.mailbox_support import (
    InProcessClassifier,
    Rig,
    audit,
    drain,
    mailbox_entry,
    make_bounces,
    make_rig,
    ordinary_samples,
    settings_for,
    unique,
)
from tests.servers import postgres
from tests.servers.dovecot import Dovecot, running_dovecot
from tests.servers.faultproxy import Fault, FaultProxy, Mode
from watchdog.classify.verdict import Verdict
from watchdog.config import Limits
from watchdog.jobs.mailbox import CycleState
from watchdog.pipeline import ClassifyFailed, Outcome
from watchdog.sources.imap.cycle import FolderPlan, oversize_digest
from watchdog.sources.imap.faults import reset_fault_points
from watchdog.store.engine import database_url as sqlalchemy_url
from watchdog.store.models import event_table

pytestmark = pytest.mark.dovecot

ROOT = Path(__file__).resolve().parents[2]
_USERS = itertools.count(1)


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    """A private Dovecot for this module; each test makes its own user."""
    with running_dovecot() as instance:
        yield instance


@pytest.fixture
def user(dovecot: Dovecot) -> str:
    """A fresh IMAP user with an empty INBOX."""
    name = f"job{next(_USERS)}"
    dovecot.add_user(name)
    return name


def fill(dovecot: Dovecot, user: str, raws: list[bytes]) -> None:
    for raw in raws:
        dovecot.append(user, raw)


def assert_clean(report: object, total: int) -> None:
    """Assert the invariants on an audit of ``total`` messages."""
    assert report.lost == 0  # type: ignore[attr-defined]
    assert report.in_several_folders == 0  # type: ignore[attr-defined]
    assert report.rows_missing == 0  # type: ignore[attr-defined]
    assert report.rows_duplicated == 0  # type: ignore[attr-defined]
    assert report.events_double_counted == 0  # type: ignore[attr-defined]
    assert sum(report.where.values()) == total  # type: ignore[attr-defined]


async def test_drain_corpus(dovecot: Dovecot, user: str, database_url: str) -> None:
    """Corpus bounces are processed once and moved; folders are created."""
    raws = make_bounces(30, user)
    fill(dovecot, user, raws)
    rig = make_rig(settings_for(dovecot, user, batch_size=7), database_url)

    summaries = await drain(rig)
    reused = rig.worker.connected
    await rig.worker.close()

    assert reused
    assert summaries[0].state is CycleState.DONE
    assert summaries[0].messages == 30
    assert summaries[-1].messages == 0
    report = audit(dovecot, user, raws, database_url)
    assert_clean(report, 30)
    assert report.where["INBOX"] == 0
    assert report.where["Processed"] + report.where["Quarantine"] == 30
    counted = rig.metrics.registry.get_sample_value(
        "mailwatchdog_mailbox_messages_total",
        {"mailbox": "bounces", "kind": "bounce", "outcome": "processed"},
    )
    assert counted is not None
    assert counted > 0


async def test_duplicate_counted_once(
    dovecot: Dovecot, user: str, database_url: str
) -> None:
    """The same bounce delivered twice has one row and its events once."""
    raw = make_bounces(1, user)[0]
    fill(dovecot, user, [raw, raw])
    rig = make_rig(settings_for(dovecot, user), database_url)

    summaries = await drain(rig)
    await rig.worker.close()

    assert summaries[0].outcomes.get("duplicate") == 1
    assert len(dovecot.uids(user, "Processed")) == 2
    report = audit(dovecot, user, [raw], database_url)
    assert report.rows_duplicated == 0
    assert report.events_double_counted == 0
    assert report.where["INBOX"] == 0


async def test_leave_unrecognised(
    dovecot: Dovecot, user: str, database_url: str
) -> None:
    """With unrecognised = leave, ordinary mail stays with its flags."""
    people = [
        b"From: alice@example.org\r\nTo: bounces@example.com\r\n"
        b"Subject: lunch?\r\n\r\nAre you free at noon?\r\n",
        b"From: bob@example.org\r\nTo: bounces@example.com\r\n"
        b"Subject: invoice 42\r\n\r\nPlease find it attached.\r\n",
    ]
    ordinary = [
        unique(raw, f"{user}-o{n}")
        for n, raw in enumerate([*ordinary_samples(), *people])
    ][:4]
    bounces = make_bounces(3, user)
    fill(dovecot, user, ordinary + bounces)
    with dovecot.client(user) as conn:
        conn.select("INBOX")
        conn.uid("STORE", "1", "+FLAGS", r"(\Seen)")
    flags_before = dovecot.flags(user)
    rig = make_rig(settings_for(dovecot, user, unrecognised="leave"), database_url)

    first = await rig.worker.poll()
    second = await rig.worker.poll()
    await rig.worker.close()

    assert first.messages == 7
    assert second.messages == 0
    flags_after = dovecot.flags(user)
    assert sorted(flags_after) == [1, 2, 3, 4]
    for uid in flags_after:
        assert flags_after[uid] == flags_before[uid]
    report = audit(dovecot, user, ordinary + bounces, database_url)
    assert_clean(report, 7)
    assert report.where["INBOX"] == 4


async def test_missing_folders_created(
    dovecot: Dovecot, user: str, database_url: str
) -> None:
    """Processed and quarantine folders with non-ASCII names are created."""
    fill(dovecot, user, make_bounces(2, user))
    settings = settings_for(
        dovecot, user, processed_folder="Erledigt", quarantine_folder="Quarantäne"
    )
    rig = make_rig(settings, database_url)

    summary = await rig.worker.poll()
    await rig.worker.close()

    assert summary.state is CycleState.DONE
    assert (
        len(dovecot.uids(user, "Erledigt")) + len(dovecot.uids(user, "Quarant&AOQ-ne"))
        == 2
    )
    assert dovecot.uids(user) == []


async def test_source_missing(dovecot: Dovecot, user: str, database_url: str) -> None:
    """A missing source folder fails the poll and touches nothing."""
    raws = make_bounces(2, user)
    fill(dovecot, user, raws)
    rig = make_rig(settings_for(dovecot, user, folder="Nowhere"), database_url)

    summary = await rig.worker.poll()

    assert summary.state is CycleState.FAILED
    assert "'Nowhere'" in (summary.error or "")
    assert len(dovecot.uids(user)) == 2
    assert rig.worker.backoff.failures == 1


async def test_wrong_password(dovecot: Dovecot, user: str, database_url: str) -> None:
    """A rejected login fails once, backs off, logs once and moves nothing."""
    fill(dovecot, user, make_bounces(2, user))
    settings = settings_for(dovecot, user, password="not-the-password")
    rig = make_rig(settings, database_url)

    with capture_logs() as logs:
        first = await rig.worker.poll()
        later = [await rig.worker.poll() for _ in range(5)]

    assert first.state is CycleState.FAILED
    assert "rejected" in (first.error or "")
    assert {summary.state for summary in later} == {CycleState.BACKOFF}
    assert rig.worker.backoff.remaining() > 50
    failures = [entry for entry in logs if entry["event"] == "poll_failed"]
    assert len(failures) == 1
    assert "not-the-password" not in json.dumps(logs, default=str)
    auth = rig.metrics.registry.get_sample_value(
        "mailwatchdog_imap_auth_failures_total", {"mailbox": "bounces"}
    )
    assert auth == 1.0
    assert len(dovecot.uids(user)) == 2
    assert dovecot.uids(user, "Processed") == []


async def test_oversize_quarantined(
    dovecot: Dovecot, user: str, database_url: str
) -> None:
    """A 20 MB message goes to quarantine unfetched, keyed by its location."""
    big = unique(b"Subject: big\r\n\r\n" + b"x" * 78 + b"\r\n", user) * 1
    big = big + (b"y" * 78 + b"\r\n") * 260_000
    fill(dovecot, user, [big])
    rig = make_rig(settings_for(dovecot, user), database_url)

    summary = await rig.worker.poll()
    await rig.worker.close()

    assert summary.outcomes == {"quarantined": 1}
    assert dovecot.uids(user) == []
    assert len(dovecot.uids(user, "Quarantine")) == 1
    start = rig.store.uidvalidity("bounces", "INBOX")
    assert start is not None
    plan = FolderPlan("bounces", "INBOX", "Processed", "Quarantine", 100, 1, False)
    assert rig.store.is_recorded(oversize_digest(plan, start, 1))


async def test_parser_breaker(dovecot: Dovecot, user: str, database_url: str) -> None:
    """2,000 nested multiparts are handled once and nothing else is held up."""
    nested = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (n, n)
        for n in range(2000)
    )
    breaker = unique(b"Subject: nested\r\nMIME-Version: 1.0\r\n" + nested, user)
    raws = [breaker, *make_bounces(3, user)]
    fill(dovecot, user, raws)
    rig = make_rig(settings_for(dovecot, user), database_url)

    await drain(rig)
    await rig.worker.close()

    assert_clean(audit(dovecot, user, raws, database_url), 4)
    assert dovecot.uids(user) == []


class FlakyClassifier:
    """Fail every message whose bytes contain ``marker``, like a worker kill."""

    def __init__(self, limits: Limits, marker: bytes) -> None:
        self._inner = InProcessClassifier(limits)
        self._marker = marker

    async def __call__(self, raw: bytes) -> Verdict:
        if self._marker in raw:
            raise ClassifyFailed("worker killed at its CPU limit", reason="cpu")
        return await self._inner(raw)


async def test_failed_then_quarantined(
    dovecot: Dovecot, user: str, database_url: str
) -> None:
    """A message that fails stays in INBOX until its attempts run out."""
    raws = make_bounces(3, user)
    fill(dovecot, user, raws)
    settings = settings_for(dovecot, user)
    marker = f"{user}-1".encode()
    rig = make_rig(
        settings, database_url, classifier=FlakyClassifier(settings.limits, marker)
    )

    first = await rig.worker.poll()
    second = await rig.worker.poll()
    third = await rig.worker.poll()
    await rig.worker.close()

    assert first.outcomes.get("failed") == 1
    assert second.outcomes == {"failed": 1}
    assert third.outcomes == {"quarantined": 1}
    report = audit(dovecot, user, raws, database_url)
    assert_clean(report, 3)
    assert report.where["Quarantine"] >= 1


def counted(rig: Rig, outcome: str) -> float:
    """Return ``mailwatchdog_mailbox_messages_total`` of ``outcome``, any kind."""
    total = 0.0
    for family in rig.metrics.registry.collect():
        for sample in family.samples:
            if (
                sample.name == "mailwatchdog_mailbox_messages_total"
                and sample.labels["outcome"] == outcome
            ):
                total += sample.value
    return total


async def test_failed_counted_once(
    dovecot: Dovecot, user: str, database_url: str
) -> None:
    """A message that fails until quarantined is counted once, as quarantined."""
    raws = make_bounces(3, user)
    fill(dovecot, user, raws)
    settings = settings_for(dovecot, user)
    marker = f"{user}-1".encode()
    rig = make_rig(
        settings, database_url, classifier=FlakyClassifier(settings.limits, marker)
    )

    for _ in range(settings.policy.max_attempts + 1):
        await rig.worker.poll()
    await rig.worker.close()

    assert counted(rig, "failed") == 0
    assert counted(rig, "quarantined") == 1
    assert counted(rig, "processed") + counted(rig, "unverified") == 2
    assert dovecot.uids(user) == []


async def test_lost_move_then_uidvalidity_change(
    dovecot: Dovecot, user: str, database_url: str
) -> None:
    """A batch moved just before the connection dropped is counted once.

    UIDVALIDITY changes before the next pass, so the UIDs stored for the
    batch no longer name its messages.
    """
    raws = make_bounces(4, user)
    fill(dovecot, user, raws)
    proxy = FaultProxy(dovecot.imap_port)
    proxy.start()
    try:
        # Plaintext, so the proxy can see the MOVE reply.
        settings = settings_for(dovecot, user, port=proxy.port, tls="none")
        first = make_rig(settings, database_url)
        proxy.set_fault(Fault(Mode.RST, trigger=b"[COPYUID"))
        lost = await first.worker.poll()
        await first.worker.close()
        proxy.set_fault(Fault(Mode.PASS))
        await asyncio.to_thread(dovecot.reset_uidvalidity, user)
        restarted = make_rig(settings, database_url)
        summaries = await drain(restarted)
        await restarted.worker.close()
    finally:
        proxy.stop()

    total = sum(
        counted(rig, outcome.value) for rig in (first, restarted) for outcome in Outcome
    )
    assert lost.state is CycleState.FAILED
    assert summaries[0].uidvalidity_changed
    assert dovecot.uids(user) == []
    assert_clean(audit(dovecot, user, raws, database_url), 4)
    assert total == 4


@pytest.mark.parametrize("fault", ["rst", "after_commit"])
async def test_oversize_uidvalidity_change(
    dovecot: Dovecot, user: str, database_url: str, fault: str
) -> None:
    """Oversized messages recorded before UIDVALIDITY changed count once.

    Their key is where they were found, so it changes with UIDVALIDITY. With
    ``rst`` the server moved them but the reply was lost; with
    ``after_commit`` the MOVE never ran and they are still in INBOX.
    """
    raws = make_bounces(3, user)
    fill(dovecot, user, raws)
    proxy = FaultProxy(dovecot.imap_port)
    proxy.start()
    try:
        settings = settings_for(
            dovecot, user, port=proxy.port, tls="none", max_message_bytes=100
        )
        first = make_rig(settings, database_url)
        reset_fault_points()
        if fault == "rst":
            proxy.set_fault(Fault(Mode.RST, trigger=b"[COPYUID"))
            await first.worker.poll()
        else:
            os.environ["WATCHDOG_TEST_FAULT"] = "after_commit:raise"
            try:
                with pytest.raises(RuntimeError, match="after_commit"):
                    await first.worker.poll()
            finally:
                del os.environ["WATCHDOG_TEST_FAULT"]
        await first.worker.close()
        proxy.set_fault(Fault(Mode.PASS))
        await asyncio.to_thread(dovecot.reset_uidvalidity, user)
        restarted = make_rig(settings, database_url)
        await drain(restarted)
        await restarted.worker.close()
    finally:
        proxy.stop()

    total = sum(
        counted(rig, outcome.value) for rig in (first, restarted) for outcome in Outcome
    )
    assert dovecot.uids(user) == []
    assert len(dovecot.uids(user, "Quarantine")) == 3
    assert restarted.store.stats().messages == {"quarantined": 3}
    assert counted(restarted, "quarantined") + counted(first, "quarantined") == 3
    assert total == 3


async def test_uidvalidity_change(
    dovecot: Dovecot, user: str, database_url: str
) -> None:
    """After UIDVALIDITY changes the folder is rescanned, counting nothing twice."""
    raws = make_bounces(6, user)
    fill(dovecot, user, raws)
    reset_fault_points()
    os.environ["WATCHDOG_TEST_FAULT"] = "after_commit:raise"
    rig = make_rig(settings_for(dovecot, user, batch_size=3), database_url)
    try:
        with pytest.raises(RuntimeError, match="after_commit"):
            await rig.worker.poll()
    finally:
        del os.environ["WATCHDOG_TEST_FAULT"]
    await rig.worker.close()
    await asyncio.to_thread(dovecot.reset_uidvalidity, user)

    rig = make_rig(settings_for(dovecot, user, batch_size=3), database_url)
    summaries = await drain(rig)
    await rig.worker.close()

    assert summaries[0].uidvalidity_changed
    assert summaries[0].outcomes.get("duplicate") == 3
    changes = rig.metrics.registry.get_sample_value(
        "mailwatchdog_imap_uidvalidity_changes_total", {"mailbox": "bounces"}
    )
    assert changes == 1.0
    assert_clean(audit(dovecot, user, raws, database_url), 6)


async def test_leave_after_crash(
    dovecot: Dovecot, user: str, database_url: str
) -> None:
    """After a crash between commit and move, leave applies to first outcomes.

    Committed bounces then move to Processed. Committed ordinary mail
    stays in INBOX and is not fetched again, because its UIDs were stored
    as left in the same transaction.
    """
    ordinary = [unique(raw, f"{user}-o{n}") for n, raw in enumerate(ordinary_samples())]
    bounces = make_bounces(3, user)
    fill(dovecot, user, ordinary[:2] + bounces)
    settings = settings_for(dovecot, user, unrecognised="leave")
    reset_fault_points()
    os.environ["WATCHDOG_TEST_FAULT"] = "after_commit:raise"
    rig = make_rig(settings, database_url)
    try:
        with pytest.raises(RuntimeError, match="after_commit"):
            await rig.worker.poll()
    finally:
        del os.environ["WATCHDOG_TEST_FAULT"]
    await rig.worker.close()

    rig = make_rig(settings, database_url)
    summary = await rig.worker.poll()
    await rig.worker.close()

    assert summary.outcomes == {"duplicate": 3}
    assert dovecot.uids(user) == [1, 2]
    report = audit(dovecot, user, ordinary[:2] + bounces, database_url)
    assert_clean(report, 5)
    assert report.where["Processed"] == 3


async def test_duplicate_of_quarantined(
    dovecot: Dovecot, user: str, database_url: str
) -> None:
    """A copy of a quarantined message follows it to Quarantine."""
    nested = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (n, n)
        for n in range(100)
    )
    raw = unique(b"Subject: nested\r\nMIME-Version: 1.0\r\n" + nested, user)
    fill(dovecot, user, [raw, raw])
    rig = make_rig(settings_for(dovecot, user), database_url)

    summary = await rig.worker.poll()
    await rig.worker.close()

    assert summary.outcomes == {"quarantined": 1, "duplicate": 1}
    assert len(dovecot.uids(user, "Quarantine")) == 2


class SlowClassifier(InProcessClassifier):
    """Take ``delay`` seconds per message so a fault lands mid-batch."""

    def __init__(self, limits: Limits, delay: float) -> None:
        super().__init__(limits)
        self._delay = delay

    async def __call__(self, raw: bytes) -> Verdict:
        await asyncio.sleep(self._delay)
        return await super().__call__(raw)


async def test_dovecot_restart(dovecot: Dovecot, user: str, database_url: str) -> None:
    """Dovecot restarted mid-batch: the poll fails fast, the next one finishes."""
    raws = make_bounces(40, user)
    fill(dovecot, user, raws)
    settings = settings_for(dovecot, user, batch_size=20)
    rig = make_rig(
        settings, database_url, classifier=SlowClassifier(settings.limits, 0.1)
    )

    running = asyncio.create_task(rig.worker.poll())
    await asyncio.sleep(0.3)
    await asyncio.to_thread(dovecot.restart)
    interrupted = await asyncio.wait_for(running, 30)
    summaries = await drain(rig)
    await rig.worker.close()

    assert interrupted.state is CycleState.FAILED
    assert summaries[-1].state is CycleState.DONE
    assert_clean(audit(dovecot, user, raws, database_url), 40)
    assert dovecot.uids(user) == []


@pytest.mark.parametrize(
    "mode", [Mode.BLACKHOLE, Mode.CUT, Mode.RST, Mode.HALF_CLOSE], ids=str
)
async def test_network_fault_mid_fetch(
    dovecot: Dovecot, user: str, database_url: str, mode: Mode
) -> None:
    """A stall, FIN, RST or half-close mid-FETCH fails the poll; a retry finishes."""
    raws = make_bounces(5, user)
    fill(dovecot, user, raws)
    proxy = FaultProxy(dovecot.imap_port)
    proxy.start()
    try:
        # Plaintext, so the proxy can see where the FETCH response starts.
        settings = settings_for(
            dovecot,
            user,
            port=proxy.port,
            tls="none",
            timeout_seconds=2.0,
            cycle_timeout_seconds=3.0,
        )
        rig = make_rig(settings, database_url)
        proxy.set_fault(Fault(mode, trigger=b"BODY[] {"))
        interrupted = await rig.worker.poll()
        proxy.set_fault(Fault(Mode.PASS))
        summaries = await drain(rig)
        await rig.worker.close()
    finally:
        proxy.stop()

    assert interrupted.state is CycleState.FAILED
    assert interrupted.seconds < 4.0
    reasons = {
        reason: rig.metrics.registry.get_sample_value(
            "mailwatchdog_imap_reconnects_total",
            {"mailbox": "bounces", "reason": reason},
        )
        for reason in ("timeout", "lost", "error")
    }
    assert sum(count or 0 for count in reasons.values()) == 1
    if mode is Mode.BLACKHOLE:
        assert reasons["timeout"] == 1.0
    assert proxy.connections >= 2
    assert summaries[-1].state is CycleState.DONE
    assert_clean(audit(dovecot, user, raws, database_url), 5)


async def test_concurrent_classify(
    dovecot: Dovecot, user: str, database_url: str
) -> None:
    """Eight messages classified at once still count each exactly once."""
    raws = make_bounces(40, user)
    raws.append(raws[0])  # the same bytes twice within one batch
    fill(dovecot, user, raws)
    settings = settings_for(dovecot, user, batch_size=50)
    rig = make_rig(
        settings,
        database_url,
        classifier=SlowClassifier(settings.limits, 0.05),
        concurrency=8,
    )

    began = asyncio.get_running_loop().time()
    summary = await rig.worker.poll()
    seconds = asyncio.get_running_loop().time() - began
    await rig.worker.close()

    assert summary.messages == 41
    assert summary.outcomes.get("duplicate") == 1
    assert seconds < 41 * 0.05
    report = audit(dovecot, user, raws[1:40], database_url)
    assert_clean(report, 39)
    assert len(dovecot.uids(user, "Processed")) == 41
    assert dovecot.uids(user) == []


async def test_stop_mid_batch(dovecot: Dovecot, user: str, database_url: str) -> None:
    """A stop request ends the cycle after the current message is moved."""
    raws = make_bounces(30, user)
    fill(dovecot, user, raws)
    settings = settings_for(dovecot, user, batch_size=30)
    rig = make_rig(
        settings, database_url, classifier=SlowClassifier(settings.limits, 0.05)
    )

    running = asyncio.create_task(rig.worker.poll())
    await asyncio.sleep(0.6)
    rig.stop.set()
    stopped = await asyncio.wait_for(running, 30)

    assert stopped.state is CycleState.STOPPED
    assert not rig.worker.connected
    assert 0 < stopped.messages < 30
    assert len(dovecot.uids(user)) == 30 - stopped.messages
    report = audit(dovecot, user, raws, database_url)
    assert report.lost == 0
    assert report.in_several_folders == 0
    assert report.rows_duplicated == 0


async def test_consumer_lock_held(
    dovecot: Dovecot, user: str, database_url: str
) -> None:
    """A poll is skipped while another consumer holds the folder's lock."""
    fill(dovecot, user, make_bounces(1, user))
    rig = make_rig(settings_for(dovecot, user), database_url)
    other = make_rig(settings_for(dovecot, user), database_url)

    with other.store.consumer_lock("bounces", "INBOX") as won:
        assert won
        summary = await rig.worker.poll()

    assert summary.state is CycleState.LOCKED
    assert len(dovecot.uids(user)) == 1


async def test_idle_wakes(dovecot: Dovecot, user: str, database_url: str) -> None:
    """The IDLE watcher calls wake soon after new mail arrives."""
    woken = asyncio.Event()
    rig = make_rig(settings_for(dovecot, user), database_url, wake=woken.set)
    watcher = asyncio.create_task(rig.worker.watch())
    await asyncio.sleep(0.5)

    await asyncio.to_thread(fill, dovecot, user, make_bounces(1, user))
    await asyncio.wait_for(woken.wait(), 10)
    rig.stop.set()
    await asyncio.wait_for(watcher, 10)

    assert woken.is_set()


@pytest.mark.slow
@pytest.mark.parametrize(
    "point", ["after_fetch", "mid_batch", "after_commit", "after_move"]
)
def test_sigkill_mid_batch(
    dovecot: Dovecot, user: str, database_url: str, point: str
) -> None:
    """The process killed with SIGKILL at each step loses and doubles nothing."""
    raws = make_bounces(25, user)
    fill(dovecot, user, raws)
    entry = json.dumps(mailbox_entry(dovecot, user, batch_size=10))
    command = [sys.executable, "-m", "tests.jobs.mailbox_child", entry, database_url]

    killed = subprocess.run(
        command,
        check=False,
        cwd=ROOT,
        env={**os.environ, "WATCHDOG_TEST_FAULT": f"{point}:kill"},
        capture_output=True,
        timeout=120,
    )
    resumed = subprocess.run(
        command, check=False, cwd=ROOT, capture_output=True, timeout=120
    )

    assert killed.returncode == -9
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    report = audit(dovecot, user, raws, database_url)
    assert_clean(report, 25)
    assert report.where["INBOX"] == 0


@pytest.mark.slow
def test_sigterm_child(dovecot: Dovecot, user: str, database_url: str) -> None:
    """SIGTERM at a step ends the child cleanly; a rerun finishes the folder."""
    raws = make_bounces(25, user)
    fill(dovecot, user, raws)
    entry = json.dumps(mailbox_entry(dovecot, user, batch_size=10))
    command = [sys.executable, "-m", "tests.jobs.mailbox_child", entry, database_url]

    stopped = subprocess.run(
        command,
        check=False,
        cwd=ROOT,
        env={**os.environ, "WATCHDOG_TEST_FAULT": "mid_batch:term"},
        capture_output=True,
        timeout=120,
    )
    resumed = subprocess.run(
        command, check=False, cwd=ROOT, capture_output=True, timeout=120
    )

    assert stopped.returncode == 0, stopped.stderr.decode()[-2000:]
    assert b'"stopped"' in stopped.stdout
    assert resumed.returncode == 0
    assert_clean(audit(dovecot, user, raws, database_url), 25)


async def test_idle_wakes_on_waiting(
    dovecot: Dovecot, user: str, database_url: str
) -> None:
    """Mail already waiting when the watcher connects triggers one wake."""
    fill(dovecot, user, make_bounces(1, user))
    woken = asyncio.Event()
    rig = make_rig(settings_for(dovecot, user), database_url, wake=woken.set)
    watcher = asyncio.create_task(rig.worker.watch())

    await asyncio.wait_for(woken.wait(), 10)
    rig.stop.set()
    await asyncio.wait_for(watcher, 10)

    assert woken.is_set()


class LockKiller:
    """Classify in process, but first end the session holding the consumer lock."""

    def __init__(self, limits: Limits, url: str) -> None:
        self._classify = InProcessClassifier(limits)
        self._database = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
        self.killed = 0

    async def __call__(self, raw: bytes) -> Verdict:
        if self.killed == 0:
            self.killed = await asyncio.to_thread(self._terminate_lock_session)
        return await self._classify(raw)

    def _terminate_lock_session(self) -> int:
        query = (
            "SELECT pg_terminate_backend(l.pid) FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND a.datname = %s"
        )
        with psycopg.connect(postgres.admin_url(), autocommit=True) as conn:
            return len(conn.execute(query, (self._database,)).fetchall())


@pytest.mark.postgres
async def test_lock_session_terminated(dovecot: Dovecot, user: str) -> None:
    """A terminated lock session stops the poll before it records anything."""
    if not postgres.available():
        pytest.skip(f"no PostgreSQL at {postgres.admin_url()}")
    raws = make_bounces(5, user)
    fill(dovecot, user, raws)
    settings = settings_for(dovecot, user)
    with postgres.fresh_database() as url:
        killer = LockKiller(settings.limits, url)
        rig = make_rig(settings, url, classifier=killer)
        with capture_logs() as logs:
            lost = await rig.worker.poll()
        after_loss = audit(dovecot, user, raws, url)
        summaries = await drain(rig)
        await rig.worker.close()
        report = audit(dovecot, user, raws, url)
        rig.store.close()

    failures = [entry for entry in logs if entry["event"] == "poll_failed"]
    assert killer.killed == 1
    assert lost.state is CycleState.FAILED
    assert "consumer lock lost" in str(lost.error)
    assert len(failures) == 1
    assert "consumer lock lost" in failures[0]["error"]
    assert after_loss.rows_missing == 5, "nothing is recorded without the lock"
    assert after_loss.where["INBOX"] == 5
    assert summaries[0].state is CycleState.DONE
    assert summaries[0].messages == 5
    assert_clean(report, 5)
    assert report.where["INBOX"] == 0


def soft_bounce(number: int, recipient: str, dated: datetime) -> bytes:
    """Build a minimal RFC 3464 mailbox-full bounce with the given Date header."""
    date = email.utils.format_datetime(dated)
    return (
        f"From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@example.org\r\n"
        f"Subject: Undelivered\r\nMessage-ID: <soft-{number}@mx.example.net>\r\n"
        f"Date: {date}\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: multipart/report; report-type=delivery-status; "
        f'boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nfull\r\n'
        f"--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\n"
        f"Status: 5.2.2\r\n"
        f"Diagnostic-Code: smtp; 552 5.2.2 <{recipient}>: mailbox full\r\n--b--\r\n"
    ).encode()


async def test_backlog_counted_by_arrival(
    dovecot: Dovecot, user: str, database_url: str
) -> None:
    """Soft bounces received 10 days apart, drained at once, suppress nobody."""
    now = datetime.now(UTC).replace(microsecond=0)
    received = [now - timedelta(days=days) for days in (30, 20, 10)]
    with dovecot.client(user) as conn:
        for number, when in enumerate(received):
            raw = soft_bounce(number, "Late@x.test", when - timedelta(hours=1))
            typ, data = conn.append("INBOX", "", when, raw)
            assert typ == "OK", data
    rig = make_rig(settings_for(dovecot, user), database_url)

    summaries = await drain(rig)
    await rig.worker.close()
    entry = rig.store.suppression("late@x.test")
    events = rig.store.events_for("late@x.test")
    rig.store.close()

    assert summaries[0].messages == 3
    assert entry is None, "three soft bounces in 30 days are not three in 7"
    assert len(events) == 3
    arrivals = sorted(_arrived(database_url))
    assert arrivals == [when - timedelta(hours=1) for when in received]


def _arrived(url: str) -> list[datetime]:
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(event_table.c.arrived_at)).scalars())
    finally:
        engine.dispose()
