//! The on-disk shape of a log segment: its header, record encoding, and a sequential
//! scanner that validates records one by one. See the module docs of `storage` for the
//! layout and the reasons behind it.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{Result, StorageError};

pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"PADDOCKL";
pub(crate) const SEGMENT_VERSION: u32 = 1;
pub(crate) const SEGMENT_HEADER_LEN: u64 = 24;

/// Length field + checksum field + zxid.
pub(crate) const RECORD_OVERHEAD: usize = 16;
/// Bytes covered by the length field besides the payload: the zxid.
const ZXID_LEN: u32 = 8;
/// The length field is a u32 that also counts the zxid.
pub(crate) const MAX_PAYLOAD_LEN: usize = (u32::MAX - ZXID_LEN) as usize;

/// Read-ahead for scanning; records are small and read sequentially.
const SCAN_BUFFER_BYTES: usize = 256 * 1024;

pub(crate) fn encode_segment_header(db_id: u64) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
    header[0..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    // 12..16: flags, zero in version 1.
    header[16..24].copy_from_slice(&db_id.to_le_bytes());
    header
}

/// What the first bytes of a segment say about it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderCheck {
    Valid {
        db_id: u64,
    },
    /// Shorter than a header, or all zero: a crash while the segment was being created.
    /// Nothing in such a segment was ever reported durable.
    Incomplete,
    /// Not a segment this version can read.
    Invalid(String),
}

/// Checks a segment header. `bytes` is what the file holds of the first
/// `SEGMENT_HEADER_LEN` bytes and may be shorter.
pub(crate) fn check_segment_header(bytes: &[u8]) -> HeaderCheck {
    if bytes.len() < SEGMENT_HEADER_LEN as usize || bytes.iter().all(|&b| b == 0) {
        return HeaderCheck::Incomplete;
    }
    if bytes[0..8] != SEGMENT_MAGIC {
        return HeaderCheck::Invalid(format!(
            "magic {:02x?} is not a paddock txn log segment",
            &bytes[0..8]
        ));
    }
    let version = le_u32(&bytes[8..12]);
    if version != SEGMENT_VERSION {
        return HeaderCheck::Invalid(format!(
            "format version {version} is not supported (this build reads {SEGMENT_VERSION})"
        ));
    }
    let flags = le_u32(&bytes[12..16]);
    if flags != 0 {
        return HeaderCheck::Invalid(format!("unknown flags {flags:#x}"));
    }
    HeaderCheck::Valid {
        db_id: le_u64(&bytes[16..24]),
    }
}

fn record_crc(zxid_bytes: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(zxid_bytes);
    hasher.update(payload);
    hasher.finalize()
}

/// Appends one encoded record to `buf`. The caller has checked the payload length.
pub(crate) fn encode_record(buf: &mut Vec<u8>, zxid: u64, payload: &[u8]) {
    debug_assert!(payload.len() <= MAX_PAYLOAD_LEN);
    let body_len = ZXID_LEN + payload.len() as u32;
    let zxid_bytes = zxid.to_le_bytes();
    buf.reserve(RECORD_OVERHEAD + payload.len());
    buf.extend_from_slice(&body_len.to_le_bytes());
    buf.extend_from_slice(&record_crc(&zxid_bytes, payload).to_le_bytes());
    buf.extend_from_slice(&zxid_bytes);
    buf.extend_from_slice(payload);
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut array = [0u8; 4];
    array.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(array)
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut array = [0u8; 8];
    array.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(array)
}

/// One step of a scan.
#[derive(Debug)]
pub(crate) enum Scan<'a> {
    /// A record whose checksum matched. `offset` is where it starts.
    Record {
        offset: u64,
        zxid: u64,
        payload: &'a [u8],
    },
    /// The log in this segment ends at `offset` (a zero length field or the scan limit).
    End { offset: u64 },
    /// The record at `offset` is torn or corrupt; nothing from here on can be trusted.
    Damaged { offset: u64, reason: String },
}

/// Reads and validates the records of one segment, in order, up to a byte limit.
#[derive(Debug)]
pub(crate) struct SegmentScanner {
    reader: BufReader<File>,
    path: PathBuf,
    position: u64,
    limit: u64,
    body: Vec<u8>,
}

impl SegmentScanner {
    /// Starts scanning `file` (whose header the caller has checked) at the first record.
    /// Nothing at or beyond `limit` is read: the file length for a closed segment, the
    /// written end for the one being appended to.
    pub(crate) fn new(file: File, path: &Path, limit: u64) -> Result<SegmentScanner> {
        let mut reader = BufReader::with_capacity(SCAN_BUFFER_BYTES, file);
        reader
            .seek(SeekFrom::Start(SEGMENT_HEADER_LEN))
            .map_err(|e| StorageError::io("seek in txn log segment", path, e))?;
        Ok(SegmentScanner {
            reader,
            path: path.to_path_buf(),
            position: SEGMENT_HEADER_LEN,
            limit,
            body: Vec::new(),
        })
    }

