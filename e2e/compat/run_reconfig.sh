#!/usr/bin/env bash
# kazoo's reconfig, the same test file (e2e/compat/test_kazoo_reconfig.py) against:
#   1. a 3-node Apache ZooKeeper 3.8 ensemble from Debian (the control), then
#   2. a 3-node paddock-server ensemble (debug build, as cargo test builds it),
# each with a 4th server started as a joiner (an observer in its own config; paddock's
# with --join). Exits non-zero if either run fails; on failure the run's directory
# (configs, data, logs) is kept and its path printed.
#
#   bash e2e/compat/run_reconfig.sh [pytest args...]
#
# Environment:
#   RECONFIG_TARGETS   which runs, in order (default "zookeeper paddock")
#   ZK_IPS / PD_IPS    four loopback addresses per run (defaults 127.0.0.31-34 and
#                      127.0.0.41-44); only 127.0.0.0/8 is accepted
#   KEEP=1             keep directories even on success
#   E2E_SKIP_INSTALL=1 skip the e2e/install-deps.sh check
#
# Every wait is bounded; every process this script starts is killed on exit.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$ROOT/e2e/.venv"
START_TIMEOUT="${RECONFIG_START_TIMEOUT:-60}"
T0=$SECONDS
exec </dev/null

log() { echo "run_reconfig: $*" >&2; }

if [ "${E2E_SKIP_INSTALL:-0}" != "1" ]; then
  CI=true bash "$ROOT/e2e/install-deps.sh" || { log "install-deps failed"; exit 2; }
fi
"$VENV/bin/python" -c 'import kazoo, pytest' >/dev/null 2>&1 || { log "kazoo/pytest missing in $VENV"; exit 2; }

DIGEST="super:$(python3 -c 'import base64,hashlib;print(base64.b64encode(hashlib.sha1(b"super:secret").digest()).decode())')"

# fourlw, mode_of, port_busy, check_loopback, pick_ports, zk_classpath
# shellcheck source=e2e/compat/lib_ensemble.sh
source "$HERE/lib_ensemble.sh"

# ---- per-run state (one run at a time) -------------------------------------------------
DIR=""
PIDS=()
stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -9 "$pid" 2>/dev/null
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null
  done
  PIDS=()
}
NOTES=""
trap 'stop_all; [ -z "$NOTES" ] || rm -f "$NOTES"' EXIT
trap 'exit 130' INT TERM

# Server line of member I (1-based) with ROLE.
server_line() { # I ROLE
  local ip=${IPS[$(($1 - 1))]}
  echo "server.$1=$ip:$QUORUM:$ELECTION:$2;$ip:$CLIENT"
}

start_zookeeper() { # I  (4 = the joiner: the ensemble plus itself as observer)
  local i=$1 ip=${IPS[$(($1 - 1))]} d="$DIR/s$1" j
  mkdir -p "$d/data"
  echo "$i" >"$d/data/myid"
  : >"$d/zoo.cfg.dynamic"
  for j in 1 2 3; do server_line "$j" participant >>"$d/zoo.cfg.dynamic"; done
  if [ "$i" = 4 ]; then server_line 4 observer >>"$d/zoo.cfg.dynamic"; fi
  {
    zookeeper_base_cfg "$d/data" "$d/zoo.cfg.dynamic"
    cat <<CFG
reconfigEnabled=true
CFG
  } >"$d/zoo.cfg"
  local cp
  cp=$(zk_classpath)
  ( cd "$d" && exec java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
      -Dzookeeper.DigestAuthenticationProvider.superDigest="$DIGEST" \
      -Dzookeeper.admin.enableServer=false \
      -Dorg.slf4j.simpleLogger.defaultLogLevel=info \
      -Dorg.slf4j.simpleLogger.showDateTime=true \
      -cp "$cp" org.apache.zookeeper.server.quorum.QuorumPeerMain "$d/zoo.cfg" \
      >"$d/server.log" 2>&1 ) &
  PIDS+=($!)
}

