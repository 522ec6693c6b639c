//! The test cluster itself, with hand-written manifests (e2e/kube/manifests): a real
//! control plane and kubesim nodes. Each test brings up a cluster of its own.
//!
//! They need the upstream binaries and e2e/.venv, so `cargo test --workspace` skips them
//! as ignored; `bash e2e/kube/test.sh` (a step of the README's test command) runs them.

mod common;

use std::time::{Duration, Instant};

use common::operator::{kazoo, kazoo_configmaps};
use common::{Cluster, repo_root, wait_for};

fn manifests() -> std::path::PathBuf {
    repo_root().join("e2e/kube/manifests")
}

fn pod_ready(c: &Cluster, ns: &str, pod: &str) -> Result<String, String> {
    let (ok, out, err) = c.kubectl_raw(&[
        "get",
        "pod",
        "-n",
        ns,
        pod,
        "-o",
        "jsonpath={.status.podIP} {.status.conditions[?(@.type==\"Ready\")].status}",
    ]);
    if !ok {
        return Err(err);
    }
    match out.split_once(' ') {
        Some((ip, "True")) if !ip.is_empty() => Ok(ip.to_string()),
        _ => Err(out),
    }
}

#[test]
#[ignore = "needs the upstream control plane: run `bash e2e/kube/test.sh`"]
fn statefulset_ensemble_serves_kazoo_and_keeps_its_data_across_pod_deletion() {
    let c = Cluster::up("ensemble", 3);
    common::venv_python();
    kazoo_configmaps(&c);
    let start = Instant::now();
    c.apply_file(&manifests().join("ensemble.yaml"));
    for pod in ["zk-0", "zk-1", "zk-2"] {
        wait_for(&format!("{pod} Ready"), Duration::from_secs(120), || {
            pod_ready(&c, "default", pod)
        });
    }
    eprintln!("ensemble Ready in {:.1} s", start.elapsed().as_secs_f64());
    let log = kazoo(
        &c,
        "kazoo-write",
        "zk.default.svc.cluster.local:2181",
        "/e2e/value",
        "v1",
        "write",
    );
    assert!(log.contains("read /e2e/value = v1"), "{log}");

    // Delete a member: the StatefulSet recreates it under the same name, on a new
    // address, with the same claim and the data that was on it.
    let claim = "data-zk-1";
    let volume = c.jsonpath(&["get", "pvc", claim], "{.spec.volumeName}");
    let old_ip = pod_ready(&c, "default", "zk-1").expect("zk-1 ready");
    let pv_dir = c.jsonpath(&["get", "pv", &volume], "{.spec.hostPath.path}");
    let files_before = list_files(std::path::Path::new(&pv_dir));
    assert!(
        files_before.iter().any(|f| f.ends_with("myid")),
        "no myid in the claim's directory: {files_before:?}"
    );
    c.kubectl(&["delete", "pod", "zk-1", "--wait=true"]);
    let new_ip = wait_for("zk-1 back and Ready", Duration::from_secs(120), || {
        pod_ready(&c, "default", "zk-1")
    });
    assert_ne!(old_ip, new_ip, "a recreated pod must get a new address");
    assert_eq!(
        c.jsonpath(&["get", "pvc", claim], "{.spec.volumeName}"),
        volume,
        "the claim was rebound"
    );
    for file in &files_before {
        assert!(
            std::path::Path::new(file).exists(),
            "{file} was lost with the pod"
        );
    }
    // Read through the recreated member itself, by its stable DNS name.
    let log = kazoo(
        &c,
        "kazoo-read",
        "zk-1.zk-hs.default.svc.cluster.local:2181",
        "/e2e/value",
        "v1",
        "read",
    );
    assert!(log.contains("read /e2e/value = v1"), "{log}");

    // Reclaim policy Delete: once the StatefulSet and the claim are gone, the volume is
    // Released and kubesim's provisioner deletes it and its directory.
    c.kubectl(&["delete", "statefulset", "zk", "--wait=true"]);
    wait_for("the ensemble's pods gone", Duration::from_secs(60), || {
        let pods = c.kubectl(&["get", "pods", "-l", "app=zk", "-o", "name"]);
        if pods.trim().is_empty() {
            Ok(())
        } else {
            Err(pods)
        }
    });
    c.kubectl(&["delete", "pvc", claim, "--wait=true"]);
    wait_for(
        "the released volume deleted",
        Duration::from_secs(60),
        || {
            let (exists, out, _) = c.kubectl_raw(&["get", "pv", &volume, "-o", "name"]);
            if !exists && !std::path::Path::new(&pv_dir).exists() {
                Ok(())
            } else {
                Err(out)
            }
        },
    );
}

