//! The data dir as the core sees it: every durable write the core asks for, behind one
//! trait, so that the core names no path, opens no file and starts no thread for them.
//! [`Files`] is the real one (the disk writer thread, the snapshot thread, the files of
//! `storage`); a simulated disk can stand in for it.

use std::path::PathBuf;

use tracing::{info, warn};

use crate::config::DynamicConfig;
use crate::storage::{self, DiskWriter, DiskWriterStats, StorageError, SyncTimes};
use crate::tree::SnapshotView;
use crate::zab::{Bytes, Zxid};

/// Gives the pages of freed memory back to the system. Writes during a snapshot copy the
/// parts of the tree they change (the snapshot keeps the old ones); once it is written
/// those copies are freed, but glibc keeps freed memory in the middle of its heaps
/// resident, so a server that loaded a large tree under snapshots would hold the peak
/// for good. At a million znodes that was about 50 MB of 300.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the allocator's heaps to the system;
    // it takes no pointer and changes no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Called once a background snapshot ends: whether it was written.
pub type SnapshotDone = Box<dyn FnOnce(bool) + Send>;

/// What the core makes durable, and in what order it may rely on it.
///
/// Every write only queues, for the disk writer to carry out in order, off the core's
/// thread: what it queued is durable once the disk reports it (`CoreMsg::Disk`), and ZAB
/// says what must wait for that (its outputs hold an ACKEPOCH until the epochs are
/// durable; an ACK waits for the records, and for a TRUNC or SNAP to be done). The
/// commit index and the dynamic config are not reported: nothing waits for them. A
/// background snapshot runs on a thread of its own and reports through `done`.
pub trait DataDir: Send {
    /// Queues a txn for the log.
    fn append(&self, zxid: Zxid, payload: Bytes) -> storage::Result<()>;
    /// Queues a cut of the log after `zxid` (TRUNC).
    fn truncate_after(&self, zxid: Zxid) -> storage::Result<()>;
    /// Queues a roll to a new segment, so that the segments before it can be purged.
    fn roll(&self) -> storage::Result<()>;
    /// Queues ZAB's acceptedEpoch and currentEpoch; durable once the disk reports
    /// `DiskEvent::EpochsDurable`.
    fn persist_epochs(&self, accepted: i64, current: i64) -> storage::Result<()>;
    /// Queues how far txns are known committed; need not be durable (lagging is safe).
    fn persist_commit_index(&self, zxid: Zxid) -> storage::Result<()>;
    /// Queues the committed dynamic config, in order with the log; nothing waits for it.
    fn persist_config(&self, config: &DynamicConfig) -> storage::Result<()>;
    /// Queues SNAP: the whole history replaced by the leader's snapshot, in order with
    /// the log; durable once the disk reports `DiskEvent::SnapshotInstalled`.
    fn install_snapshot(&self, zxid: Zxid, payload: Vec<u8>) -> storage::Result<()>;
    /// Writes a snapshot of `view` in the background (then purges, if asked), and calls
    /// `done` when it ends.
    fn snapshot(&self, view: SnapshotView, done: SnapshotDone) -> storage::Result<()>;
    /// The log writer's counters and commit times; `None` once shut down.
    fn stats(&self) -> Option<(DiskWriterStats, SyncTimes)>;
    /// Finishes what is queued and stops the log writer.
    fn shutdown(&mut self) -> storage::Result<()>;
}

/// The data dir on files.
pub struct Files {
    /// `None` once shut down.
    log: Option<DiskWriter>,
    snap_dir: PathBuf,
    log_dir: PathBuf,
    /// Snapshots kept by autopurge after each snapshot; `None` without autopurge.
    retain: Option<usize>,
}

impl Files {
    pub fn new(
        log: DiskWriter,
        snap_dir: PathBuf,
        log_dir: PathBuf,
        retain: Option<usize>,
    ) -> Files {
        Files {
            log: Some(log),
            snap_dir,
            log_dir,
            retain,
        }
    }

    fn log(&self) -> storage::Result<&DiskWriter> {
        self.log.as_ref().ok_or(StorageError::WriterStopped {
            reason: "the server is shutting down",
        })
    }
}

impl DataDir for Files {
    fn append(&self, zxid: Zxid, payload: Bytes) -> storage::Result<()> {
        self.log()?.append(zxid as u64, payload)
    }

    fn truncate_after(&self, zxid: Zxid) -> storage::Result<()> {
        self.log()?.truncate_after(zxid as u64)
    }

    fn roll(&self) -> storage::Result<()> {
        self.log()?.roll()
    }

    fn persist_epochs(&self, accepted: i64, current: i64) -> storage::Result<()> {
        self.log()?
            .persist_epochs(self.snap_dir.clone(), accepted, current)
    }

    fn persist_commit_index(&self, zxid: Zxid) -> storage::Result<()> {
        self.log()?
            .persist_commit_index(self.snap_dir.clone(), zxid as u64)
    }

    fn persist_config(&self, config: &DynamicConfig) -> storage::Result<()> {
        self.log()?.persist_dynamic_config(
            self.snap_dir.clone(),
            config.version,
            config.file_body(),
        )
    }

    fn install_snapshot(&self, zxid: Zxid, payload: Vec<u8>) -> storage::Result<()> {
        self.log()?
            .install_snapshot(self.snap_dir.clone(), zxid as u64, payload)
    }

    fn snapshot(&self, view: SnapshotView, done: SnapshotDone) -> storage::Result<()> {
        let snap_dir = self.snap_dir.clone();
        let log_dir = self.log_dir.clone();
        let retain = self.retain;
        std::thread::Builder::new()
            .name("paddock-snapshot".into())
            .spawn(move || {
                let ok = write_snapshot(&snap_dir, &view);
                // The view kept the tree as it was; what the core changed meanwhile was
                // copied, and the old copies go now.
                drop(view);
                release_free_memory();
                if ok && let Some(retain) = retain {
                    match storage::purge(&snap_dir, &log_dir, retain) {
                        Ok(report) => info!(?report, "autopurge"),
                        Err(e) => warn!(error = %e, "autopurge failed"),
                    }
                }
                done(ok);
            })
            .map(drop)
            .map_err(|e| StorageError::io("start the snapshot thread for", &self.snap_dir, e))
    }

    fn stats(&self) -> Option<(DiskWriterStats, SyncTimes)> {
        self.log.as_ref().map(|l| (l.stats(), l.sync_times()))
    }

    fn shutdown(&mut self) -> storage::Result<()> {
        match self.log.take() {
            Some(log) => log.shutdown(),
            None => Ok(()),
        }
    }
}

/// Serializes and writes one snapshot; false (logged) when it failed.
fn write_snapshot(snap_dir: &std::path::Path, view: &SnapshotView) -> bool {
    let started = std::time::Instant::now();
    let zxid = view.last_zxid;
    let payload = view.serialize_compact();
    match storage::write_snapshot(snap_dir, zxid as u64, &payload) {
        Ok(path) => {
            info!(
                zxid = format_args!("{zxid:#x}"),
                nodes = view.node_count(),
                bytes = payload.len(),
                ms = started.elapsed().as_millis() as u64,
                file = %path.display(),
                "snapshot written"
            );
            true
        }
        Err(e) => {
            warn!(error = %e, "snapshot failed; will retry after more txns");
            false
        }
    }
}
