//! Harness for the tests on the test cluster: a cluster per test (`paddock-kubesim up`
//! in a directory of its own, `down` on drop), kubectl with its kubeconfig, and polling
//! with deadlines.
//!
//! Prerequisites fail loudly: the upstream binaries (`bash e2e/kube/build.sh`, or
//! `PADDOCK_KUBE_BIN`) and, for the kazoo checks, `e2e/.venv` (`bash e2e/install-deps.sh`).
#![allow(dead_code)]

pub mod app;
pub mod operator;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

pub fn kube_bin_dir() -> PathBuf {
    let dir = match std::env::var_os("PADDOCK_KUBE_BIN") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var("HOME").expect("HOME"))
            .join(".cache/paddock/kube-1.37.2/bin"),
    };
    for tool in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubectl",
    ] {
        assert!(
            dir.join(tool).is_file(),
            "{} is missing: run `bash e2e/kube/build.sh` first (or set PADDOCK_KUBE_BIN)",
            dir.join(tool).display()
        );
    }
    dir
}

/// Builds the workspace binaries that pods run (cargo decides what is stale), and
/// returns their directory.
pub fn workspace_binaries() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(repo_root())
        .args([
            "build",
            "--quiet",
            "-p",
            "paddock-server",
            "-p",
            "paddock-sidecar",
            "-p",
            "paddock-operator",
            "-p",
            "paddock-master-worker",
        ])
        .status()
        .expect("run cargo build");
    assert!(
        status.success(),
        "cargo build -p paddock-server -p paddock-sidecar -p paddock-operator -p paddock-master-worker failed"
    );
    let dir = target.join("debug");
    assert!(
        dir.join("paddock-server").is_file(),
        "no paddock-server in {}",
        dir.display()
    );
    dir
}

pub fn venv_python() -> PathBuf {
    let python = repo_root().join("e2e/.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `bash e2e/install-deps.sh`",
        python.display()
    );
    python
}

pub struct Cluster {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    bin_dir: PathBuf,
}

impl Cluster {
    /// A fresh cluster of `nodes` nodes in a directory named after the test.
    pub fn up(name: &str, nodes: usize) -> Cluster {
        Cluster::up_with_images(name, nodes, &[])
    }

