//! TLS on real server processes: the secure client port with PEM, PKCS12 and JKS stores,
//! ssl.clientAuth, x509 ACLs and the super user, client.portUnification, the bad inputs
//! (plaintext on the TLS port, TLS on the plaintext port, untrusted and expired
//! certificates, a wrong store password, a missing store), reloading stores when their
//! files change, and quorum TLS (sslQuorum) on a 3-server ensemble.
//!
//! Certificates are made here with rcgen; PKCS12 stores with the p12-keystore crate and
//! JKS stores with the JDK's keytool (e2e/install-deps.sh installs a JDK).

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::ensemble::{Ensemble, ensure_node, member_3_stays_out};
use common::{
    Reply, Server, eventually, free_port, new_session_request, next_loopback, run, within,
};
use paddock_proto::{
    Acl, ConnectResponse, CreateRequest, ErrorCode, GetDataRequest, Id, Jute, Reader, ReplyHeader,
    Request, perms,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const PASSWORD: &str = "s3cret-pw";

/// A CA and certificates it signed, written to a directory.
struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
    ca_der: Vec<u8>,
    ca: Issuer<'static, KeyPair>,
}

/// One certificate with its key.
struct Leaf {
    cert_pem: String,
    cert_der: Vec<u8>,
    key_pem: String,
    key_der: Vec<u8>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Pki {
            dir: tempfile::tempdir().unwrap(),
            ca_pem: cert.pem(),
            ca_der: cert.der().to_vec(),
            ca: Issuer::new(params, key),
        }
    }

    /// A certificate for `cn` (O=Example), valid for the loopback `ip` and localhost.
    fn leaf(&self, cn: &str, ip: IpAddr, expired: bool) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.subject_alt_names.push(SanType::IpAddress(ip));
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Example");
        params.distinguished_name.push(DnType::CommonName, cn);
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.ca).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        }
    }

    /// A server certificate for every loopback address a test member may get
    /// (127.0.0.2-254, as `next_loopback` hands them out), and localhost.
    fn member_leaf(&self, cn: &str) -> Leaf {
        let leaf = self.leaf(cn, IpAddr::from([127, 0, 0, 1]), false);
        let key = KeyPair::from_der_and_sign_algo(
            &rustls::pki_types::PrivatePkcs8KeyDer::from(leaf.key_der.clone()).into(),
            &rcgen::PKCS_ECDSA_P256_SHA256,
        )
        .unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        for x in 1..=254u8 {
            params
                .subject_alt_names
                .push(SanType::IpAddress(IpAddr::from([127, 0, 0, x])));
        }
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.ca).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            ..leaf
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

