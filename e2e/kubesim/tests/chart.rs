//! The Helm chart (charts/paddock) and the all-in-one manifests (deploy/): lint, render,
//! schema, drift; then on the test cluster, the operator installed by `helm install` runs
//! in a pod under its own ServiceAccount and RBAC, takes an ensemble through everything
//! the operator does, and the API server's audit log proves the RBAC is exactly what it
//! uses: every granted verb was used, no request was refused.
//!
//! They need helm and the upstream binaries, so they run from `bash e2e/kube/test.sh`.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::operator::{condition, install_crd, wait_available};
use common::{Cluster, kube_bin_dir, repo_root, wait_for};
use serde_json::Value;

const RELEASE: &str = "paddock";
const NAMESPACE: &str = "paddock-system";
/// The chart's ServiceAccount for the release above.
const OPERATOR_USER: &str = "system:serviceaccount:paddock-system:paddock";

fn chart() -> String {
    repo_root().join("charts/paddock").display().to_string()
}

/// helm without a cluster (lint, template): (succeeded, stdout, stderr).
fn helm_offline(args: &[&str]) -> (bool, String, String) {
    let scratch = std::env::temp_dir().join(format!("paddock-helm-{}", std::process::id()));
    let output = std::process::Command::new(kube_bin_dir().join("helm"))
        .env("HELM_CACHE_HOME", scratch.join("cache"))
        .env("HELM_CONFIG_HOME", scratch.join("config"))
        .env("HELM_DATA_HOME", scratch.join("data"))
        .args(args)
        .output()
        .expect("run helm");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
#[ignore = "needs helm from the upstream build: run `bash e2e/kube/test.sh`"]
fn chart_lints_renders_refuses_wrong_values_and_matches_deploy() {
    let chart = chart();
    let (ok, out, err) = helm_offline(&["lint", "--strict", &chart]);
    assert!(ok, "helm lint:\n{out}{err}");

    // Wrong values are refused with a message that names the key.
    for (set, names) in [
        ("replicaCount=two", "/replicaCount"),
        ("metrics.port=0", "/metrics/port"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("watchNamespace=Not_A_Namespace", "/watchNamespace"),
        ("replicas=3", "'replicas' not allowed"),
    ] {
        let (ok, out, err) = helm_offline(&["template", "x", &chart, "--set", set]);
        assert!(!ok, "--set {set} must be refused:\n{out}");
        assert!(
            err.contains(names),
            "--set {set}: the error must name {names}:\n{err}"
        );
    }
    let (ok, _, err) = helm_offline(&[
        "template",
        "x",
        &chart,
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.service.enabled=false",
    ]);
    assert!(
        !ok && err.contains("needs metrics.service.enabled"),
        "{err}"
    );

    // A namespaced install binds the operator's role in that namespace only.
    let (ok, out, err) = helm_offline(&["template", "x", &chart, "--set", "watchNamespace=apps"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("kind: RoleBinding\nmetadata:\n  name: x-paddock\n  namespace: apps"),
        "{out}"
    );
    assert!(out.contains("- --namespace=apps"), "{out}");

    // deploy/paddock.yaml is the chart rendered with its defaults.
    let generated = std::process::Command::new("bash")
        .arg(repo_root().join("deploy/generate.sh"))
        .arg("--stdout")
        .env("HELM", kube_bin_dir().join("helm"))
        .output()
        .expect("run deploy/generate.sh");
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let on_disk = std::fs::read_to_string(repo_root().join("deploy/paddock.yaml"))
        .expect("deploy/paddock.yaml");
    assert!(
        on_disk == String::from_utf8_lossy(&generated.stdout),
        "deploy/paddock.yaml differs from the chart: run `bash deploy/generate.sh`"
    );
}

/// One permission: (API group, resource[/subresource], verb).
type Permission = (String, String, String);

/// What the ClusterRoles and Role of the release grant.
fn granted(c: &Cluster) -> BTreeSet<Permission> {
    let mut out = BTreeSet::new();
    for args in [
        vec!["get", "clusterrole", RELEASE, "-o", "json"],
        vec!["get", "clusterrole", "paddock-storageclasses", "-o", "json"],
        vec![
            "get",
            "role",
            "-n",
            NAMESPACE,
            "paddock-leader-election",
            "-o",
            "json",
        ],
    ] {
        let role: Value = serde_json::from_str(&c.kubectl(&args)).expect("role JSON");
        for rule in role["rules"].as_array().expect("rules") {
            let strings = |key: &str| -> Vec<String> {
                rule[key]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            for group in strings("apiGroups") {
                for resource in strings("resources") {
                    for verb in strings("verbs") {
                        out.insert((group.clone(), resource.clone(), verb));
                    }
                }
            }
        }
    }
    out
}

/// What the operator's ServiceAccount did, by the audit log: the permissions it used
/// (an apply that answered 201 Created used `create` as well as `patch`) and the requests
/// the API server refused.
fn used(c: &Cluster) -> (BTreeSet<Permission>, Vec<String>) {
    let log = std::fs::read_to_string(c.dir.join("logs/audit.log")).expect("the audit log");
    let mut permissions = BTreeSet::new();
    let mut refused = Vec::new();
    for line in log.lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        // Discovery (`/apis/<group>/<version>`) names no resource and needs no rule.
        if event["user"]["username"] != OPERATOR_USER
            || event["objectRef"]["resource"]
                .as_str()
                .is_none_or(str::is_empty)
        {
            continue;
        }
        let object = &event["objectRef"];
        let group = object["apiGroup"].as_str().unwrap_or("").to_string();
        let mut resource = object["resource"].as_str().unwrap_or("").to_string();
        if let Some(sub) = object["subresource"].as_str() {
            resource = format!("{resource}/{sub}");
        }
        let verb = event["verb"].as_str().unwrap_or("").to_string();
        let code = event["responseStatus"]["code"].as_i64().unwrap_or(0);
        if code == 403 {
            refused.push(format!("{verb} {group}/{resource}: {line}"));
            continue;
        }
        if verb == "patch" && code == 201 {
            permissions.insert((group.clone(), resource.clone(), "create".to_string()));
        }
        permissions.insert((group, resource, verb));
    }
    (permissions, refused)
}

fn patch_zke(c: &Cluster, patch: &str) {
    c.kubectl(&["patch", "zke", "zk", "--type=merge", "-p", patch]);
}

/// The dashboard's metric names (histogram series without their suffix).
fn dashboard_metrics() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo_root().join("charts/paddock/dashboards/paddock.json"))
        .expect("the dashboard");
    let mut names = BTreeSet::new();
    for (i, _) in text.match_indices("paddock_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let name = name.strip_suffix("_bucket").unwrap_or(&name).to_string();
        names.insert(name);
    }
    names
}

/// GET http://ADDRESS/metrics.
fn scrape(address: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(address).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

fn operator_pods(c: &Cluster) -> Vec<String> {
    c.kubectl(&[
        "get",
        "pods",
        "-n",
        NAMESPACE,
        "-l",
        "app.kubernetes.io/name=paddock-operator",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ])
    .split_whitespace()
    .map(String::from)
    .collect()
}

#[test]
#[ignore = "needs the upstream control plane: run `bash e2e/kube/test.sh`"]
fn helm_installed_operator_runs_in_a_pod_with_exactly_the_rbac_it_uses() {
    let c = Cluster::up("chart", 3);
    let chart = chart();
    c.apply_file(&repo_root().join("e2e/kube/manifests/servicemonitor-crd.yaml"));

    helm_install(&c, &chart);
    create_an_ensemble_whose_metrics_the_dashboard_reads(&c);
    grow_shrink_roll_and_drop_the_pdb(&c);
    the_standby_takes_over_and_pauses(&c);
    assert_exactly_the_rbac_it_uses(&c);
    helm_upgrade_and_uninstall_leave_the_ensemble(&c, &chart);
}

/// The rendered chart passes the API server's own validation; `helm install --wait` runs
/// two operator replicas, the CRD, the ServiceMonitor and the dashboard.
fn helm_install(c: &Cluster, chart: &str) {
    // The rendered chart passes the API server's own validation.
    c.kubectl(&["create", "namespace", NAMESPACE]);
    let rendered = c.helm(&["template", RELEASE, chart, "--namespace", NAMESPACE]);
    let (ok, out, err) = c.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &rendered);
    assert!(
        ok,
        "kubectl apply --dry-run=server of the chart:\n{out}{err}"
    );

    let t = Instant::now();
    let notes = c.helm(&[
        "install",
        RELEASE,
        chart,
        "--namespace",
        NAMESPACE,
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--wait",
        "--timeout",
        "180s",
    ]);
    eprintln!("helm install --wait: {:.1} s", t.elapsed().as_secs_f64());
    assert!(
        notes.contains("kubectl apply -f -"),
        "NOTES.txt tells the next command:\n{notes}"
    );
    c.wait_jsonpath(
        &["get", "crd", "zkensembles.paddock.dev"],
        "{.metadata.name}",
        "the chart's CRD",
        Duration::from_secs(30),
        |n| n == "zkensembles.paddock.dev",
    );
    install_crd(c); // waits for Established (and is a no-op apply of the same CRD)
    c.kubectl(&["get", "servicemonitor", "-n", NAMESPACE, RELEASE]);
    c.kubectl(&["get", "configmap", "-n", NAMESPACE, "paddock-dashboard"]);
    assert_eq!(operator_pods(c).len(), 2);
}

/// Everything the operator does starts with a create (4 voters, a ServiceMonitor, a
/// PDB); the dashboard reads metrics that the members and the operators really export.
fn create_an_ensemble_whose_metrics_the_dashboard_reads(c: &Cluster) {
    // Everything the operator does: create (4 voters, a ServiceMonitor, a PDB), grow
    // storage, scale down with reclaim Delete, roll, drop the PDB.
    let t = Instant::now();
    c.apply_yaml(
        r#"apiVersion: paddock.dev/v1alpha1
kind: ZkEnsemble
metadata: {name: zk}
spec:
  replicas: 4
  storage: {size: 1Gi, reclaimPolicy: Delete}
  config: {tickTime: 500, initLimit: 20, syncLimit: 5}
  pod: {terminationGracePeriodSeconds: 10}
  metrics: {serviceMonitor: true}
"#,
    );
    wait_available(c, "zk", t);
    c.kubectl(&["get", "servicemonitor", "zk"]);
    c.kubectl(&["get", "pdb", "zk"]);

    // The dashboard reads metrics that the server and the operator really export.
    // Every member (the leader alone reports its followers' lag) and every operator.
    let mut exported = String::new();
    for ordinal in 0..4 {
        let ip = c.jsonpath(&["get", "pod", &format!("zk-{ordinal}")], "{.status.podIP}");
        exported.push_str(&scrape(&format!("{ip}:8080")).expect("a member's /metrics"));
    }
    for pod in operator_pods(c) {
        let ip = c.jsonpath(&["get", "pod", "-n", NAMESPACE, &pod], "{.status.podIP}");
        exported.push_str(&scrape(&format!("{ip}:9090")).expect("the operator's /metrics"));
    }
    for name in dashboard_metrics() {
        assert!(
            exported.contains(&format!("\n{name}"))
                || exported.contains(&format!("# TYPE {name} ")),
            "the dashboard uses {name}, which nothing exports"
        );
    }
}

/// Grow storage, scale down with reclaim Delete, roll, drop the PDB.
fn grow_shrink_roll_and_drop_the_pdb(c: &Cluster) {
    let t = Instant::now();
    patch_zke(c, r#"{"spec":{"storage":{"size":"2Gi"}}}"#);
    c.wait_jsonpath(
        &["get", "pvc", "data-zk-3"],
        "{.status.capacity.storage}",
        "data-zk-3 grown to 2Gi",
        Duration::from_secs(180),
        |s| s == "2Gi",
    );
    wait_available(c, "zk", t);

    let t = Instant::now();
    patch_zke(c, r#"{"spec":{"replicas":3}}"#);
    wait_for(
        "data-zk-3 deleted after the scale-down",
        Duration::from_secs(300),
        || {
            let (exists, out, _) = c.kubectl_raw(&["get", "pvc", "data-zk-3", "-o", "name"]);
            if exists { Err(out) } else { Ok(()) }
        },
    );
    wait_available(c, "zk", t);

    let t = Instant::now();
    let revision = c.jsonpath(&["get", "statefulset", "zk"], "{.status.updateRevision}");
    c.kubectl(&[
        "annotate",
        "zke",
        "zk",
        "paddock.dev/restartedAt=chart-test",
        "--overwrite",
    ]);
    wait_for("every member restarted", Duration::from_secs(300), || {
        let update = c.jsonpath(&["get", "statefulset", "zk"], "{.status.updateRevision}");
        let current = c.jsonpath(&["get", "zke", "zk"], "{.status.currentRevision}");
        if update != revision && current == update {
            Ok(())
        } else {
            Err(format!("update {update}, current {current}"))
        }
    });
    wait_available(c, "zk", t);

    patch_zke(c, r#"{"spec":{"pdb":{"enabled":false}}}"#);
    wait_for("the PDB removed", Duration::from_secs(60), || {
        let (exists, out, _) = c.kubectl_raw(&["get", "pdb", "zk", "-o", "name"]);
        if exists { Err(out) } else { Ok(()) }
    });
}

/// The standby takes over when the active operator's pod goes (Lease update), and acts.
fn the_standby_takes_over_and_pauses(c: &Cluster) {
    // The standby takes over when the active operator's pod goes (Lease update).
    let holder = c.jsonpath(
        &["get", "lease", "-n", NAMESPACE, "paddock-operator"],
        "{.spec.holderIdentity}",
    );
    c.kubectl(&["delete", "pod", "-n", NAMESPACE, &holder, "--wait=false"]);
    wait_for(
        "another operator holds the Lease",
        Duration::from_secs(90),
        || {
            let now = c.jsonpath(
                &["get", "lease", "-n", NAMESPACE, "paddock-operator"],
                "{.spec.holderIdentity}",
            );
            if !now.is_empty() && now != holder {
                Ok(now)
            } else {
                Err(now)
            }
        },
    );
    patch_zke(c, r#"{"spec":{"paused":true}}"#);
    wait_for(
        "Paused by the new operator",
        Duration::from_secs(60),
        || {
            let paused = condition(c, "zk", "Paused");
            if paused == "True" {
                Ok(())
            } else {
                Err(paused)
            }
        },
    );
    patch_zke(c, r#"{"spec":{"paused":false}}"#);
    wait_available(c, "zk", Instant::now());
}

/// Exactly the RBAC it uses: nothing refused, nothing granted in vain.
fn assert_exactly_the_rbac_it_uses(c: &Cluster) {
    // Exactly the RBAC it uses: nothing refused, nothing granted in vain.
    let granted = granted(c);
    let (used, refused) = used(c);
    assert!(
        refused.is_empty(),
        "requests of the operator refused:\n{}",
        refused.join("\n")
    );
    let unused: Vec<_> = granted.difference(&used).collect();
    assert!(
        unused.is_empty(),
        "granted but never used: {unused:?}\nused: {used:?}"
    );
    let beyond: Vec<_> = used.difference(&granted).collect();
    assert!(
        beyond.is_empty(),
        "used without a rule (granted by another role?): {beyond:?}"
    );
    eprintln!(
        "RBAC: {} permissions, each used, none refused",
        granted.len()
    );
}

/// helm upgrade changes the operator's Deployment and helm uninstall removes it; the CRD
/// and the ensemble stay, untouched.
fn helm_upgrade_and_uninstall_leave_the_ensemble(c: &Cluster, chart: &str) {
    // helm upgrade changes the operator's Deployment; the ensemble is untouched.
    let members = c.jsonpath(
        &["get", "pods", "-l", "app.kubernetes.io/instance=zk"],
        "{.items[*].metadata.uid}",
    );
    c.helm(&[
        "upgrade",
        RELEASE,
        chart,
        "--namespace",
        NAMESPACE,
        "--reuse-values",
        "--set",
        "replicaCount=1",
        "--set",
        "logLevel=debug",
        "--wait",
        "--timeout",
        "180s",
    ]);
    wait_for("one operator replica", Duration::from_secs(90), || {
        let pods = operator_pods(c);
        if pods.len() == 1 {
            Ok(())
        } else {
            Err(format!("{pods:?}"))
        }
    });
    wait_available(c, "zk", Instant::now());
    assert_eq!(
        c.jsonpath(
            &["get", "pods", "-l", "app.kubernetes.io/instance=zk"],
            "{.items[*].metadata.uid}"
        ),
        members,
        "helm upgrade of the operator must not restart the ensemble"
    );

    // helm uninstall removes the operator, keeps the CRD and the user's ensemble.
    c.helm(&[
        "uninstall",
        RELEASE,
        "--namespace",
        NAMESPACE,
        "--wait",
        "--timeout",
        "120s",
    ]);
    wait_for("the operator's pods gone", Duration::from_secs(90), || {
        let pods = operator_pods(c);
        if pods.is_empty() {
            Ok(())
        } else {
            Err(format!("{pods:?}"))
        }
    });
    c.kubectl(&["get", "crd", "zkensembles.paddock.dev"]);
    c.kubectl(&["get", "zke", "zk"]);
    assert_eq!(
        c.jsonpath(
            &["get", "pods", "-l", "app.kubernetes.io/instance=zk"],
            "{.items[*].metadata.uid}"
        ),
        members,
        "the ensemble keeps running without its operator"
    );
}