    /// `up` with more entries in the image map (`image: binary`, e.g. a second tag of
    /// paddock/server played by another binary, for upgrades).
    pub fn up_with_images(name: &str, nodes: usize, extra: &[(&str, &Path)]) -> Cluster {
        let bin_dir = kube_bin_dir();
        let binaries = workspace_binaries();
        let dir =
            std::env::temp_dir().join(format!("paddock-kubesim-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let images = dir.with_extension("images.yaml");
        let python = repo_root().join("e2e/.venv/bin/python");
        std::fs::write(
            &images,
            format!(
                "paddock/server: {}\npaddock/sidecar: {}\npaddock/operator: {}\nbusybox: /bin/sh\npaddock/kazoo: {}\nbitnami/kubectl: {}\nexample/my-app: {}\n",
                binaries.join("paddock-server").display(),
                binaries.join("paddock-sidecar").display(),
                binaries.join("paddock-operator").display(),
                python.display(),
                bin_dir.join("kubectl").display(),
                repo_root().join("e2e/kube/manifests/my-app.sh").display(),
            ) + &extra
                .iter()
                .map(|(image, binary)| format!("{image}: {}\n", binary.display()))
                .collect::<String>(),
        )
        .expect("image map");
        let started = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_paddock-kubesim"))
            .arg("up")
            .arg("--dir")
            .arg(&dir)
            .arg("--nodes")
            .arg(nodes.to_string())
            .arg("--images")
            .arg(&images)
            .arg("--bin-dir")
            .arg(&bin_dir)
            .output()
            .expect("run paddock-kubesim up");
        assert!(
            output.status.success(),
            "paddock-kubesim up failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!(
            "[{name}] cluster up in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Cluster {
            kubeconfig: dir.join("kubeconfig"),
            dir,
            bin_dir,
        }
    }

    /// kubectl with this cluster's kubeconfig: (success, stdout, stderr).
    pub fn kubectl_raw(&self, args: &[&str]) -> (bool, String, String) {
        let output = Command::new(self.bin_dir.join("kubectl"))
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .output()
            .expect("run kubectl");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// kubectl that must succeed; its stdout.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.kubectl_raw(args);
        assert!(ok, "kubectl {} failed:\n{out}{err}", args.join(" "));
        out
    }

    /// Runs helm against this cluster: (succeeded, stdout, stderr).
    pub fn helm_raw(&self, args: &[&str]) -> (bool, String, String) {
        let output = Command::new(self.bin_dir.join("helm"))
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CACHE_HOME", self.dir.join("helm/cache"))
            .env("HELM_CONFIG_HOME", self.dir.join("helm/config"))
            .env("HELM_DATA_HOME", self.dir.join("helm/data"))
            .args(args)
            .output()
            .expect("run helm");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    pub fn helm(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.helm_raw(args);
        assert!(ok, "helm {} failed:\n{out}{err}", args.join(" "));
        out
    }

    /// `kubectl ARGS -f -` with `input` on stdin.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> (bool, String, String) {
        use std::io::Write;
        let mut child = Command::new(self.bin_dir.join("kubectl"))
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write kubectl's stdin");
        let output = child.wait_with_output().expect("wait for kubectl");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    pub fn apply_file(&self, path: &Path) {
        self.kubectl(&["apply", "-f", path.to_str().expect("utf-8 path")]);
    }

    pub fn apply_yaml(&self, yaml: &str) {
        let path = self.dir.join(format!(
            "manifest-{}.yaml",
            std::process::id() as u128 * 1000 + rand_suffix()
        ));
        std::fs::write(&path, yaml).expect("write manifest");
        self.apply_file(&path);
    }

    pub fn jsonpath(&self, args: &[&str], path: &str) -> String {
        let expr = format!("jsonpath={path}");
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-o", &expr]);
        self.kubectl(&all)
    }

    /// A jsonpath of `kubectl get ARGS`, or kubectl's complaint (the object is gone, the
    /// API server was slow): for polls where either is an answer to wait out.
    pub fn try_jsonpath(&self, args: &[&str], path: &str) -> Result<String, String> {
        let expr = format!("jsonpath={path}");
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-o", &expr]);
        match self.kubectl_raw(&all) {
            (true, out, _) => Ok(out),
            (false, out, err) => Err(format!("kubectl {} failed: {out}{err}", all.join(" "))),
        }
    }

    /// Polls a jsonpath of `kubectl get ARGS` until `accept` holds; returns the value.
    pub fn wait_jsonpath(
        &self,
        args: &[&str],
        path: &str,
        what: &str,
        timeout: Duration,
        accept: impl Fn(&str) -> bool,
    ) -> String {
        wait_for(what, timeout, || {
            let value = self.jsonpath(args, path);
            if accept(&value) {
                Ok(value)
            } else {
                Err(value)
            }
        })
    }

    /// The reasons of the events about one object, space-separated.
    pub fn event_reasons(&self, object: &str) -> String {
        let selector = format!("--field-selector=involvedObject.name={object}");
        self.kubectl(&[
            "get",
            "events",
            &selector,
            "-o",
            "jsonpath={.items[*].reason}",
        ])
    }

    /// Waits until pod `name` (namespace default) has Succeeded or Failed; its phase.
    pub fn wait_pod_finished(&self, name: &str, timeout: Duration) -> String {
        self.wait_jsonpath(
            &["get", "pod", name],
            "{.status.phase}",
            &format!("pod {name} to finish"),
            timeout,
            |p| p == "Succeeded" || p == "Failed",
        )
    }

    /// Waits for an event with `reason` about `object`.
    pub fn wait_event(&self, object: &str, reason: &str, timeout: Duration) {
        wait_for(&format!("a {reason} event about {object}"), timeout, || {
            let events = self.event_reasons(object);
            if events.contains(reason) {
                Ok(())
            } else {
                Err(events)
            }
        });
    }

    /// What a failed pod's status and events say: container states and Event messages.
    pub fn pod_diagnosis(&self, name: &str) -> String {
        let (_, states, _) = self.kubectl_raw(&[
            "get",
            "pod",
            name,
            "-o",
            "jsonpath={range .status.containerStatuses[*]}{.name}: {.state}{\"\\n\"}{end}",
        ]);
        let selector = format!("--field-selector=involvedObject.name={name}");
        let (_, events, _) = self.kubectl_raw(&[
            "get",
            "events",
            &selector,
            "-o",
            "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
        ]);
        format!("container states:\n{states}events:\n{events}")
    }

    /// The container's log as kubesim keeps it (there is no kubelet API for `kubectl logs`).
    pub fn container_log(&self, namespace: &str, pod: &str, container: &str) -> String {
        let uid = self.jsonpath(&["get", "pod", "-n", namespace, pod], "{.metadata.uid}");
        std::fs::read_to_string(
            self.dir
                .join("pods")
                .join(uid)
                .join("logs")
                .join(format!("{container}.log")),
        )
        .unwrap_or_default()
    }

    pub fn node(&self, verb: &str, name: &str) {
        self.kubesim(&["node", verb, name]);
    }

    /// `paddock-kubesim pod VERB default/POD [EXTRA...]`: pause, resume, cut, heal.
    pub fn pod_fault(&self, verb: &str, pod: &str, extra: &[&str]) {
        let pod = format!("default/{pod}");
        let mut args = vec!["pod", verb, pod.as_str()];
        args.extend_from_slice(extra);
        self.kubesim(&args);
    }

    fn kubesim(&self, args: &[&str]) {
        let output = Command::new(env!("CARGO_BIN_EXE_paddock-kubesim"))
            .args(args)
            .arg("--dir")
            .arg(&self.dir)
            .output()
            .expect("run paddock-kubesim");
        assert!(
            output.status.success(),
            "paddock-kubesim {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1000)
        .unwrap_or(0)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_paddock-kubesim"))
            .arg("down")
            .arg("--dir")
            .arg(&self.dir)
            .output();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
            let _ = std::fs::remove_file(self.dir.with_extension("images.yaml"));
        } else {
            eprintln!(
                "cluster files kept for inspection in {}",
                self.dir.display()
            );
        }
    }
}

/// Polls `check` until it returns Some, or panics with `what` and the last observation.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check() {
            Ok(value) => return value,
            Err(observed) => observed,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; last seen: {last}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
