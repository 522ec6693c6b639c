#!/usr/bin/env bash
# SASL DIGEST-MD5 through kazoo (test_kazoo_sasl.py), Apache's zkCli.sh (a JAAS Client
# section through -Djava.security.auth.login.config), Curator (curator/CuratorSasl.java)
# and the paddock CLI (paddock-client's login: --sasl-user),
# against a standalone server of each backend, in two phases:
#   sasl     a JAAS Server section (user_bob, user_super), the SASL authentication
#            provider and zookeeper.superUser=super;
#   enforce  the same plus enforce.auth.enabled=true, enforce.auth.schemes=sasl.
# Backends, in order: Apache ZooKeeper 3.8 from Debian (the control: it reads the JAAS
# file from the -D system property and the rest from zoo.cfg), then paddock-server
# (debug build; the JAAS file as the zoo.cfg key java.security.auth.login.config).
#
#   bash e2e/compat/run_sasl.sh
#
# Environment: SASL_TARGETS (default "zookeeper paddock"), ZK_IP / PD_IP (loopback
# addresses, default 127.0.0.71 / 127.0.0.72), KEEP=1 keeps the directories,
# E2E_SKIP_INSTALL=1 skips the e2e/install-deps.sh check. Every server this script
# starts is stopped by pid on exit.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$ROOT/e2e/.venv"
T0=$SECONDS
exec </dev/null

log() { echo "run_sasl: $*" >&2; }

if [ "${E2E_SKIP_INSTALL:-0}" != "1" ]; then
  CI=true bash "$ROOT/e2e/install-deps.sh" || { log "install-deps failed"; exit 2; }
fi
"$VENV/bin/python" -c 'import kazoo, pytest, puresasl' >/dev/null 2>&1 ||
  { log "kazoo/pytest/pure-sasl missing in $VENV"; exit 2; }

TARGETS="${SASL_TARGETS:-zookeeper paddock}"
ZK_IP="${ZK_IP:-127.0.0.71}"
PD_IP="${PD_IP:-127.0.0.72}"
for ip in "$ZK_IP" "$PD_IP"; do
  [[ "$ip" =~ ^127\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || { log "refusing non-loopback address $ip"; exit 2; }
done
ZK_CP=/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar
ZKCLI=/usr/share/zookeeper/bin/zkCli.sh

cargo build --quiet -p paddock-server -p paddock-client --manifest-path "$ROOT/Cargo.toml" || exit 2
PD_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/paddock-server"
PADDOCK_CLI="${CARGO_TARGET_DIR:-$ROOT/target}/debug/paddock"

DIR="$(mktemp -d "${TMPDIR:-/tmp}/paddock-sasl.XXXXXX")"
PID=""
stop_server() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill "$PID" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$PID" 2>/dev/null
    wait "$PID" 2>/dev/null
  fi
  PID=""
}
trap 'stop_server; [ "${KEEP:-0}" = 1 ] || [ "$RC" != 0 ] || rm -rf "$DIR"' EXIT
trap 'exit 130' INT TERM
RC=0

cat >"$DIR/server.jaas" <<'JAAS'
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="super_secret"
    user_bob="bob_secret";
};
JAAS
cat >"$DIR/client.jaas" <<'JAAS'
Client {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    username="bob"
    password="bob_secret";
};
JAAS
cat >"$DIR/wrong.jaas" <<'JAAS'
Client {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    username="bob"
    password="not_bobs";
};
JAAS

fourlw() { timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf %s "$2" >&3 && cat <&3' "$1" "$2" "$3" 2>/dev/null; }
port_busy() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null; }

