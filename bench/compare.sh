#!/usr/bin/env bash
# Paddock vs Apache ZooKeeper 3.8, side by side, in one command:
#
#   bash bench/compare.sh                # full run, about 15 minutes
#   BENCH_TINY=1 bash bench/compare.sh   # a minute or two, to prove it still works
#
# What it does, all on loopback (127.0.0.0/8) with the same zoo.cfg settings for both
# servers (fsync on: forceSync=yes, which Paddock always does anyway; autopurge on,
# keeping 3 snapshots, as the operator configures every ensemble):
#   1. installs Debian's `zookeeper` package (Apache ZooKeeper 3.8) if it is missing and
#      builds paddock-server and paddock-bench in release mode;
#   2. describes the machine (cores, memory, disk, measured fsync latency);
#   3. 1-node: starts one Paddock and one ZooKeeper, runs every workload against both,
#      alternating which goes first, for BENCH_ROUNDS rounds (figures are medians);
#      then per server: RSS idle, loads BENCH_ZNODES znodes of 100 bytes (BENCH_VALUES:
#      the same repeated alphabet in each, or random bytes that do not compress), RSS and data
#      size after loading (snapshots and logs apart, and how much the load alone added:
#      the workloads before ran for a fixed time, so the faster server logged more),
#      data size once each server's purge has run (Paddock purges after each snapshot;
#      ZooKeeper's autopurge runs hourly, so the script runs its PurgeTxnLog -n 3),
#      restart-to-serving time (process start until the first
#      successful getData of the last loaded znode), RSS after the restart;
#   4. 3-node: the same workloads against a 3-server ensemble of each (sessions spread
#      over the three), then failover: kill -9 of the leader until the first
#      acknowledged write on a survivor (median of BENCH_FAILOVER_TRIALS; the leader is
#      the server whose `srvr` says Mode: leader). An ensemble counts as formed when all
#      three serve and a znode created through one is readable on the others; otherwise
#      that server's 3-node cells say "n/a (...)" with the reason;
#   5. instructions per operation of paddock-server, counted by callgrind
#      (bench/instructions.sh): the figure by which a change on a hot path is judged,
#      since the machine's load does not move it;
#   6. prints one table (Paddock, ZooKeeper, ratio) and the instructions table, and
#      writes them with the machine description and the exact command to
#      $BENCH_OUT/report.md.
#
# Settings (environment; defaults are the full run, BENCH_TINY=1 changes the defaults):
#   BENCH_ROUNDS (3 | tiny 1)        BENCH_DURATION (8s | 1s)   BENCH_WARMUP (2s | 0.5s)
#   BENCH_SESSIONS (16 | 4)          BENCH_INFLIGHT (8 | 4)     BENCH_VALUE_SIZE (100)
#   BENCH_KEYS (10000 | 1000)        BENCH_MIXED (90: percent reads)
#   BENCH_FANOUT (100 | 10)          BENCH_ZNODES (1000000 | 10000)
#   BENCH_VALUES (alphabet | random: what the loaded znodes hold; Paddock compresses its
#                 snapshots, and random bytes show the size when nothing compresses)
#   BENCH_FAILOVER_TRIALS (3 | 1)    BENCH_SETUPS ("1-node 3-node")
#   BENCH_INSTRUCTIONS (1; 0 skips step 5)   BENCH_INSN_OPS (2000 | 100)
#   BENCH_WORKLOADS ("read write create-delete mixed:$BENCH_MIXED watch-fanout:$BENCH_FANOUT ephemeral-churn")
#   BENCH_WORK (scratch dir; default a new mktemp dir, removed at the end unless BENCH_KEEP=1)
#   BENCH_OUT (results dir; default $BENCH_WORK/results, kept if BENCH_OUT is given)
#   BENCH_PORT (first client port tried, 24181)
#
# Every wait is bounded; every process this script starts is stopped by its pid on exit.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
T_START=$SECONDS
COMMAND_LINE="$(for v in $(compgen -e | grep '^BENCH_' | sort); do printf '%s=%q ' "$v" "${!v}"; done)bash bench/compare.sh"

