//! Interned strings: each distinct string stored once and named by a small number, for the
//! in-memory tables that repeat a few hundred names over many rows (the analytics table, the
//! feedback index). A leaf: imports nothing of the crate.

use std::collections::HashMap;

/// An interned string; 0 means "absent".
pub type Sym = u32;

/// Strings seen, each stored once.
#[derive(Default)]
pub struct Interner {
    names: Vec<String>,
    ids: HashMap<String, Sym>,
}

impl Interner {
    pub fn intern(&mut self, s: Option<&str>) -> Sym {
        let Some(s) = s else { return 0 };
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        self.names.push(s.to_string());
        let id = self.names.len() as Sym;
        self.ids.insert(s.to_string(), id);
        id
    }

    /// The id of a string already seen.
    pub fn get(&self, s: &str) -> Option<Sym> {
        self.ids.get(s).copied()
    }

    /// How many strings are interned (ids run from 1 to this).
    pub fn count(&self) -> usize {
        self.names.len()
    }

    pub fn name(&self, id: Sym) -> Option<&str> {
        (id > 0).then(|| self.names[id as usize - 1].as_str())
    }

    /// Bytes held: each string twice (the list and the table's key) with its headers.
    pub fn bytes(&self) -> usize {
        self.names.iter().map(|n| 2 * n.len() + 64).sum()
    }
}
