#!/usr/bin/env bash
# Run the compatibility suites against paddock-server: builds it (debug, as cargo test
# does), starts it standalone on 127.0.0.2 with the same settings the reference control
# run uses (see reference_zk.sh), runs run_suites.sh, stops it.
#
#   bash e2e/compat/run_ours.sh
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
ADDR="${PADDOCK_ADDR:-127.0.0.2}"
T0=$SECONDS

cargo build --quiet -p paddock-server --manifest-path "$ROOT/Cargo.toml" || exit 2
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/paddock-server"

port_busy() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$ADDR" "$1" 2>/dev/null; }
PORT=""
for p in $(seq 22810 22899); do
  if ! port_busy "$p"; then PORT=$p; break; fi
done
[ -n "$PORT" ] || { echo "run_ours: no free port in 22810-22899" >&2; exit 2; }

DIR="$(mktemp -d "${TMPDIR:-/tmp}/paddock-ours.XXXXXX")"
DIGEST="super:$(python3 -c 'import base64,hashlib;print(base64.b64encode(hashlib.sha1(b"super:secret").digest()).decode())')"
cat >"$DIR/zoo.cfg" <<CFG
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$DIR/data
clientPort=$PORT
clientPortAddress=$ADDR
maxClientCnxns=0
minSessionTimeout=4000
maxSessionTimeout=40000
4lw.commands.whitelist=*
extendedTypesEnabled=true
reconfigEnabled=true
admin.serverPort=0
admin.serverAddress=$ADDR
superDigest=$DIGEST
znode.container.checkIntervalMs=1000
CFG

"$BIN" --config "$DIR/zoo.cfg" >"$DIR/server.log" 2>&1 &
PID=$!
cleanup() { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; }
trap cleanup EXIT
trap 'exit 130' INT TERM

ok=0
for _ in $(seq 1 100); do
  if [ "$(timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf ruok >&3 && cat <&3' "$ADDR" "$PORT" 2>/dev/null)" = imok ]; then ok=1; break; fi
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.1
done
if [ "$ok" != 1 ]; then
  echo "run_ours: paddock-server did not start; log:" >&2
  tail -n 30 "$DIR/server.log" >&2
  exit 2
fi

"$HERE/run_suites.sh" "$ADDR:$PORT"
RC=$?
if grep -q "panicked" "$DIR/server.log"; then
  echo "run_ours: the server panicked:" >&2
  grep -A5 panicked "$DIR/server.log" >&2
  RC=1
fi
cleanup
if [ "$RC" -eq 0 ]; then
  rm -rf "$DIR"
  echo "run_ours: ALL PASSED against paddock-server ($((SECONDS - T0))s total)" >&2
else
  echo "run_ours: FAILURES against paddock-server; log kept: $DIR/server.log" >&2
fi
exit "$RC"
