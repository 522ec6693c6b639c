//! The simulator of the whole server node: the production [`Core`] (tree, sessions,
//! request pipeline, ZAB, recovery, snapshots) run by a deterministic world instead of
//! tokio, sockets and files. The world owns time, the network between the nodes and each
//! node's disk; it crashes nodes (losing what was not yet durable, or some of it), cuts
//! the power of the whole ensemble, restarts nodes through the production recovery
//! ([`rebuild`]), isolates them, cuts single links (or, on five nodes, holds a ring or a
//! bridge), resets connections (losing what was in flight on them), slows disks down,
//! and runs clients that create znodes through each node's client path. Every run is a
//! seed.
//!
//! Checked after every step: one leader an epoch; what a node applied never goes back;
//! every txn a node applies is one it logged, with the payload every other node applied
//! at that zxid. At the end: no TRUNC cut a committed txn; every acknowledged create is on
//! every node, in an order consistent with real time (one acknowledged before another was
//! sent has the lower zxid); the nodes' trees agree; a leader serves writes again within
//! a bound after the last fault (liveness); sessions and ephemerals follow the clients
//! (`sessions`).
//!
//! Scenarios: random faults on 3 or 5 nodes (here), non-transitive partitions held while
//! servers die (`liveness`), reconfigs and leadership handoffs (`reconfig`), weighted and
//! hierarchical quorums (`quorums`).
//!
//! `PADDOCK_SERVER_SIM_SEEDS=N` runs more seeds (from `PADDOCK_SERVER_SIM_FIRST_SEED`,
//! 1 by default); `PADDOCK_SERVER_SIM_SEED=S` replays one.

mod checks;
mod io;
mod liveness;
mod quorums;
mod reconfig;
mod sessions;
mod trace;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use paddock_proto::{Acl, ConnectRequest, CreateRequest, ErrorCode, Id, Request, SetDataRequest};
use tokio::sync::mpsc;

use crate::config::DynamicConfig;
use crate::core::{Core, CoreConfig, CoreMsg, Outgoing, rebuild};
use crate::storage::DiskEvent;
use crate::tree::DataTree;
use crate::zab::{Message, Role, Sid, Timing};
pub(crate) use io::SimClock;
use io::{Outbox, SimData, SimPeers, Store};

const TICK_MS: u64 = 50;
/// How often each node's client may start its next create.
const CLIENT_EVERY_MS: u64 = 40;
/// How long faults go on in a run (simulated milliseconds).
const FAULT_MS: u64 = 12_000;
/// After the last fault: how long the nodes may take to agree and serve a write again.
const SETTLE_MS: u64 = 20_000;

/// SplitMix64: small, fast, and the same schedule for the same seed.
pub(crate) struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, per_thousand: u64) -> bool {
        self.below(1000) < per_thousand
    }
}

/// Something the world does at a time.
enum Event {
    /// A peer message arrives, unless its connection was reset since it was sent (the
    /// link's `epoch` moved on).
    Deliver {
        to: Sid,
        from: Sid,
        epoch: u64,
        msg: Message,
    },
    /// A connection reset between `a` and `b` is over: they reconnect.
    Reconnect { a: Sid, b: Sid },
    /// A node's disk finishes writing what was appended before `upto` was queued.
    Sync { node: Sid, incarnation: u64 },
}

/// A client of one node: one connection, one create in flight at a time; every fourth
/// create is of an ephemeral node.
struct Client {
    conn: u64,
    rx: mpsc::UnboundedReceiver<Outgoing>,
    /// Its session, once connected.
    session: Option<i64>,
    /// The create in flight.
    in_flight: Option<InFlight>,
    next_xid: i32,
}

/// A client's create waiting for its answer.
struct InFlight {
    xid: i32,
    path: String,
    /// A create, whose answer is recorded; else a setData, whose answer is not.
    create: bool,
    ephemeral: bool,
    /// When it was sent (simulated milliseconds).
    sent: u64,
}

/// An acknowledged create: its path, when it was sent and when its answer was seen.
struct Acked {
    path: String,
    sent: u64,
    acked: u64,
}

/// One running node: the production core and what the world needs to drive it.
struct Node {
    core: Core,
    internal: mpsc::UnboundedReceiver<CoreMsg>,
    outbox: Outbox,
    client: Option<Client>,
    /// Bumped at each restart, so a sync queued before a crash does nothing after it.
    incarnation: u64,
    /// The zxid its tree had applied after the last step (what it applies next is checked).
    applied: i64,
    /// The highest zxid its tree held while it served clients: it never serves less.
    served: i64,
}

