//! Table tests: observed world → expected next action, one row per rule of DESIGN §5 and per
//! anchor failure we must not repeat. Worlds are built with a small builder; each row reads as
//! "a healthy ensemble, except ...".

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;

use super::*;
use crate::crd::{ReclaimPolicy, ZkEnsembleSpec};
use crate::membership::{EnsembleNames, MemberRole, ServerEntry};

const V: u64 = 0x1_0000_0000;

#[derive(Clone, Debug)]
struct Sim {
    synced: bool,
    reachable: bool,
    role: Option<ServerRole>,
    config_version: Option<u64>,
    /// The leader does not (yet) count it as synced, whatever the member says of itself.
    leader_lacks: bool,
}

/// A world under construction: a healthy ensemble by default.
#[derive(Clone, Debug)]
struct World {
    names: EnsembleNames,
    spec: ZkEnsembleSpec,
    sts: Option<StatefulSetView>,
    pods: BTreeMap<u32, PodView>,
    sims: BTreeMap<u64, Sim>,
    committed: Vec<(u64, MemberRole)>,
    committed_version: u64,
    committed_readable: bool,
    leader: Option<u64>,
    pvcs: Vec<PvcView>,
    wait: Option<WaitRecord>,
    now: i64,
}

fn names() -> EnsembleNames {
    EnsembleNames::new("zk", "ns")
}

/// A healthy ensemble of `n` voters at revision r1, member 1 leading.
fn healthy(n: u32) -> World {
    let mut w = World {
        names: names(),
        spec: ZkEnsembleSpec {
            replicas: n as i32,
            ..ZkEnsembleSpec::default()
        },
        sts: Some(StatefulSetView {
            replicas: n as i32,
            generation: Some(1),
            observed_generation: Some(1),
            current_revision: Some("r1".into()),
            update_revision: Some("r1".into()),
            claim_templates: None,
        }),
        pods: BTreeMap::new(),
        sims: BTreeMap::new(),
        committed: (1..=u64::from(n))
            .map(|id| (id, MemberRole::Participant))
            .collect(),
        committed_version: V,
        committed_readable: true,
        leader: Some(1),
        pvcs: Vec::new(),
        wait: None,
        now: 1_000_000,
    };
    for o in 0..n {
        w = w.add_pod(o, "r1", true);
    }
    w
}

