//! The operator on the test cluster: the binary as a local process with the cluster's
//! admin kubeconfig (it reaches members at their pod IPs, loopback addresses here), the
//! CRD, ZkEnsemble manifests and kazoo checks from pods.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Cluster, repo_root, wait_for};

/// Builds paddock-operator (cargo decides what is stale) and returns its path.
pub fn operator_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(repo_root())
        .args(["build", "--quiet", "-p", "paddock-operator"])
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build -p paddock-operator failed");
    let path = target.join("debug/paddock-operator");
    assert!(path.is_file(), "no {}", path.display());
    path
}

/// An operator process; SIGKILLed (by its pid) when dropped.
pub struct Operator {
    child: Child,
    log: PathBuf,
    pub metrics: String,
}

impl Operator {
    /// Starts `paddock-operator run` with leader election; `tag` names its log.
    pub fn start(c: &Cluster, tag: &str) -> Operator {
        let log = c.dir.join(format!("operator-{tag}.log"));
        let file = std::fs::File::create(&log).expect("operator log");
        let port = paddock_kubesim::controlplane::free_port().expect("a free port");
        let metrics = format!("127.0.0.1:{port}");
        let child = Command::new(operator_binary())
            .args(["run", "--metrics-address", &metrics])
            .env("KUBECONFIG", &c.kubeconfig)
            .env("RUST_LOG", "info,kube=warn,paddock_operator=debug")
            .stdout(Stdio::from(file.try_clone().expect("log handle")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start paddock-operator");
        let op = Operator {
            child,
            log,
            metrics,
        };
        wait_for("operator /healthz", Duration::from_secs(60), || {
            let r = op.get("/healthz")?;
            if r.contains(" 200 ") { Ok(()) } else { Err(r) }
        });
        op
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Is this the process named by a Lease holder identity (which carries its pid)?
    pub fn identity_in(&self, holder: &str) -> bool {
        holder.contains(&self.child.id().to_string())
    }

    /// GET on the metrics port with a plain HTTP/1.0 request.
    pub fn get(&self, path: &str) -> Result<String, String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&self.metrics).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- operator log ({}) ---\n{}",
                self.log.display(),
                self.log()
            );
        }
    }
}

pub fn install_crd(c: &Cluster) {
    c.apply_file(&repo_root().join("crds/zkensembles.paddock.dev.yaml"));
    // Polled rather than `kubectl wait` (or a jsonpath filter), both of which fail while
    // the CRD has no conditions yet.
    wait_for("the CRD Established", Duration::from_secs(60), || {
        let conditions = c.jsonpath(
            &["get", "crd", "zkensembles.paddock.dev"],
            "{.status.conditions}",
        );
        let established = serde_json::from_str::<serde_json::Value>(&conditions)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True");
        if established { Ok(()) } else { Err(conditions) }
    });
}

/// The kazoo scripts as a ConfigMap that check and load pods mount at /run/kazoo-check.
pub fn kazoo_configmaps(c: &Cluster) {
    let dir = repo_root().join("e2e/kube/manifests");
    c.kubectl(&[
        "create",
        "configmap",
        "kazoo-check",
        &format!("--from-file={}", dir.join("kazoo-check.py").display()),
        &format!("--from-file={}", dir.join("kazoo-load.py").display()),
    ]);
}

pub fn ensemble_yaml(name: &str, replicas: i32, observers: i32) -> String {
    format!(
        r#"apiVersion: paddock.dev/v1alpha1
kind: ZkEnsemble
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  observers: {observers}
  storage: {{size: 1Gi, reclaimPolicy: Delete}}
  config: {{tickTime: 500, initLimit: 20, syncLimit: 5}}
  pod: {{terminationGracePeriodSeconds: 10}}
"#
    )
}

/// Waits until the ensemble is Available, not Progressing, with every member ready.
pub fn wait_available(c: &Cluster, name: &str, since: Instant) {
    wait_for(
        &format!("{name} Available with every member ready"),
        Duration::from_secs(300),
        || {
            let available = condition(c, name, "Available");
            let progressing = condition(c, name, "Progressing");
            let replicas = c.jsonpath(&["get", "zke", name], "{.spec.replicas}");
            let ready = c.jsonpath(&["get", "zke", name], "{.status.readyReplicas}");
            if available == "True" && progressing != "True" && ready == replicas {
                Ok(())
            } else {
                Err(format!(
                    "Available={available} Progressing={progressing} ready={ready}/{replicas}"
                ))
            }
        },
    );
    eprintln!(
        "{name} Available after {:.1} s",
        since.elapsed().as_secs_f64()
    );
}

pub fn condition(c: &Cluster, name: &str, type_: &str) -> String {
    c.jsonpath(
        &["get", "zke", name],
        &format!("{{.status.conditions[?(@.type==\"{type_}\")].status}}"),
    )
}

/// Runs kazoo-check.py in a pod through `hosts`; the pod must succeed. Returns its output.
pub fn kazoo(c: &Cluster, name: &str, hosts: &str, path: &str, value: &str, mode: &str) -> String {
    c.apply_yaml(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  containers:
  - name: kazoo
    image: paddock/kazoo
    args: ["/run/kazoo-check/kazoo-check.py", "{hosts}", "{path}", "{value}", "{mode}"]
    volumeMounts: [{{name: check, mountPath: /run/kazoo-check}}]
  volumes:
  - name: check
    configMap: {{name: kazoo-check}}
"#
    ));
    let phase = c.wait_pod_finished(name, Duration::from_secs(120));
    let log = c.container_log("default", name, "kazoo");
    if phase != "Succeeded" {
        panic!(
            "kazoo pod {name} ended {phase}\nlog:\n{log}\n{}",
            c.pod_diagnosis(name)
        );
    }
    log
}
