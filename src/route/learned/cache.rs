//! A bounded least-recently-used cache of prompt embeddings, keyed by the prompt text's
//! stable hash.

use std::collections::HashMap;
use std::sync::Arc;

/// A bounded least-recently-used cache of prompt embeddings.
pub struct EmbeddingCache {
    capacity: usize,
    tick: u64,
    entries: HashMap<u64, (Arc<Vec<f32>>, u64)>,
}

impl EmbeddingCache {
    pub fn get(&mut self, key: u64) -> Option<Arc<Vec<f32>>> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(&key).map(|(v, used)| {
            *used = tick;
            v.clone()
        })
    }

    pub fn insert(&mut self, key: u64, v: Arc<Vec<f32>>) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| *k)
            {
                self.entries.remove(&oldest);
            }
        }
        self.tick += 1;
        self.entries.insert(key, (v, self.tick));
    }
}

impl EmbeddingCache {
    pub fn new(capacity: usize) -> EmbeddingCache {
        EmbeddingCache {
            capacity,
            tick: 0,
            entries: HashMap::new(),
        }
    }

    /// Bytes held now, and the most `capacity` embeddings of `dimension` floats take.
    pub fn memory(&self, dimension: usize) -> (usize, usize) {
        let entry = |dim: usize| dim * 4 + ENTRY_OVERHEAD;
        let now = self.entries.values().map(|(v, _)| entry(v.len())).sum();
        (now, self.capacity * entry(dimension))
    }
}

/// Per embedding beside its floats: the `Vec` and `Arc` headers, the allocator's chunk header
/// and the table slot (key, pointer, tick; the table is at most 7/8 full).
const ENTRY_OVERHEAD: usize = 24 + 16 + 16 + 32;
