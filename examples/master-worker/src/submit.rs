//! The client side: submit tasks (`/tasks/task-<submitter>-<n>-<seq>`,
//! persistent-sequential) and wait for their status (`/status/<task>`), as the seeds'
//! client does.
//!
//! A create whose reply is lost may or may not have happened; a sequential name cannot
//! be guessed, so every submission carries a name of its own before the sequence number
//! (`task-<submitter>-<n>-<seq>`, Curator's "protected" idea) and is looked up after a
//! connection loss instead of being created twice.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use paddock_client::{Client, CreateMode, Error};

use crate::layout::{Layout, TaskBody, TaskRecord, TaskState, encode};

const POLL_EVERY: Duration = Duration::from_millis(100);

pub struct Submitter {
    client: Client,
    layout: Layout,
    me: String,
    next: u64,
    /// When statuses were last looked for: submitting looks every so often too, so that
    /// a task's time to status is not counted to the end of the submission.
    polled: Instant,
    /// Task name → when it was submitted.
    pub submitted: BTreeMap<String, Instant>,
    /// Task name → how long until its status appeared.
    pub completed: HashMap<String, Duration>,
}

/// What came of a batch of tasks.
#[derive(Debug, Default)]
pub struct Report {
    pub submitted: usize,
    pub completed: usize,
    pub missing: Vec<String>,
    /// Submit-to-status times, sorted.
    pub latencies: Vec<Duration>,
}

impl Report {
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[i.min(self.latencies.len() - 1)]
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "submitted": self.submitted,
            "completed": self.completed,
            "lost": self.missing.len(),
            "missing": self.missing.iter().take(20).collect::<Vec<_>>(),
            "submitToStatusMs": {
                "median": self.percentile(0.5).as_millis() as u64,
                "p99": self.percentile(0.99).as_millis() as u64,
                "max": self.percentile(1.0).as_millis() as u64,
            },
        })
    }

    pub fn summary(&self) -> String {
        format!(
            "{} submitted, {} completed, {} without a status; submit to status: median {} ms, p99 {} ms, max {} ms",
            self.submitted,
            self.completed,
            self.missing.len(),
            self.percentile(0.5).as_millis(),
            self.percentile(0.99).as_millis(),
            self.percentile(1.0).as_millis(),
        )
    }
}

impl Submitter {
    pub fn new(client: Client, layout: Layout) -> Submitter {
        let me = format!(
            "c{:x}{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        Submitter {
            client,
            layout,
            me,
            next: 0,
            polled: Instant::now(),
            submitted: BTreeMap::new(),
            completed: HashMap::new(),
        }
    }

    /// Submits one task; its name.
    pub async fn submit(&mut self, body: TaskBody) -> Result<String, Error> {
        let prefix = format!("task-{}-{:06}-", self.me, self.next);
        self.next += 1;
        let record = encode(&TaskRecord {
            body,
            state: TaskState::Submitted,
        });
        loop {
            match self
                .client
                .create(
                    &self.layout.task(&prefix),
                    &record,
                    CreateMode::PersistentSequential,
                )
                .await
            {
                Ok((path, _)) => {
                    let name = path.rsplit('/').next().unwrap_or_default().to_string();
                    self.submitted.insert(name.clone(), Instant::now());
                    if self.polled.elapsed() >= POLL_EVERY {
                        // Best effort: the wait at the end polls until every status.
                        let _ = self.poll().await;
                    }
                    return Ok(name);
                }
                Err(e) if e.is_connection_loss() => {
                    self.client.wait_connected().await?;
                    let children = self.client.get_children(&self.layout.tasks()).await?;
                    if let Some(name) = children.into_iter().find(|c| c.starts_with(&prefix)) {
                        self.submitted.insert(name.clone(), Instant::now());
                        return Ok(name);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Notes the statuses that appeared; how many tasks still have none.
    pub async fn poll(&mut self) -> Result<usize, Error> {
        self.polled = Instant::now();
        let statuses = self.client.get_children(&self.layout.status()).await?;
        let now = Instant::now();
        for name in statuses {
            if let Some(at) = self.submitted.get(&name)
                && !self.completed.contains_key(&name)
            {
                self.completed.insert(name, now - *at);
            }
        }
        Ok(self.submitted.len() - self.completed.len())
    }

    /// Polls until every task has a status, or `deadline`.
    pub async fn wait_all(&mut self, deadline: Instant) -> Result<(), Error> {
        loop {
            match self.poll().await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.is_connection_loss() => {}
                Err(e) => return Err(e),
            }
            if Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    pub fn report(&self) -> Report {
        let mut latencies: Vec<Duration> = self.completed.values().copied().collect();
        latencies.sort();
        Report {
            submitted: self.submitted.len(),
            completed: self.completed.len(),
            missing: self
                .submitted
                .keys()
                .filter(|t| !self.completed.contains_key(*t))
                .cloned()
                .collect(),
            latencies,
        }
    }
}

/// What `mw submit` submits.
pub struct Batch {
    pub count: u64,
    pub work_ms: u64,
    /// Tasks per second; 0 for no pacing.
    pub rate: u64,
}

/// `mw submit`: a batch of tasks, then wait for all of them.
pub async fn submit_and_wait(
    servers: &str,
    layout: &Layout,
    batch: Batch,
    timeout: Duration,
) -> Result<Report, String> {
    let client = crate::connect(servers, Duration::from_secs(10)).await?;
    crate::ensure_dirs(&client, layout).await?;
    let mut submitter = Submitter::new(client.clone(), layout.clone());
    let every = (batch.rate > 0).then(|| Duration::from_secs_f64(1.0 / batch.rate as f64));
    let mut next = Instant::now();
    for input in 0..batch.count {
        submitter
            .submit(TaskBody {
                input: 1000 + input,
                work_ms: batch.work_ms,
            })
            .await
            .map_err(|e| format!("cannot submit: {e}"))?;
        if let Some(every) = every {
            next += every;
            tokio::time::sleep_until(next.into()).await;
        }
    }
    submitter
        .wait_all(Instant::now() + timeout)
        .await
        .map_err(|e| format!("cannot read statuses: {e}"))?;
    client.close().await;
    Ok(submitter.report())
}

/// `mw status`: the active master (the id it campaigned with), its backups, the
/// registered workers, and how many tasks there are and how many have a status.
pub async fn status(client: &Client, layout: &Layout) -> Result<serde_json::Value, String> {
    let election = paddock_client::recipe::Election::new(client, &layout.master())
        .map_err(|e| e.to_string())?;
    let zk = |e: Error| e.to_string();
    let leader = election.leader().await.map_err(zk)?;
    let candidates = election.candidates().await.map_err(zk)?;
    let children = |path: String| async move {
        match client.get_children(&path).await {
            Ok(c) => Ok(c),
            Err(e) if e.code() == paddock_client::ErrorCode::NoNode => Ok(Vec::new()),
            Err(e) => Err(e.to_string()),
        }
    };
    let mut workers = children(layout.workers()).await?;
    workers.sort();
    let tasks = children(layout.tasks()).await?.len();
    let done = children(layout.status()).await?.len();
    Ok(serde_json::json!({
        "master": leader.map(|l| String::from_utf8_lossy(&l.data).into_owned()),
        "backups": candidates.len().saturating_sub(1),
        "workers": workers,
        "tasks": tasks,
        "done": done,
    }))
}
