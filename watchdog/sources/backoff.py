"""When to try a failed source again: capped exponential backoff with jitter.

The policy is a plain object driven by the caller's loop and a clock it is
given, so it is tested without sockets or sleeping. Ordinary failures
(timeouts, lost connections, protocol errors) back off from 1 s up to 5 min.
A rejected login is a configuration error, and retrying it quickly can lock
the account, so it backs off from 1 min up to 15 min.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class FailureKind(StrEnum):
    """Kind of failure, which selects the backoff schedule."""

    TRANSIENT = "transient"
    AUTH = "auth"


@dataclass(frozen=True, slots=True)
class Schedule:
    """Delays in seconds: ``initial`` doubled per failure, capped at ``maximum``."""

    initial: float
    maximum: float


TRANSIENT_SCHEDULE = Schedule(initial=1.0, maximum=300.0)
AUTH_SCHEDULE = Schedule(initial=60.0, maximum=900.0)


class Backoff:
    """Track consecutive failures and the earliest time of the next attempt.

    ``jitter`` is the fraction of each delay drawn at random and taken off, so
    workers that failed together do not retry together: with 0.2 a 10 s step
    waits between 8 and 10 s.
    """

    def __init__(
        self,
        *,
        transient: Schedule = TRANSIENT_SCHEDULE,
        auth: Schedule = AUTH_SCHEDULE,
        jitter: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if not 0.0 <= jitter < 1.0:
            msg = f"jitter must be in [0, 1), not {jitter!r}"
            raise ValueError(msg)
        self._schedules = {FailureKind.TRANSIENT: transient, FailureKind.AUTH: auth}
        self._jitter = jitter
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._failures = 0
        self._next_attempt = 0.0

    @property
    def failures(self) -> int:
        """Consecutive failures since the last success."""
        return self._failures

    def record_failure(self, kind: FailureKind = FailureKind.TRANSIENT) -> float:
        """Count a failure and return the delay in seconds before the next try."""
        schedule = self._schedules[kind]
        exponent = min(self._failures, 32)
        step = min(schedule.initial * 2.0**exponent, schedule.maximum)
        delay = step * (1.0 - self._jitter * self._rng.random())
        self._failures += 1
        self._next_attempt = self._clock() + delay
        return delay

    def record_success(self) -> None:
        """Reset the schedule so the next failure starts at the initial delay."""
        self._failures = 0
        self._next_attempt = 0.0

    def remaining(self) -> float:
        """Return the seconds left before the next attempt is allowed, or 0."""
        return max(0.0, self._next_attempt - self._clock())