log() { echo "compare: $*" >&2; }
die() { echo "compare: error: $*" >&2; exit 1; }

TINY="${BENCH_TINY:-0}"
pick() { if [ "$TINY" = 1 ]; then echo "$2"; else echo "$1"; fi; }
ROUNDS="${BENCH_ROUNDS:-$(pick 3 1)}"
DURATION="${BENCH_DURATION:-$(pick 8s 1s)}"
WARMUP="${BENCH_WARMUP:-$(pick 2s 0.5s)}"
SESSIONS="${BENCH_SESSIONS:-$(pick 16 4)}"
INFLIGHT="${BENCH_INFLIGHT:-$(pick 8 4)}"
VALUE_SIZE="${BENCH_VALUE_SIZE:-100}"
KEYS="${BENCH_KEYS:-$(pick 10000 1000)}"
MIXED="${BENCH_MIXED:-90}"
FANOUT="${BENCH_FANOUT:-$(pick 100 10)}"
ZNODES="${BENCH_ZNODES:-$(pick 1000000 10000)}"
VALUES="${BENCH_VALUES:-alphabet}"
case "$VALUES" in alphabet | random) ;; *) die "BENCH_VALUES must be alphabet or random, got '$VALUES'" ;; esac
TRIALS="${BENCH_FAILOVER_TRIALS:-$(pick 3 1)}"
SETUPS="${BENCH_SETUPS:-1-node 3-node}"
INSTRUCTIONS="${BENCH_INSTRUCTIONS:-1}"
INSN_OPS="${BENCH_INSN_OPS:-$(pick 2000 100)}"
WORKLOADS="${BENCH_WORKLOADS:-read write create-delete mixed:$MIXED watch-fanout:$FANOUT ephemeral-churn}"
BASE_PORT="${BENCH_PORT:-24181}"
# How long a server may take to start, an ensemble to form, a probe to succeed.
START_TIMEOUT=120

for n in "$ROUNDS" "$SESSIONS" "$INFLIGHT" "$VALUE_SIZE" "$KEYS" "$ZNODES" "$TRIALS" "$BASE_PORT"; do
  [[ "$n" =~ ^[0-9]+$ ]] || die "expected a number, got '$n' (check the BENCH_* variables)"
done

# ------------------------------------------------------------------ prerequisites ---
ZK_JAR=/usr/share/java/zookeeper.jar
if [ ! -r "$ZK_JAR" ] || ! command -v java >/dev/null 2>&1; then
  log "installing Debian's zookeeper package (Apache ZooKeeper 3.8)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q </dev/null && $SUDO apt-get install -y -q --no-install-recommends zookeeper </dev/null \
    || die "could not install the zookeeper package"
fi
[ -r "$ZK_JAR" ] || die "$ZK_JAR missing after install"
command -v java >/dev/null 2>&1 || die "java not found"
ZK_VERSION="$(unzip -p "$ZK_JAR" META-INF/MANIFEST.MF 2>/dev/null | tr -d '\r' | sed -n 's/^Implementation-Version: //p' | head -1)"
[ -n "$ZK_VERSION" ] || ZK_VERSION="$(dpkg-query -W -f='${Version}' zookeeper 2>/dev/null || echo unknown)"
ZK_CP="$ZK_JAR"
# Debian's zookeeper.jar has no slf4j binding (it logs nothing); slf4j-simple gives it an
# INFO log like Paddock's, which matters when a run has to be explained.
[ -r /usr/share/java/slf4j-simple.jar ] && ZK_CP="$ZK_CP:/usr/share/java/slf4j-simple.jar"

# shellcheck source=bench/build.sh
source "$HERE/build.sh"

