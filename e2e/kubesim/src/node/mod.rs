//! The node agent: one per simulated node. It registers its Node, heartbeats its Lease
//! and status, watches the pods bound to it and runs each through a worker
//! ([`pod`]). A failed node stops heartbeating and SIGKILLs its pods' processes, as a
//! power loss would; a restored node comes back like a rebooted kubelet.

pub mod pod;
pub mod status;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::dns::DnsHandle;
use crate::env::ApiEndpoint;
use crate::faults::PodCgroups;
use crate::images::ImageMap;
use crate::layout::Layout;

pub const KUBELET_VERSION: &str = "v1.37.2";

/// What every node of the cluster shares.
pub struct Shared {
    pub layout: Layout,
    pub images: ImageMap,
    pub api: ApiEndpoint,
    pub ips: IpAllocator,
    /// The lock on the cluster's pod address block ([`crate::netblock`]): every container
    /// process inherits it, so that the block stays claimed while any of them lives.
    pub block_lock: Arc<OwnedFd>,
    pub dns: DnsHandle,
    /// Where pods get their cgroups (for the faults of [`crate::faults`]); None when this
    /// machine gives kubesim none.
    pub cgroups: Option<PodCgroups>,
}

/// How many pod addresses a block has: 256 third octets times 254 fourth ones (.0 and .255
/// are left out, as network and broadcast addresses would be on a /24).
const ADDRESSES_PER_BLOCK: u32 = 256 * 254;

/// Pod addresses, all within the cluster's own block 127.S.0.0/16: every pod sandbox gets a
/// new one (127.S.0.1 onwards), so a pod that is deleted and recreated under the same name
/// comes back on a different address. After 127.S.255.254 it starts over at 127.S.0.1; the
/// addresses of 65,024 sandboxes earlier are long gone by then.
pub struct IpAllocator {
    block: u8,
    /// Index of the next address in the block, 0..ADDRESSES_PER_BLOCK.
    next: AtomicU32,
}

impl IpAllocator {
    /// Allocates in 127.`block`.0.0/16, which the caller has claimed ([`crate::netblock`]).
    pub fn new(block: u8) -> IpAllocator {
        IpAllocator {
            block,
            next: AtomicU32::new(0),
        }
    }

    pub fn next(&self) -> Ipv4Addr {
        let (Ok(index) | Err(index)) =
            self.next
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |index| {
                    Some((index + 1) % ADDRESSES_PER_BLOCK)
                });
        // index < 256 * 254, so both octets fit in a u8.
        let third = (index / 254) as u8;
        let fourth = (index % 254 + 1) as u8;
        Ipv4Addr::new(127, self.block, third, fourth)
    }
}

pub struct NodeContext {
    pub shared: Arc<Shared>,
    pub name: String,
    pub ip: Ipv4Addr,
    /// Authenticated as system:node:<name>: the Node authorizer and NodeRestriction
    /// limit it to what a real kubelet may do.
    pub client: kube::Client,
    pub recorder: Recorder,
}

/// Runs one node until the process ends; `failed` switches it off and on.
pub async fn run(
    shared: Arc<Shared>,
    name: String,
    ip: Ipv4Addr,
    client: kube::Client,
    mut failed: watch::Receiver<bool>,
) {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "kubelet".into(),
            instance: Some(name.clone()),
        },
    );
    let ctx = Arc::new(NodeContext {
        shared,
        name: name.clone(),
        ip,
        client,
        recorder,
    });
    loop {
        if *failed.borrow_and_update() {
            if failed.changed().await.is_err() {
                return;
            }
            continue;
        }
        info!(node = %name, "node online");
        tokio::select! {
            _ = online(ctx.clone()) => {}
            _ = wait_for(&mut failed, true) => {
                info!(node = %name, "node failed: heartbeats stop, processes killed");
            }
        }
    }
}

