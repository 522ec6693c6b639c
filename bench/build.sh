# Sourced by compare.sh and instructions.sh (which define ROOT, log and die): builds
# paddock-server and paddock-bench in release mode and sets PADDOCK and BENCH to them.
log "building paddock-server and paddock-bench (release)"
cargo build --release --quiet -p paddock-server -p paddock-bench --manifest-path "$ROOT/Cargo.toml" </dev/null \
  || die "cargo build failed"
BIN_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/release"
PADDOCK="$BIN_DIR/paddock-server"
BENCH="$BIN_DIR/paddock-bench"
[ -x "$PADDOCK" ] && [ -x "$BENCH" ] || die "binaries missing in $BIN_DIR"
