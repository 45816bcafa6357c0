"""Measure how fast the MTA log reader parses and counts a Postfix log.

Usage::

    .venv/bin/python bench/mta_log_speed.py                  # generates 1M lines
    .venv/bin/python bench/mta_log_speed.py --lines 200000
    .venv/bin/python bench/mta_log_speed.py /var/log/mail.log

Without a path, a log of ``--lines`` lines is generated into a temporary
file under /tmp (removed afterwards) from the shapes of a real Postfix 3.7
log: per message one smtpd connect, client, disconnect, one cleanup and
two qmgr lines, and per recipient one smtp delivery line (88 % sent, 7 %
deferred with 4.7.x or 4.2.x, 5 % bounced), plus expiries. About a third of
the lines are delivery lines. The file is then read the way the daemon reads
it, ``LogFollower`` in ``BATCH_BYTES`` batches into ``LineParser`` and
``Tally``, and the wall-clock and CPU rates and the peak RSS are printed.
"""

from __future__ import annotations

import argparse
import random
import resource
import tempfile
import time
from pathlib import Path

from watchdog.jobs.mta_log import BATCH_BYTES
from watchdog.providers import default_provider_map
from watchdog.sources.mta_log.follow import LogFollower
from watchdog.sources.mta_log.lines import LineParser
from watchdog.sources.mta_log.tally import Pending, Tally

DOMAINS = ["gmail.com", "outlook.com", "yahoo.com", "example.org", "hotmail.fr"]
RELAY = "gmail-smtp-in.l.google.com[192.0.2.27]:25"


def generate(path: Path, total: int, seed: int = 1) -> None:
    """Write about ``total`` lines of a realistic Postfix log to ``path``."""
    rng = random.Random(seed)
    written = 0
    number = 0
    with path.open("w") as out:
        while written < total:
            number += 1
            qid = f"{0x4A0000000 + number:X}"
            second = number % 60
            stamp = f"Dec  4 22:{(number // 60) % 60:02}:{second:02}"
            head = f"{stamp} mx1 postfix"
            pid = 1000 + number % 5000
            lines = [
                f"{head}/smtpd[{pid}]: connect from app[198.51.100.7]",
                f"{head}/smtpd[{pid}]: {qid}: client=app[198.51.100.7]",
                f"{head}/cleanup[{pid + 1}]: {qid}: message-id=<{number}@app>",
                f"{head}/qmgr[99]: {qid}: from=<app@example.com>, size=4242, "
                "nrcpt=2 (queue active)",
                f"{head}/smtpd[{pid}]: disconnect from app[198.51.100.7] ehlo=1 "
                "mail=1 rcpt=2 data=1 quit=1 commands=6",
            ]
            for index in range(2):
                domain = rng.choice(DOMAINS)
                lines.append(
                    _delivery(rng, head, pid, qid, f"u{number}.{index}@{domain}")
                )
            if rng.random() < 0.01:
                lines.append(
                    f"{head}/qmgr[99]: {qid}: from=<app@example.com>, "
                    "status=expired, returned to sender"
                )
            lines.append(f"{head}/qmgr[99]: {qid}: removed")
            out.write("\n".join(lines) + "\n")
            written += len(lines)


def _delivery(rng: random.Random, head: str, pid: int, qid: str, rcpt: str) -> str:
    draw = rng.random()
    if draw < 0.88:
        tail = "dsn=2.0.0, status=sent (250 2.0.0 OK  1733350000 x1si123 - gsmtp)"
    elif draw < 0.95:
        tail = (
            "dsn=4.7.28, status=deferred (host said: 421-4.7.28 Our system has "
            "detected an unusual rate of unsolicited mail (in reply to end of "
            "DATA command))"
        )
    else:
        tail = (
            "dsn=5.1.1, status=bounced (host said: 550-5.1.1 The email account "
            "that you tried to reach does not exist (in reply to RCPT TO command))"
        )
    return (
        f"{head}/smtp[{pid + 2}]: {qid}: to=<{rcpt}>, relay={RELAY}, delay=0.84, "
        f"delays=0.01/0/0.32/0.51, {tail}"
    )


def measure(path: Path) -> None:
    """Read ``path`` from its start as the daemon does and print the rates."""
    parser = LineParser()
    tally = Tally(default_provider_map(), Pending())
    follower = LogFollower(path, from_start=True)
    lines = 0
    before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def on_line(line: bytes) -> None:
        nonlocal lines
        lines += 1
        tally.add(parser.parse(line))

    started, cpu = time.perf_counter(), time.process_time()
    while follower.read(BATCH_BYTES, on_line).more:
        tally.pending.take_dirty()
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu
    follower.close()
    counts = tally.take()
    size = path.stat().st_size
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"file: {path} ({size / 1e6:.1f} MB, {lines} lines)")
    print(f"delivery lines: {sum(counts.attempts.values())}")
    print(f"wall: {seconds:.2f} s, {lines / seconds:,.0f} lines/s")
    print(f"cpu:  {cpu_seconds:.2f} s, {lines / cpu_seconds:,.0f} lines/s")
    print(f"peak RSS: {before_mb:.1f} MB before reading, {peak_mb:.1f} MB after")


def main() -> None:
    """Generate a log unless one is given, then measure reading it."""
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("path", nargs="?", type=Path, help="an existing log")
    options.add_argument("--lines", type=int, default=1_000_000)
    args = options.parse_args()
    if args.path is not None:
        measure(args.path)
        return
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        path = Path(folder) / "mail.log"
        generate(path, args.lines)
        measure(path)


if __name__ == "__main__":
    main()
