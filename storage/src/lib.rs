//! Durable storage: the transaction log, snapshots, purge, and the disk writer thread.
//!
//! This crate is meant to own every durable file of a data dir: the log segments and the
//! snapshots, and, through [`write_atomically`], the small files the server keeps beside
//! them (the acceptedEpoch and currentEpoch files, the commit index, the database id,
//! the committed dynamic config). The fsyncs, renames into place and directory fsyncs
//! that make those files survive a crash are written here once: fsync before rename, the
//! directory after, and no retry after a failed fsync. The small files' names and formats
//! live in [`state`].
//!
//! It is its own crate so that the layering is checked by the compiler: it depends on
//! neither tokio nor `paddock-server` (which re-exports it as `paddock_server::storage`),
//! so it cannot reach into the core, and the core reaches it only through what is `pub`
//! here. [`histogram`] lives here because the disk writer times its group commits with
//! it; the server's client port and admin module use it from here too.
//!
//! The storage layer is payload-agnostic. It stores opaque byte strings keyed by zxid
//! (`epoch << 32 | counter`); the server serializes transactions and tree snapshots
//! itself. What this layer guarantees is the ordering and durability that ZAB relies on:
//! the log is always a contiguous, strictly increasing prefix of what was appended, and
//! whatever [`TxnLog::sync`] (or a [`DiskEvent::Durable`] notification) reported as
//! durable survives a crash or power loss.
//!
//! # Transaction log ([`TxnLog`])
//!
//! The log is a directory of segment files named `log.<first zxid in lowercase hex>`,
//! like ZooKeeper's, so `ls` sorts nothing but the name still tells an operator where a
//! segment starts. All integers are little-endian.
//!
//! ```text
//! segment header (24 bytes)
//!   0  magic    8 bytes  b"PADDOCKL"
//!   8  version  u32      1
//!  12  flags    u32      0 (reserved; a reader refuses non-zero)
//!  16  db id    u64      chosen by the server; a segment from another database is refused
//! record (16 + payload bytes), repeated
//!   0  length   u32      8 + payload length: the bytes covered by the checksum
//!   4  crc32    u32      CRC-32 (IEEE) of the zxid bytes followed by the payload
//!   8  zxid     u64
//!  16  payload  `length - 8` bytes
//! zero bytes up to the end of the file
//! ```
//!
//! Why this shape:
//! * Segments are preallocated with `set_len` in large chunks, so an append inside the
//!   chunk does not change the file size and `fdatasync` does not have to log a size
//!   change on every group commit. The chunk is sparse, and appending into a hole makes
//!   the filesystem allocate blocks, which `fdatasync` must then record (the block map:
//!   a second write to wait for). So the active segment writes zeros 1 MiB ahead of its
//!   last record, and pays that once per MiB instead of at almost every group commit.
//!   The end of the log is therefore not the end of the file: a record whose length
//!   field is zero marks the end. The length counts the zxid as well as the payload so
//!   it is never zero for a real record, even an empty one. A segment is trimmed to its
//!   records when it is closed (roll, size limit), so only the newest segment carries
//!   zero padding, and data after the end of a closed segment is recognised as records
//!   lost mid-log rather than taken for a clean end.
//! * Every record carries its own checksum, so recovery can tell a record that was fully
//!   written from one that a crash tore in half, without trusting the file size.
//! * On open, every record is validated. The first damaged record (bad checksum, length
//!   running past the file, zxid out of order) and everything after it, including later
//!   segments, is cut off with a `warn!`. Cutting instead of skipping keeps the log a
//!   contiguous prefix: ZAB forbids holes, and a server whose log lost a suffix simply
//!   gets it back from the leader (DIFF, or TRUNC + DIFF, or SNAP). Bytes after the end of
//!   the last segment are zeroed too, so an old record from before the crash can never
//!   reappear behind a new, shorter one.
//! * Group commit: [`TxnLog::append`] only buffers; [`TxnLog::sync`] makes the buffer
//!   durable in one write: with `O_DIRECT | O_DSYNC` where the filesystem allows it
//!   (`direct` module: the same device flush without the page cache's writeback), else a
//!   write through the page cache and one `fdatasync`. The [`DiskWriter`] thread appends
//!   everything queued and syncs once per batch. Either way the bytes on disk are the
//!   same; readers of the log go through the page cache, which the kernel keeps coherent
//!   with direct writes (the server reads its log only while recovering, before writing).
//! * After any I/O error the log refuses further work ([`StorageError::LogFailed`]). After
//!   a failed `fsync` the kernel may already have dropped the dirty pages, so retrying
//!   could report data durable that is not; the only safe recovery is a restart, which
//!   re-reads what really is on disk.
//!
//! # Snapshots ([`write_snapshot`], [`load_newest_valid`])
//!
//! `snapshot.<zxid hex>`, written to `snapshot.<zxid hex>.tmp`, fsynced, renamed, and the
//! directory fsynced, so a snapshot file either is complete or does not exist under its
//! final name.
//!
//! ```text
//!   0  magic        8 bytes  b"PADDOCKS"
//!   8  version      u32      1
//!  12  flags        u32      bit 0: the payload is compressed (always set by this build)
//!  16  zxid         u64      must match the file name
//!  24  payload len  u64      as stored; the file must be exactly 32 + len + 4 bytes
//!  32  payload      compressed: an LZ4 frame (4 MiB blocks, no checksums of its own),
//!                   then the length it decompresses to (u64); else the bytes as they are
//!  end crc32        u32      CRC-32 of the header and the payload as stored
//! ```
//!
//! The tree's snapshot format is compact but keeps names and data as they are; LZ4
//! finds what repeats across nodes (common name prefixes, Stat fields, values that
//! resemble each other) at a cost a restart hardly notices: 0.75 to 1.2 GB/s to
//! decompress on the bench machine, against 0.25 GB/s to build the tree from it. Files of older builds (flags
//! 0) load as before; an older build refuses a compressed file ("unknown flags 0x1").
//!
//! Loading tries snapshots newest first and skips (with a `warn!`) any that fails a
//! check; the log segments retained by [`purge`] make replay from an older one possible.
//!
//! # Purge ([`purge`])
//!
//! Keeps the newest N >= 3 snapshots and the log segments needed to replay from the
//! oldest kept one. Old snapshots are deleted before old segments, so at every instant of
//! a crash each remaining snapshot still has the log it needs.
//!
//! # Platform
//!
//! Unix only: positioned reads and writes (`FileExt`) and directory fsync.

