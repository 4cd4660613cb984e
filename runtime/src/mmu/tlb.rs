//! The soft-TLB policy: what a walk may leave in [`CpuState::tlb`](translator::CpuState) for
//! generated code's inline fast path (and the Rust slow path) to use, and how it is dropped.
//!
//! An entry maps one 4 KiB linear page of one set (supervisor = 0, user = 1) to a RAM page:
//! `read_tag`/`write_tag` are the linear page when reads/writes may bypass the walk, `addend`
//! turns a linear address into the host address, and `phys` is the guest-physical page. The
//! low 12 bits of `phys` (always zero in a page address) carry this module's metadata: bit 0
//! is "global", bits 1..=6 the log2 size of the page the entry was cut from (12, 21, 22, 30),
//! so INVLPG can drop every 4 KiB piece of a large page. Use [`entry_phys_page`] to read it.
//!
//! Invariants:
//! - Entries exist only for RAM pages, and only after a successful data walk with that set's
//!   privilege; `addend + page` is then the host address of a page inside the RAM mapping.
//! - `write_tag` is set only if `read_tag` is, the walk allowed writes, the final entry's D
//!   bit was already set (the first write walks and sets it), and the physical page holds no
//!   translated code; [`protect`] clears it when code is translated on the page later.
//! - With CR4.SMAP on, no supervisor-set entry maps a user page: such accesses always walk,
//!   which checks RFLAGS.AC and implicitness each time, so AC changes never need a flush.
//! - Flushing is the caller's job on paging-relevant changes: MOV CR3 (non-global flush),
//!   MOV CR0 (PG, WP), MOV CR4 (PGE, PAE, PSE, SMEP, SMAP: global flush), WRMSR EFER (NXE,
//!   LME: global flush), INVLPG ([`invalidate`]), and a task switch's CR3 load.

use translator::state::{Tlb, TlbEntry, TLB_ENTRIES, TLB_INVALID};

use super::Translation;
use crate::machine::Privilege;
use crate::memory::PAGE_SIZE;

/// `phys` metadata bit: the entry came from a global page.
const META_GLOBAL: u64 = 1;
/// `phys` metadata: log2 of the source page size, at bits 1..=6.
const META_SHIFT_POS: u32 = 1;
const META_SHIFT_MASK: u64 = 0x3F << META_SHIFT_POS;
/// Bits of a page address.
const PAGE_MASK: u64 = !(PAGE_SIZE - 1);

/// The set a privilege's accesses use (as [`Tlb::set_for`] does for a CPL).
pub fn set_of(privilege: Privilege) -> usize {
    match privilege {
        Privilege::Supervisor => 0,
        Privilege::User => 1,
    }
}

/// The entry index of linear address `lin`.
pub fn index(lin: u64) -> usize {
    ((lin / PAGE_SIZE) % TLB_ENTRIES as u64) as usize
}

/// The guest-physical page an entry maps (its `phys` without the metadata bits).
pub fn entry_phys_page(e: &TlbEntry) -> u64 {
    e.phys & PAGE_MASK
}

/// Whether an entry came from a global page.
pub fn entry_is_global(e: &TlbEntry) -> bool {
    e.phys & META_GLOBAL != 0
}

/// Log2 of the size of the page an entry was cut from.
fn entry_page_shift(e: &TlbEntry) -> u32 {
    ((e.phys & META_SHIFT_MASK) >> META_SHIFT_POS) as u32
}

/// Whether the entry holds anything.
fn valid(e: &TlbEntry) -> bool {
    e.read_tag != TLB_INVALID || e.write_tag != TLB_INVALID
}

/// The guest-physical address of `lin` if the set of `privilege` lets a read (or, for
/// `write`, a write) of the byte at `lin` bypass the walk.
pub fn lookup(tlb: &Tlb, privilege: Privilege, lin: u64, write: bool) -> Option<u64> {
    let e = &tlb.sets[set_of(privilege)][index(lin)];
    let tag = if write { e.write_tag } else { e.read_tag };
    (tag == lin & PAGE_MASK).then(|| entry_phys_page(e) | (lin & !PAGE_MASK))
}

