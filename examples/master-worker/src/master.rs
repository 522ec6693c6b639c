//! The master: masters campaign in `/master`; the one that leads assigns tasks to live
//! workers, and the others wait as backups. A backup that takes over rebuilds the state
//! of assignments from the tree alone (the seeds' recovery): every task's record says
//! whether it waits, is assigned (to whom) or is done, so nothing else needs handing
//! over. Tasks assigned to a worker that is gone (its ephemeral `/workers` node vanished
//! with its session) are assigned again, under a new token.
//!
//! Every write of a master is one multi that starts with a check of its own candidacy
//! node: a master that is no longer the leader cannot assign anything, even if its
//! session were still alive.
//!
//! Progress is printed on stdout as `EVENT {json}` lines (active, worker-gone,
//! reassigned), which the chaos run timestamps to measure takeover and reassignment.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use paddock_client::recipe::{Candidacy, Election};
use paddock_client::{Client, CreateMode, Error, ErrorCode, Op};
use serde_json::json;

use crate::layout::{
    Assignment, Layout, TaskBody, TaskRecord, TaskState, assignment_name, decode, encode,
};

pub struct MasterOptions {
    pub servers: String,
    pub layout: Layout,
    pub id: String,
    pub session_timeout: Duration,
}

/// Prints one progress line for the chaos run (and for people watching).
pub fn event(kind: &str, mut fields: serde_json::Value) {
    if let Some(map) = fields.as_object_mut() {
        map.insert("kind".into(), json!(kind));
    }
    println!("EVENT {fields}");
}

