"""mail-watchdog scan, run as a subprocess over the real bounce corpus."""

from __future__ import annotations

import mailbox
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import postgres
from watchdog.store import Store

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "corpus" / "emails"
COMMAND = str(Path(sys.executable).with_name("mail-watchdog"))
SAMPLES = sorted((CORPUS / "lhost-postfix").glob("*.eml"))[:5]
FIFO_LIMIT = 30
"""Seconds a scan of a FIFO may take before it counts as blocked."""


def scan(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COMMAND, "scan", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        check=False,
    )


def store_counts(url: str) -> tuple[dict[str, int], dict[str, int], int]:
    store = Store(url)
    try:
        stats = store.stats()
        listed = len(store.list_suppressions())
    finally:
        store.close()
    return dict(stats.messages), dict(stats.events), listed


@pytest.fixture(scope="module")
def corpus_scan(tmp_path_factory: pytest.TempPathFactory):
    """Scan the whole corpus twice into one fresh SQLite file."""
    work = tmp_path_factory.mktemp("scan")
    url = f"sqlite:///{work / 'watchdog.db'}"
    first = scan(str(CORPUS), "--database", url, cwd=work)
    after_first = store_counts(url)
    second = scan(str(CORPUS), "--database", url, cwd=work)
    after_second = store_counts(url)
    return first, second, after_first, after_second


def test_corpus_scan_succeeds(corpus_scan) -> None:
    first, _, _, _ = corpus_scan
    assert first.returncode == 0, first.stderr
    assert "Messages by outcome" in first.stdout
    assert "Recipients by kind and reason" in first.stdout
    assert "Suppression list:" in first.stdout


def test_corpus_scan_records_events(corpus_scan) -> None:
    _, _, (messages, events, listed), _ = corpus_scan
    assert messages.get("processed", 0) > 100
    assert events.get("userunknown", 0) > 10
    assert listed > 10


def test_corpus_scan_reports_new_suppressions(corpus_scan) -> None:
    first, _, (_, _, listed), _ = corpus_scan
    assert f"New suppressions in this run: {listed}" in first.stdout


def test_rescan_counts_nothing_twice(corpus_scan) -> None:
    _, second, after_first, after_second = corpus_scan
    assert second.returncode == 0, second.stderr
    assert after_second == after_first


def test_rescan_reports_only_duplicates(corpus_scan) -> None:
    _, second, _, _ = corpus_scan
    assert "duplicate" in second.stdout
    assert "processed" not in second.stdout.split("Recipients by kind")[0]
    assert "New suppressions in this run: none" in second.stdout


def test_scan_without_terminal_prints_no_progress(corpus_scan) -> None:
    first, _, _, _ = corpus_scan
    assert "\r" not in first.stdout
    assert "━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━ " not in first.stdout


def test_scan_mbox_and_maildir(tmp_path: Path) -> None:
    box = mailbox.mbox(tmp_path / "bounces.mbox")
    for sample in SAMPLES:
        box.add(sample.read_bytes())
    box.close()
    maildir = mailbox.Maildir(tmp_path / "Maildir")
    for sample in SAMPLES[:2]:
        maildir.add(sample.read_bytes())
    url = f"sqlite:///{tmp_path / 'watchdog.db'}"
    result = scan(
        str(tmp_path / "bounces.mbox"),
        str(tmp_path / "Maildir"),
        "--database",
        url,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert f"scanned {len(SAMPLES) + 2} messages" in result.stdout
    messages, _, _ = store_counts(url)
    assert sum(messages.values()) == len(SAMPLES)


def test_scan_oversize_quarantined(tmp_path: Path) -> None:
    folder = tmp_path / "mail"
    folder.mkdir()
    shutil.copy(SAMPLES[0], folder / "big.eml")
    config = tmp_path / "watchdog.toml"
    config.write_text("[limits]\nmax_message_bytes = 100\n")
    url = f"sqlite:///{tmp_path / 'watchdog.db'}"
    result = scan(str(folder), "--config", str(config), "--database", url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    messages, _, _ = store_counts(url)
    assert messages == {"quarantined": 1}
    assert "quarantined" in result.stdout


def test_scan_default_database_in_working_directory(tmp_path: Path) -> None:
    result = scan(str(SAMPLES[0]), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "mail-watchdog.db").exists()


def test_scan_missing_path_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    result = scan(
        str(missing), "--database", f"sqlite:///{tmp_path / 'w.db'}", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "not found" in " ".join(result.stderr.split())
    assert not (tmp_path / "w.db").exists()


def test_scan_fifo_exit_2(tmp_path: Path) -> None:
    """A FIFO given as the path is rejected at once instead of blocking scan."""
    fifo = tmp_path / "bounces.fifo"
    os.mkfifo(fifo)
    done = subprocess.run(
        [COMMAND, "scan", str(fifo), "--database", f"sqlite:///{tmp_path / 'w.db'}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=FIFO_LIMIT,
        check=False,
    )
    assert done.returncode == 2
    assert "not a regular file or folder" in " ".join(done.stderr.split())


def test_scan_plain_path_database(tmp_path: Path) -> None:
    """A file path given to --database is rejected with the URL to use."""
    path = tmp_path / "w.db"
    result = scan(str(SAMPLES[0]), "--database", str(path), cwd=tmp_path)
    message = " ".join(result.stderr.split())
    assert result.returncode == 2
    assert f"use sqlite:///{path} " in message
    assert "from the command line" in message
    assert not path.exists()


@pytest.mark.postgres
def test_scan_postgres_rescan(tmp_path: Path) -> None:
    if not postgres.available():
        pytest.skip(f"no PostgreSQL at {postgres.admin_url()}")
    with postgres.fresh_database("mw_scan") as url:
        first = scan(str(CORPUS / "lhost-postfix"), "--database", url, cwd=tmp_path)
        after_first = store_counts(url)
        second = scan(str(CORPUS / "lhost-postfix"), "--database", url, cwd=tmp_path)
        after_second = store_counts(url)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert after_first[0].get("processed", 0) > 10
    assert after_second == after_first
    assert "New suppressions in this run: none" in second.stdout


def test_scan_rules_dir(tmp_path: Path) -> None:
    """The workers read the classify rules from the rules_dir setting.

    Invalid rules there make each verdict unknown, so the bounce that the
    shipped rules process is recorded as unrecognised.
    """
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    (rules / "classify" / "10-bad.yaml").write_text("patterns:\n  - reason: nosuch\n")
    config = tmp_path / "watchdog.toml"
    config.write_text(f"rules_dir = {str(rules)!r}\n")
    url = f"sqlite:///{tmp_path / 'watchdog.db'}"
    result = scan(
        str(SAMPLES[0]), "--config", str(config), "--database", url, cwd=tmp_path
    )
    messages, _, _ = store_counts(url)
    assert result.returncode == 0, result.stderr
    assert messages == {"unrecognised": 1}
