//! Watches as streams.
//!
//! ZooKeeper's semantics, as the Java client implements them (ZKWatchManager):
//! * a one-shot watch is registered locally only once the server answered the read that
//!   asked for it (getData/exists → data watch, exists on a missing node → exist watch,
//!   getChildren → child watch), and fires once;
//! * a persistent watch (addWatch) fires for every change of its node until removed; a
//!   persistent-recursive one also fires for descendants, but never with
//!   NodeChildrenChanged;
//! * the server sends one notification per connection, which fans out here to every
//!   local listener it concerns.
//!
//! Each listener is the sending half of a [`WatchStream`]. The stream ends when the
//! watch can fire no more: after the event of a one-shot watch, when the watch is
//! removed, or when the session ends. A dropped stream is pruned lazily and left out of
//! the watches re-registered after a reconnect.

use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};

use paddock_proto::{EventType, SetWatches2, WatcherEvent, WatcherType};
use tokio::sync::mpsc;

use crate::path::Chroot;

/// A change reported by a watch. `path` is as the client sees it (inside the chroot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedEvent {
    pub event_type: EventType,
    pub path: String,
}

/// The events of one watch. `next()` returns `None` once the watch can fire no more.
#[derive(Debug)]
pub struct WatchStream {
    rx: mpsc::UnboundedReceiver<WatchedEvent>,
}

impl WatchStream {
    /// The next event, or `None` when the watch is over (fired if one-shot, removed,
    /// or the session ended).
    pub async fn next(&mut self) -> Option<WatchedEvent> {
        self.rx.recv().await
    }

    /// An event that already arrived, without waiting.
    pub fn try_next(&mut self) -> Option<WatchedEvent> {
        self.rx.try_recv().ok()
    }
}

impl futures_core::Stream for WatchStream {
    type Item = WatchedEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchedEvent>> {
        self.rx.poll_recv(cx)
    }
}

pub(crate) type Listener = mpsc::UnboundedSender<WatchedEvent>;

pub(crate) fn channel() -> (Listener, WatchStream) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, WatchStream { rx })
}

/// Kinds of local watch registrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum WatchKind {
    Data,
    Exist,
    Child,
    Persistent,
    PersistentRecursive,
}

/// What to register once a watching request succeeds.
#[derive(Debug)]
pub(crate) struct PendingWatch {
    pub kind: PendingKind,
    /// Server path (chroot applied).
    pub path: String,
    pub listener: Listener,
}

/// The kind is decided by the request, and for exists also by its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PendingKind {
    /// getData: a data watch on success.
    Data,
    /// exists: a data watch if the node exists, an exist watch if not.
    Exists,
    /// getChildren: a child watch on success.
    Child,
    Persistent,
    PersistentRecursive,
}

impl PendingKind {
    /// The registration to make given whether the reply was a success or a NoNode.
    pub(crate) fn settle(self, found: bool) -> Option<WatchKind> {
        match (self, found) {
            (PendingKind::Data, true) => Some(WatchKind::Data),
            (PendingKind::Exists, true) => Some(WatchKind::Data),
            (PendingKind::Exists, false) => Some(WatchKind::Exist),
            (PendingKind::Child, true) => Some(WatchKind::Child),
            (PendingKind::Persistent, true) => Some(WatchKind::Persistent),
            (PendingKind::PersistentRecursive, true) => Some(WatchKind::PersistentRecursive),
            _ => None,
        }
    }
}

/// Every live watch of a session, keyed by server path.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    by_kind: HashMap<WatchKind, HashMap<String, Vec<Listener>>>,
}

/// setWatches packets are split so that none grows past this many bytes of paths
/// (ZooKeeper's client uses the same 128 KiB bound).
const SET_WATCHES_MAX_BYTES: usize = 128 * 1024;

impl Registry {
    pub(crate) fn add(&mut self, kind: WatchKind, path: String, listener: Listener) {
        self.by_kind
            .entry(kind)
            .or_default()
            .entry(path)
            .or_default()
            .push(listener);
    }

