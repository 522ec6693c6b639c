#!/usr/bin/env bash
# The container images (server/, operator/, sidecar/ and examples/master-worker/Dockerfile),
# built and run once each:
#
#   bash e2e/images/test.sh
#
# No image registry is reachable here, so the runtime stage is built FROM a base made on
# this machine: debootstrap (Debian minbase, the suite of this host, from the mirror apt
# already uses) cut down by minimal_rootfs.py to what a distroless cc image holds (glibc,
# libgcc, CA certificates, no shell), imported with `docker import`. The tarball is cached
# in ~/.cache/paddock/images (PADDOCK_IMAGES_CACHE), and imported only when the image tag
# is missing. The binaries are not compiled again inside docker: they are built with cargo
# into target/ (the debug profile by default, which the test command's `cargo test` has
# already built: a release build from nothing costs ~15 min on 2 cores; IMAGES_PROFILE=
# release uses release binaries), put in a FROM-scratch image at the paths the Dockerfiles'
# `build` stage leaves them (/out), and passed as BUILDER; the runtime stage built on top of
# them is the Dockerfiles' own last stage, the one users get.
#
# Then each image runs once with --network host on IMAGES_TEST_ADDR (default 127.0.0.77):
# - the server with its default CMD and a standalone zoo.cfg in /conf answers ruok;
# - the server as the operator's StatefulSet runs it (the same arguments, zoo.cfg of a
#   one-member ZkEnsemble at /conf, data on a volume at /data, the super digest in the env)
#   answers ruok, /readyz and /status (401 without the super user's credentials);
# - the sidecar pointed at that server answers /healthz, /readyz and leads its election;
# - the master-worker image (`mw`) runs the example's sink (its log on a volume at
#   /results), a master and a worker against that server as kubernetes.yaml runs them;
#   target/'s `mw submit` submits 5 tasks, which all complete, each recorded once;
# - the operator prints its CRD, identical to crds/zkensembles.paddock.dev.yaml.
# Each image's user is 65532:65532 (and the running processes' uid), its entrypoint is the
# binary in exec form, its file system has no shell, and SIGTERM stops each server, the
# sidecar and the sink, master and worker with exit code 0.
#
# Needs root (or a running Docker daemon), docker.io and debootstrap (installed when
# missing). Starts dockerd itself when no daemon answers, and stops only that one at the
# end. When no Docker daemon answers and none can be started it FAILS (exit 1, saying
# why): the images were then neither built nor run, and that is no pass.
#
# Environment: IMAGES_TEST_ADDR (a 127.x.y.z; ports 2181 2281 2888 3888 4040 7070 8080 8181
# on it must be free), PADDOCK_IMAGES_CACHE (instead of ~/.cache/paddock), IMAGES_TEST_KEEP=1
# (keep the images built here; by default they are removed, the base image stays).
set -euo pipefail
exec </dev/null

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
ADDR="${IMAGES_TEST_ADDR:-127.0.0.77}"
CACHE="${PADDOCK_IMAGES_CACHE:-$HOME/.cache/paddock}/images"
# Bump when minimal_rootfs.py changes what goes into the base: a new tarball and tag follow.
RECIPE=1
T0=$SECONDS
PASSED=0

log() { echo "images: $*" >&2; }
die() { echo "images: FAILED: $*" >&2; exit 1; }
pass() { PASSED=$((PASSED + 1)); echo "ok $PASSED - $*"; }
no_daemon() {
  die "$* -- the images were neither built nor run (start a Docker daemon, or run this as root so that it starts one)"
}
phase() { log "[$((SECONDS - T0))s] $*"; }

