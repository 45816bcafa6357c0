"""The backoff policy, driven by a fake clock."""

from __future__ import annotations

import random

import pytest

from watchdog.sources.backoff import Backoff, FailureKind


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(jitter: float = 0.0) -> tuple[Backoff, FakeClock]:
    clock = FakeClock()
    return Backoff(jitter=jitter, clock=clock, rng=random.Random(7)), clock


def test_transient_doubles_to_cap() -> None:
    """Transient delays double from 1 s and stop at 5 min."""
    backoff, _ = make()
    delays = [backoff.record_failure() for _ in range(12)]
    assert delays[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(delays) == 300.0
    assert delays[-1] == 300.0


def test_auth_backs_off_to_15_min() -> None:
    """Rejected logins start at 1 min and stop at 15 min."""
    backoff, _ = make()
    delays = [backoff.record_failure(FailureKind.AUTH) for _ in range(6)]
    assert delays[0] == 60.0
    assert delays[-1] == 900.0


def test_remaining_follows_clock() -> None:
    """The wait shrinks as the clock moves and ends at zero."""
    backoff, clock = make()
    backoff.record_failure()
    backoff.record_failure()
    assert backoff.remaining() == 2.0
    clock.now += 1.5
    assert backoff.remaining() == pytest.approx(0.5)
    clock.now += 1.0
    assert backoff.remaining() == 0.0


def test_success_resets() -> None:
    """After a success the next failure starts again at 1 s."""
    backoff, _ = make()
    for _ in range(5):
        backoff.record_failure()
    backoff.record_success()
    assert backoff.failures == 0
    assert backoff.remaining() == 0.0
    assert backoff.record_failure() == 1.0


def test_jitter_bounds() -> None:
    """Jitter only shortens a step, by at most its fraction."""
    backoff, _ = make(jitter=0.2)
    delays = []
    for _ in range(200):
        backoff.record_success()
        for _ in range(4):
            delay = backoff.record_failure()
        delays.append(delay)
    assert min(delays) >= 6.4
    assert max(delays) <= 8.0
    assert len(set(delays)) > 100


def test_many_failures_no_overflow() -> None:
    """Thousands of failures keep the delay at the cap."""
    backoff, _ = make()
    for _ in range(5000):
        delay = backoff.record_failure()
    assert delay == 300.0


def test_invalid_jitter() -> None:
    """A jitter of 1 or more is rejected."""
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter=1.0)
