//! Znode path helpers. The validity rules themselves (PathUtils.validatePath) live in
//! paddock-proto, shared with the client; [`check`] is how the server applies them.

use paddock_proto::{ErrorCode, validate_path};

/// Checks a path a request names; the server answers one that breaks ZooKeeper's rules
/// with BadArguments, as ZooKeeper does. `sequential` allows the trailing `/` of a
/// sequential create's prefix.
pub fn check(path: &str, sequential: bool) -> Result<(), ErrorCode> {
    validate_path(path, sequential).map_err(|_| ErrorCode::BadArguments)
}

/// The parent of a valid non-root path.
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last segment of a valid non-root path.
pub fn basename(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// Joins a parent path and a child name.
pub fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// Whether `path` is `ancestor` or lies below it.
pub fn is_self_or_descendant(path: &str, ancestor: &str) -> bool {
    ancestor == "/"
        || path == ancestor
        || (path.starts_with(ancestor) && path.as_bytes().get(ancestor.len()) == Some(&b'/'))
}

/// `path` and each of its ancestors up to the root, nearest first.
pub fn self_and_ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(path);
    std::iter::from_fn(move || {
        let current = next?;
        next = if current == "/" {
            None
        } else {
            Some(parent(current))
        };
        Some(current)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_paths_are_bad_arguments() {
        assert_eq!(check("/a/b", false), Ok(()));
        assert_eq!(check("/a/", true), Ok(()));
        for bad in ["", "a", "/a/", "//a", "/a/..", "/a\u{0}"] {
            assert_eq!(check(bad, false), Err(ErrorCode::BadArguments), "{bad:?}");
        }
    }

    #[test]
    fn path_helpers() {
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/a/b/c"), "/a/b");
        assert_eq!(basename("/a/b"), "b");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert!(is_self_or_descendant("/a/b", "/a"));
        assert!(is_self_or_descendant("/a", "/a"));
        assert!(!is_self_or_descendant("/ab", "/a"));
        assert!(is_self_or_descendant("/x", "/"));
        assert_eq!(
            self_and_ancestors("/a/b").collect::<Vec<_>>(),
            ["/a/b", "/a", "/"]
        );
    }
}
