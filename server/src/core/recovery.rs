//! Startup: load the newest valid snapshot, replay the log after it, and start the disk
//! writer. A torn log tail is cut by the log itself; a corrupt snapshot is skipped in
//! favour of an older one (purge keeps the log an older one needs).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use thiserror::Error;
use tracing::info;

use super::{Core, CoreConfig, CoreMsg, InternalTx, Stats};
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
        let (mut tree, snap_zxid) = load_snapshot(&cfg.snap_dir)?;
        let db_id = storage::state::database_id(&cfg.log_dir)?;
        let mut log = TxnLog::open(&cfg.log_dir, TxnLogOptions::new(db_id))?;
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
        // Apply only what is known committed; later records wait for the leader's commit.
        let commit_index =
            (storage::state::load_commit_index(&cfg.snap_dir)? as Zxid).max(snap_zxid as Zxid);
        let replayed = replay(&mut tree, log.read_from(snap_zxid + 1)?, Some(commit_index))?;
        let mut uncommitted = Vec::new();
        let mut uncommitted_configs = Vec::new();
        for record in log.read_from(commit_index as u64 + 1)? {
            let (zxid, payload) = record?;
            // A logged reconfig activates its config when committed, even after a restart.
            if let Ok(Txn {
                op: TxnOp::Reconfig { data },
                ..
            }) = Txn::decode(&payload)
                && let Ok(config) = crate::config::DynamicConfig::parse(
                    &String::from_utf8_lossy(&data),
                    "reconfig txn",
                )
            {
                uncommitted_configs.push((zxid as Zxid, config.membership()));
            }
            uncommitted.push((zxid as Zxid, payload));
        }
        if cfg.distributed {
            // Every member starts from the same config, so this is the same on all of them.
            tree.seed_config(cfg.ensemble.render().as_bytes());
        }
        let last_logged = log
            .last_zxid()
            .map(|z| z as Zxid)
            .unwrap_or(0)
            .max(tree.last_zxid());
        info!(
            snapshot = format_args!("{snap_zxid:#x}"),
            replayed,
            uncommitted = uncommitted.len(),
            zxid = format_args!("{last_logged:#x}"),
            committed = format_args!("{:#x}", tree.last_zxid()),
            nodes = tree.node_count(),
            ms = started.elapsed().as_millis() as u64,
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

        let epochs = storage::state::load_epochs(&cfg.snap_dir)?;
        let current = epochs.current.unwrap_or_else(|| epoch_of(last_logged));
        let accepted = epochs.accepted.unwrap_or(current).max(current);
        let zab = Zab::new(
            cfg.server_id,
            cfg.membership.clone(),
            cfg.timing,
            Durable {
                accepted_epoch: accepted,
                current_epoch: current,
                last_zxid: last_logged,
                last_committed: tree.last_zxid(),
                uncommitted,
                uncommitted_configs,
            },
            0,
        );
        let wall = clock.wall_ms().max(0) as u64;
        let sessions = SessionTracker::new(cfg.tick_ms, cfg.server_id, wall);
        let mut core = Core {
            tree,
            pending: PendingChanges::default(),
            watches: WatchManager::default(),
            sessions,
            closing: HashSet::new(),
            session_owner: HashMap::new(),
            conns: HashMap::new(),
            waiting: HashMap::new(),
            syncs: Vec::new(),
            touched: HashSet::new(),
            last_touch_ms: 0,
            persisted_commit: 0,
            ensemble: cfg.ensemble.clone(),
            awaited_config: None,
            config_asked_ms: 0,
            zab,
            read_only: super::readonly::ReadOnly::new(cfg.read_only_mode, cfg.tick_ms, 0),
            peers,
            data: Box::new(super::Files::new(
                disk,
                cfg.snap_dir.clone(),
                cfg.log_dir.clone(),
                cfg.autopurge.then_some(cfg.snap_retain_count),
            )),
            internal_tx,
            stats: Stats::default(),
            clock,
            txns_since_snapshot: replayed,
            snapshot_running: false,
            last_reap_ms: 0,
            fatal: None,
            cfg,
        };
        // A standalone server elects itself at once.
        core.drive();
        Ok(core)
    }
}

/// The newest valid snapshot's tree and zxid, or an empty tree.
fn load_snapshot(snap_dir: &Path) -> Result<(DataTree, u64), RecoveryError> {
    Ok(match storage::load_newest_valid(snap_dir)? {
        Some((zxid, payload)) => (
            DataTree::from_snapshot(&payload)
                .map_err(|source| RecoveryError::Snapshot { zxid, source })?,
            zxid,
        ),
        None => (DataTree::new(), 0),
    })
}

/// Applies log records to `tree` (up to `upto`, if given); returns how many.
fn replay(
    tree: &mut DataTree,
    records: impl Iterator<Item = Result<(u64, Vec<u8>), StorageError>>,
    upto: Option<Zxid>,
) -> Result<u64, RecoveryError> {
    let mut replayed = 0u64;
    let mut scratch = Vec::new();
    for record in records {
        let (zxid, payload) = record?;
        if upto.is_some_and(|u| zxid as Zxid > u) {
            break;
        }
        let txn = Txn::decode(&payload).map_err(|e| RecoveryError::Record {
            zxid,
            reason: e.to_string(),
        })?;
        scratch.clear();
        tree.apply(&txn, &mut scratch);
        replayed += 1;
    }
    Ok(replayed)
}
