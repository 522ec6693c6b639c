//! A persistent hash array mapped trie: the tree's map from a path to its entry.
//!
//! Why not a ready-made persistent map: the one we used (imbl's HashMap) gives every
//! branch a fixed array of 32 slots and stores the hash beside each entry; at a million
//! znodes it held about 540 bytes per entry of 128 bytes, and 72 per entry of 8
//! (`cargo run --release -p paddock-server --example tree_memory` counts it). Here a
//! branch is one allocation holding exactly as many slots as it has entries (a 32-bit
//! bitmap says which), an entry is whatever the caller stores (a pointer for the tree),
//! and no hash is kept: the rare split recomputes it from the key. A million random
//! hashes leave about a quarter million branches of two or three entries at the bottom,
//! which is why a branch is a single allocation behind a thin pointer (triomphe's
//! ThinArc: count, length, bitmap and slots together).
//!
//! Cloning the map is O(1) (one reference count), which is what lets a snapshot freeze
//! the tree; a change after that copies only the branches on its path. A lookup that
//! misses never copies anything.

use std::hash::BuildHasher;

use triomphe::ThinArc;

use crate::hashing::Hasher;

/// What the map stores: an entry that carries its own key.
pub trait Keyed: Clone {
    fn key(&self) -> &[u8];
}

/// Hash bits consumed per level.
const BITS: u32 = 5;
/// Levels index 60 of the hash's 64 bits; entries that agree on all 60 share a bucket.
const HASH_BITS_USED: u32 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    /// Bit i set: the slot for hash digit i is present, at the rank of i among the set
    /// bits. Unused in a bucket.
    bitmap: u32,
    /// A bucket: entries whose hashes agree on every bit the levels use, in no order.
    bucket: bool,
}

/// A branch or a bucket: its head and its slots in one allocation.
type Node<T> = ThinArc<Head, Slot<T>>;

/// One slot of a branch. Two variants of pointers, so that the slot stays two words for
/// a two-word entry (a fat pointer): the entry's non-null pointer tells them apart.
#[derive(Clone)]
enum Slot<T> {
    Entry(T),
    Inner(Node<T>),
}

fn node<T>(head: Head, slots: Vec<Slot<T>>) -> Node<T> {
    ThinArc::from_header_and_iter(head, slots.into_iter())
}

/// A copy of `slots` with `range` replaced by `inserted`, under `head`, built in place in
/// the new node's allocation.
fn spliced<T: Clone>(
    head: Head,
    slots: &[Slot<T>],
    range: std::ops::Range<usize>,
    inserted: Option<Slot<T>>,
) -> Node<T> {
    let items = Splice {
        before: slots[..range.start].iter(),
        inserted,
        after: slots[range.end..].iter(),
    };
    ThinArc::from_header_and_iter(head, items)
}

/// The slots of a node being rebuilt: clones of those before and after the change, and
/// the new one between. Its exact length lets the node be allocated once.
struct Splice<'a, T> {
    before: std::slice::Iter<'a, Slot<T>>,
    inserted: Option<Slot<T>>,
    after: std::slice::Iter<'a, Slot<T>>,
}

impl<T: Clone> Iterator for Splice<'_, T> {
    type Item = Slot<T>;

    fn next(&mut self) -> Option<Slot<T>> {
        if let Some(slot) = self.before.next() {
            return Some(slot.clone());
        }
        if let Some(slot) = self.inserted.take() {
            return Some(slot);
        }
        self.after.next().cloned()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = self.before.len() + usize::from(self.inserted.is_some()) + self.after.len();
        (len, Some(len))
    }
}

impl<T: Clone> ExactSizeIterator for Splice<'_, T> {}

fn head<T>(node: &Node<T>) -> Head {
    node.header.header
}

/// Runs `f` on the node's slots in place, copying the node first if a snapshot shares
/// it. `None` only if the node could not be made unique, which a fresh copy always is.
fn edit<T: Clone, R>(node: &mut Node<T>, f: impl FnOnce(&mut [Slot<T>]) -> R) -> Option<R> {
    node.with_arc_mut(|arc| {
        if triomphe::Arc::get_mut(arc).is_none() {
            let copy = ThinArc::from_header_and_iter(*arc.header(), arc.slice().iter().cloned());
            *arc = triomphe::Arc::protected_from_thin(copy);
        }
        triomphe::Arc::get_mut(arc).map(|inner| f(inner.slice_mut()))
    })
}

