"""Tests for the shortcuts in reason matching: literals and ASCII forms."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from watchdog.classify.literals import required_literals
from watchdog.classify.rules import ascii_variant, default_rules

CASES = [
    ("mailbox full", ("mailbox full",)),
    ("over ?quota", ("quota",)),
    ("user (unknown|not found)", ("not found", "unknown")),
    ("(foo|x)bar", ("bar",)),
    ("\\bUBE\\b", ("ube",)),
    ("(unknown)+ user", ("unknown",)),
    ("5\\.7\\.26\\b", ("5.7.26",)),
    ("address rejected|address", ("address",)),
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
    """Return the start of each ASCII corpus message, blanks collapsed.

    Blanks are collapsed as reasons does. Only the first 4,000 characters
    are kept, so that searching every rule over the corpus stays quick.
    """
    texts = []
    for path in sorted(CORPUS.rglob("*.eml")):
        text = " ".join(path.read_bytes().decode("utf-8", "replace").split())
        if text.isascii():
            texts.append(text[:4000])
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


def test_ascii_variant_same_spans() -> None:
    """Each rule's re.ASCII form matches what the rule does on ASCII text."""
    texts = _corpus_texts()
    differ = []
    for pattern in default_rules().patterns:
        if pattern.ascii_regex is None:
            continue
        for text in texts:
            unicode_spans = [m.span() for m in pattern.regex.finditer(text)]
            ascii_spans = [m.span() for m in pattern.ascii_regex.finditer(text)]
            if unicode_spans != ascii_spans:
                differ.append((pattern.source, text[:80]))
    assert differ == []


def test_ascii_variant_skips_non_ascii() -> None:
    assert ascii_variant(re.compile("b\u00fcro", re.IGNORECASE)) is None