# ------------------------------------------------------------------ scratch space ---
if [ -n "${BENCH_WORK:-}" ]; then WORK="$BENCH_WORK"; mkdir -p "$WORK" || die "cannot create $WORK"
else WORK="$(mktemp -d "${TMPDIR:-/tmp}/paddock-compare.XXXXXX")" || die "mktemp failed"; fi
WORK="$(cd "$WORK" && pwd)"
OUT="${BENCH_OUT:-$WORK/results}"
mkdir -p "$OUT/runs" "$OUT/logs" || die "cannot create $OUT"
OUT="$(cd "$OUT" && pwd)"
: >"$OUT/plan.tsv"; : >"$OUT/metrics.tsv"
rm -f "$OUT"/runs/* 2>/dev/null

# pids of every server this script started, by name (e.g. paddock-1, zookeeper-3.2)
declare -A PIDS=()
cleanup() {
  local name pid d
  {
    for name in "${!PIDS[@]}"; do
      pid="${PIDS[$name]}"
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    done
    for name in "${!PIDS[@]}"; do wait "${PIDS[$name]}"; done
  } 2>/dev/null
  # Keep the servers' logs with the results.
  for d in "$WORK"/p1 "$WORK"/z1 "$WORK"/p3.* "$WORK"/z3.*; do
    [ -f "$d/server.log" ] && cp "$d/server.log" "$OUT/logs/server-$(basename "$d").log" 2>/dev/null
  done
  if [ -z "${BENCH_KEEP:-}" ] && [ -z "${BENCH_WORK:-}" ]; then
    if [ -n "${BENCH_OUT:-}" ]; then rm -rf "$WORK"; else find "$WORK" -mindepth 1 -maxdepth 1 ! -name results -exec rm -rf {} +; fi
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ helpers ---
fourlw() { # ADDR PORT WORD -> the answer (empty on failure), bounded by 3 s
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf %s "$2" >&3 && cat <&3' "$1" "$2" "$3" 2>/dev/null || true
}
port_busy() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null; }
mode_of() { fourlw "$1" "$2" srvr | sed -n 's/^Mode: //p' | tr -d '\r'; }
now_ns() { date +%s%N; }
rss_mib() { # PID -> VmRSS in MiB (one decimal)
  awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
json_field() { # FILE KEY -> a top-level number or string field of one-line JSON
  sed -n "s/.*\"$2\": *\\(\"[^\"]*\"\\|[-0-9.e]*\\).*/\\1/p" "$1" | tr -d '"' | head -1
}
metric() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$OUT/metrics.tsv"; }

# MiB on disk (allocated, as du counts) of the files named PATTERN under DIR; both
# servers name their snapshots snapshot.<zxid> and their logs log.<zxid>.
du_files_mib() { # DIR PATTERN
  find "$1" -type f -name "$2" -print0 | du -cm --files0-from=- 2>/dev/null | tail -n 1 | cut -f1
}

# A free client port on ADDR, the same number for every address of an ensemble.
pick_port() { # ADDR...
  local p a busy
  for p in $(seq "$BASE_PORT" $((BASE_PORT + 50))); do
    busy=0
    for a in "$@"; do
      if port_busy "$a" "$p" || port_busy "$a" $((p + 1000)) || port_busy "$a" $((p + 2000)); then busy=1; break; fi
    done
    [ "$busy" = 0 ] && { echo "$p"; return 0; }
  done
  return 1
}

# zoo.cfg shared by both servers. ENSEMBLE is "" (standalone) or "ADDR1 ADDR2 ADDR3".
write_cfg() { # DIR ADDR PORT ENSEMBLE
  local dir="$1" addr="$2" port="$3" ensemble="$4" i=0 a
  mkdir -p "$dir/data"
  cat >"$dir/zoo.cfg" <<EOF
# generated by bench/compare.sh: identical for Paddock and Apache ZooKeeper
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$dir/data
clientPort=$port
clientPortAddress=$addr
maxClientCnxns=0
forceSync=yes
admin.enableServer=false
4lw.commands.whitelist=srvr,ruok,mntr
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
EOF
  if [ -n "$ensemble" ]; then
    for a in $ensemble; do
      i=$((i + 1))
      echo "server.$i=$a:$((port + 1000)):$((port + 2000))" >>"$dir/zoo.cfg"
      [ "$a" = "$addr" ] && echo "$i" >"$dir/data/myid"
    done
  fi
}

