#!/usr/bin/env bash
# The project's single test command (README, .ci/run):
#
#   bash e2e/test-all.sh
#
# 1. installs what the tests need (Debian: zookeeper, Curator, a JDK; Python: kazoo,
#    pytest in e2e/.venv) — fast when already present;
# 2. format and lint gates (cargo fmt --check, cargo clippy -D warnings);
# 3. cargo test for the whole workspace (unit, property and integration tests that
#    start the real paddock-server binary);
# 3a. the whole-node simulator (server/src/sim) in a release build, 2,500 seeds of each
#    of its four scenarios (PADDOCK_SERVER_SIM_CI_SEEDS);
# 4. the compatibility suites (kazoo, raw wire, zkCli, Curator) against paddock-server
#    and, as the control that proves the suites themselves, against Apache ZooKeeper 3.8;
# 4a. kazoo's own packaged test suite, unchanged, on 3-server Apache ZooKeeper 3.8 (the
#    control) and 3-server paddock-server ensembles (e2e/compat/kazoo_suite, ~9 min):
#    fails when a test passes on ZooKeeper but not on Paddock, except the ones listed in
#    e2e/compat/kazoo_suite/expected_failures.txt, and when a listed one passes;
# 4b. SASL DIGEST-MD5 (e2e/compat/run_sasl.sh): kazoo, zkCli and Curator logging in with
#    JAAS credentials, sasl ACLs and enforce.auth, against Apache ZooKeeper 3.8 then
#    paddock-server;
# 4c. TLS on the client port (e2e/compat/run_tls.sh): kazoo, zkCli and Curator over
#    secureClientPort with JKS stores, x509 ACLs, the x509 super user, port unification
#    and refused bad clients, against Apache ZooKeeper 3.8 then paddock-server;
# 5. paddock-bench once at a tiny size (proves the benchmark still runs; judges no timing);
# 5a. the master–worker example's chaos run on a local ensemble (examples/master-worker:
#    masters and workers killed, paused and cut off; no task lost or recorded twice);
# 5b. the container images (server/, operator/, sidecar/, examples/master-worker/Dockerfile):
#    built FROM a base made with debootstrap (cached in ~/.cache/paddock/images) around the
#    binaries cargo built, then each run once under Docker (dockerd is started when none
#    runs; with no daemon to be had the step fails);
# 6. the test cluster (e2e/kube): the upstream Kubernetes control plane built from its Go
#    modules (cached in ~/.cache/paddock; ~10 min of CPU the first time, started at low
#    priority right after step 1) and the tests on it, in three lanes (e2e/kube/test.sh).
#    It starts right after step 3 and builds beside steps 3a-4; its lanes start once kazoo's
#    own suite (4a) is done (that suite's timeouts do not survive three clusters beside it)
#    and run beside steps 4b-5b; its output is printed when it ends, or when the deadline
#    stops it. The end of the output says why each failed step failed.
#
# Environment: SKIP_REFERENCE=1 skips the Apache ZooKeeper control run;
# PADDOCK_TEST_DEADLINE_S (default 4800) is when the background step is stopped, counted
# from the start of the run (CI cuts the whole run off at 90 minutes).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
exec </dev/null

# Incremental compilation state is as large as the build itself (20+ GiB for this
# workspace) and buys nothing on a clean clone; the runner's disk is shared and finite.
export CARGO_INCREMENTAL=0
disk_free() { df -h --output=avail "$ROOT" | tail -1 | tr -d ' '; }
echo "test-all: $(disk_free) free on the disk holding $ROOT" >&2

