//! The `ZkEnsemble` custom resource (DESIGN §5): spec, defaults and the API server's own rules.
//!
//! Doc comments on fields become the descriptions `kubectl explain zke.spec...` prints, so they
//! are written for users. The CEL rules (`x-kubernetes-validations`) refuse specs the planner
//! could not honour, with messages that say what to do instead.

mod spec;
mod status;

pub use spec::*;
pub use status::*;

use kube::CustomResourceExt;

/// Annotation on a ZkEnsemble whose change restarts every member (one at a time, quorum-safe).
/// The reconciler copies its value into the pod template, so a change shows up as a new
/// StatefulSet revision like any other template change.
pub const RESTART_ANNOTATION: &str = "paddock.dev/restartedAt";

/// The container image used when `spec.image` is not set: this operator's own release.
pub const DEFAULT_IMAGE: &str = concat!("paddock/server:", env!("CARGO_PKG_VERSION"));

/// Annotations of the member pod template: spec.pod.annotations plus the restart annotation
/// copied from the ZkEnsemble, so changing either gives the StatefulSet a new revision (which
/// is what the planner rolls on).
pub fn pod_template_annotations(
    spec: &ZkEnsembleSpec,
    ensemble_annotations: &std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    let mut out = spec.pod.annotations.clone();
    if let Some(stamp) = ensemble_annotations.get(RESTART_ANNOTATION) {
        out.insert(RESTART_ANNOTATION.to_string(), stamp.clone());
    }
    out
}

/// The CRD as YAML, exactly what `paddock-operator crd` prints and `crds/` holds.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&ZkEnsemble::crd())
}

#[cfg(test)]
mod tests;
