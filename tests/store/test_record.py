"""Store.record and the rest of the pipeline's calls."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.store.conftest import bounce
from watchdog.classify.verdict import Category, Kind, Verdict
from watchdog.config import Policy
from watchdog.errors import StoreError
from watchdog.pipeline import MessageRef, Outcome
from watchdog.store import NOT_RECORDED, Recorded, Store, SuppressionReason
from watchdog.store.models import event_table, message_table
from watchdog.store.store import KEYS_PER_STATEMENT

REF = MessageRef("bounces", "INBOX", uidvalidity=7, uid=1)
POLICY = Policy(
    soft_bounce_threshold=3, soft_bounce_window_days=7, soft_suppression_days=30
)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_COUNTER = itertools.count()


def digest() -> str:
    """Return a fresh SHA-256 hex digest."""
    return hashlib.sha256(str(next(_COUNTER)).encode()).hexdigest()


def record(
    store: Store,
    verdict: Verdict,
    *,
    sha256: str | None = None,
    outcome: Outcome = Outcome.PROCESSED,
    verified: bool = True,
    now: datetime = NOW,
    ref: MessageRef = REF,
) -> Recorded:
    return store.record(
        ref,
        sha256=sha256 or digest(),
        size=100,
        verdict=verdict,
        outcome=outcome,
        verified=verified,
        policy=POLICY,
        now=now,
    )


def event_rows(store: Store) -> list[dict[str, object]]:
    with store._engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(select(event_table))]


def message_row(store: Store, sha256: str) -> dict[str, object]:
    query = select(message_table).where(message_table.c.sha256 == sha256)
    with store._engine.connect() as conn:
        return dict(conn.execute(query).one()._mapping)


def test_hard_bounce_suppresses(store: Store) -> None:
    """A verified hard bounce is recorded with one event and suppresses."""
    result = record(store, bounce("Alice@Example.COM"))
    assert result.inserted
    assert result.events_added == 1
    assert result.suppressed == ("Alice@example.com",)
    entry = store.suppression("Alice@example.com")
    assert entry is not None
    assert entry.reason is SuppressionReason.HARD_BOUNCE
    assert entry.first_event_id == entry.last_event_id


def test_original_recipient_suppressed(store: Store) -> None:
    """The address we mailed is suppressed, not the one it was forwarded to."""
    verdict = bounce(
        "r@p351355.pool.example.ne.jp", original_address="rfc822;kijitora@example.org"
    )

    result = record(store, verdict)

    assert result.suppressed == ("kijitora@example.org",)
    assert store.suppression("kijitora@example.org") is not None
    assert store.suppression("r@p351355.pool.example.ne.jp") is None


def test_invalid_original_falls_back(store: Store) -> None:
    """An Original-Recipient that is no address leaves the final one."""
    result = record(store, bounce("final@example.net", original_address="x400;junk"))

    assert result.suppressed == ("final@example.net",)


def test_replay_adds_nothing(store: Store) -> None:
    """The same bytes recorded again write nothing."""
    sha = digest()
    record(store, bounce("a@example.com"), sha256=sha)
    again = record(store, bounce("a@example.com"), sha256=sha)
    assert again == NOT_RECORDED
    assert len(event_rows(store)) == 1
    assert len(store.suppression_history("a@example.com")) == 1


def test_is_recorded(store: Store) -> None:
    """Only a final outcome counts as recorded."""
    sha = digest()
    assert not store.is_recorded(sha)
    store.record_failure(REF, sha256=sha, size=10, error="cpu")
    assert not store.is_recorded(sha)
    record(store, bounce("a@example.com"), sha256=sha)
    assert store.is_recorded(sha)


def test_failed_row_taken_over(store: Store) -> None:
    """A message that failed before is recorded when it classifies."""
    sha = digest()
    store.record_failure(REF, sha256=sha, size=10, error="cpu")
    result = record(store, bounce("a@example.com"), sha256=sha)
    assert result.inserted
    row = message_row(store, sha)
    assert row["outcome"] == "processed"
    assert row["attempts"] == 1


def test_failures_counted(store: Store) -> None:
    """Attempts are counted in the database, one per failure."""
    sha = digest()
    counts = [
        store.record_failure(REF, sha256=sha, size=10, error="cpu") for _ in range(3)
    ]
    assert counts == [1, 2, 3]
    assert message_row(store, sha)["last_error"] == "cpu"


def test_rejected_after_failures(store: Store) -> None:
    """A message out of attempts becomes quarantined and final."""
    sha = digest()
    store.record_failure(REF, sha256=sha, size=10, error="memory")
    store.record_rejected(REF, sha256=sha, size=10, error="memory")
    assert message_row(store, sha)["outcome"] == "quarantined"
    assert store.is_recorded(sha)


def test_rejected_oversize(store: Store) -> None:
    """An oversize message is recorded without classification."""
    sha = digest()
    store.record_rejected(REF, sha256=sha, size=10**9, error="max_message_bytes")
    row = message_row(store, sha)
    assert row["outcome"] == "quarantined"
    assert row["last_error"] == "max_message_bytes"


def test_quarantined_has_no_events(store: Store) -> None:
    """A quarantined verdict stores no events and suppresses no address."""
    result = record(store, bounce("a@example.com"), outcome=Outcome.QUARANTINED)
    assert result.inserted
    assert result.events_added == 0
    assert store.suppression("a@example.com") is None


def test_unverified_stored_not_applied(store: Store) -> None:
    """An unverified bounce is kept for statistics and suppresses no address."""
    result = record(
        store, bounce("a@example.com"), outcome=Outcome.UNVERIFIED, verified=False
    )
    assert result.events_added == 1
    assert result.suppressed == ()
    assert event_rows(store)[0]["verified"] is False
    assert store.suppression("a@example.com") is None


def test_soft_bounces_reach_threshold(store: Store) -> None:
    """The third mailbox-full bounce within the window suppresses."""
    verdict = bounce("a@example.com", category=Category.MAILBOX)
    results = [record(store, verdict, now=NOW + timedelta(hours=i)) for i in range(3)]
    assert [r.suppressed for r in results] == [(), (), ("a@example.com",)]
    entry = store.suppression("a@example.com")
    assert entry is not None
    assert entry.expires_at == NOW + timedelta(hours=2, days=30)


def test_soft_bounces_outside_window(store: Store) -> None:
    """Bounces older than the window do not count."""
    verdict = bounce("a@example.com", category=Category.MAILBOX)
    record(store, verdict, now=NOW - timedelta(days=20))
    record(store, verdict, now=NOW - timedelta(days=10))
    result = record(store, verdict, now=NOW)
    assert result.suppressed == ()


def test_replay_cannot_inflate(store: Store) -> None:
    """Replaying one soft bounce many times counts it once."""
    sha = digest()
    verdict = bounce("a@example.com", category=Category.MAILBOX)
    for _ in range(5):
        record(store, verdict, sha256=sha)
    assert len(event_rows(store)) == 1
    assert store.suppression("a@example.com") is None


def test_manual_entry_kept(store: Store) -> None:
    """A hard bounce does not overwrite a manual entry."""
    store.add_suppression("a@example.com", actor="ops", note="VIP")
    result = record(store, bounce("a@example.com"))
    assert result.suppressed == ()
    entry = store.suppression("a@example.com")
    assert entry is not None
    assert entry.reason is SuppressionReason.MANUAL


def test_repeat_hard_bounce_not_audited(store: Store) -> None:
    """A second hard bounce moves last_event_id without a new audit row."""
    record(store, bounce("a@example.com"))
    again = record(store, bounce("a@example.com"))
    assert again.suppressed == ()
    entry = store.suppression("a@example.com")
    assert entry is not None
    assert entry.last_event_id != entry.first_event_id
    assert len(store.suppression_history("a@example.com")) == 1


def test_one_event_per_recipient(store: Store) -> None:
    """A recipient named twice in one report gets one event."""
    result = record(store, bounce("a@example.com", "a@EXAMPLE.com", "b@example.com"))
    assert result.events_added == 2


def test_invalid_recipient_skipped(store: Store) -> None:
    """A recipient that does not normalise is not stored."""
    result = record(store, bounce("no-at-sign", "a\x00b@example.com", "ok@example.com"))
    assert result.events_added == 1


def test_hostile_text_stored(store: Store) -> None:
    """NUL, surrogate escapes and long diagnostics are stored safely."""
    diagnostic = "550 \x00 bad \udcff " + "x" * 5000
    record(store, bounce("a@example.com", diagnostic=diagnostic, remote_mta="mx\x00"))
    row = event_rows(store)[0]
    assert isinstance(row["diagnostic"], str)
    assert "\x00" not in row["diagnostic"]
    assert len(row["diagnostic"]) == 1000
    assert row["remote_mta"] == "mx\ufffd"


def test_complaint_suppresses(store: Store) -> None:
    """A verified complaint suppresses with reason complaint."""
    result = record(store, bounce("a@example.com", category=Category.COMPLAINT))
    assert result.suppressed == ("a@example.com",)
    entry = store.suppression("a@example.com")
    assert entry is not None
    assert entry.reason is SuppressionReason.COMPLAINT


def test_unrecognised_message(store: Store) -> None:
    """A message with no recipients is recorded and is final."""
    sha = digest()
    verdict = Verdict(kind=Kind.NOT_BOUNCE, detector="none")
    result = record(
        store, verdict, sha256=sha, outcome=Outcome.UNRECOGNISED, verified=False
    )
    assert result.inserted
    assert store.is_recorded(sha)


def test_largest_uid_stored(store: Store) -> None:
    """UIDs and UIDVALIDITY up to 2**32 - 1 fit."""
    sha = digest()
    ref = MessageRef("bounces", "INBOX", uidvalidity=2**32 - 1, uid=2**32 - 1)
    record(store, bounce("a@example.com"), sha256=sha, ref=ref)
    assert message_row(store, sha)["uid"] == 2**32 - 1


def test_uidvalidity_change(store: Store) -> None:
    """A new UIDVALIDITY reports a change and clears the folder's UIDs."""
    sha = digest()
    assert not store.set_uidvalidity("bounces", "INBOX", 7)
    record(store, bounce("a@example.com"), sha256=sha)
    assert not store.set_uidvalidity("bounces", "INBOX", 7)
    assert store.set_uidvalidity("bounces", "INBOX", 8)
    assert store.uidvalidity("bounces", "INBOX") == 8
    assert message_row(store, sha)["uid"] is None


