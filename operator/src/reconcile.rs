//! One reconcile of a ZkEnsemble: observe, plan, apply the children (except when paused),
//! perform the one action, write the status, emit Events, requeue.
//!
//! Errors (API conflicts, an unreachable API server, a refused action) are returned to the
//! controller, which retries with back-off; none of them is ever read as "remove a member".

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{
    Api, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::children::{self, EnsembleRef, FIELD_MANAGER, PASSWORD_KEY};
use crate::crd::{Phase, ZkEnsemble, ZkEnsembleStatus};
use crate::members::{self, SuperCredential};
use crate::membership::{EnsembleNames, initial_dynamic_config, ordinal_of_id};
use crate::metrics::Metrics;
use crate::observe::{self, observe, serving_ips};
use crate::planner::{Action, Decision, Observed, plan, quorum_view, recheck, takes_a_member_down};
use crate::status::compute_status;

/// What every reconcile needs, and nothing more.
pub struct Context {
    pub client: kube::Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Consecutive failures per ensemble, for the back-off.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(client: kube::Client, recorder: Recorder, metrics: Arc<Metrics>) -> Self {
        Context {
            client,
            recorder,
            metrics,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the ZkEnsemble has no {0} yet")]
    Incomplete(&'static str),
    #[error("credentials: {0}")]
    Credentials(String),
    #[error("{kind} failed: {message}")]
    ActionFailed { kind: &'static str, message: String },
}

/// Requeue soon while something is moving, later when all is well.
const PROGRESS_REQUEUE: Duration = Duration::from_secs(2);
const IDLE_REQUEUE: Duration = Duration::from_secs(30);
const REPLAN_REQUEUE: Duration = Duration::from_millis(200);
/// A reconcile longer than this logs where its time went.
const SLOW_RECONCILE: Duration = Duration::from_secs(5);

fn key_of(zke: &ZkEnsemble) -> String {
    format!("{}/{}", zke.namespace().unwrap_or_default(), zke.name_any())
}

pub async fn reconcile(zke: Arc<ZkEnsemble>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    ctx.metrics.reconciled();
    let key = key_of(&zke);
    if zke.metadata.deletion_timestamp.is_some() {
        // Owner references garbage-collect the children; the StatefulSet's PVC retention
        // policy follows reclaimPolicy.
        ctx.metrics.forget(&key);
        return Ok(Requeue::await_change());
    }
    let namespace = zke.namespace().ok_or(Error::Incomplete("namespace"))?;
    let names = EnsembleNames::new(zke.name_any(), namespace);
    let owner = zke
        .controller_owner_ref(&())
        .ok_or(Error::Incomplete("uid"))?;
    let annotations = zke.metadata.annotations.clone().unwrap_or_default();
    let e = EnsembleRef {
        names: &names,
        spec: &zke.spec,
        annotations: &annotations,
        owner,
    };

    let started = Instant::now();
    let credential = if zke.spec.paused {
        read_credentials(&ctx.client, &names).await?
    } else {
        Some(ensure_credentials(&ctx.client, &e).await?)
    };
    let credentials_done = started.elapsed();
    let observed = observe(&ctx.client, &zke, &names, credential.as_ref()).await?;
    let observed_done = started.elapsed();
    let mut decision = plan(&observed);
    tracing::info!(
        ensemble = %key,
        action = decision.action.kind(),
        reason = %decision.reason,
        "decided"
    );
    ctx.metrics.quorum(&key, quorum_view(&observed).available);

    let mut outcome = Ok(());
    if decision.action != Action::Paused {
        outcome = apply_children(&ctx, &zke, &e, &observed, &decision).await;
    }
    let mut replanned = false;
    if outcome.is_ok() && takes_a_member_down(&decision.action) {
        let fresh = observe::member_pods(&ctx.client, &names).await?;
        if let Some(changed) = recheck(&observed, fresh, &decision) {
            tracing::info!(
                ensemble = %key,
                dropped = decision.action.kind(),
                action = changed.action.kind(),
                reason = %changed.reason,
                "re-planned before acting"
            );
            decision = changed;
            replanned = true;
        }
    }
    let mut detail = None;
    if outcome.is_ok() && !replanned {
        outcome = perform(&ctx, &names, &observed, &decision, credential.as_ref())
            .await
            .map(|d| detail = d);
    }

    let acted_done = started.elapsed();
    let previous = zke.status.as_ref();
    let status = compute_status(&observed, &decision, previous);
    announce(&ctx, &zke, &decision, previous, &outcome, detail).await;
    write_status(&ctx.client, &names, &status).await?;
    let total = started.elapsed();
    if total > SLOW_RECONCILE {
        // Each step has its own bounds; a reconcile this slow holds up the next action,
        // so say where its time went.
        tracing::warn!(
            ensemble = %key,
            total_ms = total.as_millis() as u64,
            credentials_ms = credentials_done.as_millis() as u64,
            observe_ms = (observed_done - credentials_done).as_millis() as u64,
            act_ms = (acted_done - observed_done).as_millis() as u64,
            report_ms = (total - acted_done).as_millis() as u64,
            "slow reconcile"
        );
    }
    outcome?;
    ctx.failures().remove(&key);
    Ok(match decision.action {
        // The world moved under the plan: look again at once.
        _ if replanned => Requeue::requeue(REPLAN_REQUEUE),
        Action::Done | Action::Paused | Action::Degraded { .. } => Requeue::requeue(IDLE_REQUEUE),
        _ => Requeue::requeue(PROGRESS_REQUEUE),
    })
}

/// Back-off after a failed reconcile: 1 s, 2 s, 4 s ... up to a minute. An Event says why.
pub fn error_policy(zke: Arc<ZkEnsemble>, error: &Error, ctx: Arc<Context>) -> Requeue {
    ctx.metrics.reconcile_failed();
    let key = key_of(&zke);
    let failures = {
        let mut f = ctx.failures();
        let n = f.entry(key.clone()).or_default();
        *n = n.saturating_add(1);
        *n
    };
    let delay = Duration::from_secs(1u64 << failures.min(6)).min(Duration::from_secs(60));
    tracing::warn!(ensemble = %key, %error, ?delay, "reconcile failed; retrying");
    let recorder = ctx.recorder.clone();
    let reference = zke.object_ref(&());
    let note = format!("{error}; retrying in {}s", delay.as_secs());
    // Events are best effort; publishing must not hold up the back-off.
    tokio::spawn(async move {
        let event = Event {
            type_: EventType::Warning,
            reason: "ReconcileError".into(),
            note: Some(truncate(note)),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &reference).await {
            tracing::debug!(error = %e, "event not published");
        }
    });
    Requeue::requeue(delay)
}

/// The Secret's password, when the Secret exists.
async fn read_credentials(
    client: &kube::Client,
    names: &EnsembleNames,
) -> Result<Option<SuperCredential>, Error> {
    let api = Api::<Secret>::namespaced(client.clone(), &names.namespace);
    let Some(secret) = api.get_opt(&names.credentials_secret()).await? else {
        return Ok(None);
    };
    let password = secret
        .data
        .as_ref()
        .and_then(|d| d.get(PASSWORD_KEY))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .ok_or_else(|| {
            Error::Credentials(format!(
                "Secret {} has no {PASSWORD_KEY} key",
                names.credentials_secret()
            ))
        })?;
    Ok(Some(SuperCredential::new(password)))
}

/// The credentials Secret: read it, or generate it once. Never regenerated: a Secret that
/// exists is left as it is.
async fn ensure_credentials(
    client: &kube::Client,
    e: &EnsembleRef<'_>,
) -> Result<SuperCredential, Error> {
    if let Some(c) = read_credentials(client, e.names).await? {
        return Ok(c);
    }
    let password = children::generate_password()
        .map_err(|err| Error::Credentials(format!("no randomness for a password: {err}")))?;
    let api = Api::<Secret>::namespaced(client.clone(), &e.names.namespace);
    match api
        .create(
            &PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PostParams::default()
            },
            &children::credentials_secret(e, &password),
        )
        .await
    {
        Ok(_) => {
            tracing::info!(secret = %e.names.credentials_secret(), "generated the ensemble's credentials");
            Ok(SuperCredential::new(password))
        }
        // Someone created it meanwhile: use theirs.
        Err(kube::Error::Api(err)) if err.code == 409 => read_credentials(client, e.names)
            .await?
            .ok_or_else(|| Error::Credentials("Secret vanished after a conflict".into())),
        Err(err) => Err(err.into()),
    }
}

async fn apply<K>(api: &Api<K>, name: &str, object: &K) -> Result<(), kube::Error>
where
    K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map(|_| ())
}

/// Server-side apply of every child. The StatefulSet keeps its replicas unless the action
/// sets them (CreateChildren, ScaleStatefulSet).
async fn apply_children(
    ctx: &Context,
    zke: &ZkEnsemble,
    e: &EnsembleRef<'_>,
    observed: &Observed,
    decision: &Decision,
) -> Result<(), Error> {
    let client = &ctx.client;
    let ns = e.names.namespace.as_str();
    let replicas = match &decision.action {
        Action::CreateChildren { replicas } | Action::ScaleStatefulSet { replicas } => *replicas,
        _ => observed
            .stateful_set
            .as_ref()
            .map_or(e.spec.replicas, |s| s.replicas),
    };

    // The initial members are written once; later membership changes only by reconfig.
    let cm_api = Api::<ConfigMap>::namespaced(client.clone(), ns);
    let existing = cm_api
        .get_opt(&e.names.config_map())
        .await?
        .and_then(|cm| cm.data)
        .and_then(|d| d.get(children::ZOO_CFG).cloned())
        .map(|cfg| children::initial_servers_of(&cfg))
        .filter(|s| !s.is_empty());
    let initial =
        existing.unwrap_or_else(|| initial_dynamic_config(e.names, replicas, e.spec.observers));
    apply(
        &cm_api,
        &e.names.config_map(),
        &children::config_map(e, &initial),
    )
    .await?;

    let svc_api = Api::<Service>::namespaced(client.clone(), ns);
    apply(
        &svc_api,
        &e.names.headless_service(),
        &children::headless_service(e),
    )
    .await?;
    apply(
        &svc_api,
        &e.names.client_service(),
        &children::client_service(e),
    )
    .await?;

    let sts_api = Api::<StatefulSet>::namespaced(client.clone(), ns);
    let sts = children::keep_claim_templates(
        children::stateful_set(e, replicas),
        observed
            .stateful_set
            .as_ref()
            .map(|s| s.claim_templates.clone()),
    );
    apply(&sts_api, &e.names.stateful_set(), &sts).await?;

    let pdb_api = Api::<PodDisruptionBudget>::namespaced(client.clone(), ns);
    match children::pod_disruption_budget(e) {
        Some(pdb) => apply(&pdb_api, &e.names.stateful_set(), &pdb).await?,
        None => match pdb_api
            .delete(&e.names.stateful_set(), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(err)) if err.code == 404 => {}
            Err(err) => return Err(err.into()),
        },
    }

    if let Some(monitor) = children::service_monitor(e) {
        apply_service_monitor(ctx, zke, e, monitor).await;
    }
    Ok(())
}

/// The ServiceMonitor, only when its CRD exists; otherwise a warning Event (the ensemble is
/// not Degraded for it).
async fn apply_service_monitor(
    ctx: &Context,
    zke: &ZkEnsemble,
    e: &EnsembleRef<'_>,
    monitor: serde_json::Value,
) {
    let gvk = GroupVersionKind::gvk("monitoring.coreos.com", "v1", "ServiceMonitor");
    let result = async {
        let (resource, _) = kube::discovery::pinned_kind(&ctx.client, &gvk).await?;
        let api = Api::<DynamicObject>::namespaced_with(
            ctx.client.clone(),
            &e.names.namespace,
            &resource,
        );
        let object: DynamicObject =
            serde_json::from_value(monitor).map_err(kube::Error::SerdeError)?;
        api.patch(
            &e.names.stateful_set(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .map(|_| ())
    }
    .await;
    if let Err(err) = result {
        publish(
            ctx,
            zke,
            EventType::Warning,
            "ServiceMonitorSkipped",
            format!(
                "spec.metrics.serviceMonitor is true but no ServiceMonitor could be applied (is prometheus-operator's CRD installed?): {err}"
            ),
        )
        .await;
    }
}

/// The one action of this reconcile; returns what the action's Event should add to the
/// decision's reason (how long a leadership transfer took).
async fn perform(
    ctx: &Context,
    names: &EnsembleNames,
    observed: &Observed,
    decision: &Decision,
    credential: Option<&SuperCredential>,
) -> Result<Option<String>, Error> {
    let mut detail = None;
    let kind = decision.action.kind();
    let failed = |message: String| Error::ActionFailed { kind, message };
    let ns = names.namespace.as_str();
    match &decision.action {
        Action::DeletePod { name } => {
            Api::<Pod>::namespaced(ctx.client.clone(), ns)
                .delete(name, &DeleteParams::default())
                .await?;
        }
        Action::TransferLeadership { from, to } => {
            let credential = credential.ok_or_else(|| failed("no credentials".into()))?;
            let ip = ordinal_of_id(*from)
                .and_then(|o| observed.pods.iter().find(|p| p.ordinal == o))
                .and_then(|p| p.ip.clone())
                .ok_or_else(|| failed(format!("leader {from} has no pod IP")))?;
            let started = Instant::now();
            members::transfer_leadership(&ip, *to, credential)
                .await
                .map_err(failed)?;
            let took = started.elapsed();
            ctx.metrics.leader_transfer(took);
            tracing::info!(
                from,
                to,
                took_ms = took.as_millis() as u64,
                "leadership transferred"
            );
            detail = Some(format!("transferred in {} ms", took.as_millis()));
        }
        Action::Reconfig {
            change,
            from_config_version,
        } => {
            let credential = credential.ok_or_else(|| failed("no credentials".into()))?;
            let config = members::reconfig(
                &serving_ips(&observed.pods),
                credential,
                change,
                *from_config_version,
            )
            .await
            .map_err(failed)?;
            tracing::info!(
                version = format!("{:#x}", config.version),
                "reconfig committed"
            );
        }
        Action::DeletePvc { name } => {
            match Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), ns)
                .delete(name, &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(err)) if err.code == 404 => {}
                Err(err) => return Err(err.into()),
            }
        }
        Action::ResizePvc { name, size } => {
            let body = json!({"spec": {"resources": {"requests": {"storage": size}}}});
            Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), ns)
                .patch(name, &PatchParams::default(), &Patch::Merge(&body))
                .await?;
        }
        // Applied with the children.
        Action::CreateChildren { .. } | Action::ScaleStatefulSet { .. } => {}
        Action::WaitFor { .. } | Action::Degraded { .. } | Action::Paused | Action::Done => {
            return Ok(None);
        }
    }
    ctx.metrics.action(kind);
    Ok(detail)
}

