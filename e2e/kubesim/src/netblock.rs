//! The pod address block of one cluster: 127.S.0.0/16, claimed for the cluster's whole life.
//!
//! Pods share the host's network, so two clusters on one machine (tests in parallel, or the
//! pods of a cluster whose supervisor was killed) must never hand out the same addresses: a
//! new pod could not bind its ports, and a probe on its address would reach the other
//! cluster's process. Each cluster therefore takes an exclusive `flock` on
//! `<temp dir>/paddock-kubesim-net/<S>.lock` for the first free S and allocates pod
//! addresses in 127.S.0.0/16 only.
//!
//! The lock belongs to the open file description, not to the process: every container
//! process inherits the descriptor (see [`NetBlock::lock`]), so the block stays claimed for as
//! long as any process of the cluster lives, even after the supervisor was SIGKILLed, and is
//! free again once the last one exited. Nothing has to clean up a stale lock file.

use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The blocks there are: 127.S.0.0/16 for S in 1..=254. 127.0.0.0/16 is the control plane's
/// and the nodes' (127.0.100.0/24), and the rest of the repository's tests use 127.0.x.x too;
/// 127.255.0.0/16 holds 127.255.255.255, the broadcast address of 127.0.0.0/8.
const FIRST: u8 = 1;
const LAST: u8 = 254;

#[derive(Debug, thiserror::Error)]
pub enum NetBlockError {
    #[error("creating the address block lock directory {path}: {source}")]
    Dir { path: PathBuf, source: io::Error },
    #[error("opening the address block lock {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("locking the address block lock {path}: {source}")]
    Lock { path: PathBuf, source: io::Error },
    #[error(
        "every pod address block (127.{FIRST}.0.0/16 to 127.{LAST}.0.0/16) is held by another \
         kubesim cluster or its leftover pod processes; `fuser -v {dir}/*.lock` names them"
    )]
    Exhausted { dir: PathBuf },
}

/// A claimed block; dropping it (and every [`NetBlock::lock`] handed out) releases the claim
/// unless container processes still hold the inherited descriptor.
#[derive(Debug)]
pub struct NetBlock {
    octet: u8,
    lock: Arc<OwnedFd>,
}

impl NetBlock {
    /// Where the lock files of all clusters on this machine are.
    pub fn lock_dir() -> PathBuf {
        std::env::temp_dir().join("paddock-kubesim-net")
    }

    /// Claims the first free block among all clusters on this machine.
    pub fn claim() -> Result<NetBlock, NetBlockError> {
        Self::claim_in(&Self::lock_dir())
    }

    /// Claims the first free block whose lock file in `dir` nobody holds.
    pub fn claim_in(dir: &Path) -> Result<NetBlock, NetBlockError> {
        std::fs::create_dir_all(dir).map_err(|source| NetBlockError::Dir {
            path: dir.to_owned(),
            source,
        })?;
        for octet in FIRST..=LAST {
            let path = dir.join(format!("{octet}.lock"));
            // Never truncated: the file is only something to lock, its content is unused.
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|source| NetBlockError::Open {
                    path: path.clone(),
                    source,
                })?;
            if try_lock(&file).map_err(|source| NetBlockError::Lock { path, source })? {
                return Ok(NetBlock {
                    octet,
                    lock: Arc::new(OwnedFd::from(file)),
                });
            }
        }
        Err(NetBlockError::Exhausted {
            dir: dir.to_owned(),
        })
    }

    /// S of 127.S.0.0/16.
    pub fn octet(&self) -> u8 {
        self.octet
    }

    /// The locked descriptor, for every container process to inherit across exec. It is
    /// close-on-exec like every other descriptor of kubesim; the runtime clears that flag in
    /// the child only (so that the control plane's processes, which use no pod address, do
    /// not hold the block).
    pub fn lock(&self) -> Arc<OwnedFd> {
        self.lock.clone()
    }
}

impl fmt::Display for NetBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/16", Ipv4Addr::new(127, self.octet, 0, 0))
    }
}

/// An exclusive flock without waiting: Ok(false) when someone else holds it.
fn try_lock(file: &std::fs::File) -> io::Result<bool> {
    loop {
        // SAFETY: flock(2) on a descriptor `file` owns; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lock directory of the test's own, so that tests neither take blocks from clusters
    /// running on the machine nor see theirs.
    struct Dir(PathBuf);

    impl Dir {
        fn new(test: &str) -> Dir {
            let dir = std::env::temp_dir()
                .join(format!("kubesim-netblock-{test}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            Dir(dir)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn two_claims_get_different_blocks() {
        let dir = Dir::new("two");
        // Two opens of one file are two open file descriptions: their flocks conflict even
        // within one process, as two supervisors' would.
        let a = NetBlock::claim_in(&dir.0).unwrap();
        let b = NetBlock::claim_in(&dir.0).unwrap();
        assert_eq!((a.octet(), b.octet()), (1, 2));
        assert_eq!(a.to_string(), "127.1.0.0/16");
        assert_eq!(b.to_string(), "127.2.0.0/16");
    }

    #[test]
    fn a_block_is_free_again_once_nothing_holds_its_lock() {
        let dir = Dir::new("free");
        let a = NetBlock::claim_in(&dir.0).unwrap();
        assert_eq!(a.octet(), 1);
        // A holder of the descriptor (a container process, here an Arc) keeps the claim.
        let held = a.lock();
        drop(a);
        let b = NetBlock::claim_in(&dir.0).unwrap();
        assert_eq!(b.octet(), 2);
        drop(held);
        let c = NetBlock::claim_in(&dir.0).unwrap();
        assert_eq!(c.octet(), 1);
    }

    #[test]
    fn running_out_of_blocks_is_an_error_that_says_so() {
        let dir = Dir::new("exhausted");
        let all: Vec<NetBlock> = (FIRST..=LAST)
            .map(|_| NetBlock::claim_in(&dir.0).unwrap())
            .collect();
        assert_eq!(all.last().map(NetBlock::octet), Some(254));
        let err = NetBlock::claim_in(&dir.0).unwrap_err();
        assert!(
            err.to_string().starts_with("every pod address block"),
            "{err}"
        );
    }
}
