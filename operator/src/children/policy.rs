//! The PodDisruptionBudget and the optional ServiceMonitor.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::{EnsembleRef, labels, member_selector, metadata};

/// maxUnavailable 1: a drain takes one member at a time (None when spec.pdb.enabled is false).
pub fn pod_disruption_budget(e: &EnsembleRef<'_>) -> Option<PodDisruptionBudget> {
    e.spec.pdb.enabled.then(|| PodDisruptionBudget {
        metadata: metadata(e, e.names.stateful_set(), "pdb"),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(member_selector(e.names)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    })
}

/// A prometheus-operator ServiceMonitor scraping the members' /metrics through the headless
/// Service (None unless spec.metrics.serviceMonitor). Built as JSON: the operator applies it
/// as a dynamic object only when the ServiceMonitor CRD exists.
pub fn service_monitor(e: &EnsembleRef<'_>) -> Option<serde_json::Value> {
    if !e.spec.metrics.service_monitor {
        return None;
    }
    let mut selector = labels(e.names, "headless");
    selector.remove(super::LABEL_MANAGED_BY);
    Some(json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": metadata(e, e.names.stateful_set(), "metrics"),
        "spec": {
            "selector": {"matchLabels": selector},
            "endpoints": [{"port": "admin", "path": "/metrics"}],
        },
    }))
}
