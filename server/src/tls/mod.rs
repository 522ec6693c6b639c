//! TLS for the client port (`secureClientPort`, `client.portUnification`) and between
//! servers (`sslQuorum`), with rustls. The settings are ZooKeeper's `ssl.*` and
//! `ssl.quorum.*` keys (`crate::config::TlsConfig`); the stores are read here
//! ([`store`]), checked at start (a bad store or password stops the start with the
//! reason), and read again whenever their files change ([`Reloading`]).
//!
//! A client that presents a certificate the trust store vouches for is authenticated as
//! `x509:<subject DN>` ([`dn`]), as ZooKeeper's X509AuthenticationProvider does; the
//! subject named by `X509AuthenticationProvider.superUser` is the super user.

pub mod dn;
pub mod jks;
pub mod store;
pub mod verify;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{RootCertStore, SupportedProtocolVersion};
use tracing::{info, warn};

use crate::config::{ClientAuth, TlsSide};

/// What a TLS port works with, built from one [`TlsSide`].
pub struct Contexts {
    pub server: Arc<rustls::ServerConfig>,
    /// For dialing peers (quorum only).
    pub client: Arc<rustls::ClientConfig>,
}

/// The protocol versions `ssl.protocol` / `ssl.enabledProtocols` allow. rustls has
/// TLS 1.2 and 1.3; older versions named in the list are skipped with a warning.
fn versions(
    side: &TlsSide,
    prefix: &str,
) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    let named: Vec<String> = match (&side.enabled_protocols, side.protocol.as_deref()) {
        (Some(list), _) => list.clone(),
        (None, None) | (None, Some("TLSv1.3" | "TLS")) => vec!["TLSv1.3".into(), "TLSv1.2".into()],
        (None, Some(p)) => vec![p.to_string()],
    };
    let mut out = Vec::new();
    for name in &named {
        match name.as_str() {
            "TLSv1.3" => out.push(&rustls::version::TLS13),
            "TLSv1.2" => out.push(&rustls::version::TLS12),
            "TLSv1" | "TLSv1.1" | "SSLv3" => {
                warn!(protocol = %name, "{prefix}enabledProtocols: {name} is not offered (rustls has TLS 1.2 and 1.3 only)")
            }
            other => {
                return Err(format!(
                    "{prefix}protocol/{prefix}enabledProtocols: unknown protocol {other:?} \
                     (expected TLSv1.2 or TLSv1.3)"
                ));
            }
        }
    }
    if out.is_empty() {
        return Err(format!(
            "{prefix}enabledProtocols names no protocol Paddock has (TLSv1.2, TLSv1.3): {named:?}"
        ));
    }
    Ok(out)
}

/// ring's provider, with the cipher suites `ssl.ciphersuites` names (IANA/Java names;
/// rustls spells TLS 1.3 suites `TLS13_...`). Names rustls lacks are skipped with a
/// warning; none left is an error.
fn provider(side: &TlsSide, prefix: &str) -> Result<Arc<CryptoProvider>, String> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = &side.cipher_suites {
        let known = |s: &rustls::SupportedCipherSuite| -> String {
            let name = s.suite().as_str().unwrap_or_default();
            match name.strip_prefix("TLS13_") {
                Some(rest) => format!("TLS_{rest}"),
                None => name.to_string(),
            }
        };
        for name in names {
            if !provider.cipher_suites.iter().any(|s| known(s) == *name) {
                warn!(suite = %name, "{prefix}ciphersuites: not available in rustls; skipped");
            }
        }
        provider.cipher_suites.retain(|s| names.contains(&known(s)));
        if provider.cipher_suites.is_empty() {
            return Err(format!(
                "{prefix}ciphersuites names no cipher suite rustls has (for example \
                 TLS_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)"
            ));
        }
    }
    Ok(Arc::new(provider))
}

