"""/metrics and /healthz served by uvicorn on a real loopback socket."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request

import pytest
from structlog.testing import capture_logs

from watchdog.http import HttpServer, SourceHealth, create_app
from watchdog.metrics import Metrics


class FixedHealth:
    def __init__(self, sources: list[SourceHealth]) -> None:
        self.sources = sources

    def source_health(self) -> list[SourceHealth]:
        return self.sources


async def database_ok() -> None:
    return None


async def database_down() -> None:
    raise ConnectionError("connection refused")


FRESH = SourceHealth("bounces", "ok", poll_interval_seconds=60, age_seconds=5)
STALE = SourceHealth("fbl", "failing", poll_interval_seconds=60, age_seconds=181)


async def fetch(port: int, path: str) -> tuple[int, str, str]:
    def get() -> tuple[int, str, str]:
        url = f"http://127.0.0.1:{port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body = response.read().decode()
                return response.status, response.headers["content-type"], body
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers["content-type"], exc.read().decode()

    return await asyncio.to_thread(get)


async def serve(sources, check, path, metrics=None):
    app = create_app(metrics or Metrics(), FixedHealth(sources), check)
    server = HttpServer(app, "127.0.0.1", 0)
    await server.start()
    try:
        return await fetch(server.port, path)
    finally:
        await server.stop()


async def test_metrics_exposition() -> None:
    metrics = Metrics()
    metrics.message("bounces", "bounce", "processed")
    status, content_type, body = await serve([], database_ok, "/metrics", metrics)
    assert status == 200
    assert content_type.startswith("text/plain")
    assert 'mailwatchdog_build_info{version="' in body
    assert (
        'mailwatchdog_mailbox_messages_total{kind="bounce",mailbox="bounces",'
        'outcome="processed"} 1.0' in body
    )


async def test_metrics_without_created_series() -> None:
    metrics = Metrics()
    metrics.message("bounces", "bounce", "processed")
    _, _, body = await serve([], database_ok, "/metrics", metrics)
    assert "_created" not in body


async def test_healthz_ok() -> None:
    status, content_type, body = await serve([FRESH], database_ok, "/healthz")
    data = json.loads(body)
    assert status == 200
    assert content_type == "application/json"
    assert data["status"] == "ok"
    assert data["database"] == "ok"
    assert data["sources"]["bounces"]["state"] == "ok"
    assert data["sources"]["bounces"]["last_success_age_seconds"] == 5


async def test_healthz_stale_poll_degraded() -> None:
    status, _, body = await serve([FRESH, STALE], database_ok, "/healthz")
    data = json.loads(body)
    assert status == 503
    assert data["status"] == "degraded"
    assert data["sources"]["fbl"]["state"] == "stale"
    assert data["sources"]["bounces"]["state"] == "ok"


async def test_healthz_three_intervals_still_fresh() -> None:
    edge = SourceHealth("bounces", "ok", poll_interval_seconds=60, age_seconds=180)
    status, _, _ = await serve([edge], database_ok, "/healthz")
    assert status == 200


async def test_healthz_database_down_degraded() -> None:
    status, _, body = await serve([FRESH], database_down, "/healthz")
    data = json.loads(body)
    assert status == 503
    assert data["database"] == "failed"


async def test_healthz_without_sources() -> None:
    status, _, body = await serve([], database_ok, "/healthz")
    assert status == 200
    assert json.loads(body)["sources"] == {}


async def test_port_in_use_raises() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = create_app(Metrics(), FixedHealth([]), database_ok)
        with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
            await HttpServer(app, "127.0.0.1", port).start()


async def test_database_failure_logged_once() -> None:
    app = create_app(Metrics(), FixedHealth([FRESH]), database_down)
    server = HttpServer(app, "127.0.0.1", 0)
    await server.start()
    try:
        with capture_logs() as logs:
            for _ in range(3):
                status, _, _ = await fetch(server.port, "/healthz")
    finally:
        await server.stop()
    failures = [e for e in logs if e["event"] == "health_database_failed"]
    assert status == 503
    assert len(failures) == 1
    assert failures[0]["error"] == "ConnectionError: connection refused"
