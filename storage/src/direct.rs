//! Writes to the active log segment that bypass the page cache: `O_DIRECT | O_DSYNC`.
//!
//! Why: a group commit written through the page cache and made durable with `fdatasync`
//! took 127–195 µs at the median on the bench machine (ext4 on a virtio disk with a
//! volatile write cache), where the same 6 KB appends written with `O_DIRECT | O_DSYNC`
//! took 90–115 µs (alternating runs of 4,000 appends into already-written blocks). Both
//! end in the same device cache flush; the direct write skips the page cache's writeback
//! (dirtying pages, then finding, locking, submitting and waiting on them inside
//! `fdatasync`). On one node a write waits for about three group commits, so the time a
//! sync takes sets the rate (bench/RESULTS.md).
//!
//! `O_DIRECT` needs the buffer address, the file offset and the length aligned to the
//! device's logical block size; [`ALIGN`] (4 KiB) is a multiple of every common one. A
//! write therefore starts at the block that the segment's end falls in: it writes that
//! block's records again (kept here as `tail`), then the new records, then zeros up to
//! the next block boundary, which is what the file held there already (the log writes
//! zeros ahead of its records). Bytes already durable are rewritten with the same
//! values, so a write torn by a power loss cannot damage them.
//!
//! Durability is the same as `write` + `fdatasync`: with `O_DSYNC` the call returns once
//! the data, and any metadata needed to read it back (a size change, newly allocated
//! blocks), are on stable storage; without FUA the kernel issues the write and then the
//! cache flush, as `fdatasync` does.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use tracing::debug;

/// Alignment of a direct write's buffer, offset and length.
pub(crate) const ALIGN: u64 = 4096;

/// Zeros for writing ahead of the records (either path), aligned for `O_DIRECT`. All
/// zero, so the static takes no space in the binary.
#[repr(C, align(4096))]
struct AlignedZeros([u8; ZEROS_LEN]);
const ZEROS_LEN: usize = 1024 * 1024;
static ZEROS: AlignedZeros = AlignedZeros([0; ZEROS_LEN]);

pub(crate) fn align_down(offset: u64) -> u64 {
    offset - offset % ALIGN
}

pub(crate) fn align_up(offset: u64) -> u64 {
    offset.div_ceil(ALIGN) * ALIGN
}

/// The active segment's second handle, opened `O_DIRECT | O_DSYNC`, with what a write
/// needs to start on a block boundary.
pub(crate) struct DirectWrites {
    file: File,
    /// The bytes of the block that the segment's end falls in, from that block's start
    /// up to the end (fewer than [`ALIGN`]).
    tail: Vec<u8>,
    staging: AlignedBuf,
}

impl std::fmt::Debug for DirectWrites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectWrites")
            .field("tail_bytes", &self.tail.len())
            .field("staging", &self.staging)
            .finish()
    }
}

impl DirectWrites {
    /// Opens `path` for direct, synchronous writes, for a segment whose records end at
    /// `end`; `buffered` (the segment's ordinary handle) gives the bytes of the block
    /// `end` falls in. `Ok(None)` when the file cannot be opened so (filesystems without
    /// direct I/O refuse `O_DIRECT`, most with EINVAL, tmpfs before Linux 6.6 among
    /// them): the segment is then written through the page cache, whose own errors are
    /// the ones that count.
    pub(crate) fn open(path: &Path, end: u64, buffered: &File) -> io::Result<Option<DirectWrites>> {
        let file = match open_direct(path) {
            Ok(file) => file,
            Err(e) => {
                debug!(file = %path.display(), error = %e, "no direct writes for this txn log segment");
                return Ok(None);
            }
        };
        let mut direct = DirectWrites {
            file,
            tail: Vec::with_capacity(ALIGN as usize),
            staging: AlignedBuf::default(),
        };
        direct.reload(end, buffered)?;
        Ok(Some(direct))
    }

    /// Reads again the bytes before `end` in its block, after the segment's end moved
    /// other than by [`write`](Self::write) (a truncation).
    pub(crate) fn reload(&mut self, end: u64, buffered: &File) -> io::Result<()> {
        let start = align_down(end);
        self.tail.clear();
        self.tail.resize((end - start) as usize, 0);
        buffered.read_exact_at(&mut self.tail, start)
    }

    /// Writes `records` at `end`, the end of the segment's records, and returns once they
    /// are durable. On an error nothing is known about what reached the disk, except
    /// that `EINVAL` (see [`refuses_direct_io`]) means the write was refused before it
    /// started.
    pub(crate) fn write(&mut self, end: u64, records: &[u8]) -> io::Result<()> {
        let start = align_down(end);
        let head = self.tail.len();
        debug_assert_eq!(start + head as u64, end);
        let len = head + records.len();
        let padded = align_up(len as u64) as usize;
        let buf = self.staging.window(padded);
        buf[..head].copy_from_slice(&self.tail);
        buf[head..len].copy_from_slice(records);
        buf[len..].fill(0);
        self.file.write_all_at(buf, start)?;
        let new_tail = &buf[align_down(len as u64) as usize..len];
        self.tail.clear();
        self.tail.extend_from_slice(new_tail);
        Ok(())
    }

