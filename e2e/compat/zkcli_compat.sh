#!/usr/bin/env bash
# Drive Apache ZooKeeper's own Java CLI (zkCli.sh from the Debian `zookeeper`
# package) against a server and check every output.
#
#   zkcli_compat.sh HOST:PORT
#
# Uses the non-interactive form `zkCli.sh -server HOST:PORT cmd args`, one JVM
# per command (about half a second each). Exits non-zero with a message on
# the first mismatch. Expected outputs were taken from Apache ZooKeeper 3.8.0.
set -uo pipefail

SERVER="${1:?usage: zkcli_compat.sh HOST:PORT}"
ZKCLI="${ZKCLI:-/usr/share/zookeeper/bin/zkCli.sh}"
[ -x "$ZKCLI" ] || { echo "zkcli: $ZKCLI not found; run e2e/install-deps.sh" >&2; exit 2; }
# Faster JVM start-up for a one-shot client.
export CLIENT_JVMFLAGS="${CLIENT_JVMFLAGS:--XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx128m}"

R="/zkcli-compat-$$-$RANDOM"
OUT=""
RC=0
N=0
START=$SECONDS
RAW="$(mktemp)"
trap 'rm -f "$RAW"' EXIT

# run [--timeout MS] CMD ARGS...: run one zkCli command; OUT = its output
# without the connection chatter, RC = its exit code.
run() {
  local extra=()
  if [ "$1" = "--timeout" ]; then extra=(-timeout "$2"); shift 2; fi
  N=$((N + 1))
  timeout 60 "$ZKCLI" "${extra[@]}" -server "$SERVER" "$@" >"$RAW" 2>&1 </dev/null
  RC=$?
  OUT="$(grep -vE '^SLF4J:|^Connecting to |^WATCHER::$|^WatchedEvent state:SyncConnected type:None path:null$|^$' "$RAW" || true)"
  if [ "$RC" -eq 124 ]; then fail "zkCli $* timed out after 60 s"; fi
}

fail() {
  echo "zkcli: FAIL after $N commands: $*" >&2
  echo "----- output of the last command (exit $RC) -----" >&2
  printf '%s\n' "$OUT" >&2
  exit 1
}

# expect_rc N: last command exited N
expect_rc() { [ "$RC" -eq "$1" ] || fail "expected exit code $1, got $RC"; }
# expect_line TEXT: some output line is exactly TEXT
expect_line() { grep -qxF -- "$1" <<<"$OUT" || fail "expected a line '$1'"; }
# expect_match REGEX: some output line matches the extended regex
expect_match() { grep -qE -- "$1" <<<"$OUT" || fail "expected a line matching /$1/"; }
# expect_no_line TEXT
expect_no_line() { if grep -qxF -- "$1" <<<"$OUT"; then fail "unexpected line '$1'"; fi; }
ok() { echo "zkcli: ok   $*"; }

# ------------------------------------------------------------------ create ---
run create "$R" "root data"
expect_rc 0; expect_line "Created $R"; ok "create"

run create -s "$R/s-"
expect_rc 0; expect_line "Created $R/s-0000000000"
run create -s "$R/s-" x
expect_rc 0; expect_line "Created $R/s-0000000001"; ok "create -s (10-digit suffix from the parent)"

run create "$R/a/b" bb
expect_rc 1; expect_line "Node does not exist: $R/a/b"; ok "create without parent -> NoNode"
run create "$R/a"
expect_rc 0; expect_line "Created $R/a"
# zkCli sends null data when none is given; get prints null data as "null".
run get -s "$R/a"
expect_rc 0; expect_line "null"; expect_line "dataLength = 0"; ok "create without data -> null data"
run create "$R/a/b" bb
expect_rc 0; expect_line "Created $R/a/b"
run create "$R/a" again
expect_rc 1; expect_line "Node already exists: $R/a"; ok "create existing -> NodeExists"

# ------------------------------------------------------------ get/set/stat ---
run get "$R/a/b"
expect_rc 0; expect_line "bb"; ok "get"

