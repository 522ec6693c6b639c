//! The helper subcommands behind the comparison's non-throughput rows:
//! `populate` (load N znodes), `wait-serving` (restart-to-serving: first successful
//! getData) and `wait-write` (failover: first acknowledged write on any server).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use paddock_proto::{CreateMode, ErrorCode, GetDataRequest, OpCode, Request, SetDataRequest};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::cli::{NetArgs, PopulateArgs, Values, WaitArgs};
use crate::conn::{Conn, ConnError};
use crate::workload::setup::{BulkResult, bulk, create};

/// Children per parent when populating (1,000,000 znodes = 1,000 parents × 1,000).
const FANOUT: u64 = 1000;

fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

#[derive(Debug, Serialize)]
pub struct PopulateReport {
    pub created: u64,
    /// Znodes that were already there (a second populate of the same root).
    pub existed: u64,
    pub elapsed_s: f64,
    pub creates_per_s: f64,
    /// The last znode of the set, to read back after a restart.
    pub last_path: String,
}

fn parent(root: &str, p: u64) -> String {
    format!("{root}/p{p:05}")
}

fn child(root: &str, i: u64) -> String {
    format!("{}/n{:04}", parent(root, i / FANOUT), i % FANOUT)
}

pub async fn populate(a: &PopulateArgs) -> Result<PopulateReport, String> {
    let servers = &a.servers.0;
    let limit = a.net.request_timeout;
    let t0 = Instant::now();
    let mut admin = connect(&servers[0], &a.net).await?;
    let parents = a.count.div_ceil(FANOUT);
    let mut top = Vec::new();
    let mut at = String::new();
    for part in a.root.split('/').skip(1) {
        at.push('/');
        at.push_str(part);
        top.push(at.clone());
    }
    let reqs = top
        .into_iter()
        .chain((0..parents).map(|p| parent(&a.root, p)))
        .map(|p| create(p, Vec::new(), CreateMode::Persistent));
    let res = bulk(&mut admin, reqs, a.inflight as usize, limit)
        .await
        .map_err(|e| e.to_string())?;
    check_creates(&res, "parents")?;
    let _ = admin.close(limit).await;

    let values = a.values;
    let value_size = a.value_size;
    let mut tasks = JoinSet::new();
    let sessions = u64::from(a.sessions).min(parents).max(1);
    for s in 0..sessions {
        let addr = servers[s as usize % servers.len()].clone();
        let net = a.net.clone();
        let root = a.root.clone();
        let (count, inflight) = (a.count, a.inflight as usize);
        tasks.spawn(async move {
            let mut conn = connect(&addr, &net).await?;
            // This session fills parents s, s + sessions, s + 2·sessions, ...
            let reqs = (s..parents)
                .step_by(sessions as usize)
                .flat_map(|p| p * FANOUT..((p + 1) * FANOUT).min(count))
                .map(|i| {
                    create(
                        child(&root, i),
                        value(values, value_size, i),
                        CreateMode::Persistent,
                    )
                });
            let res = bulk(&mut conn, reqs, inflight, net.request_timeout)
                .await
                .map_err(|e| e.to_string())?;
            let _ = conn.close(net.request_timeout).await;
            Ok::<BulkResult, String>(res)
        });
    }
    let mut total = BulkResult::default();
    while let Some(r) = tasks.join_next().await {
        let r = r.map_err(|e| format!("populate task failed: {e}"))??;
        total.merge(&r);
    }
    check_creates(&total, "znodes")?;
    let elapsed = t0.elapsed().as_secs_f64();
    let existed = total
        .errors
        .get(&ErrorCode::NodeExists.code())
        .copied()
        .unwrap_or(0);
    Ok(PopulateReport {
        created: total.ok,
        existed,
        elapsed_s: (elapsed * 1000.0).round() / 1000.0,
        creates_per_s: (total.ok as f64 / elapsed.max(1e-9)).round(),
        last_path: child(&a.root, a.count - 1),
    })
}

/// The value of znode `i`: the alphabet repeated, or bytes of a xorshift generator seeded
/// by `i`, so that no two znodes (and no two parts of one) share a run to compress.
fn value(kind: Values, size: usize, i: u64) -> Vec<u8> {
    match kind {
        Values::Alphabet => (0..size).map(|j| b'a' + (j % 26) as u8).collect(),
        Values::Random => {
            let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            (0..size)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 24) as u8
                })
                .collect()
        }
    }
}

/// Only NodeExists is acceptable (a re-run); anything else fails the populate.
fn check_creates(res: &BulkResult, what: &str) -> Result<(), String> {
    for (code, n) in &res.errors {
        if *code != ErrorCode::NodeExists.code() {
            let name = ErrorCode::from_code(*code)
                .map(|c| c.name().to_string())
                .unwrap_or_else(|| code.to_string());
            return Err(format!("creating {what}: {n} failed with {name}"));
        }
    }
    Ok(())
}

async fn connect(addr: &str, net: &NetArgs) -> Result<Conn, String> {
    Conn::connect(addr, net.session_timeout, net.connect_timeout)
        .await
        .map_err(|e| e.to_string())
}

#[derive(Debug, Serialize)]
pub struct WaitReport {
    pub ok: bool,
    /// When the first success was seen (Unix ns).
    pub unix_ns: u128,
    /// Since `--since-unix-ns`, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<f64>,
    /// Since this probe started.
    pub probe_ms: f64,
    pub attempts: u64,
    pub server: String,
}

