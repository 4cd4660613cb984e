//! Link slots: `u64` cells at stable addresses through which generated code leaves a block.
//!
//! Generated code loads its exit slot and jumps to the address it holds. While a slot is not
//! linked it holds the unlinked stub (which returns to the dispatcher); once linked it holds
//! the host address of the successor block.
//!
//! Invariants:
//! - The slots live in their own anonymous read-write, non-executable mapping that never moves
//!   or shrinks, so the addresses baked into generated code stay valid for the cache's life.
//! - Every slot in `[0, used)` holds either the unlinked stub or the host address of a live
//!   block (the owner of the arena keeps it so). Slots at or beyond `used` are never read by
//!   generated code.
//! - The arena only writes slots with atomic stores, so code running on another thread that
//!   reads a slot sees either the old or the new address, never a torn one.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{MmapOptions, MmapRaw};

use crate::CacheError;

/// A run of consecutive link slots, as returned by [`crate::CodeCache::alloc_slots`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct SlotRange {
    start: u32,
    len: u32,
}

impl SlotRange {
    /// The empty range (a block with no linkable exits).
    pub const EMPTY: SlotRange = SlotRange { start: 0, len: 0 };

    /// Number of slots in the range.
    pub fn len(self) -> usize {
        self.len as usize
    }

    /// Whether the range has no slots.
    pub fn is_empty(self) -> bool {
        self.len == 0
    }

    /// Arena indices of the slots.
    pub(crate) fn indices(self) -> Range<usize> {
        self.start as usize..self.start as usize + self.len as usize
    }
}

/// Bump allocator of link slots.
pub struct SlotArena {
    /// `capacity` u64 cells, read-write, never executable.
    map: MmapRaw,
    capacity: usize,
    used: usize,
    /// Value of an unlinked slot.
    stub: u64,
}

impl SlotArena {
    /// Maps `capacity` slots whose unlinked value is `stub`.
    pub fn new(capacity: usize, stub: u64) -> Result<Self, CacheError> {
        if capacity == 0 {
            return Err(CacheError::InvalidConfig("max_slots must be non-zero"));
        }
        if capacity > u32::MAX as usize {
            return Err(CacheError::InvalidConfig("max_slots must fit in 32 bits"));
        }
        let bytes = capacity * size_of::<u64>();
        let map = MmapRaw::from(MmapOptions::new().len(bytes).map_anon()?);
        Ok(Self {
            map,
            capacity,
            used: 0,
            stub,
        })
    }

    /// Allocates `n` consecutive slots, each holding the stub.
    pub fn alloc(&mut self, n: usize) -> Result<SlotRange, CacheError> {
        if n > self.capacity {
            return Err(CacheError::TooLarge {
                requested: n,
                capacity: self.capacity,
            });
        }
        if n > self.capacity - self.used {
            return Err(CacheError::Full);
        }
        // Both fit in u32: `used + n <= capacity <= u32::MAX`.
        let range = SlotRange {
            start: self.used as u32,
            len: n as u32,
        };
        self.used += n;
        for idx in range.indices() {
            self.store(idx, self.stub);
        }
        Ok(range)
    }

    /// Address of slot `idx` (stable for the arena's life).
    pub fn addr(&self, idx: usize) -> *mut u64 {
        assert!(idx < self.capacity, "slot {idx} out of range");
        self.base().wrapping_add(idx)
    }

    /// Index of the allocated slot at `addr`, if `addr` is exactly one.
    pub fn index_of(&self, addr: *mut u64) -> Option<usize> {
        let offset = (addr as usize).checked_sub(self.base() as usize)?;
        let idx = offset / size_of::<u64>();
        (offset % size_of::<u64>() == 0 && idx < self.used).then_some(idx)
    }

    /// Current value of slot `idx`.
    pub fn load(&self, idx: usize) -> u64 {
        self.cell(idx).load(Ordering::Acquire)
    }

    /// Sets slot `idx` to `value`.
    pub fn store(&self, idx: usize, value: u64) {
        self.cell(idx).store(value, Ordering::Release);
    }

    /// Resets slot `idx` to the stub.
    pub fn reset(&self, idx: usize) {
        self.store(idx, self.stub);
    }

    /// Resets every allocated slot to the stub and frees them all.
    pub fn reset_all(&mut self) {
        for idx in 0..self.used {
            self.reset(idx);
        }
        self.used = 0;
    }

    /// Slots allocated.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Slots in the arena.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn base(&self) -> *mut u64 {
        self.map.as_mut_ptr().cast()
    }

    fn cell(&self, idx: usize) -> &AtomicU64 {
        assert!(idx < self.capacity, "slot {idx} out of range");
        // SAFETY: `idx < capacity`, so the pointer lies inside the mapping, which is page-aligned
        // (hence 8-aligned), readable and writable, and lives as long as `self`. All accesses
        // from Rust go through atomics; generated code only performs aligned 8-byte loads, which
        // are single-copy atomic on the host.
        unsafe { AtomicU64::from_ptr(self.addr(idx)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_initialises_to_stub_and_addresses_are_stable() {
        let mut arena = SlotArena::new(8, 0xdead).unwrap();
        let a = arena.alloc(3).unwrap();
        let b = arena.alloc(2).unwrap();
        assert_eq!(a.indices(), 0..3);
        assert_eq!(b.indices(), 3..5);
        for idx in 0..5 {
            assert_eq!(arena.load(idx), 0xdead);
            // SAFETY: `addr` points into the live arena mapping.
            assert_eq!(unsafe { arena.addr(idx).read() }, 0xdead);
        }
        assert_eq!(arena.addr(1) as usize, arena.addr(0) as usize + 8);
        assert_eq!(arena.index_of(arena.addr(4)), Some(4));
        assert_eq!(arena.index_of(arena.addr(5)), None, "not allocated");
        let misaligned = (arena.addr(1) as usize + 1) as *mut u64;
        assert_eq!(arena.index_of(misaligned), None);
        assert_eq!(arena.index_of(std::ptr::null_mut()), None);
    }

    #[test]
    fn full_too_large_and_reset_all() {
        let mut arena = SlotArena::new(4, 7).unwrap();
        arena.alloc(3).unwrap();
        assert!(matches!(arena.alloc(2), Err(CacheError::Full)));
        assert!(matches!(arena.alloc(5), Err(CacheError::TooLarge { .. })));
        arena.store(2, 99);
        arena.reset_all();
        assert_eq!(arena.used(), 0);
        assert_eq!(arena.load(2), 7);
        assert_eq!(arena.alloc(4).unwrap().indices(), 0..4);
    }

    #[test]
    fn empty_range() {
        let mut arena = SlotArena::new(4, 7).unwrap();
        let r = arena.alloc(0).unwrap();
        assert!(r.is_empty());
        assert_eq!(r.len(), 0);
        assert!(SlotRange::EMPTY.is_empty());
    }
}
