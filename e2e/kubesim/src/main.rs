//! `paddock-kubesim`: the test cluster (see e2e/README.md).
//!
//!   paddock-kubesim up [--nodes 3] [--images FILE] [--dir DIR] [--bin-dir DIR]
//!   paddock-kubesim down [--dir DIR]
//!   paddock-kubesim node fail|restore NAME [--dir DIR]
//!   paddock-kubesim pod pause|resume NAMESPACE/NAME [--dir DIR]
//!   paddock-kubesim pod cut|heal NAMESPACE/NAME [--port PORT] [--dir DIR]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use paddock_kubesim::faults::{FaultError, PodCgroup, PodCgroups};
use paddock_kubesim::images::ImageMap;
use paddock_kubesim::layout::{Layout, State};
use paddock_kubesim::supervisor;

#[derive(Parser)]
#[command(
    name = "paddock-kubesim",
    about = "A real Kubernetes control plane on loopback, with nodes that run pods as local processes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct DirArg {
    /// The cluster's directory (certificates, kubeconfig, logs, etcd, volumes).
    #[arg(
        long,
        env = "PADDOCK_KUBESIM_DIR",
        default_value = "/tmp/paddock-kubesim"
    )]
    dir: PathBuf,
}

#[derive(clap::Args, Clone)]
struct UpArgs {
    #[command(flatten)]
    dir: DirArg,
    /// How many nodes to register.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// YAML map of image repository to local binary (`paddock/server: /path/to/paddock-server`).
    #[arg(long)]
    images: Option<PathBuf>,
    /// Where etcd, kube-apiserver, kube-controller-manager and kube-scheduler are
    /// (e2e/kube/build.sh prints it).
    #[arg(long, env = "PADDOCK_KUBE_BIN")]
    bin_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Start the cluster in the background; returns once every node is Ready.
    Up(UpArgs),
    /// Run the cluster in the foreground (what `up` starts).
    #[command(hide = true)]
    Serve(UpArgs),
    /// Stop everything `up` started, by pid.
    Down(DirArg),
    /// Fail (power loss) or restore a node.
    Node {
        #[command(subcommand)]
        action: NodeAction,
    },
    /// Freeze a pod, or cut it off from a port (see the faults module).
    Pod {
        #[command(subcommand)]
        action: PodAction,
    },
}

#[derive(clap::Args, Clone)]
struct PodArg {
    /// The pod, as NAMESPACE/NAME (NAME alone means the default namespace).
    pod: String,
    #[command(flatten)]
    dir: DirArg,
}

#[derive(Subcommand)]
enum PodAction {
    /// Freeze every process of the pod (as `docker pause`): it stops mid-step, its
    /// connections stay open, nothing answers.
    Pause(PodArg),
    /// Thaw a paused pod.
    Resume(PodArg),
    /// Drop the pod's outgoing TCP to PORT (a partition between it and whatever listens
    /// there), until `heal`.
    Cut {
        #[command(flatten)]
        pod: PodArg,
        #[arg(long)]
        port: u16,
    },
    /// Undo `cut` for PORT, or every cut of the pod without --port.
    Heal {
        #[command(flatten)]
        pod: PodArg,
        #[arg(long)]
        port: Option<u16>,
    },
}

#[derive(Subcommand)]
enum NodeAction {
    /// Heartbeats stop and the node's processes are SIGKILLed; volumes stay.
    Fail {
        name: String,
        #[command(flatten)]
        dir: DirArg,
    },
    /// The node comes back, as a rebooted kubelet.
    Restore {
        name: String,
        #[command(flatten)]
        dir: DirArg,
    },
}

fn default_bin_dir() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cache/paddock/kube-1.37.2/bin")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => up(args),
        Command::Serve(args) => serve(args),
        Command::Down(dir) => down(&Layout::new(&dir.dir)),
        Command::Pod { action } => pod_fault(action),
        Command::Node { action } => match action {
            NodeAction::Fail { name, dir } => node_command(&Layout::new(&dir.dir), "fail", &name),
            NodeAction::Restore { name, dir } => {
                node_command(&Layout::new(&dir.dir), "restore", &name)
            }
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("paddock-kubesim: {message}");
            ExitCode::FAILURE
        }
    }
}

fn pid_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

