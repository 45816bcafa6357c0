"""MTA-STS policy drift: comparing each fetched policy with the stored one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watchdog.checks.auth.findings import Finding, Status
from watchdog.checks.auth.mta_sts_drift import (
    PolicySnapshot,
    UnavailableHistory,
    check_drift,
    compare,
    normalised_body,
    snapshot_of,
)
from watchdog.checks.auth.mta_sts_policy import parse_policy
from watchdog.errors import StoreBusy, StoreError

POLICY = "version: STSv1\nmode: enforce\nmx: mx1.a.test\nmx: *.b.test\nmax_age: 86400\n"
START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _snapshot(body: str, policy_id: str, at: datetime) -> PolicySnapshot:
    return snapshot_of(policy_id, parse_policy(body), at)


def _reason(finding: Finding | None) -> str | None:
    return None if finding is None else finding.reason


class MemoryHistory:
    """A PolicyHistory in a dict, optionally failing like a locked database."""

    def __init__(self, *, fail_load: bool = False, fail_save: bool = False) -> None:
        self.rows: dict[str, PolicySnapshot] = {}
        self.fail_load = fail_load
        self.fail_save = fail_save

    async def load(self, domain: str) -> PolicySnapshot | None:
        if self.fail_load:
            raise StoreBusy("database is locked", reason="locked")
        return self.rows.get(domain)

    async def save(self, domain: str, snapshot: PolicySnapshot) -> None:
        if self.fail_save:
            raise StoreError("attempt to write a readonly database")
        self.rows[domain] = snapshot


@pytest.mark.parametrize(
    "body",
    [
        POLICY.replace("\n", "\r\n"),
        POLICY.upper().replace("STSV1", "STSv1").replace("ENFORCE", "enforce"),
        "mx: *.b.test\nmax_age: 86400\nmode: enforce\nversion: STSv1\nmx: mx1.a.test\n",
        POLICY + "mx: mx1.a.test\n",
        POLICY + "x-extension: ignored by senders\n",
        "  version :  STSv1 \n\nmode: enforce\nmx: mx1.a.test\nmx: *.b.test\n"
        "max_age: 86400",
    ],
)
def test_normalised_body_ignores_layout(body: str) -> None:
    """Layout, case, order, repeats and unknown fields do not change the body."""
    assert normalised_body(parse_policy(body)) == normalised_body(parse_policy(POLICY))


def test_first_policy_stored() -> None:
    """With nothing stored, the policy is stored and an ok note says so."""
    current = _snapshot(POLICY, "one", START)
    stored, finding = compare("a.test", None, current)
    assert stored == current
    assert finding is not None
    assert finding.reason == "mta_sts_policy_stored"
    assert finding.status is Status.OK


def test_unchanged_policy_silent() -> None:
    """The same body under the same id gives no finding and keeps changed_at."""
    previous = _snapshot(POLICY, "one", START)
    stored, finding = compare("a.test", previous, _snapshot(POLICY, "one", START + DAY))
    assert finding is None
    assert stored.changed_at == START
    assert stored.fetched_at == START + DAY


@pytest.mark.parametrize(
    ("new_body", "expected"),
    [
        (POLICY.replace("enforce", "testing"), "mode enforce -> testing"),
        (POLICY.replace("mx1.a.test", "mx2.a.test"), "mx added mx2.a.test"),
        (POLICY.replace("mx1.a.test", "mx2.a.test"), "mx removed mx1.a.test"),
        (POLICY.replace("86400", "604800"), "max_age 86400 -> 604800 s"),
    ],
)
def test_changed_same_id_error(new_body: str, expected: str) -> None:
    """A body changed under the same id is an error that names the change."""
    previous = _snapshot(POLICY, "one", START)
    now = START + DAY
    stored, finding = compare("a.test", previous, _snapshot(new_body, "one", now))
    assert finding is not None
    assert finding.reason == "mta_sts_changed_same_id"
    assert finding.status is Status.ERROR
    assert expected in finding.detail
    assert "id=one" in finding.detail
    assert "_mta-sts.a.test" in finding.detail
    assert stored.stale_until == now + timedelta(seconds=86400)
    assert stored.changed_at == now


def test_drift_repeats_until_expiry() -> None:
    """Later audits repeat the error until the old policy's max_age has passed."""
    changed = POLICY.replace("enforce", "testing")
    previous = _snapshot(POLICY, "one", START)
    stored, _ = compare("a.test", previous, _snapshot(changed, "one", START + DAY))

    soon = START + DAY + timedelta(hours=23)
    still, finding = compare("a.test", stored, _snapshot(changed, "one", soon))
    assert _reason(finding) == "mta_sts_changed_same_id"
    assert finding is not None
    assert "mode enforce -> testing" in finding.detail
    assert still.stale_until == stored.stale_until

    later = START + 2 * DAY + timedelta(minutes=1)
    settled, finding = compare("a.test", still, _snapshot(changed, "one", later))
    assert finding is None
    assert settled.stale_until is None
    assert settled.stale_changes == ""


