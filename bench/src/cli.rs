//! Command line: the load run of DESIGN §6 plus the helper subcommands `compare.sh`
//! uses (populate, wait-serving, wait-write, summarize). Parsing of every user-given
//! value lives here, with errors that name the flag and the bad value.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// paddock-bench: a load generator for any ZooKeeper-compatible server.
///
/// Without a subcommand it runs one workload: N sessions, each keeping up to K requests
/// in flight, for a fixed duration after a warm-up, and reports throughput, latency
/// percentiles (HDR histogram) and error counts.
#[derive(Debug, Parser)]
#[command(
    name = "paddock-bench",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
    /// Threads of the load generator. One by default: on a machine it shares with the
    /// server under test, a second thread mostly adds a wake-up (a futex and a context
    /// switch) to every event that moves a session between threads, and takes CPU from
    /// the server (bench/RESULTS.md measures the difference).
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create COUNT znodes of VALUE-SIZE bytes (1000 per parent) under ROOT, pipelined.
    Populate(PopulateArgs),
    /// Start a connect + getData PATH attempt every INTERVAL (overlapping, across the
    /// servers) until one succeeds; print when (restart-to-serving timing).
    WaitServing(WaitArgs),
    /// Like wait-serving with setData PATH: print when the first write is acknowledged
    /// (failover timing).
    WaitWrite(WaitArgs),
    /// Print the comparison table from a directory of results written by compare.sh.
    Summarize(SummarizeArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Servers to spread the sessions over, HOST:PORT,HOST:PORT,...
    #[arg(long, value_parser = parse_servers, required = false)]
    pub servers: Option<Servers>,
    /// read | write | create-delete | mixed:R (R = percent reads, 0-100) |
    /// watch-fanout:M (one setData notifies M watching sessions) | ephemeral-churn
    #[arg(long, value_parser = parse_workload)]
    pub workload: Option<Workload>,
    /// Concurrent sessions (watch-fanout: ignored, it uses 1 writer and M watchers).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub sessions: u32,
    /// Requests in flight per session (ephemeral-churn and watch-fanout: ignored; their
    /// steps are sequential by nature).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub inflight: u32,
    /// Bytes per znode value (setData, create, and the nodes read).
    #[arg(long, default_value_t = 100, value_parser = parse_value_size)]
    pub value_size: usize,
    /// Measured duration, e.g. 10s, 500ms, 2m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Unmeasured load before the measured duration (JIT, caches, connection setup).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Each session does exactly this many operations (requests; ephemeral-churn:
    /// session cycles; watch-fanout: setData rounds) and stops, unless the duration ends
    /// first: a fixed amount of work, for counting what it costs the server
    /// (bench/instructions.sh).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub ops: Option<u64>,
    /// Znodes the read, write and mixed workloads pick from at random.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub keys: u32,
    /// Path under which the run creates (and afterwards removes) its znodes.
    #[arg(long, default_value = "/paddock-bench", value_parser = parse_root)]
    pub root: String,
    #[command(flatten)]
    pub net: NetArgs,
    /// Print one JSON object instead of the human-readable report.
    #[arg(long)]
    pub json: bool,
}

/// Connection settings shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct NetArgs {
    /// Session timeout asked of the server.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub session_timeout: Duration,
    /// Limit for TCP connect plus the session handshake.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// A session with requests in flight that hears nothing for this long is failed.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct PopulateArgs {
    #[arg(long, value_parser = parse_servers)]
    pub servers: Servers,
    /// Znodes to create (parents not counted).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub count: u64,
    #[arg(long, default_value_t = 100, value_parser = parse_value_size)]
    pub value_size: usize,
    /// What the values hold: `alphabet` (the same repeated a-z in every znode, which
    /// compresses well) or `random` (different pseudo-random bytes in every znode,
    /// which does not compress).
    #[arg(long, value_enum, default_value_t = Values::Alphabet)]
    pub values: Values,
    #[arg(long, default_value = "/paddock-bench-load", value_parser = parse_root)]
    pub root: String,
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub sessions: u32,
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub inflight: u32,
    #[command(flatten)]
    pub net: NetArgs,
    #[arg(long)]
    pub json: bool,
}

/// The values `populate` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Values {
    Alphabet,
    Random,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    #[arg(long, value_parser = parse_servers)]
    pub servers: Servers,
    /// The znode to read (wait-serving) or write (wait-write); it must exist.
    #[arg(long)]
    pub path: String,
    /// Give up after this long.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Time between the starts of two attempts (they overlap; at most 200 are open).
    #[arg(long, default_value = "10ms", value_parser = parse_duration)]
    pub interval: Duration,
    /// Reference instant (Unix time in ns, e.g. `date +%s%N` before the restart or the
    /// kill); the report then includes the time elapsed since it.
    #[arg(long)]
    pub since_unix_ns: Option<u128>,
    #[command(flatten)]
    pub net: NetArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SummarizeArgs {
    /// Directory holding runs/*.json and metrics.tsv (see bench/compare.sh).
    pub dir: PathBuf,
}

/// `--servers`: at least one HOST:PORT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Servers(pub Vec<String>);

impl fmt::Display for Servers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

/// The workloads of DESIGN §6.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Workload {
    Read,
    Write,
    CreateDelete,
    /// Percent of requests that are reads (the rest are setData).
    Mixed(f64),
    /// Watching sessions per setData.
    WatchFanout(u32),
    EphemeralChurn,
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Workload::Read => f.write_str("read"),
            Workload::Write => f.write_str("write"),
            Workload::CreateDelete => f.write_str("create-delete"),
            Workload::Mixed(r) => write!(f, "mixed:{r}"),
            Workload::WatchFanout(m) => write!(f, "watch-fanout:{m}"),
            Workload::EphemeralChurn => f.write_str("ephemeral-churn"),
        }
    }
}

