//! The feedback index: the newest `logging.feedback_window` served requests, each with the
//! models tried and the key that made it, in a fixed number of compact entries. Its tables are
//! sized for the whole window when the server starts, so it never grows or rehashes under
//! traffic, and [`Recent::bound_bytes`] says what it can take at most.

use super::intern::Interner;
use std::collections::{HashMap, VecDeque};
use switchyard_learn::hash::stable_hash;

/// A request id as the index keeps it: Switchyard's ids (32 lowercase hex digits) as their
/// number, any other id as a 128-bit hash of it.
pub type IdKey = u128;

pub fn id_key(id: &str) -> IdKey {
    let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if id.len() == 32 && id.bytes().all(hex) {
        if let Ok(n) = u128::from_str_radix(id, 16) {
            return n;
        }
    }
    let salted = stable_hash(&format!("feedback-index\0{id}"));
    (u128::from(stable_hash(id)) << 64) | u128::from(salted)
}

/// How many models an entry holds inline; a longer chain keeps the rest beside it.
const INLINE: usize = 3;

/// One served request: interned model names (serving model first; 0 ends the list) and key.
#[derive(Clone, Copy, Default)]
struct Entry {
    models: [u32; INLINE],
    key: u32,
}

/// A served request as the index gives it back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Served {
    /// The models that were tried, serving model first.
    pub models: Vec<String>,
    /// The key that made it (feedback is taken only from that key, or from an admin).
    pub key: Option<String>,
}

/// The newest `window` served requests by id, and the feedback sources given on them.
pub struct Recent {
    pub window: usize,
    entries: HashMap<IdKey, Entry>,
    /// Models past the inline ones, for the rare longer chain.
    more: HashMap<IdKey, Box<[u32]>>,
    /// Hashes of the feedback sources given per request (to say whether a post replaced one).
    given: HashMap<IdKey, Vec<u64>>,
    order: VecDeque<IdKey>,
    /// Model ids and key ids (a few hundred at most).
    names: Interner,
}

impl Recent {
    pub fn new(window: usize) -> Recent {
        let window = window.max(1);
        Recent {
            window,
            entries: HashMap::with_capacity(window),
            more: HashMap::new(),
            given: HashMap::new(),
            order: VecDeque::with_capacity(window),
            names: Interner::default(),
        }
    }

    pub fn insert(&mut self, request_id: &str, served: &Served) {
        let id = id_key(request_id);
        if self.entries.contains_key(&id) {
            return;
        }
        let mut e = Entry {
            key: self.names.intern(served.key.as_deref()),
            ..Entry::default()
        };
        let models: Vec<u32> = served
            .models
            .iter()
            .map(|m| self.names.intern(Some(m)))
            .collect();
        for (slot, m) in e.models.iter_mut().zip(&models) {
            *slot = *m;
        }
        if models.len() > INLINE {
            self.more.insert(id, models[INLINE..].into());
        }
        if self.order.len() == self.window {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
                self.more.remove(&old);
                self.given.remove(&old);
            }
        }
        self.entries.insert(id, e);
        self.order.push_back(id);
    }

    pub fn contains(&self, request_id: &str) -> bool {
        self.entries.contains_key(&id_key(request_id))
    }

    pub fn get(&self, request_id: &str) -> Option<Served> {
        let id = id_key(request_id);
        let e = self.entries.get(&id)?;
        let more = self.more.get(&id).map_or(&[][..], |m| &m[..]);
        let models = e
            .models
            .iter()
            .chain(more)
            .map_while(|&m| self.names.name(m))
            .map(str::to_owned)
            .collect();
        Some(Served {
            models,
            key: self.names.name(e.key).map(str::to_owned),
        })
    }

    /// Notes feedback from `source` on a request in the window; true when that source had
    /// already given feedback on it.
    pub fn give(&mut self, request_id: &str, source: &str) -> bool {
        let id = id_key(request_id);
        if !self.entries.contains_key(&id) {
            return false;
        }
        let h = stable_hash(source);
        let sources = self.given.entry(id).or_default();
        if sources.contains(&h) {
            return true;
        }
        sources.push(h);
        false
    }

    /// The bytes the index holds now (its tables as allocated, and the chains and feedback
    /// kept beside them).
    pub fn bytes(&self) -> usize {
        table_bytes::<IdKey, Entry>(self.entries.capacity())
            + self.order.capacity() * std::mem::size_of::<IdKey>()
            + self.more.values().map(|m| 4 * m.len() + 48).sum::<usize>()
            + self
                .given
                .values()
                .map(|g| 8 * g.capacity() + 64)
                .sum::<usize>()
            + self.names.bytes()
    }

    /// The most the index takes: its two tables, full. Longer chains and feedback add about
    /// 50 bytes per request that has them.
    pub fn bound_bytes(&self) -> usize {
        table_bytes::<IdKey, Entry>(self.entries.capacity().max(self.window))
            + self.window * std::mem::size_of::<IdKey>()
            + self.names.bytes()
    }
}

/// A hash table's allocation for `capacity` entries (hashbrown: a power-of-two number of
/// buckets at most 7/8 full, one control byte each).
pub fn table_bytes<K, V>(capacity: usize) -> usize {
    let buckets = (capacity * 8 / 7).next_power_of_two();
    buckets * (std::mem::size_of::<(K, V)>() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(models: &[&str], key: Option<&str>) -> Served {
        Served {
            models: models.iter().map(|m| m.to_string()).collect(),
            key: key.map(str::to_owned),
        }
    }

    #[test]
    fn keeps_the_newest_window_with_chains_of_any_length() {
        let mut r = Recent::new(3);
        let bound = r.bound_bytes();
        let long = served(&["a", "b", "c", "d", "e"], Some("vk_1"));
        r.insert("0123456789abcdef0123456789abcdef", &long);
        r.insert("r2", &served(&["a"], None));
        assert_eq!(
            r.get("0123456789abcdef0123456789abcdef"),
            Some(long.clone())
        );
        assert_eq!(r.get("r2"), Some(served(&["a"], None)));
        // An id that reads as the same number in another spelling is another request.
        assert_eq!(r.get("0123456789ABCDEF0123456789ABCDEF"), None);
        assert!(!r.give("r2", "user"));
        assert!(r.give("r2", "user"));
        assert!(!r.give("r2", "app"));
        for i in 3..6 {
            r.insert(&format!("r{i}"), &served(&["x"], None));
        }
        assert!(!r.contains("0123456789abcdef0123456789abcdef") && !r.contains("r2"));
        assert!(r.contains("r5"));
        assert!(
            !r.give("r2", "user"),
            "feedback on a request gone from the window"
        );
        assert_eq!(r.bound_bytes(), bound + r.names.bytes());
        assert!(r.bytes() <= r.bound_bytes() + 200);
    }
}
