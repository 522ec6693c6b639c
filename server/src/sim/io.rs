//! The simulated I/O a node runs on: its disk (a [`Store`] behind [`SimData`]), its
//! peer links (an [`Outbox`] the world delivers from) and its clock (the world's).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use crate::config::DynamicConfig;
use crate::core::{Clock, CoreMsg, DataDir, PeerLinks, SnapshotDone};
use crate::storage::state::Epochs;
use crate::storage::{self, DiskWriterStats, SyncTimes};
use crate::tree::SnapshotView;
use crate::zab::{Bytes, Message, Sid, Zxid};

/// One node's disk. It outlives the node: a crash loses only what was not yet durable.
#[derive(Default)]
pub struct Store {
    /// Durable log records, in zxid order.
    pub log: Vec<(u64, Vec<u8>)>,
    /// Appended, not yet durable: a crash loses them.
    unsynced: Vec<(u64, Vec<u8>)>,
    /// An append happened since the last sync was scheduled.
    sync_wanted: bool,
    /// The newest snapshot: (zxid, payload).
    pub snapshot: Option<(u64, Vec<u8>)>,
    /// A leader's snapshot to install (SNAP), done at the next sync: until then a crash
    /// keeps the old history.
    unsynced_install: Option<(u64, Vec<u8>)>,
    /// The commit index file, and a write not yet done: as the disk writer does, it is
    /// written after the records and installs queued before it (at the next sync), and a
    /// crash loses it.
    pub commit_index: Zxid,
    unsynced_commit_index: Option<Zxid>,
    /// The epoch files: durable ones, and a write not yet synced (a crash loses it).
    pub epochs: Epochs,
    unsynced_epochs: Option<(i64, i64)>,
    /// The committed dynamic config's text, and a newer one written at the next sync (a
    /// crash loses it: the node restarts from the older config).
    pub config: Option<String>,
    unsynced_config: Option<String>,
    /// Records a TRUNC cut, until the checker looks at them (after the step that cut
    /// them): none may be a txn committed by then.
    pub truncated: Vec<(u64, Vec<u8>)>,
}

impl Store {
    /// Power loss: whatever was not synced is gone.
    pub fn crash(&mut self) {
        self.crash_keeping(0);
    }

    /// Power loss after the disk wrote the first `kept` unsynced records on its own (a
    /// write the kernel flushed before the fsync was asked for): they survive, the rest
    /// is gone. Torn records are this too, as the log's recovery cuts a torn record and
    /// everything after it.
    pub fn crash_keeping(&mut self, kept: usize) {
        // Records after an install that did not happen cannot have reached the log.
        let kept = if self.unsynced_install.is_some() {
            0
        } else {
            kept.min(self.unsynced.len())
        };
        let survivors: Vec<_> = self.unsynced.drain(..kept).collect();
        self.log.extend(survivors);
        self.unsynced.clear();
        self.unsynced_epochs = None;
        self.unsynced_install = None;
        self.unsynced_config = None;
        self.unsynced_commit_index = None;
        self.sync_wanted = false;
    }

    /// How many appended records are not yet durable.
    pub fn unsynced_len(&self) -> usize {
        self.unsynced.len()
    }

    /// Whether the world should schedule a sync (once per batch of appends).
    pub fn take_sync_request(&mut self) -> bool {
        std::mem::take(&mut self.sync_wanted)
    }

    /// The records, durable or not, with a zxid in `(after, upto]`, in zxid order. A
    /// pending install has replaced the durable log already, as far as the node knows.
    pub fn records_between(&self, after: u64, upto: u64) -> Vec<(u64, Vec<u8>)> {
        let in_range = |(z, _): &&(u64, Vec<u8>)| *z > after && *z <= upto;
        let from = |records: &[(u64, Vec<u8>)]| records.partition_point(|(z, _)| *z <= after);
        let log: &[(u64, Vec<u8>)] = match self.unsynced_install {
            Some(_) => &[],
            None => &self.log,
        };
        let durable = &log[from(log)..];
        let pending = &self.unsynced[from(&self.unsynced)..];
        durable
            .iter()
            .chain(pending)
            .take_while(|(z, _)| *z <= upto)
            .filter(in_range)
            .cloned()
            .collect()
    }

    /// Whether txn `zxid` was appended and is not durable yet.
    pub fn holds_unsynced(&self, zxid: u64) -> bool {
        self.unsynced
            .binary_search_by_key(&zxid, |(z, _)| *z)
            .is_ok()
            || self
                .unsynced_install
                .as_ref()
                .is_some_and(|(z, _)| *z == zxid)
    }

    /// Whether the disk holds txn `zxid`: a record of it, or a snapshot taken at it.
    pub fn holds(&self, zxid: u64) -> bool {
        let logged =
            |records: &[(u64, Vec<u8>)]| records.binary_search_by_key(&zxid, |(z, _)| *z).is_ok();
        let installing = self.unsynced_install.as_ref();
        (installing.is_none() && logged(&self.log))
            || logged(&self.unsynced)
            || installing
                .or(self.snapshot.as_ref())
                .is_some_and(|(z, _)| *z == zxid)
    }

