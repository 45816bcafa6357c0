"""Mutation fuzz of classify() over corpus messages for a fixed time.

Usage::

    .venv/bin/python bench/fuzz_classify.py tests/corpus/emails --seconds 120

Each execution takes a random corpus message, applies one to three
mutations (byte flips, duplicated headers, mangled boundaries, deep
nesting, huge headers, bogus charsets ...) and classifies the result in
this process. A CPU-time alarm of ``--hang-seconds`` interrupts a run
that takes too long and counts it as a hang. Prints executions,
exceptions by type with one sample each, hangs, and the slowest message's
time. ``classify`` turns exceptions inside it into an ``unknown`` verdict
whose detector is ``error``, so those are counted too. Inputs that raised,
hung or gave such a verdict, and the slowest, are written to ``--out``.
"""

from __future__ import annotations

import argparse
import logging
import random
import signal
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from watchdog.classify import classify
from watchdog.config import Limits

Mutation = Callable[[random.Random, bytes], bytes]


class CountingHandler(logging.Handler):
    """Count log records instead of printing them."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


class Hang(BaseException):
    """Raised by the alarm when one classification takes too long.

    It derives from BaseException so that handlers in the classifier that
    catch Exception do not swallow it.
    """


def flip_bytes(rng: random.Random, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 16)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def duplicate_header(rng: random.Random, raw: bytes) -> bytes:
    head, sep, body = raw.partition(b"\n\n")
    lines = head.split(b"\n")
    line = rng.choice(lines)
    return b"\n".join(lines + [line] * rng.randint(1, 200)) + sep + body


def mangle_boundary(rng: random.Random, raw: bytes) -> bytes:
    swaps = [(b"--\n", b"\n"), (b"boundary=", b"boundary=x"), (b"\n--", b"\n-")]
    old, new = rng.choice(swaps)
    return raw.replace(old, new, rng.randint(1, 3))


def nest_deeply(rng: random.Random, raw: bytes) -> bytes:
    depth = rng.choice([40, 300, 2_000])
    heads = b"".join(
        b"Content-Type: multipart/mixed; boundary=n%d\n\n--n%d\n" % (i, i)
        for i in range(depth)
    )
    return heads + raw


def huge_header(rng: random.Random, raw: bytes) -> bytes:
    kind = rng.choice([b"Subject", b"To", b"From", b"Content-Type"])
    unit = rng.choice([b"=?utf-8?q?a?= ", b"a@example.com, ", b"(", b"; a=b"])
    return kind + b": " + unit * rng.choice([500, 5_000, 20_000]) + b"\n" + raw


def bad_charset(rng: random.Random, raw: bytes) -> bytes:
    name = rng.choice([b"x-bogus", b"base64", b"idna", b"undefined", b"utf-8*en"])
    raw = raw.replace(b"charset=", b"charset=" + name + b";x=", 2)
    return b"Subject: =?" + name + b"?q?caf=E9?=\n" + raw


def truncate(rng: random.Random, raw: bytes) -> bytes:
    return raw[: rng.randrange(len(raw) + 1)]


def insert_invalid_utf8(rng: random.Random, raw: bytes) -> bytes:
    position = rng.randrange(len(raw) + 1)
    return (
        raw[:position]
        + rng.choice([b"\xff", b"\xed\xa0\x80", b"\x00"])
        + raw[position:]
    )


MUTATIONS: tuple[Mutation, ...] = (
    flip_bytes,
    duplicate_header,
    mangle_boundary,
    nest_deeply,
    huge_header,
    bad_charset,
    truncate,
    insert_invalid_utf8,
)


def mutate(rng: random.Random, raw: bytes) -> bytes:
    for mutation in rng.sample(MUTATIONS, rng.randint(1, 3)):
        raw = mutation(rng, raw) if raw else raw
    return raw


def on_alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, help="folder of .eml files")
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="wall-clock run time"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed")
    parser.add_argument(
        "--hang-seconds",
        type=float,
        default=5.0,
        help="CPU seconds after which one classification counts as a hang",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("/tmp/fuzz-classify"),
        help="folder for inputs that raised or hung",
    )
    args = parser.parse_args()

    seeds = [p.read_bytes() for p in sorted(args.corpus.rglob("*")) if p.is_file()]
    rng = random.Random(args.seed)
    limits = Limits()
    # CPU time, not wall time: other load on the machine must not count.
    signal.signal(signal.SIGPROF, on_alarm)
    # flufl.bounce catches exceptions in its own detectors and logs each
    # one with a traceback; count them so the summary stays readable.
    flufl_log = CountingHandler()
    logger = logging.getLogger("flufl.bounce")
    logger.addHandler(flufl_log)
    logger.propagate = False
    errors: Counter[str] = Counter()
    samples: dict[str, str] = {}
    executions, hangs, swallowed = 0, 0, 0
    slowest, slowest_raw = 0.0, b""
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        raw = mutate(rng, rng.choice(seeds))
        started = time.process_time()
        signal.setitimer(signal.ITIMER_PROF, args.hang_seconds)
        try:
            verdict = classify(raw, limits)
            if verdict.detector == "error":
                # classify() turned an exception inside it into this verdict.
                swallowed += 1
                args.out.mkdir(parents=True, exist_ok=True)
                (args.out / f"error-verdict-{swallowed}.eml").write_bytes(raw)
        except Hang:
            hangs += 1
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"hang-{hangs}.eml").write_bytes(raw)
        except Exception as exc:  # recorded: finding these is the point
            name = type(exc).__name__
            errors[name] += 1
            if name not in samples:
                samples[name] = traceback.format_exc(limit=-3)
                args.out.mkdir(parents=True, exist_ok=True)
                (args.out / f"{name}.eml").write_bytes(raw)
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
        elapsed = time.process_time() - started
        if elapsed > slowest:
            slowest, slowest_raw = elapsed, raw
        executions += 1

    print(f"executions: {executions} in {args.seconds:.0f} s (seed {args.seed})")
    print(f"exceptions: {sum(errors.values())} {dict(errors)}")
    print(f"verdicts with detector 'error' (exceptions caught): {swallowed}")
    print(f"hangs over {args.hang_seconds} CPU s: {hangs}")
    print(f"exceptions caught and logged inside flufl.bounce: {flufl_log.count}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "slowest.eml").write_bytes(slowest_raw)
    print(f"slowest message: {slowest * 1000:.1f} ms CPU (in {args.out}/slowest.eml)")
    for name, text in samples.items():
        print(f"--- {name} (input in {args.out / name}.eml)\n{text}")


if __name__ == "__main__":
    sys.exit(main())
