//! [`CodeCache`]: the block map, links, invalidation and flushes over executable memory, link
//! slots, the page index and the jump cache.
//!
//! Invariants (between calls):
//! - A block is *live* iff `blocks[id - epoch_base]` is `Some`. Exactly the live blocks are in
//!   `by_key` (one per key), `by_host`, the page index (on every page their ranges touch) and
//!   possibly the jump cache; nothing else is.
//! - Every allocated slot holds the unlinked stub, or the host address of the live block in its
//!   `target`. `target` is set only for slots owned by a live block, and then the target's
//!   `incoming` list holds the slot exactly once (links are recorded at both ends), so
//!   invalidating a block can find and reset every slot that jumps to it.
//! - Slots of an invalidated block are reset to the stub and lose their owner; they are leaked
//!   (never handed out again) until the next flush. Code of an invalidated block is likewise
//!   leaked until the flush: nothing can reach it any more, since no slot, map or jump-cache
//!   entry names it.
//! - A flush resets every slot to the stub before code memory is rewound, so no slot ever points
//!   at reused code. Block ids are not reused for at least 2^31 insertions.
//! - The jump cache names live blocks only: removing a block (invalidation, replacement by the
//!   same key) purges its entries, and a flush empties it before code memory is reused.
//!   A block knows the entry it was last cached in (`cached_at`), or that it was cached in
//!   more than one (`cached_at == SCATTERED`, only when cached under a PC other than its
//!   own): purging a block is one entry, not a sweep of them all, unless it is scattered.
//!   Generated code probes it inline and tail-calls a hit unchecked, so this is a safety
//!   property, not just a matter of hit rates.
//!
//! The caller guarantees that no generated code runs during [`CodeCache::invalidate_range`],
//! [`CodeCache::flush`] and the other `&mut self` methods (they are called from the dispatcher).

use std::collections::BTreeMap;

use hashbrown::HashMap;

use crate::exec_mem::ExecMemory;
use crate::jump_cache::{JumpCache, JumpCacheLayout};
use crate::page_index::{pages_of, CodeBytes, PageIndex, PAGE_SHIFT};
use crate::slots::{SlotArena, SlotRange};
use crate::stats::{CacheStats, Counters};
use crate::{BlockId, BlockInfo, BlockKey, CacheConfig, CacheError, HostCode};

/// Blocks per flush epoch, and the point at which block ids wrap back to 0 on a flush.
const ID_WRAP: u32 = 1 << 31;

/// What the cache knows about one allocated slot.
#[derive(Clone, Copy, Default)]
struct SlotMeta {
    /// The live block whose exit this slot is.
    owner: Option<BlockId>,
    /// The live block the slot is linked to.
    target: Option<BlockId>,
}

/// A live block.
struct Block {
    info: BlockInfo,
    /// Slots (arena indices) linked to this block.
    incoming: Vec<u32>,
    /// The jump-cache entry the block was cached in ([`NOT_CACHED`], or [`SCATTERED`] if
    /// it was cached in more than one). See the module invariants.
    cached_at: u32,
}

/// [`Block::cached_at`] of a block never put in the jump cache.
const NOT_CACHED: u32 = u32::MAX;
/// [`Block::cached_at`] of a block put in more than one jump-cache entry: purging it sweeps
/// them all.
const SCATTERED: u32 = u32::MAX - 1;

/// The translated-code cache. See the crate and module documentation.
pub struct CodeCache {
    stub: HostCode,
    code: ExecMemory,
    slots: SlotArena,
    /// One entry per allocated slot.
    slot_meta: Vec<SlotMeta>,
    /// Blocks of this flush epoch, indexed by `id - epoch_base`; `None` once invalidated.
    blocks: Vec<Option<Block>>,
    epoch_base: u32,
    /// The block of each key, with what a lookup answers besides (its code, and
    /// [`BlockInfo::on_one_page`]) so that a hit reads no other memory.
    by_key: HashMap<BlockKey, (BlockId, HostCode, bool)>,
    by_host: BTreeMap<usize, BlockId>,
    pages: PageIndex,
    masks: CodeBytes,
    jump: JumpCache,
    counters: Counters,
}

