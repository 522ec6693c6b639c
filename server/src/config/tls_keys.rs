//! ZooKeeper's TLS keys in zoo.cfg: the secure client port (`secureClientPort`,
//! `secureClientPortAddress`, `client.portUnification`), TLS between servers
//! (`sslQuorum`, `portUnification`), and the `ssl.*` / `ssl.quorum.*` families
//! (X509Util's keys: key and trust stores, clientAuth, protocols, cipher suites, hostname
//! verification), as ZooKeeper 3.8 reads them. Pure parsing: files are read when the
//! server starts (`crate::tls`).
//!
//! A key ZooKeeper knows and Paddock does not implement (`ssl.crl=true`, `ssl.ocsp=true`,
//! `ssl.context.supplier.class`, another `ssl.authProvider` than x509, ...) stops the
//! start with the reason, as the rest of [`super::zk_keys`] does.

use std::path::PathBuf;

use serde::Serialize;

use super::Secret;
use super::properties::Loc;
use super::zoo_cfg::{parse_bool, parse_int};
use crate::config::ConfigError;

/// How a key or trust store file is encoded (`ssl.keyStore.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StoreType {
    Pem,
    Pkcs12,
    Jks,
}

impl StoreType {
    fn parse(value: &str) -> Option<StoreType> {
        match value.trim().to_ascii_uppercase().as_str() {
            "PEM" => Some(StoreType::Pem),
            "PKCS12" | "P12" | "PFX" => Some(StoreType::Pkcs12),
            "JKS" => Some(StoreType::Jks),
            _ => None,
        }
    }

    /// ZooKeeper's inference from the file name when no type is given
    /// (KeyStoreFileType.fromFilename): .jks, .pem, .p12/.pfx.
    pub fn from_file_name(path: &std::path::Path) -> Option<StoreType> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "jks" => Some(StoreType::Jks),
            "pem" | "crt" | "key" => Some(StoreType::Pem),
            "p12" | "pfx" => Some(StoreType::Pkcs12),
            _ => None,
        }
    }
}

/// A key store or trust store: `ssl[.quorum].{keyStore,trustStore}.{location,password,type}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StoreSpec {
    pub location: Option<PathBuf>,
    /// Never serialized.
    #[serde(skip)]
    pub password: Option<Secret>,
    /// `...passwordPath`: a file holding the password (read at start).
    pub password_path: Option<PathBuf>,
    pub store_type: Option<StoreType>,
}

impl StoreSpec {
    pub fn is_set(&self) -> bool {
        self.location.is_some()
    }
}

/// `ssl.clientAuth`: whether a TLS server asks clients for a certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    None,
    Want,
    /// ZooKeeper's default.
    #[default]
    Need,
}

/// One family of `ssl.*` keys: the client port's (`ssl.`) or the quorum's (`ssl.quorum.`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsSide {
    pub key_store: StoreSpec,
    pub trust_store: StoreSpec,
    pub client_auth: ClientAuth,
    /// `ssl.protocol` (default TLSv1.3, as ZooKeeper 3.8 on a JDK that has it).
    pub protocol: Option<String>,
    /// `ssl.enabledProtocols`, comma-separated.
    pub enabled_protocols: Option<Vec<String>>,
    /// `ssl.ciphersuites`, comma-separated (IANA/Java names).
    pub cipher_suites: Option<Vec<String>>,
    /// `ssl.hostnameVerification` (default true): a TLS client checks the server's
    /// certificate names the host it dialed; on the quorum the server also checks the
    /// connecting peer's address against the peer's certificate.
    pub hostname_verification: bool,
    /// `ssl.handshakeDetectionTimeoutMillis`: how long port unification waits for the
    /// first byte (default 5000).
    pub handshake_detection_timeout_ms: u64,
}

impl Default for TlsSide {
    fn default() -> TlsSide {
        TlsSide {
            key_store: StoreSpec::default(),
            trust_store: StoreSpec::default(),
            client_auth: ClientAuth::Need,
            protocol: None,
            enabled_protocols: None,
            cipher_suites: None,
            hostname_verification: true,
            handshake_detection_timeout_ms: 5000,
        }
    }
}