/// The simulated ensemble.
struct World {
    rng: Rng,
    now: Arc<std::sync::atomic::AtomicU64>,
    ids: Vec<Sid>,
    ensemble: DynamicConfig,
    nodes: BTreeMap<Sid, Option<Node>>,
    stores: BTreeMap<Sid, Arc<Mutex<Store>>>,
    /// (time, sequence) -> event; the sequence keeps equal times in the order queued.
    events: BTreeMap<(u64, u64), Event>,
    seq: u64,
    restarts: u64,
    /// The latest delivery time queued on each link (from, to): a link is a TCP
    /// connection, so its messages arrive in the order sent.
    link_clock: BTreeMap<(Sid, Sid), u64>,
    /// Nodes cut off from all others.
    isolated: BTreeSet<Sid>,
    /// Links cut (both ways): one link, or a partition's shape (a ring, a bridge; see
    /// `liveness`).
    cut: BTreeSet<(Sid, Sid)>,
    /// Links whose connection was reset and has not reconnected yet.
    resetting: BTreeSet<(Sid, Sid)>,
    /// Each link's connection count: a message sent on an older connection is lost.
    link_epochs: BTreeMap<(Sid, Sid), u64>,
    /// When each node's disk is done with the syncs queued so far (a disk syncs one
    /// batch at a time).
    disk_free_at: BTreeMap<Sid, u64>,
    /// The payload of every txn some node applied, by zxid: a zxid is applied with one
    /// payload everywhere.
    committed: BTreeMap<i64, Vec<u8>>,
    /// Txns a TRUNC cut from some node before they were committed, by zxid.
    cut_uncommitted: BTreeMap<i64, Vec<u8>>,
    /// How many of those were committed later all the same (by a leader that held them).
    committed_after_a_cut: u64,
    /// Every acknowledged create, persistent or ephemeral, with its times.
    acked_order: Vec<Acked>,
    /// Paths whose create was acknowledged to a client.
    acked: BTreeSet<String>,
    /// Ephemeral paths whose create was acknowledged, with their session.
    acked_ephemerals: BTreeMap<String, i64>,
    next_conn: u64,
    next_path: u64,
    /// Clients send nothing new while set (to compare the nodes at rest).
    clients_paused: bool,
    faults: bool,
    /// Whether an administrator reconfigures the ensemble and hands leadership over
    /// during the faults (see `reconfig`).
    reconfigs: bool,
    admin: Option<reconfig::Admin>,
    /// Reconfig answers by outcome (`Ok`, `ReconfigInProgress`, ...), for the figures.
    reconfig_outcomes: BTreeMap<String, u64>,
    /// Who led each epoch: ZAB allows one leader an epoch.
    epoch_leaders: BTreeMap<i64, Sid>,
    /// What the checkers that watch every step saw go wrong.
    violations: Vec<String>,
    log: Vec<String>,
}

/// A new session's connect on connection `conn`, its replies going to `tx`.
fn connect(conn: u64, tx: mpsc::UnboundedSender<Outgoing>) -> CoreMsg {
    CoreMsg::Connect {
        conn,
        addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        req: ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            time_out: sessions::SESSION_TIMEOUT_MS as i32,
            session_id: 0,
            passwd: vec![0; 16].into(),
            read_only: Some(false),
        },
        tx,
        tls_ids: vec![],
    }
}

/// A link's key: the same for both directions.
fn link(a: Sid, b: Sid) -> (Sid, Sid) {
    (a.min(b), a.max(b))
}

/// The config of participants `ids`, with `quorum` (`weight.N=` and `group.G=` lines)
/// appended.
fn config_of(ids: &[Sid], quorum: &str) -> DynamicConfig {
    let mut text = String::new();
    for id in ids {
        text.push_str(&format!(
            "server.{id}=127.0.0.{id}:2888:3888:participant;127.0.0.{id}:2181\n"
        ));
    }
    text.push_str(quorum);
    text.push_str("version=100000000\n");
    match DynamicConfig::parse(&text, "simulated ensemble") {
        Ok(config) => config,
        Err(e) => panic!("the simulator's own config does not parse: {e}"),
    }
}

