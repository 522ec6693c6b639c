//! The observed world the planner decides from. The reconciler fills it from the API server
//! and the members' admin endpoints each reconcile; nothing in it is remembered by the planner.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;

use crate::crd::ZkEnsembleSpec;
use crate::membership::{EnsembleNames, MemberRole};

/// Everything the planner looks at.
#[derive(Clone, Debug)]
pub struct Observed {
    pub ensemble: EnsembleView,
    /// The ensemble's StatefulSet, or None when it does not exist yet.
    pub stateful_set: Option<StatefulSetView>,
    /// The ensemble's pods (any ordinal, including ones above the StatefulSet's replicas).
    pub pods: Vec<PodView>,
    /// The ensemble's data PersistentVolumeClaims.
    pub pvcs: Vec<PvcView>,
    /// Each member's `GET /status`, by server id; an Err is a member that did not answer
    /// (never read as "remove this member").
    pub members: BTreeMap<u64, Result<MemberReport, String>>,
    /// The committed membership (`/zookeeper/config`), when it could be read.
    pub committed: Option<CommittedConfig>,
    /// The wait in progress (from status.waiting), so a wait is measured across reconciles and
    /// operator restarts.
    pub wait: Option<WaitRecord>,
    pub now: Timestamp,
    pub timeouts: Timeouts,
}

/// The ZkEnsemble itself.
#[derive(Clone, Debug)]
pub struct EnsembleView {
    pub names: EnsembleNames,
    pub generation: Option<i64>,
    pub spec: ZkEnsembleSpec,
    pub annotations: BTreeMap<String, String>,
}

/// What the planner needs of the StatefulSet.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatefulSetView {
    /// spec.replicas.
    pub replicas: i32,
    /// metadata.generation and status.observedGeneration: revisions are stale until the
    /// StatefulSet controller has observed the latest template.
    pub generation: Option<i64>,
    pub observed_generation: Option<i64>,
    pub current_revision: Option<String>,
    pub update_revision: Option<String>,
    /// spec.volumeClaimTemplates as the API server has them. They are immutable, so the
    /// reconciler applies them unchanged; a larger spec.storage.size grows each claim instead.
    pub claim_templates: Option<Vec<PersistentVolumeClaim>>,
}

/// Lifecycle phase of a pod.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PodPhase {
    #[default]
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

/// What the planner needs of a pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodView {
    pub name: String,
    pub ordinal: u32,
    /// The `controller-revision-hash` label.
    pub revision: Option<String>,
    pub phase: PodPhase,
    /// The Ready condition (the server's /readyz through the readiness probe).
    pub ready: bool,
    /// deletionTimestamp is set.
    pub terminating: bool,
    /// Why the server container waits (CrashLoopBackOff, ImagePullBackOff, ...), if it does.
    pub waiting_reason: Option<String>,
    pub restarts: i32,
    pub ip: Option<String>,
}

/// A data PersistentVolumeClaim of the ensemble.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PvcView {
    pub name: String,
    pub ordinal: u32,
    pub terminating: bool,
    /// spec.resources.requests.storage.
    pub requested: Option<String>,
    /// status.capacity.storage (None until bound).
    pub capacity: Option<String>,
    /// spec.storageClassName.
    pub storage_class: Option<String>,
    /// The StorageClass's allowVolumeExpansion: Some(false) when the class says no (or has no
    /// such field), None when the class could not be read (the API server then decides).
    pub expansion_allowed: Option<bool>,
}

/// Role a server reports in `/status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerRole {
    Leader,
    Follower,
    Observer,
    #[default]
    Looking,
    /// Started with --join: syncing as a non-voting member before the reconfig that adds it.
    Joining,
}

impl ServerRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerRole::Leader => "leader",
            ServerRole::Follower => "follower",
            ServerRole::Observer => "observer",
            ServerRole::Looking => "looking",
            ServerRole::Joining => "joining",
        }
    }
}

/// A member's `GET /status` (DESIGN §2 admin contract); the reconciler parses the body into it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberReport {
    pub myid: u64,
    pub role: ServerRole,
    #[serde(default)]
    pub epoch: u64,
    #[serde(default)]
    pub zxid: u64,
    #[serde(default)]
    pub last_committed: u64,
    #[serde(default)]
    pub synced: bool,
    #[serde(default)]
    pub config: ReportedConfig,
    /// On the leader only.
    #[serde(default)]
    pub followers: Option<Vec<FollowerReport>>,
}