impl CodeCache {
    /// Creates an empty cache. Every link slot holds `unlinked_stub` while it is not linked:
    /// generated code tail-calls through its slots, so the stub must return to the dispatcher.
    pub fn new(cfg: CacheConfig, unlinked_stub: HostCode) -> Result<Self, CacheError> {
        let jump = JumpCache::new(cfg.jump_cache_entries).ok_or(CacheError::InvalidConfig(
            "jump_cache_entries must be a non-zero power of two",
        ))?;
        Ok(Self {
            stub: unlinked_stub,
            code: ExecMemory::new(cfg.code_bytes)?,
            slots: SlotArena::new(cfg.max_slots, unlinked_stub.0 as u64)?,
            slot_meta: Vec::new(),
            blocks: Vec::new(),
            epoch_base: 0,
            by_key: HashMap::new(),
            by_host: BTreeMap::new(),
            pages: PageIndex::default(),
            masks: CodeBytes::default(),
            jump,
            counters: Counters::default(),
        })
    }

    /// The address unlinked slots hold.
    pub fn unlinked_stub(&self) -> HostCode {
        self.stub
    }

    // ---- executable memory and slots ----

    /// Copies `code` into executable memory (16-byte aligned) and returns its address in the
    /// executable view. [`CacheError::Full`] when out of space: flush and retry.
    pub fn alloc_code(&mut self, code: &[u8]) -> Result<HostCode, CacheError> {
        self.code.alloc(code).map(HostCode)
    }

    /// Allocates `n` link slots, each holding the unlinked stub. [`CacheError::Full`] when out
    /// of slots: flush and retry.
    pub fn alloc_slots(&mut self, n: usize) -> Result<SlotRange, CacheError> {
        let range = self.slots.alloc(n)?;
        self.slot_meta
            .resize(self.slots.used(), SlotMeta::default());
        Ok(range)
    }

    /// Address of slot `i` of `r`: stable for the cache's life, to be baked into generated
    /// code, which loads it and jumps to the address it holds. Panics if `i >= r.len()`.
    pub fn slot_addr(&self, r: SlotRange, i: usize) -> *mut u64 {
        assert!(i < r.len(), "slot {i} out of a range of {}", r.len());
        self.slots.addr(r.indices().start + i)
    }

    /// Whether `addr` lies in the executable view.
    pub fn code_contains(&self, addr: usize) -> bool {
        self.code.contains(addr)
    }

    // ---- the block map ----

    /// Indexes a new block by key, host address and every 4 KiB page its `phys_ranges` touch,
    /// and makes it the owner of its slots. A live block with the same key is dropped first
    /// (counted as `replaced`); if both have code (better code replacing worse), the slots
    /// of other live blocks linked to the old one are linked to the new one, and so is the
    /// jump-cache entry of the new block's virtual PC. Panics if `info.slots` was not allocated by this cache since the
    /// last flush, or if its slots belong to another live block.
    pub fn insert(&mut self, info: BlockInfo) -> BlockId {
        assert!(
            info.slots.indices().end <= self.slots.used(),
            "slot range {:?} was not allocated by this cache since the last flush",
            info.slots
        );
        assert!(self.blocks.len() < ID_WRAP as usize, "too many blocks");
        let mut relink = Vec::new();
        let mut cached = false;
        if let Some((old, ..)) = self.by_key.get(&info.key).copied() {
            let b = self.info(old);
            if !info.host.is_none() && !b.host.is_none() {
                // Its own slots (a self-link) go with it.
                let own = b.slots.indices();
                relink = self.live(old).expect("indexed").incoming.clone();
                relink.retain(|&s| !own.contains(&(s as usize)));
                cached = self.jump.get(info.virt_pc, info.key.mode).map(|(id, _)| id) == Some(old);
            }
            self.remove_blocks(&[old]);
            self.counters.replaced.bump();
        }
        let id = BlockId(self.epoch_base + self.blocks.len() as u32);
        for s in info.slots.indices() {
            let meta = &mut self.slot_meta[s];
            assert!(meta.owner.is_none(), "slot {s} already belongs to a block");
            *meta = SlotMeta {
                owner: Some(id),
                target: None,
            };
        }
        for &(start, end) in &info.phys_ranges {
            for page in pages_of(start, end) {
                self.pages.add(page, id);
            }
        }
        for &(start, end) in &info.phys_ranges {
            self.masks.add(start, end);
        }
        if !info.host.is_none() {
            self.by_host.insert(info.host.0, id);
        }
        self.by_key
            .insert(info.key, (id, info.host, info.on_one_page()));
        let (virt_pc, mode) = (info.virt_pc, info.key.mode);
        self.blocks.push(Some(Block {
            info,
            incoming: Vec::new(),
            cached_at: NOT_CACHED,
        }));
        self.counters.translations.bump();
        for s in relink {
            self.link(self.slots.addr(s as usize), id);
        }
        if cached {
            self.jump_cache_set(virt_pc, mode, id);
        }
        id
    }

