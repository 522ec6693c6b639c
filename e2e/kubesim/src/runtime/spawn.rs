//! Starting one process of a container: its own session and private mount namespace with the
//! pod's volumes bind-mounted at their paths, the container's env and no other, output
//! appended to the container's log.
//!
//! Everything the child does between fork and exec is prepared here in the parent (paths as
//! C strings, the list of mkdir/bind steps), because the child of a multi-threaded process
//! may only make async-signal-safe system calls: no allocation, no locks.
//!
//! Mount points that do not exist are created on the host filesystem (a mount namespace has
//! no root filesystem of its own here), so an empty `/conf` may be left behind on the host.

use std::ffi::{CString, OsStr};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;

use tokio::process::{Child, Command};

use super::MountPlan;

/// Where the process's stdout and stderr go.
#[derive(Clone, Debug)]
pub(crate) enum Output {
    /// Appended to this file (created if missing).
    Append(PathBuf),
    /// Thrown away (probes and hooks).
    Discard,
}

/// One process to start in the container's namespace.
pub(crate) struct ProcessSpec<'a> {
    /// argv; argv[0] is looked up in the env's PATH when it has no slash.
    pub argv: &'a [String],
    pub env: &'a [(String, String)],
    pub working_dir: Option<&'a str>,
    pub mounts: &'a [MountPlan],
    /// Bind-mounted read-only at /etc/hosts.
    pub hosts_file: &'a Path,
    /// Left open across exec (every other descriptor of kubesim is close-on-exec): the pod
    /// address block's lock, which the process then holds for as long as it lives.
    pub inherit_fd: Option<BorrowedFd<'a>>,
    /// A cgroup's `cgroup.procs`: the process joins that cgroup before exec, so that its
    /// sockets carry it (the pod faults of [`crate::faults`] select packets by it).
    pub cgroup_procs: Option<&'a Path>,
    pub output: Output,
}

/// Why a process could not be started; shown as the container's StartError.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("the command is empty")]
    EmptyCommand,
    #[error("exec: {0:?}: executable file not found in $PATH")]
    NotFound(String),
    #[error("{0:?} contains a NUL byte")]
    Nul(String),
    #[error("mount source {path}: {source}")]
    MountSource { path: PathBuf, source: io::Error },
    /// kubesim runs pods on the host's filesystem, so a volume mounted over a directory
    /// that holds the image's program (e.g. `/check` when the repository is checked out
    /// under /check) would hide it; said plainly instead of a failed exec.
    #[error(
        "the volume mounted at {mount} would hide the program {program} (kubesim shares the host's filesystem): mount it elsewhere"
    )]
    MountHidesProgram { mount: PathBuf, program: PathBuf },
    #[error("opening the log {path}: {source}")]
    Log { path: PathBuf, source: io::Error },
    #[error("starting {program}: {source}")]
    Start { program: String, source: io::Error },
}

/// The PATH a container gets when its env has none (that of a typical image).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Starts the process; its pid is also its process-group id.
pub(crate) fn spawn(spec: &ProcessSpec<'_>) -> Result<Child, SpawnError> {
    let env = container_env(spec.env);
    let first = spec.argv.first().ok_or(SpawnError::EmptyCommand)?;
    let path_var = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or(DEFAULT_PATH);
    let program =
        resolve_program(first, path_var).ok_or_else(|| SpawnError::NotFound(first.clone()))?;
    if let Some(mount) = spec
        .mounts
        .iter()
        .map(|m| Path::new("/").join(&m.container_path))
        .find(|target| program.starts_with(target))
    {
        return Err(SpawnError::MountHidesProgram { mount, program });
    }
    let setup = ChildSetup::plan(spec)?;

    let mut command = Command::new(&program);
    command
        .arg0(first)
        .args(&spec.argv[1..])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)));
    command.stdin(Stdio::null());
    // Normally every child is waited for; this only matters when the runtime itself is torn
    // down (a test that panicked), so that no container outlives it.
    command.kill_on_drop(true);
    match &spec.output {
        Output::Discard => {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
        Output::Append(path) => {
            let log = open_log(path)?;
            let copy = log.try_clone().map_err(|source| SpawnError::Log {
                path: path.clone(),
                source,
            })?;
            command.stdout(Stdio::from(log)).stderr(Stdio::from(copy));
        }
    }
    // SAFETY: the closure only makes async-signal-safe system calls on memory prepared
    // before the fork (ChildSetup owns every C string it touches) and does not allocate.
    unsafe {
        command.pre_exec(move || setup.run_in_child());
    }
    command.spawn().map_err(|source| SpawnError::Start {
        program: program.display().to_string(),
        source,
    })
}

