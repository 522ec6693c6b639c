//! Status from observed world + decision.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::crd::ZkEnsembleSpec;
use crate::membership::{EnsembleNames, MemberRole};
use crate::planner::{
    CommittedConfig, ConfigMember, EnsembleView, FollowerReport, MemberReport, PodPhase, PodView,
    ReportedConfig, ServerRole, StatefulSetView, Timeouts, WaitRecord, plan,
};

/// Three voters at revision r1; member 2 leads; member 3 is synced unless `lagging`.
fn observed(lagging: bool) -> Observed {
    let names = EnsembleNames::new("zk", "ns");
    let config = CommittedConfig {
        version: 0x1_0000_0002,
        members: (1..=3)
            .map(|id| ConfigMember {
                id,
                role: MemberRole::Participant,
                address: names
                    .server(id as u32 - 1, MemberRole::Participant)
                    .address(),
                weight: 1,
            })
            .collect(),
    };
    let reported = ReportedConfig {
        version: config.version,
        members: config.members.clone(),
    };
    let mut members = BTreeMap::new();
    for id in 1..=3u64 {
        let leader = id == 2;
        members.insert(
            id,
            Ok(MemberReport {
                myid: id,
                role: if leader {
                    ServerRole::Leader
                } else {
                    ServerRole::Follower
                },
                zxid: 0x2_0000_0005,
                synced: !(lagging && id == 3),
                config: reported.clone(),
                followers: leader.then(|| {
                    vec![
                        FollowerReport {
                            id: 1,
                            zxid: 5,
                            lag: 0,
                            synced: true,
                        },
                        FollowerReport {
                            id: 3,
                            zxid: 5,
                            lag: 0,
                            synced: !lagging,
                        },
                    ]
                }),
                ..MemberReport::default()
            }),
        );
    }
    Observed {
        ensemble: EnsembleView {
            names: names.clone(),
            generation: Some(4),
            spec: ZkEnsembleSpec::default(),
            annotations: BTreeMap::new(),
        },
        stateful_set: Some(StatefulSetView {
            replicas: 3,
            generation: Some(2),
            observed_generation: Some(2),
            current_revision: Some("r1".into()),
            update_revision: Some("r1".into()),
            claim_templates: None,
        }),
        pods: (0..3)
            .map(|o| PodView {
                name: names.pod(o),
                ordinal: o,
                revision: Some("r1".into()),
                phase: PodPhase::Running,
                ready: !(lagging && o == 2),
                ..PodView::default()
            })
            .collect(),
        pvcs: Vec::new(),
        members,
        committed: Some(config),
        wait: None,
        now: Timestamp::from_second(1_700_000_000).unwrap(),
        timeouts: Timeouts::default(),
    }
}

fn condition<'a>(s: &'a ZkEnsembleStatus, t: &str) -> &'a EnsembleCondition {
    s.conditions.iter().find(|c| c.type_ == t).unwrap()
}

#[test]
fn healthy_ensemble_is_running_and_available() {
    let obs = observed(false);
    let d = plan(&obs);
    let s = compute_status(&obs, &d, None);
    assert_eq!(s.phase, Some(Phase::Running));
    assert_eq!(s.observed_generation, Some(4));
    assert_eq!((s.replicas, s.ready_replicas), (3, 3));
    assert_eq!(s.leader.as_deref(), Some("zk-1"));
    assert_eq!(s.config_version.as_deref(), Some("0x100000002"));
    assert_eq!(
        s.connect_string.as_deref(),
        Some("zk-client.ns.svc.cluster.local:2181")
    );
    assert_eq!(s.members.len(), 3);
    assert_eq!(s.members[1].role, "leader");
    assert_eq!(s.members[1].zxid.as_deref(), Some("0x200000005"));
    assert_eq!(s.members[0].revision.as_deref(), Some("r1"));
    assert_eq!(condition(&s, AVAILABLE).status, "True");
    assert_eq!(condition(&s, PROGRESSING).status, "False");
    assert_eq!(condition(&s, DEGRADED).status, "False");
    assert_eq!(condition(&s, PAUSED).status, "False");
    assert_eq!(s.waiting, None);
}