    /// The live block with `key`, and its code. Counts lookups, hits and misses.
    pub fn lookup(&mut self, key: BlockKey) -> Option<(BlockId, HostCode)> {
        self.lookup_one_page(key).map(|(id, host, _)| (id, host))
    }

    /// [`CodeCache::lookup`], and whether all the block's bytes lie on one page
    /// ([`BlockInfo::on_one_page`]), from the key map alone (a dispatcher's lookup after
    /// the jump cache missed: each further read was a cache miss of its own).
    pub fn lookup_one_page(&mut self, key: BlockKey) -> Option<(BlockId, HostCode, bool)> {
        self.counters.lookups.bump();
        let found = self.by_key.get(&key).copied();
        match found {
            Some(_) => self.counters.hits.bump(),
            None => self.counters.misses.bump(),
        }
        found
    }

    /// The block `id`, if it is live. Inline: the interpreter tier checks a block's
    /// liveness on every chain from one cold block to the next.
    #[inline]
    pub fn block(&self, id: BlockId) -> Option<&BlockInfo> {
        self.live(id).map(|b| &b.info)
    }

    /// The live block whose code contains host address `pc`.
    pub fn block_at_host(&self, pc: usize) -> Option<BlockId> {
        let (&start, &id) = self.by_host.range(..=pc).next_back()?;
        let info = self.block(id)?;
        (pc - start < info.code_len.max(1)).then_some(id)
    }

    // ---- the jump cache ----

    /// The block cached for guest-virtual `virt_pc` in `mode`, and its code.
    pub fn jump_cache_lookup(&self, virt_pc: u64, mode: u32) -> Option<(BlockId, HostCode)> {
        let found = self.jump.get(virt_pc, mode);
        match found {
            Some(_) => self.counters.jump_cache_hits.bump(),
            None => self.counters.jump_cache_misses.bump(),
        }
        found
    }

    /// The code cached for guest-virtual `virt_pc` in `mode`.
    pub fn jump_cache_get(&self, virt_pc: u64, mode: u32) -> Option<HostCode> {
        self.jump_cache_lookup(virt_pc, mode).map(|(_, host)| host)
    }

    /// Caches block `id` for `virt_pc` in `mode`, evicting whatever shared its entry. A no-op
    /// if `id` is not live.
    pub fn jump_cache_set(&mut self, virt_pc: u64, mode: u32, id: BlockId) {
        self.jump_cache_set_kept(virt_pc, mode, id, false);
    }

    /// [`CodeCache::jump_cache_set`]; with `global` the entry survives
    /// [`CodeCache::jump_cache_clear_non_global`]: the caller found the block's code (all of
    /// it on one page) through a global translation.
    pub fn jump_cache_set_kept(&mut self, virt_pc: u64, mode: u32, id: BlockId, global: bool) {
        let i = self.jump.index(virt_pc, mode) as u32;
        if let Some(b) = self.live_mut(id).filter(|b| !b.info.host.is_none()) {
            b.cached_at = match b.cached_at {
                NOT_CACHED => i,
                at if at == i => i,
                _ => SCATTERED,
            };
            let host = b.info.host;
            self.jump.set_kept(virt_pc, mode, id, host, global);
        }
    }

