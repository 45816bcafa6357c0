#!/usr/bin/env bash
# Run Mail Watchdog on the real bounces shipped in tests/corpus.
#
# Classifies every message into a fresh SQLite file under demo/, then prints
# the summary and the suppression list. Needs only Python 3.11+.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh
rm -rf demo && mkdir demo
exec .venv/bin/mail-watchdog scan tests/corpus/emails --database sqlite:///demo/watchdog.db
