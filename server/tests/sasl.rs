//! SASL DIGEST-MD5 on the client port, on real processes over raw sockets: logins from a
//! JAAS `Server` section, the `sasl` ACL scheme, `zookeeper.superUser`, bad logins
//! (wrong password, unknown user, garbage, oversize tokens: AuthFailed, then the
//! connection closes, the cause logged, everyone else still served), `enforce.auth`
//! (SessionClosedRequireSaslAuth, -124), a Kerberos section (refused, naming GSSAPI) and
//! JAAS files that stop the start.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{RawConn, SERVER_BIN, Server, run};
use paddock_proto::sasl::{Client, Service};
use paddock_proto::{
    Acl, AuthPacket, CreateRequest, GetDataRequest, GetSaslRequest, Id, OpCode, Request, Response,
    perms,
};

const T: Duration = Duration::from_secs(10);
const AUTH_FAILED: i32 = -115;
const NO_AUTH: i32 = -102;
const REQUIRE_SASL: i32 = -124;

const JAAS: &str = r#"
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="super_secret"
    user_bob="bob_secret";
};
Kerberos {
    com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true keyTab="/x";
};
"#;

/// A JAAS file in its own temporary directory (kept alive by the returned guard).
fn jaas_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jaas.conf");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn server_with(jaas: &Path, lines: &[&str]) -> Server {
    let mut b = Server::builder()
        .cfg("tickTime=500")
        .cfg(&format!(
            "java.security.auth.login.config={}",
            jaas.display()
        ))
        .cfg("authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider");
    for l in lines {
        b = b.cfg(l);
    }
    b.start()
}

/// Runs a DIGEST-MD5 login on `conn` (xids from 1); the error code of the reply that
/// failed, if any.
async fn login(conn: &mut RawConn, user: &str, password: &str) -> Result<(), i32> {
    let mut client = Client::new(Service::CLIENT, user, password, "test-cnonce".into());
    let mut token = client.initial();
    for xid in 1.. {
        let req = Request::Sasl(GetSaslRequest {
            token: token.clone().into(),
        });
        conn.send(xid, &req).await;
        let reply = conn.read_reply().await.ok_or(0)?;
        assert_eq!(reply.header.xid, xid);
        if reply.err() != 0 {
            return Err(reply.err());
        }
        let Response::Sasl(r) = reply.decode(OpCode::Sasl.code()) else {
            panic!("not a SASL reply")
        };
        match client.step(&r.token.0).expect("server tokens are valid") {
            Some(next) => token = next,
            None => return Ok(()),
        }
    }
    unreachable!()
}

/// Sends one SASL token and returns the reply's error code.
async fn sasl_token(conn: &mut RawConn, xid: i32, token: Vec<u8>) -> i32 {
    conn.send(
        xid,
        &Request::Sasl(GetSaslRequest {
            token: token.into(),
        }),
    )
    .await;
    conn.read_reply().await.expect("a reply").err()
}

async fn assert_closed(conn: &mut RawConn) {
    assert!(
        conn.try_read_reply(T).await.is_none(),
        "the server closes the connection"
    );
}

fn create(path: &str, acl: Vec<Acl>) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: b"v".to_vec().into(),
        acl,
        flags: 0,
    })
}

fn get(path: &str) -> Request {
    Request::GetData(GetDataRequest {
        path: path.into(),
        watch: false,
    })
}

fn acl(scheme: &str, id: &str) -> Vec<Acl> {
    vec![Acl {
        perms: perms::ALL,
        id: Id {
            scheme: scheme.into(),
            id: id.into(),
        },
    }]
}

/// addauth digest `user:password` (always accepted).
async fn addauth_digest(conn: &mut RawConn, user_password: &str) {
    let auth = Request::Auth(AuthPacket {
        kind: 0,
        scheme: "digest".into(),
        auth: user_password.as_bytes().to_vec().into(),
    });
    conn.send(-4, &auth).await;
    assert_eq!(conn.read_reply().await.expect("a reply").err(), 0);
}

async fn request(conn: &mut RawConn, xid: i32, req: &Request) -> i32 {
    conn.send(xid, req).await;
    conn.read_reply().await.expect("a reply").err()
}

