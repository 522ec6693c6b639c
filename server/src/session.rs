//! Session bookkeeping that is local to the server which owns expiry: deadlines in
//! tick-sized buckets (as ZooKeeper's ExpiryQueue), id generation and passwords.
//! The replicated part (which sessions exist, their timeouts) lives in the tree.

use std::collections::BTreeMap;

use crate::hashing::{FastMap, FastSet};

/// Tracks when each live session expires unless it is touched again.
#[derive(Debug)]
pub struct SessionTracker {
    bucket_ms: u64,
    buckets: BTreeMap<u64, FastSet<i64>>,
    deadlines: FastMap<i64, u64>,
    next_id: i64,
}

impl SessionTracker {
    /// `bucket_ms` is ZooKeeper's tickTime; `server_id` goes in the top byte of every id.
    pub fn new(bucket_ms: u64, server_id: u64, now_wall_ms: u64) -> SessionTracker {
        SessionTracker {
            bucket_ms: bucket_ms.max(1),
            buckets: BTreeMap::new(),
            deadlines: FastMap::default(),
            next_id: initial_session_id(server_id, now_wall_ms),
        }
    }

    /// A fresh session id, unique across restarts as long as the wall clock moves forward.
    pub fn next_session_id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    /// Moves a session's deadline to `now + timeout`, rounded up to the next bucket.
    pub fn touch(&mut self, session: i64, timeout_ms: i32, now_ms: u64) {
        let deadline =
            (now_ms + timeout_ms.max(0) as u64).div_ceil(self.bucket_ms) * self.bucket_ms;
        if let Some(old) = self.deadlines.insert(session, deadline) {
            if old == deadline {
                return;
            }
            self.unbucket(session, old);
        }
        self.buckets.entry(deadline).or_default().insert(session);
    }

    pub fn remove(&mut self, session: i64) {
        if let Some(old) = self.deadlines.remove(&session) {
            self.unbucket(session, old);
        }
    }

    fn unbucket(&mut self, session: i64, deadline: u64) {
        if let Some(set) = self.buckets.get_mut(&deadline) {
            set.remove(&session);
            if set.is_empty() {
                self.buckets.remove(&deadline);
            }
        }
    }

    /// The earliest deadline of any tracked session.
    pub fn first_deadline(&self) -> Option<u64> {
        self.buckets
            .first_key_value()
            .map(|(deadline, _)| *deadline)
    }

    /// Removes and returns every session whose deadline has passed.
    pub fn expire(&mut self, now_ms: u64) -> Vec<i64> {
        let mut expired = Vec::new();
        while let Some(entry) = self.buckets.first_entry() {
            if *entry.key() > now_ms {
                break;
            }
            let sessions = entry.remove();
            for s in sessions {
                self.deadlines.remove(&s);
                expired.push(s);
            }
        }
        expired.sort_unstable();
        expired
    }

    /// (deadline, session) pairs in deadline order.
    pub fn deadlines(&self) -> impl Iterator<Item = (u64, i64)> + '_ {
        self.buckets
            .iter()
            .flat_map(|(deadline, sessions)| sessions.iter().map(move |s| (*deadline, *s)))
    }

    pub fn is_tracked(&self, session: i64) -> bool {
        self.deadlines.contains_key(&session)
    }

    pub fn len(&self) -> usize {
        self.deadlines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.deadlines.is_empty()
    }
}

/// ZooKeeper's scheme: milliseconds in bits 55..8 below the server id in the top byte.
fn initial_session_id(server_id: u64, now_ms: u64) -> i64 {
    let time_part = (now_ms << 24) >> 8;
    (time_part | (server_id << 56)) as i64
}

/// The session password, computed exactly as ZooKeeper does
/// (`new java.util.Random(sessionId ^ superSecret).nextBytes(16)`), so that every replica
/// derives the same password without sharing state, and a session's password is the one
/// an Apache ZooKeeper server would have issued.
pub fn session_password(session: i64) -> Vec<u8> {
    const SUPER_SECRET: i64 = 0xB341_5C00;
    let mut rng = JavaRandom::new(session ^ SUPER_SECRET);
    let mut out = Vec::with_capacity(16);
    while out.len() < 16 {
        let mut word = rng.next_int();
        for _ in 0..(16 - out.len()).min(4) {
            out.push(word as u8);
            word >>= 8;
        }
    }
    out
}

/// java.util.Random's 48-bit linear congruential generator.
struct JavaRandom(i64);

impl JavaRandom {
    const MULTIPLIER: i64 = 0x5_DEEC_E66D;
    const MASK: i64 = (1 << 48) - 1;

    fn new(seed: i64) -> JavaRandom {
        JavaRandom((seed ^ Self::MULTIPLIER) & Self::MASK)
    }

    fn next_int(&mut self) -> i32 {
        self.0 = (self.0.wrapping_mul(Self::MULTIPLIER).wrapping_add(0xB)) & Self::MASK;
        (self.0 >> 16) as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_at_bucket_boundaries_and_touch_postpones() {
        let mut t = SessionTracker::new(2000, 1, 0);
        t.touch(1, 4000, 1000); // deadline 6000
        t.touch(2, 4000, 3500); // deadline 8000
        assert!(t.expire(5999).is_empty());
        t.touch(1, 4000, 5000); // postponed to 10000
        assert_eq!(t.expire(8000), vec![2]);
        assert_eq!(t.expire(9999), Vec::<i64>::new());
        assert_eq!(t.expire(10000), vec![1]);
        assert!(t.is_empty());
    }

    #[test]
    fn ids_carry_the_server_id_and_increase() {
        let mut t = SessionTracker::new(2000, 3, 1_700_000_000_000);
        let a = t.next_session_id();
        let b = t.next_session_id();
        assert_eq!((a as u64) >> 56, 3);
        assert_eq!(b, a + 1);
    }

    #[test]
    fn java_random_matches_the_jdk() {
        // new java.util.Random(0).nextInt() == -1155484576
        assert_eq!(JavaRandom::new(0).next_int(), -1155484576);
        // new java.util.Random(42).nextInt() == -1170105035
        assert_eq!(JavaRandom::new(42).next_int(), -1170105035);
        assert_eq!(session_password(5).len(), 16);
        assert_eq!(session_password(5), session_password(5));
        assert_ne!(session_password(5), session_password(6));
    }
}
