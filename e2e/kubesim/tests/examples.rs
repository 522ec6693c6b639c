//! What a newcomer applies, applied as they would: the all-in-one install
//! (deploy/paddock.yaml), then each example of deploy/examples/: the 3-member ensemble,
//! the 5 voters with 2 observers, and the app whose pods elect a leader through their
//! native-sidecar paddock-sidecar. The sidecar runs in real pods against the real API
//! server: exactly one app pod is Ready (the `/self` readiness probe), `--leader-label`
//! labels the leader's pod under the example's Role, every app container learns the same
//! leader from its own sidecar, and deleting the leader's pod moves leadership to another
//! pod within 2 s.
//!
//! One divergence from a real cluster, because kubesim's pods share the machine's network
//! namespace (each has its own 127.x address but 127.0.0.1 is everyone's): three sidecars
//! cannot all listen on 127.0.0.1:4040, so the test moves the sidecar's API to
//! `$(POD_IP):4040` and the app's PADDOCK_SIDECAR with it. Everything else is applied as
//! written. The app image plays e2e/kube/manifests/my-app.sh.
//!
//! They need the upstream binaries, so they run from `bash e2e/kube/test.sh`.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::operator::wait_available;
use common::{Cluster, repo_root, wait_for};
use serde_json::Value;

const APP: &str = "app=my-app";
const LEADER_LABEL: &str = "paddock.dev/leader";

fn example(name: &str) -> String {
    let path = repo_root().join("deploy/examples").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `example` with `from` replaced by `to`; the example must contain `from`.
fn substitute(example: String, from: &str, to: &str) -> String {
    assert!(
        example.contains(from),
        "the example no longer contains {from:?}: update this test with it"
    );
    example.replacen(from, to, 1)
}

/// The app example as kubesim can run it (see the module's comment).
fn app_for_kubesim() -> String {
    let app = example("app-with-sidecar.yaml");
    let app = substitute(
        app,
        "            - --probe-listen=$(POD_IP):4041\n",
        "            - --probe-listen=$(POD_IP):4041\n            - --listen=$(POD_IP):4040\n",
    );
    substitute(
        app,
        "            - name: PADDOCK_SIDECAR\n              value: http://127.0.0.1:4040\n",
        "            - name: POD_IP\n              valueFrom: { fieldRef: { fieldPath: status.podIP } }\n            - name: PADDOCK_SIDECAR\n              value: http://$(POD_IP):4040\n",
    )
}

/// The app's pods that are not being deleted: name → (IP, Ready, leader label).
fn app_pods(c: &Cluster) -> BTreeMap<String, (String, bool, String)> {
    let out = c.kubectl(&["get", "pods", "-l", APP, "-o", "json"]);
    let list: Value = serde_json::from_str(&out).expect("pod list JSON");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            let ready = p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            (
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                (
                    p["status"]["podIP"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    ready,
                    p["metadata"]["labels"][LEADER_LABEL]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                ),
            )
        })
        .collect()
}

/// GET `path` from a sidecar: (status, body), or why it did not answer.
fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .and_then(|()| s.set_write_timeout(Some(Duration::from_secs(2))))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("{addr}: {e}"))?;
    let mut response = String::new();
    s.read_to_string(&mut response)
        .map_err(|e| format!("{addr}: {e}"))?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{addr}: not HTTP: {response:?}"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Who the sidecar at `ip` says leads "my-app" (None while nobody does).
fn leader_seen_by(ip: &str) -> Result<Option<String>, String> {
    let addr: SocketAddr = format!("{ip}:4040")
        .parse()
        .map_err(|e| format!("{ip}: {e}"))?;
    let (status, body) = http_get(addr, "/v1/elections/my-app")?;
    if status != 200 {
        return Err(format!("{addr}: {status} {body}"));
    }
    let state: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    Ok(state["leader"]["id"].as_str().map(str::to_string))
}

/// Exactly one pod leads: Ready, labelled leader=true, named by every sidecar; the other
/// two are not Ready and labelled false. Returns its name.
fn one_leader(c: &Cluster) -> Result<String, String> {
    let pods = app_pods(c);
    if pods.len() != 3 {
        return Err(format!("{} app pods: {pods:?}", pods.len()));
    }
    let ready: Vec<&String> = pods.iter().filter(|(_, p)| p.1).map(|(n, _)| n).collect();
    let labelled: Vec<&String> = pods
        .iter()
        .filter(|(_, p)| p.2 == "true")
        .map(|(n, _)| n)
        .collect();
    let others_false = pods.values().filter(|p| p.2 == "false").count() == 2;
    if ready.len() != 1 || labelled != ready || !others_false {
        return Err(format!("ready {ready:?}, labels {pods:?}"));
    }
    let leader = ready[0].clone();
    for (name, (ip, _, _)) in &pods {
        let seen = leader_seen_by(ip)?;
        if seen.as_deref() != Some(leader.as_str()) {
            return Err(format!(
                "{name}'s sidecar says {seen:?} leads, not {leader}"
            ));
        }
    }
    Ok(leader)
}