fn roots(
    anchors: &[rustls::pki_types::CertificateDer<'static>],
) -> Result<Arc<RootCertStore>, String> {
    let mut roots = RootCertStore::empty();
    for anchor in anchors {
        roots
            .add(anchor.clone())
            .map_err(|e| format!("a trust store certificate is not usable as a CA: {e}"))?;
    }
    Ok(Arc::new(roots))
}

/// Reads the stores of one side and builds its server (and, with `dials`, client)
/// configs. Errors name the key at fault.
pub fn build(side: &TlsSide, prefix: &str, dials: bool) -> Result<Contexts, String> {
    let identity = store::load_identity(&side.key_store).map_err(|e| {
        format!(
            "{prefix}keyStore.location={}: {e}",
            shown(&side.key_store.location)
        )
    })?;
    let anchors = match &side.trust_store.location {
        Some(_) => store::load_trust(&side.trust_store).map_err(|e| {
            format!(
                "{prefix}trustStore.location={}: {e}",
                shown(&side.trust_store.location)
            )
        })?,
        None => Vec::new(),
    };
    let provider = provider(side, prefix)?;
    let versions = versions(side, prefix)?;
    let algs = provider.signature_verification_algorithms;

    let verifier: Arc<dyn ClientCertVerifier> = match side.client_auth {
        ClientAuth::None => WebPkiClientVerifier::no_client_auth(),
        auth => {
            let builder =
                WebPkiClientVerifier::builder_with_provider(roots(&anchors)?, provider.clone());
            let builder = if auth == ClientAuth::Want {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            let inner = builder
                .build()
                .map_err(|e| format!("{prefix}trustStore.location: {e}"))?;
            Arc::new(verify::ClientVerifier {
                inner,
                anchors: anchors.clone(),
                algs,
            })
        }
    };
    let certified = certified_key(identity, &provider, prefix)?;
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("{prefix}protocol/ciphersuites: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified.clone())));

    let client = if dials {
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            roots(&anchors)?,
            provider.clone(),
        )
        .build()
        .map_err(|e| format!("{prefix}trustStore.location: {e}"))?;
        let verifier = Arc::new(verify::ServerVerifier {
            inner,
            anchors,
            algs,
            check_name: side.hostname_verification,
        });
        rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| format!("{prefix}protocol/ciphersuites: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified)))
    } else {
        // Never used to dial: an empty client config.
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth()
    };
    Ok(Contexts {
        server: Arc::new(server),
        client: Arc::new(client),
    })
}

/// The key store's key and chain as rustls serves them, after checking that the key is
/// the certificate's (rustls's own check parses the certificate with webpki, which
/// refuses X.509 v1 certificates; for those the public keys are compared here).
fn certified_key(
    identity: store::Identity,
    provider: &CryptoProvider,
    prefix: &str,
) -> Result<Arc<CertifiedKey>, String> {
    let unusable =
        |e: String| format!("{prefix}keyStore.location: the private key is not usable: {e}");
    let key = provider
        .key_provider
        .load_private_key(identity.key)
        .map_err(|e| unusable(e.to_string()))?;
    let certified = CertifiedKey::new(identity.chain, key);
    let mismatch =
        || format!("{prefix}keyStore.location: the private key is not the certificate's");
    match certified.cert.first() {
        Some(leaf) if verify::is_v1(leaf) => {
            let leaf_spki = x509_parser::parse_x509_certificate(leaf)
                .map(|(_, c)| c.public_key().raw.to_vec())
                .map_err(|e| unusable(e.to_string()))?;
            if let Some(spki) = certified.key.public_key()
                && spki.as_ref() != leaf_spki.as_slice()
            {
                return Err(mismatch());
            }
        }
        _ => certified.keys_match().map_err(|_| mismatch())?,
    }
    Ok(Arc::new(certified))
}

fn shown(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map_or(String::new(), |p| p.display().to_string())
}

/// The current contexts of one side, swapped when the store files change.
#[derive(Clone)]
pub struct Reloading {
    current: Arc<RwLock<Arc<Contexts>>>,
}

impl Reloading {
    pub fn server(&self) -> Arc<rustls::ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .server
            .clone()
    }

    pub fn client(&self) -> Arc<rustls::ClientConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .client
            .clone()
    }
}

/// How often store files are looked at for changes.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// The files of a side and when each was last changed.
fn stamps(side: &TlsSide) -> Vec<(PathBuf, Option<(SystemTime, u64)>)> {
    [
        &side.key_store.location,
        &side.trust_store.location,
        &side.key_store.password_path,
        &side.trust_store.password_path,
    ]
    .into_iter()
    .flatten()
    .map(|p| {
        let meta = std::fs::metadata(p).ok();
        (
            p.clone(),
            meta.and_then(|m| Some((m.modified().ok()?, m.len()))),
        )
    })
    .collect()
}

/// Builds the contexts of `side` (an error stops the start) and, with `reload`, watches
/// its files: when one changes, the stores are read again and new connections use them
/// (a store that does not load is logged and the previous one kept). Must be called in
/// a tokio runtime when `reload` is set.
pub fn start(
    side: &TlsSide,
    prefix: &'static str,
    dials: bool,
    reload: bool,
) -> Result<Reloading, String> {
    let contexts = build(side, prefix, dials)?;
    let reloading = Reloading {
        current: Arc::new(RwLock::new(Arc::new(contexts))),
    };
    if reload {
        let side = side.clone();
        let weak = Arc::downgrade(&reloading.current);
        tokio::spawn(async move {
            let mut seen = stamps(&side);
            loop {
                tokio::time::sleep(WATCH_EVERY).await;
                let Some(current) = weak.upgrade() else {
                    return;
                };
                let now = stamps(&side);
                if now == seen {
                    continue;
                }
                // A writer may still be mid-file: wait for the stamps to settle.
                tokio::time::sleep(Duration::from_millis(200)).await;
                let settled = stamps(&side);
                if settled != now {
                    continue;
                }
                seen = settled;
                let side = side.clone();
                match tokio::task::spawn_blocking(move || build(&side, prefix, dials)).await {
                    Ok(Ok(contexts)) => {
                        *current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(contexts);
                        info!(
                            "{prefix}* stores changed on disk: reloaded; new connections use them"
                        );
                    }
                    Ok(Err(e)) => warn!(
                        error = %e,
                        "{prefix}* stores changed on disk but do not load; still using the previous ones"
                    ),
                    Err(e) => warn!(error = %e, "{prefix}* store reload failed"),
                }
            }
        });
    }
    Ok(reloading)
}

/// The leaf certificate a TLS peer presented (verified by the handshake).
pub fn peer_leaf(
    conn: &rustls::ServerConnection,
) -> Option<rustls::pki_types::CertificateDer<'static>> {
    conn.peer_certificates()?
        .first()
        .map(|c| c.clone().into_owned())
}