start_paddock() { # I  (4 = the joiner: its own observer line plus --join)
  local i=$1 ip=${IPS[$(($1 - 1))]} d="$DIR/s$1" j join=()
  mkdir -p "$d/data"
  echo "$i" >"$d/data/myid"
  {
    paddock_base_cfg "$d/data" "$ip" "$CLIENT" "$ADMIN"
    cat <<CFG
reconfigEnabled=true
standaloneEnabled=false
superDigest=$DIGEST
CFG
    if [ "$i" = 4 ]; then
      server_line 4 observer
    else
      for j in 1 2 3; do server_line "$j" participant; done
    fi
  } >"$d/zoo.cfg"
  if [ "$i" = 4 ]; then join=(--join "${IPS[0]}:$CLIENT,${IPS[1]}:$CLIENT,${IPS[2]}:$CLIENT"); fi
  ( cd "$d" && exec env NO_COLOR=1 RUST_LOG=info "$PD_BIN" --config "$d/zoo.cfg" "${join[@]}" \
      >"$d/server.log" 2>&1 ) &
  PIDS+=($!)
}

# Fails if a server this run started has exited.
all_alive() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null || { log "a server exited (pid $pid)"; return 1; }
  done
}

# Waits (bounded) until members 1-3 show one leader and two followers.
wait_ensemble() {
  local deadline=$((SECONDS + START_TIMEOUT)) modes i
  while [ $SECONDS -lt $deadline ]; do
    all_alive || return 1
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

# Waits (bounded) until the joiner serves clients (synced with the leader).
wait_joiner() {
  local deadline=$((SECONDS + START_TIMEOUT)) m=""
  while [ $SECONDS -lt $deadline ]; do
    all_alive || return 1
    m="$(mode_of "${IPS[3]}" "$CLIENT")"
    case "$m" in observer|follower) return 0 ;; esac
    sleep 0.2
  done
  log "the joiner did not sync within ${START_TIMEOUT}s (mode: '$m')"
  return 1
}

run_one() { # TARGET
  local target=$1 rc i
  case "$target" in
    zookeeper) read -r -a IPS <<<"${ZK_IPS:-127.0.0.31 127.0.0.32 127.0.0.33 127.0.0.34}" ;;
    paddock) read -r -a IPS <<<"${PD_IPS:-127.0.0.41 127.0.0.42 127.0.0.43 127.0.0.44}" ;;
    *) log "unknown target $target"; return 2 ;;
  esac
  [ "${#IPS[@]}" = 4 ] || { log "$target: four addresses needed"; return 2; }
  check_loopback "${IPS[@]}"
  local base
  base=$(pick_ports 24100 24990 "${IPS[@]}") || { log "no free ports in 24100-24993"; return 2; }
  CLIENT=$base; ADMIN=$((base + 1)); QUORUM=$((base + 2)); ELECTION=$((base + 3))
  DIR="$(mktemp -d "${TMPDIR:-/tmp}/paddock-reconfig-$target.XXXXXX")"
  local t=$SECONDS
  for i in 1 2 3; do "start_$target" "$i"; done
  if ! wait_ensemble; then stop_all; tail -n 20 "$DIR"/s*/server.log >&2; log "$target: logs in $DIR"; return 2; fi
  "start_$target" 4
  if ! wait_joiner; then stop_all; tail -n 20 "$DIR"/s4/server.log >&2; log "$target: logs in $DIR"; return 2; fi
  log "$target: ensemble 1-3 and joiner 4 up on ${IPS[*]} (client port $CLIENT) in $((SECONDS - t))s"

  ZK_HOSTS="${IPS[0]}:$CLIENT,${IPS[1]}:$CLIENT,${IPS[2]}:$CLIENT" \
  RECONFIG_TARGET="$target" \
  RECONFIG_NOTES="$NOTES" \
  RECONFIG_JOINER_ID=4 \
  RECONFIG_JOINER_SPEC="${IPS[3]}:$QUORUM:$ELECTION:participant;${IPS[3]}:$CLIENT" \
  RECONFIG_JOINER_HOST="${IPS[3]}:$CLIENT" PYTHONDONTWRITEBYTECODE=1 \
    timeout 300 "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$HERE/test_kazoo_reconfig.py" "${PYTEST_ARGS[@]}"
  finish_run "$target" $?
  rc=$?
  return "$rc"
}

PYTEST_ARGS=("$@")
# Behaviours the tests observed (and accept either way), printed at the end.
NOTES="$(mktemp "${TMPDIR:-/tmp}/paddock-reconfig-notes.XXXXXX")"
TARGETS="${RECONFIG_TARGETS:-zookeeper paddock}"
prepare_targets "$TARGETS" || exit 2
run_targets "$TARGETS" "$NOTES" "observed:"
