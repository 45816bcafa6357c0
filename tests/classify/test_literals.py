"""Tests for the literal prefilter of reason patterns."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from watchdog.classify.literals import required_literals
from watchdog.classify.rules import default_rules

CASES = [
    ("mailbox full", ("mailbox full",)),
    ("over ?quota", ("quota",)),
    ("user (unknown|not found)", ("not found", "unknown")),
    ("(foo|x)bar", ("bar",)),
    ("\\bUBE\\b", ("ube",)),
    ("(unknown)+ user", ("unknown",)),
    ("5\\.7\\.26\\b", ("5.7.26",)),
]


@pytest.mark.parametrize(("regex", "expected"), CASES)
def test_literals_found(regex: str, expected: tuple[str, ...]) -> None:
    assert required_literals(re.compile(regex, re.IGNORECASE)) == expected


@pytest.mark.parametrize(
    "regex",
    ["a|bc", "(mailbox)?", "[a-z]+", "x{0,3}yz", "full|.*", "b\u00fcro"],
)
def test_literals_unknown(regex: str) -> None:
    assert required_literals(re.compile(regex, re.IGNORECASE)) is None


def test_literals_lowercase() -> None:
    assert required_literals(re.compile("DMARC", re.IGNORECASE)) == ("dmarc",)


def test_literals_skip_lookahead() -> None:
    found = required_literals(re.compile("(?!.*rcpt to)unknown user"))
    assert found == ("unknown user",)


CORPUS = Path(__file__).parents[1] / "corpus" / "emails"


def _corpus_texts() -> list[str]:
    """Return each ASCII corpus message with blanks collapsed, as reasons does."""
    texts = []
    for path in sorted(CORPUS.rglob("*.eml")):
        text = " ".join(path.read_bytes().decode("utf-8", "replace").split())
        if text.isascii():
            texts.append(text)
    return texts


def test_rule_matches_contain_literal() -> None:
    """Every match of a rule in the corpus contains one of its literals."""
    texts = _corpus_texts()
    assert len(texts) > 100
    missed = []
    for pattern in default_rules().patterns:
        if pattern.literals is None:
            continue
        for text in texts:
            for match in pattern.regex.finditer(text):
                lowered = match.group(0).lower()
                if not any(literal in lowered for literal in pattern.literals):
                    missed.append((pattern.source, match.group(0)))
    assert missed == []
