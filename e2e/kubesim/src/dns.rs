//! Cluster DNS through each pod's /etc/hosts, kept current.
//!
//! There is no DNS server: kubesim writes every pod a hosts file (bind-mounted at
//! /etc/hosts) with the names cluster DNS would answer for it:
//! - a Service's `svc`, `svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local` → the
//!   addresses of its ready pods (all matching pods with publishNotReadyAddresses); the
//!   short forms only inside the Service's namespace, as the search path would give them;
//! - a pod with `hostname` and `subdomain` under a headless Service named `subdomain`:
//!   `hostname.subdomain.ns.svc.cluster.local` (and the shorter forms) → the pod's address,
//!   once the Service would list it;
//! - the pod's own name and FQDN → its own address, as the kubelet writes it.
//!
//! Services have no virtual IPs here: a name resolves straight to endpoint addresses.
//! The computation is pure ([`HostsTable::compute`]); [`HostsWriter`] rewrites the files.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// What DNS needs to know of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRecord {
    pub namespace: String,
    pub name: String,
    pub ip: Option<Ipv4Addr>,
    pub hostname: Option<String>,
    pub subdomain: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub ready: bool,
    pub terminating: bool,
}

/// What DNS needs to know of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecord {
    pub namespace: String,
    pub name: String,
    /// None: a Service without a selector (its endpoints are not kubesim's to know).
    pub selector: Option<BTreeMap<String, String>>,
    pub headless: bool,
    pub publish_not_ready: bool,
}

impl ServiceRecord {
    fn selects(&self, pod: &PodRecord) -> bool {
        match &self.selector {
            Some(selector) if !selector.is_empty() => {
                pod.namespace == self.namespace
                    && selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v))
            }
            _ => false,
        }
    }

    /// Would the endpoints controller list this pod as an address of the Service?
    fn lists(&self, pod: &PodRecord) -> bool {
        self.selects(pod)
            && pod.ip.is_some()
            && !pod.terminating
            && (pod.ready || self.publish_not_ready)
    }
}

/// Names by namespace: `global` lines go into every pod's file, `local[ns]` only into
/// the files of pods in `ns`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostsTable {
    pub global: BTreeMap<String, BTreeSet<Ipv4Addr>>,
    pub local: BTreeMap<String, BTreeMap<String, BTreeSet<Ipv4Addr>>>,
}

impl HostsTable {
    pub fn compute(pods: &[PodRecord], services: &[ServiceRecord]) -> HostsTable {
        let mut table = HostsTable::default();
        for svc in services {
            let (ns, name) = (&svc.namespace, &svc.name);
            for pod in pods.iter().filter(|pod| svc.lists(pod)) {
                let Some(ip) = pod.ip else { continue };
                table.add_global(format!("{name}.{ns}.svc.{CLUSTER_DOMAIN}"), ip);
                table.add_global(format!("{name}.{ns}.svc"), ip);
                table.add_global(format!("{name}.{ns}"), ip);
                table.add_local(ns, name.clone(), ip);
                let named_by_this_service = svc.headless
                    && pod.subdomain.as_deref() == Some(name.as_str())
                    && pod.hostname.is_some();
                if let (true, Some(host)) = (named_by_this_service, &pod.hostname) {
                    table.add_global(format!("{host}.{name}.{ns}.svc.{CLUSTER_DOMAIN}"), ip);
                    table.add_global(format!("{host}.{name}.{ns}.svc"), ip);
                    table.add_global(format!("{host}.{name}.{ns}"), ip);
                    table.add_local(ns, format!("{host}.{name}"), ip);
                }
            }
        }
        table
    }

    fn add_global(&mut self, name: String, ip: Ipv4Addr) {
        self.global.entry(name).or_default().insert(ip);
    }

    fn add_local(&mut self, ns: &str, name: String, ip: Ipv4Addr) {
        self.local
            .entry(ns.to_string())
            .or_default()
            .entry(name)
            .or_default()
            .insert(ip);
    }

