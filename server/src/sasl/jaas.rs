//! The JAAS login configuration file, as ZooKeeper deployments write it (the file named
//! by `java.security.auth.login.config`):
//!
//! ```text
//! Server {
//!     org.apache.zookeeper.server.auth.DigestLoginModule required
//!     user_super="adminsecret"
//!     user_bob="bobsecret";
//! };
//! ```
//!
//! Sections (login contexts) hold login module entries: a class name, a control flag
//! (required, requisite, sufficient or optional) and `key=value` options, the entry ended
//! by `;`, the section by `};`. Values are quoted strings (`\` escapes the next
//! character) or bare words; `//`, `/* */` and `#` start comments. Pure: text in, parsed
//! sections or an error naming line and column out.

use std::fmt;

/// One login module entry of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginModule {
    pub class: String,
    pub flag: String,
    pub options: Vec<(String, String)>,
}

/// One login context (`Server { ... };`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub modules: Vec<LoginModule>,
}

/// A parsed file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JaasConfig {
    pub sections: Vec<Section>,
}

impl JaasConfig {
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }
}

/// A syntax error at a line and column (both from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JaasError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for JaasError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Quoted(String),
    Punct(char),
    End,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Word(w) => write!(f, "{w:?}"),
            Tok::Quoted(_) => f.write_str("a quoted string"),
            Tok::Punct(c) => write!(f, "'{c}'"),
            Tok::End => f.write_str("the end of the file"),
        }
    }
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
    column: usize,
}

/// Characters of a bare word (class names, flags, option names and unquoted values).
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || "._-$/:@*+~".contains(c)
}

impl Lexer<'_> {
    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn err(&self, line: usize, column: usize, message: impl Into<String>) -> JaasError {
        JaasError {
            line,
            column,
            message: message.into(),
        }
    }

    /// The next token and where it starts.
    fn next(&mut self) -> Result<(Tok, usize, usize), JaasError> {
        loop {
            while self.chars.peek().is_some_and(|c| c.is_whitespace()) {
                self.bump();
            }
            let (line, column) = (self.line, self.column);
            let Some(c) = self.bump() else {
                return Ok((Tok::End, line, column));
            };
            match c {
                '#' => self.skip_line(),
                '/' if self.chars.peek() == Some(&'/') => self.skip_line(),
                '/' if self.chars.peek() == Some(&'*') => {
                    self.bump();
                    let mut star = false;
                    loop {
                        match self.bump() {
                            None => return Err(self.err(line, column, "unterminated /* comment")),
                            Some('/') if star => break,
                            Some(c) => star = c == '*',
                        }
                    }
                }
                '"' => {
                    let mut s = String::new();
                    loop {
                        match self.bump() {
                            None => {
                                return Err(self.err(line, column, "unterminated quoted string"));
                            }
                            Some('"') => break,
                            Some('\\') => match self.bump() {
                                Some('n') => s.push('\n'),
                                Some('t') => s.push('\t'),
                                Some(c) => s.push(c),
                                None => {
                                    return Err(self.err(
                                        line,
                                        column,
                                        "unterminated quoted string",
                                    ));
                                }
                            },
                            Some(c) => s.push(c),
                        }
                    }
                    return Ok((Tok::Quoted(s), line, column));
                }
                '{' | '}' | ';' | '=' | ',' => return Ok((Tok::Punct(c), line, column)),
                c if is_word(c) => {
                    let mut w = String::from(c);
                    while let Some(&c) = self.chars.peek() {
                        if !is_word(c) {
                            break;
                        }
                        w.push(c);
                        self.bump();
                    }
                    return Ok((Tok::Word(w), line, column));
                }
                c => return Err(self.err(line, column, format!("unexpected character {c:?}"))),
            }
        }
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.bump() {
            if c == '\n' {
                break;
            }
        }
    }
}

const FLAGS: [&str; 4] = ["required", "requisite", "sufficient", "optional"];