    /// Delivers a notification to every listener it concerns, dropping one-shot
    /// registrations it consumes.
    pub(crate) fn dispatch(&mut self, event: &WatcherEvent, chroot: &Chroot) {
        let Some(event_type) = EventType::from_code(event.kind) else {
            tracing::warn!(kind = event.kind, path = %event.path, "ignoring a watch event of unknown type");
            return;
        };
        if event_type == EventType::None {
            return; // a state notification; session states have their own stream
        }
        let Some(client_path) = chroot.to_client(&event.path) else {
            return; // outside our chroot: not ours
        };
        let delivered = WatchedEvent {
            event_type,
            path: client_path,
        };
        let path = event.path.as_str();
        let mut targets: Vec<Listener> = Vec::new();
        let mut take = |kind: WatchKind| {
            if let Some(listeners) = self.by_kind.get_mut(&kind).and_then(|m| m.remove(path)) {
                targets.extend(listeners);
            }
        };
        match event_type {
            EventType::NodeCreated | EventType::NodeDataChanged => {
                take(WatchKind::Data);
                take(WatchKind::Exist);
            }
            EventType::NodeDeleted => {
                take(WatchKind::Data);
                take(WatchKind::Exist);
                take(WatchKind::Child);
            }
            EventType::NodeChildrenChanged => take(WatchKind::Child),
            _ => {}
        }
        // One-shot listeners are dropped after this send, ending their streams.
        for listener in &targets {
            let _ = listener.send(delivered.clone());
        }
        drop(targets);

        if let Some(map) = self.by_kind.get_mut(&WatchKind::Persistent) {
            send_persistent(map, path, &delivered);
        }
        if event_type != EventType::NodeChildrenChanged
            && let Some(map) = self.by_kind.get_mut(&WatchKind::PersistentRecursive)
        {
            let mut ancestor = Some(path);
            while let Some(p) = ancestor {
                send_persistent(map, p, &delivered);
                ancestor = crate::path::parent(p);
            }
        }
    }

    /// Removes the registrations a removeWatches of `kind` on `path` removed on the
    /// server, ending their streams.
    pub(crate) fn remove(&mut self, path: &str, kind: WatcherType) {
        let kinds: &[WatchKind] = match kind {
            WatcherType::Children => &[WatchKind::Child],
            WatcherType::Data => &[WatchKind::Data, WatchKind::Exist],
            WatcherType::Any => &[
                WatchKind::Data,
                WatchKind::Exist,
                WatchKind::Child,
                WatchKind::Persistent,
                WatchKind::PersistentRecursive,
            ],
            WatcherType::Persistent => &[WatchKind::Persistent],
            WatcherType::PersistentRecursive => &[WatchKind::PersistentRecursive],
        };
        for kind in kinds {
            if let Some(map) = self.by_kind.get_mut(kind) {
                map.remove(path);
            }
        }
    }

    /// Ends every stream (the session is over).
    pub(crate) fn clear(&mut self) {
        self.by_kind.clear();
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.by_kind.values().all(HashMap::is_empty)
    }

    /// The setWatches2 requests that re-register every watch someone still listens to
    /// on a new connection; the server fires what changed after `relative_zxid`.
    pub(crate) fn set_watches(&mut self, relative_zxid: i64) -> Vec<SetWatches2> {
        for map in self.by_kind.values_mut() {
            map.retain(|_, listeners| {
                listeners.retain(|l| !l.is_closed());
                !listeners.is_empty()
            });
        }
        let paths = |kind: WatchKind| -> Vec<String> {
            let mut v: Vec<String> = self
                .by_kind
                .get(&kind)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            v.sort();
            v
        };
        let lists = [
            paths(WatchKind::Data),
            paths(WatchKind::Exist),
            paths(WatchKind::Child),
            paths(WatchKind::Persistent),
            paths(WatchKind::PersistentRecursive),
        ];
        let mut packets = Vec::new();
        let mut current = SetWatches2 {
            relative_zxid,
            ..Default::default()
        };
        let mut bytes = 0usize;
        for (i, list) in lists.into_iter().enumerate() {
            for path in list {
                if bytes + path.len() > SET_WATCHES_MAX_BYTES && bytes > 0 {
                    packets.push(std::mem::replace(
                        &mut current,
                        SetWatches2 {
                            relative_zxid,
                            ..Default::default()
                        },
                    ));
                    bytes = 0;
                }
                bytes += path.len();
                match i {
                    0 => current.data_watches.push(path),
                    1 => current.exist_watches.push(path),
                    2 => current.child_watches.push(path),
                    3 => current.persistent_watches.push(path),
                    _ => current.persistent_recursive_watches.push(path),
                }
            }
        }
        if bytes > 0 {
            packets.push(current);
        }
        packets
    }
}

