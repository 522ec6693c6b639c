//! Tests of the txn log: segments, torn tails, truncation, rolling and reading back.

use super::*;
use std::fs;

const DB: u64 = 0x5eed;

fn zxid(epoch: u64, counter: u64) -> u64 {
    epoch << 32 | counter
}

/// Deterministic payload whose bytes are never zero, so a torn tail always differs.
fn payload(zxid: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((zxid as usize * 7 + i) % 251 + 1) as u8)
        .collect()
}

/// Small chunks and segments so tests cross every boundary.
fn small_options() -> TxnLogOptions {
    TxnLogOptions {
        db_id: DB,
        preallocate_bytes: 4096,
        segment_size_limit: 16 * 1024,
        write_buffer_bytes: 1024,
        needed_after: 0,
        direct_io: true,
    }
}

fn read_all(log: &mut TxnLog, from: u64) -> Vec<(u64, Vec<u8>)> {
    log.read_from(from)
        .unwrap()
        .collect::<Result<Vec<_>>>()
        .unwrap()
}

fn segment_names(dir: &Path) -> Vec<String> {
    files::list_zxid_files(dir, LOG_PREFIX)
        .unwrap()
        .iter()
        .map(|f| f.path.file_name().unwrap().to_str().unwrap().to_string())
        .collect()
}

/// (offset, zxid, length) of each record in a segment, read independently of the
/// code under test.
fn record_layout(path: &Path) -> Vec<(usize, u64, usize)> {
    let bytes = fs::read(path).unwrap();
    let mut layout = Vec::new();
    let mut offset = SEGMENT_HEADER_LEN as usize;
    while offset + 4 <= bytes.len() {
        let body = u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
        if body == 0 {
            break;
        }
        let zxid = u64::from_le_bytes(bytes[offset + 8..offset + 16].try_into().unwrap());
        layout.push((offset, zxid, 8 + body));
        offset += 8 + body;
    }
    layout
}

/// Records as written: (zxid, payload).
type Records = Vec<(u64, Vec<u8>)>;

/// A log of records 1..=`last` over several segments, closed: its directory, what was
/// written and the segments.
fn closed_log(last: u64) -> (tempfile::TempDir, Records, Vec<files::ZxidFile>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TxnLog::open(dir.path(), small_options()).unwrap();
    let written = fill(&mut log, 1..=last);
    drop(log);
    let segments = files::list_zxid_files(dir.path(), LOG_PREFIX).unwrap();
    (dir, written, segments)
}

/// Zeroes the length field of the middle record of segment `path` (a lost sector) and
/// returns that record's zxid.
fn lose_a_middle_length_field(path: &Path) -> u64 {
    let layout = record_layout(path);
    let (offset, zxid, _) = layout[layout.len() / 2];
    let mut bytes = fs::read(path).unwrap();
    bytes[offset..offset + 4].fill(0);
    fs::write(path, &bytes).unwrap();
    zxid
}

/// Appends `zxids` with payloads of varying length (0..300 bytes) and syncs.
fn fill(log: &mut TxnLog, zxids: impl IntoIterator<Item = u64>) -> Vec<(u64, Vec<u8>)> {
    let mut written = Vec::new();
    for z in zxids {
        let data = payload(z, (z as usize * 37) % 300);
        log.append(z, &data).unwrap();
        written.push((z, data));
    }
    log.sync().unwrap();
    written
}

