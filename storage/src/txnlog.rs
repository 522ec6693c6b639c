//! The append-only transaction log: recovery scan on open, buffered appends, group
//! commit, rolling, and truncation. Record format and rationale: `storage` module docs.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::direct::{self, DirectWrites};
use super::files::{self, LOG_PREFIX, ZxidFile};
use super::reader::{LogReader, ReadableSegment};
use super::record::{self, HeaderCheck, MAX_PAYLOAD_LEN, SEGMENT_HEADER_LEN, Scan, SegmentScanner};
use super::{Result, StorageError};

/// Tuning knobs of a [`TxnLog`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnLogOptions {
    /// Identifies the database; written into every segment header and checked on open,
    /// so a log directory from another ensemble is refused instead of replayed.
    pub db_id: u64,
    /// Segments grow in chunks of this many bytes (via `set_len`), so an append inside a
    /// chunk does not change the file size and `fdatasync` need not log a size change.
    pub preallocate_bytes: u64,
    /// Once a segment holds this many bytes, the next append starts a new segment.
    pub segment_size_limit: u64,
    /// Appended records are handed to the kernel once this many bytes are buffered, or
    /// at the next `sync`.
    pub write_buffer_bytes: usize,
    /// Records up to this zxid are not needed (a snapshot holds them): a closed segment
    /// whose records are all at or below it is not read on open. 0 reads every segment.
    pub needed_after: u64,
    /// Write the active segment's records with `O_DIRECT | O_DSYNC` where the filesystem
    /// allows it (see the `direct` module), instead of through the page cache and
    /// `fdatasync`. Either way a record is durable once `sync` returns.
    pub direct_io: bool,
}

impl TxnLogOptions {
    /// Defaults for database `db_id`: 64 MiB chunks, 256 MiB segments, 1 MiB buffer,
    /// direct writes.
    pub fn new(db_id: u64) -> TxnLogOptions {
        TxnLogOptions {
            db_id,
            preallocate_bytes: 64 * 1024 * 1024,
            segment_size_limit: 256 * 1024 * 1024,
            write_buffer_bytes: 1024 * 1024,
            needed_after: 0,
            direct_io: true,
        }
    }

    /// The same options, for a log whose records up to `zxid` a snapshot already holds:
    /// opening it reads only the segments that can hold later records. (Checking every
    /// older segment took most of a restart: at a million znodes after the bench's
    /// workloads, 1.5 GB of log to read and checksum for the ~20 MB after the snapshot.)
    pub fn needed_after(mut self, zxid: u64) -> TxnLogOptions {
        self.needed_after = zxid;
        self
    }

    fn chunk(&self) -> u64 {
        self.preallocate_bytes.max(SEGMENT_HEADER_LEN)
    }
}

/// The transaction log in one directory. Not thread-safe by itself: one owner (normally
/// the [`DiskWriter`](super::DiskWriter) thread) appends, syncs and truncates.
///
/// Invariants: zxids strictly increase across the whole log; every segment's first
/// record has the zxid in its file name; only the newest segment is ever written to.
#[derive(Debug)]
pub struct TxnLog {
    dir: PathBuf,
    options: TxnLogOptions,
    /// The segment appends go to; `None` after a roll until the next append names one.
    active: Option<ActiveSegment>,
    last_zxid: Option<u64>,
    /// Set by any I/O error: the on-disk state is then unknown and every later call
    /// fails with [`StorageError::LogFailed`].
    failed: bool,
}

impl TxnLog {
    /// Opens (creating if needed) the log in `dir`, validating every record of every
    /// segment. A torn or corrupt record, and everything after it, is cut off with a
    /// `warn!`; so are bytes after the end of the log, a closed segment whose records
    /// stop before its end (records lost mid-log), and segments whose header a crash
    /// left incomplete. A segment with a foreign header or db id is an error.
    pub fn open(dir: impl AsRef<Path>, options: TxnLogOptions) -> Result<TxnLog> {
        let dir = dir.as_ref().to_path_buf();
        files::ensure_dir(&dir)?;
        let recovered = recover(&dir, &options)?;
        let active = match recovered.tail {
            Some(tail) => Some(ActiveSegment::reopen(tail, &options)?),
            None => None,
        };
        if let Some(last) = recovered.last_zxid {
            info!(dir = %dir.display(), "txn log opened; last zxid {last:#x}");
        }
        Ok(TxnLog {
            dir,
            options,
            active,
            last_zxid: recovered.last_zxid,
            failed: false,
        })
    }

