//! Snapshot files: atomic writing and validated loading. Layout in the `storage` module
//! docs.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, ErrorKind, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use lz4_flex::frame::{BlockMode, BlockSize, FrameDecoder, FrameEncoder, FrameInfo};
use tracing::{info, warn};

use super::files::{self, SNAPSHOT_PREFIX, TEMP_SUFFIX};
use super::{Result, StorageError};

const SNAPSHOT_MAGIC: [u8; 8] = *b"PADDOCKS";
const SNAPSHOT_VERSION: u32 = 1;
const HEADER_LEN: u64 = 32;
const TRAILER_LEN: u64 = 4;
const WRITE_BUFFER_BYTES: usize = 1024 * 1024;
/// Header flag: the payload is stored LZ4-compressed (the module docs in lib.rs).
const FLAG_LZ4: u64 = 1;
/// Every flag this build reads.
const KNOWN_FLAGS: u64 = FLAG_LZ4;
/// A compressed payload ends with the length it decompresses to (u64, little-endian).
const RAW_LEN_BYTES: usize = 8;
/// LZ4 blocks of 4 MiB: a snapshot is large and read whole, so big blocks cost nothing
/// and find more repeats than the 64 KiB default.
const LZ4_BLOCK: BlockSize = BlockSize::Max4MB;
/// One stored byte of LZ4 stands for at most 255 bytes of output: a long match is written
/// as a run of length bytes, each adding at most 255 to it. A compressed payload that
/// claims more is corrupt, not a reason to allocate.
const LZ4_MAX_RATIO: u64 = 255;

fn encode_header(flags: u64, zxid: u64, payload_len: u64) -> [u8; HEADER_LEN as usize] {
    let mut header = [0u8; HEADER_LEN as usize];
    header[0..8].copy_from_slice(&SNAPSHOT_MAGIC);
    header[8..12].copy_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&(flags as u32).to_le_bytes());
    header[16..24].copy_from_slice(&zxid.to_le_bytes());
    header[24..32].copy_from_slice(&payload_len.to_le_bytes());
    header
}

/// Writes `snapshot.<zxid hex>` in `dir` atomically (temp file, fsync, rename, fsync of
/// the directory) and returns its path. An existing snapshot for the same zxid is
/// replaced.
pub fn write_snapshot(dir: impl AsRef<Path>, zxid: u64, payload: &[u8]) -> Result<PathBuf> {
    let mut writer = SnapshotWriter::create(dir, zxid)?;
    if let Err(e) = writer.write_all(payload) {
        return Err(StorageError::io("write snapshot", &writer.temp_path, e));
    }
    writer.finish().map(|written| written.path)
}

/// A snapshot file that [`SnapshotWriter::finish`] put in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenSnapshot {
    pub path: PathBuf,
    /// The file's size: header, compressed payload and checksum.
    pub file_len: u64,
}

/// Streams a snapshot to disk, for payloads the server would rather not build in memory
/// first (serialize the tree straight into it). What is written is compressed on the
/// way. Nothing appears under the final name until [`finish`](Self::finish) succeeds;
/// dropping the writer unfinished deletes the temp file.
pub struct SnapshotWriter {
    dir: PathBuf,
    zxid: u64,
    temp_path: PathBuf,
    /// `None` once finished.
    out: Option<FrameEncoder<Stored>>,
    /// Bytes written so far, before compression.
    raw_len: u64,
}

impl std::fmt::Debug for SnapshotWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotWriter")
            .field("temp_path", &self.temp_path)
            .field("zxid", &self.zxid)
            .field("raw_len", &self.raw_len)
            .finish_non_exhaustive()
    }
}

/// The file under the compressor: counts and checksums the payload as stored.
struct Stored {
    file: BufWriter<File>,
    crc: crc32fast::Hasher,
    len: u64,
}

