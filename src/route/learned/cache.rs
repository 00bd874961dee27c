//! A bounded least-recently-used cache of prompt embeddings, keyed by the prompt text's
//! stable hash.

use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::Arc;

/// A bounded least-recently-used cache of prompt embeddings (none kept at capacity 0).
pub struct EmbeddingCache {
    entries: Option<LruCache<u64, Arc<Vec<f32>>>>,
}

impl EmbeddingCache {
    pub fn new(capacity: usize) -> EmbeddingCache {
        EmbeddingCache {
            entries: NonZeroUsize::new(capacity).map(LruCache::new),
        }
    }

    pub fn get(&mut self, key: u64) -> Option<Arc<Vec<f32>>> {
        self.entries.as_mut()?.get(&key).cloned()
    }

    /// Keeps `v` under `key`, dropping the least recently used embedding when full.
    pub fn insert(&mut self, key: u64, v: Arc<Vec<f32>>) {
        if let Some(entries) = self.entries.as_mut() {
            entries.put(key, v);
        }
    }

    /// Bytes held now, and the most `capacity` embeddings of `dimension` floats take.
    pub fn memory(&self, dimension: usize) -> (usize, usize) {
        let entry = |dim: usize| dim * 4 + ENTRY_OVERHEAD;
        let Some(entries) = &self.entries else {
            return (0, 0);
        };
        let now = entries.iter().map(|(_, v)| entry(v.len())).sum();
        (now, entries.cap().get() * entry(dimension))
    }
}

/// Per embedding beside its floats, each allocation with the allocator's 16-byte chunk header:
/// the list node (key, pointer, two links: 32 + 16), its table slot (two pointers and a control
/// byte at most 7/8 full: 20), the `Arc`'s block (two counts and the `Vec` header: 40 + 16) and
/// the floats' header (16).
const ENTRY_OVERHEAD: usize = 48 + 20 + 56 + 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_most_recently_used_within_its_capacity() {
        let v = |x: f32| Arc::new(vec![x; 4]);
        let mut c = EmbeddingCache::new(2);
        c.insert(1, v(1.0));
        c.insert(2, v(2.0));
        assert!(c.get(1).is_some());
        c.insert(3, v(3.0));
        assert!(c.get(2).is_none(), "the least recently used goes");
        assert_eq!(c.get(1).map(|e| e[0]), Some(1.0));
        assert_eq!(c.get(3).map(|e| e[0]), Some(3.0));
        assert_eq!(
            c.memory(4),
            (2 * (16 + ENTRY_OVERHEAD), 2 * (16 + ENTRY_OVERHEAD))
        );
        let mut off = EmbeddingCache::new(0);
        off.insert(1, v(1.0));
        assert!(off.get(1).is_none());
        assert_eq!(off.memory(4), (0, 0));
    }
}
