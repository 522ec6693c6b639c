//! Host names for servers, the way pods see them: a test-owned hosts file that each
//! server sees as its /etc/hosts, in a mount namespace of its own (the test process and
//! the machine keep the real one). Rewriting the file in place (truncate + write, same
//! inode, so the bind mount shows the new content) moves a name to another address or
//! makes it appear, as a recreated pod's DNS record does.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::net::Ipv4Addr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A hosts file owned by a test: name → address for the names that resolve now.
pub struct HostsFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
    entries: BTreeMap<String, Ipv4Addr>,
}

impl HostsFile {
    pub fn new() -> HostsFile {
        let dir = tempfile::Builder::new()
            .prefix("paddock-hosts-")
            .tempdir()
            .expect("tempdir");
        let path = dir.path().join("hosts");
        let file = HostsFile {
            _dir: dir,
            path,
            entries: BTreeMap::new(),
        };
        file.write();
        file
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `name` resolves to `ip` from now on (added or moved).
    pub fn set(&mut self, name: &str, ip: Ipv4Addr) {
        self.entries.insert(name.to_string(), ip);
        self.write();
    }

    /// `name` does not resolve any more.
    pub fn remove(&mut self, name: &str) {
        self.entries.remove(name);
        self.write();
    }

    /// Rewrites the file in place: `std::fs::write` truncates and writes the same inode,
    /// which is what the servers' bind mounts show (a rename would leave them the old one).
    fn write(&self) {
        let mut text = String::from("127.0.0.1 localhost\n");
        for (name, ip) in &self.entries {
            text.push_str(&format!("{ip} {name}\n"));
        }
        std::fs::write(&self.path, text).expect("rewrite the hosts file in place");
    }
}

/// Makes `cmd` run in a mount namespace of its own where `hosts` is bind-mounted over
/// /etc/hosts. Needs root (CAP_SYS_ADMIN); if the kernel refuses, spawning fails with
/// the error, so the test fails loudly instead of running against the real /etc/hosts.
pub fn private_etc_hosts(cmd: &mut Command, hosts: &Path) {
    let source = CString::new(hosts.as_os_str().as_bytes()).expect("hosts path");
    let target = CString::new("/etc/hosts").unwrap();
    let root = CString::new("/").unwrap();
    // SAFETY: between fork and exec the closure only makes raw system calls on
    // strings prepared before the fork; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Keep our mounts from propagating back to the machine's namespace.
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            if libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