def test_uidvalidity_change_keeps_unmoved(store: Store) -> None:
    """Unmoved rows wait without a UID under the new UIDVALIDITY until read."""
    moved, waiting, read = digest(), digest(), digest()
    store.set_uidvalidity("bounces", "INBOX", 7)
    for sha in (moved, waiting, read):
        record(store, bounce("a@example.com"), sha256=sha)
    store.mark_moved(moved, "Processed")
    store.set_uidvalidity("bounces", "INBOX", 8)

    adopted = store.adopt_uids("bounces", "INBOX", 8, {read: 3, moved: 4})
    found = store.unmoved_without_uid("bounces", "INBOX", 8, [Outcome.PROCESSED])

    assert adopted == {read}
    assert found == {waiting: Outcome.PROCESSED}
    assert message_row(store, read)["uid"] == 3
    assert message_row(store, moved)["uid"] is None
    assert message_row(store, moved)["uidvalidity"] == 7


def test_uidvalidity_unknown(store: Store) -> None:
    """A folder never seen has no UIDVALIDITY."""
    assert store.uidvalidity("bounces", "Nowhere") is None


def test_mark_moved(store: Store) -> None:
    """mark_moved stores the folder and the time."""
    sha = digest()
    record(store, bounce("a@example.com"), sha256=sha)
    store.mark_moved(sha, "Processed")
    row = message_row(store, sha)
    assert row["moved_to"] == "Processed"
    assert row["moved_at"] is not None