[[ "$ADDR" =~ ^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] ||
  die "IMAGES_TEST_ADDR=$ADDR is not in 127.0.0.0/8"
command -v python3 >/dev/null || die "python3 is needed (probe.py, minimal_rootfs.py)"
PROBE=(python3 "$HERE/probe.py")

# The cargo stage is the same text in the four Dockerfiles, so that building the four
# images compiles once (the later builds hit its cached layer): keep it so.
# shellcheck disable=SC2016 # ${BUILDER} is the Dockerfile's text, not a shell variable
build_stage() { sed -n '/^ARG RUST_IMAGE=/,/^FROM ${BUILDER} AS binaries$/p' "$1"; }
[ -n "$(build_stage server/Dockerfile)" ] || die "server/Dockerfile: no build stage between ARG RUST_IMAGE= and FROM \${BUILDER} AS binaries"
for f in operator/Dockerfile sidecar/Dockerfile examples/master-worker/Dockerfile; do
  [ "$(build_stage "$f")" = "$(build_stage server/Dockerfile)" ] ||
    die "the build stage of $f differs from server/Dockerfile's (they must stay identical)"
done
pass "the four Dockerfiles share one build stage, text for text"

IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1
export DEBIAN_FRONTEND=noninteractive
APT_UPDATED=0
apt_install() { # PACKAGE...
  [ "$IS_ROOT" = 1 ] || die "missing $*: install them as root (apt-get install -y $*)"
  if [ "$APT_UPDATED" = 0 ]; then
    apt-get update -q >&2 || die "apt-get update failed"
    APT_UPDATED=1
  fi
  log "installing $*"
  apt-get install -y -q --no-install-recommends "$@" >&2 || die "apt-get install $* failed"
}

# ------------------------------------------------------------- docker client ---
# The build must skip the Dockerfiles' cargo stage, which only BuildKit does (the legacy
# builder runs every stage, and would pull RUST_IMAGE). BuildKit is built into the
# Docker 20.10 client (Debian bookworm's docker.io); newer clients need the buildx plugin.
DOCKER=""
pick_client() {
  local c version
  for c in docker /usr/bin/docker; do
    command -v "$c" >/dev/null 2>&1 || continue
    if "$c" buildx version >/dev/null 2>&1; then DOCKER="$c"; return 0; fi
    version="$("$c" --version 2>/dev/null | sed -n 's/^Docker version \([0-9]*\)\..*/\1/p')"
    if [ -n "$version" ] && [ "$version" -lt 23 ]; then DOCKER="$c"; return 0; fi
  done
  return 1
}
any_daemon() {
  local c
  for c in docker /usr/bin/docker; do
    command -v "$c" >/dev/null 2>&1 && "$c" info >/dev/null 2>&1 && return 0
  done
  return 1
}
if ! pick_client || ! command -v dockerd >/dev/null 2>&1; then
  if [ "$IS_ROOT" = 1 ]; then
    apt_install docker.io
    if ! pick_client && apt-cache show docker-buildx >/dev/null 2>&1; then apt_install docker-buildx; fi
  elif ! any_daemon; then
    no_daemon "no Docker daemon answers and, not being root, this test cannot start one"
  fi
fi
pick_client || die "no docker client that can build with BuildKit (Docker < 23, or the buildx plugin)"
export DOCKER_BUILDKIT=1
log "docker client: $DOCKER ($("$DOCKER" --version))"

# ------------------------------------------------------------- docker daemon ---
WORK="$(mktemp -d "${TMPDIR:-/tmp}/paddock-images.XXXXXX")"
DOCKERD_PID=""
CONTAINERS=()
IMAGES=()
cleanup() {
  local rc=$?
  set +e
  for c in "${CONTAINERS[@]}"; do "$DOCKER" rm -f "$c" >/dev/null 2>&1; done
  if [ "${IMAGES_TEST_KEEP:-0}" != 1 ]; then
    for i in "${IMAGES[@]}"; do "$DOCKER" rmi "$i" >/dev/null 2>&1; done
    # Each run leaves its build layers (the binaries, ~300 MiB per run) in the build
    # cache; on a shared runner they add up to gigabytes within a day.
    "$DOCKER" builder prune -af >/dev/null 2>&1
  fi
  if [ -n "$DOCKERD_PID" ]; then
    log "stopping the dockerd this test started (pid $DOCKERD_PID)"
    kill -TERM "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 1 60); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$DOCKERD_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

if ! "$DOCKER" info >/dev/null 2>&1; then
  [ "$IS_ROOT" = 1 ] || no_daemon "no Docker daemon answers and, not being root, this test cannot start one"
  command -v dockerd >/dev/null 2>&1 || die "dockerd is missing after installing docker.io"
  log "starting dockerd (log: $WORK/dockerd.log)"
  # No bridge and no iptables rules: the containers here use the host's network only,
  # and the host's firewall and forwarding stay as they are.
  dockerd --bridge=none --iptables=false --ip-masq=false --ip-forward=false \
    >"$WORK/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 1 60); do
    "$DOCKER" info >/dev/null 2>&1 && break
    kill -0 "$DOCKERD_PID" 2>/dev/null || break
    sleep 1
  done
  if ! "$DOCKER" info >/dev/null 2>&1; then
    tail -n 20 "$WORK/dockerd.log" >&2 || true
    no_daemon "dockerd did not start within 60 s (its log is above)"
  fi
fi
phase "docker daemon answers ($("$DOCKER" version --format '{{.Server.Version}}' 2>/dev/null))"

# --------------------------------------------------------------- base image ---
# shellcheck disable=SC1091
. /etc/os-release
[ "${ID:-}" = debian ] || die "the base is made with debootstrap from this host's Debian mirror; this host is ${ID:-unknown}"
SUITE="${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}"
ARCH="$(dpkg --print-architecture)"
BASE="paddock-e2e/base:$SUITE-$ARCH-r$RECIPE"
TARBALL="$CACHE/base-$SUITE-$ARCH-r$RECIPE.tar"

# "URI KEYRING" of the first enabled deb source of $1 in apt's sources (one-line or deb822).
apt_mirror() {
  local suite="$1" f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    case "$f" in
      *.sources)
        awk -v suite="$suite" '
          function flush() {
            if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && uri != "" && enabled != "no") {
              print uri, keyring; found = 1; exit
            }
            types = ""; suites = ""; uri = ""; keyring = ""; enabled = ""
          }
          /^[ \t]*$/ { flush(); next }
          /^#/ { next }
          tolower($1) == "types:" { $1 = ""; types = $0 }
          tolower($1) == "suites:" { $1 = ""; suites = $0 }
          tolower($1) == "uris:" { uri = $2 }
          tolower($1) == "signed-by:" { keyring = $2 }
          tolower($1) == "enabled:" { enabled = tolower($2) }
          END { if (!found) flush() }' "$f" ;;
      *)
        awk -v suite="$suite" '
          $1 == "deb" {
            i = 2; kr = ""
            if ($2 ~ /^\[/) {
              while (i <= NF && $i !~ /\]$/) { if ($i ~ /signed-by=/) kr = $i; i++ }
              if ($i ~ /signed-by=/) kr = $i
              i++
            }
            if ($(i + 1) == suite) { sub(/.*signed-by=/, "", kr); sub(/\]$/, "", kr); print $i, kr; exit }
          }' "$f" ;;
    esac
  done | head -n 1
}