    /// The directory this log lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The zxid of the last appended record (durable or not), `None` for an empty log.
    pub fn last_zxid(&self) -> Option<u64> {
        self.last_zxid
    }

    /// The zxid of the oldest record still in the log (older segments may have been
    /// purged), `None` for an empty log. A follower needing anything older gets a SNAP.
    pub fn first_zxid(&self) -> Result<Option<u64>> {
        Ok(files::list_zxid_files(&self.dir, LOG_PREFIX)?
            .first()
            .map(|segment| segment.zxid))
    }

    /// Buffers a record. Nothing is durable until [`sync`](Self::sync). `zxid` must be
    /// greater than every zxid already in the log; anything else is refused (ZAB allows
    /// no holes and no reordering) and leaves the log unchanged.
    pub fn append(&mut self, zxid: u64, payload: &[u8]) -> Result<()> {
        self.check_usable()?;
        if let Some(last) = self.last_zxid
            && zxid <= last
        {
            return Err(StorageError::ZxidNotIncreasing { zxid, last });
        }
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(StorageError::RecordTooLarge {
                len: payload.len(),
                max: MAX_PAYLOAD_LEN,
            });
        }
        let result = self.append_unchecked(zxid, payload);
        self.fail_on_error(result)
    }

    fn append_unchecked(&mut self, zxid: u64, payload: &[u8]) -> Result<()> {
        if self
            .active
            .as_ref()
            .is_some_and(|active| active.end() >= self.options.segment_size_limit)
        {
            self.close_active()?;
        }
        let active = match &mut self.active {
            Some(active) => active,
            None => self
                .active
                .insert(ActiveSegment::create(&self.dir, zxid, &self.options)?),
        };
        record::encode_record(&mut active.pending, zxid, payload);
        self.last_zxid = Some(zxid);
        if active.pending.len() >= self.options.write_buffer_bytes {
            active.write_pending(&self.options)?;
        }
        Ok(())
    }

    /// Makes every appended record durable: one direct synchronous write of the buffer,
    /// or a write through the page cache and one `fdatasync`. Cheap when nothing is
    /// pending.
    pub fn sync(&mut self) -> Result<()> {
        self.check_usable()?;
        let result = match &mut self.active {
            Some(active) => active.sync(&self.options),
            None => Ok(()),
        };
        self.fail_on_error(result)
    }

    /// Syncs and closes the current segment; the next append starts a new one named
    /// after its zxid. Called after a snapshot so that purge can later drop whole
    /// segments that only hold older transactions.
    pub fn roll(&mut self) -> Result<()> {
        self.check_usable()?;
        let result = self.close_active();
        self.fail_on_error(result)
    }

    fn close_active(&mut self) -> Result<()> {
        if let Some(active) = &mut self.active {
            active.sync(&self.options)?;
            active.trim()?;
        }
        self.active = None;
        Ok(())
    }

    /// Durably drops every record with a zxid greater than `zxid` (replication's TRUNC).
    /// Later segments are deleted newest first, each deletion made durable before the
    /// next, so a crash part-way leaves a shorter prefix of the old log, never a hole.
    /// Records at or below `zxid` that were appended but not yet synced become durable.
    pub fn truncate_after(&mut self, zxid: u64) -> Result<()> {
        self.check_usable()?;
        let result = self.truncate_after_unchecked(zxid);
        self.fail_on_error(result)
    }

    fn truncate_after_unchecked(&mut self, zxid: u64) -> Result<()> {
        if self.last_zxid.is_none_or(|last| last <= zxid) {
            return self.sync();
        }
        if let Some(active) = &mut self.active {
            active.write_pending(&self.options)?;
        }
        let segments = files::list_zxid_files(&self.dir, LOG_PREFIX)?;
        for segment in segments.iter().rev() {
            let is_active = self.active.as_ref().is_some_and(|a| a.path == segment.path);
            if segment.zxid > zxid {
                if is_active {
                    self.active = None;
                }
                warn!(file = %segment.path.display(), "truncating txn log: removing segment");
                files::remove_durably(&segment.path)?;
                continue;
            }
            let limit = match &self.active {
                Some(active) if is_active => active.written_end,
                _ => file_len(&segment.path)?,
            };
            let cut = find_cut(&segment.path, limit, zxid)?;
            let Some(kept_last) = cut.kept_last else {
                // Breaks the naming invariant; handled anyway: nothing here to keep.
                if is_active {
                    self.active = None;
                }
                files::remove_durably(&segment.path)?;
                continue;
            };
            if cut.offset < limit {
                warn!(
                    file = %segment.path.display(),
                    offset = cut.offset,
                    "truncating txn log after zxid {zxid:#x}"
                );
            }
            let file = open_read_write(&segment.path)?;
            let allocated = file_len(&segment.path)?;
            zero_tail(&file, &segment.path, cut.offset, allocated)?;
            match &mut self.active {
                Some(active) if is_active => {
                    active.written_end = cut.offset;
                    // zero_tail made everything after the cut a hole again.
                    active.zeroed_end = cut.offset;
                    active.unsynced = false;
                    if let Some(direct) = &mut active.direct {
                        direct.reload(cut.offset, &active.file).map_err(|e| {
                            StorageError::io("read txn log segment", &active.path, e)
                        })?;
                    }
                }
                _ => {
                    self.active = Some(ActiveSegment::reopen(
                        Tail {
                            segment: segment.clone(),
                            end: cut.offset,
                        },
                        &self.options,
                    )?);
                }
            }
            self.last_zxid = Some(kept_last);
            return Ok(());
        }
        self.active = None;
        self.last_zxid = None;
        Ok(())
    }

    /// Returns an iterator over records with zxid `>= from`, across segments in order
    /// (pass `snapshot_zxid + 1` to replay after a snapshot). Appended-but-unsynced
    /// records are handed to the kernel first and included. The reader holds its own
    /// file handles and does not borrow the log, so it can move to another thread; it
    /// sees the log as it is now and stops where the log ends now.
    pub fn read_from(&mut self, from: u64) -> Result<LogReader> {
        self.check_usable()?;
        let result = match &mut self.active {
            Some(active) => active.write_pending(&self.options),
            None => Ok(()),
        };
        self.fail_on_error(result)?;
        let segments = files::list_zxid_files(&self.dir, LOG_PREFIX)?;
        let start = segments
            .iter()
            .rposition(|segment| segment.zxid <= from)
            .unwrap_or(0);
        let mut readable = Vec::with_capacity(segments.len() - start);
        for segment in &segments[start..] {
            let file = File::open(&segment.path)
                .map_err(|e| StorageError::io("open txn log segment", &segment.path, e))?;
            let limit = match &self.active {
                Some(active) if active.path == segment.path => active.written_end,
                _ => file
                    .metadata()
                    .map_err(|e| StorageError::io("stat txn log segment", &segment.path, e))?
                    .len(),
            };
            readable.push(ReadableSegment {
                path: segment.path.clone(),
                file,
                limit,
            });
        }
        Ok(LogReader::new(readable, from))
    }

    /// Syncs and closes the log, reporting any error (dropping it syncs too, but can
    /// only log a failure).
    pub fn close(mut self) -> Result<()> {
        self.sync()
    }

    /// Whether an earlier I/O error has made this log refuse all work.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    fn check_usable(&self) -> Result<()> {
        if self.failed {
            return Err(StorageError::LogFailed {
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }

    fn fail_on_error<T>(&mut self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            self.failed = true;
        }
        result
    }
}

