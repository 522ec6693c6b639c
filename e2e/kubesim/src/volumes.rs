//! A pod's volumes as host directories, which the runtime bind-mounts at each
//! container's mountPaths.
//!
//! ConfigMap, Secret, downwardAPI and projected volumes are written the way the kubelet's
//! atomic writer does it: the files live in a timestamped directory, `..data` points at it
//! and each visible name is a symlink through `..data`, so an update swaps one symlink and
//! a reader never sees half of it. emptyDir is a directory of the pod; a PVC is the
//! directory of the PersistentVolume bound to it (a hostPath that outlives the pod).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod,
    Secret, ServiceAccount, Volume,
};
use kube::api::{Api, PostParams};

use crate::env::{field_ref_value, resource_field_value};

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The kubelet's FailedMount: the pod waits in ContainerCreating and it is retried.
    #[error("MountVolume.SetUp failed for volume \"{volume}\": {message}")]
    Failed { volume: String, message: String },
}

fn failed(volume: &str, message: impl std::fmt::Display) -> MountError {
    MountError::Failed {
        volume: volume.to_string(),
        message: message.to_string(),
    }
}

/// One file of a volume: its bytes and mode.
type Payload = BTreeMap<PathBuf, (Vec<u8>, u32)>;

pub struct VolumeContext<'a> {
    pub client: &'a kube::Client,
    pub pod: &'a Pod,
    pub pod_dir: &'a Path,
    pub tokens: &'a TokenCache,
}

/// The pod's ServiceAccount tokens by (audience, lifetime): the kubelet asks for a new
/// one when 80% of the old one's life has passed, not on every volume refresh.
#[derive(Default)]
pub struct TokenCache {
    tokens: std::sync::Mutex<BTreeMap<TokenKey, (String, std::time::Instant)>>,
}

/// A projected token's audience and requested lifetime in seconds.
type TokenKey = (Option<String>, i64);

impl TokenCache {
    fn fresh(&self, key: &TokenKey) -> Option<String> {
        let tokens = self.tokens.lock().ok()?;
        let (token, fetched) = tokens.get(key)?;
        let renew_after = std::time::Duration::from_secs((key.1.max(600) as u64) * 8 / 10);
        (fetched.elapsed() < renew_after).then(|| token.clone())
    }

    fn store(&self, key: TokenKey, token: String) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(key, (token, std::time::Instant::now()));
        }
    }
}

