//! Direct-mapped jump cache: guest-virtual PC + mode → block, in front of the block map.
//!
//! Invariants:
//! - The number of entries is a power of two; an entry lives at the index its PC and mode hash
//!   to, so a new entry simply evicts whatever collided with it.
//! - An entry is empty iff its host address is 0 (no code lives at address 0).
//! - The owner purges entries of invalidated blocks ([`JumpCache::retain`]) before their code
//!   can be reused, so a hit always names a live block.

use crate::{BlockId, HostCode};

#[derive(Clone, Copy, Default)]
struct Entry {
    virt_pc: u64,
    mode: u32,
    id: u32,
    host: usize,
}

/// The jump cache proper.
pub struct JumpCache {
    entries: Box<[Entry]>,
    mask: usize,
}

impl JumpCache {
    /// Creates an empty cache of `entries` entries; `None` unless a non-zero power of two.
    pub fn new(entries: usize) -> Option<Self> {
        entries.is_power_of_two().then(|| Self {
            entries: vec![Entry::default(); entries].into_boxed_slice(),
            mask: entries - 1,
        })
    }

    /// Entry index of `virt_pc` in `mode`.
    pub fn index(&self, virt_pc: u64, mode: u32) -> usize {
        let h = (virt_pc ^ u64::from(mode).rotate_left(40)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (h >> 32) as usize & self.mask
    }

    /// The block cached for `virt_pc` in `mode`.
    pub fn get(&self, virt_pc: u64, mode: u32) -> Option<(BlockId, HostCode)> {
        let e = &self.entries[self.index(virt_pc, mode)];
        (e.host != 0 && e.virt_pc == virt_pc && e.mode == mode)
            .then_some((BlockId(e.id), HostCode(e.host)))
    }

    /// Caches `id` (whose code is at `host`) for `virt_pc` in `mode`.
    pub fn set(&mut self, virt_pc: u64, mode: u32, id: BlockId, host: HostCode) {
        let i = self.index(virt_pc, mode);
        self.entries[i] = Entry {
            virt_pc,
            mode,
            id: id.0,
            host: host.0,
        };
    }

    /// Empties every entry.
    pub fn clear(&mut self) {
        self.entries.fill(Entry::default());
    }

    /// Empties every entry whose block does not satisfy `keep`.
    pub fn retain(&mut self, mut keep: impl FnMut(BlockId) -> bool) {
        for e in self.entries.iter_mut() {
            if e.host != 0 && !keep(BlockId(e.id)) {
                *e = Entry::default();
            }
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Always false: a jump cache has at least one entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_power_of_two() {
        assert!(JumpCache::new(0).is_none());
        assert!(JumpCache::new(12).is_none());
        assert_eq!(JumpCache::new(1).unwrap().len(), 1);
    }

    #[test]
    fn hit_needs_same_pc_and_mode() {
        let mut jc = JumpCache::new(64).unwrap();
        jc.set(0x1000, 3, BlockId(5), HostCode(0xabc0));
        assert_eq!(jc.get(0x1000, 3), Some((BlockId(5), HostCode(0xabc0))));
        assert_eq!(jc.get(0x1000, 0), None);
        assert_eq!(jc.get(0x1001, 3), None);
    }

    #[test]
    fn collision_evicts() {
        let mut jc = JumpCache::new(16).unwrap();
        let a = 0x40_0000;
        let b = (a + 1..)
            .find(|&pc| jc.index(pc, 0) == jc.index(a, 0))
            .unwrap();
        jc.set(a, 0, BlockId(1), HostCode(0x1000));
        jc.set(b, 0, BlockId(2), HostCode(0x2000));
        assert_eq!(jc.get(a, 0), None);
        assert_eq!(jc.get(b, 0), Some((BlockId(2), HostCode(0x2000))));
    }

    #[test]
    fn nearby_pcs_spread() {
        let jc = JumpCache::new(4096).unwrap();
        let mut seen = std::collections::HashSet::new();
        for pc in 0x1000..0x1000 + 256u64 {
            seen.insert(jc.index(pc, 0));
        }
        assert!(seen.len() > 200, "only {} distinct indices", seen.len());
    }

    #[test]
    fn retain_and_clear() {
        let mut jc = JumpCache::new(16).unwrap();
        let (a, b) = (
            0x10,
            (0x11..)
                .find(|&pc| jc.index(pc, 0) != jc.index(0x10, 0))
                .unwrap(),
        );
        jc.set(a, 0, BlockId(1), HostCode(0x1000));
        jc.set(b, 0, BlockId(2), HostCode(0x2000));
        jc.retain(|id| id != BlockId(1));
        assert_eq!(jc.get(a, 0), None);
        assert!(jc.get(b, 0).is_some());
        jc.clear();
        assert_eq!(jc.get(b, 0), None);
    }
}