run set "$R/a" newdata
expect_rc 0; [ -z "$OUT" ] || fail "set printed unexpected output"
run get -s "$R/a"
expect_rc 0
expect_line "newdata"
expect_line "dataVersion = 1"
expect_line "cversion = 1"
expect_line "aclVersion = 0"
expect_line "ephemeralOwner = 0x0"
expect_line "dataLength = 7"
expect_line "numChildren = 1"
expect_match '^cZxid = 0x[0-9a-f]+$'
expect_match '^mZxid = 0x[0-9a-f]+$'
expect_match '^pZxid = 0x[0-9a-f]+$'
expect_match '^ctime = [A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]{2} [0-9:]{8} [A-Z]+ [0-9]{4}$'
czxid="$(sed -n 's/^cZxid = //p' <<<"$OUT")"; mzxid="$(sed -n 's/^mZxid = //p' <<<"$OUT")"
[ $((czxid)) -lt $((mzxid)) ] || fail "expected cZxid < mZxid after set ($czxid, $mzxid)"
ok "set + get -s (stat fields)"

run set -v 0 "$R/a" stale
expect_rc 1; expect_line "version No is not valid : $R/a"
run set -v 1 "$R/a" v2
expect_rc 0; ok "set -v (conditional set)"

run stat "$R"
expect_rc 0; expect_line "numChildren = 3"; expect_line "cversion = 3"; expect_line "dataLength = 9"
expect_line "ephemeralOwner = 0x0"
ok "stat (parent counts)"

# --------------------------------------------------------------------- ls ---
run ls "$R"
expect_rc 0; expect_line "[a, s-0000000000, s-0000000001]"; ok "ls"

run ls -R "$R"
expect_rc 0
got="$(grep -E "^$R(/|$)" <<<"$OUT" | sort)"
want="$(printf '%s\n' "$R" "$R/a" "$R/a/b" "$R/s-0000000000" "$R/s-0000000001" | sort)"
[ "$got" = "$want" ] || fail "ls -R listed: $(tr '\n' ' ' <<<"$got") expected: $(tr '\n' ' ' <<<"$want")"
ok "ls -R"

# -------------------------------------------------------------- ephemeral ---
# A one-shot zkCli exits without closing its session, so the ephemeral lives
# until the session times out (6 s here); we check it is gone further down.
run --timeout 6000 create -e "$R/e" eph
expect_rc 0; expect_line "Created $R/e"
run stat "$R/e"
expect_rc 0
expect_match '^ephemeralOwner = 0x[0-9a-f]*[1-9a-f][0-9a-f]*$'
expect_line "dataLength = 3"
expect_line "dataVersion = 0"
ok "create -e + stat (ephemeral owner set)"

# ----------------------------------------------------------------- delete ---
run delete "$R"
expect_rc 1; expect_line "Node not empty: $R"; ok "delete non-empty -> NotEmpty"
run delete -v 5 "$R/a/b"
expect_rc 1; expect_line "version No is not valid : $R/a/b"
run delete "$R/a/b"
expect_rc 0; [ -z "$OUT" ] || fail "delete printed unexpected output"
run get "$R/a/b"
expect_rc 1; expect_line "Node does not exist: $R/a/b"; ok "delete"

run create "$R/d"
expect_rc 0
run create "$R/d/x"
expect_rc 0
run deleteall "$R/a"
expect_rc 0
run ls -R "$R"
expect_rc 0
expect_no_line "$R/a"; expect_no_line "$R/a/b"; expect_line "$R/d/x"
ok "deleteall"

# ------------------------------------------------------ ephemeral expiry ---
deadline=$((SECONDS + 30))
while :; do
  run stat "$R/e"
  if [ "$RC" -eq 1 ] && grep -qxF "Node does not exist: $R/e" <<<"$OUT"; then break; fi
  [ $SECONDS -lt $deadline ] || fail "ephemeral $R/e still exists 30 s after its zkCli session ended"
  sleep 1
done
ok "ephemeral removed when its session expired"

run deleteall "$R"
expect_rc 0
run stat "$R"
expect_rc 1; expect_line "Node does not exist: $R"; ok "deleteall root"

echo "zkcli: all checks passed ($N zkCli invocations, $((SECONDS - START)) s)"
