//! One persistent-recursive watch on the root, fanned out to every blocking read, event
//! stream and rendered file of the sidecar.
//!
//! Readers follow one rule: subscribe, read, then look at what arrived meanwhile. A
//! relevant change that arrived while the read was in flight means the read may be torn
//! (a mix of before and after), so it is done again; a read during which nothing
//! relevant arrived is a consistent view. That holds because ZooKeeper delivers a watch
//! event before any reply that reflects the change, and [`Hub::pump`] forwards whatever
//! the session has already delivered before the reader looks (no task hop in between).
//!
//! Session transitions are events too (`Reset`): persistent watches do not replay what
//! happened while disconnected, so everyone reads again after a reconnect.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use futures_util::Stream;
use paddock_client::{SessionStates, WatchStream};
use tokio::sync::{Notify, broadcast};

/// What readers are told.
#[derive(Debug, Clone)]
pub enum Change {
    /// A node changed (created, deleted or written).
    Node { path: Arc<str>, at: Instant },
    /// Anything may have changed: the session moved (reconnect, expiry) or a reader fell
    /// behind.
    Reset,
}

/// Which changes matter to a reader.
#[derive(Debug, Clone)]
pub enum Filter {
    /// A node and everything under it.
    Subtree(String),
}

impl Filter {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Filter::Subtree(root) => {
                path == root
                    || (path.len() > root.len()
                        && path.starts_with(root.as_str())
                        && (root == "/" || path.as_bytes().get(root.len()) == Some(&b'/')))
            }
        }
    }
}

struct Feed {
    watch: WatchStream,
    states: SessionStates,
    generation: u64,
}

