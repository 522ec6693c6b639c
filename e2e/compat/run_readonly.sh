#!/usr/bin/env bash
# Read-only mode through kazoo, the same test file (e2e/compat/test_kazoo_readonly.py)
# against:
#   1. a 3-node Apache ZooKeeper 3.8 ensemble from Debian started with
#      -Dreadonlymode.enabled=true (ZooKeeper reads it only as a Java system property)
#      and localSessionsEnabled=true (without it, ZooKeeper 3.8.0's read-only server
#      answers every new session with NOTREADONLY in place of a ConnectResponse: its
#      ReadOnlyRequestProcessor lets only local sessions be created) — the control,
#      then
#   2. a 3-node paddock-server ensemble with readonlymode.enabled=true in zoo.cfg
#      (debug build, as cargo test builds it).
# The test stops two servers and starts them again through the start scripts this
# script writes (s<N>/run.sh, which records the server's pid in s<N>/pid). Exits
# non-zero if either run fails; on failure the run's directory (configs, data, logs) is
# kept and its path printed.
#
#   bash e2e/compat/run_readonly.sh [pytest args...]
#
# Environment:
#   READONLY_TARGETS   which runs, in order (default "zookeeper paddock")
#   ZK_IPS / PD_IPS    three loopback addresses per run (defaults 127.0.0.51-53 and
#                      127.0.0.61-63); only 127.0.0.0/8 is accepted
#   KEEP=1             keep directories even on success
#   E2E_SKIP_INSTALL=1 skip the e2e/install-deps.sh check
#
# Every wait is bounded; every server this script or the test started is killed on exit.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$ROOT/e2e/.venv"
START_TIMEOUT="${READONLY_START_TIMEOUT:-60}"
T0=$SECONDS
exec </dev/null

log() { echo "run_readonly: $*" >&2; }

# fourlw, mode_of, port_busy, check_loopback, pick_ports, zk_classpath
# shellcheck source=e2e/compat/lib_ensemble.sh
source "$HERE/lib_ensemble.sh"

if [ "${E2E_SKIP_INSTALL:-0}" != "1" ]; then
  CI=true bash "$ROOT/e2e/install-deps.sh" || { log "install-deps failed"; exit 2; }
fi
"$VENV/bin/python" -c 'import kazoo, pytest' >/dev/null 2>&1 || { log "kazoo/pytest missing in $VENV"; exit 2; }

DIR=""
# Kills every server of this run: the pid each start script recorded, if that process
# still runs with this run's directory on its command line.
stop_all() {
  local f pid
  [ -n "$DIR" ] || return 0
  for f in "$DIR"/s*/pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$DIR/"; then
      kill -9 "$pid" 2>/dev/null
    fi
  done
}
NOTES=""
trap 'stop_all; [ -z "$NOTES" ] || rm -f "$NOTES"' EXIT
trap 'exit 130' INT TERM

servers_block() { # ROLE-less server lines of members 1-3
  local j
  for j in 1 2 3; do
    echo "server.$j=${IPS[$((j - 1))]}:$QUORUM:$ELECTION:participant;${IPS[$((j - 1))]}:$CLIENT"
  done
}

# s<N>/run.sh: records its pid (the server's, after exec) in s<N>/pid and runs the
# server, its output appended to s<N>/server.log. The test runs it to restart a server.
write_run_script() { # DIR COMMAND...
  local d=$1
  shift
  {
    echo '#!/usr/bin/env bash'
    printf 'cd %q || exit 1\n' "$d"
    printf 'echo $$ >%q\n' "$d/pid"
    printf 'exec'
    printf ' %q' "$@"
    printf ' >>%q 2>&1\n' "$d/server.log"
  } >"$d/run.sh"
}

