//! The seeds' master–worker system (examples/master-worker) on the test cluster, as its
//! README deploys it: a ZkEnsemble, then examples/master-worker/kubernetes.yaml (the sink,
//! two masters, three Rust workers, and the Python worker beside its native-sidecar
//! paddock-sidecar). Tasks are submitted from outside while the active master's pod and
//! a worker's pod are deleted at once (grace 0: a crash); every task must get its status
//! and none may be recorded twice.
//!
//! The manifest runs with the one change kubesim needs (as in common/app.rs): the
//! sidecar's API on `$(POD_IP):4040` instead of 127.0.0.1:4040, since pods here share the
//! host's loopback.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::app::substitute;
use common::operator::{Operator, ensemble_yaml, install_crd, wait_available};
use common::{Cluster, repo_root, wait_for};
use serde_json::Value;

const TASKS: u64 = 150;

fn mw(bin: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(bin)
        .args(args)
        .output()
        .map_err(|e| format!("run mw: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "mw {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn status(bin: &Path, servers: &str) -> Result<Value, String> {
    let out = mw(bin, &["status", "--servers", servers])?;
    serde_json::from_str(out.trim()).map_err(|e| format!("mw status: {e}: {out}"))
}

#[test]
#[ignore = "needs the upstream control plane: run bash e2e/kube/test.sh"]
fn master_worker_survives_a_master_and_a_worker_crash_on_kubernetes() {
    let bin = common::workspace_binaries().join("mw");
    assert!(bin.is_file(), "no mw binary at {}", bin.display());
    let c = Cluster::up_with_images(
        "mw",
        3,
        &[
            ("paddock/master-worker", &bin),
            ("python", Path::new("/usr/bin/python3")),
        ],
    );
    install_crd(&c);
    let _op = Operator::start(&c, "a");
    let started = Instant::now();
    c.apply_yaml(&ensemble_yaml("zk", 3, 0));
    wait_available(&c, "zk", started);

    let example = repo_root().join("examples/master-worker");
    c.kubectl(&[
        "create",
        "configmap",
        "mw-python-worker",
        &format!(
            "--from-file=worker.py={}",
            example.join("worker.py").display()
        ),
    ]);
    let manifest = std::fs::read_to_string(example.join("kubernetes.yaml")).expect("manifest");
    let manifest = substitute(
        manifest,
        "            - --probe-listen=$(POD_IP):4041\n",
        "            - --probe-listen=$(POD_IP):4041\n            - --listen=$(POD_IP):4040\n",
    );
    let manifest = substitute(
        manifest,
        "            - --sidecar=http://127.0.0.1:4040\n",
        "            - --sidecar=http://$(POD_IP):4040\n",
    );
    let manifest = substitute(
        manifest,
        "          env:\n            - name: POD_NAME\n              valueFrom: { fieldRef: { fieldPath: metadata.name } }\n          volumeMounts:",
        "          env:\n            - name: POD_NAME\n              valueFrom: { fieldRef: { fieldPath: metadata.name } }\n            - name: POD_IP\n              valueFrom: { fieldRef: { fieldPath: status.podIP } }\n          volumeMounts:",
    );
    c.apply_yaml(&manifest);

    let ips = c.jsonpath(
        &["get", "pods", "-l", "app.kubernetes.io/instance=zk"],
        "{.items[*].status.podIP}",
    );
    let servers: String = ips
        .split_whitespace()
        .map(|ip| format!("{ip}:2181"))
        .collect::<Vec<_>>()
        .join(",");
    assert!(!servers.is_empty(), "no member pod IPs");
    let ready = wait_for(
        "4 workers registered and a master active",
        Duration::from_secs(180),
        || {
            let s = status(&bin, &servers)?;
            let workers = s["workers"].as_array().map_or(0, Vec::len);
            if workers == 4 && s["master"].is_string() && s["backups"] == 1 {
                Ok(s)
            } else {
                Err(s.to_string())
            }
        },
    );
    eprintln!("master–worker up: {ready}");

    let report = c.dir.join("mw-submit.json");
    let mut submit = Command::new(&bin)
        .args([
            "submit",
            "--servers",
            &servers,
            "--count",
            &TASKS.to_string(),
            "--rate",
            "15",
            "--work-ms",
            "100",
            "--timeout-s",
            "150",
            "--report",
        ])
        .arg(&report)
        .spawn()
        .expect("start mw submit");
    std::thread::sleep(Duration::from_secs(3));

    // The active master and a Rust worker crash at once.
    let master = ready["master"].as_str().expect("a master").to_string();
    let worker = ready["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find(|w| w.starts_with("mw-worker-"))
        .expect("a Rust worker")
        .to_string();
    let crashed = Instant::now();
    c.kubectl(&[
        "delete",
        "pod",
        &master,
        &worker,
        "--grace-period=0",
        "--force",
        "--wait=false",
    ]);
    let takeover = wait_for(
        "a backup master takes over",
        Duration::from_secs(60),
        || {
            let s = status(&bin, &servers)?;
            match s["master"].as_str() {
                Some(m) if m != master => Ok(crashed.elapsed()),
                other => Err(format!("master {other:?}")),
            }
        },
    );

    let deadline = Instant::now() + Duration::from_secs(200);
    let exit = loop {
        if let Some(exit) = submit.try_wait().expect("wait for mw submit") {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = submit.kill();
            panic!("mw submit did not finish within 200 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let outcome: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("the submit report"))
            .expect("submit report JSON");
    assert!(exit.success(), "mw submit: {exit}; {outcome}");
    assert_eq!(outcome["lost"], 0, "{outcome}");
    assert_eq!(outcome["completed"], TASKS, "{outcome}");

    // The sink: every task recorded once.
    let sink_ip = c.jsonpath(
        &["get", "pods", "-l", "app=mw-sink"],
        "{.items[0].status.podIP}",
    );
    let addr: std::net::SocketAddr = format!("{sink_ip}:7070").parse().expect("sink address");
    let (code, body) = common::app::http_get(addr, "/v1/results").expect("sink counts");
    assert_eq!(code, 200, "{body}");
    let counts: Value = serde_json::from_str(&body).expect("sink JSON");
    assert_eq!(counts["recordedTwice"], 0, "{counts}");
    assert_eq!(counts["tasksRecorded"], TASKS, "{counts}");
    eprintln!(
        "{TASKS} tasks, master {master} and worker {worker} crashed: backup active after {:.1} s; submit to status {}; sink {counts}",
        takeover.as_secs_f64(),
        outcome["submitToStatusMs"]
    );
}