impl World {
    /// A world of `size` participants with majority quorums.
    fn new(seed: u64, size: u64) -> World {
        let ids: Vec<Sid> = (1..=size).collect();
        World::with_ensemble(seed, config_of(&ids, ""))
    }

    /// A world that starts with `ensemble`.
    fn with_ensemble(seed: u64, ensemble: DynamicConfig) -> World {
        let ids: Vec<Sid> = ensemble.servers.keys().copied().collect();
        let mut world = World {
            rng: Rng(seed),
            now: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            ensemble,
            nodes: BTreeMap::new(),
            stores: ids
                .iter()
                .map(|id| (*id, Arc::new(Mutex::new(Store::default()))))
                .collect(),
            ids,
            events: BTreeMap::new(),
            seq: 0,
            restarts: 0,
            link_clock: BTreeMap::new(),
            isolated: BTreeSet::new(),
            cut: BTreeSet::new(),
            resetting: BTreeSet::new(),
            link_epochs: BTreeMap::new(),
            disk_free_at: BTreeMap::new(),
            committed: BTreeMap::new(),
            cut_uncommitted: BTreeMap::new(),
            committed_after_a_cut: 0,
            acked_order: Vec::new(),
            acked: BTreeSet::new(),
            acked_ephemerals: BTreeMap::new(),
            next_conn: 1,
            clients_paused: false,
            next_path: 0,
            faults: true,
            reconfigs: false,
            admin: None,
            reconfig_outcomes: BTreeMap::new(),
            epoch_leaders: BTreeMap::new(),
            violations: Vec::new(),
            log: Vec::new(),
        };
        for id in world.ids.clone() {
            world.start(id);
        }
        world
    }

