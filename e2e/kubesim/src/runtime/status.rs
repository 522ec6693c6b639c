//! The pod's status as a kubelet keeps it: container statuses and their state transitions,
//! the phase derived from them, recent events, and the shared cell the container supervisors
//! write and `PodHandle::status` watchers read.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::sync::watch;

use super::{
    ContainerKind, ContainerPlan, EventType, PodPhase, PodPlan, PodRuntimeStatus, RestartPolicy,
    RuntimeEvent,
};

/// How many events a pod keeps (older ones are dropped).
pub const MAX_EVENTS: usize = 32;

/// Which status entry a container owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    Init(usize),
    Main(usize),
}

/// How one process of a container ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Exit {
    pub exit_code: i32,
    pub signal: Option<i32>,
    /// "Completed", "Error", "StartError".
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Time,
    pub finished_at: Time,
}

impl Exit {
    /// From a process's wait status: a signal shows as 128 + signal, as container runtimes report it.
    pub fn from_status(status: std::process::ExitStatus, started_at: Time) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        let (exit_code, signal) = match (status.code(), status.signal()) {
            (Some(code), _) => (code, None),
            (None, Some(signal)) => (128 + signal, Some(signal)),
            (None, None) => (255, None),
        };
        Exit::with_code(exit_code, signal, started_at)
    }

    pub fn with_code(exit_code: i32, signal: Option<i32>, started_at: Time) -> Exit {
        let reason = if exit_code == 0 { "Completed" } else { "Error" };
        Exit {
            exit_code,
            signal,
            reason: reason.to_owned(),
            message: None,
            started_at,
            finished_at: now(),
        }
    }
}

pub(crate) fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// The status of a container that has not run yet.
pub(crate) fn initial_status(plan: &ContainerPlan, waiting_reason: &str) -> ContainerStatus {
    ContainerStatus {
        name: plan.name.clone(),
        image: plan.image.clone(),
        started: Some(false),
        state: Some(waiting_state(waiting_reason, None)),
        ..ContainerStatus::default()
    }
}

fn waiting_state(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_owned()),
            message,
        }),
        ..ContainerState::default()
    }
}

fn is_terminated(state: &Option<ContainerState>) -> bool {
    state.as_ref().is_some_and(|s| s.terminated.is_some())
}

/// Waiting (image, config or crash back-off): a termination just seen becomes lastState.
pub(crate) fn mark_waiting(status: &mut ContainerStatus, reason: &str, message: Option<String>) {
    if is_terminated(&status.state) {
        status.last_state = status.state.take();
    }
    status.state = Some(waiting_state(reason, message));
    status.ready = false;
    status.started = Some(false);
}

/// A new process runs; the previous termination (if any) becomes lastState.
pub(crate) fn mark_running(
    status: &mut ContainerStatus,
    pid: u32,
    image_id: String,
    restart_count: i32,
    started_at: Time,
) {
    if is_terminated(&status.state) {
        status.last_state = status.state.take();
    }
    status.state = Some(ContainerState {
        running: Some(ContainerStateRunning {
            started_at: Some(started_at),
        }),
        ..ContainerState::default()
    });
    status.container_id = Some(format!("kubesim://{pid}"));
    status.image_id = image_id;
    status.restart_count = restart_count;
    status.ready = false;
    status.started = Some(false);
}

/// The process ended (or never started: StartError).
pub(crate) fn mark_terminated(status: &mut ContainerStatus, exit: Exit, kind: ContainerKind) {
    status.state = Some(ContainerState {
        terminated: Some(ContainerStateTerminated {
            container_id: status.container_id.clone(),
            exit_code: exit.exit_code,
            signal: exit.signal,
            reason: Some(exit.reason),
            message: exit.message,
            started_at: Some(exit.started_at),
            finished_at: Some(exit.finished_at),
        }),
        ..ContainerState::default()
    });
    // A kubelet shows a completed init container as ready.
    status.ready = kind == ContainerKind::Init && exit.exit_code == 0;
    status.started = Some(false);
}

/// Everything the runtime knows about the pod; pure data, changed only through [`Shared`].
#[derive(Debug)]
pub(crate) struct PodState {
    pub restart_policy: RestartPolicy,
    pub init: Vec<ContainerStatus>,
    pub main: Vec<ContainerStatus>,
    pub initialized: bool,
    /// An init container failed under restartPolicy Never: the pod has failed.
    pub init_failed: bool,
    /// Graceful termination began: nothing is ready any more.
    pub terminating: bool,
    events: VecDeque<RuntimeEvent>,
    next_seq: u64,
}