#[test]
fn round_trip_across_segments_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TxnLog::open(dir.path(), small_options()).unwrap();
    assert_eq!(log.last_zxid(), None);
    assert!(read_all(&mut log, 0).is_empty());

    let mut written = fill(&mut log, (1..=1500).map(|c| zxid(1, c)));
    // A new epoch continues the same log.
    written.extend(fill(&mut log, (1..=500).map(|c| zxid(2, c))));
    assert_eq!(log.last_zxid(), Some(zxid(2, 500)));

    let segments = files::list_zxid_files(dir.path(), LOG_PREFIX).unwrap();
    assert!(segments.len() >= 10, "only {} segments", segments.len());
    assert_eq!(segment_names(dir.path())[0], "log.100000001");
    for (i, segment) in segments.iter().enumerate() {
        // Named after its first record; closed segments trimmed to their records,
        // the active one preallocated in whole chunks.
        let layout = record_layout(&segment.path);
        assert_eq!(layout[0].1, segment.zxid);
        let len = fs::metadata(&segment.path).unwrap().len();
        if i + 1 < segments.len() {
            let &(offset, _, record_len) = layout.last().unwrap();
            assert_eq!(len, (offset + record_len) as u64);
        } else {
            assert_eq!(len % 4096, 0);
        }
    }

    assert_eq!(read_all(&mut log, 0), written);
    // From the middle of a segment, and from a zxid in the gap between epochs.
    let middle = written
        .iter()
        .position(|(z, _)| *z == zxid(1, 777))
        .unwrap();
    assert_eq!(read_all(&mut log, zxid(1, 777)), written[middle..]);
    assert_eq!(read_all(&mut log, zxid(1, 9999)), written[1500..]);
    assert!(read_all(&mut log, zxid(2, 501)).is_empty());
    assert_eq!(log.first_zxid().unwrap(), Some(zxid(1, 1)));

    log.close().unwrap();
    let mut log = TxnLog::open(dir.path(), small_options()).unwrap();
    assert_eq!(log.last_zxid(), Some(zxid(2, 500)));
    assert_eq!(read_all(&mut log, 0), written);

    // Appending after reopen continues the last segment, then rolls as usual.
    let count_before = segment_names(dir.path()).len();
    written.extend(fill(&mut log, [zxid(2, 501)]));
    assert_eq!(segment_names(dir.path()).len(), count_before);
    written.extend(fill(&mut log, (502..=700).map(|c| zxid(2, c))));
    drop(log);
    let mut log = TxnLog::open(dir.path(), small_options()).unwrap();
    assert_eq!(read_all(&mut log, 0), written);
}

#[test]
fn preallocation_keeps_file_size_steady_and_grows_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let options = TxnLogOptions {
        segment_size_limit: 1 << 30,
        ..small_options()
    };
    let mut log = TxnLog::open(dir.path(), options).unwrap();
    log.append(1, &[1; 100]).unwrap();
    log.sync().unwrap();
    let path = dir.path().join("log.1");
    assert_eq!(fs::metadata(&path).unwrap().len(), 4096);
    for z in 2..=20 {
        log.append(z, &[1; 100]).unwrap();
        log.sync().unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 4096);
    }
    // 24 + 20 * 116 = 2344 bytes so far; 30 more records need a second chunk.
    fill(&mut log, 21..=50);
    assert_eq!(fs::metadata(&path).unwrap().len(), 8192);
    // A record bigger than a chunk is fine too.
    log.append(51, &payload(51, 10_000)).unwrap();
    log.sync().unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len() % 4096, 0);
    drop(log);
    let mut log = TxnLog::open(dir.path(), small_options()).unwrap();
    assert_eq!(read_all(&mut log, 51), vec![(51, payload(51, 10_000))]);
}

#[test]
fn the_active_segment_is_written_with_zeros_ahead_of_its_records() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let mut log = TxnLog::open(dir.path(), TxnLogOptions::new(DB)).unwrap();
    let path = dir.path().join("log.1");
    let allocated = |path: &Path| fs::metadata(path).unwrap().blocks() * 512;
    log.append(1, &[1; 100]).unwrap();
    log.sync().unwrap();
    // The chunk is 64 MiB of file, but only the records and the zeros ahead of them
    // are blocks on disk.
    assert_eq!(fs::metadata(&path).unwrap().len(), 64 * 1024 * 1024);
    let after_one = allocated(&path);
    assert!(
        (ZERO_AHEAD_BYTES..=2 * ZERO_AHEAD_BYTES).contains(&after_one),
        "{after_one} bytes allocated after one record"
    );
    // Records up to the zeroed end allocate nothing more.
    let written = fill(&mut log, 2..=5000);
    let bytes_of_records: usize = written.iter().map(|(_, p)| 16 + p.len()).sum();
    assert!((bytes_of_records as u64) < ZERO_AHEAD_BYTES);
    assert_eq!(allocated(&path), after_one);
    // Past it, the next step is written.
    fill(&mut log, 5001..=10_000);
    assert!(allocated(&path) > after_one);
    // Readers see the same log: the zeros read as its end.
    drop(log);
    let mut log = TxnLog::open(dir.path(), TxnLogOptions::new(DB)).unwrap();
    assert_eq!(read_all(&mut log, 1).len(), 10_000);
    assert_eq!(record_layout(&path).len(), 10_000);
}

