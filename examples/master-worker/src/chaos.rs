//! `mw chaos`: the whole system on one machine, broken on purpose, with a verdict.
//!
//! A local 3-server ensemble (`paddock up`), the sink, 2 masters, 4 Rust workers and the
//! Python worker (through its own paddock-sidecar). Every worker reaches the ensemble
//! through a proxy of this process that can cut it off. While tasks are submitted at a
//! steady rate, each round:
//! 1. kills the active master (kill -9): the backup takes over (takeover time);
//! 2. kills a worker (kill -9): its tasks are reassigned once its session expires
//!    (reassignment time), and it comes back;
//! 3. pauses a worker (SIGSTOP) past its session timeout, then resumes it: it finishes
//!    what it was running and hands stale results in;
//! 4. cuts a worker off from the ensemble (its proxy) past its session timeout, while
//!    it can still reach the sink, then restores it.
//!
//! Then every task must get a status; the verdict counts tasks submitted, completed,
//! lost (no status), recorded twice (two lines of the sink's log for one task), wrong
//! results, and the stale results the sink refused. Bounded in tasks, rounds and time.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paddock_client::Client;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::http::Endpoint;
use crate::layout::{Layout, Status, TaskBody, TaskRecord, decode};
use crate::submit::{Report, Submitter};

#[derive(Debug, clap::Args)]
pub struct ChaosOptions {
    /// Tasks to submit.
    #[arg(long, default_value_t = 400)]
    pub tasks: u64,
    /// Tasks submitted per second.
    #[arg(long, default_value_t = 20)]
    pub rate: u64,
    /// How long each task's work takes.
    #[arg(long, default_value_t = 150)]
    pub work_ms: u64,
    /// Rounds of chaos (each: a master killed, a worker killed, one paused, one cut off).
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// Session timeout of masters and workers.
    #[arg(long, default_value_t = 3000)]
    pub session_timeout_ms: u64,
    /// Where logs and data go (default: a new directory under the system's temp dir,
    /// removed after a passing run).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Also write the verdict as JSON here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// The Python worker (default: worker.py beside this crate's sources).
    #[arg(long)]
    pub python_worker: Option<PathBuf>,
}

const ROOT: &str = "/mw";
/// How long every task may take to get its status once submission and chaos are over.
const DRAIN: Duration = Duration::from_secs(90);
/// The whole run's bound.
const RUN_LIMIT: Duration = Duration::from_secs(900);

/// A child process of the run: its EVENT lines, timestamped as they arrive. Killed when
/// dropped, except `paddock up`, which gets SIGTERM so that it stops its servers.
struct Proc {
    name: String,
    child: Child,
    events: Arc<Mutex<Vec<(Instant, Value)>>>,
    graceful: bool,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.graceful {
            self.signal(libc::SIGTERM);
        }
    }
}

impl Proc {
    fn pid(&self) -> Option<i32> {
        self.child.id().and_then(|p| i32::try_from(p).ok())
    }

    fn signal(&self, signal: i32) {
        if let Some(pid) = self.pid() {
            // Our own child, by pid.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }

    async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    fn events_since(&self, t: Instant, kind: &str) -> Vec<(Instant, Value)> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(at, v)| *at >= t && v["kind"] == kind)
            .cloned()
            .collect()
    }
}

/// How to start (and start again) one process.
#[derive(Clone)]
struct Spec {
    name: String,
    program: PathBuf,
    args: Vec<String>,
}

async fn spawn(spec: &Spec, dir: &Path) -> Result<Proc, String> {
    spawn_as(spec, dir, false).await
}

/// `graceful`: stopped with SIGTERM instead of SIGKILL.
async fn spawn_as(spec: &Spec, dir: &Path, graceful: bool) -> Result<Proc, String> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{}.log", spec.name)))
        .map_err(|e| format!("log of {}: {e}", spec.name))?;
    let mut child = Command::new(&spec.program)
        .args(&spec.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(!graceful)
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start {} ({}): {e}",
                spec.name,
                spec.program.display()
            )
        })?;
    let events = Arc::new(Mutex::new(Vec::new()));
    if let Some(stdout) = child.stdout.take() {
        let (events, path) = (events.clone(), dir.join(format!("{}.out", spec.name)));
        tokio::spawn(async move {
            let mut out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok();
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(f) = out.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(f, "{line}");
                }
                if let Some(json) = line.strip_prefix("EVENT ")
                    && let Ok(v) = serde_json::from_str::<Value>(json)
                {
                    events
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((Instant::now(), v));
                }
            }
        });
    }
    Ok(Proc {
        name: spec.name.clone(),
        child,
        events,
        graceful,
    })
}