def test_drift_window_uses_old_max_age() -> None:
    """Senders keep the old policy for its own max_age, not the new one's."""
    long_lived = POLICY.replace("86400", "604800")
    previous = _snapshot(long_lived, "one", START)
    now = START + DAY
    stored, _ = compare("a.test", previous, _snapshot(POLICY, "one", now))
    assert stored.stale_until == now + timedelta(seconds=604800)


def test_id_changed_same_body_ok() -> None:
    """A new id over the same body is ok and ends an earlier drift."""
    changed = POLICY.replace("enforce", "testing")
    previous = _snapshot(POLICY, "one", START)
    drifted, _ = compare("a.test", previous, _snapshot(changed, "one", START + DAY))

    bumped = _snapshot(changed, "two", START + DAY + timedelta(hours=1))
    stored, finding = compare("a.test", drifted, bumped)
    assert _reason(finding) == "mta_sts_id_changed_same_body"
    assert finding is not None
    assert finding.status is Status.OK
    assert stored.stale_until is None
    assert stored.changed_at == START + DAY
    assert stored.policy_id == "two"


def test_updated_with_new_id_ok() -> None:
    """A body changed together with its id is a normal update."""
    previous = _snapshot(POLICY, "one", START)
    current = _snapshot(POLICY.replace("enforce", "testing"), "two", START + DAY)
    stored, finding = compare("a.test", previous, current)
    assert _reason(finding) == "mta_sts_policy_updated"
    assert finding is not None
    assert finding.status is Status.OK
    assert "mode enforce -> testing" in finding.detail
    assert stored == current


def test_digest_format_change_not_drift() -> None:
    """Equal fields under another digest are no change for senders."""
    previous = PolicySnapshot(
        "one", "0" * 64, "enforce", ("*.b.test", "mx1.a.test"), 86400, START, START
    )
    _stored, finding = compare("a.test", previous, _snapshot(POLICY, "one", START))
    assert finding is None


async def test_check_drift_unavailable_note() -> None:
    """A missing database gives an ok note, never an error."""
    history = UnavailableHistory("database file 'x.db' not found")
    findings = await check_drift(history, "a.test", "one", parse_policy(POLICY))
    assert [f.reason for f in findings] == ["mta_sts_drift_not_checked"]
    assert findings[0].status is Status.OK
    assert "x.db" in findings[0].detail


async def test_check_drift_store_error_warns() -> None:
    """A failing database gives a warning and stores nothing."""
    history = MemoryHistory(fail_load=True)
    findings = await check_drift(history, "a.test", "one", parse_policy(POLICY))
    assert [f.reason for f in findings] == ["mta_sts_drift_not_checked"]
    assert findings[0].status is Status.WARNING
    assert "locked" in findings[0].detail
    assert history.rows == {}


async def test_check_drift_save_error_keeps_result() -> None:
    """A failed save still reports the drift found, then a warning."""
    history = MemoryHistory()
    await check_drift(history, "a.test", "one", parse_policy(POLICY), START)
    history.fail_save = True
    changed = parse_policy(POLICY.replace("enforce", "testing"))
    findings = await check_drift(history, "a.test", "one", changed, START + DAY)
    reasons = [f.reason for f in findings]
    assert reasons == ["mta_sts_changed_same_id", "mta_sts_drift_not_checked"]
    assert findings[1].status is Status.WARNING
    assert "not stored" in findings[1].detail
    assert history.rows["a.test"].mode == "enforce"


async def test_check_drift_round_trip() -> None:
    """check_drift stores each fetch and compares the next one with it."""
    history = MemoryHistory()
    policy = parse_policy(POLICY)
    first = await check_drift(history, "a.test", "one", policy, START)
    second = await check_drift(history, "a.test", "one", policy, START + DAY)
    changed = parse_policy(POLICY.replace("enforce", "testing"))
    third = await check_drift(history, "a.test", "one", changed, START + 2 * DAY)
    assert [f.reason for f in first] == ["mta_sts_policy_stored"]
    assert second == []
    assert [f.reason for f in third] == ["mta_sts_changed_same_id"]
    assert history.rows["a.test"].mode == "testing"