def test_mark_moved_many(store: Store) -> None:
    """mark_moved_many stores the folder on every listed row and no other."""
    moved = [digest() for _ in range(3)]
    kept = digest()
    for sha in [*moved, kept]:
        record(store, bounce("a@example.com"), sha256=sha)
    store.mark_moved_many(moved, "Quarantine")
    for sha in moved:
        assert message_row(store, sha)["moved_to"] == "Quarantine"
    assert message_row(store, kept)["moved_to"] is None


def test_mark_moved_many_chunks(store: Store) -> None:
    """More keys than one UPDATE takes are all marked."""
    shas = [digest() for _ in range(KEYS_PER_STATEMENT + 5)]
    with store.batch():
        for sha in shas:
            record(store, bounce("a@example.com"), sha256=sha)
    store.mark_moved_many(shas, "Processed")
    assert message_row(store, shas[0])["moved_to"] == "Processed"
    assert message_row(store, shas[-1])["moved_to"] == "Processed"


def test_recorded_outcome(store: Store) -> None:
    """recorded_outcome returns the stored outcome, or None for new bytes."""
    unrecognised = digest()
    record(
        store,
        bounce("a@example.com"),
        sha256=unrecognised,
        outcome=Outcome.UNRECOGNISED,
    )
    assert store.recorded_outcome(digest()) is None
    assert store.recorded_outcome(unrecognised) is Outcome.UNRECOGNISED


