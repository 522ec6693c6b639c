//! Reconfigs and leadership handoffs through the production node, mixed with the random
//! faults: an administrator, logged in as the super user, sends `reconfig` requests
//! through a node's client path (moving one server between participant and observer) and
//! now and then asks the leader to hand leadership over. Once healed, every node holds the
//! same committed config, in its tree, in ZAB's membership, in the ensemble it serves
//! with and on its disk, besides the checks of every run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use paddock_proto::{AuthPacket, ErrorCode, ReconfigRequest, Request};
use tokio::sync::mpsc;

use super::{FAULT_MS, World, connect, each_seed};
use crate::config::{DynamicConfig, LearnerRole};
use crate::core::{CoreMsg, Outgoing};
use crate::tree::CONFIG_NODE;
use crate::zab::Sid;

/// The super user's `user:password` (its digest is every node's superDigest).
pub(super) const SUPER: &str = "super:sim";
/// How often the administrator acts, in simulated milliseconds.
pub(super) const ADMIN_EVERY_MS: u64 = 300;

/// The administrator's connection to one node.
pub(super) struct Admin {
    node: Sid,
    conn: u64,
    rx: mpsc::UnboundedReceiver<Outgoing>,
    /// Its session, once connected.
    session: Option<i64>,
    /// The xid of the reconfig in flight.
    in_flight: Option<i32>,
    next_xid: i32,
}

impl World {
    /// Connects (to the leader, when there is one), logs in, then keeps one reconfig in
    /// flight at a time; sometimes hands leadership over instead.
    pub(super) fn drive_admin(&mut self) {
        let connected = self
            .admin
            .as_ref()
            .is_some_and(|a| matches!(self.nodes.get(&a.node), Some(Some(_))));
        if !connected {
            self.admin = None;
            self.connect_admin();
            return;
        }
        let Some(mut admin) = self.admin.take() else {
            return;
        };
        let mut closed = false;
        while let Ok(out) = admin.rx.try_recv() {
            match out {
                Outgoing::Connected(resp) => {
                    admin.session = (resp.session_id != 0).then_some(resp.session_id)
                }
                Outgoing::Reply { xid, err, .. } if Some(xid) == admin.in_flight => {
                    admin.in_flight = None;
                    *self
                        .reconfig_outcomes
                        .entry(format!("{err:?}"))
                        .or_default() += 1;
                    let what = if err == ErrorCode::Ok {
                        "committed".to_string()
                    } else {
                        format!("refused: {err:?}")
                    };
                    self.note(format!("reconfig {xid} {what}"));
                }
                Outgoing::Close => closed = true,
                _ => {}
            }
        }
        if closed {
            return; // dropped: the next round connects again
        }
        if admin.session.is_some() && admin.in_flight.is_none() {
            if self.rng.below(4) == 0 {
                self.hand_over();
            } else if let Some(req) = self.next_reconfig(admin.node) {
                let xid = admin.next_xid;
                admin.next_xid += 1;
                admin.in_flight = Some(xid);
                self.note(format!(
                    "reconfig {xid} at node {}: {}",
                    admin.node, req.joining_servers
                ));
                let (node, conn) = (admin.node, admin.conn);
                self.admin = Some(admin);
                self.step(
                    node,
                    CoreMsg::Request {
                        conn,
                        xid,
                        req: Request::Reconfig(req),
                        received: Instant::now(),
                    },
                );
                return;
            }
        }
        self.admin = Some(admin);
    }

    /// The administrator's session, while it is connected.
    pub(super) fn admin_session(&self) -> Option<i64> {
        self.admin.as_ref().and_then(|a| a.session)
    }

