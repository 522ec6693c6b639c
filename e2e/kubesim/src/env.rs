//! A container's environment as the kubelet builds it: envFrom first, then env in order
//! (each value may refer to earlier variables as `$(VAR)`), plus the API server's
//! address. Values come from the spec, the pod's own fields (fieldRef,
//! resourceFieldRef) and ConfigMaps and Secrets read through the node's credentials.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, ResourceFieldSelector, Secret};
use kube::api::Api;

use crate::runtime::expand::expand;

/// Where pods reach the API server: there is no Service VIP, so the real address.
#[derive(Debug, Clone)]
pub struct ApiEndpoint {
    pub host: String,
    pub port: u16,
}

/// A Kubernetes-style error for a value that cannot be had: the container waits with
/// CreateContainerConfigError and this message.
pub type EnvError = String;

pub async fn resolve(
    client: &kube::Client,
    pod: &Pod,
    container: &Container,
    api: &ApiEndpoint,
    home: &std::path::Path,
) -> Result<Vec<(String, String)>, EnvError> {
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let mut sources = Sources {
        client,
        namespace,
        config_maps: BTreeMap::new(),
        secrets: BTreeMap::new(),
    };
    let mut env: Vec<(String, String)> = vec![
        ("KUBERNETES_SERVICE_HOST".into(), api.host.clone()),
        ("KUBERNETES_SERVICE_PORT".into(), api.port.to_string()),
        ("KUBERNETES_SERVICE_PORT_HTTPS".into(), api.port.to_string()),
        (
            "KUBERNETES_PORT".into(),
            format!("tcp://{}:{}", api.host, api.port),
        ),
        ("HOSTNAME".into(), pod_hostname(pod)),
        // An image would name its user's home; a process here gets a directory of its pod,
        // so that what it caches there (kubectl's discovery cache, say) goes with the pod.
        ("HOME".into(), home.display().to_string()),
    ];
    let set = |env: &mut Vec<(String, String)>, name: String, value: String| {
        env.retain(|(n, _)| *n != name);
        env.push((name, value));
    };
    for from in container.env_from.as_deref().unwrap_or_default() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(cm) = &from.config_map_ref {
            let data = sources
                .config_map(&cm.name, cm.optional.unwrap_or(false))
                .await?;
            for (k, v) in data.unwrap_or_default() {
                set(&mut env, format!("{prefix}{k}"), v);
            }
        }
        if let Some(secret) = &from.secret_ref {
            let data = sources
                .secret(&secret.name, secret.optional.unwrap_or(false))
                .await?;
            for (k, v) in data.unwrap_or_default() {
                set(&mut env, format!("{prefix}{k}"), v);
            }
        }
    }
    for var in container.env.as_deref().unwrap_or_default() {
        let value = if let Some(from) = &var.value_from {
            if let Some(field) = &from.field_ref {
                Some(field_ref_value(pod, &field.field_path)?)
            } else if let Some(resource) = &from.resource_field_ref {
                let mut selector = resource.clone();
                if selector
                    .container_name
                    .as_deref()
                    .unwrap_or_default()
                    .is_empty()
                {
                    selector.container_name = Some(container.name.clone());
                }
                Some(resource_field_value(pod, &selector)?)
            } else if let Some(key) = &from.config_map_key_ref {
                let optional = key.optional.unwrap_or(false);
                let data = sources.config_map(&key.name, optional).await?;
                match data.and_then(|d| d.get(&key.key).cloned()) {
                    Some(v) => Some(v),
                    None if optional => None,
                    None => {
                        return Err(format!(
                            "couldn't find key {} in ConfigMap {}/{}",
                            key.key, sources.namespace, key.name
                        ));
                    }
                }
            } else if let Some(key) = &from.secret_key_ref {
                let optional = key.optional.unwrap_or(false);
                let data = sources.secret(&key.name, optional).await?;
                match data.and_then(|d| d.get(&key.key).cloned()) {
                    Some(v) => Some(v),
                    None if optional => None,
                    None => {
                        return Err(format!(
                            "couldn't find key {} in Secret {}/{}",
                            key.key, sources.namespace, key.name
                        ));
                    }
                }
            } else {
                return Err(format!("env var {} has an empty valueFrom", var.name));
            }
        } else {
            let raw = var.value.clone().unwrap_or_default();
            let known = env.clone();
            Some(expand(&raw, |name| {
                known
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            }))
        };
        if let Some(value) = value {
            set(&mut env, var.name.clone(), value);
        }
    }
    Ok(env)
}