async fn wait_for(flag: &mut watch::Receiver<bool>, value: bool) {
    while *flag.borrow_and_update() != value {
        if flag.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Everything a live node does. Dropping this future is the power loss: the pod
/// workers are told to kill their processes (see [`Workers`]'s Drop).
async fn online(ctx: Arc<NodeContext>) {
    let mut registered = false;
    while !registered {
        match register(&ctx).await {
            Ok(()) => registered = true,
            Err(error) => {
                warn!(node = %ctx.name, %error, "cannot register the node; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    tokio::join!(heartbeat(ctx.clone()), pods(ctx.clone()));
}

fn node_object(ctx: &NodeContext) -> serde_json::Value {
    let index = ctx.name.rsplit('-').next().unwrap_or("1");
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": ctx.name,
            "labels": {
                "kubernetes.io/hostname": ctx.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "topology.kubernetes.io/zone": format!("kubesim-zone-{index}"),
            },
        },
    })
}

fn node_status(ctx: &NodeContext, ready: bool) -> serde_json::Value {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        serde_json::json!({"type": kind, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    let capacity = serde_json::json!({"cpu": "8", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"});
    serde_json::json!({
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "addresses": [{"type": "InternalIP", "address": ctx.ip.to_string()}, {"type": "Hostname", "address": ctx.name}],
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                if ready { condition("Ready", "True", "KubeletReady", "kubelet (paddock-kubesim) is posting ready status") }
                else { condition("Ready", "False", "KubeletNotReady", "starting") },
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": ctx.name, "systemUUID": ctx.name, "bootID": format!("{}-{}", ctx.name, std::process::id()),
                "kernelVersion": "kubesim", "osImage": "paddock-kubesim", "containerRuntimeVersion": "kubesim://1",
                "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64",
            },
        }
    })
}

async fn register(ctx: &NodeContext) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let object: Node = serde_json::from_value(node_object(ctx)).map_err(kube::Error::SerdeError)?;
    match nodes.create(&PostParams::default(), &object).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(error) => return Err(error),
    }
    nodes
        .patch_status(
            &ctx.name,
            &PatchParams::default(),
            &Patch::Merge(node_status(ctx, true)),
        )
        .await?;
    info!(node = %ctx.name, ip = %ctx.ip, "node registered");
    Ok(())
}

/// The node Lease every 2 s (the node lifecycle controller's heartbeat) and the Ready
/// condition every 10 s.
async fn heartbeat(ctx: Arc<NodeContext>) {
    let leases: Api<Lease> = Api::namespaced(ctx.client.clone(), "kube-node-lease");
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut count = 0u64;
    loop {
        tick.tick().await;
        let renew = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(ctx.name.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(ctx.name.clone()),
                lease_duration_seconds: Some(8),
                renew_time: Some(renew),
                ..LeaseSpec::default()
            }),
        };
        let patch = serde_json::json!({"spec": lease.spec});
        let result = match leases
            .patch(&ctx.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Err(kube::Error::Api(status)) if status.code == 404 => leases
                .create(&PostParams::default(), &lease)
                .await
                .map(|_| ()),
            other => other.map(|_| ()),
        };
        if let Err(error) = result {
            warn!(node = %ctx.name, %error, "lease renewal failed");
        }
        if count.is_multiple_of(5)
            && let Err(error) = nodes
                .patch_status(
                    &ctx.name,
                    &PatchParams::default(),
                    &Patch::Merge(node_status(&ctx, true)),
                )
                .await
        {
            warn!(node = %ctx.name, %error, "node status update failed");
        }
        count += 1;
    }
}

/// The pod workers of a node. Dropping it (node failure, shutdown) kills them all.
#[derive(Default)]
struct Workers {
    by_uid: BTreeMap<String, pod::Worker>,
}

impl Workers {
    fn send(&mut self, uid: &str, command: pod::Command) {
        if let Some(worker) = self.by_uid.get(uid)
            && worker.commands.try_send(command).is_err()
        {
            warn!(uid, "a pod worker's queue is full or closed");
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for worker in self.by_uid.values() {
            let _ = worker.commands.try_send(pod::Command::Kill);
        }
    }
}

async fn pods(ctx: Arc<NodeContext>) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.name));
    let mut stream = watcher(api, config).boxed();
    let mut workers = Workers::default();
    let mut seen_in_relist: Vec<String> = Vec::new();
    while let Some(event) = stream.next().await {
        // Workers that ended by themselves (pod deleted) leave the table.
        workers.by_uid.retain(|_, w| !w.task.is_finished());
        match event {
            Ok(watcher::Event::Apply(pod)) | Ok(watcher::Event::InitApply(pod)) => {
                if let Some(uid) = pod.metadata.uid.clone() {
                    seen_in_relist.push(uid.clone());
                    on_pod(&ctx, &mut workers, &uid, pod);
                }
            }
            Ok(watcher::Event::Delete(pod)) => {
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    // Gone from the API (force-deleted): stop its processes now.
                    workers.send(uid, pod::Command::Kill);
                    workers.by_uid.remove(uid);
                }
            }
            Ok(watcher::Event::Init) => seen_in_relist.clear(),
            Ok(watcher::Event::InitDone) => {
                let gone: Vec<String> = workers
                    .by_uid
                    .keys()
                    .filter(|uid| !seen_in_relist.contains(uid))
                    .cloned()
                    .collect();
                for uid in gone {
                    workers.send(&uid, pod::Command::Kill);
                    workers.by_uid.remove(&uid);
                }
            }
            Err(error) => {
                warn!(node = %ctx.name, %error, "pod watch failed; it restarts with back-off");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn on_pod(ctx: &Arc<NodeContext>, workers: &mut Workers, uid: &str, pod: Pod) {
    let deleting = pod.metadata.deletion_timestamp.is_some();
    if !workers.by_uid.contains_key(uid) {
        if status::is_terminal(&pod) && !deleting {
            return;
        }
        workers
            .by_uid
            .insert(uid.to_string(), pod::spawn(ctx.clone(), pod.clone()));
    }
    if deleting {
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                pod.spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30)
            .max(0) as u64;
        workers.send(uid, pod::Command::Update(Box::new(pod)));
        workers.send(
            uid,
            pod::Command::Terminate {
                grace: Duration::from_secs(grace),
            },
        );
    } else {
        workers.send(uid, pod::Command::Update(Box::new(pod)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_addresses_stay_in_the_block_and_wrap_inside_it() {
        let ips = IpAllocator::new(7);
        let first = ips.next();
        assert_eq!(first, Ipv4Addr::new(127, 7, 0, 1));
        let mut seen = std::collections::BTreeSet::from([first]);
        let mut previous = first;
        for _ in 1..ADDRESSES_PER_BLOCK {
            let ip = ips.next();
            let [a, b, _, d] = ip.octets();
            assert_eq!((a, b), (127, 7), "{ip} is outside 127.7.0.0/16");
            assert!(d != 0 && d != 255, "{ip}");
            assert!(seen.insert(ip), "{ip} was handed out twice in one round");
            if previous == Ipv4Addr::new(127, 7, 0, 254) {
                assert_eq!(ip, Ipv4Addr::new(127, 7, 1, 1));
            }
            previous = ip;
        }
        assert_eq!(previous, Ipv4Addr::new(127, 7, 255, 254));
        // Past the end of the block: back to its start, not into 127.8.0.0/16.
        assert_eq!(ips.next(), first);
    }
}
