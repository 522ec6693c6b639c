//! A node's child names: sorted, packed into small shared chunks.
//!
//! A name costs its bytes plus one length byte (two from 128 bytes on), not a heap
//! allocation and a tree slot of its own. Chunks are immutable and shared, so cloning
//! the list (which the tree's persistent map does when a snapshot shares it) is one
//! reference count, and a change rewrites one chunk of at most `CHUNK_BYTES`.
//!
//! Order is by bytes, which for UTF-8 is the order of the names as strings.

use std::sync::Arc;

use super::record::shared_bytes;

/// A chunk that grows past this is split in two.
const CHUNK_BYTES: usize = 512;
/// A chunk that shrinks below this is merged with a neighbour when both fit in one.
const MERGE_BELOW: usize = CHUNK_BYTES / 4;

/// Names, each as a LEB128 length then its bytes, in order.
type Chunk = Arc<[u8]>;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Children {
    /// Never an empty chunk.
    chunks: Arc<Vec<Chunk>>,
}

impl Children {
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks.iter().flat_map(|c| Names(c))
    }

    /// Heap bytes of the list, without the allocator's overhead.
    pub fn heap_bytes(&self) -> usize {
        16 + size_of::<Vec<Chunk>>()
            + self.chunks.capacity() * size_of::<Chunk>()
            + self.chunks.iter().map(|c| 16 + c.len()).sum::<usize>()
    }

    /// The list of `names`, which must be in strictly increasing order (as a snapshot
    /// lists them); `None` if they are not. Chunks are filled to `CHUNK_BYTES`.
    pub fn from_sorted<'a>(names: impl IntoIterator<Item = &'a [u8]>) -> Option<Children> {
        let mut chunks = Vec::new();
        let mut chunk = Vec::new();
        let mut last: Option<&[u8]> = None;
        for name in names {
            if last.is_some_and(|l| l >= name) {
                return None;
            }
            last = Some(name);
            if !chunk.is_empty() && chunk.len() + encoded_len(name) > CHUNK_BYTES {
                chunks.push(Chunk::from(std::mem::take(&mut chunk)));
            }
            encode(name, &mut chunk);
        }
        if !chunk.is_empty() {
            chunks.push(Chunk::from(chunk));
        }
        Some(Children {
            chunks: Arc::new(chunks),
        })
    }

    /// Adds `name`; false if it was there already.
    pub fn insert(&mut self, name: &[u8]) -> bool {
        if self.chunks.is_empty() {
            Arc::make_mut(&mut self.chunks).push(encode_all([name]));
            return true;
        }
        let at = self.chunk_for(name);
        let chunk = &self.chunks[at];
        let Err(offset) = locate(chunk, name) else {
            return false;
        };
        if chunk.len() + encoded_len(name) <= CHUNK_BYTES {
            let grown = shared_bytes(|b| {
                b.extend_from_slice(&chunk[..offset]);
                encode(name, b);
                b.extend_from_slice(&chunk[offset..]);
            });
            Arc::make_mut(&mut self.chunks)[at] = grown;
            return true;
        }
        // The chunk would outgrow its size: it is split.
        let mut names: Vec<&[u8]> = Names(chunk).collect();
        let pos = names.partition_point(|n| *n < name);
        names.insert(pos, name);
        let mut replacement = Vec::new();
        pack(&names, &mut replacement);
        Arc::make_mut(&mut self.chunks).splice(at..=at, replacement);
        true
    }

    /// Removes `name`; false if it was not there.
    pub fn remove(&mut self, name: &[u8]) -> bool {
        if self.chunks.is_empty() {
            return false;
        }
        let at = self.chunk_for(name);
        let chunk = &self.chunks[at];
        let Ok(offset) = locate(chunk, name) else {
            return false;
        };
        let end = offset + encoded_len(name);
        let rebuilt = shared_bytes(|b| {
            b.extend_from_slice(&chunk[..offset]);
            b.extend_from_slice(&chunk[end..]);
        });
        let chunks = Arc::make_mut(&mut self.chunks);
        if rebuilt.is_empty() {
            chunks.remove(at);
        } else if rebuilt.len() < MERGE_BELOW {
            // Merge with the smaller neighbour when the two fit in one chunk.
            let neighbour = [
                at.checked_sub(1),
                Some(at + 1).filter(|&n| n < chunks.len()),
            ]
            .into_iter()
            .flatten()
            .min_by_key(|&n| chunks[n].len());
            match neighbour {
                Some(n) if chunks[n].len() + rebuilt.len() <= CHUNK_BYTES => {
                    let (first, second) = if n < at {
                        (&chunks[n][..], &rebuilt[..])
                    } else {
                        (&rebuilt[..], &chunks[n][..])
                    };
                    let merged = shared_bytes(|b| {
                        b.extend_from_slice(first);
                        b.extend_from_slice(second);
                    });
                    let low = n.min(at);
                    chunks.splice(low..=low + 1, [merged]);
                }
                _ => chunks[at] = rebuilt,
            }
        } else {
            chunks[at] = rebuilt;
        }
        true
    }

    /// The chunk whose range holds `name`: the last one whose first name is not after it.
    fn chunk_for(&self, name: &[u8]) -> usize {
        self.chunks
            .partition_point(|c| Names(c).next().is_some_and(|first| first <= name))
            .saturating_sub(1)
    }
}