/// Whether `leaf` names `host` (a DNS name or an IP address) in its subjectAltName, as
/// a TLS client checks a server's; for quorum hostname verification on the accepting
/// side (ZooKeeper's ZKTrustManager checks the connecting server's name too).
pub fn names(leaf: &rustls::pki_types::CertificateDer<'_>, host: &str) -> Result<(), String> {
    let parsed = rustls::server::ParsedCertificate::try_from(leaf).map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from(host.trim_matches(|c| c == '[' || c == ']'))
        .map_err(|e| e.to_string())?;
    rustls::client::verify_server_name(&parsed, &name).map_err(|e| e.to_string())
}

/// The `x509` id of a verified peer certificate chain: the leaf's subject DN.
pub fn x509_id(conn: &rustls::ServerConnection) -> Option<String> {
    let leaf = conn.peer_certificates()?.first()?;
    dn::subject_of(leaf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(protocol: Option<&str>, enabled: Option<&[&str]>, suites: Option<&[&str]>) -> TlsSide {
        let list = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        TlsSide {
            protocol: protocol.map(str::to_string),
            enabled_protocols: enabled.map(list),
            cipher_suites: suites.map(list),
            ..TlsSide::default()
        }
    }

    #[test]
    fn protocols_follow_zookeepers_keys() {
        let v = |s: &TlsSide| -> Vec<u16> {
            versions(s, "ssl.")
                .unwrap()
                .iter()
                .map(|v| u16::from(v.version))
                .collect()
        };
        // TLSv1.3 (the default) allows 1.2 too; TLSv1.2 alone is 1.2 only.
        assert_eq!(v(&side(None, None, None)), [0x0304, 0x0303]);
        assert_eq!(v(&side(Some("TLSv1.2"), None, None)), [0x0303]);
        assert_eq!(v(&side(None, Some(&["TLSv1.3"]), None)), [0x0304]);
        // Older names are skipped; none left, or an unknown name, is an error.
        assert_eq!(
            v(&side(None, Some(&["TLSv1.1", "TLSv1.2"]), None)),
            [0x0303]
        );
        assert!(versions(&side(None, Some(&["TLSv1"]), None), "ssl.").is_err());
        let err = versions(&side(Some("SSLv2"), None, None), "ssl.quorum.").unwrap_err();
        assert!(err.contains("ssl.quorum.protocol"), "{err}");
    }

    #[test]
    fn cipher_suites_are_named_as_iana_and_java_name_them() {
        let p = provider(
            &side(
                None,
                None,
                Some(&[
                    "TLS_AES_256_GCM_SHA384",
                    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                    "TLS_RSA_WITH_RC4_128_MD5",
                ]),
            ),
            "ssl.",
        )
        .unwrap();
        let names: Vec<_> = p.cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(
            names,
            [
                rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
                rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
            ]
        );
        assert!(
            provider(
                &side(None, None, Some(&["TLS_RSA_WITH_RC4_128_MD5"])),
                "ssl."
            )
            .is_err()
        );
        assert!(
            provider(&side(None, None, None), "ssl.")
                .unwrap()
                .cipher_suites
                .len()
                > 3
        );
    }
}
