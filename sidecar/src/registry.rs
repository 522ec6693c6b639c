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
