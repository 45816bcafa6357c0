"""Attacks on the daemon's message handling, one proven fault or guard per test.

Hostile local sources, a schema upgrade over case duplicates, old Date
headers, restarts, SIGTERM mid-drain and two daemons on one PostgreSQL
database. Each test checks what the product promises: every readable
message ends in one folder with one row, it is counted once, nothing
blocks, every quarantined message gets a log line, and no active
suppression is lost. Tests marked xfail show a fault that is still open.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert
from structlog.testing import capture_logs

from tests.cli.test_run import (
    COMMAND,
    SHUTDOWN_LIMIT,
    STARTUP_LIMIT,
    Daemon,
    drop_messages,
    running_daemon,
    stored,
)
from tests.jobs.mailbox_support import (
    InProcessClassifier,
    Rig,
    audit,
    make_rig,
    ordinary_samples,
    settings_for,
    unique,
)
from tests.jobs.test_mailbox import soft_bounce
from tests.servers import postgres
from tests.servers.common import wait_until
from tests.servers.dovecot import Dovecot, running_dovecot
from tests.test_daemon_faults import (
    assert_clean_log,
    drain_config,
    events_named,
    messages_counted,
    nested,
    placed,
    use_database,
    wait_drained,
)
from watchdog.config import Settings
from watchdog.jobs.local import process_path
from watchdog.jobs.mailbox import CycleState
from watchdog.metrics import Metrics
from watchdog.pipeline import Outcome, Processor
from watchdog.policy import MAX_DATE_LAG, arrival_time
from watchdog.sources.local import LocalMessage, count_messages, iter_messages
from watchdog.store import Store, SuppressionReason
from watchdog.store.engine import database_url as sqlalchemy_url
from watchdog.store.migrate import upgrade
from watchdog.store.models import suppression_table

CORPUS = Path(__file__).resolve().parent / "corpus" / "emails"
USERS = itertools.count(1)
READ_LIMIT = 5.0
"""Seconds a read of a three-entry Maildir may take before it counts as hung."""


def maildir(root: Path) -> Path:
    """Create an empty Maildir at ``root`` and return it."""
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    return root


def a_bounce() -> bytes:
    return sorted((CORPUS / "lhost-postfix").glob("*.eml"))[0].read_bytes()


def test_maildir_odd_entries_skipped(tmp_path: Path) -> None:
    """A directory and a dangling symlink in ``new`` hide no later message."""
    box = maildir(tmp_path / "box")
    (box / "new" / "1000.dir").mkdir()
    (box / "new" / "1500.dangling").symlink_to(tmp_path / "missing")
    (box / "new" / "2000.good").write_bytes(a_bounce())

    keys = [message.key for message in iter_messages(box)]

    assert keys == ["2000.good"]
    assert count_messages(box) == 1


def test_scan_odd_entries_records_rest(tmp_path: Path) -> None:
    """``scan`` exits 0 and records the readable message next to a directory."""
    box = maildir(tmp_path / "box")
    (box / "cur" / "1000.dir:2,S").mkdir()
    (box / "cur" / "2000.good:2,S").write_bytes(a_bounce())
    url = f"sqlite:///{tmp_path / 'scan.db'}"

    done = subprocess.run(
        [COMMAND, "scan", "--database", url, str(box)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "scanned 1 messages" in done.stdout
    store = Store(url)
    try:
        stats = store.stats()
    finally:
        store.close()
    assert sum(stats.messages.values()) == 1


def test_maildir_fifo_does_not_block(tmp_path: Path) -> None:
    """A FIFO in ``new`` is skipped instead of blocking the read for ever.

    The daemon reads ``[local.NAME]`` sources on its event loop, so a
    blocked read would stop every mailbox, /metrics and /healthz.
    """
    box = maildir(tmp_path / "box")
    fifo = box / "new" / "1000.fifo"
    os.mkfifo(fifo)
    (box / "new" / "2000.good").write_bytes(a_bounce())
    read: list[LocalMessage] = []
    reader = threading.Thread(target=lambda: read.extend(iter_messages(box)))

    reader.start()
    reader.join(READ_LIMIT)
    hung = reader.is_alive()
    if hung:
        # Open the write end once so the blocked reader sees end of file.
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(READ_LIMIT)

    assert not hung, f"reading the Maildir took over {READ_LIMIT:g} s"
    assert [message.key for message in read] == ["2000.good"]


def test_fifo_source_skipped(tmp_path: Path) -> None:
    """A FIFO named as the source itself is logged and skipped, not opened."""
    fifo = tmp_path / "bounces.fifo"
    os.mkfifo(fifo)
    read: list[LocalMessage] = []
    counted: list[int] = []

    def read_source() -> None:
        counted.append(count_messages(fifo))
        read.extend(iter_messages(fifo))

    with capture_logs() as logs:
        reader = threading.Thread(target=read_source)
        reader.start()
        reader.join(READ_LIMIT)
    hung = reader.is_alive()
    if hung:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(READ_LIMIT)

    assert not hung, f"reading the FIFO took over {READ_LIMIT:g} s"
    assert counted == [0]
    assert read == []
    assert [entry["event"] for entry in logs] == ["local_file_skipped"]


def test_migration_keeps_active_hard_bounce(tmp_path: Path) -> None:
    """Merging Alice@ (expired import) with alice@ (hard bounce) stays suppressed.

    The rank of an expired entry must not beat an active entry of another
    spelling, or the upgrade makes a hard-bounced address mailable again.
    """
    url = f"sqlite:///{tmp_path / 'old.db'}"
    created = datetime(2025, 1, 1, tzinfo=UTC)
    expired = datetime.now(UTC) - timedelta(days=1)
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.begin() as conn:
            upgrade(conn, "0004")
            conn.execute(
                insert(suppression_table),
                [
                    _entry("Alice@example.com", "import", created, expired),
                    _entry("alice@example.com", "hard_bounce", created, None),
                ],
            )
        with engine.begin() as conn:
            upgrade(conn)
    finally:
        engine.dispose()

    store = Store(url)
    try:
        entry = store.suppression("ALICE@example.com")
        suppressed = store.is_suppressed("alice@example.com")
    finally:
        store.close()
    assert entry is not None
    assert entry.reason is SuppressionReason.HARD_BOUNCE
    assert entry.expires_at is None
    assert suppressed


def _entry(
    address: str, reason: str, created: datetime, expires: datetime | None
) -> dict[str, object]:
    return {
        "address": address,
        "reason": reason,
        "first_event_id": None,
        "last_event_id": None,
        "created_at": created,
        "updated_at": created,
        "expires_at": expires,
    }


def test_arrival_old_date_unknown_receipt() -> None:
    """A Date 30 days old counts as now when the receipt time is unknown.

    Receipt is unknown when the server sends no valid INTERNALDATE or a
    file's modification time cannot be read. The Date header is then the
    sender's word alone, and an old one would move the bounce out of the
    soft-bounce window of the bounces that follow it.
    """
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    old = now - timedelta(days=30)
    recent = now - MAX_DATE_LAG + timedelta(hours=1)

    assert arrival_time(old, None, now) == now
    assert arrival_time(recent, None, now) == recent


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    with running_dovecot() as instance:
        yield instance


def counted_in(metrics: Metrics) -> float:
    """Sum ``mailwatchdog_mailbox_messages_total`` over every label set."""
    total = 0.0
    for family in metrics.registry.collect():
        if family.name != "mailwatchdog_mailbox_messages":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                total += sample.value
    return total


async def stop_rig(rig: Rig) -> None:
    """Log out and close the store once the consumer lock is released.

    ``poll`` queues the release on the store thread without waiting, and
    ``Store.close`` cancels queued calls, so a rig of the same process
    started next could find the folder still locked.
    """
    await rig.worker.close()
    await rig.store.call(lambda: None)
    rig.store.close()


@pytest.mark.dovecot
async def test_left_mail_counted_once(dovecot: Dovecot, database_url: str) -> None:
    """Ordinary mail left in INBOX is counted once across a daemon restart."""
    user = f"breakerleave{next(USERS)}"
    dovecot.add_user(user)
    ordinary = [unique(raw, f"{user}-{n}") for n, raw in enumerate(ordinary_samples())]
    for raw in ordinary:
        dovecot.append(user, raw)
    settings = settings_for(dovecot, user, unrecognised="leave")

    first = make_rig(settings, database_url)
    first_summary = await first.worker.poll()
    await stop_rig(first)
    restarted = make_rig(settings, database_url)
    second_summary = await restarted.worker.poll()
    await stop_rig(restarted)

    report = audit(dovecot, user, ordinary, database_url)
    assert report.where["INBOX"] == len(ordinary)
    assert first_summary.state is CycleState.DONE
    assert second_summary.state is CycleState.DONE
    counted = counted_in(first.metrics) + counted_in(restarted.metrics)
    assert counted == len(ordinary)


@pytest.mark.dovecot
async def test_left_copies_counted_once(dovecot: Dovecot, database_url: str) -> None:
    """Two left copies with the same bytes count once each, across a restart.

    They share one message row, so only their UIDs distinguish them.
    """
    user = f"breakercopies{next(USERS)}"
    dovecot.add_user(user)
    raw = unique(ordinary_samples()[0], user)
    for _ in range(2):
        dovecot.append(user, raw)
    settings = settings_for(dovecot, user, unrecognised="leave")

    first = make_rig(settings, database_url)
    await first.worker.poll()
    await stop_rig(first)
    restarted = make_rig(settings, database_url)
    second_summary = await restarted.worker.poll()
    await stop_rig(restarted)

    assert len(dovecot.uids(user)) == 2
    assert second_summary.messages == 0
    assert counted_in(first.metrics) == 2
    assert counted_in(restarted.metrics) == 0


@pytest.mark.dovecot
@pytest.mark.postgres
@pytest.mark.slow
def test_two_daemons_postgres_sessions_killed(dovecot: Dovecot, tmp_path: Path) -> None:
    """Two daemons share one mailbox and database while sessions are terminated.

    Terminating every session drops the advisory lock of whichever daemon
    holds it, so the other may take it mid-drain. Each message must still
    end in one folder with one row and be counted by exactly one daemon.
    """
    if not postgres.available():
        pytest.skip(f"PostgreSQL at {postgres.admin_url()!r} is not reachable")
    user, count = f"breakertwo{next(USERS)}", 300
    dovecot.add_user(user)
    drop_messages(dovecot, user, tmp_path / "copies", count)
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    with postgres.fresh_database("mw_breaker") as url:
        configs = [drain_config(dovecot, user, work) for work in (first, second)]
        for config in configs:
            use_database(config, url)
        with (
            running_daemon(configs[0], first) as one,
            running_daemon(configs[1], second) as two,
        ):
            for _ in range(8):
                postgres.terminate_sessions(url)
                time.sleep(0.4)
            wait_drained(dovecot, user, one)
            time.sleep(3)
            metrics = [d.get("/metrics")[1] for d in (one, two)]
            codes = [one.terminate()[0], two.terminate()[0]]
        rows, _ = stored(url)
    folders = placed(dovecot, user)
    assert codes == [0, 0]
    assert folders["INBOX"] == 0
    assert folders["Processed"] + folders["Quarantine"] == count
    assert rows == count
    assert sum(messages_counted(text) for text in metrics) == count
    assert_clean_log(one)
    assert_clean_log(two)


async def test_mbox_soft_bounces_by_arrival(tmp_path: Path) -> None:
    """Three mailbox-full bounces three weeks apart in one mbox suppress nobody.

    With the default policy (3 soft bounces within 7 days) no window ever
    holds all three, but the mbox was last written today.
    """
    url = f"sqlite:///{tmp_path / 'watchdog.db'}"
    archive = tmp_path / "bounces.mbox"
    first = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
    chunks = []
    for number in range(3):
        arrived = first + timedelta(days=21 * number)
        from_line = arrived.strftime("From MAILER-DAEMON %a %b %d %H:%M:%S %Y\n")
        raw = soft_bounce(number, "carol@x.test", arrived).replace(b"\r\n", b"\n")
        chunks.append(from_line.encode() + raw + b"\n")
    archive.write_bytes(b"".join(chunks))
    settings = Settings()
    store = Store(url)
    store.upgrade()
    try:
        processor = Processor(store, InProcessClassifier(settings.limits), settings)
        count = await process_path(processor, "archive", archive)
        suppressed = store.is_suppressed("carol@x.test")
        events = store.events_for("carol@x.test")
    finally:
        store.close()

    assert count == 3
    assert len(events) == 3
    assert not suppressed


def counted_in_log(daemon: Daemon) -> int:
    """Count the messages a daemon's log reports, duplicates left out.

    The last batch ends after SIGTERM, when /metrics can no longer be
    scraped, so the first run is counted from its ``batch_done`` and
    ``moves_confirmed`` lines.
    """
    total = 0
    for event in events_named(daemon, "batch_done"):
        for outcome in Outcome:
            if outcome is not Outcome.DUPLICATE:
                total += int(event.get(outcome.value, 0))  # type: ignore[call-overload]
    for event in events_named(daemon, "moves_confirmed"):
        total += int(event["messages"])  # type: ignore[call-overload]
    return total


@pytest.mark.dovecot
@pytest.mark.slow
def test_sigterm_mid_drain_of_2000(dovecot: Dovecot, tmp_path: Path) -> None:
    """SIGTERM while 2,000 messages drain: a fast exit and nothing lost.

    The restarted daemon finishes the drain, and across both runs every
    message is counted once under an outcome other than duplicate.
    """
    user, count = f"breakerdrain{next(USERS)}", 2000
    dovecot.add_user(user)
    drop_messages(dovecot, user, tmp_path / "copies", count)
    config = drain_config(dovecot, user, tmp_path)
    url = f"sqlite:///{tmp_path / 'watchdog.db'}"

    with running_daemon(config, tmp_path) as daemon:
        wait_until(
            lambda: len(dovecot.uids(user, "Processed")) >= 200,
            what="200 messages moved",
            process=daemon.process,
            log=daemon.log,
            timeout=STARTUP_LIMIT,
        )
        first_code, first_seconds = daemon.terminate()
    moved_at_stop = len(dovecot.uids(user, "Processed"))
    first_counted = counted_in_log(daemon)
    assert_clean_log(daemon)

    with running_daemon(config, tmp_path) as restarted:
        wait_drained(dovecot, user, restarted)
        time.sleep(2)
        second_metrics = restarted.get("/metrics")[1]
        second_code, _ = restarted.terminate()
    rows, _ = stored(url)
    folders = placed(dovecot, user)

    assert first_code == 0
    assert first_seconds < SHUTDOWN_LIMIT
    assert moved_at_stop < count, "the drain ended before SIGTERM"
    assert second_code == 0
    assert folders["INBOX"] == 0
    assert folders["Processed"] + folders["Quarantine"] == count
    assert rows == count
    assert first_counted + messages_counted(second_metrics) == count
    assert_clean_log(restarted)


def many_recipients(count: int) -> bytes:
    """Build a DSN with ``count`` failed recipients."""
    fields = "".join(
        f"Final-Recipient: rfc822; r{n}@x.test\r\nAction: failed\r\n"
        f"Status: 5.1.1\r\n\r\n"
        for n in range(count)
    )
    return (
        "From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@example.org\r\n"
        "Subject: Undelivered\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; "
        'boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n'
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.example.net\r\n\r\n{fields}--b--\r\n"
    ).encode()


@pytest.mark.dovecot
async def test_quarantine_logs_each_message(dovecot: Dovecot, tmp_path: Path) -> None:
    """Each quarantined message gets a warning naming its UID and the reason."""
    user = f"breakerquarantine{next(USERS)}"
    dovecot.add_user(user)
    settings = settings_for(dovecot, user)
    hostile = {
        "nested": unique(nested(2_000), f"{user}-nested"),
        "recipients": unique(
            many_recipients(settings.limits.max_recipients + 5), f"{user}-rcpt"
        ),
    }
    uids = {name: dovecot.append(user, raw) for name, raw in hostile.items()}
    rig = make_rig(settings, f"sqlite:///{tmp_path / 'watchdog.db'}")

    with capture_logs() as logs:
        summary = await rig.worker.poll()
    await rig.worker.close()
    rig.store.close()

    assert summary.outcomes == {"quarantined": 2}
    assert len(dovecot.uids(user, "Quarantine")) == 2
    warned = {
        entry["uid"]: entry
        for entry in logs
        if entry["event"] == "message_not_processed" and "uid" in entry
    }
    for name, uid in uids.items():
        assert uid in warned, f"no log line for the {name} message"
        assert warned[uid]["error"], f"no reason for the {name} message"