if "$DOCKER" image inspect "$BASE" >/dev/null 2>&1; then
  log "base image $BASE present"
else
  if [ ! -s "$TARBALL" ]; then
    [ "$IS_ROOT" = 1 ] || die "making the base needs root (debootstrap); $TARBALL is not cached"
    command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
    read -r MIRROR KEYRING < <(apt_mirror "$SUITE") || true
    [ -n "${MIRROR:-}" ] || die "no 'deb' source for suite $SUITE in /etc/apt/sources.list*"
    KEYRING_ARG=()
    [ -n "${KEYRING:-}" ] && [ -f "$KEYRING" ] && KEYRING_ARG=(--keyring="$KEYRING")
    mkdir -p "$CACHE"
    STAGE="$(mktemp -d "$CACHE/debootstrap.XXXXXX")"
    log "debootstrap --variant=minbase $SUITE from apt's mirror (log: $STAGE/debootstrap.log)"
    if ! timeout 1200 debootstrap --variant=minbase --arch="$ARCH" "${KEYRING_ARG[@]}" \
        --include=ca-certificates,tzdata,netbase "$SUITE" "$STAGE/rootfs" "$MIRROR" \
        >"$STAGE/debootstrap.log" 2>&1; then
      tail -n 20 "$STAGE/debootstrap.log" >&2 || true
      rm -rf "$STAGE"
      die "debootstrap failed (its log is above)"
    fi
    python3 "$HERE/minimal_rootfs.py" "$STAGE/rootfs" "$STAGE/base.tar" || { rm -rf "$STAGE"; die "minimal_rootfs.py failed"; }
    mv "$STAGE/base.tar" "$TARBALL"
    rm -rf "$STAGE"
    phase "base tarball made: $TARBALL ($(du -h "$TARBALL" | cut -f1))"
  fi
  # What distroless sets too: a PATH, and where the CA bundle is.
  "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    "$TARBALL" "$BASE" >/dev/null || die "docker import of $TARBALL failed"
  phase "imported $BASE"
