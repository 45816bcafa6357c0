"""Compare classify() with Sisimai in messages per CPU second, and watch RSS.

Usage::

    .venv/bin/python bench/classify_speed.py tests/corpus/manifest.tsv
    .venv/bin/python bench/classify_speed.py tests/corpus/emails --total 20000

The argument is a manifest (a TSV with a ``path`` column relative to the
manifest's folder) or a folder searched recursively for files. Our
classifier runs over the files repeated to ``--total`` messages in this
process, timed with ``time.process_time``; RSS is printed at five
checkpoints so that growth over the run shows. Sisimai runs in Perl
children over the same files, timed with ``getrusage(RUSAGE_CHILDREN)``:
one pass, then ``--sisimai-rounds`` + 1 passes, and the difference gives
its throughput without start-up. Needs Debian's ``libsisimai-perl``.
"""

from __future__ import annotations

import argparse
import csv
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from watchdog.classify import classify
from watchdog.config import Limits

SISIMAI_SCRIPT = r"""
use strict;
use warnings;
use Sisimai;
my $count = 0;
open(my $list, '<', $ARGV[0]) or die "cannot open $ARGV[0]: $!";
while (my $path = <$list>) {
    chomp $path;
    my $results = Sisimai->make($path);
    $count += scalar(@{ $results || [] });
}
print "$count\n";
"""


def read_paths(target: Path) -> list[Path]:
    """Return the message files named by a manifest or found under a folder."""
    if target.is_dir():
        return sorted(path for path in target.rglob("*") if path.is_file())
    with target.open(newline="", encoding="utf-8") as handle:
        rows = csv.DictReader(handle, delimiter="\t")
        names = dict.fromkeys(row["path"] for row in rows)
    return [target.parent / name for name in names]


def rss_mb() -> float:
    """Return this process's resident set size in MB, from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_ours(messages: list[bytes], total: int) -> float:
    """Classify ``total`` messages in a loop and return messages per CPU second."""
    limits = Limits()
    kinds: Counter[str] = Counter()
    errors = 0
    checkpoints = {total * step // 5 for step in range(1, 6)}
    start = time.process_time()
    for index in range(total):
        try:
            kinds[classify(messages[index % len(messages)], limits).kind.value] += 1
        except Exception:  # counted: the bench must finish
            errors += 1
        if index + 1 in checkpoints:
            print(f"  after {index + 1:>7} messages: RSS {rss_mb():7.1f} MB")
    elapsed = time.process_time() - start
    print(f"  verdicts: {dict(kinds)}; exceptions: {errors}")
    return total / elapsed


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_perl(script: Path, paths: list[Path], workdir: Path) -> float:
    """Run the Sisimai script over ``paths`` and return the child's CPU seconds."""
    listing = workdir / "paths.txt"
    listing.write_text("".join(f"{path.resolve()}\n" for path in paths))
    before = child_cpu_seconds()
    subprocess.run(["perl", str(script), str(listing)], check=True)
    return child_cpu_seconds() - before


def run_sisimai(paths: list[Path], rounds: int) -> float:
    """Return Sisimai's messages per CPU second over ``rounds`` extra passes.

    Sisimai loads most of its modules on the first ``make`` call. So one
    child makes a single pass and a second makes ``rounds + 1``, and the
    difference is the cost of ``rounds`` passes without start-up. Each Perl
    run prints how many results Sisimai returned.
    """
    with tempfile.TemporaryDirectory(prefix="sisimai-bench-") as name:
        workdir = Path(name)
        script = workdir / "make.pl"
        script.write_text(SISIMAI_SCRIPT)
        single = run_perl(script, paths, workdir)
        repeated = run_perl(script, paths * (rounds + 1), workdir)
    print(f"  1 pass {single:.2f} CPU s, {rounds + 1} passes {repeated:.2f} CPU s")
    return len(paths) * rounds / (repeated - single)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", type=Path, help="manifest.tsv or a folder")
    parser.add_argument(
        "--total", type=int, default=100_000, help="messages our classifier runs"
    )
    parser.add_argument(
        "--sisimai-rounds",
        type=int,
        default=10,
        help="Sisimai passes measured beyond the first, which counts as start-up",
    )
    args = parser.parse_args()

    paths = read_paths(args.target)
    messages = [path.read_bytes() for path in paths]
    print(f"{len(paths)} files, {sum(map(len, messages)) / 1e6:.1f} MB")

    print(f"classify() over {args.total} messages:")
    ours = run_ours(messages, args.total)
    print(f"Sisimai, {args.sisimai_rounds} passes over {len(paths)} files:")
    theirs = run_sisimai(paths, args.sisimai_rounds)

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"classify(): {ours:8.0f} messages per CPU second")
    print(f"Sisimai:    {theirs:8.0f} messages per CPU second")
    print(f"ratio:      {ours / theirs:8.2f}")
    print(f"peak RSS of this process: {peak:.1f} MB")


if __name__ == "__main__":
    sys.exit(main())
