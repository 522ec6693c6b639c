//! Faults a test (or a walkthrough) inflicts on one pod, as someone with a shell on a real
//! node would: `pause` freezes the pod's processes (what `docker pause` does, through the
//! cgroup freezer), `cut` drops the pod's outgoing TCP to a port (an egress firewall rule on
//! the node, the effect of a partition between that pod and a service).
//!
//! Pods here share the host's network namespace, and a connection to another pod's
//! 127.S.x.y leaves from 127.0.0.1 whatever pod made it, so no address rule can single a pod
//! out. Its cgroup can: every process of a pod joins the pod's own cgroup v2
//! (`<cgroup2 mount>/paddock-kubesim/<S>/<pod uid>`) between fork and exec, every socket it
//! opens carries that cgroup, and iptables' `cgroup --path` match selects exactly those
//! sockets' packets. Each rule is tagged `paddock-kubesim:<S>:<uid>` in a comment, so that a
//! pod's rules go with the pod and the cluster's rules go with the cluster.
//!
//! Without a writable cgroup v2 hierarchy (not root, or no cgroup2 mounted), pods run as
//! before and the faults fail with a message that says why.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The cgroup directory under which the cluster's pods get theirs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodCgroups {
    /// Where the cgroup2 hierarchy is mounted (`/sys/fs/cgroup` or `/sys/fs/cgroup/unified`).
    pub mount: PathBuf,
    /// `paddock-kubesim/<S>`, relative to `mount`: what iptables' `--path` takes.
    pub cluster: PathBuf,
    /// The second octet S of the cluster's pod address block: the rules' tag.
    pub block: u8,
}

/// One pod's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCgroup {
    /// The absolute directory.
    pub dir: PathBuf,
    /// Relative to the cgroup2 mount, for iptables.
    pub path: PathBuf,
    /// The rules' comment: `paddock-kubesim:<S>:<uid>`.
    pub tag: String,
}

#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error("no cgroup v2 hierarchy is mounted (/proc/self/mountinfo has no cgroup2 line)")]
    NoCgroup2,
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("running iptables: {0}")]
    IptablesStart(io::Error),
    #[error("iptables {args}: {message}")]
    Iptables { args: String, message: String },
    #[error("the pod's cgroup {0} did not report frozen within 5 s")]
    NotFrozen(PathBuf),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> FaultError + '_ {
    move |source| FaultError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The mount point of the cgroup2 hierarchy, from a mountinfo text.
pub fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // `36 25 0:30 / /sys/fs/cgroup rw,... shared:9 - cgroup2 cgroup2 rw`
        let (before, after) = line.split_once(" - ")?;
        let fs_type = after.split_whitespace().next()?;
        (fs_type == "cgroup2").then(|| before.split_whitespace().nth(4).map(PathBuf::from))?
    })
}

impl PodCgroups {
    /// Makes the cluster's cgroup directory, after removing whatever an earlier cluster of
    /// the same block left (its pods are gone, or the block would not be free).
    pub fn create(block: u8) -> Result<PodCgroups, FaultError> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(io_error(Path::new("/proc/self/mountinfo")))?;
        let mount = cgroup2_mount(&mountinfo).ok_or(FaultError::NoCgroup2)?;
        let cgroups = PodCgroups {
            mount,
            cluster: Path::new("paddock-kubesim").join(block.to_string()),
            block,
        };
        cgroups.remove_all();
        let dir = cgroups.dir();
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        Ok(cgroups)
    }

    pub fn dir(&self) -> PathBuf {
        self.mount.join(&self.cluster)
    }

    fn tag_prefix(&self) -> String {
        format!("paddock-kubesim:{}:", self.block)
    }

    pub fn pod(&self, uid: &str) -> PodCgroup {
        PodCgroup {
            dir: self.dir().join(uid),
            path: self.cluster.join(uid),
            tag: format!("{}{uid}", self.tag_prefix()),
        }
    }

    /// Drops every rule of the cluster and removes the pods' (empty) cgroups; best effort.
    pub fn remove_all(&self) {
        if let Err(error) = delete_rules(&self.tag_prefix()) {
            tracing::warn!(%error, "removing the cluster's fault rules");
        }
        if let Ok(entries) = std::fs::read_dir(self.dir()) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_dir(entry.path());
            }
        }
        let _ = std::fs::remove_dir(self.dir());
    }
}

impl PodCgroup {
    pub fn create(&self) -> Result<(), FaultError> {
        std::fs::create_dir_all(&self.dir).map_err(io_error(&self.dir))
    }

