#!/usr/bin/env bash
# The tests on the test cluster: builds (or reuses) the upstream control plane, then runs
# every cluster test of paddock-kubesim. A step of e2e/test-all.sh.
#
#   bash e2e/kube/test.sh            # all of them, in three lanes side by side
#   bash e2e/kube/test.sh drain      # those whose name contains "drain", one at a time
#
# Each test brings up a control plane of its own (its own ports, its own 127.S.0.0/16
# pod block, its own directory), so tests of different lanes do not see each other. The
# tests mostly wait (for pods, probes, reconfigs and timeouts): run one after another
# they take ~34 minutes and leave most of two cores idle, so the full run splits them
# into three lanes of roughly equal length, each lane one test at a time. With
# PADDOCK_KUBE_LANES=1 everything runs in one lane, as before.
#
# The day-2 scenario suite (e2e/scenarios) runs one round here; PADDOCK_SCENARIO_ROUNDS=5
# is the large run of e2e/RESULTS.md.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
bin="$(bash e2e/kube/build.sh)"
export PADDOCK_KUBE_BIN="$bin"
[[ -x e2e/.venv/bin/python ]] || bash e2e/install-deps.sh

# --no-fail-fast: one failing test target does not hide how the others fare.
run_tests() { # [--test T]... -- [FILTER...]
  cargo test --quiet --no-fail-fast -p paddock-kubesim "$@"
}

if [[ $# -gt 0 || "${PADDOCK_KUBE_LANES:-3}" == 1 ]]; then
  exec cargo test --quiet --no-fail-fast -p paddock-kubesim --tests -- --ignored --test-threads=1 "$@"
fi

# Every test target of the crate: the files in tests/ and the [[test]] entries of its
# manifest (the scenario suite lives in e2e/scenarios), so a new target joins a lane
# without being listed here.
mapfile -t targets < <(
  {
    for f in e2e/kubesim/tests/*.rs; do basename "$f" .rs; done
    awk '/^\[\[test\]\]/ { t = 1; next } t && $1 == "name" { gsub(/"/, "", $3); print $3; t = 0 }' \
      e2e/kubesim/Cargo.toml
  } | sort -u
)
# The lanes, by the durations of a run on the 2-core machine (seconds): scenarios 780;
# operator_changes 510, operator 55, examples 47; chart 170, cluster 234,
# master_worker 131, and whatever else there is.
lane_of() {
  case "$1" in
    scenarios) echo 0 ;;
    operator_changes | operator | examples) echo 1 ;;
    *) echo 2 ;;
  esac
}
declare -a lane_args=("" "" "")
for t in "${targets[@]}"; do
  l="$(lane_of "$t")"
  lane_args[l]+=" --test $t"
done

# Build every test target and the binaries the pods run once, before the lanes start, so
# that three cargo processes do not queue on the build lock and the lanes start together.
cargo test --quiet -p paddock-kubesim --tests --no-run
cargo build --quiet -p paddock-server -p paddock-sidecar -p paddock-operator -p paddock-master-worker

# PADDOCK_KUBE_START_WHEN=FILE: the lanes wait, once built, until FILE exists. test-all
# starts this script early, so that the builds overlap its first steps, and creates FILE
# when the steps that judge timeouts on a loaded machine (kazoo's own suite) are done.
if [[ -n "${PADDOCK_KUBE_START_WHEN:-}" ]]; then
  echo "kube-test: built; the lanes wait for $PADDOCK_KUBE_START_WHEN" >&2
  waited=0
  until [[ -e "$PADDOCK_KUBE_START_WHEN" ]]; do
    if ((waited >= 3600)); then
      echo "kube-test: $PADDOCK_KUBE_START_WHEN did not appear within an hour" >&2
      exit 1
    fi
    sleep 2 # waiting for a file another process creates; no event to block on
    waited=$((waited + 2))
  done
  echo "kube-test: the lanes start after waiting ${waited} s" >&2
fi

logs="$(mktemp -d "${TMPDIR:-/tmp}/paddock-kube-lanes.XXXXXX")"
declare -a pids=() names=()
stop_lanes() {
  # Each lane is a process group of its own (set -m): cargo and the test binary under it.
  for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
  wait || true
  for i in "${!names[@]}"; do
    echo "=== lane $i (${names[i]}), interrupted: its output so far" >&2
    cat "$logs/lane$i.log" >&2 || true
  done
  rm -rf "$logs"
}
trap 'stop_lanes; exit 143' TERM INT

start=$SECONDS
set -m
for i in 0 1 2; do
  [[ -n "${lane_args[i]}" ]] || continue
  names[i]="${lane_args[i]# }"
  # shellcheck disable=SC2086 # the lane's --test arguments are words on purpose
  run_tests ${lane_args[i]} -- --ignored --test-threads=1 >"$logs/lane$i.log" 2>&1 &
  pids[i]=$!
  echo "kube-test: lane $i started:${lane_args[i]}" >&2
done

failed=0
declare -A lane_of_pid=()
for i in "${!pids[@]}"; do lane_of_pid[${pids[i]}]=$i; done
while ((${#lane_of_pid[@]} > 0)); do
  # Print each lane whole as it ends, so lanes' outputs never interleave.
  rc=0
  wait -n -p ended "${!lane_of_pid[@]}" || rc=$?
  i="${lane_of_pid[$ended]}"
  unset "lane_of_pid[$ended]"
  echo "=== lane $i (${names[i]}): ended after $((SECONDS - start)) s, rc $rc" >&2
  cat "$logs/lane$i.log" >&2
  ((rc == 0)) || failed=$((failed + 1))
  unset "names[i]"
done
trap - TERM INT
rm -rf "$logs"
echo "kube-test: all lanes ended after $((SECONDS - start)) s, $failed failed" >&2
((failed == 0))