impl Write for Stored {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.file.write(buf)?;
        self.crc.update(&buf[..written]);
        self.len += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl SnapshotWriter {
    /// Starts `snapshot.<zxid hex>.tmp` in `dir` (created if missing).
    pub fn create(dir: impl AsRef<Path>, zxid: u64) -> Result<SnapshotWriter> {
        let dir = dir.as_ref().to_path_buf();
        files::ensure_dir(&dir)?;
        let temp_path = dir.join(format!("{}{TEMP_SUFFIX}", files::snapshot_file_name(zxid)));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp_path)
            .map_err(|e| StorageError::io("create snapshot", &temp_path, e))?;
        let mut file = BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
        // The real header needs the payload length; it is written over this at finish.
        file.write_all(&[0u8; HEADER_LEN as usize])
            .map_err(|e| StorageError::io("write snapshot", &temp_path, e))?;
        let stored = Stored {
            file,
            crc: crc32fast::Hasher::new(),
            len: 0,
        };
        // The file's own CRC covers the stored bytes, so the frame carries no checksums.
        let frame = FrameInfo::new()
            .block_size(LZ4_BLOCK)
            .block_mode(BlockMode::Independent);
        Ok(SnapshotWriter {
            dir,
            zxid,
            temp_path,
            out: Some(FrameEncoder::with_frame_info(frame, stored)),
            raw_len: 0,
        })
    }

    /// Bytes written so far, before compression.
    pub fn raw_len(&self) -> u64 {
        self.raw_len
    }

    /// Writes the header and checksum, makes the file durable, and renames it into
    /// place. Returns the snapshot's path and size.
    pub fn finish(mut self) -> Result<WrittenSnapshot> {
        let temp_path = self.temp_path.clone();
        let io_error = |op, e| StorageError::io(op, &temp_path, e);
        let Some(out) = self.out.take() else {
            return Err(io_error(
                "finish snapshot",
                io::Error::other("snapshot writer already finished"),
            ));
        };
        let mut stored = out
            .finish()
            .map_err(|e| io_error("compress snapshot", e.into()))?;
        stored
            .write_all(&self.raw_len.to_le_bytes())
            .map_err(|e| io_error("write snapshot", e))?;
        let header = encode_header(FLAG_LZ4, self.zxid, stored.len);
        let file_len = HEADER_LEN + stored.len + TRAILER_LEN;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&header);
        crc.combine(&stored.crc);
        let mut out = stored.file;
        out.write_all(&crc.finalize().to_le_bytes())
            .map_err(|e| io_error("write snapshot", e))?;
        let file = out
            .into_inner()
            .map_err(|e| io_error("write snapshot", e.into_error()))?;
        file.write_all_at(&header, 0)
            .map_err(|e| io_error("write snapshot header", e))?;
        let path = self.dir.join(files::snapshot_file_name(self.zxid));
        files::install(file, &temp_path, &path)?;
        Ok(WrittenSnapshot { path, file_len })
    }
}

impl Write for SnapshotWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(out) = &mut self.out else {
            return Err(io::Error::other("snapshot writer already finished"));
        };
        let written = out.write(buf)?;
        self.raw_len += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        if self.out.take().is_some()
            && let Err(e) = fs::remove_file(&self.temp_path)
            && e.kind() != ErrorKind::NotFound
        {
            warn!(file = %self.temp_path.display(), "could not remove unfinished snapshot: {e}");
        }
    }
}

