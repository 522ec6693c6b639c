#!/usr/bin/env bash
# Prove the compatibility suites against the reference: Apache ZooKeeper 3.8
# from Debian. Starts it on 127.0.0.1 (first free port from 21810, or
# REF_PORT), runs e2e/compat/run_suites.sh against it, stops it.
# Exits non-zero if anything failed; the server's directory (config, data,
# log) is kept on failure and its path printed.
#
#   bash e2e/compat/run_reference.sh
#
# Set E2E_SKIP_INSTALL=1 to skip the (idempotent, normally instant)
# e2e/install-deps.sh check.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
E2E="$(cd "$HERE/.." && pwd)"
ADDR=127.0.0.1
T0=$SECONDS

if [ "${E2E_SKIP_INSTALL:-0}" != "1" ]; then
  CI=true bash "$E2E/install-deps.sh" || { echo "run_reference: install-deps failed" >&2; exit 2; }
fi

port_busy() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$ADDR" "$1" 2>/dev/null; }

PORT="${REF_PORT:-}"
if [ -z "$PORT" ]; then
  for p in $(seq 21810 21899); do
    if ! port_busy "$p"; then PORT=$p; break; fi
  done
  [ -n "$PORT" ] || { echo "run_reference: no free port in 21810-21899" >&2; exit 2; }
fi

DIR="$(mktemp -d "${TMPDIR:-/tmp}/paddock-refzk.XXXXXX")"
cleanup() {
  "$HERE/reference_zk.sh" stop "$DIR" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t=$SECONDS
"$HERE/reference_zk.sh" start "$DIR" "$PORT" "$ADDR" || { echo "run_reference: server did not start; see $DIR" >&2; exit 2; }
echo "run_reference: reference server started in $((SECONDS - t))s" >&2

"$HERE/run_suites.sh" "$ADDR:$PORT"
RC=$?

cleanup
if [ "$RC" -eq 0 ]; then
  rm -rf "$DIR"
  echo "run_reference: ALL PASSED against Apache ZooKeeper 3.8 ($((SECONDS - T0))s total)" >&2
else
  echo "run_reference: FAILURES against Apache ZooKeeper 3.8; server dir kept: $DIR" >&2
fi
exit "$RC"
