"""DNS blocklist checks of the sending IPs and domains.

``run_blocklist_cycle`` is the entry point for the scheduler, and
``BlocklistMonitor`` the same with explicit state for tests and the CLI.
"""

from __future__ import annotations

from watchdog.checks.dnsbl.answer import Answer, Code, State, interpret
from watchdog.checks.dnsbl.catalogue import Severity, Zone, ZoneKind, load_catalogue
from watchdog.checks.dnsbl.cycle import (
    BlocklistMonitor,
    TransitionStore,
    next_delay,
    run_blocklist_cycle,
)
from watchdog.checks.dnsbl.history import History, Transition
from watchdog.checks.dnsbl.results import ZoneResult
from watchdog.checks.dnsbl.targets import Target, parse_target

__all__ = [
    "Answer",
    "BlocklistMonitor",
    "Code",
    "History",
    "Severity",
    "State",
    "Target",
    "Transition",
    "TransitionStore",
    "Zone",
    "ZoneKind",
    "ZoneResult",
    "interpret",
    "load_catalogue",
    "next_delay",
    "parse_target",
    "run_blocklist_cycle",
]
