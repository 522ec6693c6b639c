//! The test cluster's PKI: one CA, the API server's serving certificate, a client
//! certificate per identity (admin, controller-manager, scheduler, each node's kubelet)
//! and the ServiceAccount token signing key. Everything is written as PEM under
//! `<dir>/pki`; the API server authenticates clients by these certificates (x509 client
//! authentication), exactly as on a kubeadm cluster.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("generating {what}: {source}")]
    Generate { what: String, source: rcgen::Error },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Paths of one client or serving identity.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A client identity: the certificate's CN is the user name, each O a group.
pub struct ClientIdentity<'a> {
    pub file_stem: &'a str,
    pub user: &'a str,
    pub groups: &'a [&'a str],
}

pub struct Pki {
    dir: PathBuf,
    ca_params: CertificateParams,
    ca_key: KeyPair,
}

impl Pki {
    /// A new CA written to `<dir>/ca.crt`, plus the ServiceAccount signing key pair
    /// (`sa.key`, `sa.pub`).
    pub fn create(dir: &Path) -> Result<Pki, PkiError> {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let ca_key = generate_key("the CA key")?;
        let mut ca_params = CertificateParams::default();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "paddock-kubesim-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(|source| PkiError::Generate {
                what: "the CA certificate".into(),
                source,
            })?;
        let pki = Pki {
            dir: dir.to_path_buf(),
            ca_params,
            ca_key,
        };
        pki.write("ca.crt", &ca_cert.pem())?;
        pki.write("ca.key", &pki.ca_key.serialize_pem())?;

        let sa = generate_key("the ServiceAccount signing key")?;
        pki.write("sa.key", &sa.serialize_pem())?;
        pki.write("sa.pub", &sa.public_key_pem())?;
        Ok(pki)
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    pub fn sa_key(&self) -> PathBuf {
        self.dir.join("sa.key")
    }

    pub fn sa_pub(&self) -> PathBuf {
        self.dir.join("sa.pub")
    }

    /// The API server's serving certificate for the given names and addresses.
    pub fn serving(
        &self,
        stem: &str,
        dns_names: &[&str],
        ips: &[IpAddr],
    ) -> Result<CertFiles, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, stem);
        for name in dns_names {
            let name = (*name)
                .to_string()
                .try_into()
                .map_err(|source| PkiError::Generate {
                    what: format!("the name {name}"),
                    source,
                })?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        for ip in ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(stem, params)
    }

    /// A client certificate for `identity`.
    pub fn client(&self, identity: &ClientIdentity<'_>) -> Result<CertFiles, PkiError> {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, identity.user);
        for group in identity.groups {
            params
                .distinguished_name
                .push(DnType::OrganizationName, *group);
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(identity.file_stem, params)
    }

    fn issue(&self, stem: &str, params: CertificateParams) -> Result<CertFiles, PkiError> {
        let key = generate_key(stem)?;
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|source| PkiError::Generate {
                what: format!("the certificate {stem}"),
                source,
            })?;
        let files = CertFiles {
            cert: self.dir.join(format!("{stem}.crt")),
            key: self.dir.join(format!("{stem}.key")),
        };
        self.write(&format!("{stem}.crt"), &cert.pem())?;
        self.write(&format!("{stem}.key"), &key.serialize_pem())?;
        Ok(files)
    }

    fn write(&self, name: &str, contents: &str) -> Result<(), PkiError> {
        let path = self.dir.join(name);
        write_private(&path, contents.as_bytes()).map_err(|source| PkiError::Write { path, source })
    }
}

fn generate_key(what: &str) -> Result<KeyPair, PkiError> {
    KeyPair::generate().map_err(|source| PkiError::Generate {
        what: what.to_string(),
        source,
    })
}

/// Writes a file readable only by its owner (keys and certificates alike).
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)
}