/// Loads the newest snapshot in `dir` that passes every check, as `(zxid, payload)`.
/// Invalid ones (truncated, corrupt, unreadable) are skipped with a `warn!` naming the
/// file and the reason; the log segments kept by purge allow replay from an older one.
/// Leftover temp files from an interrupted write are removed. `Ok(None)` when there is
/// no valid snapshot (or no directory).
///
/// Call at startup only: the temp-file cleanup would break a snapshot being written.
pub fn load_newest_valid(dir: impl AsRef<Path>) -> Result<Option<(u64, Vec<u8>)>> {
    let dir = dir.as_ref();
    for temp in files::list_temp_files(dir, SNAPSHOT_PREFIX)? {
        info!(file = %temp.display(), "removing leftover temp snapshot");
        if let Err(e) = fs::remove_file(&temp)
            && e.kind() != ErrorKind::NotFound
        {
            warn!(file = %temp.display(), "could not remove leftover temp snapshot: {e}");
        }
    }
    for snapshot in files::list_zxid_files(dir, SNAPSHOT_PREFIX)?.iter().rev() {
        match read_checked(&snapshot.path, Some(snapshot.zxid)) {
            Ok(loaded) => return Ok(Some(loaded)),
            Err(e) => warn!(
                file = %snapshot.path.display(),
                "skipping invalid snapshot, trying an older one: {e}"
            ),
        }
    }
    Ok(None)
}

/// The zxid in the name of the newest snapshot file in `dir`, unchecked (the file may
/// still fail [`load_newest_valid`]'s checks); `None` when there is none.
pub fn newest_snapshot_zxid(dir: impl AsRef<Path>) -> Result<Option<u64>> {
    Ok(files::list_zxid_files(dir.as_ref(), SNAPSHOT_PREFIX)?
        .last()
        .map(|snapshot| snapshot.zxid))
}

/// Deletes every snapshot in `dir` (and makes the deletions durable); returns how many.
/// Before a leader's snapshot is installed, the old ones hold a history this server no
/// longer has: left behind, a newer one would be loaded at the next start.
pub fn remove_all_snapshots(dir: impl AsRef<Path>) -> Result<usize> {
    let dir = dir.as_ref();
    let found = files::list_zxid_files(dir, SNAPSHOT_PREFIX)?;
    for snapshot in &found {
        warn!(file = %snapshot.path.display(), "removing a snapshot of a replaced history");
        fs::remove_file(&snapshot.path)
            .map_err(|e| StorageError::io("remove snapshot", &snapshot.path, e))?;
    }
    if !found.is_empty() {
        files::fsync_dir(dir)?;
    }
    Ok(found.len())
}

/// Reads and validates one snapshot file, returning `(zxid, payload)`. If the file name
/// has the `snapshot.<hex>` form, the header's zxid must match it.
pub fn read_snapshot(path: impl AsRef<Path>) -> Result<(u64, Vec<u8>)> {
    let path = path.as_ref();
    let named_zxid = path
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_prefix(SNAPSHOT_PREFIX))
        .and_then(|hex| u64::from_str_radix(hex, 16).ok());
    read_checked(path, named_zxid)
}