fn pod_hostname(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default()
}

struct Sources<'a> {
    client: &'a kube::Client,
    namespace: String,
    config_maps: BTreeMap<String, Option<BTreeMap<String, String>>>,
    secrets: BTreeMap<String, Option<BTreeMap<String, String>>>,
}

impl Sources<'_> {
    async fn config_map(
        &mut self,
        name: &str,
        optional: bool,
    ) -> Result<Option<BTreeMap<String, String>>, EnvError> {
        if !self.config_maps.contains_key(name) {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
            let found = api
                .get_opt(name)
                .await
                .map_err(|e| format!("reading configmap \"{name}\": {e}"))?;
            self.config_maps
                .insert(name.into(), found.map(|cm| cm.data.unwrap_or_default()));
        }
        match self.config_maps.get(name).cloned().flatten() {
            None if !optional => Err(format!("configmap \"{name}\" not found")),
            found => Ok(found),
        }
    }

    async fn secret(
        &mut self,
        name: &str,
        optional: bool,
    ) -> Result<Option<BTreeMap<String, String>>, EnvError> {
        if !self.secrets.contains_key(name) {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
            let found = api
                .get_opt(name)
                .await
                .map_err(|e| format!("reading secret \"{name}\": {e}"))?;
            let decoded = found.map(|s| {
                s.data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect()
            });
            self.secrets.insert(name.into(), decoded);
        }
        match self.secrets.get(name).cloned().flatten() {
            None if !optional => Err(format!("secret \"{name}\" not found")),
            found => Ok(found),
        }
    }
}

/// The value of a downward API field path (the set the API server allows).
pub fn field_ref_value(pod: &Pod, path: &str) -> Result<String, String> {
    let meta = &pod.metadata;
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let map_entry = |map: &Option<BTreeMap<String, String>>, key: &str| {
        map.as_ref()
            .and_then(|m| m.get(key).cloned())
            .unwrap_or_default()
    };
    let render_map = |map: &Option<BTreeMap<String, String>>| {
        map.as_ref()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}=\"{v}\""))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    };
    if let Some(key) = path
        .strip_prefix("metadata.labels['")
        .and_then(|k| k.strip_suffix("']"))
    {
        return Ok(map_entry(&meta.labels, key));
    }
    if let Some(key) = path
        .strip_prefix("metadata.annotations['")
        .and_then(|k| k.strip_suffix("']"))
    {
        return Ok(map_entry(&meta.annotations, key));
    }
    let ips = |list: Option<Vec<String>>| list.unwrap_or_default().join(",");
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => render_map(&meta.labels),
        "metadata.annotations" => render_map(&meta.annotations),
        "spec.nodeName" => spec.node_name.unwrap_or_default(),
        "spec.serviceAccountName" => spec.service_account_name.unwrap_or_default(),
        "status.hostIP" => status.host_ip.unwrap_or_default(),
        "status.hostIPs" => ips(status
            .host_ips
            .map(|v| v.into_iter().map(|i| i.ip).collect())),
        "status.podIP" => status.pod_ip.unwrap_or_default(),
        "status.podIPs" => ips(status
            .pod_ips
            .map(|v| v.into_iter().map(|i| i.ip).collect())),
        other => return Err(format!("unsupported fieldRef path {other:?}")),
    })
}

/// Node allocatable stands in for an unset limit, as on a real node.
pub const NODE_CPU_MILLIS: u64 = 8000;
pub const NODE_MEMORY_BYTES: u64 = 16 * 1024 * 1024 * 1024;

