//! The app of deploy/examples/app-with-sidecar.yaml on the test cluster: three pods that
//! elect a leader through their native-sidecar paddock-sidecar, and what a test asks of
//! them (who is Ready, who is labelled, who each sidecar says leads).
//!
//! One divergence from a real cluster, because kubesim's pods share the machine's network
//! namespace (each has its own 127.x address but 127.0.0.1 is everyone's): three sidecars
//! cannot all listen on 127.0.0.1:4040, so the manifest applied here moves the sidecar's
//! API to `$(POD_IP):4040` and the app's PADDOCK_SIDECAR with it. Everything else is
//! applied as written. The app image plays e2e/kube/manifests/my-app.sh.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

use super::{Cluster, repo_root};

pub const APP: &str = "app=my-app";
pub const LEADER_LABEL: &str = "paddock.dev/leader";

pub fn example(name: &str) -> String {
    let path = repo_root().join("deploy/examples").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `example` with `from` replaced by `to`; the example must contain `from`.
pub fn substitute(example: String, from: &str, to: &str) -> String {
    assert!(
        example.contains(from),
        "the example no longer contains {from:?}: update this test with it"
    );
    example.replacen(from, to, 1)
}

/// The app example as kubesim can run it (see the module's comment).
pub fn app_for_kubesim() -> String {
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
pub fn app_pods(c: &Cluster) -> BTreeMap<String, (String, bool, String)> {
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
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    http_get_with(addr, path, "")
}

/// `http_get` with more request headers (each line ending in \r\n).
pub fn http_get_with(addr: SocketAddr, path: &str, headers: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .and_then(|()| s.set_write_timeout(Some(Duration::from_secs(2))))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n"
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
pub fn leader_seen_by(ip: &str) -> Result<Option<String>, String> {
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
pub fn one_leader(c: &Cluster) -> Result<String, String> {
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