pub fn parse_servers(s: &str) -> Result<Servers, String> {
    let mut out = Vec::new();
    for entry in s.split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let (host, port) = entry.rsplit_once(':').ok_or_else(|| {
            format!("bad --servers entry '{entry}': expected HOST:PORT (e.g. 127.0.0.1:2181)")
        })?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("bad --servers entry '{entry}': empty host"));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => {
                return Err(format!(
                    "bad --servers entry '{entry}': port '{port}' is not a number in 1-65535"
                ));
            }
        }
        out.push(entry.to_string());
    }
    if out.is_empty() {
        return Err("--servers is empty: expected HOST:PORT,HOST:PORT,...".into());
    }
    Ok(Servers(out))
}

pub fn parse_workload(s: &str) -> Result<Workload, String> {
    const KNOWN: &str = "read, write, create-delete, mixed:R, watch-fanout:M, ephemeral-churn";
    let (name, arg) = match s.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (s, None),
    };
    let no_arg = |w: Workload| match arg {
        None => Ok(w),
        Some(_) => Err(format!("workload '{name}' takes no ':' argument")),
    };
    match name {
        "read" => no_arg(Workload::Read),
        "write" => no_arg(Workload::Write),
        "create-delete" => no_arg(Workload::CreateDelete),
        "ephemeral-churn" => no_arg(Workload::EphemeralChurn),
        "mixed" => {
            let a = arg.ok_or("mixed needs a read percentage, e.g. mixed:90")?;
            let r: f64 = a
                .trim_end_matches('%')
                .parse()
                .map_err(|_| format!("mixed:{a}: '{a}' is not a number (percent reads, 0-100)"))?;
            if !(0.0..=100.0).contains(&r) {
                return Err(format!("mixed:{a}: read percentage must be within 0-100"));
            }
            Ok(Workload::Mixed(r))
        }
        "watch-fanout" => {
            let a =
                arg.ok_or("watch-fanout needs the number of watchers, e.g. watch-fanout:100")?;
            match a.parse::<u32>() {
                Ok(m) if (1..=10_000).contains(&m) => Ok(Workload::WatchFanout(m)),
                _ => Err(format!(
                    "watch-fanout:{a}: watchers must be a number in 1-10000"
                )),
            }
        }
        _ => Err(format!("unknown workload '{s}'; known: {KNOWN}")),
    }
}

/// humantime's grammar, the same as the sidecar's and the `paddock` CLI's: `10s`,
/// `250ms`, `2m`, `1.5s`, `100us`; a unit is required (a bare number other than 0 is
/// refused).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const GRAMMAR: &str = "a number with a unit, e.g. 10s, 500ms, 2m";
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("bad duration '{s}': {e}; expected {GRAMMAR}"))?;
    if d > Duration::from_secs(86_400) {
        return Err(format!("bad duration '{s}': must be between 0 and 24h"));
    }
    Ok(d)
}

fn parse_value_size(s: &str) -> Result<usize, String> {
    // jute.maxbuffer defaults to 0xfffff; leave room for the request's path and header.
    const MAX: usize = 1_000_000;
    match s.parse::<usize>() {
        Ok(n) if n <= MAX => Ok(n),
        _ => Err(format!("bad value size '{s}': expected bytes in 0-{MAX}")),
    }
}

fn parse_root(s: &str) -> Result<String, String> {
    let ok = s.starts_with('/')
        && s.len() > 1
        && !s.ends_with('/')
        && !s.contains("//")
        && s.split('/').skip(1).all(|c| c != "." && c != "..")
        && s != "/zookeeper"
        && !s.starts_with("/zookeeper/");
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "bad root '{s}': expected an absolute znode path such as /paddock-bench (not /, not under /zookeeper)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers() {
        assert_eq!(
            parse_servers("127.0.0.1:2181, localhost:2182"),
            Ok(Servers(vec![
                "127.0.0.1:2181".into(),
                "localhost:2182".into()
            ]))
        );
        assert!(parse_servers("127.0.0.1").is_err());
        assert!(parse_servers("127.0.0.1:0").is_err());
        assert!(parse_servers("127.0.0.1:x").is_err());
        assert!(parse_servers(":2181").is_err());
        assert!(parse_servers(",").is_err());
    }

    #[test]
    fn workloads() {
        assert_eq!(parse_workload("read"), Ok(Workload::Read));
        assert_eq!(parse_workload("mixed:90"), Ok(Workload::Mixed(90.0)));
        assert_eq!(parse_workload("mixed:99.5%"), Ok(Workload::Mixed(99.5)));
        assert_eq!(
            parse_workload("watch-fanout:7"),
            Ok(Workload::WatchFanout(7))
        );
        assert!(parse_workload("mixed").is_err());
        assert!(parse_workload("mixed:101").is_err());
        assert!(parse_workload("watch-fanout:0").is_err());
        assert!(parse_workload("read:1").is_err());
        assert!(parse_workload("scan").is_err());
        for w in [
            "read",
            "write",
            "create-delete",
            "mixed:50",
            "watch-fanout:3",
            "ephemeral-churn",
        ] {
            assert_eq!(parse_workload(w).map(|w| w.to_string()), Ok(w.to_string()));
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert!(parse_duration("10").unwrap_err().contains("unit"));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("99999h").is_err());
    }

    #[test]
    fn roots() {
        assert!(parse_root("/paddock-bench").is_ok());
        assert!(parse_root("/a/b").is_ok());
        for bad in [
            "",
            "/",
            "a",
            "/a/",
            "/a//b",
            "/zookeeper",
            "/zookeeper/x",
            "/a/../b",
        ] {
            assert!(parse_root(bad).is_err(), "{bad}");
        }
    }
}