/// The slot's bit and position for `hash` at `shift`.
fn locate(bitmap: u32, hash: u64, shift: u32) -> (u32, usize) {
    let bit = 1u32 << ((hash >> shift) & 31);
    (bit, (bitmap & (bit - 1)).count_ones() as usize)
}

/// Where `key`'s slot is in `node`, if it has one: by position in a bucket, by the hash
/// digit in a branch.
fn find<T: Keyed>(node: &Node<T>, hash: u64, shift: u32, key: &[u8]) -> Option<usize> {
    let head = head(node);
    if head.bucket {
        return node
            .slice
            .iter()
            .position(|s| matches!(s, Slot::Entry(e) if e.key() == key));
    }
    let (bit, pos) = locate(head.bitmap, hash, shift);
    (head.bitmap & bit != 0).then_some(pos)
}

/// A persistent map from a key to an entry that carries it.
pub struct Hamt<T, S = Hasher> {
    root: Node<T>,
    len: usize,
    hasher: S,
}

impl<T, S: Clone> Clone for Hamt<T, S> {
    fn clone(&self) -> Self {
        Hamt {
            root: self.root.clone(),
            len: self.len,
            hasher: self.hasher.clone(),
        }
    }
}

impl<T: Keyed, S: BuildHasher + Default> Default for Hamt<T, S> {
    fn default() -> Self {
        Hamt::with_hasher(S::default())
    }
}

impl<T: Keyed> Hamt<T> {
    pub fn new() -> Self {
        Hamt::default()
    }

    /// The map of `entries`, built at once: sorted by their hashes' digits, each branch
    /// is allocated once at its final size (inserting one by one rebuilds the bottom
    /// branch at every insert). `Err` with an entry whose key came twice.
    pub fn from_entries(entries: Vec<T>) -> Result<Self, T> {
        let mut map = Hamt::new();
        let mut keyed: Vec<(u64, u64, T)> = entries
            .into_iter()
            .map(|e| {
                let hash = map.hash(e.key());
                (trie_order(hash), hash, e)
            })
            .collect();
        keyed.sort_unstable_by_key(|(order, _, _)| *order);
        let (hashes, entries): (Vec<u64>, Vec<T>) =
            keyed.into_iter().map(|(_, hash, e)| (hash, e)).unzip();
        map.root = build(&hashes, &mut entries.into_iter(), 0)?;
        map.len = hashes.len();
        Ok(map)
    }
}

/// The hash with its level digits in reverse, so that sorting by it groups entries as
/// the trie does: by the first level's digit, then the second's, and so on.
fn trie_order(hash: u64) -> u64 {
    let mut order = 0;
    for level in 0..HASH_BITS_USED / BITS {
        order = (order << BITS) | ((hash >> (level * BITS)) & 31);
    }
    order
}

/// The branch at `shift` (a bucket past the hash bits) holding the next `hashes.len()`
/// entries, which agree on every digit below `shift` and come in trie order.
fn build<T: Keyed>(
    hashes: &[u64],
    entries: &mut std::vec::IntoIter<T>,
    shift: u32,
) -> Result<Node<T>, T> {
    if shift >= HASH_BITS_USED {
        let bucket: Vec<T> = entries.take(hashes.len()).collect();
        for (i, entry) in bucket.iter().enumerate() {
            if let Some(twice) = bucket[i + 1..].iter().find(|e| e.key() == entry.key()) {
                return Err(twice.clone());
            }
        }
        let head = Head {
            bitmap: 0,
            bucket: true,
        };
        return Ok(node(head, bucket.into_iter().map(Slot::Entry).collect()));
    }
    let digit = |hash: u64| (hash >> shift) & 31;
    let mut bitmap = 0u32;
    let mut slots = Vec::new();
    let mut rest = hashes;
    while let Some(&first) = rest.first() {
        let run = rest.partition_point(|h| digit(*h) == digit(first));
        let slot = if run == 1 {
            match entries.next() {
                Some(entry) => Slot::Entry(entry),
                None => break,
            }
        } else {
            Slot::Inner(build(&rest[..run], entries, shift + BITS)?)
        };
        bitmap |= 1 << digit(first);
        slots.push(slot);
        rest = &rest[run..];
    }
    let head = Head {
        bitmap,
        bucket: false,
    };
    Ok(node(head, slots))
}