fn read_checked(path: &Path, expected_zxid: Option<u64>) -> Result<(u64, Vec<u8>)> {
    let corrupt = |reason: String| StorageError::CorruptSnapshot {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = File::open(path).map_err(|e| StorageError::io("open snapshot", path, e))?;
    let file_len = file
        .metadata()
        .map_err(|e| StorageError::io("stat snapshot", path, e))?
        .len();
    if file_len < HEADER_LEN + TRAILER_LEN {
        return Err(corrupt(format!(
            "file is {file_len} bytes, shorter than a header and trailer"
        )));
    }
    let mut header = [0u8; HEADER_LEN as usize];
    file.read_exact(&mut header)
        .map_err(|e| StorageError::io("read snapshot", path, e))?;
    if header[0..8] != SNAPSHOT_MAGIC {
        return Err(corrupt("not a paddock snapshot (bad magic)".to_string()));
    }
    let field = |range: std::ops::Range<usize>| {
        let mut bytes = [0u8; 8];
        bytes[..range.len()].copy_from_slice(&header[range]);
        u64::from_le_bytes(bytes)
    };
    let version = field(8..12);
    if version != u64::from(SNAPSHOT_VERSION) {
        return Err(corrupt(format!(
            "format version {version} is not supported (this build reads {SNAPSHOT_VERSION})"
        )));
    }
    let flags = field(12..16);
    if flags & !KNOWN_FLAGS != 0 {
        return Err(corrupt(format!(
            "unknown flags {flags:#x} (a newer build's snapshot?)"
        )));
    }
    let zxid = field(16..24);
    if let Some(expected) = expected_zxid
        && zxid != expected
    {
        return Err(corrupt(format!(
            "header zxid {zxid:#x} does not match the file name's {expected:#x}"
        )));
    }
    let payload_len = field(24..32);
    let expected_len = payload_len
        .checked_add(HEADER_LEN + TRAILER_LEN)
        .filter(|&len| len == file_len);
    if expected_len.is_none() {
        return Err(corrupt(format!(
            "header promises {payload_len} payload bytes but the file is {file_len} bytes \
             (truncated or corrupt)"
        )));
    }
    let payload_len = usize::try_from(payload_len).map_err(|_| {
        corrupt(format!(
            "payload of {payload_len} bytes does not fit in memory"
        ))
    })?;
    let mut payload = vec![0u8; payload_len];
    file.read_exact(&mut payload)
        .map_err(|e| StorageError::io("read snapshot", path, e))?;
    let mut trailer = [0u8; TRAILER_LEN as usize];
    file.read_exact(&mut trailer)
        .map_err(|e| StorageError::io("read snapshot", path, e))?;
    let stored_crc = u32::from_le_bytes(trailer);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header);
    crc.update(&payload);
    let computed_crc = crc.finalize();
    if stored_crc != computed_crc {
        return Err(corrupt(format!(
            "checksum mismatch (stored {stored_crc:#010x}, computed {computed_crc:#010x})"
        )));
    }
    if flags & FLAG_LZ4 == 0 {
        // Written uncompressed, by a build before snapshots were compressed.
        return Ok((zxid, payload));
    }
    let raw = decompress(&payload).map_err(corrupt)?;
    Ok((zxid, raw))
}