#[test]
fn torn_tail_at_every_byte_offset_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let options = TxnLogOptions {
        preallocate_bytes: 8192,
        ..small_options()
    };
    let mut log = TxnLog::open(dir.path(), options.clone()).unwrap();
    let written: Vec<(u64, Vec<u8>)> = (1..=20).map(|z| (z, payload(z, 100))).collect();
    for (z, data) in &written {
        log.append(*z, data).unwrap();
    }
    log.close().unwrap();
    let path = dir.path().join("log.1");
    let pristine = fs::read(&path).unwrap();
    let &(start, last_zxid, len) = record_layout(&path).last().unwrap();
    assert_eq!(last_zxid, 20);

    for torn_at in 0..len {
        for physically_short in [false, true] {
            // The last record reached the disk only up to `torn_at` bytes: the rest
            // is preallocated zeros, or the file itself ends there.
            let mut bytes = pristine.clone();
            if physically_short {
                bytes.truncate(start + torn_at);
            } else {
                bytes[start + torn_at..start + len].fill(0);
            }
            fs::write(&path, &bytes).unwrap();

            let mut log = TxnLog::open(dir.path(), options.clone()).unwrap();
            let case = format!("torn at {torn_at}, short file {physically_short}");
            assert_eq!(log.last_zxid(), Some(19), "{case}");
            assert_eq!(read_all(&mut log, 0), written[..19], "{case}");
            // Nothing of the torn record is left behind the end of the log.
            let after = fs::read(&path).unwrap();
            assert!(after[start..].iter().all(|&b| b == 0), "{case}");

            // The log continues where it was cut.
            log.append(20, b"again").unwrap();
            log.close().unwrap();
            let mut log = TxnLog::open(dir.path(), options.clone()).unwrap();
            let mut expected = written[..19].to_vec();
            expected.push((20, b"again".to_vec()));
            assert_eq!(read_all(&mut log, 0), expected, "{case}");
        }
    }
}

#[test]
fn flipped_bit_in_a_middle_record_cuts_from_there() {
    let (dir, written, segments) = closed_log(600);
    assert!(segments.len() >= 6);
    // Damage the middle record of the second segment; later segments must go too.
    let victim = &segments[1];
    let layout = record_layout(&victim.path);
    let (offset, bad_zxid, len) = layout[layout.len() / 2];
    let mut bytes = fs::read(&victim.path).unwrap();
    bytes[offset + len - 1] ^= 0x04;
    fs::write(&victim.path, &bytes).unwrap();

    let mut log = TxnLog::open(dir.path(), small_options()).unwrap();
    assert_eq!(log.last_zxid(), Some(bad_zxid - 1));
    let kept = written.iter().position(|(z, _)| *z == bad_zxid).unwrap();
    assert_eq!(read_all(&mut log, 0), written[..kept]);
    assert_eq!(
        segment_names(dir.path()),
        [segments[0].clone(), victim.clone()]
            .iter()
            .map(|s| s.path.file_name().unwrap().to_str().unwrap().to_string())
            .collect::<Vec<_>>()
    );
    // The records after the cut are zeros, and appends continue from the cut.
    let bytes = fs::read(&victim.path).unwrap();
    assert!(bytes[offset..].iter().all(|&b| b == 0));
    fill(&mut log, bad_zxid..bad_zxid + 3);
    drop(log);
    let log = TxnLog::open(dir.path(), small_options()).unwrap();
    assert_eq!(log.last_zxid(), Some(bad_zxid + 2));
}

#[test]
fn records_lost_inside_a_closed_segment_cut_instead_of_leaving_a_hole() {
    let (dir, written, segments) = closed_log(400);
    assert!(segments.len() >= 3);
    // A lost sector zeroes a length field in the first segment: its records seem to
    // end early, yet later records and segments are intact.
    let lost_zxid = lose_a_middle_length_field(&segments[0].path);

    let mut log = TxnLog::open(dir.path(), small_options()).unwrap();
    assert_eq!(log.last_zxid(), Some(lost_zxid - 1));
    assert_eq!(read_all(&mut log, 0), written[..(lost_zxid - 1) as usize]);
    assert_eq!(segment_names(dir.path()), ["log.1"]);
}

