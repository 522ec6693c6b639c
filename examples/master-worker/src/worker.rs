//! A worker: registers itself as an ephemeral member of `/workers`, watches its inbox
//! `/assign/<id>`, runs each assignment and hands the result, with the assignment's
//! token, to the sink; then deletes the assignment.
//!
//! A worker cannot know that it lost an assignment: while it is paused or cut off from
//! the ensemble its session may expire and the master give the task to someone else. It
//! goes on and hands its result in anyway; the sink refuses it (stale token). After a
//! session is lost the worker registers again on a new one; what it was running keeps
//! running.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paddock_client::recipe::{Group, MemberState};
use paddock_client::{Client, CreateMode, ErrorCode};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::http::Endpoint;
use crate::layout::{Assignment, Layout, TaskResult, decode};
use crate::master::event;

pub struct WorkerOptions {
    pub servers: String,
    pub layout: Layout,
    pub id: String,
    pub sink: String,
    pub parallel: usize,
    pub session_timeout: Duration,
}

/// What the worker is doing, across sessions.
#[derive(Default)]
struct Progress {
    /// Assignment nodes being run.
    running: HashSet<String>,
    /// Assignment nodes run to the end (their node may still need deleting).
    finished: HashSet<String>,
}

struct Shared {
    layout: Layout,
    id: String,
    sink: Endpoint,
    slots: Semaphore,
    progress: Mutex<Progress>,
}

pub async fn run(opts: WorkerOptions) -> Result<(), String> {
    let shared = Arc::new(Shared {
        layout: opts.layout.clone(),
        id: opts.id.clone(),
        sink: Endpoint::parse(&opts.sink).map_err(|e| format!("--sink {e}"))?,
        slots: Semaphore::new(opts.parallel),
        progress: Mutex::new(Progress::default()),
    });
    let stop = crate::stop_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            ended = serve_one_session(&opts, &shared) => {
                if let Err(e) = ended {
                    tracing::warn!(worker = %opts.id, error = %e, "session failed; registering again");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            () = &mut stop => return Ok(()),
        }
    }
}

/// One session: register, take assignments until the membership is lost.
async fn serve_one_session(opts: &WorkerOptions, shared: &Arc<Shared>) -> Result<(), String> {
    let client = crate::connect(&opts.servers, opts.session_timeout).await?;
    crate::ensure_dirs(&client, &opts.layout).await?;
    let inbox = opts.layout.inbox(&opts.id);
    match client.create(&inbox, b"", CreateMode::Persistent).await {
        Ok(_) => {}
        Err(e) if e.code() == ErrorCode::NodeExists => {}
        Err(e) => return Err(format!("cannot create {inbox}: {e}")),
    }
    let group = Group::new(&client, &opts.layout.workers()).map_err(|e| e.to_string())?;
    let membership = group
        .join(&opts.id, b"rust")
        .await
        .map_err(|e| format!("cannot register: {e}"))?;
    let mut states = membership.states();
    event(
        "registered",
        json!({"worker": opts.id, "session": format!("{:#x}", client.session().id)}),
    );
    let outcome = loop {
        let (children, _, mut changed) = match client.get_children_watch(&inbox).await {
            Ok(found) => found,
            Err(e) if e.is_session_over() => break Ok(()),
            Err(e) if e.code() == ErrorCode::NoNode => {
                // Tidied away by someone: make it again.
                let _ = client.create(&inbox, b"", CreateMode::Persistent).await;
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, "inbox unreadable; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        for name in children {
            take(&client, shared, &name).await;
        }
        tokio::select! {
            _ = changed.next() => {}
            changed = states.changed() => {
                let state = *states.borrow_and_update();
                if changed.is_err() || matches!(state, MemberState::Lost | MemberState::Left) {
                    break Ok(());
                }
            }
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    };
    drop(membership);
    client.close().await;
    outcome
}

/// Starts running the assignment `name` unless it runs already; deletes it if it ran.
async fn take(client: &Client, shared: &Arc<Shared>, name: &str) {
    let path = shared.layout.assignment(&shared.id, name);
    let (running, finished) = {
        let progress = shared.progress.lock().unwrap_or_else(|e| e.into_inner());
        (
            progress.running.contains(name),
            progress.finished.contains(name),
        )
    };
    if running {
        return;
    }
    if finished {
        let _ = client.delete(&path, None).await;
        return;
    }
    let assignment: Assignment = match client.get_data(&path).await {
        Ok((data, _)) => match decode(&path, &data) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "not an assignment; left alone");
                return;
            }
        },
        Err(_) => return,
    };
    shared
        .progress
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .running
        .insert(name.to_string());
    let (client, shared, name) = (client.clone(), shared.clone(), name.to_string());
    tokio::spawn(async move {
        let verdict = execute(&shared, &assignment).await;
        event(
            "handed-in",
            json!({"worker": shared.id, "task": assignment.task, "token": assignment.token, "verdict": verdict}),
        );
        {
            let mut progress = shared.progress.lock().unwrap_or_else(|e| e.into_inner());
            progress.running.remove(&name);
            if verdict == UNDELIVERED {
                // Still ours to do: the next look at the inbox runs it again.
                return;
            }
            progress.finished.insert(name.clone());
        }
        // On the session that read it; if that session is gone, the next one deletes
        // it (or the master did, when it reassigned the task).
        let _ = client.delete(&path, None).await;
    });
}

/// Runs the task and hands the result in; what the sink said.
async fn execute(shared: &Shared, assignment: &Assignment) -> String {
    let _slot = shared.slots.acquire().await;
    tokio::time::sleep(Duration::from_millis(assignment.body.work_ms)).await;
    let result = TaskResult {
        task: assignment.task.clone(),
        token: assignment.token,
        worker: shared.id.clone(),
        result: assignment.body.result(),
    };
    let body = serde_json::to_value(&result).unwrap_or_default();
    // The sink may be restarting: try for a while, then give up (the master reassigns
    // the task if this worker goes away; otherwise it stays assigned here and the
    // chaos run reports it as lost).
    for attempt in 0..20u32 {
        match shared
            .sink
            .call("POST", "/v1/results", Some(&body), Duration::from_secs(10))
            .await
        {
            Ok((201 | 200, _)) => return "recorded".into(),
            Ok((409, answer)) => {
                return answer["refused"].as_str().unwrap_or("refused").to_string();
            }
            Ok((status, answer)) if status < 500 => {
                return format!("refused ({status}: {answer})");
            }
            Ok((status, _)) => {
                tracing::debug!(status, attempt, "the sink is unavailable; retrying");
            }
            Err(e) => tracing::debug!(error = %e, attempt, "the sink did not answer; retrying"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    UNDELIVERED.into()
}

const UNDELIVERED: &str = "undelivered";