# start TARGET PHASE: starts the server, sets PORT and PID.
start() {
  local target=$1 phase=$2 ip d
  d="$DIR/$target-$phase"
  mkdir -p "$d/data"
  if [ "$target" = zookeeper ]; then ip=$ZK_IP; else ip=$PD_IP; fi
  PORT=""
  for p in $(seq 22910 22999); do
    if ! port_busy "$ip" "$p"; then PORT=$p; break; fi
  done
  [ -n "$PORT" ] || { log "no free port on $ip"; return 1; }
  {
    echo "tickTime=2000"
    echo "dataDir=$d/data"
    echo "clientPort=$PORT"
    echo "clientPortAddress=$ip"
    echo "maxClientCnxns=0"
    echo "4lw.commands.whitelist=*"
    echo "admin.enableServer=false"
    echo "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
    echo "superUser=super"
    if [ "$phase" = enforce ]; then
      echo "enforce.auth.enabled=true"
      echo "enforce.auth.schemes=sasl"
    fi
  } >"$d/zoo.cfg"
  if [ "$target" = zookeeper ]; then
    # zookeeper.superUser is a system property to ZooKeeper (zoo.cfg's superUser=
    # becomes it too); the JAAS file is only ever a system property.
    setsid java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
      -Djava.security.auth.login.config="$DIR/server.jaas" \
      -Dzookeeper.admin.enableServer=false \
      -cp "$ZK_CP" org.apache.zookeeper.server.quorum.QuorumPeerMain "$d/zoo.cfg" \
      >"$d/server.log" 2>&1 &
  else
    echo "java.security.auth.login.config=$DIR/server.jaas" >>"$d/zoo.cfg"
    RUST_LOG=info NO_COLOR=1 "$PD_BIN" --config "$d/zoo.cfg" >"$d/server.log" 2>&1 &
  fi
  PID=$!
  for _ in $(seq 1 300); do
    [ "$(fourlw "$ip" "$PORT" ruok)" = imok ] && { log "$target ($phase) up on $ip:$PORT"; return 0; }
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  log "$target ($phase) did not start; log:"; tail -n 30 "$d/server.log" >&2
  return 1
}

# zkcli JAAS ARGS...: one zkCli.sh command with the JAAS Client section of JAAS
# ("none": SASL off in the client); OUT = its output without the chatter.
zkcli() {
  local jaas=$1 flags="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx128m"; shift
  if [ "$jaas" = none ]; then
    flags="$flags -Dzookeeper.sasl.client=false"
  else
    flags="$flags -Djava.security.auth.login.config=$DIR/$jaas.jaas"
  fi
  OUT="$(CLIENT_JVMFLAGS="$flags" timeout 60 "$ZKCLI" -server "$SERVER" "$@" 2>&1 |
    grep -vE '^SLF4J:|^Connecting to |^WATCHER::$|^WatchedEvent state:(SyncConnected|SaslAuthenticated) type:None path:null$|^$')"
}

fail() { log "FAIL ($TARGET, $PHASE): $*"; printf '%s\n' "$OUT" >&2; return 1; }

zkcli_checks() {
  local p="/zkcli-sasl-$RANDOM$RANDOM"
  if [ "$PHASE" = sasl ]; then
    zkcli client create "$p" data sasl:bob:cdrwa
    grep -qxF "Created $p" <<<"$OUT" || { fail "zkCli create with a sasl ACL"; return 1; }
    zkcli client getAcl "$p"
    grep -qxF "'sasl,'bob" <<<"$OUT" || { fail "zkCli getAcl shows sasl,bob"; return 1; }
    zkcli client get "$p"
    grep -qxF "data" <<<"$OUT" || { fail "zkCli get as bob"; return 1; }
    zkcli none get "$p"
    grep -qF "Insufficient permission" <<<"$OUT" || { fail "zkCli without SASL is refused"; return 1; }
    zkcli wrong get "$p"
    grep -qF "AuthFailed" <<<"$OUT" || { fail "zkCli with a wrong password sees AuthFailed"; return 1; }
    zkcli client delete "$p"
  else
    zkcli client create "$p" data
    grep -qxF "Created $p" <<<"$OUT" || { fail "zkCli create after a SASL login"; return 1; }
    zkcli none get "$p"
    if grep -qxF "data" <<<"$OUT"; then fail "zkCli without SASL read under enforce.auth"; return 1; fi
    zkcli client delete "$p"
  fi
  log "zkCli: ok ($TARGET, $PHASE)"
}

