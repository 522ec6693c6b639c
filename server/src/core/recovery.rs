//! Startup: load the newest valid snapshot, replay the log after it, and start the disk
//! writer. A torn log tail is cut by the log itself; a corrupt snapshot is skipped in
//! favour of an older one (purge keeps the log an older one needs).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::time::Instant;

use thiserror::Error;
use tracing::{info, warn};

use super::{Core, CoreConfig, CoreMsg, InternalTx, Stats};
use crate::request::pending::PendingChanges;
use crate::session::SessionTracker;
use crate::storage::{self, DiskWriter, StorageError, TxnLog, TxnLogOptions};
use crate::tree::{DataTree, SnapshotError};
use crate::txn::Txn;
use crate::watch::WatchManager;

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

/// The id stamped into every log segment header of this server's database.
fn database_id(log_dir: &Path) -> Result<u64, RecoveryError> {
    let file = log_dir.join("dbid");
    let io = |source| RecoveryError::Io {
        path: file.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            if let Ok(id) = u64::from_str_radix(text.trim(), 16) {
                return Ok(id);
            }
            warn!(file = %file.display(), "unreadable database id; making a new one");
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    // Only needs to differ between databases; the hasher's random keys are enough.
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let id = h.finish();
    std::fs::write(&file, format!("{id:016x}\n")).map_err(io)?;
    Ok(id)
}

impl Core {
    /// Recovers the state in the configured directories and starts the disk writer.
    pub fn open(cfg: CoreConfig, internal_tx: InternalTx) -> Result<Core, RecoveryError> {
        for dir in [&cfg.snap_dir, &cfg.log_dir] {
            std::fs::create_dir_all(dir).map_err(|source| RecoveryError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let started = Instant::now();
        let (mut tree, snap_zxid) = match storage::load_newest_valid(&cfg.snap_dir)? {
            Some((zxid, payload)) => (
                DataTree::from_snapshot(&payload)
                    .map_err(|source| RecoveryError::Snapshot { zxid, source })?,
                zxid,
            ),
            None => (DataTree::new(), 0),
        };
        let db_id = database_id(&cfg.log_dir)?;
        let mut log = TxnLog::open(&cfg.log_dir, TxnLogOptions::new(db_id))?;
        // The log must continue where the snapshot ends; a gap means lost transactions.
        if let Some(first) = log.first_zxid()?
            && first > snap_zxid + 1
            && log.last_zxid().is_some_and(|last| last > snap_zxid)
        {
            return Err(RecoveryError::Gap {
                snapshot: snap_zxid,
                first_logged: first,
            });
        }
        let mut replayed = 0u64;
        let mut scratch = Vec::new();
        for record in log.read_from(snap_zxid + 1)? {
            let (zxid, payload) = record?;
            let txn = Txn::decode(&payload).map_err(|e| RecoveryError::Record {
                zxid,
                reason: e.to_string(),
            })?;
            scratch.clear();
            tree.apply(&txn, &mut scratch);
            replayed += 1;
        }
        let last_logged = log.last_zxid().unwrap_or(0) as i64;
        let next_zxid = tree.last_zxid().max(last_logged) + 1;
        info!(
            snapshot = format_args!("{snap_zxid:#x}"),
            replayed,
            zxid = format_args!("{:#x}", tree.last_zxid()),
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
        )?;

        let wall = super::wall_ms().max(0) as u64;
        let mut sessions = SessionTracker::new(cfg.tick_ms, cfg.server_id, wall);
        // Sessions survive a restart; each gets a full timeout to reconnect.
        for (id, entry) in tree.sessions() {
            sessions.touch(*id, entry.timeout_ms, 0);
        }
        Ok(Core {
            tree,
            pending: PendingChanges::default(),
            watches: WatchManager::default(),
            sessions,
            closing: HashSet::new(),
            session_owner: HashMap::new(),
            conns: HashMap::new(),
            inflight: VecDeque::new(),
            next_zxid,
            disk: Some(disk),
            internal_tx,
            stats: Stats::default(),
            started: Instant::now(),
            txns_since_snapshot: replayed,
            snapshot_running: false,
            last_reap_ms: 0,
            fatal: None,
            cfg,
        })
    }
}
