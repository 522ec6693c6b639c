//! One container's supervisor: pulls (or fails to), starts its process, probes it, restarts
//! it with back-off per its restart rule, and stops it on order (preStop, SIGTERM, grace,
//! SIGKILL). It reports through the pod's [`Shared`] status and its [`Milestone`].

use std::future::pending;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{LifecycleHandler, Probe};
use tokio::process::Child;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use super::backoff::{BackoffPolicy, go_duration};
use super::expand::expand_all;
use super::probe::{Action, ActionContext, ExecContext, ProbeSettings, Tracker, run_action};
use super::spawn::{GroupKiller, Output, ProcessSpec, signal_group, spawn};
use super::status::{Exit, Shared, Slot, mark_running, mark_terminated, mark_waiting, now};
use super::{ContainerKind, ContainerPlan, EventType, PodSandbox, RestartPolicy};

/// An order to stop, sent by the pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StopOrder {
    /// preStop, SIGTERM, SIGKILL at the deadline.
    Graceful { deadline: Instant },
    /// SIGKILL now, no hooks (power loss).
    Kill,
}

/// What the pod waits on to sequence containers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Milestone {
    /// Started once (startup probe passed, or running when there is none).
    pub started: bool,
    /// Will not run again: Some(true) when the last run exited 0.
    pub finished: Option<bool>,
}

/// Everything a supervisor owns.
pub(crate) struct ContainerTask {
    pub plan: ContainerPlan,
    pub slot: Slot,
    /// The container's own restart rule (sidecars: Always; init containers: never Always).
    pub restart: RestartPolicy,
    pub sandbox: Arc<PodSandbox>,
    pub shared: Arc<Shared>,
    pub backoff: BackoffPolicy,
    /// The pod's termination grace, used when a probe kills the container.
    pub grace: Duration,
    pub milestone: Arc<watch::Sender<Milestone>>,
    pub stop: watch::Receiver<Option<StopOrder>>,
}

/// How one run of the process ended.
enum RunEnd {
    /// Exited by itself or was killed by a failed probe: the restart rule applies.
    Exited(Exit),
    /// Stopped on the pod's order: no restart.
    Stopped,
}

impl ContainerTask {
    /// Runs until the container will not run again or the pod orders it stopped.
    pub async fn supervise(mut self) {
        let entrypoint = match self.plan.entrypoint.clone() {
            Ok(path) => path,
            Err(message) => return self.fail_image_pull(message).await,
        };
        let env = match self.plan.env.clone() {
            Ok(env) => env,
            Err(message) => return self.fail_config(message).await,
        };
        let argv = container_argv(&self.plan, &entrypoint, &env);
        let ctx = ActionContext {
            pod_ip: self.sandbox.pod_ip,
            ports: self.plan.ports.clone(),
            exec: ExecContext {
                env,
                mounts: self.plan.mounts.clone(),
                hosts_file: self.sandbox.hosts_file.clone(),
                working_dir: self.plan.working_dir.clone(),
                inherit_fd: self.sandbox.inherit_fd.clone(),
                cgroup_procs: self.sandbox.cgroup_procs.clone(),
            },
        };
        let image_id = format!("kubesim://{}", entrypoint.display());
        let mut failures = 0u32;
        let mut restarts = 0i32;
        loop {
            if self.stop.borrow().is_some() {
                return;
            }
            let run_started = Instant::now();
            let exit = match self.run_once(&argv, &ctx, &image_id, restarts).await {
                RunEnd::Stopped => return,
                RunEnd::Exited(exit) => exit,
            };
            let succeeded = exit.exit_code == 0;
            let restart = match self.restart {
                RestartPolicy::Always => true,
                RestartPolicy::OnFailure => !succeeded,
                RestartPolicy::Never => false,
            };
            if !restart || self.stop.borrow().is_some() {
                self.milestone.send_modify(|m| m.finished = Some(succeeded));
                return;
            }
            if run_started.elapsed() >= self.backoff.reset_after() {
                failures = 0;
            }
            failures = failures.saturating_add(1);
            let delay = self.backoff.delay(failures);
            if !delay.is_zero() {
                let message = format!(
                    "back-off {} restarting failed container={} pod={}",
                    go_duration(delay),
                    self.plan.name,
                    self.sandbox.kubelet_name()
                );
                self.shared.container(self.slot, |s, _| {
                    mark_waiting(s, "CrashLoopBackOff", Some(message))
                });
                self.event(
                    EventType::Warning,
                    "BackOff",
                    format!(
                        "Back-off restarting failed container {} in pod {}",
                        self.plan.name,
                        self.sandbox.kubelet_name()
                    ),
                );
                if self.sleep_unless_stopped(delay).await {
                    return;
                }
            }
            restarts = restarts.saturating_add(1);
        }
    }