/// Fills the entry of `lin`'s page in `privilege`'s set from the successful data walk `t` of
/// a RAM page, under the policy of the module invariants. `smap` is CR4.SMAP; `code_on_page`
/// says whether the physical page holds translated code; `host_base` is
/// [`GuestRam::host_base`](crate::memory::GuestRam::host_base).
pub fn fill(
    tlb: &mut Tlb,
    privilege: Privilege,
    lin: u64,
    t: &Translation,
    smap: bool,
    code_on_page: bool,
    host_base: usize,
) {
    if privilege == Privilege::Supervisor && smap && t.user {
        return;
    }
    let page = lin & PAGE_MASK;
    let phys_page = t.phys & PAGE_MASK;
    let shift = t.page_size.trailing_zeros() as u64;
    tlb.sets[set_of(privilege)][index(lin)] = TlbEntry {
        read_tag: page,
        write_tag: if t.writable && t.dirty && !code_on_page {
            page
        } else {
            TLB_INVALID
        },
        addend: (host_base as u64)
            .wrapping_add(phys_page)
            .wrapping_sub(page),
        phys: phys_page | (shift << META_SHIFT_POS) | if t.global { META_GLOBAL } else { 0 },
    };
}

/// Drops every entry of both sets, or with `keep_global` every entry but global ones.
pub fn flush(tlb: &mut Tlb, keep_global: bool) {
    if !keep_global {
        tlb.flush();
        return;
    }
    for e in tlb.sets.iter_mut().flatten() {
        if !entry_is_global(e) {
            *e = TlbEntry::EMPTY;
        }
    }
}

/// Whether valid entry `e` maps (a 4 KiB piece of) the page holding `lin`, at the size of
/// the page it was cut from.
fn covers(e: &TlbEntry, lin: u64) -> bool {
    if !valid(e) {
        return false;
    }
    let shift = entry_page_shift(e).clamp(12, 63);
    let tag = if e.read_tag != TLB_INVALID {
        e.read_tag
    } else {
        e.write_tag
    };
    tag >> shift == lin >> shift
}

/// Drops the entries of the page holding `lin` in both sets (INVLPG), global or not; for an
/// entry cut from a large page, the entries of the whole large page. `large`: some entry may
/// come from a large page; without one, only `lin`'s index can hold its page.
pub fn invalidate(tlb: &mut Tlb, lin: u64, large: bool) {
    let drop_if_covers = |e: &mut TlbEntry| {
        if covers(e, lin) {
            *e = TlbEntry::EMPTY;
        }
    };
    if large {
        tlb.sets.iter_mut().flatten().for_each(drop_if_covers);
    } else {
        // Only 4 KiB entries: the page's can only be at its own index.
        for set in tlb.sets.iter_mut() {
            drop_if_covers(&mut set[index(lin)]);
        }
    }
}

/// Makes every entry mapping guest-physical page `phys_page` read-only for the fast path, so
/// stores to translated code take the slow path (which detects self-modifying code).
pub fn protect(tlb: &mut Tlb, phys_page: u64) {
    tlb.sets
        .iter_mut()
        .flatten()
        .for_each(|e| protect_entry(e, phys_page & PAGE_MASK));
}

fn protect_entry(e: &mut TlbEntry, page: u64) {
    if e.write_tag != TLB_INVALID && entry_phys_page(e) == page {
        e.write_tag = TLB_INVALID;
    }
}

/// Fills logged since the last flush: at most this many, else the log gives up until the
/// next flush and the operations scan the whole TLB.
const LOGGED_MAX: usize = 256;

/// Which entries [`Filled::fill`] filled since the last flush, so that a flush, INVLPG of a
/// large page and [`protect`] visit those instead of all 2 × [`TLB_ENTRIES`] (a MOV CR3
/// that finds a dozen entries need not clear 2,048). The same operations as the free
/// functions, with the same result.
///
/// Invariant: unless `overflow`, every valid entry's index is in `idx` (it may also hold
/// indices of entries dropped or refilled since, which are visited harmlessly), and `idx`
/// holds no index twice: `logged` is its set. (A page that is dropped and refilled over and
/// over, as by INVLPG and a #PF handler, would otherwise overflow the log and make every
/// later INVLPG of a large page scan the whole TLB.) It starts in `overflow`, so entries
/// that exist before the first flush are never missed.
#[derive(Debug)]
pub struct Filled {
    idx: Vec<u16>,
    logged: Box<[u64; LOGGED_WORDS]>,
    overflow: bool,
}

