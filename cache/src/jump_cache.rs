//! Direct-mapped jump cache: guest-virtual PC + mode → block, in front of the block map.
//!
//! Generated code probes it inline on indirect exits (see [`JumpCacheLayout`]), so its memory
//! layout and its hash ([`jump_cache_hash`]) are a contract with the JIT, not a detail.
//!
//! Invariants:
//! - The number of entries is a power of two; an entry lives at the index its PC and mode hash
//!   to ([`jump_cache_hash`] masked by `len - 1`), so a new entry simply evicts whatever
//!   collided with it.
//! - An entry is empty iff its host address is 0 (no code lives at address 0); an empty entry
//!   is all zeroes.
//! - The owner purges entries of invalidated blocks ([`JumpCache::retain`]) before their code
//!   can be reused, so a hit always names a live block. Generated code relies on this: it
//!   tail-calls the host address of a hit without asking anyone.
//! - The entries are one allocation, made by [`JumpCache::new`], that never moves, grows or
//!   shrinks while the cache lives: [`JumpCacheLayout::entries`] stays valid that long.
//! - An entry marked *global* was filled for a PC whose code page the caller found through
//!   a global translation (G set, CR4.PGE on): it survives [`JumpCache::clear_non_global`]
//!   (a MOV CR3), as that translation survives in a CPU's TLB; INVLPG and global flushes
//!   drop it like any other.
//! - Entries are only ever accessed through shared references with (relaxed) atomic
//!   operations, so generated code may read them through the raw address at any time. Writes
//!   are not atomic as a whole: generated code that reads entries runs on the thread that owns
//!   the cache, never during a write.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};

use crate::{BlockId, HostCode};

/// Multiplier of [`jump_cache_hash`] (Fibonacci hashing: 2^64 / golden ratio, odd).
pub const HASH_MUL: u64 = 0x9E37_79B9_7F4A_7C15;
/// Right shift of the product in [`jump_cache_hash`] (keeps its well-mixed high half).
pub const HASH_SHIFT: u32 = 32;
/// Left rotation of the mode before [`jump_cache_hash`] mixes it into the PC (the mode lands
/// in bits the PCs of one address space rarely differ in).
pub const HASH_MODE_ROTATE: u32 = 40;

/// The hash of `virt_pc` in `mode`; the entry index is `jump_cache_hash(virt_pc, mode) & mask`
/// (`mask = len - 1`). The single definition of the index: a pure function of its arguments,
/// which generated code reproduces from the constants in [`JumpCacheLayout`]:
///
/// ```text
/// ((virt_pc ^ rotate_left(mode as u64, HASH_MODE_ROTATE)) * HASH_MUL) >> HASH_SHIFT
/// ```
/// (64-bit wrapping multiplication, logical shift).
pub const fn jump_cache_hash(virt_pc: u64, mode: u32) -> u64 {
    (virt_pc ^ (mode as u64).rotate_left(HASH_MODE_ROTATE)).wrapping_mul(HASH_MUL) >> HASH_SHIFT
}

/// One entry. `#[repr(C)]` and 32-byte aligned: a power-of-two stride, never straddling a
/// cache line. The atomics have the size and layout of the plain integers.
#[repr(C, align(32))]
#[derive(Default)]
struct Entry {
    /// Guest-virtual PC.
    virt_pc: AtomicU64,
    /// Mode key.
    mode: AtomicU32,
    /// Raw [`BlockId`].
    id: AtomicU32,
    /// Host address of the block's code; 0 = empty.
    host: AtomicUsize,
    /// Nonzero: filled through a global translation (see the module invariants). In the
    /// padding: the layout generated code reads is unchanged.
    global: AtomicU32,
}

impl Entry {
    fn clear(&self) {
        self.host.store(0, Relaxed);
        self.virt_pc.store(0, Relaxed);
        self.mode.store(0, Relaxed);
        self.id.store(0, Relaxed);
        self.global.store(0, Relaxed);
    }

    fn is_global(&self) -> bool {
        self.global.load(Relaxed) != 0
    }
}

