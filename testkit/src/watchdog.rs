//! What must happen once this test binary is gone, even if it never got to do it: a
//! shared server kept in a static is never dropped, and a test binary killed by a
//! signal drops nothing. A watchdog is a shell that polls this process's pid and, once
//! the pid is gone, runs the cleanup.
//!
//! The time bound of a whole test is [`crate::rt::run_test`]'s; the processes a test
//! starts are killed when their [`crate::process::Process`] is dropped.

use std::process::{Command, Stdio};

/// How often a watchdog looks whether this process still runs, in seconds.
const POLL_SECONDS: &str = "0.5";

/// Runs `cleanup` (a shell command line) once this test binary has exited.
// The watchdog must outlive us, so nobody waits for it (init reaps it).
#[allow(clippy::zombie_processes)]
pub fn after_exit(cleanup: &str) {
    let me = std::process::id();
    let script =
        format!("while kill -0 {me} 2>/dev/null; do sleep {POLL_SECONDS}; done; {cleanup}");
    let spawned = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        panic!("spawn the watchdog that runs `{cleanup}` after this test binary: {e}");
    }
}

/// Kills `pid` (SIGKILL) once this test binary has exited, if it still runs then.
pub fn kill_after_exit(pid: u32) {
    after_exit(&kill_command(pid));
}

/// A shell command line that sends SIGKILL to `pid`, a child this test started and
/// that runs now, but only if that pid is still the same process when the command
/// runs (same start time in /proc): a pid reaped and reused by then is left alone.
pub fn kill_command(pid: u32) -> String {
    match start_time(pid) {
        Some(start) => format!(
            "[ \"$(sed 's/.*) //' /proc/{pid}/stat 2>/dev/null | cut -d' ' -f20)\" = {start} ] \
             && kill -9 {pid} 2>/dev/null"
        ),
        None => format!("kill -9 {pid} 2>/dev/null"),
    }
}

/// Field 22 of /proc/PID/stat (start time in clock ticks since boot), counted after the
/// command name, which may hold spaces and parentheses.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(") ")? + 2..];
    after_comm.split(' ').nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kill_command_names_the_process_by_pid_and_start_time() {
        let mut child = Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let cmd = kill_command(child.id());
        assert!(cmd.contains(&format!("kill -9 {}", child.id())), "{cmd}");
        assert!(cmd.contains("/proc/"), "guarded by the start time: {cmd}");
        // The guard matches the live process: the command kills it.
        let status = Command::new("sh")
            .args(["-c", &cmd])
            .status()
            .expect("run the kill command");
        assert!(status.success(), "{cmd}");
        let exit = child.wait().expect("reap sleep");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit.signal(), Some(9));
        // Once the pid is gone, the command does nothing (and says so by its status).
        let status = Command::new("sh")
            .args(["-c", &cmd])
            .status()
            .expect("run the kill command again");
        assert!(!status.success());
    }
}