impl Drop for TxnLog {
    fn drop(&mut self) {
        if self.failed {
            return;
        }
        if let Some(active) = &mut self.active
            && let Err(e) = active.sync(&self.options)
        {
            warn!("txn log sync on close failed: {e}");
        }
    }
}

/// How far ahead of the last record the active segment's blocks are written with zeros
/// (see [`ActiveSegment::zero_ahead`]): the first sync after each step writes this much
/// more, and the block map is written once per step instead of at almost every sync.
const ZERO_AHEAD_BYTES: u64 = 1024 * 1024;

/// The newest segment, open for appending.
#[derive(Debug)]
struct ActiveSegment {
    path: PathBuf,
    file: File,
    /// Bytes handed to the kernel; records start at `SEGMENT_HEADER_LEN`.
    written_end: u64,
    /// Current file length (the preallocated size).
    allocated: u64,
    /// Up to here the file's blocks are written (records, or the zeros written ahead of
    /// them); beyond, up to `allocated`, the chunk is still a hole.
    zeroed_end: u64,
    /// Encoded records not yet written.
    pending: Vec<u8>,
    /// Written since the last `fdatasync`.
    unsynced: bool,
    /// Where records are written straight to the device (durable when the write
    /// returns); `None` writes through the page cache and syncs with `fdatasync`.
    direct: Option<DirectWrites>,
}

