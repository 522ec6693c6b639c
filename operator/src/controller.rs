//! The kube-runtime Controller: ZkEnsembles, the children they own, and their member pods
//! (watched by label, since pods are owned by the StatefulSet, not the ZkEnsemble).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Predicate, WatchStreamExt, predicates, watcher};
use kube::{Resource, ResourceExt};

use crate::children::{
    FIELD_MANAGER, LABEL_COMPONENT, LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_NAME,
};
use crate::crd::ZkEnsemble;
use crate::metrics::{Health, Metrics};
use crate::reconcile::{Context, error_policy, reconcile};

fn api<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the controller until a shutdown signal; `health` turns ready once its caches synced.
pub async fn run(
    client: kube::Client,
    namespace: Option<String>,
    identity: String,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) {
    let ns = namespace.as_deref();
    let owned = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={FIELD_MANAGER}"));
    let members = watcher::Config::default()
        .labels(&format!("{LABEL_NAME}=paddock,{LABEL_COMPONENT}=server"));
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: FIELD_MANAGER.into(),
            instance: Some(identity),
        },
    );
    let ctx = Arc::new(Context::new(client.clone(), recorder, metrics));
    // Only spec (generation) and annotation (restart) changes of a ZkEnsemble trigger a
    // reconcile: the operator's own status writes (zxids move with every session, its own
    // included) would otherwise trigger the next reconcile at once, forever.
    let (reader, writer) = reflector::store();
    let ensembles = watcher(api::<ZkEnsemble>(&client, ns), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            Predicate::<ZkEnsemble>::combine(predicates::generation, predicates::annotations),
            Default::default(),
        );
    let controller = Controller::for_stream(ensembles, reader)
        .owns(api::<StatefulSet>(&client, ns), owned.clone())
        .owns(api::<ConfigMap>(&client, ns), owned.clone())
        .owns(api::<Service>(&client, ns), owned.clone())
        .owns(api::<Secret>(&client, ns), owned.clone())
        .owns(api::<PodDisruptionBudget>(&client, ns), owned)
        .watches(api::<Pod>(&client, ns), members, |pod: Pod| {
            let ensemble = pod.labels().get(LABEL_INSTANCE)?.clone();
            let ns = pod.namespace()?;
            Some(ObjectRef::<ZkEnsemble>::new(&ensemble).within(&ns))
        })
        .shutdown_on_signal();
    let store = controller.store();
    tokio::spawn(async move {
        // The store's readiness is a oneshot that wakes only its latest waiter (the
        // controller's own runner), so ask again every half second instead of waiting once.
        loop {
            match tokio::time::timeout(Duration::from_millis(500), store.wait_until_ready()).await {
                Ok(Ok(())) => {
                    tracing::info!("caches synced");
                    health.set_ready(true);
                    return;
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "the ZkEnsemble cache never filled");
                    return;
                }
                Err(_) => {}
            }
        }
    });
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
}