impl World {
    fn add_pod(mut self, ordinal: u32, rev: &str, serving: bool) -> Self {
        self.pods.insert(
            ordinal,
            PodView {
                name: self.names.pod(ordinal),
                ordinal,
                revision: Some(rev.into()),
                phase: PodPhase::Running,
                ready: serving,
                ip: Some(format!("127.0.1.{}", ordinal + 1)),
                ..PodView::default()
            },
        );
        let size = self.spec.storage.size.0.clone();
        self.pvcs.push(PvcView {
            name: self.names.pvc(ordinal),
            ordinal,
            terminating: false,
            requested: Some(size.clone()),
            capacity: Some(size),
            storage_class: Some("standard".into()),
            expansion_allowed: Some(true),
        });
        self.sims.insert(
            u64::from(ordinal) + 1,
            Sim {
                synced: serving,
                reachable: true,
                role: None,
                config_version: None,
                leader_lacks: false,
            },
        );
        self
    }
    fn spec(mut self, f: impl FnOnce(&mut ZkEnsembleSpec)) -> Self {
        f(&mut self.spec);
        self
    }
    /// A template change (image, config, restart annotation): a new update revision.
    fn new_revision(mut self) -> Self {
        if let Some(s) = &mut self.sts {
            s.update_revision = Some("r2".into());
        }
        self
    }
    fn updated(mut self, ordinal: u32) -> Self {
        self.pods.get_mut(&ordinal).unwrap().revision = Some("r2".into());
        self
    }
    fn leader(mut self, id: u64) -> Self {
        self.leader = Some(id);
        self
    }
    fn no_leader(mut self) -> Self {
        self.leader = None;
        self
    }
    /// The member's server runs but is not synced (and so not Ready).
    fn unsynced(mut self, id: u64) -> Self {
        self.sims.get_mut(&id).unwrap().synced = false;
        self.pods.get_mut(&(id as u32 - 1)).unwrap().ready = false;
        self
    }
    /// The operator cannot reach the member's /status (the pod may still be Ready).
    fn unreachable(mut self, id: u64) -> Self {
        self.sims.get_mut(&id).unwrap().reachable = false;
        self
    }
    fn crash_looping(mut self, ordinal: u32) -> Self {
        let id = u64::from(ordinal) + 1;
        let pod = self.pods.get_mut(&ordinal).unwrap();
        pod.ready = false;
        pod.waiting_reason = Some("CrashLoopBackOff".into());
        pod.restarts = 7;
        let sim = self.sims.get_mut(&id).unwrap();
        sim.reachable = false;
        sim.synced = false;
        self
    }
    /// The pod was just (re)created: its container is being created, nothing answers.
    fn container_creating(mut self, ordinal: u32) -> Self {
        let id = u64::from(ordinal) + 1;
        let pod = self.pods.get_mut(&ordinal).unwrap();
        pod.ready = false;
        pod.waiting_reason = Some("ContainerCreating".into());
        let sim = self.sims.get_mut(&id).unwrap();
        sim.reachable = false;
        sim.synced = false;
        self
    }
    fn missing_pod(mut self, ordinal: u32) -> Self {
        self.pods.remove(&ordinal);
        self.sims
            .get_mut(&(u64::from(ordinal) + 1))
            .unwrap()
            .reachable = false;
        self.sims.get_mut(&(u64::from(ordinal) + 1)).unwrap().synced = false;
        self
    }
    fn terminating(mut self, ordinal: u32) -> Self {
        self.pods.get_mut(&ordinal).unwrap().terminating = true;
        self
    }
    fn sts_replicas(mut self, n: i32) -> Self {
        self.sts.as_mut().unwrap().replicas = n;
        self
    }
    fn no_sts(mut self) -> Self {
        self.sts = None;
        self
    }
    fn sts_not_observed(mut self) -> Self {
        self.sts.as_mut().unwrap().generation = Some(2);
        self
    }
    /// A pod for `ordinal` that is not a member: syncing (or synced) as a joiner.
    fn joiner(self, ordinal: u32, synced: bool) -> Self {
        let mut w = self.add_pod(ordinal, "r1", false);
        let sim = w.sims.get_mut(&(u64::from(ordinal) + 1)).unwrap();
        sim.role = Some(ServerRole::Joining);
        sim.synced = synced;
        w
    }
    fn role(mut self, id: u64, role: ServerRole, config_version: u64) -> Self {
        let sim = self.sims.get_mut(&id).unwrap();
        sim.role = Some(role);
        sim.config_version = Some(config_version);
        self
    }
    fn committed(mut self, members: &[(u64, MemberRole)]) -> Self {
        self.committed = members.to_vec();
        self
    }
    fn committed_unreadable(mut self) -> Self {
        self.committed_readable = false;
        self
    }
    fn remove_pvc(mut self, ordinal: u32) -> Self {
        self.pvcs.retain(|p| p.ordinal != ordinal);
        self
    }
    fn pvc_terminating(mut self, ordinal: u32) -> Self {
        self.pvcs
            .iter_mut()
            .filter(|p| p.ordinal == ordinal)
            .for_each(|p| p.terminating = true);
        self
    }
    fn remove_pod_keep_pvc(mut self, ordinal: u32) -> Self {
        self.pods.remove(&ordinal);
        self.sims.remove(&(u64::from(ordinal) + 1));
        self
    }
    fn waiting_since(mut self, key: &str, secs_ago: i64) -> Self {
        self.wait = Some(WaitRecord {
            key: key.into(),
            since: Timestamp::from_second(self.now - secs_ago).unwrap(),
        });
        self
    }

    fn committed_config(&self) -> CommittedConfig {
        CommittedConfig {
            version: self.committed_version,
            members: self
                .committed
                .iter()
                .map(|(id, role)| ConfigMember {
                    id: *id,
                    role: *role,
                    address: self.names.server(*id as u32 - 1, *role).address(),
                    weight: u64::from(*role == MemberRole::Participant),
                })
                .collect(),
        }
    }

    fn observed(&self) -> Observed {
        let config = self.committed_config();
        let reported = ReportedConfig {
            version: config.version,
            members: config.members.clone(),
        };
        let mut members = BTreeMap::new();
        for (id, sim) in &self.sims {
            if !sim.reachable {
                members.insert(*id, Err("connection refused".to_string()));
                continue;
            }
            let in_config = config.member(*id);
            let role = if Some(*id) == self.leader {
                ServerRole::Leader
            } else if let Some(r) = sim.role {
                r
            } else if in_config.is_some_and(|m| m.role == MemberRole::Observer) {
                ServerRole::Observer
            } else if self.leader.is_some() && sim.synced {
                ServerRole::Follower
            } else {
                ServerRole::Looking
            };
            let followers = (role == ServerRole::Leader).then(|| {
                self.sims
                    .iter()
                    .filter(|(other, _)| *other != id)
                    .map(|(other, s)| FollowerReport {
                        id: *other,
                        zxid: 10,
                        lag: if s.synced { 0 } else { 100 },
                        synced: s.synced && !s.leader_lacks && s.role != Some(ServerRole::Looking),
                    })
                    .collect()
            });
            let mut cfg = reported.clone();
            if let Some(v) = sim.config_version {
                cfg.version = v;
            }
            members.insert(
                *id,
                Ok(MemberReport {
                    myid: *id,
                    role,
                    epoch: 3,
                    zxid: 10,
                    last_committed: 10,
                    synced: sim.synced || role == ServerRole::Leader,
                    config: cfg,
                    followers,
                }),
            );
        }
        Observed {
            ensemble: EnsembleView {
                names: self.names.clone(),
                generation: Some(1),
                spec: self.spec.clone(),
                annotations: BTreeMap::new(),
            },
            stateful_set: self.sts.clone(),
            pods: self.pods.values().cloned().collect(),
            pvcs: self.pvcs.clone(),
            members,
            committed: self.committed_readable.then_some(config),
            wait: self.wait.clone(),
            now: Timestamp::from_second(self.now).unwrap(),
            timeouts: Timeouts::default(),
        }
    }