/// The payload a compressed one stands for: an LZ4 frame, then its length (the module
/// docs in lib.rs). The checksum has passed, so a failure here means a bug or a file
/// written by something else, and says which.
fn decompress(stored: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let Some(frame_len) = stored.len().checked_sub(RAW_LEN_BYTES) else {
        return Err(format!(
            "compressed payload of {} bytes is shorter than its length field",
            stored.len()
        ));
    };
    let (frame, len_field) = stored.split_at(frame_len);
    let mut len_bytes = [0u8; RAW_LEN_BYTES];
    len_bytes.copy_from_slice(len_field);
    let raw_len = u64::from_le_bytes(len_bytes);
    let bound = (frame.len() as u64)
        .saturating_mul(LZ4_MAX_RATIO)
        .saturating_add(u64::from(u16::MAX));
    if raw_len > bound {
        return Err(format!(
            "compressed payload of {frame_len} bytes claims to expand to {raw_len}, \
             more than LZ4 can"
        ));
    }
    let raw_len = usize::try_from(raw_len)
        .map_err(|_| format!("payload of {raw_len} bytes does not fit in memory"))?;
    let mut raw = Vec::with_capacity(raw_len);
    FrameDecoder::new(frame)
        .take(raw_len as u64 + 1)
        .read_to_end(&mut raw)
        .map_err(|e| format!("LZ4 payload does not decompress: {e}"))?;
    if raw.len() != raw_len {
        return Err(format!(
            "LZ4 payload decompresses to {} bytes, its length field says {raw_len}",
            raw.len()
        ));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(seed: u8, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let data = payload(1, 100_000);
        let path = write_snapshot(dir.path(), 0x2_0000_0010, &data).unwrap();
        assert_eq!(path, dir.path().join("snapshot.200000010"));
        // The test payload repeats every 256 bytes: compressed, it is a small fraction.
        let stored = fs::metadata(&path).unwrap().len();
        assert!(stored < data.len() as u64 / 10, "{stored} bytes stored");
        let loaded = load_newest_valid(dir.path()).unwrap();
        assert_eq!(loaded, Some((0x2_0000_0010, data.clone())));
        assert_eq!(read_snapshot(&path).unwrap(), (0x2_0000_0010, data));
        // Nothing but the final file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn remove_all_snapshots_leaves_the_other_files() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(remove_all_snapshots(dir.path().join("absent")).unwrap(), 0);
        write_snapshot(dir.path(), 5, b"a").unwrap();
        write_snapshot(dir.path(), 9, b"b").unwrap();
        fs::write(dir.path().join("acceptedEpoch"), "1\n").unwrap();
        assert_eq!(remove_all_snapshots(dir.path()).unwrap(), 2);
        assert_eq!(load_newest_valid(dir.path()).unwrap(), None);
        assert!(dir.path().join("acceptedEpoch").exists());
    }

    #[test]
    fn empty_payload_round_trips_and_missing_dir_loads_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_newest_valid(dir.path().join("absent")).unwrap(), None);
        assert_eq!(load_newest_valid(dir.path()).unwrap(), None);
        write_snapshot(dir.path(), 5, b"").unwrap();
        assert_eq!(
            load_newest_valid(dir.path()).unwrap(),
            Some((5, Vec::new()))
        );
    }

    #[test]
    fn streamed_snapshot_equals_one_shot() {
        let dir = tempfile::tempdir().unwrap();
        let data = payload(7, 3 * WRITE_BUFFER_BYTES + 17);
        let mut writer = SnapshotWriter::create(dir.path(), 9).unwrap();
        for piece in data.chunks(4096 + 3) {
            writer.write_all(piece).unwrap();
        }
        let written = writer.finish().unwrap();
        let streamed = fs::read(&written.path).unwrap();
        assert_eq!(written.file_len, streamed.len() as u64);
        let other = tempfile::tempdir().unwrap();
        let one_shot = fs::read(write_snapshot(other.path(), 9, &data).unwrap()).unwrap();
        assert_eq!(streamed, one_shot);
    }

    #[test]
    fn unfinished_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = SnapshotWriter::create(dir.path(), 3).unwrap();
        writer.write_all(b"half a tree").unwrap();
        drop(writer);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn corrupt_newest_falls_back_to_older() {
        let dir = tempfile::tempdir().unwrap();
        write_snapshot(dir.path(), 10, &payload(1, 1000)).unwrap();
        write_snapshot(dir.path(), 20, &payload(2, 1000)).unwrap();
        let newest = write_snapshot(dir.path(), 30, &payload(3, 1000)).unwrap();

        // A flipped bit in the payload is caught by the checksum.
        let mut bytes = fs::read(&newest).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x10;
        fs::write(&newest, &bytes).unwrap();
        assert!(matches!(
            read_snapshot(&newest),
            Err(StorageError::CorruptSnapshot { reason, .. }) if reason.contains("checksum")
        ));
        assert_eq!(
            load_newest_valid(dir.path()).unwrap(),
            Some((20, payload(2, 1000)))
        );

        // A truncated file is caught by the length check.
        let second = dir.path().join(files::snapshot_file_name(20));
        let bytes = fs::read(&second).unwrap();
        fs::write(&second, &bytes[..bytes.len() - 1]).unwrap();
        assert!(matches!(
            read_snapshot(&second),
            Err(StorageError::CorruptSnapshot { reason, .. }) if reason.contains("truncated")
        ));
        assert_eq!(
            load_newest_valid(dir.path()).unwrap(),
            Some((10, payload(1, 1000)))
        );

        // A snapshot renamed to another zxid is refused.
        fs::copy(
            dir.path().join("snapshot.a"),
            dir.path().join("snapshot.28"),
        )
        .unwrap();
        assert_eq!(
            load_newest_valid(dir.path()).unwrap(),
            Some((10, payload(1, 1000)))
        );

        fs::write(dir.path().join("snapshot.a"), b"short").unwrap();
        assert_eq!(load_newest_valid(dir.path()).unwrap(), None);
    }

    #[test]
    fn leftover_temp_files_are_ignored_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        write_snapshot(dir.path(), 10, b"good").unwrap();
        let temp = dir.path().join("snapshot.20.tmp");
        fs::write(&temp, b"interrupted").unwrap();
        assert_eq!(
            load_newest_valid(dir.path()).unwrap(),
            Some((10, b"good".to_vec()))
        );
        assert!(!temp.exists());
    }

    /// A whole snapshot file as `write_snapshot` lays it out, with any flags and payload.
    fn file_with(flags: u64, zxid: u64, stored: &[u8]) -> Vec<u8> {
        let header = encode_header(flags, zxid, stored.len() as u64);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&header);
        crc.update(stored);
        let mut file = header.to_vec();
        file.extend_from_slice(stored);
        file.extend_from_slice(&crc.finalize().to_le_bytes());
        file
    }

    /// The LZ4 frame and length field of the snapshot written for `data`.
    fn compressed(data: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let file = fs::read(write_snapshot(dir.path(), 1, data).unwrap()).unwrap();
        file[HEADER_LEN as usize..file.len() - TRAILER_LEN as usize].to_vec()
    }

    #[test]
    fn uncompressed_snapshots_of_older_builds_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let data = payload(4, 10_000);
        fs::write(dir.path().join("snapshot.7"), file_with(0, 7, &data)).unwrap();
        assert_eq!(load_newest_valid(dir.path()).unwrap(), Some((7, data)));
    }

    #[test]
    fn incompressible_payloads_round_trip_at_about_their_size() {
        let dir = tempfile::tempdir().unwrap();
        // A xorshift sequence: nothing for LZ4 to find.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let data: Vec<u8> = (0..5 * 1024 * 1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let path = write_snapshot(dir.path(), 3, &data).unwrap();
        let stored = fs::metadata(&path).unwrap().len();
        assert!(stored < data.len() as u64 + 1024, "{stored} bytes stored");
        assert_eq!(read_snapshot(&path).unwrap(), (3, data));
    }

    #[test]
    fn a_bad_compressed_payload_is_named_not_loaded() {
        let data = payload(5, 50_000);
        let good = compressed(&data);
        let refused = |stored: &[u8]| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("snapshot.9");
            fs::write(&path, file_with(FLAG_LZ4, 9, stored)).unwrap();
            match read_snapshot(&path) {
                Err(StorageError::CorruptSnapshot { reason, .. }) => reason,
                other => panic!("loaded: {other:?}"),
            }
        };
        // The checksum matches each of these: the payload itself is wrong.
        let mut longer = good.clone();
        let at = longer.len() - RAW_LEN_BYTES;
        longer[at..].copy_from_slice(&(data.len() as u64 + 1).to_le_bytes());
        assert!(refused(&longer).contains("its length field says"));
        let mut huge = good.clone();
        huge[at..].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(refused(&huge).contains("more than LZ4 can"));
        assert!(refused(&good[..4]).contains("shorter than its length field"));
        let mut garbled = good.clone();
        garbled[0] ^= 0xff; // the LZ4 frame's magic number
        assert!(refused(&garbled).contains("does not decompress"));
        // The good one loads.
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("snapshot.9"), file_with(FLAG_LZ4, 9, &good)).unwrap();
        assert_eq!(load_newest_valid(dir.path()).unwrap(), Some((9, data)));
    }

    #[test]
    fn unknown_flags_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapshot.4");
        fs::write(&path, file_with(2, 4, b"tree")).unwrap();
        assert!(matches!(
            read_snapshot(&path),
            Err(StorageError::CorruptSnapshot { reason, .. }) if reason.contains("unknown flags 0x2")
        ));
    }
}