/// Sends `signal` to the process group `pgid` (a container's processes); a group that is
/// already gone is not an error.
pub(crate) fn signal_group(pgid: u32, signal: i32) {
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return; // never signal "every process" or init by accident
    }
    // SAFETY: kill(2) with a negative pid signals that process group; no memory is involved.
    let rc = unsafe { libc::kill(-pgid, signal) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ESRCH) {
            tracing::warn!(pgid, signal, %err, "signalling a container's process group");
        }
    }
}

/// SIGKILLs a process group when dropped: whatever way a run or a probe ends (including a
/// probe cancelled mid-flight because its container stopped), nothing of its group survives.
pub(crate) struct GroupKiller(pub u32);

impl Drop for GroupKiller {
    fn drop(&mut self) {
        signal_group(self.0, libc::SIGKILL);
    }
}

/// The container's env, plus PATH when it has none: containers inherit nothing from the host.
fn container_env(env: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = env.to_vec();
    if !out.iter().any(|(k, _)| k == "PATH") {
        let host = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_owned());
        out.push(("PATH".to_owned(), host));
    }
    out
}

/// `name` itself when it has a slash, else the first executable file of that name on `path_var`.
fn resolve_program(name: &str, path_var: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    if name.is_empty() {
        return None;
    }
    path_var
        .split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

fn open_log(path: &Path) -> Result<File, SpawnError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| SpawnError::Log {
            path: path.to_owned(),
            source,
        })
}

fn c_path(path: &Path) -> Result<CString, SpawnError> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| SpawnError::Nul(path.display().to_string()))
}

/// `/a`, `/a/b`, `/a/b/c` for `/a/b/c` (only normal components; `..` is dropped).
fn path_prefixes(path: &Path) -> Vec<PathBuf> {
    let mut current = PathBuf::from("/");
    let mut out = Vec::new();
    for component in path.components() {
        if let Component::Normal(part) = component {
            current.push(part);
            out.push(current.clone());
        }
    }
    out
}

/// One step of the child's namespace setup.
enum Step {
    /// mkdir; an existing entry is fine.
    MakeDir(CString),
    /// Create an empty file to bind a file onto; an existing one is fine.
    TouchFile(CString),
    Bind {
        source: CString,
        target: CString,
        read_only: bool,
    },
}

/// What the child does between fork and exec, prepared in the parent.
struct ChildSetup {
    steps: Vec<Step>,
    working_dir: Option<CString>,
    /// Raw, because the setup moves into a 'static closure; it stays open because the spec
    /// borrows it for the whole of `spawn`, during which the child runs the setup.
    inherit_fd: Option<RawFd>,
    cgroup_procs: Option<CString>,
}

impl ChildSetup {
    fn plan(spec: &ProcessSpec<'_>) -> Result<ChildSetup, SpawnError> {
        let mut steps = Vec::new();
        let binds = spec
            .mounts
            .iter()
            .map(|m| {
                (
                    m.host_path.as_path(),
                    m.container_path.as_path(),
                    m.read_only,
                )
            })
            .chain(std::iter::once((
                spec.hosts_file,
                Path::new("/etc/hosts"),
                true,
            )));
        for (source, target, read_only) in binds {
            let is_dir = std::fs::metadata(source)
                .map_err(|e| SpawnError::MountSource {
                    path: source.to_owned(),
                    source: e,
                })?
                .is_dir();
            let target = Path::new("/").join(target);
            if is_dir {
                for dir in path_prefixes(&target) {
                    steps.push(Step::MakeDir(c_path(&dir)?));
                }
            } else {
                if let Some(parent) = target.parent() {
                    for dir in path_prefixes(parent) {
                        steps.push(Step::MakeDir(c_path(&dir)?));
                    }
                }
                steps.push(Step::TouchFile(c_path(&target)?));
            }
            steps.push(Step::Bind {
                source: c_path(source)?,
                target: c_path(&target)?,
                read_only,
            });
        }
        let working_dir = match spec.working_dir.filter(|d| !d.is_empty()) {
            Some(dir) => {
                let dir = Path::new("/").join(OsStr::new(dir));
                for prefix in path_prefixes(&dir) {
                    steps.push(Step::MakeDir(c_path(&prefix)?));
                }
                Some(c_path(&dir)?)
            }
            None => None,
        };
        Ok(ChildSetup {
            steps,
            working_dir,
            inherit_fd: spec.inherit_fd.map(|fd| fd.as_raw_fd()),
            cgroup_procs: spec.cgroup_procs.map(c_path).transpose()?,
        })
    }