/// The raw layout of a [`JumpCache`], for generated code that probes it inline:
///
/// ```text
/// i     = (((pc ^ rotate_left(mode as u64, mode_rotate)) * hash_mul) >> hash_shift) & mask
/// entry = entries + i * entry_size
/// hit   = *(entry + off_pc) as u64 == pc && *(entry + off_mode) as u32 == mode
///         && *(entry + off_host) as u64 != 0
/// ```
/// On a hit, `*(entry + off_host)` is the host code of a live block for `pc` in `mode`.
/// Valid for the life of the cache (see the module invariants): flushes and invalidations
/// empty entries in place, the allocation never moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JumpCacheLayout {
    /// Address of entry 0.
    pub entries: usize,
    /// Number of entries minus one (entries are a power of two).
    pub mask: u64,
    /// Bytes from one entry to the next.
    pub entry_size: u32,
    /// Offset in an entry of the guest-virtual PC (`u64`).
    pub off_pc: u32,
    /// Offset in an entry of the mode key (`u32`).
    pub off_mode: u32,
    /// Offset in an entry of the host address (`u64`; 0 = empty).
    pub off_host: u32,
    /// [`HASH_MUL`].
    pub hash_mul: u64,
    /// [`HASH_SHIFT`].
    pub hash_shift: u32,
    /// [`HASH_MODE_ROTATE`].
    pub mode_rotate: u32,
}

/// How many filled entries [`JumpCache`] remembers before a clear falls back to sweeping
/// every entry.
const TRACKED: usize = 512;

/// The jump cache proper.
pub struct JumpCache {
    entries: Box<[Entry]>,
    mask: usize,
    /// Indices filled since the last clear (with repeats), while at most [`TRACKED`]: a clear
    /// then empties only these. Guests that flush often (a MOV CR3 per context switch, INVLPG
    /// per PTE edit) fill few entries in between, and sweeping all of them each time was most
    /// of the cost of those instructions.
    filled: Vec<u32>,
    /// More entries were filled than `filled` holds.
    overflowed: bool,
}

impl JumpCache {
    /// Creates an empty cache of `entries` entries; `None` unless a non-zero power of two.
    pub fn new(entries: usize) -> Option<Self> {
        entries.is_power_of_two().then(|| Self {
            entries: (0..entries).map(|_| Entry::default()).collect(),
            mask: entries - 1,
            filled: Vec::with_capacity(TRACKED),
            overflowed: false,
        })
    }

    /// Entry index of `virt_pc` in `mode`: [`jump_cache_hash`] masked to the size.
    pub fn index(&self, virt_pc: u64, mode: u32) -> usize {
        (jump_cache_hash(virt_pc, mode) & self.mask as u64) as usize
    }

    /// The raw layout, for generated code. See [`JumpCacheLayout`].
    pub fn layout(&self) -> JumpCacheLayout {
        JumpCacheLayout {
            entries: self.entries.as_ptr() as usize,
            mask: self.mask as u64,
            entry_size: size_of::<Entry>() as u32,
            off_pc: std::mem::offset_of!(Entry, virt_pc) as u32,
            off_mode: std::mem::offset_of!(Entry, mode) as u32,
            off_host: std::mem::offset_of!(Entry, host) as u32,
            hash_mul: HASH_MUL,
            hash_shift: HASH_SHIFT,
            mode_rotate: HASH_MODE_ROTATE,
        }
    }

    /// The block cached for `virt_pc` in `mode`.
    pub fn get(&self, virt_pc: u64, mode: u32) -> Option<(BlockId, HostCode)> {
        let e = &self.entries[self.index(virt_pc, mode)];
        let host = e.host.load(Relaxed);
        (host != 0 && e.virt_pc.load(Relaxed) == virt_pc && e.mode.load(Relaxed) == mode)
            .then(|| (BlockId(e.id.load(Relaxed)), HostCode(host)))
    }

    /// Caches `id` (whose code is at `host`) for `virt_pc` in `mode`.
    pub fn set(&mut self, virt_pc: u64, mode: u32, id: BlockId, host: HostCode) {
        self.set_kept(virt_pc, mode, id, host, false);
    }

