"""Fault points for the crash tests: no effect unless WATCHDOG_TEST_FAULT is set.

``WATCHDOG_TEST_FAULT=after_commit:kill`` makes the first pass through the
``after_commit`` point kill the process with SIGKILL; ``term`` sends SIGTERM
and ``raise`` raises FaultInjected. The crash tests run the mailbox cycle in
a subprocess with this variable to prove that no message is lost or counted
twice whichever step the process dies after.
"""

from __future__ import annotations

import os
import signal

ENV_VARIABLE = "WATCHDOG_TEST_FAULT"
POINTS = frozenset({"after_fetch", "mid_batch", "after_commit", "after_move"})

_fired: set[str] = set()


class FaultInjected(RuntimeError):
    """Raised at a fault point in ``raise`` mode."""


def fault_point(name: str) -> None:
    """Trigger the fault configured for ``name``, once per process."""
    setting = os.environ.get(ENV_VARIABLE)
    if not setting or name in _fired:
        return
    point, _, mode = setting.partition(":")
    if point != name:
        return
    _fired.add(name)
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif mode == "term":
        os.kill(os.getpid(), signal.SIGTERM)
    else:
        msg = f"fault injected at {name!r} by {ENV_VARIABLE}={setting!r}"
        raise FaultInjected(msg)


def reset_fault_points() -> None:
    """Arm every fault point again, for tests that inject in-process."""
    _fired.clear()
