"""MTA-STS policy drift: a policy body that changed while the TXT ``id=`` did not.

Senders that cached a policy fetch it again when the ``id=`` of the
``_mta-sts`` TXT record differs from the cached one (RFC 8461), or when
the cached copy is older than its ``max_age``. A body
changed under the same id therefore reaches such senders only when their
copy expires, up to the old ``max_age`` after the change.

Each audit compares the fetched policy with the one stored by the previous
audit of the domain and stores the new one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog

from watchdog.checks.auth.findings import Check, Finding, Status
from watchdog.checks.auth.mta_sts_policy import Policy
from watchdog.errors import StoreError

log = structlog.get_logger("watchdog.checks.auth.mta_sts_drift")


@dataclass(frozen=True)
class PolicySnapshot:
    """The last policy fetched for a domain, as stored between audits.

    ``changed_at`` is when an audit first saw this body. While
    ``stale_until`` lies ahead, senders may still use a policy that was
    replaced under the same id; ``stale_changes`` describes that change.
    """

    policy_id: str
    body_sha256: str
    mode: str
    mx: tuple[str, ...]
    max_age: int
    fetched_at: datetime
    changed_at: datetime
    stale_until: datetime | None = None
    stale_changes: str = ""


class PolicyHistory(Protocol):
    """Storage of the last fetched MTA-STS policy of each domain."""

    async def load(self, domain: str) -> PolicySnapshot | None:
        """Return the stored policy of ``domain``; raise StoreError on failure."""
        ...

    async def save(self, domain: str, snapshot: PolicySnapshot) -> None:
        """Replace the stored policy of ``domain``; raise StoreError on failure."""
        ...


@dataclass(frozen=True)
class UnavailableHistory:
    """A stand-in for a database that cannot be used; ``reason`` explains why.

    The drift check reports ``reason`` as a note instead of comparing.
    """

    reason: str


def normalised_body(policy: Policy) -> str:
    """Return the policy fields senders act on, in one fixed layout.

    Line endings, spacing, key case, line order, repeated mx lines and
    extension fields that senders ignore do not change the result.
    """
    lines = [
        f"version: {policy.version}",
        f"mode: {policy.mode}",
        f"max_age: {policy.max_age}",
    ]
    lines += [f"mx: {pattern}" for pattern in sorted(set(policy.mx_patterns))]
    return "\n".join(lines) + "\n"


def snapshot_of(policy_id: str, policy: Policy, now: datetime) -> PolicySnapshot:
    """Build the snapshot of a policy fetched at ``now``."""
    digest = hashlib.sha256(normalised_body(policy).encode()).hexdigest()
    mx = tuple(sorted(set(policy.mx_patterns)))
    return PolicySnapshot(policy_id, digest, policy.mode, mx, policy.max_age, now, now)


def compare(
    domain: str, previous: PolicySnapshot | None, current: PolicySnapshot
) -> tuple[PolicySnapshot, Finding | None]:
    """Compare the policy fetched now with the stored one.

    Returns the snapshot to store and the finding, if any. ``current`` is
    the fresh snapshot from ``snapshot_of``, and its ``fetched_at`` is the
    time of this audit.
    """
    now = current.fetched_at
    if previous is None:
        detail = (
            f"first policy stored for id={current.policy_id}: later audits "
            "report a policy that changes while id= stays the same"
        )
        return current, _finding(domain, Status.OK, "mta_sts_policy_stored", detail)

    changes = describe_changes(previous, current)
    # Digests of equal fields differ only if normalised_body changed between
    # versions of this program, which is no change for senders.
    same_body = previous.body_sha256 == current.body_sha256 or not changes
    same_id = previous.policy_id == current.policy_id
    if same_body and same_id:
        return _unchanged(domain, previous, current)
    if same_body:
        # A new id makes every sender fetch the policy again, which ends
        # any earlier drift.
        stored = replace(current, changed_at=previous.changed_at)
        detail = (
            f"id changed from {previous.policy_id} to {current.policy_id} but the "
            "policy is the same: senders fetch it again and nothing changes for them"
        )
        return stored, _finding(
            domain, Status.OK, "mta_sts_id_changed_same_body", detail
        )
    if not same_id:
        detail = (
            f"policy updated ({changes}) together with its id, from "
            f"{previous.policy_id} to {current.policy_id}: senders fetch the new policy"
        )
        return current, _finding(domain, Status.OK, "mta_sts_policy_updated", detail)

    # The body changed at some moment after previous.fetched_at. A sender
    # may have fetched the old body just before that moment, so it can keep
    # the old policy for up to its max_age after now.
    stale_until = now + timedelta(seconds=previous.max_age)
    if previous.stale_until is not None:
        stale_until = max(stale_until, previous.stale_until)
    stored = replace(current, stale_until=stale_until, stale_changes=changes)
    return stored, _drift_finding(domain, stored, stale_until)


def _unchanged(
    domain: str, previous: PolicySnapshot, current: PolicySnapshot
) -> tuple[PolicySnapshot, Finding | None]:
    unchanged = replace(current, changed_at=previous.changed_at)
    stale_until = previous.stale_until
    if stale_until is None or stale_until <= current.fetched_at:
        # Every copy of a policy replaced under the same id has expired, so
        # the drift no longer matters.
        return unchanged, None
    stored = replace(
        unchanged, stale_until=stale_until, stale_changes=previous.stale_changes
    )
    return stored, _drift_finding(domain, stored, stale_until)


def _drift_finding(
    domain: str, snapshot: PolicySnapshot, stale_until: datetime
) -> Finding:
    until = stale_until.strftime("%Y-%m-%d %H:%M UTC")
    changed = snapshot.changed_at.strftime("%Y-%m-%d %H:%M UTC")
    detail = (
        f"the policy changed ({snapshot.stale_changes}) but the _mta-sts TXT "
        f"record still has id={snapshot.policy_id}. The new policy was first "
        f"fetched {changed}. Senders that cached the old policy keep using it "
        f"until it expires, at the latest {until}. Publish a new id= in the "
        f"_mta-sts.{domain} TXT record so that they fetch the new policy now"
    )
    return _finding(domain, Status.ERROR, "mta_sts_changed_same_id", detail)


def describe_changes(previous: PolicySnapshot, current: PolicySnapshot) -> str:
    """Describe what differs between two policies: mode, mx patterns, max_age.

    Returns an empty string when none of them differ.
    """
    parts: list[str] = []
    if previous.mode != current.mode:
        parts.append(f"mode {previous.mode} -> {current.mode}")
    added = sorted(set(current.mx) - set(previous.mx))
    removed = sorted(set(previous.mx) - set(current.mx))
    if added:
        parts.append(f"mx added {', '.join(added)}")
    if removed:
        parts.append(f"mx removed {', '.join(removed)}")
    if previous.max_age != current.max_age:
        parts.append(f"max_age {previous.max_age} -> {current.max_age} s")
    return "; ".join(parts)


async def check_drift(
    history: PolicyHistory | UnavailableHistory,
    domain: str,
    policy_id: str,
    policy: Policy,
    now: datetime | None = None,
) -> list[Finding]:
    """Compare the policy fetched for ``domain`` with the stored one and store it.

    A database that is missing or fails gives a note instead of a drift
    finding, because the failure is no defect of the domain. When only the
    save fails, the comparison still stands and the warning follows it.
    """
    if isinstance(history, UnavailableHistory):
        detail = f"policy drift not checked: {history.reason}"
        return [_finding(domain, Status.OK, "mta_sts_drift_not_checked", detail)]
    current = snapshot_of(policy_id, policy, now or datetime.now(UTC))
    try:
        previous = await history.load(domain)
    except StoreError as exc:
        return [_store_failed(domain, "policy drift not checked", exc)]
    stored, finding = compare(domain, previous, current)
    findings = [finding] if finding is not None else []
    try:
        await history.save(domain, stored)
    except StoreError as exc:
        findings.append(_store_failed(domain, "fetched policy not stored", exc))
    return findings


def _store_failed(domain: str, effect: str, error: StoreError) -> Finding:
    log.warning("mta_sts_history_failed", domain=domain, error=str(error))
    detail = (
        f"{effect}: the database failed: {error}. Check database.url and that "
        "the database accepts writes"
    )
    return _finding(domain, Status.WARNING, "mta_sts_drift_not_checked", detail)


def _finding(domain: str, status: Status, reason: str, detail: str) -> Finding:
    return Finding(domain, Check.MTA_STS, status, reason, detail)
