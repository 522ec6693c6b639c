//! Config against real processes: compare-and-set, blocking reads, resumable event
//! streams, rendered files.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn body(value: &str) -> String {
    serde_json::json!({ "value": value }).to_string()
}

async fn put_if(addr: SocketAddr, path: &str, value: &str, header: (&str, &str)) -> Resp {
    request(addr, "PUT", path, &[header], Some(&body(value))).await
}

/// Compare-and-set: of two writers at the same version one wins, the other gets 412;
/// create-only and compare-and-delete likewise.
#[test]
fn cas_conflicts_answer_412() {
    run("cas_conflicts_answer_412", || async {
        let server = Server::start();
        let servers = server.addr.to_string();
        let a = Sidecar::ready(&servers, "a", &[]).await;
        let b = Sidecar::ready(&servers, "b", &[]).await;

        let r = get(a.addr, "/v1/config/app/x").await;
        assert_eq!(r.status, 404);
        assert!(r.header("x-paddock-index").is_some());
        let r = put(a.addr, "/v1/config/app/x", &body("v0")).await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.header("etag"), Some("\"0\""));

        for round in 0..5 {
            let version = get(a.addr, "/v1/config/app/x").await.json()["version"]
                .as_i64()
                .expect("version");
            let etag = format!("\"{version}\"");
            let (va, vb) = (format!("a{round}"), format!("b{round}"));
            let (ra, rb) = tokio::join!(
                put_if(a.addr, "/v1/config/app/x", &va, ("if-match", &etag)),
                put_if(b.addr, "/v1/config/app/x", &vb, ("if-match", &etag)),
            );
            let mut statuses = [ra.status, rb.status];
            statuses.sort();
            assert_eq!(
                statuses,
                [200, 412],
                "round {round}: {} / {}",
                ra.body,
                rb.body
            );
            let loser = if ra.status == 412 { &ra } else { &rb };
            assert_eq!(loser.json()["detail"]["current"], version + 1);
            assert!(loser.json()["error"].as_str().is_some());
        }

        // Create-only.
        let r = put_if(a.addr, "/v1/config/app/x", "nope", ("if-none-match", "*")).await;
        assert_eq!(r.status, 412);
        let r = put_if(a.addr, "/v1/config/app/y", "new", ("if-none-match", "*")).await;
        assert_eq!(r.status, 201);
        // If-Match on a missing node.
        let r = put_if(a.addr, "/v1/config/app/z", "v", ("if-match", "\"0\"")).await;
        assert_eq!(r.status, 412);
        // Compare-and-delete.
        let r = request(
            a.addr,
            "DELETE",
            "/v1/config/app/y",
            &[("if-match", "\"7\"")],
            None,
        )
        .await;
        assert_eq!(r.status, 412);
        let r = request(
            a.addr,
            "DELETE",
            "/v1/config/app/y",
            &[("if-match", "\"0\"")],
            None,
        )
        .await;
        assert_eq!(r.status, 204);
        // A node with children needs recursive=true.
        assert_eq!(delete(a.addr, "/v1/config/app").await.status, 409);
        assert_eq!(
            delete(a.addr, "/v1/config/app?recursive=true").await.status,
            204
        );
        assert_eq!(get(b.addr, "/v1/config/app/x").await.status, 404);
    });
}

