//! Helpers the configuration tests share: a fresh temp dir, zoo.cfg text parsed as a file
//! named `zoo.cfg`, a command line, and tables of malformed files with their messages.

use clap::Parser;
use std::path::Path;

use super::{Cli, ConfigError, ServerConfig};

/// A fresh empty directory under the system temp dir, removed when dropped; it derefs
/// to its path.
pub(super) struct TempDir(tempfile::TempDir);

impl std::ops::Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.0.path()
    }
}

pub(super) fn temp_dir() -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("paddock-cfg-")
        .tempdir()
        .unwrap();
    TempDir(dir)
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