    /// Empties the jump cache (e.g. when the guest changes its page tables).
    pub fn jump_cache_clear(&mut self) {
        self.jump.clear();
    }

    /// Empties the jump cache but for entries set as global (a MOV CR3: global translations
    /// stay valid).
    pub fn jump_cache_clear_non_global(&mut self) {
        self.jump.clear_non_global();
    }

    /// Drops the jump-cache entries of guest-virtual PCs in `[start, end)` (e.g. INVLPG).
    pub fn jump_cache_clear_range(&mut self, start: u64, end: u64) {
        self.jump.clear_range(start, end);
    }

    /// The raw layout of the jump cache, for generated code that probes it inline (see
    /// [`JumpCacheLayout`]). Valid, at the same address, for the cache's whole life: flushes
    /// and invalidations empty entries in place, so a hit always names a live block. Counted
    /// neither as a hit nor as a miss when generated code reads it.
    pub fn jump_cache_layout(&self) -> JumpCacheLayout {
        self.jump.layout()
    }

    // ---- links ----

    /// Links the slot at `slot_addr` to block `to`: writes `to`'s host address into it and
    /// records the link, so invalidating `to` resets the slot to the stub. Returns false (and
    /// does nothing) unless `slot_addr` is a slot of a live block and `to` is live. Relinking
    /// a linked slot moves it to the new target.
    pub fn link(&mut self, slot_addr: *mut u64, to: BlockId) -> bool {
        let Some(idx) = self.slots.index_of(slot_addr) else {
            return false;
        };
        let meta = self.slot_meta[idx];
        if meta.owner.is_none() {
            return false;
        }
        let Some(host) = self.live(to).map(|b| b.info.host).filter(|h| !h.is_none()) else {
            return false;
        };
        match meta.target {
            Some(old) if old == to => return true,
            Some(old) => self.drop_incoming(old, idx),
            None => {}
        }
        self.slots.store(idx, host.0 as u64);
        self.slot_meta[idx].target = Some(to);
        self.live_mut(to)
            .expect("checked live above")
            .incoming
            .push(idx as u32);
        self.counters.links.bump();
        true
    }

    /// Resets the slot at `slot_addr` to the stub and forgets its link. Returns whether it was
    /// linked.
    pub fn unlink(&mut self, slot_addr: *mut u64) -> bool {
        let Some(idx) = self.slots.index_of(slot_addr) else {
            return false;
        };
        let Some(target) = self.slot_meta[idx].target.take() else {
            return false;
        };
        self.drop_incoming(target, idx);
        self.slots.reset(idx);
        true
    }

    /// The live block owning the slot at `slot_addr`.
    pub fn slot_owner(&self, slot_addr: *mut u64) -> Option<BlockId> {
        let idx = self.slots.index_of(slot_addr)?;
        self.slot_meta[idx].owner
    }

    /// The block the slot at `slot_addr` is linked to.
    pub fn slot_target(&self, slot_addr: *mut u64) -> Option<BlockId> {
        let idx = self.slots.index_of(slot_addr)?;
        self.slot_meta[idx].target
    }

    // ---- invalidation and flushing ----

    /// Removes every block whose code overlaps guest-physical `[start, end)`: resets all slots
    /// linked to them, drops their own links, and purges them from the maps, the page index and
    /// the jump cache. Returns how many blocks were invalidated (also counted).
    pub fn invalidate_range(&mut self, start: u64, end: u64) -> usize {
        let range = pages_of(start, end);
        let mut victims = Vec::new();
        let mut collect = |page: u64| {
            for &id in self.pages.blocks_on(page) {
                if self.info(id).overlaps(start, end) {
                    victims.push(id);
                }
            }
        };
        if range.end - range.start > self.pages.len() as u64 {
            // Big range, few code pages: walk the code pages instead of the range.
            self.pages
                .pages()
                .filter(|p| range.contains(p))
                .for_each(&mut collect);
        } else {
            range.for_each(collect);
        }
        victims.sort_unstable_by_key(|id| id.0);
        victims.dedup();
        let n = self.remove_blocks(&victims);
        self.counters.invalidations.add(n as u64);
        n
    }