fn up(args: UpArgs) -> Result<(), String> {
    let layout = Layout::new(&args.dir.dir);
    if let Ok(state) = State::load(&layout)
        && state.supervisor_pid.is_some_and(pid_alive)
    {
        return Err(format!(
            "a cluster is already running in {} (run `paddock-kubesim down --dir {}` first)",
            layout.dir.display(),
            layout.dir.display()
        ));
    }
    // A fresh cluster every time: old certificates, etcd data and volumes go.
    if layout.dir.exists() {
        std::fs::remove_dir_all(&layout.dir)
            .map_err(|e| format!("cleaning {}: {e}", layout.dir.display()))?;
    }
    std::fs::create_dir_all(layout.logs())
        .map_err(|e| format!("creating {}: {e}", layout.dir.display()))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let log = std::fs::File::create(layout.supervisor_log()).map_err(|e| e.to_string())?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("serve")
        .arg("--dir")
        .arg(&layout.dir)
        .arg("--nodes")
        .arg(args.nodes.to_string());
    if let Some(images) = &args.images {
        let images = std::fs::canonicalize(images)
            .map_err(|e| format!("the image map {}: {e}", images.display()))?;
        command.arg("--images").arg(images);
    }
    command
        .arg("--bin-dir")
        .arg(args.bin_dir.unwrap_or_else(default_bin_dir));
    use std::os::unix::process::CommandExt;
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("starting the supervisor: {e}"))?;
    let started = std::time::Instant::now();
    loop {
        if layout.ready_marker().exists() {
            println!(
                "cluster ready in {:.1} s: export KUBECONFIG={}",
                started.elapsed().as_secs_f64(),
                layout.admin_kubeconfig().display()
            );
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "the cluster did not come up ({status}); last lines of {}:\n{}",
                layout.supervisor_log().display(),
                tail(&layout.supervisor_log(), 30)
            ));
        }
        if started.elapsed() > Duration::from_secs(240) {
            let _ = child.kill();
            return Err(format!(
                "the cluster was not ready within 240 s; see {}",
                layout.logs().display()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn serve(args: UpArgs) -> Result<(), String> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn")),
        )
        .with_ansi(false)
        .init();
    let images = match &args.images {
        Some(path) => ImageMap::load(path).map_err(|e| e.to_string())?,
        None => ImageMap::default(),
    };
    let options = supervisor::Options {
        layout: Layout::new(&args.dir.dir),
        nodes: args.nodes.max(1),
        images,
        bin_dir: args.bin_dir.unwrap_or_else(default_bin_dir),
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime
        .block_on(supervisor::serve(options))
        .map_err(|e| e.to_string())
}

fn down(layout: &Layout) -> Result<(), String> {
    let state =
        State::load(layout).map_err(|e| format!("no cluster in {} ({e})", layout.dir.display()))?;
    if let Some(pid) = state.supervisor_pid.filter(|p| pid_alive(*p)) {
        // SAFETY: the supervisor's pid, recorded by the supervisor itself.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while pid_alive(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if pid_alive(pid) {
            // SAFETY: as above.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
    // Whatever the supervisor could not stop (it was killed, or hung).
    for started in &state.processes {
        if pid_alive(started.pid) && is_named(started.pid, &started.name) {
            // SAFETY: a pid the supervisor recorded, checked to still run that program.
            unsafe { libc::kill(started.pid as i32, libc::SIGKILL) };
        }
    }
    println!("cluster in {} stopped", layout.dir.display());
    Ok(())
}

/// Guards against killing a recycled pid: the process must still run the binary we started.
fn is_named(pid: u32, name: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|comm| name.starts_with(comm.trim()))
}

fn node_command(layout: &Layout, verb: &str, name: &str) -> Result<(), String> {
    use std::io::{BufRead, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(layout.control_socket())
        .map_err(|e| format!("no running cluster in {} ({e})", layout.dir.display()))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    writeln!(stream, "{verb} {name}").map_err(|e| e.to_string())?;
    let mut answer = String::new();
    std::io::BufReader::new(stream)
        .read_line(&mut answer)
        .map_err(|e| e.to_string())?;
    match answer.trim() {
        "ok" => Ok(()),
        other => Err(other.trim_start_matches("error: ").to_string()),
    }
}

fn pod_fault(action: PodAction) -> Result<(), String> {
    match &action {
        PodAction::Pause(arg) => with_pod(arg, |c| c.set_frozen(true)),
        PodAction::Resume(arg) => with_pod(arg, |c| c.set_frozen(false)),
        PodAction::Cut { pod, port } => with_pod(pod, |c| c.cut(*port)),
        PodAction::Heal { pod, port } => with_pod(pod, |c| c.heal(*port)),
    }
}

fn with_pod(
    arg: &PodArg,
    fault: impl FnOnce(&PodCgroup) -> Result<(), FaultError>,
) -> Result<(), String> {
    let layout = Layout::new(&arg.dir.dir);
    let state = State::load(&layout)
        .map_err(|e| format!("no cluster in {} ({e})", layout.dir.display()))?;
    let cgroups = state.pod_cgroups.ok_or_else(|| {
        format!(
            "the cluster in {} gave its pods no cgroups (see {}: it needs root and a cgroup2 hierarchy)",
            layout.dir.display(),
            layout.supervisor_log().display()
        )
    })?;
    let wanted = if arg.pod.contains('/') {
        arg.pod.clone()
    } else {
        format!("default/{}", arg.pod)
    };
    let cgroup = find_pod(&layout, &cgroups, &wanted)?;
    fault(&cgroup).map_err(|e| format!("{wanted}: {e}"))
}

/// The cgroup of the running pod `namespace/name`, found through the name files of the pod
/// directories (a pod of a failed node leaves its directory, but not its cgroup, behind).
fn find_pod(layout: &Layout, cgroups: &PodCgroups, wanted: &str) -> Result<PodCgroup, String> {
    let entries = std::fs::read_dir(layout.pods())
        .map_err(|e| format!("{}: {e}", layout.pods().display()))?;
    entries
        .flatten()
        .filter(|entry| {
            std::fs::read_to_string(Layout::pod_name_file(&entry.path()))
                .is_ok_and(|name| name.trim() == wanted)
        })
        .map(|entry| cgroups.pod(&entry.file_name().to_string_lossy()))
        .find(|cgroup| cgroup.dir.is_dir())
        .ok_or_else(|| format!("no pod {wanted} runs in {}", layout.dir.display()))
}