/// Packs `names` into chunks of at most `CHUNK_BYTES`, halving until they fit (a name
/// longer than a chunk gets one of its own).
fn pack(names: &[&[u8]], out: &mut Vec<Chunk>) {
    let bytes: usize = names.iter().map(|n| encoded_len(n)).sum();
    if bytes <= CHUNK_BYTES || names.len() == 1 {
        out.push(encode_all(names.iter().copied()));
        return;
    }
    let half = split_point(names);
    pack(&names[..half], out);
    pack(&names[half..], out);
}

/// Where to cut a full chunk: the first name at or past half its bytes.
fn split_point(names: &[&[u8]]) -> usize {
    let total: usize = names.iter().map(|n| encoded_len(n)).sum();
    let mut bytes = 0;
    for (i, name) in names.iter().enumerate() {
        if bytes >= total / 2 && i > 0 {
            return i;
        }
        bytes += encoded_len(name);
    }
    names.len() - 1
}

fn encoded_len(name: &[u8]) -> usize {
    let mut len = name.len();
    let mut bytes = 1;
    while len >= 0x80 {
        len >>= 7;
        bytes += 1;
    }
    bytes + name.len()
}

fn encode_all<'a>(names: impl IntoIterator<Item = &'a [u8]>) -> Chunk {
    shared_bytes(|b| {
        for name in names {
            encode(name, b);
        }
    })
}

/// Where `name` is in `chunk`: `Ok` with its offset, or `Err` with the offset it would
/// be inserted at to keep the order.
fn locate(chunk: &[u8], name: &[u8]) -> Result<usize, usize> {
    let mut at = 0;
    let mut names = Names(chunk);
    while let Some(next) = names.next() {
        match next.cmp(name) {
            std::cmp::Ordering::Less => at = chunk.len() - names.0.len(),
            std::cmp::Ordering::Equal => return Ok(at),
            std::cmp::Ordering::Greater => return Err(at),
        }
    }
    Err(chunk.len())
}

fn encode(name: &[u8], out: &mut Vec<u8>) {
    let mut len = name.len();
    while len >= 0x80 {
        out.push((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(name);
}

/// The names of one chunk, in order.
struct Names<'a>(&'a [u8]);

impl<'a> Iterator for Names<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let mut len = 0usize;
        let mut shift = 0;
        let mut at = 0;
        loop {
            let byte = *self.0.get(at)?;
            at += 1;
            len |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        let name = self.0.get(at..at + len)?;
        self.0 = &self.0[at + len..];
        Some(name)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn name() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            // Short names, so that many share a chunk and collide with each other.
            3 => proptest::collection::vec(b'a'..b'e', 0..6),
            // Long ones, past the two-byte length and past a whole chunk.
            1 => proptest::collection::vec(any::<u8>(), 120..700),
        ]
    }

    proptest! {
        #[test]
        fn behaves_as_a_sorted_set(ops in proptest::collection::vec((any::<bool>(), name()), 0..400)) {
            let mut children = Children::default();
            let mut model = BTreeSet::new();
            let mut frozen = Vec::new();
            for (i, (add, name)) in ops.iter().enumerate() {
                if *add {
                    prop_assert_eq!(children.insert(name), model.insert(name.clone()));
                } else {
                    prop_assert_eq!(children.remove(name), model.remove(name));
                }
                prop_assert_eq!(children.iter().count(), model.len());
                if i % 50 == 0 {
                    frozen.push((children.clone(), model.clone()));
                }
                for chunk in children.chunks.iter() {
                    prop_assert!(!chunk.is_empty());
                    prop_assert!(chunk.len() <= CHUNK_BYTES || Names(chunk).count() == 1);
                }
            }
            let rebuilt = Children::from_sorted(model.iter().map(Vec::as_slice));
            prop_assert!(rebuilt.as_ref().is_some_and(|r| r.iter().eq(model.iter().map(Vec::as_slice))));
            if model.len() > 1 {
                prop_assert!(Children::from_sorted(model.iter().rev().map(Vec::as_slice)).is_none());
            }
            if let Some(mut rebuilt) = rebuilt {
                // A list built at once takes inserts and removals like any other.
                if let Some(first) = model.iter().next() {
                    prop_assert!(rebuilt.remove(first));
                    prop_assert!(rebuilt.insert(first));
                    prop_assert!(rebuilt.iter().eq(model.iter().map(Vec::as_slice)));
                }
            }
            frozen.push((children, model));
            for (children, model) in frozen {
                let listed: Vec<&[u8]> = children.iter().collect();
                let expected: Vec<&[u8]> = model.iter().map(Vec::as_slice).collect();
                prop_assert_eq!(listed, expected);
            }
        }
    }

    #[test]
    fn a_thousand_short_names_cost_about_their_bytes() {
        let mut children = Children::default();
        for i in 0..1000 {
            assert!(children.insert(format!("n{i:04}").as_bytes()));
        }
        let bytes: usize = children.chunks.iter().map(|c| c.len()).sum();
        assert_eq!(bytes, 1000 * 6);
        // Appending in order leaves each split-off chunk about half full.
        assert!(
            children.chunks.len() <= 30,
            "{} chunks",
            children.chunks.len()
        );
        assert!(
            children
                .iter()
                .map(|n| n.to_vec())
                .eq((0..1000).map(|i| format!("n{i:04}").into_bytes()))
        );
    }
}