/// Everything TLS in a zoo.cfg.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsConfig {
    /// `secureClientPort`: the TLS client port (0 asks the OS for one; None: none).
    pub secure_client_port: Option<u16>,
    /// `secureClientPortAddress` (defaults to clientPortAddress).
    pub secure_client_address: Option<String>,
    /// secureClientPort without clientPort (nor a `server.N` client port): the TLS port
    /// is the only client port, as in ZooKeeper.
    pub secure_only: bool,
    /// `client.portUnification`: the plaintext client port also accepts TLS, told apart
    /// by the first byte (a TLS handshake record starts with 0x16).
    pub client_port_unification: bool,
    /// `sslQuorum`: peers talk TLS on the quorum port.
    pub ssl_quorum: bool,
    /// `portUnification`: the quorum port accepts TLS and plaintext peers (for a rolling
    /// switch to sslQuorum).
    pub quorum_port_unification: bool,
    /// `client.certReload` (client port) and `sslQuorumReloadCertFiles` (quorum): reload
    /// stores when their files change. Paddock's default is on (ZooKeeper's is off).
    pub client_cert_reload: bool,
    pub quorum_cert_reload: bool,
    /// `X509AuthenticationProvider.superUser`: a client whose certificate's subject DN is
    /// this is the super user.
    pub x509_super_user: Option<String>,
    pub client: TlsSide,
    pub quorum: TlsSide,
}

impl Default for TlsConfig {
    fn default() -> TlsConfig {
        TlsConfig {
            secure_client_port: None,
            secure_client_address: None,
            secure_only: false,
            client_port_unification: false,
            ssl_quorum: false,
            quorum_port_unification: false,
            client_cert_reload: true,
            quorum_cert_reload: true,
            x509_super_user: None,
            client: TlsSide::default(),
            quorum: TlsSide::default(),
        }
    }
}

impl TlsConfig {
    /// Whether the client port side of TLS is in use.
    pub fn client_tls_wanted(&self) -> bool {
        self.secure_client_port.is_some() || self.client_port_unification
    }

    /// Whether the quorum side of TLS is in use.
    pub fn quorum_tls_wanted(&self) -> bool {
        self.ssl_quorum || self.quorum_port_unification
    }

    /// Handles a TLS key (already without a `zookeeper.` prefix); `Ok(false)` when `key` is
    /// not one.
    pub(super) fn accept(
        &mut self,
        key: &str,
        value: &str,
        loc: &Loc,
    ) -> Result<bool, ConfigError> {
        let flag = |v: &str| parse_bool(loc, key, v);
        match key {
            "secureClientPort" => {
                let port = parse_int(loc, key, value, -1, 65535)?;
                // ZooKeeper's `conf` prints -1 for none; 0 asks the OS for a port.
                self.secure_client_port = (port >= 0).then_some(port as u16);
            }
            "secureClientPortAddress" => {
                if value.is_empty() {
                    return Err(loc.err(key, "must not be empty"));
                }
                self.secure_client_address =
                    Some(value.trim_matches(|c| c == '[' || c == ']').to_string());
            }
            "client.portUnification" => self.client_port_unification = flag(value)?,
            "sslQuorum" => self.ssl_quorum = flag(value)?,
            "portUnification" => self.quorum_port_unification = flag(value)?,
            "client.certReload" => self.client_cert_reload = flag(value)?,
            "sslQuorumReloadCertFiles" => self.quorum_cert_reload = flag(value)?,
            "X509AuthenticationProvider.superUser" => {
                self.x509_super_user = Some(value.to_string())
            }
            "ssl.authProvider" | "ssl.quorum.authProvider" => {
                if value.trim() != "x509" {
                    return Err(loc.err(
                        key,
                        format!(
                            "only the x509 provider is implemented, got {value:?}. Remove it \
                             (the client's certificate subject is its x509 id)"
                        ),
                    ));
                }
            }
            k => {
                let (side, rest) = if let Some(rest) = k.strip_prefix("ssl.quorum.") {
                    (&mut self.quorum, rest)
                } else if let Some(rest) = k.strip_prefix("ssl.") {
                    (&mut self.client, rest)
                } else {
                    return Ok(false);
                };
                side.accept(rest, key, value, loc)?;
            }
        }
        Ok(true)
    }

    /// Checks that what is switched on has what it needs, and reads password files.
    pub(super) fn finish(&mut self, file: &str) -> Result<(), ConfigError> {
        let err = |message: String| ConfigError::File {
            file: file.to_string(),
            message,
        };
        if self.client_tls_wanted() {
            let why = if self.secure_client_port.is_some() {
                "secureClientPort"
            } else {
                "client.portUnification=true"
            };
            self.client
                .check(why, "ssl.", false)
                .map_err(|m| err(m.to_string()))?;
        }
        if self.quorum_tls_wanted() {
            let why = if self.ssl_quorum {
                "sslQuorum=true"
            } else {
                "portUnification=true"
            };
            self.quorum
                .check(why, "ssl.quorum.", true)
                .map_err(|m| err(m.to_string()))?;
        }
        for store in [
            &mut self.client.key_store,
            &mut self.client.trust_store,
            &mut self.quorum.key_store,
            &mut self.quorum.trust_store,
        ] {
            if let Some(path) = &store.password_path
                && store.password.is_none()
            {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    err(format!(
                        "cannot read the password file {}: {e}",
                        path.display()
                    ))
                })?;
                store.password = Some(Secret(text.trim_end_matches(['\r', '\n']).to_string()));
            }
        }
        Ok(())
    }
}

