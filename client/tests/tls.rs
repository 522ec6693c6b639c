//! paddock-client and the `paddock` CLI over TLS, against a paddock-server with a
//! secureClientPort (PEM stores, ssl.clientAuth need): a session with a client
//! certificate, its x509 id, hostname verification, and what fails how.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{PaddockProcess, base_config, binary_ip, free_port};
use paddock_client::{Client, CreateMode, Error, TlsOptions};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

const PADDOCK: &str = env!("CARGO_BIN_EXE_paddock");

/// A CA, the server's certificate (for `names`) and a client's, as PEM files in `dir`.
fn pki(dir: &Path, names: &[IpAddr]) -> PathBuf {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "client-test-ca");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf = |name: &str, sans: &[IpAddr]| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.subject_alt_names = sans.iter().map(|ip| SanType::IpAddress(*ip)).collect();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(DnType::OrganizationName, "Example");
        p.distinguished_name.push(DnType::CommonName, name);
        let cert = p.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
        std::fs::write(
            dir.join(format!("{name}.pem")),
            format!("{}{}", key.serialize_pem(), cert.pem()),
        )
        .unwrap();
    };
    leaf("server", names);
    leaf("client", &[]);
    dir.to_path_buf()
}

/// A server whose TLS port has a certificate for `names`: (process, TLS address, pki dir).
fn tls_server(salt: u32, names: &[IpAddr]) -> (PaddockProcess, SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ip = binary_ip(salt);
    let port = free_port(ip);
    let certs = pki(dir.path(), names);
    let config = format!(
        "{}secureClientPort={port}\nsecureClientPortAddress={ip}\n\
         ssl.keyStore.location={}\nssl.trustStore.location={}\n",
        base_config(&dir.path().join("data")),
        certs.join("server.pem").display(),
        certs.join("ca.pem").display(),
    );
    let server = PaddockProcess::start(&dir.path().join("server"), &config, ip, None);
    (server, SocketAddr::new(ip.into(), port), dir)
}

fn options(dir: &Path) -> TlsOptions {
    TlsOptions::new(dir.join("ca.pem")).client_cert(dir.join("client.crt"), dir.join("client.key"))
}

async fn connect(addr: SocketAddr, tls: TlsOptions) -> Result<Client, Error> {
    Client::builder(addr.to_string())
        .connect_timeout(Duration::from_secs(5))
        .tls(tls)
        .connect()
        .await
}

#[tokio::test]
async fn a_session_over_tls_works_and_its_certificate_is_its_x509_id() {
    let ip: IpAddr = binary_ip(1).into();
    let (_server, secure, dir) = tls_server(1, &[ip]);
    let client = connect(secure, options(dir.path()))
        .await
        .expect("TLS session");
    client
        .create("/over-tls", b"yes", CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(
        client.get_data("/over-tls").await.unwrap().0,
        b"yes".to_vec()
    );
    let who = client.who_am_i().await.unwrap();
    assert!(
        who.iter()
            .any(|i| i.auth_scheme == "x509" && i.user == "CN=client,O=Example"),
        "{who:?}"
    );
    client.close().await;
}

#[tokio::test]
async fn the_server_certificate_must_name_the_host_unless_told_otherwise() {
    // The server's certificate names another address than the one dialled.
    let (_server, secure, dir) = tls_server(2, &[IpAddr::V4(Ipv4Addr::new(10, 9, 8, 7))]);
    let err = connect(secure, options(dir.path())).await.unwrap_err();
    assert!(
        matches!(&err, Error::CannotConnect { reason, .. } if reason.contains("TLS")),
        "{err}"
    );
    let client = connect(secure, options(dir.path()).hostname_verification(false))
        .await
        .expect("the CA still vouches for it");
    client.close().await;
    // No client certificate: the server (clientAuth need) refuses.
    let bare = TlsOptions::new(dir.path().join("ca.pem")).hostname_verification(false);
    assert!(connect(secure, bare).await.is_err());
    // A CA file that is not there is a bad argument, reported before connecting.
    let missing = TlsOptions::new(dir.path().join("nope.pem"));
    assert!(matches!(
        connect(secure, missing).await,
        Err(Error::BadArguments(_))
    ));
}

#[tokio::test]
async fn the_cli_connects_with_tls_flags() {
    let ip: IpAddr = binary_ip(3).into();
    let (_server, secure, dir) = tls_server(3, &[ip]);
    let d = dir.path();
    let run = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(PADDOCK);
        cmd.args([
            "--server",
            &secure.to_string(),
            "--timeout",
            "5s",
            "--tls-ca",
        ])
        .arg(d.join("ca.pem"))
        .args(extra)
        .env_remove("PADDOCK_SERVER");
        cmd.output().unwrap()
    };
    let cert = d.join("client.crt").display().to_string();
    let key = d.join("client.key").display().to_string();
    let out = run(&["--tls-cert", &cert, "--tls-key", &key, "--json", "whoami"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("CN=client,O=Example"), "{text}");
    let out = run(&["ls", "/"]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "no client certificate: cannot connect: {out:?}"
    );
}