declare -a SUMMARY=() WHY=()
FAILED=0 STEP_PID=""
STEP_LOGS="$(mktemp -d "${TMPDIR:-/tmp}/paddock-test-all-steps.XXXXXX")"
step() { # NAME CMD...
  local name="$1"; shift
  local t0=$SECONDS log="$STEP_LOGS/step"
  echo "=============== $name" >&2
  local verdict=PASS rc=0 tail_pid
  # Into a file that is followed, not through a pipe: a daemon a step leaves behind
  # would hold a pipe open and the run would wait for it forever.
  : >"$log"
  "$@" >"$log" 2>&1 &
  STEP_PID=$!
  tail -s 0.2 -n +1 -f --pid="$STEP_PID" "$log" >&2 &
  tail_pid=$!
  wait "$STEP_PID" || rc=$?
  wait "$tail_pid" # ends once it has printed what the step wrote before it ended
  STEP_PID=""
  if [ "$rc" -ne 0 ]; then
    verdict=FAIL; FAILED=$((FAILED + 1))
    remember_why "$name" "$log"
  fi
  SUMMARY+=("$verdict  $name ($((SECONDS - t0))s)")
  echo "--------------- $verdict $name ($((SECONDS - t0))s; $(elapsed) into the run)" >&2
}
# CI shows only the end of a long run's output, so the end says why each failed step
# failed: every test panic's message (the Rust harnesses) and the step's last lines.
remember_why() { # NAME LOG
  local digest
  digest="$(
    grep -A6 -E "panicked at|^FAILED |^ERROR " "$2" | head -80
    echo "[...]"
    tail -25 "$2"
  )"
  WHY+=("----- $1"$'\n'"$digest")
}
elapsed() { printf '%d:%02d' $((SECONDS / 60)) $((SECONDS % 60)); }

# A step run beside the others: the test cluster mostly waits (for pods, probes,
# timeouts) and leaves most of two cores idle for 25-30 minutes, so the compatibility
# steps run meanwhile. Its output goes to a file, printed whole when it is awaited.
BG_PID="" BG_NAME="" BG_LOG="" BG_T0=0
step_in_background() { # NAME CMD...
  BG_NAME="$1"; shift
  BG_LOG="$(mktemp "${TMPDIR:-/tmp}/paddock-test-all.XXXXXX")"
  BG_T0=$SECONDS
  echo "=============== $BG_NAME (in the background; its output follows when it ends)" >&2
  "$@" >"$BG_LOG" 2>&1 &
  BG_PID=$!
}
# CI gives the whole run 90 minutes and prints nothing of a run it cuts off, so the
# background step gets a deadline (PADDOCK_TEST_DEADLINE_S seconds from the start of the
# run): past it, it is stopped (its own traps print what its tests said so far) and fails,
# and the summary is still printed.
DEADLINE_S="${PADDOCK_TEST_DEADLINE_S:-4800}"
await_background() {
  [ -n "$BG_PID" ] || return 0
  local rc=0 verdict=PASS note=""
  while kill -0 "$BG_PID" 2>/dev/null && [ "$SECONDS" -lt "$DEADLINE_S" ]; do
    sleep 5 # polling a child's exit against a deadline; bash's wait has no timeout
  done
  if kill -0 "$BG_PID" 2>/dev/null; then
    note=", stopped at the ${DEADLINE_S}s deadline of the run"
    kill -TERM "$BG_PID" 2>/dev/null
  fi
  wait "$BG_PID" || rc=$?
  [ "$rc" -eq 0 ] && [ -z "$note" ] || { verdict=FAIL; FAILED=$((FAILED + 1)); }
  echo "=============== $BG_NAME (ended after $((SECONDS - BG_T0))s, rc $rc$note)" >&2
  echo "test-all: the early control-plane build (e2e/kube/build.sh) said:" >&2
  cat "$KUBE_BUILD_LOG" >&2
  rm -f "$KUBE_BUILD_LOG"
  cat "$BG_LOG" >&2
  [ "$verdict" = PASS ] || remember_why "$BG_NAME" "$BG_LOG"
  rm -f "$BG_LOG"
  SUMMARY+=("$verdict  $BG_NAME ($((SECONDS - BG_T0))s, beside the steps above$note)")
  echo "--------------- $verdict $BG_NAME; $(elapsed) into the run" >&2
  BG_PID=""
}
# Interrupted: end the background step too (its own traps stop what it started).
trap '[ -n "$BG_PID" ] && kill -TERM "$BG_PID" 2>/dev/null; [ -n "$STEP_PID" ] && kill -TERM "$STEP_PID" 2>/dev/null; kill -TERM "${KUBE_BUILD_PID:-}" 2>/dev/null; wait; rm -rf "$STEP_LOGS"' EXIT