fi

# ------------------------------------------------------------------ binaries ---
PROFILE="${IMAGES_PROFILE:-dev}"
case "$PROFILE" in
  dev) PROFILE_DIR=debug ;;
  release) PROFILE_DIR=release ;;
  *) die "IMAGES_PROFILE must be dev or release, not $PROFILE" ;;
esac
# The packages and binaries of the Dockerfiles' build stage.
PACKAGES=(paddock-server paddock-operator paddock-sidecar paddock-master-worker)
BINS=(paddock-server paddock-operator paddock-sidecar mw)
phase "cargo build --profile $PROFILE (${PACKAGES[*]})"
PACKAGE_ARGS=()
for p in "${PACKAGES[@]}"; do PACKAGE_ARGS+=(-p "$p"); done
cargo build --profile "$PROFILE" --locked --quiet "${PACKAGE_ARGS[@]}" ||
  die "cargo build --profile $PROFILE failed"
RELEASE="${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE_DIR"
VERSION="$(cargo metadata --no-deps --format-version 1 --locked |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "paddock-server"))')"

TAG="test-$$"
BINARIES="paddock-e2e/binaries:$TAG"
mkdir -p "$WORK/binaries/out/data"
# What the Dockerfiles' build stage leaves: /out/<binary> without debug info, and an
# empty /out/data.
command -v strip >/dev/null || die "strip (binutils) is needed"
for b in "${BINS[@]}"; do
  strip --strip-debug -o "$WORK/binaries/out/$b" "$RELEASE/$b" || die "strip $b failed"
done
printf 'FROM scratch\nCOPY out/ /out/\n' >"$WORK/binaries/Dockerfile"
IMAGES+=("$BINARIES")
"$DOCKER" build -q -t "$BINARIES" "$WORK/binaries" >"$WORK/binaries.log" 2>&1 ||
  { cat "$WORK/binaries.log" >&2; die "building $BINARIES failed"; }
phase "prebuilt binaries in $BINARIES"

# ------------------------------------------------------------ build context ---
# What the Dockerfiles' build stage copies: the workspace with every member's manifest and
# Cargo.lock, without target/, .git or the Python venv (.dockerignore).
CONTEXT_IMG="paddock-e2e/context:$TAG"
IMAGES+=("$CONTEXT_IMG")
printf 'FROM scratch\nCOPY . /ctx/\n' | "$DOCKER" build -q -f - -t "$CONTEXT_IMG" . >"$WORK/context.log" 2>&1 ||
  { cat "$WORK/context.log" >&2; die "building the context image failed"; }
export_listing() { # IMAGE FILE: the image's file system as `tar -tv` lists it
  local cid
  cid="$("$DOCKER" create --network none "$1" /none)" || die "docker create $1 failed"
  CONTAINERS+=("$cid")
  "$DOCKER" export "$cid" | tar --numeric-owner -tvf - >"$2" || die "docker export $1 failed"
  "$DOCKER" rm -f "$cid" >/dev/null
}
export_listing "$CONTEXT_IMG" "$WORK/context.txt"
for bad in ctx/target/ ctx/.git/ ctx/e2e/.venv/; do
  ! grep -q " $bad" "$WORK/context.txt" || die "the build context holds $bad (.dockerignore)"
done
MANIFESTS="$(cargo metadata --no-deps --format-version 1 --locked |
  python3 -c 'import json,os,sys; r=sys.argv[1]; [print(os.path.relpath(p["manifest_path"], r)) for p in json.load(sys.stdin)["packages"]]' "$ROOT")"
for f in Cargo.toml Cargo.lock $MANIFESTS; do
  grep -q " ctx/$f\$" "$WORK/context.txt" || die "the build context lacks $f (.dockerignore)"
done
pass "build context: every workspace manifest and Cargo.lock, no target/, .git or e2e/.venv ($(wc -l <"$WORK/context.txt") entries)"

# ---------------------------------------------------------------- the images ---
# Each image: its Dockerfile and the binary its entrypoint runs.
COMPONENTS=(server operator sidecar master-worker)
declare -A DOCKERFILE=([server]=server/Dockerfile [operator]=operator/Dockerfile
  [sidecar]=sidecar/Dockerfile [master-worker]=examples/master-worker/Dockerfile)
declare -A BIN=([server]=paddock-server [operator]=paddock-operator
  [sidecar]=paddock-sidecar [master-worker]=mw)
