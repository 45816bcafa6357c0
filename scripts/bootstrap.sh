#!/usr/bin/env bash
# Create .venv with Mail Watchdog, if missing.
#   bootstrap.sh        the package and what it needs to run
#   bootstrap.sh dev    also the test and lint tools
set -euo pipefail
mode=${1:-runtime}
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "Mail Watchdog needs Python 3.11 or later; set PYTHON to one" >&2
    exit 1
fi
if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
    echo "installing python3-venv" >&2
    if [ "$(id -u)" -eq 0 ]; then apt-get install -y -q python3-venv >/dev/null; fi
fi
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
stamp=.venv/.installed-$mode
target=.
[ "$mode" = dev ] && target='.[dev]'
fresh() { [ -f "$1" ] && ! [ pyproject.toml -nt "$1" ]; }
# A dev install holds everything the runtime needs.
if [ "$mode" = runtime ] && fresh .venv/.installed-dev; then
    exit 0
fi
if ! fresh "$stamp"; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -e "$target"
    touch "$stamp"
fi
