//! The small state files a data dir keeps beside the log and the snapshots: the database
//! id, the commit index, ZAB's two epochs and the committed dynamic config. Each is read here and written only through
//! [`write_atomically`], so a crash leaves the old or the new contents, never a torn file.

use std::io::ErrorKind;
use std::path::Path;

use tracing::warn;

use super::{Durability, Result, StorageError, write_atomically};

/// In the log dir: the id stamped into every log segment header of this database.
pub const DATABASE_ID: &str = "dbid";
/// In the snapshot dir: how far txns are known committed, in hex.
pub const COMMITTED_ZXID: &str = "committedZxid";
/// In the snapshot dir: ZAB's acceptedEpoch and currentEpoch, in decimal, as ZooKeeper
/// names and writes them.
pub const ACCEPTED_EPOCH: &str = "acceptedEpoch";
pub const CURRENT_EPOCH: &str = "currentEpoch";

/// A small file's text; `None` when it does not exist.
fn read_text(dir: &Path, name: &str) -> Result<Option<String>> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io("read", path, e)),
    }
}

/// The database id in `log_dir`, made and written durably when there is none (or only
/// an unreadable one).
///
/// It must be durable before any segment is stamped with it: a torn or lost id file
/// after a power cut would make a new id and refuse this server's own log.
pub fn database_id(log_dir: &Path) -> Result<u64> {
    if let Some(text) = read_text(log_dir, DATABASE_ID)? {
        if let Ok(id) = u64::from_str_radix(text.trim(), 16) {
            return Ok(id);
        }
        warn!(dir = %log_dir.display(), "unreadable database id; making a new one");
    }
    // It only needs to differ between databases; the hasher's random keys are enough.
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let id = h.finish();
    let text = format!("{id:016x}\n");
    write_atomically(
        log_dir,
        &[(DATABASE_ID, text.as_bytes())],
        Durability::Durable,
    )?;
    Ok(id)
}

/// The last commit index written in `dir`; 0 when there is none. An unreadable one
/// counts as none: lagging is always safe (less is replayed at startup, and the rest
/// waits for the leader's commit).
pub fn load_commit_index(dir: &Path) -> Result<u64> {
    Ok(read_text(dir, COMMITTED_ZXID)?
        .and_then(|text| u64::from_str_radix(text.trim().trim_start_matches("0x"), 16).ok())
        .unwrap_or(0))
}

/// Records how far txns are known committed. Written without fsync (see
/// [`load_commit_index`] for why a stale value is harmless).
pub fn persist_commit_index(dir: &Path, zxid: u64) -> Result<()> {
    let text = format!("{zxid:#x}\n");
    write_atomically(dir, &[(COMMITTED_ZXID, text.as_bytes())], Durability::Lazy)
}

/// In the snapshot dir: the committed dynamic config, one file per version, named as
/// ZooKeeper names them (`zoo.cfg.dynamic.<hex version>`); only the newest is kept.
pub const DYNAMIC_CONFIG_PREFIX: &str = "zoo.cfg.dynamic.";

/// Writes the committed dynamic config `body` of `version` durably, then removes older
/// versions (a stale one left behind is harmless: the newest is read).
pub fn persist_dynamic_config(dir: &Path, version: u64, body: &str) -> Result<()> {
    let name = format!("{DYNAMIC_CONFIG_PREFIX}{version:x}");
    write_atomically(dir, &[(&name, body.as_bytes())], Durability::Durable)?;
    let listing = std::fs::read_dir(dir).map_err(|e| StorageError::io("list", dir, e))?;
    for entry in listing.flatten() {
        let other = entry.file_name().to_string_lossy().into_owned();
        if other.starts_with(DYNAMIC_CONFIG_PREFIX) && other != name && !other.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// The newest committed dynamic config in `dir`: its version (from the file's name), its
/// text and the file's path; `None` when there is none or it cannot be read.
pub fn load_dynamic_config(dir: &Path) -> Option<(u64, String, std::path::PathBuf)> {
    let mut best: Option<(u64, std::path::PathBuf)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(hex) = name.strip_prefix(DYNAMIC_CONFIG_PREFIX)
            && let Ok(v) = u64::from_str_radix(hex, 16)
            && best.as_ref().is_none_or(|(b, _)| v > *b)
        {
            best = Some((v, entry.path()));
        }
    }
    let (version, path) = best?;
    let text = std::fs::read_to_string(&path).ok()?;
    Some((version, text, path))
}

/// ZAB's epochs as the data dir holds them; `None` for a file that does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Epochs {
    pub accepted: Option<i64>,
    pub current: Option<i64>,
}

/// Reads both epoch files in `dir`. A file that is there but holds no number is an
/// error: guessing an epoch could let this server accept a proposal it promised not to.
pub fn load_epochs(dir: &Path) -> Result<Epochs> {
    let read = |name: &str| -> Result<Option<i64>> {
        let Some(text) = read_text(dir, name)? else {
            return Ok(None);
        };
        text.trim().parse().map(Some).map_err(|_| {
            let not_a_number = std::io::Error::new(ErrorKind::InvalidData, "not a number");
            StorageError::io("parse the epoch in", dir.join(name), not_a_number)
        })
    };
    Ok(Epochs {
        accepted: read(ACCEPTED_EPOCH)?,
        current: read(CURRENT_EPOCH)?,
    })
}

/// Writes both epoch files durably (each fsynced before its rename, then the directory):
/// once this returns, a crash cannot bring back a lower epoch.
pub fn persist_epochs(dir: &Path, accepted: i64, current: i64) -> Result<()> {
    let (accepted, current) = (format!("{accepted}\n"), format!("{current}\n"));
    write_atomically(
        dir,
        &[
            (ACCEPTED_EPOCH, accepted.as_bytes()),
            (CURRENT_EPOCH, current.as_bytes()),
        ],
        Durability::Durable,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().expect("temp dir")
    }

    #[test]
    fn the_database_id_is_made_once_and_then_read_back() {
        let d = dir();
        let id = database_id(d.path()).expect("made");
        assert_eq!(database_id(d.path()).expect("read"), id);
        std::fs::write(d.path().join(DATABASE_ID), "not hex").expect("write");
        let remade = database_id(d.path()).expect("remade");
        assert_eq!(database_id(d.path()).expect("read"), remade);
    }

    #[test]
    fn a_missing_or_torn_commit_index_reads_as_zero() {
        let d = dir();
        assert_eq!(load_commit_index(d.path()).expect("missing"), 0);
        persist_commit_index(d.path(), 0x5_0000_0007).expect("persist");
        assert_eq!(load_commit_index(d.path()).expect("read"), 0x5_0000_0007);
        std::fs::write(d.path().join(COMMITTED_ZXID), "0x12zz").expect("write");
        assert_eq!(load_commit_index(d.path()).expect("torn"), 0);
    }

    #[test]
    fn epochs_round_trip_and_a_garbled_one_is_an_error_naming_the_file() {
        let d = dir();
        assert_eq!(load_epochs(d.path()).expect("missing"), Epochs::default());
        persist_epochs(d.path(), 4, 3).expect("persist");
        let read = load_epochs(d.path()).expect("read");
        assert_eq!((read.accepted, read.current), (Some(4), Some(3)));
        std::fs::write(d.path().join(CURRENT_EPOCH), "three").expect("write");
        let err = load_epochs(d.path()).expect_err("garbled");
        assert!(err.to_string().contains(CURRENT_EPOCH), "{err}");
    }
}
