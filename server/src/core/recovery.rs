//! Startup: load the newest valid snapshot, replay the log after it, and start the disk
//! writer. A torn log tail is cut by the log itself; a corrupt snapshot is skipped in
//! favour of an older one (purge keeps the log an older one needs).

use std::collections::VecDeque;
use std::path::Path;
use std::time::Instant;

use thiserror::Error;
use tracing::info;

use super::{Core, CoreConfig, CoreMsg, InternalTx, Stats};
use crate::config::DynamicConfig;
use crate::request::pending::PendingChanges;
use crate::session::SessionTracker;
use crate::storage::{self, DiskWriter, StorageError, TxnLog, TxnLogOptions};
use crate::tree::{DataTree, SnapshotError};
use crate::txn::{Txn, TxnOp};
use crate::watch::WatchManager;
use crate::zab::{Durable, Zab, Zxid, epoch_of};

#[derive(Debug, Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("snapshot {zxid:#x} cannot be loaded: {source}")]
    Snapshot { zxid: u64, source: SnapshotError },
    #[error("log record {zxid:#x} cannot be decoded: {reason}")]
    Record { zxid: u64, reason: String },
    #[error(
        "the txn log starts at {first_logged:#x} but the newest snapshot ends at {snapshot:#x}: transactions in between are missing"
    )]
    Gap { snapshot: u64, first_logged: u64 },
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// The state a node starts from, rebuilt from what its data dir holds.
pub struct Recovered {
    /// The newest snapshot with the committed log records after it applied.
    pub tree: DataTree,
    /// What ZAB starts from: epochs, the last logged and last committed zxids, and the
    /// logged records not known committed (kept as proposals for a leader to commit).
    pub durable: Durable,
    /// How many log records were applied on top of the snapshot.
    pub replayed: u64,
}

/// Rebuilds a node's starting state from what its data dir holds: `tree` (the newest
/// snapshot, at `snap_zxid`), every log record after it in order, the commit index and
/// the epoch files. Records up to the commit index are applied; the rest wait for the
/// leader's commit. Pure, so that a simulated disk recovers through it too.
pub fn rebuild(
    mut tree: DataTree,
    snap_zxid: u64,
    records_after_snapshot: impl Iterator<Item = Result<(u64, Vec<u8>), StorageError>>,
    commit_index: Zxid,
    epochs: storage::state::Epochs,
    seed_config: Option<&DynamicConfig>,
) -> Result<Recovered, RecoveryError> {
    let commit_index = commit_index.max(snap_zxid as Zxid);
    let mut replayed = 0u64;
    let mut last_record: Zxid = 0;
    let mut uncommitted = Vec::new();
    let mut uncommitted_configs = Vec::new();
    for record in records_after_snapshot {
        let (zxid, payload) = record?;
        last_record = zxid as Zxid;
        if zxid as Zxid <= commit_index {
            let txn = Txn::decode(&payload).map_err(|e| RecoveryError::Record {
                zxid,
                reason: e.to_string(),
            })?;
            tree.apply(&txn, &mut Vec::new());
            replayed += 1;
            continue;
        }
        // A logged reconfig activates its config when committed, even after a restart.
        if let Ok(Txn {
            op: TxnOp::Reconfig { data },
            ..
        }) = Txn::decode(&payload)
            && let Ok(config) =
                DynamicConfig::parse(&String::from_utf8_lossy(&data), "reconfig txn")
        {
            uncommitted_configs.push((zxid as Zxid, config.membership()));
        }
        uncommitted.push((zxid as Zxid, payload.into()));
    }
    if let Some(config) = seed_config {
        // Every member starts from the same config, so this is the same on all of them.
        tree.seed_config(config.render().as_bytes());
    }
    let last_logged = last_record.max(tree.last_zxid());
    let current = epochs.current.unwrap_or_else(|| epoch_of(last_logged));
    let accepted = epochs.accepted.unwrap_or(current).max(current);
    let durable = Durable {
        accepted_epoch: accepted,
        current_epoch: current,
        last_zxid: last_logged,
        last_committed: tree.last_zxid(),
        uncommitted,
        uncommitted_configs,
    };
    Ok(Recovered {
        tree,
        durable,
        replayed,
    })
}