    /// Invalidates one block, as [`CodeCache::invalidate_range`] does. Returns whether it was
    /// live.
    pub fn invalidate(&mut self, id: BlockId) -> bool {
        let removed = self.remove_blocks(&[id]) == 1;
        if removed {
            self.counters.invalidations.bump();
        }
        removed
    }

    /// Drops everything: every slot is reset to the stub and freed, code memory restarts at
    /// offset 0, maps, page index and jump cache are emptied. Counted. Callers flush when
    /// [`CodeCache::alloc_code`] or [`CodeCache::alloc_slots`] report [`CacheError::Full`].
    pub fn flush(&mut self) {
        // Slots first: after this nothing points into code memory.
        self.slots.reset_all();
        self.slot_meta.clear();
        self.code.reset();
        let next = self.epoch_base + self.blocks.len() as u32;
        self.epoch_base = if next >= ID_WRAP { 0 } else { next };
        self.blocks.clear();
        self.by_key.clear();
        self.by_host.clear();
        self.pages.clear();
        self.masks = CodeBytes::default();
        self.jump.clear();
        self.counters.flushes.bump();
    }

    // ---- code pages ----

    /// Whether the 4 KiB guest-physical page holding `phys_addr` holds translated code.
    pub fn page_has_code(&self, phys_addr: u64) -> bool {
        self.pages.has_code(phys_addr >> PAGE_SHIFT)
    }

    /// Whether any byte of guest-physical `[start, end)` is the code of a live block: a
    /// store there must invalidate; a store elsewhere on a code page need not.
    pub fn bytes_have_code(&self, start: u64, end: u64) -> bool {
        self.masks.any(start, end)
    }

    /// Sizes the code-page bitmaps to cover guest-physical `[0, bytes)`. This moves them: call
    /// it before generating code that embeds [`CodeCache::store_guard`].
    pub fn set_phys_limit(&mut self, bytes: u64) {
        self.pages.set_limit(bytes);
    }

    /// Bytes of guest-physical memory the code-page bitmaps cover.
    pub fn phys_limit(&self) -> u64 {
        self.pages.limit()
    }

    /// One byte per 4 KiB guest-physical page below [`CodeCache::phys_limit`], 1 if the page
    /// or the next one holds translated code, for generated code to test inline on stores: a
    /// store of at most 4 KiB needs only the byte of its first byte's page. Valid until the
    /// next [`CodeCache::set_phys_limit`]; generated code must not index it at or past the
    /// limit.
    pub fn store_guard(&self) -> *const u8 {
        self.pages.guard_ptr()
    }

    // ---- statistics ----

    /// A snapshot of the counters.
    pub fn stats(&self) -> CacheStats {
        let c = &self.counters;
        CacheStats {
            translations: c.translations.get(),
            lookups: c.lookups.get(),
            hits: c.hits.get(),
            misses: c.misses.get(),
            jump_cache_hits: c.jump_cache_hits.get(),
            jump_cache_misses: c.jump_cache_misses.get(),
            links: c.links.get(),
            unlinks: c.unlinks.get(),
            invalidations: c.invalidations.get(),
            replaced: c.replaced.get(),
            flushes: c.flushes.get(),
            translation_ns: c.translation_ns.get(),
            code_bytes_used: self.code.used(),
            code_bytes_capacity: self.code.capacity(),
            slots_used: self.slots.used(),
            blocks_live: self.by_key.len(),
            pages_with_code: self.pages.len(),
        }
    }

    /// Adds `ns` nanoseconds to the translation time in [`CacheStats::translation_ns`].
    pub fn note_translation_time(&mut self, ns: u64) {
        self.counters.translation_ns.add(ns);
    }

