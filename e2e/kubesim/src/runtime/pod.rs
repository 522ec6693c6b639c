//! The pod's task: sequences its containers as a kubelet does (init containers one after
//! another, sidecars started in their turn, then all main containers), stops the sidecars
//! once the main containers are done for good, and carries out terminate and kill.

use std::future::pending;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::backoff::BackoffPolicy;
use super::container::{ContainerTask, Milestone, StopOrder};
use super::status::{PodState, Shared, Slot, mark_waiting};
use super::{ContainerKind, ContainerPlan, PodPlan, PodSandbox, RestartPolicy};

/// What the handle asks of the pod task.
#[derive(Debug)]
pub(crate) enum PodCommand {
    Terminate { grace: Duration },
    Kill,
}

/// A container whose supervisor was started.
struct Launched {
    kind: ContainerKind,
    stop: watch::Sender<Option<StopOrder>>,
    task: Option<JoinHandle<()>>,
}

impl Launched {
    /// Waits for the supervisor to end; safe to call again, and to cancel.
    async fn join(&mut self) {
        if let Some(task) = self.task.as_mut() {
            if let Err(e) = task.await {
                tracing::error!(%e, "a container supervisor ended abnormally");
            }
            self.task = None;
        }
    }
}

struct Pod {
    sandbox: Arc<PodSandbox>,
    restart_policy: RestartPolicy,
    grace: Duration,
    shared: Arc<Shared>,
    backoff: BackoffPolicy,
    init_plans: Vec<ContainerPlan>,
    main_plans: Vec<ContainerPlan>,
    /// In start order.
    launched: Vec<Launched>,
}

/// The pod task: runs the pod until the handle terminates or kills it (or is dropped).
pub(crate) async fn run(
    plan: PodPlan,
    shared: Arc<Shared>,
    mut commands: mpsc::Receiver<PodCommand>,
) {
    let mut pod = Pod {
        sandbox: Arc::new(plan.sandbox),
        restart_policy: plan.restart_policy,
        grace: plan.termination_grace_period,
        shared,
        backoff: BackoffPolicy::global(),
        init_plans: plan.init_containers,
        main_plans: plan.containers,
        launched: Vec::new(),
    };
    // advance() never returns: the pod runs until told otherwise.
    let command = tokio::select! {
        command = commands.recv() => command,
        () = pod.advance() => None,
    };
    match command {
        Some(PodCommand::Terminate { grace }) => {
            tokio::select! {
                () = pod.terminate(grace) => {}
                Some(PodCommand::Kill) = commands.recv() => pod.kill().await,
            }
        }
        Some(PodCommand::Kill) | None => pod.kill().await,
    }
    tracing::debug!(pod = %pod.sandbox.kubelet_name(), "pod runtime done");
}

impl Pod {
    /// Starts containers in order; never returns (all state lives in `self`, so it may be
    /// cancelled at any await).
    async fn advance(&mut self) {
        let init_plans = std::mem::take(&mut self.init_plans);
        for (index, plan) in init_plans.into_iter().enumerate() {
            let kind = if plan.kind == ContainerKind::Sidecar {
                ContainerKind::Sidecar
            } else {
                ContainerKind::Init
            };
            let mut milestone = self.launch(plan, kind, Slot::Init(index));
            let reached = milestone
                .wait_for(|m| {
                    if kind == ContainerKind::Sidecar {
                        m.started
                    } else {
                        m.finished.is_some()
                    }
                })
                .await
                .map(|m| *m);
            match reached {
                Ok(Milestone {
                    finished: Some(false),
                    ..
                }) if kind == ContainerKind::Init => {
                    // Failed under restartPolicy Never: the pod has failed.
                    self.shared.update(|state| state.init_failed = true);
                    self.stop_sidecars().await;
                    return pending().await;
                }
                Ok(_) => {}
                Err(_) => return pending().await,
            }
        }
        self.shared.update(|state| {
            state.initialized = true;
            for status in &mut state.main {
                let initializing = status
                    .state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .is_some_and(|w| w.reason.as_deref() == Some("PodInitializing"));
                if initializing {
                    mark_waiting(status, "ContainerCreating", None);
                }
            }
        });
        let main_plans = std::mem::take(&mut self.main_plans);
        let mut milestones = Vec::new();
        for (index, plan) in main_plans.into_iter().enumerate() {
            milestones.push(self.launch(plan, ContainerKind::Main, Slot::Main(index)));
        }
        for milestone in &mut milestones {
            if milestone.wait_for(|m| m.finished.is_some()).await.is_err() {
                return pending().await;
            }
        }
        // Every main container is done for good (restartPolicy Never or OnFailure).
        self.stop_sidecars().await;
        pending().await
    }