/// Events: one per action, per new wait, per refusal or timeout, per failure; a wait that
/// goes on (same key as the status already shows) is not repeated.
async fn announce(
    ctx: &Context,
    zke: &ZkEnsemble,
    decision: &Decision,
    previous: Option<&ZkEnsembleStatus>,
    outcome: &Result<(), Error>,
    detail: Option<String>,
) {
    let reason = match detail {
        Some(detail) => format!("{}; {detail}", decision.reason),
        None => decision.reason.clone(),
    };
    let Some((type_, event_reason)) = event_for(&decision.action, previous) else {
        return;
    };
    match outcome {
        Err(err @ Error::ActionFailed { .. }) => {
            publish(
                ctx,
                zke,
                EventType::Warning,
                "ActionFailed",
                format!("{reason}: {err}"),
            )
            .await;
        }
        Err(_) => {}
        Ok(()) => {
            // Events aggregate by (reason, action), not by note: a wait's key as the action
            // keeps two different waits apart in `kubectl describe`.
            let action = match &decision.action {
                Action::WaitFor { key } | Action::Degraded { key } => key.as_str(),
                _ => event_reason,
            };
            publish_as(ctx, zke, type_, event_reason, action, reason).await;
        }
    }
}

/// The Event this action deserves, given what the status already shows: None for a wait,
/// refusal, pause or steady state that goes on.
pub fn event_for(
    action: &Action,
    previous: Option<&ZkEnsembleStatus>,
) -> Option<(EventType, &'static str)> {
    let previous_wait = previous
        .and_then(|s| s.waiting.as_ref())
        .map(|w| w.key.as_str());
    let previous_phase = previous.and_then(|s| s.phase);
    Some(match action {
        Action::WaitFor { key } if previous_wait == Some(key.as_str()) => return None,
        Action::WaitFor { .. } => (EventType::Normal, "Waiting"),
        Action::Degraded { key }
            if previous_wait == Some(key.as_str()) && previous_phase == Some(Phase::Degraded) =>
        {
            return None;
        }
        Action::Degraded { .. } => (EventType::Warning, "Degraded"),
        Action::Paused if previous_phase == Some(Phase::Paused) => return None,
        Action::Paused => (EventType::Normal, "Paused"),
        Action::Done if previous_phase == Some(Phase::Running) => return None,
        Action::Done => (EventType::Normal, "Reconciled"),
        action => (EventType::Normal, action.kind()),
    })
}