impl ActiveSegment {
    /// Creates `log.<first_zxid>` with its header, preallocates the first chunk, and
    /// makes both the file and its directory entry durable before any record goes in.
    fn create(dir: &Path, first_zxid: u64, options: &TxnLogOptions) -> Result<ActiveSegment> {
        let path = dir.join(files::log_file_name(first_zxid));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| StorageError::io("create txn log segment", &path, e))?;
        let header = record::encode_segment_header(options.db_id);
        file.write_all_at(&header, 0)
            .map_err(|e| StorageError::io("write txn log segment header", &path, e))?;
        let allocated = options.chunk();
        file.set_len(allocated)
            .map_err(|e| StorageError::io("preallocate txn log segment", &path, e))?;
        file.sync_all()
            .map_err(|e| StorageError::io("fsync new txn log segment", &path, e))?;
        files::fsync_dir(dir)?;
        let direct = open_direct(&path, SEGMENT_HEADER_LEN, &file, options)?;
        Ok(ActiveSegment {
            path,
            file,
            written_end: SEGMENT_HEADER_LEN,
            allocated,
            zeroed_end: SEGMENT_HEADER_LEN,
            pending: Vec::with_capacity(options.write_buffer_bytes),
            unsynced: false,
            direct,
        })
    }

    /// Reopens a recovered segment to keep appending at `tail.end`.
    fn reopen(tail: Tail, options: &TxnLogOptions) -> Result<ActiveSegment> {
        let path = tail.segment.path;
        let file = open_read_write(&path)?;
        let allocated = file
            .metadata()
            .map_err(|e| StorageError::io("stat txn log segment", &path, e))?
            .len();
        let direct = open_direct(&path, tail.end, &file, options)?;
        Ok(ActiveSegment {
            path,
            file,
            written_end: tail.end,
            allocated,
            // What lies beyond the records is not known to be more than a hole.
            zeroed_end: tail.end,
            pending: Vec::new(),
            unsynced: false,
            direct,
        })
    }

    /// Where the next record will start.
    fn end(&self) -> u64 {
        self.written_end + self.pending.len() as u64
    }

    /// Hands buffered records to the kernel, growing the preallocation first if needed.
    fn write_pending(&mut self, options: &TxnLogOptions) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let end = self.end();
        if end > self.allocated {
            let chunk = options.chunk();
            let allocated = end.div_ceil(chunk) * chunk;
            self.file
                .set_len(allocated)
                .map_err(|e| StorageError::io("extend txn log segment", &self.path, e))?;
            self.allocated = allocated;
        }
        if !self.write_direct()? {
            self.file
                .write_all_at(&self.pending, self.written_end)
                .map_err(|e| StorageError::io("write txn log segment", &self.path, e))?;
            self.unsynced = true;
        }
        if end > self.zeroed_end {
            self.zero_ahead(end)?;
        }
        self.written_end = end;
        self.pending.clear();
        // One oversized record should not pin a huge buffer forever.
        self.pending.shrink_to(options.write_buffer_bytes);
        if let Some(direct) = &mut self.direct {
            direct.shrink_to(options.write_buffer_bytes);
        }
        Ok(())
    }

    /// Writes the pending records durably with the direct handle; false when there is
    /// none, or when the device refused the direct write (nothing was written then, and
    /// the segment goes on through the page cache).
    fn write_direct(&mut self) -> Result<bool> {
        let Some(direct) = &mut self.direct else {
            return Ok(false);
        };
        match direct.write(self.written_end, &self.pending) {
            Ok(()) => Ok(true),
            Err(e) if direct::refuses_direct_io(&e) => {
                warn!(file = %self.path.display(), error = %e, "direct write refused; writing the txn log through the page cache");
                self.direct = None;
                Ok(false)
            }
            Err(e) => Err(StorageError::io("write txn log segment", &self.path, e)),
        }
    }

    /// Writes zeros from `end` to [`ZERO_AHEAD_BYTES`] past it (within the chunk), so
    /// that the records of the next group commits land in blocks the filesystem has
    /// already allocated. Appending into a hole allocates blocks, and then every
    /// `fdatasync` must also write the inode's block map, a second I/O to wait for;
    /// with the zeros written once ahead, that happens once per `ZERO_AHEAD_BYTES` of
    /// log. Readers see the same thing either way: zeros where no record is.
    fn zero_ahead(&mut self, end: u64) -> Result<()> {
        let target = (end + ZERO_AHEAD_BYTES).min(self.allocated);
        let written = match &self.direct {
            // The direct write padded the records' last block with zeros already; whole
            // blocks from there on. (A chunk size that is not a multiple of the block
            // leaves its last partial block a hole, which reads as zeros all the same.)
            Some(direct) => {
                let (from, to) = (direct::align_up(end), direct::align_down(target));
                if from < to {
                    direct.write_zeros(from, to)
                } else {
                    Ok(())
                }
            }
            None => direct::write_zeros(&self.file, end, target),
        };
        written
            .map_err(|e| StorageError::io("write zeros ahead in txn log segment", &self.path, e))?;
        self.zeroed_end = target.max(end);
        Ok(())
    }

    /// Gives back the unused preallocation of a segment being closed. Besides saving
    /// space, this is what lets recovery treat data after the end of any closed segment
    /// as damage: a closed segment ends exactly where its records end.
    fn trim(&mut self) -> Result<()> {
        self.file
            .set_len(self.written_end)
            .and_then(|()| self.file.sync_all())
            .map_err(|e| StorageError::io("trim closed txn log segment", &self.path, e))?;
        self.allocated = self.written_end;
        Ok(())
    }

    fn sync(&mut self, options: &TxnLogOptions) -> Result<()> {
        self.write_pending(options)?;
        if self.unsynced {
            self.file
                .sync_data()
                .map_err(|e| StorageError::io("fdatasync txn log segment", &self.path, e))?;
            self.unsynced = false;
        }
        Ok(())
    }
}