/// Writes the key store and trust store of `leaf` as `kind` (pem, p12 or jks): (key
/// store, trust store).
fn stores(pki: &Pki, leaf: &Leaf, name: &str, kind: &str) -> (PathBuf, PathBuf) {
    match kind {
        "pem" => (
            pki.write(
                &format!("{name}.pem"),
                format!("{}{}", leaf.key_pem, leaf.cert_pem).as_bytes(),
            ),
            pki.write(&format!("{name}-ca.pem"), pki.ca_pem.as_bytes()),
        ),
        "p12" => {
            let key = p12_keystore::PrivateKey::from_der(&leaf.key_der).unwrap();
            let chain = p12_keystore::PrivateKeyChain::new(
                vec![1u8; 20],
                key,
                [
                    p12_keystore::Certificate::from_der(&leaf.cert_der).unwrap(),
                    p12_keystore::Certificate::from_der(&pki.ca_der).unwrap(),
                ],
            );
            let mut ks = p12_keystore::KeyStore::new();
            ks.add_entry(name, p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
            let ks_bytes = ks.writer(PASSWORD).write().unwrap();
            let mut ts = p12_keystore::KeyStore::new();
            ts.add_entry(
                "ca",
                p12_keystore::KeyStoreEntry::Certificate(
                    p12_keystore::Certificate::from_der(&pki.ca_der).unwrap(),
                ),
            );
            let ts_bytes = ts.writer(PASSWORD).write().unwrap();
            (
                pki.write(&format!("{name}.p12"), &ks_bytes),
                pki.write(&format!("{name}-trust.p12"), &ts_bytes),
            )
        }
        "jks" => {
            let (p12, _) = stores(pki, leaf, name, "p12");
            let jks = pki.path(&format!("{name}.jks"));
            let trust = pki.path(&format!("{name}-trust.jks"));
            let ca = pki.write(&format!("{name}-ca.pem"), pki.ca_pem.as_bytes());
            keytool(&[
                "-importkeystore",
                "-noprompt",
                "-srckeystore",
                &s(&p12),
                "-srcstoretype",
                "PKCS12",
                "-srcstorepass",
                PASSWORD,
                "-destkeystore",
                &s(&jks),
                "-deststoretype",
                "JKS",
                "-deststorepass",
                PASSWORD,
                "-destkeypass",
                PASSWORD,
            ]);
            keytool(&[
                "-importcert",
                "-noprompt",
                "-alias",
                "ca",
                "-file",
                &s(&ca),
                "-keystore",
                &s(&trust),
                "-storetype",
                "JKS",
                "-storepass",
                PASSWORD,
            ]);
            (jks, trust)
        }
        other => panic!("store kind {other}"),
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn keytool(args: &[&str]) {
    let out = Command::new("keytool")
        .args(args)
        .output()
        .expect("keytool (a JDK) is needed for the JKS tests: bash e2e/install-deps.sh");
    assert!(
        out.status.success(),
        "keytool {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A rustls client trusting `pki`'s CA, presenting `leaf` if given.
fn client_config(pki: &Pki, leaf: Option<&Leaf>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(pki.ca_der.clone())).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    Arc::new(match leaf {
        None => builder.with_no_client_auth(),
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from(leaf.cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der.clone())),
            )
            .unwrap(),
    })
}

/// A ZooKeeper session over any stream.
struct Session<S> {
    stream: S,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// Sends a ConnectRequest; None when the server closed instead of answering.
    async fn open(mut stream: S) -> Option<Session<S>> {
        let req = new_session_request();
        stream
            .write_all(&paddock_proto::frame::frame(&req.to_bytes()))
            .await
            .ok()?;
        let mut session = Session { stream };
        let frame = session.frame().await?;
        let resp = ConnectResponse::from_bytes(&frame).ok()?;
        (resp.session_id != 0).then_some(session)
    }

    async fn frame(&mut self) -> Option<Vec<u8>> {
        within(Duration::from_secs(10), "a frame", async {
            let mut len = [0u8; 4];
            self.stream.read_exact(&mut len).await.ok()?;
            let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
            self.stream.read_exact(&mut buf).await.ok()?;
            Some(buf)
        })
        .await
    }

    async fn call(&mut self, xid: i32, req: &Request) -> Reply {
        self.stream
            .write_all(&paddock_proto::frame::frame(&req.encode(xid)))
            .await
            .expect("send");
        let frame = self.frame().await.expect("reply");
        let mut r = Reader::new(&frame);
        let header = ReplyHeader::read(&mut r).unwrap();
        Reply {
            header,
            body: frame[r.position()..].to_vec(),
        }
    }

    async fn create(&mut self, path: &str, acl: Vec<Acl>) -> i32 {
        let req = Request::Create(CreateRequest {
            path: path.into(),
            data: b"x".to_vec().into(),
            acl,
            flags: 0,
        });
        self.call(1, &req).await.err()
    }

    async fn get(&mut self, path: &str) -> i32 {
        let req = Request::GetData(GetDataRequest {
            path: path.into(),
            watch: false,
        });
        self.call(2, &req).await.err()
    }
}

/// A TLS session at `addr`; Err says why it did not come up (handshake or close).
async fn tls_session(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Result<Session<tokio_rustls::client::TlsStream<TcpStream>>, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let tls = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_rustls::TlsConnector::from(config)
            .connect(ServerName::IpAddress(addr.ip().into()), tcp),
    )
    .await
    .map_err(|_| "handshake timed out".to_string())?
    .map_err(|e| format!("handshake: {e}"))?;
    Session::open(tls)
        .await
        .ok_or_else(|| "closed after the handshake".to_string())
}

async fn plain_session(addr: SocketAddr) -> Option<Session<TcpStream>> {
    Session::open(TcpStream::connect(addr).await.ok()?).await
}

fn open() -> Vec<Acl> {
    vec![Acl {
        perms: perms::ALL,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]
}

/// A server on a fresh loopback address with PEM stores from `pki` and `extra` lines:
/// (server, its TLS port, key store, trust store).
fn pem_server(pki: &Pki, name: &str, extra: &[&str]) -> (Server, SocketAddr, PathBuf, PathBuf) {
    let ip = next_loopback();
    let (ks, ts) = stores(pki, &pki.leaf("server", ip.into(), false), name, "pem");
    let (server, secure) = tls_server(ip, &ks, Some(&ts), extra);
    (server, secure, ks, ts)
}

/// A standalone server on a fresh loopback address with a TLS port and `extra` lines.
fn tls_server(
    ip: std::net::Ipv4Addr,
    ks: &Path,
    ts: Option<&Path>,
    extra: &[&str],
) -> (Server, SocketAddr) {
    let port = free_port(ip);
    let mut b = Server::builder()
        .ip(ip)
        .cfg(&format!("clientPortAddress={ip}"))
        .cfg(&format!("secureClientPort={port}"))
        .cfg(&format!("ssl.keyStore.location={}", ks.display()))
        .cfg(&format!("ssl.keyStore.password={PASSWORD}"));
    if let Some(ts) = ts {
        b = b
            .cfg(&format!("ssl.trustStore.location={}", ts.display()))
            .cfg(&format!("ssl.trustStore.password={PASSWORD}"));
    }
    for line in extra {
        b = b.cfg(line);
    }
    let server = b.start();
    (server, SocketAddr::new(ip.into(), port))
}

#[test]
fn a_tls_client_works_with_pem_pkcs12_and_jks_stores() {
    run(async {
        for kind in ["pem", "p12", "jks"] {
            let ip = next_loopback();
            let pki = Pki::new("test-ca");
            let server_leaf = pki.leaf("server", ip.into(), false);
            let client_leaf = pki.leaf("client", ip.into(), false);
            let (ks, ts) = stores(&pki, &server_leaf, "server", kind);
            let (server, secure) = tls_server(ip, &ks, Some(&ts), &[]);
            let mut tls = tls_session(secure, client_config(&pki, Some(&client_leaf)))
                .await
                .unwrap_or_else(|e| panic!("{kind}: {e}\n{}", server.log()));
            assert_eq!(tls.create("/over-tls", open()).await, 0, "{kind}");
            // The plaintext port still serves, and sees the same tree.
            let mut plain = plain_session(server.addr())
                .await
                .expect("plaintext session");
            assert_eq!(plain.get("/over-tls").await, 0, "{kind}");
            server.assert_no_fatal_log();
        }
    });
}

#[test]
fn client_auth_need_refuses_a_client_without_a_certificate_and_want_lets_it_in() {
    run(async {
        let pki = Pki::new("test-ca");
        let (server, secure, _, _) = pem_server(&pki, "server", &[]);
        let err = tls_session(secure, client_config(&pki, None)).await.err();
        assert!(
            err.is_some(),
            "need (the default) refuses a client without a certificate"
        );
        assert!(
            server
                .wait_for_log(
                    &["TLS handshake failed", "no certificates"],
                    Duration::from_secs(5)
                )
                .await,
            "{}",
            server.log()
        );
        drop(server);

        let (server, secure, _, _) = pem_server(&pki, "server2", &["ssl.clientAuth=want"]);
        let ip = secure.ip();
        let mut s = tls_session(secure, client_config(&pki, None))
            .await
            .expect("want: no certificate is fine");
        assert_eq!(s.create("/anon", open()).await, 0);
        let mut s = tls_session(secure, client_config(&pki, Some(&pki.leaf("c", ip, false))))
            .await
            .expect("want: a certificate is fine too");
        assert_eq!(s.get("/anon").await, 0);
        drop(server);

        let ip = next_loopback();
        let (ks, _) = stores(
            &pki,
            &pki.leaf("server", ip.into(), false),
            "server3",
            "pem",
        );
        let (_server, secure) = tls_server(ip, &ks, None, &["ssl.clientAuth=none"]);
        let mut s = tls_session(secure, client_config(&pki, None))
            .await
            .expect("none needs no trust store");
        assert_eq!(s.get("/zookeeper").await, 0);
    });
}

#[test]
fn the_certificate_subject_is_the_x509_id_and_the_super_user_passes() {
    run(async {
        let ip = next_loopback();
        let pki = Pki::new("test-ca");
        let (ks, ts) = stores(&pki, &pki.leaf("server", ip.into(), false), "server", "pem");
        let (server, secure) = tls_server(
            ip,
            &ks,
            Some(&ts),
            &["X509AuthenticationProvider.superUser=CN=admin,O=Example"],
        );
        let alice = pki.leaf("alice", ip.into(), false);
        let bob = pki.leaf("bob", ip.into(), false);
        let admin = pki.leaf("admin", ip.into(), false);
        let mut a = tls_session(secure, client_config(&pki, Some(&alice)))
            .await
            .unwrap();
        let only_alice = vec![Acl {
            perms: perms::ALL,
            id: Id {
                scheme: "x509".into(),
                id: "CN=alice,O=Example".into(),
            },
        }];
        assert_eq!(a.create("/alice", only_alice).await, 0);
        assert_eq!(a.get("/alice").await, 0, "alice reads her node");
        let mut b = tls_session(secure, client_config(&pki, Some(&bob)))
            .await
            .unwrap();
        assert_eq!(
            b.get("/alice").await,
            ErrorCode::NoAuth.code(),
            "bob may not"
        );
        let mut p = plain_session(server.addr())
            .await
            .unwrap_or_else(|| panic!("plaintext session: {}", server.log()));
        assert_eq!(
            p.get("/alice").await,
            ErrorCode::NoAuth.code(),
            "nor a plaintext client"
        );
        let mut root = tls_session(secure, client_config(&pki, Some(&admin)))
            .await
            .unwrap();
        assert_eq!(root.get("/alice").await, 0, "the x509 super user may");
        // The auth scheme takes the session's x509 id.
        let auth = vec![Acl {
            perms: perms::ALL,
            id: Id {
                scheme: "auth".into(),
                id: String::new(),
            },
        }];
        assert_eq!(b.create("/bob", auth).await, 0);
        assert_eq!(b.get("/bob").await, 0);
        assert_eq!(a.get("/bob").await, ErrorCode::NoAuth.code());
    });
}

#[test]
fn port_unification_serves_tls_and_plaintext_on_one_port() {
    run(async {
        let ip = next_loopback();
        let pki = Pki::new("test-ca");
        let (ks, ts) = stores(&pki, &pki.leaf("server", ip.into(), false), "server", "pem");
        let server = Server::builder()
            .ip(ip)
            .cfg(&format!("clientPortAddress={ip}"))
            .cfg("client.portUnification=true")
            .cfg("4lw.commands.whitelist=*")
            .cfg(&format!("ssl.keyStore.location={}", ks.display()))
            .cfg(&format!("ssl.trustStore.location={}", ts.display()))
            .start();
        let client = pki.leaf("client", ip.into(), false);
        let mut tls = tls_session(server.addr(), client_config(&pki, Some(&client)))
            .await
            .unwrap();
        assert_eq!(tls.create("/unified", open()).await, 0);
        let mut plain = plain_session(server.addr())
            .await
            .expect("plaintext on the same port");
        assert_eq!(plain.get("/unified").await, 0);
        // A four-letter word is plaintext too.
        let mut s = TcpStream::connect(server.addr()).await.unwrap();
        s.write_all(b"ruok").await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "imok");
    });
}

#[test]
fn bad_input_is_refused_with_a_reason_and_everyone_else_is_served() {
    run(async {
        let pki = Pki::new("test-ca");
        let (mut server, secure, _, _) = pem_server(&pki, "server", &[]);
        let ip = secure.ip();
        let good = client_config(&pki, Some(&pki.leaf("client", ip, false)));
        let mut keeps = tls_session(secure, good.clone()).await.unwrap();

        // A plaintext client on the TLS port.
        assert!(plain_session(secure).await.is_none());
        assert!(
            server
                .wait_for_log(
                    &["not a TLS handshake on the secure client port"],
                    Duration::from_secs(5)
                )
                .await
        );
        // A TLS client on the plaintext port.
        assert!(tls_session(server.addr(), good.clone()).await.is_err());
        assert!(
            server
                .wait_for_log(
                    &["TLS handshake on a plaintext client port"],
                    Duration::from_secs(5)
                )
                .await
        );
        // A certificate from another CA.
        let other = Pki::new("other-ca");
        let stranger = other.leaf("stranger", ip, false);
        let mut cfg = (*client_config(&pki, None)).clone();
        cfg.client_auth_cert_resolver = client_config(&other, Some(&stranger))
            .client_auth_cert_resolver
            .clone();
        assert!(
            tls_session(secure, Arc::new(cfg)).await.is_err(),
            "untrusted certificate"
        );
        assert!(
            server
                .wait_for_log(
                    &["TLS handshake failed", "UnknownIssuer"],
                    Duration::from_secs(5)
                )
                .await,
            "{}",
            server.log()
        );
        // An expired certificate from the right CA.
        let expired = pki.leaf("old", ip, true);
        assert!(
            tls_session(secure, client_config(&pki, Some(&expired)))
                .await
                .is_err(),
            "expired"
        );
        assert!(
            server
                .wait_for_log(
                    &["TLS handshake failed", "certificate expired"],
                    Duration::from_secs(5)
                )
                .await,
            "{}",
            server.log()
        );
        // Garbage after a TLS record header, and a client that says nothing.
        let mut g = TcpStream::connect(secure).await.unwrap();
        g.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3])
            .await
            .unwrap();
        drop(g);
        let _idle = TcpStream::connect(secure).await.unwrap();

        // Everyone else is still served.
        assert_eq!(keeps.create("/still", open()).await, 0);
        assert!(tls_session(secure, good).await.is_ok());
        server.assert_alive();
        server.assert_no_fatal_log();
    });
}

