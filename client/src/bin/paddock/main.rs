//! `paddock`: the command line for ZooKeeper-compatible servers (DESIGN §3, §6).
//!
//! Human-readable output by default, JSON with `--json`; errors are one line naming
//! the ZooKeeper error and the path (`paddock: NoNode: /a/b`), and the exit code says
//! what kind of failure it was (see [`exit`]).

mod commands;
mod duration;
mod exit;
mod fourlw;
mod output;
mod up;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use exit::Failure;

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  any other error
  2  usage error (bad arguments)
  3  not found (NoNode)
  4  conflict (NodeExists, BadVersion, NotEmpty)
  5  cannot connect (no server reachable, connection lost, timeout)
  6  not authorized (NoAuth, AuthFailed)

Data given as `-` is read from standard input. Durations take a unit
(500ms, 10s, 2m, 1h, 1d); a bare number means milliseconds.";

/// What `paddock --help` says first.
const ABOUT: &str = "Read and change the data of a ZooKeeper-compatible ensemble \
(paddock-server or Apache ZooKeeper), ask its servers for their status, or run a local \
one for development";
const LONG_ABOUT: &str = "\
Read and change the data of a ZooKeeper-compatible ensemble (paddock-server or Apache
ZooKeeper), ask its servers for their status, or run a local one for development.

Examples:
  paddock up --servers 3                     # a local ensemble on 127.0.0.1:2181-2183
  paddock create /app/config '{\"debug\": true}' -p
  paddock get /app/config
  paddock ls -R /app
  paddock --json stat /app/config
  paddock watch -R /app                      # stream changes until Ctrl-C
  paddock --server 10.0.0.1:2181,10.0.0.2:2181 srvr";