/// The segment recovery left at the end of the log, and where its records end.
#[derive(Debug)]
struct Tail {
    segment: ZxidFile,
    end: u64,
}

#[derive(Debug)]
struct Recovered {
    tail: Option<Tail>,
    last_zxid: Option<u64>,
}

/// Validates all segments in order, cutting at the first damage. See [`TxnLog::open`].
fn recover(dir: &Path, options: &TxnLogOptions) -> Result<Recovered> {
    let segments = files::list_zxid_files(dir, LOG_PREFIX)?;
    let mut last_zxid = None;
    let mut tail = None;
    // Index of the first segment to delete along with all later ones.
    let mut cut_from = segments.len();
    for (index, segment) in segments.iter().enumerate() {
        let is_last = index + 1 == segments.len();
        // A segment ends before the next one starts: if that is at or before the first
        // needed zxid, nothing in this one is needed, and it is left as it is.
        if segments
            .get(index + 1)
            .is_some_and(|next| next.zxid <= options.needed_after.saturating_add(1))
        {
            continue;
        }
        let mut scanned = match scan_segment(segment, options.db_id, last_zxid)? {
            SegmentScan::IncompleteHeader => {
                warn!(
                    file = %segment.path.display(),
                    later_segments = segments.len() - index - 1,
                    "txn log segment has an incomplete header (crash while creating it); \
                     removing it and every later segment"
                );
                cut_from = index;
                break;
            }
            SegmentScan::Scanned(scanned) => scanned,
        };
        if !is_last && scanned.damage.is_none() {
            scanned.damage =
                data_after_closed_segment(&segment.path, scanned.end, scanned.file_len)?;
        }
        if let Some(damage) = &scanned.damage {
            warn!(
                file = %segment.path.display(),
                offset = damage.offset,
                cut_bytes = scanned.file_len.saturating_sub(damage.offset),
                later_segments = segments.len() - index - 1,
                "txn log damaged: {}; cutting it and everything after",
                damage.reason
            );
        }
        let Some(segment_last) = scanned.last_zxid else {
            if scanned.damage.is_none() && !is_last {
                warn!(file = %segment.path.display(), "removing empty txn log segment");
                files::remove_durably(&segment.path)?;
                continue;
            }
            if scanned.damage.is_none() {
                info!(file = %segment.path.display(), "removing empty txn log segment");
            }
            cut_from = index;
            break;
        };
        last_zxid = Some(segment_last);
        tail = Some(Tail {
            segment: segment.clone(),
            end: scanned.end,
        });
        if scanned.damage.is_some() {
            let file = open_read_write(&segment.path)?;
            zero_tail(&file, &segment.path, scanned.end, scanned.file_len)?;
            cut_from = index + 1;
            break;
        }
    }
    for segment in segments[cut_from..].iter().rev() {
        files::remove_durably(&segment.path)?;
    }
    // Whichever segment ends the log now (not necessarily the last file there was)
    // gets appended to next, so nothing may follow its records.
    if let Some(tail) = &tail {
        clear_after_end(&tail.segment.path, tail.end)?;
    }
    Ok(Recovered { tail, last_zxid })
}