start_server() { # KIND NAME DIR  (KIND: paddock|zookeeper); sets PIDS[NAME]
  local kind="$1" name="$2" dir="$3"
  if [ "$kind" = paddock ]; then
    RUST_LOG=info "$PADDOCK" --config "$dir/zoo.cfg" >>"$dir/server.log" 2>&1 </dev/null &
  else
    # As Debian's zkServer.sh starts it (JVM defaults, no heap flags), plus a log binding.
    (cd "$dir" && exec java "-Dzookeeper.log.dir=$dir" -XX:OnOutOfMemoryError='kill -9 %p' \
      -cp "$ZK_CP" org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg") \
      >>"$dir/server.log" 2>&1 </dev/null &
  fi
  PIDS[$name]=$!
}

stop_server() { # NAME  (SIGTERM, then SIGKILL after 20 s)
  local pid="${PIDS[$1]:-}" i
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null
  for i in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  unset "PIDS[$1]"
}

wait_serving() { # SERVERS PATH [SINCE_NS] -> prints the JSON report; fails after START_TIMEOUT
  local args=(wait-serving --servers "$1" --path "$2" --timeout "${START_TIMEOUT}s" --json)
  [ -n "${3:-}" ] && args+=(--since-unix-ns "$3")
  "$BENCH" "${args[@]}"
}

slug() { echo "${1//:/-}"; }

# One workload against one server set; the JSON goes to runs/, the text to logs/.
run_one() { # SETUP WORKLOAD KIND SERVERS ROUND
  local setup="$1" w="$2" kind="$3" servers="$4" round="$5"
  local base="$OUT/runs/$setup.$(slug "$w").$kind.r$round"
  "$BENCH" --servers "$servers" --workload "$w" --sessions "$SESSIONS" --inflight "$INFLIGHT" \
    --value-size "$VALUE_SIZE" --keys "$KEYS" --duration "$DURATION" --warmup "$WARMUP" --json \
    >"$base.json" 2>"$OUT/logs/$setup.$(slug "$w").$kind.r$round.err" </dev/null
  local rc=$?
  if [ "$rc" -ge 2 ] || ! grep -q '"throughput_ops_s"' "$base.json"; then
    log "  $kind $w: FAILED (rc $rc): $(head -c 300 "$OUT/logs/$setup.$(slug "$w").$kind.r$round.err")"
    rm -f "$base.json"
    [ -f "$OUT/runs/$setup.$(slug "$w").$kind.na" ] || echo "failed (see logs)" >"$OUT/runs/$setup.$(slug "$w").$kind.na"
    return 1
  fi
  log "  $kind $w: $(json_field "$base.json" throughput_ops_s) ops/s, errors $(grep -o '"total": [0-9]*' "$base.json" | head -1 | grep -o '[0-9]*$')"
}

# Alternate which server goes first, workload by workload and round by round.
run_workloads() { # SETUP PADDOCK_SERVERS|"" ZOOKEEPER_SERVERS
  local setup="$1" p="$2" z="$3" r i w order
  for w in $WORKLOADS; do printf '%s\t%s\t%s\n' "$setup" "$w" "$(slug "$w")" >>"$OUT/plan.tsv"; done
  for r in $(seq 1 "$ROUNDS"); do
    log "$setup round $r/$ROUNDS"
    i=$r
    for w in $WORKLOADS; do
      i=$((i + 1))
      if [ $((i % 2)) = 0 ]; then order="paddock zookeeper"; else order="zookeeper paddock"; fi
      for kind in $order; do
        if [ "$kind" = paddock ]; then
          [ -n "$p" ] && run_one "$setup" "$w" paddock "$p" "$r"
        else
          run_one "$setup" "$w" zookeeper "$z" "$r"
        fi
      done
    done
  done
}

# ------------------------------------------------------------------ the machine ---
describe_machine() {
  local probe="$WORK/fsync.probe" n=200 t0 t1
  t0=$(now_ns)
  dd if=/dev/zero of="$probe" bs=4k count=$n oflag=dsync status=none 2>/dev/null
  t1=$(now_ns)
  rm -f "$probe"
  FSYNC_MS=$(awk -v a="$t0" -v b="$t1" -v n="$n" 'BEGIN { printf "%.2f", (b - a) / n / 1e6 }')
  {
    echo "- CPU: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1))"
    echo "- memory: $(free -g | awk '/^Mem:/ { print $2 " GiB total, " $7 " GiB available" }')"
    echo "- disk (scratch dir $WORK): $(df -h "$WORK" | awk 'NR == 2 { print $1 ", " $2 " size, " $4 " free" }')"
    echo "- fsync latency: $FSYNC_MS ms per 4 KiB write with O_DSYNC (dd oflag=dsync, $n writes, same filesystem as the data dirs)"
    echo "- kernel $(uname -r); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- Paddock: paddock-server $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || echo ' (with uncommitted changes)'), release build"
    echo "- Apache ZooKeeper $ZK_VERSION (Debian package), $(java -version 2>&1 | head -1), JVM defaults as Debian's zkServer.sh (no -Xmx: max heap = 1/4 of RAM)"
  } >"$OUT/machine.md"
}

# ------------------------------------------------------------------ 1-node ---
one_node() {
  local pa=127.0.0.11 za=127.0.0.21 pp zp
  pp=$(pick_port "$pa") || die "no free port on $pa"
  zp=$(pick_port "$za") || die "no free port on $za"
  write_cfg "$WORK/p1" "$pa" "$pp" ""
  write_cfg "$WORK/z1" "$za" "$zp" ""
  start_server paddock paddock-1 "$WORK/p1"
  start_server zookeeper zookeeper-1 "$WORK/z1"
  wait_serving "$pa:$pp" / >/dev/null || die "Paddock did not start (log: $WORK/p1/server.log)"
  wait_serving "$za:$zp" / >/dev/null || die "ZooKeeper did not start (log: $WORK/z1/server.log)"
  log "1-node: Paddock on $pa:$pp (pid ${PIDS[paddock-1]}), ZooKeeper on $za:$zp (pid ${PIDS[zookeeper-1]})"
  run_workloads 1-node "$pa:$pp" "$za:$zp"

  # Resources, one server at a time (the other one idles).
  local kind name addr port dir pid pop last t0 ready
  local label_load="RSS after loading $ZNODES znodes of 100 B ($VALUES values)"
  for kind in paddock zookeeper; do
    if [ "$kind" = paddock ]; then name=paddock-1 addr=$pa port=$pp dir="$WORK/p1"
    else name=zookeeper-1 addr=$za port=$zp dir="$WORK/z1"; fi
    pid=${PIDS[$name]}
    metric "RSS idle (after the workloads, before loading)" "$kind" "$(rss_mib "$pid")" MiB
    log "$kind: loading $ZNODES znodes"
    local disk_before; disk_before=$(du -sm "$dir/data" | cut -f1)
    t0=$(now_ns)
    pop=$("$BENCH" populate --servers "$addr:$port" --count "$ZNODES" --value-size 100 --values "$VALUES" --sessions 8 --inflight 64 \
      --request-timeout 60s --json 2>>"$OUT/logs/populate.$kind.err")
    if [ -z "$pop" ]; then
      log "$kind: populate failed: $(tail -c 300 "$OUT/logs/populate.$kind.err")"
      metric "$label_load" "$kind" "failed" MiB
      continue
    fi
    echo "$pop" >"$OUT/logs/populate.$kind.json"
    metric "time to load $ZNODES znodes (8 sessions x 64 in flight)" "$kind" \
      "$(awk -v a="$t0" -v b="$(now_ns)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')" s
    last=$(json_field "$OUT/logs/populate.$kind.json" last_path)
    sleep 5 # let background snapshotting and GC settle before reading RSS
    metric "$label_load" "$kind" "$(rss_mib "$pid")" MiB
    metric "data dir size after loading" "$kind" "$(du -sm "$dir/data" | cut -f1)" MiB
    metric "… of which snapshots" "$kind" "$(du_files_mib "$dir/data" 'snapshot.*')" MiB
    metric "… of which txn logs" "$kind" "$(du_files_mib "$dir/data" 'log.*')" MiB
    # The workloads before ran for a fixed time, so the faster server logged more txns;
    # the growth while loading is the same creates for both.
    metric "data dir growth while loading (the same creates for both)" "$kind" \
      "$(( $(du -sm "$dir/data" | cut -f1) - disk_before ))" MiB
    # Both keep 3 snapshots and the logs they need. Paddock purges as each snapshot is
    # written; ZooKeeper's autopurge runs once an hour (first at start), so here its own
    # purge tool does what the next hourly run would.
    local purged=1
    if [ "$kind" = zookeeper ] && ! java -cp "$ZK_CP" org.apache.zookeeper.server.PurgeTxnLog \
        "$dir/data" "$dir/data" -n 3 >>"$OUT/logs/purge.$kind.log" 2>&1; then
      log "zookeeper: PurgeTxnLog failed (log: $OUT/logs/purge.$kind.log)"
      purged=0
    fi
    if [ "$purged" = 1 ]; then
      metric "data dir once each server's purge has run (3 snapshots kept)" "$kind" "$(du -sm "$dir/data" | cut -f1)" MiB
      metric "… of which snapshots, after the purge" "$kind" "$(du_files_mib "$dir/data" 'snapshot.*')" MiB
      metric "… of which txn logs, after the purge" "$kind" "$(du_files_mib "$dir/data" 'log.*')" MiB
    else
      metric "data dir once each server's purge has run (3 snapshots kept)" "$kind" "failed: PurgeTxnLog" MiB
    fi
    log "$kind: restarting with $ZNODES znodes"
    stop_server "$name"
    t0=$(now_ns)
    start_server "$kind" "$name" "$dir"
    if ready=$(wait_serving "$addr:$port" "$last" "$t0" 2>>"$OUT/logs/restart.$kind.err"); then
      echo "$ready" >"$OUT/logs/restart.$kind.json"
      metric "restart to serving (process start → first getData) with $ZNODES znodes" "$kind" \
        "$(awk -v ms="$(json_field "$OUT/logs/restart.$kind.json" elapsed_ms)" 'BEGIN { printf "%.2f", ms / 1000 }')" s
      sleep 2
      metric "RSS right after the restart" "$kind" "$(rss_mib "${PIDS[$name]}")" MiB
    else
      metric "restart to serving (process start → first getData) with $ZNODES znodes" "$kind" "failed" s
    fi
  done
  stop_server paddock-1
  stop_server zookeeper-1
}

# ------------------------------------------------------------------ 3-node ---
# Starts KIND's ensemble on ADDRS; sets ENSEMBLE_STATUS to "ok" or the reason it is not
# usable. (Not called in $(...): the servers must be children of this shell.) "Formed"
# is judged through the client protocol, the same way for both servers: every server
# serves, and a znode created through the first one becomes readable on the others.
start_ensemble() { # KIND PREFIX PORT ADDRS...
  local kind="$1" prefix="$2" port="$3"; shift 3
  local addrs="$*" i=0 a modes="" check=/paddock-bench-ensemble-check
  for a in $addrs; do
    i=$((i + 1))
    write_cfg "$WORK/$prefix$i" "$a" "$port" "$addrs"
    start_server "$kind" "$kind-3.$i" "$WORK/$prefix$i"
  done
  for a in $addrs; do
    wait_serving "$a:$port" / >/dev/null 2>&1 || { ENSEMBLE_STATUS="n/a (server $a did not start serving)"; return 1; }
  done
  set -- $addrs
  if ! "$BENCH" populate --servers "$1:$port" --count 1 --root "$check" --json >/dev/null 2>&1; then
    ENSEMBLE_STATUS="n/a (cannot write through $1)"; return 1
  fi
  local other
  for other in "${@:2}"; do
    if ! "$BENCH" wait-serving --servers "$other:$port" --path "$check/p00000/n0000" --timeout 20s >/dev/null 2>&1; then
      for a in $addrs; do modes="$modes $(mode_of "$a" "$port")"; done
      case "$modes" in
        *leader*) ENSEMBLE_STATUS="n/a (a write through $1 never became readable on $other)" ;;
        *) ENSEMBLE_STATUS="n/a (ensembles not yet implemented: writes do not replicate; srvr modes:$modes)" ;;
      esac
      return 1
    fi
  done
  ENSEMBLE_STATUS=ok
}

