//! Elections against real processes: one server, several sidecars.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use tokio::sync::Mutex;

/// Watches a set of sidecars and fails if two ever claim leadership at once.
///
/// Sweeps ask every sidecar in turn. A sweep that sees two claims cannot tell a real
/// overlap from a handover that happened between two answers, so the earlier claimant
/// is asked again: leadership never comes back to it in these tests, so if it still
/// claims after the other one did, both led at the same time.
struct Observer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(u64, Vec<String>)>,
}

impl Observer {
    fn start(sidecars: Arc<Mutex<Vec<(String, SocketAddr)>>>, election: &'static str) -> Observer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut sweeps = 0u64;
            let mut violations = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                let list = sidecars.lock().await.clone();
                let mut claims: Vec<(String, SocketAddr, Option<i64>)> = Vec::new();
                for (name, addr) in &list {
                    if let Some((true, token)) = leads(*addr, election).await {
                        claims.push((name.clone(), *addr, token));
                    }
                }
                sweeps += 1;
                if claims.len() > 1 {
                    for (name, addr, token) in &claims[..claims.len() - 1] {
                        if let Some((true, again)) = leads(*addr, election).await {
                            violations.push(format!(
                                "{name} (token {token:?}, then {again:?}) still leads after {:?} claimed",
                                claims.last().map(|c| (&c.0, c.2))
                            ));
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (sweeps, violations)
        });
        Observer { stop, task }
    }

    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        let (sweeps, violations) = within(Duration::from_secs(10), "observer", self.task)
            .await
            .expect("observer task");
        assert!(violations.is_empty(), "two leaders at once: {violations:?}");
        sweeps
    }
}

