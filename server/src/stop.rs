//! What a server does when it is asked to stop (SIGTERM, Ctrl-C).
//!
//! A leader that simply exits costs the ensemble an election: the followers notice the
//! silence only after syncLimit, then vote. In Kubernetes every `kubectl delete pod`, node
//! drain or eviction that bypasses the operator sends SIGTERM, so a leader first hands
//! leadership to a synced follower (the `/leadership/transfer` machinery) and exits once
//! it follows the new leader, or when a bound passes, well inside a pod's grace period.
//! A follower, an observer or a standalone server stops at once, as before.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::core::{Core, CoreMsg, InternalTx};
use crate::zab::{Role, Sid};

/// How long a stopping leader waits for its handoff before it exits anyway.
pub const HANDOFF_BOUND: Duration = Duration::from_secs(5);
/// How often the handoff's progress is checked.
const POLL: Duration = Duration::from_millis(10);

/// How a stop went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandOff {
    /// Not a leader of an ensemble: nothing to hand off.
    NotLeader,
    /// A leader with no synced follower to take over (or the core refused): `reason`.
    Refused(String),
    /// Leadership moved to `to`, and this server follows it (synced) after `took`.
    Done { to: Sid, took: Duration },
    /// The handoff did not complete within the bound.
    TimedOut { to: Sid, role: String },
}

/// Whether a handoff to `to` is complete for a stopping leader now in `role`: it no
/// longer leads and has synced with the new leader, which therefore has left discovery
/// with a quorum (so stopping now does not stall the new leader's first writes).
pub fn handoff_complete(role: Role) -> bool {
    match role {
        Role::Follower { synced, .. } | Role::Observer { synced, .. } => synced,
        // Another leader took over and we are looking: leadership has left us, but the
        // new leader may still be establishing; keep waiting for it (within the bound).
        Role::Looking | Role::LeaderElect | Role::Leader => false,
    }
}

/// Runs `f` on the core thread; `None` if the core has stopped.
async fn ask<T: Send + 'static>(
    internal: &InternalTx,
    f: impl FnOnce(&mut Core) -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    internal
        .send(CoreMsg::Query(Box::new(move |core| {
            let _ = tx.send(f(core));
        })))
        .ok()?;
    rx.await.ok()
}

/// If this server leads an ensemble, hands leadership off and waits (at most `bound`)
/// until it follows the new leader. Logs what it did.
pub async fn hand_off_leadership(internal: &InternalTx, bound: Duration) -> HandOff {
    let started = Instant::now();
    let asked = ask(internal, |core| {
        if !core.is_distributed() || core.role() != Role::Leader {
            return None;
        }
        Some(core.transfer_leadership(None))
    })
    .await
    .flatten();
    let to = match asked {
        None => return HandOff::NotLeader,
        Some(Err(reason)) => {
            warn!(%reason, "stopping leader cannot hand off leadership; exiting without a handoff");
            return HandOff::Refused(reason);
        }
        Some(Ok(to)) => to,
    };
    info!(
        to,
        bound_ms = bound.as_millis() as u64,
        "stopping: handing leadership off first"
    );
    let mut role = Role::Leader;
    while started.elapsed() < bound {
        match ask(internal, |core| core.role()).await {
            Some(now) => role = now,
            None => break,
        }
        if handoff_complete(role) {
            let took = started.elapsed();
            info!(
                to,
                took_ms = took.as_millis() as u64,
                "leadership handed off; stopping"
            );
            return HandOff::Done { to, took };
        }
        tokio::time::sleep(POLL).await;
    }
    let role = format!("{role:?}");
    warn!(to, %role, bound_ms = bound.as_millis() as u64, "leadership handoff did not complete in time; stopping anyway");
    HandOff::TimedOut { to, role }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handoff_is_complete_once_the_old_leader_follows_in_sync() {
        assert!(!handoff_complete(Role::Leader));
        assert!(!handoff_complete(Role::LeaderElect));
        assert!(!handoff_complete(Role::Looking));
        assert!(!handoff_complete(Role::Follower {
            leader: 2,
            synced: false
        }));
        assert!(handoff_complete(Role::Follower {
            leader: 2,
            synced: true
        }));
        assert!(handoff_complete(Role::Observer {
            leader: 2,
            synced: true
        }));
    }
}