impl Core {
    /// Recovers the state in the configured directories and starts the disk writer.
    pub fn open(
        cfg: CoreConfig,
        internal_tx: InternalTx,
        peers: Box<dyn super::PeerLinks>,
        clock: Box<dyn super::Clock>,
    ) -> Result<Core, RecoveryError> {
        for dir in [&cfg.snap_dir, &cfg.log_dir] {
            std::fs::create_dir_all(dir).map_err(|source| RecoveryError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let started = Instant::now();
        let db_id = storage::state::database_id(&cfg.log_dir)?;
        let log_options = |needed_after| TxnLogOptions::new(db_id).needed_after(needed_after);
        // The log opens (its needed segments are read and checked) while the snapshot
        // loads, on a thread of its own: the newest snapshot's zxid is in its file name.
        // Should that snapshot fail its checks and an older one load, the log is opened
        // again, for the older zxid.
        let newest = storage::newest_snapshot_zxid(&cfg.snap_dir)?.unwrap_or(0);
        let (loaded, opened) = std::thread::scope(|scope| {
            let opening = scope.spawn(|| {
                let opened = TxnLog::open(&cfg.log_dir, log_options(newest));
                (opened, started.elapsed().as_millis() as u64)
            });
            let loaded = load_snapshot(&cfg.snap_dir);
            let snapshot_ms = started.elapsed().as_millis() as u64;
            let opened = match opening.join() {
                Ok(opened) => opened,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            (loaded.map(|(tree, zxid)| (tree, zxid, snapshot_ms)), opened)
        });
        let (tree, snap_zxid, snapshot_ms) = loaded?;
        let (opened, log_open_ms) = opened;
        let mut log = opened?;
        if snap_zxid != newest {
            drop(log);
            log = TxnLog::open(&cfg.log_dir, log_options(snap_zxid))?;
        }
        // The log must continue where the snapshot ends; a gap means lost transactions.
        // The next txn after zxid S is S+1, or counter 1 of a later epoch.
        if let Some(first) = log.first_zxid()?
            && first > snap_zxid + 1
            && !(epoch_of(first as Zxid) > epoch_of(snap_zxid as Zxid)
                && crate::zab::counter_of(first as Zxid) == 1)
            && log.last_zxid().is_some_and(|last| last > snap_zxid)
        {
            return Err(RecoveryError::Gap {
                snapshot: snap_zxid,
                first_logged: first,
            });
        }
        let recovered = rebuild(
            tree,
            snap_zxid,
            log.read_from(snap_zxid + 1)?,
            storage::state::load_commit_index(&cfg.snap_dir)? as Zxid,
            storage::state::load_epochs(&cfg.snap_dir)?,
            cfg.distributed
                .then(|| DynamicConfig::from_membership(&cfg.membership))
                .as_ref(),
        )?;
        info!(
            snapshot = format_args!("{snap_zxid:#x}"),
            replayed = recovered.replayed,
            uncommitted = recovered.durable.uncommitted.len(),
            zxid = format_args!("{:#x}", recovered.durable.last_zxid),
            committed = format_args!("{:#x}", recovered.tree.last_zxid()),
            nodes = recovered.tree.node_count(),
            ms = started.elapsed().as_millis() as u64,
            snapshot_ms,
            log_open_ms,
            "recovered"
        );

        let sink_tx = internal_tx.clone();
        let disk = DiskWriter::spawn(
            log,
            Box::new(move |event| {
                let _ = sink_tx.send(CoreMsg::Disk(event));
            }),
            std::time::Duration::from_millis(cfg.fsync_warning_ms),
        )?;
        let data = Box::new(super::Files::new(
            disk,
            cfg.snap_dir.clone(),
            cfg.log_dir.clone(),
            cfg.autopurge.then_some(cfg.snap_retain_count),
        ));
        Ok(Core::new(cfg, recovered, data, peers, clock, internal_tx))
    }

    /// A node from its recovered state and its I/O: nothing is read or started here, so
    /// a simulator builds nodes with this as the server does.
    pub fn new(
        cfg: CoreConfig,
        recovered: Recovered,
        data: Box<dyn super::DataDir>,
        peers: Box<dyn super::PeerLinks>,
        clock: Box<dyn super::Clock>,
        internal_tx: InternalTx,
    ) -> Core {
        let Recovered {
            tree,
            durable,
            replayed,
        } = recovered;
        let snapshot_recovered_at =
            (replayed > 0 || !durable.uncommitted.is_empty()).then_some(durable.last_zxid);
        let newer = cfg
            .distributed
            .then(|| committed_config_newer_than(&tree, cfg.membership.version))
            .flatten();
        let membership = match &newer {
            Some(config) => config.membership(),
            None => cfg.membership.clone(),
        };
        let zab = Zab::new(cfg.server_id, membership, cfg.timing, durable, 0);
        let wall = clock.wall_ms().max(0) as u64;
        let sessions = SessionTracker::new(cfg.tick_ms, cfg.server_id, wall);
        let mut core = Core {
            tree,
            pending: PendingChanges::default(),
            watches: WatchManager::default(),
            sessions,
            closing: Default::default(),
            session_owner: Default::default(),
            conns: Default::default(),
            waiting: Default::default(),
            syncs: Vec::new(),
            touched: Default::default(),
            last_touch_ms: 0,
            persisted_commit: 0,
            zab,
            awaiting_epochs: false,
            own_txns: VecDeque::new(),
            read_only: super::readonly::ReadOnly::new(cfg.read_only_mode, cfg.tick_ms, 0),
            peers,
            data,
            internal_tx,
            stats: Stats::default(),
            clock: super::BurstClock::new(clock),
            txns_since_snapshot: replayed,
            snapshot_running: false,
            snapshot_recovered_at,
            last_reap_ms: 0,
            fatal: None,
            cfg,
        };
        if let Some(config) = newer {
            info!(
                version = format_args!("{:#x}", config.version),
                "the log holds a newer committed config than the data dir's config file: \
                 starting from it"
            );
            core.on_config_active(config.membership());
        }
        // A standalone server elects itself at once.
        core.drive();
        core
    }
}

/// The committed config in the recovered tree (`/zookeeper/config`) when it is newer
/// than `version`, the one the server was started with. The dynamic config file is
/// written behind the log, so a crash can lose the file of a reconfig whose txn the
/// commit index let recovery apply: the tree then knows a config that the file does not,
/// and starting from the file would count the votes of an older membership.
fn committed_config_newer_than(tree: &DataTree, version: i64) -> Option<DynamicConfig> {
    let node = tree.get(crate::tree::CONFIG_NODE)?;
    let text = std::str::from_utf8(node.bytes()).ok()?;
    let config = DynamicConfig::parse(text, crate::tree::CONFIG_NODE).ok()?;
    (config.version as i64 > version && !config.servers.is_empty()).then_some(config)
}

/// The newest valid snapshot's tree and zxid, or an empty tree.
fn load_snapshot(snap_dir: &Path) -> Result<(DataTree, u64), RecoveryError> {
    let started = Instant::now();
    let Some((zxid, payload)) = storage::load_newest_valid(snap_dir)? else {
        return Ok((DataTree::new(), 0));
    };
    let read = started.elapsed();
    let tree = DataTree::from_snapshot(&payload)
        .map_err(|source| RecoveryError::Snapshot { zxid, source })?;
    info!(
        zxid = format_args!("{zxid:#x}"),
        bytes = payload.len(),
        read_ms = read.as_millis() as u64,
        build_ms = (started.elapsed() - read).as_millis() as u64,
        "snapshot loaded"
    );
    Ok((tree, zxid))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::storage::state::Epochs;

    /// The log record of a CreateSession txn at `zxid` (session id `zxid`).
    pub(in crate::core) fn session_record(zxid: i64) -> Result<(u64, Vec<u8>), StorageError> {
        let txn = Txn {
            session: zxid,
            cxid: 0,
            zxid,
            time: 0,
            op: TxnOp::CreateSession { timeout_ms: 10_000 },
        };
        Ok((zxid as u64, txn.encode()))
    }

    #[test]
    fn committed_records_are_applied_and_the_rest_kept_as_proposals() {
        let records = (1..=5).map(session_record);
        let r = rebuild(DataTree::new(), 0, records, 3, Epochs::default(), None).unwrap();
        assert_eq!(r.replayed, 3);
        assert_eq!(r.tree.last_zxid(), 3);
        assert_eq!(r.tree.sessions().len(), 3);
        assert_eq!(r.durable.last_zxid, 5);
        assert_eq!(r.durable.last_committed, 3);
        let kept: Vec<Zxid> = r.durable.uncommitted.iter().map(|(z, _)| *z).collect();
        assert_eq!(kept, [4, 5]);
        assert_eq!((r.durable.accepted_epoch, r.durable.current_epoch), (0, 0));
    }

    #[test]
    fn epochs_come_from_their_files_else_from_the_last_logged_zxid() {
        let at_epoch_2 = 2_i64 << 32 | 1;
        let from_log = rebuild(
            DataTree::new(),
            0,
            std::iter::once(session_record(at_epoch_2)),
            0,
            Epochs::default(),
            None,
        )
        .unwrap();
        assert_eq!(
            (
                from_log.durable.accepted_epoch,
                from_log.durable.current_epoch
            ),
            (2, 2)
        );
        let files = Epochs {
            accepted: Some(7),
            current: Some(6),
        };
        let from_files = rebuild(DataTree::new(), 0, std::iter::empty(), 0, files, None).unwrap();
        assert_eq!(
            (
                from_files.durable.accepted_epoch,
                from_files.durable.current_epoch
            ),
            (7, 6)
        );
        // acceptedEpoch is never below currentEpoch.
        let behind = Epochs {
            accepted: Some(3),
            current: Some(5),
        };
        let fixed = rebuild(DataTree::new(), 0, std::iter::empty(), 0, behind, None).unwrap();
        assert_eq!(fixed.durable.accepted_epoch, 5);
    }

    #[test]
    fn a_committed_record_that_cannot_be_decoded_names_its_zxid() {
        let records = vec![session_record(1), Ok((2, vec![0xff; 3]))].into_iter();
        let err = rebuild(DataTree::new(), 0, records, 2, Epochs::default(), None)
            .err()
            .expect("an undecodable committed record");
        assert!(err.to_string().contains("0x2"), "{err}");
    }
}