/// A TCP proxy to the ensemble that can be cut: while cut, its connections are dropped
/// and new ones closed at once, so the client behind it can reach no server.
struct Proxy {
    addr: String,
    cut: watch::Sender<bool>,
}

async fn proxy(targets: Vec<String>) -> Result<Proxy, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("proxy: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| e.to_string())?
        .to_string();
    let (cut, cut_rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut next = 0usize;
        while let Ok((inbound, _)) = listener.accept().await {
            if *cut_rx.borrow() {
                drop(inbound);
                continue;
            }
            let target = targets[next % targets.len()].clone();
            next = next.wrapping_add(1);
            let mut cut = cut_rx.clone();
            tokio::spawn(async move {
                let Ok(mut outbound) = TcpStream::connect(&target).await else {
                    return;
                };
                let mut inbound = inbound;
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = cut.wait_for(|c| *c) => {}
                }
            });
        }
    });
    Ok(Proxy { addr, cut })
}

/// Ports base..base+3, +100.., +200.., +300.. all free on 127.0.0.1 (paddock up's plan).
fn free_base_port() -> Result<u16, String> {
    let seed = (std::process::id() % 400) as u16;
    for k in 0..400u16 {
        let base = 30000 + ((seed + k) % 400) * 4;
        let free = [0u16, 100, 200, 300].iter().all(|off| {
            (0..3).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + off + i)).is_ok())
        });
        if free {
            return Ok(base);
        }
    }
    Err("no free block of ports for the ensemble".into())
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn sibling(name: &str) -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot locate mw: {e}"))?;
    let path = me.with_file_name(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found next to mw (build it: cargo build -p {})",
            path.display(),
            match name {
                "paddock" => "paddock-client",
                other => other,
            }
        ))
    }
}