    /// The whole hosts file of one pod.
    pub fn render_for(&self, pod: &PodRecord) -> String {
        let mut out = String::from(
            "# Kubernetes-managed hosts file (paddock-kubesim): cluster DNS names, kept current.\n\
             127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        );
        if let Some(ip) = pod.ip {
            let short = pod.hostname.clone().unwrap_or_else(|| pod.name.clone());
            match &pod.subdomain {
                Some(sub) => out.push_str(&format!(
                    "{ip}\t{short}.{sub}.{ns}.svc.{CLUSTER_DOMAIN}\t{short}\n",
                    ns = pod.namespace
                )),
                None => out.push_str(&format!("{ip}\t{short}\n")),
            }
        }
        let mut lines: Vec<(Ipv4Addr, &str)> = Vec::new();
        let local = self.local.get(&pod.namespace);
        for (name, ips) in self.global.iter().chain(local.into_iter().flatten()) {
            for ip in ips {
                lines.push((*ip, name.as_str()));
            }
        }
        lines.sort();
        for (ip, name) in lines {
            out.push_str(&format!("{ip}\t{name}\n"));
        }
        out
    }
}

/// Rewrites a hosts file in place. A bind mount pins the file's inode, so the file is
/// never replaced by a rename: the new text is written over the old one and the rest
/// cut off, which keeps the file non-empty at every instant.
pub fn rewrite_in_place(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::{Seek, Write};
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    file.seek(std::io::SeekFrom::Start(0))?;
    file.write_all(text.as_bytes())?;
    file.set_len(text.len() as u64)?;
    Ok(())
}

/// The hosts files of the pods this supervisor runs, by pod uid.
#[derive(Debug, Default)]
pub struct HostsFiles {
    files: BTreeMap<String, (PodRecord, PathBuf)>,
}

impl HostsFiles {
    pub fn register(&mut self, uid: &str, record: PodRecord, path: PathBuf) {
        self.files.insert(uid.to_string(), (record, path));
    }
    pub fn unregister(&mut self, uid: &str) {
        self.files.remove(uid);
    }
    pub fn write_all(&self, table: &HostsTable) {
        for (record, path) in self.files.values() {
            if let Err(error) = rewrite_in_place(path, &table.render_for(record)) {
                tracing::warn!(path = %path.display(), %error, "cannot write a pod's hosts file");
            }
        }
    }
    pub fn write_one(&self, uid: &str, table: &HostsTable) -> std::io::Result<()> {
        match self.files.get(uid) {
            Some((record, path)) => rewrite_in_place(path, &table.render_for(record)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str, ip: u8, ready: bool) -> PodRecord {
        PodRecord {
            namespace: ns.into(),
            name: name.into(),
            ip: Some(Ipv4Addr::new(127, 1, 0, ip)),
            hostname: Some(name.into()),
            subdomain: Some("zk-hs".into()),
            labels: [("app".to_string(), "zk".to_string())].into(),
            ready,
            terminating: false,
        }
    }

    fn svc(name: &str, headless: bool, publish_not_ready: bool) -> ServiceRecord {
        ServiceRecord {
            namespace: "ns1".into(),
            name: name.into(),
            selector: Some([("app".to_string(), "zk".to_string())].into()),
            headless,
            publish_not_ready,
        }
    }

    #[test]
    fn services_resolve_to_ready_pods_and_headless_names_to_each_pod() {
        let pods = [pod("ns1", "zk-0", 10, true), pod("ns1", "zk-1", 11, false)];
        let table =
            HostsTable::compute(&pods, &[svc("zk-hs", true, true), svc("zk", false, false)]);
        let ip = |n| Ipv4Addr::new(127, 1, 0, n);
        assert_eq!(table.global["zk.ns1.svc.cluster.local"], [ip(10)].into());
        assert_eq!(
            table.global["zk-hs.ns1.svc.cluster.local"],
            [ip(10), ip(11)].into()
        );
        assert_eq!(
            table.global["zk-1.zk-hs.ns1.svc.cluster.local"],
            [ip(11)].into()
        );
        assert_eq!(table.local["ns1"]["zk"], [ip(10)].into());
        assert_eq!(table.local["ns1"]["zk-0.zk-hs"], [ip(10)].into());
        // Pod names are not published by a Service that is not headless.
        assert!(!table.global.contains_key("zk-1.zk.ns1.svc.cluster.local"));
    }

    #[test]
    fn short_names_only_inside_the_namespace() {
        let pods = [pod("ns1", "zk-0", 10, true)];
        let table = HostsTable::compute(&pods, &[svc("zk", false, false)]);
        let mut other = pod("ns2", "client", 20, true);
        other.subdomain = None;
        let text = table.render_for(&other);
        assert!(
            text.contains("127.1.0.10\tzk.ns1.svc.cluster.local\n"),
            "{text}"
        );
        assert!(!text.contains("\tzk\n"), "{text}");
        let own = table.render_for(&pods[0]);
        assert!(own.contains("127.1.0.10\tzk\n"), "{own}");
        assert!(
            own.contains("127.1.0.10\tzk-0.zk-hs.ns1.svc.cluster.local\tzk-0\n"),
            "{own}"
        );
    }

    #[test]
    fn a_new_address_replaces_the_old_one() {
        let mut pods = [pod("ns1", "zk-0", 10, true)];
        let before = HostsTable::compute(&pods, &[svc("zk-hs", true, true)]);
        pods[0].ip = Some(Ipv4Addr::new(127, 1, 0, 99));
        let after = HostsTable::compute(&pods, &[svc("zk-hs", true, true)]);
        assert_ne!(before, after);
        assert_eq!(
            after.global["zk-0.zk-hs.ns1.svc.cluster.local"],
            [Ipv4Addr::new(127, 1, 0, 99)].into()
        );
    }

    #[test]
    fn terminating_and_unselected_pods_are_not_listed() {
        let mut gone = pod("ns1", "zk-0", 10, true);
        gone.terminating = true;
        let mut other = pod("ns1", "web-0", 11, true);
        other.labels = [("app".to_string(), "web".to_string())].into();
        let table = HostsTable::compute(&[gone, other], &[svc("zk", false, true)]);
        assert!(table.global.is_empty());
    }

    #[test]
    fn rewriting_keeps_the_inode() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("kubesim-dns-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hosts");
        rewrite_in_place(&path, "a long first version\n").unwrap();
        let inode = std::fs::metadata(&path).unwrap().ino();
        rewrite_in_place(&path, "short\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "short\n");
        assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// The cluster-wide DNS state shared by the node agents (who register their pods' files)
/// and the watcher (who keeps the table current).
#[derive(Clone, Default)]
pub struct DnsHandle {
    inner: std::sync::Arc<std::sync::Mutex<DnsState>>,
}

#[derive(Default)]
struct DnsState {
    table: HostsTable,
    files: HostsFiles,
}

impl DnsHandle {
    fn with<R>(&self, f: impl FnOnce(&mut DnsState) -> R) -> R {
        let mut guard = match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// A new pod sandbox: its hosts file is written at once with today's table.
    pub fn register(&self, uid: &str, record: PodRecord, path: PathBuf) {
        self.with(|state| {
            state.files.register(uid, record, path);
            if let Err(error) = state.files.write_one(uid, &state.table) {
                tracing::warn!(uid, %error, "cannot write a pod's hosts file");
            }
        });
    }

    pub fn update(&self, uid: &str, record: PodRecord) {
        self.with(|state| {
            if let Some(entry) = state.files.files.get_mut(uid)
                && entry.0 != record
            {
                entry.0 = record;
                let _ = state.files.write_one(uid, &state.table);
            }
        });
    }

    pub fn unregister(&self, uid: &str) {
        self.with(|state| state.files.unregister(uid));
    }

    pub fn set_table(&self, table: HostsTable) {
        self.with(|state| {
            if state.table != table {
                state.table = table;
                state.files.write_all(&state.table);
            }
        });
    }
}

fn pod_record(pod: &k8s_openapi::api::core::v1::Pod) -> PodRecord {
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    PodRecord {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        ip: status.pod_ip.and_then(|ip| ip.parse().ok()),
        hostname: spec.hostname,
        subdomain: spec.subdomain,
        labels: pod.metadata.labels.clone().unwrap_or_default(),
        ready,
        terminating: pod.metadata.deletion_timestamp.is_some(),
    }
}

fn service_record(svc: &k8s_openapi::api::core::v1::Service) -> ServiceRecord {
    let spec = svc.spec.clone().unwrap_or_default();
    ServiceRecord {
        namespace: svc.metadata.namespace.clone().unwrap_or_default(),
        name: svc.metadata.name.clone().unwrap_or_default(),
        selector: spec.selector,
        headless: spec.cluster_ip.as_deref() == Some("None"),
        publish_not_ready: spec.publish_not_ready_addresses.unwrap_or(false),
    }
}

/// Watches every pod and Service and keeps the table current (recomputed at most every
/// 100 ms). Runs with the supervisor's admin credentials, as cluster DNS does.
pub async fn watch(handle: DnsHandle, client: kube::Client) {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::{Pod, Service};
    use kube::runtime::{WatchStreamExt, reflector, watcher};
    let (pods, pod_writer) = reflector::store::<Pod>();
    let (services, svc_writer) = reflector::store::<Service>();
    let pod_stream = reflector(
        pod_writer,
        watcher(
            kube::Api::<Pod>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .map(|_| ());
    let svc_stream = reflector(
        svc_writer,
        watcher(
            kube::Api::<Service>::all(client),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .map(|_| ());
    let mut changes = futures::stream::select(pod_stream, svc_stream)
        .ready_chunks(1024)
        .boxed();
    while changes.next().await.is_some() {
        let pods: Vec<PodRecord> = pods.state().iter().map(|p| pod_record(p)).collect();
        let services: Vec<ServiceRecord> =
            services.state().iter().map(|s| service_record(s)).collect();
        handle.set_table(HostsTable::compute(&pods, &services));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
