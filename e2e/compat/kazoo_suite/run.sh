#!/usr/bin/env bash
# kazoo's own packaged test suite (kazoo/tests from the kazoo pinned in
# e2e/requirements.txt), unchanged, on two backends in the same run:
#   zookeeper  3-server Apache ZooKeeper 3.8 ensembles from Debian's jars, started by
#              kazoo's own harness (the control);
#   paddock    3-server paddock-server ensembles, started where kazoo's harness starts
#              Java (kazoo_backend.py translates its zoo.cfg and command line).
# Then compares the two (compare.py): a test that passes on ZooKeeper but not on
# Paddock fails this script unless expected_failures.txt lists it, and a listed test that
# passes on Paddock fails it too (the list can only shrink).
#
# Reruns: on a loaded 2-core machine some of kazoo's tests time out on either server
# (they wait 5-10 s for events while three JVMs or servers start and stop around them).
# So each backend's failed tests are run once more, by themselves, on a fresh ensemble;
# the same rule for both sides. A test that passes on its rerun counts as passed and is
# reported as such, per side; a test that fails twice counts as failed. With more than
# KAZOO_SUITE_MAX_RERUN failures (default 25) a side is not rerun: that is a broken
# server, not a slow machine.
#
#   bash e2e/compat/kazoo_suite/run.sh [pytest args...]   # e.g. -k TestReadOnlyMode
#
# Environment:
#   KAZOO_SUITE_BACKENDS      which runs (default "zookeeper paddock"); compare needs both
#   KAZOO_SUITE_PARALLEL      0 (default): one backend after the other (~9 min on 2
#                             cores); 1: both at once, on their own ports (~8 min: the
#                             three JVMs per test class then compete with Paddock's run)
#   KAZOO_SUITE_TEST_TIMEOUT  per-test bound in seconds (pytest-timeout; default 180)
#   KAZOO_SUITE_RUN_TIMEOUT   bound for one backend's whole run in seconds (default 1200)
#   KAZOO_SUITE_MAX_RERUN     most failed tests a side may rerun (default 25; 0: none)
#   KAZOO_SUITE_OUT           where results go (default target/kazoo-suite)
#   KAZOO_SUITE_ZK_BASE / KAZOO_SUITE_PD_BASE  port bases (defaults 26100 / 26200):
#                             kazoo's harness uses BASE..BASE+24 on 127.0.0.1 (server i:
#                             BASE+10(i-1) + 0 client, 1 election, 2 quorum, 3 admin,
#                             4 TLS client)
#   E2E_SKIP_INSTALL=1        skip the e2e/install-deps.sh check
#
# Results, per backend: OUT/<backend>/results.jsonl (and OUT/<backend>/rerun/ for the
# rerun, laid out the same way) (one line a test: outcome, skip
# reason, error), junit.xml, pytest.log, server-logs/NNN-serverI/ (each server's log and
# zoo.cfg and, for Paddock, the translated paddock.cfg and the keys it dropped, copied when
# kazoo's harness ends that cluster); OUT/comparison.json and
# OUT/report.txt. Every server this script's runs start is killed, by pid, at the end.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
VENV="$ROOT/e2e/.venv"
T0=$SECONDS
exec </dev/null

log() { echo "kazoo_suite: $*" >&2; }

BACKENDS="${KAZOO_SUITE_BACKENDS:-zookeeper paddock}"
PARALLEL="${KAZOO_SUITE_PARALLEL:-0}"
TEST_TIMEOUT="${KAZOO_SUITE_TEST_TIMEOUT:-180}"
RUN_TIMEOUT="${KAZOO_SUITE_RUN_TIMEOUT:-1200}"
MAX_RERUN="${KAZOO_SUITE_MAX_RERUN:-25}"
OUT="${KAZOO_SUITE_OUT:-${CARGO_TARGET_DIR:-$ROOT/target}/kazoo-suite}"
ZK_CP=/usr/share/java/zookeeper.jar:/usr/share/java/netty-codec.jar:/usr/share/java/netty-resolver.jar:/usr/share/java/netty-transport-native-unix-common.jar:/usr/share/java/servlet-api.jar:/usr/share/java/slf4j-simple.jar
PYTEST_ARGS=("$@")

if [ "${E2E_SKIP_INSTALL:-0}" != "1" ]; then
  CI=true bash "$ROOT/e2e/install-deps.sh" || { log "install-deps failed"; exit 2; }
