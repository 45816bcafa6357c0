"""``mail-watchdog classify`` over files, folders, Maildirs and mbox files."""

from __future__ import annotations

import json
import mailbox
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from watchdog.classify.rules import default_rules
from watchdog.cli import app

CORPUS = Path(__file__).parent.parent / "corpus" / "emails"
_FIELDS = {
    "address",
    "original_address",
    "reason",
    "hard",
    "category",
    "status",
    "reply_code",
    "diagnostic",
}


def _json_lines(*paths: Path) -> list[dict[str, object]]:
    result = CliRunner().invoke(app, ["classify", "--format", "json", *map(str, paths)])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_json_shape() -> None:
    (row,) = _json_lines(CORPUS / "lhost-exim" / "lhost-exim-02.eml")
    assert set(row) == {"path", "kind", "detector", "recipients"}
    assert row["kind"] == "bounce"
    recipients = row["recipients"]
    assert isinstance(recipients, list)
    assert set(recipients[0]) == _FIELDS
    assert recipients[0]["reason"] == "userunknown"


def test_folder(tmp_path: Path) -> None:
    for sample in sorted((CORPUS / "rfc3834").glob("*.eml"))[:3]:
        shutil.copy(sample, tmp_path / sample.name)
    rows = _json_lines(tmp_path)
    assert len(rows) == 3
    assert {row["kind"] for row in rows} == {"auto_reply"}


def test_maildir(tmp_path: Path) -> None:
    box = mailbox.Maildir(tmp_path / "box")
    box.add((CORPUS / "lhost-qmail" / "lhost-qmail-01.eml").read_bytes())
    box.add((CORPUS / "arf" / "arf-02.eml").read_bytes())
    kinds = sorted(str(row["kind"]) for row in _json_lines(tmp_path / "box"))
    assert kinds == ["bounce", "complaint"]


def test_mbox(tmp_path: Path) -> None:
    box = mailbox.mbox(tmp_path / "bounces.mbox")
    box.add((CORPUS / "lhost-exim" / "lhost-exim-02.eml").read_bytes())
    box.add((CORPUS / "lhost-exim" / "lhost-exim-03.eml").read_bytes())
    box.flush()
    rows = _json_lines(tmp_path / "bounces.mbox")
    assert len(rows) == 2
    assert rows[0]["path"] != rows[1]["path"]


def test_table() -> None:
    result = CliRunner().invoke(app, ["classify", str(CORPUS / "arf" / "arf-02.eml")])
    assert result.exit_code == 0
    assert "complaint" in result.stdout


def test_missing_path(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["classify", str(tmp_path / "none")])
    assert result.exit_code == 2


def test_invalid_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    classify_rules = tmp_path / "classify"
    classify_rules.mkdir()
    (classify_rules / "10-bad.yaml").write_text("patterns:\n  - reason: nosuch\n")
    monkeypatch.setenv("WATCHDOG_RULES_DIR", str(tmp_path))
    default_rules.cache_clear()
    try:
        result = CliRunner().invoke(
            app, ["classify", str(CORPUS / "arf" / "arf-02.eml")]
        )
    finally:
        default_rules.cache_clear()
    assert result.exit_code == 2
    assert "10-bad.yaml" in result.stderr


def test_config_rules_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """classify --config reads the classify rules from the rules_dir setting."""
    classify_rules = tmp_path / "rules" / "classify"
    classify_rules.mkdir(parents=True)
    (classify_rules / "10-bad.yaml").write_text("patterns:\n  - reason: nosuch\n")
    config = tmp_path / "watchdog.toml"
    config.write_text(f"rules_dir = {str(tmp_path / 'rules')!r}\n")
    monkeypatch.delenv("WATCHDOG_RULES_DIR", raising=False)
    default_rules.cache_clear()
    try:
        result = CliRunner().invoke(
            app,
            ["classify", "--config", str(config), str(CORPUS / "arf" / "arf-02.eml")],
        )
    finally:
        # The command exports the setting into this process's environment;
        # remove it so later tests load the shipped rules.
        os.environ.pop("WATCHDOG_RULES_DIR", None)
        default_rules.cache_clear()
    assert result.exit_code == 2
    assert "10-bad.yaml" in result.stderr
