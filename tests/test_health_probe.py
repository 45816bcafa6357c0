"""The /healthz database probe when the database check hangs."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from watchdog import http


async def test_hung_check_reported_and_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A check that does not return fails the probe and is awaited again, not rerun."""
    monkeypatch.setattr(http, "DATABASE_CHECK_SECONDS", 0.05)
    release = asyncio.Event()
    started = 0

    async def check() -> None:
        nonlocal started
        started += 1
        await release.wait()

    probe = http._DatabaseProbe(check)
    with capture_logs() as logs:
        first = await probe()
        second = await probe()
        release.set()
        third = await probe()
    events = [entry["event"] for entry in logs]
    assert first is False
    assert second is False
    assert third is True
    assert started == 1
    assert events == ["health_database_failed", "health_database_recovered"]
    assert "did not return within 0.05 s" in logs[0]["error"]
