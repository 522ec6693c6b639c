//! Helpers the configuration tests share: a fresh temp dir, zoo.cfg text parsed as a file
//! named `zoo.cfg`, a command line, and tables of malformed files with their messages.

use clap::Parser;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Cli, ConfigError, ServerConfig};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh empty directory under the system temp dir.
pub(super) fn temp_dir() -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("paddock-cfg-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(super) fn parse(text: &str) -> Result<ServerConfig, ConfigError> {
    ServerConfig::parse_zoo_cfg(text, "zoo.cfg", Path::new("."))
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

/// Each malformed file and the exact message it produces.
pub(super) fn assert_errors(cases: &[(&str, &str)]) {
    for (text, expected) in cases {
        assert_eq!(&err(text), expected, "for input:\n{text}");
    }
}

pub(super) fn cli(args: &[&str]) -> Cli {
    let mut v = vec!["paddock-server"];
    v.extend_from_slice(args);
    Cli::try_parse_from(v).unwrap()
}