    /// One run of the process, from spawn to its end.
    async fn run_once(
        &mut self,
        argv: &[String],
        ctx: &ActionContext,
        image_id: &str,
        restarts: i32,
    ) -> RunEnd {
        let spec = ProcessSpec {
            argv,
            env: &ctx.exec.env,
            working_dir: ctx.exec.working_dir.as_deref(),
            mounts: &ctx.exec.mounts,
            hosts_file: &ctx.exec.hosts_file,
            inherit_fd: ctx.exec.inherit_fd.as_ref().map(|fd| fd.as_fd()),
            cgroup_procs: ctx.exec.cgroup_procs.as_deref(),
            output: Output::Append(self.sandbox.log_dir.join(format!("{}.log", self.plan.name))),
        };
        let started_at = now();
        let mut child = match spawn(&spec) {
            Ok(child) => child,
            Err(e) => {
                let message = e.to_string();
                self.event(EventType::Warning, "Failed", format!("Error: {message}"));
                let exit = Exit {
                    exit_code: 128,
                    signal: None,
                    reason: "StartError".to_owned(),
                    message: Some(message),
                    started_at: started_at.clone(),
                    finished_at: now(),
                };
                self.shared.container(self.slot, |s, _| {
                    s.restart_count = restarts;
                    mark_terminated(s, exit.clone(), self.plan.kind);
                });
                return RunEnd::Exited(exit);
            }
        };
        let pid = child.id().unwrap_or(0);
        // Once the run is over (or if this task is dropped), nothing of its group may outlive it.
        let group = GroupKiller(pid);
        tracing::debug!(container = %self.plan.name, pid, "container started");
        self.shared.container(self.slot, |s, _| {
            mark_running(s, pid, image_id.to_owned(), restarts, started_at.clone())
        });
        self.event(
            EventType::Normal,
            "Started",
            format!("Started container {}", self.plan.name),
        );

        let probes = ProbeDriver {
            post_start: self
                .plan
                .lifecycle
                .as_ref()
                .and_then(|l| l.post_start.clone()),
            startup: self.plan.startup_probe.clone(),
            liveness: self.plan.liveness_probe.clone(),
            readiness: self.plan.readiness_probe.clone(),
            ctx: ctx.clone(),
            shared: self.shared.clone(),
            slot: self.slot,
            name: self.plan.name.clone(),
            milestone: self.milestone.clone(),
            grace: self.grace,
        }
        .drive();
        tokio::pin!(probes);
        let mut stop = self.stop.clone();
        let (status, stopped) = loop {
            tokio::select! {
                status = child.wait() => break (status, false),
                kill = &mut probes => {
                    self.event(EventType::Normal, "Killing", kill.message);
                    let deadline = Instant::now() + kill.grace;
                    break (self.stop_process(&mut child, pid, StopOrder::Graceful { deadline }, ctx).await, false);
                }
                changed = stop.changed() => {
                    let order = if changed.is_ok() { *stop.borrow_and_update() } else { Some(StopOrder::Kill) };
                    if let Some(order) = order {
                        break (self.stop_process(&mut child, pid, order, ctx).await, true);
                    }
                }
            }
        };
        drop(group);
        let exit = match status {
            Ok(status) => Exit::from_status(status, started_at),
            Err(e) => Exit {
                message: Some(format!("waiting for the process: {e}")),
                ..Exit::with_code(255, None, started_at)
            },
        };
        tracing::debug!(container = %self.plan.name, pid, exit_code = exit.exit_code, "container exited");
        self.shared.container(self.slot, |s, _| {
            mark_terminated(s, exit.clone(), self.plan.kind)
        });
        if stopped {
            RunEnd::Stopped
        } else {
            RunEnd::Exited(exit)
        }
    }