fn list_files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path)
            } else {
                out.push(path.display().to_string())
            }
        }
    }
    out
}

const SLEEPER: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: web}}}
      containers:
      - name: web
        image: busybox
        command: ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
"#;

fn web_pods(c: &Cluster) -> Vec<(String, String, bool)> {
    let out = c.kubectl(&[
        "get", "pods", "-l", "app=web", "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
    ]);
    out.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((
                w.next()?.to_string(),
                w.next().unwrap_or("").to_string(),
                w.next().is_some(),
            ))
        })
        .collect()
}

fn all_web_running(c: &Cluster, count: usize) -> Result<(), String> {
    let out = c.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].status.phase}",
    ]);
    let running = out.split_whitespace().filter(|p| *p == "Running").count();
    if running == count && out.split_whitespace().count() == count {
        Ok(())
    } else {
        Err(out)
    }
}

#[test]
#[ignore = "needs the upstream control plane: run `bash e2e/kube/test.sh`"]
fn drain_waits_on_a_pod_disruption_budget() {
    let c = Cluster::up("drain", 3);
    c.apply_yaml(SLEEPER);
    c.apply_yaml("apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: web}\nspec:\n  minAvailable: 2\n  selector: {matchLabels: {app: web}}\n");
    wait_for("2 web pods Running", Duration::from_secs(60), || {
        all_web_running(&c, 2)
    });
    wait_for(
        "the PDB to count 2 healthy pods",
        Duration::from_secs(30),
        || {
            let healthy = c.jsonpath(&["get", "pdb", "web"], "{.status.currentHealthy}");
            if healthy == "2" { Ok(()) } else { Err(healthy) }
        },
    );
    let node = web_pods(&c)[0].1.clone();
    let (ok, out, err) = c.kubectl_raw(&["drain", &node, "--ignore-daemonsets", "--timeout=8s"]);
    assert!(
        !ok,
        "drain must not finish while the budget allows no disruption:\n{out}{err}"
    );
    assert!(
        err.contains("disruption budget"),
        "drain should say it waits on the budget:\n{err}"
    );
    assert_eq!(web_pods(&c).len(), 2, "no pod may be evicted");

    c.kubectl(&[
        "patch",
        "pdb",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"minAvailable":1}}"#,
    ]);
    c.kubectl(&["drain", &node, "--ignore-daemonsets", "--timeout=60s"]);
    assert_eq!(
        c.jsonpath(&["get", "node", &node], "{.spec.unschedulable}"),
        "true"
    );
    wait_for(
        "2 web pods Running off the drained node",
        Duration::from_secs(60),
        || {
            all_web_running(&c, 2)?;
            let pods = web_pods(&c);
            if pods.iter().all(|(_, n, _)| *n != node) {
                Ok(())
            } else {
                Err(format!("{pods:?}"))
            }
        },
    );
}