    fn plan(&self) -> Decision {
        plan(&self.observed())
    }
}

fn delete(pod: &str) -> Action {
    Action::DeletePod { name: pod.into() }
}

fn waits(d: &Decision, key: &str) {
    assert_eq!(
        d.action,
        Action::WaitFor { key: key.into() },
        "{}",
        d.reason
    );
}

fn entry(id: u64, role: MemberRole) -> ServerEntry {
    names().server(id as u32 - 1, role)
}

fn assert_action(d: &Decision, want: Action) {
    assert_eq!(d.action, want, "reason: {}", d.reason);
}

// ---- steady state, pause, creation ----

#[test]
fn healthy_ensemble_is_done() {
    let d = healthy(3).plan();
    assert_action(&d, Action::Done);
    assert_eq!(d.stage, Stage::Steady);
    assert_eq!(d.wait, None);
}

#[test]
fn paused_changes_nothing_even_mid_roll() {
    let d = healthy(3).new_revision().spec(|s| s.paused = true).plan();
    assert_action(&d, Action::Paused);
}

#[test]
fn missing_statefulset_creates_children_with_spec_replicas() {
    let d = healthy(3).no_sts().committed_unreadable().plan();
    assert_action(&d, Action::CreateChildren { replicas: 3 });
}

#[test]
fn missing_statefulset_never_shrinks_an_existing_membership() {
    let d = healthy(5).spec(|s| s.replicas = 3).no_sts().plan();
    assert_action(&d, Action::CreateChildren { replicas: 5 });
}

#[test]
fn stale_statefulset_status_waits() {
    waits(
        &healthy(3).new_revision().sts_not_observed().plan(),
        "StatefulSetObserved/zk",
    );
}

#[test]
fn forming_ensemble_waits_without_touching_members() {
    let d = healthy(3).no_leader().committed_unreadable().plan();
    waits(&d, "QuorumFormed/zk");
    assert_eq!(d.stage, Stage::Creating);
}

// ---- rolling restart, rules 1-7 ----

#[test]
fn rule1_outdated_by_revision_hash_not_image() {
    // Same revision everywhere, image string changed in spec only: nothing to restart
    // until the StatefulSet reports a new revision.
    let d = healthy(3)
        .spec(|s| s.image = "paddock/server:9.9".into())
        .plan();
    assert_action(&d, Action::Done);
    let d = healthy(3).new_revision().plan();
    assert!(matches!(d.action, Action::DeletePod { .. }), "{d:?}");
    assert_eq!(d.stage, Stage::Upgrading);
}

#[test]
fn restart_annotation_shows_as_a_revision_change_and_rolls() {
    // The reconciler copies paddock.dev/restartedAt into the template; the StatefulSet
    // then reports a new update revision, which is all the planner looks at.
    let d = healthy(3).new_revision().plan();
    assert_action(&d, delete("zk-1"));
}

#[test]
fn rule2_missing_pod_waits() {
    waits(
        &healthy(3).new_revision().missing_pod(1).plan(),
        "PodCreated/zk-1",
    );
}

#[test]
fn rule2_terminating_pod_waits() {
    waits(
        &healthy(3).new_revision().updated(1).terminating(1).plan(),
        "PodGone/zk-1",
    );
}

#[test]
fn a_restart_is_dropped_when_another_member_went_down_after_the_plan() {
    // The roll chose a follower; before the delete, someone deleted the leader's pod.
    let before = healthy(3).new_revision();
    let decision = before.plan();
    assert!(takes_a_member_down(&decision.action), "{decision:?}");
    let fresh = before.clone().terminating(0).observed().pods;
    let replanned = recheck(&before.observed(), fresh, &decision).expect("re-planned");
    waits(&replanned, "PodGone/zk-0");
    assert!(
        replanned.reason.contains("re-planned"),
        "{}",
        replanned.reason
    );
    // Nothing changed: the plan stands.
    let same = before.observed().pods;
    assert_eq!(recheck(&before.observed(), same, &decision), None);
}