    /// Writes zeros over `from..to`, both multiples of [`ALIGN`], durably.
    pub(crate) fn write_zeros(&self, from: u64, to: u64) -> io::Result<()> {
        debug_assert!(from.is_multiple_of(ALIGN) && to.is_multiple_of(ALIGN));
        write_zeros(&self.file, from, to)
    }

    /// Gives back a staging buffer that one oversized record grew.
    pub(crate) fn shrink_to(&mut self, bytes: usize) {
        self.staging.shrink_to(bytes);
    }
}

/// Writes zeros over `from..to` of `file`, in pieces of at most [`ZEROS_LEN`]; aligned
/// pieces when `from` and `to` are, so a direct handle can take them.
pub(crate) fn write_zeros(file: &File, from: u64, to: u64) -> io::Result<()> {
    let mut at = from;
    while at < to {
        let n = (to - at).min(ZEROS_LEN as u64) as usize;
        file.write_all_at(&ZEROS.0[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// Whether an error from opening or writing with `O_DIRECT` means this filesystem (or
/// this device's block size) does not support it, as opposed to a failing disk.
pub(crate) fn refuses_direct_io(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINVAL)
}

#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
        .open(path)
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &Path) -> io::Result<File> {
    Err(io::Error::from_raw_os_error(libc::EINVAL))
}

/// A byte buffer with a window that starts on an [`ALIGN`] boundary, without unsafe
/// code: the vector is over-allocated by the alignment and the window starts where the
/// first aligned address falls.
#[derive(Default)]
struct AlignedBuf {
    raw: Vec<u8>,
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBuf({} bytes)", self.raw.len())
    }
}

impl AlignedBuf {
    /// `len` bytes starting on an aligned address (contents unspecified). The buffer
    /// grows to powers of two, so batches that grow a little at a time (a load ramping
    /// up) reallocate it a few times rather than at almost every sync.
    fn window(&mut self, len: usize) -> &mut [u8] {
        let align = ALIGN as usize;
        if self.raw.len() < len + align {
            self.raw = vec![0; (len + align).next_power_of_two()];
        }
        let offset = self.raw.as_ptr().align_offset(align);
        // For a byte pointer `align_offset` is always below the alignment.
        let offset = if offset < align { offset } else { 0 };
        &mut self.raw[offset..offset + len]
    }

    /// Frees the buffer if it is more than twice what `bytes` of records need.
    fn shrink_to(&mut self, bytes: usize) {
        if self.raw.len() > 2 * (bytes + ALIGN as usize) {
            self.raw = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_whatever_their_size() {
        let mut buf = AlignedBuf::default();
        for len in [0, 1, 4095, 4096, 4097, 100_000, 5] {
            let window = buf.window(len);
            assert_eq!(window.len(), len);
            assert_eq!(window.as_ptr() as usize % ALIGN as usize, 0);
        }
        assert_eq!(ZEROS.0.as_ptr() as usize % ALIGN as usize, 0);
    }

    #[test]
    fn rounding_to_blocks() {
        assert_eq!((align_down(0), align_up(0)), (0, 0));
        assert_eq!((align_down(1), align_up(1)), (0, 4096));
        assert_eq!((align_down(4096), align_up(4096)), (4096, 4096));
        assert_eq!((align_down(4097), align_up(4097)), (4096, 8192));
    }

    /// Successive writes rewrite the partial block with what it held, and leave zeros
    /// after the records, as the buffered path leaves the file.
    #[test]
    fn appends_land_at_the_end_whatever_the_alignment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let buffered = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        buffered.write_all_at(b"header", 0).unwrap();
        buffered.set_len(64 * 1024).unwrap();
        buffered.sync_all().unwrap();
        let Some(mut direct) = DirectWrites::open(&path, 6, &buffered).unwrap() else {
            panic!("the test's temporary directory does not support O_DIRECT");
        };
        let mut expected = b"header".to_vec();
        let mut end = 6u64;
        for (i, len) in [1usize, 4089, 4096, 5000, 3, 10_000]
            .into_iter()
            .enumerate()
        {
            let records = vec![i as u8 + 1; len];
            direct.write(end, &records).unwrap();
            expected.extend_from_slice(&records);
            end += len as u64;
        }
        direct
            .write_zeros(align_up(end), align_up(end) + 8192)
            .unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(&on_disk[..expected.len()], &expected[..]);
        assert!(on_disk[expected.len()..].iter().all(|&b| b == 0));
        assert_eq!(on_disk.len(), 64 * 1024);
        // A truncation moves the end back; the next write starts there.
        direct.reload(10, &buffered).unwrap();
        direct.write(10, b"XY").unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(&on_disk[..12], &[&expected[..10], b"XY"].concat()[..]);
    }
}
