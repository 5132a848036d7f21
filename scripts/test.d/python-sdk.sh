#!/usr/bin/env bash
# Runs the Python `docker` SDK suite (compat-tests/python) against a shoald of
# its own: a venv in target/pyvenv with the pinned SDK and pytest from PyPI,
# shoald on a temp socket and data root, pytest with DOCKER_HOST pointing at
# it. Exits non-zero when a test fails. Only the shoald started here is
# stopped (by its PID) on exit.
#
#   bash scripts/test.d/python-sdk.sh [PYTEST ARGS...]
#
# Env: SHOALD_BIN (default target/debug/shoald; build with
# `cargo build -p engine-api`), PYTHON (default python3), PYTEST_TIMEOUT
# (seconds, default 150).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

shoald_bin=${SHOALD_BIN:-$repo/target/debug/shoald}
case $shoald_bin in /*) ;; *) shoald_bin=$repo/$shoald_bin ;; esac
if [ ! -x "$shoald_bin" ]; then
    echo "python-sdk: $shoald_bin not found: run \`cargo build -p engine-api\` or set SHOALD_BIN" >&2
    exit 1
fi

# --- venv with the SDK and pytest ---------------------------------------------
venv=$repo/target/pyvenv
req=$repo/compat-tests/python/requirements.txt
if ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$venv"
    "${PYTHON:-python3}" -m venv "$venv"
fi
if ! cmp -s "$req" "$venv/.requirements.installed"; then
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
    cp "$req" "$venv/.requirements.installed"
fi
"$venv/bin/python" -c 'import docker, pytest' # fail here rather than skip every test

# --- a shoald of our own ------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shoal-pysdk.XXXXXX")
sock=$tmp/docker.sock
shoald_pid=
cleanup() {
    local rc=$?
    if [ -n "$shoald_pid" ] && kill -0 "$shoald_pid" 2>/dev/null; then
        kill -TERM "$shoald_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$shoald_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$shoald_pid" 2>/dev/null || true
        wait "$shoald_pid" 2>/dev/null || true
    fi
    if [ "$rc" -ne 0 ] && [ -f "$tmp/shoald.log" ]; then
        echo "--- python-sdk: shoald log (last 25 lines) ---" >&2
        tail -n 25 "$tmp/shoald.log" >&2 || true
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

NO_COLOR=1 "$shoald_bin" --host "unix://$sock" --data-root "$tmp/data" >"$tmp/shoald.log" 2>&1 &
shoald_pid=$!
for _ in $(seq 1 200); do
    if curl -sf --max-time 2 --unix-socket "$sock" http://localhost/_ping >/dev/null 2>&1; then
        break
    fi
    if ! kill -0 "$shoald_pid" 2>/dev/null; then
        echo "python-sdk: shoald exited before answering /_ping" >&2
        exit 1
    fi
    sleep 0.1
done
curl -sf --max-time 2 --unix-socket "$sock" http://localhost/_ping >/dev/null \
    || { echo "python-sdk: shoald did not answer /_ping within 20s" >&2; exit 1; }

# --- the suite ------------------------------------------------------------------
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH DOCKER_CONFIG
export DOCKER_HOST=unix://$sock SHOALD_BIN=$shoald_bin PYTHONDONTWRITEBYTECODE=1
timeout --kill-after=10 "${PYTEST_TIMEOUT:-150}" \
    "$venv/bin/python" -m pytest -p no:cacheprovider -q -rfEs \
    "$repo/compat-tests/python" "$@"