impl VolumeContext<'_> {
    fn namespace(&self) -> String {
        self.pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into())
    }

    fn volume_dir(&self, name: &str) -> PathBuf {
        self.pod_dir.join("volumes").join(name)
    }

    /// Makes (or refreshes) `volume` and returns the host path to bind.
    pub async fn materialize(&self, volume: &Volume) -> Result<PathBuf, MountError> {
        let name = volume.name.as_str();
        if let Some(pvc) = &volume.persistent_volume_claim {
            return self.claim_path(name, &pvc.claim_name).await;
        }
        if let Some(host) = &volume.host_path {
            let path = PathBuf::from(&host.path);
            let wants_dir = matches!(host.type_.as_deref(), Some("DirectoryOrCreate"));
            if wants_dir {
                std::fs::create_dir_all(&path).map_err(|e| failed(name, e))?;
            }
            if !path.exists() && host.type_.as_deref().is_some_and(|t| !t.is_empty()) {
                return Err(failed(
                    name,
                    format!("hostPath type check failed: {} does not exist", host.path),
                ));
            }
            return Ok(path);
        }
        let dir = self.volume_dir(name);
        if volume.empty_dir.is_some() {
            std::fs::create_dir_all(&dir).map_err(|e| failed(name, e))?;
            return Ok(dir);
        }
        let payload = if let Some(cm) = &volume.config_map {
            let source = self
                .config_map(name, &cm.name, cm.optional.unwrap_or(false))
                .await?;
            key_payload(
                name,
                &source,
                cm.items.as_deref(),
                cm.default_mode.unwrap_or(0o644),
            )?
        } else if let Some(secret) = &volume.secret {
            let secret_name = secret.secret_name.clone().unwrap_or_default();
            let source = self
                .secret(name, &secret_name, secret.optional.unwrap_or(false))
                .await?;
            key_payload(
                name,
                &source,
                secret.items.as_deref(),
                secret.default_mode.unwrap_or(0o644),
            )?
        } else if let Some(downward) = &volume.downward_api {
            let mode = downward.default_mode.unwrap_or(0o644);
            self.downward_payload(name, downward.items.as_deref().unwrap_or_default(), mode)?
        } else if let Some(projected) = &volume.projected {
            self.projected_payload(name, projected).await?
        } else {
            return Err(failed(
                name,
                format!(
                    "kubesim does not support this volume kind ({})",
                    volume_kind(volume)
                ),
            ));
        };
        write_atomically(&dir, &payload).map_err(|e| failed(name, e))?;
        Ok(dir)
    }

    async fn claim_path(&self, volume: &str, claim: &str) -> Result<PathBuf, MountError> {
        let pvcs: Api<PersistentVolumeClaim> =
            Api::namespaced(self.client.clone(), &self.namespace());
        let pvc = pvcs
            .get(claim)
            .await
            .map_err(|e| failed(volume, format!("reading claim {claim}: {e}")))?;
        let Some(pv_name) = pvc
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .filter(|n| !n.is_empty())
        else {
            return Err(failed(
                volume,
                format!("persistentvolumeclaim \"{claim}\" is not bound yet"),
            ));
        };
        let pvs: Api<PersistentVolume> = Api::all(self.client.clone());
        let pv = pvs
            .get(&pv_name)
            .await
            .map_err(|e| failed(volume, format!("reading volume {pv_name}: {e}")))?;
        let spec = pv.spec.unwrap_or_default();
        let path = spec
            .host_path
            .map(|h| h.path)
            .or_else(|| spec.local.map(|l| l.path))
            .ok_or_else(|| {
                failed(
                    volume,
                    format!("volume {pv_name} is neither hostPath nor local"),
                )
            })?;
        let path = PathBuf::from(path);
        if !path.is_dir() {
            return Err(failed(
                volume,
                format!(
                    "the directory of volume {pv_name} ({}) is missing",
                    path.display()
                ),
            ));
        }
        Ok(path)
    }

    async fn config_map(
        &self,
        volume: &str,
        name: &str,
        optional: bool,
    ) -> Result<BTreeMap<String, Vec<u8>>, MountError> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace());
        match api.get_opt(name).await {
            Ok(Some(cm)) => {
                let mut data: BTreeMap<String, Vec<u8>> = cm
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes()))
                    .collect();
                data.extend(
                    cm.binary_data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0)),
                );
                Ok(data)
            }
            Ok(None) if optional => Ok(BTreeMap::new()),
            Ok(None) => Err(failed(volume, format!("configmap \"{name}\" not found"))),
            Err(e) => Err(failed(volume, format!("reading configmap \"{name}\": {e}"))),
        }
    }

    async fn secret(
        &self,
        volume: &str,
        name: &str,
        optional: bool,
    ) -> Result<BTreeMap<String, Vec<u8>>, MountError> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace());
        match api.get_opt(name).await {
            Ok(Some(secret)) => Ok(secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect()),
            Ok(None) if optional => Ok(BTreeMap::new()),
            Ok(None) => Err(failed(volume, format!("secret \"{name}\" not found"))),
            Err(e) => Err(failed(volume, format!("reading secret \"{name}\": {e}"))),
        }
    }

    fn downward_payload(
        &self,
        volume: &str,
        items: &[DownwardAPIVolumeFile],
        default_mode: i32,
    ) -> Result<Payload, MountError> {
        let mut payload = Payload::new();
        for item in items {
            let value = if let Some(field) = &item.field_ref {
                field_ref_value(self.pod, &field.field_path).map_err(|e| failed(volume, e))?
            } else if let Some(resource) = &item.resource_field_ref {
                resource_field_value(self.pod, resource).map_err(|e| failed(volume, e))?
            } else {
                return Err(failed(
                    volume,
                    format!("downwardAPI item {} names no field", item.path),
                ));
            };
            let path = relative(volume, &item.path)?;
            payload.insert(
                path,
                (value.into_bytes(), item.mode.unwrap_or(default_mode) as u32),
            );
        }
        Ok(payload)
    }

    async fn projected_payload(
        &self,
        volume: &str,
        projected: &k8s_openapi::api::core::v1::ProjectedVolumeSource,
    ) -> Result<Payload, MountError> {
        let default_mode = projected.default_mode.unwrap_or(0o644);
        let mut payload = Payload::new();
        for source in projected.sources.as_deref().unwrap_or_default() {
            if let Some(cm) = &source.config_map {
                let data = self
                    .config_map(volume, &cm.name, cm.optional.unwrap_or(false))
                    .await?;
                payload.extend(key_payload(
                    volume,
                    &data,
                    cm.items.as_deref(),
                    default_mode,
                )?);
            }
            if let Some(secret) = &source.secret {
                let data = self
                    .secret(volume, &secret.name, secret.optional.unwrap_or(false))
                    .await?;
                payload.extend(key_payload(
                    volume,
                    &data,
                    secret.items.as_deref(),
                    default_mode,
                )?);
            }
            if let Some(downward) = &source.downward_api {
                payload.extend(self.downward_payload(
                    volume,
                    downward.items.as_deref().unwrap_or_default(),
                    default_mode,
                )?);
            }
            if let Some(token) = &source.service_account_token {
                let jwt = self
                    .request_token(
                        token.audience.clone(),
                        token.expiration_seconds.unwrap_or(3600),
                    )
                    .await
                    .map_err(|e| failed(volume, e))?;
                payload.insert(
                    relative(volume, &token.path)?,
                    (jwt.into_bytes(), default_mode as u32),
                );
            }
            if source.cluster_trust_bundle.is_some() {
                return Err(failed(
                    volume,
                    "kubesim does not support clusterTrustBundle projections",
                ));
            }
        }
        Ok(payload)
    }

    /// A token bound to this pod, from the TokenRequest API (as the kubelet asks for it).
    async fn request_token(
        &self,
        audience: Option<String>,
        expiration_seconds: i64,
    ) -> Result<String, String> {
        let key = (audience.clone(), expiration_seconds);
        if let Some(token) = self.tokens.fresh(&key) {
            return Ok(token);
        }
        let token = self.request_new_token(audience, expiration_seconds).await?;
        self.tokens.store(key, token.clone());
        Ok(token)
    }

    async fn request_new_token(
        &self,
        audience: Option<String>,
        expiration_seconds: i64,
    ) -> Result<String, String> {
        let spec = self.pod.spec.clone().unwrap_or_default();
        let account = spec
            .service_account_name
            .unwrap_or_else(|| "default".into());
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &self.namespace());
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: audience.into_iter().collect(),
                expiration_seconds: Some(expiration_seconds.max(600)),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: self.pod.metadata.name.clone(),
                    uid: self.pod.metadata.uid.clone(),
                }),
            },
            ..TokenRequest::default()
        };
        let response = api
            .create_token_request(&account, &PostParams::default(), &request)
            .await
            .map_err(|e| format!("requesting a token for serviceaccount {account}: {e}"))?;
        response.status.map(|s| s.token).ok_or_else(|| {
            format!("the token request for serviceaccount {account} returned no token")
        })
    }
}

