//! Four-letter words: the text ZooKeeper answers on the client port.

use super::format::{java_date, java_double, java_hex, java_socket_address};
use super::{
    AdminSource, ConnectionInfo, DumpReport, MetricValue, ServerMode, ServerSnapshot, SessionDump,
    WatchSummary,
};
use crate::config::{ConfRuntime, FourLetterWhitelist};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What ZooKeeper prints (plus a newline) when asked while electing or starting.
pub const ZK_NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";

/// The four-letter words Paddock answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FourLetterWord {
    Ruok,
    Srvr,
    Stat,
    Mntr,
    Conf,
    Cons,
    Crst,
    Srst,
    Envi,
    Wchs,
    Wchc,
    Wchp,
    Dump,
    Isro,
    Dirs,
}

impl FourLetterWord {
    pub const ALL: [FourLetterWord; 15] = [
        FourLetterWord::Ruok,
        FourLetterWord::Srvr,
        FourLetterWord::Stat,
        FourLetterWord::Mntr,
        FourLetterWord::Conf,
        FourLetterWord::Cons,
        FourLetterWord::Crst,
        FourLetterWord::Srst,
        FourLetterWord::Envi,
        FourLetterWord::Wchs,
        FourLetterWord::Wchc,
        FourLetterWord::Wchp,
        FourLetterWord::Dump,
        FourLetterWord::Isro,
        FourLetterWord::Dirs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FourLetterWord::Ruok => "ruok",
            FourLetterWord::Srvr => "srvr",
            FourLetterWord::Stat => "stat",
            FourLetterWord::Mntr => "mntr",
            FourLetterWord::Conf => "conf",
            FourLetterWord::Cons => "cons",
            FourLetterWord::Crst => "crst",
            FourLetterWord::Srst => "srst",
            FourLetterWord::Envi => "envi",
            FourLetterWord::Wchs => "wchs",
            FourLetterWord::Wchc => "wchc",
            FourLetterWord::Wchp => "wchp",
            FourLetterWord::Dump => "dump",
            FourLetterWord::Isro => "isro",
            FourLetterWord::Dirs => "dirs",
        }
    }

    pub fn parse(cmd: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.as_str() == cmd)
    }

    /// Recognises a four-letter word from the first four bytes a client sends. ZooKeeper
    /// reads them as the length prefix of the first frame; none of these values is a
    /// plausible length (all exceed jute.maxbuffer), so the check is unambiguous.
    pub fn from_prefix(bytes: &[u8]) -> Option<Self> {
        let b = bytes.get(..4)?;
        std::str::from_utf8(b).ok().and_then(Self::parse)
    }
}

/// ZooKeeper's answer to a command missing from `4lw.commands.whitelist`.
pub fn not_whitelisted(cmd: &str) -> String {
    format!("{cmd} is not executed because it is not in the whitelist.\n")
}

/// Answers a four-letter word. `None` when `cmd` is not one (the caller then treats the bytes
/// as a normal frame or closes the connection); otherwise the exact bytes to write before
/// closing the connection. ZooKeeper also counts the command as a received packet.
pub async fn four_letter_word<S: AdminSource>(
    cmd: &str,
    whitelist: &FourLetterWhitelist,
    src: &S,
) -> Option<String> {
    let word = FourLetterWord::parse(cmd)?;
    if !whitelist.allows(word.as_str()) {
        tracing::debug!(command = cmd, "four-letter word not in the whitelist");
        return Some(not_whitelisted(word.as_str()));
    }
    Some(run(word, src).await)
}

