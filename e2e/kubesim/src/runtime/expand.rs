//! Kubernetes' `$(VAR)` expansion of command, args and env values.
//!
//! The rules are those of kubelet's `third_party/forked/golang/expansion`: `$(NAME)` becomes
//! the variable's value when NAME is defined and stays literally `$(NAME)` when not; `$$`
//! becomes a single `$` (so `$$(NAME)` is the literal `$(NAME)`); a `$` followed by anything
//! else, an unterminated `$(`, or a trailing `$` are kept as written.

use std::collections::HashMap;

/// Expands `input` against `lookup`; an unknown name is kept as `$(NAME)`.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    // Start of the literal run not yet copied to `out`.
    let mut copied_to = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] != b'$' || cursor + 1 >= bytes.len() {
            cursor += 1;
            continue;
        }
        out.push_str(&input[copied_to..cursor]);
        let rest = &input[cursor + 1..];
        match bytes[cursor + 1] {
            b'$' => {
                out.push('$');
                cursor += 2;
            }
            b'(' => match rest.find(')') {
                Some(close) => {
                    let name = &rest[1..close];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    cursor += 1 + close + 1;
                }
                None => {
                    // Unterminated reference: the rest is literal.
                    out.push_str("$(");
                    cursor += 2;
                }
            },
            _ => {
                // A `$` that opens nothing: keep it; the next character is copied as literal text.
                out.push('$');
                cursor += 1;
            }
        }
        copied_to = cursor;
    }
    out.push_str(&input[copied_to..]);
    out
}

/// Expands every string of `items` against an ordered env list (a later entry of the same
/// name wins, as in a container's environment).
pub fn expand_all(items: &[String], env: &[(String, String)]) -> Vec<String> {
    let vars: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    items
        .iter()
        .map(|item| expand(item, |name| vars.get(name).map(|v| (*v).to_owned())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        [
            ("VAR_A", "A"),
            ("VAR_B", "B"),
            ("VAR_EMPTY", ""),
            ("VAR_A", "A2"),
            ("UNI", "ü"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    #[test]
    fn expansion_table() {
        let cases: &[(&str, &str)] = &[
            ("", ""),
            ("plain", "plain"),
            ("$(VAR_B)", "B"),
            ("$(VAR_A)", "A2"),
            ("x-$(VAR_B)-y", "x-B-y"),
            ("$(VAR_B)$(VAR_B)", "BB"),
            ("$(VAR_EMPTY)", ""),
            ("$(UNKNOWN)", "$(UNKNOWN)"),
            ("$(UNKNOWN)-$(VAR_B)", "$(UNKNOWN)-B"),
            ("$$(VAR_B)", "$(VAR_B)"),
            ("$$$(VAR_B)", "$B"),
            ("$$$$(VAR_B)", "$$(VAR_B)"),
            ("$$", "$"),
            ("$", "$"),
            ("a$", "a$"),
            ("$x", "$x"),
            ("$VAR_B", "$VAR_B"),
            ("$(VAR_B", "$(VAR_B"),
            ("$(", "$("),
            ("$()", "$()"),
            ("$(VAR_B)$", "B$"),
            ("ü$(UNI)ü", "üüü"),
            ("$ü", "$ü"),
            ("${VAR_B}", "${VAR_B}"),
            ("$(VAR_B))", "B)"),
            ("$((VAR_B))", "$((VAR_B))"),
        ];
        let env = env();
        for (input, want) in cases {
            let got = expand_all(&[(*input).to_owned()], &env);
            assert_eq!(got, vec![(*want).to_owned()], "expanding {input:?}");
        }
    }
}