/// Blocking reads return on change (index, If-None-Match, a node appearing) and at the
/// end of their wait otherwise.
#[test]
fn blocking_reads_return_on_change_and_on_timeout() {
    run("blocking_reads_return_on_change_and_on_timeout", || async {
        let server = Server::start();
        let servers = server.addr.to_string();
        let a = Sidecar::ready(&servers, "a", &[]).await;
        let b = Sidecar::ready(&servers, "b", &[]).await;
        put(a.addr, "/v1/config/svc/limit", &body("10")).await;
        let r = get(b.addr, "/v1/config/svc/limit").await;
        let index = r.index();

        // On timeout: the same state, after the wait.
        let started = Instant::now();
        let r = get(
            b.addr,
            &format!("/v1/config/svc/limit?index={index}&wait=300ms"),
        )
        .await;
        let took = started.elapsed();
        assert_eq!(r.status, 200);
        assert_eq!(r.index(), index);
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(3),
            "{took:?}"
        );
        let started = Instant::now();
        let r = request(
            b.addr,
            "GET",
            "/v1/config/svc/limit?wait=300ms",
            &[("if-none-match", "\"0\"")],
            None,
        )
        .await;
        assert_eq!(r.status, 304);
        assert_eq!(r.header("etag"), Some("\"0\""));
        assert!(started.elapsed() >= Duration::from_millis(300));

        // On change, by index.
        let baddr = b.addr;
        let waiter = tokio::spawn(async move {
            let started = Instant::now();
            let r = get(
                baddr,
                &format!("/v1/config/svc/limit?index={index}&wait=30s"),
            )
            .await;
            (r, started.elapsed())
        });
        parked_readers(baddr, 1.0).await;
        put(a.addr, "/v1/config/svc/limit", &body("20")).await;
        let (r, took) = within(Duration::from_secs(10), "blocking read", waiter)
            .await
            .expect("waiter");
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert_eq!(r.json()["value"], "20");
        assert!(r.index() > index);

        // On change, by If-None-Match.
        let waiter = tokio::spawn(async move {
            request(
                baddr,
                "GET",
                "/v1/config/svc/limit?wait=30s",
                &[("if-none-match", "\"1\"")],
                None,
            )
            .await
        });
        parked_readers(baddr, 1.0).await;
        put(a.addr, "/v1/config/svc/limit", &body("30")).await;
        let r = within(Duration::from_secs(10), "If-None-Match read", waiter)
            .await
            .expect("waiter");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("etag"), Some("\"2\""));
        assert_eq!(r.json()["value"], "30");

        // A missing node: the read returns when it appears.
        let r = get(b.addr, "/v1/config/svc/new").await;
        assert_eq!(r.status, 404);
        let index = r.index();
        let waiter = tokio::spawn(async move {
            get(baddr, &format!("/v1/config/svc/new?index={index}&wait=30s")).await
        });
        parked_readers(baddr, 1.0).await;
        put(a.addr, "/v1/config/svc/new", &body("here")).await;
        let r = within(Duration::from_secs(10), "read of a new node", waiter)
            .await
            .expect("waiter");
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["value"], "here");

        // A subtree: recursive reads block too. Creating svc/deep/er creates svc/deep
        // first, so a watcher may see two changes: it follows the index like any client.
        let index = get(b.addr, "/v1/config/svc?recursive=true").await.index();
        let waiter = tokio::spawn(async move {
            let mut index = index;
            loop {
                let r = get(
                    baddr,
                    &format!("/v1/config/svc?recursive=true&index={index}&wait=30s"),
                )
                .await;
                assert!(
                    r.index() > index,
                    "a blocking read returned early without a change"
                );
                if r.json()["nodes"]["svc/deep/er"]["value"] == "x" {
                    return r;
                }
                index = r.index();
            }
        });
        parked_readers(baddr, 1.0).await;
        put(a.addr, "/v1/config/svc/deep/er", &body("x")).await;
        within(Duration::from_secs(10), "recursive read", waiter)
            .await
            .expect("waiter");
    });
}

/// The state a reader builds from a config stream's events.
#[derive(Default)]
struct Mirror {
    nodes: BTreeMap<String, String>,
    last_id: Option<String>,
}

