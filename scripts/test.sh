#!/usr/bin/env bash
# Run the whole test suite: lint, types, and pytest against real servers.
#
# Installs the Debian packages of Dovecot, Postfix, rbldnsd, nsd, unbound,
# Prometheus and PostgreSQL when missing. PostgreSQL tests use
# WATCHDOG_TEST_PG_URL, else the server on 127.0.0.1:5432, else a private
# cluster this script starts in /tmp. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh
bash scripts/bootstrap.sh dev

private_pg=""
cleanup() {
    if [ -n "$private_pg" ]; then bash scripts/private-postgres.sh stop "$private_pg"; fi
}
trap cleanup EXIT
if [ -z "${WATCHDOG_TEST_PG_URL:-}" ]; then
    if .venv/bin/python - <<'PY'
import sys, psycopg
try:
    psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres",
                    connect_timeout=3).close()
except Exception:
    sys.exit(1)
PY
    then
        export WATCHDOG_TEST_PG_URL="postgresql://postgres@127.0.0.1:5432/postgres"
    else
        private_pg=$(mktemp -d /tmp/mw-ci-postgres-XXXXXX)
        port=$(bash scripts/private-postgres.sh start "$private_pg")
        export WATCHDOG_TEST_PG_URL="postgresql://postgres@127.0.0.1:$port/postgres"
    fi
fi

.venv/bin/ruff format --check watchdog tests bench
.venv/bin/ruff check watchdog tests bench
.venv/bin/mypy

status=0
.venv/bin/pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: failing the run" >&2
    exit 1
fi
exit "$status"
