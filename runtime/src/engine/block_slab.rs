//! A map from block ids to values that also hands out each entry's position, so that a
//! caller who kept the position (the cold tier's lookup table, its last found block) reaches
//! the value again by indexing instead of hashing. Chaining one cold block to the next
//! hashed twice per block, about a tenth of what a short block cost in the interpreter tier.
//!
//! Invariants:
//! - `index[id] == i` exactly when `entries[i]` holds `id`'s value; `free` lists the empty
//!   entries. A position is only a hint: [`BlockSlab::get_at`] checks the id stored with
//!   the value, so a stale position (its entry freed or reused) finds nothing.

use cache::BlockId;
use hashbrown::HashMap;

/// Values by block id, each at a stable position while it is in the map.
pub struct BlockSlab<T> {
    entries: Vec<Option<(BlockId, T)>>,
    free: Vec<u32>,
    index: HashMap<BlockId, u32>,
}

impl<T> Default for BlockSlab<T> {
    fn default() -> Self {
        BlockSlab {
            entries: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<T> BlockSlab<T> {
    /// Entries held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether `id` has a value.
    pub fn contains(&self, id: BlockId) -> bool {
        self.index.contains_key(&id)
    }

    /// The position of `id`'s value.
    pub fn position(&self, id: BlockId) -> Option<u32> {
        self.index.get(&id).copied()
    }

    /// `id`'s value, if it is at position `at`.
    #[inline]
    pub fn get_at(&mut self, at: u32, id: BlockId) -> Option<&mut T> {
        match self.entries.get_mut(at as usize) {
            Some(Some((held, v))) if *held == id => Some(v),
            _ => None,
        }
    }

    /// `id`'s value.
    pub fn get(&mut self, id: BlockId) -> Option<&mut T> {
        let at = self.position(id)?;
        self.get_at(at, id)
    }

    /// Sets `id`'s value (replacing any), returning its position.
    pub fn insert(&mut self, id: BlockId, v: T) -> u32 {
        if let Some(at) = self.position(id) {
            self.entries[at as usize] = Some((id, v));
            return at;
        }
        let at = match self.free.pop() {
            Some(at) => {
                self.entries[at as usize] = Some((id, v));
                at
            }
            None => {
                self.entries.push(Some((id, v)));
                (self.entries.len() - 1) as u32
            }
        };
        self.index.insert(id, at);
        at
    }

    /// Keeps only the values of ids `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(BlockId) -> bool) {
        for (at, e) in self.entries.iter_mut().enumerate() {
            if let Some((id, _)) = e {
                if !keep(*id) {
                    self.index.remove(id);
                    self.free.push(at as u32);
                    *e = None;
                }
            }
        }
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.free.clear();
        self.index.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Block ids are only made by the code cache; these tests need a few distinct ones.
    fn ids(n: usize) -> Vec<BlockId> {
        let mut c = cache::CodeCache::new(cache::CacheConfig::default(), cache::HostCode(0x1000))
            .expect("a code cache");
        (0..n as u64)
            .map(|i| {
                c.insert(cache::BlockInfo {
                    key: cache::BlockKey {
                        phys_pc: i * 16,
                        virt_pc: i * 16,
                        mode: 0,
                    },
                    virt_pc: i * 16,
                    host: cache::HostCode::NONE,
                    code_len: 0,
                    phys_ranges: vec![(i * 16, i * 16 + 1)],
                    guest_insns: 1,
                    slots: cache::SlotRange::EMPTY,
                })
            })
            .collect()
    }

    #[test]
    fn positions_find_values_until_their_entry_is_freed_or_reused() {
        let id = ids(3);
        let mut s = BlockSlab::default();
        let a = s.insert(id[0], 'a');
        let b = s.insert(id[1], 'b');
        assert_eq!(s.get_at(a, id[0]).copied(), Some('a'));
        assert_eq!(s.get_at(b, id[0]), None, "another id's position");
        assert_eq!(s.get(id[1]).copied(), Some('b'));
        assert_eq!(s.insert(id[0], 'A'), a, "replacing keeps the position");
        s.retain(|i| i != id[0]);
        assert!(!s.contains(id[0]) && s.len() == 1);
        assert_eq!(s.get_at(a, id[0]), None, "freed");
        assert_eq!(s.insert(id[2], 'c'), a, "the freed entry is reused");
        assert_eq!(s.get_at(a, id[0]), None, "reused for another id");
        assert_eq!(s.get(id[2]).copied(), Some('c'));
        s.clear();
        assert_eq!(s.get_at(b, id[1]), None);
        assert_eq!(s.len(), 0);
    }
}