async fn run<S: AdminSource>(word: FourLetterWord, src: &S) -> String {
    match word {
        FourLetterWord::Ruok => return "imok".to_string(),
        FourLetterWord::Envi => return render_envi(&src.environment().await),
        _ => {}
    }
    let snap = src.snapshot().await;
    if word == FourLetterWord::Isro {
        return render_isro(&snap).to_string();
    }
    if !snap.serving {
        return format!("{ZK_NOT_SERVING}\n");
    }
    match word {
        FourLetterWord::Srvr => render_server_stats(&snap, None),
        FourLetterWord::Stat => render_server_stats(&snap, Some(&src.connections().await)),
        FourLetterWord::Mntr => render_mntr(&snap),
        FourLetterWord::Conf => src.config().render_conf(&ConfRuntime {
            client_port: snap.bound_client_port,
            data_dir_size: snap.data_dir_size,
            data_log_size: snap.log_dir_size,
        }),
        FourLetterWord::Cons => render_cons(&src.connections().await),
        FourLetterWord::Crst => {
            src.reset_connection_stats().await;
            "Connection stats reset.\n".to_string()
        }
        FourLetterWord::Srst => {
            src.reset_stats().await;
            "Server stats reset.\n".to_string()
        }
        FourLetterWord::Wchs => render_wchs(&src.watch_summary().await),
        FourLetterWord::Wchc => render_wchc(&src.watches().await),
        FourLetterWord::Wchp => render_wchp(&src.watches().await),
        FourLetterWord::Dump => render_dump(&src.dump().await, &src.connections().await),
        FourLetterWord::Dirs => format!(
            "datadir_size: {}\nlogdir_size: {}\n",
            snap.data_dir_size, snap.log_dir_size
        ),
        // Answered above.
        FourLetterWord::Ruok | FourLetterWord::Envi | FourLetterWord::Isro => String::new(),
    }
}

/// `isro`: `ro`, `rw`, or `null` when not serving; no newline, as ZooKeeper.
pub(super) fn render_isro(snap: &ServerSnapshot) -> &'static str {
    if !snap.serving {
        "null"
    } else if snap.mode == ServerMode::ReadOnly {
        "ro"
    } else {
        "rw"
    }
}

pub(super) fn render_envi(env: &[(String, String)]) -> String {
    let mut s = String::from("Environment:\n");
    for (k, v) in env {
        let _ = writeln!(s, "{k}={v}");
    }
    s
}