declare -A IMAGE
for c in "${COMPONENTS[@]}"; do
  IMAGE[$c]="paddock-e2e/$c:$TAG"
  IMAGES+=("${IMAGE[$c]}")
  if ! "$DOCKER" build -f "${DOCKERFILE[$c]}" --build-arg BASE_IMAGE="$BASE" \
      --build-arg BUILDER="$BINARIES" -t "${IMAGE[$c]}" . >"$WORK/build-$c.log" 2>&1; then
    tail -n 30 "$WORK/build-$c.log" >&2
    die "docker build -f ${DOCKERFILE[$c]} failed"
  fi
  ! grep -q 'load metadata for .*rust' "$WORK/build-$c.log" ||
    die "$c: the build resolved RUST_IMAGE although BUILDER skips the cargo stage"
done
phase "built ${IMAGE[server]}, ${IMAGE[operator]}, ${IMAGE[sidecar]}, ${IMAGE[master-worker]}"

inspect() { "$DOCKER" image inspect -f "$2" "$1"; }
for c in "${COMPONENTS[@]}"; do
  img="${IMAGE[$c]}" bin="/usr/local/bin/${BIN[$c]}"
  [ "$(inspect "$img" '{{.Config.User}}')" = "65532:65532" ] ||
    die "$c: Config.User is '$(inspect "$img" '{{.Config.User}}')', not 65532:65532"
  [ "$(inspect "$img" '{{json .Config.Entrypoint}}')" = "[\"$bin\"]" ] ||
    die "$c: Entrypoint is $(inspect "$img" '{{json .Config.Entrypoint}}')"
  labels="$(inspect "$img" '{{index .Config.Labels "org.opencontainers.image.title"}} {{index .Config.Labels "org.opencontainers.image.version"}} {{index .Config.Labels "org.opencontainers.image.base.name"}}')"
  [ "$labels" = "paddock-$c $VERSION $BASE" ] ||
    die "$c: OCI labels title/version/base are '$labels', want 'paddock-$c $VERSION $BASE' (ARG VERSION in ${DOCKERFILE[$c]} follows Cargo.toml)"
  export_listing "$img" "$WORK/fs-$c.txt"
  grep -q " ${bin#/}\$" "$WORK/fs-$c.txt" || die "$c: no $bin"
  for sh in bin/sh usr/bin/sh bin/bash usr/bin/bash bin/dash usr/bin/dash; do
    ! grep -q " $sh\( ->.*\)\?\$" "$WORK/fs-$c.txt" || die "$c: the runtime image holds /$sh"
  done
  pass "$c: user 65532:65532, entrypoint [$bin], OCI labels, no shell ($(inspect "$img" '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}'))"
done
[ "$(inspect "${IMAGE[server]}" '{{json .Config.Cmd}}')" = '["--config","/conf/zoo.cfg","--data-dir","/data"]' ] ||
  die "server: CMD is $(inspect "${IMAGE[server]}" '{{json .Config.Cmd}}')"
grep -q '^drwx.* 65532/65532 .* data/$' "$WORK/fs-server.txt" || die "server: /data is not a directory owned by 65532"
for p in 2181 2888 3888 8080; do
  inspect "${IMAGE[server]}" '{{json .Config.ExposedPorts}}' | grep -q "\"$p/tcp\"" || die "server: port $p not exposed"
done
pass "server: CMD --config /conf/zoo.cfg --data-dir /data, /data owned by 65532, ports 2181 2888 3888 8080 exposed"
[ "$(inspect "${IMAGE[master-worker]}" '{{.Config.WorkingDir}}')" = /results ] ||
  die "master-worker: WORKDIR is '$(inspect "${IMAGE[master-worker]}" '{{.Config.WorkingDir}}')', not /results"
grep -q '^drwx.* 65532/65532 .* results/$' "$WORK/fs-master-worker.txt" ||
  die "master-worker: /results is not a directory owned by 65532"
inspect "${IMAGE[master-worker]}" '{{json .Config.ExposedPorts}}' | grep -q '"7070/tcp"' ||
  die "master-worker: port 7070 not exposed"
pass "master-worker: WORKDIR /results owned by 65532 (the sink's default --log is writable), port 7070 exposed"

