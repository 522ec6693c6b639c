//! Group membership and locks against real processes.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

async fn member_ids(addr: SocketAddr, group: &str) -> Option<BTreeSet<String>> {
    let r = try_request(
        addr,
        "GET",
        &format!("/v1/groups/{group}/members"),
        &[],
        None,
    )
    .await
    .ok()?;
    if r.status != 200 {
        return None;
    }
    Some(
        r.json()["members"]
            .as_array()?
            .iter()
            .filter_map(|m| m["id"].as_str().map(str::to_string))
            .collect(),
    )
}

async fn converge(addrs: &[SocketAddr], group: &str, want: &[&str], limit: Duration) {
    let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    let what = format!("group {group} converges to {want:?}");
    eventually(limit, &what, || {
        let want = want.clone();
        async move {
            for addr in addrs {
                if member_ids(*addr, group).await.as_ref() != Some(&want) {
                    return false;
                }
            }
            true
        }
    })
    .await;
}

/// Members join by flag and over HTTP, leave, crash; every sidecar's list converges;
/// blocking reads and the event stream follow along.
#[test]
fn group_lists_converge_after_joins_leaves_and_crashes() {
    run(
        "group_lists_converge_after_joins_leaves_and_crashes",
        || async {
            let server = Server::start();
            let servers = server.addr.to_string();
            let a = Sidecar::ready(
                &servers,
                "a",
                &["--group", "workers", "--value", "10.0.0.1"],
            )
            .await;
            let b = Sidecar::ready(&servers, "b", &["--group", "workers"]).await;
            let mut c = Sidecar::ready(&servers, "c", &["--group", "workers"]).await;
            let all = [a.addr, b.addr, c.addr];
            converge(&all, "workers", &["a", "b", "c"], Duration::from_secs(10)).await;
            let doc = get(a.addr, "/v1/groups/workers/members").await.json();
            assert_eq!(doc["members"][0]["value"], "10.0.0.1");
            assert_eq!(doc["self"][0]["state"], "joined");

            let mut events = Sse::open(b.addr, "/v1/groups/workers/events?heartbeat=1s", &[]).await;
            let first = events.expect("members", Duration::from_secs(5)).await;
            assert_eq!(first.json()["members"].as_array().map(Vec::len), Some(3));

            // An app joins over HTTP (idempotent, with a value update).
            let r = put(
                a.addr,
                "/v1/groups/workers/members/job-1",
                r#"{"value":"v1"}"#,
            )
            .await;
            assert_eq!(r.status, 201, "{}", r.body);
            let r = put(
                a.addr,
                "/v1/groups/workers/members/job-1",
                r#"{"value":"v2"}"#,
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.body);
            converge(
                &all,
                "workers",
                &["a", "b", "c", "job-1"],
                Duration::from_secs(5),
            )
            .await;
            let doc = get(c.addr, "/v1/groups/workers/members").await.json();
            let job = doc["members"]
                .as_array()
                .and_then(|m| m.iter().find(|m| m["id"] == "job-1").cloned())
                .expect("job-1 listed");
            assert_eq!(job["value"], "v2");
            let ev = events.expect("members", Duration::from_secs(5)).await;
            assert!(ev.id.is_some());

            // A blocking read wakes when a member leaves.
            let index = get(b.addr, "/v1/groups/workers/members").await.index();
            let baddr = b.addr;
            let waiter = tokio::spawn(async move {
                get(
                    baddr,
                    &format!("/v1/groups/workers/members?index={index}&wait=20s"),
                )
                .await
            });
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(
                delete(a.addr, "/v1/groups/workers/members/job-1")
                    .await
                    .status,
                204
            );
            assert_eq!(
                delete(a.addr, "/v1/groups/workers/members/job-1")
                    .await
                    .status,
                404
            );
            let r = within(Duration::from_secs(5), "blocking list", waiter)
                .await
                .expect("waiter");
            assert!(r.index() > index);
            converge(&all, "workers", &["a", "b", "c"], Duration::from_secs(5)).await;

            // A crash: the member goes with its session.
            let crashed = Instant::now();
            c.kill9();
            converge(
                &[a.addr, b.addr],
                "workers",
                &["a", "b"],
                SESSION + Duration::from_secs(5),
            )
            .await;
            eprintln!("GROUP crashed member gone after {:?}", crashed.elapsed());

            // The stream saw every change, ending with [a, b].
            let mut last = Value::Null;
            while let Some(ev) = events.next_change(Duration::from_millis(500)).await {
                if ev.event == "members" {
                    last = ev.json();
                }
            }
            let ids: Vec<&str> = last["members"]
                .as_array()
                .map(|m| m.iter().filter_map(|m| m["id"].as_str()).collect())
                .unwrap_or_default();
            assert_eq!(ids, ["a", "b"]);
        },
    );
}

