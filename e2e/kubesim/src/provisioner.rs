//! Dynamic provisioning for the test cluster's default StorageClass: a claim of that
//! class gets a hostPath PersistentVolume (a directory under `<dir>/volumes` that outlives
//! pods and nodes), and a Released volume whose reclaim policy is Delete loses its
//! directory and is deleted, as an external provisioner does it. Binding itself is the
//! real PV controller's work (kube-controller-manager).
//!
//! The class allows volume expansion, and this module also plays external-resizer and the
//! kubelet's online filesystem resize: a bound claim that requests more than its
//! status.capacity gets its volume's spec.capacity raised, then its own status.capacity (a
//! hostPath directory has no size to change).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use tracing::{info, warn};

pub const STORAGE_CLASS: &str = "standard";
pub const PROVISIONER: &str = "paddock.dev/kubesim-hostpath";

/// The default StorageClass: Immediate binding, reclaim Delete.
pub async fn install_storage_class(client: &kube::Client) -> Result<(), kube::Error> {
    let api: Api<StorageClass> = Api::all(client.clone());
    let class = StorageClass {
        metadata: ObjectMeta {
            name: Some(STORAGE_CLASS.into()),
            annotations: Some(BTreeMap::from([(
                "storageclass.kubernetes.io/is-default-class".to_string(),
                "true".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        provisioner: PROVISIONER.into(),
        reclaim_policy: Some("Delete".into()),
        volume_binding_mode: Some("Immediate".into()),
        allow_volume_expansion: Some(true),
        ..StorageClass::default()
    };
    match api.create(&PostParams::default(), &class).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(error) => Err(error),
    }
}

pub async fn run(client: kube::Client, volumes_dir: PathBuf) {
    tokio::join!(
        provision(client.clone(), volumes_dir.clone()),
        reclaim(client.clone(), volumes_dir),
        expand(client)
    );
}

/// The next object a watch reports as created or changed; a failed watch is logged and
/// retried after a second. None when the watch ends.
async fn next_applied<K>(
    stream: &mut (impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Unpin),
    what: &str,
) -> Option<K> {
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(object)) | Ok(watcher::Event::InitApply(object)) => {
                return Some(object);
            }
            Ok(_) => {}
            Err(error) => {
                warn!(%error, "{what} watch failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    None
}

fn provisioner_of(pvc: &PersistentVolumeClaim) -> Option<String> {
    let annotations = pvc.metadata.annotations.as_ref()?;
    annotations
        .get("volume.kubernetes.io/storage-provisioner")
        .or_else(|| annotations.get("volume.beta.kubernetes.io/storage-provisioner"))
        .cloned()
}

async fn provision(client: kube::Client, volumes_dir: PathBuf) {
    let claims: Api<PersistentVolumeClaim> = Api::all(client.clone());
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let classes: Api<StorageClass> = Api::all(client.clone());
    let mut stream = watcher(claims, watcher::Config::default()).boxed();
    while let Some(pvc) = next_applied(&mut stream, "claim").await {
        let spec = pvc.spec.clone().unwrap_or_default();
        let pending = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending");
        let unbound = spec.volume_name.as_deref().unwrap_or_default().is_empty();
        if !pending || !unbound || provisioner_of(&pvc).as_deref() != Some(PROVISIONER) {
            continue;
        }
        let (Some(ns), Some(name), Some(uid)) = (
            pvc.metadata.namespace.clone(),
            pvc.metadata.name.clone(),
            pvc.metadata.uid.clone(),
        ) else {
            continue;
        };
        let class_name = spec
            .storage_class_name
            .clone()
            .unwrap_or_else(|| STORAGE_CLASS.into());
        let reclaim = match classes.get_opt(&class_name).await {
            Ok(Some(class)) => class.reclaim_policy.unwrap_or_else(|| "Delete".into()),
            _ => "Delete".into(),
        };
        let pv_name = format!("pvc-{uid}");
        let dir = volumes_dir.join(&pv_name);
        if let Err(error) = std::fs::create_dir_all(&dir) {
            warn!(%error, dir = %dir.display(), "cannot create a volume's directory");
            continue;
        }
        let capacity = spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage").cloned());
        let pv = serde_json::json!({
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv_name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
            "spec": {
                "capacity": {"storage": capacity},
                "accessModes": spec.access_modes.clone().unwrap_or_else(|| vec!["ReadWriteOnce".into()]),
                "persistentVolumeReclaimPolicy": reclaim,
                "storageClassName": class_name,
                "volumeMode": spec.volume_mode.clone().unwrap_or_else(|| "Filesystem".into()),
                "hostPath": {"path": dir.display().to_string(), "type": "Directory"},
                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns, "name": name, "uid": uid},
            },
        });
        let pv: PersistentVolume = match serde_json::from_value(pv) {
            Ok(pv) => pv,
            Err(error) => {
                warn!(%error, "cannot build a PersistentVolume");
                continue;
            }
        };
        match pvs.create(&PostParams::default(), &pv).await {
            Ok(_) => info!(claim = %format!("{ns}/{name}"), volume = %pv_name, "provisioned"),
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(error) => warn!(%error, claim = %format!("{ns}/{name}"), "provisioning failed"),
        }
    }
}

async fn reclaim(client: kube::Client, volumes_dir: PathBuf) {
    let pvs: Api<PersistentVolume> = Api::all(client);
    let mut stream = watcher(pvs.clone(), watcher::Config::default()).boxed();
    while let Some(pv) = next_applied(&mut stream, "volume").await {
        let ours = pv
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("pv.kubernetes.io/provisioned-by"))
            .is_some_and(|p| p == PROVISIONER);
        let spec = pv.spec.clone().unwrap_or_default();
        let released = pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released");
        if !ours || !released || spec.persistent_volume_reclaim_policy.as_deref() != Some("Delete")
        {
            continue;
        }
        let Some(name) = pv.metadata.name.clone() else {
            continue;
        };
        let dir = volumes_dir.join(&name);
        if dir.starts_with(&volumes_dir)
            && let Err(error) = std::fs::remove_dir_all(&dir)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            warn!(%error, volume = %name, "cannot delete a volume's directory");
            continue;
        }
        match pvs.delete(&name, &DeleteParams::default()).await {
            Ok(_) => info!(volume = %name, "released volume deleted (reclaim policy Delete)"),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => warn!(%error, volume = %name, "cannot delete a released volume"),
        }
    }
}

/// A quantity (`2Gi`, `500M`, `1073741824`) in bytes, rounded up; None for forms a test
/// cluster does not meet (exponents, milli-bytes).
fn quantity_bytes(quantity: &str) -> Option<u128> {
    let split = quantity
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(quantity.len());
    let (number, suffix) = quantity.split_at(split);
    let unit: u128 = match suffix {
        "" => 1,
        "k" => 1000,
        "M" => 1000u128.pow(2),
        "G" => 1000u128.pow(3),
        "T" => 1000u128.pow(4),
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return None,
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || fraction.len() > 18 {
        return None;
    }
    let digits: u128 = format!("{whole}{fraction}").parse().ok()?;
    let scale = 10u128.pow(u32::try_from(fraction.len()).ok()?);
    Some(digits.checked_mul(unit)?.div_ceil(scale))
}

/// A volume to grow: the bound claim's volume and the size the claim now requests.
#[derive(Debug, PartialEq, Eq)]
struct Expansion {
    volume: String,
    size: String,
}

/// The expansion a claim of this provisioner asks for, if any: bound, and requesting more
/// than its status.capacity.
fn expansion_of(pvc: &PersistentVolumeClaim) -> Option<Expansion> {
    if provisioner_of(pvc).as_deref() != Some(PROVISIONER) {
        return None;
    }
    let status = pvc.status.as_ref()?;
    if status.phase.as_deref() != Some("Bound") {
        return None;
    }
    let spec = pvc.spec.as_ref()?;
    let volume = spec.volume_name.clone().filter(|v| !v.is_empty())?;
    let requested = spec.resources.as_ref()?.requests.as_ref()?.get("storage")?;
    let capacity = status.capacity.as_ref()?.get("storage")?;
    (quantity_bytes(&requested.0)? > quantity_bytes(&capacity.0)?).then(|| Expansion {
        volume,
        size: requested.0.clone(),
    })
}

async fn expand(client: kube::Client) {
    let claims: Api<PersistentVolumeClaim> = Api::all(client.clone());
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let mut stream = watcher(claims, watcher::Config::default()).boxed();
    while let Some(pvc) = next_applied(&mut stream, "claim").await {
        let Some(expansion) = expansion_of(&pvc) else {
            continue;
        };
        let (Some(ns), Some(name)) = (pvc.metadata.namespace.clone(), pvc.metadata.name.clone())
        else {
            continue;
        };
        let claim = format!("{ns}/{name}");
        // The volume first, then the claim: the claim's capacity never exceeds its volume's.
        let volume = serde_json::json!({"spec": {"capacity": {"storage": expansion.size}}});
        if let Err(error) = pvs
            .patch(
                &expansion.volume,
                &PatchParams::default(),
                &Patch::Merge(&volume),
            )
            .await
        {
            warn!(%error, %claim, volume = %expansion.volume, "cannot expand a volume");
            continue;
        }
        let status = serde_json::json!({"status": {"capacity": {"storage": expansion.size}}});
        let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await
        {
            Ok(_) => info!(%claim, volume = %expansion.volume, size = %expansion.size, "expanded"),
            Err(error) => warn!(%error, %claim, "cannot record a claim's new capacity"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, VolumeResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn claim(
        provisioner: &str,
        phase: &str,
        requested: &str,
        capacity: &str,
    ) -> PersistentVolumeClaim {
        let storage = |q: &str| BTreeMap::from([("storage".to_string(), Quantity(q.into()))]);
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("data-zk-0".into()),
                namespace: Some("default".into()),
                annotations: Some(BTreeMap::from([(
                    "volume.kubernetes.io/storage-provisioner".to_string(),
                    provisioner.to_string(),
                )])),
                ..ObjectMeta::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                volume_name: Some("pvc-1".into()),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(storage(requested)),
                    ..VolumeResourceRequirements::default()
                }),
                ..PersistentVolumeClaimSpec::default()
            }),
            status: Some(PersistentVolumeClaimStatus {
                phase: Some(phase.into()),
                capacity: Some(storage(capacity)),
                ..PersistentVolumeClaimStatus::default()
            }),
        }
    }

    #[test]
    fn a_bound_claim_requesting_more_than_its_capacity_is_expanded() {
        assert_eq!(
            expansion_of(&claim(PROVISIONER, "Bound", "2Gi", "1Gi")),
            Some(Expansion {
                volume: "pvc-1".into(),
                size: "2Gi".into()
            })
        );
    }

    #[test]
    fn equal_sizes_in_other_forms_shrinks_and_foreign_or_unbound_claims_are_left_alone() {
        assert_eq!(
            expansion_of(&claim(PROVISIONER, "Bound", "1Gi", "1Gi")),
            None
        );
        assert_eq!(
            expansion_of(&claim(PROVISIONER, "Bound", "1024Mi", "1Gi")),
            None
        );
        assert_eq!(
            expansion_of(&claim(PROVISIONER, "Bound", "1Gi", "2Gi")),
            None
        );
        assert_eq!(
            expansion_of(&claim("other.io/csi", "Bound", "2Gi", "1Gi")),
            None
        );
        assert_eq!(
            expansion_of(&claim(PROVISIONER, "Pending", "2Gi", "1Gi")),
            None
        );
    }

    #[test]
    fn quantities_in_bytes() {
        assert_eq!(quantity_bytes("1Gi"), Some(1 << 30));
        assert_eq!(quantity_bytes("1.5Gi"), Some(3 << 29));
        assert_eq!(quantity_bytes("2G"), Some(2_000_000_000));
        assert_eq!(quantity_bytes("1073741824"), Some(1 << 30));
        assert_eq!(quantity_bytes("1e9"), None);
        assert_eq!(quantity_bytes("Gi"), None);
    }
}