stop_ensemble() { # KIND
  local i
  for i in 1 2 3; do stop_server "$1-3.$i"; done
}

leader_index() { # PORT ADDRS... -> 1..3 of the server reporting Mode: leader
  local port="$1" i=0 a; shift
  for a in "$@"; do i=$((i + 1)); [ "$(mode_of "$a" "$port")" = leader ] && { echo "$i"; return 0; }; done
  return 1
}

FAILOVER_LABEL="failover: kill -9 of the leader → first acknowledged write (median of $TRIALS)"

# kill -9 the leader, time the first acknowledged write on the survivors, restart it.
failover() { # KIND PREFIX PORT ADDRS...
  local kind="$1" prefix="$2" port="$3"; shift 3
  local addrs=("$@") servers="" a t li survivors t0 res times=() deadline
  for a in "${addrs[@]}"; do servers="$servers,$a:$port"; done
  servers="${servers#,}"
  "$BENCH" populate --servers "$servers" --count 1 --root /paddock-bench-failover --json >/dev/null 2>&1 \
    || { metric "$FAILOVER_LABEL" "$kind" "failed" ms; return; }
  for t in $(seq 1 "$TRIALS"); do
    if ! li=$(leader_index "$port" "${addrs[@]}"); then
      # Leader discovery is srvr's "Mode: leader", as for any ZooKeeper ensemble.
      local modes="" a2
      for a2 in "${addrs[@]}"; do modes="$modes $(mode_of "$a2" "$port")"; done
      log "$kind: no server reports Mode: leader (srvr modes:$modes)"
      [ "$t" = 1 ] && { metric "$FAILOVER_LABEL" "$kind" "n/a (srvr names no leader; modes:$modes)" ms; return; }
      break
    fi
    survivors=""
    for i in 1 2 3; do [ "$i" = "$li" ] || survivors="$survivors,${addrs[$((i - 1))]}:$port"; done
    # (bash's "Killed" job notice is silenced by the group's redirect; the probe's own
    # errors go to the log.)
    {
      t0=$(now_ns)
      kill -9 "${PIDS[$kind-3.$li]}"
      res=$("$BENCH" wait-write --servers "${survivors#,}" --path /paddock-bench-failover/p00000/n0000 \
        --since-unix-ns "$t0" --timeout 60s --connect-timeout 2s --request-timeout 5s --json 2>>"$OUT/logs/failover.$kind.err")
      wait "${PIDS[$kind-3.$li]}"
    } 2>/dev/null
    if [ -n "$res" ]; then
      echo "$res" >>"$OUT/logs/failover.$kind.json"
      times+=("$(echo "$res" | sed -n 's/.*"elapsed_ms":\([0-9.]*\).*/\1/p')")
      log "$kind failover trial $t: ${times[-1]} ms (leader was server $li)"
    else
      log "$kind failover trial $t: no write acknowledged within 60 s"
    fi
    start_server "$kind" "$kind-3.$li" "$WORK/$prefix$li"
    deadline=$((SECONDS + START_TIMEOUT))
    until [[ "$(mode_of "${addrs[$((li - 1))]}" "$port")" =~ ^(follower|leader)$ ]] || [ $SECONDS -ge $deadline ]; do sleep 0.2; done
  done
  if [ "${#times[@]}" -gt 0 ]; then
    metric "$FAILOVER_LABEL" "$kind" "$(printf '%s\n' "${times[@]}" | median)" ms
  else
    metric "$FAILOVER_LABEL" "$kind" "failed" ms
  fi
}