#[test]
fn a_bad_store_stops_the_start_with_the_reason() {
    let ip = next_loopback();
    let pki = Pki::new("test-ca");
    let leaf = pki.leaf("server", ip.into(), false);
    for (kind, key, says) in [
        ("p12", "ssl.keyStore.location", "wrong password"),
        ("jks", "ssl.keyStore.location", "wrong password"),
    ] {
        let (ks, ts) = stores(&pki, &leaf, &format!("bad-{kind}"), kind);
        let out = start_and_fail(&[
            format!("secureClientPort={}", free_port(ip)),
            format!("ssl.keyStore.location={}", ks.display()),
            "ssl.keyStore.password=not-the-password".into(),
            format!("ssl.trustStore.location={}", ts.display()),
            format!("ssl.trustStore.password={PASSWORD}"),
        ]);
        assert!(out.contains(key) && out.contains(says), "{kind}: {out}");
    }
    let out = start_and_fail(&[
        format!("secureClientPort={}", free_port(ip)),
        "ssl.keyStore.location=/nonexistent/keystore.jks".into(),
        "ssl.trustStore.location=/nonexistent/truststore.jks".into(),
    ]);
    assert!(
        out.contains("ssl.keyStore.location=/nonexistent/keystore.jks")
            && out.contains("cannot open"),
        "{out}"
    );
    let out = start_and_fail(&[format!("secureClientPort={}", free_port(ip))]);
    assert!(out.contains("secureClientPort needs a key store"), "{out}");
    let out = start_and_fail(&["ssl.crl=true".into()]);
    assert!(
        out.contains("ssl.crl") && out.contains("revocation"),
        "{out}"
    );
}