#[test]
#[ignore = "needs the upstream binaries: run `bash e2e/kube/test.sh`"]
fn all_in_one_install_and_every_example_work() {
    let c = Cluster::up("examples", 3);
    let file = |name: &str| repo_root().join(name).display().to_string();

    // The all-in-one install, as the README gives it.
    let started = Instant::now();
    c.kubectl(&["apply", "--server-side", "-f", &file("deploy/paddock.yaml")]);
    c.kubectl(&[
        "-n",
        "paddock-system",
        "rollout",
        "status",
        "deployment/paddock",
        "--timeout=180s",
    ]);
    eprintln!(
        "operator Deployment rolled out in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Every example is accepted by the API server exactly as written.
    for name in [
        "ensemble.yaml",
        "ensemble-observers.yaml",
        "app-with-sidecar.yaml",
    ] {
        c.kubectl(&[
            "apply",
            "--dry-run=server",
            "-f",
            &file(&format!("deploy/examples/{name}")),
        ]);
    }

    // The three-member ensemble.
    let started = Instant::now();
    c.kubectl(&["apply", "-f", &file("deploy/examples/ensemble.yaml")]);
    wait_available(&c, "zk", started);

    // Five voters and two observers.
    let started = Instant::now();
    c.kubectl(&[
        "apply",
        "-f",
        &file("deploy/examples/ensemble-observers.yaml"),
    ]);
    wait_available(&c, "zk-large", started);
    wait_for(
        "zk-large reports 1 leader, 4 followers, 2 observers",
        Duration::from_secs(60),
        || {
            let roles = c.jsonpath(&["get", "zke", "zk-large"], "{.status.members[*].role}");
            let mut counts = BTreeMap::new();
            for role in roles.split_whitespace() {
                *counts.entry(role.to_string()).or_insert(0) += 1;
            }
            let want = BTreeMap::from([
                ("follower".to_string(), 4),
                ("leader".to_string(), 1),
                ("observer".to_string(), 2),
            ]);
            if counts == want { Ok(()) } else { Err(roles) }
        },
    );

    // The app with its sidecars, on the ensemble "zk".
    let started = Instant::now();
    c.apply_yaml(&app_for_kubesim());
    let leader = wait_for(
        "one app pod leads (Ready, labelled, named by every sidecar)",
        Duration::from_secs(120),
        || one_leader(&c),
    );
    eprintln!(
        "app leader {leader} after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The app containers learn it from their own sidecar (my-app.sh prints the answers).
    let pods = app_pods(&c);
    for name in pods.keys() {
        wait_for(
            &format!("{name}'s app container hears from its sidecar that {leader} leads"),
            Duration::from_secs(30),
            || {
                let log = c.container_log("default", name, "app");
                let said = format!("\"id\":\"{leader}\"");
                if log.lines().any(|l| l.contains(&said)) {
                    Ok(())
                } else {
                    Err(log.lines().last().unwrap_or_default().to_string())
                }
            },
        );
    }

    // The leader's pod goes (a graceful delete: its sidecar resigns on SIGTERM).
    let survivors: Vec<String> = pods
        .iter()
        .filter(|(name, _)| **name != leader)
        .map(|(_, p)| p.0.clone())
        .collect();
    let deleted = Instant::now();
    c.kubectl(&["delete", "pod", &leader, "--wait=false"]);
    let new_leader = wait_for(
        "a surviving sidecar names a new leader",
        Duration::from_secs(30),
        || {
            let seen = leader_seen_by(&survivors[0])?;
            match seen {
                Some(id) if id != leader => Ok(id),
                other => Err(format!("{other:?}")),
            }
        },
    );
    let handover = deleted.elapsed();
    let labelled = wait_for(
        "the new leader's pod is labelled leader=true",
        Duration::from_secs(30),
        || match app_pods(&c).get(&new_leader) {
            Some((_, _, label)) if label == "true" => Ok(deleted.elapsed()),
            other => Err(format!("{other:?}")),
        },
    );
    eprintln!(
        "leader {leader} deleted: {new_leader} leads after {} ms, labelled after {} ms",
        handover.as_millis(),
        labelled.as_millis()
    );
    assert!(
        handover < Duration::from_secs(2),
        "leadership took {handover:?} to move"
    );
    assert!(
        labelled < Duration::from_secs(2),
        "the label took {labelled:?} to move"
    );
    // The Deployment replaces the pod; the ensemble of three settles with one leader.
    let leader = wait_for(
        "three app pods again, one leader",
        Duration::from_secs(120),
        || one_leader(&c),
    );
    assert_eq!(leader, new_leader, "leadership moved again without cause");
}
