"""Measure the classifier against a manifest of labelled samples.

Usage: ``python bench/classify_accuracy.py MANIFEST [--failures]``

MANIFEST has the columns of tests/corpus/manifest.tsv; its ``path`` column
is relative to the manifest's folder. Each email is classified once. The
report shows agreement per family, the reason confusion matrix, rows of
``medium`` confidence separately, and as its last line the headline over
``high`` rows::

    rows=N hard_soft=..% reason=..% recipient=..% status=..%

Rows listed in bench/mislabelled.tsv (``id`` and ``reason`` columns) are
judged to carry a wrong label. They still count as failures in the
headline; the report prints how many there are.

The classifier decodes a local part written as RFC 2047 encoded-words,
but the manifest keeps such an address as the MTA wrote it, lower-cased.
So a recipient also matches as the UTF-8 ``B`` encoded-word of its local
part, the form the corpus samples use.
"""

from __future__ import annotations

import argparse
import base64
import csv
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from watchdog.classify import Verdict, classify
from watchdog.classify.verdict import RecipientVerdict

_CHECKS = ("hard_soft", "reason", "recipient", "status")
_MISLABELLED = Path(__file__).with_name("mislabelled.tsv")


@dataclass(frozen=True, slots=True)
class Outcome:
    """The comparison of one manifest row with the verdict for its email."""

    row: dict[str, str]
    got_reason: str
    checks: dict[str, bool]


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--failures", action="store_true", help="list failed rows")
    args = parser.parse_args(argv)
    rows = _read_manifest(args.manifest)
    verdicts: dict[str, Verdict] = {}
    for row in rows:
        if row["path"] not in verdicts:
            raw = (args.manifest.parent / row["path"]).read_bytes()
            verdicts[row["path"]] = classify(raw)
    outcomes = [_compare(row, verdicts[row["path"]]) for row in rows]
    high = [o for o in outcomes if o.row["label_confidence"] == "high"]
    medium = [o for o in outcomes if o.row["label_confidence"] == "medium"]
    _print_families(high)
    _print_confusion(high)
    _print_mislabelled(outcomes)
    print("\nmedium-confidence rows")
    print(_headline(medium))
    if args.failures:
        _print_failures(outcomes, verdicts)
    print(_headline(high))
    return 0


def _read_manifest(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream, delimiter="\t"))


def _compare(row: dict[str, str], verdict: Verdict) -> Outcome:
    recipient = _matching_recipient(row, verdict)
    chosen = recipient or (verdict.recipients[0] if verdict.recipients else None)
    got_reason = _reason_of(verdict, chosen)
    expected_hard = row["hard_or_soft"]
    if chosen is None or got_reason in {"feedback", "vacation", "delivered"}:
        got_hard = "none" if got_reason != "undefined" else "soft"
    else:
        got_hard = "hard" if chosen.hard else "soft"
    expected_status = row["expected_status"]
    got_status = chosen.status if chosen is not None else None
    checks = {
        "hard_soft": got_hard == expected_hard,
        "reason": got_reason == row["expected_reason"],
        "recipient": recipient is not None or not row["expected_recipient"],
        "status": (got_status or "") == expected_status,
    }
    return Outcome(row=row, got_reason=got_reason, checks=checks)


def _matching_recipient(
    row: dict[str, str], verdict: Verdict
) -> RecipientVerdict | None:
    wanted = {
        row[name].lower()
        for name in ("expected_recipient", "expected_recipient_alias")
        if row[name]
    }
    for recipient in verdict.recipients:
        names = {
            recipient.address.lower(),
            (recipient.original_address or "").lower(),
            encoded_form(recipient.address).lower(),
        }
        if names & wanted:
            return recipient
    return None


def encoded_form(address: str) -> str:
    """Return ``address`` with a non-ASCII local part as a UTF-8 encoded-word."""
    local, _at, domain = address.rpartition("@")
    if local.isascii():
        return address
    encoded = base64.b64encode(local.encode()).decode("ascii")
    return f"=?utf-8?B?{encoded}?=@{domain}"


def _reason_of(verdict: Verdict, recipient: RecipientVerdict | None) -> str:
    if recipient is not None:
        return recipient.reason
    if verdict.kind == "complaint":
        return "feedback"
    if verdict.kind == "auto_reply":
        return "vacation"
    if verdict.kind == "not_bounce":
        return "not-bounce"
    return "undefined"


def _percent(outcomes: list[Outcome], check: str) -> str:
    if not outcomes:
        return "n/a"
    passed = sum(1 for o in outcomes if o.checks[check])
    return f"{100 * passed / len(outcomes):.1f}%"


def _headline(outcomes: list[Outcome]) -> str:
    parts = [f"rows={len(outcomes)}"]
    parts += [f"{check}={_percent(outcomes, check)}" for check in _CHECKS]
    return " ".join(parts)


def _print_families(outcomes: list[Outcome]) -> None:
    by_family: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        by_family[outcome.row["family"]].append(outcome)
    print(f"{'family':24} {'rows':>4} " + " ".join(f"{c:>9}" for c in _CHECKS))
    for family in sorted(by_family):
        group = by_family[family]
        cells = " ".join(f"{_percent(group, c):>9}" for c in _CHECKS)
        print(f"{family:24} {len(group):>4} {cells}")


def _print_confusion(outcomes: list[Outcome]) -> None:
    pairs = Counter(
        (o.row["expected_reason"], o.got_reason)
        for o in outcomes
        if o.row["expected_reason"] != o.got_reason
    )
    print("\nreason confusion (expected -> got: rows), disagreements only")
    for (expected, got), count in pairs.most_common():
        print(f"  {expected:>16} -> {got:<16} {count}")


def _print_mislabelled(outcomes: list[Outcome]) -> None:
    if not _MISLABELLED.exists():
        return
    judged = {row["id"] for row in _read_manifest(_MISLABELLED)}
    present = [o for o in outcomes if o.row["id"] in judged]
    print(
        f"\nrows judged mislabelled in {_MISLABELLED.name}: {len(present)}, "
        "counted as failures"
    )


def _print_failures(outcomes: list[Outcome], verdicts: dict[str, Verdict]) -> None:
    print("\nfailed rows")
    for outcome in outcomes:
        failed = [c for c in _CHECKS if not outcome.checks[c]]
        if not failed:
            continue
        verdict = verdicts[outcome.row["path"]]
        got = [(r.address, r.reason, r.status) for r in verdict.recipients]
        row = outcome.row
        print(
            f"  {row['id']} [{','.join(failed)}] expected "
            f"{row['expected_reason']} {row['expected_status']} "
            f"{row['expected_recipient']} got {verdict.kind}/{verdict.detector} {got}"
        )


if __name__ == "__main__":
    sys.exit(main())