/// Sends to the persistent listeners of `path`, pruning those whose stream was dropped.
fn send_persistent(map: &mut HashMap<String, Vec<Listener>>, path: &str, event: &WatchedEvent) {
    if let Some(listeners) = map.get_mut(path) {
        listeners.retain(|l| l.send(event.clone()).is_ok());
        if listeners.is_empty() {
            map.remove(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventType, path: &str) -> WatcherEvent {
        WatcherEvent {
            kind: kind.code(),
            state: 3,
            path: path.into(),
        }
    }

    #[test]
    fn one_shot_watches_fire_once_and_end() {
        let mut reg = Registry::default();
        let (tx, mut data) = channel();
        reg.add(WatchKind::Data, "/a".into(), tx);
        let (tx, mut child) = channel();
        reg.add(WatchKind::Child, "/a".into(), tx);
        let chroot = Chroot::default();
        reg.dispatch(&ev(EventType::NodeDataChanged, "/a"), &chroot);
        assert_eq!(
            data.try_next(),
            Some(WatchedEvent {
                event_type: EventType::NodeDataChanged,
                path: "/a".into()
            })
        );
        assert!(data.rx.is_closed() || data.try_next().is_none());
        reg.dispatch(&ev(EventType::NodeDataChanged, "/a"), &chroot);
        assert_eq!(data.try_next(), None);
        assert_eq!(child.try_next(), None);
        reg.dispatch(&ev(EventType::NodeDeleted, "/a"), &chroot);
        assert_eq!(child.try_next().unwrap().event_type, EventType::NodeDeleted);
        assert!(reg.is_empty());
    }

    #[test]
    fn persistent_and_recursive_watches_keep_firing() {
        let mut reg = Registry::default();
        let chroot = Chroot::new(Some("/root".into()));
        let (tx, mut p) = channel();
        reg.add(WatchKind::Persistent, "/root/a".into(), tx);
        let (tx, mut r) = channel();
        reg.add(WatchKind::PersistentRecursive, "/root".into(), tx);
        reg.dispatch(&ev(EventType::NodeChildrenChanged, "/root/a"), &chroot);
        reg.dispatch(&ev(EventType::NodeDataChanged, "/root/a/b"), &chroot);
        reg.dispatch(&ev(EventType::NodeDataChanged, "/root/a"), &chroot);
        assert_eq!(
            p.try_next().unwrap().event_type,
            EventType::NodeChildrenChanged
        );
        assert_eq!(p.try_next().unwrap().path, "/a");
        assert_eq!(r.try_next().unwrap().path, "/a/b");
        assert_eq!(r.try_next().unwrap().path, "/a");
        assert_eq!(r.try_next(), None);
        let sw = reg.set_watches(7);
        assert_eq!(sw.len(), 1);
        assert_eq!(sw[0].persistent_watches, vec!["/root/a".to_string()]);
        assert_eq!(
            sw[0].persistent_recursive_watches,
            vec!["/root".to_string()]
        );
        drop(p);
        assert_eq!(reg.set_watches(7)[0].persistent_watches.len(), 0);
    }

    #[test]
    fn set_watches_is_split_into_bounded_packets() {
        let mut reg = Registry::default();
        let mut streams = Vec::new();
        for i in 0..3000 {
            let (tx, s) = channel();
            streams.push(s);
            reg.add(WatchKind::Data, format!("/{i:0>100}"), tx);
        }
        let packets = reg.set_watches(1);
        assert!(packets.len() >= 3);
        let total: usize = packets.iter().map(|p| p.data_watches.len()).sum();
        assert_eq!(total, 3000);
    }
}