def test_recorded_outcomes(store: Store) -> None:
    """recorded_outcomes returns only the keys that have a row."""
    shas = [digest() for _ in range(KEYS_PER_STATEMENT + 2)]
    with store.batch():
        for sha in shas[1:]:
            record(store, bounce("a@example.com"), sha256=sha)
    found = store.recorded_outcomes(shas)
    assert shas[0] not in found
    assert len(found) == len(shas) - 1
    assert found[shas[-1]] is Outcome.PROCESSED


def test_recorded_outcome_failed(store: Store) -> None:
    """A failed attempt is reported as failed, which is not final."""
    sha = digest()
    store.record_failure(REF, sha256=sha, size=10, error="cpu")
    assert store.recorded_outcome(sha) is Outcome.FAILED
    assert not store.is_recorded(sha)


def test_batch_commits_together(store: Store) -> None:
    """Records inside a batch are visible to it and committed at its end."""
    shas = [digest() for _ in range(3)]
    with store.batch():
        for sha in shas:
            record(store, bounce("a@example.com"), sha256=sha)
        assert store.is_recorded(shas[0])
    assert all(store.is_recorded(sha) for sha in shas)


def test_batch_rolls_back(store: Store) -> None:
    """An exception inside a batch leaves nothing recorded."""
    sha = digest()
    try:
        with store.batch():
            record(store, bounce("a@example.com"), sha256=sha)
            raise RuntimeError("move failed")
    except RuntimeError:
        pass
    assert not store.is_recorded(sha)
    assert store.suppression("a@example.com") is None


def test_stats(store: Store) -> None:
    """stats counts messages, events and suppressions."""
    record(store, bounce("a@example.com", "b@example.com"))
    store.record_failure(REF, sha256=digest(), size=1, error="cpu")
    stats = store.stats()
    assert stats.messages == {"failed": 1, "processed": 1}
    assert stats.events == {"userunknown": 2}
    assert stats.suppressions == {"hard_bounce": 2}


def test_batch_keeps_good_records(store: Store) -> None:
    """A record that fails inside a batch does not undo the others."""
    good, bad = digest(), digest()
    with store.batch():
        record(store, bounce("a@example.com"), sha256=good)
        naive = datetime(2026, 3, 1, 12, 0)
        with pytest.raises(StoreError, match="naive datetime"):
            record(store, bounce("b@example.com"), sha256=bad, now=naive)
    assert store.is_recorded(good)
    assert not store.is_recorded(bad)


