"""``mail-watchdog run`` with an MTA log it cannot read, then can."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from tests.cli.test_run import running_daemon
from tests.servers.common import wait_until
from tests.sources.mta_log.samples import EXPECTED_ATTEMPTS, SAMPLE, daemon_config


def test_unreadable_log_retried(tmp_path: Path) -> None:
    """An unreadable log fails each poll in the log and /healthz, then recovers."""
    log = tmp_path / "mail.log"
    log.mkdir()
    with running_daemon(
        daemon_config(tmp_path, log, start_at="start"), tmp_path
    ) as daemon:

        def failures() -> list[dict[str, object]]:
            return [e for e in daemon.events() if e.get("event") == "poll_failed"]

        wait_until(lambda: len(failures()) >= 3, what="three failed polls")
        assert failures()[0]["source"] == "mta-log"
        assert "cannot read MTA log" in str(failures()[0]["error"])
        wait_until(lambda: daemon.get("/healthz")[0] == 503, what="degraded health")
        _, body = daemon.get("/healthz")
        assert "cannot read MTA log" in body

        shutil.rmtree(log)
        shutil.copy(SAMPLE, log)
        wait_until(lambda: daemon.get("/healthz")[0] == 200, what="recovery")
        time.sleep(0.5)
        _, metrics = daemon.get("/metrics")
        assert daemon.process.poll() is None
    sent = 'mailwatchdog_delivery_attempts_total{provider="gmail",status="sent"} '
    assert sent + f"{float(EXPECTED_ATTEMPTS['sent', 'gmail'])}" in metrics
    events = [e.get("event") for e in daemon.events()]
    assert "poll_recovered" in events
    assert events.index("mta_log_opened") < events.index("mta_log_stopped")
    opened = next(e for e in daemon.events() if e.get("event") == "mta_log_opened")
    assert opened["state_key"] == str(log)
    assert "Traceback" not in json.dumps(daemon.events())
