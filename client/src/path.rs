//! Znode paths: ZooKeeper's validation rules (PathUtils.validatePath), checked before a
//! request is sent, and the chroot that maps the paths a caller uses to the paths the
//! server sees.

use paddock_proto::{PathError, validate_path};

use crate::error::Error;

/// Why `path` is not a valid znode path, or `Ok` if it is: ZooKeeper's rules, as the
/// server applies them (paddock-proto's [`validate_path`]). A sequential create may end
/// in `/` (the server appends the sequence number), but may not be the root itself,
/// which the server would accept: under a chroot the root is the chroot's own node, and
/// the number appended to it would name a sibling outside the chroot.
pub fn validate(path: &str, sequential: bool) -> Result<(), &'static str> {
    if sequential && path == "/" {
        return Err("a sequential node cannot be the root");
    }
    validate_path(path, sequential).map_err(PathError::reason)
}

/// [`validate`] as a client error naming the path.
pub(crate) fn check(path: &str, sequential: bool) -> Result<(), Error> {
    validate(path, sequential).map_err(|reason| Error::InvalidPath {
        path: path.to_string(),
        reason,
    })
}

/// The parent of an absolute path (`/` for top-level nodes), `None` for the root.
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// `dir` + `/` + `name`, without doubling the slash under the root.
pub fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The last segment of a path.
pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// A client's view of the tree: every path it names is under `prefix` on the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chroot {
    prefix: Option<String>,
}

impl Chroot {
    pub fn new(prefix: Option<String>) -> Chroot {
        Chroot { prefix }
    }

    pub fn prefix(&self) -> Option<&str> {
        self.prefix.as_deref()
    }

    /// The server path of a client path.
    pub fn to_server(&self, path: &str) -> String {
        match &self.prefix {
            None => path.to_string(),
            Some(p) if path == "/" => p.clone(),
            Some(p) => format!("{p}{path}"),
        }
    }

    /// The client path of a server path, or `None` for a path outside the chroot.
    pub fn to_client(&self, server_path: &str) -> Option<String> {
        match &self.prefix {
            None => Some(server_path.to_string()),
            Some(p) => match server_path.strip_prefix(p.as_str()) {
                Some("") => Some("/".to_string()),
                Some(rest) if rest.starts_with('/') => Some(rest.to_string()),
                _ => None,
            },
        }
    }

    /// [`to_client`](Self::to_client), keeping paths outside the chroot as they are.
    pub fn to_client_lossy(&self, server_path: &str) -> String {
        self.to_client(server_path)
            .unwrap_or_else(|| server_path.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zookeeper_path_rules_and_no_sequential_root() {
        assert_eq!(validate("/a/b", false), Ok(()));
        assert_eq!(validate("/a/", true), Ok(()));
        assert_eq!(validate("/", false), Ok(()));
        assert!(validate("/", true).is_err());
        assert_eq!(validate("/a//b", false), Err("empty node name specified"));
    }

    #[test]
    fn chroot_maps_both_ways() {
        let c = Chroot::new(Some("/app".into()));
        assert_eq!(c.to_server("/"), "/app");
        assert_eq!(c.to_server("/x/y"), "/app/x/y");
        assert_eq!(c.to_client("/app").as_deref(), Some("/"));
        assert_eq!(c.to_client("/app/x").as_deref(), Some("/x"));
        assert_eq!(c.to_client("/apple"), None);
        assert_eq!(c.to_client("/other"), None);
        let none = Chroot::default();
        assert_eq!(none.to_server("/x"), "/x");
        assert_eq!(none.to_client("/x").as_deref(), Some("/x"));
    }

    #[test]
    fn parents_and_joins() {
        assert_eq!(parent("/"), None);
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert_eq!(basename("/a/b"), "b");
    }
}