    /// Stops the running process as ordered and returns its wait status.
    async fn stop_process(
        &mut self,
        child: &mut Child,
        pid: u32,
        order: StopOrder,
        ctx: &ActionContext,
    ) -> std::io::Result<std::process::ExitStatus> {
        let StopOrder::Graceful { deadline } = order else {
            signal_group(pid, libc::SIGKILL);
            return child.wait().await;
        };
        self.shared.container(self.slot, |s, _| s.ready = false);
        self.event(
            EventType::Normal,
            "Killing",
            format!("Stopping container {}", self.plan.name),
        );
        let mut stop = self.stop.clone();
        let pre_stop = self
            .plan
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.clone());
        if let Some(handler) = pre_stop {
            let budget = deadline.saturating_duration_since(Instant::now());
            let hook = run_action(Action::of_hook(&handler), ctx, budget);
            tokio::select! {
                result = hook => if let Err(message) = result {
                    self.event(EventType::Warning, "FailedPreStopHook", format!("PreStopHook failed: {message}"));
                },
                () = kill_ordered(&mut stop) => {
                    signal_group(pid, libc::SIGKILL);
                    return child.wait().await;
                }
            }
        }
        signal_group(pid, libc::SIGTERM);
        tokio::select! {
            status = child.wait() => return status,
            () = tokio::time::sleep_until(deadline) => {}
            () = kill_ordered(&mut stop) => {}
        }
        signal_group(pid, libc::SIGKILL);
        child.wait().await
    }

    /// The image cannot be had: ErrImagePull, then ImagePullBackOff, retried with back-off
    /// until the pod is stopped (the plan's answer does not change in a pod's life).
    async fn fail_image_pull(mut self, message: String) {
        let mut attempts = 0u32;
        loop {
            attempts = attempts.saturating_add(1);
            let image = self.plan.image.clone();
            self.shared.container(self.slot, |s, _| {
                mark_waiting(s, "ErrImagePull", Some(message.clone()))
            });
            self.event(
                EventType::Warning,
                "Failed",
                format!("Failed to pull image {image:?}: {message}"),
            );
            // ErrImagePull shows until the next sync; then the back-off.
            if self
                .sleep_unless_stopped(self.backoff.base.min(Duration::from_secs(1)))
                .await
            {
                return;
            }
            let waiting = format!("Back-off pulling image {image:?}: ErrImagePull: {message}");
            self.shared.container(self.slot, |s, _| {
                mark_waiting(s, "ImagePullBackOff", Some(waiting))
            });
            self.event(
                EventType::Normal,
                "BackOff",
                format!("Back-off pulling image {image:?}"),
            );
            if self
                .sleep_unless_stopped(self.backoff.delay(attempts.saturating_add(1)))
                .await
            {
                return;
            }
        }
    }

    /// The container's config cannot be resolved: wait as CreateContainerConfigError.
    async fn fail_config(mut self, message: String) {
        self.shared.container(self.slot, |s, _| {
            mark_waiting(s, "CreateContainerConfigError", Some(message.clone()))
        });
        self.event(EventType::Warning, "Failed", format!("Error: {message}"));
        stop_ordered(&mut self.stop).await;
    }

    /// Sleeps; true when a stop order came first.
    async fn sleep_unless_stopped(&mut self, duration: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(duration) => false,
            () = stop_ordered(&mut self.stop) => true,
        }
    }

    fn event(&self, type_: EventType, reason: &str, message: String) {
        self.shared.event(type_, reason, &self.plan.name, message);
    }
}

/// Resolves once any stop order is given (or the pod is gone).
async fn stop_ordered(stop: &mut watch::Receiver<Option<StopOrder>>) {
    if stop.wait_for(Option::is_some).await.is_err() {
        // The pod dropped its sender: it has nothing more to say; treat as an order.
    }
}

/// Resolves once the order is Kill (or the pod is gone).
async fn kill_ordered(stop: &mut watch::Receiver<Option<StopOrder>>) {
    let _ = stop.wait_for(|order| *order == Some(StopOrder::Kill)).await;
}

/// argv of the container: command (replacing the entrypoint) or the entrypoint, then args,
/// both with `$(VAR)` expanded.
pub(crate) fn container_argv(
    plan: &ContainerPlan,
    entrypoint: &std::path::Path,
    env: &[(String, String)],
) -> Vec<String> {
    let mut argv = if plan.command.is_empty() {
        vec![entrypoint.display().to_string()]
    } else {
        expand_all(&plan.command, env)
    };
    argv.extend(expand_all(&plan.args, env));
    argv
}

/// The least time a postStart hook gets, however short the pod's grace period.
const POST_START_MIN_BUDGET: Duration = Duration::from_secs(30);

/// A failed postStart hook, startup or liveness probe: the container is to be killed and restarted.
struct ProbeKill {
    message: String,
    grace: Duration,
}

/// The probes of one run of a container.
struct ProbeDriver {
    post_start: Option<LifecycleHandler>,
    startup: Option<Probe>,
    liveness: Option<Probe>,
    readiness: Option<Probe>,
    ctx: ActionContext,
    shared: Arc<Shared>,
    slot: Slot,
    name: String,
    milestone: Arc<watch::Sender<Milestone>>,
    grace: Duration,
}

#[derive(Clone, Copy)]
enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    fn title(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }
}

