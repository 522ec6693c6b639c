#!/usr/bin/env bash
# Smoke test of paddock-bench (not a benchmark: no timing is judged). Builds
# paddock-server and paddock-bench (debug, as cargo test does), starts the server on
# 127.0.0.3 in a temporary directory, runs every workload for about a second with a few
# sessions, and checks that each JSON report parses, shows non-zero throughput and has
# no protocol or connection errors. Then exercises the helper subcommands (populate,
# wait-serving, wait-write, summarize). Exits non-zero on any failure.
#
#   bash e2e/bench-smoke.sh
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ADDR="${BENCH_SMOKE_ADDR:-127.0.0.3}"
T0=$SECONDS

cargo build --quiet -p paddock-server -p paddock-bench --manifest-path "$ROOT/Cargo.toml" </dev/null || exit 2
BIN_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/debug"
SERVER="$BIN_DIR/paddock-server"
BENCH="$BIN_DIR/paddock-bench"
command -v python3 >/dev/null || { echo "bench-smoke: python3 is needed to check the JSON" >&2; exit 2; }

port_busy() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$ADDR" "$1" 2>/dev/null; }
PORT=""
for p in $(seq 22910 22999); do
  if ! port_busy "$p"; then PORT=$p; break; fi
done
[ -n "$PORT" ] || { echo "bench-smoke: no free port in 22910-22999 on $ADDR" >&2; exit 2; }

DIR="$(mktemp -d "${TMPDIR:-/tmp}/paddock-bench-smoke.XXXXXX")"
cat >"$DIR/zoo.cfg" <<CFG
tickTime=2000
dataDir=$DIR/data
clientPort=$PORT
clientPortAddress=$ADDR
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr
CFG

"$SERVER" --config "$DIR/zoo.cfg" >"$DIR/server.log" 2>&1 </dev/null &
PID=$!
cleanup() { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; }
trap cleanup EXIT
trap 'exit 130' INT TERM

S="$ADDR:$PORT"
if ! timeout 60 "$BENCH" wait-serving --servers "$S" --path / --timeout 30s --json >/dev/null; then
  echo "bench-smoke: paddock-server did not start; log:" >&2
  tail -n 30 "$DIR/server.log" >&2
  exit 2
fi

FAILED=0
fail() { echo "bench-smoke: FAIL $*" >&2; FAILED=$((FAILED + 1)); }

# Checks one report: parses, measured something, no protocol/connection errors.
check_report() { # NAME FILE
  python3 - "$1" "$2" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
try:
    r = json.load(open(path))
except Exception as e:
    sys.exit(f"{name}: report is not JSON: {e}")
problems = []
if not r.get("throughput_ops_s", 0) > 0:
    problems.append(f"throughput {r.get('throughput_ops_s')}")
if not r.get("ops", 0) > 0:
    problems.append(f"ops {r.get('ops')}")
e = r.get("errors", {})
for k in ("protocol", "connection", "sessions_lost"):
    if e.get(k, -1) != 0:
        problems.append(f"errors.{k} = {e.get(k)}")
if r.get("latency_us", {}).get("p50", 0) <= 0:
    problems.append("no p50 latency")
if problems:
    sys.exit(f"{name}: " + "; ".join(problems) + f" (samples: {e.get('samples')})")
print(f"bench-smoke: ok   {name:<18} {r['throughput_ops_s']:>10.0f} ops/s  p99 {r['latency_us']['p99']:.0f} us")
PY
}

for w in read write create-delete mixed:80 watch-fanout:3 ephemeral-churn; do
  out="$DIR/$w.json"
  timeout 60 "$BENCH" --servers "$S" --workload "$w" --sessions 3 --inflight 4 --value-size 64 \
    --keys 50 --duration 1s --warmup 200ms --json >"$out" 2>"$DIR/$w.err" </dev/null
  rc=$?
  if [ "$rc" -ne 0 ]; then
    fail "$w: exit code $rc: $(head -c 500 "$DIR/$w.err")"
    continue
  fi
  check_report "$w" "$out" || fail "$w"
done

# A fixed amount of work (--ops, what bench/instructions.sh counts): exactly that many
# operations per session, measured over the time they took.
for spec in "read 2 37 74" "create-delete 1 40 40" "watch-fanout:3 1 5 15" "ephemeral-churn 2 4 8"; do
  read -r w sessions ops want <<<"$spec"
  out="$DIR/ops-$w.json"
  if ! timeout 60 "$BENCH" --servers "$S" --workload "$w" --sessions "$sessions" --inflight 3 \
      --ops "$ops" --warmup 0s --duration 1m --keys 50 --json >"$out" 2>"$DIR/ops-$w.err" </dev/null; then
    fail "--ops $ops $w: $(head -c 500 "$DIR/ops-$w.err")"
    continue
  fi
  got="$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["ops"] if r["throughput_ops_s"] > 1 else "rate %s" % r["throughput_ops_s"])' "$out")"
  [ "$got" = "$want" ] || fail "--ops $ops $w with $sessions session(s): $got operations measured, $want expected"
done

# The human-readable form works too.
if ! timeout 30 "$BENCH" --servers "$S" --workload read --sessions 2 --duration 300ms --warmup 0s \
  | grep -q "ops/s"; then
  fail "human-readable report"
fi

# Helper subcommands used by bench/compare.sh.
pop=$(timeout 60 "$BENCH" populate --servers "$S" --count 1500 --json) || fail "populate"
case "$pop" in *'"created":1500'*) ;; *) fail "populate report: $pop" ;; esac
last=/paddock-bench-load/p00001/n0499
timeout 30 "$BENCH" wait-serving --servers "$S" --path "$last" --timeout 10s --json >/dev/null || fail "wait-serving"
timeout 30 "$BENCH" wait-write --servers "$S" --path "$last" --timeout 10s --json >/dev/null || fail "wait-write"

# Bad input gets a clear error and exit code 2, not a panic.
for args in "--servers nohost --workload read" "--servers $S --workload scan" "--servers $S --workload mixed:200"; do
  # shellcheck disable=SC2086
  timeout 10 "$BENCH" $args >/dev/null 2>"$DIR/usage.err"
  rc=$?
  if [ "$rc" -ne 2 ] || grep -q panicked "$DIR/usage.err"; then fail "usage error for '$args' gave rc $rc"; fi
done
# An unreachable server is an error, promptly.
timeout 20 "$BENCH" --servers 127.0.0.3:1 --workload read --duration 1s >/dev/null 2>"$DIR/unreach.err"
rc=$?
if [ "$rc" -ne 2 ] || ! grep -q "cannot connect" "$DIR/unreach.err"; then fail "unreachable server gave rc $rc: $(cat "$DIR/unreach.err")"; fi

if grep -q panicked "$DIR/server.log"; then
  fail "the server panicked: $(grep -A5 panicked "$DIR/server.log")"
fi
cleanup
if [ "$FAILED" -eq 0 ]; then
  rm -rf "$DIR"
  echo "bench-smoke: ALL PASSED ($((SECONDS - T0))s)" >&2
  exit 0
fi
echo "bench-smoke: $FAILED failure(s); files kept in $DIR" >&2
exit 1