impl TlsSide {
    fn accept(&mut self, rest: &str, key: &str, value: &str, loc: &Loc) -> Result<(), ConfigError> {
        let list = |v: &str| -> Vec<String> {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let store_type = |v: &str| {
            StoreType::parse(v).ok_or_else(|| {
                loc.err(
                    key,
                    format!("expected PEM, PKCS12 or JKS, got {v:?} (BCFKS is not implemented)"),
                )
            })
        };
        match rest {
            "keyStore.location" => self.key_store.location = non_empty(value).map(PathBuf::from),
            "keyStore.password" => self.key_store.password = Some(Secret(value.to_string())),
            "keyStore.passwordPath" => {
                self.key_store.password_path = non_empty(value).map(PathBuf::from)
            }
            "keyStore.type" if value.trim().is_empty() => self.key_store.store_type = None,
            "keyStore.type" => self.key_store.store_type = Some(store_type(value)?),
            "trustStore.location" => {
                self.trust_store.location = non_empty(value).map(PathBuf::from)
            }
            "trustStore.password" => self.trust_store.password = Some(Secret(value.to_string())),
            "trustStore.passwordPath" => {
                self.trust_store.password_path = non_empty(value).map(PathBuf::from)
            }
            "trustStore.type" if value.trim().is_empty() => self.trust_store.store_type = None,
            "trustStore.type" => self.trust_store.store_type = Some(store_type(value)?),
            "clientAuth" => {
                self.client_auth = match value.trim().to_ascii_lowercase().as_str() {
                    "" | "need" => ClientAuth::Need,
                    "want" => ClientAuth::Want,
                    "none" => ClientAuth::None,
                    _ => {
                        return Err(
                            loc.err(key, format!("expected none, want or need, got {value:?}"))
                        );
                    }
                }
            }
            "protocol" => self.protocol = non_empty(value).map(str::to_string),
            "enabledProtocols" => self.enabled_protocols = Some(list(value)),
            "ciphersuites" => self.cipher_suites = Some(list(value)),
            "hostnameVerification" => self.hostname_verification = parse_bool(loc, key, value)?,
            "handshakeDetectionTimeoutMillis" => {
                self.handshake_detection_timeout_ms =
                    parse_int(loc, key, value, 1, i64::from(i32::MAX))? as u64
            }
            // The JDK's or OpenSSL's engine: Paddock has rustls.
            "sslProvider" => {}
            "crl" | "ocsp" if parse_bool(loc, key, value)? => {
                return Err(loc.err(
                    key,
                    "certificate revocation checks are not implemented. Remove it (or set it to \
                     false) and revoke by removing the CA or certificate from the trust store \
                     (stores reload when their files change)",
                ));
            }
            "crl" | "ocsp" => {}
            _ => {
                return Err(loc.err(
                    key,
                    "this TLS setting is not implemented. Remove it; Paddock reads \
                     ssl[.quorum].keyStore/trustStore.{location,password,passwordPath,type}, \
                     clientAuth, protocol, enabledProtocols, ciphersuites, hostnameVerification \
                     and handshakeDetectionTimeoutMillis",
                ));
            }
        }
        Ok(())
    }

    /// `dials`: this side also connects out (the quorum), so it always checks the other
    /// end's certificate.
    fn check(&self, why: &str, prefix: &str, dials: bool) -> Result<(), String> {
        if !self.key_store.is_set() {
            return Err(format!(
                "{why} needs a key store: set {prefix}keyStore.location (PEM, PKCS12 or JKS)"
            ));
        }
        if !self.trust_store.is_set() && (dials || self.client_auth != ClientAuth::None) {
            let or = if dials {
                String::new()
            } else {
                format!(", or {prefix}clientAuth=none")
            };
            return Err(format!(
                "{why} needs a trust store to check peer certificates: set \
                 {prefix}trustStore.location{or}"
            ));
        }
        Ok(())
    }
}

fn non_empty(value: &str) -> Option<&str> {
    let v = value.trim();
    (!v.is_empty()).then_some(v)
}
