//! ZooKeeper's znode path rules (PathUtils.validatePath), the one copy both ends use: the
//! server answers a path that breaks them with BadArguments, the client refuses it before
//! sending anything. A valid path is absolute, has no trailing `/` (but for the root),
//! no empty, `.` or `..` segment, and none of the characters ZooKeeper forbids.

use std::fmt;

/// Which rule a path breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathError {
    Empty,
    NotAbsolute,
    TrailingSlash,
    EmptySegment,
    Relative,
    InvalidChar,
}

impl PathError {
    /// ZooKeeper's wording of the rule (its IllegalArgumentException messages).
    pub const fn reason(self) -> &'static str {
        match self {
            PathError::Empty => "path length must be > 0",
            PathError::NotAbsolute => "path must start with / character",
            PathError::TrailingSlash => "path must not end with / character",
            PathError::EmptySegment => "empty node name specified",
            PathError::Relative => "relative paths not allowed",
            PathError::InvalidChar => "invalid character in path",
        }
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for PathError {}

/// The characters ZooKeeper refuses: NUL and the other control characters, the private
/// use area and the specials block. (It also refuses U+D800..U+DFFF, which a Rust `str`
/// cannot hold.)
fn forbidden_char(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{e000}'..='\u{f8ff}' | '\u{fff0}'..='\u{ffff}')
}

/// Checks `path` against ZooKeeper's rules. `sequential` (a create whose name the server
/// completes with a counter) allows one trailing `/`: `/a/` becomes `/a/0000000001`.
pub fn validate_path(path: &str, sequential: bool) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if path.len() == 1 {
        // "/" itself; as a sequential prefix it yields "/0000000001", also valid.
        return Ok(());
    }
    // The last byte is then '/', so the cut is on a character boundary.
    let checked = match path.strip_suffix('/') {
        Some(prefix) if sequential => prefix,
        _ => path,
    };
    if checked.len() > 1 && checked.ends_with('/') {
        return Err(PathError::TrailingSlash);
    }
    // This runs for every request, so it is two tight passes rather than one loop that
    // does everything per byte (~23 instructions a byte under callgrind): the segment
    // rules first, as ZooKeeper checks them, then the characters, where a path of
    // printable ASCII (a check the compiler vectorises) needs nothing more.
    let bytes = checked.as_bytes();
    for segment in bytes[1..].split(|&b| b == b'/') {
        match segment {
            [] => return Err(PathError::EmptySegment),
            [b'.'] | [b'.', b'.'] => return Err(PathError::Relative),
            _ => {}
        }
    }
    if !bytes.iter().all(|&b| (0x20..0x7f).contains(&b)) && checked.chars().any(forbidden_char) {
        return Err(PathError::InvalidChar);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The rules written plainly (the implementation before the one-pass version): the
    /// fast one must agree with it on every path.
    fn plainly(path: &str, sequential: bool) -> Result<(), PathError> {
        if path.is_empty() {
            return Err(PathError::Empty);
        }
        if !path.starts_with('/') {
            return Err(PathError::NotAbsolute);
        }
        if path.len() == 1 {
            return Ok(());
        }
        let checked = match path.strip_suffix('/') {
            Some(prefix) if sequential => prefix,
            _ => path,
        };
        if checked.len() > 1 && checked.ends_with('/') {
            return Err(PathError::TrailingSlash);
        }
        for segment in checked[1..].split('/') {
            match segment {
                "" => return Err(PathError::EmptySegment),
                "." | ".." => return Err(PathError::Relative),
                _ => {}
            }
        }
        if checked.chars().any(forbidden_char) {
            return Err(PathError::InvalidChar);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn the_one_pass_check_agrees_with_the_rules_written_plainly(
            segments in prop::collection::vec(
                "[.a\\x00\\x1f\\x20\\x7f\u{80}\u{9f}\u{a0}\u{e000}\u{f8ff}\u{fff0}\u{10000}é]{0,3}",
                0..5,
            ),
            leading: bool,
            trailing: bool,
            sequential: bool,
        ) {
            let mut path = segments.join("/");
            if leading {
                path.insert(0, '/');
            }
            if trailing {
                path.push('/');
            }
            prop_assert_eq!(validate_path(&path, sequential), plainly(&path, sequential), "{:?}", path);
        }
    }

    #[test]
    fn accepts_what_zookeeper_accepts() {
        for ok in [
            "/",
            "/a",
            "/a/b",
            "/zookeeper/quota",
            "/a-b_c.d",
            "/a/.b",
            "/..a",
            "/a/b...",
            "/\u{e9}t\u{e9}",
            "/\u{a0}",
        ] {
            assert_eq!(validate_path(ok, false), Ok(()), "{ok:?}");
            assert_eq!(
                validate_path(ok, true),
                Ok(()),
                "{ok:?} as a sequential prefix"
            );
        }
    }

    #[test]
    fn refuses_each_rule_with_its_reason() {
        for (bad, why) in [
            ("", PathError::Empty),
            ("a", PathError::NotAbsolute),
            ("a/b", PathError::NotAbsolute),
            ("/a/", PathError::TrailingSlash),
            ("//", PathError::TrailingSlash),
            ("//a", PathError::EmptySegment),
            ("/a//b", PathError::EmptySegment),
            ("/a/.", PathError::Relative),
            ("/a/./b", PathError::Relative),
            ("/../a", PathError::Relative),
            ("/a/..", PathError::Relative),
            ("/a\u{0}b", PathError::InvalidChar),
            ("/a\u{1}", PathError::InvalidChar),
            ("/a\u{1f}", PathError::InvalidChar),
            ("/a\u{7f}", PathError::InvalidChar),
            ("/a\u{9f}", PathError::InvalidChar),
            ("/a\u{e000}", PathError::InvalidChar),
            ("/a\u{f8ff}", PathError::InvalidChar),
            ("/a\u{fff5}", PathError::InvalidChar),
            ("/a\u{ffff}", PathError::InvalidChar),
        ] {
            assert_eq!(validate_path(bad, false), Err(why), "{bad:?}");
        }
        assert_eq!(
            PathError::EmptySegment.to_string(),
            "empty node name specified"
        );
    }

    #[test]
    fn a_sequential_prefix_may_end_in_one_slash() {
        assert_eq!(validate_path("/a/", true), Ok(()));
        assert_eq!(validate_path("/a/b-", true), Ok(()));
        assert_eq!(validate_path("/", true), Ok(()));
        assert_eq!(validate_path("/a//", true), Err(PathError::TrailingSlash));
        assert_eq!(validate_path("//", true), Err(PathError::EmptySegment));
        assert_eq!(validate_path("/a//b", true), Err(PathError::EmptySegment));
        assert_eq!(validate_path("a/", true), Err(PathError::NotAbsolute));
        assert_eq!(validate_path("/a\u{0}/", true), Err(PathError::InvalidChar));
    }
}