#[test]
fn segments_a_snapshot_covers_are_not_read_on_open() {
    let (dir, written, segments) = closed_log(400);
    assert!(segments.len() >= 3);
    // The same lost sector in the first segment, but a snapshot holds everything up to
    // the second segment's start: the first is not read, nothing is cut.
    lose_a_middle_length_field(&segments[0].path);
    let snapshot = segments[1].zxid - 1;
    let options = small_options().needed_after(snapshot);
    let mut log = TxnLog::open(dir.path(), options).unwrap();
    assert_eq!(log.last_zxid(), Some(400));
    assert_eq!(
        read_all(&mut log, snapshot + 1),
        written[snapshot as usize..]
    );
    assert_eq!(segment_names(dir.path()).len(), segments.len());
    // Damage in a segment that holds needed records is still found and cut.
    drop(log);
    let lost_zxid = lose_a_middle_length_field(&segments[1].path);
    let mut log = TxnLog::open(dir.path(), small_options().needed_after(snapshot)).unwrap();
    assert_eq!(log.last_zxid(), Some(lost_zxid - 1));
    assert_eq!(
        read_all(&mut log, snapshot + 1),
        written[snapshot as usize..(lost_zxid - 1) as usize]
    );
}

#[test]
fn damaged_length_field_and_out_of_order_zxid_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TxnLog::open(dir.path(), small_options()).unwrap();
    fill(&mut log, 1..=10);
    drop(log);
    let path = dir.path().join("log.1");
    let layout = record_layout(&path);

    // A length that runs far past the end of the file.
    let mut bytes = fs::read(&path).unwrap();
    let (offset, _, _) = layout[7];
    bytes[offset + 3] = 0x40;
    fs::write(&path, &bytes).unwrap();
    let log = TxnLog::open(dir.path(), small_options()).unwrap();
    assert_eq!(log.last_zxid(), Some(7));
    drop(log);

    // A checksum-valid record whose zxid goes backwards (stale data) is cut too.
    let mut bytes = fs::read(&path).unwrap();
    let (offset, _, _) = layout[7];
    let mut stale = Vec::new();
    record::encode_record(&mut stale, 3, b"stale");
    bytes[offset..offset + stale.len()].copy_from_slice(&stale);
    fs::write(&path, &bytes).unwrap();
    let log = TxnLog::open(dir.path(), small_options()).unwrap();
    assert_eq!(log.last_zxid(), Some(7));
}

#[test]
fn unsynced_data_after_the_end_never_resurrects() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TxnLog::open(dir.path(), small_options()).unwrap();
    for z in 1..=10 {
        log.append(z, &payload(z, 50)).unwrap();
    }
    log.close().unwrap();
    // A crash lost the sector holding record 5's start, but records 6..10 (never
    // acknowledged) reached the disk behind it.
    let path = dir.path().join("log.1");
    let (offset, _, len) = record_layout(&path)[4];
    let mut bytes = fs::read(&path).unwrap();
    bytes[offset..offset + 4].fill(0);
    fs::write(&path, &bytes).unwrap();

    let mut log = TxnLog::open(dir.path(), small_options()).unwrap();
    assert_eq!(log.last_zxid(), Some(4));
    // A new record 5 of exactly the old size: if the old 6..10 were still there
    // they would follow it with valid checksums and increasing zxids.
    log.append(5, &payload(500, len - 16)).unwrap();
    log.close().unwrap();
    let mut log = TxnLog::open(dir.path(), small_options()).unwrap();
    assert_eq!(log.last_zxid(), Some(5));
    assert_eq!(read_all(&mut log, 5), vec![(5, payload(500, len - 16))]);
}

