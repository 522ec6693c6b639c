//! SASL: DIGEST-MD5 logins on the client port (the `sasl` opcode, the `sasl` ACL
//! scheme, `enforce.auth.*`) and between servers (`quorum`). The JAAS file is parsed by
//! [`jaas`] and interpreted by `config::sasl_keys`; the exchange itself is
//! `paddock_proto::sasl`.

pub mod jaas;
pub mod quorum;

use crate::config::{SaslConfig, ServerLogin};

/// What the core needs to serve SASL logins and enforce authentication.
#[derive(Debug, Clone, Default)]
pub struct ClientSasl {
    pub login: ServerLogin,
    /// `sasl` ids may appear in ACLs (the SASLAuthenticationProvider is configured).
    pub provider: bool,
    pub super_user: Option<String>,
    /// `enforce.auth.enabled`: the schemes one of which a connection must hold before
    /// any request but auth and sasl; `None` when not enforced.
    pub enforce_schemes: Option<Vec<String>>,
}

impl ClientSasl {
    pub fn from_config(cfg: &SaslConfig) -> ClientSasl {
        ClientSasl {
            login: cfg.server_login.clone(),
            provider: cfg.provider,
            super_user: cfg.super_user.clone(),
            enforce_schemes: cfg.enforce_auth.then(|| cfg.enforce_schemes.clone()),
        }
    }

    /// Whether SASL is required of every client (ZooKeeper's isSaslAuthRequired): a failed
    /// login then answers SessionClosedRequireSaslAuth instead of AuthFailed.
    pub fn required(&self) -> bool {
        self.enforce_schemes
            .as_ref()
            .is_some_and(|s| s.iter().any(|s| s == "sasl"))
    }
}

/// A fresh nonce: 128 random bits in base64 (quoted-string safe). `None` when the
/// system's random source fails, which fails the login (never a guessable nonce).
pub fn nonce() -> Option<String> {
    use base64::Engine;
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Whether `id` is a valid `sasl` ACL id: ZooKeeper's SASLAuthenticationProvider takes
/// any name a Kerberos name parser accepts, which is any name without '@', or
/// `primary[/instance]@REALM` with one '@' and no '/' after it.
pub fn valid_acl_id(id: &str) -> bool {
    match id.split_once('@') {
        None => true,
        Some((principal, realm)) => {
            !realm.contains('@')
                && !realm.contains('/')
                && principal.matches('/').count() <= 1
                && !principal.is_empty()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_acl_ids() {
        for ok in ["bob", "zk/host@REALM", "client@KAZOOTEST.ORG", ""] {
            assert!(valid_acl_id(ok), "{ok}");
        }
        for bad in ["a@b@c", "a/b/c@R", "@R", "a@R/x"] {
            assert!(!valid_acl_id(bad), "{bad}");
        }
        let n = nonce().unwrap();
        assert_eq!(n.len(), 24);
        assert_ne!(n, nonce().unwrap());
    }
}
