//! Growing the members' volumes when spec.storage.size grows. A StatefulSet's claim templates
//! are immutable, so each member's PersistentVolumeClaim is grown in place (its request
//! raised) and the storage provider expands the volume while the pod keeps running. Shrinking
//! is refused by the CRD's own rule, so only growth reaches here.

use crate::quantity;

use super::observed::PvcView;
use super::world::World;
use super::{Action, Decision, WaitKind, decide, refuse_as, wait};

/// The members' claims (ordinals below the StatefulSet's replicas), lowest ordinal first.
fn member_claims<'a>(w: &'a World, replicas: u32) -> impl Iterator<Item = &'a PvcView> {
    let mut claims: Vec<&PvcView> = w
        .obs
        .pvcs
        .iter()
        .filter(|p| p.ordinal < replicas && !p.terminating)
        .collect();
    claims.sort_by_key(|p| p.ordinal);
    claims.into_iter()
}

/// The first member claim that requests less than spec.storage.size: raise its request, or
/// stop (Degraded) when its StorageClass does not allow expansion.
pub(super) fn grow_claims(w: &World, replicas: u32) -> Option<Decision> {
    let storage = &w.obs.ensemble.spec.storage;
    if storage.ephemeral {
        return None;
    }
    let size = &storage.size.0;
    let Some(want) = quantity::bytes(size) else {
        return Some(refuse_as(
            w,
            "StorageSizeUnreadable",
            &w.obs.ensemble.names.ensemble,
            format!(
                "spec.storage.size {size:?} is a quantity form the operator cannot compare (use a form like 10Gi): the claims are left as they are"
            ),
        ));
    };
    let claim = member_claims(w, replicas).find(|p| {
        p.requested
            .as_deref()
            .and_then(quantity::bytes)
            .is_some_and(|have| have < want)
    })?;
    let have = claim.requested.as_deref().unwrap_or("?");
    if claim.expansion_allowed == Some(false) {
        let class = claim.storage_class.as_deref().unwrap_or("(none)");
        return Some(refuse_as(
            w,
            "VolumeExpansionNotAllowed",
            class,
            format!(
                "spec.storage.size is {size} but PVC {} has {have} and its StorageClass {class} does not allow volume expansion: set allowVolumeExpansion: true on StorageClass {class} (if its provisioner can expand volumes) and the operator grows the claims; the members keep running on their current volumes meanwhile",
                claim.name
            ),
        ));
    }
    Some(decide(
        w,
        Action::ResizePvc {
            name: claim.name.clone(),
            size: size.clone(),
        },
        format!(
            "spec.storage.size is {size}: growing PVC {} from {have} (the claim template of a StatefulSet cannot change; the pod keeps running while the volume expands)",
            claim.name
        ),
    ))
}

/// A member claim whose volume has not reached its request yet: wait for the storage
/// provider (and report it), up to the time limit.
pub(super) fn expansion_pending(w: &World, replicas: u32) -> Option<Decision> {
    if w.obs.ensemble.spec.storage.ephemeral {
        return None;
    }
    let claim = member_claims(w, replicas).find(|p| {
        let requested = p.requested.as_deref().and_then(quantity::bytes);
        let capacity = p.capacity.as_deref().and_then(quantity::bytes);
        matches!((requested, capacity), (Some(r), Some(c)) if c < r)
    })?;
    Some(wait(
        w,
        WaitKind::VolumeExpansion,
        &claim.name,
        format!(
            "PVC {} requests {} but its volume has {}: waiting for the storage provider to expand it",
            claim.name,
            claim.requested.as_deref().unwrap_or("?"),
            claim.capacity.as_deref().unwrap_or("?"),
        ),
    ))
}