#[test]
#[ignore = "needs the upstream control plane: run `bash e2e/kube/test.sh`"]
fn a_failed_node_goes_not_ready_and_its_pods_are_recreated_elsewhere() {
    let c = Cluster::up("nodefail", 3);
    c.apply_yaml(SLEEPER);
    wait_for("2 web pods Running", Duration::from_secs(60), || {
        all_web_running(&c, 2)
    });
    let (victim, node, _) = web_pods(&c)[0].clone();
    let failed_at = Instant::now();
    c.node("fail", &node);
    wait_for(&format!("{node} NotReady"), Duration::from_secs(60), || {
        let ready = c.jsonpath(
            &["get", "node", &node],
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        );
        if ready != "True" { Ok(()) } else { Err(ready) }
    });
    eprintln!(
        "node NotReady after {:.1} s",
        failed_at.elapsed().as_secs_f64()
    );
    wait_for(
        "the pod evicted and a replacement Running on another node",
        Duration::from_secs(90),
        || {
            let pods = web_pods(&c);
            let evicted = pods
                .iter()
                .any(|(n, _, deleting)| *n == victim && *deleting)
                || !pods.iter().any(|(n, _, _)| *n == victim);
            let running_elsewhere = c
            .kubectl(&["get", "pods", "-l", "app=web", "--field-selector=status.phase=Running", "-o",
                "jsonpath={range .items[*]}{.spec.nodeName} {.metadata.deletionTimestamp}{\"\\n\"}{end}"])
            .lines()
            .filter(|l| !l.starts_with(&node) && l.split_whitespace().count() == 1)
            .count();
            if evicted && running_elsewhere == 2 {
                Ok(())
            } else {
                Err(format!("{pods:?}, {running_elsewhere} running elsewhere"))
            }
        },
    );
    eprintln!(
        "replacement Running after {:.1} s",
        failed_at.elapsed().as_secs_f64()
    );

    c.node("restore", &node);
    wait_for(
        &format!("{node} Ready again"),
        Duration::from_secs(60),
        || {
            let ready = c.jsonpath(
                &["get", "node", &node],
                "{.status.conditions[?(@.type==\"Ready\")].status}",
            );
            if ready == "True" { Ok(()) } else { Err(ready) }
        },
    );
    // The restored kubelet finishes the eviction: the old pod goes away for good.
    wait_for("the evicted pod removed", Duration::from_secs(60), || {
        let pods = web_pods(&c);
        if pods.iter().any(|(n, _, _)| *n == victim) {
            Err(format!("{pods:?}"))
        } else {
            Ok(())
        }
    });
}

#[test]
#[ignore = "needs the upstream control plane: run `bash e2e/kube/test.sh`"]
fn a_service_account_without_a_role_is_forbidden_from_inside_a_pod() {
    let c = Cluster::up("rbac", 1);
    c.kubectl(&["create", "serviceaccount", "nobody"]);
    let pod = |name: &str| {
        format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  serviceAccountName: nobody
  restartPolicy: Never
  containers:
  - name: kubectl
    image: bitnami/kubectl
    args: ["get", "pods", "-n", "default", "-o", "name"]
"#
        )
    };
    let finish = |name: &str| c.wait_pod_finished(name, Duration::from_secs(60));
    c.apply_yaml(&pod("denied"));
    assert_eq!(finish("denied"), "Failed");
    let log = c.container_log("default", "denied", "kubectl");
    assert!(
        log.contains("Forbidden") && log.contains("system:serviceaccount:default:nobody"),
        "expected a 403 for the service account, got:\n{log}"
    );
    // The same pod succeeds once a Role allows it: the token and CA really authenticate.
    c.kubectl(&[
        "create",
        "role",
        "pod-reader",
        "--verb=list",
        "--resource=pods",
    ]);
    c.kubectl(&[
        "create",
        "rolebinding",
        "nobody-reads",
        "--role=pod-reader",
        "--serviceaccount=default:nobody",
    ]);
    c.apply_yaml(&pod("allowed"));
    assert_eq!(
        finish("allowed"),
        "Succeeded",
        "{}",
        c.container_log("default", "allowed", "kubectl")
    );
    assert!(
        c.container_log("default", "allowed", "kubectl")
            .contains("pod/denied")
    );
}

