//! Page → blocks index, and the byte-per-page bitmaps: which pages hold code, and the guard
//! that generated code tests on guest stores.
//!
//! Invariants:
//! - `pages[p]` lists (without duplicates) every live block whose guest-physical ranges touch
//!   4 KiB page `p`; a page with no blocks has no entry.
//! - For every page `p` below the physical limit, `code[p]` is 1 iff `pages` has an entry for
//!   `p`, and 0 otherwise. Pages at or above the limit are only in `pages`.
//! - `guard[p]` is 1 iff `code[p]` or `code[p + 1]` is (`code[p]` alone for the last page): a
//!   store of at most a page touches pages `p` and `p + 1` at most, so one guard byte, of its
//!   first byte's page, tells it whether it may hit code. That is one load instead of two
//!   on every inline store; the price is that stores to the page just below a code page take
//!   the exact (slow) path too.
//! - The bitmaps are only written with atomic stores, and only move when the limit changes.

use std::sync::atomic::{AtomicU8, Ordering};

use hashbrown::HashMap;

use crate::BlockId;

/// log2 of the guest page size the index works in.
pub const PAGE_SHIFT: u32 = 12;
/// Guest page size the index works in (4 KiB).
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

/// Page numbers touched by the byte range `[start, end)` (none if it is empty).
pub fn pages_of(start: u64, end: u64) -> std::ops::Range<u64> {
    if start >= end {
        return 0..0;
    }
    (start >> PAGE_SHIFT)..((end - 1) >> PAGE_SHIFT) + 1
}

/// The index proper.
#[derive(Default)]
pub struct PageIndex {
    pages: HashMap<u64, Vec<BlockId>>,
    code: Box<[AtomicU8]>,
    guard: Box<[AtomicU8]>,
}

impl PageIndex {
    /// Records that block `id` has code on `page` (a page number, not an address).
    pub fn add(&mut self, page: u64, id: BlockId) {
        let blocks = self.pages.entry(page).or_default();
        if !blocks.contains(&id) {
            blocks.push(id);
        }
        self.set_bit(page, true);
    }

    /// Forgets that block `id` has code on `page`.
    pub fn remove(&mut self, page: u64, id: BlockId) {
        let Some(blocks) = self.pages.get_mut(&page) else {
            return;
        };
        if let Some(i) = blocks.iter().position(|&b| b == id) {
            blocks.swap_remove(i);
        }
        if blocks.is_empty() {
            self.pages.remove(&page);
            self.set_bit(page, false);
        }
    }

    /// Blocks with code on `page`.
    pub fn blocks_on(&self, page: u64) -> &[BlockId] {
        self.pages.get(&page).map_or(&[], Vec::as_slice)
    }

    /// Every page that holds code.
    pub fn pages(&self) -> impl Iterator<Item = u64> + '_ {
        self.pages.keys().copied()
    }

    /// Number of pages that hold code.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Whether no page holds code.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Whether `page` holds code.
    pub fn has_code(&self, page: u64) -> bool {
        match self.bit(page) {
            Some(bit) => bit.load(Ordering::Relaxed) != 0,
            None => self.pages.contains_key(&page),
        }
    }

    /// Sizes the bitmaps to cover guest-physical `[0, bytes)` and refills them from the index.
    pub fn set_limit(&mut self, bytes: u64) {
        let pages = usize::try_from(bytes.div_ceil(PAGE_SIZE)).expect("physical limit too large");
        self.code = (0..pages).map(|_| AtomicU8::new(0)).collect();
        self.guard = (0..pages).map(|_| AtomicU8::new(0)).collect();
        for &page in self.pages.keys() {
            self.set_bit(page, true);
        }
    }

    /// Bytes of guest-physical memory the bitmaps cover.
    pub fn limit(&self) -> u64 {
        self.code.len() as u64 * PAGE_SIZE
    }

    /// The store guard: one byte per page below the limit, 1 if the page or the next one
    /// holds code (see the module invariants).
    pub fn guard_ptr(&self) -> *const u8 {
        self.guard.as_ptr().cast()
    }

    /// Forgets every block; the bitmaps keep their size and become all zero.
    pub fn clear(&mut self) {
        for &page in self.pages.keys() {
            self.set_bit(page, false);
        }
        self.pages.clear();
    }

    /// The `code` byte of `page`, if the bitmaps cover it.
    fn bit(&self, page: u64) -> Option<&AtomicU8> {
        usize::try_from(page).ok().and_then(|i| self.code.get(i))
    }

    /// Sets `code[page]` and the two guard bytes that depend on it.
    fn set_bit(&self, page: u64, on: bool) {
        let Some(bit) = self.bit(page) else {
            return;
        };
        bit.store(u8::from(on), Ordering::Relaxed);
        let code = |p: u64| self.bit(p).is_some_and(|b| b.load(Ordering::Relaxed) != 0);
        let below = page.checked_sub(1);
        for p in std::iter::once(page).chain(below) {
            if let Some(g) = usize::try_from(p).ok().and_then(|i| self.guard.get(i)) {
                g.store(u8::from(code(p) || code(p + 1)), Ordering::Relaxed);
            }
        }
    }
}

/// Which bytes of each code page are code: one bit per byte, as QEMU keeps per page, so a
/// store to the data part of a page that also holds code needs no invalidation.
///
/// Invariant: the mask of a page is the union of the ranges [`CodeBytes::add`]ed on it since
/// its last [`CodeBytes::clear_page`]; a page with no mask has no code bytes.
#[derive(Default)]
pub struct CodeBytes {
    masks: HashMap<u64, Box<[u64; 64]>>,
}