three_node() {
  local paddrs=(127.0.0.12 127.0.0.13 127.0.0.14) zaddrs=(127.0.0.22 127.0.0.23 127.0.0.24)
  local pp zp pstatus zstatus pservers="" zservers="" a w
  pp=$(pick_port "${paddrs[@]}") || die "no free port on ${paddrs[*]}"
  zp=$(pick_port "${zaddrs[@]}") || die "no free port on ${zaddrs[*]}"
  start_ensemble zookeeper z3. "$zp" "${zaddrs[@]}"
  zstatus=$ENSEMBLE_STATUS
  [ "$zstatus" = ok ] || die "ZooKeeper ensemble did not form: $zstatus (logs: $WORK/z3.*/server.log)"
  start_ensemble paddock p3. "$pp" "${paddrs[@]}"
  pstatus=$ENSEMBLE_STATUS
  for a in "${zaddrs[@]}"; do zservers="$zservers,$a:$zp"; done
  for a in "${paddrs[@]}"; do pservers="$pservers,$a:$pp"; done
  zservers="${zservers#,}" pservers="${pservers#,}"
  if [ "$pstatus" != ok ]; then
    log "3-node Paddock: $pstatus"
    stop_ensemble paddock
    for w in $WORKLOADS; do echo "$pstatus" >"$OUT/runs/3-node.$(slug "$w").paddock.na"; done
    pservers=""
  fi
  log "3-node: ZooKeeper on $zservers; Paddock: ${pservers:-$pstatus}"
  run_workloads 3-node "$pservers" "$zservers"
  if [ "$pstatus" = ok ]; then failover paddock p3. "$pp" "${paddrs[@]}"
  else metric "$FAILOVER_LABEL" paddock "$pstatus" ms; fi
  failover zookeeper z3. "$zp" "${zaddrs[@]}"
  stop_ensemble paddock
  stop_ensemble zookeeper
}

