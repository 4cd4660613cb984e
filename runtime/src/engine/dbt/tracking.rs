//! The DBT engine's code cache as the machine's [`CodeTracking`], and the engine's way back
//! to it.
//!
//! Ownership: [`super::Dbt::new`] creates the [`CodeCache`] and installs it in the machine
//! as a `Box<dyn CodeTracking>`; the machine and the helpers see only the trait, and only
//! this engine looks through it to the cache ([`cache`], [`cache_mut`], a checked
//! downcast by type: [`Machine::code_tracking_as`]).
//! The box lives in the machine rather than behind an `Rc<RefCell<_>>` shared with the
//! engine because:
//! - every use of the cache, the engine's and the machine's alike, is then a borrow of the
//!   one `&mut Machine`: the compiler rules out a second, overlapping borrow (a store's
//!   invalidation while the engine holds the cache, say), so no runtime borrow check exists
//!   that a guest could make fail;
//! - the machine stays `Send` (a `Vm` moves between threads), which an `Rc` would forbid
//!   and which an `unsafe impl Send` could not promise, `&mut Machine` being public (a
//!   swapped-out machine would share the `Rc` with the engine left behind);
//! - the hot paths pay one indirect call (TLB fill, the `Lookup` helper) or a compare with
//!   the type id the machine recorded at installation (the engine's own accesses, e.g. the
//!   cold tier's per-block liveness check), no lock and no borrow flag.
//!
//! Invariants:
//! - The installed tracking is this engine's cache from [`super::Dbt::new`] until the `Vm`
//!   replaces the engine (it removes the tracking first), so [`cache_mut`] finding none is
//!   an engine bug, never a guest's doing.
//! - Generated code embeds raw addresses into the cache: the store guard bitmap
//!   ([`CodeCache::store_guard`], sized once by `set_phys_limit` before any code is
//!   generated), the jump cache ([`CodeCache::jump_cache_layout`]) and the link slots. They
//!   live in the cache's own heap and mmap allocations, which neither moving the box nor
//!   moving the machine moves, and the cache is dropped only with the tracking, after
//!   which no code generated for it runs.

use cache::{BlockKey, CodeCache, HostCode};
use translator::jit::{JumpCacheLayout, MemoryModel};
use translator::state::Tlb;
use translator::{CpuState, Mode};

use crate::machine::{CodeTracking, Fetched, Machine};
use crate::memory::PAGE_SIZE;

impl CodeTracking for CodeCache {
    fn page_has_code(&self, phys: u64) -> bool {
        CodeCache::page_has_code(self, phys)
    }

    fn bytes_have_code(&self, start: u64, end: u64) -> bool {
        CodeCache::bytes_have_code(self, start, end)
    }

    fn invalidate(&mut self, start: u64, end: u64) {
        self.invalidate_range(start, end);
    }

    fn forget_virtual(&mut self, start: u64, end: u64) {
        self.jump_cache_clear_range(start, end);
    }

    fn forget_all_virtual(&mut self, keep_global: bool) {
        match keep_global {
            true => self.jump_cache_clear_non_global(),
            false => self.jump_cache_clear(),
        }
    }

    fn jump_target(&self, pc: u64, mode: u32) -> Option<HostCode> {
        self.jump_cache_get(pc, mode)
    }

    fn find_compiled(&mut self, key: BlockKey) -> Option<HostCode> {
        let (id, host) = self.lookup(key).filter(|(_, host)| !host.is_none())?;
        self.jump_cache_set(key.virt_pc, key.mode, id);
        Some(host)
    }

    fn exit_stub(&self) -> HostCode {
        self.unlinked_stub()
    }
}

/// The engine's code cache in `m`, if this engine installed it.
pub(crate) fn cache(m: &Machine) -> Option<&CodeCache> {
    m.code_tracking_as()
}

/// The code cache [`super::Dbt::new`] installed in `m`.
pub(super) fn installed(m: &Machine) -> &CodeCache {
    cache(m).expect("the machine's code tracking is the DBT engine's code cache")
}

/// The code cache [`super::Dbt::new`] installed in `m`, mutably.
pub(super) fn cache_mut(m: &mut Machine) -> &mut CodeCache {
    m.code_tracking_as_mut()
        .expect("the machine's code tracking is the DBT engine's code cache")
}

/// How code for `mode` reaches guest memory.
pub(super) fn memory_model(m: &Machine, mode: Mode) -> MemoryModel {
    if mode.paging {
        return MemoryModel::Tlb {
            set: Tlb::set_for(mode.cpl),
        };
    }
    let cache = installed(m);
    MemoryModel::Flat {
        ram_base: m.ram.host_base(),
        ram_size: m.ram.size(),
        code_bitmap: cache.store_guard() as usize,
        code_bitmap_len: cache.phys_limit() / PAGE_SIZE,
    }
}

/// The jump cache layout as the JIT takes it.
pub(super) fn jit_jump_cache(l: cache::JumpCacheLayout) -> JumpCacheLayout {
    JumpCacheLayout {
        entries: l.entries,
        mask: l.mask,
        entry_size: l.entry_size,
        off_pc: l.off_pc,
        off_mode: l.off_mode,
        off_host: l.off_host,
        hash_mul: l.hash_mul,
        hash_shift: l.hash_shift,
        mode_rotate: l.mode_rotate,
    }
}

/// The pages of a new block's `ranges` that hold no code yet (called before the block is
/// entered into the cache). Only those can have soft-TLB entries that allow writes: a fill
/// never grants writes to a page with code, and the first block on a page revoked them.
/// (Scanning the whole TLB for every new block was 6% of recording cold code.)
pub(super) fn code_free_pages(m: &Machine, ranges: &[(u64, u64)]) -> [Option<u64>; 2] {
    let mut fresh = [None; 2];
    for (slot, &(start, _)) in fresh.iter_mut().zip(ranges) {
        let page = start & !(PAGE_SIZE - 1);
        if !cache(m).is_some_and(|c| c.page_has_code(page)) {
            *slot = Some(page);
        }
    }
    fresh
}

/// A block's bytes became code: the pages that had none (`fresh`, from [`code_free_pages`])
/// lose their soft-TLB write permission, and a last instruction running onto the next page
/// makes that page's fetch real (A bits).
pub(super) fn protect_code(
    m: &mut Machine,
    cpu: &mut CpuState,
    pc: u64,
    fetched: &Fetched,
    byte_len: u64,
    fresh: [Option<u64>; 2],
) {
    for page in fresh.into_iter().flatten() {
        m.protect_code_page(cpu, page);
    }
    if let Some(next) = fetched
        .next_phys
        .filter(|_| byte_len > fetched.first_len as u64)
    {
        m.next_code_page_is(cpu, pc, next);
    }
}
