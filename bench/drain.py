"""Drain N corpus bounces from a private Dovecot into SQLite, then PostgreSQL.

Usage::

    .venv/bin/python bench/drain.py [--count 20000] [--database both]
                                    [--classifier pool|inline]

Each run gets a fresh Dovecot user whose Maildir is filled directly with
``count`` corpus bounces, each made unique by an added header, and a fresh
database. It then drains the INBOX end to end with ``MailboxWorker.poll``
(IMAPS, FETCH, classify, commit, UID MOVE) and prints messages/s, peak RSS
and the RSS every ``--checkpoint`` messages. Each database runs in its own
process so that the peak RSS of one does not hide the other's.

``pool`` (the default, as in the daemon) uses
``watchdog.classify.worker.ClassifierPool`` with two messages in flight per
worker; ``inline`` classifies in the event loop's process, one message at a
time. Dovecot must be
installed; PostgreSQL is the machine's server at 127.0.0.1:5432 unless
WATCHDOG_TEST_PG_URL names another.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.jobs.mailbox_support import (  # noqa: E402
    bounce_samples,
    make_rig,
    settings_for,
    unique,
)
from tests.servers import postgres  # noqa: E402
from tests.servers.dovecot import MAIL_UID, Dovecot, running_dovecot  # noqa: E402
from watchdog.classify import classify  # noqa: E402
from watchdog.classify.verdict import Verdict  # noqa: E402
from watchdog.classify.worker import ClassifierPool  # noqa: E402
from watchdog.config import Limits  # noqa: E402
from watchdog.pipeline import Classified, MessageRef, Pending, Result  # noqa: E402


def rss_mb() -> float:
    """Return the current resident set size in MB, from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb() -> float:
    """Return the peak resident set size of this process in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class DirectClassifier:
    """Call ``classify`` directly: no thread, no worker process."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits

    async def __call__(self, raw: bytes) -> Verdict:
        return classify(raw, self._limits)


class Checkpoints:
    """Wrap the processor to sample RSS every ``every`` messages."""

    def __init__(self, processor: Any, every: int) -> None:
        self._processor = processor
        self._every = every
        self.count = 0
        self.samples: list[tuple[int, float]] = []

    def prepare(self, items: Sequence[tuple[MessageRef, bytes]]) -> list[Pending]:
        pending: list[Pending] = self._processor.prepare(items)
        return pending

    async def classify_pending(self, pending: Pending) -> Classified:
        item: Classified = await self._processor.classify_pending(pending)
        return item

    def record(self, item: Classified) -> Result:
        result: Result = self._processor.record(item)
        self._tick()
        return result

    def quarantine_oversize(self, ref: MessageRef, size: int, digest: str) -> Result:
        result: Result = self._processor.quarantine_oversize(ref, size, digest)
        self._tick()
        return result

    def _tick(self) -> None:
        self.count += 1
        if self.count % self._every == 0:
            self.samples.append((self.count, round(rss_mb(), 1)))


def fill_maildir(dovecot: Dovecot, user: str, count: int) -> None:
    """Write ``count`` unique bounces straight into the user's Maildir/new."""
    samples = bounce_samples()
    new = dovecot.root / "mail" / user / "Maildir" / "new"
    for n in range(count):
        raw = unique(samples[n % len(samples)], f"bench-{n}")
        path = new / f"{1_700_000_000 + n}.M{n}P1.bench"
        path.write_bytes(raw)
        os.chown(path, MAIL_UID, MAIL_UID)
    # Dovecot indexes new Maildir files at the first SELECT, which takes
    # longer than a command timeout for 20,000 files; do it before timing.
    with dovecot.client(user) as conn:
        conn.socket().settimeout(600)
        conn.select("INBOX")


async def drain(
    dovecot: Dovecot, user: str, url: str, args: argparse.Namespace
) -> dict[str, Any]:
    settings = settings_for(
        dovecot, user, batch_size=200, timeout_seconds=60, cycle_timeout_seconds=3600
    )
    pool = None
    classifier: Any = DirectClassifier(settings.limits)
    if args.classifier == "pool":
        pool = ClassifierPool(settings.limits)
        await pool.start()
        classifier = pool
    concurrency = 2 * pool.size if pool is not None else 1
    rig = make_rig(settings, url, classifier=classifier, concurrency=concurrency)
    checkpoints = Checkpoints(rig.worker._processor, args.checkpoint)
    rig.worker._processor = checkpoints

    began = time.perf_counter()
    summary = await rig.worker.poll()
    seconds = time.perf_counter() - began
    await rig.worker.close()
    rig.store.close()
    if pool is not None:
        await pool.close()
    return {
        "database": url.split(":", 1)[0],
        "classifier": args.classifier,
        "state": summary.state.value,
        "messages": summary.messages,
        "outcomes": summary.outcomes,
        "seconds": round(seconds, 2),
        "messages_per_second": round(summary.messages / seconds, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_mb_by_messages": checkpoints.samples,
    }


def run_one(database: str, args: argparse.Namespace) -> dict[str, Any]:
    with running_dovecot() as dovecot:
        dovecot.add_user("bench")
        began = time.perf_counter()
        fill_maildir(dovecot, "bench", args.count)
        filled = time.perf_counter() - began
        if database == "sqlite":
            with tempfile.TemporaryDirectory(dir="/tmp") as folder:
                url = f"sqlite:///{folder}/bench.db"
                result = asyncio.run(drain(dovecot, "bench", url, args))
        else:
            with postgres.fresh_database("mw_bench") as url:
                result = asyncio.run(drain(dovecot, "bench", url, args))
    result["fill_seconds"] = round(filled, 2)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--checkpoint", type=int, default=2_000)
    parser.add_argument(
        "--database", choices=["sqlite", "postgresql", "both"], default="both"
    )
    parser.add_argument("--classifier", choices=["pool", "inline"], default="pool")
    args = parser.parse_args()

    if args.database != "both":
        print(json.dumps(run_one(args.database, args)))
        return 0
    for database in ("sqlite", "postgresql"):
        command = [sys.executable, __file__, "--database", database]
        command += ["--count", str(args.count), "--checkpoint", str(args.checkpoint)]
        command += ["--classifier", args.classifier]
        done = subprocess.run(command, cwd=ROOT, check=False)
        if done.returncode != 0:
            return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
