//! TLS to a server's secure client port (ZooKeeper's `secureClientPort`, or a port with
//! `client.portUnification`), with rustls. Certificates are PEM files: the CA that
//! signed the servers' certificates, and optionally this client's certificate and key
//! (servers with `ssl.clientAuth=need`, ZooKeeper's default, require one; its subject
//! becomes the session's `x509` id).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::Error;

/// TLS settings for [`ClientBuilder::tls`](crate::ClientBuilder::tls).
#[derive(Debug, Clone)]
pub struct TlsOptions {
    ca_file: PathBuf,
    client_cert: Option<(PathBuf, PathBuf)>,
    hostname_verification: bool,
}

impl TlsOptions {
    /// Trust the CA certificates in `ca_file` (PEM).
    pub fn new(ca_file: impl Into<PathBuf>) -> TlsOptions {
        TlsOptions {
            ca_file: ca_file.into(),
            client_cert: None,
            hostname_verification: true,
        }
    }

    /// Present this certificate (chain) and private key, both PEM.
    pub fn client_cert(
        mut self,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> TlsOptions {
        self.client_cert = Some((cert_file.into(), key_file.into()));
        self
    }

    /// Whether the server's certificate must name the host dialed (default true;
    /// ZooKeeper's `zookeeper.ssl.hostnameVerification`). Off, the certificate must
    /// still chain to the CA.
    pub fn hostname_verification(mut self, on: bool) -> TlsOptions {
        self.hostname_verification = on;
        self
    }

    /// Reads the files and builds the rustls config.
    pub(crate) fn build(&self) -> Result<Arc<rustls::ClientConfig>, Error> {
        let bad =
            |what: &Path, e: String| Error::BadArguments(format!("TLS: {}: {e}", what.display()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(&self.ca_file)
            .map_err(|e| bad(&self.ca_file, e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(&self.ca_file, e.to_string()))?;
        if certs.is_empty() {
            return Err(bad(&self.ca_file, "no certificate in the file".into()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| bad(&self.ca_file, e.to_string()))?;
        }
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| bad(&self.ca_file, e.to_string()))?;
        let verifier = Arc::new(Verifier {
            inner,
            check_name: self.hostname_verification,
        });
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::BadArguments(format!("TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match &self.client_cert {
            None => builder.with_no_client_auth(),
            Some((cert_file, key_file)) => {
                let chain = CertificateDer::pem_file_iter(cert_file)
                    .map_err(|e| bad(cert_file, e.to_string()))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad(cert_file, e.to_string()))?;
                let key = PrivateKeyDer::from_pem_file(key_file)
                    .map_err(|e| bad(key_file, e.to_string()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| bad(cert_file, e.to_string()))?
            }
        };
        Ok(Arc::new(config))
    }
}

/// The server name to verify: the host as dialed (a name or an IP address).
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.trim_matches(|c| c == '[' || c == ']').to_string())
        .map_err(|e| format!("{host}: not a valid TLS server name: {e}"))
}

/// webpki's verifier; without hostname verification a certificate that chains to the CA
/// but names another host passes (webpki checks the chain before the name).
#[derive(Debug)]
struct Verifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
