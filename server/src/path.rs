//! ZooKeeper path rules (PathUtils.validatePath): absolute, no empty, `.` or `..`
//! segments, no trailing slash except for the root, and none of the characters
//! ZooKeeper forbids.

use std::fmt;

/// Why a path was refused; the server answers these with BadArguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPath {
    pub path: String,
    pub reason: &'static str,
}

impl fmt::Display for InvalidPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid path {:?}: {}", self.path, self.reason)
    }
}

impl std::error::Error for InvalidPath {}

fn forbidden_char(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{e000}'..='\u{f8ff}' | '\u{fff0}'..='\u{ffff}')
}

/// Validates `path`; `sequential` allows a trailing `/` (the server appends the suffix).
pub fn validate(path: &str, sequential: bool) -> Result<(), InvalidPath> {
    let bad = |reason| {
        Err(InvalidPath {
            path: path.to_string(),
            reason,
        })
    };
    if path.is_empty() {
        return bad("path length must be > 0");
    }
    if !path.starts_with('/') {
        return bad("path must start with / character");
    }
    if path.len() == 1 {
        // "/" itself; as a sequential prefix it yields "/0000000001", also valid.
        return Ok(());
    }
    let checked = if sequential && path.ends_with('/') {
        &path[..path.len() - 1]
    } else {
        path
    };
    if checked.len() > 1 && checked.ends_with('/') {
        return bad("path must not end with / character");
    }
    for segment in checked[1..].split('/') {
        match segment {
            "" => return bad("empty node name specified"),
            "." | ".." => return bad("relative paths not allowed"),
            _ => {}
        }
    }
    if checked.chars().any(forbidden_char) {
        return bad("invalid character in path");
    }
    Ok(())
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
    fn accepts_and_refuses_like_zookeeper() {
        for ok in [
            "/",
            "/a",
            "/a/b",
            "/zookeeper/quota",
            "/a-b_c.d",
            "/\u{e9}t\u{e9}",
        ] {
            assert_eq!(validate(ok, false), Ok(()), "{ok}");
        }
        for (bad, reason) in [
            ("", "path length must be > 0"),
            ("a", "path must start with / character"),
            ("/a/", "path must not end with / character"),
            ("//a", "empty node name specified"),
            ("/a//b", "empty node name specified"),
            ("/a/.", "relative paths not allowed"),
            ("/../a", "relative paths not allowed"),
            ("/a\u{0}b", "invalid character in path"),
            ("/a\u{1}", "invalid character in path"),
            ("/a\u{fff5}", "invalid character in path"),
        ] {
            assert_eq!(
                validate(bad, false).map_err(|e| e.reason),
                Err(reason),
                "{bad:?}"
            );
        }
        assert_eq!(validate("/a/", true), Ok(()));
        assert_eq!(validate("/a/b-", true), Ok(()));
        assert!(validate("/a//", true).is_err());
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
