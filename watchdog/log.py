"""Logging: structlog events as JSON lines, or a console layout on a terminal.

Log calls use a stable snake_case event name and pass values as fields::

    log.info("batch_done", mailbox="bounces", processed=100)

Records of other libraries (aioimaplib, APScheduler, uvicorn) go through the
same renderer. aioimaplib logs whole protocol lines, bodies and credentials
included, at DEBUG, so its logger is held at WARNING whatever the level.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = frozenset({"password", "secret", "token", "authorization", "key"})
# Held at WARNING or above: aioimaplib logs protocol lines with bodies and
# credentials at DEBUG, APScheduler and Alembic log every job run and
# migration step at INFO.
_QUIET_LIBRARIES = ("aioimaplib", "aioimaplib.aioimaplib", "apscheduler", "alembic")


def configure(level: str = "info", fmt: str = "auto") -> None:
    """Configure structlog and the standard library's logging once per process.

    ``fmt`` is ``json``, ``console`` or ``auto`` (console on a terminal).
    """
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer()
        if use_console
        else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    # flufl.bounce logs each exception in its heuristic detectors with a
    # traceback at ERROR, and the fallback detector reads those as "no bounce".
    logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)

    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def _redact(
    logger: Any, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace the value of any field whose name marks it as a secret."""
    del logger, method
    for key in event:
        if key.lower() in _SECRET_KEYS or key.lower().endswith("_password"):
            event[key] = "[redacted]"
    return event