async fn publish(ctx: &Context, zke: &ZkEnsemble, type_: EventType, reason: &str, note: String) {
    publish_as(ctx, zke, type_, reason, reason, note).await;
}

async fn publish_as(
    ctx: &Context,
    zke: &ZkEnsemble,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(truncate(note)),
        action: action.chars().take(128).collect(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &zke.object_ref(&())).await {
        tracing::debug!(error = %e, "event not published");
    }
}

/// Event notes are limited to 1 kB.
fn truncate(mut note: String) -> String {
    if note.len() > 1000 {
        let mut end = 1000;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
    }
    note
}

/// Writes the status through the status subresource (server-side apply, so fields that no
/// longer apply, such as a finished wait, disappear).
async fn write_status(
    client: &kube::Client,
    names: &EnsembleNames,
    status: &ZkEnsembleStatus,
) -> Result<(), Error> {
    let api = Api::<ZkEnsemble>::namespaced(client.clone(), &names.namespace);
    let body = json!({
        "apiVersion": "paddock.dev/v1alpha1",
        "kind": "ZkEnsemble",
        "status": status,
    });
    api.patch_status(
        &names.ensemble,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::WaitStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn status(phase: Phase, wait: Option<&str>) -> ZkEnsembleStatus {
        ZkEnsembleStatus {
            phase: Some(phase),
            waiting: wait.map(|k| WaitStatus {
                key: k.into(),
                since: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                message: String::new(),
            }),
            ..ZkEnsembleStatus::default()
        }
    }

    #[test]
    fn a_wait_is_announced_once_per_key() {
        let wait = Action::WaitFor {
            key: "PodReady/zk-1".into(),
        };
        assert_eq!(event_for(&wait, None), Some((EventType::Normal, "Waiting")));
        let same = status(Phase::Upgrading, Some("PodReady/zk-1"));
        assert_eq!(event_for(&wait, Some(&same)), None);
        let other = status(Phase::Upgrading, Some("PodReady/zk-0"));
        assert!(event_for(&wait, Some(&other)).is_some());
    }

    #[test]
    fn actions_always_and_steady_states_on_change() {
        let running = status(Phase::Running, None);
        let delete = Action::DeletePod {
            name: "zk-0".into(),
        };
        assert_eq!(
            event_for(&delete, Some(&running)),
            Some((EventType::Normal, "DeletePod"))
        );
        assert_eq!(event_for(&Action::Done, Some(&running)), None);
        assert_eq!(
            event_for(&Action::Done, Some(&status(Phase::Creating, None))),
            Some((EventType::Normal, "Reconciled"))
        );
        let degraded = Action::Degraded {
            key: "Quorum/zk".into(),
        };
        assert_eq!(
            event_for(&degraded, Some(&running)),
            Some((EventType::Warning, "Degraded"))
        );
        assert_eq!(
            event_for(&degraded, Some(&status(Phase::Degraded, Some("Quorum/zk")))),
            None
        );
    }

    #[test]
    fn notes_are_cut_at_a_char_boundary() {
        let cut = truncate("é".repeat(800));
        assert!(cut.len() <= 1000);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