#[test]
#[ignore = "needs the upstream control plane: run `bash e2e/kube/test.sh`"]
fn a_container_sees_its_downward_env_and_configmap_files() {
    let c = Cluster::up("volumes", 1);
    c.apply_yaml(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {a.conf: "alpha", b.conf: "beta", level: "debug"}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Pod
metadata: {name: show, labels: {tier: e2e}}
spec:
  restartPolicy: Never
  containers:
  - name: show
    image: busybox
    command: ["/bin/sh", "-c"]
    args:
    - |
      echo "name=$MY_NAME ns=$MY_NS ip=$MY_IP node=$MY_NODE tier=$MY_TIER level=$LEVEL pw=$PW greeting=$GREETING"
      echo "file=$(cat /etc/settings/renamed.conf) mode=$(stat -L -c %a /etc/settings/renamed.conf)"
      ls /etc/settings
      echo "secret=$(cat /etc/creds/password) token=$(test -s /var/run/secrets/kubernetes.io/serviceaccount/token && echo yes)"
      echo "dns=$(grep -c show /etc/hosts)"
      echo "envfrom=$CFG_level labels=$(cat /etc/podinfo/labels) cpu=$(cat /etc/podinfo/cpu)"
    env:
    - {name: MY_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: MY_NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: MY_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: MY_NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: MY_TIER, valueFrom: {fieldRef: {fieldPath: "metadata.labels['tier']"}}}
    - {name: LEVEL, valueFrom: {configMapKeyRef: {name: settings, key: level}}}
    - {name: PW, valueFrom: {secretKeyRef: {name: creds, key: password}}}
    - {name: GREETING, value: "hello $(MY_NAME)"}
    envFrom:
    - {configMapRef: {name: settings}, prefix: CFG_}
    volumeMounts:
    - {name: settings, mountPath: /etc/settings}
    - {name: creds, mountPath: /etc/creds, readOnly: true}
    - {name: podinfo, mountPath: /etc/podinfo}
    resources: {limits: {cpu: "2"}}
  volumes:
  - name: podinfo
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: cpu, resourceFieldRef: {containerName: show, resource: limits.cpu}}
  - name: settings
    configMap:
      name: settings
      items: [{key: a.conf, path: renamed.conf, mode: 0400}]
  - name: creds
    secret: {secretName: creds}
"#,
    );
    wait_for("pod show to succeed", Duration::from_secs(60), || {
        let phase = c.jsonpath(&["get", "pod", "show"], "{.status.phase}");
        if phase == "Succeeded" {
            Ok(())
        } else {
            Err(format!(
                "{phase}: {}",
                c.container_log("default", "show", "show")
            ))
        }
    });
    let ip = c.jsonpath(&["get", "pod", "show"], "{.status.podIP}");
    let node = c.jsonpath(&["get", "pod", "show"], "{.spec.nodeName}");
    let log = c.container_log("default", "show", "show");
    let expected = format!(
        "name=show ns=default ip={ip} node={node} tier=e2e level=debug pw=s3cret greeting=hello show"
    );
    assert!(log.contains(&expected), "expected {expected:?} in:\n{log}");
    assert!(log.contains("file=alpha mode=400"), "{log}");
    assert!(
        !log.contains("b.conf"),
        "items must select only a.conf:\n{log}"
    );
    assert!(log.contains("secret=s3cret token=yes"), "{log}");
    assert!(log.contains("dns=1"), "{log}");
    assert!(log.contains("envfrom=debug labels="), "{log}");
    // The API server also copies the node's topology labels onto the pod at binding.
    assert!(
        log.contains("tier=\"e2e\""),
        "the labels file lacks the pod's label:\n{log}"
    );
    assert!(log.contains(" cpu=2\n"), "{log}");
}