mod direct;
mod files;
pub mod histogram;
mod purge;
mod reader;
mod record;
mod snapshot;
pub mod state;
mod txnlog;
mod writer;

use std::path::PathBuf;

pub use files::{Durability, write_atomically};
pub use purge::{MIN_SNAPSHOTS_RETAINED, PurgeReport, purge};
pub use reader::LogReader;
pub use snapshot::{
    SnapshotWriter, WrittenSnapshot, load_newest_valid, newest_snapshot_zxid, read_snapshot,
    remove_all_snapshots, write_snapshot,
};
pub use txnlog::{TxnLog, TxnLogOptions};
pub use writer::{DiskEvent, DiskEventSink, DiskWriter, DiskWriterStats, SyncTimes};

/// Whether a server has run on these directories before: a transaction log or a snapshot
/// is there. (A directory that cannot be listed counts as having history: the recovery
/// that follows reports the error.)
pub fn has_history(snap_dir: &std::path::Path, log_dir: &std::path::Path) -> bool {
    let any = |dir: &std::path::Path, prefix| {
        files::list_zxid_files(dir, prefix).map_or(true, |found| !found.is_empty())
    };
    any(log_dir, files::LOG_PREFIX) || any(snap_dir, files::SNAPSHOT_PREFIX)
}

/// Result alias for this crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Everything that can go wrong in storage. Messages name the file, the offset and the
/// reason so an operator can act on a log line alone. Zxids are shown in hex, as
/// ZooKeeper's tools do.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An operating-system call failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "fdatasync txn log segment".
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A segment or snapshot header is not one this version understands.
    #[error("bad header in {}: {reason}", path.display())]
    BadHeader { path: PathBuf, reason: String },

    /// A segment belongs to a different database than the one being opened.
    #[error(
        "{} belongs to database {found:#x}, expected {expected:#x}; refusing to mix logs",
        path.display()
    )]
    DbIdMismatch {
        path: PathBuf,
        found: u64,
        expected: u64,
    },

    /// A log record failed validation while being read back.
    #[error("corrupt txn log record in {} at offset {offset}: {reason}", path.display())]
    CorruptRecord {
        path: PathBuf,
        offset: u64,
        reason: String,
    },

    /// A snapshot file failed validation.
    #[error("invalid snapshot {}: {reason}", path.display())]
    CorruptSnapshot { path: PathBuf, reason: String },

    /// An append would break the strictly increasing zxid order (a hole or reordering).
    #[error("zxid {zxid:#x} refused: the log already ends at {last:#x} and zxids must increase")]
    ZxidNotIncreasing { zxid: u64, last: u64 },

    /// A payload too large for the u32 length field.
    #[error("txn payload of {len} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge { len: usize, max: usize },

    /// The log saw an I/O error earlier and its on-disk state is unknown.
    #[error(
        "txn log in {} is unusable after an earlier I/O error; restart to recover from disk",
        dir.display()
    )]
    LogFailed { dir: PathBuf },

    /// Purge was asked to keep fewer snapshots than recovery needs.
    #[error("snapshot retain count {requested} is below the minimum of {minimum}")]
    RetainCountTooLow { requested: usize, minimum: usize },

    /// The disk writer thread is gone (it stopped after a failure, or was shut down).
    #[error("disk writer thread has stopped: {reason}")]
    WriterStopped { reason: &'static str },
}

impl StorageError {
    /// An [`StorageError::Io`]; public so that the server's own directory walks (the
    /// dynamic config's) report errors the same way.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