#[test]
fn rule2_one_pod_per_reconcile_and_next_waits_for_the_updated_one() {
    // zk-1 was just restarted: it runs r2 but does not serve yet.
    let d = healthy(3).new_revision().updated(1).unsynced(2).plan();
    waits(&d, "PodReady/zk-1");
}

#[test]
fn rule3_unready_outdated_pod_goes_first() {
    let d = healthy(3).new_revision().crash_looping(2).plan();
    assert_action(&d, delete("zk-2"));
    assert!(d.reason.contains("CrashLoopBackOff"), "{}", d.reason);
}

#[test]
fn rule3_unready_outdated_pod_goes_first_even_without_quorum() {
    // Two of three crash-loop on the old revision: restarting them cannot hurt the quorum.
    let d = healthy(3)
        .new_revision()
        .crash_looping(1)
        .crash_looping(2)
        .plan();
    assert_action(&d, delete("zk-1"));
}

#[test]
fn rule3_spares_an_outdated_member_that_waits_for_its_peers() {
    // Seen under load: a roll had restarted zk-0 when the leader's pod (zk-2) was deleted
    // by hand. zk-1, alone on the old revision, looks for a leader and is not Ready; both
    // others are coming back on the new one. Restarting zk-1 then took the third voter
    // too (an 18 s write pause): it must wait for them instead.
    let w = healthy(3)
        .new_revision()
        .no_leader()
        .updated(0)
        .container_creating(0)
        .updated(2)
        .container_creating(2)
        .unsynced(2)
        .committed_unreadable();
    let d = w.plan();
    assert!(!matches!(d.action, Action::DeletePod { .. }), "{d:?}");
    // Once its peers' servers are up (and still no leader), a stuck outdated member is
    // restarted as rule 3 says: nothing else would move the ensemble on.
    let all_up = healthy(3)
        .new_revision()
        .no_leader()
        .updated(0)
        .updated(2)
        .unsynced(1)
        .unsynced(2)
        .unsynced(3);
    assert_action(&all_up.plan(), delete("zk-1"));
}

#[test]
fn rule4_gate_no_leader_waits() {
    waits(
        &healthy(3).new_revision().no_leader().plan(),
        "SyncedQuorum/leader",
    );
}

#[test]
fn rule4_gate_synced_voters_without_this_pod_below_quorum_waits() {
    // 3 voters, member 3 not synced (but Ready by a stale probe): restarting 2 would leave 1 of 3.
    let mut w = healthy(3).new_revision();
    w.sims.get_mut(&3).unwrap().synced = false;
    let d = w.plan();
    waits(&d, "SyncedQuorum/zk-1");
}

#[test]
fn rule5_followers_first_leader_last() {
    let d = healthy(3).leader(2).new_revision().plan();
    assert_action(&d, delete("zk-0"));
    let d = healthy(3).leader(2).new_revision().updated(0).plan();
    assert_action(&d, delete("zk-2"));
}

#[test]
fn rule5_observers_before_followers() {
    let d = healthy(4)
        .spec(|s| s.observers = 1)
        .committed(&[
            (1, MemberRole::Participant),
            (2, MemberRole::Participant),
            (3, MemberRole::Participant),
            (4, MemberRole::Observer),
        ])
        .new_revision()
        .plan();
    assert_action(&d, delete("zk-3"));
}

#[test]
fn rule5_leader_transfers_before_its_restart() {
    let d = healthy(3).new_revision().updated(1).updated(2).plan();
    assert_action(&d, Action::TransferLeadership { from: 1, to: 2 });
}

#[test]
fn rule5_transfer_prefers_an_updated_synced_follower() {
    let d = healthy(3)
        .leader(1)
        .new_revision()
        .updated(2)
        .updated(1)
        .plan();
    assert_action(&d, Action::TransferLeadership { from: 1, to: 2 });
}

#[test]
fn after_transfer_old_leader_waits_until_new_leader_has_synced_quorum_without_it() {
    // Member 2 now leads; its /status does not yet show member 3 synced: stopping member 1
    // now would leave {2} of {1,2,3}. Measured on real processes (2.3 s write pauses).
    let mut w = healthy(3).leader(2).new_revision().updated(1).updated(2);
    w.sims.get_mut(&3).unwrap().leader_lacks = true;
    waits(&w.plan(), "SyncedQuorum/zk-0");
    // Once the new leader reports 3 synced, the old leader restarts.
    let d = healthy(3)
        .leader(2)
        .new_revision()
        .updated(1)
        .updated(2)
        .plan();
    assert_action(&d, delete("zk-0"));
}

#[test]
fn rule6_ready_means_synced_not_alive() {
    // zk-1 is updated, Running and Ready by the probe, but its server says it is looking.
    let mut w = healthy(3).new_revision().updated(1);
    w.sims.get_mut(&2).unwrap().role = Some(ServerRole::Looking);
    waits(&w.plan(), "PodReady/zk-1");
}