    /// Runs in the forked child: only async-signal-safe calls, no allocation.
    fn run_in_child(&self) -> io::Result<()> {
        let null = std::ptr::null();
        // SAFETY: plain system calls on NUL-terminated strings owned by `self`, which lives
        // until exec; nothing here allocates or takes a lock.
        unsafe {
            check(libc::setsid())?;
            if let Some(procs) = &self.cgroup_procs {
                // Writing 0 moves the writer itself; done first, so that nothing the
                // process opens (sockets above all) is outside the pod's cgroup.
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                check(fd)?;
                if libc::write(fd, c"0".as_ptr().cast(), 1) != 1 {
                    let error = io::Error::last_os_error();
                    libc::close(fd);
                    return Err(error);
                }
                libc::close(fd);
            }
            check(libc::unshare(libc::CLONE_NEWNS))?;
            // Our binds must not propagate back to the host's mount table.
            check(libc::mount(
                null,
                c"/".as_ptr(),
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                null.cast(),
            ))?;
            for step in &self.steps {
                match step {
                    Step::MakeDir(dir) => {
                        if libc::mkdir(dir.as_ptr(), 0o755) != 0
                            && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST)
                        {
                            return Err(io::Error::last_os_error());
                        }
                    }
                    Step::TouchFile(file) => {
                        let fd = libc::open(
                            file.as_ptr(),
                            libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC,
                            0o644,
                        );
                        if fd >= 0 {
                            libc::close(fd);
                        } else if io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
                            // A read-only existing file (EROFS/EACCES on open for write) is still a fine mount point.
                            if libc::access(file.as_ptr(), libc::F_OK) != 0 {
                                return Err(io::Error::last_os_error());
                            }
                        }
                    }
                    Step::Bind {
                        source,
                        target,
                        read_only,
                    } => {
                        check(libc::mount(
                            source.as_ptr(),
                            target.as_ptr(),
                            null,
                            libc::MS_BIND | libc::MS_REC,
                            null.cast(),
                        ))?;
                        if *read_only {
                            let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
                            check(libc::mount(null, target.as_ptr(), null, flags, null.cast()))?;
                        }
                    }
                }
            }
            if let Some(dir) = &self.working_dir {
                check(libc::chdir(dir.as_ptr()))?;
            }
            // Cleared here, in the child, rather than in the parent: there the descriptor
            // must stay close-on-exec, or the control plane's processes (and any other
            // child) would hold the block too.
            if let Some(fd) = self.inherit_fd {
                check(libc::fcntl(fd, libc::F_SETFD, 0))?;
            }
        }
        Ok(())
    }
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_of_a_path() {
        let got = path_prefixes(Path::new("/var/run/secrets"));
        let want: Vec<PathBuf> = ["/var", "/var/run", "/var/run/secrets"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(got, want);
        assert!(path_prefixes(Path::new("/")).is_empty());
    }

    #[test]
    fn programs_resolve_through_path() {
        assert_eq!(resolve_program("/x/y", ""), Some(PathBuf::from("/x/y")));
        let sh = resolve_program("sh", "/nonexistent:/usr/bin:/bin").expect("sh on PATH");
        assert!(sh.ends_with("sh"));
        assert_eq!(
            resolve_program("no-such-binary-kubesim", "/usr/bin:/bin"),
            None
        );
        assert_eq!(resolve_program("", "/usr/bin"), None);
    }

    #[test]
    fn a_volume_over_the_program_is_refused_before_anything_starts() {
        // The CI checkout lives under /check; a ConfigMap mounted at /check hid the image's
        // python and the pod failed with an empty log.
        let mounts = [MountPlan {
            host_path: PathBuf::from("/nonexistent-volume"),
            container_path: PathBuf::from("check"),
            read_only: true,
        }];
        let argv = ["/check/work/main/e2e/.venv/bin/python".to_owned()];
        let spec = ProcessSpec {
            argv: &argv,
            env: &[],
            working_dir: None,
            mounts: &mounts,
            hosts_file: Path::new("/etc/hosts"),
            inherit_fd: None,
            cgroup_procs: None,
            output: Output::Discard,
        };
        let err = spawn(&spec).expect_err("must be refused");
        assert_eq!(
            err.to_string(),
            "the volume mounted at /check would hide the program \
             /check/work/main/e2e/.venv/bin/python (kubesim shares the host's filesystem): \
             mount it elsewhere"
        );
    }

    #[test]
    fn containers_get_a_path_and_nothing_else_from_the_host() {
        let env = container_env(&[("A".to_owned(), "1".to_owned())]);
        assert_eq!(env.len(), 2);
        assert_eq!(env[1].0, "PATH");
        let env = container_env(&[("PATH".to_owned(), "/bin".to_owned())]);
        assert_eq!(env, vec![("PATH".to_owned(), "/bin".to_owned())]);
    }
}
