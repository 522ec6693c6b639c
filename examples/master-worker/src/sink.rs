//! The sink: where workers hand in results, and the gate that fences them.
//!
//! A worker that lost its assignment does not know it (its session expired while it was
//! paused or cut off from the ensemble, and the master gave the task to someone else),
//! so it keeps working and hands its result in. A lock or a leadership alone cannot stop
//! that (the seeds' point); the token can: the sink records a result only with a
//! `setData` of the task's node at exactly the result's assignment token, in one multi
//! with the create of `/status/<task>`. A stale token fails the version check; a second
//! result for the same assignment finds the node already moved on. Every recorded result
//! is also appended to a JSON-lines file, which the chaos run counts per task.
//!
//! ```text
//! POST /v1/results {"task","token","worker","result"}
//!   201 {"recorded":true}                                     the result is the task's
//!   200 {"recorded":true,"again":true}                        this result, handed in again
//!   409 {"refused":"stale","current":N}                       the task was reassigned
//!   409 {"refused":"duplicate","recordedBy":W,"token":N}      the task is already done
//!   404 {"error":...}                                         no such task
//! GET  /v1/results → {"recorded","refusedStale","refusedDuplicate","tasksRecorded",
//!                      "recordedTwice"} (the last two over the whole log)
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use paddock_client::{Client, CreateMode, Error, ErrorCode, Op};
use serde_json::json;
use tokio::net::TcpListener;

use crate::layout::{Layout, Status, TaskRecord, TaskResult, TaskState, decode, encode};

/// What a hand-in came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Recorded,
    /// The task was reassigned: its current token is `current`.
    Stale {
        current: i32,
    },
    /// The task is done already, by `worker` under `token`.
    Duplicate {
        worker: String,
        token: i32,
    },
    /// This very result (worker and token) was recorded before: a hand-in repeated.
    AlreadyRecorded,
    UnknownTask,
}

#[derive(Debug, Default)]
struct Counters {
    recorded: u64,
    stale: u64,
    duplicate: u64,
    /// Lines of the results log per task (read back from the log at start): more than
    /// one would be a task recorded twice, which the fencing must make impossible.
    per_task: std::collections::HashMap<String, u32>,
}

impl Counters {
    fn recorded_twice(&self) -> usize {
        self.per_task.values().filter(|n| **n > 1).count()
    }
}

/// Lines per task of a results log.
pub fn count_log(text: &str) -> Result<std::collections::HashMap<String, u32>, String> {
    let mut counts = std::collections::HashMap::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let r: TaskResult =
            serde_json::from_str(line).map_err(|e| format!("results log line {}: {e}", n + 1))?;
        *counts.entry(r.task).or_insert(0) += 1;
    }
    Ok(counts)
}

const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Hand-ins of one task are judged one at a time (by stripe), so that a repeated
/// hand-in racing the first cannot be taken for a write of its own.
const STRIPES: usize = 64;