#[test]
fn zxid_ordering_violation_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TxnLog::open(dir.path(), small_options()).unwrap();
    log.append(10, b"a").unwrap();
    log.append(11, b"b").unwrap();
    assert!(matches!(
        log.append(11, b"dup"),
        Err(StorageError::ZxidNotIncreasing { zxid: 11, last: 11 })
    ));
    assert!(matches!(
        log.append(5, b"old"),
        Err(StorageError::ZxidNotIncreasing { zxid: 5, last: 11 })
    ));
    // A refusal is the caller's mistake, not a disk failure: the log carries on.
    assert!(!log.is_failed());
    log.append(12, b"c").unwrap();
    log.close().unwrap();
    let mut log = TxnLog::open(dir.path(), small_options()).unwrap();
    let zxids: Vec<u64> = read_all(&mut log, 0).iter().map(|r| r.0).collect();
    assert_eq!(zxids, [10, 11, 12]);
    // After reopen the order is still enforced.
    assert!(log.append(12, b"again").is_err());
}

#[test]
fn truncate_after_then_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TxnLog::open(dir.path(), small_options()).unwrap();
    let written = fill(&mut log, 1..=500);
    // Some unsynced appends are part of what gets cut.
    log.append(501, b"unsynced").unwrap();
    let before = files::list_zxid_files(dir.path(), LOG_PREFIX).unwrap();

    log.truncate_after(237).unwrap();
    assert_eq!(log.last_zxid(), Some(237));
    assert_eq!(read_all(&mut log, 0), written[..237]);
    let after = files::list_zxid_files(dir.path(), LOG_PREFIX).unwrap();
    let expected: Vec<_> = before.iter().filter(|s| s.zxid <= 237).cloned().collect();
    assert_eq!(after, expected);

    // New history replaces the old from 238 on. A new 238 exactly as long as the
    // old one lands where the old 239.. would follow it if the cut had not zeroed
    // them; they would come back on reopen with valid checksums.
    let new_238 = vec![0xee; written[237].1.len()];
    log.append(238, &new_238).unwrap();
    log.sync().unwrap();
    // Leak the handle instead of closing: the content must not depend on Drop.
    std::mem::forget(log);
    let mut log = TxnLog::open(dir.path(), small_options()).unwrap();
    assert_eq!(log.last_zxid(), Some(238));
    log.append(239, b"new 239").unwrap();
    log.sync().unwrap();
    let mut expected = written[..237].to_vec();
    expected.push((238, new_238));
    expected.push((239, b"new 239".to_vec()));
    assert_eq!(read_all(&mut log, 0), expected);

    // Truncating at or past the end changes nothing.
    log.truncate_after(239).unwrap();
    log.truncate_after(10_000).unwrap();
    assert_eq!(read_all(&mut log, 0), expected);

    // Truncating exactly at a segment boundary keeps the earlier segment whole.
    let second = after[1].zxid;
    log.truncate_after(second - 1).unwrap();
    assert_eq!(segment_names(dir.path()), ["log.1"]);
    assert_eq!(log.last_zxid(), Some(second - 1));
    drop(log);
    let mut log = TxnLog::open(dir.path(), small_options()).unwrap();
    assert_eq!(read_all(&mut log, 0), written[..(second - 1) as usize]);

    // Truncating before everything empties the log; it starts over cleanly.
    log.truncate_after(0).unwrap();
    assert_eq!(log.last_zxid(), None);
    assert!(segment_names(dir.path()).is_empty());
    log.append(1, b"fresh").unwrap();
    log.close().unwrap();
    let mut log = TxnLog::open(dir.path(), small_options()).unwrap();
    assert_eq!(read_all(&mut log, 0), vec![(1, b"fresh".to_vec())]);
}

#[test]
fn truncate_after_a_roll_reopens_the_older_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TxnLog::open(dir.path(), small_options()).unwrap();
    fill(&mut log, 1..=5);
    log.roll().unwrap();
    log.roll().unwrap(); // a second roll with nothing appended is a no-op
    assert_eq!(segment_names(dir.path()), ["log.1"]);
    fill(&mut log, 6..=9);
    log.roll().unwrap();
    assert_eq!(segment_names(dir.path()), ["log.1", "log.6"]);
    log.truncate_after(3).unwrap();
    log.append(4, b"x").unwrap();
    log.close().unwrap();
    assert_eq!(segment_names(dir.path()), ["log.1"]);
    let mut log = TxnLog::open(dir.path(), small_options()).unwrap();
    let zxids: Vec<u64> = read_all(&mut log, 0).iter().map(|r| r.0).collect();
    assert_eq!(zxids, [1, 2, 3, 4]);
}

