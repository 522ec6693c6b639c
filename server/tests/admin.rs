//! The admin contract against the real binary: a request that changes state (POST
//! /leadership/transfer) gets 403 with how to configure a credential when none is
//! configured, while reads and probes stay open; a bearer token from `admin.tokenFile`
//! lets it through; a zoo.cfg asking for TLS or SASL stops the start with an error
//! naming the key; `quorumListenOnAllIPs=true` makes the quorum port listen on every
//! address; standalone `/status` agrees with `srvr`; `/metrics` has the requests' latency
//! in buckets.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{SERVER_BIN, Server, admin_http, free_port, next_loopback, run};

const LIMIT: Duration = Duration::from_secs(5);
const TOKEN: &str = "t0k3n-for-the-admin-api-0123456789";

/// A standalone server whose admin port listens on a 127.0.0.x address other than
/// 127.0.0.1 (so the loopback exception does not apply), with `lines` in its zoo.cfg.
fn admin_server(lines: &[String]) -> (Server, SocketAddr) {
    let ip = next_loopback();
    let mut builder = Server::builder()
        .ip(ip)
        .admin_port(free_port(ip))
        .cfg("tickTime=2000");
    for line in lines {
        builder = builder.cfg(line);
    }
    let server = builder.start();
    let addr = server.admin_addr().expect("admin address");
    (server, addr)
}

async fn request(addr: SocketAddr, method: &str, path: &str, headers: &str) -> (u16, String) {
    let (code, _, body) = admin_http(addr, method, path, headers, "", LIMIT)
        .await
        .unwrap_or_else(|| panic!("{method} {path}: no answer"));
    (code, body)
}

#[test]
fn without_a_credential_changes_are_refused_and_reads_stay_open() {
    run(async {
        let (_server, addr) = admin_server(&[]);
        let (code, body) = request(addr, "POST", "/leadership/transfer", "").await;
        assert_eq!(code, 403, "{body}");
        assert!(
            body.contains("admin.tokenFile"),
            "says what to configure: {body}"
        );
        assert!(body.contains("superDigest"), "{body}");
        assert!(body.ends_with('\n'), "{body:?}");
        let (code, body) = request(addr, "GET", "/commands/srst", "").await;
        assert_eq!(code, 403, "resetting statistics changes state: {body}");
        for path in ["/status", "/commands/srvr", "/livez", "/readyz", "/metrics"] {
            let (code, body) = request(addr, "GET", path, "").await;
            assert_eq!(code, 200, "{path}: {body}");
        }
    });
}

#[test]
fn a_bearer_token_from_a_file_lets_changes_through() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("admin-token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        let (server, addr) = admin_server(&[format!("admin.tokenFile={}", token_file.display())]);
        let bearer = format!("Authorization: Bearer {TOKEN}\r\n");
        // A standalone server has nobody to hand leadership to: 409, past the check.
        let (code, body) = request(addr, "POST", "/leadership/transfer", &bearer).await;
        assert_eq!(code, 409, "{body}");
        let (code, body) = request(addr, "GET", "/status", &bearer).await;
        assert_eq!(code, 200, "{body}");
        // With a credential configured, everything but the probes needs it.
        for (method, path) in [("POST", "/leadership/transfer"), ("GET", "/status")] {
            let (code, body) = request(addr, method, path, "").await;
            assert_eq!(code, 401, "{method} {path}: {body}");
            let wrong = "Authorization: Bearer not-the-token\r\n";
            let (code, body) = request(addr, method, path, wrong).await;
            assert_eq!(code, 401, "{method} {path}: {body}");
        }
        for path in ["/livez", "/readyz", "/metrics"] {
            assert_eq!(request(addr, "GET", path, "").await.0, 200, "{path}");
        }
        assert!(!server.log().contains(TOKEN), "the token was logged");
    });
}

/// Runs the binary on a zoo.cfg holding `line`; (exit code, stderr), bounded.
fn start_with(line: &str) -> (Option<i32>, String) {
    start_on(next_loopback(), line, &[])
}