struct Sink {
    /// Replaced by a new session if this one ends.
    client: tokio::sync::RwLock<Client>,
    servers: String,
    layout: Layout,
    log: Mutex<std::fs::File>,
    counters: Mutex<Counters>,
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl Sink {
    fn stripe(&self, task: &str) -> &tokio::sync::Mutex<()> {
        let hash = task.bytes().fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        &self.stripes[hash % STRIPES]
    }
}

/// Records `result` if its token is the task's current assignment token.
pub async fn record(
    client: &Client,
    layout: &Layout,
    result: &TaskResult,
) -> Result<Verdict, Error> {
    let path = layout.task(&result.task);
    // Set once a multi's outcome is unknown (connection lost): if the task then shows
    // this result, the write was ours.
    let mut maybe_wrote = false;
    loop {
        let (data, stat) = match client.get_data(&path).await {
            Ok(found) => found,
            Err(e) if e.code() == ErrorCode::NoNode => return Ok(Verdict::UnknownTask),
            Err(e) => return Err(e),
        };
        let record: TaskRecord = decode(&path, &data).map_err(Error::BadArguments)?;
        if let TaskState::Done { worker, token, .. } = &record.state
            && *worker == result.worker
            && *token == result.token
        {
            return Ok(if maybe_wrote {
                Verdict::Recorded
            } else {
                Verdict::AlreadyRecorded
            });
        }
        if let Some(verdict) = judge(&record, stat.version, result) {
            return Ok(verdict);
        }
        let done = TaskRecord {
            body: record.body,
            state: TaskState::Done {
                worker: result.worker.clone(),
                token: result.token,
                result: result.result.clone(),
            },
        };
        let status = Status {
            worker: result.worker.clone(),
            token: result.token,
            result: result.result.clone(),
        };
        let ops = [
            Op::set_data(&path, encode(&done), Some(result.token)),
            Op::create(
                layout.task_status(&result.task),
                encode(&status),
                CreateMode::Persistent,
            ),
        ];
        match client.multi(&ops).await {
            Ok(_) => return Ok(Verdict::Recorded),
            // Moved on since we read it, or already recorded: read again and judge.
            Err(e) if matches!(e.code(), ErrorCode::BadVersion | ErrorCode::NodeExists) => {}
            // Applied or not: reading again tells.
            Err(e) if e.is_connection_loss() => {
                maybe_wrote = true;
                client.wait_connected().await?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The verdict a task's record at `version` gives `result` before any write: `None` when
/// the result may be recorded (the task is assigned, at exactly the result's token).
pub fn judge(record: &TaskRecord, version: i32, result: &TaskResult) -> Option<Verdict> {
    match &record.state {
        TaskState::Done { worker, token, .. } => Some(Verdict::Duplicate {
            worker: worker.clone(),
            token: *token,
        }),
        TaskState::Assigned { worker, .. }
            if version == result.token && *worker == result.worker =>
        {
            None
        }
        _ => Some(Verdict::Stale { current: version }),
    }
}

async fn hand_in(State(sink): State<Arc<Sink>>, Json(result): Json<TaskResult>) -> Response {
    if result.task.is_empty() || result.task.contains('/') || result.worker.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "task and worker must be non-empty names without '/'"})),
        )
            .into_response();
    }
    // The server drops this handler when the worker's connection goes (a worker killed
    // mid-hand-in). Once the multi is sent it may be applied, so judging, counting and
    // logging run in a task of their own that finishes whatever happens to the caller:
    // otherwise a result recorded in the ensemble could be missing from the counts.
    match tokio::spawn(settle(sink, result)).await {
        Ok(response) => response,
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": format!("the hand-in failed: {e}")})),
        )
            .into_response(),
    }
}

/// Judges a hand-in and, when recorded, counts and logs it.
async fn settle(sink: Arc<Sink>, result: TaskResult) -> Response {
    let turn = sink.stripe(&result.task).lock().await;
    let client = sink.client.read().await.clone();
    let verdict = record(&client, &sink.layout, &result).await;
    drop(turn);
    if let Err(e) = &verdict
        && e.is_session_over()
    {
        match crate::connect(&sink.servers, SESSION_TIMEOUT).await {
            Ok(fresh) => *sink.client.write().await = fresh,
            Err(e) => tracing::warn!(error = %e, "cannot open a new session"),
        }
    }
    let verdict = match verdict {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(task = %result.task, error = %e, "cannot judge a result");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": format!("the ensemble did not answer: {e}")})),
            )
                .into_response();
        }
    };
    let mut counters = sink.counters.lock().unwrap_or_else(|e| e.into_inner());
    match verdict {
        Verdict::Recorded => {
            counters.recorded += 1;
            *counters.per_task.entry(result.task.clone()).or_insert(0) += 1;
            drop(counters);
            let line = encode(&result);
            let mut log = sink.log.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = log.write_all(&line).and_then(|()| log.write_all(b"\n")) {
                tracing::error!(error = %e, "cannot append to the results log");
            }
            tracing::info!(task = %result.task, worker = %result.worker, token = result.token, "recorded");
            (StatusCode::CREATED, Json(json!({"recorded": true}))).into_response()
        }
        Verdict::Stale { current } => {
            counters.stale += 1;
            tracing::info!(task = %result.task, worker = %result.worker, token = result.token, current, "refused a stale result");
            (
                StatusCode::CONFLICT,
                Json(json!({"refused": "stale", "current": current})),
            )
                .into_response()
        }
        Verdict::Duplicate { worker, token } => {
            counters.duplicate += 1;
            tracing::info!(task = %result.task, worker = %result.worker, token = result.token, recorded_by = %worker, "refused a second result");
            (
                StatusCode::CONFLICT,
                Json(json!({"refused": "duplicate", "recordedBy": worker, "token": token})),
            )
                .into_response()
        }
        Verdict::AlreadyRecorded => (
            StatusCode::OK,
            Json(json!({"recorded": true, "again": true})),
        )
            .into_response(),
        Verdict::UnknownTask => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no task {}", result.task)})),
        )
            .into_response(),
    }
}