/// The reasons a kubelet gives for pods it cannot run.
#[test]
#[ignore = "needs the upstream control plane: run `bash e2e/kube/test.sh`"]
fn bad_pods_show_kubelet_reasons_and_never_hang_the_node() {
    let c = Cluster::up("bad", 1);
    let pod = |name: &str, body: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n{body}\n---\n")
    };
    let mut yaml = String::new();
    yaml += &pod(
        "unknown-image",
        "  containers:\n  - {name: c, image: nginx:1.27}",
    );
    yaml += &pod(
        "missing-key",
        "  containers:\n  - name: c\n    image: busybox\n    command: [/bin/sh, -c, sleep 60]\n    env:\n    - {name: X, valueFrom: {configMapKeyRef: {name: nope, key: k}}}",
    );
    yaml += &pod(
        "closed-port",
        "  containers:\n  - name: c\n    image: busybox\n    command: [/bin/sh, -c, 'trap \"exit 0\" TERM; while true; do sleep 0.2; done']\n    readinessProbe: {tcpSocket: {port: 9}, periodSeconds: 1}",
    );
    yaml += &pod(
        "exits",
        "  containers:\n  - name: c\n    image: busybox\n    command: [/bin/sh, -c, exit 3]",
    );
    yaml += &pod(
        "nfs",
        "  containers:\n  - name: c\n    image: busybox\n    command: [/bin/sh, -c, sleep 60]\n    volumeMounts: [{name: v, mountPath: /v}]\n  volumes:\n  - {name: v, nfs: {server: nfs.invalid, path: /x}}",
    );
    c.apply_yaml(&yaml);
    const WAITING: &str = "{.status.containerStatuses[0].state.waiting.reason}";
    let minute = Duration::from_secs(60);
    c.wait_jsonpath(
        &["get", "pod", "unknown-image"],
        WAITING,
        "ErrImagePull",
        minute,
        |r| r == "ErrImagePull" || r == "ImagePullBackOff",
    );
    c.wait_jsonpath(
        &["get", "pod", "missing-key"],
        WAITING,
        "CreateContainerConfigError",
        minute,
        |r| r == "CreateContainerConfigError",
    );
    c.wait_jsonpath(
        &["get", "pod", "exits"],
        WAITING,
        "CrashLoopBackOff",
        minute,
        |r| r == "CrashLoopBackOff",
    );
    let restarts = "{.status.containerStatuses[0].restartCount}";
    c.wait_jsonpath(
        &["get", "pod", "exits"],
        restarts,
        "restarts",
        minute,
        |r| r != "0",
    );
    c.wait_jsonpath(
        &["get", "pod", "nfs"],
        WAITING,
        "nfs pod ContainerCreating",
        minute,
        |r| r == "ContainerCreating",
    );
    c.wait_event("nfs", "FailedMount", minute);
    // The probe on a closed port: running, never Ready.
    c.wait_jsonpath(
        &["get", "pod", "closed-port"],
        "{.status.phase}",
        "closed-port running",
        minute,
        |p| p == "Running",
    );
    c.wait_event("closed-port", "Unhealthy", minute);
    let ready = c.jsonpath(
        &["get", "pod", "closed-port"],
        "{.status.conditions[?(@.type==\"Ready\")].status}",
    );
    assert_eq!(
        ready, "False",
        "a probe on a closed port must keep the pod unready"
    );
    // The node is still healthy and answers: a good pod still runs beside the bad ones.
    c.apply_yaml(&pod("good", "  containers:\n  - name: c\n    image: busybox\n    command: [/bin/sh, -c, exit 0]\n  restartPolicy: Never"));
    wait_for("the good pod to succeed", Duration::from_secs(60), || {
        let phase = c.jsonpath(&["get", "pod", "good"], "{.status.phase}");
        if phase == "Succeeded" {
            Ok(())
        } else {
            Err(phase)
        }
    });
}