/// The command line for ZooKeeper-compatible servers.
#[derive(Debug, Parser)]
#[command(name = "paddock", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Servers to connect to: host:port,host:port[/chroot].
    #[arg(
        long,
        global = true,
        env = "PADDOCK_SERVER",
        default_value = "127.0.0.1:2181"
    )]
    pub server: String,
    /// Print JSON instead of text (errors go to stderr as JSON too).
    #[arg(long, global = true)]
    pub json: bool,
    /// How long to try connecting, and to wait for each reply.
    #[arg(long, global = true, default_value = "5s", value_parser = duration::parse)]
    pub timeout: Duration,
    /// Credentials to present before the command, as SCHEME:AUTH (e.g.
    /// digest:alice:secret). Repeatable.
    #[arg(long, global = true, value_name = "SCHEME:AUTH")]
    pub auth: Vec<String>,
    /// Log in with SASL DIGEST-MD5 as USER (a `user_<name>` of the servers' JAAS
    /// `Server` section); the password comes from PADDOCK_SASL_PASSWORD or
    /// --sasl-password-file.
    #[arg(long, global = true, value_name = "USER", env = "PADDOCK_SASL_USER")]
    pub sasl_user: Option<String>,
    /// A file holding the --sasl-user's password (one line).
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "PADDOCK_SASL_PASSWORD_FILE"
    )]
    pub sasl_password_file: Option<std::path::PathBuf>,
    /// Connect with TLS (to the servers' secureClientPort), trusting the CA
    /// certificates in FILE (PEM).
    #[arg(long, global = true, value_name = "FILE", env = "PADDOCK_TLS_CA")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// With --tls-ca: present this certificate (PEM); its subject is the session's
    /// x509 id. Needs --tls-key.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "PADDOCK_TLS_CERT",
        requires = "tls_key"
    )]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "PADDOCK_TLS_KEY",
        requires = "tls_cert"
    )]
    pub tls_key: Option<std::path::PathBuf>,
    /// With --tls-ca: accept a server certificate that does not name the host dialed
    /// (it must still be signed by the CA).
    #[arg(long, global = true)]
    pub tls_no_hostname_check: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// List the children of a node (-R: every node under it).
    Ls {
        path: String,
        /// Recursive: every node under PATH, as full paths.
        #[arg(short = 'R', long)]
        recursive: bool,
    },
    /// Print a node's data (null data, which ZooKeeper keeps apart from empty, prints
    /// as `null` as zkCli does; in JSON, `"data": null`).
    Get {
        path: String,
        /// Also print the node's Stat.
        #[arg(short, long)]
        stat: bool,
    },
    /// Replace a node's data.
    Set {
        path: String,
        /// The new data (`-` reads standard input).
        data: String,
        /// Only if the node is at this version.
        #[arg(short, long, allow_negative_numbers = true)]
        version: Option<i32>,
    },
    /// Create a node; prints the path created.
    Create {
        path: String,
        /// Initial data (`-` reads standard input); empty if omitted.
        data: Option<String>,
        /// Ephemeral: deleted when this command's session ends (right away).
        #[arg(short, long)]
        ephemeral: bool,
        /// Sequential: the server appends a 10-digit sequence number.
        #[arg(short, long)]
        sequential: bool,
        /// Container: deleted by the server once its last child is gone.
        #[arg(short, long, conflicts_with_all = ["ephemeral", "sequential", "ttl"])]
        container: bool,
        /// Time to live: deleted once unmodified and childless for this long.
        #[arg(short, long, value_parser = duration::parse_ttl, conflicts_with = "ephemeral")]
        ttl: Option<Duration>,
        /// Create missing parents (as plain persistent nodes).
        #[arg(short, long)]
        parents: bool,
    },
    /// Delete a node (-r: with everything under it).
    Delete {
        path: String,
        /// Recursive (zkCli's deleteall).
        #[arg(short, long, conflicts_with = "version")]
        recursive: bool,
        /// Only if the node is at this version.
        #[arg(short, long, allow_negative_numbers = true)]
        version: Option<i32>,
    },
    /// Print a node's Stat.
    Stat { path: String },
    /// Stream changes to a node (-R: and everything under it) until Ctrl-C.
    Watch {
        path: String,
        /// Recursive: also changes under PATH.
        #[arg(short = 'R', long)]
        recursive: bool,
    },
    /// Print a node's ACL, one scheme:id:perms per line.
    Getacl { path: String },
    /// Replace a node's ACL: comma-separated scheme:id:perms, perms from `cdrwa`
    /// (e.g. world:anyone:r,digest:alice:HASH:cdrwa).
    Setacl {
        path: String,
        acl: String,
        /// Only if the ACL is at this version (aversion).
        #[arg(short, long, allow_negative_numbers = true)]
        version: Option<i32>,
    },
    /// Authenticate (e.g. `addauth digest alice:secret`), then run COMMAND in the same
    /// session; without COMMAND, print who the session is.
    Addauth {
        scheme: String,
        /// The credentials, e.g. alice:secret for digest.
        #[arg(value_name = "AUTH")]
        credentials: String,
        /// A command to run with these credentials, e.g. `-- get /secret`.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "COMMAND"
        )]
        command: Vec<String>,
    },
    /// Print who the session is authenticated as.
    Whoami,
    /// Print the ensemble's configuration (/zookeeper/config).
    Config,
    /// Change the ensemble's membership.
    Reconfig {
        /// Servers to add, comma-separated, e.g. server.4=10.0.0.4:2888:3888;2181
        #[arg(long, value_name = "SPECS")]
        add: Option<String>,
        /// Server ids to remove: N,M,...
        #[arg(long, value_name = "IDS")]
        remove: Option<String>,
        /// The complete new membership (instead of --add/--remove).
        #[arg(long, value_name = "SPECS", conflicts_with_all = ["add", "remove"])]
        members: Option<String>,
        /// Only if the current config has this version (hex or decimal).
        #[arg(long, value_name = "VERSION")]
        from_config: Option<String>,
    },
    /// Server status (the `srvr` four-letter word), from every server of --server.
    Srvr,
    /// Server metrics (the `mntr` four-letter word), from every server of --server.
    Mntr,
    /// Run a local ensemble on loopback (and a sidecar) for development; Ctrl-C stops it.
    Up {
        /// How many servers (1 = standalone).
        #[arg(long, default_value_t = 3)]
        servers: u8,
        /// Also run paddock-sidecar on 127.0.0.1:4040.
        #[arg(long)]
        sidecar: bool,
        /// Client ports start here (admin ports at +100, quorum ports at +200).
        #[arg(long, default_value_t = 2181)]
        base_port: u16,
        /// Where configs, data and logs go (default: a new temporary directory).
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
}

/// Only the command, for `addauth ... COMMAND` (global flags come from the outer line).
#[derive(Debug, Parser)]
#[command(name = "paddock addauth SCHEME AUTH --", no_binary_name = true)]
struct Nested {
    #[command(subcommand)]
    command: Command,
}

pub(crate) fn parse_nested(words: &[String]) -> Result<Command, Failure> {
    Nested::try_parse_from(words)
        .map(|n| n.command)
        .map_err(|e| {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            Failure::Usage(first.trim_start_matches("error: ").to_string())
        })
}

fn main() -> ExitCode {
    let cli = Cli::parse(); // exits with 2 on a usage error
    restore_sigpipe();
    init_tracing();
    let json = cli.global.json;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return exit::report(
                &Failure::Other(format!("cannot start the runtime: {e}")),
                json,
            );
        }
    };
    let result = runtime.block_on(commands::run(cli));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => exit::report(&failure, json),
    }
}

/// Rust ignores SIGPIPE, so `paddock ls ... | head` made println! panic on the closed
/// pipe; as a Unix filter, the CLI should just end quietly there, as ls or cat do.
fn restore_sigpipe() {
    // SAFETY: resets one signal's disposition at start, before any thread is spawned.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Library logs go to stderr, quiet unless RUST_LOG asks for more.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
