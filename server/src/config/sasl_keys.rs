//! ZooKeeper's SASL keys: where the JAAS file is (`java.security.auth.login.config`,
//! which ZooKeeper reads as a JVM system property and Paddock also takes from zoo.cfg,
//! `--jaas-config` and `PADDOCK_JAAS_CONFIG`), the login context names
//! (`zookeeper.sasl.serverconfig`, `quorum.auth.{server,learner}.saslLoginContext`), the
//! `sasl` authentication provider, `zookeeper.superUser`, clients that must authenticate
//! (`enforce.auth.enabled` / `enforce.auth.schemes`, the older
//! `sessionRequireClientSASLAuth`), and SASL between servers
//! (`quorum.auth.enableSasl`, `learnerRequireSasl`, `serverRequireSasl`).
//!
//! The JAAS file is read and checked when the configuration is loaded, so a syntax error
//! or a missing section stops the start with its line and column. Only DIGEST-MD5
//! (`org.apache.zookeeper.server.auth.DigestLoginModule`) is implemented; a Kerberos
//! `Server` section starts the server but every SASL login is refused with a log line
//! naming GSSAPI, and Kerberos between servers stops the start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Secret;
use super::properties::Loc;
use super::zoo_cfg::parse_bool;
use crate::config::ConfigError;
use crate::sasl::jaas;

pub const DIGEST_LOGIN_MODULE: &str = "org.apache.zookeeper.server.auth.DigestLoginModule";
pub const KRB5_LOGIN_MODULE: &str = "com.sun.security.auth.module.Krb5LoginModule";
pub const SASL_PROVIDER: &str = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider";
/// The auth schemes `enforce.auth.schemes` may name.
const KNOWN_SCHEMES: [&str; 4] = ["digest", "ip", "sasl", "x509"];

/// User names and passwords of a DigestLoginModule (`user_<name>="<password>"`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SaslUsers(BTreeMap<String, Secret>);

impl SaslUsers {
    pub fn password(&self, user: &str) -> Option<String> {
        self.0.get(user).map(|s| s.0.clone())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> SaslUsers {
        SaslUsers(
            pairs
                .iter()
                .map(|(u, p)| (u.to_string(), Secret(p.to_string())))
                .collect(),
        )
    }
}

impl std::fmt::Debug for SaslUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// What the server's login section (`Server`) provides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ServerLogin {
    /// No JAAS file, or no such section in it: SASL logins are refused.
    #[default]
    None,
    /// DIGEST-MD5 with these users.
    Digest(SaslUsers),
    /// Kerberos (Krb5LoginModule): not supported; logins are refused naming GSSAPI.
    Gssapi,
}

/// SASL between servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuorumSasl {
    pub enable: bool,
    pub learner_require: bool,
    pub server_require: bool,
    pub learner_context: String,
    pub server_context: String,
    /// The QuorumServer section's users (who may connect to us), once loaded.
    #[serde(skip)]
    pub users: SaslUsers,
    /// The QuorumLearner section's username and password (how we connect), once loaded.
    #[serde(skip)]
    pub login: Option<(String, Secret)>,
}

impl Default for QuorumSasl {
    fn default() -> Self {
        QuorumSasl {
            enable: false,
            learner_require: false,
            server_require: false,
            learner_context: "QuorumLearner".into(),
            server_context: "QuorumServer".into(),
            users: SaslUsers::default(),
            login: None,
        }
    }
}

/// The SASL settings and, after [`SaslConfig::finish`], the logins read from the JAAS file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SaslConfig {
    pub jaas_file: Option<PathBuf>,
    /// `zookeeper.sasl.serverconfig`: the JAAS section of client logins.
    pub server_context: String,
    /// Whether the context name was given (then a missing section is an error).
    server_context_given: bool,
    /// `authProvider.N=...SASLAuthenticationProvider`: `sasl` ids in ACLs.
    pub provider: bool,
    /// `zookeeper.superUser`: a SASL user that is the super user.
    pub super_user: Option<String>,
    pub enforce_auth: bool,
    pub enforce_schemes: Vec<String>,
    session_require_sasl: bool,
    pub quorum: QuorumSasl,
    #[serde(skip)]
    pub server_login: ServerLogin,
}

impl Default for SaslConfig {
    fn default() -> Self {
        SaslConfig {
            jaas_file: None,
            server_context: "Server".into(),
            server_context_given: false,
            provider: false,
            super_user: None,
            enforce_auth: false,
            enforce_schemes: Vec::new(),
            session_require_sasl: false,
            quorum: QuorumSasl::default(),
            server_login: ServerLogin::None,
        }
    }
}

fn non_empty(loc: &Loc, key: &str, value: &str) -> Result<String, ConfigError> {
    if value.trim().is_empty() {
        return Err(loc.err(key, "must not be empty"));
    }
    Ok(value.trim().to_string())
}

