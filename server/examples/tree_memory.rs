//! What the data tree holds per znode, counted by the allocator rather than guessed from
//! the process's RSS (which also holds the runtime, buffers and the allocator's slack).
//!
//! Builds the tree `bench/compare.sh` loads (`paddock-bench populate`: parents of 1,000
//! children, 100 bytes of data each) by applying create txns, then reports the live heap
//! bytes per znode, and the same after a snapshot round trip (serialize, then load), in
//! both snapshot formats.
//!
//!     cargo run --release -p paddock-server --example tree_memory -- [COUNT]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use paddock_proto::OpCode;
use paddock_server::tree::{DataTree, NodeKind, acl};
use paddock_server::txn::{Txn, TxnOp};

/// Counts the bytes the program has asked for and not yet given back.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the counter is
// only arithmetic on the sizes it was given.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const FANOUT: u64 = 1000;
const ROOT: &str = "/paddock-bench-load";

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn create(tree: &mut DataTree, zxid: &mut i64, path: String, data: Option<Vec<u8>>) {
    *zxid += 1;
    let txn = Txn {
        session: 1,
        cxid: 0,
        zxid: *zxid,
        time: 1_700_000_000_000 + *zxid,
        op: TxnOp::Create {
            op: OpCode::Create,
            path,
            data,
            acl: acl::open_acl(),
            kind: NodeKind::Persistent,
            parent_cversion: 0,
        },
    };
    let mut triggers = Vec::new();
    tree.apply(&txn, &mut triggers);
}

fn main() {
    let count: u64 = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 1_000_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: tree_memory [COUNT > 0]");
            std::process::exit(2);
        }
    };
    let value: Vec<u8> = (0..100).map(|i| b'a' + (i % 26) as u8).collect();
    let empty = live();
    let mut tree = DataTree::new();
    let mut zxid = 0;
    create(&mut tree, &mut zxid, ROOT.to_string(), Some(Vec::new()));
    for p in 0..count.div_ceil(FANOUT) {
        create(
            &mut tree,
            &mut zxid,
            format!("{ROOT}/p{p:04}"),
            Some(Vec::new()),
        );
    }
    let before = live();
    for i in 0..count {
        let path = format!("{ROOT}/p{:04}/n{:04}", i / FANOUT, i % FANOUT);
        create(&mut tree, &mut zxid, path, Some(value.clone()));
    }
    let loaded = live();
    println!(
        "{count} znodes of 100 B: {:.1} B per znode live (tree of parents only: {:.1} MiB); RSS {} KiB",
        (loaded - before) as f64 / count as f64,
        (before - empty) as f64 / (1 << 20) as f64,
        rss_kib().unwrap_or(0),
    );
    let usage = tree.heap_usage();
    let per = |bytes: usize| bytes as f64 / tree.node_count() as f64;
    println!(
        "by part, per node, before the allocator's overhead: records {:.1} B, path map {:.1} B, child lists {:.1} B",
        per(usage.records),
        per(usage.path_map),
        per(usage.child_lists),
    );
    // Both snapshot formats: jute (SNAP syncs to peers), compact (snapshot files).
    let view = tree.snapshot_view();
    let started = std::time::Instant::now();
    let jute = view.serialize();
    let jute_ms = started.elapsed().as_millis();
    let started = std::time::Instant::now();
    let compact = view.serialize_compact();
    let compact_ms = started.elapsed().as_millis();
    println!(
        "snapshot payload: {:.1} B per znode in a file (compact, written in {compact_ms} ms), {:.1} B per znode to a peer (jute, {jute_ms} ms)",
        compact.len() as f64 / count as f64,
        jute.len() as f64 / count as f64,
    );
    drop(view);
    drop(tree);
    for (format, bytes) in [("jute", jute), ("compact", compact)] {
        let reload_base = live();
        let started = std::time::Instant::now();
        match DataTree::from_snapshot(&bytes) {
            Ok(loaded_tree) => {
                println!(
                    "after loading the {format} snapshot ({} ms): {:.1} B per znode live, {} nodes",
                    started.elapsed().as_millis(),
                    (live() - reload_base) as f64 / count as f64,
                    loaded_tree.node_count()
                );
            }
            Err(e) => {
                eprintln!("the {format} snapshot does not load: {e}");
                std::process::exit(1);
            }
        }
    }
}