/// Starts paddock-server on a zoo.cfg with `lines`; it must exit non-zero: its stderr.
fn start_and_fail(lines: &[String]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("zoo.cfg");
    let mut text = format!(
        "dataDir={}\nclientPort=0\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n",
        dir.path().join("data").display()
    );
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(&cfg, text).unwrap();
    let mut child = Command::new(common::SERVER_BIN)
        .arg("--config")
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success(), "the server must refuse to start");
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return err;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server started with {lines:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn stores_are_read_again_when_their_files_change() {
    run(async {
        let first = Pki::new("first-ca");
        let (server, secure, ks, ts) = pem_server(&first, "server", &[]);
        let ip = secure.ip();
        let client1 = first.leaf("client", ip, false);
        let mut old = tls_session(secure, client_config(&first, Some(&client1)))
            .await
            .unwrap();

        // Rotate to a new CA: new key store and trust store, written over the old files.
        let second = Pki::new("second-ca");
        let leaf = second.leaf("server", ip, false);
        let tmp = ks.with_extension("tmp");
        std::fs::write(&tmp, format!("{}{}", leaf.key_pem, leaf.cert_pem)).unwrap();
        std::fs::rename(&tmp, &ks).unwrap();
        std::fs::write(&tmp, &second.ca_pem).unwrap();
        std::fs::rename(&tmp, &ts).unwrap();
        let client2 = second.leaf("client", ip, false);
        let rotated = common::eventually(Duration::from_secs(10), || {
            let cfg = client_config(&second, Some(&client2));
            async move { tls_session(secure, cfg).await.is_ok() }
        })
        .await;
        assert!(rotated, "the new stores are used: {}", server.log());
        assert!(
            tls_session(secure, client_config(&first, Some(&client1)))
                .await
                .is_err(),
            "the old CA is gone"
        );
        assert!(
            server
                .wait_for_log(&["reloaded"], Duration::from_secs(1))
                .await
        );
        // Connections made before keep working.
        assert_eq!(old.get("/zookeeper").await, 0);

        // A broken store is logged and the current one kept.
        std::fs::write(&ks, b"not a store").unwrap();
        assert!(
            server
                .wait_for_log(&["do not load"], Duration::from_secs(10))
                .await,
            "{}",
            server.log()
        );
        assert!(
            tls_session(secure, client_config(&second, Some(&client2)))
                .await
                .is_ok()
        );
    });
}

/// A 3-server ensemble with quorum TLS: the ssl.quorum.* stores of `kind` from `pki`
/// for every member, member 3's replaced by `member_3` lines.
fn tls_ensemble(pki: &Pki, kind: &str, member_3: &[String]) -> Ensemble {
    let (ks, ts) = stores(pki, &pki.member_leaf("member"), "quorum", kind);
    let mut b = Ensemble::builder(3)
        .direct()
        .cfg("sslQuorum=true")
        .cfg(&format!("ssl.quorum.keyStore.location={}", ks.display()))
        .cfg(&format!("ssl.quorum.keyStore.password={PASSWORD}"))
        .cfg(&format!("ssl.quorum.trustStore.location={}", ts.display()))
        .cfg(&format!("ssl.quorum.trustStore.password={PASSWORD}"));
    for line in member_3 {
        b = b.member_cfg(3, line);
    }
    b.start()
}

#[test]
fn a_quorum_tls_ensemble_elects_and_replicates() {
    let pki = Pki::new("quorum-ca");
    let ens = tls_ensemble(&pki, "p12", &[]);
    run(async {
        ens.wait_stable(Duration::from_secs(60)).await;
        // Written through every member (followers forward to the leader), read on each.
        for id in ens.ids() {
            ensure_node(
                ens.member(id).client(),
                &format!("/tls-{id}"),
                Duration::from_secs(20),
            )
            .await;
        }
        for id in ens.ids() {
            let mut s = plain_session(ens.member(id).client())
                .await
                .expect("session");
            for path in ["/tls-1", "/tls-2", "/tls-3"] {
                let seen = eventually(Duration::from_secs(10), || {
                    let addr = ens.member(id).client();
                    async move {
                        match plain_session(addr).await {
                            Some(mut s) => s.get(path).await == 0,
                            None => false,
                        }
                    }
                })
                .await;
                assert!(seen, "member {id} has {path}");
            }
            assert_eq!(s.get("/tls-1").await, 0);
        }
        // A peer that does not speak TLS is refused on the quorum port, with the reason.
        let mut raw = TcpStream::connect(ens.member(1).quorum).await.unwrap();
        raw.write_all(&7u64.to_be_bytes()).await.unwrap();
        let mut buf = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(10), raw.read(&mut buf)).await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "closed: {closed:?}"
        );
        assert!(
            ens.member(1)
                .server
                .wait_for_log(
                    &["refusing a quorum connection", "not a TLS handshake"],
                    Duration::from_secs(5)
                )
                .await
        );
    });
    for id in ens.ids() {
        assert!(
            ens.member(id).server.log().contains("tls=true"),
            "member {id} listens with TLS"
        );
    }
    ens.assert_no_fatal_log();
}