impl CodeBytes {
    /// Marks guest-physical `[start, end)` as code.
    pub fn add(&mut self, start: u64, end: u64) {
        for page in pages_of(start, end) {
            let mask = self.masks.entry(page).or_insert_with(|| Box::new([0; 64]));
            let (lo, hi) = page_span(page, start, end);
            for b in lo..hi {
                mask[b / 64] |= 1 << (b % 64);
            }
        }
    }

    /// Forgets the code bytes of `page` (a page number).
    pub fn clear_page(&mut self, page: u64) {
        self.masks.remove(&page);
    }

    /// Whether any byte of `[start, end)` is code.
    pub fn any(&self, start: u64, end: u64) -> bool {
        pages_of(start, end).any(|page| {
            self.masks.get(&page).is_some_and(|mask| {
                let (lo, hi) = page_span(page, start, end);
                // Word by word: bits [lo, hi) of the 4096-bit mask.
                (lo / 64..hi.div_ceil(64)).any(|w| {
                    let from = lo.max(w * 64) - w * 64;
                    let to = hi.min(w * 64 + 64) - w * 64;
                    let bits = if to - from == 64 {
                        u64::MAX
                    } else {
                        ((1u64 << (to - from)) - 1) << from
                    };
                    mask[w] & bits != 0
                })
            })
        })
    }
}

/// The offsets within `page` that `[start, end)` covers.
fn page_span(page: u64, start: u64, end: u64) -> (usize, usize) {
    let base = page << PAGE_SHIFT;
    let lo = start.max(base) - base;
    let hi = end.min(base.saturating_add(PAGE_SIZE)) - base;
    (lo as usize, hi as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_of_ranges() {
        assert_eq!(pages_of(0x1000, 0x2000), 1..2);
        assert_eq!(pages_of(0x1fff, 0x2001), 1..3);
        assert_eq!(
            pages_of(u64::MAX - 1, u64::MAX),
            (u64::MAX >> 12)..(u64::MAX >> 12) + 1
        );
        assert_eq!(pages_of(0x1000, 0x1000).count(), 0);
        assert_eq!(pages_of(5, 1).count(), 0);
    }

    #[test]
    fn bitmaps_follow_index() {
        let mut idx = PageIndex::default();
        idx.add(3, BlockId(1));
        idx.set_limit(0x10_000);
        assert_eq!(idx.limit(), 0x10_000);
        let guard = |idx: &PageIndex| -> Vec<u8> {
            // SAFETY: the guard covers 16 pages after `set_limit(0x10_000)`.
            (0..16)
                .map(|p| unsafe { *idx.guard_ptr().add(p) })
                .collect()
        };
        let expect = |pages: &[usize]| -> Vec<u8> {
            (0..16).map(|p| u8::from(pages.contains(&p))).collect()
        };
        assert_eq!(guard(&idx), expect(&[2, 3]), "refilled from the index");
        assert!(idx.has_code(3) && !idx.has_code(2));
        idx.add(3, BlockId(2));
        idx.add(3, BlockId(2));
        assert_eq!(idx.blocks_on(3), &[BlockId(1), BlockId(2)]);
        idx.remove(3, BlockId(1));
        assert_eq!(guard(&idx), expect(&[2, 3]));
        idx.remove(3, BlockId(2));
        assert_eq!(guard(&idx), expect(&[]));
        assert!(!idx.has_code(3));
        assert!(idx.is_empty());
        // Neighbours: a guard byte stays while either page it covers holds code.
        for p in [5, 6, 0, 15] {
            idx.add(p, BlockId(3));
        }
        assert_eq!(guard(&idx), expect(&[0, 4, 5, 6, 14, 15]));
        idx.remove(6, BlockId(3));
        assert_eq!(guard(&idx), expect(&[0, 4, 5, 14, 15]));
        idx.remove(5, BlockId(3));
        assert_eq!(guard(&idx), expect(&[0, 14, 15]));
        idx.clear();
        assert_eq!(guard(&idx), expect(&[]));
    }

    #[test]
    fn code_bytes_are_exact() {
        let mut c = CodeBytes::default();
        c.add(0x1ffe, 0x2003);
        assert!(c.any(0x1fff, 0x2000));
        assert!(c.any(0x2002, 0x2010));
        assert!(!c.any(0x2003, 0x2010), "the byte after the code");
        assert!(
            !c.any(0x1000, 0x1ffe),
            "the data before it on the same page"
        );
        c.clear_page(2);
        assert!(!c.any(0x2000, 0x2003));
        assert!(c.any(0x1ffe, 0x1fff));
        assert!(!c.any(u64::MAX - 4, u64::MAX));
    }

    #[test]
    fn pages_beyond_limit_use_the_map() {
        let mut idx = PageIndex::default();
        idx.set_limit(PAGE_SIZE);
        idx.add(1 << 40, BlockId(9));
        assert!(idx.has_code(1 << 40));
        assert!(!idx.has_code(0));
        idx.add(0, BlockId(9));
        assert!(idx.has_code(0));
        idx.clear();
        assert!(!idx.has_code(0));
        assert!(!idx.has_code(1 << 40));
        assert_eq!(idx.len(), 0);
    }
}