#[test]
fn digest_md5_login_and_the_sasl_acl_scheme() {
    let (_dir, jaas) = jaas_file(JAAS);
    let server = server_with(&jaas, &["superUser=super"]);
    let addr = server.addr();
    run(async move {
        let mut bob = RawConn::session(addr).await;
        login(&mut bob, "bob", "bob_secret")
            .await
            .expect("bob logs in");
        assert_eq!(
            request(&mut bob, 10, &create("/bob", acl("sasl", "bob"))).await,
            0
        );
        // "auth" expands to the session's sasl id.
        assert_eq!(
            request(&mut bob, 11, &create("/auth", acl("auth", ""))).await,
            0
        );
        assert_eq!(request(&mut bob, 12, &get("/bob")).await, 0);
        bob.send(
            13,
            &Request::GetAcl(paddock_proto::GetAclRequest {
                path: "/auth".into(),
            }),
        )
        .await;
        let reply = bob.read_reply().await.unwrap();
        let Response::GetAcl(r) = reply.decode(OpCode::GetAcl.code()) else {
            panic!()
        };
        assert_eq!(r.acl, acl("sasl", "bob"));
        // A sasl ACL id with two '@' is no valid name.
        assert_eq!(
            request(&mut bob, 14, &create("/bad", acl("sasl", "a@b@c"))).await,
            -114
        );

        let mut other = RawConn::session(addr).await;
        assert_eq!(request(&mut other, 1, &get("/bob")).await, NO_AUTH);
        assert_eq!(request(&mut other, 2, &get("/auth")).await, NO_AUTH);
        // A digest login of the same name is another identity.
        addauth_digest(&mut other, "bob:bob_secret").await;
        assert_eq!(request(&mut other, 3, &get("/bob")).await, NO_AUTH);

        // zookeeper.superUser: the SASL user "super" passes every ACL.
        let mut sup = RawConn::session(addr).await;
        login(&mut sup, "super", "super_secret")
            .await
            .expect("super logs in");
        assert_eq!(request(&mut sup, 10, &get("/bob")).await, 0);
    });
    assert!(server.log().contains("adding the id sasl:bob"));
    server.assert_no_fatal_log();
}

#[test]
fn bad_logins_fail_close_and_leave_everyone_else_served() {
    let (_dir, jaas) = jaas_file(JAAS);
    let server = server_with(&jaas, &[]);
    let addr = server.addr();
    let srv = &server;
    run(async move {
        let mut bystander = RawConn::session(addr).await;
        assert_eq!(
            request(&mut bystander, 1, &create("/b", common_open())).await,
            0
        );

        let mut c = RawConn::session(addr).await;
        assert_eq!(login(&mut c, "bob", "wrong").await, Err(AUTH_FAILED));
        assert_closed(&mut c).await;

        let mut c = RawConn::session(addr).await;
        assert_eq!(login(&mut c, "mallory", "x").await, Err(AUTH_FAILED));
        assert_closed(&mut c).await;

        // Garbage as the response to the challenge.
        let mut c = RawConn::session(addr).await;
        assert_eq!(sasl_token(&mut c, 1, vec![]).await, 0);
        assert_eq!(
            sasl_token(&mut c, 2, b"username=\"bob\",\xff".to_vec()).await,
            AUTH_FAILED
        );
        assert_closed(&mut c).await;

        // An oversize response (RFC 2831: under 4096 bytes).
        let mut c = RawConn::session(addr).await;
        assert_eq!(sasl_token(&mut c, 1, vec![]).await, 0);
        assert_eq!(
            sasl_token(&mut c, 2, vec![b'a'; 100_000]).await,
            AUTH_FAILED
        );
        assert_closed(&mut c).await;

        // A GSSAPI-style first token.
        let mut c = RawConn::session(addr).await;
        assert_eq!(
            sasl_token(&mut c, 1, vec![0x60, 0x82, 1, 2]).await,
            AUTH_FAILED
        );
        assert_closed(&mut c).await;

        assert_eq!(request(&mut bystander, 2, &get("/b")).await, 0);

        // The refusal reaches the client before its log line is flushed: wait for each.
        for cause in [
            "wrong password for user \"bob\"",
            "unknown user \"mallory\"",
            "not UTF-8",
            "the limit is 4096",
            "GSSAPI",
        ] {
            assert!(
                srv.wait_for_log(&[cause], Duration::from_secs(10)).await,
                "log names {cause}:\n{}",
                srv.log()
            );
        }
    });
    server.assert_no_fatal_log();
}

fn common_open() -> Vec<Acl> {
    acl("world", "anyone")
}