fi
SITE="$("$VENV/bin/python" -c 'import os, kazoo; print(os.path.dirname(os.path.dirname(kazoo.__file__)))')" ||
  { log "kazoo missing in $VENV"; exit 2; }
if [ ! -d "$SITE/kazoo/tests" ] || [ ! -d "$SITE/kazoo/testing" ]; then
  log "kazoo in $SITE ships no tests"; exit 2
fi
SITE="$(cd "$SITE" && pwd -P)" # test ids are relative to it: kazoo/tests/test_x.py::Class::test
KAZOO_VERSION="$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("kazoo"))')"

# shellcheck disable=SC2016  # $0 is expanded by the inner bash
port_busy() { timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null; }
ports_free() { # BASE: kazoo's harness takes BASE..BASE+24 for 3 servers
  local p
  for p in $(seq "$1" $(($1 + 24))); do
    if port_busy "$p"; then log "port $p (127.0.0.1) is in use"; return 1; fi
  done
}

PD_BIN=""
for b in $BACKENDS; do
  case "$b" in
    zookeeper)
      for j in ${ZK_CP//:/ }; do [ -r "$j" ] || { log "$j missing; run e2e/install-deps.sh"; exit 2; }; done
      command -v java >/dev/null || { log "java not found"; exit 2; } ;;
    paddock)
      cargo build --quiet -p paddock-server --manifest-path "$ROOT/Cargo.toml" || exit 2
      PD_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/paddock-server"
      [ -x "$PD_BIN" ] || { log "no binary at $PD_BIN"; exit 2; } ;;
    *) log "unknown backend $b"; exit 2 ;;
  esac
done
# The version each backend says it is (kazoo's harness and tests read ZOOKEEPER_VERSION;
# test_build checks the server reports it). Paddock's is ZK_COMPAT_VERSION.
ZK_VERSION="$(dpkg-query -W -f='${Version}' zookeeper 2>/dev/null | sed 's/-.*//')"
PD_VERSION="$(sed -n 's/^pub const ZK_COMPAT_VERSION: &str = "\(.*\)";/\1/p' "$ROOT/server/src/admin/mod.rs")"

# Kills, by pid, every server a run recorded that still runs (checked against its
# command line, so a reused pid is left alone).
kill_recorded() { # PIDS_FILE
  local pid what
  [ -f "$1" ] || return 0
  while read -r pid what; do
    [ -r "/proc/$pid/cmdline" ] || continue
    if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "${what##* }"; then
      log "killing leftover server pid $pid"
      kill -9 "$pid" 2>/dev/null
    fi
  done <"$1"
}

RUN_PIDS=()
# On exit (and on INT/TERM): ends the pytest runs still going (TERM to their `timeout`,
# which passes it on; the plugin then lets kazoo's atexit stop the cluster), then kills
# any server they left.
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local p d pid deadline
  for d in "${RUN_DIRS[@]}"; do
    pid="$(cat "$d/pytest.pid" 2>/dev/null)" || continue
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q pytest || continue
    kill -TERM "$pid" 2>/dev/null || continue
    deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then # pytest under `timeout`, then `timeout` itself
      for p in $(pgrep -P "$pid"); do kill -KILL "$p" 2>/dev/null; done
      kill -KILL "$pid" 2>/dev/null
    fi
  done
  for p in "${RUN_PIDS[@]}"; do wait "$p" 2>/dev/null; done
  for d in "${RUN_DIRS[@]}"; do kill_recorded "$d/pids"; done
}
RUN_DIRS=() # each backend's run and its rerun
for b in $BACKENDS; do RUN_DIRS+=("$OUT/$b" "$OUT/$b/rerun"); done
for d in "${RUN_DIRS[@]}"; do rm -f "$d/pytest.pid"; done
trap cleanup EXIT
trap 'exit 130' INT TERM