#[test]
fn a_member_whose_certificate_is_not_trusted_stays_out_and_the_others_serve() {
    let pki = Pki::new("quorum-ca");
    let other = Pki::new("another-ca");
    let (ks, _) = stores(&other, &other.member_leaf("intruder"), "intruder", "pem");
    let ens = tls_ensemble(
        &pki,
        "jks",
        &[
            format!("ssl.quorum.keyStore.location={}", ks.display()),
            "ssl.quorum.keyStore.type=PEM".to_string(),
        ],
    );
    member_3_stays_out(&ens);
    let log = ens.member(1).server.log() + &ens.member(2).server.log();
    assert!(
        log.contains("TLS handshake failed"),
        "the refusal names the cause"
    );
    assert!(
        ens.member(3).server.log().contains("TLS handshake"),
        "member 3 says why it cannot reach the others"
    );
}

#[test]
fn port_unification_on_the_quorum_port_lets_a_rolling_switch_to_tls_keep_its_quorum() {
    // Halfway through ZooKeeper's rolling switch: every member accepts both
    // (portUnification), member 1 already dials with TLS, 2 and 3 still in plaintext.
    let pki = Pki::new("quorum-ca");
    let (ks, ts) = stores(&pki, &pki.member_leaf("member"), "quorum", "pem");
    let ens = Ensemble::builder(3)
        .direct()
        .cfg("portUnification=true")
        .cfg(&format!("ssl.quorum.keyStore.location={}", ks.display()))
        .cfg(&format!("ssl.quorum.trustStore.location={}", ts.display()))
        .member_cfg(1, "sslQuorum=true")
        .start();
    run(async {
        ens.wait_stable(Duration::from_secs(60)).await;
        for id in ens.ids() {
            ensure_node(
                ens.member(id).client(),
                &format!("/rolling-{id}"),
                Duration::from_secs(20),
            )
            .await;
        }
        ens.wait_converged(Duration::from_secs(20)).await;
    });
    ens.assert_no_fatal_log();
}

