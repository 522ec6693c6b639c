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
            parked_readers(baddr, 1.0).await;
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
        waiting_acquires(baddr, 1.0).await;
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
        waiting_acquires(aaddr, 1.0).await;
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

/// Acquire is idempotent for its owner: the same owner asking again through the same
/// sidecar gets the same grant (not 409 "held by another owner"); another owner, or the
/// default owner, still waits; releasing the one grant frees the lock.
#[test]
fn locks_are_reentrant_for_their_owner() {
    run("locks_are_reentrant_for_their_owner", || async {
        let server = Server::start();
        let a = Sidecar::ready(&server.addr.to_string(), "a", &[]).await;

        let r = post(a.addr, "/v1/locks/job", Some(r#"{"owner":"app-1"}"#)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let first = r.json();
        assert_eq!(first["again"], false);
        let token = first["token"].as_i64().expect("token");

        for _ in 0..3 {
            let r = post(a.addr, "/v1/locks/job", Some(r#"{"owner":"app-1"}"#)).await;
            assert_eq!(r.status, 200, "the owner asking again: {}", r.body);
            assert_eq!(r.json()["token"], token, "the same grant");
            assert_eq!(r.json()["again"], true);
        }
        // One grant, one node: nobody queues behind ourselves.
        let doc = get(a.addr, "/v1/locks/job").await.json();
        assert_eq!(doc["holder"]["token"], token);
        assert_eq!(doc["waiting"], 0);
        assert_eq!(doc["self"].as_array().map(Vec::len), Some(1));

        // Another owner is refused, naming the holder.
        let r = post(
            a.addr,
            "/v1/locks/job?wait=200ms",
            Some(r#"{"owner":"app-2"}"#),
        )
        .await;
        assert_eq!(r.status, 409, "{}", r.body);
        assert_eq!(r.json()["detail"]["holder"]["owner"], "app-1");

        // Two asks of app-2 at once while app-1 holds it: both wait, and once app-1
        // releases, both get the one grant of app-2 (the second queues behind the first
        // rather than behind app-2's own grant).
        let addr = a.addr;
        let ask = || {
            tokio::spawn(async move {
                post(addr, "/v1/locks/job?wait=20s", Some(r#"{"owner":"app-2"}"#)).await
            })
        };
        let (first, second) = (ask(), ask());
        waiting_acquires(a.addr, 1.0).await;
        assert_eq!(
            delete(a.addr, &format!("/v1/locks/job/{token}"))
                .await
                .status,
            204
        );
        let first = within(Duration::from_secs(10), "first ask", first)
            .await
            .expect("first");
        let second = within(Duration::from_secs(10), "second ask", second)
            .await
            .expect("second");
        assert_eq!(first.status, 200, "{}", first.body);
        assert_eq!(second.status, 200, "{}", second.body);
        let t2 = first.json()["token"].as_i64().expect("token");
        assert!(t2 > token);
        assert_eq!(second.json()["token"], t2, "one grant for one owner");
        let mut again = [
            first.json()["again"].clone(),
            second.json()["again"].clone(),
        ];
        again.sort_by_key(|v| v.as_bool());
        assert_eq!(again, [Value::Bool(false), Value::Bool(true)]);
        assert_eq!(get(a.addr, "/v1/locks/job").await.json()["waiting"], 0);
    });
}

/// A grant with a TTL is released when nobody renews it (an app that died while its
/// sidecar lives on), and kept while it is renewed; a renewal or release afterwards
/// gets 410 saying it expired.
#[test]
fn lock_ttl_expires_unless_renewed() {
    run("lock_ttl_expires_unless_renewed", || async {
        let server = Server::start();
        let servers = server.addr.to_string();
        let a = Sidecar::ready(&servers, "a", &[]).await;
        let b = Sidecar::ready(&servers, "b", &[]).await;
        let ttl = Duration::from_secs(1);

        let r = post(a.addr, "/v1/locks/cron?ttl=1s", Some(r#"{"owner":"job"}"#)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let grant = r.json();
        let token = grant["token"].as_i64().expect("token");
        assert_eq!(grant["ttlMs"], 1000);
        assert!(grant["expiresInMs"].as_u64().expect("expiresInMs") <= 1000);

        // Renewed every 400 ms for three TTLs: still held, by the same grant.
        let renewing = Instant::now();
        while renewing.elapsed() < 3 * ttl {
            let r = request(a.addr, "PUT", &format!("/v1/locks/cron/{token}"), &[], None).await;
            assert_eq!(r.status, 200, "renew: {}", r.body);
            assert_eq!(r.json()["token"], token);
            assert!(r.json()["expiresInMs"].as_u64().expect("expiresInMs") > 900);
            let holder = get(b.addr, "/v1/locks/cron").await.json();
            assert_eq!(holder["holder"]["token"], token, "held while renewed");
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        // Asking again as the same owner renews too, and may set a new TTL.
        let r = post(a.addr, "/v1/locks/cron?ttl=2s", Some(r#"{"owner":"job"}"#)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["again"], true);
        assert_eq!(r.json()["ttlMs"], 2000);

        // Left alone, it goes within its TTL (plus a margin for the delete).
        let stopped = Instant::now();
        eventually(
            Duration::from_secs(6),
            "the unrenewed lock is released",
            || {
                let addr = b.addr;
                async move { get(addr, "/v1/locks/cron").await.json()["holder"].is_null() }
            },
        )
        .await;
        let took = stopped.elapsed();
        assert!(
            took >= Duration::from_millis(1500),
            "released early: {took:?}"
        );
        eprintln!("LOCK TTL 2s: released {took:?} after the last renewal");
        let r = request(a.addr, "PUT", &format!("/v1/locks/cron/{token}"), &[], None).await;
        assert_eq!(r.status, 410, "{}", r.body);
        assert!(r.json()["error"].as_str().unwrap_or("").contains("expired"));
        assert_eq!(
            delete(a.addr, &format!("/v1/locks/cron/{token}"))
                .await
                .status,
            410
        );
        assert!(metric(a.addr, "paddock_sidecar_locks_expired_total").await >= 1.0);
        // Someone else can have it now.
        let r = post(b.addr, "/v1/locks/cron", None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.json()["token"].as_i64().expect("token") > token);
        // A grant without a TTL has none, and renewing it changes nothing.
        let t = r.json()["token"].as_i64().expect("token");
        let r = request(b.addr, "PUT", &format!("/v1/locks/cron/{t}"), &[], None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["ttlMs"], Value::Null);
        // Renewing an unknown token, or another lock's, says so.
        assert_eq!(
            request(b.addr, "PUT", "/v1/locks/cron/12345", &[], None)
                .await
                .status,
            404
        );
        assert_eq!(
            request(b.addr, "PUT", &format!("/v1/locks/other/{t}"), &[], None)
                .await
                .status,
            409
        );
    });
}