# paddock CLI logins (paddock-client's SASL against either server).
cli() { # PASSWORD|none ARGS...: OUT, CLI_RC (not RC: that is the whole run's verdict)
  local pw=$1; shift
  if [ "$pw" = none ]; then
    OUT="$(env -u PADDOCK_SASL_PASSWORD timeout 60 "$PADDOCK_CLI" --server "$SERVER" "$@" 2>&1)"
  else
    OUT="$(PADDOCK_SASL_PASSWORD="$pw" timeout 60 "$PADDOCK_CLI" --server "$SERVER" --sasl-user bob "$@" 2>&1)"
  fi
  CLI_RC=$?
}

cli_checks() {
  local p="/cli-sasl-$RANDOM$RANDOM"
  cli bob_secret whoami
  [ "$CLI_RC" = 0 ] && grep -q sasl <<<"$OUT" || { fail "paddock --sasl-user bob whoami"; return 1; }
  cli bob_secret create "$p" v
  [ "$CLI_RC" = 0 ] || { fail "paddock --sasl-user bob create"; return 1; }
  cli not_bobs get "$p"
  [ "$CLI_RC" != 0 ] || { fail "paddock with a wrong password must fail"; return 1; }
  if [ "$PHASE" = enforce ]; then
    cli none get "$p"
    [ "$CLI_RC" != 0 ] || { fail "paddock without SASL must fail under enforce.auth"; return 1; }
  fi
  cli bob_secret delete "$p"
  [ "$CLI_RC" = 0 ] || { fail "paddock --sasl-user bob delete"; return 1; }
  log "paddock CLI: ok ($TARGET, $PHASE)"
}

curator_checks() {
  local src="$HERE/curator/CuratorSasl.java" out="$ROOT/e2e/.build/curator-sasl" cp="" j
  for j in curator-recipes curator-framework curator-client zookeeper zookeeper-jute guava slf4j-api; do
    cp="$cp${cp:+:}/usr/share/java/$j.jar"
  done
  mkdir -p "$out"
  if [ ! -f "$out/CuratorSasl.class" ] || [ "$src" -nt "$out/CuratorSasl.class" ]; then
    javac -nowarn -d "$out" -cp "$cp" "$src" || return 1
  fi
  [ -r /usr/share/java/slf4j-nop.jar ] && cp="$cp:/usr/share/java/slf4j-nop.jar"
  timeout 120 java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx256m \
    -Djava.security.auth.login.config="$DIR/client.jaas" \
    -cp "$cp:$out" CuratorSasl "$SERVER" "$PHASE"
}

for TARGET in $TARGETS; do
  for PHASE in sasl enforce; do
    start "$TARGET" "$PHASE" || { RC=1; stop_server; continue; }
    if [ "$TARGET" = zookeeper ]; then SERVER="$ZK_IP:$PORT"; else SERVER="$PD_IP:$PORT"; fi
    env ZK_HOSTS="$SERVER" SASL_PHASE="$PHASE" PYTHONDONTWRITEBYTECODE=1 \
      timeout 300 "$VENV/bin/python" -m pytest "$HERE/test_kazoo_sasl.py" -q -p no:cacheprovider -rs ||
      { log "FAIL: kazoo ($TARGET, $PHASE)"; RC=1; }
    zkcli_checks || RC=1
    cli_checks || RC=1
    curator_checks || { log "FAIL: Curator ($TARGET, $PHASE)"; RC=1; }
    if [ "$TARGET" = paddock ] && grep -q panicked "$DIR/$TARGET-$PHASE/server.log"; then
      log "FAIL: paddock-server panicked"; RC=1
    fi
    stop_server
  done
done
if [ "$RC" = 0 ]; then
  log "ALL PASSED ($TARGETS) in $((SECONDS - T0))s"
else
  log "FAILURES; directories kept in $DIR"
fi
exit "$RC"
