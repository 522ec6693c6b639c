//! One line per peer message the simulator delivers, for replaying a failing seed:
//! `PADDOCK_SERVER_SIM_TRACE=1 RUST_LOG=paddock_server::sim::trace=trace
//! PADDOCK_SERVER_SIM_SEED=N cargo test -p paddock-server --lib <scenario>`. Payloads
//! are left out (their sizes stand in); zxids are in hex, as ZooKeeper logs them.

use crate::zab::{Message, Sid};

/// Logs the delivery of `msg` from `from` to `to` at simulated time `at_ms`.
pub(super) fn delivered(at_ms: u64, from: Sid, to: Sid, msg: &Message) {
    tracing::trace!(at_ms, from, to, "{}", brief(msg));
}

/// The message without its payload.
fn brief(msg: &Message) -> String {
    match msg {
        Message::Vote(n) => format!(
            "VOTE for {} (zxid {:#x}, epoch {}) round {} {:?}{}",
            n.vote.leader,
            n.vote.zxid,
            n.vote.epoch,
            n.round,
            n.state,
            if n.stands { "" } else { " (cannot lead)" }
        ),
        Message::FollowerInfo {
            accepted_epoch,
            last_zxid,
            observer,
        } => format!(
            "FOLLOWERINFO accepted epoch {accepted_epoch}, last {last_zxid:#x}{}",
            if *observer { " (observer)" } else { "" }
        ),
        Message::LeaderInfo { epoch } => format!("LEADERINFO epoch {epoch}"),
        Message::AckEpoch {
            current_epoch,
            last_zxid,
        } => format!("ACKEPOCH current epoch {current_epoch}, last {last_zxid:#x}"),
        Message::Diff { zxid } => format!("DIFF to {zxid:#x}"),
        Message::Trunc { zxid } => format!("TRUNC to {zxid:#x}"),
        Message::Snap { zxid, payload } => format!("SNAP at {zxid:#x} ({} B)", payload.len()),
        Message::Proposal {
            zxid,
            payload,
            config,
        } => format!(
            "PROPOSAL {zxid:#x} ({} B){}",
            payload.len(),
            if config.is_some() {
                " with a config"
            } else {
                ""
            }
        ),
        Message::Commit { zxid } => format!("COMMIT {zxid:#x}"),
        Message::Inform { zxid, payload, .. } => {
            format!("INFORM {zxid:#x} ({} B)", payload.len())
        }
        Message::NewLeader { zxid } => format!("NEWLEADER {zxid:#x}"),
        Message::Ack { zxid } => format!("ACK {zxid:#x}"),
        Message::UpToDate => "UPTODATE".to_string(),
        Message::Ping => "PING".to_string(),
        Message::App(payload) => format!("APP ({} B)", payload.len()),
        Message::Config { zxid, config } => {
            format!("CONFIG version {:#x} at {zxid:#x}", config.version)
        }
        Message::Transfer { to, zxid, epoch } => {
            format!("TRANSFER to {to} at {zxid:#x}, epoch {epoch}")
        }
    }
}