impl<T: Keyed, S: BuildHasher> Hamt<T, S> {
    pub fn with_hasher(hasher: S) -> Self {
        let root = Head {
            bitmap: 0,
            bucket: false,
        };
        Hamt {
            root: node(root, Vec::new()),
            len: 0,
            hasher,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    pub fn get(&self, key: &[u8]) -> Option<&T> {
        let hash = self.hash(key);
        let mut at = &self.root;
        let mut shift = 0;
        loop {
            let pos = find(at, hash, shift, key)?;
            match &at.slice[pos] {
                Slot::Entry(entry) => return (entry.key() == key).then_some(entry),
                Slot::Inner(next) => {
                    at = next;
                    shift += BITS;
                }
            }
        }
    }

    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Runs `f` on the entry for `key`, in place; its key must not change. One walk down
    /// the trie: the branches on the way are made this map's own (copied if a frozen
    /// clone shares them) before the key is known to be there, so a miss may have copied
    /// some, unchanged. Meant for keys the caller knows are present.
    pub fn update<R>(&mut self, key: &[u8], f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let hash = self.hash(key);
        update_in(&mut self.root, hash, 0, key, f)
    }

    /// Inserts `entry`, returning the one it replaced (same key), if any.
    pub fn insert(&mut self, entry: T) -> Option<T> {
        let hash = self.hash(entry.key());
        let hasher = &self.hasher;
        let rehash = |key: &[u8]| hasher.hash_one(key);
        let (added, replaced) = insert_in(&mut self.root, hash, 0, entry, &rehash);
        if added {
            self.len += 1;
        }
        replaced
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<T> {
        if !self.contains_key(key) {
            return None;
        }
        let hash = self.hash(key);
        let removed = remove_in(&mut self.root, hash, 0, key);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// Heap bytes of the trie's own structure (branches and their slots), not counting
    /// what entries point to, nor the allocator's overhead.
    pub fn structure_bytes(&self) -> usize {
        let mut bytes = 0;
        let mut stack = vec![&self.root];
        while let Some(at) = stack.pop() {
            // The count, the length and the head, then the slots.
            bytes += 8 + 8 + size_of::<Head>() + size_of_val(&at.slice);
            for slot in &at.slice {
                if let Slot::Inner(next) = slot {
                    stack.push(next);
                }
            }
        }
        bytes
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter {
            stack: vec![self.root.slice.iter()],
        }
    }
}

fn update_in<T: Keyed, R>(
    at: &mut Node<T>,
    hash: u64,
    shift: u32,
    key: &[u8],
    f: impl FnOnce(&mut T) -> R,
) -> Option<R> {
    let pos = find(at, hash, shift, key)?;
    if matches!(&at.slice[pos], Slot::Entry(e) if e.key() != key) {
        return None;
    }
    edit(at, |slots| match &mut slots[pos] {
        Slot::Entry(entry) => Some(f(entry)),
        Slot::Inner(next) => update_in(next, hash, shift + BITS, key, f),
    })
    .flatten()
}

/// Whether a key was added, and the entry replaced if it was not.
fn insert_in<T: Keyed>(
    at: &mut Node<T>,
    hash: u64,
    shift: u32,
    entry: T,
    rehash: &dyn Fn(&[u8]) -> u64,
) -> (bool, Option<T>) {
    let head = head(at);
    let Some(pos) = find(at, hash, shift, entry.key()) else {
        // A new slot: the node is rebuilt one slot longer.
        let (head, pos) = if head.bucket {
            (head, at.slice.len())
        } else {
            let (bit, pos) = locate(head.bitmap, hash, shift);
            let head = Head {
                bitmap: head.bitmap | bit,
                ..head
            };
            (head, pos)
        };
        let grown = spliced(head, &at.slice, pos..pos, Some(Slot::Entry(entry)));
        *at = grown;
        return (true, None);
    };
    let split = match &at.slice[pos] {
        Slot::Entry(existing) if existing.key() != entry.key() => {
            Some((existing.clone(), rehash(existing.key())))
        }
        _ => None,
    };
    if let Some((existing, existing_hash)) = split {
        let slot = pair(existing, existing_hash, entry, hash, shift + BITS);
        edit(at, |slots| slots[pos] = slot);
        return (true, None);
    }
    edit(at, |slots| match &mut slots[pos] {
        Slot::Entry(existing) => (false, Some(std::mem::replace(existing, entry))),
        Slot::Inner(next) => insert_in(next, hash, shift + BITS, entry, rehash),
    })
    .unwrap_or((false, None))
}

/// The slot that holds two entries with different keys whose hashes agree below `shift`.
fn pair<T>(a: T, a_hash: u64, b: T, b_hash: u64, shift: u32) -> Slot<T> {
    if shift >= HASH_BITS_USED {
        let bucket = Head {
            bitmap: 0,
            bucket: true,
        };
        return Slot::Inner(node(bucket, vec![Slot::Entry(a), Slot::Entry(b)]));
    }
    let (a_digit, b_digit) = ((a_hash >> shift) & 31, (b_hash >> shift) & 31);
    let (bitmap, slots) = if a_digit == b_digit {
        (1 << a_digit, vec![pair(a, a_hash, b, b_hash, shift + BITS)])
    } else {
        let (low, high) = if a_digit < b_digit { (a, b) } else { (b, a) };
        (
            (1 << a_digit) | (1 << b_digit),
            vec![Slot::Entry(low), Slot::Entry(high)],
        )
    };
    let branch = Head {
        bitmap,
        bucket: false,
    };
    Slot::Inner(node(branch, slots))
}

fn remove_in<T: Keyed>(at: &mut Node<T>, hash: u64, shift: u32, key: &[u8]) -> Option<T> {
    let head = head(at);
    let pos = find(at, hash, shift, key)?;
    match &at.slice[pos] {
        Slot::Entry(entry) if entry.key() != key => None,
        Slot::Entry(entry) => {
            let removed = entry.clone();
            let head = if head.bucket {
                head
            } else {
                let (bit, _) = locate(head.bitmap, hash, shift);
                Head {
                    bitmap: head.bitmap & !bit,
                    ..head
                }
            };
            let shrunk = spliced(head, &at.slice, pos..pos + 1, None);
            *at = shrunk;
            Some(removed)
        }
        Slot::Inner(_) => edit(at, |slots| {
            let Slot::Inner(next) = &mut slots[pos] else {
                return None;
            };
            let removed = remove_in(next, hash, shift + BITS, key)?;
            // Keep the trie canonical: a branch or bucket left with one entry and
            // nothing below it is replaced by that entry.
            let lifted = match &next.slice[..] {
                [Slot::Entry(only)] => Some(only.clone()),
                _ => None,
            };
            if let Some(only) = lifted {
                slots[pos] = Slot::Entry(only);
            }
            Some(removed)
        })
        .flatten(),
    }
}

/// Walks the trie depth first.
pub struct Iter<'a, T> {
    stack: Vec<std::slice::Iter<'a, Slot<T>>>,
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        loop {
            let top = self.stack.last_mut()?;
            match top.next() {
                None => {
                    self.stack.pop();
                }
                Some(Slot::Entry(entry)) => return Some(entry),
                Some(Slot::Inner(next)) => self.stack.push(next.slice.iter()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::hash::BuildHasherDefault;

    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Item {
        key: Vec<u8>,
        value: u32,
    }

    impl Keyed for Item {
        fn key(&self) -> &[u8] {
            &self.key
        }
    }

    /// Hashes a key to its first byte only, so that keys share digits at every level
    /// and most of them end in buckets: the paths a good hasher almost never takes.
    #[derive(Default)]
    struct FirstByte(u64);

    impl std::hash::Hasher for FirstByte {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            if let Some(&b) = bytes.first() {
                self.0 = self.0.wrapping_mul(31).wrapping_add(u64::from(b) << 55);
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(Vec<u8>, u32),
        Remove(Vec<u8>),
        Change(Vec<u8>, u32),
        Snapshot,
    }

    fn op() -> impl Strategy<Value = Op> {
        let key = proptest::collection::vec(0u8..4, 0..4);
        prop_oneof![
            4 => (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            2 => key.clone().prop_map(Op::Remove),
            1 => (key, any::<u32>()).prop_map(|(k, v)| Op::Change(k, v)),
            1 => Just(Op::Snapshot),
        ]
    }

    /// Runs `ops` on the trie and on std's HashMap; every snapshot taken on the way must
    /// still equal the model as it was when it was taken.
    fn check_against_model<S: BuildHasher + Clone>(hasher: S, ops: &[Op]) {
        let mut trie: Hamt<Item, S> = Hamt::with_hasher(hasher);
        let mut model: HashMap<Vec<u8>, u32> = HashMap::new();
        let mut frozen = Vec::new();
        for op in ops {
            match op {
                Op::Insert(k, v) => {
                    let old = trie.insert(Item {
                        key: k.clone(),
                        value: *v,
                    });
                    assert_eq!(old.map(|i| i.value), model.insert(k.clone(), *v));
                }
                Op::Remove(k) => {
                    assert_eq!(trie.remove(k).map(|i| i.value), model.remove(k));
                }
                Op::Change(k, v) => {
                    let found = trie.update(k, |i| {
                        i.value = *v;
                    });
                    assert_eq!(found.is_some(), model.contains_key(k));
                    if let Some(m) = model.get_mut(k) {
                        *m = *v;
                    }
                }
                Op::Snapshot => frozen.push((trie.clone(), model.clone())),
            }
            assert_eq!(trie.len(), model.len());
        }
        frozen.push((trie, model));
        for (trie, model) in frozen {
            let mut seen: HashMap<Vec<u8>, u32> = HashMap::new();
            for item in trie.iter() {
                assert!(seen.insert(item.key.clone(), item.value).is_none());
            }
            assert_eq!(seen, model);
            for (k, v) in &model {
                assert_eq!(trie.get(k).map(|i| i.value), Some(*v));
            }
            assert_eq!(trie.len(), model.len());
        }
    }

    proptest! {
        #[test]
        fn behaves_as_a_map_and_snapshots_stay_frozen(ops in proptest::collection::vec(op(), 0..200)) {
            check_against_model(Hasher::default(), &ops);
        }

        #[test]
        fn behaves_as_a_map_when_every_hash_collides(ops in proptest::collection::vec(op(), 0..200)) {
            check_against_model(BuildHasherDefault::<FirstByte>::default(), &ops);
        }
    }

    proptest! {
        #[test]
        fn a_map_built_at_once_is_the_map_built_by_inserts(
            keys in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..6), 0..300),
        ) {
            let mut inserted: Hamt<Item> = Hamt::new();
            let mut unique = Vec::new();
            for key in &keys {
                if inserted.insert(Item { key: key.clone(), value: 1 }).is_none() {
                    unique.push(Item { key: key.clone(), value: 1 });
                }
            }
            let built = Hamt::<Item>::from_entries(unique.clone()).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            prop_assert_eq!(built.len(), inserted.len());
            for item in &unique {
                prop_assert!(built.get(&item.key).is_some());
            }
            prop_assert_eq!(built.iter().count(), unique.len());
            // The same shape: a built map and an inserted one take the same removals.
            let mut built = built;
            for item in &unique {
                prop_assert!(built.remove(&item.key).is_some());
            }
            prop_assert!(built.is_empty() && built.root.slice.is_empty());
            if let Some(first) = unique.first() {
                let mut twice = unique.clone();
                twice.push(first.clone());
                prop_assert!(Hamt::<Item>::from_entries(twice).is_err());
            }
        }
    }

    #[test]
    fn a_removal_lifts_the_last_entry_of_a_branch() {
        let mut trie: Hamt<Item, BuildHasherDefault<FirstByte>> = Hamt::default();
        for key in [b"a1".to_vec(), b"a2".to_vec()] {
            trie.insert(Item { key, value: 0 });
        }
        // Both keys hash alike, so they sit in one bucket under a chain of branches.
        assert!(matches!(&trie.root.slice[..], [Slot::Inner(_)]));
        assert!(trie.remove(b"a1").is_some());
        assert!(matches!(&trie.root.slice[..], [Slot::Entry(item)] if item.key == b"a2"));
        assert!(trie.remove(b"a2").is_some());
        assert!(trie.root.slice.is_empty() && trie.is_empty());
    }

    #[test]
    fn a_slot_is_two_words_for_a_fat_pointer_entry() {
        #[derive(Clone)]
        struct Fat(std::sync::Arc<[u8]>);
        impl Keyed for Fat {
            fn key(&self) -> &[u8] {
                &self.0
            }
        }
        assert_eq!(std::mem::size_of::<Slot<Fat>>(), 16);
    }
}
