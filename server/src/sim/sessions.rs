//! Sessions and ephemerals, checked once the nodes agree: the sessions every node holds
//! are exactly those of the clients still connected (an abandoned session expires, a
//! live one does not), every ephemeral belongs to a held session, and an acknowledged
//! ephemeral is there exactly while its session is.

use std::collections::BTreeSet;

use super::World;

/// The simulated clients' session timeout (their connect asks for it).
pub(super) const SESSION_TIMEOUT_MS: u64 = 4_000;

impl World {
    /// Runs past the session timeout (the leader gives every session a full timeout when
    /// it takes over), then checks at an instant when every client is connected.
    pub(super) fn settle_sessions(&mut self) -> Result<(), String> {
        self.run_until(self.now() + SESSION_TIMEOUT_MS + 1_000);
        let deadline = self.now() + 3_000;
        while self.now() < deadline && !self.every_client_connected() {
            self.run_until(self.now() + 1);
        }
        self.check_sessions()
    }

    fn every_client_connected(&self) -> bool {
        self.nodes
            .values()
            .flatten()
            .all(|n| n.client.as_ref().is_some_and(|c| c.session.is_some()))
    }

    /// The sessions of the clients connected now, and how many clients wait for theirs.
    fn live_sessions(&self) -> (BTreeSet<i64>, usize) {
        let mut live = BTreeSet::new();
        let mut pending = 0;
        for node in self.nodes.values().flatten() {
            match node.client.as_ref().map(|c| c.session) {
                Some(Some(session)) => {
                    live.insert(session);
                }
                Some(None) => pending += 1,
                None => {}
            }
        }
        if let Some(session) = self.admin_session() {
            live.insert(session);
        }
        (live, pending)
    }

    fn check_sessions(&self) -> Result<(), String> {
        let (live, pending) = self.live_sessions();
        for (id, node) in &self.nodes {
            let Some(node) = node else {
                return Err(format!("node {id} is down"));
            };
            let tree = node.core.tree();
            let held: BTreeSet<i64> = tree.sessions().keys().copied().collect();
            let expired: Vec<String> = live.difference(&held).map(|s| format!("{s:#x}")).collect();
            if !expired.is_empty() {
                return Err(format!(
                    "node {id} lost the live sessions {expired:?} (it holds {} sessions)",
                    held.len()
                ));
            }
            // Beyond the live ones, only the sessions of connects not yet answered.
            let extra: Vec<String> = held.difference(&live).map(|s| format!("{s:#x}")).collect();
            if extra.len() > pending {
                return Err(format!(
                    "node {id} still holds {} sessions no client uses ({extra:?}; {pending} \
                     connects pending) {} ms after the faults ended",
                    extra.len(),
                    SESSION_TIMEOUT_MS + 3_000
                ));
            }
            for (session, paths) in tree.ephemerals_by_session() {
                if !paths.is_empty() && !held.contains(session) {
                    return Err(format!(
                        "node {id}: ephemerals {paths:?} of session {session:#x}, which it does not hold"
                    ));
                }
            }
            for (path, session) in &self.acked_ephemerals {
                let present = tree.get(path).is_some();
                if present != held.contains(session) {
                    return Err(format!(
                        "node {id}: the acknowledged ephemeral {path} of session {session:#x} is {}, its session {}",
                        if present { "there" } else { "gone" },
                        if held.contains(session) {
                            "held"
                        } else {
                            "gone"
                        },
                    ));
                }
            }
        }
        Ok(())
    }
}