run_backend() { # BACKEND BASE VERSION CLASSPATH DIR [PYTEST ARGS...]
  local b=$1 base=$2 version=$3 cp=$4 dir=$5 rc t=$SECONDS pid
  shift 5
  rm -rf "$dir"
  mkdir -p "$dir/servers"
  : >"$dir/pids"
  log "$b: kazoo $KAZOO_VERSION's suite on 127.0.0.1:$base-$((base + 24)), ZOOKEEPER_VERSION=$version"
  (
    cd "$SITE" &&
    exec env TMPDIR="$dir/servers" \
      CI=true \
      KAZOO_SUITE_BACKEND="$b" \
      KAZOO_SUITE_RESULTS="$dir/results.jsonl" \
      KAZOO_SUITE_PIDS="$dir/pids" \
      KAZOO_SUITE_LOGS="$dir/server-logs" \
      PADDOCK_SERVER_BIN="$PD_BIN" \
      ZOOKEEPER_VERSION="$version" \
      ZOOKEEPER_CLASSPATH="$cp" \
      ZOOKEEPER_PORT_OFFSET="$base" \
      ZOOKEEPER_CLUSTER_SIZE=3 \
      PYTHONPATH="$HERE" PYTHONDONTWRITEBYTECODE=1 \
      timeout -k 60 "$RUN_TIMEOUT" "$VENV/bin/python" -m pytest kazoo/tests \
        -c "$HERE/pytest.ini" --rootdir "$SITE" -p kazoo_backend -p no:cacheprovider \
        -o timeout="$TEST_TIMEOUT" --junitxml "$dir/junit.xml" -q -rfEs \
        "$@"
  ) >"$dir/pytest.log" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/pytest.pid"
  wait "$pid"
  rc=$?
  rm -f "$dir/pytest.pid"
  kill_recorded "$dir/pids"
  [ "$rc" = 124 ] && log "$b: the whole run hit its ${RUN_TIMEOUT}s bound"
  echo "$((SECONDS - t))" >"$dir/seconds"
  log "$b: pytest exit $rc in $((SECONDS - t))s: $(grep -E '^[0-9]+ (passed|failed|skipped|error).* in [0-9.]+s' "$dir/pytest.log" | tail -n 1)"
  return 0
}

# The node ids of RESULTS that failed or errored, one a line.
failed_ids() { # RESULTS_JSONL
  "$VENV/bin/python" -c '
import json, sys
for line in open(sys.argv[1]):
    if line.strip():
        r = json.loads(line)
        if r["outcome"] in ("failed", "error") and r.get("phase") != "collect":
            print(r["nodeid"])
' "$1" 2>/dev/null
}

# Runs BACKEND's full suite, then once more the tests that failed (see "Reruns" above).
run_side() { # BACKEND BASE VERSION CLASSPATH
  local b=$1 dir="$OUT/$1" ids
  run_backend "$@" "$dir" "${PYTEST_ARGS[@]}"
  mapfile -t ids < <(failed_ids "$dir/results.jsonl")
  if [ "${#ids[@]}" -eq 0 ]; then
    return 0
  elif [ "${#ids[@]}" -gt "$MAX_RERUN" ]; then
    log "$b: ${#ids[@]} tests failed, more than KAZOO_SUITE_MAX_RERUN=$MAX_RERUN: no rerun"
    return 0
  fi
  log "$b: rerunning the ${#ids[@]} failed tests once: ${ids[*]}"
  run_backend "$@" "$dir/rerun" "${ids[@]}"
}

mkdir -p "$OUT"
for b in $BACKENDS; do
  case "$b" in
    zookeeper) base="${KAZOO_SUITE_ZK_BASE:-26100}" version="$ZK_VERSION" cp="$ZK_CP" ;;
    paddock) base="${KAZOO_SUITE_PD_BASE:-26200}" version="$PD_VERSION" cp="$PD_BIN" ;;
  esac
  ports_free "$base" || { log "$b: ports $base-$((base + 24)) are not free"; exit 2; }
  if [ "$PARALLEL" = 1 ]; then
    run_side "$b" "$base" "$version" "$cp" &
    RUN_PIDS+=($!)
  else
    run_side "$b" "$base" "$version" "$cp"
  fi
done
for p in "${RUN_PIDS[@]}"; do wait "$p"; done
RUN_PIDS=()

if [[ " $BACKENDS " == *" zookeeper "* && " $BACKENDS " == *" paddock "* ]]; then
  partial=()
  [ "${#PYTEST_ARGS[@]}" -gt 0 ] && partial=(--partial)
  "$VENV/bin/python" "$HERE/compare.py" --out "$OUT" --expected "$HERE/expected_failures.txt" \
    --kazoo "$KAZOO_VERSION" "${partial[@]}"
  RC=$?
else
  log "one backend only ($BACKENDS): no comparison"
  RC=0
fi
log "done in $((SECONDS - T0))s; results in $OUT"
exit "$RC"