async def test_batch_per_task(store: Store) -> None:
    """A batch open in one task does not capture another task's writes."""
    inside, outside = digest(), digest()
    opened = asyncio.Event()
    release = asyncio.Event()

    async def batcher() -> None:
        with store.batch():
            record(store, bounce("a@example.com"), sha256=inside)
            opened.set()
            await release.wait()
            raise RuntimeError("abandon the batch")

    task = asyncio.create_task(batcher())
    await opened.wait()
    if store.dialect == "postgresql":
        # SQLite would wait for the batch's write lock here.
        record(store, bounce("b@example.com"), sha256=outside)
    release.set()
    with pytest.raises(RuntimeError):
        await task
    assert not store.is_recorded(inside)
    assert store.is_recorded(outside) is (store.dialect == "postgresql")


async def test_abatch_takes_turns(store: Store) -> None:
    """Tasks whose batches span awaits both commit under abatch."""

    async def cycle(source: str) -> int:
        async with store.abatch():
            for _ in range(3):
                record(store, bounce("a@example.com"), ref=MessageRef(source, "INBOX"))
                await asyncio.sleep(0.05)
        return 3

    assert await asyncio.gather(cycle("a"), cycle("b")) == [3, 3]
    assert store.stats().messages == {"processed": 6}


def test_backlog_spread_not_one_window(store: Store) -> None:
    """Soft bounces recorded together but arriving 10 days apart do not add up."""
    verdict = bounce("late@example.com", category=Category.MAILBOX)
    results = [
        store.record(
            REF,
            sha256=digest(),
            size=100,
            verdict=verdict,
            outcome=Outcome.PROCESSED,
            verified=True,
            policy=POLICY,
            now=NOW,
            arrived_at=NOW - timedelta(days=10 * n),
        )
        for n in (3, 2, 1)
    ]
    assert [r.suppressed for r in results] == [(), (), ()]
    assert store.suppression("late@example.com") is None


def test_backlog_within_window_counts(store: Store) -> None:
    """Soft bounces that arrived within the window suppress when recorded later."""
    verdict = bounce("close@example.com", category=Category.MAILBOX)
    arrivals = [NOW - timedelta(days=20, hours=n) for n in (3, 2, 1)]
    results = [
        store.record(
            REF,
            sha256=digest(),
            size=100,
            verdict=verdict,
            outcome=Outcome.PROCESSED,
            verified=True,
            policy=POLICY,
            now=NOW,
            arrived_at=arrived,
        )
        for arrived in arrivals
    ]
    rows = event_rows(store)
    assert results[2].suppressed == ("close@example.com",)
    assert sorted(row["arrived_at"] for row in rows) == arrivals


def test_arrival_never_after_recording(store: Store) -> None:
    """An arrival time later than the recording time is stored as the recording time."""
    record_time = NOW
    store.record(
        REF,
        sha256=digest(),
        size=100,
        verdict=bounce("soon@example.com", category=Category.MAILBOX),
        outcome=Outcome.PROCESSED,
        verified=True,
        policy=POLICY,
        now=record_time,
        arrived_at=record_time + timedelta(days=2),
    )
    [row] = event_rows(store)
    assert row["arrived_at"] == record_time


def record_arrived(store: Store, verdict: Verdict, arrived: datetime) -> Recorded:
    """Record a verified bounce that arrived at ``arrived``, recorded now."""
    return store.record(
        REF,
        sha256=digest(),
        size=100,
        verdict=verdict,
        outcome=Outcome.PROCESSED,
        verified=True,
        policy=POLICY,
        now=datetime.now(UTC),
        arrived_at=arrived,
    )


@pytest.mark.parametrize("category", [Category.ADDRESS, Category.COMPLAINT])
def test_report_before_removal_ignored(store: Store, category: Category) -> None:
    """A report that arrived before an operator's removal suppresses nobody.

    One that arrived after the removal suppresses again.
    """
    verdict = bounce("back@example.com", category=category)
    before = datetime.now(UTC) - timedelta(hours=1)
    record_arrived(store, verdict, before - timedelta(hours=1))
    assert store.remove_suppression("back@example.com", actor="operator")

    late = record_arrived(store, verdict, before)

    assert late.events_added == 1
    assert late.suppressed == ()
    assert store.suppression("back@example.com") is None

    after = record_arrived(store, verdict, datetime.now(UTC))

    assert after.suppressed == ("back@example.com",)
    assert store.is_suppressed("back@example.com")
