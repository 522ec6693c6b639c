//! Bad input gets a 400 naming the problem; an unreachable ensemble gets 503 with
//! Retry-After; the token guards the API; garbage never brings the sidecar down.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// (method, path, headers, body, words the message must contain)
type Case<'a> = (
    &'a str,
    String,
    Vec<(&'a str, &'a str)>,
    Option<String>,
    &'a str,
);

/// Asserts the API's error shape and status; returns the message.
fn error_of(r: &Resp, status: u16) -> String {
    assert_eq!(r.status, status, "body: {}", r.body);
    let v = r.json();
    let msg = v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message: {}", r.body));
    assert!(
        v.as_object().is_some_and(|o| o.contains_key("detail")),
        "{}",
        r.body
    );
    msg.to_string()
}

/// Every kind of bad input gets a 400 naming the problem, and the sidecar stays up.
#[test]
fn bad_names_paths_values_durations_and_json_get_400() {
    run(
        "bad_names_paths_values_durations_and_json_get_400",
        || async {
            let server = Server::start();
            let s = Sidecar::ready(&server.addr.to_string(), "a", &[]).await;
            let a = s.addr;
            let cases = [
                bad_name_cases(),
                bad_config_key_cases(),
                bad_body_cases(),
                bad_body_shape_cases(),
                bad_query_and_header_cases(),
                bad_duration_cases(),
            ]
            .concat();
            assert_each_gets_400(a, &cases).await;
            base64_values_count_decoded_bytes(a).await;
            oversized_body_gets_413(a).await;
            // Unknown endpoints and methods answer in the same shape.
            error_of(&get(a, "/v1/nothing").await, 404);
            error_of(&request(a, "PATCH", "/v1/config/app", &[], None).await, 405);
            // Still alive and well.
            assert_eq!(get(a, "/readyz").await.status, 200);
        },
    );
}

/// Sends every case; each must get a 400 whose message mentions the case's words.
async fn assert_each_gets_400(a: std::net::SocketAddr, cases: &[Case<'_>]) {
    for (method, path, headers, body, words) in cases {
        let r = request(a, method, path, headers, body.as_deref()).await;
        let msg = error_of(&r, 400);
        assert!(
            msg.contains(words),
            "{method} {path}: message {msg:?} should mention {words:?}"
        );
    }
}

/// Bad election, candidate, group, member and lock names and ids.
fn bad_name_cases() -> Vec<Case<'static>> {
    let long = "x".repeat(300);
    vec![
        (
            "PUT",
            "/v1/elections/./candidates/a".into(),
            vec![],
            None,
            "election name",
        ),
        (
            "PUT",
            "/v1/elections/e/candidates/..".into(),
            vec![],
            None,
            "candidate id",
        ),
        (
            "PUT",
            "/v1/elections/e/candidates/a%00b".into(),
            vec![],
            None,
            "NUL",
        ),
        (
            "PUT",
            "/v1/elections/e/candidates/a%2Fb".into(),
            vec![],
            None,
            "'/'",
        ),
        (
            "PUT",
            format!("/v1/elections/{long}/candidates/a"),
            vec![],
            None,
            "limit is 255",
        ),
        ("GET", "/v1/elections//self".into(), vec![], None, "empty"),
        ("PUT", "/v1/groups/g/members/".into(), vec![], None, "empty"),
        (
            "GET",
            "/v1/groups/%01/members".into(),
            vec![],
            None,
            "group name",
        ),
        ("POST", "/v1/locks/..".into(), vec![], None, "lock name"),
        (
            "GET",
            "/v1/elections/e?id=a/b".into(),
            vec![],
            None,
            "candidate id",
        ),
    ]
}

