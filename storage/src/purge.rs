//! Autopurge: delete snapshots and log segments that recovery can no longer need.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use tracing::info;

use super::files::{self, LOG_PREFIX, SNAPSHOT_PREFIX};
use super::{Result, StorageError};

/// ZooKeeper's minimum for `autopurge.snapRetainCount`: with fewer, one corrupt
/// snapshot could leave nothing to recover from.
pub const MIN_SNAPSHOTS_RETAINED: usize = 3;

/// What a purge deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PurgeReport {
    pub removed_snapshots: Vec<PathBuf>,
    pub removed_segments: Vec<PathBuf>,
}

/// Keeps the newest `retain_snapshots` snapshots in `snapshot_dir` and the segments in
/// `log_dir` needed to replay from the oldest of them; deletes the rest.
///
/// A segment is needed if it may hold a zxid greater than the oldest kept snapshot's
/// zxid S: the newest segment whose first zxid is <= S, and every later one. Without
/// any snapshot nothing is deleted (the whole log is the only copy of the data).
/// Snapshots are deleted (and the deletion made durable) before segments, so a crash
/// part-way never leaves a snapshot without the log it needs. Temp files of a snapshot
/// being written are left alone, so purge may run while one is in progress.
pub fn purge(
    snapshot_dir: impl AsRef<Path>,
    log_dir: impl AsRef<Path>,
    retain_snapshots: usize,
) -> Result<PurgeReport> {
    let (snapshot_dir, log_dir) = (snapshot_dir.as_ref(), log_dir.as_ref());
    if retain_snapshots < MIN_SNAPSHOTS_RETAINED {
        return Err(StorageError::RetainCountTooLow {
            requested: retain_snapshots,
            minimum: MIN_SNAPSHOTS_RETAINED,
        });
    }
    let snapshots = files::list_zxid_files(snapshot_dir, SNAPSHOT_PREFIX)?;
    let keep_from = snapshots.len().saturating_sub(retain_snapshots);
    let Some(oldest_kept) = snapshots.get(keep_from) else {
        return Ok(PurgeReport::default());
    };
    let segments = files::list_zxid_files(log_dir, LOG_PREFIX)?;
    let needed_from = segments
        .iter()
        .rposition(|segment| segment.zxid <= oldest_kept.zxid)
        .unwrap_or(0);

    let mut report = PurgeReport::default();
    for snapshot in &snapshots[..keep_from] {
        if remove_if_present(&snapshot.path)? {
            report.removed_snapshots.push(snapshot.path.clone());
        }
    }
    if !report.removed_snapshots.is_empty() {
        files::fsync_dir(snapshot_dir)?;
    }
    for segment in &segments[..needed_from] {
        if remove_if_present(&segment.path)? {
            report.removed_segments.push(segment.path.clone());
        }
    }
    if !report.removed_segments.is_empty() {
        files::fsync_dir(log_dir)?;
    }
    info!(
        snapshots = report.removed_snapshots.len(),
        segments = report.removed_segments.len(),
        oldest_kept_snapshot = %oldest_kept.path.display(),
        "purged old snapshots and txn log segments"
    );
    Ok(report)
}

/// Deletes `path`; a file already gone (another purge) is not an error.
fn remove_if_present(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StorageError::io("remove file", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TxnLog, TxnLogOptions, write_snapshot};

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// Builds real segments starting at each of `starts` (records up to the next start).
    fn log_with_segments(dir: &Path, starts: &[u64], end: u64) {
        let mut log = TxnLog::open(dir, TxnLogOptions::new(1)).unwrap();
        for (i, &start) in starts.iter().enumerate() {
            let next = starts.get(i + 1).copied().unwrap_or(end + 1);
            for zxid in start..next {
                log.append(zxid, b"txn").unwrap();
            }
            log.roll().unwrap();
        }
        log.close().unwrap();
    }

    #[test]
    fn keeps_newest_snapshots_and_the_segments_they_need() {
        let snaps = tempfile::tempdir().unwrap();
        let logs = tempfile::tempdir().unwrap();
        // Snapshots at 0x10..0x50; segments start at 0x1, 0x15, 0x25, 0x30, 0x45, 0x55.
        for zxid in [0x10, 0x20, 0x30, 0x40, 0x50] {
            write_snapshot(snaps.path(), zxid, b"tree").unwrap();
        }
        fs::write(snaps.path().join("snapshot.60.tmp"), b"in progress").unwrap();
        log_with_segments(logs.path(), &[0x1, 0x15, 0x25, 0x30, 0x45, 0x55], 0x60);

        let report = purge(snaps.path(), logs.path(), 3).unwrap();

        // Oldest kept snapshot is 0x30. Segment 0x30 starts exactly there, so it is the
        // newest one with first zxid <= 0x30; 0x25 only holds zxids <= 0x2f.
        assert_eq!(
            names(snaps.path()),
            [
                "snapshot.30",
                "snapshot.40",
                "snapshot.50",
                "snapshot.60.tmp"
            ]
        );
        assert_eq!(names(logs.path()), ["log.30", "log.45", "log.55"]);
        assert_eq!(report.removed_snapshots.len(), 2);
        assert_eq!(report.removed_segments.len(), 3);

        // Replay from the oldest kept snapshot still finds every later txn.
        let mut log = TxnLog::open(logs.path(), TxnLogOptions::new(1)).unwrap();
        let replayed: Vec<u64> = log.read_from(0x31).unwrap().map(|r| r.unwrap().0).collect();
        assert_eq!(replayed, (0x31..=0x60).collect::<Vec<_>>());

        // Purging again changes nothing.
        assert_eq!(
            purge(snaps.path(), logs.path(), 3).unwrap(),
            PurgeReport::default()
        );
    }

    #[test]
    fn keeps_the_segment_that_straddles_the_oldest_snapshot() {
        let snaps = tempfile::tempdir().unwrap();
        let logs = tempfile::tempdir().unwrap();
        for zxid in [0x12, 0x22, 0x32, 0x42] {
            write_snapshot(snaps.path(), zxid, b"tree").unwrap();
        }
        log_with_segments(logs.path(), &[0x1, 0x10, 0x20, 0x30], 0x50);
        purge(snaps.path(), logs.path(), 3).unwrap();
        assert_eq!(
            names(snaps.path()),
            ["snapshot.22", "snapshot.32", "snapshot.42"]
        );
        // 0x23..0x2f live in log.20.
        assert_eq!(names(logs.path()), ["log.20", "log.30"]);
    }

    #[test]
    fn without_snapshots_or_with_few_nothing_needed_is_deleted() {
        let snaps = tempfile::tempdir().unwrap();
        let logs = tempfile::tempdir().unwrap();
        log_with_segments(logs.path(), &[0x1, 0x10, 0x20], 0x30);
        assert_eq!(
            purge(snaps.path(), logs.path(), 3).unwrap(),
            PurgeReport::default()
        );
        assert_eq!(names(logs.path()).len(), 3);

        // Two snapshots (fewer than retained): none deleted, but segments older than
        // the oldest one's needs go.
        write_snapshot(snaps.path(), 0x15, b"tree").unwrap();
        write_snapshot(snaps.path(), 0x25, b"tree").unwrap();
        let report = purge(snaps.path(), logs.path(), 3).unwrap();
        assert!(report.removed_snapshots.is_empty());
        assert_eq!(names(logs.path()), ["log.10", "log.20"]);
    }

    #[test]
    fn refuses_to_keep_fewer_than_three() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            purge(dir.path(), dir.path(), 2),
            Err(StorageError::RetainCountTooLow {
                requested: 2,
                minimum: 3
            })
        ));
    }
}
