#!/usr/bin/env bash
# Compile and run the Curator compatibility driver against a server.
#
#   curator_compat.sh HOST:PORT
#
# Uses the Debian jars (libcurator-recipes-java, libzookeeper-java); builds
# into e2e/.build/curator (gitignored), recompiling only when the source
# changed. Exits non-zero when any check fails.
set -euo pipefail

SERVER="${1:?usage: curator_compat.sh HOST:PORT}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
E2E="$(cd "$HERE/.." && pwd)"
SRC="$HERE/curator/CuratorCompat.java"
OUT="${CURATOR_BUILD_DIR:-$E2E/.build/curator}"

J=/usr/share/java
CP=""
for jar in curator-recipes curator-framework curator-client zookeeper zookeeper-jute guava slf4j-api; do
  [ -r "$J/$jar.jar" ] || { echo "curator: $J/$jar.jar missing; run e2e/install-deps.sh" >&2; exit 2; }
  CP="$CP${CP:+:}$J/$jar.jar"
done
# Quiet logging at run time if slf4j-nop is available.
RUN_CP="$CP"
[ -r "$J/slf4j-nop.jar" ] && RUN_CP="$RUN_CP:$J/slf4j-nop.jar"

mkdir -p "$OUT"
if [ ! -f "$OUT/CuratorCompat.class" ] || [ "$SRC" -nt "$OUT/CuratorCompat.class" ]; then
  echo "curator: compiling $(basename "$SRC")" >&2
  javac -nowarn -d "$OUT" -cp "$CP" "$SRC"
fi

exec timeout 180 java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx256m \
  -cp "$RUN_CP:$OUT" CuratorCompat "$SERVER"