async fn counts(State(sink): State<Arc<Sink>>) -> Response {
    let c = sink.counters.lock().unwrap_or_else(|e| e.into_inner());
    Json(json!({
        "recorded": c.recorded,
        "refusedStale": c.stale,
        "refusedDuplicate": c.duplicate,
        "tasksRecorded": c.per_task.len(),
        "recordedTwice": c.recorded_twice(),
    }))
    .into_response()
}

pub struct SinkOptions {
    pub servers: String,
    pub layout: Layout,
    pub listen: String,
    pub log: PathBuf,
}

/// Serves the sink until Ctrl-C or SIGTERM.
pub async fn run(opts: SinkOptions) -> Result<(), String> {
    // Listened for from the start: a SIGTERM while the ensemble is not reachable yet stops
    // the sink too (as a container's PID 1 it would otherwise be ignored until SIGKILL).
    let mut stop = Box::pin(crate::stop_signal());
    let client = tokio::select! {
        started = async {
            let client = crate::connect(&opts.servers, SESSION_TIMEOUT).await?;
            crate::ensure_dirs(&client, &opts.layout).await?;
            Ok::<_, String>(client)
        } => started?,
        () = &mut stop => return Ok(()),
    };
    let earlier = match std::fs::read_to_string(&opts.log) {
        Ok(text) => count_log(&text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
        Err(e) => return Err(format!("results log {}: {e}", opts.log.display())),
    };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&opts.log)
        .map_err(|e| format!("results log {}: {e}", opts.log.display()))?;
    let listener = TcpListener::bind(&opts.listen)
        .await
        .map_err(|e| format!("--listen {}: {e}", opts.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("sink listening on http://{addr}");
    let sink = Arc::new(Sink {
        client: tokio::sync::RwLock::new(client),
        servers: opts.servers,
        layout: opts.layout,
        log: Mutex::new(log),
        counters: Mutex::new(Counters {
            per_task: earlier,
            ..Counters::default()
        }),
        stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
    });
    let router = Router::new()
        .route("/v1/results", post(hand_in).get(counts))
        .with_state(sink.clone());
    let limits = paddock_httpserve::HttpLimits {
        header_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(10),
        max_body_bytes: 64 * 1024,
        max_connections: 256,
    };
    paddock_httpserve::serve(listener, router, limits, stop).await;
    sink.client.read().await.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::TaskBody;

    fn assigned(worker: &str) -> TaskRecord {
        TaskRecord {
            body: TaskBody {
                input: 7,
                work_ms: 0,
            },
            state: TaskState::Assigned {
                worker: worker.into(),
                master: 1,
            },
        }
    }

    fn result(worker: &str, token: i32) -> TaskResult {
        TaskResult {
            task: "task-0000000001".into(),
            token,
            worker: worker.into(),
            result: "49".into(),
        }
    }

    #[test]
    fn only_the_current_assignment_is_recorded() {
        // Assigned to w2 at version 3: w2's token-3 result goes through.
        assert_eq!(judge(&assigned("w2"), 3, &result("w2", 3)), None);
        // w1 held the task under token 1 before it was reassigned.
        assert_eq!(
            judge(&assigned("w2"), 3, &result("w1", 1)),
            Some(Verdict::Stale { current: 3 })
        );
        // A token that matches but from another worker (a forged or confused hand-in).
        assert_eq!(
            judge(&assigned("w2"), 3, &result("w1", 3)),
            Some(Verdict::Stale { current: 3 })
        );
        // Never assigned.
        let submitted = TaskRecord {
            body: assigned("w").body,
            state: TaskState::Submitted,
        };
        assert_eq!(
            judge(&submitted, 0, &result("w1", 0)),
            Some(Verdict::Stale { current: 0 })
        );
        // Done: whoever comes next is a duplicate, whatever its token.
        let done = TaskRecord {
            body: assigned("w").body,
            state: TaskState::Done {
                worker: "w2".into(),
                token: 3,
                result: "49".into(),
            },
        };
        assert_eq!(
            judge(&done, 4, &result("w2", 3)),
            Some(Verdict::Duplicate {
                worker: "w2".into(),
                token: 3
            })
        );
    }
}