    /// [`JumpCache::set`], marking the entry global if `global` (see the module invariants).
    pub fn set_kept(&mut self, virt_pc: u64, mode: u32, id: BlockId, host: HostCode, global: bool) {
        let i = self.index(virt_pc, mode);
        let e = &self.entries[i];
        if e.host.load(Relaxed) == 0 {
            if self.filled.len() < TRACKED {
                self.filled.push(i as u32);
            } else {
                self.overflowed = true;
            }
        }
        e.host.store(0, Relaxed);
        e.virt_pc.store(virt_pc, Relaxed);
        e.mode.store(mode, Relaxed);
        e.id.store(id.0, Relaxed);
        e.global.store(u32::from(global), Relaxed);
        e.host.store(host.0, Relaxed);
    }

    /// Indices of the entries that may hold code: the tracked ones, or every entry once
    /// more were filled than are tracked.
    fn candidates(&self) -> impl Iterator<Item = usize> + '_ {
        let all = self.overflowed.then_some(0..self.entries.len());
        let tracked = (!self.overflowed).then(|| self.filled.iter().map(|&i| i as usize));
        all.into_iter()
            .flatten()
            .chain(tracked.into_iter().flatten())
    }

    /// Empties every entry.
    pub fn clear(&mut self) {
        for i in self.candidates() {
            self.entries[i].clear();
        }
        self.filled.clear();
        self.overflowed = false;
    }

    /// Empties every entry but the global ones (a non-global TLB flush: MOV CR3).
    pub fn clear_non_global(&mut self) {
        let mut kept = Vec::new();
        for i in self.candidates() {
            let e = &self.entries[i];
            if !e.is_global() {
                e.clear();
            } else if e.host.load(Relaxed) != 0 {
                kept.push(i as u32);
            }
        }
        kept.sort_unstable();
        kept.dedup();
        // The kept entries are the filled ones now: a later clear must find them.
        self.overflowed = kept.len() > TRACKED;
        kept.truncate(TRACKED);
        self.filled = kept;
    }

    /// Empties every entry whose guest-virtual PC lies in `[start, end)`.
    pub fn clear_range(&mut self, start: u64, end: u64) {
        for i in self.candidates() {
            let e = &self.entries[i];
            if (start..end).contains(&e.virt_pc.load(Relaxed)) {
                e.clear();
            }
        }
    }

    /// Empties entry `i` if it holds block `id`.
    pub fn clear_if(&mut self, i: usize, id: BlockId) {
        if let Some(e) = self.entries.get(i) {
            if e.host.load(Relaxed) != 0 && e.id.load(Relaxed) == id.0 {
                e.clear();
            }
        }
    }

    /// Empties every entry whose block does not satisfy `keep`.
    pub fn retain(&mut self, mut keep: impl FnMut(BlockId) -> bool) {
        for e in self.entries.iter() {
            if e.host.load(Relaxed) != 0 && !keep(BlockId(e.id.load(Relaxed))) {
                e.clear();
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

    /// A clear empties every entry however many were filled (tracked, or past the tracking
    /// limit), and a retained-then-refilled entry is tracked again.
    #[test]
    fn clear_empties_tracked_and_untracked_fills() {
        for fills in [3u64, TRACKED as u64 + 100, 4 * 4096] {
            let mut jc = JumpCache::new(4096).unwrap();
            for round in 0..2 {
                for pc in 0..fills {
                    jc.set(
                        0x1000 + 7 * pc,
                        0,
                        BlockId(pc as u32),
                        HostCode(0x10 + pc as usize),
                    );
                }
                jc.retain(|id| id.0 % 2 == 0);
                jc.set(0x1000, 0, BlockId(0), HostCode(0x10));
                jc.clear();
                assert_eq!(live(&jc), 0, "{fills} fills, round {round}");
            }
        }
    }

    /// Entries holding code.
    fn live(jc: &JumpCache) -> usize {
        jc.entries
            .iter()
            .filter(|e| e.host.load(Relaxed) != 0)
            .count()
    }

    /// A non-global clear keeps exactly the global entries (tracked fills or past the
    /// tracking limit), and a full clear afterwards still finds and empties them.
    #[test]
    fn clear_non_global_keeps_global_entries_only() {
        for fills in [8u64, TRACKED as u64 + 100] {
            let mut jc = JumpCache::new(4096).unwrap();
            let pcs: Vec<u64> = (0..fills).map(|i| 0x1000 + 0x40 * i).collect();
            for (i, &pc) in pcs.iter().enumerate() {
                let global = i % 3 == 0;
                jc.set_kept(pc, 0, BlockId(i as u32), HostCode(0x10 + i), global);
            }
            jc.clear_non_global();
            for (i, &pc) in pcs.iter().enumerate() {
                let e = &jc.entries[jc.index(pc, 0)];
                if e.id.load(Relaxed) as usize != i {
                    continue; // evicted by a later fill of the same entry
                }
                let kept = jc.get(pc, 0).is_some();
                assert_eq!(kept, i % 3 == 0, "{fills} fills, entry {i}");
            }
            // A plain set over a kept entry is not global any more.
            jc.set(pcs[0], 0, BlockId(0), HostCode(0x10));
            jc.clear_non_global();
            assert_eq!(jc.get(pcs[0], 0), None);
            jc.clear();
            assert_eq!(live(&jc), 0, "{fills} fills");
        }
    }

    #[test]
    fn clear_range_drops_only_pcs_in_the_range() {
        for overflow in [false, true] {
            let mut jc = JumpCache::new(4096).unwrap();
            if overflow {
                for pc in 0..TRACKED as u64 + 1 {
                    jc.set(0x9000_0000 + pc, 1, BlockId(9), HostCode(0x99));
                }
            }
            let (inside, below, above) = (0x5123, 0x4FFF, 0x6000);
            for (pc, id) in [(inside, 1), (below, 2), (above, 3)] {
                jc.set(pc, 0, BlockId(id), HostCode(0x100 * id as usize));
            }
            jc.clear_range(0x5000, 0x6000);
            assert_eq!(jc.get(inside, 0), None);
            assert!(jc.get(below, 0).is_some() && jc.get(above, 0).is_some());
        }
    }

    /// What generated code reads: the raw entry `layout` places `pc` and `mode` at.
    fn raw_entry(l: &JumpCacheLayout, pc: u64, mode: u32) -> (u64, u32, usize) {
        let mix = pc ^ u64::from(mode).rotate_left(l.mode_rotate);
        let i = (mix.wrapping_mul(l.hash_mul) >> l.hash_shift) & l.mask;
        let e = l.entries + i as usize * l.entry_size as usize;
        // SAFETY: `i <= mask`, so `e` is an entry of the cache `l` describes, which the caller
        // keeps alive and does not write meanwhile; the offsets are those of its fields, which
        // have the layout of the plain integers read here.
        unsafe {
            (
                ((e + l.off_pc as usize) as *const u64).read(),
                ((e + l.off_mode as usize) as *const u32).read(),
                ((e + l.off_host as usize) as *const usize).read(),
            )
        }
    }

    #[test]
    fn layout_matches_the_entries_and_the_hash() {
        let mut jc = JumpCache::new(1024).unwrap();
        let l = jc.layout();
        assert_eq!((l.mask, l.entry_size), (1023, 32));
        assert_eq!((l.off_pc, l.off_mode, l.off_host), (0, 8, 16));
        assert_eq!(l.entries % 32, 0);
        let pcs = [0u64, 1, 0x1000, 0x40_1234, 0xffff_8000_0000_7000, u64::MAX];
        for (n, &pc) in pcs.iter().enumerate() {
            for mode in [0u32, 3, 64 << 8, u32::MAX] {
                let host = 0x10_0000 + n * 64;
                jc.set(pc, mode, BlockId(n as u32), HostCode(host));
                assert_eq!(raw_entry(&l, pc, mode), (pc, mode, host));
                assert_eq!(
                    jump_cache_hash(pc, mode) & l.mask,
                    jc.index(pc, mode) as u64
                );
            }
        }
        // Emptied entries read as all zeroes, in place.
        jc.retain(|_| false);
        assert_eq!(raw_entry(&l, 0x1000, 3), (0, 0, 0));
        jc.set(0x1000, 3, BlockId(1), HostCode(0x2000));
        jc.clear();
        assert_eq!(raw_entry(&l, 0x1000, 3), (0, 0, 0));
        assert_eq!(jc.layout(), l, "the entries never move");
    }

    #[test]
    fn hash_is_the_documented_formula() {
        for (pc, mode) in [(0u64, 0u32), (0x1000, 0x4000), (u64::MAX, u32::MAX)] {
            let mix = pc ^ (u64::from(mode) << 40 | u64::from(mode) >> 24);
            assert_eq!(
                jump_cache_hash(pc, mode),
                mix.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32
            );
        }
    }
}