/// Words of [`Filled::logged`]: one bit per entry of both sets.
const LOGGED_WORDS: usize = 2 * TLB_ENTRIES / 64;

impl Default for Filled {
    fn default() -> Self {
        Filled {
            idx: Vec::with_capacity(LOGGED_MAX),
            logged: Box::new([0; LOGGED_WORDS]),
            overflow: true,
        }
    }
}

impl Filled {
    /// [`fill`], logged.
    #[allow(clippy::too_many_arguments)]
    pub fn fill(
        &mut self,
        tlb: &mut Tlb,
        privilege: Privilege,
        lin: u64,
        t: &Translation,
        smap: bool,
        code_on_page: bool,
        host_base: usize,
    ) {
        fill(tlb, privilege, lin, t, smap, code_on_page, host_base);
        self.note(set_of(privilege) * TLB_ENTRIES + index(lin));
    }

    fn note(&mut self, i: usize) {
        if self.overflow {
            return;
        }
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        if self.logged[word] & bit != 0 {
            return;
        }
        if self.idx.len() >= LOGGED_MAX {
            self.overflow = true;
            self.forget();
            return;
        }
        self.logged[word] |= bit;
        self.idx.push(i as u16);
    }

    /// Empties the log.
    fn forget(&mut self) {
        self.idx.clear();
        self.logged.fill(0);
    }

    /// [`flush`], visiting only logged entries when it can.
    pub fn flush(&mut self, tlb: &mut Tlb, keep_global: bool) {
        if self.overflow {
            flush(tlb, keep_global);
            self.overflow = false;
            self.forget();
            if keep_global {
                for (i, e) in tlb.sets.iter().flatten().enumerate() {
                    if valid(e) {
                        self.note(i);
                    }
                }
            }
            return;
        }
        let logged = &mut self.logged;
        self.idx.retain(|&i| {
            if let Some(e) = entry_mut(tlb, i) {
                if keep_global && valid(e) && entry_is_global(e) {
                    return true;
                }
                *e = TlbEntry::EMPTY;
            }
            let i = usize::from(i);
            logged[i / 64] &= !(1u64 << (i % 64));
            false
        });
    }

    /// [`invalidate`], visiting only logged entries when it can.
    pub fn invalidate(&mut self, tlb: &mut Tlb, lin: u64, large: bool) {
        if !large || self.overflow {
            return invalidate(tlb, lin, large);
        }
        for &i in &self.idx {
            if let Some(e) = entry_mut(tlb, i) {
                if covers(e, lin) {
                    *e = TlbEntry::EMPTY;
                }
            }
        }
    }

    /// [`protect`], visiting only logged entries when it can.
    pub fn protect(&mut self, tlb: &mut Tlb, phys_page: u64) {
        if self.overflow {
            return protect(tlb, phys_page);
        }
        for &i in &self.idx {
            if let Some(e) = entry_mut(tlb, i) {
                protect_entry(e, phys_page & PAGE_MASK);
            }
        }
    }
}