step "install test dependencies" bash e2e/install-deps.sh || true
if [ "$FAILED" -gt 0 ]; then
  printf '%s\n' "${SUMMARY[@]}"
  echo "test-all: cannot install what the tests need" >&2
  exit 1
fi

# The test cluster's control plane is built from Go modules (~10 min of CPU when cold,
# nothing when cached). It starts now at low priority, so it takes the cycles the Rust
# build leaves idle (linking, the crates built one after another); the test cluster's own
# call to build.sh waits for it on build.sh's lock.
KUBE_BUILD_LOG="$(mktemp "${TMPDIR:-/tmp}/paddock-kube-build.XXXXXX")"
nice -n 10 bash e2e/kube/build.sh >"$KUBE_BUILD_LOG" 2>&1 &
KUBE_BUILD_PID=$!

step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --workspace --all-targets --quiet -- -D warnings
step "cargo test" cargo test --workspace --quiet
# The test cluster's builds start now; its lanes (three control planes and their pods)
# once kazoo's own suite is done: that suite's tests wait 5-10 s for events, and time out
# on either server when three clusters share the two cores with it.
export PADDOCK_KUBE_START_WHEN="$STEP_LOGS/kube-lanes-may-start"
step_in_background "test cluster: upstream control plane + kubesim (e2e/kube/test.sh)" bash e2e/kube/test.sh
# The whole-node simulator's 20 seeds of the debug build are a smoke test; 10,000 seeds a
# run need the optimizer (~10x faster than debug): 27, 22, 34 and 83 ms a seed by
# scenario, about 7 minutes.
step "whole-node simulator: 2,500 seeds of each of its 4 scenarios (release build)" \
  env PADDOCK_SERVER_SIM_SEEDS="${PADDOCK_SERVER_SIM_CI_SEEDS:-2500}" \
  cargo test --release --quiet -p paddock-server --lib sim::
step "compat: paddock-server" bash e2e/compat/run_ours.sh
step "kazoo recipes across leader kills (3-node ensemble)" bash e2e/zab/run_ensemble.sh
step "kazoo reconfig: Apache ZooKeeper 3.8 then paddock (3 servers + a joiner)" bash e2e/compat/run_reconfig.sh
step "kazoo's own test suite (kazoo 2.11.0, 493 tests): Apache ZooKeeper 3.8 and paddock, 3 servers each, compared" \
  bash e2e/compat/kazoo_suite/run.sh
touch "$PADDOCK_KUBE_START_WHEN"
step "kazoo read-only mode: Apache ZooKeeper 3.8 then paddock (3 servers, 2 stopped and started)" bash e2e/compat/run_readonly.sh
step "SASL DIGEST-MD5: kazoo, zkCli and Curator against Apache ZooKeeper 3.8 then paddock" bash e2e/compat/run_sasl.sh
step "TLS client port: kazoo, zkCli and Curator against Apache ZooKeeper 3.8 then paddock" bash e2e/compat/run_tls.sh
step "bench smoke (tiny run, no timing judged)" bash e2e/bench-smoke.sh
step "master–worker chaos run (local ensemble, 300 tasks, one round)" bash examples/master-worker/chaos.sh
step "container images: built on a local debootstrap base, each run once (e2e/images/test.sh)" bash e2e/images/test.sh
if [ "${SKIP_REFERENCE:-0}" != 1 ]; then
  step "compat: Apache ZooKeeper 3.8 (control)" bash e2e/compat/run_reference.sh
fi
await_background

if [ "${#WHY[@]}" -gt 0 ]; then
  echo
  echo "=============== why the failed steps failed (their panics and last lines)"
  printf '%s\n' "${WHY[@]}"
fi
echo
echo "=============== summary"
printf '%s\n' "${SUMMARY[@]}"
echo "test-all: $(disk_free) free on the disk at the end"
passed=$(( ${#SUMMARY[@]} - FAILED ))
echo "test-all: ${passed} passed, ${FAILED} failed"
[ "$FAILED" -eq 0 ]