impl SaslConfig {
    /// Takes `key` (without a `zookeeper.` prefix) if it is a SASL key.
    pub(super) fn accept(
        &mut self,
        key: &str,
        value: &str,
        loc: &Loc,
    ) -> Result<bool, ConfigError> {
        match key {
            "java.security.auth.login.config" => {
                self.jaas_file = Some(PathBuf::from(non_empty(loc, key, value)?))
            }
            "sasl.serverconfig" => {
                self.server_context = non_empty(loc, key, value)?;
                self.server_context_given = true;
            }
            k if k.starts_with("authProvider.") && value.trim() == SASL_PROVIDER => {
                self.provider = true
            }
            "superUser" => self.super_user = Some(non_empty(loc, key, value)?),
            "enforce.auth.enabled" => self.enforce_auth = parse_bool(loc, key, value)?,
            "enforce.auth.schemes" => {
                self.enforce_schemes = value
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                if let Some(bad) = self
                    .enforce_schemes
                    .iter()
                    .find(|s| !KNOWN_SCHEMES.contains(&s.as_str()))
                {
                    return Err(loc.err(
                        key,
                        format!(
                            "authentication scheme {bad:?} is not available (known: {})",
                            KNOWN_SCHEMES.join(", ")
                        ),
                    ));
                }
            }
            "sessionRequireClientSASLAuth" => {
                self.session_require_sasl = parse_bool(loc, key, value)?
            }
            "quorum.auth.enableSasl" => self.quorum.enable = parse_bool(loc, key, value)?,
            "quorum.auth.learnerRequireSasl" => {
                self.quorum.learner_require = parse_bool(loc, key, value)?
            }
            "quorum.auth.serverRequireSasl" => {
                self.quorum.server_require = parse_bool(loc, key, value)?
            }
            "quorum.auth.learner.saslLoginContext" => {
                self.quorum.learner_context = non_empty(loc, key, value)?
            }
            "quorum.auth.server.saslLoginContext" => {
                self.quorum.server_context = non_empty(loc, key, value)?
            }
            // Kerberos names only: a DIGEST-MD5 user name has no host or realm to remove
            // and no service principal.
            "quorum.auth.kerberos.servicePrincipal"
            | "kerberos.removeHostFromPrincipal"
            | "kerberos.removeRealmFromPrincipal"
            | "kerberos.canonicalizeHostNames" => {
                tracing::info!(
                    key,
                    "a Kerberos setting: no effect (Paddock does DIGEST-MD5 only)"
                );
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `--jaas-config` / `PADDOCK_JAAS_CONFIG`.
    pub(super) fn set_jaas_file(&mut self, path: &Path) {
        self.jaas_file = Some(path.to_path_buf());
    }

    /// Checks the combination and reads the JAAS file. `file` names the zoo.cfg in errors.
    pub(super) fn finish(&mut self, file: &str) -> Result<(), ConfigError> {
        let err = |message: String| ConfigError::File {
            file: file.to_string(),
            message,
        };
        let q = &self.quorum;
        if !q.enable && q.server_require {
            return Err(err("quorum.auth.enableSasl is disabled, so cannot enable \
                 quorum.auth.serverRequireSasl"
                .into()));
        }
        if !q.enable && q.learner_require {
            return Err(err("quorum.auth.enableSasl is disabled, so cannot enable \
                 quorum.auth.learnerRequireSasl"
                .into()));
        }
        if self.session_require_sasl {
            // ZooKeeper's AuthenticationHelper: the older switch means enforce "sasl".
            self.enforce_auth = true;
            self.enforce_schemes = vec!["sasl".into()];
        }
        if self.enforce_auth && self.enforce_schemes.is_empty() {
            return Err(err(
                "enforce.auth.enabled is true: enforce.auth.schemes must be \
                 configured"
                    .into(),
            ));
        }
        let needs_sasl = self.enforce_auth && self.enforce_schemes.iter().any(|s| s == "sasl");
        let Some(path) = self.jaas_file.clone() else {
            if self.quorum.enable {
                return Err(err(
                    "quorum.auth.enableSasl=true needs a JAAS file with the \
                     QuorumServer and QuorumLearner sections (java.security.auth.login.config \
                     in zoo.cfg, --jaas-config or PADDOCK_JAAS_CONFIG)"
                        .into(),
                ));
            }
            if needs_sasl {
                return Err(err(
                    "enforce.auth.schemes names sasl but no JAAS file is given \
                     (java.security.auth.login.config in zoo.cfg, --jaas-config or \
                     PADDOCK_JAAS_CONFIG): no client could ever log in"
                        .into(),
                ));
            }
            return Ok(());
        };
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::File {
            file: shown.clone(),
            message: format!("cannot read the JAAS file (java.security.auth.login.config): {e}"),
        })?;
        let parsed = jaas::parse(&text).map_err(|e| ConfigError::File {
            file: format!("{shown}:{}:{}", e.line, e.column),
            message: e.message.clone(),
        })?;
        let jaas_err = |message: String| ConfigError::File {
            file: shown.clone(),
            message,
        };
        self.server_login = match parsed.section(&self.server_context) {
            Some(section) => server_login(section).map_err(jaas_err)?,
            None if self.server_context_given || needs_sasl => {
                return Err(jaas_err(format!(
                    "no JAAS section named {:?} (zookeeper.sasl.serverconfig{})",
                    self.server_context,
                    if needs_sasl {
                        ", needed by enforce.auth.schemes=sasl"
                    } else {
                        ""
                    }
                )));
            }
            None => ServerLogin::None,
        };
        if needs_sasl && self.server_login == ServerLogin::Gssapi {
            return Err(jaas_err(
                "enforce.auth.schemes names sasl, but the server's section uses Kerberos \
                 (GSSAPI), which Paddock does not support: no client could log in"
                    .into(),
            ));
        }
        if self.quorum.enable {
            let q = &mut self.quorum;
            let server = parsed.section(&q.server_context).ok_or_else(|| {
                jaas_err(format!(
                    "quorum.auth.enableSasl=true but there is no JAAS section named {:?} \
                     (quorum.auth.server.saslLoginContext)",
                    q.server_context
                ))
            })?;
            q.users = match server_login(server).map_err(jaas_err)? {
                ServerLogin::Digest(users) => users,
                _ => {
                    return Err(jaas_err(format!(
                        "section {}: Kerberos (GSSAPI) between servers is not supported; \
                         use org.apache.zookeeper.server.auth.DigestLoginModule",
                        q.server_context
                    )));
                }
            };
            let learner = parsed.section(&q.learner_context).ok_or_else(|| {
                jaas_err(format!(
                    "quorum.auth.enableSasl=true but there is no JAAS section named {:?} \
                     (quorum.auth.learner.saslLoginContext)",
                    q.learner_context
                ))
            })?;
            q.login = Some(learner_login(learner).map_err(jaas_err)?);
        }
        Ok(())
    }
}

/// The users of a section that serves logins.
fn server_login(section: &jaas::Section) -> Result<ServerLogin, String> {
    let mut users = BTreeMap::new();
    let mut gssapi = false;
    for module in &section.modules {
        match module.class.as_str() {
            DIGEST_LOGIN_MODULE => {
                for (key, value) in &module.options {
                    if let Some(user) = key.strip_prefix("user_") {
                        users.insert(user.to_string(), Secret(value.clone()));
                    }
                }
            }
            KRB5_LOGIN_MODULE => gssapi = true,
            other => {
                return Err(format!(
                    "section {}: login module {other} is not supported (Paddock does \
                     DIGEST-MD5 with {DIGEST_LOGIN_MODULE})",
                    section.name
                ));
            }
        }
    }
    Ok(if gssapi && users.is_empty() {
        ServerLogin::Gssapi
    } else {
        ServerLogin::Digest(SaslUsers(users))
    })
}

/// The username and password of a section that logs in (QuorumLearner, Client).
fn learner_login(section: &jaas::Section) -> Result<(String, Secret), String> {
    for module in &section.modules {
        if module.class == KRB5_LOGIN_MODULE {
            return Err(format!(
                "section {}: Kerberos (GSSAPI) between servers is not supported; use \
                 {DIGEST_LOGIN_MODULE} with username and password",
                section.name
            ));
        }
        if module.class != DIGEST_LOGIN_MODULE {
            return Err(format!(
                "section {}: login module {} is not supported (Paddock does DIGEST-MD5 \
                 with {DIGEST_LOGIN_MODULE})",
                section.name, module.class
            ));
        }
        let get = |name: &str| {
            module
                .options
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        if let (Some(user), Some(password)) = (get("username"), get("password")) {
            return Ok((user, Secret(password)));
        }
    }
    Err(format!(
        "section {}: no {DIGEST_LOGIN_MODULE} entry with username and password",
        section.name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc() -> Loc {
        Loc {
            file: "zoo.cfg".into(),
            line: 1,
        }
    }

    fn config(keys: &[(&str, &str)], jaas: Option<&str>) -> Result<SaslConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let mut c = SaslConfig::default();
        for (k, v) in keys {
            assert!(c.accept(k, v, &loc()).map_err(|e| e.to_string())?, "{k}");
        }
        if let Some(text) = jaas {
            let path = dir.path().join("jaas.conf");
            std::fs::write(&path, text).unwrap();
            c.set_jaas_file(&path);
        }
        c.finish("zoo.cfg").map_err(|e| e.to_string())?;
        Ok(c)
    }

    const JAAS: &str = r#"
Server { org.apache.zookeeper.server.auth.DigestLoginModule required user_bob="bobsecret"; };
QuorumServer { org.apache.zookeeper.server.auth.DigestLoginModule required user_q="qs"; };
QuorumLearner { org.apache.zookeeper.server.auth.DigestLoginModule required username="q" password="qs"; };
Kerberos { com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true; };
Other { org.example.PlainLoginModule required; };
"#;

    #[test]
    fn logins_from_the_jaas_file() {
        let c = config(&[], Some(JAAS)).unwrap();
        let ServerLogin::Digest(users) = &c.server_login else {
            panic!("{:?}", c.server_login)
        };
        assert_eq!(users.password("bob").as_deref(), Some("bobsecret"));
        assert_eq!(users.password("alice"), None);
        assert_eq!(format!("{users:?}"), "[\"bob\"]", "passwords never shown");
        let c = config(
            &[
                ("quorum.auth.enableSasl", "true"),
                ("quorum.auth.learnerRequireSasl", "true"),
                ("quorum.auth.serverRequireSasl", "true"),
            ],
            Some(JAAS),
        )
        .unwrap();
        assert_eq!(c.quorum.users.password("q").as_deref(), Some("qs"));
        assert_eq!(c.quorum.login.as_ref().map(|l| l.0.as_str()), Some("q"));
        // A Kerberos Server section starts, refusing logins later; an empty file or one
        // without the section is no SASL at all (kazoo's harness writes an empty one).
        let c = config(&[("sasl.serverconfig", "Kerberos")], Some(JAAS)).unwrap();
        assert_eq!(c.server_login, ServerLogin::Gssapi);
        assert_eq!(
            config(&[], Some("")).unwrap().server_login,
            ServerLogin::None
        );
        assert!(
            config(&[("authProvider.1", SASL_PROVIDER)], None)
                .unwrap()
                .provider
        );
        let c = config(&[("sessionRequireClientSASLAuth", "true")], Some(JAAS)).unwrap();
        assert!(c.enforce_auth && c.enforce_schemes == ["sasl"]);
    }

    #[test]
    fn bad_combinations_and_files_stop_the_start() {
        for (keys, jaas, says) in [
            (
                &[][..],
                Some("Server {\n M required a=\n};"),
                "jaas.conf:3:1: expected the value",
            ),
            (
                &[("sasl.serverconfig", "Nope")][..],
                Some(JAAS),
                "no JAAS section named \"Nope\"",
            ),
            (
                &[("sasl.serverconfig", "Other")][..],
                Some(JAAS),
                "PlainLoginModule is not supported",
            ),
            (
                &[("quorum.auth.serverRequireSasl", "true")][..],
                Some(JAAS),
                "enableSasl is disabled",
            ),
            (
                &[("quorum.auth.learnerRequireSasl", "true")][..],
                Some(JAAS),
                "enableSasl is disabled",
            ),
            (
                &[("quorum.auth.enableSasl", "true")][..],
                None,
                "needs a JAAS file",
            ),
            (
                &[
                    ("quorum.auth.enableSasl", "true"),
                    ("quorum.auth.server.saslLoginContext", "Kerberos"),
                ][..],
                Some(JAAS),
                "GSSAPI",
            ),
            (
                &[
                    ("quorum.auth.enableSasl", "true"),
                    ("quorum.auth.learner.saslLoginContext", "Server"),
                ][..],
                Some(JAAS),
                "username and password",
            ),
            (
                &[("enforce.auth.enabled", "true")][..],
                Some(JAAS),
                "enforce.auth.schemes must be",
            ),
            (
                &[
                    ("enforce.auth.enabled", "true"),
                    ("enforce.auth.schemes", "sasl"),
                ][..],
                None,
                "no JAAS file",
            ),
            (
                &[
                    ("enforce.auth.enabled", "true"),
                    ("enforce.auth.schemes", "sasl"),
                ][..],
                Some(""),
                "needed by enforce.auth.schemes",
            ),
            (
                &[("enforce.auth.schemes", "digest,kerberos")][..],
                None,
                "\"kerberos\" is not available",
            ),
            (
                &[("enforce.auth.enabled", "yes")][..],
                None,
                "expected true or false",
            ),
        ] {
            let err = config(keys, jaas).expect_err(says);
            assert!(err.contains(says), "{keys:?}: {err}");
        }
        let mut c = SaslConfig::default();
        c.set_jaas_file(Path::new("/nonexistent/jaas.conf"));
        let err = c.finish("zoo.cfg").unwrap_err().to_string();
        assert!(
            err.contains("/nonexistent/jaas.conf: cannot read the JAAS file"),
            "{err}"
        );
    }
}
