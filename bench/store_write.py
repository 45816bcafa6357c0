"""Measure Store.record throughput, in messages per second.

Usage::

    .venv/bin/python bench/store_write.py [--url URL] [--messages N] [--batch B]

Without ``--url`` it writes to an SQLite file in a temporary directory
(WAL, synchronous=FULL). Each message carries one recipient verdict for
one of 500 addresses. A third are hard bounces, a third mailbox-full soft
bounces and a third transient, so the soft-bounce count query and the
suppression writes both run. ``--batch 1`` commits every message on its own.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

from watchdog.classify.verdict import Category, Kind, RecipientVerdict, Verdict
from watchdog.config import Policy
from watchdog.pipeline import MessageRef, Outcome
from watchdog.store import Store

CATEGORIES = (Category.ADDRESS, Category.MAILBOX, Category.TRANSIENT)
REASONS = {
    Category.ADDRESS: "userunknown",
    Category.MAILBOX: "mailboxfull",
    Category.TRANSIENT: "expired",
}


def verdict(i: int) -> Verdict:
    category = CATEGORIES[i % 3]
    recipient = RecipientVerdict(
        address=f"user{i % 500}@example.com",
        reason=REASONS[category],
        hard=category is Category.ADDRESS,
        category=category,
        status="5.1.1",
        diagnostic="550 5.1.1 <user@example.com>: Recipient address rejected",
    )
    return Verdict(Kind.BOUNCE, "bench", (recipient,))


def run(store: Store, messages: int, batch: int) -> float:
    policy = Policy()
    started = time.perf_counter()
    for start in range(0, messages, batch):
        with store.batch():
            for i in range(start, min(start + batch, messages)):
                store.record(
                    MessageRef("bench", "INBOX", uidvalidity=1, uid=i + 1),
                    sha256=hashlib.sha256(str(i).encode()).hexdigest(),
                    size=5000,
                    verdict=verdict(i),
                    outcome=Outcome.PROCESSED,
                    verified=True,
                    policy=policy,
                )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="database URL; default a fresh SQLite file")
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mw-bench-") as folder:
        url = args.url or f"sqlite:///{Path(folder) / 'bench.db'}"
        store = Store(url)
        store.upgrade()
        elapsed = run(store, args.messages, args.batch)
        stats = store.stats()
        store.close()

    rate = args.messages / elapsed
    print(
        f"{store.dialect}: {args.messages} messages, batch {args.batch}: "
        f"{elapsed:.2f} s, {rate:.0f} messages/s; "
        f"suppressions {dict(stats.suppressions)}"
    )


if __name__ == "__main__":
    main()
