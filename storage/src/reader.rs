//! Sequential reading of the log from a given zxid, for recovery replay and for sending
//! DIFFs to followers.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use super::record::{self, HeaderCheck, SEGMENT_HEADER_LEN, Scan, SegmentScanner};
use super::{Result, StorageError};

/// A segment opened for reading, and how far into it the reader may go.
#[derive(Debug)]
pub(crate) struct ReadableSegment {
    pub path: PathBuf,
    pub file: File,
    /// The end of the data when the reader was made. Anything written later is not
    /// read, so a reader never races with an append in progress.
    pub limit: u64,
}

/// Iterator over `(zxid, payload)` records with zxid `>=` a start zxid, in log order.
/// Made by [`TxnLog::read_from`](super::TxnLog::read_from).
///
/// All segment files are opened up front, so a purge running meanwhile cannot pull a
/// file out from under the reader. Every record's checksum is verified again: an error
/// item means the data changed on disk after recovery validated it (or the log was
/// truncated meanwhile), and ends the iteration.
#[derive(Debug)]
pub struct LogReader {
    from: u64,
    segments: VecDeque<ReadableSegment>,
    current: Option<SegmentScanner>,
    previous_zxid: Option<u64>,
    finished: bool,
}

/// What to do after one scanner step; owns its data so the scanner is free again.
enum Step {
    Yield(u64, Vec<u8>),
    Skip,
    NextSegment,
    Fail(StorageError),
}

impl LogReader {
    pub(crate) fn new(segments: Vec<ReadableSegment>, from: u64) -> LogReader {
        LogReader {
            from,
            segments: segments.into(),
            current: None,
            previous_zxid: None,
            finished: false,
        }
    }

    /// Starts scanning the next segment, `None` when there is none left.
    fn open_next_segment(&mut self) -> Option<Result<SegmentScanner>> {
        let segment = self.segments.pop_front()?;
        let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
        if let Err(e) = segment.file.read_exact_at(&mut header, 0) {
            return Some(Err(StorageError::io(
                "read txn log segment header",
                &segment.path,
                e,
            )));
        }
        match record::check_segment_header(&header) {
            HeaderCheck::Valid { .. } => {}
            HeaderCheck::Incomplete => {
                return Some(Err(StorageError::BadHeader {
                    path: segment.path,
                    reason: "header is incomplete".to_string(),
                }));
            }
            HeaderCheck::Invalid(reason) => {
                return Some(Err(StorageError::BadHeader {
                    path: segment.path,
                    reason,
                }));
            }
        }
        Some(SegmentScanner::new(
            segment.file,
            &segment.path,
            segment.limit,
        ))
    }

    fn step(&mut self, scanner: &mut SegmentScanner) -> Step {
        let (offset, zxid, payload) = match scanner.next_record() {
            Err(e) => return Step::Fail(e),
            Ok(Scan::End { .. }) => return Step::NextSegment,
            Ok(Scan::Damaged { offset, reason }) => {
                return Step::Fail(StorageError::CorruptRecord {
                    path: scanner.path().to_path_buf(),
                    offset,
                    reason,
                });
            }
            Ok(Scan::Record {
                offset,
                zxid,
                payload,
            }) => (offset, zxid, payload),
        };
        if let Some(previous) = self.previous_zxid
            && zxid <= previous
        {
            return Step::Fail(StorageError::CorruptRecord {
                path: scanner.path().to_path_buf(),
                offset,
                reason: format!("zxid {zxid:#x} does not follow {previous:#x}"),
            });
        }
        self.previous_zxid = Some(zxid);
        if zxid < self.from {
            return Step::Skip;
        }
        Step::Yield(zxid, payload.to_vec())
    }
}

impl Iterator for LogReader {
    type Item = Result<(u64, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.finished {
            let mut scanner = match self.current.take() {
                Some(scanner) => scanner,
                None => match self.open_next_segment() {
                    None => {
                        self.finished = true;
                        return None;
                    }
                    Some(Err(e)) => {
                        self.finished = true;
                        return Some(Err(e));
                    }
                    Some(Ok(scanner)) => scanner,
                },
            };
            match self.step(&mut scanner) {
                Step::Yield(zxid, payload) => {
                    self.current = Some(scanner);
                    return Some(Ok((zxid, payload)));
                }
                Step::Skip => self.current = Some(scanner),
                Step::NextSegment => {}
                Step::Fail(e) => {
                    self.finished = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}
