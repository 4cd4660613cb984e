//! The translated-code cache: executable memory, the block map, a jump cache, block links,
//! a page → blocks index for invalidation, flushes and counters. It knows nothing about x86:
//! code is opaque host machine code produced by the JIT.
//!
//! ```
//! use cache::{BlockInfo, BlockKey, CacheConfig, CodeCache, HostCode};
//!
//! let cfg = CacheConfig { code_bytes: 1 << 16, max_slots: 64, jump_cache_entries: 16 };
//! // Address every link slot holds while unlinked (here: a dummy; normally a dispatcher stub).
//! let mut cache = CodeCache::new(cfg, HostCode(0x1000)).unwrap();
//!
//! // `mov eax, 42; ret`
//! let host = cache.alloc_code(&[0xB8, 0x2A, 0x00, 0x00, 0x00, 0xC3]).unwrap();
//! // One exit slot (real generated code would jump through `cache.slot_addr(slots, 0)`).
//! let slots = cache.alloc_slots(1).unwrap();
//! let key = BlockKey { phys_pc: 0x7000, virt_pc: 0x7000, mode: 0 };
//! let id = cache.insert(BlockInfo {
//!     key,
//!     virt_pc: 0xffff_8000_0000_7000,
//!     host,
//!     code_len: 6,
//!     phys_ranges: vec![(0x7000, 0x7005)],
//!     guest_insns: 1,
//!     slots,
//! });
//! assert_eq!(cache.lookup(key), Some((id, host)));
//!
//! # #[cfg(target_arch = "x86_64")]
//! # {
//! // SAFETY: `host` points at a complete x86-64 function in the executable view that follows
//! // the C calling convention and returns a value in eax.
//! let f: extern "C" fn() -> u32 = unsafe { std::mem::transmute(host.0) };
//! assert_eq!(f(), 42);
//! # }
//!
//! // A guest store to that page throws the block away.
//! assert!(cache.page_has_code(0x7003));
//! assert_eq!(cache.invalidate_range(0x7003, 0x7004), 1);
//! assert_eq!(cache.lookup(key), None);
//! ```
//!
//! Module map: [`exec_mem`] (W^X executable memory), [`slots`] (link slots), [`jump_cache`],
//! [`page_index`] (page → blocks and the code-page bitmap), [`stats`], and [`code_cache`], which
//! ties them together in [`CodeCache`].
//!
//! The cache is single-owner: every mutating operation takes `&mut self`, and callers guarantee
//! that no generated code is executing while blocks are invalidated or the cache is flushed.

pub mod code_cache;
pub mod exec_mem;
pub mod jump_cache;
pub mod page_index;
pub mod slots;
pub mod stats;

pub use code_cache::CodeCache;
pub use jump_cache::{jump_cache_hash, JumpCacheLayout};
pub use page_index::{PAGE_SHIFT, PAGE_SIZE};
pub use slots::SlotRange;
pub use stats::CacheStats;

/// Key of a translated block: the guest-physical address of its first byte and the mode bits
/// that change its meaning (opaque to the cache).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct BlockKey {
    /// Guest-physical address of the block's first byte.
    pub phys_pc: u64,
    /// Guest-virtual address of the block's first byte: translated code bakes in addresses
    /// computed from it (branch targets, RIP-relative operands, return addresses), so the
    /// same bytes reached through another virtual address need their own translation.
    pub virt_pc: u64,
    /// Mode bits (CPL, code size, paging bits, ...), opaque to the cache.
    pub mode: u32,
}

/// Address of host code in the executable view.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct HostCode(pub usize);

impl HostCode {
    /// "No host code": a block the runtime executes another way (its interpreter tier). The
    /// cache tracks such a block's pages and bytes like any other, but never lets generated
    /// code reach it: it is never linked to and never enters the jump cache.
    pub const NONE: HostCode = HostCode(0);

    /// Whether this is [`HostCode::NONE`].
    pub fn is_none(self) -> bool {
        self == HostCode::NONE
    }
}

/// Handle of a block in a [`CodeCache`].
///
/// Handles are not reused for at least 2^31 insertions, so a stale handle (of an invalidated
/// or flushed block) is simply reported as not live.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct BlockId(u32);

impl BlockId {
    /// The raw handle value (for logs and statistics).
    pub fn raw(self) -> u32 {
        self.0
    }
}

/// Sizes of a [`CodeCache`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CacheConfig {
    /// Bytes of executable memory (rounded up to 4 KiB). Default 64 MiB.
    pub code_bytes: usize,
    /// Number of link slots. Default 2^20.
    pub max_slots: usize,
    /// Entries of the direct-mapped jump cache; a power of two. Default 4096.
    pub jump_cache_entries: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            code_bytes: 64 << 20,
            max_slots: 1 << 20,
            jump_cache_entries: 4096,
        }
    }
}

/// What the cache knows about one translated block.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BlockInfo {
    /// The block's key (physical PC + mode).
    pub key: BlockKey,
    /// Guest-virtual address of its first byte when it was translated.
    pub virt_pc: u64,
    /// Its code, as returned by [`CodeCache::alloc_code`], or [`HostCode::NONE`].
    pub host: HostCode,
    /// Length of its code in bytes.
    pub code_len: usize,
    /// `[start, end)` guest-physical byte ranges its code came from; usually one, two if the
    /// block crosses a page.
    pub phys_ranges: Vec<(u64, u64)>,
    /// Number of guest instructions it covers.
    pub guest_insns: u32,
    /// Its exit link slots, as returned by [`CodeCache::alloc_slots`].
    pub slots: SlotRange,
}

impl BlockInfo {
    /// Whether any of the block's guest-physical ranges overlaps `[start, end)`.
    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        self.phys_ranges.iter().any(|&(s, e)| s < end && start < e)
    }

    /// Whether all of the block's bytes lie on the 4 KiB page of its first byte (false for
    /// a block without ranges).
    pub fn on_one_page(&self) -> bool {
        let page = |a: u64| a >> page_index::PAGE_SHIFT;
        let Some(&(first, _)) = self.phys_ranges.first() else {
            return false;
        };
        self.phys_ranges.iter().all(|&(s, e)| {
            page(s) == page(first) && page(e.max(s.saturating_add(1)) - 1) == page(first)
        })
    }
}

/// Errors of the code cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The code cache is full; flush it and retry.
    #[error("the code cache is full; flush it and retry")]
    Full,
    /// A request of {requested} (bytes or slots) can never fit in a capacity of {capacity}.
    #[error("a request of {requested} (bytes or slots) can never fit in a capacity of {capacity}")]
    TooLarge {
        /// Bytes of code or number of slots asked for.
        requested: usize,
        /// The whole capacity of the cache.
        capacity: usize,
    },
    /// Invalid cache configuration: {0}.
    #[error("invalid cache configuration: {0}")]
    InvalidConfig(&'static str),
    /// Could not create or map cache memory: {0}.
    #[error("could not create or map cache memory: {0}")]
    Map(#[from] std::io::Error),
}