impl Mirror {
    fn apply(&mut self, ev: &SseEvent) {
        let data = ev.json();
        match ev.event.as_str() {
            "snapshot" | "resync" => {
                self.nodes = data["nodes"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| {
                                (k.clone(), v["value"].as_str().unwrap_or("").to_string())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
            }
            "put" => {
                let path = data["path"].as_str().unwrap_or("").to_string();
                self.nodes
                    .insert(path, data["value"].as_str().unwrap_or("").to_string());
            }
            "delete" => {
                if let Some(p) = data["path"].as_str() {
                    self.nodes.remove(p);
                }
            }
            _ => return,
        }
        if ev.id.is_some() {
            self.last_id = ev.id.clone();
        }
    }
}

async fn truth(addr: SocketAddr, rel: &str) -> BTreeMap<String, String> {
    let r = get(addr, &format!("/v1/config/{rel}?recursive=true")).await;
    if r.status == 404 {
        return BTreeMap::new();
    }
    r.json()["nodes"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v["value"].as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads events until the mirror equals `want` (bounded).
async fn catch_up(stream: &mut Sse, mirror: &mut Mirror, want: &BTreeMap<String, String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while mirror.nodes != *want {
        let left = deadline.saturating_duration_since(Instant::now());
        match stream.next_within(left).await {
            Some(ev) => mirror.apply(&ev),
            None => panic!(
                "stream did not catch up: have {:?}, want {want:?}",
                mirror.nodes
            ),
        }
    }
}

/// A reader that reconnects with Last-Event-ID misses no change, whatever happened while
/// it was away; one that missed nothing gets nothing again.
#[test]
fn sse_resume_with_last_event_id_misses_no_change() {
    run("sse_resume_with_last_event_id_misses_no_change", || async {
        let server = Server::start();
        let servers = server.addr.to_string();
        let a = Sidecar::ready(&servers, "a", &[]).await;
        let b = Sidecar::ready(&servers, "b", &[]).await;
        put(a.addr, "/v1/config/feature/a", &body("1")).await;
        put(a.addr, "/v1/config/feature/b", &body("1")).await;
        let path = "/v1/config/feature/events?recursive=true&heartbeat=200ms";

        let mut mirror = Mirror::default();
        let mut stream = Sse::open(b.addr, path, &[]).await;
        let first = stream
            .next_change(Duration::from_secs(5))
            .await
            .expect("snapshot");
        assert_eq!(first.event, "snapshot");
        mirror.apply(&first);
        assert_eq!(mirror.nodes, truth(a.addr, "feature").await);

        // Changes while connected, some racing each other.
        for i in 0..10 {
            put(
                a.addr,
                &format!("/v1/config/feature/k{}", i % 4),
                &body(&format!("v{i}")),
            )
            .await;
        }
        delete(a.addr, "/v1/config/feature/b").await;
        catch_up(&mut stream, &mut mirror, &truth(a.addr, "feature").await).await;
        let resume_from = mirror.last_id.clone().expect("an id");
        drop(stream);

        // Changes while away: writes, deletes, new subtrees.
        put(a.addr, "/v1/config/feature/a", &body("2")).await;
        delete(a.addr, "/v1/config/feature/k1").await;
        put(a.addr, "/v1/config/feature/new/deep", &body("x")).await;
        put(a.addr, "/v1/config/feature/k2", &body("changed")).await;
        let want = truth(a.addr, "feature").await;
        assert_ne!(mirror.nodes, want);

        let mut stream = Sse::open(b.addr, path, &[("last-event-id", &resume_from)]).await;
        catch_up(&mut stream, &mut mirror, &want).await;
        let caught_up_at = mirror.last_id.clone().expect("an id");
        assert!(caught_up_at.parse::<i64>().unwrap() > resume_from.parse::<i64>().unwrap());
        drop(stream);

        // Nothing changed since: nothing but heartbeats.
        let mut stream = Sse::open(b.addr, path, &[("last-event-id", &caught_up_at)]).await;
        let beat = stream
            .next_within(Duration::from_secs(2))
            .await
            .expect("heartbeat");
        assert_eq!(beat.event, "heartbeat");
        assert_eq!(stream.next_change(Duration::from_millis(600)).await, None);

        // And the resumed stream keeps following.
        put(a.addr, "/v1/config/feature/a", &body("3")).await;
        catch_up(&mut stream, &mut mirror, &truth(a.addr, "feature").await).await;
    });
}

/// A rendered file always holds a complete document, and ends up with the last one.
#[test]
fn rendered_file_always_holds_a_complete_document() {
    run("rendered_file_always_holds_a_complete_document", || async {
        let server = Server::start();
        let servers = server.addr.to_string();
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("settings.json");
        let tree = dir.path().join("app.json");
        let a = Sidecar::ready(
            &servers,
            "a",
            &[
                "--render",
                &format!("app/settings={}", file.display()),
                "--render",
                &format!("app={}", tree.display()),
            ],
        )
        .await;
        assert!(!file.exists(), "nothing to render yet");

        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let stop = stop.clone();
            let file = file.clone();
            std::thread::spawn(move || {
                let (mut reads, mut bad) = (0u64, Vec::new());
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(text) = std::fs::read_to_string(&file) {
                        reads += 1;
                        if serde_json::from_str::<Value>(&text).is_err() {
                            bad.push(text.len());
                        }
                    }
                }
                (reads, bad)
            })
        };
        let last = 40;
        for i in 0..=last {
            let doc = serde_json::json!({ "n": i, "pad": "x".repeat((i * 7919) % 60_000) });
            let r = put(a.addr, "/v1/config/app/settings", &body(&doc.to_string())).await;
            assert!(r.status == 200 || r.status == 201, "{}", r.body);
        }
        let f = file.clone();
        eventually(
            Duration::from_secs(10),
            "the last document is rendered",
            || {
                let f = f.clone();
                async move {
                    std::fs::read_to_string(&f)
                        .ok()
                        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                        .is_some_and(|v| v["n"] == last)
                }
            },
        )
        .await;
        stop.store(true, Ordering::SeqCst);
        let (reads, bad) = reader.join().expect("reader");
        assert!(
            bad.is_empty(),
            "{} of {reads} reads saw an incomplete document",
            bad.len()
        );
        assert!(reads > 10, "only {reads} reads");

        // The subtree renders as a JSON object of relative paths.
        put(a.addr, "/v1/config/app/mode", &body("fast")).await;
        let t = tree.clone();
        eventually(Duration::from_secs(10), "the subtree is rendered", || {
            let t = t.clone();
            async move {
                std::fs::read_to_string(&t)
                    .ok()
                    .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                    .is_some_and(|v| v["mode"] == "fast" && v["settings"].is_string())
            }
        })
        .await;
        eprintln!("RENDER {reads} reads of the rendered file, all complete");
    });
}

/// Creates a persistent node with null data, as a ZooKeeper client can.
async fn create_null(zk: &paddock_client::Client, path: &str) {
    zk.create_nullable(path, None, paddock_client::CreateMode::Persistent)
        .await
        .unwrap_or_else(|e| panic!("create {path}: {e}"));
}

/// Null data, which ZooKeeper keeps apart from empty data: `"value": null` writes it,
/// and a node written with null data by any client reads as `"value": null` in config
/// (one node, a subtree, either encoding) and in group members.
#[test]
fn null_data_is_json_null_not_an_empty_string() {
    run("null_data_is_json_null_not_an_empty_string", || async {
        let server = Server::start();
        let servers = server.addr.to_string();
        let a = Sidecar::ready(&servers, "a", &[]).await;
        let null = serde_json::json!({ "value": null }).to_string();
        let r = put(a.addr, "/v1/config/app/n", &null).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let r = put(a.addr, "/v1/config/app/e", &body("")).await;
        assert_eq!(r.status, 201, "{}", r.body);

        let zk = paddock_client::Client::connect(&servers)
            .await
            .expect("client");
        let (data, _) = zk
            .get_data_nullable("/paddock/config/app/n")
            .await
            .expect("read");
        assert_eq!(data, None, "the sidecar wrote null data");
        create_null(&zk, "/paddock/config/app/z").await;

        for path in [
            "/v1/config/app/n",
            "/v1/config/app/z",
            "/v1/config/app/n?encoding=base64",
        ] {
            let doc = get(a.addr, path).await.json();
            assert_eq!(doc["value"], Value::Null, "{path}: {doc}");
            assert!(doc.get("encoding").is_none(), "{path}: {doc}");
        }
        assert_eq!(get(a.addr, "/v1/config/app/e").await.json()["value"], "");
        let tree = get(a.addr, "/v1/config/app?recursive=true").await.json();
        assert_eq!(tree["nodes"]["app/n"]["value"], Value::Null, "{tree}");
        assert_eq!(tree["nodes"]["app/e"]["value"], "", "{tree}");

        // Null back to text, and the other way, with If-Match.
        let r = put_if(a.addr, "/v1/config/app/n", "x", ("if-match", "\"0\"")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(get(a.addr, "/v1/config/app/n").await.json()["value"], "x");
        let r = request(
            a.addr,
            "PUT",
            "/v1/config/app/e",
            &[("if-match", "\"0\"")],
            Some(&null),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            get(a.addr, "/v1/config/app/e").await.json()["value"],
            Value::Null
        );
        // Still required: a body without it is refused.
        assert_eq!(put(a.addr, "/v1/config/app/q", "{}").await.status, 400);

        // A group member written with null data by another client.
        zk.ensure_path("/paddock/groups/g", paddock_client::CreateMode::Persistent)
            .await
            .expect("group dir");
        create_null(&zk, "/paddock/groups/g/m1").await;
        let members = get(a.addr, "/v1/groups/g/members").await.json();
        assert_eq!(members["members"][0]["id"], "m1", "{members}");
        assert_eq!(members["members"][0]["value"], Value::Null, "{members}");
    });
}