write_zookeeper() { # I
  local i=$1 d="$DIR/s$1"
  mkdir -p "$d/data"
  echo "$i" >"$d/data/myid"
  servers_block >"$d/zoo.cfg.dynamic"
  {
    zookeeper_base_cfg "$d/data" "$d/zoo.cfg.dynamic"
    cat <<CFG
localSessionsEnabled=true
CFG
  } >"$d/zoo.cfg"
  write_run_script "$d" java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dreadonlymode.enabled=true -Dzookeeper.admin.enableServer=false \
    -Dorg.slf4j.simpleLogger.defaultLogLevel=info -Dorg.slf4j.simpleLogger.showDateTime=true \
    -cp "$(zk_classpath)" org.apache.zookeeper.server.quorum.QuorumPeerMain "$d/zoo.cfg"
}

write_paddock() { # I
  local i=$1 ip=${IPS[$(($1 - 1))]} d="$DIR/s$1"
  mkdir -p "$d/data"
  echo "$i" >"$d/data/myid"
  {
    paddock_base_cfg "$d/data" "$ip" "$CLIENT" "$ADMIN"
    cat <<CFG
standaloneEnabled=false
readonlymode.enabled=true
CFG
    servers_block
  } >"$d/zoo.cfg"
  write_run_script "$d" env NO_COLOR=1 RUST_LOG=info "$PD_BIN" --config "$d/zoo.cfg"
}

# Waits (bounded) until members 1-3 show one leader and two followers.
wait_ensemble() {
  local deadline=$((SECONDS + START_TIMEOUT)) modes i
  while [ $SECONDS -lt $deadline ]; do
    modes=""
    for i in 1 2 3; do modes+="$(mode_of "${IPS[$((i - 1))]}" "$CLIENT") "; done
    if [ "$(tr ' ' '\n' <<<"$modes" | grep -c '^leader$')" = 1 ] &&
       [ "$(tr ' ' '\n' <<<"$modes" | grep -c '^follower$')" = 2 ]; then
      return 0
    fi
    sleep 0.2
  done
  log "no leader with two followers within ${START_TIMEOUT}s (modes: $modes)"
  return 1
}

run_one() { # TARGET
  local target=$1 rc i base hosts=""
  case "$target" in
    zookeeper) read -r -a IPS <<<"${ZK_IPS:-127.0.0.51 127.0.0.52 127.0.0.53}" ;;
    paddock) read -r -a IPS <<<"${PD_IPS:-127.0.0.61 127.0.0.62 127.0.0.63}" ;;
    *) log "unknown target $target"; return 2 ;;
  esac
  [ "${#IPS[@]}" = 3 ] || { log "$target: three addresses needed"; return 2; }
  check_loopback "${IPS[@]}"
  base=$(pick_ports 25100 25990 "${IPS[@]}") || { log "no free ports in 25100-25993"; return 2; }
  CLIENT=$base; ADMIN=$((base + 1)); QUORUM=$((base + 2)); ELECTION=$((base + 3))
  DIR="$(mktemp -d "${TMPDIR:-/tmp}/paddock-readonly-$target.XXXXXX")"
  local t=$SECONDS
  for i in 1 2 3; do
    "write_$target" "$i"
    ( bash "$DIR/s$i/run.sh" & )
    hosts+="${hosts:+,}${IPS[$((i - 1))]}:$CLIENT"
  done
  if ! wait_ensemble; then stop_all; tail -n 20 "$DIR"/s*/server.log >&2; log "$target: logs in $DIR"; return 2; fi
  log "$target: ensemble up on ${IPS[*]} (client port $CLIENT) in $((SECONDS - t))s"

  RO_SERVERS="$hosts" RO_DIR="$DIR" RO_TARGET="$target" RO_NOTES="$NOTES" \
  PYTHONDONTWRITEBYTECODE=1 \
    timeout 400 "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$HERE/test_kazoo_readonly.py" "${PYTEST_ARGS[@]}"
  finish_run "$target" $?
  rc=$?
  DIR=""
  return "$rc"
}

PYTEST_ARGS=("$@")
# Figures the tests measured (times to read-only and back), printed at the end.
NOTES="$(mktemp "${TMPDIR:-/tmp}/paddock-readonly-notes.XXXXXX")"
TARGETS="${READONLY_TARGETS:-zookeeper paddock}"
prepare_targets "$TARGETS" || exit 2
run_targets "$TARGETS" "$NOTES" "measured:"