/// Runs the binary with `args` on a zoo.cfg holding `line`, its client port on `ip`;
/// (exit code, stderr), bounded.
fn start_on(ip: Ipv4Addr, line: &str, args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "dataDir={}\nclientPortAddress={ip}\nclientPort=0\nadmin.enableServer=false\n{line}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(SERVER_BIN)
        .arg("--config")
        .arg(&cfg)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("NO_COLOR", "1")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("paddock-server with {line:?} did not stop within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status.code(), err)
}

#[test]
fn an_unimplemented_security_setting_stops_the_start_naming_the_key() {
    for (line, key) in [
        ("ssl.crl=true", "ssl.crl"),
        ("admin.forceHttps=true", "admin.forceHttps"),
        ("skipACL=yes", "skipACL"),
    ] {
        let (code, err) = start_with(line);
        assert_eq!(code, Some(2), "{line}: {err}");
        assert!(
            err.contains(&format!("zoo.cfg:5: {key}: ")),
            "{line}: {err}"
        );
        assert!(err.to_lowercase().contains("remove it"), "{line}: {err}");
    }
}

/// The core's runtime exists before the quorum port is bound (the port runs on it): a
/// start that fails there must end with the error, not with tokio's panic on dropping
/// a runtime inside async code.
#[test]
fn a_quorum_port_in_use_stops_the_start_with_an_error_not_a_panic() {
    let ip = next_loopback();
    let taken = std::net::TcpListener::bind((ip, 0)).unwrap();
    let quorum = taken.local_addr().unwrap().port();
    let ensemble = format!(
        "tickTime=500\ninitLimit=10\nsyncLimit=5\nserver.1={ip}:{quorum}:{}\nserver.2={ip}:{}:{}",
        free_port(ip),
        free_port(ip),
        free_port(ip)
    );
    let (code, err) = start_on(ip, &ensemble, &["--myid", "1"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot listen on {ip}:{quorum}")),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    drop(taken);
}

#[test]
fn quorum_listen_on_all_ips_binds_the_wildcard_address() {
    // A two-server ensemble config in which server 1's own name does not resolve:
    // with quorumListenOnAllIPs the quorum port listens anyway.
    let ip = next_loopback();
    let quorum = free_port(Ipv4Addr::UNSPECIFIED);
    let server = Server::builder()
        .ip(ip)
        .myid(1)
        .cfg("tickTime=500")
        .cfg("initLimit=10")
        .cfg("syncLimit=5")
        .cfg("quorumListenOnAllIPs=true")
        .cfg(&format!(
            "server.1=unresolvable.paddock.invalid:{quorum}:{}",
            quorum + 1
        ))
        .cfg(&format!(
            "server.2={ip}:{}:{}",
            free_port(ip),
            free_port(ip)
        ));
    // Without the setting the start would wait for the name; the harness waits until
    // the client port answers, which comes after the quorum port is bound.
    let server = server.start();
    let reached = std::net::TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, quorum)),
        Duration::from_secs(2),
    );
    assert!(
        reached.is_ok(),
        "the quorum port does not answer on 127.0.0.1:{quorum}: {reached:?}\n{}",
        server.log()
    );
    assert!(
        server.log().contains(&format!("0.0.0.0:{quorum}")),
        "{}",
        server.log()
    );
}

#[test]
fn standalone_status_agrees_with_srvr() {
    run(async {
        let ip = next_loopback();
        let server = Server::builder()
            .ip(ip)
            .admin_port(free_port(ip))
            .myid(7)
            .cfg("tickTime=2000")
            .start();
        let addr = server.admin_addr().expect("admin address");
        let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut s, b"srvr")
            .await
            .unwrap();
        let mut srvr = String::new();
        tokio::time::timeout(
            LIMIT,
            tokio::io::AsyncReadExt::read_to_string(&mut s, &mut srvr),
        )
        .await
        .expect("srvr answers")
        .unwrap();
        assert!(srvr.contains("Mode: standalone\n"), "{srvr}");
        let (code, body) = request(addr, "GET", "/status", "").await;
        assert_eq!(code, 200, "{body}");
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(status["mode"], "standalone", "{body}");
        assert_eq!(status["myid"], 7, "the id in <dataDir>/myid: {body}");
        assert!(body.ends_with('\n'), "{body:?}");
    });
}

#[test]
fn metrics_carry_request_latency_and_fsync_buckets() {
    run(async {
        let (server, addr) = admin_server(&[]);
        let zk = common::zk(&server.connect_string()).await;
        let opts = zookeeper_client::CreateMode::Persistent
            .with_acls(zookeeper_client::Acls::anyone_all());
        for i in 0..20 {
            zk.create(&format!("/n{i}"), b"x", &opts).await.unwrap();
        }
        let (code, body) = request(addr, "GET", "/metrics", "").await;
        assert_eq!(code, 200, "{body}");
        let sample = |series: &str| -> f64 {
            body.lines()
                .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or_else(|| panic!("no {series} in\n{body}"))
        };
        let count = sample("paddock_request_latency_seconds_count");
        assert!(count >= 20.0, "{count}");
        assert_eq!(
            sample("paddock_request_latency_seconds_bucket{le=\"+Inf\"}"),
            count
        );
        // A create on loopback takes well under 2.5 s: the finite buckets hold them all.
        assert!(sample("paddock_request_latency_seconds_bucket{le=\"2.5\"}") >= 20.0);
        assert!(body.contains("# TYPE paddock_request_latency_seconds histogram\n"));
        // Every create was made durable by a group commit of the txn log, timed.
        let syncs = sample("paddock_fsync_seconds_count");
        // At most one per txn: the session, then 20 creates.
        assert!(
            (1.0..=21.0).contains(&syncs),
            "{syncs} group commits for 21 txns"
        );
        assert_eq!(sample("paddock_fsync_seconds_bucket{le=\"+Inf\"}"), syncs);
        assert!(body.contains("# TYPE paddock_fsync_seconds histogram\n"));
        assert_eq!(sample("paddock_fsync_threshold_exceeded_total"), 0.0);
    });
}
