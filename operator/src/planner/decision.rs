//! The planner's answer: one next action, why, and the wait to remember.

use crate::membership::ServerEntry;

use super::observed::WaitRecord;

/// One next action with a reason a user can read (it goes into an Event and a condition).
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub action: Action,
    pub reason: String,
    /// What the ensemble is doing, for status.phase and the Progressing condition.
    pub stage: Stage,
    /// The wait to record in status.waiting (None clears it).
    pub wait: Option<WaitRecord>,
}

/// What the reconciler does next. Except for `Paused`, it first applies the children (with
/// the StatefulSet's replicas left as they are unless the action says otherwise), then does
/// this one thing, then requeues.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// The StatefulSet does not exist: apply all children, the StatefulSet with these replicas.
    CreateChildren { replicas: i32 },
    /// Nothing to do until the world changes; requeue soon.
    WaitFor { key: String },
    /// Delete this pod (the StatefulSet recreates it at the update revision).
    DeletePod { name: String },
    /// `POST /leadership/transfer {"to": to}` on member `from`.
    TransferLeadership { from: u64, to: u64 },
    /// `reconfig` with fromConfig = `from_config_version` (a compare-and-set).
    Reconfig {
        change: MembershipChange,
        from_config_version: u64,
    },
    /// Set the StatefulSet's spec.replicas.
    ScaleStatefulSet { replicas: i32 },
    /// Delete this PersistentVolumeClaim.
    DeletePvc { name: String },
    /// Set this PersistentVolumeClaim's spec.resources.requests.storage to `size` (growth
    /// only; the pod keeps running while the storage provider expands the volume).
    ResizePvc { name: String, size: String },
    /// Stopped: a wait took too long or the spec cannot be honoured. Set Degraded, emit an
    /// Event, back off; never move on to the next member.
    Degraded { key: String },
    /// spec.paused: change nothing.
    Paused,
    /// Nothing to do: the ensemble matches the spec.
    Done,
}

/// One membership change.
#[derive(Clone, Debug, PartialEq)]
pub enum MembershipChange {
    /// `reconfig -add server.N=...` (also how a member's role changes).
    Add(ServerEntry),
    /// `reconfig -remove N`.
    Remove(u64),
}

/// What the ensemble is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Creating,
    Upgrading,
    Scaling,
    Steady,
    Paused,
}

impl Action {
    /// A short CamelCase name, for Events, metrics and condition reasons.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::CreateChildren { .. } => "CreateChildren",
            Action::WaitFor { .. } => "Waiting",
            Action::DeletePod { .. } => "DeletePod",
            Action::TransferLeadership { .. } => "TransferLeadership",
            Action::Reconfig { .. } => "Reconfig",
            Action::ScaleStatefulSet { .. } => "ScaleStatefulSet",
            Action::DeletePvc { .. } => "DeletePvc",
            Action::ResizePvc { .. } => "ResizePvc",
            Action::Degraded { .. } => "Degraded",
            Action::Paused => "Paused",
            Action::Done => "Done",
        }
    }
}
