//! The data dir as the core sees it: every durable write the core asks for, behind one
//! trait, so that the core names no path, opens no file and starts no thread for them.
//! [`Files`] is the real one (the disk writer thread, the snapshot thread, the files of
//! `storage`); a simulated disk can stand in for it.

use std::cell::RefCell;
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
    /// Queues a txn for the log. It may wait here for [`DataDir::flush`] (or for the
    /// next other write, which keeps the order) before it goes to the disk writer.
    fn append(&self, zxid: Zxid, payload: Bytes) -> storage::Result<()>;
    /// Hands the appends waiting here to the disk writer; the core calls it when the
    /// messages it had at hand are all handled.
    fn flush(&self) -> storage::Result<()> {
        Ok(())
    }
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
    /// Appends not yet handed to the disk writer: they go together, at a flush, at the
    /// next other write, or once there are [`APPENDS_HELD`]. Each hand-over to the
    /// writer thread costs a channel send and often a wakeup; one per record was about
    /// a twentieth of the core thread's time under a write load.
    held: RefCell<Vec<(u64, Bytes)>>,
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
            held: RefCell::new(Vec::new()),
            snap_dir,
            log_dir,
            retain,
        }
    }

    /// The disk writer, once the appends held here went to it (so that whatever is
    /// queued next comes after them).
    fn log(&self) -> storage::Result<&DiskWriter> {
        let log = self.log.as_ref().ok_or(StorageError::WriterStopped {
            reason: "the server is shutting down",
        })?;
        let mut held = self.held.borrow_mut();
        match held.len() {
            0 => {}
            // One alone goes as it is, and the hold keeps its buffer.
            1 => {
                if let Some((zxid, payload)) = held.pop() {
                    log.append(zxid, payload)?;
                }
            }
            _ => log.append_all(std::mem::take(&mut *held))?,
        }
        Ok(log)
    }
}

/// The most appends held back for one hand-over to the disk writer.
const APPENDS_HELD: usize = 64;

impl DataDir for Files {
    fn append(&self, zxid: Zxid, payload: Bytes) -> storage::Result<()> {
        let full = {
            let mut held = self.held.borrow_mut();
            held.push((zxid as u64, payload));
            held.len() >= APPENDS_HELD
        };
        match full {
            true => self.flush(),
            false => Ok(()),
        }
    }

    fn flush(&self) -> storage::Result<()> {
        self.log().map(drop)
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
        let flushed = self.flush();
        match self.log.take() {
            Some(log) => flushed.and(log.shutdown()),
            None => Ok(()),
        }
    }
}

/// Serializes and writes one snapshot, streaming the tree into the file (no copy of the
/// whole payload in memory); false (logged) when it failed.
fn write_snapshot(snap_dir: &std::path::Path, view: &SnapshotView) -> bool {
    let started = std::time::Instant::now();
    let zxid = view.last_zxid;
    let written = storage::SnapshotWriter::create(snap_dir, zxid as u64).and_then(|mut file| {
        view.serialize_compact_into(&mut file)
            .map_err(|e| StorageError::io("write snapshot", snap_dir, e))?;
        let bytes = file.raw_len();
        file.finish().map(|written| (written, bytes))
    });
    match written {
        Ok((written, bytes)) => {
            info!(
                zxid = format_args!("{zxid:#x}"),
                nodes = view.node_count(),
                bytes,
                stored = written.file_len,
                ms = started.elapsed().as_millis() as u64,
                file = %written.path.display(),
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

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::storage::{DiskEvent, TxnLog, TxnLogOptions};

    const WAIT: Duration = Duration::from_secs(20);

    fn files(dir: &std::path::Path) -> (Files, mpsc::Receiver<DiskEvent>) {
        let (events, received) = mpsc::channel();
        let sink = Box::new(move |event| {
            let _ = events.send(event);
        });
        let log = TxnLog::open(dir, TxnLogOptions::new(1)).unwrap();
        let writer = DiskWriter::spawn(log, sink, Duration::from_secs(1)).unwrap();
        (Files::new(writer, dir.into(), dir.into(), None), received)
    }

    fn next(events: &mpsc::Receiver<DiskEvent>) -> DiskEvent {
        events.recv_timeout(WAIT).expect("a disk event in time")
    }

    #[test]
    fn held_appends_reach_the_log_at_a_flush_and_before_any_later_write() {
        let dir = tempfile::tempdir().unwrap();
        let (mut files, events) = files(dir.path());
        let record = |z: i64| Bytes::from(format!("txn {z}"));
        for z in 1..=3 {
            files.append(z, record(z)).unwrap();
        }
        files.flush().unwrap();
        assert!(matches!(next(&events), DiskEvent::Durable(3)));

        // Held appends go ahead of the epochs queued after them, as ZAB relies on.
        files.append(4, record(4)).unwrap();
        files.persist_epochs(1, 1).unwrap();
        assert!(matches!(next(&events), DiskEvent::Durable(4)));
        assert!(matches!(next(&events), DiskEvent::EpochsDurable { .. }));

        // A full hold goes without a flush.
        let last = 4 + APPENDS_HELD as i64;
        for z in 5..=last {
            files.append(z, record(z)).unwrap();
        }
        let mut durable = 0;
        while durable < last as u64 {
            match next(&events) {
                DiskEvent::Durable(z) => durable = z,
                other => panic!("unexpected {other:?}"),
            }
        }

        // What is held at shutdown is written too.
        files.append(last + 1, record(last + 1)).unwrap();
        files.shutdown().unwrap();
        let mut log = TxnLog::open(dir.path(), TxnLogOptions::new(1)).unwrap();
        let zxids: Vec<u64> = log.read_from(0).unwrap().map(|r| r.unwrap().0).collect();
        assert_eq!(zxids, (1..=last as u64 + 1).collect::<Vec<_>>());
    }
}