    fn now(&self) -> u64 {
        self.now.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn note(&mut self, what: String) {
        let line = format!("{:>6} ms  {what}", self.now());
        self.log.push(line);
    }

    /// Node `id`'s config, with the ensemble it starts from: the dynamic config its disk
    /// holds (the last one it activated), else the initial one, as the server's start
    /// prefers zoo.cfg.dynamic to zoo.cfg.
    fn core_config(&self, id: Sid, ensemble: &DynamicConfig) -> CoreConfig {
        CoreConfig {
            server_id: id,
            tick_ms: TICK_MS,
            min_session_timeout_ms: 2 * TICK_MS as i32,
            max_session_timeout_ms: 40_000,
            // Small, so snapshots are taken (and recovered from) in every run.
            snap_count: 100,
            snap_dir: "/nonexistent/snap".into(),
            log_dir: "/nonexistent/log".into(),
            snap_retain_count: 3,
            autopurge: false,
            extended_types: false,
            reconfig_enabled: self.reconfigs,
            standalone_enabled: false,
            read_only_mode: false,
            super_digest: Some(crate::tree::acl::digest_id(reconfig::SUPER)),
            sasl: Default::default(),
            container_check_ms: 1000,
            fsync_warning_ms: 1000,
            membership: ensemble.membership(),
            timing: Timing::from_ticks(TICK_MS, 10, 5),
            distributed: true,
        }
    }

    /// Starts (or restarts) node `id` from what its disk holds, through the production
    /// recovery.
    fn start(&mut self, id: Sid) {
        let store = self.stores[&id].clone();
        let (tree, snap_zxid, records, commit_index, epochs, ensemble) = {
            let mut disk = store.lock().unwrap_or_else(|e| e.into_inner());
            disk.crash();
            let (tree, snap_zxid) = match &disk.snapshot {
                Some((zxid, payload)) => match DataTree::from_snapshot(payload) {
                    Ok(tree) => (tree, *zxid),
                    Err(e) => panic!("node {id}: its snapshot does not load: {e}"),
                },
                None => (DataTree::new(), 0),
            };
            let records: Vec<(u64, Vec<u8>)> = disk
                .log
                .iter()
                .filter(|(z, _)| *z > snap_zxid)
                .cloned()
                .collect();
            let ensemble = match &disk.config {
                Some(text) => match DynamicConfig::parse(text, "the simulated dynamic config") {
                    Ok(config) => config,
                    Err(e) => panic!("node {id}: its dynamic config does not parse: {e}"),
                },
                None => self.ensemble.clone(),
            };
            (
                tree,
                snap_zxid,
                records,
                disk.commit_index,
                disk.epochs,
                ensemble,
            )
        };
        let recovered = match rebuild(
            tree,
            snap_zxid,
            records.into_iter().map(Ok),
            commit_index,
            epochs,
            Some(&ensemble),
        ) {
            Ok(r) => r,
            Err(e) => panic!("node {id}: recovery failed: {e}"),
        };
        let (internal_tx, internal) = mpsc::unbounded_channel();
        let outbox = Outbox::default();
        self.restarts += 1;
        let incarnation = self.restarts;
        let core = Core::new(
            self.core_config(id, &ensemble),
            recovered,
            Box::new(SimData::new(store, internal_tx.clone())),
            Box::new(SimPeers::new(outbox.clone())),
            Box::new(SimClock::new(self.now.clone())),
            internal_tx,
        );
        self.nodes.insert(
            id,
            Some(Node {
                core,
                internal,
                outbox,
                client: None,
                incarnation,
                applied: 0,
                served: 0,
            }),
        );
        self.note(format!("node {id} started"));
        for peer in self.ids.clone() {
            if peer != id && self.linked(id, peer) {
                self.step(id, CoreMsg::PeerUp(peer));
                self.step(peer, CoreMsg::PeerUp(id));
            }
        }
    }

    /// Whether messages flow between `a` and `b` now.
    fn linked(&self, a: Sid, b: Sid) -> bool {
        let up = |n: Sid| self.nodes.get(&n).is_some_and(Option::is_some);
        up(a)
            && up(b)
            && !self.isolated.contains(&a)
            && !self.isolated.contains(&b)
            && !self.cut.contains(&link(a, b))
            && !self.resetting.contains(&link(a, b))
    }

    /// Feeds one message to a running node, then everything it caused: messages out,
    /// its own internal messages, syncs to schedule.
    fn step(&mut self, id: Sid, msg: CoreMsg) {
        let Some(Some(node)) = self.nodes.get_mut(&id) else {
            return;
        };
        node.core.step(msg);
        if let Some(reason) = node.core.take_fatal() {
            panic!("node {id} stopped: {reason}");
        }
        while let Ok(internal) = node.internal.try_recv() {
            node.core.step(internal);
        }
        self.check_step(id);
        self.check_truncations();
        let Some(Some(node)) = self.nodes.get_mut(&id) else {
            return;
        };
        let sent = node.outbox.take();
        {
            // ZAB's promise: an ACK names only what this node's disk already holds.
            let store = self.stores[&id].lock().unwrap_or_else(|e| e.into_inner());
            for (to, msg) in &sent {
                if let Message::Ack { zxid } = msg
                    && store.holds_unsynced(*zxid as u64)
                {
                    let what = format!("node {id} ACKed {zxid:#x} to {to} before it was durable");
                    self.violations.push(what);
                }
            }
        }
        let wants_sync = self.stores[&id]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take_sync_request();
        let incarnation = node.incarnation;
        for (to, msg) in sent {
            if self.linked(id, to) {
                let delay = 1 + self.rng.below(if self.faults { 20 } else { 3 });
                let when = self.now() + delay;
                let last = self.link_clock.entry((id, to)).or_insert(0);
                *last = (*last).max(when);
                let delay = *last - self.now();
                let epoch = self.link_epochs.get(&link(id, to)).copied().unwrap_or(0);
                self.at(
                    delay,
                    Event::Deliver {
                        to,
                        from: id,
                        epoch,
                        msg,
                    },
                );
            }
        }
        if wants_sync {
            // Now and then the disk is slow (a busy device, a long fsync); either way it
            // syncs one batch at a time.
            let now = self.now();
            let idle = self.disk_free_at.get(&id).is_none_or(|free| *free <= now);
            let took = match self.faults && idle && self.rng.chance(20) {
                true => 200 + self.rng.below(1_500),
                false => 1 + self.rng.below(if self.faults { 15 } else { 2 }),
            };
            let free = self.disk_free_at.entry(id).or_insert(0);
            *free = (*free).max(now) + took;
            let delay = *free - now;
            self.at(
                delay,
                Event::Sync {
                    node: id,
                    incarnation,
                },
            );
        }
    }

    fn at(&mut self, delay: u64, event: Event) {
        self.seq += 1;
        let when = self.now() + delay;
        self.events.insert((when, self.seq), event);
    }

    /// Runs everything due up to `until`, ticking the nodes and driving the clients.
    fn run_until(&mut self, until: u64) {
        while self.now() < until {
            let now = self.now() + 1;
            self.now.store(now, std::sync::atomic::Ordering::Relaxed);
            while self
                .events
                .first_key_value()
                .is_some_and(|((when, _), _)| *when <= now)
            {
                let Some((_, event)) = self.events.pop_first() else {
                    break;
                };
                self.happen(event);
            }
            if now.is_multiple_of(TICK_MS) {
                for id in self.ids.clone() {
                    self.step(id, CoreMsg::Tick);
                }
            }
            if now.is_multiple_of(CLIENT_EVERY_MS) && !self.clients_paused {
                for id in self.ids.clone() {
                    self.drive_client(id);
                }
            }
            if self.faults && now.is_multiple_of(100) {
                self.maybe_fault();
            }
            if self.reconfigs && self.faults && now.is_multiple_of(reconfig::ADMIN_EVERY_MS) {
                self.drive_admin();
            }
        }
    }

    fn happen(&mut self, event: Event) {
        match event {
            Event::Deliver {
                to,
                from,
                epoch,
                msg,
            } => {
                let current = self.link_epochs.get(&link(from, to)).copied().unwrap_or(0);
                if epoch == current && self.linked(from, to) {
                    trace::delivered(self.now(), from, to, &msg);
                    self.step(to, CoreMsg::Peer { from, msg });
                }
            }
            Event::Reconnect { a, b } => {
                if self.resetting.remove(&link(a, b)) && self.linked(a, b) {
                    self.note(format!("link {a}-{b} reconnected"));
                    self.step(a, CoreMsg::PeerUp(b));
                    self.step(b, CoreMsg::PeerUp(a));
                }
            }
            Event::Sync { node, incarnation } => {
                let running =
                    matches!(self.nodes.get(&node), Some(Some(n)) if n.incarnation == incarnation);
                if !running {
                    return;
                }
                let synced = self.stores[&node]
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .sync();
                if let Some(zxid) = synced.installed {
                    self.step(node, CoreMsg::Disk(DiskEvent::SnapshotInstalled(zxid)));
                }
                if let Some(zxid) = synced.records {
                    self.step(node, CoreMsg::Disk(DiskEvent::Durable(zxid)));
                }
                if let Some((accepted, current)) = synced.epochs {
                    let durable = DiskEvent::EpochsDurable { accepted, current };
                    self.step(node, CoreMsg::Disk(durable));
                }
            }
        }
    }

    /// A node's client: connects, then creates one znode at a time, recording the
    /// acknowledged ones.
    fn drive_client(&mut self, id: Sid) {
        let now = self.now();
        let Some(Some(node)) = self.nodes.get_mut(&id) else {
            return;
        };
        let mut to_core = Vec::new();
        let client = match &mut node.client {
            Some(client) => client,
            None => {
                let (tx, rx) = mpsc::unbounded_channel();
                let conn = self.next_conn;
                self.next_conn += 1;
                node.client = Some(Client {
                    conn,
                    rx,
                    session: None,
                    in_flight: None,
                    next_xid: 1,
                });
                to_core.push(connect(conn, tx));
                for msg in to_core {
                    self.step(id, msg);
                }
                return;
            }
        };
        let mut acked = Vec::new();
        let mut acked_ephemerals = Vec::new();
        let mut closed = false;
        while let Ok(out) = client.rx.try_recv() {
            match out {
                Outgoing::Connected(resp) => {
                    client.session = (resp.session_id != 0).then_some(resp.session_id)
                }
                Outgoing::Reply { xid, err, .. } => {
                    if let Some(request) = &client.in_flight
                        && request.xid == xid
                    {
                        match (err, client.session) {
                            _ if !request.create => {}
                            (ErrorCode::Ok, Some(session)) if request.ephemeral => {
                                acked_ephemerals.push((request.path.clone(), session, request.sent))
                            }
                            (ErrorCode::Ok, _) => acked.push((request.path.clone(), request.sent)),
                            _ => {}
                        }
                        client.in_flight = None;
                    }
                }
                Outgoing::Event { .. } => {}
                Outgoing::Close => closed = true,
            }
        }
        if closed {
            node.client = None;
        } else if client.session.is_some() && client.in_flight.is_none() {
            self.next_path += 1;
            let xid = client.next_xid;
            client.next_xid += 1;
            // Every fifth request rewrites a node acknowledged earlier, so that the
            // servers' trees are compared on data and versions too, not only on names.
            let rewritten = match self.next_path.is_multiple_of(5) {
                true => self
                    .acked_order
                    .iter()
                    .rev()
                    .find(|a| a.path.starts_with("/k-")),
                false => None,
            };
            let (in_flight, req) = match rewritten {
                Some(target) => (
                    InFlight {
                        xid,
                        path: target.path.clone(),
                        create: false,
                        ephemeral: false,
                        sent: now,
                    },
                    Request::SetData(SetDataRequest {
                        path: target.path.clone(),
                        data: self.next_path.to_string().into_bytes().into(),
                        version: -1,
                    }),
                ),
                None => {
                    let ephemeral = self.next_path.is_multiple_of(4);
                    let path = match ephemeral {
                        true => format!("/e-{:06}", self.next_path),
                        false => format!("/k-{:06}", self.next_path),
                    };
                    let create = Request::Create(CreateRequest {
                        path: path.clone(),
                        data: b"v".to_vec().into(),
                        acl: vec![Acl {
                            perms: 31,
                            id: Id {
                                scheme: "world".into(),
                                id: "anyone".into(),
                            },
                        }],
                        flags: if ephemeral { 1 } else { 0 },
                    });
                    let in_flight = InFlight {
                        xid,
                        path,
                        create: true,
                        ephemeral,
                        sent: now,
                    };
                    (in_flight, create)
                }
            };
            client.in_flight = Some(in_flight);
            to_core.push(CoreMsg::Request {
                conn: client.conn,
                xid,
                req,
                received: Instant::now(),
            });
        }
        for (path, sent) in acked {
            self.acked_order.push(Acked {
                path: path.clone(),
                sent,
                acked: now,
            });
            self.acked.insert(path);
        }
        for (path, session, sent) in acked_ephemerals {
            self.acked_order.push(Acked {
                path: path.clone(),
                sent,
                acked: now,
            });
            self.acked_ephemerals.insert(path, session);
        }
        for msg in to_core {
            self.step(id, msg);
        }
    }

    /// Now and then: a crash (losing what was not durable) of one node or of all of
    /// them, a restart, an isolation, a cut link (or, on five nodes or more, a ring or a
    /// bridge), a connection reset, or a heal.
    fn maybe_fault(&mut self) {
        let id = self.ids[self.rng.below(self.ids.len() as u64) as usize];
        let peer = self.ids[self.rng.below(self.ids.len() as u64) as usize];
        let running = matches!(self.nodes.get(&id), Some(Some(_)));
        let down = self
            .ids
            .iter()
            .filter(|n| !matches!(self.nodes.get(n), Some(Some(_))))
            .count()
            + self.isolated.len();
        if id != peer && self.linked(id, peer) && self.rng.chance(40) {
            self.reset_link(id, peer);
        } else if id != peer && self.cut.is_empty() && self.linked(id, peer) && self.rng.chance(15)
        {
            // One link down while both ends still reach the others.
            self.cut_link(id, peer);
        } else if self.ids.len() >= 5 && down == 0 && self.cut.is_empty() && self.rng.chance(4) {
            let order = self.shuffled();
            match self.rng.chance(500) {
                true => self.ring_partition(&order),
                false => self.bridge_partition(&order),
            }
        } else if !self.cut.is_empty() && self.rng.chance(60) {
            self.heal_cuts();
        } else if running && down == 0 && self.rng.chance(8) {
            // Power loss of the whole ensemble: every node keeps only what it synced.
            for node in self.ids.clone() {
                self.crash(node);
            }
        } else if running && down == 0 && self.rng.chance(40) {
            self.crash(id);
        } else if !running && self.rng.chance(300) {
            self.start(id);
        } else if running && down == 0 && self.rng.chance(30) {
            self.isolate(id);
        } else if self.isolated.contains(&id) && self.rng.chance(200) {
            self.heal(id);
        }
    }

    fn crash(&mut self, id: Sid) {
        self.nodes.insert(id, None);
        let (kept, lost) = {
            let mut disk = self.stores[&id].lock().unwrap_or_else(|e| e.into_inner());
            let unsynced = disk.unsynced_len();
            // Some of what was not synced may have reached the disk anyway, in order.
            let kept = self.rng.below(unsynced as u64 + 1) as usize;
            disk.crash_keeping(kept);
            (kept, unsynced - kept)
        };
        self.note(format!(
            "node {id} crashed ({kept} unsynced records kept, {lost} lost)"
        ));
        for peer in self.ids.clone() {
            if peer != id {
                self.step(peer, CoreMsg::PeerDown(id));
            }
        }
    }

    /// A connection reset between `a` and `b`: what is in flight on it is lost, both
    /// ends see it go down, and they reconnect a little later.
    fn reset_link(&mut self, a: Sid, b: Sid) {
        self.note(format!("link {a}-{b} reset"));
        *self.link_epochs.entry(link(a, b)).or_insert(0) += 1;
        self.step(a, CoreMsg::PeerDown(b));
        self.step(b, CoreMsg::PeerDown(a));
        self.resetting.insert(link(a, b));
        let after = 1 + self.rng.below(300);
        self.at(after, Event::Reconnect { a, b });
    }

    fn isolate(&mut self, id: Sid) {
        self.note(format!("node {id} cut off"));
        for peer in self.ids.clone() {
            if peer != id && self.linked(id, peer) {
                self.step(peer, CoreMsg::PeerDown(id));
                self.step(id, CoreMsg::PeerDown(peer));
            }
        }
        self.isolated.insert(id);
    }

    fn heal(&mut self, id: Sid) {
        self.isolated.remove(&id);
        self.note(format!("node {id} reconnected"));
        for peer in self.ids.clone() {
            if peer != id && self.linked(id, peer) {
                self.step(peer, CoreMsg::PeerUp(id));
                self.step(id, CoreMsg::PeerUp(peer));
            }
        }
    }

    /// Ends the faults: every node running and connected.
    fn end_faults(&mut self) {
        self.faults = false;
        // The administrator goes away with the faults; its session must expire.
        self.admin = None;
        for id in self.isolated.clone() {
            self.heal(id);
        }
        self.heal_cuts();
        for (a, b) in std::mem::take(&mut self.resetting) {
            if self.linked(a, b) {
                self.step(a, CoreMsg::PeerUp(b));
                self.step(b, CoreMsg::PeerUp(a));
            }
        }
        for id in self.ids.clone() {
            if !matches!(self.nodes.get(&id), Some(Some(_))) {
                self.start(id);
            }
        }
    }

    fn leader(&self) -> Option<Sid> {
        self.nodes.iter().find_map(|(id, n)| {
            n.as_ref()
                .filter(|n| n.core.role() == Role::Leader)
                .map(|_| *id)
        })
    }
}

/// Runs one seed on three nodes or five: faults for a while, then none, then the checks. Err with the reason
/// and the world's log.
fn run_seed(seed: u64) -> Result<usize, String> {
    // Three nodes, or five (where the faults include rings and bridges).
    let size = if seed.is_multiple_of(2) { 3 } else { 5 };
    let mut world = World::new(seed, size);
    world.run_until(FAULT_MS);
    world.end_faults();
    world.settle_and_check()?;
    Ok(world.acked.len())
}

pub(crate) fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("PADDOCK_SERVER_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![seed];
    }
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let count = var("PADDOCK_SERVER_SIM_SEEDS", 20);
    // A soak split in ranges (over processes or days) starts each where the last ended.
    let first = var("PADDOCK_SERVER_SIM_FIRST_SEED", 1);
    (first..first.saturating_add(count)).collect()
}

/// Runs `scenario` for every seed of [`seeds`], with logs when
/// `PADDOCK_SERVER_SIM_TRACE` is set; the first failure panics with the command that
/// replays it (`cargo test ... --lib <filter>`). What each seed returned, in order.
pub(crate) fn each_seed<T>(
    filter: &str,
    mut scenario: impl FnMut(u64) -> Result<T, String>,
) -> Vec<T> {
    if std::env::var_os("PADDOCK_SERVER_SIM_TRACE").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    seeds()
        .into_iter()
        .map(|seed| {
            scenario(seed).unwrap_or_else(|e| {
                panic!(
                    "seed {seed} failed (replay: PADDOCK_SERVER_SIM_SEED={seed} cargo test -p paddock-server --lib {filter}): {e}"
                )
            })
        })
        .collect()
}

#[test]
fn the_whole_node_keeps_every_acknowledged_write_through_crashes_and_partitions() {
    let acked: usize = each_seed("sim::the_whole", run_seed).into_iter().sum();
    assert!(acked > 0, "no create was ever acknowledged");
}