impl ProbeDriver {
    /// Runs the postStart hook, then the probes; resolves only when the hook failed or a
    /// startup or liveness probe failed for good.
    async fn drive(self) -> ProbeKill {
        let run_start = Instant::now();
        if let Some(handler) = &self.post_start {
            // A kubelet waits for postStart before it probes; bound it by the grace period.
            let budget = self.grace.max(POST_START_MIN_BUDGET);
            if let Err(message) = run_action(Action::of_hook(handler), &self.ctx, budget).await {
                self.shared.event(
                    EventType::Warning,
                    "FailedPostStartHook",
                    &self.name,
                    format!("PostStartHook failed: {message}"),
                );
                return ProbeKill {
                    message: format!(
                        "Container {} failed its postStart hook, will be restarted",
                        self.name
                    ),
                    grace: self.grace,
                };
            }
        }
        if let Some(probe) = &self.startup {
            let mut rounds = self.rounds(probe, run_start);
            loop {
                match self
                    .next_verdict(&mut rounds, probe, ProbeKind::Startup)
                    .await
                {
                    Some(true) => break,
                    Some(false) => return self.kill_for(probe, "startup"),
                    None => {}
                }
            }
        }
        self.shared.container(self.slot, |s, flags| {
            s.started = Some(true);
            if self.readiness.is_none() {
                s.ready = !flags.terminating;
            }
        });
        self.milestone.send_modify(|m| m.started = true);
        tokio::select! {
            kill = self.watch_liveness(run_start) => kill,
            never = self.watch_readiness(run_start) => never,
        }
    }

    async fn watch_liveness(&self, run_start: Instant) -> ProbeKill {
        let Some(probe) = &self.liveness else {
            return pending().await;
        };
        let mut rounds = self.rounds(probe, run_start);
        loop {
            if self
                .next_verdict(&mut rounds, probe, ProbeKind::Liveness)
                .await
                == Some(false)
            {
                return self.kill_for(probe, "liveness");
            }
        }
    }

    async fn watch_readiness(&self, run_start: Instant) -> ProbeKill {
        let Some(probe) = &self.readiness else {
            return pending().await;
        };
        let mut rounds = self.rounds(probe, run_start);
        loop {
            if let Some(ready) = self
                .next_verdict(&mut rounds, probe, ProbeKind::Readiness)
                .await
            {
                self.shared
                    .container(self.slot, |s, flags| s.ready = ready && !flags.terminating);
            }
        }
    }

    fn rounds(&self, probe: &Probe, run_start: Instant) -> Rounds {
        let settings = ProbeSettings::of(probe);
        let mut ticker =
            tokio::time::interval_at(run_start + settings.initial_delay, settings.period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Rounds {
            settings,
            tracker: Tracker::new(&settings),
            ticker,
        }
    }

    /// Waits for the next period, probes once, and returns the verdict so far.
    async fn next_verdict(
        &self,
        rounds: &mut Rounds,
        probe: &Probe,
        kind: ProbeKind,
    ) -> Option<bool> {
        rounds.ticker.tick().await;
        let result = run_action(Action::of_probe(probe), &self.ctx, rounds.settings.timeout).await;
        if let Err(message) = &result {
            self.shared.event(
                EventType::Warning,
                "Unhealthy",
                &self.name,
                format!("{} probe failed: {message}", kind.title()),
            );
        }
        rounds.tracker.observe(result.is_ok())
    }

    fn kill_for(&self, probe: &Probe, which: &str) -> ProbeKill {
        let grace = probe
            .termination_grace_period_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs)
            .unwrap_or(self.grace);
        ProbeKill {
            message: format!(
                "Container {} failed {which} probe, will be restarted",
                self.name
            ),
            grace,
        }
    }
}

struct Rounds {
    settings: ProbeSettings,
    tracker: Tracker,
    ticker: tokio::time::Interval,
}

impl ContainerKind {
    /// The restart rule of a container of this kind in a pod with `policy`.
    pub(crate) fn restart_rule(self, policy: RestartPolicy) -> RestartPolicy {
        match (self, policy) {
            (ContainerKind::Sidecar, _) => RestartPolicy::Always,
            (ContainerKind::Init, RestartPolicy::Always) => RestartPolicy::OnFailure,
            (_, policy) => policy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_rules() {
        use ContainerKind::*;
        use RestartPolicy::*;
        assert_eq!(Sidecar.restart_rule(Never), Always);
        assert_eq!(Init.restart_rule(Always), OnFailure);
        assert_eq!(Init.restart_rule(Never), Never);
        assert_eq!(Main.restart_rule(OnFailure), OnFailure);
    }
}
