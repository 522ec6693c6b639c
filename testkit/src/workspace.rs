//! The workspace on disk: its root, and the binaries of other packages (a test of the
//! client or the sidecar runs the real `paddock-server`), built by cargo when asked for.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};

/// The workspace's root directory (this crate's parent).
pub fn root() -> PathBuf {
    match Path::new(env!("CARGO_MANIFEST_DIR")).parent() {
        Some(root) => root.to_path_buf(),
        None => panic!("{} has no parent directory", env!("CARGO_MANIFEST_DIR")),
    }
}

/// The binary `bin` of workspace package `package`, next to `beside` (a binary of the
/// calling test's own package, e.g. `env!("CARGO_BIN_EXE_paddock-sidecar")`, so in the
/// same target directory and profile): built with `cargo build -p PACKAGE` once per
/// test binary (a no-op when it is up to date; cargo decides what is stale).
///
/// `$NAME_BIN` (the binary's name upper-cased, `-` as `_`, e.g. `PADDOCK_SERVER_BIN`)
/// names a binary to use instead. A failed build fails the test: an older binary left in
/// the target directory would test code that is not the code under test.
pub fn built_bin(package: &str, bin: &str, beside: &Path) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let var = format!("{}_BIN", bin.to_ascii_uppercase().replace('-', "_"));
    if let Some(path) = std::env::var_os(&var) {
        return PathBuf::from(path);
    }
    // Held while building: tests running in parallel wait for the one build.
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(path) = built.get(bin) {
        return path.clone();
    }
    let Some(dir) = beside.parent() else {
        panic!("{} is not in a target directory", beside.display());
    };
    let Some(target) = dir.parent() else {
        panic!("{} is not in a target directory", dir.display());
    };
    let mut build = Command::new(env!("CARGO"));
    build.args(["build", "--quiet", "-p", package]);
    if dir.file_name().is_some_and(|profile| profile == "release") {
        build.arg("--release");
    }
    let out = build
        .env("CARGO_TARGET_DIR", target)
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run cargo build -p {package}: {e}"));
    assert!(
        out.status.success(),
        "cargo build -p {package} failed; not testing an older {bin} (${var} names one to use):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.join(bin);
    assert!(path.exists(), "{} missing after the build", path.display());
    built.insert(bin.to_string(), path.clone());
    path
}