    /// Starts a container's supervisor and returns its milestones.
    fn launch(
        &mut self,
        plan: ContainerPlan,
        kind: ContainerKind,
        slot: Slot,
    ) -> watch::Receiver<Milestone> {
        let (stop, stop_rx) = watch::channel(None);
        let (milestone_tx, milestone) = watch::channel(Milestone::default());
        let task = ContainerTask {
            plan,
            slot,
            restart: kind.restart_rule(self.restart_policy),
            sandbox: self.sandbox.clone(),
            shared: self.shared.clone(),
            backoff: self.backoff,
            grace: self.grace,
            milestone: Arc::new(milestone_tx),
            stop: stop_rx,
        };
        let handle = tokio::spawn(task.supervise());
        self.launched.push(Launched {
            kind,
            stop,
            task: Some(handle),
        });
        milestone
    }

    /// Stops sidecars in reverse start order, each with the pod's grace period.
    async fn stop_sidecars(&mut self) {
        let deadline = Instant::now() + self.grace;
        for launched in self
            .launched
            .iter_mut()
            .rev()
            .filter(|l| l.kind == ContainerKind::Sidecar)
        {
            launched
                .stop
                .send_if_modified(|order| set_order(order, StopOrder::Graceful { deadline }));
            launched.join().await;
        }
    }

    /// Graceful stop: main (and running init) containers together, then sidecars one by one
    /// in reverse order, all within one deadline.
    async fn terminate(&mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        self.shared.update(PodState::begin_termination);
        let order = StopOrder::Graceful { deadline };
        for launched in self
            .launched
            .iter()
            .filter(|l| l.kind != ContainerKind::Sidecar)
        {
            launched
                .stop
                .send_if_modified(|current| set_order(current, order));
        }
        for launched in self
            .launched
            .iter_mut()
            .filter(|l| l.kind != ContainerKind::Sidecar)
        {
            launched.join().await;
        }
        for launched in self
            .launched
            .iter_mut()
            .rev()
            .filter(|l| l.kind == ContainerKind::Sidecar)
        {
            launched
                .stop
                .send_if_modified(|current| set_order(current, order));
            launched.join().await;
        }
    }

    /// Power loss: SIGKILL everything now.
    async fn kill(&mut self) {
        self.shared.update(PodState::begin_termination);
        for launched in &self.launched {
            launched
                .stop
                .send_if_modified(|current| set_order(current, StopOrder::Kill));
        }
        for launched in &mut self.launched {
            launched.join().await;
        }
    }
}

/// A new order replaces the current one unless it is weaker: Kill beats Graceful, and an
/// earlier graceful deadline stands.
fn set_order(current: &mut Option<StopOrder>, new: StopOrder) -> bool {
    let replace = match (*current, new) {
        (None, _) => true,
        (Some(StopOrder::Kill), _) => false,
        (Some(StopOrder::Graceful { .. }), StopOrder::Kill) => true,
        (Some(StopOrder::Graceful { deadline: old }), StopOrder::Graceful { deadline }) => {
            deadline < old
        }
    };
    if replace {
        *current = Some(new);
    }
    replace
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stronger_orders_win() {
        let soon = Instant::now();
        let later = soon + Duration::from_secs(5);
        let mut order = None;
        assert!(set_order(
            &mut order,
            StopOrder::Graceful { deadline: later }
        ));
        assert!(!set_order(
            &mut order,
            StopOrder::Graceful {
                deadline: later + Duration::from_secs(1)
            }
        ));
        assert!(set_order(
            &mut order,
            StopOrder::Graceful { deadline: soon }
        ));
        assert!(set_order(&mut order, StopOrder::Kill));
        assert!(!set_order(
            &mut order,
            StopOrder::Graceful { deadline: soon }
        ));
        assert_eq!(order, Some(StopOrder::Kill));
    }
}