#[test]
fn rule7_timeout_stops_with_degraded_and_never_moves_on() {
    let w = healthy(3).new_revision().updated(1).unsynced(2);
    let d = w.clone().waiting_since("PodReady/zk-1", 601).plan();
    assert_action(
        &d,
        Action::Degraded {
            key: "PodReady/zk-1".into(),
        },
    );
    assert!(d.reason.contains("stopped"), "{}", d.reason);
    // The wait's start is kept, so the next reconcile is still Degraded, not a new wait.
    assert_eq!(
        d.wait.as_ref().unwrap().since,
        Timestamp::from_second(w.now - 601).unwrap()
    );
    // Within the limit it is still a wait, with the original start.
    let d = w.clone().waiting_since("PodReady/zk-1", 30).plan();
    waits(&d, "PodReady/zk-1");
    assert_eq!(
        d.wait.unwrap().since,
        Timestamp::from_second(w.now - 30).unwrap()
    );
    // A different earlier wait does not count against this one.
    let d = w.waiting_since("PodReady/zk-2", 9999).plan();
    waits(&d, "PodReady/zk-1");
}

// ---- anchors ----

#[test]
fn anchor_strimzi_1001_each_reconcile_does_not_take_out_another_pod() {
    // Reconcile after reconcile while zk-1 (restarted) has not come back: always the same wait.
    let w = healthy(5).new_revision().updated(1).unsynced(2);
    for _ in 0..5 {
        waits(&w.plan(), "PodReady/zk-1");
    }
}

#[test]
fn anchor_pravega_493_stuck_upgrade_stops_for_a_human_then_recovers() {
    // The new revision crash-loops on the first restarted pod: stop and say so.
    let w = healthy(3).new_revision().updated(1).crash_looping(1);
    let d = w.clone().waiting_since("PodReady/zk-1", 3600).plan();
    assert!(matches!(d.action, Action::Degraded { .. }), "{d:?}");
    assert!(d.reason.contains("CrashLoopBackOff"), "{}", d.reason);
    // The human fixes the image: a third revision; the broken pod is outdated and unserving,
    // so it is replaced first.
    let mut fixed = w;
    fixed.sts.as_mut().unwrap().update_revision = Some("r3".into());
    assert_action(&fixed.plan(), delete("zk-1"));
}

#[test]
fn anchor_etcd_operator_193_missing_pod_is_not_a_scale_in() {
    let d = healthy(3).missing_pod(2).plan();
    waits(&d, "PodCreated/zk-2");
    // StatefulSet shrunk by hand below the membership: restore it, never remove member 3.
    let d = healthy(3).sts_replicas(2).remove_pod_keep_pvc(2).plan();
    assert_action(&d, Action::ScaleStatefulSet { replicas: 3 });
}

#[test]
fn anchor_unreachable_status_is_never_remove_this_member() {
    let d = healthy(3).unreachable(3).plan();
    waits(&d, "PodReady/zk-2");
    assert!(d.reason.contains("does not answer"), "{}", d.reason);
    // Even with a scale-down asked for, an unreachable top member blocks (never removed blind).
    let d = healthy(3).spec(|s| s.replicas = 1).unreachable(2).plan();
    assert!(matches!(d.action, Action::WaitFor { .. }), "{d:?}");
    // And an unreachable-but-Ready outdated pod is not "not serving": it is not restarted blind.
    let d = healthy(3)
        .new_revision()
        .unreachable(1)
        .updated(1)
        .updated(2)
        .plan();
    assert!(
        !matches!(d.action, Action::DeletePod { .. } | Action::Reconfig { .. }),
        "{d:?}"
    );
}

#[test]
fn anchor_pravega_92_575_scale_down_never_loses_quorum() {
    // 3 → 2 while member 2 is not synced: removing 3 would leave {1} of {1,2}.
    let d = healthy(3).spec(|s| s.replicas = 2).unsynced(2).plan();
    assert!(matches!(d.action, Action::WaitFor { .. }), "{d:?}");
    // With all synced, the top member is removed by reconfig (not by shrinking the StatefulSet).
    let d = healthy(3).spec(|s| s.replicas = 2).plan();
    assert_action(
        &d,
        Action::Reconfig {
            change: MembershipChange::Remove(3),
            from_config_version: V,
        },
    );
}

