"""The classifier against the labelled corpus in tests/corpus/manifest.tsv.

Rows listed in known_failures.tsv are expected to fail (xfail, not strict),
each with the reason it still fails, so a fix shows up as XPASS. A label
that keeps an RFC 2047 encoded-word local part matches the decoded address
the classifier reports, as bench/classify_accuracy.py does.
"""

from __future__ import annotations

import base64
import csv
from functools import cache
from pathlib import Path

import pytest

from watchdog.classify import Verdict, classify

CORPUS = Path(__file__).parent.parent / "corpus"
KNOWN_FAILURES = Path(__file__).parent / "known_failures.tsv"


def _rows() -> list[dict[str, str]]:
    with (CORPUS / "manifest.tsv").open(encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream, delimiter="\t"))


def _known_failures() -> dict[str, str]:
    with KNOWN_FAILURES.open(encoding="utf-8") as stream:
        pairs = (line.rstrip("\n").split("\t", 1) for line in stream)
        return {p[0]: p[1] for p in pairs if len(p) == 2 and not p[0].startswith("#")}


def _cases() -> list[object]:
    failing = _known_failures()
    cases: list[object] = []
    for row in _rows():
        marks = []
        if row["id"] in failing:
            marks.append(pytest.mark.xfail(reason=failing[row["id"]], strict=False))
        cases.append(pytest.param(row, id=row["id"], marks=marks))
    return cases


def _encoded_form(address: str) -> str:
    local, _at, domain = address.rpartition("@")
    if local.isascii():
        return address
    encoded = base64.b64encode(local.encode()).decode("ascii")
    return f"=?utf-8?B?{encoded}?=@{domain}"


@cache
def _verdict(path: str) -> Verdict:
    return classify((CORPUS / path).read_bytes())


@pytest.mark.parametrize("row", _cases())
def test_sample(row: dict[str, str]) -> None:
    verdict = _verdict(row["path"])
    wanted = {
        row["expected_recipient"].lower(),
        row["expected_recipient_alias"].lower(),
    }
    wanted.discard("")
    found = [
        r
        for r in verdict.recipients
        if {
            r.address.lower(),
            (r.original_address or "").lower(),
            _encoded_form(r.address).lower(),
        }
        & wanted
    ]
    if row["expected_reason"] == "not-bounce":
        assert verdict.kind == "not_bounce"
        return
    if not wanted:
        assert verdict.kind in {"complaint", "auto_reply"}
        return
    assert found, f"no recipient {sorted(wanted)} in {verdict.recipients}"
    recipient = found[0]
    assert recipient.reason == row["expected_reason"]
    expected_hard = row["hard_or_soft"] == "hard"
    assert recipient.hard is expected_hard
    assert (recipient.status or "") == row["expected_status"]