#[test]
fn enforce_auth_closes_sessions_that_did_not_authenticate() {
    let (_dir, jaas) = jaas_file(JAAS);
    let server = server_with(
        &jaas,
        &["enforce.auth.enabled=true", "enforce.auth.schemes=sasl"],
    );
    let addr = server.addr();
    run(async move {
        // A request before authenticating: -124 and the connection closes.
        let mut c = RawConn::session(addr).await;
        assert_eq!(request(&mut c, 1, &get("/")).await, REQUIRE_SASL);
        assert_closed(&mut c).await;
        // A digest login is not a sasl one.
        let mut c = RawConn::session(addr).await;
        addauth_digest(&mut c, "bob:bob_secret").await;
        assert_eq!(request(&mut c, 1, &get("/")).await, REQUIRE_SASL);
        assert_closed(&mut c).await;
        // With SASL required, a failed login answers -124 too.
        let mut c = RawConn::session(addr).await;
        assert_eq!(login(&mut c, "bob", "wrong").await, Err(REQUIRE_SASL));
        assert_closed(&mut c).await;
        // After a login, everything works.
        let mut c = RawConn::session(addr).await;
        login(&mut c, "bob", "bob_secret").await.unwrap();
        assert_eq!(request(&mut c, 10, &get("/")).await, 0);
        assert_eq!(request(&mut c, 11, &create("/x", common_open())).await, 0);
    });
    assert!(server.log().contains("match none of enforce.auth.schemes"));

    // enforce.auth.schemes=digest: an addauth digest is enough.
    let server = Server::builder()
        .cfg("enforce.auth.enabled=true")
        .cfg("enforce.auth.schemes=digest")
        .start();
    let addr = server.addr();
    run(async move {
        let mut c = RawConn::session(addr).await;
        addauth_digest(&mut c, "u:p").await;
        assert_eq!(request(&mut c, 1, &get("/")).await, 0);
        let mut c = RawConn::session(addr).await;
        assert_eq!(request(&mut c, 1, &get("/")).await, REQUIRE_SASL);
    });
}

#[test]
fn kerberos_and_missing_sections_refuse_logins_with_the_reason() {
    let (_dir, jaas) = jaas_file(JAAS);
    let server = server_with(&jaas, &["zookeeper.sasl.serverconfig=Kerberos"]);
    let addr = server.addr();
    let srv = &server;
    run(async move {
        let mut c = RawConn::session(addr).await;
        assert_eq!(login(&mut c, "bob", "bob_secret").await, Err(AUTH_FAILED));
        assert_closed(&mut c).await;
        // The refusal reaches the client before its log line is flushed.
        assert!(
            srv.wait_for_log(&["GSSAPI"], Duration::from_secs(10)).await,
            "log names GSSAPI:\n{}",
            srv.log()
        );
    });
    // An empty JAAS file (kazoo's harness writes one): no SASL, the server serves.
    let (_dir2, empty) = jaas_file("");
    let server = server_with(&empty, &[]);
    let addr: SocketAddr = server.addr();
    run(async move {
        let mut c = RawConn::session(addr).await;
        assert_eq!(login(&mut c, "bob", "bob_secret").await, Err(AUTH_FAILED));
        assert_closed(&mut c).await;
        let mut c = RawConn::session(addr).await;
        assert_eq!(request(&mut c, 1, &get("/")).await, 0);
    });
    assert!(server.log().contains("SASL is not configured"));
}

#[test]
fn a_bad_jaas_file_stops_the_start_naming_line_and_column() {
    let (dir, jaas) = jaas_file(
        "Server {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  user_bob=\"x\"\n};\n",
    );
    let cfg = dir.path().join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "dataDir={}\nclientPort=0\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    for (args, says) in [
        (
            vec!["--jaas-config".to_string(), jaas.display().to_string()],
            "jaas.conf:4:1: expected an option name or ';'",
        ),
        (
            vec!["--jaas-config".to_string(), "/nonexistent/jaas.conf".into()],
            "cannot read the JAAS file",
        ),
    ] {
        let out = std::process::Command::new(SERVER_BIN)
            .arg("--config")
            .arg(&cfg)
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{says}: {stderr}");
    }
    // The environment variable works as the flag does.
    let out = std::process::Command::new(SERVER_BIN)
        .arg("--config")
        .arg(&cfg)
        .env("PADDOCK_JAAS_CONFIG", &jaas)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("jaas.conf:4:1"));
}
