"""mail-watchdog scan-log: counts of Postfix log files, as a table or JSON."""

from __future__ import annotations

import gzip
import json
import os
import threading
from pathlib import Path

from typer.testing import CliRunner

from tests.sources.mta_log.samples import (
    EXPECTED_ATTEMPTS,
    EXPECTED_DEFERRALS,
    SAMPLE,
    sample_lines,
)
from watchdog.cli import app

runner = CliRunner()


def _json(*args: str) -> dict[str, object]:
    result = runner.invoke(app, ["scan-log", "--format", "json", *args])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def _attempts(data: dict[str, object]) -> dict[tuple[str, str], int]:
    rows = data["attempts"]
    assert isinstance(rows, list)
    return {(row["status"], row["provider"]): row["count"] for row in rows}


def test_scan_log_json() -> None:
    """JSON output has the sample's counts per status and provider."""
    data = _json(str(SAMPLE))
    assert _attempts(data) == EXPECTED_ATTEMPTS
    deferrals = data["deferrals"]
    assert isinstance(deferrals, list)
    assert {(r["provider"], r["reason"]): r["count"] for r in deferrals} == (
        EXPECTED_DEFERRALS
    )
    assert data["still_deferred_recipients"] == 0


def test_scan_log_rotated_files(tmp_path: Path) -> None:
    """A log split over a gzip rotation and the live file counts the same."""
    lines = sample_lines()
    old = tmp_path / "mail.log.1.gz"
    with gzip.open(old, "wb") as stream:
        stream.write(b"".join(line + b"\n" for line in lines[:45]))
    live = tmp_path / "mail.log"
    live.write_bytes(b"".join(line + b"\n" for line in lines[45:]))
    assert _attempts(_json(str(old), str(live))) == EXPECTED_ATTEMPTS


def test_scan_log_compression_by_content(tmp_path: Path) -> None:
    """Compression is detected by the file's first bytes, not by its name."""
    packed = tmp_path / "mail.log.2"
    packed.write_bytes(gzip.compress(SAMPLE.read_bytes()))
    assert _attempts(_json(str(packed))) == EXPECTED_ATTEMPTS
    plain = tmp_path / "mail.log.3.gz"
    plain.write_bytes(SAMPLE.read_bytes())
    assert _attempts(_json(str(plain))) == EXPECTED_ATTEMPTS


def test_scan_log_corrupt_gzip(tmp_path: Path) -> None:
    """Damaged compressed data fails with the file's name, not a traceback."""
    data = bytearray(gzip.compress(SAMPLE.read_bytes(), mtime=0))
    for start, end in [(100, 160), (len(data) - 8, len(data) - 4)]:
        data[start:end] = b"Z" * (end - start)
        damaged = tmp_path / "mail.log.2.gz"
        damaged.write_bytes(bytes(data))
        result = runner.invoke(app, ["scan-log", str(damaged)])
        assert result.exit_code == 1
        assert isinstance(result.exception, SystemExit)
        assert f"cannot read MTA log {str(damaged)!r}" in result.output


def test_scan_log_table() -> None:
    """The table shows one row per provider with its delivered share."""
    result = runner.invoke(app, ["scan-log", str(SAMPLE)])
    assert result.exit_code == 0, result.output
    assert "Delivery attempts by provider" in result.stdout
    row = next(line for line in result.stdout.splitlines() if " gmail " in line)
    assert "66.7%" in row
    assert "policy" in result.stdout


def test_scan_log_missing_file(tmp_path: Path) -> None:
    """A missing file exits 2 and names the path."""
    missing = tmp_path / "nope.log"
    result = runner.invoke(app, ["scan-log", str(missing)])
    assert result.exit_code == 2
    assert str(missing) in result.output


def test_scan_log_settings(tmp_path: Path) -> None:
    """ignore_relays applies as in the daemon.

    Expiries name no relay, so they still count, under ``unknown`` because
    the deferrals before them were to an ignored relay.
    """
    config = tmp_path / "watchdog.toml"
    config.write_text('[mta_log]\nignore_relays = ["127.0.0.1[127.0.0.1]:*"]\n')
    data = _json("--config", str(config), str(SAMPLE))
    assert _attempts(data) == {("expired", "unknown"): 3}


def test_scan_log_folder(tmp_path: Path) -> None:
    """A folder is rejected with a hint to name its files."""
    result = runner.invoke(app, ["scan-log", str(tmp_path)])
    assert result.exit_code == 2
    assert "is a folder" in result.output


def test_scan_log_pipe(tmp_path: Path) -> None:
    """A pipe is read like a file, as in scan-log <(zcat mail.log.2.gz)."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)

    def feed() -> None:
        with pipe.open("wb") as stream:
            stream.write(SAMPLE.read_bytes())

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    data = _json(str(pipe))
    writer.join(5)
    assert _attempts(data) == EXPECTED_ATTEMPTS


def test_scan_log_garbage(tmp_path: Path) -> None:
    """Binary garbage and overlong lines are counted, not fatal."""
    log = tmp_path / "mail.log"
    log.write_bytes(b"\x00\xff" * 50_000 + b"\n" + SAMPLE.read_bytes())
    data = _json(str(log))
    assert _attempts(data) == EXPECTED_ATTEMPTS
    assert data["lines"] == {
        "delivery": 34,
        "queue": 16,
        "skipped": 43,
        "too_long": 1,
    }
