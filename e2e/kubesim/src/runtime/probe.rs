//! Probes and lifecycle hooks: running one action (exec, httpGet, tcpSocket, sleep) against a
//! container, and the threshold bookkeeping that turns results into a verdict.

use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ExecAction, HTTPGetAction, LifecycleHandler, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::net::TcpStream;

use super::MountPlan;
use super::http::{HttpGet, get_status};
use super::spawn::{GroupKiller, Output, ProcessSpec, signal_group, spawn};

/// What an exec action needs to run "inside" the container: a fresh mount namespace with the
/// container's mounts, env and working directory.
#[derive(Clone, Debug)]
pub(crate) struct ExecContext {
    pub env: Vec<(String, String)>,
    pub mounts: Vec<MountPlan>,
    pub hosts_file: PathBuf,
    pub working_dir: Option<String>,
    /// The sandbox's [`super::PodSandbox::inherit_fd`].
    pub inherit_fd: Option<Arc<OwnedFd>>,
    /// The sandbox's [`super::PodSandbox::cgroup_procs`].
    pub cgroup_procs: Option<PathBuf>,
}

/// Where network actions go and how named ports resolve.
#[derive(Clone, Debug)]
pub(crate) struct ActionContext {
    pub pod_ip: Ipv4Addr,
    /// (name, containerPort) of the container.
    pub ports: Vec<(String, i32)>,
    pub exec: ExecContext,
}

/// One action of a probe or a hook.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Action<'a> {
    Exec(&'a ExecAction),
    HttpGet(&'a HTTPGetAction),
    TcpSocket(&'a TCPSocketAction),
    Sleep(i64),
    Unsupported(&'static str),
}

impl<'a> Action<'a> {
    pub fn of_probe(probe: &'a Probe) -> Action<'a> {
        if let Some(exec) = &probe.exec {
            Action::Exec(exec)
        } else if let Some(http) = &probe.http_get {
            Action::HttpGet(http)
        } else if let Some(tcp) = &probe.tcp_socket {
            Action::TcpSocket(tcp)
        } else if probe.grpc.is_some() {
            Action::Unsupported("grpc probes are not supported by kubesim")
        } else {
            Action::Unsupported("the probe has no handler")
        }
    }

    /// A lifecycle hook; tcpSocket hooks are accepted and ignored, as a kubelet does.
    pub fn of_hook(handler: &'a LifecycleHandler) -> Action<'a> {
        if let Some(exec) = &handler.exec {
            Action::Exec(exec)
        } else if let Some(http) = &handler.http_get {
            Action::HttpGet(http)
        } else if let Some(sleep) = &handler.sleep {
            Action::Sleep(sleep.seconds)
        } else if handler.tcp_socket.is_some() {
            Action::Sleep(0)
        } else {
            Action::Unsupported("the hook has no handler")
        }
    }
}

/// Runs `action` once, giving up after `timeout`; Ok is success, Err says why not.
pub(crate) async fn run_action(
    action: Action<'_>,
    ctx: &ActionContext,
    timeout: Duration,
) -> Result<(), String> {
    match action {
        Action::Exec(exec) => {
            run_exec(
                exec.command.as_deref().unwrap_or_default(),
                &ctx.exec,
                timeout,
            )
            .await
        }
        Action::HttpGet(http) => {
            let request = http_request(http, ctx)?;
            let code = get_status(&request, timeout).await?;
            if (200..400).contains(&code) {
                Ok(())
            } else {
                Err(format!("HTTP probe failed with statuscode: {code}"))
            }
        }
        Action::TcpSocket(tcp) => {
            let host = tcp.host.clone().unwrap_or_else(|| ctx.pod_ip.to_string());
            let port = resolve_port(&tcp.port, &ctx.ports)?;
            match tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), port))).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("dial tcp {host}:{port}: connect: {e}")),
                Err(_) => Err(format!("dial tcp {host}:{port}: i/o timeout")),
            }
        }
        Action::Sleep(seconds) => {
            let wanted = Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
            tokio::time::sleep(wanted.min(timeout)).await;
            Ok(())
        }
        Action::Unsupported(why) => Err(why.to_owned()),
    }
}

fn http_request(http: &HTTPGetAction, ctx: &ActionContext) -> Result<HttpGet, String> {
    if http
        .scheme
        .as_deref()
        .is_some_and(|s| !s.eq_ignore_ascii_case("HTTP"))
    {
        return Err("HTTPS probes and hooks are not supported by kubesim".to_owned());
    }
    Ok(HttpGet {
        host: http
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| ctx.pod_ip.to_string()),
        port: resolve_port(&http.port, &ctx.ports)?,
        path: http.path.clone().unwrap_or_else(|| "/".to_owned()),
        headers: http
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect(),
    })
}

/// A port number, or a name looked up among the container's ports.
pub(crate) fn resolve_port(port: &IntOrString, ports: &[(String, i32)]) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => match name.parse::<i32>() {
            Ok(n) => n,
            Err(_) => ports
                .iter()
                .find(|(port_name, _)| port_name == name)
                .map(|(_, n)| *n)
                .ok_or_else(|| format!("unknown port name {name:?}"))?,
        },
    };
    u16::try_from(number)
        .ok()
        .filter(|n| *n != 0)
        .ok_or_else(|| format!("invalid port {number}"))
}