/// Campaigns (again on a new session whenever one is lost) until SIGTERM or Ctrl-C.
pub async fn run(opts: MasterOptions) -> Result<(), String> {
    let stop = crate::stop_signal();
    tokio::pin!(stop);
    loop {
        let session = serve_one_session(&opts);
        tokio::select! {
            ended = session => {
                match ended {
                    Ok(()) => tracing::warn!(master = %opts.id, "the session is over; campaigning again on a new one"),
                    Err(e) => tracing::warn!(master = %opts.id, error = %e, "campaign failed; trying again"),
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            () = &mut stop => return Ok(()),
        }
    }
}

/// One session: campaign, lead whenever elected, until the candidacy is lost.
async fn serve_one_session(opts: &MasterOptions) -> Result<(), String> {
    let client = crate::connect(&opts.servers, opts.session_timeout).await?;
    crate::ensure_dirs(&client, &opts.layout).await?;
    let election = Election::new(&client, &opts.layout.master()).map_err(|e| e.to_string())?;
    let mut candidacy = election
        .campaign(opts.id.as_bytes())
        .await
        .map_err(|e| format!("cannot campaign: {e}"))?;
    event("backup", json!({"master": opts.id}));
    let outcome = loop {
        let token = match candidacy.leadership().await {
            Ok(token) => token,
            Err(_) => break Ok(()),
        };
        match lead(&client, &opts.layout, &opts.id, &mut candidacy, token).await {
            Ok(()) => {}
            Err(e) if e.is_session_over() => break Ok(()),
            Err(e) => {
                tracing::warn!(master = %opts.id, error = %e, "leading failed; starting over")
            }
        }
        // Suspended (disconnected), or a failure: stop acting as master until the
        // election says we lead again.
        event("paused", json!({"master": opts.id, "token": token}));
        if candidacy.role().is_terminal() {
            break Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    client.close().await;
    outcome
}

/// What the master knows of a task.
#[derive(Debug, Clone)]
enum Known {
    Submitted {
        body: TaskBody,
        version: i32,
    },
    Assigned {
        body: TaskBody,
        version: i32,
        worker: String,
    },
    Done,
    /// Not a record of ours: left alone.
    Foreign,
}

/// The active master's state: what it knows of every task, rebuilt from the tree when it
/// takes over.
struct Assigner<'a> {
    client: &'a Client,
    layout: &'a Layout,
    id: &'a str,
    token: i64,
    /// Our candidacy node: every write checks that it still exists.
    node: String,
    known: HashMap<String, Known>,
    inboxes: HashSet<String>,
    next: usize,
    /// The workers live at the last step (None before the first).
    last_live: Option<BTreeSet<String>>,
}

/// Leads until the role is no longer Leader (Ok) or a request fails.
async fn lead(
    client: &Client,
    layout: &Layout,
    id: &str,
    candidacy: &mut Candidacy,
    token: i64,
) -> Result<(), Error> {
    let started = Instant::now();
    let mut roles = candidacy.roles();
    let mut assigner = Assigner {
        client,
        layout,
        id,
        token,
        node: candidacy.node(),
        known: HashMap::new(),
        inboxes: HashSet::new(),
        next: 0,
        last_live: None,
    };
    let mut announced = false;
    loop {
        if !roles.borrow_and_update().is_leader() {
            return Ok(());
        }
        let (workers, _, mut workers_changed) =
            client.get_children_watch(&layout.workers()).await?;
        let (tasks, _, mut tasks_changed) = client.get_children_watch(&layout.tasks()).await?;
        match assigner.step(workers, tasks).await {
            Ok(()) => {}
            Err(e) if e.code() == ErrorCode::NoNode && e.path() == Some(assigner.node.as_str()) => {
                // Our candidacy is gone: we are no longer the master.
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        if !announced {
            announced = true;
            let counts = assigner.counts();
            event(
                "active",
                json!({
                    "master": id,
                    "token": token,
                    "recoveredMs": started.elapsed().as_millis() as u64,
                    "submitted": counts.0, "assigned": counts.1, "done": counts.2,
                }),
            );
        }
        tokio::select! {
            _ = workers_changed.next() => {}
            _ = tasks_changed.next() => {}
            changed = roles.changed() => if changed.is_err() { return Ok(()) },
            // A safety net: a missed change costs at most this.
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        // Many changes come in bursts (a client submitting, a worker leaving with its
        // tasks): take them in one step.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Assigner<'_> {
    fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for k in self.known.values() {
            match k {
                Known::Submitted { .. } => c.0 += 1,
                Known::Assigned { .. } => c.1 += 1,
                Known::Done => c.2 += 1,
                Known::Foreign => {}
            }
        }
        c
    }

    /// Learns the tasks it has not seen, then assigns waiting tasks and those of workers
    /// that are gone.
    async fn step(&mut self, workers: Vec<String>, tasks: Vec<String>) -> Result<(), Error> {
        let live: BTreeSet<String> = workers.into_iter().collect();
        // A master that takes over reads every task: many at once.
        let unknown: Vec<String> = tasks
            .iter()
            .filter(|t| !self.known.contains_key(*t))
            .cloned()
            .collect();
        for chunk in unknown.chunks(READS_AT_ONCE) {
            let mut reads = tokio::task::JoinSet::new();
            for task in chunk {
                let (client, layout, task) =
                    (self.client.clone(), self.layout.clone(), task.clone());
                reads.spawn(async move {
                    let known = read(&client, &layout, &task).await;
                    (task, known)
                });
            }
            while let Some(done) = reads.join_next().await {
                let Ok((task, known)) = done else { continue };
                self.known.insert(task, known?);
            }
        }
        let present: HashSet<&String> = tasks.iter().collect();
        self.known.retain(|task, _| present.contains(task));
        if let Some(before) = &self.last_live {
            for worker in before.difference(&live) {
                event("worker-gone", json!({"worker": worker, "master": self.id}));
            }
        }
        self.last_live = Some(live.clone());
        let mut pending: Vec<String> = self
            .known
            .iter()
            .filter(|(_, k)| match k {
                Known::Submitted { .. } => true,
                Known::Assigned { worker, .. } => !live.contains(worker),
                Known::Done | Known::Foreign => false,
            })
            .map(|(t, _)| t.clone())
            .collect();
        pending.sort();
        if live.is_empty() {
            return Ok(());
        }
        let live: Vec<String> = live.into_iter().collect();
        for task in pending {
            let Some(known) = self.known.get(&task).cloned() else {
                continue;
            };
            let to = live[self.next % live.len()].clone();
            self.next = self.next.wrapping_add(1);
            self.assign(&task, known, &to).await?;
        }
        Ok(())
    }
}

/// Tasks read at once when a master learns many (a takeover).
const READS_AT_ONCE: usize = 64;

/// What a task's record says.
async fn read(client: &Client, layout: &Layout, task: &str) -> Result<Known, Error> {
    let path = layout.task(task);
    let (data, stat) = match client.get_data(&path).await {
        Ok(found) => found,
        Err(e) if e.code() == ErrorCode::NoNode => return Ok(Known::Foreign),
        Err(e) => return Err(e),
    };
    Ok(match decode::<TaskRecord>(&path, &data) {
        Ok(TaskRecord {
            body,
            state: TaskState::Submitted,
        }) => Known::Submitted {
            body,
            version: stat.version,
        },
        Ok(TaskRecord {
            body,
            state: TaskState::Assigned { worker, .. },
        }) => Known::Assigned {
            body,
            version: stat.version,
            worker,
        },
        Ok(TaskRecord {
            state: TaskState::Done { .. },
            ..
        }) => Known::Done,
        Err(e) => {
            tracing::warn!(error = %e, "left alone");
            Known::Foreign
        }
    })
}

impl Assigner<'_> {
    /// Assigns `task` to `to` under a new token (the task node's next version).
    async fn assign(&mut self, task: &str, known: Known, to: &str) -> Result<(), Error> {
        let (body, version, from) = match known {
            Known::Submitted { body, version } => (body, version, None),
            Known::Assigned {
                body,
                version,
                worker,
            } => (body, version, Some(worker)),
            Known::Done | Known::Foreign => return Ok(()),
        };
        let inbox = self.layout.inbox(to);
        if !self.inboxes.contains(&inbox) {
            match self
                .client
                .create(&inbox, b"", CreateMode::Persistent)
                .await
            {
                Ok(_) => {}
                Err(e) if e.code() == ErrorCode::NodeExists => {}
                Err(e) => return Err(e),
            }
            self.inboxes.insert(inbox);
        }
        let token = version + 1;
        let record = TaskRecord {
            body,
            state: TaskState::Assigned {
                worker: to.to_string(),
                master: self.token,
            },
        };
        let assignment = Assignment {
            task: task.to_string(),
            token,
            master: self.token,
            body,
        };
        let ops = [
            Op::check(&self.node, -1),
            Op::set_data(self.layout.task(task), encode(&record), Some(version)),
            Op::create(
                self.layout.assignment(to, &assignment_name(task, token)),
                encode(&assignment),
                CreateMode::Persistent,
            ),
        ];
        match self.client.multi(&ops).await {
            Ok(_) => {
                self.known.insert(
                    task.to_string(),
                    Known::Assigned {
                        body,
                        version: token,
                        worker: to.to_string(),
                    },
                );
                if let Some(from) = from {
                    event(
                        "reassigned",
                        json!({"task": task, "from": from, "to": to, "token": token}),
                    );
                    // The old assignment is void (its token is stale); tidy it away so a
                    // worker that comes back under the same name does not run it again.
                    let old = self
                        .layout
                        .assignment(&from, &assignment_name(task, version));
                    if let Err(e) = self.client.delete(&old, None).await
                        && e.code() != ErrorCode::NoNode
                    {
                        tracing::debug!(path = %old, error = %e, "old assignment not deleted");
                    }
                }
                Ok(())
            }
            Err(Error::MultiFailed { index: 0, .. }) => Err(Error::Server {
                code: ErrorCode::NoNode,
                path: Some(self.node.clone()),
            }),
            // The task moved on (the sink recorded it, or another master): read it again.
            Err(e) if e.code() == ErrorCode::BadVersion || e.is_connection_loss() => {
                self.known.remove(task);
                Ok(())
            }
            // Its inbox vanished (a worker tidied it away): create it again next time.
            Err(e) if e.code() == ErrorCode::NoNode => {
                self.inboxes.remove(&self.layout.inbox(to));
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}