    // ---- internals ----

    #[inline]
    fn live(&self, id: BlockId) -> Option<&Block> {
        let i = id.0.wrapping_sub(self.epoch_base) as usize;
        self.blocks.get(i)?.as_ref()
    }

    fn live_mut(&mut self, id: BlockId) -> Option<&mut Block> {
        let i = id.0.wrapping_sub(self.epoch_base) as usize;
        self.blocks.get_mut(i)?.as_mut()
    }

    /// Info of a block the indexes say is live.
    fn info(&self, id: BlockId) -> &BlockInfo {
        &self.live(id).expect("index names a dead block").info
    }

    /// Forgets that slot `idx` links to `target`.
    fn drop_incoming(&mut self, target: BlockId, idx: usize) {
        if let Some(b) = self.live_mut(target) {
            if let Some(i) = b.incoming.iter().position(|&s| s as usize == idx) {
                b.incoming.swap_remove(i);
            }
        }
    }

    /// Recomputes the code-byte mask of `page` from the blocks still on it.
    fn rebuild_mask(&mut self, page: u64) {
        self.masks.clear_page(page);
        let (blocks, base) = (&self.blocks, self.epoch_base);
        for &id in self.pages.blocks_on(page) {
            let live = blocks
                .get(id.0.wrapping_sub(base) as usize)
                .and_then(Option::as_ref);
            for &(start, end) in live.iter().flat_map(|b| &b.info.phys_ranges) {
                // Only this page: the block's other pages keep their own masks.
                let lo = page << PAGE_SHIFT;
                let hi = lo.saturating_add(1 << PAGE_SHIFT);
                self.masks.add(start.max(lo), end.min(hi));
            }
        }
    }

    /// Removes the live blocks among `ids`, then purges the jump cache of them: the entry
    /// each was cached in, or every entry if one of them was scattered. Returns how many.
    fn remove_blocks(&mut self, ids: &[BlockId]) -> usize {
        let mut n = 0;
        let mut sweep = false;
        for &id in ids {
            match self.remove_block(id) {
                Some(NOT_CACHED) => n += 1,
                Some(SCATTERED) => (n, sweep) = (n + 1, true),
                Some(at) => {
                    n += 1;
                    self.jump.clear_if(at as usize, id);
                }
                None => {}
            }
        }
        if sweep {
            let (blocks, base) = (&self.blocks, self.epoch_base);
            self.jump.retain(|id| {
                let i = id.0.wrapping_sub(base) as usize;
                blocks.get(i).is_some_and(Option::is_some)
            });
        }
        n
    }

    /// Removes one block from everything but the jump cache. Returns its
    /// [`Block::cached_at`] if it was live.
    fn remove_block(&mut self, id: BlockId) -> Option<u32> {
        let i = id.0.wrapping_sub(self.epoch_base) as usize;
        let block = self.blocks.get_mut(i).and_then(Option::take)?;
        // Slots jumping to it (including its own, for a self-loop) go back to the stub.
        for s in block.incoming {
            let s = s as usize;
            debug_assert_eq!(self.slot_meta[s].target, Some(id));
            self.slot_meta[s].target = None;
            self.slots.reset(s);
            self.counters.unlinks.bump();
        }
        // Its own slots: drop their links, reset them, and leak them until the next flush.
        for s in block.info.slots.indices() {
            if let Some(target) = self.slot_meta[s].target {
                self.drop_incoming(target, s);
            }
            self.slot_meta[s] = SlotMeta::default();
            self.slots.reset(s);
        }
        for &(start, end) in &block.info.phys_ranges {
            for page in pages_of(start, end) {
                self.pages.remove(page, id);
                self.rebuild_mask(page);
            }
        }
        if self.by_key.get(&block.info.key).map(|e| e.0) == Some(id) {
            self.by_key.remove(&block.info.key);
        }
        if self.by_host.get(&block.info.host.0) == Some(&id) {
            self.by_host.remove(&block.info.host.0);
        }
        Some(block.cached_at)
    }
}

#[cfg(test)]
mod tests;