impl MemberReport {
    /// `/readyz`: the leader, or a follower/observer that finished sync with it.
    pub fn is_ready(&self) -> bool {
        match self.role {
            ServerRole::Leader => true,
            ServerRole::Follower | ServerRole::Observer => self.synced,
            ServerRole::Looking | ServerRole::Joining => false,
        }
    }
}

/// `config` of `/status`: the membership this server works with.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct ReportedConfig {
    pub version: u64,
    #[serde(default)]
    pub members: Vec<ConfigMember>,
}

/// One follower or observer as the leader sees it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct FollowerReport {
    pub id: u64,
    #[serde(default)]
    pub zxid: u64,
    #[serde(default)]
    pub lag: u64,
    pub synced: bool,
}

/// One member of a configuration.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ConfigMember {
    pub id: u64,
    pub role: MemberRole,
    pub address: String,
    /// Vote weight (0 for observers); 1 when not reported.
    #[serde(default = "default_weight")]
    pub weight: u64,
}

fn default_weight() -> u64 {
    1
}

/// The committed membership.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommittedConfig {
    pub version: u64,
    pub members: Vec<ConfigMember>,
}

impl CommittedConfig {
    pub fn member(&self, id: u64) -> Option<&ConfigMember> {
        self.members.iter().find(|m| m.id == id)
    }

    pub fn max_id(&self) -> u64 {
        self.members.iter().map(|m| m.id).max().unwrap_or(0)
    }

    /// Parses the text of `/zookeeper/config`: `server.N=...` lines and `version=<hex>`.
    pub fn parse(text: &str) -> Result<CommittedConfig, String> {
        let mut config = CommittedConfig::default();
        let mut weights = BTreeMap::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("not key=value: {line:?}"))?;
            if key == "version" {
                config.version = u64::from_str_radix(value.trim_start_matches("0x"), 16)
                    .map_err(|e| format!("bad version {value:?}: {e}"))?;
            } else if let Some(id) = key.strip_prefix("server.") {
                let id: u64 = id
                    .parse()
                    .map_err(|e| format!("bad server id {key:?}: {e}"))?;
                let peer_part = value.split(';').next().unwrap_or_default();
                let role = if peer_part.ends_with(":observer") {
                    MemberRole::Observer
                } else {
                    MemberRole::Participant
                };
                config.members.push(ConfigMember {
                    id,
                    role,
                    address: value.to_string(),
                    weight: 1,
                });
            } else if let Some(id) = key.strip_prefix("weight.") {
                let id: u64 = id
                    .parse()
                    .map_err(|e| format!("bad weight key {key:?}: {e}"))?;
                let w: u64 = value
                    .parse()
                    .map_err(|e| format!("bad weight {value:?}: {e}"))?;
                weights.insert(id, w);
            }
        }
        for m in &mut config.members {
            if m.role == MemberRole::Observer {
                m.weight = 0;
            } else if let Some(w) = weights.get(&m.id) {
                m.weight = *w;
            }
        }
        config.members.sort_by_key(|m| m.id);
        Ok(config)
    }
}

impl From<&ReportedConfig> for CommittedConfig {
    fn from(r: &ReportedConfig) -> Self {
        let mut members = r.members.clone();
        members.sort_by_key(|m| m.id);
        CommittedConfig {
            version: r.version,
            members,
        }
    }
}

/// A wait in progress: its key (kind/target) and when it started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitRecord {
    pub key: String,
    pub since: Timestamp,
}

/// How long each kind of wait may last before the planner stops with Degraded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// A restarted or new pod to serve.
    pub pod_ready: Duration,
    /// A joiner to sync before it is added.
    pub joiner_sync: Duration,
    /// A synced quorum that excludes the member about to stop (after a leadership transfer).
    pub quorum: Duration,
    /// Anything else (pods to appear or go, the StatefulSet controller, the ensemble forming).
    pub other: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            pod_ready: Duration::from_secs(600),
            joiner_sync: Duration::from_secs(600),
            quorum: Duration::from_secs(120),
            other: Duration::from_secs(300),
        }
    }
}
