#!/usr/bin/env bash
# Install everything the e2e / compatibility suites need, idempotently.
#
#   Debian packages: zookeeper (reference server, zkCli.sh, zookeeper.jar),
#                    libcurator-recipes-java (Curator jars), a JDK with javac,
#                    python3 with venv support, docker.io and debootstrap (e2e/images).
#   Python packages: e2e/requirements.txt (exact pins) in e2e/.venv.
#
# Fast path: when everything is present this only runs dpkg-query and one
# python import check (a second or two). `apt-get update` runs at most once,
# and only when a Debian package is missing. Never reads stdin.
set -euo pipefail

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${E2E_VENV:-$E2E_DIR/.venv}"
REQ="$E2E_DIR/requirements.txt"

export DEBIAN_FRONTEND=noninteractive
exec </dev/null

log() { echo "install-deps: $*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    log "not root and no sudo; cannot install Debian packages (will only check)"; SUDO="__none__"
  fi
fi

# ---------------------------------------------------------------- Debian ---
need_pkgs=()
pkg_installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}
for p in zookeeper libcurator-recipes-java libcurator-framework-java libcurator-client-java; do
  pkg_installed "$p" || need_pkgs+=("$p")
done
# The container images test (e2e/images): a Docker engine, and debootstrap for its base.
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)
# A JDK (javac) to compile the Curator driver. Any installed JDK will do.
if ! command -v javac >/dev/null 2>&1; then need_pkgs+=(default-jdk-headless); fi
# python3 with a working venv module.
if ! command -v python3 >/dev/null 2>&1; then
  need_pkgs+=(python3 python3-venv)
elif [ ! -x "$VENV/bin/python" ] && ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  need_pkgs+=(python3-venv)
fi

if [ "${#need_pkgs[@]}" -gt 0 ]; then
  if [ "$SUDO" = "__none__" ]; then
    log "missing Debian packages: ${need_pkgs[*]}"; exit 1
  fi
  log "installing Debian packages: ${need_pkgs[*]}"
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${need_pkgs[@]}"
else
  log "Debian packages present"
fi

for f in /usr/share/zookeeper/bin/zkCli.sh /usr/share/java/zookeeper.jar \
         /usr/share/java/curator-recipes.jar /usr/share/java/curator-framework.jar \
         /usr/share/java/curator-client.jar; do
  [ -e "$f" ] || { log "expected file missing after install: $f"; exit 1; }
done
command -v javac >/dev/null 2>&1 || { log "javac not found after install"; exit 1; }

# ---------------------------------------------------------------- Python ---
# Check every "name==version" line of requirements.txt against the venv.
req_ok() {
  [ -x "$VENV/bin/python" ] || return 1
  "$VENV/bin/python" - "$REQ" <<'PY' >/dev/null 2>&1
import sys, re
from importlib.metadata import version, PackageNotFoundError
bad = []
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
    if not m:
        bad.append(line); continue
    try:
        if version(m.group(1)) != m.group(2):
            bad.append(line)
    except PackageNotFoundError:
        bad.append(line)
sys.exit(1 if bad else 0)
PY
}

if req_ok; then
  log "python venv up to date ($VENV)"
else
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating venv $VENV"
    python3 -m venv "$VENV"
  fi
  log "installing python requirements into $VENV"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/pip" install -q --no-input -r "$REQ"
  req_ok || { log "python requirements still not satisfied after install"; exit 1; }
fi
log "ok"
