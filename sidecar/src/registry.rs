//! What the sidecar keeps alive on behalf of apps and flags — candidacies, group
//! memberships — by (name, id). Each entry is a task; joins and leaves of one kind run
//! one at a time (`serialize`), so "join" stays idempotent under concurrent calls.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;

pub struct Registry<T> {
    map: Mutex<BTreeMap<(String, String), Arc<T>>>,
    ops: tokio::sync::Mutex<()>,
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Registry {
            map: Mutex::new(BTreeMap::new()),
            ops: tokio::sync::Mutex::new(()),
        }
    }
}

impl<T> Registry<T> {
    /// Holds off other joins and leaves of this kind while the guard lives.
    pub async fn serialize(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.ops.lock().await
    }

    pub fn get(&self, name: &str, id: &str) -> Option<Arc<T>> {
        self.map
            .lock()
            .ok()
            .and_then(|m| m.get(&(name.to_string(), id.to_string())).cloned())
    }

    /// Every entry under `name`, in id order.
    pub fn named(&self, name: &str) -> Vec<Arc<T>> {
        self.map
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|((n, _), _)| n == name)
                    .map(|(_, v)| v.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn all(&self) -> Vec<Arc<T>> {
        self.map
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn insert(&self, name: &str, id: &str, entry: Arc<T>) {
        if let Ok(mut map) = self.map.lock() {
            map.insert((name.to_string(), id.to_string()), entry);
        }
    }

    pub fn remove(&self, name: &str, id: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(&(name.to_string(), id.to_string()));
        }
    }
}

/// Sends a command that carries its own reply channel to an entry's task and waits for
/// the answer; `what` names the task in the error if it is gone.
pub async fn ask<C>(
    cmds: &mpsc::Sender<C>,
    make: impl FnOnce(oneshot::Sender<Result<(), ApiError>>) -> C,
    what: &str,
) -> Result<(), ApiError> {
    let (tx, rx) = oneshot::channel();
    cmds.send(make(tx))
        .await
        .map_err(|_| ApiError::internal(format!("the {what} task is gone")))?;
    rx.await
        .map_err(|_| ApiError::internal(format!("the {what} task is gone")))?
}

/// What an app (through the API) asks of an entry's task.
pub enum Cmd {
    /// Publish a new value; answered once it is in place.
    SetValue(Vec<u8>, oneshot::Sender<Result<(), ApiError>>),
    /// Resign / leave: the task ends, then answers.
    Stop(oneshot::Sender<()>),
}

/// Takes a new value for an entry that has no node to update right now (it is waiting
/// for a session): the next node it creates carries it.
pub fn keep_value(
    data: &mut Vec<u8>,
    shared: &Mutex<Vec<u8>>,
    value: Vec<u8>,
    reply: oneshot::Sender<Result<(), ApiError>>,
) {
    *data = value.clone();
    if let Ok(mut v) = shared.lock() {
        *v = value;
    }
    let _ = reply.send(Ok(()));
}

/// Why an entry's task stopped waiting for a session.
pub enum Wait {
    /// A connected session newer than the last one the entry used.
    Session(paddock_client::Client, u64),
    /// Asked to stop (the sender, if any, waits for the task to end).
    Stop(Option<oneshot::Sender<()>>),
}

/// Waits for a connected session newer than generation `last`, taking value updates
/// meanwhile.
pub async fn next_session(
    sessions: &crate::session::Sessions,
    slots: &mut tokio::sync::watch::Receiver<crate::session::Slot>,
    cmds: &mut mpsc::Receiver<Cmd>,
    last: u64,
    data: &mut Vec<u8>,
    shared: &Mutex<Vec<u8>>,
) -> Wait {
    loop {
        if let Some((client, generation)) = sessions.connected()
            && generation > last
        {
            return Wait::Session(client, generation);
        }
        tokio::select! {
            changed = slots.changed() => if changed.is_err() { return Wait::Stop(None) },
            cmd = cmds.recv() => match cmd {
                Some(Cmd::SetValue(v, reply)) => keep_value(data, shared, v, reply),
                Some(Cmd::Stop(done)) => return Wait::Stop(Some(done)),
                None => return Wait::Stop(None),
            },
        }
    }
}
