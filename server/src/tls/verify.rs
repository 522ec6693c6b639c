//! Certificate verifiers: rustls's webpki verifiers, plus X.509 version 1 end-entity
//! certificates, which webpki refuses and Java (hence ZooKeeper) accepts. kazoo's test
//! harness, for one, issues v1 client and server certificates.
//!
//! A v1 certificate has no extensions, so there is nothing to check but what this module
//! checks: it must be issued directly by one of the trust anchors (subject = issuer, the
//! anchor's key verifies its signature), be within its validity period, and its key must
//! verify the handshake signature. Chains through intermediates stay webpki's.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use x509_parser::prelude::{FromDer, X509Certificate, X509Version};
use x509_parser::time::ASN1Time;

/// Whether `der` is a version 1 certificate (false when it does not parse).
pub(crate) fn is_v1(der: &[u8]) -> bool {
    X509Certificate::from_der(der).is_ok_and(|(_, c)| c.version() == X509Version::V1)
}

fn bad(why: &str) -> Error {
    Error::General(why.to_string())
}

/// Checks a v1 end-entity certificate against `anchors` (see the module doc).
fn verify_v1(
    leaf_der: &[u8],
    anchors: &[CertificateDer<'static>],
    now: UnixTime,
) -> Result<(), Error> {
    let (_, leaf) =
        X509Certificate::from_der(leaf_der).map_err(|_| bad("unparsable certificate"))?;
    let now = ASN1Time::from_timestamp(now.as_secs() as i64).map_err(|_| bad("clock"))?;
    if !leaf.validity().is_valid_at(now) {
        return Err(Error::InvalidCertificate(
            if leaf.validity().not_after < now {
                rustls::CertificateError::Expired
            } else {
                rustls::CertificateError::NotValidYet
            },
        ));
    }
    for anchor in anchors {
        let Ok((_, ca)) = X509Certificate::from_der(anchor) else {
            continue;
        };
        if ca.subject().as_raw() != leaf.issuer().as_raw() {
            continue;
        }
        let is_ca = ca.version() == X509Version::V1
            || ca
                .basic_constraints()
                .ok()
                .flatten()
                .is_some_and(|bc| bc.value.ca);
        if is_ca && leaf.verify_signature(Some(ca.public_key())).is_ok() {
            return Ok(());
        }
    }
    Err(Error::InvalidCertificate(
        rustls::CertificateError::UnknownIssuer,
    ))
}

/// Verifies a handshake signature with the public key of a v1 certificate.
fn verify_v1_signature(
    cert: &CertificateDer<'_>,
    message: &[u8],
    dss: &DigitallySignedStruct,
    algs: &WebPkiSupportedAlgorithms,
    tls13: bool,
) -> Result<HandshakeSignatureValid, Error> {
    let (_, parsed) = X509Certificate::from_der(cert).map_err(|_| bad("unparsable certificate"))?;
    let spki = SubjectPublicKeyInfoDer::from(parsed.public_key().raw);
    if tls13 {
        return rustls::crypto::verify_tls13_signature_with_raw_key(message, &spki, dss, algs);
    }
    let key = &parsed.public_key().subject_public_key.data;
    let candidates = algs
        .mapping
        .iter()
        .filter(|(scheme, _)| *scheme == dss.scheme)
        .flat_map(|(_, list)| list.iter());
    for alg in candidates {
        if alg.verify_signature(key, message, dss.signature()).is_ok() {
            return Ok(HandshakeSignatureValid::assertion());
        }
    }
    Err(Error::InvalidCertificate(
        rustls::CertificateError::BadSignature,
    ))
}

/// A handshake signature: by the v1 certificate's key ourselves, else by `webpki`.
fn by_key(
    cert: &CertificateDer<'_>,
    message: &[u8],
    dss: &DigitallySignedStruct,
    algs: &WebPkiSupportedAlgorithms,
    tls13: bool,
    webpki: impl FnOnce() -> Result<HandshakeSignatureValid, Error>,
) -> Result<HandshakeSignatureValid, Error> {
    if is_v1(cert) {
        verify_v1_signature(cert, message, dss, algs, tls13)
    } else {
        webpki()
    }
}

/// Client certificates (the server's side): webpki, then v1 leaves.
#[derive(Debug)]
pub struct ClientVerifier {
    pub inner: Arc<dyn ClientCertVerifier>,
    pub anchors: Vec<CertificateDer<'static>>,
    pub algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        match self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            Err(_) if is_v1(end_entity) => {
                verify_v1(end_entity, &self.anchors, now).map(|()| ClientCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        by_key(cert, message, dss, &self.algs, false, || {
            self.inner.verify_tls12_signature(message, cert, dss)
        })
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        by_key(cert, message, dss, &self.algs, true, || {
            self.inner.verify_tls13_signature(message, cert, dss)
        })
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Server certificates (a peer dialing another on the quorum): webpki, then v1 leaves.
/// Without hostname verification (`ssl.quorum.hostnameVerification=false`) the name is
/// not checked, the chain still is.
#[derive(Debug)]
pub struct ServerVerifier {
    pub inner: Arc<dyn ServerCertVerifier>,
    pub anchors: Vec<CertificateDer<'static>>,
    pub algs: WebPkiSupportedAlgorithms,
    pub check_name: bool,
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if is_v1(end_entity) {
            // A v1 certificate carries no subjectAltName, so only an unchecked name passes.
            if self.check_name {
                return Err(Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName,
                ));
            }
            return verify_v1(end_entity, &self.anchors, now)
                .map(|()| ServerCertVerified::assertion());
        }
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(Error::InvalidCertificate(
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
    ) -> Result<HandshakeSignatureValid, Error> {
        by_key(cert, message, dss, &self.algs, false, || {
            self.inner.verify_tls12_signature(message, cert, dss)
        })
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        by_key(cert, message, dss, &self.algs, true, || {
            self.inner.verify_tls13_signature(message, cert, dss)
        })
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
