//! The credentials Secret: the ensemble's super-user password and its ZooKeeper digest.
//!
//! Generated once, when the Secret does not exist; never regenerated and never logged. The
//! servers read the digest (`PADDOCK_SUPER_DIGEST`); the operator uses the password for
//! reconfig (`addauth digest super:<password>`) and for the members' admin HTTP (Basic auth).

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use sha1::{Digest, Sha1};

use super::{EnsembleRef, metadata};

/// The super user's name, as ZooKeeper's superDigest spells it.
pub const SUPER_USER: &str = "super";
/// Secret key of the password.
pub const PASSWORD_KEY: &str = "password";
/// Secret key of the digest `super:<base64(sha1("super:" + password))>`.
pub const DIGEST_KEY: &str = "digest";

/// A fresh random password: 32 bytes from the OS, URL-safe base64 without padding.
pub fn generate_password() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// ZooKeeper's superDigest for this password: `super:<base64(sha1("super:" + password))>`.
pub fn super_digest(password: &str) -> String {
    let hash = Sha1::digest(format!("{SUPER_USER}:{password}").as_bytes());
    format!(
        "{SUPER_USER}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// The Secret `<name>-credentials` for this password.
pub fn credentials_secret(e: &EnsembleRef<'_>, password: &str) -> Secret {
    Secret {
        metadata: metadata(e, e.names.credentials_secret(), "credentials"),
        type_: Some("Opaque".to_string()),
        data: Some(BTreeMap::from([
            (
                PASSWORD_KEY.to_string(),
                ByteString(password.as_bytes().to_vec()),
            ),
            (
                DIGEST_KEY.to_string(),
                ByteString(super_digest(password).into_bytes()),
            ),
        ])),
        ..Secret::default()
    }
}