/// Runs a command in the container's namespace; exit 0 is success; on timeout it is killed.
async fn run_exec(command: &[String], ctx: &ExecContext, timeout: Duration) -> Result<(), String> {
    let spec = ProcessSpec {
        argv: command,
        env: &ctx.env,
        working_dir: ctx.working_dir.as_deref(),
        mounts: &ctx.mounts,
        hosts_file: &ctx.hosts_file,
        inherit_fd: ctx.inherit_fd.as_ref().map(|fd| fd.as_fd()),
        cgroup_procs: ctx.cgroup_procs.as_deref(),
        output: Output::Discard,
    };
    let mut child = spawn(&spec).map_err(|e| e.to_string())?;
    let pid = child.id().unwrap_or(0);
    // Whatever the command leaves behind in its group goes with it, even if this future is
    // dropped mid-wait.
    let _group = GroupKiller(pid);
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("command {command:?} exited with {status}")),
        Ok(Err(e)) => Err(format!("waiting for command {command:?}: {e}")),
        Err(_) => {
            signal_group(pid, libc::SIGKILL);
            // The group was just SIGKILLed: the wait ends at once.
            let _ = child.wait().await;
            Err(format!(
                "command {command:?} timed out after {}",
                super::backoff::go_duration(timeout)
            ))
        }
    }
}

/// A probe's timing and thresholds with Kubernetes' defaults filled in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProbeSettings {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl ProbeSettings {
    pub fn of(probe: &Probe) -> ProbeSettings {
        let secs = |v: Option<i32>, default: i32, min: i32| {
            Duration::from_secs(u64::try_from(v.unwrap_or(default).max(min)).unwrap_or(0))
        };
        let count =
            |v: Option<i32>, default: i32| u32::try_from(v.unwrap_or(default).max(1)).unwrap_or(1);
        ProbeSettings {
            initial_delay: secs(probe.initial_delay_seconds, 0, 0),
            period: secs(probe.period_seconds, 10, 1),
            timeout: secs(probe.timeout_seconds, 1, 1),
            success_threshold: count(probe.success_threshold, 1),
            failure_threshold: count(probe.failure_threshold, 3),
        }
    }
}

/// Consecutive results → verdict: true after successThreshold successes in a row, false after
/// failureThreshold failures in a row, unchanged in between.
#[derive(Clone, Debug)]
pub(crate) struct Tracker {
    success_threshold: u32,
    failure_threshold: u32,
    successes: u32,
    failures: u32,
    verdict: Option<bool>,
}

impl Tracker {
    pub fn new(settings: &ProbeSettings) -> Tracker {
        Tracker {
            success_threshold: settings.success_threshold,
            failure_threshold: settings.failure_threshold,
            successes: 0,
            failures: 0,
            verdict: None,
        }
    }

    /// Records one result and returns the verdict so far (None before any threshold was met).
    pub fn observe(&mut self, ok: bool) -> Option<bool> {
        if ok {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
            if self.successes >= self.success_threshold {
                self.verdict = Some(true);
            }
        } else {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
            if self.failures >= self.failure_threshold {
                self.verdict = Some(false);
            }
        }
        self.verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_minimums() {
        let s = ProbeSettings::of(&Probe::default());
        assert_eq!(s.period, Duration::from_secs(10));
        assert_eq!(s.timeout, Duration::from_secs(1));
        assert_eq!((s.success_threshold, s.failure_threshold), (1, 3));
        let s = ProbeSettings::of(&Probe {
            period_seconds: Some(0),
            failure_threshold: Some(-1),
            ..Probe::default()
        });
        assert_eq!(s.period, Duration::from_secs(1));
        assert_eq!(s.failure_threshold, 1);
    }

    #[test]
    fn thresholds_need_results_in_a_row() {
        let mut t = Tracker::new(&ProbeSettings {
            success_threshold: 2,
            failure_threshold: 3,
            ..ProbeSettings::of(&Probe::default())
        });
        assert_eq!(t.observe(true), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(true), None);
        assert_eq!(t.observe(true), Some(true));
        assert_eq!(t.observe(false), Some(true));
        assert_eq!(t.observe(false), Some(true));
        assert_eq!(t.observe(true), Some(true));
        assert_eq!(t.observe(false), Some(true));
        assert_eq!(t.observe(false), Some(true));
        assert_eq!(t.observe(false), Some(false));
    }

    #[test]
    fn ports_by_number_or_name() {
        let ports = vec![("http".to_owned(), 8080)];
        assert_eq!(resolve_port(&IntOrString::Int(80), &ports), Ok(80));
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &ports),
            Ok(8080)
        );
        assert_eq!(
            resolve_port(&IntOrString::String("81".into()), &ports),
            Ok(81)
        );
        assert!(resolve_port(&IntOrString::String("admin".into()), &ports).is_err());
        assert!(resolve_port(&IntOrString::Int(70000), &ports).is_err());
        assert!(resolve_port(&IntOrString::Int(0), &ports).is_err());
    }
}
