//! Key and trust stores as ZooKeeper reads them (`ssl.keyStore.*`, `ssl.trustStore.*`):
//! PEM (a private key and its certificate chain in one file, or CA certificates),
//! PKCS#12 (through the p12-keystore crate) and JKS ([`super::jks`]). The type is
//! `...type`, else inferred from the file name as ZooKeeper does, else from the content.

use std::io::Read;
use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::config::{StoreSpec, StoreType};

/// A store file larger than this is refused (a store holds a few certificates).
const MAX_STORE_BYTES: u64 = 16 << 20;

/// A private key with its certificate chain (leaf first).
#[derive(Debug)]
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut data = Vec::new();
    file.take(MAX_STORE_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if data.len() as u64 > MAX_STORE_BYTES {
        return Err(format!(
            "{} is over {MAX_STORE_BYTES} bytes",
            path.display()
        ));
    }
    Ok(data)
}

/// The store's type: given, from the file name, or from the first bytes.
fn kind(spec: &StoreSpec, path: &Path, data: &[u8]) -> StoreType {
    if let Some(t) = spec.store_type.or_else(|| StoreType::from_file_name(path)) {
        return t;
    }
    match data {
        [0xfe, 0xed, 0xfe, 0xed, ..] | [0xce, 0xce, 0xce, 0xce, ..] => StoreType::Jks,
        [0x30, ..] => StoreType::Pkcs12,
        _ => StoreType::Pem,
    }
}

fn password(spec: &StoreSpec) -> &str {
    spec.password.as_ref().map_or("", |p| p.0.as_str())
}

fn pem_certs(data: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM certificate: {e}"))
}

fn pkcs12(data: &[u8], spec: &StoreSpec) -> Result<p12_keystore::KeyStore, String> {
    p12_keystore::KeyStore::from_pkcs12(
        data,
        password(spec),
        p12_keystore::Pkcs12ImportPolicy::Relaxed,
    )
    .map_err(|e| format!("cannot open the PKCS12 store (wrong password or not PKCS12?): {e}"))
}

fn jks(data: &[u8], spec: &StoreSpec) -> Result<super::jks::JksStore, String> {
    super::jks::parse(data, password(spec)).map_err(|e| format!("cannot open the JKS store: {e}"))
}

/// Reads the key store: this side's private key and certificate chain.
pub fn load_identity(spec: &StoreSpec) -> Result<Identity, String> {
    let path = spec.location.as_deref().ok_or("no location")?;
    let data = read(path)?;
    let identity = match kind(spec, path, &data) {
        StoreType::Pem => {
            let chain = pem_certs(&data)?;
            let key = PrivateKeyDer::from_pem_slice(&data).map_err(|e| {
                if String::from_utf8_lossy(&data).contains("ENCRYPTED PRIVATE KEY") {
                    "an encrypted PEM private key is not implemented: store it unencrypted \
                     (openssl pkcs8 -topk8 -nocrypt) in a file only the server can read, or \
                     use a PKCS12 or JKS store"
                        .to_string()
                } else {
                    format!("no private key in the PEM file: {e}")
                }
            })?;
            Identity { chain, key }
        }
        StoreType::Pkcs12 => {
            let store = pkcs12(&data, spec)?;
            let (_, chain) = store
                .private_key_chain()
                .ok_or("the PKCS12 store holds no private key with a certificate")?;
            Identity {
                chain: chain
                    .certs()
                    .iter()
                    .map(|c| CertificateDer::from(c.as_der().to_vec()))
                    .collect(),
                key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec())),
            }
        }
        StoreType::Jks => {
            let store = jks(&data, spec)?;
            let entry = store
                .keys
                .into_iter()
                .next()
                .ok_or("the JKS store holds no private key entry")?;
            Identity {
                chain: entry.chain.into_iter().map(CertificateDer::from).collect(),
                key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(entry.key_pkcs8)),
            }
        }
    };
    if identity.chain.is_empty() {
        return Err("the key store holds no certificate for its private key".into());
    }
    Ok(identity)
}

/// Reads the trust store: the CA certificates peers' certificates must chain to.
pub fn load_trust(spec: &StoreSpec) -> Result<Vec<CertificateDer<'static>>, String> {
    let path = spec.location.as_deref().ok_or("no location")?;
    let data = read(path)?;
    let certs: Vec<CertificateDer<'static>> = match kind(spec, path, &data) {
        StoreType::Pem => pem_certs(&data)?,
        StoreType::Pkcs12 => {
            let store = pkcs12(&data, spec)?;
            let mut out = Vec::new();
            for (_, entry) in store.entries() {
                match entry {
                    p12_keystore::KeyStoreEntry::Certificate(c) => {
                        out.push(CertificateDer::from(c.as_der().to_vec()))
                    }
                    p12_keystore::KeyStoreEntry::PrivateKeyChain(chain) => out.extend(
                        chain
                            .certs()
                            .iter()
                            .map(|c| CertificateDer::from(c.as_der().to_vec())),
                    ),
                    p12_keystore::KeyStoreEntry::Secret(_) => {}
                }
            }
            out
        }
        StoreType::Jks => {
            let store = jks(&data, spec)?;
            let mut out: Vec<CertificateDer<'static>> = store
                .trusted
                .into_iter()
                .map(CertificateDer::from)
                .collect();
            for key in store.keys {
                out.extend(key.chain.into_iter().map(CertificateDer::from));
            }
            out
        }
    };
    if certs.is_empty() {
        return Err("the trust store holds no certificate".into());
    }
    Ok(certs)
}
