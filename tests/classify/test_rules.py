"""The rules loader: schema errors name the file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchdog.classify.rules import default_rules, load_rules
from watchdog.errors import RulesError


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "10-test.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def test_shipped_rules_load() -> None:
    rules = default_rules()
    assert rules.patterns
    assert rules.statuses
    assert rules.auto_reply_subjects


def test_pattern_matches(tmp_path: Path) -> None:
    text = (
        "patterns:\n  - reason: mailboxfull\n    substring: 'box full'\n    note: t\n"
    )
    rules = load_rules(_write(tmp_path, text))
    found = rules.reason_for_text("550 5.2.2 Mailbox Full")
    assert found is not None
    assert found.reason == "mailboxfull"
    assert found.source == "10-test.yaml:2"


def test_unknown_reason(tmp_path: Path) -> None:
    text = "patterns:\n  - reason: nosuch\n    regex: x\n    note: t\n"
    with pytest.raises(RulesError) as caught:
        load_rules(_write(tmp_path, text))
    assert caught.value.line == 2
    assert caught.value.field == "reason"
    assert caught.value.path.endswith("10-test.yaml")


def test_missing_note(tmp_path: Path) -> None:
    text = "patterns:\n  - reason: blocked\n    regex: x\n"
    with pytest.raises(RulesError) as caught:
        load_rules(_write(tmp_path, text))
    assert caught.value.field == "note"


def test_invalid_regex(tmp_path: Path) -> None:
    text = "patterns:\n  - reason: blocked\n    note: t\n    regex: '('\n"
    with pytest.raises(RulesError) as caught:
        load_rules(_write(tmp_path, text))
    assert caught.value.field == "regex"


def test_regex_and_substring(tmp_path: Path) -> None:
    text = "patterns:\n  - {reason: blocked, note: t, regex: a, substring: b}\n"
    with pytest.raises(RulesError) as caught:
        load_rules(_write(tmp_path, text))
    assert caught.value.line == 2


def test_unknown_section(tmp_path: Path) -> None:
    with pytest.raises(RulesError) as caught:
        load_rules(_write(tmp_path, "\n\nreasons: []\n"))
    assert caught.value.line == 3
    assert caught.value.field == "reasons"


def test_invalid_status(tmp_path: Path) -> None:
    text = "statuses:\n  - {status: '5.1', reason: userunknown, note: t}\n"
    with pytest.raises(RulesError) as caught:
        load_rules(_write(tmp_path, text))
    assert caught.value.field == "status"


def test_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(RulesError) as caught:
        load_rules(_write(tmp_path, "patterns:\n  - [unclosed\n"))
    assert caught.value.line is not None


def test_files_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "20-b.yaml").write_text(
        "patterns:\n  - {reason: blocked, substring: full, note: b}\n"
    )
    (tmp_path / "05-a.yaml").write_text(
        "patterns:\n  - {reason: mailboxfull, substring: full, note: a}\n"
    )
    found = load_rules(tmp_path).reason_for_text("full")
    assert found is not None
    assert found.reason == "mailboxfull"


def _no_header(name: str) -> str | None:
    return None


def test_filtering_gateway_header(tmp_path: Path) -> None:
    text = "filtering_gateways:\n  - {header: X-Mailer, regex: '^m-FILTER', note: t}\n"
    rules = load_rules(_write(tmp_path, text))
    headers = {"X-Mailer": "m-FILTER"}
    assert rules.is_filtering_gateway(headers.get, "")
    assert not rules.is_filtering_gateway(_no_header, "X-Mailer: m-FILTER")


def test_filtering_gateway_report(tmp_path: Path) -> None:
    text = "filtering_gateways:\n  - {regex: '(?m)^---The following', note: t}\n"
    rules = load_rules(_write(tmp_path, text))
    assert rules.is_filtering_gateway(_no_header, "x\n---The following addresses")
    assert not rules.is_filtering_gateway(_no_header, "x ---The following")


def test_filtering_gateway_needs_note(tmp_path: Path) -> None:
    text = "filtering_gateways:\n  - regex: x\n"
    with pytest.raises(RulesError) as caught:
        load_rules(_write(tmp_path, text))
    assert caught.value.field == "note"
