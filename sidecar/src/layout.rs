//! Where things live in the tree, under the root (default `/paddock`), laid out so that a
//! kazoo or Curator user can read them:
//!
//! ```text
//! /paddock/elections/<election>/_c_<uuid>-latch-<seq>   ephemeral-sequential candidates;
//!                                                        data {"id","value"}; lowest leads
//! /paddock/groups/<group>/<member id>                   ephemeral members; data = value
//! /paddock/locks/<lock>/_c_<uuid>-lock-<seq>            ephemeral-sequential contenders;
//!                                                        data {"owner","sidecar"}; lowest holds
//! /paddock/config/<path...>                             persistent nodes; data = value
//! ```
//!
//! Candidate and contender names are Curator's "protected" names (LeaderLatch and
//! InterProcessMutex use the same shape), so the fencing token of a leader or holder is
//! simply the czxid of the lowest node.

use paddock_client::path;

#[derive(Debug, Clone)]
pub struct Layout {
    root: String,
    groups: String,
    config: String,
}

/// A valid absolute znode path without a trailing slash (`/` stays `/`).
fn trimmed(path: &str) -> String {
    if path.len() > 1 {
        path.trim_end_matches('/').to_string()
    } else {
        path.to_string()
    }
}

impl Layout {
    /// `root` must be a valid absolute znode path (checked by the CLI).
    pub fn new(root: &str) -> Layout {
        Layout::with_roots(root, None, None)
    }

    /// With the groups and the config tree somewhere else than under `root`
    /// (`--groups-root`, `--config-root`): an app whose layout predates the sidecar (the
    /// seeds' master–worker `/workers`, `/assign/<worker>`) keeps it.
    pub fn with_roots(root: &str, groups: Option<&str>, config: Option<&str>) -> Layout {
        let root = trimmed(root);
        Layout {
            groups: groups.map_or_else(|| path::join(&root, "groups"), trimmed),
            config: config.map_or_else(|| path::join(&root, "config"), trimmed),
            root,
        }
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    pub fn elections(&self) -> String {
        path::join(&self.root, "elections")
    }

    pub fn groups(&self) -> String {
        self.groups.clone()
    }

    pub fn locks(&self) -> String {
        path::join(&self.root, "locks")
    }

    pub fn config_root(&self) -> String {
        self.config.clone()
    }

    /// The directories created when a session starts.
    pub fn base_dirs(&self) -> [String; 4] {
        [
            self.elections(),
            self.groups(),
            self.locks(),
            self.config_root(),
        ]
    }

    pub fn election(&self, name: &str) -> String {
        path::join(&self.elections(), name)
    }

    pub fn group(&self, name: &str) -> String {
        path::join(&self.groups(), name)
    }

    pub fn lock(&self, name: &str) -> String {
        path::join(&self.locks(), name)
    }

    /// The znode of a config path (`""` is the config root).
    pub fn config(&self, rel: &str) -> String {
        if rel.is_empty() {
            self.config_root()
        } else {
            path::join(&self.config, rel)
        }
    }

    /// The config path of a znode under the config root.
    pub fn config_rel(&self, znode: &str) -> Option<String> {
        let root = &self.config;
        if znode == root {
            return Some(String::new());
        }
        let rest = if root == "/" {
            znode.strip_prefix('/')
        } else {
            znode
                .strip_prefix(root.as_str())
                .and_then(|rest| rest.strip_prefix('/'))
        };
        rest.map(str::to_string)
    }
}

/// The sequence number ZooKeeper appended to a sequential node's name.
pub fn sequence_of(name: &str) -> Option<u64> {
    let digits = name.get(name.len().checked_sub(10)?..)?;
    if digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_the_root() {
        let l = Layout::new("/paddock");
        assert_eq!(l.election("e"), "/paddock/elections/e");
        assert_eq!(l.group("g"), "/paddock/groups/g");
        assert_eq!(l.lock("m"), "/paddock/locks/m");
        assert_eq!(l.config(""), "/paddock/config");
        assert_eq!(l.config("a/b"), "/paddock/config/a/b");
        assert_eq!(l.config_rel("/paddock/config/a/b").as_deref(), Some("a/b"));
        assert_eq!(l.config_rel("/paddock/config").as_deref(), Some(""));
        assert_eq!(l.config_rel("/paddock/configx"), None);
        let top = Layout::new("/");
        assert_eq!(top.election("e"), "/elections/e");
        assert_eq!(Layout::new("/x/").root(), "/x");
    }

    #[test]
    fn groups_and_config_elsewhere() {
        let l = Layout::with_roots("/mw", Some("/mw"), Some("/mw/"));
        assert_eq!(l.group("workers"), "/mw/workers");
        assert_eq!(l.config("assign/w1"), "/mw/assign/w1");
        assert_eq!(l.config_rel("/mw/assign/w1").as_deref(), Some("assign/w1"));
        assert_eq!(l.election("e"), "/mw/elections/e");
        let top = Layout::with_roots("/paddock", None, Some("/"));
        assert_eq!(top.config(""), "/");
        assert_eq!(top.config("tasks"), "/tasks");
        assert_eq!(top.config_rel("/tasks/t1").as_deref(), Some("tasks/t1"));
        assert_eq!(top.config_rel("/").as_deref(), Some(""));
        assert_eq!(top.groups(), "/paddock/groups");
    }

    #[test]
    fn sequence_numbers() {
        assert_eq!(sequence_of("_c_ab-latch-0000000042"), Some(42));
        assert_eq!(sequence_of("pod-1"), None);
    }
}