/// `srvr`, or `stat` when the connections are given.
pub(super) fn render_server_stats(
    snap: &ServerSnapshot,
    connections: Option<&[ConnectionInfo]>,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Zookeeper version: {}", snap.version);
    if snap.mode == ServerMode::ReadOnly {
        s.push_str("READ-ONLY mode; serving only read-only clients\n");
    }
    if let Some(conns) = connections {
        s.push_str("Clients:\n");
        for c in conns {
            write_connection(&mut s, c, true);
            s.push('\n');
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "Latency min/avg/max: {}/{}/{}",
        snap.latency.min(),
        java_double(snap.latency.avg()),
        snap.latency.max_ms
    );
    let _ = writeln!(s, "Received: {}", snap.packets_received);
    let _ = writeln!(s, "Sent: {}", snap.packets_sent);
    let _ = writeln!(s, "Connections: {}", snap.alive_connections);
    let _ = writeln!(s, "Outstanding: {}", snap.outstanding_requests);
    let _ = writeln!(s, "Zxid: 0x{:x}", snap.last_processed_zxid);
    let _ = writeln!(s, "Mode: {}", snap.mode.as_str());
    let _ = writeln!(s, "Node count: {}", snap.node_count);
    if let (ServerMode::Leader, Some(leader)) = (snap.mode, &snap.leader) {
        let p = &leader.proposal_sizes;
        let _ = writeln!(
            s,
            "Proposal sizes last/min/max: {}/{}/{}",
            p.last_buffer_size, p.min_buffer_size, p.max_buffer_size
        );
    }
    s
}

/// `ServerCnxn.dumpConnectionInfo`.
pub(super) fn write_connection(s: &mut String, c: &ConnectionInfo, brief: bool) {
    let ops = if c.interest_ops == 0 {
        "0".to_string()
    } else {
        format!("{:x}", c.interest_ops)
    };
    let _ = write!(
        s,
        " {}[{ops}](queued={},recved={},sent={}",
        java_socket_address(&c.remote_socket_address),
        c.outstanding_requests,
        c.packets_received,
        c.packets_sent
    );
    if !brief && c.session_id != 0 {
        let _ = write!(
            s,
            ",sid=0x{:x},lop={},est={},to={}",
            c.session_id, c.last_operation, c.established, c.session_timeout
        );
        if c.last_cxid >= 0 {
            let _ = write!(s, ",lcxid=0x{:x}", c.last_cxid);
        }
        let _ = write!(
            s,
            ",lzxid=0x{},lresp={},llat={},minlat={},avglat={},maxlat={}",
            java_hex(c.last_zxid),
            c.last_response_time,
            c.last_latency,
            c.min_latency,
            c.avg_latency,
            c.max_latency
        );
    }
    s.push(')');
}

pub(super) fn render_cons(conns: &[ConnectionInfo]) -> String {
    let mut s = String::new();
    for c in conns {
        write_connection(&mut s, c, false);
        s.push('\n');
    }
    s.push('\n');
    s
}

pub(super) fn render_wchs(w: &WatchSummary) -> String {
    format!(
        "{} connections watching {} paths\nTotal watches:{}\n",
        w.num_connections, w.num_paths, w.num_total_watches
    )
}

pub(super) fn render_wchc(by_session: &BTreeMap<u64, Vec<String>>) -> String {
    let mut s = String::new();
    for (sid, paths) in by_session.iter().filter(|(_, p)| !p.is_empty()) {
        let _ = writeln!(s, "0x{sid:x}");
        for p in paths {
            let _ = writeln!(s, "\t{p}");
        }
    }
    s.push('\n');
    s
}

/// Inverts session → paths into path → sessions.
pub(super) fn watches_by_path(by_session: &BTreeMap<u64, Vec<String>>) -> BTreeMap<&str, Vec<u64>> {
    let mut by_path: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for (sid, paths) in by_session {
        for p in paths {
            let ids = by_path.entry(p.as_str()).or_default();
            if !ids.contains(sid) {
                ids.push(*sid);
            }
        }
    }
    by_path
}

pub(super) fn render_wchp(by_session: &BTreeMap<u64, Vec<String>>) -> String {
    let mut s = String::new();
    for (path, ids) in watches_by_path(by_session) {
        let _ = writeln!(s, "{path}");
        for id in ids {
            let _ = writeln!(s, "\t0x{id:x}");
        }
    }
    s.push('\n');
    s
}

pub(super) fn render_dump(dump: &DumpReport, conns: &[ConnectionInfo]) -> String {
    let mut s = String::from("SessionTracker dump:\n");
    match &dump.sessions {
        SessionDump::Expiry { buckets } => {
            let total: usize = buckets.values().map(Vec::len).sum();
            let _ = writeln!(s, "Session Sets ({})/({total}):", buckets.len());
            for (at, ids) in buckets {
                let _ = writeln!(s, "{} expire at {}:", ids.len(), java_date(*at));
                for id in ids {
                    let _ = writeln!(s, "\t0x{id:x}");
                }
            }
        }
        SessionDump::Global { sessions } => {
            let _ = writeln!(s, "Global Sessions({}):", sessions.len());
            for (id, timeout) in sessions {
                let _ = writeln!(s, "0x{id:x}\t{timeout}ms");
            }
        }
    }
    s.push_str("ephemeral nodes dump:\n");
    let _ = writeln!(s, "Sessions with Ephemerals ({}):", dump.ephemerals.len());
    for (id, paths) in &dump.ephemerals {
        let _ = writeln!(s, "0x{id:x}:");
        for p in paths {
            let _ = writeln!(s, "\t{p}");
        }
    }
    s.push_str("Connections dump:\n");
    let mut buckets: BTreeMap<u64, Vec<&ConnectionInfo>> = BTreeMap::new();
    for c in conns {
        if let Some(at) = c.expires_at {
            buckets.entry(at).or_default().push(c);
        }
    }
    let total: usize = buckets.values().map(Vec::len).sum();
    let _ = writeln!(s, "Connections Sets ({})/({total}):", buckets.len());
    for (at, cs) in &buckets {
        let _ = writeln!(s, "{} expire at {}:", cs.len(), java_date(*at));
        for c in cs {
            let _ = writeln!(
                s,
                "\tip: {} sessionId: 0x{:x}",
                java_socket_address(&c.remote_socket_address),
                c.session_id
            );
        }
    }
    s
}

/// A value in `mntr` / the `monitor` JSON.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum MntrValue {
    Str(String),
    Num(MetricValue),
}

impl MntrValue {
    fn text(&self) -> String {
        match self {
            MntrValue::Str(s) => s.clone(),
            MntrValue::Num(MetricValue::Int(i)) => i.to_string(),
            MntrValue::Num(MetricValue::Float(f)) => java_double(*f),
        }
    }

    pub(super) fn json(&self) -> serde_json::Value {
        match self {
            MntrValue::Str(s) => serde_json::Value::String(s.clone()),
            MntrValue::Num(MetricValue::Int(i)) => serde_json::Value::from(*i),
            MntrValue::Num(MetricValue::Float(f)) => serde_json::Value::from(*f),
        }
    }
}