#[test]
fn anchor_pravega_94_448_reused_pvc_with_stale_config_is_never_added() {
    // Scale-up onto a PVC left from an earlier member 4: the server trusts its old config
    // (version older than committed) and acts as a member.
    let w = healthy(3)
        .spec(|s| s.replicas = 4)
        .sts_replicas(4)
        .add_pod(3, "r1", false)
        .role(4, ServerRole::Looking, V - 5);
    let d = w.plan();
    assert!(matches!(d.action, Action::Degraded { .. }), "{d:?}");
    assert!(d.reason.contains("delete PVC data-zk-3"), "{}", d.reason);
    // With reclaimPolicy Delete the operator clears the stale data itself, PVC then pod.
    let w = w.spec(|s| s.storage.reclaim_policy = ReclaimPolicy::Delete);
    assert_action(
        &w.plan(),
        Action::DeletePvc {
            name: "data-zk-3".into(),
        },
    );
    assert_action(&w.pvc_terminating(3).plan(), delete("zk-3"));
}

// ---- scaling ----

#[test]
fn scale_up_grows_the_statefulset_by_one() {
    let d = healthy(3).spec(|s| s.replicas = 5).plan();
    assert_action(&d, Action::ScaleStatefulSet { replicas: 4 });
    assert_eq!(d.stage, Stage::Scaling);
}

#[test]
fn scale_up_waits_for_the_joiner_to_sync() {
    let d = healthy(3)
        .spec(|s| s.replicas = 5)
        .sts_replicas(4)
        .joiner(3, false)
        .plan();
    waits(&d, "JoinerSynced/zk-3");
}

#[test]
fn scale_up_adds_a_synced_joiner_with_from_config() {
    let d = healthy(3)
        .spec(|s| s.replicas = 5)
        .sts_replicas(4)
        .joiner(3, true)
        .plan();
    assert_action(
        &d,
        Action::Reconfig {
            change: MembershipChange::Add(entry(4, MemberRole::Participant)),
            from_config_version: V,
        },
    );
}

#[test]
fn scale_up_confirms_in_committed_config_before_the_next_step() {
    // Member 4 committed: the next step grows the StatefulSet again.
    let w = healthy(4).spec(|s| s.replicas = 5);
    assert_action(&w.plan(), Action::ScaleStatefulSet { replicas: 5 });
}

#[test]
fn scale_up_waits_while_unhealthy() {
    let d = healthy(3).spec(|s| s.replicas = 5).unsynced(2).plan();
    waits(&d, "PodReady/zk-1");
}

#[test]
fn scale_up_from_one() {
    let d = healthy(1).spec(|s| s.replicas = 3).plan();
    assert_action(&d, Action::ScaleStatefulSet { replicas: 2 });
    let d = healthy(1)
        .spec(|s| s.replicas = 3)
        .sts_replicas(2)
        .joiner(1, true)
        .plan();
    assert_action(
        &d,
        Action::Reconfig {
            change: MembershipChange::Add(entry(2, MemberRole::Participant)),
            from_config_version: V,
        },
    );
}

#[test]
fn scale_down_moves_leadership_off_a_departing_leader() {
    let d = healthy(3).spec(|s| s.replicas = 2).leader(3).plan();
    assert_action(&d, Action::TransferLeadership { from: 3, to: 1 });
}

#[test]
fn scale_down_shrinks_the_statefulset_after_the_remove_is_committed() {
    let d = healthy(3)
        .spec(|s| s.replicas = 2)
        .committed(&[(1, MemberRole::Participant), (2, MemberRole::Participant)])
        .plan();
    assert_action(&d, Action::ScaleStatefulSet { replicas: 2 });
}

#[test]
fn scale_down_waits_for_the_pod_to_go_then_reclaims_per_policy() {
    let shrunk = healthy(3)
        .spec(|s| s.replicas = 2)
        .committed(&[(1, MemberRole::Participant), (2, MemberRole::Participant)])
        .sts_replicas(2);
    // Retain: the PVC stays; nothing left to do.
    assert_action(&shrunk.clone().remove_pod_keep_pvc(2).plan(), Action::Done);
    let delete_policy = shrunk.spec(|s| s.storage.reclaim_policy = ReclaimPolicy::Delete);
    waits(&delete_policy.clone().plan(), "PodGone/zk-2");
    assert_action(
        &delete_policy.clone().remove_pod_keep_pvc(2).plan(),
        Action::DeletePvc {
            name: "data-zk-2".into(),
        },
    );
    assert_action(
        &delete_policy.remove_pod_keep_pvc(2).remove_pvc(2).plan(),
        Action::Done,
    );
}

#[test]
fn repair_after_operator_restart_joiner_no_longer_wanted_is_shrunk_away() {
    // Crashed mid scale-up (zk-3 created), then the user set replicas back to 3.
    let d = healthy(3).sts_replicas(4).joiner(3, true).plan();
    assert_action(&d, Action::ScaleStatefulSet { replicas: 3 });
}

#[test]
fn repair_after_operator_restart_finishes_an_add() {
    // Same state as before the crash: the synced joiner is added, nothing is recreated.
    let d = healthy(3)
        .spec(|s| s.replicas = 4)
        .sts_replicas(4)
        .joiner(3, true)
        .plan();
    assert!(matches!(d.action, Action::Reconfig { .. }), "{d:?}");
}

