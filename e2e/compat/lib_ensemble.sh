# Shell functions shared by the ensemble runners of e2e/compat (run_reconfig.sh,
# run_readonly.sh); sourced, not run. Every call is bounded in time.

# Four-letter word with a 2 s bound; prints the answer (empty on failure).
fourlw() { # ADDR PORT WORD
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf %s "$2" >&3 && cat <&3' "$1" "$2" "$3" 2>/dev/null || true
}

mode_of() { # ADDR PORT -> leader|follower|observer|standalone|"" (srvr's Mode line)
  fourlw "$1" "$2" srvr | sed -n 's/^Mode: //p' | tr -d '\r'
}

port_busy() { timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null; }

# Exits unless every address is in 127.0.0.0/8.
check_loopback() { # ADDR...
  local ip
  for ip in "$@"; do
    [[ "$ip" =~ ^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || { echo "refusing non-loopback address $ip" >&2; exit 2; }
  done
}

# Prints a BASE in FIRST..LAST (steps of 10) such that BASE..BASE+3 (client, admin,
# quorum, election) are free on every address given.
pick_ports() { # FIRST LAST ADDR...
  local first=$1 last=$2 b ip off free
  shift 2
  for b in $(seq "$first" 10 "$last"); do
    free=1
    for ip in "$@"; do
      for off in 0 1 2 3; do
        if port_busy "$ip" $((b + off)); then free=0; break 2; fi
      done
    done
    if [ "$free" = 1 ]; then echo "$b"; return 0; fi
  done
  return 1
}

# The classpath that runs Apache ZooKeeper from Debian's jar (with slf4j-simple when
# installed, so that its log is written).
zk_classpath() {
  local cp=/usr/share/java/zookeeper.jar
  [ -r /usr/share/java/slf4j-simple.jar ] && cp="$cp:/usr/share/java/slf4j-simple.jar"
  echo "$cp"
}

# Checks what the targets need: Debian's zookeeper.jar for "zookeeper"; for "paddock"
# builds paddock-server (debug, as cargo test builds it) and sets PD_BIN. Uses the
# caller's log and ROOT.
prepare_targets() { # TARGETS
  PD_BIN=""
  if [[ " $1 " == *" zookeeper "* ]]; then
    [ -r /usr/share/java/zookeeper.jar ] || { log "zookeeper.jar missing; run e2e/install-deps.sh"; return 2; }
  fi
  if [[ " $1 " == *" paddock "* ]]; then
    cargo build --quiet -p paddock-server --manifest-path "$ROOT/Cargo.toml" || return 2
    PD_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/paddock-server"
    [ -x "$PD_BIN" ] || { log "no binary at $PD_BIN"; return 2; }
  fi
}

# Runs the caller's `run_one TARGET` for each target, prints the notes file under
# HEADING, and exits: 0 if every run passed, 1 otherwise. Uses the caller's log and T0.
run_targets() { # TARGETS NOTES HEADING
  local target t failed=()
  for target in $1; do
    t=$SECONDS
    if run_one "$target"; then
      log "PASSED against $target ($((SECONDS - t))s)"
    else
      log "FAILED against $target ($((SECONDS - t))s)"
      failed+=("$target")
    fi
  done
  if [ -s "$2" ]; then
    log "$3"
    sed 's/^/  /' "$2" >&2
  fi
  if [ "${#failed[@]}" -gt 0 ]; then
    log "FAILURES: ${failed[*]} ($((SECONDS - T0))s total)"
    exit 1
  fi
  log "ALL PASSED: $1 ($((SECONDS - T0))s total)"
  exit 0
}

# The zoo.cfg lines every paddock-server of the runners gets: the timing, its data
# dir, its own client and admin addresses, every four-letter word.
paddock_base_cfg() { # DATADIR ADDR CLIENT_PORT ADMIN_PORT
  cat <<CFG
tickTime=500
initLimit=10
syncLimit=5
dataDir=$1
clientPort=$3
clientPortAddress=$2
admin.serverPort=$4
admin.serverAddress=$2
4lw.commands.whitelist=*
CFG
}

# The same for Apache ZooKeeper, whose members and client addresses are in the
# dynamic config file.
zookeeper_base_cfg() { # DATADIR DYNAMIC_FILE
  cat <<CFG
tickTime=500
initLimit=10
syncLimit=5
dataDir=$1
maxClientCnxns=0
4lw.commands.whitelist=*
admin.enableServer=false
standaloneEnabled=false
dynamicConfigFile=$2
CFG
}

# After a run's tests: stops its servers (the caller's stop_all), fails the run if a
# server panicked, and removes DIR unless the run failed or KEEP=1. Returns the run's
# rc (call it in the runner's shell, not in $(...): stop_all changes its state).
finish_run() { # TARGET RC
  local rc=$2
  stop_all
  if grep -l "panicked" "$DIR"/s*/server.log >/dev/null 2>&1; then
    log "$1: a server panicked:"
    grep -h -A5 panicked "$DIR"/s*/server.log >&2
    rc=1
  fi
  if [ "$rc" -eq 0 ] && [ "${KEEP:-0}" != 1 ]; then
    rm -rf "$DIR"
  else
    log "$1: rc=$rc; configs, data and logs kept in $DIR"
  fi
  return "$rc"
}

# Stops one server this script started: SIGTERM, up to 5 s, then SIGKILL.
stop_pid() { # PID
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 0
  kill "$1" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null
  wait "$1" 2>/dev/null
  return 0
}

# Builds paddock-server (debug) when TARGETS names paddock; sets PD_BIN.
build_paddock_if_needed() { # ROOT TARGETS
  PD_BIN=""
  [[ " $2 " == *" paddock "* ]] || return 0
  cargo build --quiet -p paddock-server --manifest-path "$1/Cargo.toml" || return 1
  PD_BIN="${CARGO_TARGET_DIR:-$1/target}/debug/paddock-server"
}