# ------------------------------------------------------------------ main ---
describe_machine
log "machine:"; sed 's/^/  /' "$OUT/machine.md" >&2
for s in $SETUPS; do
  case "$s" in
    1-node) one_node ;;
    3-node) three_node ;;
    *) die "unknown setup '$s' in BENCH_SETUPS (1-node, 3-node)" ;;
  esac
done

TABLE="$("$BENCH" summarize "$OUT")" || die "summarize failed"
INSN_TABLE="(not counted: BENCH_INSTRUCTIONS=0)"
if [ "$INSTRUCTIONS" = 1 ]; then
  log "instructions per operation (callgrind, bench/instructions.sh, N = $INSN_OPS)"
  INSN_TABLE="$(BENCH_INSN_OPS="$INSN_OPS" BENCH_INSN_OUT="$OUT/instructions" bash "$HERE/instructions.sh")" \
    || INSN_TABLE="$INSN_TABLE"$'\n\n'"(incomplete: a run failed; see $OUT/instructions)"
fi
{
  echo "## Paddock vs Apache ZooKeeper $ZK_VERSION"
  echo
  echo "Command: \`$COMMAND_LINE\` ($(date -u +%Y-%m-%dT%H:%MZ), took $(( (SECONDS - T_START) / 60 )) min $(( (SECONDS - T_START) % 60 )) s)"
  echo
  echo "Workloads: $ROUNDS round(s) of $DURATION measured after $WARMUP warm-up; $SESSIONS sessions x $INFLIGHT in flight;" \
       "values of $VALUE_SIZE B; $KEYS keys; watch-fanout $FANOUT watchers; figures are medians over the rounds." \
       "The $ZNODES loaded znodes hold $VALUES values of 100 B."
  echo
  cat "$OUT/machine.md"
  echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "$TABLE"
  echo
  echo "### Instructions per operation (paddock-server, callgrind)"
  echo
  echo "$INSN_TABLE"
} >"$OUT/report.md"
echo
cat "$OUT/report.md"
log "results in $OUT (report.md, runs/, logs/, metrics.tsv)"
