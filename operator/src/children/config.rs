//! The ConfigMap with zoo.cfg: settings from spec.config, the keys the operator owns, and the
//! initial members' `server.N` lines.
//!
//! The `server.N` lines describe the membership the ensemble was created with and are kept
//! as they are afterwards: later membership lives in the members' data dirs and changes only
//! through reconfig (a member that finds a committed config in its data dir trusts it over
//! the ConfigMap, and a new member starts with `--join`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::api::core::v1::ConfigMap;
use sha1::{Digest, Sha1};

use crate::crd::ZkEnsembleSpec;
use crate::membership::{ADMIN_PORT, CLIENT_PORT};

use super::{EnsembleRef, metadata};

/// Key of zoo.cfg in the ConfigMap (mounted at /conf/zoo.cfg).
pub const ZOO_CFG: &str = "zoo.cfg";

/// Pod template annotation holding a hash of zoo.cfg's settings (not its `server.N` lines):
/// a settings change gives the StatefulSet a new revision, so the members restart one at a
/// time onto it; a membership change does not.
pub const CONFIG_HASH_ANNOTATION: &str = "paddock.dev/config-hash";

/// zoo.cfg's settings, without the membership.
fn settings(spec: &ZkEnsembleSpec) -> String {
    let c = &spec.config;
    let mut out = String::new();
    let mut line = |k: &str, v: &dyn std::fmt::Display| {
        let _ = writeln!(out, "{k}={v}");
    };
    line("tickTime", &c.tick_time);
    line("initLimit", &c.init_limit);
    line("syncLimit", &c.sync_limit);
    if let Some(v) = c.min_session_timeout {
        line("minSessionTimeout", &v);
    }
    if let Some(v) = c.max_session_timeout {
        line("maxSessionTimeout", &v);
    }
    line("snapCount", &c.snap_count);
    line("autopurge.snapRetainCount", &c.autopurge.snap_retain_count);
    line("autopurge.purgeInterval", &c.autopurge.purge_interval);
    line("dataDir", &"/data");
    line("clientPort", &CLIENT_PORT);
    line("admin.serverPort", &ADMIN_PORT);
    line("reconfigEnabled", &true);
    // Even a one-member ensemble runs as an ensemble, so that it can grow through reconfig.
    line("standaloneEnabled", &false);
    if !c.extra.contains_key("4lw.commands.whitelist") {
        line("4lw.commands.whitelist", &"*");
    }
    for (k, v) in &c.extra {
        line(k, v);
    }
    out
}

/// The whole zoo.cfg: settings, then the initial members' `server.N` lines.
pub fn zoo_cfg(spec: &ZkEnsembleSpec, initial_servers: &str) -> String {
    let mut out = settings(spec);
    for l in initial_servers.lines().filter(|l| !l.trim().is_empty()) {
        out.push_str(l.trim());
        out.push('\n');
    }
    out
}

/// Hash of the settings (for [`CONFIG_HASH_ANNOTATION`]).
pub fn settings_hash(spec: &ZkEnsembleSpec) -> String {
    let digest = Sha1::digest(settings(spec).as_bytes());
    digest.iter().take(8).fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The `server.N=...` lines of an existing zoo.cfg (empty when it has none).
pub fn initial_servers_of(zoo_cfg: &str) -> String {
    zoo_cfg
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("server."))
        .fold(String::new(), |mut s, l| {
            s.push_str(l);
            s.push('\n');
            s
        })
}

/// The ConfigMap `<name>-config` with zoo.cfg.
pub fn config_map(e: &EnsembleRef<'_>, initial_servers: &str) -> ConfigMap {
    ConfigMap {
        metadata: metadata(e, e.names.config_map(), "config"),
        data: Some(BTreeMap::from([(
            ZOO_CFG.to_string(),
            zoo_cfg(e.spec, initial_servers),
        )])),
        ..ConfigMap::default()
    }
}