/// Parses a whole file.
pub fn parse(text: &str) -> Result<JaasConfig, JaasError> {
    let mut lx = Lexer {
        chars: text.chars().peekable(),
        line: 1,
        column: 1,
    };
    let mut config = JaasConfig::default();
    loop {
        let (name, line, column) = match lx.next()? {
            (Tok::End, ..) => return Ok(config),
            (Tok::Word(w), l, c) => (w, l, c),
            (t, l, c) => return Err(lx.err(l, c, format!("expected a section name, found {t}"))),
        };
        if config.section(&name).is_some() {
            return Err(lx.err(line, column, format!("section {name} is given twice")));
        }
        match lx.next()? {
            (Tok::Punct('{'), ..) => {}
            (t, l, c) => {
                return Err(lx.err(l, c, format!("expected '{{' after {name}, found {t}")));
            }
        }
        let mut modules = Vec::new();
        loop {
            let class = match lx.next()? {
                (Tok::Punct('}'), ..) => break,
                (Tok::Word(w), ..) => w,
                (t, l, c) => {
                    return Err(lx.err(
                        l,
                        c,
                        format!("expected a login module class or '}}' in {name}, found {t}"),
                    ));
                }
            };
            let flag = match lx.next()? {
                (Tok::Word(w), _, _) if FLAGS.contains(&w.to_ascii_lowercase().as_str()) => {
                    w.to_ascii_lowercase()
                }
                (t, l, c) => {
                    return Err(lx.err(
                        l,
                        c,
                        format!(
                            "expected a control flag (required, requisite, sufficient or \
                             optional) after {class}, found {t}"
                        ),
                    ));
                }
            };
            let mut options = Vec::new();
            loop {
                let key = match lx.next()? {
                    (Tok::Punct(';'), ..) => break,
                    (Tok::Word(w), ..) => w,
                    (t, l, c) => {
                        return Err(lx.err(
                            l,
                            c,
                            format!("expected an option name or ';' after {class}, found {t}"),
                        ));
                    }
                };
                match lx.next()? {
                    (Tok::Punct('='), ..) => {}
                    (t, l, c) => {
                        return Err(lx.err(
                            l,
                            c,
                            format!("expected '=' after the option {key}, found {t}"),
                        ));
                    }
                }
                let value = match lx.next()? {
                    (Tok::Word(w) | Tok::Quoted(w), ..) => w,
                    (t, l, c) => {
                        return Err(lx.err(
                            l,
                            c,
                            format!("expected the value of {key}, found {t}"),
                        ));
                    }
                };
                options.push((key, value));
            }
            modules.push(LoginModule {
                class,
                flag,
                options,
            });
        }
        match lx.next()? {
            (Tok::Punct(';'), ..) => {}
            (t, l, c) => {
                return Err(lx.err(
                    l,
                    c,
                    format!("expected ';' after the '}}' of {name}, found {t}"),
                ));
            }
        }
        config.sections.push(Section { name, modules });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(class: &str, options: &[(&str, &str)]) -> LoginModule {
        LoginModule {
            class: class.into(),
            flag: "required".into(),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn files_as_zookeeper_deployments_write_them() {
        let text = r#"
// kazoo's test harness
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="super_secret"
    user_jaasuser="jaas_password";
};
/* the quorum */
QuorumServer {
       org.apache.zookeeper.server.auth.DigestLoginModule required
       user_test="te\"st";
};
# learner
QuorumLearner{org.apache.zookeeper.server.auth.DigestLoginModule REQUIRED username=test password="test";};
Client { org.apache.zookeeper.server.auth.DigestLoginModule optional; };
Empty { };
"#;
        let c = parse(text).unwrap();
        let digest = "org.apache.zookeeper.server.auth.DigestLoginModule";
        assert_eq!(
            c.section("Server").unwrap().modules,
            vec![module(
                digest,
                &[
                    ("user_super", "super_secret"),
                    ("user_jaasuser", "jaas_password")
                ]
            )]
        );
        assert_eq!(
            c.section("QuorumServer").unwrap().modules,
            vec![module(digest, &[("user_test", "te\"st")])]
        );
        assert_eq!(
            c.section("QuorumLearner").unwrap().modules,
            vec![module(
                digest,
                &[("username", "test"), ("password", "test")]
            )]
        );
        assert_eq!(c.section("Client").unwrap().modules[0].flag, "optional");
        assert!(c.section("Empty").unwrap().modules.is_empty());
        assert!(c.section("Nope").is_none());
        assert_eq!(parse("").unwrap(), JaasConfig::default());
        assert_eq!(
            parse("  // only a comment\n").unwrap(),
            JaasConfig::default()
        );
    }

    #[test]
    fn errors_name_line_column_and_cause() {
        for (text, at, says) in [
            (
                "Server {\n  M required a=\"b\"\n};",
                "3:1",
                "expected an option name or ';'",
            ),
            (
                "Server {\n  M required a=\"b\";\n}",
                "3:2",
                "expected ';' after the '}'",
            ),
            ("Server\n  M required;\n};", "2:3", "expected '{'"),
            ("Server {\n  M mandatory;\n};", "2:5", "control flag"),
            ("Server {\n  M required a;\n};", "2:15", "expected '='"),
            (
                "Server {\n  M required a=;\n};",
                "2:16",
                "expected the value of a",
            ),
            (
                "Server {\n  M required a=\"open\n};",
                "2:16",
                "unterminated quoted string",
            ),
            ("Server { M required; };\nServer { };", "2:1", "given twice"),
            (
                "Server { M required; }; /* open",
                "1:25",
                "unterminated /* comment",
            ),
            (
                "Server { M required a=b! ; };",
                "1:24",
                "unexpected character '!'",
            ),
            ("{ };", "1:1", "expected a section name"),
            ("Server { = };", "1:10", "expected a login module class"),
        ] {
            let err = parse(text).expect_err(text);
            let shown = err.to_string();
            assert!(shown.starts_with(&format!("{at}: ")), "{text:?}: {shown}");
            assert!(shown.contains(says), "{text:?}: {shown}");
        }
    }
}