    fn connect_admin(&mut self) {
        let running: Vec<Sid> = self
            .ids
            .iter()
            .copied()
            .filter(|id| matches!(self.nodes.get(id), Some(Some(_))))
            .collect();
        let Some(node) = self.leader().or_else(|| {
            running
                .get(self.rng.below(running.len() as u64) as usize)
                .copied()
        }) else {
            return;
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let conn = self.next_conn;
        self.next_conn += 1;
        self.admin = Some(Admin {
            node,
            conn,
            rx,
            session: None,
            in_flight: None,
            next_xid: 1,
        });
        self.step(node, connect(conn, tx));
        // Queued behind the connect, as a client's addauth is.
        self.step(
            node,
            CoreMsg::Request {
                conn,
                xid: -4,
                req: Request::Auth(AuthPacket {
                    kind: 0,
                    scheme: "digest".into(),
                    auth: SUPER.as_bytes().to_vec().into(),
                }),
                received: Instant::now(),
            },
        );
    }

    /// The leader hands leadership to the best synced voter.
    fn hand_over(&mut self) {
        let Some(leader) = self.leader() else {
            return;
        };
        if let Some(Some(node)) = self.nodes.get_mut(&leader) {
            let result = node.core.transfer_leadership(None);
            self.note(format!("leader {leader} hands over: {result:?}"));
            // What the handoff sent.
            self.step(leader, CoreMsg::Tick);
        }
    }

    /// Moves one server, picked at random, between participant and observer, keeping
    /// at least two voters; computed from the config `node` serves with.
    fn next_reconfig(&mut self, node: Sid) -> Option<ReconfigRequest> {
        let current = self.nodes.get(&node)?.as_ref()?.core.ensemble().clone();
        let who = self.ids[self.rng.below(self.ids.len() as u64) as usize];
        let entry = current.servers.get(&who)?;
        let voters = current
            .servers
            .values()
            .filter(|s| s.role == LearnerRole::Participant)
            .count();
        let role = match entry.role {
            LearnerRole::Participant if voters > 2 => "observer",
            LearnerRole::Participant => return None,
            _ => "participant",
        };
        Some(ReconfigRequest {
            joining_servers: format!(
                "server.{who}=127.0.0.{who}:2888:3888:{role};127.0.0.{who}:2181"
            ),
            leaving_servers: String::new(),
            new_members: String::new(),
            cur_config_id: -1,
        })
    }

    /// Every node holds the same committed config: the text of its /zookeeper/config,
    /// ZAB's membership, the ensemble it serves with, and the dynamic config on its
    /// disk.
    fn check_configs(&self) -> Result<(), String> {
        let mut texts = BTreeSet::new();
        let mut memberships = BTreeSet::new();
        for (id, node) in &self.nodes {
            let Some(node) = node else {
                return Err(format!("node {id} is down"));
            };
            let text = node
                .core
                .tree()
                .get(CONFIG_NODE)
                .and_then(|n| n.data().map(|d| String::from_utf8_lossy(d).into_owned()))
                .unwrap_or_default();
            let from_tree = DynamicConfig::parse(&text, "the tree's config")
                .map_err(|e| format!("node {id}: /zookeeper/config does not parse: {e}"))?;
            let zab = node.core.zab().membership();
            if from_tree.membership().verifier.voters() != zab.verifier.voters()
                || from_tree.membership().observers != zab.observers
            {
                return Err(format!(
                    "node {id}: /zookeeper/config says {text:?}, ZAB's membership {zab:?}"
                ));
            }
            if node.core.ensemble().render() != from_tree.render() {
                return Err(format!(
                    "node {id} serves with {:?}, its tree says {text:?}",
                    node.core.ensemble().render()
                ));
            }
            let stored = self.stores[id]
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .config
                .clone();
            if let Some(stored) = stored
                && stored != from_tree.render()
            {
                return Err(format!(
                    "node {id} keeps {stored:?} on its disk, its tree says {text:?}"
                ));
            }
            texts.insert(from_tree.render());
            memberships.insert(format!("{zab:?}"));
        }
        if texts.len() > 1 || memberships.len() > 1 {
            return Err(format!(
                "the nodes hold different configs: {texts:#?} {memberships:#?}"
            ));
        }
        Ok(())
    }
}

/// One seed: five nodes, faults with reconfigs and handoffs among them, then the checks
/// of every run and of the configs.
fn run_reconfigs(seed: u64) -> Result<BTreeMap<String, u64>, String> {
    let mut world = reconfig_world(seed);
    run_reconfigs_in(&mut world)?;
    Ok(world.reconfig_outcomes)
}

fn reconfig_world(seed: u64) -> World {
    let mut world = World::new(seed + 5_000_000, 5);
    world.reconfigs = true;
    world
}

fn run_reconfigs_in(world: &mut World) -> Result<(), String> {
    // The nodes started before `reconfigs` was set: restart them with reconfig enabled.
    for id in world.ids.clone() {
        world.crash(id);
        world.start(id);
    }
    world.run_until(FAULT_MS);
    world.end_faults();
    world.settle_and_check()?;
    world
        .check_configs()
        .map_err(|e| format!("{e}\n{}", world.log.join("\n")))
}

#[test]
fn reconfigs_and_handoffs_mixed_with_faults() {
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    for seen in each_seed("sim::reconfig", run_reconfigs) {
        for (outcome, n) in seen {
            *outcomes.entry(outcome).or_default() += n;
        }
    }
    if std::env::var_os("PADDOCK_SERVER_SIM_FIGURES").is_some() {
        eprintln!("reconfig answers: {outcomes:?}");
    }
    assert!(
        outcomes.get("Ok").is_some_and(|n| *n > 0),
        "no reconfig ever committed: {outcomes:?}"
    );
}

/// Searches for a seed whose history has a follower's logged (not ACKed) txn cut by a
/// leader-elect that lacked it, and then committed by the next leader, which held it
/// (seed 43411 did until the leader began to expire overdue sessions before a client's
/// message; 80,000 seeds searched since, 40000..80000 and 1000000..1041000, found none).
/// The checker's handling of that history is tested on its own in `checks::tests`; a
/// seed found here would replay it through the production code again. Searches the
/// seeds the simulator's variables name (`PADDOCK_SERVER_SIM_FIRST_SEED`,
/// `PADDOCK_SERVER_SIM_SEEDS`), about 25 a second in a release build, and fails when
/// none of them qualifies.
#[test]
#[ignore = "a search, not a check: minutes to hours"]
fn find_a_seed_that_commits_a_txn_cut_before_its_commit() {
    let seeds = super::seeds();
    let found = seeds.iter().copied().find(|&seed| {
        let mut world = reconfig_world(seed);
        run_reconfigs_in(&mut world).is_ok() && world.committed_after_a_cut > 0
    });
    let seed = found.unwrap_or_else(|| panic!("none of {} seeds qualifies", seeds.len()));
    eprintln!("seed {seed} commits a txn cut before its commit");
}
