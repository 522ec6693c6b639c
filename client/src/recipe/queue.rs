//! The queue under locks and elections: ephemeral-sequential nodes in one directory,
//! ordered by their sequence number; the first one holds the lock (or leads).
//!
//! Node names are "protected" as Curator spells them, `_c_<uuid>-<tag>-<sequence>`, so
//! a create whose reply was lost can be recovered by finding our uuid among the
//! children instead of creating a second node. Curator and kazoo users can read the
//! layout: the lowest sequence number is the holder.

use paddock_proto::{CreateMode, ErrorCode};

use crate::client::Client;
use crate::error::Error;
use crate::path;
use crate::recipe::support::retry;

/// Our place in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ticket {
    /// Full path of our node.
    pub path: String,
    /// Its name within the directory.
    pub name: String,
    /// Its creation zxid: the fencing token if this node wins.
    pub czxid: i64,
}

/// A child of the queue directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub name: String,
    pub sequence: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Queue {
    pub client: Client,
    pub dir: String,
    /// `lock` or `latch`, as Curator names the nodes of InterProcessMutex and LeaderLatch.
    pub tag: &'static str,
}

impl Queue {
    pub(crate) fn new(client: &Client, dir: &str, tag: &'static str) -> Result<Queue, Error> {
        path::check(dir, false)?;
        if dir == "/" {
            return Err(Error::BadArguments(
                "a recipe needs a directory of its own, not /".into(),
            ));
        }
        Ok(Queue {
            client: client.clone(),
            dir: dir.to_string(),
            tag,
        })
    }

    fn prefix(&self, guid: &str) -> String {
        format!("_c_{guid}-{}-", self.tag)
    }

    /// Creates our node. A connection loss during the create is recovered by looking
    /// for our uuid once reconnected, so there is never a second node of ours.
    pub(crate) async fn join(&self, guid: &str, data: &[u8]) -> Result<Ticket, Error> {
        let base = path::join(&self.dir, &self.prefix(guid));
        loop {
            match self
                .client
                .create(&base, data, CreateMode::EphemeralSequential)
                .await
            {
                Ok((path, stat)) => {
                    return Ok(Ticket {
                        name: path::basename(&path).to_string(),
                        path,
                        czxid: stat.czxid,
                    });
                }
                Err(Error::Server {
                    code: ErrorCode::NoNode,
                    ..
                }) => {
                    // The directory is a container: create it (again, if the server
                    // reaped it while empty).
                    retry(&self.client, || {
                        self.client.ensure_path(&self.dir, CreateMode::Container)
                    })
                    .await?;
                }
                Err(e) if e.is_connection_loss() => {
                    self.client.wait_connected().await?;
                    if let Some(ticket) = self.find(guid).await? {
                        tracing::debug!(node = %ticket.path, "recovered a node whose create reply was lost");
                        return Ok(ticket);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Our node, if it exists. Should a retried create have left two, the later one is
    /// deleted.
    pub(crate) async fn find(&self, guid: &str) -> Result<Option<Ticket>, Error> {
        let prefix = self.prefix(guid);
        let mut ours: Vec<Entry> = self
            .entries()
            .await?
            .into_iter()
            .filter(|e| e.name.starts_with(&prefix))
            .collect();
        ours.sort_by_key(|e| e.sequence);
        let Some(first) = ours.first() else {
            return Ok(None);
        };
        for extra in &ours[1..] {
            self.client
                .delete_detached(&path::join(&self.dir, &extra.name));
        }
        let path = path::join(&self.dir, &first.name);
        match retry(&self.client, || self.client.exists(&path)).await? {
            Some(stat) => Ok(Some(Ticket {
                name: first.name.clone(),
                path,
                czxid: stat.czxid,
            })),
            None => Ok(None),
        }
    }

    /// The first node of the queue that still exists, with its data and czxid (the
    /// fencing token of whoever holds it): the lock holder, or the election leader.
    pub(crate) async fn head(&self) -> Result<Option<(String, Vec<u8>, i64)>, Error> {
        let client = &self.client;
        for entry in self.entries().await? {
            let node = self.path_of(&entry.name);
            match retry(client, || client.get_data(&node)).await {
                Ok((data, stat)) => return Ok(Some((node, data, stat.czxid))),
                // Gone between the listing and the read: the next one is first now.
                Err(Error::Server {
                    code: paddock_proto::ErrorCode::NoNode,
                    ..
                }) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// The queue in order (lowest sequence first); empty if the directory is missing.
    pub(crate) async fn entries(&self) -> Result<Vec<Entry>, Error> {
        let children = match retry(&self.client, || self.client.get_children(&self.dir)).await {
            Ok(children) => children,
            Err(Error::Server {
                code: ErrorCode::NoNode,
                ..
            }) => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut entries: Vec<Entry> = children
            .into_iter()
            .filter_map(|name| sequence_of(&name).map(|sequence| Entry { name, sequence }))
            .collect();
        entries.sort_by_key(|e| e.sequence);
        Ok(entries)
    }

    /// Deletes nodes of ours other than `ticket` (left by a create retried after a lost
    /// reply that the server applied late), so they can never block the queue.
    pub(crate) fn prune_strays(&self, entries: &[Entry], guid: &str, ticket: &Ticket) {
        let prefix = self.prefix(guid);
        for e in entries {
            if e.name.starts_with(&prefix) && e.name != ticket.name {
                tracing::debug!(node = %e.name, "deleting a stray node of ours");
                self.client.delete_detached(&self.path_of(&e.name));
            }
        }
    }

    pub(crate) fn path_of(&self, name: &str) -> String {
        path::join(&self.dir, name)
    }
}

/// The sequence number ZooKeeper appended (the last 10 characters, all digits).
pub(crate) fn sequence_of(name: &str) -> Option<u64> {
    let digits = name.get(name.len().checked_sub(10)?..)?;
    if digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

/// Removes our node unless disarmed: on an error, a timeout or the caller's
/// cancellation. While the node's name is not known yet (its create in flight), it is
/// found by our uuid once connected.
pub(crate) struct Cleanup<'a> {
    queue: &'a Queue,
    pub guid: String,
    /// Our node once known; `None` while it is being created.
    pub node: Option<String>,
    armed: bool,
}

impl<'a> Cleanup<'a> {
    pub(crate) fn new(queue: &'a Queue, guid: String) -> Cleanup<'a> {
        Cleanup {
            queue,
            guid,
            node: None,
            armed: true,
        }
    }

    /// The node is ours to keep.
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        match self.node.take() {
            Some(node) => self.queue.client.delete_detached(&node),
            None => {
                let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                    return;
                };
                let queue = self.queue.clone();
                let guid = std::mem::take(&mut self.guid);
                runtime.spawn(async move {
                    if let Ok(Some(ticket)) = queue.find(&guid).await {
                        queue.client.delete_detached(&ticket.path);
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_are_the_last_ten_digits() {
        assert_eq!(sequence_of("_c_x-lock-0000000042"), Some(42));
        assert_eq!(sequence_of("0000000007"), Some(7));
        assert_eq!(sequence_of("lock-00000001"), None);
        assert_eq!(sequence_of("lock-000000000x"), None);
        assert_eq!(sequence_of(""), None);
    }
}
