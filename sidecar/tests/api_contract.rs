//! The served OpenAPI document and the router agree: every documented operation is
//! served (never the "no such endpoint" fallback or 405), every other method on a
//! documented path gets 405, and the JSON answers carry the fields their documented
//! schema names as required.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const METHODS: [&str; 4] = ["GET", "PUT", "POST", "DELETE"];

/// A documented path with sample values for its parameters.
fn concrete(path: &str) -> String {
    path.replace("{election}", "e")
        .replace("{group}", "g")
        .replace("{lock}", "l")
        .replace("{id}", "a")
        .replace("{token}", "1")
        .replace("{path}", "app")
}

/// The fallback's 404 (no route) rather than a handler's.
fn unrouted(r: &Resp) -> bool {
    r.status == 404
        && serde_json::from_str::<Value>(&r.body).is_ok_and(|v| {
            v["error"]
                .as_str()
                .unwrap_or("")
                .starts_with("no such endpoint")
        })
}

#[test]
fn the_served_document_covers_every_route() {
    run("the_served_document_covers_every_route", || async {
        let server = Server::start();
        let s = Sidecar::ready(&server.addr.to_string(), "a", &[]).await;
        let a = s.addr;
        // Something to read, so that reads answer 200.
        assert_eq!(
            put(a, "/v1/config/app", r#"{"value":"x"}"#).await.status,
            201
        );
        let doc = get(a, "/v1/openapi.json").await.json();
        let paths = doc["paths"].as_object().expect("paths");
        assert!(paths.len() >= 15, "{}", paths.len());
        let schemas = &doc["components"]["schemas"];
        let mut operations = 0;
        for (path, ops) in paths {
            let ops = ops.as_object().expect("operations");
            let url = concrete(path);
            for method in METHODS {
                let documented = ops.get(&method.to_lowercase());
                let streams = documented
                    .and_then(|op| op["responses"]["200"]["content"].as_object())
                    .is_some_and(|c| c.contains_key("text/event-stream"));
                if streams {
                    let sse = Sse::open(a, &url, &[]).await;
                    assert_eq!(sse.status, 200, "{method} {url}");
                    operations += 1;
                    continue;
                }
                let body = match (method, path.as_str()) {
                    ("PUT", "/v1/config/{path}") => Some(r#"{"value":"y"}"#),
                    _ => None,
                };
                let r = within(
                    Duration::from_secs(10),
                    &format!("{method} {url}"),
                    request(a, method, &url, &[], body),
                )
                .await;
                match documented {
                    Some(op) => {
                        operations += 1;
                        assert!(
                            !unrouted(&r),
                            "{method} {path} is documented but not routed"
                        );
                        assert_ne!(r.status, 405, "{method} {path} is documented: {}", r.body);
                        // A documented JSON answer has the fields its schema requires.
                        let status = r.status.to_string();
                        let reference = op["responses"][&status]["content"]["application/json"]
                            ["schema"]["$ref"]
                            .as_str();
                        if let Some(name) =
                            reference.and_then(|r| r.strip_prefix("#/components/schemas/"))
                        {
                            let answer = r.json();
                            for field in schemas[name]["required"].as_array().into_iter().flatten()
                            {
                                let field = field.as_str().expect("field name");
                                assert!(
                                    answer.get(field).is_some(),
                                    "{method} {url} → {status}: no {field:?} of {name} in {}",
                                    r.body
                                );
                            }
                        } else {
                            assert!(
                                op["responses"].get(&status).is_some(),
                                "{method} {url} answered {status}, which is not documented: {}",
                                r.body
                            );
                        }
                    }
                    // `{path}/events` is also a config path to the router: PUT is refused
                    // by name, DELETE removes a node of that name written by another
                    // client (the `/v1/config/{path}` operation).
                    None if path == "/v1/config/{path}/events" => {
                        assert!(
                            !unrouted(&r) && r.status != 500,
                            "{method} {url}: {}",
                            r.body
                        );
                    }
                    None => assert_eq!(
                        r.status, 405,
                        "{method} {path} is not documented, yet it is served: {}",
                        r.body
                    ),
                }
            }
        }
        eprintln!("OPENAPI {operations} documented operations, all served");
    });
}