fn volume_kind(volume: &Volume) -> String {
    let value = serde_json::to_value(volume).unwrap_or_default();
    value
        .as_object()
        .and_then(|o| o.keys().find(|k| k.as_str() != "name").cloned())
        .unwrap_or_else(|| "none given".into())
}

/// A relative path inside a volume, refusing `..` and absolute paths as the API does.
fn relative(volume: &str, path: &str) -> Result<PathBuf, MountError> {
    let p = Path::new(path);
    let ok = !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(p.to_path_buf())
    } else {
        Err(failed(volume, format!("invalid path {path:?} in volume")))
    }
}

fn key_payload(
    volume: &str,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
) -> Result<Payload, MountError> {
    let mut payload = Payload::new();
    match items {
        Some(items) if !items.is_empty() => {
            for item in items {
                let value = data.get(&item.key).ok_or_else(|| {
                    failed(
                        volume,
                        format!("configuration key \"{}\" not found", item.key),
                    )
                })?;
                payload.insert(
                    relative(volume, &item.path)?,
                    (value.clone(), item.mode.unwrap_or(default_mode) as u32),
                );
            }
        }
        _ => {
            for (key, value) in data {
                payload.insert(relative(volume, key)?, (value.clone(), default_mode as u32));
            }
        }
    }
    Ok(payload)
}