#[test]
fn reader_includes_unsynced_appends_and_ignores_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TxnLog::open(dir.path(), small_options()).unwrap();
    fill(&mut log, 1..=3);
    log.append(4, b"pending").unwrap();
    let reader = log.read_from(2).unwrap();
    log.append(5, b"after the reader").unwrap();
    let zxids: Vec<u64> = reader.map(|r| r.unwrap().0).collect();
    assert_eq!(zxids, [2, 3, 4]);
}

#[test]
fn foreign_segments_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TxnLog::open(dir.path(), small_options()).unwrap();
    fill(&mut log, 1..=3);
    drop(log);
    let other_db = TxnLogOptions {
        db_id: 7,
        ..small_options()
    };
    let err = TxnLog::open(dir.path(), other_db).unwrap_err();
    assert!(matches!(
        err,
        StorageError::DbIdMismatch {
            found: DB,
            expected: 7,
            ..
        }
    ));
    assert!(err.to_string().contains("log.1"), "{err}");

    let path = dir.path().join("log.1");
    let mut bytes = fs::read(&path).unwrap();
    bytes[0] = b'Z';
    fs::write(&path, &bytes).unwrap();
    let err = TxnLog::open(dir.path(), small_options()).unwrap_err();
    assert!(matches!(err, StorageError::BadHeader { .. }), "{err}");
}

#[test]
fn segment_with_incomplete_header_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TxnLog::open(dir.path(), small_options()).unwrap();
    fill(&mut log, 1..=3);
    drop(log);
    // A crash right after creating the next segment.
    fs::write(dir.path().join("log.4"), [0u8; 10]).unwrap();
    fs::write(dir.path().join("log.5"), b"").unwrap();
    let mut log = TxnLog::open(dir.path(), small_options()).unwrap();
    assert_eq!(segment_names(dir.path()), ["log.1"]);
    assert_eq!(log.last_zxid(), Some(3));
    fill(&mut log, 4..=4);
    assert_eq!(read_all(&mut log, 0).len(), 4);
}

/// Direct writes (`O_DIRECT | O_DSYNC`) and writes through the page cache leave the same
/// files: the same records, the same zeros after them, the same sizes, across syncs of
/// every size, a chunk and a segment boundary, a truncation in the active segment, a
/// roll and a reopen.
#[test]
fn direct_and_buffered_writes_leave_the_same_files() {
    fn run(direct_io: bool) -> (tempfile::TempDir, Vec<(u64, Vec<u8>)>) {
        let dir = tempfile::tempdir().unwrap();
        let options = TxnLogOptions {
            direct_io,
            preallocate_bytes: 8192,
            segment_size_limit: 20_000,
            ..small_options()
        };
        let mut log = TxnLog::open(dir.path(), options.clone()).unwrap();
        for z in 1..=40 {
            log.append(z, &payload(z, 1 + z as usize * 13 % 700))
                .unwrap();
            if z % 3 == 0 {
                log.sync().unwrap();
            }
        }
        log.append(41, &payload(41, 9000)).unwrap();
        log.sync().unwrap();
        assert_eq!(
            log.active.as_ref().map(|a| a.direct.is_some()),
            Some(direct_io),
            "the temporary directory's filesystem must do direct I/O for this test"
        );
        log.truncate_after(37).unwrap();
        fill(&mut log, 38..=120);
        log.roll().unwrap();
        fill(&mut log, 121..=130);
        drop(log);
        let mut log = TxnLog::open(dir.path(), options).unwrap();
        fill(&mut log, 131..=140);
        let records = read_all(&mut log, 0);
        drop(log);
        (dir, records)
    }
    let (buffered, buffered_records) = run(false);
    let (direct, direct_records) = run(true);
    assert_eq!(direct_records, buffered_records);
    assert_eq!(direct_records.len(), 140);
    let names = segment_names(buffered.path());
    assert!(names.len() >= 3, "{names:?}");
    assert_eq!(segment_names(direct.path()), names);
    for name in &names {
        let b = fs::read(buffered.path().join(name)).unwrap();
        let d = fs::read(direct.path().join(name)).unwrap();
        assert_eq!(d.len(), b.len(), "{name}: sizes");
        assert!(d == b, "{name}: contents differ");
    }
}