    /// Ends the scan at a damaged record.
    fn damaged(&mut self, offset: u64, reason: String) -> Result<Scan<'static>> {
        self.limit = offset;
        Ok(Scan::Damaged { offset, reason })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn read_exact(&mut self, len: usize) -> Result<&[u8]> {
        self.body.resize(len, 0);
        self.reader
            .read_exact(&mut self.body)
            .map_err(|e| StorageError::io("read txn log segment", &self.path, e))?;
        Ok(&self.body)
    }

    /// Reads the next record. After `End` or `Damaged` the scan is over and later calls
    /// return `End` at the same offset.
    pub(crate) fn next_record(&mut self) -> Result<Scan<'_>> {
        let offset = self.position;
        let remaining = self.limit.saturating_sub(offset);
        if remaining == 0 {
            return Ok(Scan::End { offset });
        }
        if remaining < 4 {
            // Too short for a length field: fine if it is padding, damage otherwise.
            let stray = self.read_exact(remaining as usize)?;
            if stray.iter().all(|&b| b == 0) {
                self.limit = offset;
                return Ok(Scan::End { offset });
            }
            return self.damaged(
                offset,
                format!("{remaining} trailing bytes are too short for a record"),
            );
        }
        let body_len = le_u32(self.read_exact(4)?);
        if body_len == 0 {
            self.limit = offset;
            return Ok(Scan::End { offset });
        }
        if body_len < ZXID_LEN {
            return self.damaged(
                offset,
                format!("length field {body_len} is shorter than the 8-byte zxid"),
            );
        }
        let record_len = 8 + u64::from(body_len);
        if record_len > remaining {
            return self.damaged(
                offset,
                format!(
                    "record of {record_len} bytes runs past the end of the data \
                     ({remaining} bytes left)"
                ),
            );
        }
        let stored_crc = le_u32(self.read_exact(4)?);
        let body = self.read_exact(body_len as usize)?;
        let (zxid_bytes, _) = body.split_at(ZXID_LEN as usize);
        let zxid = le_u64(zxid_bytes);
        let computed_crc = record_crc(zxid_bytes, &body[ZXID_LEN as usize..]);
        if computed_crc != stored_crc {
            return self.damaged(
                offset,
                format!(
                    "checksum mismatch (stored {stored_crc:#010x}, computed {computed_crc:#010x})"
                ),
            );
        }
        self.position = offset + record_len;
        Ok(Scan::Record {
            offset,
            zxid,
            payload: &self.body[ZXID_LEN as usize..],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn header_round_trip_and_rejections() {
        let header = encode_segment_header(0xdead_beef);
        assert_eq!(
            check_segment_header(&header),
            HeaderCheck::Valid { db_id: 0xdead_beef }
        );
        assert_eq!(check_segment_header(&header[..10]), HeaderCheck::Incomplete);
        assert_eq!(check_segment_header(&[0u8; 24]), HeaderCheck::Incomplete);
        let mut bad_magic = header;
        bad_magic[0] = b'X';
        assert!(matches!(
            check_segment_header(&bad_magic),
            HeaderCheck::Invalid(_)
        ));
        let mut bad_version = header;
        bad_version[8] = 2;
        assert!(
            matches!(check_segment_header(&bad_version), HeaderCheck::Invalid(r) if r.contains("version 2"))
        );
    }

    #[test]
    fn empty_payload_encodes_to_a_nonzero_length() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 7, b"");
        assert_eq!(buf.len(), RECORD_OVERHEAD);
        assert_eq!(le_u32(&buf[0..4]), 8);
    }

    #[test]
    fn scanner_reads_records_then_stops_at_zero_fill() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let mut bytes = encode_segment_header(1).to_vec();
        encode_record(&mut bytes, 10, b"ten");
        encode_record(&mut bytes, 11, b"");
        let end = bytes.len() as u64;
        bytes.extend_from_slice(&[0u8; 100]);
        File::create(&path).unwrap().write_all(&bytes).unwrap();

        let file = File::open(&path).unwrap();
        let mut scanner = SegmentScanner::new(file, &path, bytes.len() as u64).unwrap();
        assert!(matches!(
            scanner.next_record().unwrap(),
            Scan::Record {
                offset: 24,
                zxid: 10,
                payload: b"ten"
            }
        ));
        assert!(matches!(
            scanner.next_record().unwrap(),
            Scan::Record {
                zxid: 11,
                payload: b"",
                ..
            }
        ));
        assert!(matches!(scanner.next_record().unwrap(), Scan::End { offset } if offset == end));
    }
}
