//! Server configuration: ZooKeeper `zoo.cfg` parsing, command-line flags and embedded defaults.
//!
//! Precedence, lowest first: embedded defaults, then `zoo.cfg` (plus its `dynamicConfigFile`),
//! then `<dataDir>/myid`, then command-line flags (DESIGN §6).
//!
//! * `zoo.cfg` is a Java properties file: `key=value` (also `key: value` and `key value`),
//!   `#`/`!` comment lines, blank lines, backslash line continuations and escapes; keys and
//!   values are trimmed, as ZooKeeper does.
//! * Defaults are ZooKeeper's (tickTime 2000, initLimit 10, syncLimit 5, clientPort 2181,
//!   maxClientCnxns 60, min/maxSessionTimeout 2/20 ticks, snapCount 100000, ...). With a
//!   zoo.cfg, addresses that are not given listen on all interfaces (0.0.0.0) and the
//!   four-letter-word whitelist is ZooKeeper's default, `srvr` only.
//! * With no `--config` at all the embedded default is a standalone server for development:
//!   client port on 127.0.0.1:2181, data in `./paddock-data`, admin HTTP on 127.0.0.1:8080,
//!   and every four-letter word enabled (whitelist `*`): nothing listens beyond loopback, so
//!   there is nobody to hide `stat`/`mntr`/`cons` from, and `paddock srvr|mntr` should just work.
//! * Keys ZooKeeper knows that Paddock does not implement ([`zk_keys`]): one whose absence
//!   would weaken security or durability (TLS, SASL, authentication providers, skipACL,
//!   enforceQuota, ...) stops the start with an error that names it and says what to do;
//!   the others (always provided, or tuning) are listed once at info level. Unknown keys
//!   are kept in [`ServerConfig::extra`] with a warning (ZooKeeper turns them into
//!   `zookeeper.<key>` system properties).
//!   A `zookeeper.` prefix on a known key is accepted (`zookeeper.4lw.commands.whitelist`).
//!
//! Every error names the file, the line and the key, e.g.
//! `zoo.cfg:7: server.3: expected host:quorumPort:electionPort[:participant|observer][;[clientAddr:]clientPort], got "zk3:2888"`.
//!
//! The work is split by job:
//!
//! * `cli`: the command line ([`Cli`]) and how its flags override the file.
//! * `properties`: the Java properties text parser, with line numbers for errors.
//! * `zoo_cfg`: each zoo.cfg key read into settings that remember their line.
//! * `validate`: defaults, `<dataDir>/myid` and the checks that build a [`ServerConfig`].
//! * `server_config`: the typed model, [`ServerConfig`], and what it answers (`conf`).
//! * `dynamic`: `server.N`/`weight.N`/`group.G` lines, the dynamic config file and the
//!   membership text ([`DynamicConfig`]).
//! * `tls_keys`, `sasl_keys`, `zk_keys`: the `ssl.*` and SASL key families, and the
//!   ZooKeeper keys Paddock does not implement.

mod cli;
mod dynamic;
mod properties;
mod sasl_keys;
mod server_config;
#[cfg(test)]
mod test_support;
mod tls_keys;
mod validate;
mod zk_keys;
mod zoo_cfg;

pub use cli::{Cli, DEFAULT_ELECTION_PORT, DEFAULT_QUORUM_PORT};
pub use dynamic::{
    DynamicConfig, HostPort, LearnerRole, PeerAddress, QuorumGroup, QuorumKind, ServerEntry,
    delimited_host,
};
pub use sasl_keys::{QuorumSasl, SaslConfig, SaslUsers, ServerLogin};
pub use server_config::{
    ConfRuntime, DEFAULT_ADMIN_PORT, DEFAULT_CLIENT_PORT, DEFAULT_FSYNC_WARNING_THRESHOLD_MS,
    DEFAULT_INIT_LIMIT, DEFAULT_JOIN_TIMEOUT_MS, DEFAULT_JUTE_MAX_BUFFER, DEFAULT_MAX_CLIENT_CNXNS,
    DEFAULT_SNAP_COUNT, DEFAULT_SYNC_LIMIT, DEFAULT_TICK_TIME_MS, EMBEDDED_ADDRESS,
    EMBEDDED_DATA_DIR, FOUR_LETTER_WORDS, FourLetterWhitelist, MAX_SERVER_ID,
    MAX_SERVER_ID_EXTENDED, MIN_SNAP_RETAIN_COUNT, NetLimits, ServerConfig, SuperDigest,
    WILDCARD_ADDRESS,
};
pub use tls_keys::{ClientAuth, StoreSpec, StoreType, TlsConfig, TlsSide};
pub use validate::MIN_ADMIN_TOKEN_LEN;

/// A value that must never appear in logs or debug output (a credential).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

/// A configuration error. The `Display` form is the message to show the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A problem on one line of a file: `zoo.cfg:7: server.3: expected ...`.
    #[error("{file}:{line}: {key}: {message}")]
    Line {
        file: String,
        line: usize,
        key: String,
        message: String,
    },
    /// A problem with a whole file (cannot be read, a required setting is missing).
    #[error("{file}: {message}")]
    File { file: String, message: String },
    /// A bad command-line flag: `--join: expected HOST:PORT, got "x"`.
    #[error("--{flag}: {message}")]
    Flag { flag: &'static str, message: String },
}