# ------------------------------------------------------------------ running ---
# shellcheck disable=SC2016 # $0 and $1 are the inner bash's arguments
port_free() { ! timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$ADDR" "$1" 2>/dev/null; }
for p in 2181 2281 2888 3888 4040 7070 8080 8181; do
  port_free "$p" || die "port $p on $ADDR is taken (set IMAGES_TEST_ADDR to another 127.x.y.z)"
done

# wait_for SECONDS DESCRIPTION CMD...: until CMD succeeds (bounded), else fail.
wait_for() {
  local limit="$1" what="$2" t
  shift 2
  t=$SECONDS
  until "$@" >/dev/null 2>&1; do
    [ $((SECONDS - t)) -lt "$limit" ] || return 1
    sleep 0.5
  done
  log "$what after $((SECONDS - t))s"
}
is_imok() { [ "$("${PROBE[@]}" 4lw "$ADDR" "$1" ruok)" = imok ]; }
http_is() { # STATUS URL [USER:PASSWORD]
  local want="$1"
  shift
  [ "$("${PROBE[@]}" http "$@" | cut -d' ' -f1)" = "$want" ]
}
STARTED=""
start() { # NAME DOCKER-RUN-ARGS...: a container on the host's network, removed at the end
  STARTED="paddock-e2e-images-$$-$1"
  shift
  CONTAINERS+=("$STARTED")
  "$DOCKER" run -d --name "$STARTED" --network host "$@" >/dev/null || die "docker run $STARTED failed"
}
logs_and_die() { "$DOCKER" logs --tail 40 "$1" >&2 2>&1 || true; die "$2"; }
uid_of() { awk '/^Uid:/ { print $2 }' "/proc/$("$DOCKER" inspect -f '{{.State.Pid}}' "$1")/status"; }
stop_cleanly() { # CONTAINER: SIGTERM, exit 0 within 10 s
  local t=$SECONDS code
  "$DOCKER" stop -t 10 "$1" >/dev/null
  code="$("$DOCKER" inspect -f '{{.State.ExitCode}}' "$1")"
  [ "$code" = 0 ] || logs_and_die "$1" "$1 exited with $code on SIGTERM (137: it ignored SIGTERM as PID 1)"
  log "$1 stopped on SIGTERM with exit code 0 in $((SECONDS - t))s"
}

# 1. The server with the image's CMD: zoo.cfg from /conf, data in the image's own /data.
mkdir -p "$WORK/conf-standalone"
cat >"$WORK/conf-standalone/zoo.cfg" <<CFG
tickTime=500
dataDir=/data
clientPort=2281
clientPortAddress=$ADDR
admin.serverAddress=$ADDR
admin.serverPort=8181
4lw.commands.whitelist=*
CFG
chmod -R a+rX "$WORK"
start server-standalone -v "$WORK/conf-standalone:/conf:ro" "${IMAGE[server]}"
s1="$STARTED"
wait_for 30 "standalone server answers ruok" is_imok 2281 || logs_and_die "$s1" "the standalone server did not answer ruok within 30 s"
"${PROBE[@]}" 4lw "$ADDR" 2281 srvr | grep -q '^Mode: standalone' || logs_and_die "$s1" "srvr does not say Mode: standalone"
[ "$(uid_of "$s1")" = 65532 ] || die "the server runs as uid $(uid_of "$s1"), not 65532"
stop_cleanly "$s1"
pass "server, default CMD, standalone zoo.cfg at /conf: ruok -> imok, Mode: standalone, uid 65532, SIGTERM -> exit 0"

# 2. The server as the operator's StatefulSet runs it (operator/src/children/stateful_set.rs
#    server_args and config.rs zoo_cfg): ZkEnsemble "zk" in namespace "default", one
#    member, the ConfigMap's zoo.cfg at /conf, the PVC at /data (owned by the pod's user,
#    as fsGroup makes it), POD_IP and POD_NAME from the downward API, the super user's
#    digest from the credentials Secret. Names resolve as the cluster's DNS would.
mkdir -p "$WORK/conf-operator" "$WORK/data-operator"
cat >"$WORK/conf-operator/zoo.cfg" <<'CFG'
tickTime=2000
initLimit=10
syncLimit=5
snapCount=100000
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
dataDir=/data
clientPort=2181
admin.serverPort=8080
reconfigEnabled=true
standaloneEnabled=false
4lw.commands.whitelist=*
server.1=zk-0.zk-headless.default.svc.cluster.local:2888:3888:participant;0.0.0.0:2181
CFG
chmod -R a+rX "$WORK/conf-operator"
chown 65532:65532 "$WORK/data-operator" || die "cannot chown the data dir to 65532"
PASSWORD="images-e2e-$$"
DIGEST="$("${PROBE[@]}" digest "super:$PASSWORD")"
PEER=zk-0.zk-headless.default.svc.cluster.local
CLIENT_SERVICE=zk-client.default.svc.cluster.local
start server-operator \
  --add-host "$PEER:$ADDR" --add-host "$CLIENT_SERVICE:$ADDR" \
  -e POD_IP="$ADDR" -e POD_NAME=zk-0 -e HOSTNAME=zk-0 -e PADDOCK_SUPER_DIGEST="$DIGEST" \
  -v "$WORK/conf-operator:/conf:ro" -v "$WORK/data-operator:/data" \
  "${IMAGE[server]}" \
  --config /conf/zoo.cfg --data-dir /data --myid-from-hostname \
  --client-address "$ADDR" --admin-address "$ADDR" \
  --peer-address "$PEER" --join "$CLIENT_SERVICE:2181"
s2="$STARTED"
wait_for 60 "operator-shaped server answers ruok" is_imok 2181 || logs_and_die "$s2" "the operator-shaped server did not answer ruok within 60 s"
wait_for 30 "operator-shaped server is ready (/readyz)" http_is 200 "http://$ADDR:8080/readyz" ||
  logs_and_die "$s2" "/readyz did not answer 200 within 30 s"
http_is 200 "http://$ADDR:8080/livez" || logs_and_die "$s2" "/livez did not answer 200"
http_is 401 "http://$ADDR:8080/status" || logs_and_die "$s2" "/status without credentials did not answer 401"
http_is 200 "http://$ADDR:8080/status" "super:$PASSWORD" || logs_and_die "$s2" "/status with the super user's credentials did not answer 200"
[ -n "$(ls -A "$WORK/data-operator")" ] || logs_and_die "$s2" "nothing written to the /data volume"
[ "$(uid_of "$s2")" = 65532 ] || die "the server runs as uid $(uid_of "$s2"), not 65532"
MODE="$("${PROBE[@]}" 4lw "$ADDR" 2181 srvr | sed -n 's/^Mode: //p')"
pass "server, the operator's arguments and mounts: ruok -> imok, /readyz and /livez 200, /status 401 without and 200 with the super user, Mode: $MODE, uid 65532"

# 3. The sidecar next to it.
start sidecar "${IMAGE[sidecar]}" \
  --servers "$ADDR:2181" --listen "$ADDR:4040" --election images-e2e --id pod-0 --session-timeout 4s
c1="$STARTED"
wait_for 30 "sidecar answers /healthz" http_is 200 "http://$ADDR:4040/healthz" || logs_and_die "$c1" "the sidecar did not answer /healthz within 30 s"
wait_for 30 "sidecar is ready (/readyz)" http_is 200 "http://$ADDR:4040/readyz" || logs_and_die "$c1" "the sidecar's /readyz did not answer 200 within 30 s"
wait_for 30 "sidecar leads its election" http_is 200 "http://$ADDR:4040/v1/elections/images-e2e/self" ||
  logs_and_die "$c1" "the sidecar did not lead its election within 30 s"
[ "$(uid_of "$c1")" = 65532 ] || die "the sidecar runs as uid $(uid_of "$c1"), not 65532"
stop_cleanly "$c1"
pass "sidecar against the server container: /healthz, /readyz, /v1/elections/images-e2e/self 200, uid 65532, SIGTERM -> exit 0"

# 4. The master-worker example next to that server, with kubernetes.yaml's arguments: the
#    sink (its log on a volume at /results, owned by the pod's user), a master and a
#    worker; tasks submitted from outside with target/'s mw, as a user would.
mkdir -p "$WORK/mw-results"
chown 65532:65532 "$WORK/mw-results" || die "cannot chown the results dir to 65532"
has_event() { "$DOCKER" logs "$1" 2>/dev/null | grep -q "^EVENT .*\"kind\":\"$2\""; }
start mw-sink -v "$WORK/mw-results:/results" "${IMAGE[master-worker]}" \
  sink --servers="$ADDR:2181" --listen="$ADDR:7070" --log=/results/results.jsonl
mw_sink="$STARTED"
wait_for 30 "mw sink answers GET /v1/results" http_is 200 "http://$ADDR:7070/v1/results" ||
  logs_and_die "$mw_sink" "the sink did not answer GET /v1/results within 30 s"
start mw-master "${IMAGE[master-worker]}" master --servers="$ADDR:2181" --id=m1
mw_master="$STARTED"
start mw-worker "${IMAGE[master-worker]}" \
  worker --servers="$ADDR:2181" --id=w1 --sink="http://$ADDR:7070"
mw_worker="$STARTED"
wait_for 30 "mw master is active" has_event "$mw_master" active ||
  logs_and_die "$mw_master" "the master did not print EVENT active within 30 s"
wait_for 30 "mw worker registered" has_event "$mw_worker" registered ||
  logs_and_die "$mw_worker" "the worker did not print EVENT registered within 30 s"
set +e
timeout 90 "$RELEASE/mw" submit --servers "$ADDR:2181" --count 5 --timeout-s 60 \
  --report "$WORK/mw-report.json" >"$WORK/mw-submit.out" 2>"$WORK/mw-submit.err"
code=$?
set -e
if [ "$code" != 0 ]; then
  cat "$WORK/mw-submit.out" "$WORK/mw-submit.err" >&2
  for c in "$mw_master" "$mw_worker"; do "$DOCKER" logs --tail 20 "$c" >&2 2>&1 || true; done
  logs_and_die "$mw_sink" "mw submit --count 5 exited $code"
fi
REPORT="$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["submitted"], r["completed"], r["lost"])' "$WORK/mw-report.json")" ||
  die "mw submit's report $WORK/mw-report.json is unreadable"
[ "$REPORT" = "5 5 0" ] || die "mw submit: submitted/completed/lost are $REPORT, not 5 5 0 ($(cat "$WORK/mw-submit.out"))"
RECORDED="$(python3 -c 'import json,sys; print(len({json.loads(l)["task"] for l in open(sys.argv[1])}), sum(1 for _ in open(sys.argv[1])))' "$WORK/mw-results/results.jsonl")" ||
  die "the sink's log on the /results volume is missing or unreadable"
[ "$RECORDED" = "5 5" ] || die "the sink's log holds $RECORDED (distinct tasks, lines), not 5 5"
for c in "$mw_sink" "$mw_master" "$mw_worker"; do
  [ "$(uid_of "$c")" = 65532 ] || die "$c runs as uid $(uid_of "$c"), not 65532"
done
pass "master-worker: sink, master and worker containers against the server container; mw submit --count 5: 5 completed, 0 lost, 5 recorded once each in /results/results.jsonl; uid 65532"
for c in "$mw_worker" "$mw_master" "$mw_sink"; do stop_cleanly "$c"; done
pass "master-worker: SIGTERM -> exit 0 (worker, master, sink)"
stop_cleanly "$s2"
pass "server (operator-shaped): SIGTERM -> exit 0"

# 5. The operator prints its CRD.
"$DOCKER" run --rm --network none "${IMAGE[operator]}" crd >"$WORK/crd.yaml" 2>"$WORK/crd.err" ||
  { cat "$WORK/crd.err" >&2; die "paddock-operator crd failed in the image"; }
cmp -s "$WORK/crd.yaml" crds/zkensembles.paddock.dev.yaml ||
  die "paddock-operator crd in the image differs from crds/zkensembles.paddock.dev.yaml"
pass "operator: 'crd' prints crds/zkensembles.paddock.dev.yaml exactly"
# Its default CMD is `run`: without a cluster it says so and exits 1 (in a pod it finds the
# in-cluster config; the chart passes `run` with its flags).
set +e
timeout 60 "$DOCKER" run --rm --network none "${IMAGE[operator]}" >"$WORK/run.out" 2>&1
code=$?
set -e
if [ "$code" != 1 ] || ! grep -q 'no Kubernetes client (in-cluster config or KUBECONFIG)' "$WORK/run.out"; then
  cat "$WORK/run.out" >&2
  die "the operator image's default CMD exited $code without the 'no Kubernetes client' error"
fi
pass "operator: the default CMD runs the controller ('run'), which without a cluster exits 1 saying so"

phase "done"
echo "images: $PASSED passed, 0 failed ($((SECONDS - T0))s)"