/// The entry at flat index `i` (set × [`TLB_ENTRIES`] + index).
fn entry_mut(tlb: &mut Tlb, i: u16) -> Option<&mut TlbEntry> {
    let i = usize::from(i);
    tlb.sets.get_mut(i / TLB_ENTRIES)?.get_mut(i % TLB_ENTRIES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_gives_the_same_tlb_as_scanning_everything() {
        // Random fills (4 KiB and large, global or not, both sets), flushes with and
        // without globals, INVLPGs and code protection, applied to one TLB through the log
        // and to another through the scanning functions: the two never differ, also after
        // the log overflows and recovers.
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let (mut a, mut b) = (Tlb::default(), Tlb::default());
        let mut log = Filled::default();
        for step in 0..200_000 {
            let r = next();
            let lin = (r >> 8) & 0x3F_FFFF_F000;
            let privilege = if r & 1 == 0 {
                Privilege::Supervisor
            } else {
                Privilege::User
            };
            match (r >> 1) % 16 {
                0 => {
                    log.flush(&mut a, false);
                    flush(&mut b, false);
                }
                1 => {
                    log.flush(&mut a, true);
                    flush(&mut b, true);
                }
                2 => {
                    let large = r & 4 != 0;
                    log.invalidate(&mut a, lin, large);
                    invalidate(&mut b, lin, large);
                }
                3 => {
                    let page = (r >> 20) & 0xF000;
                    log.protect(&mut a, page);
                    protect(&mut b, page);
                }
                _ => {
                    let tr = Translation {
                        phys: (r >> 24) & 0xF_F000,
                        writable: r & 8 != 0,
                        user: r & 16 != 0,
                        global: r & 32 != 0,
                        page_size: if r & 64 != 0 { 1 << 21 } else { PAGE_SIZE },
                        dirty: r & 128 != 0,
                    };
                    log.fill(&mut a, privilege, lin, &tr, false, false, 0x1000_0000);
                    fill(&mut b, privilege, lin, &tr, false, false, 0x1000_0000);
                }
            }
            assert!(a.sets == b.sets, "step {step}");
        }
    }

    /// Regression: a page dropped and refilled over and over (INVLPG, then the #PF handler's
    /// fix-up and the access again) was logged once per fill, overflowed the log, and every
    /// later INVLPG under large pages scanned all 2,048 entries.
    #[test]
    fn refilling_one_entry_does_not_overflow_the_log() {
        let mut tlb = Tlb::default();
        let mut log = Filled::default();
        log.flush(&mut tlb, false);
        let tr = t(0x5000, true, true, false);
        for _ in 0..4 * LOGGED_MAX {
            log.fill(
                &mut tlb,
                Privilege::Supervisor,
                0x4000_0000,
                &tr,
                false,
                false,
                0,
            );
            log.invalidate(&mut tlb, 0x4000_0000, true);
        }
        assert!(!log.overflow);
        assert_eq!(log.idx.len(), 1);
        log.flush(&mut tlb, false);
        assert!(log.idx.is_empty() && log.logged.iter().all(|&w| w == 0));
    }

    fn t(phys: u64, writable: bool, dirty: bool, user: bool) -> Translation {
        Translation {
            phys,
            writable,
            user,
            global: false,
            page_size: PAGE_SIZE,
            dirty,
        }
    }

    #[test]
    fn fill_then_lookup() {
        let mut tlb = Tlb::default();
        let lin = 0x7000_1234;
        fill(
            &mut tlb,
            Privilege::User,
            lin,
            &t(0x5234, true, true, true),
            false,
            false,
            0x10_0000,
        );
        assert_eq!(lookup(&tlb, Privilege::User, lin + 8, false), Some(0x523C));
        assert_eq!(lookup(&tlb, Privilege::User, lin, true), Some(0x5234));
        assert_eq!(
            lookup(&tlb, Privilege::Supervisor, lin, false),
            None,
            "other set"
        );
        assert_eq!(
            lookup(&tlb, Privilege::User, lin + 0x10_0000 * 0x100, false),
            None
        );
        let e = tlb.sets[1][index(lin)];
        assert_eq!(e.read_tag, 0x7000_1000);
        assert_eq!(
            e.addend.wrapping_add(lin),
            0x10_0000 + 0x5234,
            "host address"
        );
        assert_eq!(entry_phys_page(&e), 0x5000);
    }

    #[test]
    fn write_tag_needs_rights_dirty_and_no_code() {
        let mut tlb = Tlb::default();
        let s = Privilege::Supervisor;
        for (writable, dirty, code, expect) in [
            (true, true, false, true),
            (false, true, false, false),
            (true, false, false, false),
            (true, true, true, false),
        ] {
            fill(
                &mut tlb,
                s,
                0x3000,
                &t(0x3000, writable, dirty, false),
                false,
                code,
                0,
            );
            assert_eq!(lookup(&tlb, s, 0x3000, true).is_some(), expect);
            assert!(lookup(&tlb, s, 0x3000, false).is_some(), "always readable");
        }
    }

    #[test]
    fn smap_keeps_user_pages_out_of_the_supervisor_set() {
        let mut tlb = Tlb::default();
        let user_page = t(0x3000, true, true, true);
        fill(
            &mut tlb,
            Privilege::Supervisor,
            0x3000,
            &user_page,
            true,
            false,
            0,
        );
        assert_eq!(lookup(&tlb, Privilege::Supervisor, 0x3000, false), None);
        fill(
            &mut tlb,
            Privilege::User,
            0x3000,
            &user_page,
            true,
            false,
            0,
        );
        assert!(lookup(&tlb, Privilege::User, 0x3000, false).is_some());
        fill(
            &mut tlb,
            Privilege::Supervisor,
            0x3000,
            &user_page,
            false,
            false,
            0,
        );
        assert!(lookup(&tlb, Privilege::Supervisor, 0x3000, false).is_some());
    }

    #[test]
    fn flush_keeps_global_entries_unless_asked() {
        let mut tlb = Tlb::default();
        let mut g = t(0x8000, true, true, false);
        g.global = true;
        fill(
            &mut tlb,
            Privilege::Supervisor,
            0xFFFF_8000_0000_8000,
            &g,
            false,
            false,
            0,
        );
        fill(
            &mut tlb,
            Privilege::User,
            0x9000,
            &t(0x9000, true, true, true),
            false,
            false,
            0,
        );
        flush(&mut tlb, true);
        assert!(lookup(&tlb, Privilege::Supervisor, 0xFFFF_8000_0000_8000, false).is_some());
        assert!(lookup(&tlb, Privilege::User, 0x9000, false).is_none());
        flush(&mut tlb, false);
        assert!(lookup(&tlb, Privilege::Supervisor, 0xFFFF_8000_0000_8000, false).is_none());
    }

    #[test]
    fn invalidate_drops_the_page_in_both_sets_and_whole_large_pages() {
        let mut tlb = Tlb::default();
        let both = [Privilege::Supervisor, Privilege::User];
        for p in both {
            fill(
                &mut tlb,
                p,
                0x4000,
                &t(0x4000, true, true, true),
                false,
                false,
                0,
            );
            fill(
                &mut tlb,
                p,
                0x5000,
                &t(0x5000, true, true, true),
                false,
                false,
                0,
            );
        }
        // Two 4 KiB pieces of one 2 MiB page at 0x4000_0000, and a global one.
        let mut big = t(0x20_0000, true, true, false);
        big.page_size = 2 << 20;
        big.global = true;
        fill(
            &mut tlb,
            Privilege::Supervisor,
            0x4000_0000,
            &big,
            false,
            false,
            0,
        );
        big.phys = 0x21_3000;
        fill(
            &mut tlb,
            Privilege::Supervisor,
            0x4001_3000,
            &big,
            false,
            false,
            0,
        );
        invalidate(&mut tlb, 0x4ABC, false); // 4 KiB: its own index only
        for p in both {
            assert!(lookup(&tlb, p, 0x4000, false).is_none());
            assert!(lookup(&tlb, p, 0x5000, false).is_some());
        }
        invalidate(&mut tlb, 0x401F_F000, true);
        assert!(lookup(&tlb, Privilege::Supervisor, 0x4000_0000, false).is_none());
        assert!(lookup(&tlb, Privilege::Supervisor, 0x4001_3000, false).is_none());
    }

    #[test]
    fn protect_clears_write_tags_of_every_alias() {
        let mut tlb = Tlb::default();
        let page = t(0x6000, true, true, true);
        fill(&mut tlb, Privilege::User, 0x1_0000, &page, false, false, 0);
        fill(
            &mut tlb,
            Privilege::Supervisor,
            0x2_0000,
            &page,
            false,
            false,
            0,
        );
        fill(
            &mut tlb,
            Privilege::User,
            0x3_0000,
            &t(0x7000, true, true, true),
            false,
            false,
            0,
        );
        protect(&mut tlb, 0x6123);
        assert!(lookup(&tlb, Privilege::User, 0x1_0000, true).is_none());
        assert!(lookup(&tlb, Privilege::Supervisor, 0x2_0000, true).is_none());
        assert!(
            lookup(&tlb, Privilege::User, 0x1_0000, false).is_some(),
            "reads stay"
        );
        assert!(lookup(&tlb, Privilege::User, 0x3_0000, true).is_some());
    }
}