pub struct Hub {
    feed: Mutex<Option<Feed>>,
    tx: broadcast::Sender<Change>,
    /// Tells the background pump to poll again with its own waker (a reader's pump
    /// polls with a no-op waker, which replaces the pump's registration).
    repoll: Notify,
    /// The one background pump (of the current feed).
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        let (tx, _) = broadcast::channel(4096);
        Arc::new(Hub {
            feed: Mutex::new(None),
            tx,
            repoll: Notify::new(),
            task: Mutex::new(None),
        })
    }

    pub fn subscribe(&self) -> Subscription {
        Subscription {
            rx: self.tx.subscribe(),
            first_at: None,
        }
    }

    /// Starts fanning out the watch (and session transitions) of a new session.
    pub fn attach(self: &Arc<Self>, watch: WatchStream, states: SessionStates, generation: u64) {
        if let Ok(mut feed) = self.feed.lock() {
            *feed = Some(Feed {
                watch,
                states,
                generation,
            });
        }
        let _ = self.tx.send(Change::Reset);
        let hub = self.clone();
        let task = tokio::spawn(async move {
            loop {
                let drained = std::future::poll_fn(|cx| hub.drain(cx, Some(generation)));
                tokio::select! {
                    () = drained => return,
                    () = hub.repoll.notified() => {}
                }
            }
        });
        if let Ok(mut slot) = self.task.lock()
            && let Some(old) = slot.replace(task.abort_handle())
        {
            old.abort();
        }
    }

    /// Stops the current feed (the session is over).
    pub fn detach(&self) {
        if let Ok(mut feed) = self.feed.lock() {
            *feed = None;
        }
        if let Ok(mut slot) = self.task.lock()
            && let Some(old) = slot.take()
        {
            old.abort();
        }
        let _ = self.tx.send(Change::Reset);
    }

    /// Forwards everything the session has delivered so far, now.
    pub fn pump(&self) {
        let mut cx = Context::from_waker(Waker::noop());
        let _ = self.drain(&mut cx, None);
        self.repoll.notify_one();
    }

    /// Forwards what is ready; `Ready` once the feed of `generation` is gone.
    fn drain(&self, cx: &mut Context<'_>, generation: Option<u64>) -> Poll<()> {
        let Ok(mut guard) = self.feed.lock() else {
            return Poll::Ready(());
        };
        let Some(feed) = guard.as_mut() else {
            return Poll::Ready(());
        };
        if generation.is_some_and(|g| g != feed.generation) {
            return Poll::Ready(());
        }
        let mut ended = false;
        while let Poll::Ready(Some(_)) = Pin::new(&mut feed.states).poll_next(cx) {
            let _ = self.tx.send(Change::Reset);
        }
        loop {
            match Pin::new(&mut feed.watch).poll_next(cx) {
                Poll::Ready(Some(event)) => {
                    let _ = self.tx.send(Change::Node {
                        path: Arc::from(event.path.as_str()),
                        at: Instant::now(),
                    });
                }
                Poll::Ready(None) => {
                    ended = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        if ended {
            // The watch ends only with the session.
            *guard = None;
            let _ = self.tx.send(Change::Reset);
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

/// A reader's view of the hub.
pub struct Subscription {
    rx: broadcast::Receiver<Change>,
    /// When the first relevant change not yet accounted for arrived (for the watch-lag
    /// metric).
    first_at: Option<Instant>,
}

impl Subscription {
    /// Whether a relevant change is waiting; consumes everything waiting.
    pub fn drain_relevant(&mut self, filter: &Filter) -> bool {
        let mut hit = false;
        loop {
            match self.rx.try_recv() {
                Ok(change) => hit |= self.relevant(&change, filter),
                Err(broadcast::error::TryRecvError::Empty) => return hit,
                Err(broadcast::error::TryRecvError::Lagged(_)) => hit = true,
                Err(broadcast::error::TryRecvError::Closed) => return true,
            }
        }
    }

    /// Waits for the next relevant change.
    pub async fn next_relevant(&mut self, filter: &Filter) {
        loop {
            match self.rx.recv().await {
                Ok(change) => {
                    if self.relevant(&change, filter) {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => return,
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }

    /// When the oldest change not yet shown to anyone arrived; resets it.
    pub fn take_first_at(&mut self) -> Option<Instant> {
        self.first_at.take()
    }

    fn relevant(&mut self, change: &Change, filter: &Filter) -> bool {
        match change {
            Change::Reset => true,
            Change::Node { path, at } => {
                let hit = filter.matches(path);
                if hit && self.first_at.is_none() {
                    self.first_at = Some(*at);
                }
                hit
            }
        }
    }
}

/// A read and the subscription that was open while it ran.
pub struct Loaded<T> {
    pub value: T,
    pub index: i64,
    /// Nothing relevant changed while reading: the value is one point in time.
    pub consistent: bool,
    pub sub: Subscription,
}

/// How many times a read is repeated because changes kept arriving while it ran.
const TORN_RETRIES: usize = 4;

/// Reads until the read is consistent (or gives up after a few tries and says so).
pub async fn load_consistent<T, E, F, Fut>(
    hub: &Hub,
    filter: &Filter,
    mut load: F,
) -> Result<Loaded<T>, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(T, i64), E>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        hub.pump();
        let mut sub = hub.subscribe();
        let (value, index) = load().await?;
        hub.pump();
        let torn = sub.drain_relevant(filter);
        if !torn || attempt >= TORN_RETRIES {
            return Ok(Loaded {
                value,
                index,
                consistent: !torn,
                sub,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtree_filters() {
        let f = Filter::Subtree("/p/config/a".into());
        assert!(f.matches("/p/config/a"));
        assert!(f.matches("/p/config/a/b"));
        assert!(!f.matches("/p/config/ab"));
        assert!(!f.matches("/p/config"));
        let all = Filter::Subtree("/".into());
        assert!(all.matches("/x"));
    }

    #[tokio::test]
    async fn subscriptions_see_relevant_changes_only() {
        let hub = Hub::new();
        let mut sub = hub.subscribe();
        let f = Filter::Subtree("/a".into());
        let _ = hub.tx.send(Change::Node {
            path: Arc::from("/b"),
            at: Instant::now(),
        });
        assert!(!sub.drain_relevant(&f));
        let _ = hub.tx.send(Change::Node {
            path: Arc::from("/a/x"),
            at: Instant::now(),
        });
        assert!(sub.drain_relevant(&f));
        assert!(sub.take_first_at().is_some());
        let _ = hub.tx.send(Change::Reset);
        tokio::time::timeout(std::time::Duration::from_secs(1), sub.next_relevant(&f))
            .await
            .expect("reset is relevant");
    }
}