fn int(v: u64) -> MntrValue {
    MntrValue::Num(MetricValue::Int(i64::try_from(v).unwrap_or(i64::MAX)))
}

/// The `mntr` keys (without `zk_`) and values, in output order.
pub(super) fn monitor_values(snap: &ServerSnapshot) -> Vec<(String, MntrValue)> {
    let mut v: Vec<(String, MntrValue)> = Vec::new();
    let mut put = |k: &str, val: MntrValue| v.push((k.to_string(), val));
    put("version", MntrValue::Str(snap.version.clone()));
    put(
        "server_state",
        MntrValue::Str(snap.mode.as_str().to_string()),
    );
    if let Some(ps) = &snap.peer_state {
        put("peer_state", MntrValue::Str(ps.clone()));
    }
    put(
        "avg_latency",
        MntrValue::Num(MetricValue::Float(snap.latency.avg())),
    );
    put("max_latency", int(snap.latency.max_ms));
    put("min_latency", int(snap.latency.min()));
    put("packets_received", int(snap.packets_received));
    put("packets_sent", int(snap.packets_sent));
    put("num_alive_connections", int(snap.alive_connections));
    put("outstanding_requests", int(snap.outstanding_requests));
    put("uptime", int(snap.uptime_ms));
    put("znode_count", int(snap.node_count));
    put("watch_count", int(snap.watch_count));
    put("ephemerals_count", int(snap.ephemerals_count));
    put("approximate_data_size", int(snap.approximate_data_size));
    put("global_sessions", int(snap.global_sessions));
    put("local_sessions", int(snap.local_sessions));
    if let Some(open) = snap.open_file_descriptor_count {
        put("open_file_descriptor_count", int(open));
    }
    if let Some(max) = snap.max_file_descriptor_count {
        put("max_file_descriptor_count", int(max));
    }
    let cr = &snap.client_response;
    put(
        "last_client_response_size",
        MntrValue::Num(MetricValue::Int(cr.last_buffer_size)),
    );
    put(
        "max_client_response_size",
        MntrValue::Num(MetricValue::Int(cr.max_buffer_size)),
    );
    put(
        "min_client_response_size",
        MntrValue::Num(MetricValue::Int(cr.min_buffer_size)),
    );
    put("auth_failed_count", int(snap.auth_failed_count));
    put(
        "fsync_threshold_exceed_count",
        int(snap.fsync_threshold_exceed_count),
    );
    if let Some(q) = snap.quorum_size {
        put("quorum_size", int(q));
    }
    if let Some(l) = &snap.leader {
        put("learners", int(l.learners));
        put("synced_followers", int(l.synced_followers));
        put(
            "synced_non_voting_followers",
            int(l.synced_non_voting_followers),
        );
        put("synced_observers", int(l.synced_observers));
        put("pending_syncs", int(l.pending_syncs));
        put("leader_uptime", int(l.leader_uptime_ms));
        let p = &l.proposal_sizes;
        put(
            "last_proposal_size",
            MntrValue::Num(MetricValue::Int(p.last_buffer_size)),
        );
        put(
            "max_proposal_size",
            MntrValue::Num(MetricValue::Int(p.max_buffer_size)),
        );
        put(
            "min_proposal_size",
            MntrValue::Num(MetricValue::Int(p.min_buffer_size)),
        );
    }
    if let Some(f) = &snap.fsync {
        // ZooKeeper's summary of fsync times: avg/min/max/cnt/sum_fsynctime.
        put("avg_fsynctime", MntrValue::Num(MetricValue::Float(f.avg())));
        put("min_fsynctime", int(f.min()));
        put("max_fsynctime", int(f.max_ms));
        put("cnt_fsynctime", int(f.count));
        put("sum_fsynctime", int(f.total_ms));
    }
    for m in &snap.extra {
        put(&sanitize_name(&m.name), MntrValue::Num(m.value));
    }
    v
}

/// `[a-zA-Z0-9_]` only.
pub(super) fn sanitize_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub(super) fn render_mntr(snap: &ServerSnapshot) -> String {
    let mut s = String::new();
    for (k, v) in monitor_values(snap) {
        let _ = writeln!(s, "zk_{k}\t{}", v.text());
    }
    s
}
