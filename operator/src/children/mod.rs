//! The ensemble's children as pure builders: the same ZkEnsemble always gives the same
//! objects, so the reconciler can server-side apply them every reconcile (DESIGN §5).
//!
//! Every child carries the recommended labels and a controller owner reference to the
//! ZkEnsemble, so deleting the ZkEnsemble garbage-collects them.

mod config;
mod credentials;
mod policy;
mod services;
mod stateful_set;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::crd::ZkEnsembleSpec;
use crate::membership::EnsembleNames;

pub use config::{CONFIG_HASH_ANNOTATION, ZOO_CFG, config_map, initial_servers_of, zoo_cfg};
pub use credentials::{
    DIGEST_KEY, PASSWORD_KEY, SUPER_USER, credentials_secret, generate_password, super_digest,
};
pub use policy::{pod_disruption_budget, service_monitor};
pub use services::{client_service, headless_service};
pub use stateful_set::{SERVER_CONTAINER, keep_claim_templates, server_args, stateful_set};

/// The field manager of every server-side apply this operator does.
pub const FIELD_MANAGER: &str = "paddock-operator";

pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// What every builder needs: the ensemble's names and spec, and who owns the children.
#[derive(Clone, Debug)]
pub struct EnsembleRef<'a> {
    pub names: &'a EnsembleNames,
    pub spec: &'a ZkEnsembleSpec,
    /// The ZkEnsemble's own annotations (the restart annotation is copied from them).
    pub annotations: &'a BTreeMap<String, String>,
    /// Controller owner reference to the ZkEnsemble.
    pub owner: OwnerReference,
}

/// The recommended labels of a child with this component.
pub fn labels(names: &EnsembleNames, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_string(), "paddock".to_string()),
        (LABEL_INSTANCE.to_string(), names.ensemble.clone()),
        (LABEL_COMPONENT.to_string(), component.to_string()),
        (LABEL_MANAGED_BY.to_string(), FIELD_MANAGER.to_string()),
    ])
}

/// Labels that select the ensemble's member pods (a subset of their labels that never
/// changes, since a StatefulSet's selector is immutable).
pub fn member_selector(names: &EnsembleNames) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_string(), "paddock".to_string()),
        (LABEL_INSTANCE.to_string(), names.ensemble.clone()),
        (LABEL_COMPONENT.to_string(), "server".to_string()),
    ])
}

/// `k=v,k=v` form of the member selector, for list calls.
pub fn member_selector_string(names: &EnsembleNames) -> String {
    member_selector(names)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Metadata of a child: name, namespace, labels and the owner reference.
fn metadata(e: &EnsembleRef<'_>, name: String, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(e.names.namespace.clone()),
        labels: Some(labels(e.names, component)),
        owner_references: Some(vec![e.owner.clone()]),
        ..ObjectMeta::default()
    }
}