    /// What a process writes `0` into to join the cgroup.
    pub fn procs_file(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// The pod is gone: its rules go, and its cgroup once the last process has left it.
    pub fn remove(&self) {
        if let Err(error) = delete_rules(&self.tag) {
            tracing::warn!(%error, tag = %self.tag, "removing a pod's fault rules");
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while std::fs::remove_dir(&self.dir).is_err() && self.dir.exists() {
            if Instant::now() > deadline {
                tracing::debug!(dir = %self.dir.display(), "a pod's cgroup is still busy");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Freezes (or thaws) every process of the pod; returns once the kernel says so.
    pub fn set_frozen(&self, frozen: bool) -> Result<(), FaultError> {
        let control = self.dir.join("cgroup.freeze");
        std::fs::write(&control, if frozen { "1" } else { "0" }).map_err(io_error(&control))?;
        let events = self.dir.join("cgroup.events");
        let want = if frozen { "frozen 1" } else { "frozen 0" };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&events).map_err(io_error(&events))?;
            if text.lines().any(|l| l.trim() == want) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(FaultError::NotFrozen(self.dir.clone()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Drops the pod's outgoing TCP to `port` (on any address): its connections there
    /// stall, new ones are never established.
    pub fn cut(&self, port: u16) -> Result<(), FaultError> {
        let rule = self.rule(port);
        // Idempotent: a second cut of the same port adds nothing.
        if iptables(&with_verb("-C", &rule)).is_ok() {
            return Ok(());
        }
        iptables(&with_verb("-I", &rule))
    }

    /// Undoes `cut` for `port`, or every cut of the pod when `port` is None.
    pub fn heal(&self, port: Option<u16>) -> Result<(), FaultError> {
        match port {
            Some(port) => {
                let rule = self.rule(port);
                while iptables(&with_verb("-C", &rule)).is_ok() {
                    iptables(&with_verb("-D", &rule))?;
                }
                Ok(())
            }
            None => delete_rules(&self.tag),
        }
    }

    fn rule(&self, port: u16) -> Vec<String> {
        [
            "-p",
            "tcp",
            "--dport",
            &port.to_string(),
            "-m",
            "cgroup",
            "--path",
            &self.path.display().to_string(),
            "-m",
            "comment",
            "--comment",
            &self.tag,
            "-j",
            "DROP",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }
}

fn with_verb(verb: &str, rule: &[String]) -> Vec<String> {
    let mut args = vec![verb.to_owned(), "OUTPUT".to_owned()];
    args.extend_from_slice(rule);
    args
}

fn iptables(args: &[String]) -> Result<(), FaultError> {
    let out = Command::new("iptables")
        .arg("-w")
        .arg("5")
        .args(args)
        .output()
        .map_err(FaultError::IptablesStart)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(FaultError::Iptables {
            args: args.join(" "),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// The OUTPUT rules (as `iptables -S` prints them) whose comment starts with `tag`, turned
/// into the arguments that delete them.
pub fn deletions(listing: &str, tag: &str) -> Vec<Vec<String>> {
    listing
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let tagged = words
                .windows(2)
                .any(|w| w[0] == "--comment" && w[1].trim_matches('"').starts_with(tag));
            match words.split_first() {
                Some((&"-A", rest)) if tagged => Some(
                    std::iter::once("-D")
                        .chain(rest.iter().copied())
                        .map(|w| w.trim_matches('"').to_owned())
                        .collect(),
                ),
                _ => None,
            }
        })
        .collect()
}

fn delete_rules(tag: &str) -> Result<(), FaultError> {
    let out = Command::new("iptables")
        .args(["-w", "5", "-S", "OUTPUT"])
        .output()
        .map_err(FaultError::IptablesStart)?;
    if !out.status.success() {
        return Err(FaultError::Iptables {
            args: "-S OUTPUT".to_owned(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    for args in deletions(&String::from_utf8_lossy(&out.stdout), tag) {
        iptables(&args)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup2_mount_is_found_in_a_hybrid_and_a_unified_layout() {
        let hybrid = "\
30 24 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer";
        assert_eq!(
            cgroup2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified = "35 24 0:30 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate";
        assert_eq!(
            cgroup2_mount(unified),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(cgroup2_mount("22 1 0:5 / /proc rw - proc proc rw"), None);
    }

    #[test]
    fn only_the_tagged_rules_are_deleted() {
        let listing = "\
-P OUTPUT ACCEPT
-A OUTPUT -p tcp -m tcp --dport 2181 -m cgroup --path paddock-kubesim/7/u-1 -m comment --comment paddock-kubesim:7:u-1 -j DROP
-A OUTPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A OUTPUT -p tcp -m tcp --dport 2181 -m cgroup --path paddock-kubesim/8/u-2 -m comment --comment \"paddock-kubesim:8:u-2\" -j DROP";
        let seven = deletions(listing, "paddock-kubesim:7:");
        assert_eq!(seven.len(), 1);
        assert_eq!(seven[0][0], "-D");
        assert_eq!(seven[0][1], "OUTPUT");
        assert!(seven[0].contains(&"paddock-kubesim/7/u-1".to_owned()));
        let eight = deletions(listing, "paddock-kubesim:8:u-2");
        assert_eq!(eight.len(), 1);
        assert!(eight[0].contains(&"paddock-kubesim:8:u-2".to_owned()));
        assert!(deletions(listing, "paddock-kubesim:9:").is_empty());
    }

    #[test]
    fn a_pod_cgroup_is_named_by_block_and_uid() {
        let cgroups = PodCgroups {
            mount: PathBuf::from("/sys/fs/cgroup"),
            cluster: PathBuf::from("paddock-kubesim/7"),
            block: 7,
        };
        let pod = cgroups.pod("abc");
        assert_eq!(
            pod.dir,
            PathBuf::from("/sys/fs/cgroup/paddock-kubesim/7/abc")
        );
        assert_eq!(pod.path, PathBuf::from("paddock-kubesim/7/abc"));
        assert_eq!(pod.tag, "paddock-kubesim:7:abc");
        let rule = pod.rule(2181);
        assert!(rule.windows(2).any(|w| w[0] == "--dport" && w[1] == "2181"));
    }
}
