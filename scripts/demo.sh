#!/usr/bin/env bash
# Run Mail Watchdog on the real bounces shipped in tests/corpus.
#
# Classifies every message into a fresh SQLite file under demo/, then prints
# the summary and the suppression list. Needs only Python 3.11+.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh
rm -rf demo && mkdir demo
.venv/bin/mail-watchdog scan tests/corpus/emails --database sqlite:///demo/watchdog.db
# The scan's own hint leaves out .venv/bin and --database, which the demo needs.
cat <<'NEXT'

Next, read the demo database:
  .venv/bin/mail-watchdog suppress list --database sqlite:///demo/watchdog.db
  .venv/bin/mail-watchdog suppress show kijitora@example.jp --database sqlite:///demo/watchdog.db
To watch a mailbox, write a configuration file (README.md, Configuration) and check it:
  .venv/bin/mail-watchdog config check --config FILE
NEXT
