#!/usr/bin/env bash
# TLS on the client port through kazoo (test_kazoo_tls.py), Apache's zkCli
# (ZooKeeperMain with -Dzookeeper.client.secure=true) and Curator (curator/CuratorTls.java),
# against a standalone server of each backend configured alike: a secureClientPort with
# JKS key and trust stores made here with openssl and the JDK's keytool, ssl.clientAuth
# need (the default), client.portUnification=true on the plaintext port and
# X509AuthenticationProvider.superUser=CN=admin,O=Example.
# Backends, in order: Apache ZooKeeper 3.8 from Debian (the control, with Netty as its
# connection factory, which its TLS needs), then paddock-server (debug build).
#
#   bash e2e/compat/run_tls.sh
#
# Environment: TLS_TARGETS (default "zookeeper paddock"), ZK_IP / PD_IP (loopback
# addresses, default 127.0.0.73 / 127.0.0.74), KEEP=1 keeps the directories,
# E2E_SKIP_INSTALL=1 skips the e2e/install-deps.sh check. Every server this script
# starts is stopped by pid on exit.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$ROOT/e2e/.venv"
T0=$SECONDS
exec </dev/null

log() { echo "run_tls: $*" >&2; }
# fourlw, port_busy, check_loopback, stop_pid, build_paddock_if_needed
. "$HERE/lib_ensemble.sh"

if [ "${E2E_SKIP_INSTALL:-0}" != "1" ]; then
  CI=true bash "$ROOT/e2e/install-deps.sh" || { log "install-deps failed"; exit 2; }
fi
"$VENV/bin/python" -c 'import kazoo, pytest' >/dev/null 2>&1 || { log "kazoo/pytest missing in $VENV"; exit 2; }
for tool in openssl keytool java javac; do
  command -v "$tool" >/dev/null || { log "$tool missing (e2e/install-deps.sh installs it)"; exit 2; }
done

TARGETS="${TLS_TARGETS:-zookeeper paddock}"
ZK_IP="${ZK_IP:-127.0.0.73}"
PD_IP="${PD_IP:-127.0.0.74}"
check_loopback "$ZK_IP" "$PD_IP"
# Debian's zookeeper.jar names netty-handler in its manifest but not the codec, resolver
# and native-unix jars that its Netty client and server need.
NETTY=/usr/share/java/netty-codec.jar:/usr/share/java/netty-resolver.jar:/usr/share/java/netty-transport-native-unix-common.jar
ZK_CP=/usr/share/java/zookeeper.jar:$NETTY:/usr/share/java/slf4j-simple.jar

build_paddock_if_needed "$ROOT" "$TARGETS" || exit 2

DIR="$(mktemp -d "${TMPDIR:-/tmp}/paddock-tls.XXXXXX")"
PID=""
stop_server() { stop_pid "$PID"; PID=""; }
RC=0
trap 'stop_server; [ "${KEEP:-0}" = 1 ] || [ "$RC" != 0 ] || rm -rf "$DIR"' EXIT
trap 'exit 130' INT TERM

# ---- certificates: a CA, the servers', clients' (client, admin) and a stranger's from
# another CA; PEM for kazoo, JKS stores for the servers, zkCli and Curator.
PW=changeit
T="$DIR/tls"
mkdir -p "$T"
(
  set -e
  cd "$T"
  q() { "$@" >/dev/null 2>&1; }
  q openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=paddock-test-ca"
  q openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.pem -days 2 -subj "/CN=other-ca"
  leaf() { # name subject san ca
    q openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2"
    printf 'subjectAltName=%s\n' "$3" >"$1.ext"
    q openssl x509 -req -in "$1.csr" -CA "$4.pem" -CAkey "$4.key" -CAcreateserial -days 2 -out "$1.crt" -extfile "$1.ext"
    q openssl pkcs12 -export -in "$1.crt" -inkey "$1.key" -certfile "$4.pem" -name "$1" -out "$1.p12" -passout "pass:$PW"
    q keytool -importkeystore -noprompt -srckeystore "$1.p12" -srcstoretype PKCS12 -srcstorepass "$PW" \
      -destkeystore "$1.jks" -deststoretype JKS -deststorepass "$PW"
  }
  leaf server "/CN=server" "IP:$ZK_IP,IP:$PD_IP,DNS:localhost" ca
  leaf client "/O=Example/CN=client" "DNS:client" ca
  leaf admin "/O=Example/CN=admin" "DNS:admin" ca
  leaf stranger "/O=Example/CN=client" "DNS:client" other-ca
  q keytool -importcert -noprompt -alias ca -file ca.pem -keystore trust.jks -storetype JKS -storepass "$PW"
) || { log "making certificates failed"; exit 2; }

free_port() { # IP FROM: the first free port from FROM
  local p
  for p in $(seq "$2" $(($2 + 80))); do
    if ! port_busy "$1" "$p"; then echo "$p"; return 0; fi
  done
  return 1
}

