#!/usr/bin/env bash
# The tests on the test cluster: builds (or reuses) the upstream control plane, then runs
# every cluster test of paddock-kubesim, one cluster at a time. A step of e2e/test-all.sh.
#
#   bash e2e/kube/test.sh            # all of them
#   bash e2e/kube/test.sh drain      # those whose name contains "drain"
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
bin="$(bash e2e/kube/build.sh)"
export PADDOCK_KUBE_BIN="$bin"
[[ -x e2e/.venv/bin/python ]] || bash e2e/install-deps.sh
# Tests run one at a time: each brings up a whole control plane on a 2-core machine.
# --no-fail-fast: one failing test target does not hide how the others fare.
# The day-2 scenario suite (e2e/scenarios) runs one round here; PADDOCK_SCENARIO_ROUNDS=5
# is the large run of e2e/RESULTS.md.
exec cargo test --quiet --no-fail-fast -p paddock-kubesim --tests -- --ignored --test-threads=1 "$@"
