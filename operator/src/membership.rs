//! Names and member addresses: one place for how children, pods, PVCs and `server.N` lines are
//! spelled, so the planner, the reconciler and the ConfigMap agree.
//!
//! A member's server id is its pod ordinal + 1 (ZooKeeper ids start at 1).

use std::fmt;

/// Quorum (peer) port of every member.
pub const QUORUM_PORT: u16 = 2888;
/// Leader-election port of every member.
pub const ELECTION_PORT: u16 = 3888;
/// Client port of every member.
pub const CLIENT_PORT: u16 = 2181;
/// Admin HTTP port of every member (`/status`, `/readyz`, `/leadership/transfer`).
pub const ADMIN_PORT: u16 = 8080;
/// Name of the StatefulSet's volumeClaimTemplate.
pub const DATA_VOLUME: &str = "data";

/// Whether a member votes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    Participant,
    Observer,
}

impl MemberRole {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberRole::Participant => "participant",
            MemberRole::Observer => "observer",
        }
    }
}

/// Server id of the pod with this ordinal.
pub fn id_of_ordinal(ordinal: u32) -> u64 {
    u64::from(ordinal) + 1
}

/// Pod ordinal of this server id (ids start at 1).
pub fn ordinal_of_id(id: u64) -> Option<u32> {
    id.checked_sub(1).and_then(|o| u32::try_from(o).ok())
}

/// The names of one ensemble's children, derived from its name and namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnsembleNames {
    pub ensemble: String,
    pub namespace: String,
}

impl EnsembleNames {
    pub fn new(ensemble: impl Into<String>, namespace: impl Into<String>) -> Self {
        EnsembleNames {
            ensemble: ensemble.into(),
            namespace: namespace.into(),
        }
    }

    /// The StatefulSet carries the ensemble's name.
    pub fn stateful_set(&self) -> String {
        self.ensemble.clone()
    }

    /// The headless Service that gives every member a stable DNS name.
    pub fn headless_service(&self) -> String {
        format!("{}-headless", self.ensemble)
    }

    /// The Service clients connect through.
    pub fn client_service(&self) -> String {
        format!("{}-client", self.ensemble)
    }

    /// ConfigMap holding zoo.cfg and the initial dynamic config.
    pub fn config_map(&self) -> String {
        format!("{}-config", self.ensemble)
    }

    /// Secret holding the ensemble's super-user credential.
    pub fn credentials_secret(&self) -> String {
        format!("{}-credentials", self.ensemble)
    }

    pub fn pod(&self, ordinal: u32) -> String {
        format!("{}-{ordinal}", self.ensemble)
    }

    /// Ordinal of one of this ensemble's pods, from its name.
    pub fn ordinal_of_pod(&self, pod: &str) -> Option<u32> {
        pod.strip_prefix(self.ensemble.as_str())?
            .strip_prefix('-')?
            .parse()
            .ok()
    }

    /// The PVC the StatefulSet creates for this ordinal.
    pub fn pvc(&self, ordinal: u32) -> String {
        format!("{DATA_VOLUME}-{}", self.pod(ordinal))
    }

    /// Ordinal of one of this ensemble's PVCs, from its name.
    pub fn ordinal_of_pvc(&self, pvc: &str) -> Option<u32> {
        self.ordinal_of_pod(pvc.strip_prefix(DATA_VOLUME)?.strip_prefix('-')?)
    }

    /// Stable DNS name of a member pod (through the headless Service).
    pub fn pod_host(&self, ordinal: u32) -> String {
        format!(
            "{}.{}.{}.svc.cluster.local",
            self.pod(ordinal),
            self.headless_service(),
            self.namespace
        )
    }

    /// The member entry the dynamic config holds for this ordinal.
    pub fn server(&self, ordinal: u32, role: MemberRole) -> ServerEntry {
        ServerEntry {
            id: id_of_ordinal(ordinal),
            host: self.pod_host(ordinal),
            role,
        }
    }

    /// Connect string for clients inside the cluster.
    pub fn connect_string(&self) -> String {
        format!(
            "{}.{}.svc.cluster.local:{CLIENT_PORT}",
            self.client_service(),
            self.namespace
        )
    }
}

/// One `server.N=...` entry of a dynamic config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerEntry {
    pub id: u64,
    pub host: String,
    pub role: MemberRole,
}

impl ServerEntry {
    /// The value of `server.N`: `host:2888:3888:role;0.0.0.0:2181`.
    pub fn address(&self) -> String {
        format!(
            "{}:{QUORUM_PORT}:{ELECTION_PORT}:{};0.0.0.0:{CLIENT_PORT}",
            self.host,
            self.role.as_str()
        )
    }
}

/// The whole line, `server.N=host:2888:3888:role;0.0.0.0:2181`, as reconfig and the dynamic
/// config file take it.
impl fmt::Display for ServerEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "server.{}={}", self.id, self.address())
    }
}

/// The members the spec asks for: ids 1..=replicas, the last `observers` of them observers.
pub fn desired_members(replicas: i32, observers: i32) -> Vec<(u64, MemberRole)> {
    let replicas = u64::try_from(replicas.max(0)).unwrap_or(0);
    let voters = replicas
        .saturating_sub(u64::try_from(observers.max(0)).unwrap_or(0))
        .max(1);
    (1..=replicas)
        .map(|id| {
            let role = if id <= voters {
                MemberRole::Participant
            } else {
                MemberRole::Observer
            };
            (id, role)
        })
        .collect()
}

/// The initial dynamic config the ConfigMap carries for a new ensemble (members present from
/// the start). Later membership lives in the members' data dirs and changes only by reconfig.
pub fn initial_dynamic_config(names: &EnsembleNames, replicas: i32, observers: i32) -> String {
    let mut out = String::new();
    for (id, role) in desired_members(replicas, observers) {
        if let Some(ordinal) = ordinal_of_id(id) {
            out.push_str(&names.server(ordinal, role).to_string());
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_line_has_the_form_the_dynamic_config_uses() {
        let names = EnsembleNames::new("zk", "prod");
        assert_eq!(
            names.server(2, MemberRole::Participant).to_string(),
            "server.3=zk-2.zk-headless.prod.svc.cluster.local:2888:3888:participant;0.0.0.0:2181"
        );
    }

    #[test]
    fn names_round_trip_ordinals() {
        let names = EnsembleNames::new("zk", "ns");
        assert_eq!(names.ordinal_of_pod("zk-4"), Some(4));
        assert_eq!(names.ordinal_of_pod("zkx-4"), None);
        assert_eq!(names.ordinal_of_pod("zk-a"), None);
        assert_eq!(names.ordinal_of_pvc(&names.pvc(7)), Some(7));
        assert_eq!(ordinal_of_id(id_of_ordinal(3)), Some(3));
        assert_eq!(ordinal_of_id(0), None);
    }

    #[test]
    fn observers_are_the_highest_ids() {
        assert_eq!(
            desired_members(4, 1),
            vec![
                (1, MemberRole::Participant),
                (2, MemberRole::Participant),
                (3, MemberRole::Participant),
                (4, MemberRole::Observer)
            ]
        );
        let cfg = initial_dynamic_config(&EnsembleNames::new("a", "b"), 2, 0);
        assert_eq!(cfg.lines().count(), 2);
        assert!(
            cfg.starts_with("server.1=a-0.a-headless.b.svc.cluster.local:2888:3888:participant")
        );
    }
}