#[test]
fn repair_stale_committed_read_waits() {
    // The joiner already reports itself a follower in a newer config than the operator read.
    let d = healthy(3)
        .spec(|s| s.replicas = 4)
        .sts_replicas(4)
        .add_pod(3, "r1", true)
        .role(4, ServerRole::Follower, V + 1)
        .plan();
    waits(&d, "JoinerSynced/zk-3");
}

#[test]
fn observers_join_as_observers() {
    let d = healthy(3)
        .spec(|s| {
            s.replicas = 4;
            s.observers = 1
        })
        .sts_replicas(4)
        .joiner(3, true)
        .plan();
    assert_action(
        &d,
        Action::Reconfig {
            change: MembershipChange::Add(entry(4, MemberRole::Observer)),
            from_config_version: V,
        },
    );
}

#[test]
fn observer_count_change_changes_one_role() {
    let d = healthy(3).spec(|s| s.observers = 1).plan();
    assert_action(
        &d,
        Action::Reconfig {
            change: MembershipChange::Add(entry(3, MemberRole::Observer)),
            from_config_version: V,
        },
    );
}

#[test]
fn observer_removal_needs_no_quorum_change() {
    let d = healthy(4)
        .spec(|s| s.replicas = 3)
        .committed(&[
            (1, MemberRole::Participant),
            (2, MemberRole::Participant),
            (3, MemberRole::Participant),
            (4, MemberRole::Observer),
        ])
        .plan();
    assert_action(
        &d,
        Action::Reconfig {
            change: MembershipChange::Remove(4),
            from_config_version: V,
        },
    );
}

#[test]
fn scaling_waits_for_the_roll_to_finish() {
    let d = healthy(3).spec(|s| s.replicas = 5).new_revision().plan();
    assert!(matches!(d.action, Action::DeletePod { .. }), "{d:?}");
}

// ---- storage growth: claims grow in place, never a pod restart ----

impl World {
    /// The member's claim as the API server reports it.
    fn claim(mut self, ordinal: u32, requested: &str, capacity: &str) -> Self {
        let pvc = self.pvcs.iter_mut().find(|p| p.ordinal == ordinal).unwrap();
        pvc.requested = Some(requested.into());
        pvc.capacity = Some(capacity.into());
        self
    }
    fn expansion(mut self, allowed: Option<bool>) -> Self {
        self.pvcs
            .iter_mut()
            .for_each(|p| p.expansion_allowed = allowed);
        self
    }
}

fn grown(w: World) -> World {
    w.spec(|s| s.storage.size = Quantity("20Gi".into()))
}

fn resize(ordinal: u32, size: &str) -> Action {
    Action::ResizePvc {
        name: names().pvc(ordinal),
        size: size.into(),
    }
}

#[test]
fn storage_growth_raises_the_lowest_member_claim_first() {
    let d = grown(healthy(3)).plan();
    assert_action(&d, resize(0, "20Gi"));
    assert!(d.reason.contains("from 10Gi"), "{}", d.reason);
}

#[test]
fn storage_growth_one_claim_per_reconcile_until_all_request_the_size() {
    let w = grown(healthy(3)).claim(0, "20Gi", "10Gi");
    assert_action(&w.plan(), resize(1, "20Gi"));
    let w = w.claim(1, "20Gi", "20Gi");
    assert_action(&w.plan(), resize(2, "20Gi"));
}

#[test]
fn storage_growth_compares_quantities_not_text() {
    let w = grown(healthy(3))
        .claim(0, "20480Mi", "20480Mi")
        .claim(1, "21474836480", "21474836480")
        .claim(2, "20Gi", "20Gi");
    assert_action(&w.plan(), Action::Done);
}

#[test]
fn storage_expansion_in_progress_waits_and_reports() {
    let w = grown(healthy(3))
        .claim(0, "20Gi", "20Gi")
        .claim(1, "20Gi", "10Gi")
        .claim(2, "20Gi", "10Gi");
    let d = w.plan();
    waits(&d, "VolumeExpansion/data-zk-1");
    assert!(d.reason.contains("requests 20Gi"), "{}", d.reason);
}

#[test]
fn storage_expansion_that_never_finishes_stops_with_degraded() {
    let d = grown(healthy(3))
        .claim(0, "20Gi", "10Gi")
        .claim(1, "20Gi", "20Gi")
        .claim(2, "20Gi", "20Gi")
        .waiting_since("VolumeExpansion/data-zk-0", 301)
        .plan();
    assert_action(
        &d,
        Action::Degraded {
            key: "VolumeExpansion/data-zk-0".into(),
        },
    );
}