impl WaitReport {
    fn new(
        a: &WaitArgs,
        started: Instant,
        success: Success,
        attempts: u64,
        server: String,
    ) -> WaitReport {
        WaitReport {
            ok: true,
            unix_ns: success.unix_ns,
            elapsed_ms: a
                .since_unix_ns
                .map(|t| (success.unix_ns.saturating_sub(t) as f64 / 1e5).round() / 10.0),
            probe_ms: (success.at.duration_since(started).as_secs_f64() * 1e4).round() / 10.0,
            attempts,
            server,
        }
    }
}

/// When an attempt's answer arrived, on both clocks.
#[derive(Debug, Clone, Copy)]
struct Success {
    at: Instant,
    unix_ns: u128,
}

/// One attempt: a fresh session, one request, its answer.
async fn attempt(addr: &str, net: &NetArgs, req: &Request, op: OpCode) -> Result<Success, String> {
    let mut conn = Conn::connect(addr, net.session_timeout, net.connect_timeout)
        .await
        .map_err(|e| e.to_string())?;
    let reply = conn
        .call(req, net.request_timeout)
        .await
        .map_err(|e: ConnError| e.to_string())?;
    let success = Success {
        at: reply.at,
        unix_ns: unix_ns().saturating_sub(reply.at.elapsed().as_nanos()),
    };
    let outcome = match reply.error() {
        Some(e) => Err(format!("{addr}: {} answered {e}", op.name())),
        None => reply
            .decode(op.code())
            .map(|_| success)
            .map_err(|e| format!("{addr}: bad {} reply: {e}", op.name())),
    };
    // Do not leave a session behind for each probe (after the answer was timed); a
    // failure here does not matter.
    let _ = conn.close(Duration::from_secs(1)).await;
    outcome
}

/// Most attempts a probe keeps open at once.
const MAX_PENDING: usize = 200;

/// Starts a fresh attempt every `interval` (cycling through the servers) without waiting
/// for earlier ones, so one connection stuck in a starting or electing server cannot
/// hide the moment the server is ready; the first attempt that succeeds ends the probe.
async fn race(a: &WaitArgs, req: Request, op: OpCode, what: &str) -> Result<WaitReport, String> {
    let started = Instant::now();
    let deadline = started + a.timeout;
    let interval = a.interval.max(Duration::from_millis(1));
    let mut pending = JoinSet::new();
    let mut attempts = 0u64;
    let mut last_error = String::from("no attempt finished");
    let mut next_start = started;
    while Instant::now() < deadline {
        if Instant::now() >= next_start && pending.len() < MAX_PENDING {
            let addr = a.servers.0[attempts as usize % a.servers.0.len()].clone();
            attempts += 1;
            let (net, req) = (a.net.clone(), req.clone());
            pending.spawn(async move {
                let r = attempt(&addr, &net, &req, op).await;
                (addr, r)
            });
            next_start = Instant::now() + interval;
        }
        let wake = next_start.min(deadline);
        let joined = if pending.is_empty() {
            tokio::time::sleep_until(wake.into()).await;
            continue;
        } else {
            match tokio::time::timeout_at(wake.into(), pending.join_next()).await {
                Ok(j) => j,
                Err(_) => continue,
            }
        };
        match joined {
            Some(Ok((addr, Ok(success)))) => {
                pending.abort_all();
                return Ok(WaitReport::new(a, started, success, attempts, addr));
            }
            Some(Ok((_, Err(e)))) => last_error = e,
            Some(Err(e)) => last_error = format!("probe task failed: {e}"),
            None => {}
        }
    }
    pending.abort_all();
    Err(format!(
        "no successful {what} {} within {:?} ({attempts} attempts; last error: {last_error})",
        a.path, a.timeout
    ))
}

/// Restart-to-serving: the first successful connect + getData on any server.
pub async fn wait_serving(a: &WaitArgs) -> Result<WaitReport, String> {
    let req = Request::GetData(GetDataRequest {
        path: a.path.clone(),
        watch: false,
    });
    race(a, req, OpCode::GetData, "getData").await
}

/// Failover: the first acknowledged connect + setData on any server.
pub async fn wait_write(a: &WaitArgs) -> Result<WaitReport, String> {
    let req = Request::SetData(SetDataRequest {
        path: a.path.clone(),
        data: b"failover-probe".to_vec().into(),
        version: -1,
    });
    race(a, req, OpCode::SetData, "setData").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn populate_layout() {
        assert_eq!(child("/r", 0), "/r/p00000/n0000");
        assert_eq!(child("/r", 999), "/r/p00000/n0999");
        assert_eq!(child("/r", 1000), "/r/p00001/n0000");
        assert_eq!(child("/r", 999_999), "/r/p00999/n0999");
    }

    #[test]
    fn random_values_differ_between_znodes_and_alphabet_ones_do_not() {
        assert_eq!(
            value(Values::Alphabet, 30, 1),
            value(Values::Alphabet, 30, 2)
        );
        assert_eq!(&value(Values::Alphabet, 28, 0)[24..], b"yzab");
        let (a, b) = (value(Values::Random, 100, 1), value(Values::Random, 100, 2));
        assert_eq!((a.len(), b.len()), (100, 100));
        assert_ne!(a, b);
        assert_eq!(a, value(Values::Random, 100, 1));
        // Not a short cycle either: most byte values appear in a few thousand bytes.
        let long = value(Values::Random, 4096, 7);
        let distinct = (0..=255u8).filter(|v| long.contains(v)).count();
        assert!(distinct > 200, "{distinct} distinct bytes");
    }
}
