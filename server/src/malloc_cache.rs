//! A larger per-thread cache in glibc's malloc, set by re-executing the server once.
//!
//! glibc keeps up to 7 freed chunks of each size in a per-thread cache (tcache); past
//! that a free and the next malloc take the allocator's slow paths (bins, consolidation).
//! The core applies a whole group commit at once: it allocates, then frees, the buffers
//! of a hundred requests in a burst, and 7 is far too few. Alternating runs on the bench
//! machine (one server, 16 sessions × 8 in flight; bench/RESULTS.md): with 256,
//! create-delete 159k/147k → 184k/178k a second at less CPU, setData within the noise;
//! 2000 did no better for create-delete but held ~20 MiB more after a million creates,
//! past the memory target (300 bytes a znode). Other allocators that cache more
//! (mimalloc, tried twice) cost that target too.
//!
//! The count can only be set through the `GLIBC_TUNABLES` environment variable, which
//! glibc reads once, before `main`. So the server, first thing in `main` and while it is
//! the only thread, executes itself again (same pid, same arguments) with the variable
//! set; the second start finds it set and goes on. A `glibc.malloc.tcache_count` the
//! user set is kept as it is (`glibc.malloc.tcache_count=7` restores glibc's default);
//! any other tunables are kept beside ours. If the re-execution fails the server runs on
//! with glibc's default, and says so.

/// The tcache entries per size class the server asks glibc for.
pub const TCACHE_COUNT: u32 = 256;

const TUNABLES: &str = "GLIBC_TUNABLES";
const TCACHE_COUNT_KEY: &str = "glibc.malloc.tcache_count";

/// The `GLIBC_TUNABLES` value to run with, given the current one; `None` when it already
/// sets the tcache count (nothing to do).
pub fn tunables_with_tcache(current: Option<&str>) -> Option<String> {
    let ours = format!("{TCACHE_COUNT_KEY}={TCACHE_COUNT}");
    match current {
        None => Some(ours),
        Some(current) if current.trim().is_empty() => Some(ours),
        Some(current) => {
            let sets_it = current
                .split(':')
                .any(|t| t.split('=').next() == Some(TCACHE_COUNT_KEY));
            (!sets_it).then(|| format!("{current}:{ours}"))
        }
    }
}

/// Re-executes this process with the tcache count set, unless it is set already or this
/// is not glibc. Returns only when no re-execution happened: `Err` says why it failed,
/// for the caller to log once logging is up. Call it first in `main`, before any thread
/// starts.
pub fn reexec_with_tcache() -> Result<(), String> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;

        let current = std::env::var(TUNABLES).ok();
        let Some(tunables) = tunables_with_tcache(current.as_deref()) else {
            return Ok(());
        };
        // The binary's own path, not /proc/self/exe: the process is named after the file
        // it executes, and `pkill paddock-server` must still find it.
        let exe = std::env::current_exe()
            .map_err(|e| format!("could not find this binary to re-execute it: {e}"))?;
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
        let error = std::process::Command::new(&exe)
            .arg0(arg0)
            .args(args)
            .env(TUNABLES, tunables)
            .exec();
        Err(format!(
            "could not re-execute with {TCACHE_COUNT_KEY}={TCACHE_COUNT} ({error}); \
             running with glibc's default malloc cache"
        ))
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tcache_count_is_added_unless_the_user_set_it() {
        let ours = format!("glibc.malloc.tcache_count={TCACHE_COUNT}");
        assert_eq!(tunables_with_tcache(None), Some(ours.clone()));
        assert_eq!(tunables_with_tcache(Some("")), Some(ours.clone()));
        assert_eq!(
            tunables_with_tcache(Some("glibc.malloc.mxfast=160")),
            Some(format!("glibc.malloc.mxfast=160:{ours}"))
        );
        // The user's own count wins, whatever it is and wherever it stands.
        assert_eq!(
            tunables_with_tcache(Some("glibc.malloc.tcache_count=7")),
            None
        );
        assert_eq!(
            tunables_with_tcache(Some(&format!("glibc.malloc.mxfast=160:{ours}"))),
            None
        );
        // A key that only starts like ours is another key.
        assert_eq!(
            tunables_with_tcache(Some("glibc.malloc.tcache_count_x=1")),
            Some(format!("glibc.malloc.tcache_count_x=1:{ours}"))
        );
    }
}