#[derive(Debug)]
enum SegmentScan {
    IncompleteHeader,
    Scanned(ScannedSegment),
}

#[derive(Debug)]
struct ScannedSegment {
    last_zxid: Option<u64>,
    /// Where the valid records end (the damaged record's offset if there is damage).
    end: u64,
    file_len: u64,
    damage: Option<Damage>,
}

#[derive(Debug)]
struct Damage {
    offset: u64,
    reason: String,
}

/// Checks one segment's header and every record; zxids must continue from `prev_last`,
/// and the first record must carry the zxid the file is named after.
fn scan_segment(segment: &ZxidFile, db_id: u64, prev_last: Option<u64>) -> Result<SegmentScan> {
    let path = &segment.path;
    let file = File::open(path).map_err(|e| StorageError::io("open txn log segment", path, e))?;
    let file_len = file
        .metadata()
        .map_err(|e| StorageError::io("stat txn log segment", path, e))?
        .len();
    let header_len = file_len.min(SEGMENT_HEADER_LEN) as usize;
    let mut header = vec![0u8; header_len];
    file.read_exact_at(&mut header, 0)
        .map_err(|e| StorageError::io("read txn log segment header", path, e))?;
    match record::check_segment_header(&header) {
        HeaderCheck::Incomplete => return Ok(SegmentScan::IncompleteHeader),
        HeaderCheck::Invalid(reason) => {
            return Err(StorageError::BadHeader {
                path: path.clone(),
                reason,
            });
        }
        HeaderCheck::Valid { db_id: found } if found != db_id => {
            return Err(StorageError::DbIdMismatch {
                path: path.clone(),
                found,
                expected: db_id,
            });
        }
        HeaderCheck::Valid { .. } => {}
    }
    let mut scanner = SegmentScanner::new(file, path, file_len)?;
    let mut last_zxid = None;
    loop {
        let (offset, zxid) = match scanner.next_record()? {
            Scan::Record { offset, zxid, .. } => (offset, zxid),
            Scan::End { offset } => {
                return Ok(SegmentScan::Scanned(ScannedSegment {
                    last_zxid,
                    end: offset,
                    file_len,
                    damage: None,
                }));
            }
            Scan::Damaged { offset, reason } => {
                return Ok(SegmentScan::Scanned(ScannedSegment {
                    last_zxid,
                    end: offset,
                    file_len,
                    damage: Some(Damage { offset, reason }),
                }));
            }
        };
        let out_of_order = match (last_zxid, prev_last) {
            (None, _) if zxid != segment.zxid => Some(format!(
                "first record has zxid {zxid:#x} but the segment is named for {:#x}",
                segment.zxid
            )),
            (Some(previous), _) | (None, Some(previous)) if zxid <= previous => Some(format!(
                "zxid {zxid:#x} does not follow the previous record's {previous:#x}"
            )),
            _ => None,
        };
        if let Some(reason) = out_of_order {
            return Ok(SegmentScan::Scanned(ScannedSegment {
                last_zxid,
                end: offset,
                file_len,
                damage: Some(Damage { offset, reason }),
            }));
        }
        last_zxid = Some(zxid);
    }
}