/// The kubelet's atomic writer: files in `..<stamp>/`, `..data` → that directory, each
/// top-level name a symlink through `..data`. Rewrites nothing when the payload is as
/// it was.
pub fn write_atomically(dir: &Path, payload: &Payload) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    let data_link = dir.join("..data");
    if let Ok(current) = std::fs::read_link(&data_link)
        && same_payload(&dir.join(&current), payload)
    {
        return Ok(());
    }
    let stamp = format!(
        "..{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let target = dir.join(&stamp);
    std::fs::create_dir_all(&target)?;
    for (path, (bytes, mode)) in payload {
        let file = target.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&file, bytes)?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(*mode & 0o777))?;
    }
    let tmp_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    std::os::unix::fs::symlink(&stamp, &tmp_link)?;
    let old = std::fs::read_link(&data_link).ok();
    std::fs::rename(&tmp_link, &data_link)?;
    let tops: std::collections::BTreeSet<PathBuf> = payload
        .keys()
        .filter_map(|p| p.components().next().map(|c| PathBuf::from(c.as_os_str())))
        .collect();
    for top in &tops {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(top), &link)?;
        }
    }
    // Names that the new payload no longer has, and the previous timestamped directory.
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = PathBuf::from(entry.file_name());
        let hidden = name.to_string_lossy().starts_with("..");
        if !hidden && !tops.contains(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(())
}

fn same_payload(dir: &Path, payload: &Payload) -> bool {
    let mut count = 0usize;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            return false;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                count += 1;
            }
        }
    }
    count == payload.len()
        && payload.iter().all(|(path, (bytes, mode))| {
            use std::os::unix::fs::PermissionsExt;
            let file = dir.join(path);
            std::fs::read(&file).is_ok_and(|b| &b == bytes)
                && std::fs::metadata(&file)
                    .is_ok_and(|m| m.permissions().mode() & 0o777 == mode & 0o777)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writer_swaps_data_and_removes_stale_names() {
        let dir = std::env::temp_dir().join(format!("kubesim-vol-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut payload = Payload::new();
        payload.insert("zoo.cfg".into(), (b"tickTime=500\n".to_vec(), 0o644));
        payload.insert("sub/x".into(), (b"x".to_vec(), 0o600));
        write_atomically(&dir, &payload).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("zoo.cfg")).unwrap(),
            "tickTime=500\n"
        );
        assert_eq!(std::fs::read_to_string(dir.join("sub/x")).unwrap(), "x");
        let first = std::fs::read_link(dir.join("..data")).unwrap();
        write_atomically(&dir, &payload).unwrap();
        assert_eq!(
            std::fs::read_link(dir.join("..data")).unwrap(),
            first,
            "an unchanged payload is not rewritten"
        );
        payload.remove(Path::new("sub/x"));
        payload.insert("zoo.cfg".into(), (b"tickTime=1000\n".to_vec(), 0o644));
        write_atomically(&dir, &payload).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("zoo.cfg")).unwrap(),
            "tickTime=1000\n"
        );
        assert!(!dir.join("sub").exists());
        assert!(!dir.join(first).exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn items_select_keys_and_a_missing_key_fails() {
        let data: BTreeMap<String, Vec<u8>> = [("a".to_string(), b"1".to_vec())].into();
        let items = [KeyToPath {
            key: "a".into(),
            path: "dir/a.txt".into(),
            mode: Some(0o400),
        }];
        let payload = key_payload("v", &data, Some(&items), 0o644).unwrap();
        assert_eq!(payload[Path::new("dir/a.txt")], (b"1".to_vec(), 0o400));
        let missing = [KeyToPath {
            key: "b".into(),
            path: "b".into(),
            mode: None,
        }];
        let err = key_payload("v", &data, Some(&missing), 0o644)
            .unwrap_err()
            .to_string();
        assert!(err.contains("configuration key \"b\" not found"), "{err}");
        assert!(relative("v", "../etc/passwd").is_err());
        assert!(relative("v", "/etc/passwd").is_err());
    }
}
