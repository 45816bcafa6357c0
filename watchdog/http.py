"""The daemon's HTTP listener: ``/metrics`` and ``/healthz``.

Starlette serves both routes through uvicorn inside the daemon's own event
loop, so any ``/healthz`` response also proves that the loop is running.
``/healthz`` returns 200 when the database responds and every source polled
successfully within three poll intervals, and 503 otherwise. The JSON body
lists each source's state and the age of its last successful poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import prometheus_client
import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from watchdog.metrics import Metrics

STALE_INTERVALS = 3
DATABASE_CHECK_SECONDS = 5.0

log = structlog.get_logger("watchdog.http")


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """Health of one polled source, as the scheduler last saw it.

    ``age_seconds`` counts from the last successful poll, or from the start
    of the scheduler when no poll has succeeded yet.
    """

    name: str
    state: str
    poll_interval_seconds: float
    age_seconds: float
    last_error: str | None = None

    @property
    def stale(self) -> bool:
        """Whether the last success is older than three poll intervals."""
        return self.age_seconds > STALE_INTERVALS * self.poll_interval_seconds


class HealthSource(Protocol):
    """Anything that reports the health of the polled sources."""

    def source_health(self) -> list[SourceHealth]: ...


DatabaseCheck = Callable[[], Awaitable[None]]


def create_app(
    metrics: Metrics, health: HealthSource, check_database: DatabaseCheck
) -> Starlette:
    """Build the Starlette application serving ``/metrics`` and ``/healthz``.

    ``check_database`` raises when the database does not respond.
    """
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    probe = _DatabaseProbe(check_database)

    async def metrics_endpoint(request: Request) -> Response:
        del request
        body = prometheus_client.generate_latest(metrics.registry)
        return Response(body, media_type=prometheus_client.CONTENT_TYPE_LATEST)

    async def healthz_endpoint(request: Request) -> Response:
        del request
        body = await _health_body(health, probe)
        status = 200 if body["status"] == "ok" else 503
        return JSONResponse(body, status_code=status)

    return Starlette(
        routes=[
            Route("/metrics", metrics_endpoint),
            Route("/healthz", healthz_endpoint),
        ]
    )


class _DatabaseProbe:
    """Run the database check and log when its result changes.

    Orchestrators probe every few seconds, so a failure is logged once when
    it starts and once when it ends, not on every request. A check that has
    not returned is awaited again by the next request instead of starting
    another, so checks stuck behind a hung database call do not pile up.
    """

    def __init__(self, check: DatabaseCheck) -> None:
        self._check = check
        self._failing = False
        self._running: asyncio.Task[None] | None = None

    async def __call__(self) -> bool:
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._check())
        try:
            async with asyncio.timeout(DATABASE_CHECK_SECONDS):
                await asyncio.shield(self._running)
        except TimeoutError:
            error = f"database check did not return within {DATABASE_CHECK_SECONDS:g} s"
            return self._failed(error)
        except Exception as exc:  # every failure means "not healthy"
            return self._failed(f"{type(exc).__name__}: {exc}")
        if self._failing:
            log.info("health_database_recovered")
        self._failing = False
        return True

    def _failed(self, error: str) -> bool:
        if not self._failing:
            log.warning("health_database_failed", error=error)
        self._failing = True
        return False


async def _health_body(
    health: HealthSource, probe: _DatabaseProbe
) -> dict[str, object]:
    database = "ok" if await probe() else "failed"
    sources = health.source_health()
    healthy = database == "ok" and not any(s.stale for s in sources)
    return {
        "status": "ok" if healthy else "degraded",
        "database": database,
        "sources": {s.name: _source_body(s) for s in sources},
    }


def _source_body(source: SourceHealth) -> dict[str, object]:
    return {
        "state": "stale" if source.stale else source.state,
        "last_success_age_seconds": round(source.age_seconds, 3),
        "poll_interval_seconds": source.poll_interval_seconds,
        "last_error": source.last_error,
    }


class _LoopServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the daemon."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """The HTTP listener as a task in the running event loop."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        # uvicorn's own start and stop lines are not events; keep its warnings.
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            log_level="warning",
            access_log=False,
        )
        self._server = _LoopServer(config)
        self._host = host
        self._port = port
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The bound port, which differs from the configured one when that is 0."""
        if self._socket is None:
            return self._port
        return int(self._socket.getsockname()[1])

    async def start(self) -> None:
        """Bind and start serving.

        Raises OSError naming the address when it cannot be bound. The socket
        is bound here because uvicorn reports a bind failure with
        ``sys.exit``, which would end the whole daemon.
        """
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        try:
            self._socket = socket.create_server((self._host, self._port), family=family)
        except OSError as exc:
            msg = (
                f"cannot listen on {self._host}:{self._port}: {exc.strerror}; "
                "change http.host or http.port, or set http.enabled = false"
            )
            raise OSError(exc.errno, msg) from exc
        serve = self._server.serve(sockets=[self._socket])
        # The socket already listens, so requests queue until uvicorn serves.
        self._task = asyncio.create_task(serve, name="http")

    async def stop(self) -> None:
        """Close the listener and wait for open requests to finish."""
        if self._task is None:
            return
        self._server.should_exit = True
        await self._task
        if self._socket is not None:
            self._socket.close()
