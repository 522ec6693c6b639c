#!/usr/bin/env bash
# Run every compatibility suite against one ZooKeeper-compatible server.
#
#   run_suites.sh HOST:PORT
#
# Suites: kazoo + wire (pytest), zkCli, Curator. All of them run even when one
# fails; the summary lists each with its time, and the exit code is non-zero
# if any failed. Select a subset with SUITES="pytest zkcli curator".
# Extra pytest arguments: PYTEST_ARGS (e.g. "-k watch -x").
set -uo pipefail

SERVER="${1:?usage: run_suites.sh HOST:PORT}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
E2E="$(cd "$HERE/.." && pwd)"
SUITES="${SUITES:-pytest zkcli curator}"

PY="$E2E/.venv/bin/python"
[ -x "$PY" ] || PY=python3

declare -a SUMMARY=()
FAILED=0

suite() { # NAME CMD...
  local name="$1"; shift
  local t0=$SECONDS rc
  echo "===== $name: $*" >&2
  "$@"
  rc=$?
  local dt=$((SECONDS - t0))
  if [ "$rc" -eq 0 ]; then
    SUMMARY+=("PASS  $name (${dt}s)")
  else
    SUMMARY+=("FAIL  $name (${dt}s, exit $rc)")
    FAILED=1
  fi
}

for s in $SUITES; do
  case "$s" in
    pytest)
      # shellcheck disable=SC2086
      suite "pytest kazoo+wire" env ZK_HOSTS="$SERVER" PYTHONDONTWRITEBYTECODE=1 \
        timeout 300 "$PY" -m pytest "$HERE/test_kazoo_compat.py" "$HERE/test_wire_compat.py" \
        -q -p no:cacheprovider -rs --durations=5 ${PYTEST_ARGS:-}
      ;;
    zkcli) suite "zkCli" timeout 300 "$HERE/zkcli_compat.sh" "$SERVER" ;;
    curator) suite "Curator" timeout 300 "$HERE/curator_compat.sh" "$SERVER" ;;
    *) echo "unknown suite: $s" >&2; FAILED=1 ;;
  esac
done

echo "===== summary against $SERVER" >&2
for line in "${SUMMARY[@]}"; do echo "  $line" >&2; done
exit "$FAILED"
