#!/usr/bin/env bash
# The master–worker chaos run on a local ensemble (a step of e2e/test-all.sh):
#
#   bash examples/master-worker/chaos.sh                 # small: 300 tasks, one round
#   bash examples/master-worker/chaos.sh --tasks 3000 --rounds 5 --rate 40
#
# Builds every binary the run starts (mw, paddock, paddock-server, paddock-sidecar) first,
# so that none of them is stale, then runs `mw chaos` with the given flags. Needs python3.
#
# The same on the test cluster (a ZkEnsemble, then kubernetes.yaml: pods crashed, paused
# and cut off by paddock-kubesim; needs root and the control plane e2e/kube/build.sh makes):
#
#   bash examples/master-worker/chaos.sh --kube                  # 300 tasks, one round
#   bash examples/master-worker/chaos.sh --kube 3000 30 5        # TASKS RATE ROUNDS
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
if [[ "${1:-}" == "--kube" ]]; then
  export PADDOCK_MW_TASKS="${2:-300}" PADDOCK_MW_RATE="${3:-12}" PADDOCK_MW_ROUNDS="${4:-1}"
  exec bash e2e/kube/test.sh --nocapture master_worker
fi
command -v python3 >/dev/null || { echo "chaos.sh: python3 is needed (the Python worker)" >&2; exit 1; }
cargo build --quiet -p paddock-master-worker -p paddock-client -p paddock-server -p paddock-sidecar --bins
args=("$@")
[[ $# -gt 0 ]] || args=(--tasks 300 --rounds 1)
exec target/debug/mw chaos --report target/mw-chaos.json "${args[@]}"