/// Waits until `proc` prints a line containing `marker` (its stdout log), or fails.
async fn wait_for_line(
    dir: &Path,
    proc: &mut Proc,
    marker: &str,
    limit: Duration,
) -> Result<String, String> {
    let deadline = Instant::now() + limit;
    let out = dir.join(format!("{}.out", proc.name));
    loop {
        if let Ok(text) = std::fs::read_to_string(&out)
            && let Some(line) = text.lines().find(|l| l.contains(marker))
        {
            return Ok(line.to_string());
        }
        if let Ok(Some(status)) = proc.child.try_wait() {
            return Err(format!(
                "{} exited ({status}); see {}",
                proc.name,
                dir.display()
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} did not print {marker:?} within {limit:?}; see {}",
                proc.name,
                dir.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the run measured.
#[derive(Debug, Default)]
struct Measures {
    takeovers: Vec<Duration>,
    /// From the kill, and from the master noticing the worker gone.
    reassignments: Vec<(Duration, Duration)>,
    problems: Vec<String>,
}

pub async fn run(opts: ChaosOptions) -> Result<(), String> {
    tokio::time::timeout(RUN_LIMIT, run_bounded(opts))
        .await
        .map_err(|_| format!("the chaos run took longer than {RUN_LIMIT:?}"))?
}

/// The run: everyone started, chaos while tasks are submitted, the verdict, the judgement.
async fn run_bounded(opts: ChaosOptions) -> Result<(), String> {
    origin();
    let dir = match &opts.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("mw-chaos-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut cast = Cast::start(&opts, &dir).await?;

    // Everyone registered and a master active before the clock starts.
    let client = crate::connect(&cast.launch.connect, Duration::from_secs(10)).await?;
    let layout = Layout::new(ROOT);
    wait_until_ready(&client, &layout, &cast.masters, &dir).await?;

    // Submission, at a steady rate, alongside the chaos.
    let submitting = spawn_submitter(&client, &layout, &opts);

    let mut m = Measures::default();
    let session = Duration::from_millis(opts.session_timeout_ms);
    let rust_workers: Vec<String> = cast.worker_specs.keys().cloned().collect();
    for round in 0..opts.rounds as usize {
        cast.chaos_round(round, &client, &layout, session, &rust_workers, &mut m)
            .await?;
    }

    let mut submitter = submitting
        .await
        .map_err(|e| format!("the submitter failed: {e}"))??;
    submitter
        .wait_all(Instant::now() + DRAIN)
        .await
        .map_err(|e| format!("cannot read statuses: {e}"))?;
    let report = submitter.report();

    // The verdict.
    let recorded = count_recorded(&dir.join("results.jsonl"))?;
    let duplicates: Vec<(&String, &u32)> = recorded.iter().filter(|(_, n)| **n > 1).collect();
    let wrong = wrong_results(&client, &layout, submitter.completed.keys()).await?;
    let verdict = verdict_json(&cast, &report, duplicates.len(), wrong.len(), &m).await;
    println!("\n{}", table(&verdict));
    println!("verdict: {verdict}");
    if let Some(path) = &opts.report {
        std::fs::write(path, format!("{verdict:#}\n"))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    client.close().await;
    // Stop everyone before judging, so nothing outlives the run: the ensemble last, and
    // waited for (paddock up stops its servers on SIGTERM).
    let Cast {
        python,
        sidecar: _sidecar,
        workers,
        proxies: _proxies,
        masters,
        sink,
        mut ensemble,
        ..
    } = cast;
    drop((masters, workers, python, sink));
    ensemble.signal(libc::SIGTERM);
    let _ = tokio::time::timeout(Duration::from_secs(15), ensemble.child.wait()).await;

    judge(&opts, &dir, &report, &duplicates, &wrong, &m.problems)
}

/// What the run's processes are started with: where it writes, mw, the ensemble, the sink.
struct Launch {
    dir: PathBuf,
    mw: PathBuf,
    servers: Vec<String>,
    connect: String,
    sink_url: String,
    session_ms: String,
}

impl Launch {
    /// How to start (and start again) the master `id`.
    fn master(&self, id: &str) -> Spec {
        Spec {
            name: id.into(),
            program: self.mw.clone(),
            args: vec![
                "master".into(),
                "--servers".into(),
                self.connect.clone(),
                "--root".into(),
                ROOT.into(),
                "--id".into(),
                id.into(),
                "--session-timeout-ms".into(),
                self.session_ms.clone(),
            ],
        }
    }

    /// How to start (and start again) the Rust worker `id`, reaching the ensemble at `servers`.
    fn worker(&self, id: &str, servers: &str) -> Spec {
        Spec {
            name: id.into(),
            program: self.mw.clone(),
            args: vec![
                "worker".into(),
                "--servers".into(),
                servers.into(),
                "--root".into(),
                ROOT.into(),
                "--id".into(),
                id.into(),
                "--sink".into(),
                self.sink_url.clone(),
                "--session-timeout-ms".into(),
                self.session_ms.clone(),
            ],
        }
    }
}

/// The run's processes and proxies; dropped (so stopped) in field order, the ensemble last.
struct Cast {
    python: Proc,
    sidecar: Proc,
    workers: BTreeMap<String, Proc>,
    worker_specs: BTreeMap<String, Spec>,
    proxies: BTreeMap<String, Proxy>,
    masters: BTreeMap<String, Proc>,
    sink_endpoint: Endpoint,
    sink: Proc,
    launch: Launch,
    ensemble: Proc,
}

impl Cast {
    /// Starts the ensemble, the sink, the masters, the Rust workers and the Python worker.
    async fn start(opts: &ChaosOptions, dir: &Path) -> Result<Cast, String> {
        let mw = std::env::current_exe().map_err(|e| e.to_string())?;
        let python_worker = opts
            .python_worker
            .clone()
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("worker.py"));
        let (ensemble, servers) = start_ensemble(dir).await?;
        let connect = servers.join(",");
        println!("ensemble up: {connect}; logs in {}", dir.display());
        let (sink, sink_url) = start_sink(dir, &mw, &connect).await?;
        let sink_endpoint = Endpoint::parse(&sink_url)?;
        let launch = Launch {
            dir: dir.to_path_buf(),
            mw,
            servers,
            connect,
            sink_url,
            session_ms: opts.session_timeout_ms.to_string(),
        };
        let masters = start_masters(&launch).await?;
        let (mut proxies, worker_specs, workers) = start_workers(&launch).await?;
        let (py_proxy, sidecar, python) = start_python(&launch, &python_worker).await?;
        proxies.insert("py1".into(), py_proxy);
        Ok(Cast {
            python,
            sidecar,
            workers,
            worker_specs,
            proxies,
            masters,
            sink_endpoint,
            sink,
            launch,
            ensemble,
        })
    }

    /// One round of chaos: the active master killed, a worker killed, one paused, one cut off.
    async fn chaos_round(
        &mut self,
        round: usize,
        client: &Client,
        layout: &Layout,
        session: Duration,
        rust_workers: &[String],
        m: &mut Measures,
    ) -> Result<(), String> {
        tokio::time::sleep(Duration::from_secs(2)).await;
        // 1. The active master dies.
        self.kill_active_master(round, client, layout, m).await?;
        // 2. A worker dies, and comes back.
        let victim = rust_workers[round % rust_workers.len()].clone();
        self.kill_worker(round, &victim, session, m).await?;
        // 3. A worker is paused past its session timeout, then resumes.
        let paused = rust_workers[(round + 1) % rust_workers.len()].clone();
        self.pause_worker(round, &paused, session).await;
        // 4. A worker is cut off from the ensemble (not from the sink), then restored.
        let cut = if round.is_multiple_of(2) {
            "py1".to_string()
        } else {
            rust_workers[(round + 2) % rust_workers.len()].clone()
        };
        self.cut_off(round, &cut, session).await;
        Ok(())
    }

    /// Kills the active master, times the other's takeover, and starts the killed one again.
    async fn kill_active_master(
        &mut self,
        round: usize,
        client: &Client,
        layout: &Layout,
        m: &mut Measures,
    ) -> Result<(), String> {
        let active = active_master(client, layout).await;
        match active.and_then(|id| self.masters.get_mut(&id).map(|p| (id, p))) {
            Some((id, proc)) => {
                let t = Instant::now();
                proc.kill().await;
                println!("round {round}: killed the active master {id}");
                let others: Vec<&Proc> = self.masters.values().filter(|p| p.name != id).collect();
                let took =
                    wait_event(&others, t, "active", |_| true, Duration::from_secs(30)).await;
                match took {
                    Some(d) => m.takeovers.push(d),
                    None => m
                        .problems
                        .push(format!("round {round}: no master took over from {id}")),
                }
                let spec = self.launch.master(&id);
                self.masters
                    .insert(id, spawn(&spec, &self.launch.dir).await?);
            }
            None => m
                .problems
                .push(format!("round {round}: no active master to kill")),
        }
        Ok(())
    }

    /// Kills the worker `victim`, times the reassignment of its tasks, and starts it again.
    async fn kill_worker(
        &mut self,
        round: usize,
        victim: &str,
        session: Duration,
        m: &mut Measures,
    ) -> Result<(), String> {
        if let Some(proc) = self.workers.get_mut(victim) {
            let t = Instant::now();
            proc.kill().await;
            println!("round {round}: killed worker {victim}");
            let all: Vec<&Proc> = self.masters.values().collect();
            let gone = wait_event(
                &all,
                t,
                "worker-gone",
                |v| v["worker"] == victim,
                session * 3,
            )
            .await;
            let reassigned =
                wait_event(&all, t, "reassigned", |v| v["from"] == victim, session * 3).await;
            match (reassigned, gone) {
                (Some(r), Some(g)) => m.reassignments.push((r, r.saturating_sub(g))),
                (None, Some(_)) => println!("round {round}: {victim} had no task to reassign"),
                _ => m
                    .problems
                    .push(format!("round {round}: the masters never saw {victim} go")),
            }
            let again = spawn(&self.worker_specs[victim], &self.launch.dir).await?;
            self.workers.insert(victim.to_string(), again);
        }
        Ok(())
    }

    /// Pauses the worker `paused` (SIGSTOP) past its session timeout, then resumes it.
    async fn pause_worker(&self, round: usize, paused: &str, session: Duration) {
        if let Some(proc) = self.workers.get(paused) {
            proc.signal(libc::SIGSTOP);
            println!("round {round}: paused worker {paused}");
            tokio::time::sleep(session + Duration::from_secs(2)).await;
            proc.signal(libc::SIGCONT);
            println!("round {round}: resumed worker {paused}");
        }
    }

    /// Cuts the worker `cut` off from the ensemble past its session timeout, then restores it.
    async fn cut_off(&self, round: usize, cut: &str, session: Duration) {
        if let Some(p) = self.proxies.get(cut) {
            let _ = p.cut.send(true);
            println!("round {round}: cut worker {cut} off from the ensemble");
            tokio::time::sleep(session + Duration::from_secs(2)).await;
            let _ = p.cut.send(false);
            println!("round {round}: reconnected worker {cut}");
        }
    }
}

/// Starts the 3-server ensemble (`paddock up`), waits until it is up; returns it and its servers.
async fn start_ensemble(dir: &Path) -> Result<(Proc, Vec<String>), String> {
    let base = free_base_port()?;
    let mut ensemble = spawn_as(
        &Spec {
            name: "ensemble".into(),
            program: sibling("paddock")?,
            args: vec![
                "up".into(),
                "--servers".into(),
                "3".into(),
                "--base-port".into(),
                base.to_string(),
                "--dir".into(),
                dir.join("ensemble").display().to_string(),
            ],
        },
        dir,
        true,
    )
    .await?;
    wait_for_line(
        dir,
        &mut ensemble,
        "ensemble of 3 up",
        Duration::from_secs(60),
    )
    .await?;
    let servers: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{}", base + i)).collect();
    Ok((ensemble, servers))
}

/// Starts the sink and waits until it listens; returns it and its URL.
async fn start_sink(dir: &Path, mw: &Path, connect: &str) -> Result<(Proc, String), String> {
    let mut sink = spawn(
        &Spec {
            name: "sink".into(),
            program: mw.to_path_buf(),
            args: vec![
                "sink".into(),
                "--servers".into(),
                connect.to_string(),
                "--root".into(),
                ROOT.into(),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--log".into(),
                dir.join("results.jsonl").display().to_string(),
            ],
        },
        dir,
    )
    .await?;
    let line = wait_for_line(dir, &mut sink, "sink listening on", Duration::from_secs(30)).await?;
    let sink_url = line.rsplit(' ').next().unwrap_or_default().to_string();
    Ok((sink, sink_url))
}

/// Starts the masters m1 and m2.
async fn start_masters(launch: &Launch) -> Result<BTreeMap<String, Proc>, String> {
    let mut masters: BTreeMap<String, Proc> = BTreeMap::new();
    for id in ["m1", "m2"] {
        masters.insert(id.into(), spawn(&launch.master(id), &launch.dir).await?);
    }
    Ok(masters)
}

/// The Rust workers' proxies, how to start each worker, and the workers, by id.
type RustWorkers = (
    BTreeMap<String, Proxy>,
    BTreeMap<String, Spec>,
    BTreeMap<String, Proc>,
);

/// Starts the Rust workers w1..w4, each behind a proxy of its own.
async fn start_workers(launch: &Launch) -> Result<RustWorkers, String> {
    let mut proxies: BTreeMap<String, Proxy> = BTreeMap::new();
    let mut worker_specs: BTreeMap<String, Spec> = BTreeMap::new();
    for id in ["w1", "w2", "w3", "w4"] {
        let p = proxy(launch.servers.clone()).await?;
        worker_specs.insert(id.into(), launch.worker(id, &p.addr));
        proxies.insert(id.into(), p);
    }
    let mut workers: BTreeMap<String, Proc> = BTreeMap::new();
    for (id, spec) in &worker_specs {
        workers.insert(id.clone(), spawn(spec, &launch.dir).await?);
    }
    Ok((proxies, worker_specs, workers))
}

/// Starts the Python worker py1 and its sidecar behind a proxy; returns proxy, sidecar and py1.
async fn start_python(
    launch: &Launch,
    python_worker: &Path,
) -> Result<(Proxy, Proc, Proc), String> {
    let py_proxy = proxy(launch.servers.clone()).await?;
    let sidecar_port = free_port()?;
    let sidecar = spawn(
        &Spec {
            name: "py1-sidecar".into(),
            program: sibling("paddock-sidecar")?,
            args: vec![
                "--servers".into(),
                py_proxy.addr.clone(),
                "--root".into(),
                ROOT.into(),
                "--groups-root".into(),
                ROOT.into(),
                "--config-root".into(),
                ROOT.into(),
                "--listen".into(),
                format!("127.0.0.1:{sidecar_port}"),
                "--session-timeout".into(),
                format!("{}ms", launch.session_ms),
            ],
        },
        &launch.dir,
    )
    .await?;
    let python = spawn(
        &Spec {
            name: "py1".into(),
            program: "python3".into(),
            args: vec![
                python_worker.display().to_string(),
                "--sidecar".into(),
                format!("http://127.0.0.1:{sidecar_port}"),
                "--sink".into(),
                launch.sink_url.clone(),
                "--id".into(),
                "py1".into(),
            ],
        },
        &launch.dir,
    )
    .await?;
    Ok((py_proxy, sidecar, python))
}

/// Waits (up to 60 s) until all 5 workers registered and a master is active.
async fn wait_until_ready(
    client: &Client,
    layout: &Layout,
    masters: &BTreeMap<String, Proc>,
    dir: &Path,
) -> Result<(), String> {
    let ready_by = Instant::now() + Duration::from_secs(60);
    loop {
        let registered = client
            .get_children(&layout.workers())
            .await
            .map(|w| w.len())
            .unwrap_or(0);
        let active = masters
            .values()
            .any(|m| !m.events_since(origin(), "active").is_empty());
        if registered == 5 && active {
            return Ok(());
        }
        if Instant::now() > ready_by {
            return Err(format!(
                "within 60 s: {registered} of 5 workers registered, a master active: {active}; logs in {}",
                dir.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Submits the run's tasks at a steady rate, in a task of its own; it returns the submitter.
fn spawn_submitter(
    client: &Client,
    layout: &Layout,
    opts: &ChaosOptions,
) -> tokio::task::JoinHandle<Result<Submitter, String>> {
    let (client, layout, tasks, rate, work_ms) = (
        client.clone(),
        layout.clone(),
        opts.tasks,
        opts.rate.max(1),
        opts.work_ms,
    );
    tokio::spawn(async move {
        let mut submitter = Submitter::new(client, layout);
        let every = Duration::from_secs_f64(1.0 / rate as f64);
        let mut next = Instant::now();
        for n in 0..tasks {
            let body = TaskBody {
                input: 100_000 + n,
                work_ms,
            };
            if let Err(e) = submitter.submit(body).await {
                return Err(format!("cannot submit task {n}: {e}"));
            }
            next += every;
            tokio::time::sleep_until(next.into()).await;
        }
        Ok(submitter)
    })
}

/// The verdict as JSON: what was counted (also by the sink and workers), measured and wrong.
async fn verdict_json(
    cast: &Cast,
    report: &Report,
    duplicates: usize,
    wrong: usize,
    m: &Measures,
) -> Value {
    let sink_counts = cast
        .sink_endpoint
        .call("GET", "/v1/results", None, Duration::from_secs(10))
        .await
        .map(|(_, v)| v)
        .unwrap_or(Value::Null);
    let handed: usize = cast
        .workers
        .values()
        .chain(std::iter::once(&cast.python))
        .map(|w| w.events_since(origin(), "handed-in").len())
        .sum();
    json!({
        "submitted": report.submitted,
        "completed": report.completed,
        "lost": report.missing.len(),
        "recordedTwice": duplicates,
        "wrongResults": wrong,
        "refusedStale": sink_counts["refusedStale"],
        "refusedDuplicate": sink_counts["refusedDuplicate"],
        "handedIn": handed,
        "takeoverMs": m.takeovers.iter().map(|d| d.as_millis() as u64).collect::<Vec<_>>(),
        "reassignmentMs": m.reassignments.iter().map(|(k, _)| k.as_millis() as u64).collect::<Vec<_>>(),
        "reassignmentAfterGoneMs": m.reassignments.iter().map(|(_, g)| g.as_millis() as u64).collect::<Vec<_>>(),
        "submitToStatusMs": {
            "median": report.percentile(0.5).as_millis() as u64,
            "p99": report.percentile(0.99).as_millis() as u64,
            "max": report.percentile(1.0).as_millis() as u64,
        },
        "problems": m.problems,
    })
}

/// Fails the run on lost, twice-recorded or wrong tasks or problems; a pass removes its own dir.
fn judge(
    opts: &ChaosOptions,
    dir: &Path,
    report: &Report,
    duplicates: &[(&String, &u32)],
    wrong: &[String],
    problems: &[String],
) -> Result<(), String> {
    let mut failures = Vec::new();
    if !report.missing.is_empty() {
        failures.push(format!(
            "{} tasks lost (no status): {:?}",
            report.missing.len(),
            &report.missing[..report.missing.len().min(5)]
        ));
    }
    if !duplicates.is_empty() {
        failures.push(format!(
            "{} tasks recorded more than once: {duplicates:?}",
            duplicates.len()
        ));
    }
    if !wrong.is_empty() {
        failures.push(format!("{} wrong results: {wrong:?}", wrong.len()));
    }
    failures.extend(problems.iter().cloned());
    if failures.is_empty() {
        if opts.dir.is_none() {
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(())
    } else {
        Err(format!(
            "the chaos run failed (logs in {}):\n{}",
            dir.display(),
            failures.join("\n")
        ))
    }
}

/// When the run started: every event is after it.
fn origin() -> Instant {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// How long after `t` one of `procs` printed an event of `kind` that `matches`.
async fn wait_event(
    procs: &[&Proc],
    t: Instant,
    kind: &str,
    matches: impl Fn(&Value) -> bool,
    limit: Duration,
) -> Option<Duration> {
    let deadline = Instant::now() + limit;
    loop {
        let first = procs
            .iter()
            .flat_map(|p| p.events_since(t, kind))
            .filter(|(_, v)| matches(v))
            .map(|(at, _)| at)
            .min();
        if let Some(at) = first {
            return Some(at - t);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The id the leading master campaigned with.
async fn active_master(client: &Client, layout: &Layout) -> Option<String> {
    let election = paddock_client::recipe::Election::new(client, &layout.master()).ok()?;
    let leader = election.leader().await.ok()??;
    String::from_utf8(leader.data).ok()
}

/// Recorded results per task, from the sink's log.
fn count_recorded(log: &Path) -> Result<HashMap<String, u32>, String> {
    let text = std::fs::read_to_string(log).map_err(|e| format!("{}: {e}", log.display()))?;
    crate::sink::count_log(&text)
}

/// Tasks whose status does not hold the task's own result.
async fn wrong_results<'a>(
    client: &Client,
    layout: &Layout,
    tasks: impl Iterator<Item = &'a String>,
) -> Result<Vec<String>, String> {
    let mut wrong = Vec::new();
    for task in tasks {
        let (status, _) = client
            .get_data(&layout.task_status(task))
            .await
            .map_err(|e| format!("{task}: {e}"))?;
        let (record, _) = client
            .get_data(&layout.task(task))
            .await
            .map_err(|e| format!("{task}: {e}"))?;
        let status: Status = decode(task, &status)?;
        let record: TaskRecord = decode(task, &record)?;
        if status.result != record.body.result() {
            wrong.push(task.clone());
        }
    }
    Ok(wrong)
}

fn table(v: &Value) -> String {
    let list = |k: &str| {
        v[k].as_array()
            .map(|a| {
                a.iter()
                    .map(|x| format!("{x} ms"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    format!(
        "| submitted | completed | lost | recorded twice | wrong results | stale results refused | master takeover | reassignment after kill (after noticed) | submit → status median / p99 |\n\
         |---|---|---|---|---|---|---|---|---|\n\
         | {} | {} | {} | {} | {} | {} | {} | {} ({}) | {} / {} ms |",
        v["submitted"],
        v["completed"],
        v["lost"],
        v["recordedTwice"],
        v["wrongResults"],
        v["refusedStale"],
        list("takeoverMs"),
        list("reassignmentMs"),
        list("reassignmentAfterGoneMs"),
        v["submitToStatusMs"]["median"],
        v["submitToStatusMs"]["p99"],
    )
}