#[test]
fn with_only_a_secure_client_port_no_plaintext_port_is_opened() {
    use std::io::BufRead;
    run(async {
        let ip = next_loopback();
        let pki = Pki::new("test-ca");
        let (ks, ts) = stores(&pki, &pki.leaf("server", ip.into(), false), "server", "pem");
        let port = free_port(ip);
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "dataDir={}\nclientPortAddress={ip}\nsecureClientPort={port}\n\
                 admin.enableServer=false\nssl.keyStore.location={}\n\
                 ssl.trustStore.location={}\n",
                dir.path().join("data").display(),
                ks.display(),
                ts.display()
            ),
        )
        .unwrap();
        let mut child = Command::new(common::SERVER_BIN)
            .arg("--config")
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("paddock-server listening") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("listening");
        let secure = SocketAddr::new(ip.into(), port);
        let client = pki.leaf("client", ip.into(), false);
        let served = tls_session(secure, client_config(&pki, Some(&client))).await;
        let plain = TcpStream::connect(SocketAddr::new(ip.into(), 2181)).await;
        let _ = child.kill();
        let _ = child.wait();
        assert!(line.contains(&format!("client={secure}")), "{line}");
        assert!(served.is_ok(), "the TLS port serves");
        assert!(plain.is_err(), "no plaintext port on {ip}:2181");
    });
}

#[test]
fn a_member_whose_certificate_does_not_name_its_address_stays_out() {
    // ssl.quorum.hostnameVerification (the default): member 3's certificate comes from
    // the right CA but names another address than its own.
    let pki = Pki::new("quorum-ca");
    let elsewhere = pki.leaf("member-3", IpAddr::from([10, 1, 2, 3]), false);
    let ks = pki.write(
        "elsewhere.pem",
        format!("{}{}", elsewhere.key_pem, elsewhere.cert_pem).as_bytes(),
    );
    let ens = tls_ensemble(
        &pki,
        "pem",
        &[
            format!("ssl.quorum.keyStore.location={}", ks.display()),
            "ssl.quorum.keyStore.type=PEM".to_string(),
        ],
    );
    member_3_stays_out(&ens);
    let log = ens.member(1).server.log() + &ens.member(2).server.log();
    assert!(
        log.contains("names neither") || log.contains("NotValidForName"),
        "the refusal names the cause:\n{log}"
    );
}