    /// Installs a pending snapshot, makes every record appended after it durable, then
    /// the epochs (as the disk writer does). What became durable: the snapshot's zxid,
    /// the last record's and the epochs, where there were any.
    pub fn sync(&mut self) -> Synced {
        let installed = self.unsynced_install.take().map(|(zxid, payload)| {
            self.log.clear();
            self.snapshot = Some((zxid, payload));
            zxid
        });
        let last = self.unsynced.last().map(|(z, _)| *z);
        self.log.append(&mut self.unsynced);
        if let Some(config) = self.unsynced_config.take() {
            self.config = Some(config);
        }
        if let Some(zxid) = self.unsynced_commit_index.take() {
            self.commit_index = zxid;
        }
        let epochs = self.unsynced_epochs.take();
        if let Some((accepted, current)) = epochs {
            self.epochs = Epochs {
                accepted: Some(accepted),
                current: Some(current),
            };
        }
        Synced {
            installed,
            records: last,
            epochs,
        }
    }
}

/// What one sync of a [`Store`] made durable.
pub struct Synced {
    pub installed: Option<u64>,
    pub records: Option<u64>,
    pub epochs: Option<(i64, i64)>,
}

fn lock(store: &Mutex<Store>) -> MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|e| e.into_inner())
}

/// The data dir on a [`Store`].
pub struct SimData {
    store: Arc<Mutex<Store>>,
    internal: mpsc::UnboundedSender<CoreMsg>,
}

impl SimData {
    pub fn new(store: Arc<Mutex<Store>>, internal: mpsc::UnboundedSender<CoreMsg>) -> SimData {
        SimData { store, internal }
    }
}

impl DataDir for SimData {
    fn append(&self, zxid: Zxid, payload: Bytes) -> storage::Result<()> {
        let mut store = lock(&self.store);
        store.unsynced.push((zxid as u64, payload.to_vec()));
        store.sync_wanted = true;
        Ok(())
    }

    fn truncate_after(&self, zxid: Zxid) -> storage::Result<()> {
        let mut store = lock(&self.store);
        let store = &mut *store;
        for records in [&mut store.log, &mut store.unsynced] {
            let keep = records.partition_point(|(z, _)| *z as Zxid <= zxid);
            store.truncated.extend(records.drain(keep..));
        }
        let _ = self
            .internal
            .send(CoreMsg::Disk(storage::DiskEvent::Truncated(Some(
                zxid as u64,
            ))));
        Ok(())
    }

    fn roll(&self) -> storage::Result<()> {
        Ok(())
    }

    fn persist_epochs(&self, accepted: i64, current: i64) -> storage::Result<()> {
        let mut store = lock(&self.store);
        store.unsynced_epochs = Some((accepted, current));
        store.sync_wanted = true;
        Ok(())
    }

    fn persist_commit_index(&self, zxid: Zxid) -> storage::Result<()> {
        let mut store = lock(&self.store);
        store.unsynced_commit_index = Some(zxid);
        store.sync_wanted = true;
        Ok(())
    }

    fn persist_config(&self, config: &DynamicConfig) -> storage::Result<()> {
        let mut store = lock(&self.store);
        store.unsynced_config = Some(config.render());
        store.sync_wanted = true;
        Ok(())
    }

    fn install_snapshot(&self, zxid: Zxid, payload: Vec<u8>) -> storage::Result<()> {
        let mut store = lock(&self.store);
        // The install replaces whatever was appended before it.
        store.unsynced.clear();
        store.unsynced_install = Some((zxid as u64, payload));
        store.sync_wanted = true;
        Ok(())
    }

    fn snapshot(&self, view: SnapshotView, done: SnapshotDone) -> storage::Result<()> {
        let payload = view.serialize_compact();
        lock(&self.store).snapshot = Some((view.last_zxid as u64, payload));
        done(true);
        Ok(())
    }

    fn stats(&self) -> Option<(DiskWriterStats, SyncTimes)> {
        None
    }

    fn shutdown(&mut self) -> storage::Result<()> {
        Ok(())
    }
}

/// What a node sent, waiting for the world to deliver it.
#[derive(Clone, Default)]
pub struct Outbox(Arc<Mutex<Vec<(Sid, Message)>>>);

impl Outbox {
    pub fn take(&self) -> Vec<(Sid, Message)> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn push(&self, to: Sid, msg: Message) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((to, msg));
    }
}

/// Peer links into an [`Outbox`].
pub struct SimPeers(Outbox);

impl SimPeers {
    pub fn new(outbox: Outbox) -> SimPeers {
        SimPeers(outbox)
    }
}

impl PeerLinks for SimPeers {
    fn send(&self, to: Sid, msg: &Message) {
        self.0.push(to, msg.clone());
    }

    fn send_snapshot(&self, to: Sid, zxid: Zxid, view: SnapshotView) {
        self.0.push(
            to,
            Message::Snap {
                zxid,
                payload: view.serialize(),
            },
        );
    }

    fn ensure_link(&mut self, _peer: Sid, _host: &str, _port: u16) {}

    fn introduced(&mut self, _peer: Sid, _addr: crate::config::HostPort) {}
}

/// The world's clock.
pub struct SimClock(Arc<AtomicU64>);

impl SimClock {
    pub fn new(now: Arc<AtomicU64>) -> SimClock {
        SimClock(now)
    }
}

impl Clock for SimClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn wall_ms(&self) -> i64 {
        // Some day in 2026, plus the simulated time.
        1_780_000_000_000 + self.0.load(Ordering::Relaxed) as i64
    }
}