#[test]
fn storage_class_without_expansion_is_refused_with_what_to_do() {
    let d = grown(healthy(3)).expansion(Some(false)).plan();
    assert_action(
        &d,
        Action::Degraded {
            key: "VolumeExpansionNotAllowed/standard".into(),
        },
    );
    assert!(
        d.reason.contains("allowVolumeExpansion: true"),
        "{}",
        d.reason
    );
}

#[test]
fn storage_class_unreadable_leaves_the_decision_to_the_api_server() {
    let d = grown(healthy(3)).expansion(None).plan();
    assert_action(&d, resize(0, "20Gi"));
}

#[test]
fn storage_growth_skips_claims_of_removed_members() {
    // Member 4's pod is gone but its claim is kept (reclaimPolicy Retain).
    let w = grown(healthy(3))
        .claim(0, "20Gi", "20Gi")
        .claim(1, "20Gi", "20Gi")
        .claim(2, "20Gi", "20Gi");
    let mut w = w.add_pod(3, "r1", true).remove_pod_keep_pvc(3);
    w.pvcs.last_mut().unwrap().requested = Some("10Gi".into());
    assert_action(&w.plan(), Action::Done);
}

#[test]
fn storage_growth_of_an_ephemeral_ensemble_does_nothing() {
    let d = grown(healthy(3))
        .spec(|s| s.storage.ephemeral = true)
        .plan();
    assert_action(&d, Action::Done);
}

#[test]
fn storage_growth_waits_for_a_roll_in_progress() {
    let d = grown(healthy(3)).new_revision().plan();
    assert!(matches!(d.action, Action::DeletePod { .. }), "{d:?}");
}

// ---- property: no action drops synced voters below quorum ----

/// Synced voters the leader reports, after `action` takes effect.
fn quorum_holds_after(obs: &Observed, action: &Action) -> bool {
    let leader = obs
        .members
        .values()
        .filter_map(|r| r.as_ref().ok())
        .find(|r| r.role == ServerRole::Leader);
    let Some(committed) = obs.committed.clone() else {
        return true;
    };
    let mut voters: BTreeMap<u64, u64> = committed
        .members
        .iter()
        .filter(|m| m.role == MemberRole::Participant)
        .map(|m| (m.id, m.weight))
        .collect();
    let mut synced: std::collections::BTreeSet<u64> = leader
        .map(|l| {
            let mut s: std::collections::BTreeSet<u64> = l
                .followers
                .iter()
                .flatten()
                .filter(|f| f.synced)
                .map(|f| f.id)
                .collect();
            s.insert(l.myid);
            s
        })
        .unwrap_or_default();
    let before = world::has_quorum(&voters, &synced);
    match action {
        Action::DeletePod { name } => {
            let names = &obs.ensemble.names;
            if let Some(o) = names.ordinal_of_pod(name) {
                synced.remove(&(u64::from(o) + 1));
            }
        }
        Action::Reconfig {
            change: MembershipChange::Remove(id),
            ..
        } => {
            voters.remove(id);
            synced.remove(id);
        }
        Action::Reconfig {
            change: MembershipChange::Add(e),
            ..
        } => {
            if e.role == MemberRole::Observer {
                voters.remove(&e.id);
                synced.remove(&e.id);
            } else {
                voters.insert(e.id, 1);
            }
        }
        _ => return true,
    }
    // An action may not be what takes a quorum away.
    !before || world::has_quorum(&voters, &synced)
}

fn arb_world() -> impl Strategy<Value = World> {
    (
        1u32..=7,
        0i32..=8,
        proptest::collection::vec(
            (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
            8,
        ),
        0u64..=8,
        any::<bool>(),
        0i32..=3,
    )
        .prop_map(|(n, want, flags, leader, roll, obs)| {
            let mut w = healthy(n).spec(|s| {
                s.replicas = want.max(1);
                s.observers = obs.min(want.max(1) - 1);
            });
            if roll {
                w = w.new_revision();
            }
            w.leader = (leader >= 1 && leader <= u64::from(n)).then_some(leader);
            for (i, (synced, reachable, updated, ready)) in flags.into_iter().enumerate() {
                let id = i as u64 + 1;
                if let Some(sim) = w.sims.get_mut(&id) {
                    sim.synced = synced;
                    sim.reachable = reachable;
                }
                if let Some(pod) = w.pods.get_mut(&(i as u32)) {
                    pod.ready = ready;
                    if updated && roll {
                        pod.revision = Some("r2".into());
                    }
                }
            }
            w
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed), ..ProptestConfig::default() })]

    #[test]
    fn no_action_drops_synced_voters_below_quorum(w in arb_world()) {
        let obs = w.observed();
        let d = plan(&obs);
        prop_assert!(quorum_holds_after(&obs, &d.action), "{:?}: {}", d.action, d.reason);
    }
}
