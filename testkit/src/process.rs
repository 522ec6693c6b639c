//! A binary started by a test as a child process: stdin and stdout closed, stderr read
//! line by line into a [`Log`] (ANSI escapes stripped), ready once a line says so (a
//! "listening" line, parsed by the caller), and killed when dropped.
//!
//! Signals and kills go to the child's own pid, and only while it is ours to signal: once
//! it has been reaped (its pid may belong to another process by then) nothing is sent.
//! For a child that must not outlive the test binary even if the binary dies, add
//! [`crate::watchdog::kill_after_exit`].

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// What one or more processes wrote to stderr, a line at a time, shared by the threads
/// that read it and the test. Runs of one server (restarts) may share one log; a file
/// can get a copy of each line (kept when the test's directory is).
#[derive(Clone, Default)]
pub struct Log {
    text: Arc<Mutex<String>>,
    file: Option<Arc<Mutex<File>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking reader thread leaves the text as it was: still worth reading.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Log {
    /// An empty log, in memory only.
    pub fn new() -> Log {
        Log::default()
    }

    /// An empty log that also writes each line to `path` (created, or truncated).
    pub fn with_file(path: &Path) -> Log {
        let file = File::create(path)
            .unwrap_or_else(|e| panic!("create the log file {}: {e}", path.display()));
        Log {
            text: Arc::default(),
            file: Some(Arc::new(Mutex::new(file))),
        }
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        lock(&self.text).clone()
    }

    /// Appends one line (e.g. a marker between two runs of a server).
    pub fn push_line(&self, line: &str) {
        {
            let mut text = lock(&self.text);
            text.push_str(line);
            text.push('\n');
        }
        if let Some(file) = &self.file {
            let _ = writeln!(lock(file), "{line}");
        }
    }

    /// Whether a line contains every one of `needles`.
    pub fn has_line_with(&self, needles: &[&str]) -> bool {
        lock(&self.text)
            .lines()
            .any(|l| needles.iter().all(|n| l.contains(n)))
    }

    /// Prints the log to stderr (which the test harness shows with the failure) when
    /// the current thread is panicking: for `Drop` impls of what owns the log.
    pub fn print_if_panicking(&self, title: &str) {
        if std::thread::panicking() {
            eprintln!("--- {title} ---\n{}", self.text());
        }
    }
}

/// Why [`Process::wait_ready`] gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// The process exited first.
    Exited(ExitStatus),
    /// No ready line within this time.
    Timeout(Duration),
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::Exited(status) => write!(f, "exited with {status} before it was ready"),
            NotReady::Timeout(limit) => write!(f, "no ready line within {limit:?}"),
        }
    }
}

/// The value parsed from a process's ready line, once that line comes: see
/// [`Process::wait_ready`].
pub struct Ready<T>(mpsc::Receiver<T>);

/// A child process of the test; dropping it kills it (SIGKILL) and reaps it. Every
/// method takes `&self`: the child sits behind a lock, so that checking whether it has
/// been reaped and signalling it are one step.
pub struct Process {
    child: Mutex<Child>,
    pid: u32,
    name: String,
    log: Log,
}

