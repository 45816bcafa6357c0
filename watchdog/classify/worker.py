"""Classification in worker processes with CPU, memory and wall-clock limits.

Hostile messages can make the email parser or flufl.bounce run for seconds
or allocate without bound, so ``classify`` never runs in the daemon's own
process. Each worker is a child process with ``RLIMIT_AS`` set once and
``RLIMIT_CPU`` re-armed before every message. The parent waits for the reply
under a wall-clock deadline. A worker that hits a limit is killed and a fresh
one takes its slot on the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import math
import multiprocessing
import os
import resource
import signal
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext, SpawnContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchdog.config import Limits
from watchdog.pipeline import ClassifyFailed
from watchdog.rules_path import RULES_DIR_VARIABLE

if TYPE_CHECKING:
    from watchdog.classify.verdict import Verdict
    from watchdog.metrics import Metrics

DEFAULT_TARGET = "watchdog.classify:classify"
_JOIN_SECONDS = 2.0
# Seconds a new worker may take to import the classifier and warm up.
_STARTUP_SECONDS = 30.0

_WARM_UP = b"From: <warm-up@localhost>\r\nSubject: warm-up\r\n\r\nwarm-up\r\n"

# Replies from the worker: (status, payload).
_READY = "ready"
_OK = "ok"
_ERROR = "error"
_MEMORY = "memory"


@dataclass(frozen=True, slots=True)
class _Worker:
    process: BaseProcess
    conn: Connection


class ClassifierPool:
    """Classifier that runs ``classify`` in ``size`` worker processes.

    Call it as ``await pool(raw)``. ``target`` names the classify function as
    ``module:function``, so tests can point it at functions that burn CPU or
    memory. ``rules_dir`` (the setting) is exported to each worker as
    ``WATCHDOG_RULES_DIR`` before it loads the rules. ``start_method`` is
    ``forkserver`` (default) or ``spawn``. The ``fork`` method is not
    offered because it is unsafe in a process that runs threads.
    """

    def __init__(
        self,
        limits: Limits,
        *,
        size: int | None = None,
        metrics: Metrics | None = None,
        target: str = DEFAULT_TARGET,
        start_method: str = "forkserver",
        rules_dir: Path | None = None,
    ) -> None:
        if start_method not in ("forkserver", "spawn"):
            msg = f"unsupported start method {start_method!r}: use forkserver or spawn"
            raise ValueError(msg)
        self.size = size if size is not None else (os.cpu_count() or 1)
        if self.size < 1:
            msg = f"invalid pool size {self.size!r}: use 1 or more workers"
            raise ValueError(msg)
        self._limits = limits
        self._metrics = metrics
        self._target = target
        self._rules_dir = None if rules_dir is None else str(rules_dir)
        self._context: ForkServerContext | SpawnContext
        if start_method == "forkserver":
            self._context = multiprocessing.get_context("forkserver")
            # Each worker is then a fork of a warm interpreter. Preloading
            # "__main__" also spares every worker a fresh import of the main
            # script, which for mail-watchdog pulls in the whole CLI.
            self._context.set_forkserver_preload(["__main__", "watchdog.classify"])
        else:
            self._context = multiprocessing.get_context("spawn")
        self._idle: asyncio.Queue[_Worker | None] = asyncio.Queue()
        self._busy: set[_Worker] = set()
        self._closed = False

    async def start(self) -> None:
        """Start every worker now rather than on first use."""
        workers = await asyncio.gather(*(self._spawn() for _ in range(self.size)))
        for worker in workers:
            self._idle.put_nowait(worker)

    async def __call__(self, raw: bytes) -> Verdict:
        """Classify ``raw`` in a worker.

        Raises ClassifyFailed with ``reason`` ``cpu``, ``memory``,
        ``deadline`` or ``error``. Raises RuntimeError after ``close()``.
        """
        if self._closed:
            raise RuntimeError("classifier pool is closed")
        if self._idle.empty() and len(self._busy) + self._idle.qsize() < self.size:
            self._idle.put_nowait(None)
        slot = await self._idle.get()
        try:
            worker = slot if slot is not None else await self._spawn()
        except BaseException:
            self._idle.put_nowait(None)
            raise
        self._busy.add(worker)
        healthy = False
        try:
            status, payload = await self._ask(worker, raw)
            healthy = status != _MEMORY
        finally:
            self._busy.discard(worker)
            if healthy and not self._closed:
                self._idle.put_nowait(worker)
            else:
                _kill(worker)
                self._idle.put_nowait(None)
        if status == _OK:
            return payload  # type: ignore[no-any-return]
        if status == _MEMORY:
            raise self._failed("memory", worker)
        raise ClassifyFailed(f"classify raised {payload}", reason="error")

    async def close(self) -> None:
        """Stop every worker. A message still in flight fails with ``error``."""
        self._closed = True
        for busy in self._busy:
            # The caller awaiting this worker gets EOF on the pipe and cleans up.
            busy.process.kill()
        while not self._idle.empty():
            slot = self._idle.get_nowait()
            if slot is not None:
                _kill(slot)

    async def _spawn(self) -> _Worker:
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_worker_main,
            args=(child_end, self._target, self._limits, self._rules_dir),
            name="mail-watchdog-classify",
            daemon=True,
        )
        worker = _Worker(process, parent_end)
        starting = asyncio.ensure_future(asyncio.to_thread(process.start))
        try:
            await asyncio.shield(starting)
        except asyncio.CancelledError:
            # The thread goes on starting the process, so it is killed once
            # started rather than left without a parent that talks to it.
            starting.add_done_callback(lambda _: _kill(worker))
            raise
        finally:
            child_end.close()
        try:
            await _readable(parent_end, _STARTUP_SECONDS)
            parent_end.recv()
        except (TimeoutError, EOFError, OSError) as exc:
            process.join(_JOIN_SECONDS)
            msg = (
                f"classifier worker failed to start with target {self._target!r} "
                f"(exit code {process.exitcode}): check that the module imports"
            )
            _kill(worker)
            raise ClassifyFailed(msg, reason="error") from exc
        except BaseException:
            # Cancelled while the worker starts up: it would write its ready
            # message into a closed pipe and print a traceback.
            _kill(worker)
            raise
        return worker

    async def _ask(self, worker: _Worker, raw: bytes) -> tuple[str, Any]:
        """Send ``raw`` to ``worker`` and return its reply.

        Raises ClassifyFailed when the worker died or missed the deadline.
        """
        try:
            worker.conn.send_bytes(raw)
            await _readable(worker.conn, self._limits.wall_seconds)
            reply: tuple[str, Any] = worker.conn.recv()
        except TimeoutError:
            raise self._failed("deadline", worker) from None
        except (EOFError, OSError):
            raise self._failed(self._death_reason(worker), worker) from None
        return reply

    def _death_reason(self, worker: _Worker) -> str:
        worker.process.join(_JOIN_SECONDS)
        if worker.process.exitcode == -signal.SIGXCPU:
            return "cpu"
        return "error"

    def _failed(self, reason: str, worker: _Worker) -> ClassifyFailed:
        if self._metrics is not None:
            self._metrics.worker_kills.labels(reason).inc()
        detail = _describe(reason, self._limits, worker)
        return ClassifyFailed(f"classifier worker killed: {detail}", reason=reason)


def _describe(reason: str, limits: Limits, worker: _Worker) -> str:
    if reason == "cpu":
        return f"used more than {limits.cpu_seconds} s of CPU (limits.cpu_seconds)"
    if reason == "memory":
        return f"needed more than {limits.memory_mb} MB (limits.memory_mb)"
    if reason == "deadline":
        return f"took longer than {limits.wall_seconds} s (limits.wall_seconds)"
    return f"worker exited with code {worker.process.exitcode} and no reply"


async def _readable(conn: Connection, seconds: float) -> None:
    """Wait until ``conn`` has data or is closed, at most ``seconds``."""
    loop = asyncio.get_running_loop()
    readable = loop.create_future()
    fd = conn.fileno()
    loop.add_reader(fd, _set_once, readable)
    try:
        async with asyncio.timeout(seconds):
            await readable
    finally:
        loop.remove_reader(fd)


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _kill(worker: _Worker) -> None:
    with contextlib.suppress(OSError):
        worker.conn.close()
    if worker.process.exitcode is None:
        worker.process.kill()
    worker.process.join(_JOIN_SECONDS)
    with contextlib.suppress(ValueError):
        worker.process.close()


def _worker_main(
    conn: Connection, target: str, limits: Limits, rules_dir: str | None
) -> None:
    """Serve classification requests until the parent closes the pipe."""
    # Ctrl-C reaches the whole process group, but only the parent handles it.
    # A worker ends when the parent closes the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Libraries such as flufl.bounce log tracebacks for hostile input. The
    # worker has no log configuration, so they would reach stderr as plain
    # text; the parent reports every outcome instead.
    logging.disable(logging.CRITICAL)
    if rules_dir is not None:
        # The forkserver's environment, not the parent's, reaches the
        # worker. No rule file is read before the warm-up below.
        os.environ[RULES_DIR_VARIABLE] = rules_dir
    classify = _load(target)
    # Rule files and detectors load on the first call. Loading them now
    # keeps that cost out of the first real message's deadline.
    _classify_one(classify, _WARM_UP, limits)
    memory = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    conn.send((_READY, None))
    while True:
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            # The parent closed the pipe, or reset it with a reply unread
            # when it gave up on a message (ConnectionResetError).
            return
        _arm_cpu_limit(limits.cpu_seconds)
        reply = _classify_one(classify, raw, limits)
        try:
            conn.send(reply)
        except OSError:  # the parent closed the pipe during classification
            return


def _classify_one(
    classify: Callable[[bytes, Limits], Any], raw: bytes, limits: Limits
) -> tuple[str, Any]:
    try:
        return _OK, classify(raw, limits)
    except MemoryError:
        return _MEMORY, None
    except Exception as exc:  # a bug in a detector
        return _ERROR, f"{type(exc).__name__}: {exc}"


def _arm_cpu_limit(seconds: int) -> None:
    """Let the next message use ``seconds`` of CPU on top of what was used.

    RLIMIT_CPU counts the whole life of the process, so the soft limit moves
    up before each message. The kernel sends SIGXCPU at the soft limit, and
    its default action ends the worker.
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # The limit is in whole seconds, so a message gets between ``seconds``
    # and ``seconds`` + 1 of CPU.
    soft = math.ceil(usage.ru_utime + usage.ru_stime + seconds)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _load(target: str) -> Callable[[bytes, Limits], Any]:
    module_name, _, attribute = target.partition(":")
    function: Callable[[bytes, Limits], Any] = getattr(
        importlib.import_module(module_name), attribute
    )
    return function
