//! Where a test cluster keeps its files, and the state `up` records for `down` and the
//! node commands. One directory holds everything; nothing is written elsewhere except the
//! mount points that pods' volumes need.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> Layout {
        Layout {
            dir: dir.to_path_buf(),
        }
    }
    pub fn pki(&self) -> PathBuf {
        self.dir.join("pki")
    }
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }
    pub fn etcd_data(&self) -> PathBuf {
        self.dir.join("etcd")
    }
    /// The admin kubeconfig `up` prints; tests and users point kubectl at it.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }
    pub fn kubeconfig_for(&self, identity: &str) -> PathBuf {
        self.dir
            .join("kubeconfigs")
            .join(format!("{identity}.kubeconfig"))
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn control_socket(&self) -> PathBuf {
        self.dir.join("kubesim.sock")
    }
    /// Written by the supervisor once every node is Ready; `up` waits for it.
    pub fn ready_marker(&self) -> PathBuf {
        self.dir.join("ready")
    }
    /// The API server's audit policy and log: every request made with a ServiceAccount's
    /// token outside kube-system, at Metadata level, so that tests can tell which
    /// permissions a workload used and which it was refused.
    pub fn audit_policy(&self) -> PathBuf {
        self.dir.join("audit-policy.yaml")
    }
    pub fn audit_log(&self) -> PathBuf {
        self.logs().join("audit.log")
    }
    pub fn supervisor_log(&self) -> PathBuf {
        self.logs().join("kubesim.log")
    }
    pub fn pods(&self) -> PathBuf {
        self.dir.join("pods")
    }
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.pods().join(uid)
    }
    /// `<namespace>/<name>` of the pod whose directory this is, for finding it by name.
    pub fn pod_name_file(pod_dir: &Path) -> PathBuf {
        pod_dir.join("pod")
    }
    /// Where the container logs of a deleted pod are kept.
    pub fn deleted_pod_logs(&self, namespace: &str, name: &str, uid: &str) -> PathBuf {
        self.logs()
            .join("pods")
            .join(format!("{namespace}_{name}_{uid}"))
    }
    /// Persistent volumes: directories that outlive pods (and nodes).
    pub fn volumes(&self) -> PathBuf {
        self.dir.join("volumes")
    }
}

/// What the supervisor started, so that `down` can stop it by pid even if the
/// supervisor itself died.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub supervisor_pid: Option<u32>,
    pub processes: Vec<Started>,
    pub apiserver_port: u16,
    pub etcd_port: u16,
    pub nodes: Vec<NodeInfo>,
    /// The cluster's pod address block, `127.S.0.0/16` (absent in state files written before
    /// clusters had blocks of their own).
    #[serde(default)]
    pub pod_block: Option<String>,
    /// Where the pods' cgroups are, for `paddock-kubesim pod pause|cut ...`; absent when
    /// the cluster could not make any.
    #[serde(default)]
    pub pod_cgroups: Option<crate::faults::PodCgroups>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Started {
    pub name: String,
    pub pid: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    pub ip: Ipv4Addr,
}

impl State {
    pub fn load(layout: &Layout) -> std::io::Result<State> {
        let text = std::fs::read_to_string(layout.state())?;
        serde_json::from_str(&text).map_err(std::io::Error::other)
    }

    pub fn save(&self, layout: &Layout) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        let tmp = layout.state().with_extension("json.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(tmp, layout.state())
    }
}

/// The address of node `index` (0-based): nodes live in 127.0.100.0/24, pods elsewhere.
pub fn node_ip(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 100, (index + 1).min(254) as u8)
}

pub fn node_name(index: usize) -> String {
    format!("kubesim-{}", index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_file_from_before_address_blocks_still_loads() {
        let old = r#"{"supervisor_pid": 42, "processes": [], "apiserver_port": 6443,
            "etcd_port": 2379, "nodes": [{"name": "kubesim-1", "ip": "127.0.100.1"}]}"#;
        let state: State = serde_json::from_str(old).unwrap();
        assert_eq!(state.pod_block, None);
        assert_eq!(state.nodes[0].ip, node_ip(0));
    }
}
