//! The Java properties text parser that zoo.cfg and dynamic config files are written in:
//! `key=value` lines (also `key: value` and `key value`) with their line numbers, and the
//! location ([`Loc`]) every configuration error names.

use super::ConfigError;

/// One `key=value` of a properties file, with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Property {
    pub(super) key: String,
    pub(super) value: String,
    pub(super) line: usize,
}

fn is_prop_ws(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\x0c'
}

/// Splits text into properties the way `java.util.Properties.load` does, then trims the
/// value (ZooKeeper trims keys and values).
pub(super) fn parse_properties(text: &str, file: &str) -> Result<Vec<Property>, ConfigError> {
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let start = i;
        let first = lines[i].trim_start_matches(is_prop_ws);
        i += 1;
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        // Join continuation lines: a line ending in an odd number of backslashes continues.
        let mut logical = String::from(first);
        while ends_with_odd_backslashes(&logical) {
            logical.pop();
            if i >= lines.len() {
                break;
            }
            logical.push_str(lines[i].trim_start_matches(is_prop_ws));
            i += 1;
        }
        let (key, value) = split_property(&logical).map_err(|message| ConfigError::Line {
            file: file.to_string(),
            line: start + 1,
            key: logical.chars().take(40).collect(),
            message,
        })?;
        out.push(Property {
            key: key.trim().to_string(),
            value: value.trim().to_string(),
            line: start + 1,
        });
    }
    Ok(out)
}

fn ends_with_odd_backslashes(s: &str) -> bool {
    s.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// Splits a logical line into unescaped key and value.
fn split_property(line: &str) -> Result<(String, String), String> {
    let chars: Vec<char> = line.chars().collect();
    let mut key = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            i = unescape(&chars, i, &mut key)?;
            continue;
        }
        if c == '=' || c == ':' || is_prop_ws(c) {
            break;
        }
        key.push(c);
        i += 1;
    }
    while i < chars.len() && is_prop_ws(chars[i]) {
        i += 1;
    }
    if i < chars.len() && (chars[i] == '=' || chars[i] == ':') {
        i += 1;
    }
    while i < chars.len() && is_prop_ws(chars[i]) {
        i += 1;
    }
    let mut value = String::new();
    while i < chars.len() {
        if chars[i] == '\\' {
            i = unescape(&chars, i, &mut value)?;
        } else {
            value.push(chars[i]);
            i += 1;
        }
    }
    Ok((key, value))
}

/// Handles the escape starting at `chars[i] == '\\'`; returns the index after it.
fn unescape(chars: &[char], i: usize, out: &mut String) -> Result<usize, String> {
    let Some(&c) = chars.get(i + 1) else {
        return Ok(i + 1);
    };
    match c {
        't' => out.push('\t'),
        'n' => out.push('\n'),
        'r' => out.push('\r'),
        'f' => out.push('\x0c'),
        'u' => {
            let hex: String = chars.iter().skip(i + 2).take(4).collect();
            let code = (hex.len() == 4)
                .then(|| u32::from_str_radix(&hex, 16).ok())
                .flatten()
                .and_then(char::from_u32)
                .ok_or_else(|| format!("malformed \\uxxxx escape \"\\u{hex}\""))?;
            out.push(code);
            return Ok(i + 6);
        }
        other => out.push(other),
    }
    Ok(i + 2)
}

/// Where a value was read (a file and its line), as errors name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Loc {
    pub(super) file: String,
    pub(super) line: usize,
}

impl Loc {
    pub(super) fn err(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Line {
            file: self.file.clone(),
            line: self.line,
            key: key.to_string(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Loc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A value with where it was read.
#[derive(Debug, Clone)]
pub(super) struct Located<T> {
    pub(super) value: T,
    pub(super) loc: Loc,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_format() {
        let text = "# comment\n! also comment\n\n  a = 1  \nb:2\nc 3\nd=x\\\n   y\ne=\\u0041\\tz\nf\n  g=  \r\n";
        let props = parse_properties(text, "p").unwrap();
        let kv: Vec<(String, String, usize)> = props
            .into_iter()
            .map(|p| (p.key, p.value, p.line))
            .collect();
        assert_eq!(
            kv,
            vec![
                ("a".into(), "1".into(), 4),
                ("b".into(), "2".into(), 5),
                ("c".into(), "3".into(), 6),
                ("d".into(), "xy".into(), 7),
                ("e".into(), "A\tz".into(), 9),
                ("f".into(), "".into(), 10),
                ("g".into(), "".into(), 11),
            ]
        );
        let e = parse_properties("ok=1\nbad=\\u12\n", "p.cfg").unwrap_err();
        assert!(
            e.to_string().starts_with("p.cfg:2: bad=\\u12: malformed"),
            "{e}"
        );
    }
}