/// Locks: grants with fencing tokens, waiting, 409 on timeout, release by token,
/// holder queries, and a crashed holder's lock passing on after its session expires.
#[test]
fn locks_grant_wait_release_and_fence() {
    run("locks_grant_wait_release_and_fence", || async {
        let server = Server::start();
        let servers = server.addr.to_string();
        let a = Sidecar::ready(&servers, "a", &[]).await;
        let mut b = Sidecar::ready(&servers, "b", &[]).await;

        let r = get(a.addr, "/v1/locks/db").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["holder"], Value::Null);

        let r = post(a.addr, "/v1/locks/db", Some(r#"{"owner":"migrator-a"}"#)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let t1 = r.json()["token"].as_i64().expect("token");
        assert_eq!(r.json()["fencingToken"], t1);
        assert_eq!(r.json()["owner"], "migrator-a");

        // b cannot have it within 300 ms: 409 naming the holder.
        let started = Instant::now();
        let r = post(b.addr, "/v1/locks/db?wait=300ms", None).await;
        assert_eq!(r.status, 409, "{}", r.body);
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(r.json()["detail"]["holder"]["token"], t1);
        assert_eq!(r.json()["detail"]["holder"]["owner"], "migrator-a");

        let doc = get(b.addr, "/v1/locks/db").await.json();
        assert_eq!(doc["holder"]["fencingToken"], t1);
        assert_eq!(doc["holder"]["sidecar"], "a");
        let doc = get(a.addr, "/v1/locks/db").await.json();
        assert_eq!(doc["self"][0]["token"], t1);
        assert_eq!(doc["self"][0]["state"], "held");

        // b waits; a releases; b gets a later token.
        let baddr = b.addr;
        let waiter = tokio::spawn(async move {
            post(
                baddr,
                "/v1/locks/db?wait=20s",
                Some(r#"{"owner":"migrator-b"}"#),
            )
            .await
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Wrong releases first.
        assert_eq!(delete(a.addr, "/v1/locks/db/12345").await.status, 404);
        assert_eq!(
            delete(a.addr, &format!("/v1/locks/other/{t1}"))
                .await
                .status,
            409
        );
        assert_eq!(
            delete(b.addr, &format!("/v1/locks/db/{t1}")).await.status,
            404
        );
        let released = Instant::now();
        assert_eq!(
            delete(a.addr, &format!("/v1/locks/db/{t1}")).await.status,
            204
        );
        let r = within(Duration::from_secs(10), "b's acquire", waiter)
            .await
            .expect("waiter");
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(released.elapsed() < Duration::from_secs(1));
        let t2 = r.json()["token"].as_i64().expect("token");
        assert!(t2 > t1, "{t1} then {t2}");
        assert_eq!(
            delete(a.addr, &format!("/v1/locks/db/{t1}")).await.status,
            404
        );

        // b crashes while holding: a gets the lock once b's session expires.
        let aaddr = a.addr;
        let waiter = tokio::spawn(async move { post(aaddr, "/v1/locks/db?wait=20s", None).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let crashed = Instant::now();
        b.kill9();
        let r = within(Duration::from_secs(15), "a's acquire", waiter)
            .await
            .expect("waiter");
        assert_eq!(r.status, 200, "{}", r.body);
        let took = crashed.elapsed();
        assert!(took < SESSION + Duration::from_secs(2), "took {took:?}");
        let t3 = r.json()["token"].as_i64().expect("token");
        assert!(t3 > t2, "{t2} then {t3}");
        assert_eq!(
            r.json()["owner"],
            "a",
            "the owner defaults to the sidecar's id"
        );
        eprintln!("LOCK tokens {t1} < {t2} < {t3}; crashed holder's lock passed on after {took:?}");
    });
}