impl PodState {
    pub fn new(plan: &PodPlan) -> PodState {
        let main_reason = if plan.init_containers.is_empty() {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        PodState {
            restart_policy: plan.restart_policy,
            init: plan
                .init_containers
                .iter()
                .map(|c| initial_status(c, "PodInitializing"))
                .collect(),
            main: plan
                .containers
                .iter()
                .map(|c| initial_status(c, main_reason))
                .collect(),
            initialized: plan.init_containers.is_empty(),
            init_failed: false,
            terminating: false,
            events: VecDeque::new(),
            next_seq: 1,
        }
    }

    pub fn container(&mut self, slot: Slot) -> Option<&mut ContainerStatus> {
        match slot {
            Slot::Init(i) => self.init.get_mut(i),
            Slot::Main(i) => self.main.get_mut(i),
        }
    }

    /// Records an event; a repeat of the newest one only bumps its count (and its seq).
    pub fn event(
        &mut self,
        type_: EventType,
        reason: &str,
        container: Option<&str>,
        message: String,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(last) = self.events.back_mut()
            && last.reason == reason
            && last.message == message
            && last.container.as_deref() == container
        {
            last.count = last.count.saturating_add(1);
            last.seq = seq;
            return;
        }
        if self.events.len() == MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(RuntimeEvent {
            seq,
            type_,
            reason: reason.to_owned(),
            message,
            container: container.map(str::to_owned),
            count: 1,
        });
    }

    /// Termination began: from now on nothing is ready.
    pub fn begin_termination(&mut self) {
        self.terminating = true;
        for status in self.init.iter_mut().chain(self.main.iter_mut()) {
            status.ready = false;
        }
    }

    pub fn snapshot(&self) -> PodRuntimeStatus {
        PodRuntimeStatus {
            init_container_statuses: self.init.clone(),
            container_statuses: self.main.clone(),
            initialized: self.initialized,
            phase: derive_phase(
                self.restart_policy,
                self.initialized,
                self.init_failed,
                self.terminating,
                &self.main,
            ),
            events: self.events.iter().cloned().collect(),
        }
    }
}

/// The pod phase from its main containers, the way kubelet's getPhase derives it; a pod whose
/// termination has finished ends Succeeded only if every main container exited 0.
pub(crate) fn derive_phase(
    policy: RestartPolicy,
    initialized: bool,
    init_failed: bool,
    terminating: bool,
    main: &[ContainerStatus],
) -> PodPhase {
    if init_failed {
        return PodPhase::Failed;
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for status in main {
        let state = status.state.as_ref();
        if state.is_some_and(|s| s.running.is_some()) {
            running += 1;
        } else if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if status
            .last_state
            .as_ref()
            .is_some_and(|s| s.terminated.is_some())
        {
            stopped += 1; // restarting after an exit
        } else {
            waiting += 1;
        }
    }
    if terminating && running == 0 {
        return if !main.is_empty() && succeeded == main.len() {
            PodPhase::Succeeded
        } else {
            PodPhase::Failed
        };
    }
    if !initialized || waiting > 0 {
        return PodPhase::Pending;
    }
    if running > 0 {
        return PodPhase::Running;
    }
    if stopped == 0 {
        return PodPhase::Pending;
    }
    match policy {
        RestartPolicy::Always => PodPhase::Running,
        _ if stopped == succeeded => PodPhase::Succeeded,
        RestartPolicy::Never => PodPhase::Failed,
        RestartPolicy::OnFailure => PodPhase::Running,
    }
}

/// The pod state behind a lock, republished to watchers after every change.
pub(crate) struct Shared {
    state: Mutex<PodState>,
    published: watch::Sender<PodRuntimeStatus>,
}

impl Shared {
    pub fn new(state: PodState) -> (Arc<Shared>, watch::Receiver<PodRuntimeStatus>) {
        let (published, receiver) = watch::channel(state.snapshot());
        (
            Arc::new(Shared {
                state: Mutex::new(state),
                published,
            }),
            receiver,
        )
    }

    /// Applies `change` and publishes the result. Never call while holding the lock.
    pub fn update<R>(&self, change: impl FnOnce(&mut PodState) -> R) -> R {
        // A panic elsewhere must not take the pod's status down with it: use the data as is.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let result = change(&mut state);
        self.published.send_replace(state.snapshot());
        result
    }

    /// Changes one container's status.
    pub fn container(&self, slot: Slot, change: impl FnOnce(&mut ContainerStatus, &PodStateFlags)) {
        self.update(|state| {
            let flags = PodStateFlags {
                terminating: state.terminating,
            };
            if let Some(status) = state.container(slot) {
                change(status, &flags);
            }
        });
    }

    pub fn event(&self, type_: EventType, reason: &str, container: &str, message: String) {
        self.update(|state| state.event(type_, reason, Some(container), message));
    }
}

/// Pod-wide facts a container's status change may depend on.
pub(crate) struct PodStateFlags {
    pub terminating: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: &str, exit_code: i32, restarted: bool) -> ContainerStatus {
        let terminated = |code| ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                ..Default::default()
            }),
            ..Default::default()
        };
        let state = match state {
            "running" => ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..Default::default()
            },
            "terminated" => terminated(exit_code),
            _ => waiting_state("CrashLoopBackOff", None),
        };
        ContainerStatus {
            state: Some(state),
            last_state: restarted.then(|| terminated(1)),
            ..Default::default()
        }
    }

    #[test]
    fn phases_as_kubelet_derives_them() {
        use PodPhase::*;
        use RestartPolicy::*;
        let run = status("running", 0, false);
        let ok = status("terminated", 0, false);
        let bad = status("terminated", 1, false);
        let fresh = status("waiting", 0, false);
        let backoff = status("waiting", 0, true);
        let cases: Vec<(
            RestartPolicy,
            bool,
            bool,
            bool,
            Vec<ContainerStatus>,
            PodPhase,
        )> = vec![
            (Always, false, false, false, vec![fresh.clone()], Pending),
            (Always, true, false, false, vec![fresh.clone()], Pending),
            (
                Always,
                true,
                false,
                false,
                vec![run.clone(), fresh.clone()],
                Pending,
            ),
            (
                Always,
                true,
                false,
                false,
                vec![run.clone(), backoff.clone()],
                Running,
            ),
            (Always, true, false, false, vec![backoff.clone()], Running),
            (Always, true, false, false, vec![ok.clone()], Running),
            (
                Never,
                true,
                false,
                false,
                vec![ok.clone(), ok.clone()],
                Succeeded,
            ),
            (
                Never,
                true,
                false,
                false,
                vec![ok.clone(), bad.clone()],
                Failed,
            ),
            (
                Never,
                true,
                false,
                false,
                vec![ok.clone(), run.clone()],
                Running,
            ),
            (OnFailure, true, false, false, vec![ok.clone()], Succeeded),
            (
                OnFailure,
                true,
                false,
                false,
                vec![backoff.clone()],
                Running,
            ),
            (Never, false, true, false, vec![fresh.clone()], Failed),
            (Always, true, false, true, vec![run.clone()], Running),
            (Always, true, false, true, vec![ok.clone()], Succeeded),
            (
                Always,
                true,
                false,
                true,
                vec![bad.clone(), ok.clone()],
                Failed,
            ),
            (Always, false, false, true, vec![fresh.clone()], Failed),
        ];
        for (i, (policy, initialized, init_failed, terminating, main, want)) in
            cases.into_iter().enumerate()
        {
            assert_eq!(
                derive_phase(policy, initialized, init_failed, terminating, &main),
                want,
                "case {i}"
            );
        }
    }

    #[test]
    fn a_restart_keeps_the_previous_termination_as_last_state() {
        let plan_status = &mut ContainerStatus::default();
        mark_running(plan_status, 7, "kubesim:///bin/x".into(), 0, now());
        mark_terminated(
            plan_status,
            Exit::with_code(3, None, now()),
            ContainerKind::Main,
        );
        mark_waiting(plan_status, "CrashLoopBackOff", Some("back-off".into()));
        let last = plan_status
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .expect("last state");
        assert_eq!(last.exit_code, 3);
        assert_eq!(last.container_id.as_deref(), Some("kubesim://7"));
        mark_running(plan_status, 8, "kubesim:///bin/x".into(), 1, now());
        assert_eq!(plan_status.restart_count, 1);
        assert!(
            plan_status
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .is_some()
        );
    }

    #[test]
    fn repeated_events_are_counted_and_old_ones_dropped() {
        let plan = PodPlan::for_tests();
        let mut state = PodState::new(&plan);
        state.event(
            EventType::Warning,
            "Unhealthy",
            Some("c"),
            "probe failed".into(),
        );
        state.event(
            EventType::Warning,
            "Unhealthy",
            Some("c"),
            "probe failed".into(),
        );
        let events = state.snapshot().events;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].count, 2);
        assert_eq!(events[0].seq, 2);
        for i in 0..100 {
            state.event(EventType::Normal, "X", None, format!("{i}"));
        }
        assert_eq!(state.snapshot().events.len(), MAX_EVENTS);
    }
}
