//! SASL DIGEST-MD5 logins through `ClientBuilder::sasl_digest` against a paddock-server
//! with a JAAS `Server` section and enforce.auth: the session gets `sasl:<user>` (sasl
//! ACLs), a wrong password or unknown user ends it in AuthFailed, and so does a request
//! of a client that did not log in; the CLI logs in too. (The same exchange
//! against Apache ZooKeeper runs in e2e/compat/run_sasl.sh through kazoo, zkCli, Curator
//! and the paddock CLI.)

mod common;

use std::time::Duration;

use common::{PaddockProcess, base_config, binary_ip};
use paddock_client::{Acl, Client, CreateOptions, Error, Id, SessionState};
use paddock_proto::perms;

const JAAS: &str = r#"
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_bob="bob_secret";
};
"#;

fn server(dir: &std::path::Path, extra: &str) -> PaddockProcess {
    std::fs::write(dir.join("jaas.conf"), JAAS).unwrap();
    let config = format!(
        "{}java.security.auth.login.config={}\n\
         authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n{extra}",
        base_config(&dir.join("data")),
        dir.join("jaas.conf").display()
    );
    PaddockProcess::start(dir, &config, binary_ip(7), None)
}

async fn connect(addr: std::net::SocketAddr, user: &str, password: &str) -> Result<Client, Error> {
    Client::builder(addr.to_string())
        .connect_timeout(Duration::from_secs(10))
        .sasl_digest(user, password)
        .connect()
        .await
}

#[tokio::test]
async fn digest_md5_login_gives_the_sasl_id_and_a_wrong_password_fails() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(
        dir.path(),
        "enforce.auth.enabled=true\nenforce.auth.schemes=sasl\n",
    );
    let bob = connect(server.addr, "bob", "bob_secret")
        .await
        .expect("bob logs in");
    let acl = vec![Acl {
        perms: perms::ALL,
        id: Id {
            scheme: "sasl".into(),
            id: "bob".into(),
        },
    }];
    bob.create(
        "/bob",
        b"x",
        CreateOptions::new(paddock_proto::CreateMode::Persistent).acl(acl.clone()),
    )
    .await
    .unwrap();
    assert_eq!(bob.get_acl("/bob").await.unwrap().0, acl);
    let ids = bob.who_am_i().await.unwrap();
    assert!(
        ids.iter()
            .any(|c| c.auth_scheme == "sasl" && c.user == "bob"),
        "{ids:?}"
    );
    let err = connect(server.addr, "bob", "wrong").await.unwrap_err();
    assert!(matches!(err, Error::AuthFailed { .. }), "{err:?}");
    let err = connect(server.addr, "eve", "x").await.unwrap_err();
    assert!(matches!(err, Error::AuthFailed { .. }), "{err:?}");
    // enforce.auth: a client without SASL is refused (SessionClosedRequireSaslAuth).
    let plain = Client::builder(server.addr.to_string())
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("the session itself is granted");
    assert!(plain.get_data("/bob").await.is_err());
    assert_ne!(plain.state(), SessionState::Connected);
    assert_eq!(bob.get_data("/bob").await.unwrap().0, b"x");
    bob.close().await;
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(log.contains("wrong password for user \"bob\""), "{log}");
}

#[tokio::test]
async fn the_cli_logs_in_with_sasl() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(
        dir.path(),
        "enforce.auth.enabled=true\nenforce.auth.schemes=sasl\n",
    );
    let paddock = |args: &[&str], password: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_paddock"));
        cmd.arg("--server")
            .arg(server.addr.to_string())
            .args(args)
            .env_remove("PADDOCK_SASL_USER")
            .env_remove("PADDOCK_SASL_PASSWORD_FILE");
        match password {
            Some(p) => cmd.env("PADDOCK_SASL_PASSWORD", p),
            None => cmd.env_remove("PADDOCK_SASL_PASSWORD"),
        };
        cmd.output().unwrap()
    };
    let out = paddock(&["--sasl-user", "bob", "whoami"], Some("bob_secret"));
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("sasl"),
        "{out:?}"
    );
    std::fs::write(dir.path().join("pw"), "bob_secret\n").unwrap();
    let pw = dir.path().join("pw");
    let out = paddock(
        &[
            "--sasl-user",
            "bob",
            "--sasl-password-file",
            pw.to_str().unwrap(),
            "create",
            "/c",
            "v",
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let out = paddock(&["--sasl-user", "bob", "get", "/c"], Some("nope"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .to_lowercase()
            .contains("auth"),
        "{out:?}"
    );
    let out = paddock(&["--sasl-user", "bob", "get", "/c"], None);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("PADDOCK_SASL_PASSWORD"),
        "{out:?}"
    );
}
