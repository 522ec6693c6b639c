#!/usr/bin/env bash
# kazoo's recipes against a 3-node paddock ensemble whose leader gets killed:
# builds paddock-server (debug), starts servers 1..3 on 127.0.0.21-23 (tickTime 500,
# initLimit 10, syncLimit 5), runs e2e/zab/test_kazoo_recipes_failover.py with the e2e
# venv, and stops every server it (or the tests) started, whatever happens.
#
#   bash e2e/zab/run_ensemble.sh [pytest args...]
#
# Environment: ZAB_IPS (default "127.0.0.21 127.0.0.22 127.0.0.23"), ZK_KILLS (leader
# kills per test, default 2), KEEP=1 keeps the data and logs even on success.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$ROOT/e2e/.venv"
read -r -a IPS <<<"${ZAB_IPS:-127.0.0.21 127.0.0.22 127.0.0.23}"
N=${#IPS[@]}
T0=$SECONDS
exec </dev/null

log() { echo "run_ensemble: $*" >&2; }

cargo build --quiet -p paddock-server --manifest-path "$ROOT/Cargo.toml" || exit 2
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/paddock-server"
[ -x "$BIN" ] || { log "no binary at $BIN"; exit 2; }

if ! "$VENV/bin/python" -c 'import kazoo, pytest' >/dev/null 2>&1; then
  bash "$ROOT/e2e/install-deps.sh" || exit 2
fi

# Four ports per server (client, admin, quorum, election), the same on every address;
# the first base whose ports are free on all of them.
port_busy() { timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null; }
BASE=""
for b in $(seq 23100 10 23990); do
  free=1
  for ip in "${IPS[@]}"; do
    for off in 0 1 2 3; do
      if port_busy "$ip" $((b + off)); then free=0; break 2; fi
    done
  done
  if [ "$free" = 1 ]; then BASE=$b; break; fi
done
[ -n "$BASE" ] || { log "no free ports in 23100-23993"; exit 2; }
CLIENT=$BASE; ADMIN=$((BASE + 1)); QUORUM=$((BASE + 2)); ELECTION=$((BASE + 3))

DIR="$(mktemp -d "${TMPDIR:-/tmp}/paddock-zab.XXXXXX")"
mkdir -p "$DIR/pids"

# Stops every server of this run: the pids it started and those the tests restarted
# (recorded in $DIR/pids), each only if its command line still names this run's dir.
cleanup() {
  local f pid
  for f in "$DIR"/pids/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$DIR/"; then
      kill -9 "$pid" 2>/dev/null
    fi
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SERVERS=""
for i in $(seq 1 "$N"); do
  SERVERS+="server.$i=${IPS[$((i - 1))]}:$QUORUM:$ELECTION"$'\n'
done
for i in $(seq 1 "$N"); do
  ip=${IPS[$((i - 1))]}
  mkdir -p "$DIR/d$i"
  echo "$i" >"$DIR/d$i/myid"
  cat >"$DIR/z$i.cfg" <<CFG
tickTime=500
initLimit=10
syncLimit=5
dataDir=$DIR/d$i
clientPort=$CLIENT
clientPortAddress=$ip
admin.serverPort=$ADMIN
admin.serverAddress=$ip
4lw.commands.whitelist=*
$SERVERS
CFG
done
for i in $(seq 1 "$N"); do
  # In a subshell: not a job of this shell, so killing it prints no job notice.
  ( "$BIN" --config "$DIR/z$i.cfg" >>"$DIR/server$i.log" 2>&1 &
    echo $! >"$DIR/pids/$i.pid" )
done

HOSTS=""; ADMINS=""
for ip in "${IPS[@]}"; do
  HOSTS+="${HOSTS:+,}$ip:$CLIENT"
  ADMINS+="${ADMINS:+,}http://$ip:$ADMIN"
done

# Bounded wait for one leader and synced followers.
stable() {
  "$VENV/bin/python" - "$ADMINS" <<'PY'
import json, sys, urllib.request
st = []
for a in sys.argv[1].split(","):
    try:
        with urllib.request.urlopen(a + "/status", timeout=1) as r:
            st.append(json.loads(r.read()))
    except Exception:
        sys.exit(1)
leaders = [s for s in st if s["role"] == "leader"]
ok = len(leaders) == 1 and all(s is leaders[0] or (s["role"] == "follower" and s["synced"]) for s in st)
sys.exit(0 if ok else 1)
PY
}
ok=0
for _ in $(seq 1 300); do
  if stable; then ok=1; break; fi
  sleep 0.1
done
if [ "$ok" != 1 ]; then
  log "the ensemble did not form in 30 s; logs in $DIR"
  tail -n 20 "$DIR"/server*.log >&2
  exit 2
fi
log "ensemble up: $HOSTS (admin $ADMINS), $((SECONDS - T0))s"

ZK_HOSTS="$HOSTS" ZK_ADMIN="$ADMINS" ZK_PIDDIR="$DIR/pids" \
  "$VENV/bin/python" -m pytest -q -s -p no:cacheprovider "$HERE/test_kazoo_recipes_failover.py" "$@"
RC=$?

if grep -l "panicked" "$DIR"/*.log >/dev/null 2>&1; then
  log "a server panicked:"
  grep -h -A5 panicked "$DIR"/*.log >&2
  RC=1
fi
cleanup
if [ "$RC" -eq 0 ] && [ "${KEEP:-0}" != 1 ]; then
  rm -rf "$DIR"
  log "ALL PASSED ($((SECONDS - T0))s)"
else
  log "rc=$RC; data and logs kept in $DIR"
fi
exit "$RC"
