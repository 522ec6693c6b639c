//! File naming and directory bookkeeping shared by the log, snapshots and purge.
//!
//! Names follow ZooKeeper: `log.<zxid hex>` and `snapshot.<zxid hex>`, lowercase hex
//! without padding. The directory is listed afresh whenever the set of files matters,
//! instead of being cached, so purge (which runs on another thread) and the log never
//! disagree about which files exist.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::{Result, StorageError};

pub(crate) const LOG_PREFIX: &str = "log.";
pub(crate) const SNAPSHOT_PREFIX: &str = "snapshot.";
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// A file in a storage directory whose name carries a zxid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ZxidFile {
    pub zxid: u64,
    pub path: PathBuf,
}

pub(crate) fn log_file_name(first_zxid: u64) -> String {
    format!("{LOG_PREFIX}{first_zxid:x}")
}

pub(crate) fn snapshot_file_name(zxid: u64) -> String {
    format!("{SNAPSHOT_PREFIX}{zxid:x}")
}

/// Parses the zxid out of `<prefix><hex>`; anything else (temp files, other files that
/// happen to share the directory) yields `None`.
fn parse_zxid_name(name: &str, prefix: &str) -> Option<u64> {
    let hex = name.strip_prefix(prefix)?;
    if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Lists `<prefix><hex>` files in `dir`, sorted by zxid ascending. A missing directory
/// lists as empty.
pub(crate) fn list_zxid_files(dir: &Path, prefix: &str) -> Result<Vec<ZxidFile>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StorageError::io("list directory", dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("list directory", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(zxid) = parse_zxid_name(name, prefix) {
            found.push(ZxidFile {
                zxid,
                path: entry.path(),
            });
        }
    }
    found.sort_by_key(|f| f.zxid);
    Ok(found)
}

/// Paths of leftover `<prefix>*.tmp` files in `dir`.
pub(crate) fn list_temp_files(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StorageError::io("list directory", dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("list directory", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(prefix) && name.ends_with(TEMP_SUFFIX) {
            found.push(entry.path());
        }
    }
    Ok(found)
}

/// Makes creations, renames and deletions of entries in `dir` durable. A new file's
/// data can be fsynced and still vanish after a crash if its directory entry was not.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io("fsync directory", dir, e))
}

/// How far [`write_atomically`] goes to make its files survive a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync each file, rename, fsync the directory: once the call returns, a crash
    /// leaves the new contents (epochs, the committed config).
    Durable,
    /// Rename only: a crash leaves the old or the new contents, never a torn file, but
    /// possibly the old ones (the commit index, where lagging only means replaying less).
    Lazy,
}

/// Replaces each `(name, contents)` in `dir` atomically: written to `<name>.tmp`, then
/// renamed over `name`; with [`Durability::Durable`], each file is fsynced before its
/// rename and the directory once after them all. The one way the small files of a data
/// dir are written.
pub fn write_atomically(dir: &Path, files: &[(&str, &[u8])], durability: Durability) -> Result<()> {
    use std::io::Write;
    for (name, contents) in files {
        let temp = dir.join(format!("{name}{TEMP_SUFFIX}"));
        let mut file = File::create(&temp).map_err(|e| StorageError::io("create", &temp, e))?;
        file.write_all(contents)
            .map_err(|e| StorageError::io("write", &temp, e))?;
        if durability == Durability::Durable {
            file.sync_all()
                .map_err(|e| StorageError::io("fsync", &temp, e))?;
        }
        let dest = dir.join(name);
        fs::rename(&temp, &dest).map_err(|e| StorageError::io("rename into place", &dest, e))?;
    }
    if durability == Durability::Durable {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// Makes a fully written temporary file durable under its final name: fsync, rename,
/// fsync the directory (snapshots, which are streamed rather than written at once).
pub(crate) fn install(file: File, temp: &Path, dest: &Path) -> Result<()> {
    file.sync_all()
        .map_err(|e| StorageError::io("fsync", temp, e))?;
    drop(file);
    fs::rename(temp, dest).map_err(|e| StorageError::io("rename into place", dest, e))?;
    match dest.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => fsync_dir(dir),
        _ => fsync_dir(Path::new(".")),
    }
}

/// Creates `dir` (and parents) if missing, making the new entry durable.
pub(crate) fn ensure_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| StorageError::io("create directory", dir, e))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fsync_dir(parent)?;
    }
    Ok(())
}

/// Deletes a file and fsyncs its directory, so the deletion survives a crash before the
/// next step that depends on it.
pub(crate) fn remove_durably(path: &Path) -> Result<()> {
    fs::remove_file(path).map_err(|e| StorageError::io("remove file", path, e))?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => fsync_dir(dir),
        _ => fsync_dir(Path::new(".")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_whole_files_and_leave_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        for durability in [Durability::Durable, Durability::Lazy] {
            write_atomically(dir.path(), &[("a", b"one"), ("b", b"two")], durability).unwrap();
            write_atomically(dir.path(), &[("a", b"three")], durability).unwrap();
            assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"three");
            assert_eq!(fs::read(dir.path().join("b")).unwrap(), b"two");
            assert!(list_temp_files(dir.path(), "").unwrap().is_empty());
        }
        // A directory that is not there is an error naming the file, not a panic.
        let gone = dir.path().join("gone");
        let err = write_atomically(&gone, &[("a", b"x")], Durability::Durable).unwrap_err();
        assert!(err.to_string().contains("a.tmp"), "{err}");
    }

    #[test]
    fn names_round_trip_and_foreign_names_are_ignored() {
        assert_eq!(log_file_name(0x1_0000_002a), "log.10000002a");
        assert_eq!(snapshot_file_name(0), "snapshot.0");
        assert_eq!(
            parse_zxid_name("log.10000002a", LOG_PREFIX),
            Some(0x1_0000_002a)
        );
        assert_eq!(parse_zxid_name("log.", LOG_PREFIX), None);
        assert_eq!(parse_zxid_name("log.12.tmp", LOG_PREFIX), None);
        assert_eq!(parse_zxid_name("log.+12", LOG_PREFIX), None);
        assert_eq!(parse_zxid_name("log.11112222333344445", LOG_PREFIX), None);
        assert_eq!(parse_zxid_name("snapshot.ff", LOG_PREFIX), None);
    }

    #[test]
    fn listing_sorts_by_zxid_not_by_name() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "log.a",
            "log.9",
            "log.100",
            "snapshot.5",
            "log.7.tmp",
            "myid",
        ] {
            fs::write(dir.path().join(name), b"").unwrap();
        }
        let zxids: Vec<u64> = list_zxid_files(dir.path(), LOG_PREFIX)
            .unwrap()
            .iter()
            .map(|f| f.zxid)
            .collect();
        assert_eq!(zxids, vec![0x9, 0xa, 0x100]);
        let temps = list_temp_files(dir.path(), LOG_PREFIX).unwrap();
        assert_eq!(temps, vec![dir.path().join("log.7.tmp")]);
        assert!(
            list_zxid_files(&dir.path().join("missing"), LOG_PREFIX)
                .unwrap()
                .is_empty()
        );
    }
}