/// The one sidecar that leads (waiting until exactly one does).
async fn the_leader(
    sidecars: &[(String, SocketAddr)],
    election: &str,
    limit: Duration,
) -> (String, i64) {
    let deadline = Instant::now() + limit;
    loop {
        let mut claims = Vec::new();
        for (name, addr) in sidecars {
            if let Some((true, Some(token))) = leads(*addr, election).await {
                claims.push((name.clone(), token));
            }
        }
        if claims.len() == 1 {
            return claims.remove(0);
        }
        assert!(
            Instant::now() < deadline,
            "no single leader within {limit:?}: {claims:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Three sidecars campaign by flag: exactly one leads; SIGTERM hands over at once,
/// kill -9 within the session timeout + 1 s; tokens strictly increase; never two
/// leaders at once.
#[test]
fn flag_campaigns_fail_over_on_sigterm_and_kill() {
    run("flag_campaigns_fail_over_on_sigterm_and_kill", || async {
        let server = Server::start();
        let servers = server.addr.to_string();
        let mut procs = Vec::new();
        for i in 0..3 {
            let name = format!("pod-{i}");
            procs.push(
                Sidecar::ready(
                    &servers,
                    &name,
                    &["--election", "main", "--value", &format!("10.0.0.{i}:8080")],
                )
                .await,
            );
        }
        let live: Arc<Mutex<Vec<(String, SocketAddr)>>> = Arc::new(Mutex::new(
            procs.iter().map(|p| (p.name.clone(), p.addr)).collect(),
        ));
        let observer = Observer::start(live.clone(), "main");

        let list = live.lock().await.clone();
        let (first, t1) = the_leader(&list, "main", Duration::from_secs(10)).await;
        // Everyone agrees on who leads and on the token.
        for (_, addr) in &list {
            let state = get(*addr, "/v1/elections/main").await.json();
            assert_eq!(state["leader"]["id"], first.as_str());
            assert_eq!(state["fencingToken"], t1);
            assert_eq!(
                state["leader"]["value"],
                format!("10.0.0.{}:8080", &first[4..])
            );
        }

        // SIGTERM: another leads within 1 s.
        let i = procs
            .iter()
            .position(|p| p.name == first)
            .expect("leader process");
        let mut leaving = procs.remove(i);
        live.lock().await.retain(|(n, _)| *n != first);
        let started = Instant::now();
        leaving.term();
        let list = live.lock().await.clone();
        let (second, t2) = the_leader(&list, "main", Duration::from_secs(5)).await;
        let sigterm_failover = started.elapsed();
        assert!(
            sigterm_failover < Duration::from_secs(1),
            "SIGTERM failover took {sigterm_failover:?}"
        );
        assert!(t2 > t1, "tokens must increase: {t1} then {t2}");
        assert_eq!(leaving.exited(Duration::from_secs(10)).await, Some(0));

        // kill -9: another leads within the session timeout + 1 s.
        let i = procs
            .iter()
            .position(|p| p.name == second)
            .expect("leader process");
        let mut crashed = procs.remove(i);
        live.lock().await.retain(|(n, _)| *n != second);
        let started = Instant::now();
        crashed.kill9();
        let list = live.lock().await.clone();
        let (third, t3) = the_leader(&list, "main", SESSION + Duration::from_secs(5)).await;
        let kill_failover = started.elapsed();
        assert!(
            kill_failover < SESSION + Duration::from_secs(1),
            "kill -9 failover took {kill_failover:?} (session timeout {SESSION:?})"
        );
        assert!(t3 > t2, "tokens must increase: {t2} then {t3}");
        assert_ne!(third, second);

        let sweeps = observer.finish().await;
        assert!(sweeps > 10, "the observer swept only {sweeps} times");
        eprintln!(
            "FAILOVER sigterm={sigterm_failover:?} kill9={kill_failover:?} (session {SESSION:?}); tokens {t1} < {t2} < {t3}; {sweeps} sweeps"
        );
    });
}

/// Joining and resigning over HTTP: idempotent join, value updates, state answers with
/// the fencing token, resign hands over at once, blocking reads wake on the change.
#[test]
fn http_join_resign_state_and_blocking_reads() {
    run("http_join_resign_state_and_blocking_reads", || async {
        let server = Server::start();
        let servers = server.addr.to_string();
        let a = Sidecar::ready(&servers, "a", &[]).await;
        let b = Sidecar::ready(&servers, "b", &[]).await;

        // Nobody yet.
        let state = get(a.addr, "/v1/elections/web").await;
        assert_eq!(state.status, 200);
        let doc = state.json();
        assert_eq!(doc["leader"], serde_json::Value::Null);
        assert_eq!(doc["self"]["state"], "none");
        let r = get(a.addr, "/v1/elections/web/self").await;
        assert_eq!(r.status, 503);
        assert_eq!(r.json()["detail"]["state"], "none");

        let r = put(
            a.addr,
            "/v1/elections/web/candidates/a",
            r#"{"value":"http://a"}"#,
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.json()["self"]["state"], "leader");
        let t1 = r.json()["fencingToken"].as_i64().expect("token");
        // Idempotent; a new value is published.
        let r = put(
            a.addr,
            "/v1/elections/web/candidates/a",
            r#"{"value":"http://a2"}"#,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["leader"]["value"], "http://a2");
        assert_eq!(r.json()["fencingToken"], t1, "same term, same token");

        let r = put(
            b.addr,
            "/v1/elections/web/candidates/b",
            r#"{"value":"http://b"}"#,
        )
        .await;
        assert_eq!(r.status, 201);
        let doc = r.json();
        assert_eq!(doc["self"]["state"], "follower");
        assert_eq!(doc["leader"]["id"], "a");
        assert_eq!(doc["candidates"], 2);
        let index = r.index();

        // A blocking read on b wakes when a resigns.
        let baddr = b.addr;
        let waiter = tokio::spawn(async move {
            let started = Instant::now();
            let r = get(b.addr, &format!("/v1/elections/web?index={index}&wait=20s")).await;
            (r, started.elapsed(), b)
        });
        parked_readers(baddr, 1.0).await;
        let r = delete(a.addr, "/v1/elections/web/candidates/a").await;
        assert_eq!(r.status, 204);
        // At once: not leader any more.
        assert_eq!(get(a.addr, "/v1/elections/web/self").await.status, 503);
        let (r, took, b) = within(Duration::from_secs(10), "blocking read", waiter)
            .await
            .expect("waiter");
        assert!(took < Duration::from_secs(5), "blocking read took {took:?}");
        assert!(r.index() > index);
        let doc = r.json();
        assert_eq!(doc["leader"]["id"], "b");
        assert_eq!(doc["self"]["state"], "leader");
        let t2 = doc["fencingToken"].as_i64().expect("token");
        assert!(t2 > t1);
        let r = get(b.addr, "/v1/elections/web/self").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["fencingToken"], t2);

        // A blocking read with nothing changing returns at the end of its wait.
        let index = get(b.addr, "/v1/elections/web").await.index();
        let started = Instant::now();
        let r = get(
            b.addr,
            &format!("/v1/elections/web?index={index}&wait=300ms"),
        )
        .await;
        let took = started.elapsed();
        assert_eq!(r.index(), index);
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(3),
            "{took:?}"
        );

        // Resigning twice: not a candidate any more.
        assert_eq!(
            delete(a.addr, "/v1/elections/web/candidates/a")
                .await
                .status,
            404
        );
        // Rejoining gets a later token.
        let r = put(a.addr, "/v1/elections/web/candidates/a", "").await;
        assert_eq!(r.status, 201);
        assert_eq!(r.json()["self"]["state"], "follower");
        assert_eq!(
            delete(b.addr, "/v1/elections/web/candidates/b")
                .await
                .status,
            204
        );
        let addr = a.addr;
        eventually(Duration::from_secs(5), "a leads again", || async move {
            leads(addr, "web").await.is_some_and(|l| l.0)
        })
        .await;
        let t3 = leads(a.addr, "web").await.and_then(|l| l.1).expect("token");
        assert!(t3 > t2, "{t2} then {t3}");
    });
}

/// Cut off from the server (SIGSTOP): the leader reports suspended and stops claiming
/// at once; event streams say `suspended`, then `resync` when the session is back (a new
/// session after an expiry), and leadership comes back with a later token.
#[test]
fn cut_off_sidecar_suspends_and_streams_resync() {
    run("cut_off_sidecar_suspends_and_streams_resync", || async {
        let server = Server::start();
        let servers = server.addr.to_string();
        let a = Sidecar::ready(&servers, "a", &["--election", "e"]).await;
        let b = Sidecar::ready(&servers, "b", &["--election", "e"]).await;
        let list = vec![(a.name.clone(), a.addr), (b.name.clone(), b.addr)];
        let (leader, t1) = the_leader(&list, "e", Duration::from_secs(10)).await;
        let leader_addr = if leader == "a" { a.addr } else { b.addr };

        let mut stream =
            Sse::open(leader_addr, "/v1/elections/e/events?heartbeat=300ms", &[]).await;
        assert_eq!(stream.status, 200);
        let first = stream.expect("state", Duration::from_secs(5)).await;
        assert_eq!(first.json()["self"]["state"], "leader");
        assert_eq!(
            first.id.as_deref(),
            Some(first.json()["index"].to_string().as_str())
        );

        server.stop();
        let cut = Instant::now();
        let ev = stream
            .expect("suspended", SESSION + Duration::from_secs(3))
            .await;
        assert_eq!(ev.json()["session"], "suspended");
        let state = stream.expect("state", Duration::from_secs(2)).await.json();
        assert_eq!(state["self"]["state"], "suspended");
        assert_eq!(state["leader"], serde_json::Value::Null);
        // No sidecar claims leadership while cut off.
        let r = get(leader_addr, "/v1/elections/e/self").await;
        assert_eq!(r.status, 503);
        assert_eq!(r.json()["detail"]["state"], "suspended");
        assert!(r.header("retry-after").is_some());
        let doc = get(leader_addr, "/v1/elections/e").await.json();
        assert_eq!(doc["self"]["state"], "suspended");
        assert_eq!(doc["stale"], true);
        for (_, addr) in &list {
            assert_ne!(leads(*addr, "e").await.map(|l| l.0), Some(true));
        }
        // Heartbeats keep saying so.
        let beat = stream.expect("heartbeat", Duration::from_secs(2)).await;
        assert_ne!(beat.json()["session"], "connected");
        let suspended_after = cut.elapsed();
        // Keep the partition past the session timeout, so the servers expire both
        // sessions: the sidecars must come back on new sessions by themselves.
        let partition = SESSION + Duration::from_secs(1);
        tokio::time::sleep(partition.saturating_sub(cut.elapsed())).await;
        server.resume();
        let ev = stream.expect("resync", Duration::from_secs(15)).await;
        assert!(ev.id.is_some(), "a resync carries the index");
        let (_, t2) = the_leader(&list, "e", Duration::from_secs(15)).await;
        assert!(t2 > t1, "a new term has a later token: {t1} then {t2}");
        eprintln!("SUSPENDED reported {suspended_after:?} after the cut (session {SESSION:?})");
    });
}