# start TARGET: starts the server, sets IP, PORT, SPORT and PID.
start() {
  local target=$1 d="$DIR/$1"
  mkdir -p "$d/data"
  if [ "$target" = zookeeper ]; then IP=$ZK_IP; else IP=$PD_IP; fi
  PORT="$(free_port "$IP" 22810)" && SPORT="$(free_port "$IP" $((PORT + 1)))" ||
    { log "no free port on $IP"; return 1; }
  cat >"$d/zoo.cfg" <<EOF
tickTime=2000
dataDir=$d/data
clientPort=$PORT
clientPortAddress=$IP
secureClientPort=$SPORT
secureClientPortAddress=$IP
maxClientCnxns=0
4lw.commands.whitelist=*
admin.enableServer=false
serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory
client.portUnification=true
ssl.keyStore.location=$T/server.jks
ssl.keyStore.password=$PW
ssl.trustStore.location=$T/trust.jks
ssl.trustStore.password=$PW
X509AuthenticationProvider.superUser=CN=admin,O=Example
EOF
  if [ "$target" = zookeeper ]; then
    setsid java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
      -Dzookeeper.admin.enableServer=false \
      -cp "$ZK_CP" org.apache.zookeeper.server.quorum.QuorumPeerMain "$d/zoo.cfg" \
      >"$d/server.log" 2>&1 &
  else
    RUST_LOG=info NO_COLOR=1 "$PD_BIN" --config "$d/zoo.cfg" >"$d/server.log" 2>&1 &
  fi
  PID=$!
  for _ in $(seq 1 300); do
    [ "$(fourlw "$IP" "$PORT" ruok)" = imok ] && { log "$target up on $IP:$PORT (TLS $IP:$SPORT)"; return 0; }
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  log "$target did not start; log:"; tail -n 30 "$d/server.log" >&2
  return 1
}

# zkcli WHO ARGS...: one ZooKeeperMain (zkCli.sh's class) command over TLS with WHO's JKS
# key store; OUT = its output without the chatter.
zkcli() {
  local who=$1; shift
  OUT="$(timeout 60 java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx128m \
    -Dzookeeper.client.secure=true \
    -Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty \
    -Dzookeeper.ssl.keyStore.location="$T/$who.jks" -Dzookeeper.ssl.keyStore.password="$PW" \
    -Dzookeeper.ssl.trustStore.location="$T/trust.jks" -Dzookeeper.ssl.trustStore.password="$PW" \
    -cp "/usr/share/java/zookeeper.jar:$NETTY" org.apache.zookeeper.ZooKeeperMain \
    -server "$IP:$SPORT" "$@" 2>&1 |
    grep -vE '^SLF4J:|^Connecting to |^WATCHER::$|^WatchedEvent state:SyncConnected type:None path:null$|^$')"
}

fail() { log "FAIL ($TARGET): $*"; printf '%s\n' "$OUT" >&2; return 1; }

zkcli_checks() {
  local p="/zkcli-tls-$RANDOM$RANDOM"
  zkcli client create "$p" data
  grep -qxF "Created $p" <<<"$OUT" || { fail "zkCli create over TLS"; return 1; }
  zkcli client get "$p"
  grep -qxF "data" <<<"$OUT" || { fail "zkCli get over TLS"; return 1; }
  zkcli client whoami
  grep -qxF "x509: CN=client,O=Example" <<<"$OUT" || { fail "zkCli whoami shows the x509 id"; return 1; }
  zkcli admin whoami
  grep -qxF "super: " <<<"$OUT" || grep -qxF "super:" <<<"$OUT" || { fail "zkCli whoami shows the x509 super user"; return 1; }
  zkcli client delete "$p"
  log "zkCli: ok ($TARGET)"
}

curator_checks() {
  local src="$HERE/curator/CuratorTls.java" out="$ROOT/e2e/.build/curator-tls" cp="" j
  for j in curator-recipes curator-framework curator-client zookeeper zookeeper-jute guava slf4j-api; do
    cp="$cp${cp:+:}/usr/share/java/$j.jar"
  done
  mkdir -p "$out"
  if [ ! -f "$out/CuratorTls.class" ] || [ "$src" -nt "$out/CuratorTls.class" ]; then
    javac -nowarn -d "$out" -cp "$cp" "$src" || return 1
  fi
  cp="$cp:$NETTY"
  [ -r /usr/share/java/slf4j-nop.jar ] && cp="$cp:/usr/share/java/slf4j-nop.jar"
  timeout 120 java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx256m \
    -Dzookeeper.client.secure=true \
    -Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty \
    -Dzookeeper.ssl.keyStore.location="$T/client.jks" -Dzookeeper.ssl.keyStore.password="$PW" \
    -Dzookeeper.ssl.trustStore.location="$T/trust.jks" -Dzookeeper.ssl.trustStore.password="$PW" \
    -cp "$cp:$out" CuratorTls "$IP:$SPORT" "$IP:$PORT"
}

for TARGET in $TARGETS; do
  start "$TARGET" || { RC=1; stop_server; continue; }
  env ZK_HOSTS="$IP:$PORT" ZK_SECURE="$IP:$SPORT" TLS_DIR="$T" PYTHONDONTWRITEBYTECODE=1 \
    timeout 300 "$VENV/bin/python" -m pytest "$HERE/test_kazoo_tls.py" -q -p no:cacheprovider -rs ||
    { log "FAIL: kazoo ($TARGET)"; RC=1; }
  zkcli_checks || RC=1
  curator_checks || { log "FAIL: Curator ($TARGET)"; RC=1; }
  if [ "$TARGET" = paddock ] && grep -q panicked "$DIR/$TARGET/server.log"; then
    log "FAIL: paddock-server panicked"; RC=1
  fi
  stop_server
done
if [ "$RC" = 0 ]; then
  log "ALL PASSED ($TARGETS) in $((SECONDS - T0))s"
else
  log "FAILURES; directories kept in $DIR"
fi
exit "$RC"
