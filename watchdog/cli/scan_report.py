"""The summary ``mail-watchdog scan`` prints: what this run did, then the list.

The first three tables count this run only, so a second scan of the same
files shows every message as a duplicate and nothing new. The suppression
list at the end is the whole list in the database.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from rich.console import Console
from rich.table import Table

from watchdog.classify.verdict import Kind
from watchdog.pipeline import Outcome, Result
from watchdog.store import Store

SHOWN_SUPPRESSIONS = 50

_MEANING = {
    Outcome.PROCESSED: "bounce, complaint or auto-reply recorded",
    Outcome.DUPLICATE: "same bytes recorded before; nothing counted again",
    Outcome.UNVERIFIED: "not sent from sending.domains; recorded, suppresses no one",
    Outcome.UNRECOGNISED: "no bounce, complaint or auto-reply found",
    Outcome.QUARANTINED: "over a limit or failed too often; check it by hand",
    Outcome.FAILED: "classification failed; retried on the next run",
}


@dataclass(slots=True)
class ScanTally:
    """Counts of one scan run, built from each message's Result."""

    outcomes: Counter[Outcome] = field(default_factory=Counter)
    recipients: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    suppressed: list[str] = field(default_factory=list)

    @property
    def messages(self) -> int:
        """Messages read in this run."""
        return sum(self.outcomes.values())

    def add(self, result: Result) -> None:
        """Count one message's outcome, recipients and new suppressions."""
        self.outcomes[result.outcome] += 1
        self.suppressed.extend(result.suppressed)
        if result.verdict is None or result.outcome is Outcome.DUPLICATE:
            return
        failure = result.verdict.kind is Kind.BOUNCE
        for recipient in result.verdict.recipients:
            # Complaints, auto-replies and delivery reports are no failure.
            severity = "-"
            if failure:
                severity = "hard" if recipient.hard else "soft"
            key = (result.verdict.kind.value, recipient.reason, severity)
            self.recipients[key] += 1


def print_report(console: Console, store: Store, tally: ScanTally) -> None:
    """Print this run's counts, then the suppression list from ``store``."""
    console.print(_outcomes_table(tally))
    console.print(_recipients_table(tally))
    console.print(_new_suppressions(tally))
    _print_suppressions(console, store)


def _outcomes_table(tally: ScanTally) -> Table:
    table = Table("outcome", "messages", "meaning", title="Messages by outcome")
    for outcome in Outcome:
        count = tally.outcomes.get(outcome, 0)
        if count:
            table.add_row(outcome.value, str(count), _MEANING[outcome])
    if not tally.outcomes:
        table.add_row("(none)", "0", "no messages found under the paths")
    return table


def _recipients_table(tally: ScanTally) -> Table:
    table = Table(
        "kind",
        "reason",
        "hard/soft",
        "recipients",
        title="Recipients by kind and reason",
    )
    for (kind, reason, severity), count in sorted(tally.recipients.items()):
        table.add_row(kind, reason, severity, str(count))
    if not tally.recipients:
        table.add_row("(none)", "", "", "0")
    return table


def _new_suppressions(tally: ScanTally) -> str:
    count = len(tally.suppressed)
    if not count:
        return "\nNew suppressions in this run: none"
    return f"\nNew suppressions in this run: {count}"


def _print_suppressions(console: Console, store: Store) -> None:
    by_reason = store.stats().suppressions
    total = sum(by_reason.values())
    entries = store.list_suppressions(limit=SHOWN_SUPPRESSIONS)
    reasons = ", ".join(f"{reason} {count}" for reason, count in by_reason.items())
    title = f"Suppression list: {total} addresses" + (f" ({reasons})" if total else "")
    table = Table("reason", "since", "expires", title=title)
    table.add_column("address", overflow="fold")
    for entry in entries:
        table.add_row(
            entry.reason.value,
            _date(entry.created_at),
            _date(entry.expires_at) if entry.expires_at else "never",
            entry.address,
        )
    if not entries:
        table.add_row("(empty)", "", "", "")
    console.print(table)
    if total > len(entries):
        more = total - len(entries)
        console.print(
            f"... and {more} more; mail-watchdog suppress list shows them all"
        )


def _date(value: datetime) -> str:
    return value.strftime("%Y-%m-%d")