impl Process {
    /// Starts `cmd` with stdin and stdout closed, `NO_COLOR=1`, and stderr read into
    /// `log` by a thread of its own; the first line for which `ready` gives a value sends
    /// that value to the returned [`Ready`]. `name` names the process in messages.
    pub fn spawn<T, F>(
        name: &str,
        mut cmd: Command,
        log: &Log,
        mut ready: F,
    ) -> std::io::Result<(Process, Ready<T>)>
    where
        T: Send + 'static,
        F: FnMut(&str) -> Option<T> + Send + 'static,
    {
        let mut child = cmd
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let (tx, rx) = mpsc::channel();
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut sent = false;
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let line = strip_ansi(&line);
                    if !sent && let Some(v) = ready(&line) {
                        let _ = tx.send(v);
                        sent = true;
                    }
                    log.push_line(&line);
                }
            });
        }
        let process = Process {
            pid: child.id(),
            child: Mutex::new(child),
            name: name.to_string(),
            log: log.clone(),
        };
        Ok((process, Ready(rx)))
    }

    /// [`Process::spawn`], then [`Process::wait_ready`] for up to `limit`; panics with
    /// the reason and the log when the process does not get ready.
    pub fn start<T, F>(
        name: &str,
        cmd: Command,
        log: &Log,
        limit: Duration,
        ready: F,
    ) -> (Process, T)
    where
        T: Send + 'static,
        F: FnMut(&str) -> Option<T> + Send + 'static,
    {
        let (process, rx) =
            Process::spawn(name, cmd, log, ready).unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        match process.wait_ready(rx, limit) {
            Ok(v) => (process, v),
            Err(e) => panic!("{name} did not start: {e}\n--- log ---\n{}", process.log()),
        }
    }

    /// Waits (blocking the thread, at most `limit`) for the ready line's value. Gives up
    /// early when the process exits. The process keeps running either way (dropping it
    /// kills it).
    pub fn wait_ready<T>(&self, ready: Ready<T>, limit: Duration) -> Result<T, NotReady> {
        let deadline = Instant::now() + limit;
        loop {
            let disconnected = match ready.0.recv_timeout(Duration::from_millis(50)) {
                Ok(v) => return Ok(v),
                Err(e) => e == RecvTimeoutError::Disconnected,
            };
            if let Some(status) = self.exited() {
                // Let the reader thread take what the process wrote last; the ready line
                // may be among it.
                std::thread::sleep(Duration::from_millis(100));
                return ready.0.try_recv().map_err(|_| NotReady::Exited(status));
            }
            if Instant::now() >= deadline {
                return Err(NotReady::Timeout(limit));
            }
            if disconnected {
                // stderr is closed: the process is exiting, `exited` will say so soon.
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// The name given at [`Process::spawn`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's pid (also after it exited: do not signal it then).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Everything in the process's log (of every run that shares it).
    pub fn log(&self) -> String {
        self.log.text()
    }

    /// The process's exit status once it has exited (reaping it), None while it runs.
    pub fn exited(&self) -> Option<ExitStatus> {
        lock(&self.child).try_wait().ok().flatten()
    }

    /// Whether the process still runs.
    pub fn is_alive(&self) -> bool {
        matches!(lock(&self.child).try_wait(), Ok(None))
    }

    /// Sends `sig` (`libc::SIGSTOP`, `SIGCONT`, `SIGTERM`, ...) to the process. Panics
    /// when it has exited already (nothing is sent then: once reaped, its pid may be
    /// another process's), or when kill(2) fails.
    pub fn signal(&self, sig: i32) {
        let mut child = lock(&self.child);
        if let Ok(Some(status)) = child.try_wait() {
            drop(child);
            panic!(
                "signal {sig} to {}: it has exited already ({status})\n--- log ---\n{}",
                self.name,
                self.log()
            );
        }
        // Not reaped, and nobody can reap it while we hold the lock: the pid is still
        // this child's (a zombie's at worst), so the signal cannot reach another process.
        let pid = self.pid as libc::pid_t;
        // SAFETY: kill(2) takes plain integers; no memory is involved.
        let rc = unsafe { libc::kill(pid, sig) };
        if rc != 0 {
            panic!(
                "kill({pid}, {sig}) for {}: {}",
                self.name,
                std::io::Error::last_os_error()
            );
        }
    }

    /// SIGKILL (unless it has exited already) and reap; the exit status.
    pub fn kill9(&self) -> ExitStatus {
        let mut child = lock(&self.child);
        // std sends nothing to a child it has reaped already.
        let _ = child.kill();
        match child.wait() {
            Ok(status) => status,
            Err(e) => panic!("reap {} (pid {}): {e}", self.name, self.pid()),
        }
    }

    /// Waits (at most `limit`) for the process to exit by itself and reaps it; its exit
    /// status. Panics with the log when it still runs then.
    pub async fn wait_exit(&self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} did not exit within {limit:?}\n--- log ---\n{}",
                    self.name,
                    self.log()
                );
            }
            tokio::time::sleep(crate::wait::POLL).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(PoisonError::into_inner);
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The address after `key` (up to the next whitespace) on a line that contains
/// `marker`, e.g. `logged_addr(line, "paddock-server listening", "client=")`.
pub fn logged_addr(line: &str, marker: &str, key: &str) -> Option<SocketAddr> {
    if !line.contains(marker) {
        return None;
    }
    let rest = &line[line.find(key)? + key.len()..];
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// `line` without ANSI CSI sequences (colours), should a process colour its log anyway.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn ready_line_value_and_log() {
        let log = Log::new();
        let (p, port) = Process::start(
            "sh",
            sh("echo starting >&2; printf '\\033[32mready\\033[0m port=4242 x\\n' >&2; sleep 30"),
            &log,
            Duration::from_secs(10),
            |l| {
                l.strip_prefix("ready port=")?
                    .split_whitespace()
                    .next()?
                    .parse::<u16>()
                    .ok()
            },
        );
        assert_eq!(port, 4242);
        assert!(p.is_alive());
        assert!(log.has_line_with(&["starting"]));
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(p.kill9().signal(), Some(9));
        assert!(!p.is_alive());
    }

    #[test]
    #[should_panic(expected = "it has exited already")]
    fn no_signal_once_reaped() {
        let (p, _) =
            Process::spawn("sh", sh("exit 0"), &Log::new(), |_| None::<()>).expect("spawn sh");
        p.kill9();
        p.signal(libc::SIGTERM);
    }

    #[test]
    fn exit_before_ready_is_reported() {
        let log = Log::new();
        let (p, ready) = Process::spawn(
            "sh",
            sh("echo bad config >&2; exit 3"),
            &log,
            |_| None::<()>,
        )
        .expect("spawn sh");
        match p.wait_ready(ready, Duration::from_secs(10)) {
            Err(NotReady::Exited(status)) => assert_eq!(status.code(), Some(3)),
            other => panic!("{other:?}"),
        }
        assert!(p.log().contains("bad config"));
    }

    #[test]
    fn logged_addr_parses_the_field() {
        let line = "INFO paddock-server listening client=127.0.0.5:2181 admin=127.0.0.5:8080";
        assert_eq!(
            logged_addr(line, "paddock-server listening", "client="),
            Some("127.0.0.5:2181".parse().unwrap())
        );
        assert_eq!(logged_addr(line, "sidecar listening", "client="), None);
    }
}