/// Bad config keys: empty, `..` or trailing segments, too long, or a segment named `events`.
fn bad_config_key_cases() -> Vec<Case<'static>> {
    let mut cases: Vec<Case> = vec![
        (
            "PUT",
            "/v1/config/a//b".into(),
            vec![],
            Some(r#"{"value":"x"}"#.into()),
            "empty segment",
        ),
        (
            "PUT",
            "/v1/config/a/../b".into(),
            vec![],
            Some(r#"{"value":"x"}"#.into()),
            "not allowed",
        ),
        (
            "PUT",
            "/v1/config/a/".into(),
            vec![],
            Some(r#"{"value":"x"}"#.into()),
            "end with",
        ),
        (
            "PUT",
            format!("/v1/config/{}", "a/".repeat(600) + "b"),
            vec![],
            Some(r#"{"value":"x"}"#.into()),
            "limit is 1024",
        ),
        (
            "PUT",
            "/v1/config/app/events".into(),
            vec![],
            Some(r#"{"value":"x"}"#.into()),
            "events",
        ),
    ];
    // A config key may not use the API's own path word `events` anywhere: such
    // a node could not be read back.
    for path in [
        "/v1/config/app/events/x",
        "/v1/config/events/x",
        "/v1/config/events",
    ] {
        cases.push((
            "PUT",
            path.into(),
            vec![],
            Some(r#"{"value":"x"}"#.into()),
            "segment named \"events\"",
        ));
    }
    cases
}

/// Bad bodies: too big, malformed JSON, wrong fields, undecodable values, bad lock owners.
fn bad_body_cases() -> Vec<Case<'static>> {
    let big = serde_json::json!({ "value": "v".repeat(1_000_001) }).to_string();
    let mut cases: Vec<Case> = vec![
        (
            "PUT",
            "/v1/config/app".into(),
            vec![],
            Some(big),
            "limit is 1000000",
        ),
        (
            "PUT",
            "/v1/config/app".into(),
            vec![],
            Some("{value:".into()),
            "malformed JSON",
        ),
        (
            "PUT",
            "/v1/config/app".into(),
            vec![],
            Some(r#"{"value": 5}"#.into()),
            "\"value\" must be a string or null, not an integer",
        ),
        (
            "PUT",
            "/v1/config/app".into(),
            vec![],
            Some(r#"{"vlaue": "x"}"#.into()),
            "unknown field",
        ),
        (
            "PUT",
            "/v1/config/app".into(),
            vec![],
            Some("".into()),
            "value",
        ),
        (
            "PUT",
            "/v1/config/app?encoding=base64".into(),
            vec![],
            Some(r#"{"value":"***"}"#.into()),
            "base64",
        ),
        (
            "PUT",
            "/v1/config/app?encoding=hex".into(),
            vec![],
            Some(r#"{"value":"x"}"#.into()),
            "encoding",
        ),
        (
            "POST",
            "/v1/locks/l".into(),
            vec![],
            Some("[1,2".into()),
            "malformed JSON",
        ),
    ];
    for (body, words) in [
        (r#"{"owner": null}"#, "\"owner\" must be a string, not null"),
        (
            r#"{"owner": 7}"#,
            "\"owner\" must be a string, not an integer",
        ),
        (r#"{"owner": ""}"#, "\"owner\" must not be empty"),
        (r#"{"value": "x"}"#, "unknown field \"value\""),
    ] {
        cases.push((
            "POST",
            "/v1/locks/l".into(),
            vec![],
            Some(body.into()),
            words,
        ));
    }
    let long_owner = format!(r#"{{"owner": "{}"}}"#, "o".repeat(256));
    cases.push((
        "POST",
        "/v1/locks/l".into(),
        vec![],
        Some(long_owner),
        "the limit is 255",
    ));
    cases.push((
        "PUT",
        "/v1/config/app".into(),
        vec![],
        Some("{}".into()),
        "needs the field \"value\"",
    ));
    cases
}

/// Bodies that are not JSON objects, and nulls where a string is needed.
fn bad_body_shape_cases() -> Vec<Case<'static>> {
    let mut cases: Vec<Case> = Vec::new();
    // Bodies: JSON objects with the declared fields only, strings where the
    // schema says string (null only for a config value), required fields present.
    for (method, path) in [
        ("PUT", "/v1/config/app"),
        ("PUT", "/v1/elections/e/candidates/a"),
        ("PUT", "/v1/groups/g/members/a"),
        ("POST", "/v1/locks/l"),
    ] {
        for (body, words) in [
            ("[]", "must be a JSON object such as {"),
            ("[1, 2]", "not an array"),
            ("\"x\"", "not a string"),
            ("null", "not null"),
            ("7", "not an integer"),
        ] {
            cases.push((method, path.into(), vec![], Some(body.into()), words));
        }
    }
    // A config value may be null (null data, see config.rs).
    for (method, path) in [
        ("PUT", "/v1/elections/e/candidates/a"),
        ("PUT", "/v1/groups/g/members/a"),
    ] {
        cases.push((
            method,
            path.into(),
            vec![],
            Some(r#"{"value": null}"#.into()),
            "\"value\" must be a string, not null",
        ));
    }
    cases
}

/// Bad query parameters, headers and lock tokens.
fn bad_query_and_header_cases() -> Vec<Case<'static>> {
    vec![
        (
            "PUT",
            "/v1/config/app".into(),
            vec![("if-match", "soon")],
            Some(r#"{"value":"x"}"#.into()),
            "If-Match",
        ),
        (
            "GET",
            "/v1/config/app?wait=abc".into(),
            vec![],
            None,
            "wait",
        ),
        (
            "GET",
            "/v1/config/app?index=-3".into(),
            vec![],
            None,
            "index",
        ),
        (
            "GET",
            "/v1/config/app?recursive=maybe".into(),
            vec![],
            None,
            "recursive",
        ),
        (
            "DELETE",
            "/v1/locks/l/not-a-token".into(),
            vec![],
            None,
            "token",
        ),
        (
            "GET",
            "/v1/elections/e/events?heartbeat=fast".into(),
            vec![],
            None,
            "heartbeat",
        ),
        (
            "GET",
            "/v1/elections/e/events".into(),
            vec![("last-event-id", "yesterday")],
            None,
            "Last-Event-ID",
        ),
    ]
}

/// Bad durations: unknown units, negative, without a unit, a lock TTL under its floor.
fn bad_duration_cases() -> Vec<Case<'static>> {
    let mut cases: Vec<Case> = vec![
        (
            "GET",
            "/v1/groups/g/members?wait=10parsecs".into(),
            vec![],
            None,
            "unknown time unit",
        ),
        (
            "POST",
            "/v1/locks/l?wait=-1s".into(),
            vec![],
            None,
            "bad duration",
        ),
    ];
    // Durations need a unit; lock TTLs have a floor.
    for (method, path, words) in [
        ("GET", "/v1/config/app?index=1&wait=10", "time unit needed"),
        ("GET", "/v1/config/app?index=1&wait=10", "500ms, 10s"),
        ("POST", "/v1/locks/l?wait=5", "time unit needed"),
        ("POST", "/v1/locks/l?ttl=30", "time unit needed"),
        ("POST", "/v1/locks/l?ttl=500ms", "at least 1s"),
        ("PUT", "/v1/locks/l/5?ttl=10", "time unit needed"),
        ("GET", "/v1/elections/e/events?heartbeat=2", "heartbeat"),
    ] {
        cases.push((method, path.into(), vec![], None, words));
    }
    cases
}

/// The value limit counts decoded bytes: 900,000 bytes in base64 are 1.2 M characters, and fit.
async fn base64_values_count_decoded_bytes(a: std::net::SocketAddr) {
    let big = serde_json::json!({ "value": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, vec![7u8; 900_000]) }).to_string();
    let r = request(a, "PUT", "/v1/config/big?encoding=base64", &[], Some(&big)).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

/// A body over the 8 MiB limit gets 413 in the API's error shape as soon as Content-Length says so.
async fn oversized_body_gets_413(a: std::net::SocketAddr) {
    // On a raw socket, since a client still sending its body may see the close before
    // it reads the answer.
    let mut s = tokio::net::TcpStream::connect(a).await.unwrap();
    let head = format!(
        "PUT /v1/config/app HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\nxxxx",
        9 * 1024 * 1024
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    // Ends at the close; bytes read before a reset are kept.
    let _ = within(Duration::from_secs(5), "the 413", s.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("\"detail\""), "{reply}");
}

#[test]
fn unreachable_ensemble_answers_503_with_retry_after() {
    run(
        "unreachable_ensemble_answers_503_with_retry_after",
        || async {
            // A port nobody listens on.
            let dead = std::net::SocketAddr::from((binary_ip(), free_port()));
            let s = Sidecar::start(&dead.to_string(), "a", &["--election", "e"]);
            let a = s.addr;
            assert_eq!(get(a, "/healthz").await.status, 200);
            for (method, path, body) in [
                ("GET", "/readyz", None),
                ("GET", "/v1/config/app", None),
                ("PUT", "/v1/config/app", Some(r#"{"value":"x"}"#)),
                ("GET", "/v1/groups/g/members", None),
                ("PUT", "/v1/groups/g/members/a", None),
                ("POST", "/v1/locks/l?wait=1s", None),
                ("GET", "/v1/locks/l", None),
                ("GET", "/v1/elections/e/self", None),
            ] {
                let r = request(a, method, path, &[], body).await;
                error_of(&r, 503);
                assert!(
                    r.header("retry-after").is_some(),
                    "{method} {path}: no Retry-After"
                );
            }
            // The election state says so rather than failing, and names nobody as leader.
            let r = get(a, "/v1/elections/e").await;
            assert_eq!(r.status, 200);
            let doc = r.json();
            assert_eq!(doc["leader"], Value::Null);
            assert_eq!(doc["self"]["state"], "suspended");
            assert_eq!(doc["session"], "connecting");
            assert!(r.header("retry-after").is_some());
            // A blocking read does not make anyone wait while nothing can be known.
            let started = std::time::Instant::now();
            get(a, "/v1/elections/e?index=5&wait=10s").await;
            assert!(started.elapsed() < Duration::from_secs(2));
            // Its log says why, naming the servers it tries.
            let servers = format!("servers={dead}");
            eventually(Duration::from_secs(10), "the sidecar warns", || {
                let log = s.log();
                let logged = log.lines().any(|l| {
                    l.contains(" WARN ")
                        && l.contains("cannot reach the ensemble")
                        && l.contains(&servers)
                });
                async move { logged }
            })
            .await;
        },
    );
}

#[test]
fn bearer_token_guards_the_api_but_not_probes() {
    run("bearer_token_guards_the_api_but_not_probes", || async {
        let server = Server::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "s3cret\n").expect("token file");
        let probe_port = free_port();
        let probe_addr = std::net::SocketAddr::from((binary_ip(), probe_port));
        let s = Sidecar::ready(
            &server.addr.to_string(),
            "a",
            &[
                "--token-file",
                token_file.to_str().expect("path"),
                "--election",
                "e",
                "--probe-listen",
                &probe_addr.to_string(),
            ],
        )
        .await;
        let a = s.addr;
        let r = get(a, "/v1/config/app").await;
        error_of(&r, 401);
        assert!(r.header("www-authenticate").is_some());
        let r = request(
            a,
            "GET",
            "/v1/config/app",
            &[("authorization", "Bearer nope")],
            None,
        )
        .await;
        error_of(&r, 401);
        let r = request(
            a,
            "GET",
            "/v1/config/app",
            &[("authorization", "Bearer s3cret")],
            None,
        )
        .await;
        error_of(&r, 404);
        // Probes, metrics and the OpenAPI document need no token.
        assert_eq!(get(a, "/healthz").await.status, 200);
        assert_eq!(get(a, "/readyz").await.status, 200);
        let addr = a;
        eventually(Duration::from_secs(5), "leads", || async move {
            get(addr, "/v1/elections/e/self").await.status == 200
        })
        .await;
        assert_eq!(get(a, "/v1/elections/e").await.status, 401);
        // The probe address serves the probes, and nothing else.
        assert_eq!(get(probe_addr, "/v1/elections/e/self").await.status, 200);
        assert_eq!(get(probe_addr, "/readyz").await.status, 200);
        error_of(&get(probe_addr, "/v1/elections/e").await, 404);
        error_of(&get(probe_addr, "/v1/config/app").await, 404);
        let doc = get(a, "/v1/openapi.json").await.json();
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["paths"]["/v1/elections/{election}/self"].is_object());
        let metrics = get(a, "/metrics").await;
        assert_eq!(metrics.status, 200);
        assert!(
            metrics
                .body
                .contains("paddock_sidecar_session_state{state=\"connected\"} 1")
        );
        assert!(
            metrics
                .body
                .contains("paddock_sidecar_leader{election=\"e\",id=\"a\"} 1")
        );
        assert!(
            metrics
                .body
                .contains("paddock_sidecar_http_requests_total{code=\"401\"}")
        );
    });
}

/// Random and malformed requests, including raw bytes that are not HTTP: no 500, and
/// the sidecar keeps answering.
#[test]
fn garbage_never_brings_it_down() {
    run("garbage_never_brings_it_down", || async {
        let server = Server::start();
        let mut s = Sidecar::ready(&server.addr.to_string(), "a", &[]).await;
        let a = s.addr;
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let pieces = [
            "/v1/elections/",
            "/v1/groups/",
            "/v1/locks/",
            "/v1/config/",
            "candidates/",
            "members/",
            "self",
            "events",
            "%00",
            "%ff",
            "..",
            ".",
            "/",
            "%2F",
            "x",
            "\u{e9}",
            "?wait=",
            "?index=",
            "&encoding=base64",
            "1s",
            "-1",
            "99999999999999999999",
            "&recursive=true",
        ];
        let methods = ["GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "HEAD"];
        let bodies = [
            "",
            "{",
            "null",
            "[]",
            r#"{"value":null}"#,
            r#"{"value":"x"}"#,
            r#"{"owner":7}"#,
            "\u{0}\u{1}",
        ];
        for _ in 0..300 {
            let mut path = String::new();
            for _ in 0..(1 + next() % 6) {
                path.push_str(pieces[(next() % pieces.len() as u64) as usize]);
            }
            if !path.starts_with('/') {
                path.insert(0, '/');
            }
            let encoded: String = path
                .chars()
                .map(|c| {
                    if c.is_ascii_graphic() {
                        c.to_string()
                    } else {
                        format!("%{:02X}", c as u32 & 0xff)
                    }
                })
                .collect();
            let method = methods[(next() % methods.len() as u64) as usize];
            let body = bodies[(next() % bodies.len() as u64) as usize];
            // Short waits only: the point is the answer, not the wait.
            let encoded = encoded.replace("?wait=", "?wait=1ms&x=");
            // Every request is answered, in time, and never with a 5xx other than 503.
            let r = within(
                Duration::from_secs(5),
                &format!("an answer to {method} {encoded}"),
                try_request(a, method, &encoded, &[], Some(body)),
            )
            .await
            .unwrap_or_else(|e| panic!("{method} {encoded} with body {body:?}: {e}"));
            assert!(
                r.status < 500 || r.status == 503,
                "{method} {encoded} → {} {}",
                r.status,
                r.body
            );
        }
        // Bytes that are not HTTP at all.
        for junk in [
            &b"\x00\x01\x02garbage\r\n\r\n"[..],
            b"GET / HTTP/9.9\r\n\r\n",
            b"PUT /v1/config/x HTTP/1.1\r\ncontent-length: 99999999999\r\n\r\n{",
        ] {
            if let Ok(mut c) = tokio::net::TcpStream::connect(a).await {
                let _ = c.write_all(junk).await;
                let mut buf = [0u8; 256];
                let _ = tokio::time::timeout(Duration::from_millis(300), c.read(&mut buf)).await;
            }
        }
        assert_eq!(get(a, "/healthz").await.status, 200);
        assert_eq!(get(a, "/readyz").await.status, 200);
        assert!(s.is_alive(), "the sidecar exited");
        s.kill9();
    });
}