#[test]
fn a_wait_shows_as_progressing_with_the_reason_and_is_remembered() {
    let obs = observed(true);
    let d = plan(&obs);
    let s = compute_status(&obs, &d, None);
    let p = condition(&s, PROGRESSING);
    assert_eq!((p.status.as_str(), p.reason.as_str()), ("True", "Waiting"));
    assert!(p.message.contains("zk-2"), "{}", p.message);
    assert_eq!(s.ready_replicas, 2);
    assert!(!s.members[2].ready);
    let waiting = s.waiting.clone().unwrap();
    assert_eq!(waiting.key, "PodReady/zk-2");
    assert_eq!(waiting.since, Time(obs.now));
    // Two of three voters synced: still a quorum.
    assert_eq!(condition(&s, AVAILABLE).status, "True");
}

#[test]
fn timeout_sets_degraded_with_a_reason_to_act_on() {
    let mut obs = observed(true);
    obs.wait = Some(WaitRecord {
        key: "PodReady/zk-2".into(),
        since: Timestamp::from_second(1_700_000_000 - 3600).unwrap(),
    });
    let d = plan(&obs);
    let s = compute_status(&obs, &d, None);
    assert_eq!(s.phase, Some(Phase::Degraded));
    let c = condition(&s, DEGRADED);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", "PodReadyTimeout")
    );
    assert!(c.message.contains("zk-2"), "{}", c.message);
}

#[test]
fn paused_and_no_leader() {
    let mut obs = observed(false);
    obs.ensemble.spec.paused = true;
    for r in obs.members.values_mut().flatten() {
        r.role = ServerRole::Looking;
    }
    let d = plan(&obs);
    let s = compute_status(&obs, &d, None);
    assert_eq!(s.phase, Some(Phase::Paused));
    assert_eq!(condition(&s, PAUSED).status, "True");
    let a = condition(&s, AVAILABLE);
    assert_eq!(
        (a.status.as_str(), a.reason.as_str()),
        ("False", "NoLeader")
    );
    assert_eq!(s.leader, None);
}

#[test]
fn transition_time_is_kept_while_a_condition_does_not_change() {
    let obs = observed(false);
    let d = plan(&obs);
    let first = compute_status(&obs, &d, None);
    let mut later = obs.clone();
    later.now = Timestamp::from_second(1_700_000_500).unwrap();
    let second = compute_status(&later, &d, Some(&first));
    assert_eq!(
        condition(&second, AVAILABLE).last_transition_time,
        Some(Time(obs.now))
    );
    // A change of status moves it.
    let lagging = {
        let mut o = observed(true);
        o.now = later.now;
        for r in o.members.values_mut().flatten() {
            r.role = ServerRole::Looking;
        }
        o
    };
    let third = compute_status(&lagging, &plan(&lagging), Some(&second));
    assert_eq!(
        condition(&third, AVAILABLE).last_transition_time,
        Some(Time(later.now))
    );
}

#[test]
fn volume_expansion_reasons_say_what_is_happening() {
    assert_eq!(
        degraded_reason("VolumeExpansionNotAllowed/standard"),
        "VolumeExpansionNotAllowed"
    );
    assert_eq!(
        degraded_reason("VolumeExpansion/data-zk-0"),
        "VolumeExpansionTimeout"
    );
    assert_eq!(degraded_reason("NeedsAttention/zk"), "NeedsAttention");
    let pending = Action::WaitFor {
        key: "VolumeExpansion/data-zk-0".into(),
    };
    assert_eq!(progressing_reason(&pending), "VolumeExpansionPending");
    let resize = Action::ResizePvc {
        name: "data-zk-0".into(),
        size: "2Gi".into(),
    };
    assert_eq!(progressing_reason(&resize), "ResizePvc");
    assert_eq!(progressing_reason(&Action::Done), "Idle");
}
