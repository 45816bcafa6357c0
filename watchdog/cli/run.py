"""``mail-watchdog run`` (the daemon) and ``mail-watchdog scan`` (local files)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from watchdog.cli.choices import KindChoice
from watchdog.cli.console import error_text
from watchdog.cli.db import (
    EXIT_ERROR,
    EXIT_USAGE,
    ConfigOption,
    DatabaseOption,
    fail,
    open_database,
)
from watchdog.errors import ConfigError, RulesError, WatchdogError

if TYPE_CHECKING:
    from rich.progress import Progress

    from watchdog.cli.scan_report import ScanTally
    from watchdog.config import Settings
    from watchdog.store import Store

out = Console(highlight=False)

PathsArgument = Annotated[
    list[Path],
    typer.Argument(
        metavar="PATH",
        help="Maildirs, mbox files, .eml files or folders of them.",
        show_default=False,
    ),
]
KindOption = Annotated[
    KindChoice,
    typer.Option(
        "--kind",
        metavar="KIND",
        help="bounces or feedback: what the files contain, recorded as the source "
        "name scan-KIND. Each message is classified by its content either way.",
    ),
]


def run_command(database: DatabaseOption = None, config: ConfigOption = None) -> None:
    """Run the daemon: poll every configured source, serve /metrics and /healthz.

    Stops cleanly on SIGTERM or SIGINT and exits 0. Exits 2 on an invalid
    configuration and 1 when the database, the classifier workers or the
    HTTP listener fail to start, after logging daemon_failed.
    """
    # The daemon's modules (SQLAlchemy, aioimaplib, APScheduler, the
    # classifier) are imported here so that --help and light commands start
    # fast.
    import structlog  # noqa: PLC0415

    from watchdog import log as logging_setup  # noqa: PLC0415
    from watchdog.daemon import run_daemon  # noqa: PLC0415
    from watchdog.pipeline import ClassifyFailed  # noqa: PLC0415

    settings = _settings(database, config)
    logging_setup.configure(settings.log.level, settings.log.format)
    log = structlog.get_logger("watchdog.daemon")
    if not _has_work(settings):
        # Like ``config check``, which lists no sources as valid.
        log.warning(
            "nothing_configured",
            config=str(config) if config is not None else None,
            hint="no mailbox, local source, MTA log, sending IP or sending "
            "domain is configured, so the daemon only serves /metrics and "
            "/healthz: add [mailboxes.NAME], [local.NAME], [mta_log] or "
            "[sending] to the file named by --config or WATCHDOG_CONFIG",
        )
    try:
        asyncio.run(run_daemon(settings))
    except (WatchdogError, OSError, ClassifyFailed) as exc:
        log.error("daemon_failed", error=error_text(exc), error_type=type(exc).__name__)
        code = EXIT_USAGE if isinstance(exc, ConfigError | RulesError) else EXIT_ERROR
        raise typer.Exit(code) from None


def scan_command(
    paths: PathsArgument,
    database: DatabaseOption = None,
    config: ConfigOption = None,
    kind: KindOption = KindChoice.BOUNCES,
) -> None:
    """Classify local mail into the database and print a summary.

    Running it again on the same files records nothing twice: the database
    recognises each message by the SHA-256 of its bytes.
    """
    from watchdog import log as logging_setup  # noqa: PLC0415
    from watchdog.cli.scan_report import print_report  # noqa: PLC0415
    from watchdog.daemon import safe_database_url  # noqa: PLC0415
    from watchdog.pipeline import ClassifyFailed  # noqa: PLC0415

    settings = _settings(database, config)
    logging_setup.configure("warning", settings.log.format)
    for path in paths:
        if not path.exists():
            fail(f"mail source {str(path)!r} not found: check the path", EXIT_USAGE)
        if not path.is_dir() and not path.is_file():
            # Opening a FIFO would block until a writer appears.
            fail(
                f"mail source {str(path)!r} is not a regular file or folder: give "
                "a Maildir, an mbox file, an .eml file or a folder of them",
                EXIT_USAGE,
            )
    started = time.monotonic()
    store = open_database(settings)
    try:
        tally = asyncio.run(_scan(settings, store, paths, kind))
        print_report(out, store, tally)
    except (WatchdogError, ClassifyFailed) as exc:
        fail(str(exc))
    finally:
        store.close()
    seconds = time.monotonic() - started
    where = escape(safe_database_url(settings.database.url))
    out.print(f"\nscanned {tally.messages} messages in {seconds:.1f} s into {where}")


def _has_work(settings: Settings) -> bool:
    """Return whether the daemon has a source to poll or a target to check."""
    sending = settings.sending
    return bool(
        settings.mailboxes
        or settings.local
        or settings.mta_log.enabled
        or sending.ips
        or sending.domains
    )


def _settings(database: str | None, config: Path | None) -> Settings:
    from watchdog.config import load_settings  # noqa: PLC0415

    overrides = {"database.url": database} if database else {}
    try:
        return load_settings(config, **overrides)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)


async def _scan(
    settings: Settings, store: Store, paths: list[Path], kind: KindChoice
) -> ScanTally:
    # NOTE: the pipeline classifies each message by its content; ``kind``
    # only names the source ("scan-bounces", "scan-feedback") in the database.
    from watchdog.classify.worker import ClassifierPool  # noqa: PLC0415
    from watchdog.cli.scan_report import ScanTally  # noqa: PLC0415
    from watchdog.jobs.local import process_path  # noqa: PLC0415
    from watchdog.pipeline import Processor, Result  # noqa: PLC0415
    from watchdog.sources.local import LocalMessage, count_messages  # noqa: PLC0415

    source = f"scan-{kind.value}"
    tally = ScanTally()
    pool = ClassifierPool(
        settings.limits, size=settings.limits.workers, rules_dir=settings.rules_dir
    )
    await pool.start()
    try:
        processor = Processor(store, pool, settings)
        with _progress() as progress:
            for path in paths:
                task = progress.add_task(str(path), total=count_messages(path))

                def advance(message: LocalMessage, result: Result) -> None:
                    tally.add(result)
                    progress.advance(task)  # noqa: B023 - called inside this loop

                await process_path(
                    processor,
                    source,
                    path,
                    max_bytes=settings.limits.max_message_bytes,
                    on_result=advance,
                    batch=store.batch,
                )
    finally:
        await pool.close()
    return tally


def _progress() -> Progress:
    """Build a progress bar that shows on a terminal and stays off in a pipe."""
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=out,
        transient=True,
        disable=not out.is_terminal,
    )