pub fn resource_field_value(pod: &Pod, selector: &ResourceFieldSelector) -> Result<String, String> {
    let spec = pod.spec.clone().unwrap_or_default();
    let wanted = selector.container_name.clone().unwrap_or_default();
    let container = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == wanted)
        .ok_or_else(|| format!("resourceFieldRef names no container {wanted:?}"))?;
    let resources = container.resources.clone().unwrap_or_default();
    let (section, resource) = selector
        .resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported resource {:?}", selector.resource))?;
    let set = match section {
        "limits" => resources.limits,
        "requests" => resources.requests,
        _ => return Err(format!("unsupported resource {:?}", selector.resource)),
    };
    let given = set
        .as_ref()
        .and_then(|m| m.get(resource))
        .map(|q| q.0.clone());
    // The API server may store the divisor as "0"; like the kubelet, read that as 1.
    let divisor = selector
        .divisor
        .clone()
        .map(|q| q.0)
        .filter(|d| quantity_millis(d).is_ok_and(|m| m > 0.0))
        .unwrap_or_else(|| "1".into());
    match resource {
        "cpu" => {
            let millis = match given {
                Some(q) => quantity_millis(&q)?,
                None if section == "limits" => NODE_CPU_MILLIS as f64,
                None => 0.0,
            };
            let per = quantity_millis(&divisor)?;
            Ok(format!(
                "{}",
                (millis / per)
                    .ceil()
                    .max(if millis > 0.0 { 1.0 } else { 0.0 }) as u64
            ))
        }
        "memory" | "ephemeral-storage" => {
            let bytes = match given {
                Some(q) => quantity_millis(&q)? / 1000.0,
                None if section == "limits" => NODE_MEMORY_BYTES as f64,
                None => 0.0,
            };
            let per = quantity_millis(&divisor)? / 1000.0;
            Ok(format!("{}", (bytes / per).ceil() as u64))
        }
        other => Err(format!("unsupported resource {other:?}")),
    }
}

/// A Kubernetes quantity in thousandths of its unit ("500m" → 500, "1Gi" → 1073741824000).
pub fn quantity_millis(q: &str) -> Result<f64, String> {
    let q = q.trim();
    let split = q.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("invalid quantity {q:?}"))?;
    let factor = match suffix {
        "" => 1000.0,
        "m" => 1.0,
        "k" => 1e6,
        "M" => 1e9,
        "G" => 1e12,
        "T" => 1e15,
        "Ki" => 1024.0 * 1000.0,
        "Mi" => 1024.0 * 1024.0 * 1000.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0 * 1000.0,
        "Ti" => 1024f64.powi(4) * 1000.0,
        _ => return Err(format!("invalid quantity suffix in {q:?}")),
    };
    Ok(number * factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use kube::api::ObjectMeta;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("zk-0".into()),
                namespace: Some("ns1".into()),
                labels: Some([("app".to_string(), "zk".to_string())].into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some("kubesim-1".into()),
                containers: vec![Container {
                    name: "server".into(),
                    resources: Some(ResourceRequirements {
                        limits: Some([("memory".to_string(), Quantity("512Mi".into()))].into()),
                        requests: Some([("cpu".to_string(), Quantity("250m".into()))].into()),
                        ..ResourceRequirements::default()
                    }),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                pod_ip: Some("127.1.0.7".into()),
                ..PodStatus::default()
            }),
        }
    }

    #[test]
    fn field_refs() {
        let p = pod();
        assert_eq!(field_ref_value(&p, "metadata.name").unwrap(), "zk-0");
        assert_eq!(field_ref_value(&p, "metadata.labels['app']").unwrap(), "zk");
        assert_eq!(field_ref_value(&p, "status.podIP").unwrap(), "127.1.0.7");
        assert_eq!(field_ref_value(&p, "spec.nodeName").unwrap(), "kubesim-1");
        assert!(field_ref_value(&p, "spec.bogus").is_err());
    }

    #[test]
    fn resource_field_refs_with_divisors_and_node_defaults() {
        let p = pod();
        let sel = |resource: &str, divisor: Option<&str>| ResourceFieldSelector {
            container_name: Some("server".into()),
            resource: resource.into(),
            divisor: divisor.map(|d| Quantity(d.into())),
        };
        assert_eq!(
            resource_field_value(&p, &sel("limits.memory", None)).unwrap(),
            "536870912"
        );
        assert_eq!(
            resource_field_value(&p, &sel("limits.memory", Some("1Mi"))).unwrap(),
            "512"
        );
        assert_eq!(
            resource_field_value(&p, &sel("requests.cpu", None)).unwrap(),
            "1"
        );
        assert_eq!(
            resource_field_value(&p, &sel("requests.cpu", Some("1m"))).unwrap(),
            "250"
        );
        assert_eq!(
            resource_field_value(&p, &sel("limits.cpu", None)).unwrap(),
            "8"
        );
    }
}