/// A closed segment is trimmed to its records, so anything non-zero after them means
/// records in the middle of the log were lost (a zero length field where data should
/// be). Accepting the end there would open a hole before the next segment.
fn data_after_closed_segment(path: &Path, end: u64, file_len: u64) -> Result<Option<Damage>> {
    let file = File::open(path).map_err(|e| StorageError::io("open txn log segment", path, e))?;
    Ok(
        first_nonzero_byte(&file, path, end, file_len)?.map(|found| Damage {
            offset: end,
            reason: format!(
                "records stop at offset {end} but data follows at offset {found} in a closed \
             segment (records lost mid-log)"
            ),
        }),
    )
}

/// Zeroes anything non-zero after the end of the last segment's records: data written
/// but never synced before a crash. Left in place, a shorter new record written at the
/// end could be followed by an old, checksum-valid record that reappears on the next
/// recovery.
fn clear_after_end(path: &Path, end: u64) -> Result<()> {
    let file = File::open(path).map_err(|e| StorageError::io("open txn log segment", path, e))?;
    let file_len = file
        .metadata()
        .map_err(|e| StorageError::io("stat txn log segment", path, e))?
        .len();
    let Some(offset) = first_nonzero_byte(&file, path, end, file_len)? else {
        return Ok(());
    };
    warn!(
        file = %path.display(),
        offset,
        end_of_log = end,
        "non-zero bytes after the end of the txn log (unsynced writes before a crash); \
         zeroing them"
    );
    let file = open_read_write(path)?;
    zero_tail(&file, path, end, file_len)
}

fn first_nonzero_byte(file: &File, path: &Path, from: u64, to: u64) -> Result<Option<u64>> {
    const CHUNK: u64 = 1024 * 1024;
    let mut buf = vec![0u8; CHUNK.min(to.saturating_sub(from)) as usize];
    let mut offset = from;
    while offset < to {
        let len = CHUNK.min(to - offset) as usize;
        let chunk = &mut buf[..len];
        file.read_exact_at(chunk, offset)
            .map_err(|e| StorageError::io("read txn log segment", path, e))?;
        if let Some(index) = chunk.iter().position(|&b| b != 0) {
            return Ok(Some(offset + index as u64));
        }
        offset += len as u64;
    }
    Ok(None)
}

/// Durably replaces everything from `from` to `len` with zeros, keeping the file length
/// (and with it the preallocation): shrink, then grow back, then fsync.
fn zero_tail(file: &File, path: &Path, from: u64, len: u64) -> Result<()> {
    file.set_len(from)
        .and_then(|()| file.set_len(len.max(from)))
        .and_then(|()| file.sync_all())
        .map_err(|e| StorageError::io("cut txn log segment", path, e))
}

#[derive(Debug)]
struct Cut {
    /// Where the first record with a greater zxid starts (or the end of the records).
    offset: u64,
    /// The last record kept, if any.
    kept_last: Option<u64>,
}

/// Finds where records with zxid > `after` begin in one segment.
fn find_cut(path: &Path, limit: u64, after: u64) -> Result<Cut> {
    let file = File::open(path).map_err(|e| StorageError::io("open txn log segment", path, e))?;
    let mut scanner = SegmentScanner::new(file, path, limit)?;
    let mut kept_last = None;
    loop {
        match scanner.next_record()? {
            Scan::Record { offset, zxid, .. } if zxid > after => {
                return Ok(Cut { offset, kept_last });
            }
            Scan::Record { zxid, .. } => kept_last = Some(zxid),
            Scan::End { offset } => return Ok(Cut { offset, kept_last }),
            Scan::Damaged { offset, reason } => {
                return Err(StorageError::CorruptRecord {
                    path: path.to_path_buf(),
                    offset,
                    reason,
                });
            }
        }
    }
}

/// The active segment's direct handle, when the options ask for one and the filesystem
/// does direct I/O.
fn open_direct(
    path: &Path,
    end: u64,
    file: &File,
    options: &TxnLogOptions,
) -> Result<Option<DirectWrites>> {
    if !options.direct_io {
        return Ok(None);
    }
    DirectWrites::open(path, end, file)
        .map_err(|e| StorageError::io("open txn log segment for direct writes", path, e))
}

fn open_read_write(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| StorageError::io("open txn log segment", path, e))
}

fn file_len(path: &Path) -> Result<u64> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| StorageError::io("stat txn log segment", path, e))
}

#[cfg(test)]
mod tests;
