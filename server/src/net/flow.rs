//! Back-pressure on the client port: a connection stops being read while it has too many
//! requests outstanding (its own cap, or the server's `globalOutstandingLimit`), or while
//! too many bytes of replies wait for the client to read them. Nothing is refused: the
//! client's own socket buffer fills and it waits, as with ZooKeeper's throttling.
//!
//! A request is outstanding from the moment the reader hands it to the core until the
//! writer takes its reply off the connection's queue; queued bytes are encoded replies
//! (and notifications) not yet written to the socket.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// The client port's flow limits.
#[derive(Debug, Clone, Copy)]
pub struct FlowLimits {
    /// globalOutstandingLimit: outstanding requests over all connections.
    pub global_outstanding: usize,
    /// paddock.connOutstandingLimit: outstanding requests of one connection.
    pub conn_outstanding: usize,
    /// paddock.connQueuedReplyBytes: reply bytes one connection may have waiting.
    pub conn_queued_bytes: usize,
}

/// Outstanding requests over all connections.
#[derive(Debug, Default)]
pub struct GlobalFlow {
    outstanding: AtomicUsize,
    /// Woken when the count drops, for connections waiting on the global cap.
    drained: Notify,
}

impl GlobalFlow {
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Acquire)
    }
}

/// One connection's counters, shared by its reader and writer.
#[derive(Debug)]
pub struct ConnFlow {
    outstanding: AtomicUsize,
    queued_bytes: AtomicUsize,
    /// Woken when this connection's counters drop.
    drained: Notify,
    global: Arc<GlobalFlow>,
    limits: FlowLimits,
}

/// Why a connection is not read now (pure: decided from the counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    Read,
    ConnOutstanding,
    GlobalOutstanding,
    QueuedBytes,
}

pub fn decide(limits: &FlowLimits, conn: usize, global: usize, queued: usize) -> Hold {
    if conn >= limits.conn_outstanding {
        Hold::ConnOutstanding
    } else if queued >= limits.conn_queued_bytes {
        Hold::QueuedBytes
    } else if global >= limits.global_outstanding {
        Hold::GlobalOutstanding
    } else {
        Hold::Read
    }
}

impl ConnFlow {
    pub fn new(global: Arc<GlobalFlow>, limits: FlowLimits) -> ConnFlow {
        ConnFlow {
            outstanding: AtomicUsize::new(0),
            queued_bytes: AtomicUsize::new(0),
            drained: Notify::new(),
            global,
            limits,
        }
    }

    fn hold(&self) -> Hold {
        decide(
            &self.limits,
            self.outstanding.load(Ordering::Acquire),
            self.global.outstanding(),
            self.queued_bytes.load(Ordering::Acquire),
        )
    }

    /// Returns once the connection may be read again (at once, usually).
    pub async fn wait_until_readable(&self) {
        loop {
            // Register for wake-ups before looking, so a drop in between is not missed.
            let own = self.drained.notified();
            let global = self.global.drained.notified();
            tokio::pin!(own, global);
            own.as_mut().enable();
            global.as_mut().enable();
            match self.hold() {
                Hold::Read => return,
                Hold::GlobalOutstanding => {
                    tokio::select! {
                        _ = own => {}
                        _ = global => {}
                    }
                }
                Hold::ConnOutstanding | Hold::QueuedBytes => own.await,
            }
        }
    }

    /// A request was handed to the core.
    pub fn submitted(&self) {
        self.outstanding.fetch_add(1, Ordering::AcqRel);
        self.global.outstanding.fetch_add(1, Ordering::AcqRel);
    }

    /// The reply to one outstanding request was taken off the queue.
    pub fn answered(&self) {
        let took = self
            .outstanding
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if took {
            self.release_global(1);
        }
        self.drained.notify_waiters();
    }

    pub fn queued(&self, bytes: usize) {
        self.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
    }

    /// `bytes` of queued replies reached the socket.
    pub fn written(&self, bytes: usize) {
        let _ = self
            .queued_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(bytes))
            });
        self.drained.notify_waiters();
    }

    fn release_global(&self, n: usize) {
        let before = self
            .global
            .outstanding
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |g| {
                Some(g.saturating_sub(n))
            })
            .unwrap_or(0);
        if before >= self.limits.global_outstanding && before - n < self.limits.global_outstanding {
            self.global.drained.notify_waiters();
        }
    }
}

impl Drop for ConnFlow {
    /// Replies that will never come no longer count against the server.
    fn drop(&mut self) {
        let left = self.outstanding.swap(0, Ordering::AcqRel);
        if left > 0 {
            self.release_global(left);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: FlowLimits = FlowLimits {
        global_outstanding: 10,
        conn_outstanding: 4,
        conn_queued_bytes: 100,
    };

    #[test]
    fn decide_names_the_first_cap_reached() {
        assert_eq!(decide(&LIMITS, 3, 9, 99), Hold::Read);
        assert_eq!(decide(&LIMITS, 4, 0, 0), Hold::ConnOutstanding);
        assert_eq!(decide(&LIMITS, 0, 10, 0), Hold::GlobalOutstanding);
        assert_eq!(decide(&LIMITS, 0, 0, 100), Hold::QueuedBytes);
    }

    #[test]
    fn counters_add_up_across_connections_and_closed_ones_release_theirs() {
        let global = Arc::new(GlobalFlow::default());
        let a = ConnFlow::new(global.clone(), LIMITS);
        let b = ConnFlow::new(global.clone(), LIMITS);
        for _ in 0..3 {
            a.submitted();
        }
        b.submitted();
        assert_eq!(global.outstanding(), 4);
        a.answered();
        assert_eq!(global.outstanding(), 3);
        // A reply that answers nothing outstanding does not go below zero.
        b.answered();
        b.answered();
        assert_eq!(global.outstanding(), 2);
        drop(a);
        assert_eq!(global.outstanding(), 0);
    }

    #[test]
    fn a_held_reader_resumes_when_the_writer_drains() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let flow = Arc::new(ConnFlow::new(Arc::new(GlobalFlow::default()), LIMITS));
            flow.queued(150);
            let waiter = tokio::spawn({
                let flow = flow.clone();
                async move { flow.wait_until_readable().await }
            });
            tokio::task::yield_now().await;
            assert!(!waiter.is_finished(), "held while 150 bytes wait");
            flow.written(100);
            tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
                .await
                .expect("resumed")
                .unwrap();
        });
    }
}
