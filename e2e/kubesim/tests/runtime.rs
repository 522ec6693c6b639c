//! The pod runtime against real processes (no API server): mounts, env and /etc/hosts in the
//! container's namespace, init/sidecar order, crash back-off, probes, termination and kill.
//!
//! Needs root (mount namespaces) and /bin/sh; every pod gets its own 127.0.0.x address.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    ContainerStatus, ExecAction, HTTPGetAction, HTTPHeader, Lifecycle, LifecycleHandler, Probe,
    TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use paddock_kubesim::runtime::backoff::BackoffPolicy;
use paddock_kubesim::runtime::{
    ContainerKind, ContainerPlan, MountPlan, PodPhase, PodPlan, PodRuntimeStatus, PodSandbox,
    RestartPolicy, start,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

const BACKOFF: BackoffPolicy = BackoffPolicy {
    base: Duration::from_millis(300),
    max: Duration::from_millis(1200),
};

/// A scratch directory with the pod's host side: hosts file, logs, an "emptyDir" at `out`.
struct Scratch {
    root: PathBuf,
}

impl Scratch {
    fn new(test: &str) -> Scratch {
        assert_eq!(
            BACKOFF.install(),
            BACKOFF,
            "the back-off policy was set before the tests set theirs"
        );
        let root =
            std::env::temp_dir().join(format!("kubesim-runtime-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for dir in ["logs", "out", "conf"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::write(
            root.join("hosts"),
            format!("127.0.0.1 localhost\n# kubesim test {test}\n"),
        )
        .unwrap();
        Scratch { root }
    }

    fn out(&self, file: &str) -> PathBuf {
        self.root.join("out").join(file)
    }

    fn read_out(&self, file: &str) -> String {
        std::fs::read_to_string(self.out(file)).unwrap_or_else(|e| panic!("reading {file}: {e}"))
    }

    /// The pod's /out (read-write) and /conf (read-only). Their mount points lie inside the
    /// scratch directory, so that nothing is created on the host outside it: scripts name
    /// them @OUT and @CONF, and [`Scratch::sh`] rewrites those to the real paths.
    fn mounts(&self) -> Vec<MountPlan> {
        vec![
            MountPlan {
                host_path: self.root.join("out"),
                container_path: self.mount_point("out"),
                read_only: false,
            },
            MountPlan {
                host_path: self.root.join("conf"),
                container_path: self.mount_point("conf"),
                read_only: true,
            },
        ]
    }

    fn mount_point(&self, name: &str) -> PathBuf {
        self.root.join("mnt").join(name)
    }

    fn sh(&self, script: &str) -> String {
        script
            .replace("@OUT", &self.mount_point("out").display().to_string())
            .replace("@CONF", &self.mount_point("conf").display().to_string())
    }

    fn plan(
        &self,
        ip: Ipv4Addr,
        restart_policy: RestartPolicy,
        init: Vec<ContainerPlan>,
        main: Vec<ContainerPlan>,
    ) -> PodPlan {
        PodPlan {
            sandbox: PodSandbox {
                namespace: "default".into(),
                name: "pod".into(),
                uid: "uid-1".into(),
                pod_ip: ip,
                hosts_file: self.root.join("hosts"),
                hostname: "pod".into(),
                log_dir: self.root.join("logs"),
                inherit_fd: None,
                cgroup_procs: None,
            },
            init_containers: init,
            containers: main,
            restart_policy,
            termination_grace_period: Duration::from_secs(2),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A container running `script` with /bin/sh, with /out mounted.
fn shell(scratch: &Scratch, name: &str, kind: ContainerKind, script: &str) -> ContainerPlan {
    ContainerPlan {
        name: name.into(),
        image: "busybox:test".into(),
        kind,
        entrypoint: Ok(PathBuf::from("/bin/sh")),
        command: Vec::new(),
        args: vec!["-c".into(), scratch.sh(script)],
        env: Ok(vec![("PATH".into(), "/usr/bin:/bin".into())]),
        working_dir: None,
        mounts: scratch.mounts(),
        ports: Vec::new(),
        startup_probe: None,
        liveness_probe: None,
        readiness_probe: None,
        lifecycle: None,
    }
}

fn exec_probe(scratch: &Scratch, command: &str, period: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(vec!["/bin/sh".into(), "-c".into(), scratch.sh(command)]),
        }),
        period_seconds: Some(period),
        failure_threshold: Some(1),
        ..Probe::default()
    }
}

/// A lifecycle hook running `script` with /bin/sh.
fn shell_hook(scratch: &Scratch, script: &str) -> LifecycleHandler {
    LifecycleHandler {
        exec: Some(ExecAction {
            command: Some(vec!["/bin/sh".into(), "-c".into(), scratch.sh(script)]),
        }),
        ..LifecycleHandler::default()
    }
}

/// Waits for a status that satisfies `pred`, failing the test with the last status seen.
async fn wait_status(
    rx: &mut watch::Receiver<PodRuntimeStatus>,
    within: Duration,
    what: &str,
    pred: impl FnMut(&PodRuntimeStatus) -> bool,
) -> PodRuntimeStatus {
    let outcome = tokio::time::timeout(within, rx.wait_for(pred))
        .await
        .map(|r| r.map(|status| status.clone()));
    match outcome {
        Ok(Ok(status)) => status,
        Ok(Err(_)) => panic!("the pod's status channel closed while waiting for {what}"),
        Err(_) => panic!(
            "no {what} within {within:?}; last status: {:#?}",
            *rx.borrow()
        ),
    }
}

fn waiting_reason(status: &ContainerStatus) -> Option<&str> {
    status.state.as_ref()?.waiting.as_ref()?.reason.as_deref()
}

fn is_running(status: &ContainerStatus) -> bool {
    status.state.as_ref().is_some_and(|s| s.running.is_some())
}

fn exit_code(status: &ContainerStatus) -> Option<i32> {
    Some(status.state.as_ref()?.terminated.as_ref()?.exit_code)
}

fn pid_of(status: &ContainerStatus) -> i32 {
    status
        .container_id
        .as_deref()
        .and_then(|id| id.strip_prefix("kubesim://"))
        .and_then(|p| p.parse().ok())
        .expect("a kubesim://<pid> container id")
}

/// Whether the process (or, for a negative pid, the process group) exists.
fn process_exists(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Waits (bounded) for `file` under the scratch's /out to exist.
async fn wait_file(scratch: &Scratch, file: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while !scratch.out(file).exists() {
        assert!(
            Instant::now() < deadline,
            "{file} did not appear within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const LONG: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_container_sees_its_mounts_env_hosts_and_expanded_args() {
    let scratch = Scratch::new("mounts");
    std::fs::write(scratch.root.join("conf").join("x"), "from-configmap").unwrap();
    let mut main = shell(&scratch, "main", ContainerKind::Main, "");
    main.command = vec!["/bin/sh".into(), "-c".into()];
    main.args = vec![
        scratch.sh(
            "cat @CONF/x > @OUT/conf; echo \"$FOO\" > @OUT/env; echo \"$1\" > @OUT/arg; cat /etc/hosts > @OUT/hosts; \
             env > @OUT/allenv; pwd > @OUT/pwd; touch @CONF/y 2> @OUT/ro-error; echo to-the-log",
        ),
        "sh".into(),
        "$(FOO)-$(MISSING)-$$(FOO)".into(),
    ];
    main.env = Ok(vec![
        ("PATH".into(), "/usr/bin:/bin".into()),
        ("FOO".into(), "bar".into()),
    ]);
    main.working_dir = Some(scratch.sh("@OUT/wd"));
    let pod = start(scratch.plan(
        Ipv4Addr::new(127, 0, 0, 101),
        RestartPolicy::Never,
        vec![],
        vec![main],
    ));
    let mut rx = pod.status();
    let done = wait_status(&mut rx, LONG, "Succeeded", |s| {
        s.phase == PodPhase::Succeeded
    })
    .await;
    let status = &done.container_statuses[0];
    assert_eq!(exit_code(status), Some(0));
    assert_eq!(
        status
            .state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("Completed")
    );
    assert!(
        status.image_id.starts_with("kubesim:///bin/sh"),
        "{status:?}"
    );

    assert_eq!(scratch.read_out("conf"), "from-configmap");
    assert_eq!(scratch.read_out("env"), "bar\n");
    assert_eq!(scratch.read_out("arg"), "bar-$(MISSING)-$(FOO)\n");
    assert!(
        scratch.read_out("hosts").contains("# kubesim test mounts"),
        "/etc/hosts is the pod's"
    );
    assert_eq!(scratch.read_out("pwd"), scratch.sh("@OUT/wd\n"));
    assert!(
        scratch.read_out("ro-error").contains("Read-only"),
        "the read-only mount refused a write: {}",
        scratch.read_out("ro-error")
    );
    let env = scratch.read_out("allenv");
    let names: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
    assert!(names.contains(&"FOO") && names.contains(&"PATH"));
    assert!(
        !names.contains(&"HOME") && !names.contains(&"CARGO_PKG_NAME"),
        "the host env leaked: {names:?}"
    );
    let log = std::fs::read_to_string(scratch.root.join("logs/main.log")).unwrap();
    assert!(log.contains("to-the-log"));
    // The bind was private to the container: the host's mount point is empty.
    assert!(!scratch.mount_point("conf").join("x").exists());
    pod.terminate(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn init_containers_run_in_order_before_the_main_ones() {
    let scratch = Scratch::new("init");
    let init1 = shell(
        &scratch,
        "init1",
        ContainerKind::Init,
        "sleep 0.3; echo init1 >> @OUT/order",
    );
    let init2 = shell(
        &scratch,
        "init2",
        ContainerKind::Init,
        "test -f @OUT/order && echo init2 >> @OUT/order",
    );
    let main = shell(
        &scratch,
        "main",
        ContainerKind::Main,
        "echo main >> @OUT/order; sleep 100",
    );
    let pod = start(scratch.plan(
        Ipv4Addr::new(127, 0, 0, 102),
        RestartPolicy::Always,
        vec![init1, init2],
        vec![main],
    ));
    let mut rx = pod.status();
    let first = rx.borrow().clone();
    assert_eq!(first.phase, PodPhase::Pending);
    assert!(!first.initialized);
    assert_eq!(
        waiting_reason(&first.container_statuses[0]),
        Some("PodInitializing")
    );
    let running = wait_status(&mut rx, LONG, "Running", |s| s.phase == PodPhase::Running).await;
    assert!(running.initialized);
    for init in &running.init_container_statuses {
        assert_eq!(exit_code(init), Some(0), "{init:?}");
        assert!(init.ready, "a completed init container shows ready");
    }
    wait_file(&scratch, "order", LONG).await;
    let deadline = Instant::now() + LONG;
    while scratch.read_out("order").lines().count() < 3 {
        assert!(
            Instant::now() < deadline,
            "order: {}",
            scratch.read_out("order")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(scratch.read_out("order"), "init1\ninit2\nmain\n");
    let ready = wait_status(&mut rx, LONG, "ready", |s| s.container_statuses[0].ready).await;
    assert_eq!(ready.container_statuses[0].started, Some(true));
    pod.terminate(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn an_init_container_failing_under_never_fails_the_pod() {
    let scratch = Scratch::new("initfail");
    let init = shell(&scratch, "init", ContainerKind::Init, "exit 4");
    let main = shell(&scratch, "main", ContainerKind::Main, "touch @OUT/main-ran");
    let pod = start(scratch.plan(
        Ipv4Addr::new(127, 0, 0, 103),
        RestartPolicy::Never,
        vec![init],
        vec![main],
    ));
    let mut rx = pod.status();
    let failed = wait_status(&mut rx, LONG, "Failed", |s| s.phase == PodPhase::Failed).await;
    assert_eq!(exit_code(&failed.init_container_statuses[0]), Some(4));
    assert!(!failed.initialized);
    assert!(!scratch.out("main-ran").exists());
    pod.terminate(Duration::from_secs(1)).await;
}

const STOPPABLE: &str = "trap 'echo $NAME-stop >> @OUT/order; exit 0' TERM; echo $NAME-start >> @OUT/order; while :; do sleep 0.05; done";

fn named(mut plan: ContainerPlan, name: &str) -> ContainerPlan {
    plan.env = Ok(vec![
        ("PATH".into(), "/usr/bin:/bin".into()),
        ("NAME".into(), name.into()),
    ]);
    plan
}

#[tokio::test]
async fn a_sidecar_starts_before_the_main_container_and_stops_after_it() {
    let scratch = Scratch::new("sidecar");
    let mut side = named(
        shell(&scratch, "side", ContainerKind::Sidecar, STOPPABLE),
        "side",
    );
    // The sidecar counts as started once its startup probe passes: the main waits for it.
    side.startup_probe = Some(exec_probe(&scratch, "grep -q side-start @OUT/order", 1));
    let main = named(
        shell(&scratch, "main", ContainerKind::Main, STOPPABLE),
        "main",
    );
    let pod = start(scratch.plan(
        Ipv4Addr::new(127, 0, 0, 104),
        RestartPolicy::Always,
        vec![side],
        vec![main],
    ));
    let mut rx = pod.status();
    let running = wait_status(&mut rx, LONG, "main running", |s| {
        is_running(&s.container_statuses[0])
    })
    .await;
    assert!(running.initialized);
    assert!(
        is_running(&running.init_container_statuses[0]),
        "the sidecar keeps running"
    );
    assert_eq!(running.init_container_statuses[0].started, Some(true));
    wait_file(&scratch, "order", LONG).await;
    let deadline = Instant::now() + LONG;
    while !scratch.read_out("order").contains("main-start") {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let side_pid = pid_of(&running.init_container_statuses[0]);
    pod.terminate(Duration::from_secs(5)).await;
    assert_eq!(
        scratch.read_out("order"),
        "side-start\nmain-start\nmain-stop\nside-stop\n"
    );
    assert!(!process_exists(side_pid));
    let end = rx.borrow().clone();
    assert_eq!(end.phase, PodPhase::Succeeded, "{end:#?}");
}

#[tokio::test]
async fn sidecars_are_stopped_once_the_main_containers_completed() {
    let scratch = Scratch::new("sidecar-done");
    let side = named(
        shell(&scratch, "side", ContainerKind::Sidecar, STOPPABLE),
        "side",
    );
    let main = shell(&scratch, "main", ContainerKind::Main, "sleep 0.2");
    let pod = start(scratch.plan(
        Ipv4Addr::new(127, 0, 0, 105),
        RestartPolicy::Never,
        vec![side],
        vec![main],
    ));
    let mut rx = pod.status();
    let done = wait_status(&mut rx, LONG, "sidecar stopped", |s| {
        exit_code(&s.init_container_statuses[0]).is_some()
    })
    .await;
    assert_eq!(done.phase, PodPhase::Succeeded);
    assert!(scratch.read_out("order").ends_with("side-stop\n"));
    pod.terminate(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_crashing_container_loops_with_back_off() {
    let scratch = Scratch::new("crash");
    let main = shell(
        &scratch,
        "main",
        ContainerKind::Main,
        "echo crash >> @OUT/runs; exit 3",
    );
    let pod = start(scratch.plan(
        Ipv4Addr::new(127, 0, 0, 106),
        RestartPolicy::Always,
        vec![],
        vec![main],
    ));
    let mut rx = pod.status();
    let looping = wait_status(&mut rx, LONG, "CrashLoopBackOff after 2 restarts", |s| {
        let c = &s.container_statuses[0];
        c.restart_count >= 2 && waiting_reason(c) == Some("CrashLoopBackOff")
    })
    .await;
    let c = &looping.container_statuses[0];
    let message = c
        .state
        .as_ref()
        .unwrap()
        .waiting
        .as_ref()
        .unwrap()
        .message
        .clone()
        .unwrap();
    assert!(
        message.starts_with("back-off ")
            && message.contains("restarting failed container=main pod=pod_default(uid-1)"),
        "{message}"
    );
    let last = c
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("lastState.terminated");
    assert_eq!(last.exit_code, 3);
    assert_eq!(last.reason.as_deref(), Some("Error"));
    assert_eq!(looping.phase, PodPhase::Running);
    assert!(looping.events.iter().any(|e| e.reason == "BackOff"));
    // The back-off grows: restarts come slower than the process fails.
    let started = Instant::now();
    let count = c.restart_count;
    wait_status(&mut rx, LONG, "one more restart", |s| {
        s.container_statuses[0].restart_count > count
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "restarted after {:?}",
        started.elapsed()
    );
    pod.terminate(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_command_that_cannot_start_is_a_start_error_that_crash_loops() {
    let scratch = Scratch::new("starterror");
    let mut main = shell(&scratch, "main", ContainerKind::Main, "");
    main.command = vec!["no-such-binary-kubesim".into()];
    let pod = start(scratch.plan(
        Ipv4Addr::new(127, 0, 0, 107),
        RestartPolicy::Always,
        vec![],
        vec![main],
    ));
    let mut rx = pod.status();
    let looping = wait_status(&mut rx, LONG, "StartError then CrashLoopBackOff", |s| {
        let c = &s.container_statuses[0];
        waiting_reason(c) == Some("CrashLoopBackOff")
            && c.last_state
                .as_ref()
                .and_then(|l| l.terminated.as_ref())
                .is_some_and(|t| t.reason.as_deref() == Some("StartError"))
    })
    .await;
    let last = looping.container_statuses[0]
        .last_state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(last.exit_code, 128);
    assert!(last.message.unwrap().contains("executable file not found"));
    pod.terminate(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_failing_liveness_probe_restarts_the_container() {
    let scratch = Scratch::new("liveness");
    let mut main = shell(
        &scratch,
        "main",
        ContainerKind::Main,
        "echo run >> @OUT/runs; sleep 100",
    );
    main.liveness_probe = Some(exec_probe(&scratch, "test -f @OUT/alive", 1));
    let pod = start(scratch.plan(
        Ipv4Addr::new(127, 0, 0, 108),
        RestartPolicy::Always,
        vec![],
        vec![main],
    ));
    let mut rx = pod.status();
    let restarted = wait_status(&mut rx, LONG, "a restart", |s| {
        s.container_statuses[0].restart_count >= 1
    })
    .await;
    let last = restarted.container_statuses[0]
        .last_state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_ne!(last.exit_code, 0);
    assert!(
        restarted
            .events
            .iter()
            .any(|e| e.reason == "Unhealthy" && e.message.starts_with("Liveness probe failed")),
        "{:?}",
        restarted.events
    );
    assert!(
        restarted
            .events
            .iter()
            .any(|e| e.reason == "Killing" && e.message.contains("failed liveness probe"))
    );
    // Once the probe passes, the container stays.
    std::fs::write(scratch.out("alive"), "").unwrap();
    let steady = wait_status(&mut rx, LONG, "running again", |s| {
        is_running(&s.container_statuses[0])
    })
    .await;
    let count = steady.container_statuses[0].restart_count;
    tokio::time::sleep(Duration::from_millis(2500)).await; // several probe periods: no condition to poll for
    assert_eq!(rx.borrow().container_statuses[0].restart_count, count);
    pod.terminate(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn readiness_follows_a_tcp_socket() {
    let scratch = Scratch::new("tcp");
    let ip = Ipv4Addr::new(127, 0, 0, 109);
    let mut main = shell(&scratch, "main", ContainerKind::Main, "sleep 100");
    main.ports = vec![("client".into(), 21810)];
    main.readiness_probe = Some(Probe {
        tcp_socket: Some(TCPSocketAction {
            host: None,
            port: IntOrString::String("client".into()),
        }),
        period_seconds: Some(1),
        failure_threshold: Some(1),
        ..Probe::default()
    });
    let pod = start(scratch.plan(ip, RestartPolicy::Always, vec![], vec![main]));
    let mut rx = pod.status();
    let running = wait_status(&mut rx, LONG, "running", |s| {
        is_running(&s.container_statuses[0])
    })
    .await;
    assert!(
        !running.container_statuses[0].ready,
        "not ready before the probe passed"
    );
    let listener = tokio::net::TcpListener::bind((ip, 21810)).await.unwrap();
    wait_status(&mut rx, LONG, "ready", |s| s.container_statuses[0].ready).await;
    drop(listener);
    let unready = wait_status(&mut rx, LONG, "not ready", |s| {
        !s.container_statuses[0].ready
    })
    .await;
    assert!(unready.events.iter().any(|e| {
        e.message
            .starts_with("Readiness probe failed: dial tcp 127.0.0.109:21810")
    }));
    let _listener = tokio::net::TcpListener::bind((ip, 21810)).await.unwrap();
    wait_status(&mut rx, LONG, "ready again", |s| {
        s.container_statuses[0].ready
    })
    .await;
    pod.terminate(Duration::from_secs(1)).await;
}

/// A tiny HTTP server at `ip:port` answering with the status in `code`; returns the last
/// request's text through the channel.
async fn http_server(ip: Ipv4Addr, port: u16, code: Arc<AtomicU16>) -> watch::Receiver<String> {
    let listener = tokio::net::TcpListener::bind((ip, port)).await.unwrap();
    let (tx, rx) = watch::channel(String::new());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            let n = stream.read(&mut buf).await.unwrap_or(0);
            tx.send_replace(String::from_utf8_lossy(&buf[..n]).into_owned());
            let reply = format!(
                "HTTP/1.1 {} X\r\nContent-Length: 0\r\n\r\n",
                code.load(Ordering::SeqCst)
            );
            let _ = stream.write_all(reply.as_bytes()).await;
        }
    });
    rx
}

#[tokio::test]
async fn readiness_follows_an_http_get() {
    let scratch = Scratch::new("http");
    let ip = Ipv4Addr::new(127, 0, 0, 110);
    let code = Arc::new(AtomicU16::new(200));
    let requests = http_server(ip, 8081, code.clone()).await;
    let mut main = shell(&scratch, "main", ContainerKind::Main, "sleep 100");
    main.ports = vec![("admin".into(), 8081)];
    main.readiness_probe = Some(Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/readyz".into()),
            port: IntOrString::String("admin".into()),
            http_headers: Some(vec![HTTPHeader {
                name: "X-Probe".into(),
                value: "kubesim".into(),
            }]),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(1),
        failure_threshold: Some(1),
        ..Probe::default()
    });
    let pod = start(scratch.plan(ip, RestartPolicy::Always, vec![], vec![main]));
    let mut rx = pod.status();
    wait_status(&mut rx, LONG, "ready", |s| s.container_statuses[0].ready).await;
    let request = requests.borrow().clone();
    assert!(request.starts_with("GET /readyz HTTP/1.1\r\n"), "{request}");
    assert!(request.contains("X-Probe: kubesim\r\n"), "{request}");
    code.store(503, Ordering::SeqCst);
    let unready = wait_status(&mut rx, LONG, "not ready", |s| {
        !s.container_statuses[0].ready
    })
    .await;
    assert!(
        unready
            .events
            .iter()
            .any(|e| e.message.contains("statuscode: 503")),
        "{:?}",
        unready.events
    );
    code.store(302, Ordering::SeqCst);
    wait_status(&mut rx, LONG, "ready on a redirect", |s| {
        s.container_statuses[0].ready
    })
    .await;
    pod.terminate(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn exec_probes_gate_started_and_time_out() {
    let scratch = Scratch::new("exec");
    let mut main = shell(&scratch, "main", ContainerKind::Main, "sleep 100");
    main.startup_probe = Some(Probe {
        failure_threshold: Some(30),
        ..exec_probe(&scratch, "test -f @OUT/started", 1)
    });
    main.readiness_probe = Some(Probe {
        timeout_seconds: Some(1),
        ..exec_probe(
            &scratch,
            "echo $$ >> @OUT/probe-groups; sleep 30; echo late > @OUT/late",
            1,
        )
    });
    let pod = start(scratch.plan(
        Ipv4Addr::new(127, 0, 0, 111),
        RestartPolicy::Always,
        vec![],
        vec![main],
    ));
    let mut rx = pod.status();
    let running = wait_status(&mut rx, LONG, "running", |s| {
        is_running(&s.container_statuses[0])
    })
    .await;
    assert_eq!(running.container_statuses[0].started, Some(false));
    std::fs::write(scratch.out("started"), "").unwrap();
    wait_status(&mut rx, LONG, "started", |s| {
        s.container_statuses[0].started == Some(true)
    })
    .await;
    let timed_out = wait_status(&mut rx, LONG, "a readiness timeout", |s| {
        s.events.iter().any(|e| {
            e.message.starts_with("Readiness probe failed") && e.message.contains("timed out")
        })
    })
    .await;
    assert!(!timed_out.container_statuses[0].ready);
    assert!(
        !scratch.out("late").exists(),
        "the timed-out probe was killed"
    );
    pod.terminate(Duration::from_secs(1)).await;
    // Every probe's process group is gone, the one cut short by the termination included.
    let groups = scratch.read_out("probe-groups");
    assert!(!groups.is_empty());
    let deadline = Instant::now() + Duration::from_secs(2);
    for pgid in groups.lines().map(|l| l.parse::<i32>().unwrap()) {
        // Killed processes are reaped a moment later (by tokio or init): poll.
        while process_exists(-pgid) {
            assert!(
                Instant::now() < deadline,
                "probe process group {pgid} survived"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn terminate_runs_pre_stop_then_sigterm() {
    let scratch = Scratch::new("prestop");
    let mut main = named(
        shell(&scratch, "main", ContainerKind::Main, STOPPABLE),
        "main",
    );
    main.lifecycle = Some(Lifecycle {
        pre_stop: Some(shell_hook(&scratch, "echo prestop >> @OUT/order")),
        ..Lifecycle::default()
    });
    let pod = start(scratch.plan(
        Ipv4Addr::new(127, 0, 0, 112),
        RestartPolicy::Always,
        vec![],
        vec![main],
    ));
    let mut rx = pod.status();
    wait_status(&mut rx, LONG, "ready", |s| s.container_statuses[0].ready).await;
    wait_file(&scratch, "order", LONG).await;
    let started = Instant::now();
    pod.terminate(Duration::from_secs(10)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a process that honours SIGTERM does not wait out the grace"
    );
    assert_eq!(
        scratch.read_out("order"),
        "main-start\nprestop\nmain-stop\n"
    );
    let end = rx.borrow().clone();
    assert_eq!(exit_code(&end.container_statuses[0]), Some(0));
    assert!(!end.container_statuses[0].ready);
    assert!(end.events.iter().any(|e| e.reason == "Killing"));
}

#[tokio::test]
async fn grace_expiry_ends_in_sigkill() {
    let scratch = Scratch::new("grace");
    let main = shell(
        &scratch,
        "main",
        ContainerKind::Main,
        "trap 'echo ignored >> @OUT/term' TERM; touch @OUT/up; while :; do sleep 0.05; done",
    );
    let pod = start(scratch.plan(
        Ipv4Addr::new(127, 0, 0, 113),
        RestartPolicy::Always,
        vec![],
        vec![main],
    ));
    let rx = pod.status();
    wait_file(&scratch, "up", LONG).await;
    let pid = pid_of(&rx.borrow().container_statuses[0]);
    let grace = Duration::from_secs(1);
    let started = Instant::now();
    pod.terminate(grace).await;
    let took = started.elapsed();
    assert!(
        took >= grace && took < grace + Duration::from_secs(1),
        "terminate took {took:?}"
    );
    let end = rx.borrow().clone();
    let terminated = end.container_statuses[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!((terminated.exit_code, terminated.signal), (137, Some(9)));
    assert!(
        scratch.read_out("term").contains("ignored"),
        "SIGTERM came first"
    );
    assert!(!process_exists(pid));
    assert_eq!(end.phase, PodPhase::Failed);
}

#[tokio::test]
async fn kill_is_immediate_and_runs_no_hooks() {
    let scratch = Scratch::new("kill");
    let mut main = named(
        shell(&scratch, "main", ContainerKind::Main, STOPPABLE),
        "main",
    );
    main.lifecycle = Some(Lifecycle {
        pre_stop: Some(shell_hook(&scratch, "touch @OUT/prestop")),
        ..Lifecycle::default()
    });
    let pod = start(scratch.plan(
        Ipv4Addr::new(127, 0, 0, 114),
        RestartPolicy::Always,
        vec![],
        vec![main],
    ));
    let rx = pod.status();
    wait_file(&scratch, "order", LONG).await;
    let pid = pid_of(&rx.borrow().container_statuses[0]);
    let started = Instant::now();
    pod.kill().await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "kill took {:?}",
        started.elapsed()
    );
    assert!(!scratch.out("prestop").exists());
    assert_eq!(
        scratch.read_out("order"),
        "main-start\n",
        "no SIGTERM handler ran"
    );
    assert_eq!(exit_code(&rx.borrow().container_statuses[0]), Some(137));
    assert!(!process_exists(pid));
}

#[tokio::test]
async fn an_unknown_image_waits_as_err_image_pull_then_back_off() {
    let scratch = Scratch::new("image");
    let mut main = shell(&scratch, "main", ContainerKind::Main, "true");
    main.entrypoint = Err("image \"nope:1\" is not in the image map".into());
    let pod = start(scratch.plan(
        Ipv4Addr::new(127, 0, 0, 115),
        RestartPolicy::Always,
        vec![],
        vec![main],
    ));
    let mut rx = pod.status();
    let pulling = wait_status(&mut rx, LONG, "ErrImagePull", |s| {
        waiting_reason(&s.container_statuses[0]) == Some("ErrImagePull")
    })
    .await;
    let message = pulling.container_statuses[0]
        .state
        .clone()
        .unwrap()
        .waiting
        .unwrap()
        .message
        .unwrap();
    assert!(message.contains("not in the image map"));
    assert_eq!(pulling.phase, PodPhase::Pending);
    wait_status(&mut rx, LONG, "ImagePullBackOff", |s| {
        waiting_reason(&s.container_statuses[0]) == Some("ImagePullBackOff")
    })
    .await;
    let started = Instant::now();
    pod.terminate(Duration::from_secs(5)).await;
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn an_unresolvable_env_waits_as_create_container_config_error() {
    let scratch = Scratch::new("config");
    let mut main = shell(&scratch, "main", ContainerKind::Main, "true");
    main.env = Err("couldn't find key missing in ConfigMap default/cm".into());
    let pod = start(scratch.plan(
        Ipv4Addr::new(127, 0, 0, 116),
        RestartPolicy::Always,
        vec![],
        vec![main],
    ));
    let mut rx = pod.status();
    let waiting = wait_status(&mut rx, LONG, "CreateContainerConfigError", |s| {
        waiting_reason(&s.container_statuses[0]) == Some("CreateContainerConfigError")
    })
    .await;
    let message = waiting.container_statuses[0]
        .state
        .clone()
        .unwrap()
        .waiting
        .unwrap()
        .message
        .unwrap();
    assert_eq!(message, "couldn't find key missing in ConfigMap default/cm");
    assert_eq!(waiting.phase, PodPhase::Pending);
    pod.terminate(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn post_start_runs_before_probes_and_its_failure_restarts_the_container() {
    let scratch = Scratch::new("poststart");
    let mut main = shell(&scratch, "main", ContainerKind::Main, "sleep 100");
    main.lifecycle = Some(Lifecycle {
        post_start: Some(shell_hook(&scratch, "touch @OUT/post-started")),
        ..Lifecycle::default()
    });
    main.readiness_probe = Some(exec_probe(&scratch, "test -f @OUT/post-started", 1));
    let mut failing = shell(&scratch, "failing", ContainerKind::Main, "sleep 100");
    failing.lifecycle = Some(Lifecycle {
        post_start: Some(shell_hook(&scratch, "exit 1")),
        ..Lifecycle::default()
    });
    let pod = start(scratch.plan(
        Ipv4Addr::new(127, 0, 0, 117),
        RestartPolicy::Always,
        vec![],
        vec![main, failing],
    ));
    let mut rx = pod.status();
    wait_status(&mut rx, LONG, "main ready after its postStart", |s| {
        s.container_statuses[0].ready
    })
    .await;
    let restarted = wait_status(&mut rx, LONG, "failing restarted", |s| {
        s.container_statuses[1].restart_count >= 1
    })
    .await;
    assert!(
        restarted
            .events
            .iter()
            .any(|e| e.reason == "FailedPostStartHook"),
        "{:?}",
        restarted.events
    );
    assert_eq!(restarted.container_statuses[0].restart_count, 0);
    pod.terminate(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn pod_processes_hold_the_sandbox_descriptor_and_probes_too() {
    let scratch = Scratch::new("inheritfd");
    // The node hands every pod the lock on the cluster's address block: the block must stay
    // claimed for as long as any pod process lives, even if kubesim itself was killed.
    let block = paddock_kubesim::netblock::NetBlock::claim_in(&scratch.root.join("net")).unwrap();
    let lock_path = scratch
        .root
        .join("net")
        .join(format!("{}.lock", block.octet()));
    let mut main = shell(&scratch, "main", ContainerKind::Main, "exec sleep 100");
    // /proc/self is resolved by `cd` in the shell, so readlink lists the shell's descriptors
    // (and `$$` would not do: `$$` is the escape of `$` in a container's command). The
    // descriptor the glob read the directory with is gone by then: its readlink fails.
    main.readiness_probe = Some(exec_probe(
        &scratch,
        "cd /proc/self/fd && for f in *; do readlink \"$f\" || true; done > @OUT/probe-fds",
        1,
    ));
    let mut plan = scratch.plan(
        Ipv4Addr::new(127, 0, 0, 118),
        RestartPolicy::Always,
        vec![],
        vec![main],
    );
    plan.sandbox.inherit_fd = Some(block.lock());
    let pod = start(plan);
    let mut rx = pod.status();
    let ready = wait_status(&mut rx, LONG, "main ready", |s| {
        s.container_statuses[0].ready
    })
    .await;
    let pid = pid_of(&ready.container_statuses[0]);
    let main_fds: String = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .map(|target| format!("{}\n", target.display()))
        .collect();
    for (who, fds) in [
        ("main", main_fds),
        ("the probe", scratch.read_out("probe-fds")),
    ] {
        assert!(
            fds.lines().any(|l| l == lock_path.display().to_string()),
            "{who}: the lock is not among the process's descriptors:\n{fds}"
        );
    }
    pod.terminate(Duration::from_secs(1)).await;
}

/// A listener that counts the `tick` lines its connections bring.
struct TickCounter {
    port: u16,
    ticks: Arc<std::sync::atomic::AtomicU64>,
}

impl TickCounter {
    async fn start() -> TickCounter {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let ticks = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = ticks.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    let mut text = String::new();
                    if stream.read_to_string(&mut text).await.is_ok() {
                        let n = text.lines().filter(|l| *l == "tick").count();
                        counted.fetch_add(n as u64, Ordering::SeqCst);
                    }
                });
            }
        });
        TickCounter { port, ticks }
    }

    fn count(&self) -> u64 {
        self.ticks.load(Ordering::SeqCst)
    }

    /// Waits (bounded) for a new tick.
    async fn wait_tick(&self, what: &str) {
        let before = self.count();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.count() == before {
            assert!(Instant::now() < deadline, "no tick within 10 s {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Checks that no tick arrives during a whole second, after in-flight ones settled. An
    /// absence can only be observed over a window; the pod ticks every 50 ms.
    async fn assert_silent(&self, what: &str) {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let before = self.count();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(self.count(), before, "ticks arrived {what}");
    }
}

/// A container that connects anew every 50 ms to 127.0.0.1:`port` and sends `tick`.
fn ticker(scratch: &Scratch, port: u16) -> ContainerPlan {
    let script = r#"
import socket, sys, time
port = int(sys.argv[1])
while True:
    try:
        s = socket.create_connection(('127.0.0.1', port), timeout=0.3)
        s.sendall(b'tick\n')
        s.close()
    except OSError:
        pass
    time.sleep(0.05)
"#;
    ContainerPlan {
        entrypoint: Ok(PathBuf::from("/usr/bin/python3")),
        args: vec!["-c".into(), script.into(), port.to_string()],
        ..shell(scratch, "ticker", ContainerKind::Main, "")
    }
}

/// The faults `paddock-kubesim pod pause|cut` inflict: every process of the pod is in the
/// pod's cgroup, so freezing it stops them, and a rule matching it drops exactly their
/// packets; a frozen pod can still be killed, and its cgroup goes with it.
#[tokio::test]
async fn a_pod_in_its_cgroup_can_be_paused_and_cut_off() {
    let scratch = Scratch::new("faults");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mount = paddock_kubesim::faults::cgroup2_mount(&mountinfo)
        .expect("a cgroup2 hierarchy (kubesim's pod faults need one)");
    // Block 0 is no cluster's (they use 1..=254): nothing of a running cluster is touched.
    let cgroups = paddock_kubesim::faults::PodCgroups {
        mount,
        cluster: PathBuf::from(format!("paddock-kubesim/test-{}", std::process::id())),
        block: 0,
    };
    let cgroup = cgroups.pod(&format!("faults-{}", std::process::id()));
    cgroup
        .create()
        .expect("creating the pod's cgroup (needs root)");

    let counter = TickCounter::start().await;
    let mut plan = scratch.plan(
        Ipv4Addr::new(127, 0, 0, 119),
        RestartPolicy::Always,
        Vec::new(),
        vec![ticker(&scratch, counter.port)],
    );
    plan.sandbox.cgroup_procs = Some(cgroup.procs_file());
    let pod = start(plan);
    counter.wait_tick("from the started pod").await;
    let procs = std::fs::read_to_string(cgroup.procs_file()).unwrap();
    assert!(
        !procs.trim().is_empty(),
        "the pod's process is not in its cgroup"
    );

    cgroup.cut(counter.port).expect("cut");
    cgroup
        .cut(counter.port)
        .expect("a second cut of the same port is a no-op");
    counter.assert_silent("while the pod was cut off").await;
    cgroup.heal(Some(counter.port)).expect("heal");
    counter.wait_tick("after heal").await;

    cgroup.set_frozen(true).expect("pause");
    counter.assert_silent("while the pod was paused").await;
    cgroup.set_frozen(false).expect("resume");
    counter.wait_tick("after resume").await;

    // Frozen and cut at the end, as a test that fails midway leaves it: kill still works.
    cgroup.cut(counter.port).expect("cut");
    cgroup.set_frozen(true).expect("pause");
    tokio::time::timeout(LONG, pod.kill())
        .await
        .expect("a paused pod is killed within 15 s");
    cgroup.remove();
    assert!(!cgroup.dir.exists(), "the pod's cgroup outlived it");
    let rules = std::process::Command::new("iptables")
        .args(["-w", "5", "-S", "OUTPUT"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&rules.stdout).contains(&cgroup.tag),
        "the pod's rules outlived it"
    );
    let _ = std::fs::remove_dir(cgroups.dir());
}
