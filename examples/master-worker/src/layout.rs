//! The znodes of the master–worker system, the seeds' layout under one app root
//! (default `/mw`):
//!
//! ```text
//! /mw/master/_c_<uuid>-latch-<seq>     masters' candidacies (the election recipe): the
//!                                      lowest is the active master; its czxid is its
//!                                      fencing token
//! /mw/workers/<worker>                 ephemeral: a live worker (the group recipe, or a
//!                                      sidecar's group membership)
//! /mw/tasks/task-<submitter>-<n>-<seq> persistent-sequential: a task and its record
//! /mw/assign/<worker>/<task>-<tok>     persistent: an assignment; `tok` is its fencing token
//! /mw/status/<task>                    persistent: the task's result, recorded once by the sink
//! ```
//!
//! A task's name before the sequence number is its submitter's own (`c` and hex digits of
//! the submitting process, then a six-digit counter; see `submit`), so that a create whose
//! reply was lost is found again instead of being made twice.
//!
//! **Fencing.** A task's assignment token is the version of its `/tasks` node right after
//! the master's assigning `setData`: every (re)assignment moves it on, so a later
//! assignment always carries a larger token. The sink records a result only with a
//! `setData` of that node at exactly the result's token (and creates `/status/<task>` in
//! the same multi), so a worker whose assignment was taken away (its session expired,
//! it was paused, it was cut off) is refused, and a task is recorded at most once.

use serde::{Deserialize, Serialize};

/// The paths of one app root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: String,
}

impl Layout {
    pub fn new(root: &str) -> Layout {
        let root = root.trim_end_matches('/');
        Layout {
            root: if root.is_empty() {
                String::new()
            } else {
                root.to_string()
            },
        }
    }

    pub fn root(&self) -> String {
        if self.root.is_empty() {
            "/".into()
        } else {
            self.root.clone()
        }
    }

    pub fn master(&self) -> String {
        format!("{}/master", self.root)
    }
    pub fn workers(&self) -> String {
        format!("{}/workers", self.root)
    }
    pub fn tasks(&self) -> String {
        format!("{}/tasks", self.root)
    }
    pub fn assign(&self) -> String {
        format!("{}/assign", self.root)
    }
    pub fn status(&self) -> String {
        format!("{}/status", self.root)
    }

    /// Every directory the system needs, parents first.
    pub fn dirs(&self) -> Vec<String> {
        let mut dirs = vec![self.root()];
        dirs.extend([
            self.master(),
            self.workers(),
            self.tasks(),
            self.assign(),
            self.status(),
        ]);
        dirs.dedup();
        dirs
    }

    pub fn task(&self, task: &str) -> String {
        format!("{}/{task}", self.tasks())
    }
    pub fn worker(&self, worker: &str) -> String {
        format!("{}/{worker}", self.workers())
    }
    pub fn inbox(&self, worker: &str) -> String {
        format!("{}/{worker}", self.assign())
    }
    pub fn assignment(&self, worker: &str, name: &str) -> String {
        format!("{}/{name}", self.inbox(worker))
    }
    pub fn task_status(&self, task: &str) -> String {
        format!("{}/{task}", self.status())
    }
}

/// The name of an assignment node: the task and its token, so that a task assigned to
/// the same worker twice gets two nodes.
pub fn assignment_name(task: &str, token: i32) -> String {
    format!("{task}-{token}")
}

/// What a task asks for. The work is a pure function of the input (the result of a
/// second execution is the same), so recording one result is effectively-once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskBody {
    pub input: u64,
    /// How long a worker takes over it.
    pub work_ms: u64,
}

impl TaskBody {
    /// The task's result: the input's digits reversed, then squared (any pure function
    /// would do; this one is easy to check by hand).
    pub fn result(&self) -> String {
        let reversed: u128 = self
            .input
            .to_string()
            .chars()
            .rev()
            .collect::<String>()
            .parse()
            .unwrap_or(0);
        (reversed * reversed).to_string()
    }
}

/// Where a task stands, as its `/tasks` node says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum TaskState {
    /// Submitted, not assigned yet.
    Submitted,
    /// Assigned to `worker` by the master whose fencing token is `master`.
    Assigned { worker: String, master: i64 },
    /// Recorded by the sink: `worker`'s result under assignment token `token`.
    Done {
        worker: String,
        token: i32,
        result: String,
    },
}

/// The data of a `/tasks` node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub body: TaskBody,
    #[serde(flatten)]
    pub state: TaskState,
}

/// The data of an `/assign/<worker>/<task>-<token>` node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub task: String,
    pub token: i32,
    pub master: i64,
    pub body: TaskBody,
}

/// A worker's result, as it posts it to the sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResult {
    pub task: String,
    pub token: i32,
    pub worker: String,
    pub result: String,
}

/// The data of a `/status/<task>` node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub worker: String,
    pub token: i32,
    pub result: String,
}

/// Reads a node's JSON, with the path in the error.
pub fn decode<T: serde::de::DeserializeOwned>(path: &str, data: &[u8]) -> Result<T, String> {
    serde_json::from_slice(data).map_err(|e| format!("{path}: not a record of this app: {e}"))
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let l = Layout::new("/mw/");
        assert_eq!(l.task("task-0000000001"), "/mw/tasks/task-0000000001");
        assert_eq!(
            l.assignment("w1", &assignment_name("task-0000000001", 3)),
            "/mw/assign/w1/task-0000000001-3"
        );
        assert_eq!(l.dirs()[0], "/mw");
        let top = Layout::new("/");
        assert_eq!(top.workers(), "/workers");
        assert_eq!(top.dirs()[0], "/");
    }

    #[test]
    fn records_round_trip_as_the_python_worker_reads_them() {
        let r = TaskRecord {
            body: TaskBody {
                input: 1230,
                work_ms: 5,
            },
            state: TaskState::Assigned {
                worker: "w1".into(),
                master: 42,
            },
        };
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["state"], "assigned");
        assert_eq!(json["worker"], "w1");
        assert_eq!(json["body"]["input"], 1230);
        assert_eq!(decode::<TaskRecord>("/t", &encode(&r)).unwrap(), r);
        assert!(
            decode::<TaskRecord>("/t", b"{}")
                .unwrap_err()
                .contains("/t")
        );
    }

    #[test]
    fn the_work_is_a_pure_function() {
        let b = TaskBody {
            input: 1230,
            work_ms: 0,
        };
        assert_eq!(b.result(), (321u128 * 321).to_string());
        assert_eq!(b.result(), b.result());
    }
}
