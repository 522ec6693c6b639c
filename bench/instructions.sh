#!/usr/bin/env bash
# Instructions paddock-server executes per operation, counted by valgrind's callgrind.
#
#   bash bench/instructions.sh      # about 5 minutes on 2 cores, build included
#
# The same binary given the same requests executes the same instructions, whatever else
# the machine is doing, so a change on a hot path is judged by this figure rather than
# by a throughput that the shared machine's load moves by ±30 %. bench/compare.sh runs
# it after the throughput rounds and prints the table beside its own.
#
# For each workload the server runs twice under callgrind, standalone on a fresh data
# dir, and paddock-bench drives exactly N operations, then 2N, from one session with one
# request in flight (so no batching depends on timing). Start, setup, teardown and
# shutdown are the same in both runs, so (instructions(2N) - instructions(N)) / N is the
# cost of one operation, every thread included (connection tasks, the request pipeline,
# the tree, the log writer). A system call counts only its user-space side: the fsync's
# wait is not an instruction, and timer ticks add a little per second of run. A second
# column gives the part spent inside the core (`Core::handle`, inclusive: the request
# pipeline, ZAB, the tree, watches, replies queued), which leaves out the async runtime
# and the sockets.
#
# Repeatability: two runs of the whole script at N = 2000 differed by 0.5-6 % in total
# (the runtime's polls and wakeups depend on timing) and by about 2 % in the core.
#
# Settings (environment):
#   BENCH_INSN_OPS=N         operations of the shorter run (default 2000)
#   BENCH_INSN_WORKLOADS=... space-separated paddock-bench workloads (default: read write
#                            create-delete watch-fanout:10 ephemeral-churn)
#   BENCH_INSN_OUT=DIR       keep instructions.tsv and the callgrind files there
#   BENCH_INSN_PORT=P        client port (default 22181)
# Prints a Markdown table; exits 1 when a run failed (the table is then incomplete).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
log() { echo "instructions: $*" >&2; }
die() { echo "instructions: error: $*" >&2; exit 1; }

OPS="${BENCH_INSN_OPS:-2000}"
WORKLOADS="${BENCH_INSN_WORKLOADS:-read write create-delete watch-fanout:10 ephemeral-churn}"
PORT="${BENCH_INSN_PORT:-22181}"
ADDR=127.0.0.1
[[ "$OPS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_INSN_OPS must be a positive number, not '$OPS'"

command -v valgrind >/dev/null 2>&1 || {
  log "installing valgrind (Debian package)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; } >/dev/null 2>&1 \
    || die "valgrind is missing and could not be installed"
}

# shellcheck source=bench/build.sh
source "$HERE/build.sh"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/paddock-insn.XXXXXX")" || die "mktemp failed"
OUT="${BENCH_INSN_OUT:-$WORK/out}"
mkdir -p "$OUT" || die "cannot create $OUT"
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill -9 "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$ADDR" "$PORT" 2>/dev/null; }
port_open && die "$ADDR:$PORT is in use (set BENCH_INSN_PORT)"

# One server under callgrind, N operations of WORKLOAD; prints the instructions the
# whole process executed.
counted_run() { # WORKLOAD OPS TAG
  local workload="$1" ops="$2" tag="$3" dir="$WORK/$3" i total
  mkdir -p "$dir/data"
  cat >"$dir/zoo.cfg" <<EOF
tickTime=2000
dataDir=$dir/data
clientPort=$PORT
clientPortAddress=$ADDR
maxClientCnxns=0
admin.enableServer=false
EOF
  # The server re-executes itself at start to enlarge glibc's malloc cache
  # (server/src/malloc_cache.rs), and callgrind does not follow an exec: the counted
  # process would be gone before the first request. A tcache count already set skips
  # the re-execution; under valgrind its value means nothing, since valgrind replaces
  # malloc.
  GLIBC_TUNABLES="${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.malloc.tcache_count=256" \
    valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.$tag" \
    "$PADDOCK" --config "$dir/zoo.cfg" >"$OUT/server.$tag.log" 2>&1 </dev/null &
  SERVER_PID=$!
  for i in $(seq 1 600); do port_open && break; sleep 0.2; done
  port_open || { log "$tag: the server did not listen within 120 s"; return 1; }
  if ! "$BENCH" --servers "$ADDR:$PORT" --workload "$workload" --sessions 1 --inflight 1 \
      --ops "$ops" --warmup 0s --duration 30m --keys 100 --json >"$OUT/bench.$tag.json" 2>"$OUT/bench.$tag.err"; then
    log "$tag: paddock-bench failed: $(tail -3 "$OUT/bench.$tag.err")"
    return 1
  fi
  kill -TERM "$SERVER_PID"
  wait "$SERVER_PID"
  SERVER_PID=""
  total="$(grep -E '^(summary|totals):' "$OUT/callgrind.$tag" | head -1 | awk '{print $2}')"
  [[ "$total" =~ ^[0-9]+$ ]] || { log "$tag: no total in $OUT/callgrind.$tag"; return 1; }
  core="$(callgrind_annotate --inclusive=yes "$OUT/callgrind.$tag" 2>/dev/null \
    | grep -F 'paddock_server::core::Core::handle [' | head -1 | awk '{gsub(",", "", $1); print $1}')"
  [[ "$core" =~ ^[0-9]+$ ]] || { log "$tag: no Core::handle in $OUT/callgrind.$tag"; return 1; }
  echo "$total $core"
}

unit_of() {
  case "$1" in
    read) echo "getData" ;;
    write) echo "setData" ;;
    create-delete) echo "request (create or delete)" ;;
    watch-fanout:*) echo "round: 1 setData, ${1#watch-fanout:} notifications and re-arming getData" ;;
    ephemeral-churn) echo "session: connect, create ephemeral, close" ;;
    *) echo "operation" ;;
  esac
}

failed=0
printf 'workload\tunit\tops\tinstructions_per_op\tcore_per_op\n' >"$OUT/instructions.tsv"
for w in $WORKLOADS; do
  log "$w: $OPS and $((2 * OPS)) operations under callgrind"
  slug="${w//:/-}"
  if ! short="$(counted_run "$w" "$OPS" "$slug.1")" || ! long="$(counted_run "$w" $((2 * OPS)) "$slug.2")"; then
    failed=1
    continue
  fi
  read -r short_total short_core <<<"$short"
  read -r long_total long_core <<<"$long"
  printf '%s\t%s\t%s\t%s\t%s\n' "$w" "$(unit_of "$w")" "$OPS" \
    $(( (long_total - short_total) / OPS )) $(( (long_core - short_core) / OPS )) >>"$OUT/instructions.tsv"
done

echo "| workload | one operation is | instructions per operation | of which in the core |"
echo "|---|---|--:|--:|"
tail -n +2 "$OUT/instructions.tsv" | while IFS=$'\t' read -r w unit _ per_op core; do
  printf '| %s | %s | %s | %s |\n' "$w" "$unit" "$per_op" "$core"
done
echo
echo "paddock-server $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), release build; callgrind totals of all threads, (I(2N) - I(N)) / N with N = $OPS, one session, one request in flight."
exit "$failed"
