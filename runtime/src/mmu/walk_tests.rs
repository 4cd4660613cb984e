//! Walker tests: page tables built in a [`GuestRam`] for every paging mode, the access-rights
//! rules, error codes and A/D updates, and a differential test of hostile random tables
//! against an independently written reference walker.

use translator::state::cr::*;
use translator::Exception;

use super::*;
use crate::mmu::{pf, pte};

const P: u64 = pte::P;
const RW: u64 = pte::RW;
const US: u64 = pte::US;
const A: u64 = pte::A;
const D: u64 = pte::D;
const PS: u64 = pte::PS;
const G: u64 = pte::G;
const XD: u64 = pte::XD;
/// Present, writable, user: the most permissive non-leaf entry.
const ALL: u64 = P | RW | US;

const RAM: u64 = 8 << 20;
const S: Privilege = Privilege::Supervisor;
const U: Privilege = Privilege::User;

fn ram() -> GuestRam {
    GuestRam::new(RAM).unwrap()
}

fn set(ram: &mut GuestRam, addr: u64, width: usize, v: u64) {
    ram.write_le(GuestPhys(addr), width, v).unwrap();
}

fn get(ram: &GuestRam, addr: u64, width: usize) -> u64 {
    ram.read_le(GuestPhys(addr), width).unwrap()
}

fn regs(cr0: u64, cr3: u64, cr4: u64, efer: u64) -> PagingRegs {
    PagingRegs {
        cr0: cr0 | CR0_PE | CR0_PG,
        cr3,
        cr4,
        efer,
        ..PagingRegs::default()
    }
}

fn long(cr3: u64) -> PagingRegs {
    regs(0, cr3, CR4_PAE, EFER_LME | EFER_LMA | EFER_NXE)
}

fn fault(addr: u64, code: u32) -> Result<Translation, Exception> {
    Err(Exception::PageFault { addr, code })
}

fn phys(r: Result<Translation, Exception>) -> Result<u64, Exception> {
    r.map(|t| t.phys)
}

// ---------------------------------------------------------------- 4-level

/// 4-level tables at 0x1000 (PML4), 0x2000, 0x3000, 0x4000 mapping [`LIN`] to 0x8000, every
/// level `ALL`; returns the entry addresses, top first.
fn four_level(ram: &mut GuestRam) -> [u64; 4] {
    let at = [0x1000 + 8, 0x2000 + 2 * 8, 0x3000 + 3 * 8, 0x4000 + 4 * 8];
    set(ram, at[0], 8, 0x2000 | ALL);
    set(ram, at[1], 8, 0x3000 | ALL);
    set(ram, at[2], 8, 0x4000 | ALL);
    set(ram, at[3], 8, 0x8000 | ALL);
    at
}

/// PML4 index 1, PDPT 2, PD 3, PT 4, offset 0x567.
const LIN: u64 = (1 << 39) | (2 << 30) | (3 << 21) | (4 << 12) | 0x567;

#[test]
fn four_level_4k_translates_and_sets_accessed_then_dirty() {
    let mut ram = ram();
    let at = four_level(&mut ram);
    let r = long(0x1000);
    let t = walk(&mut ram, &r, LIN, Access::Read, S).unwrap();
    assert_eq!(
        t,
        Translation {
            phys: 0x8567,
            writable: true,
            user: true,
            global: false,
            page_size: 4096,
            dirty: false
        }
    );
    for a in at {
        assert_eq!(get(&ram, a, 8) & (A | D), A, "A set, D not, at {a:#x}");
    }
    let t = walk(&mut ram, &r, LIN, Access::Write, U).unwrap();
    assert!(t.dirty);
    assert_eq!(get(&ram, at[3], 8), 0x8000 | ALL | A | D);
    assert_eq!(get(&ram, at[2], 8) & D, 0, "D only on the final entry");
}

#[test]
fn four_level_not_present_at_each_level() {
    for level in 0..4 {
        let mut ram = ram();
        let at = four_level(&mut ram);
        let e = get(&ram, at[level], 8);
        set(&mut ram, at[level], 8, e & !P);
        let r = long(0x1000);
        assert_eq!(walk(&mut ram, &r, LIN, Access::Read, S), fault(LIN, 0));
        assert_eq!(walk(&mut ram, &r, LIN, Access::Write, U), fault(LIN, 0b110));
        assert_eq!(
            walk(&mut ram, &r, LIN, Access::Fetch, U),
            fault(LIN, pf::U | pf::ID),
            "NXE on: I/D reported"
        );
        for a in at {
            assert_eq!(get(&ram, a, 8) & A, 0, "a failed walk sets no A bit");
        }
    }
}

#[test]
fn four_level_large_pages() {
    let mut ram = ram();
    let at = four_level(&mut ram);
    let r = long(0x1000);
    // 2 MiB at PD[3]: frame 0x60_0000, global.
    set(&mut ram, at[2], 8, 0x60_0000 | ALL | PS | G);
    let t = walk(&mut ram, &r, LIN, Access::Write, S).unwrap();
    assert_eq!(
        (t.phys, t.page_size, t.global),
        (0x60_0000 + 0x4567, 2 << 20, false)
    );
    assert_eq!(get(&ram, at[2], 8) & (A | D), A | D, "D on the large leaf");
    let pge = PagingRegs {
        cr4: CR4_PAE | CR4_PGE,
        ..r
    };
    assert!(walk(&mut ram, &pge, LIN, Access::Read, S).unwrap().global);
    // Reserved bits 20:13 of a 2 MiB entry.
    set(&mut ram, at[2], 8, 0x60_0000 | ALL | PS | (1 << 13));
    assert_eq!(
        walk(&mut ram, &r, LIN, Access::Read, S),
        fault(LIN, pf::P | pf::RSVD)
    );
    // Bit 12 is PAT, not address: a 2 MiB frame ignores it.
    set(&mut ram, at[2], 8, 0x60_0000 | ALL | PS | (1 << 12));
    assert_eq!(
        phys(walk(&mut ram, &r, LIN, Access::Read, S)),
        Ok(0x60_4567)
    );
    // 1 GiB at PDPT[2]: frame 1 GiB (outside RAM is fine for the walker).
    set(&mut ram, at[1], 8, 0x4000_0000 | ALL | PS);
    let t = walk(&mut ram, &r, LIN, Access::Read, U).unwrap();
    assert_eq!(
        (t.phys, t.page_size),
        (0x4000_0000 + (3 << 21) + 0x4567, 1 << 30)
    );
    set(&mut ram, at[1], 8, 0x4000_0000 | ALL | PS | (1 << 29));
    assert_eq!(
        walk(&mut ram, &r, LIN, Access::Read, U),
        fault(LIN, pf::P | pf::RSVD | pf::U)
    );
}

#[test]
fn four_level_reserved_bits() {
    let cases: [(usize, u64); 5] = [
        (0, PS),      // PS in a PML4E
        (0, 1 << 45), // above MAXPHYADDR
        (1, 1 << 51),
        (2, 1 << 40),
        (3, 1 << 48),
    ];
    for (level, bit) in cases {
        let mut ram = ram();
        let at = four_level(&mut ram);
        let e = get(&ram, at[level], 8);
        set(&mut ram, at[level], 8, e | bit);
        let r = long(0x1000);
        assert_eq!(
            walk(&mut ram, &r, LIN, Access::Write, S),
            fault(LIN, pf::P | pf::W | pf::RSVD),
            "level {level} bit {bit:#x}"
        );
    }
    // XD is reserved without EFER.NXE; bits 62:52 are ignored.
    let mut ram = ram();
    let at = four_level(&mut ram);
    set(&mut ram, at[3], 8, 0x8000 | ALL | XD | (0x7FF << 52));
    let no_nx = regs(0, 0x1000, CR4_PAE, EFER_LME | EFER_LMA);
    assert_eq!(
        walk(&mut ram, &no_nx, LIN, Access::Fetch, S),
        fault(LIN, pf::P | pf::RSVD),
        "no I/D without NXE or SMEP"
    );
    assert_eq!(
        phys(walk(&mut ram, &long(0x1000), LIN, Access::Read, S)),
        Ok(0x8567)
    );
}

#[test]
fn non_canonical_is_a_general_protection_fault() {
    let mut ram = ram();
    four_level(&mut ram);
    let r = long(0x1000);
    assert_eq!(
        walk(&mut ram, &r, 0x0000_8000_0000_0000, Access::Read, S),
        Err(Exception::GeneralProtection(0))
    );
    assert_eq!(
        walk(&mut ram, &r, 0xFFFF_0000_0000_0000, Access::Write, U),
        Err(Exception::GeneralProtection(0))
    );
    // Canonical high half: PML4 index 511, not present.
    assert_eq!(
        walk(&mut ram, &r, 0xFFFF_FF80_0000_0000, Access::Read, S),
        fault(0xFFFF_FF80_0000_0000, 0)
    );
}

#[test]
fn entries_outside_ram_read_as_not_present() {
    let mut ram = ram();
    let at = four_level(&mut ram);
    set(&mut ram, at[1], 8, RAM | ALL); // the PD would be just past the end of RAM
    assert_eq!(
        walk(&mut ram, &long(0x1000), LIN, Access::Read, S),
        fault(LIN, 0)
    );
    assert_eq!(
        walk(&mut ram, &long(0xFF_FFFF_F000), LIN, Access::Read, S),
        fault(LIN, 0),
        "CR3 outside RAM"
    );
    assert_eq!(get(&ram, at[0], 8) & A, 0);
}

// ---------------------------------------------------------------- rights

/// Builds 4-level tables for [`LIN`] whose upper levels are `upper` and final entry `leaf`
/// (frame 0x8000), and walks.
fn rights(
    upper: u64,
    leaf: u64,
    r: PagingRegs,
    access: Access,
    privilege: Privilege,
) -> Result<Translation, Exception> {
    let mut ram = ram();
    let at = four_level(&mut ram);
    for a in &at[..3] {
        let e = get(&ram, *a, 8);
        set(&mut ram, *a, 8, (e & !ALL) | upper);
    }
    set(&mut ram, at[3], 8, 0x8000 | leaf);
    walk(
        &mut ram,
        &PagingRegs { cr3: 0x1000, ..r },
        LIN,
        access,
        privilege,
    )
}

#[test]
fn user_and_supervisor_pages() {
    let r = long(0x1000);
    use Access::*;
    assert!(rights(ALL, ALL, r, Read, U).is_ok());
    assert_eq!(rights(ALL, P | RW, r, Read, U), fault(LIN, pf::P | pf::U));
    assert_eq!(
        rights(P | RW, ALL, r, Read, U),
        fault(LIN, pf::P | pf::U),
        "U/S combined"
    );
    assert_eq!(
        rights(ALL, P | US, r, Write, U),
        fault(LIN, pf::P | pf::W | pf::U)
    );
    assert_eq!(
        rights(P | US, ALL, r, Write, U),
        fault(LIN, pf::P | pf::W | pf::U),
        "R/W combined"
    );
    assert!(rights(ALL, P | RW, r, Write, S).is_ok());
    let t = rights(ALL, P | US, r, Read, U).unwrap();
    assert!(t.user && !t.writable);
}

#[test]
fn write_protect_governs_supervisor_writes() {
    use Access::*;
    let wp = PagingRegs {
        cr0: CR0_PE | CR0_PG | CR0_WP,
        ..long(0)
    };
    let no_wp = long(0);
    for leaf in [P, P | US] {
        let t = rights(ALL, leaf, no_wp, Write, S).unwrap();
        assert!(t.writable, "WP=0: supervisor writes anything");
        assert_eq!(rights(ALL, leaf, wp, Write, S), fault(LIN, pf::P | pf::W));
        assert!(!rights(ALL, leaf, wp, Read, S).unwrap().writable);
    }
    assert_eq!(
        rights(ALL, P | US, no_wp, Write, U),
        fault(LIN, pf::P | pf::W | pf::U),
        "WP never helps user writes"
    );
}

#[test]
fn execute_disable() {
    use Access::*;
    let r = long(0);
    assert_eq!(
        rights(ALL, ALL | XD, r, Fetch, U),
        fault(LIN, pf::P | pf::U | pf::ID)
    );
    assert_eq!(rights(ALL, P | XD, r, Fetch, S), fault(LIN, pf::P | pf::ID));
    assert_eq!(
        rights(ALL | XD, ALL, r, Fetch, S),
        fault(LIN, pf::P | pf::ID),
        "XD on an upper level"
    );
    assert!(
        rights(ALL, ALL | XD, r, Read, U).is_ok(),
        "XD does not stop data"
    );
    assert!(rights(ALL, ALL, r, Fetch, U).is_ok());
}

#[test]
fn smep_stops_supervisor_fetches_from_user_pages() {
    use Access::*;
    let smep = PagingRegs {
        cr4: CR4_PAE | CR4_SMEP,
        efer: EFER_LME | EFER_LMA,
        ..long(0)
    };
    assert_eq!(rights(ALL, ALL, smep, Fetch, S), fault(LIN, pf::P | pf::ID));
    assert!(rights(ALL, P, smep, Fetch, S).is_ok());
    assert!(rights(ALL, ALL, smep, Fetch, U).is_ok());
    assert!(
        rights(ALL, ALL, smep, Read, S).is_ok(),
        "SMEP is about fetches"
    );
    assert!(rights(ALL, ALL, long(0), Fetch, S).is_ok(), "SMEP off");
}

#[test]
fn smap_and_ac() {
    use Access::*;
    let smap = PagingRegs {
        cr4: CR4_PAE | CR4_SMAP,
        ..long(0)
    };
    let ac = PagingRegs { ac: true, ..smap };
    let implicit = PagingRegs {
        implicit: true,
        ..ac
    };
    assert_eq!(rights(ALL, ALL, smap, Read, S), fault(LIN, pf::P));
    assert_eq!(rights(ALL, ALL, smap, Write, S), fault(LIN, pf::P | pf::W));
    assert!(rights(ALL, ALL, ac, Read, S).is_ok());
    assert!(rights(ALL, ALL, ac, Write, S).unwrap().writable);
    assert_eq!(
        rights(ALL, ALL, implicit, Read, S),
        fault(LIN, pf::P),
        "implicit accesses ignore AC"
    );
    assert!(
        rights(ALL, P | RW, implicit, Read, S).is_ok(),
        "supervisor page"
    );
    assert!(rights(ALL, ALL, smap, Write, U).is_ok(), "user accesses");
    assert!(
        rights(ALL, ALL, smap, Fetch, S).is_ok(),
        "SMAP is about data"
    );
    let t = rights(ALL, ALL, smap, Read, U).unwrap();
    assert!(t.writable && t.user);
}

// ---------------------------------------------------------------- 32-bit and PAE

#[test]
fn bits32_4k_and_4m_pages() {
    let mut ram = ram();
    let lin = (5 << 22) | (6 << 12) | 0x89A;
    // PD at 0x1000, PT at 0x2000, frame 0x7000.
    set(&mut ram, 0x1000 + 5 * 4, 4, 0x2000 | ALL);
    set(&mut ram, 0x2000 + 6 * 4, 4, 0x7000 | ALL | G);
    let r = regs(0, 0x1000, 0, 0);
    let t = walk(&mut ram, &r, lin, Access::Write, U).unwrap();
    assert_eq!((t.phys, t.page_size, t.global), (0x789A, 4096, false));
    assert_eq!(get(&ram, 0x1000 + 5 * 4, 4), 0x2000 | ALL | A);
    assert_eq!(get(&ram, 0x2000 + 6 * 4, 4), 0x7000 | ALL | G | A | D);
    let pge = regs(0, 0x1000, CR4_PGE, 0);
    assert!(walk(&mut ram, &pge, lin, Access::Read, U).unwrap().global);
    // Upper 32 bits of a linear address are not translated (callers wrap first).
    assert_eq!(
        phys(walk(&mut ram, &r, lin | (1 << 40), Access::Read, U)),
        Ok(0x789A)
    );

    // PS without CR4.PSE: still a page table.
    set(&mut ram, 0x1000 + 5 * 4, 4, 0x2000 | ALL | PS);
    assert_eq!(phys(walk(&mut ram, &r, lin, Access::Read, U)), Ok(0x789A));
    // With PSE: a 4 MiB page at 0x40_0000, PSE-36 bits 20:13 → physical 39:32.
    let pse = regs(0, 0x1000, CR4_PSE, 0);
    set(
        &mut ram,
        0x1000 + 5 * 4,
        4,
        0x40_0000 | ALL | PS | (0x12 << 13),
    );
    let t = walk(&mut ram, &pse, lin, Access::Read, S).unwrap();
    assert_eq!(
        (t.phys, t.page_size),
        (0x12_0040_0000 + (6 << 12) + 0x89A, 4 << 20)
    );
    set(
        &mut ram,
        0x1000 + 5 * 4,
        4,
        0x40_0000 | ALL | PS | (1 << 21),
    );
    assert_eq!(
        walk(&mut ram, &pse, lin, Access::Read, S),
        fault(lin, pf::P | pf::RSVD)
    );
    // No NX in 32-bit paging: I/D only with SMEP; bit 31 is address.
    set(&mut ram, 0x1000 + 5 * 4, 4, 0x8000_0000 | ALL | PS);
    assert!(walk(&mut ram, &pse, lin, Access::Fetch, U).is_ok());
    set(&mut ram, 0x1000 + 5 * 4, 4, 0);
    assert_eq!(
        walk(&mut ram, &pse, lin, Access::Fetch, U),
        fault(lin, pf::U)
    );
    let smep = regs(0, 0x1000, CR4_SMEP, EFER_NXE);
    assert_eq!(
        walk(&mut ram, &smep, lin, Access::Fetch, U),
        fault(lin, pf::U | pf::ID)
    );
}

#[test]
fn pae_tables() {
    let mut ram = ram();
    let lin = (2 << 30) | (7 << 21) | (8 << 12) | 0x123;
    // PDPT at 0x1020 (32-byte aligned), PD at 0x2000, PT at 0x3000, frame 0x9000.
    set(&mut ram, 0x1020 + 2 * 8, 8, 0x2000 | P);
    set(&mut ram, 0x2000 + 7 * 8, 8, 0x3000 | ALL);
    set(&mut ram, 0x3000 + 8 * 8, 8, 0x9000 | ALL);
    let r = regs(0, 0x1020, CR4_PAE, EFER_NXE);
    let t = walk(&mut ram, &r, lin, Access::Write, U).unwrap();
    assert_eq!(t.phys, 0x9123);
    assert_eq!(
        get(&ram, 0x1020 + 2 * 8, 8),
        0x2000 | P,
        "PDPTEs have no A bit"
    );
    assert_eq!(get(&ram, 0x2000 + 7 * 8, 8), 0x3000 | ALL | A);
    assert_eq!(get(&ram, 0x3000 + 8 * 8, 8), 0x9000 | ALL | A | D);
    // PDPTE reserved bits: R/W, U/S, bits 8:5, XD, above MAXPHYADDR.
    for bit in [RW, US, A, PS, 1 << 8, XD, 1 << 40] {
        set(&mut ram, 0x1020 + 2 * 8, 8, 0x2000 | P | bit);
        assert_eq!(
            walk(&mut ram, &r, lin, Access::Read, S),
            fault(lin, pf::P | pf::RSVD),
            "PDPTE bit {bit:#x}"
        );
    }
    set(&mut ram, 0x1020 + 2 * 8, 8, 0x2000);
    assert_eq!(walk(&mut ram, &r, lin, Access::Read, S), fault(lin, 0));
    set(&mut ram, 0x1020 + 2 * 8, 8, 0x2000 | P);
    // Bits 62:40 reserved in PAE (not just 51:40); XD with NXE is execute-disable.
    set(&mut ram, 0x3000 + 8 * 8, 8, 0x9000 | ALL | (1 << 60));
    assert_eq!(
        walk(&mut ram, &r, lin, Access::Read, S),
        fault(lin, pf::P | pf::RSVD)
    );
    set(&mut ram, 0x3000 + 8 * 8, 8, 0x9000 | ALL | XD);
    assert_eq!(
        walk(&mut ram, &r, lin, Access::Fetch, S),
        fault(lin, pf::P | pf::ID)
    );
    // 2 MiB page.
    set(&mut ram, 0x2000 + 7 * 8, 8, 0x20_0000 | ALL | PS);
    let t = walk(&mut ram, &r, lin, Access::Read, U).unwrap();
    assert_eq!(
        (t.phys, t.page_size),
        (0x20_0000 + (8 << 12) + 0x123, 2 << 20)
    );
}

#[test]
fn paging_off_is_the_identity() {
    let mut ram = ram();
    let r = PagingRegs {
        cr0: CR0_PE,
        ..PagingRegs::default()
    };
    let t = walk(&mut ram, &r, 0xFEE0_0030, Access::Write, U).unwrap();
    assert_eq!((t.phys, t.writable), (0xFEE0_0030, true));
}

#[test]
fn peek_reports_updates_without_writing() {
    let mut ram = ram();
    let at = four_level(&mut ram);
    let p = walk_peek(&ram, &long(0x1000), LIN, Access::Write, S).unwrap();
    assert_eq!(p.n_updates, 4);
    assert_eq!(p.updates[3].new, 0x8000 | ALL | A | D);
    assert_eq!(get(&ram, at[3], 8), 0x8000 | ALL, "nothing written");
}

// ---------------------------------------------------------------- hostile tables

/// Tables live in the first `WINDOW` bytes of RAM; everything else stays zero.
const WINDOW: u64 = 16 * 4096;

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.next().is_multiple_of(one_in)
    }
}

/// A plausible-but-hostile entry: usually pointing into the window, random flags, now and
/// then reserved, huge or XD bits.
fn random_entry(rng: &mut Rng) -> u64 {
    let mut e = if rng.chance(20) {
        rng.next()
    } else {
        ((rng.next() % (WINDOW / 4096)) * 4096) | (rng.next() & 0x1FF)
    };
    if !rng.chance(8) {
        e |= P;
    }
    if rng.chance(3) {
        e &= !0x1E6; // a clean PAE PDPTE now and then
    }
    if rng.chance(12) {
        e |= 1 << (12 + rng.next() % 52);
    }
    e
}

/// A write the reference expects: address, width, value.
type Write = (u64, usize, u64);

/// The reference walker: the SDM's rules written out level by level, reading a snapshot of
/// the window. Returns the translation and the (address, width, value) writes it implies.
fn reference(
    mem: &[u8],
    r: &PagingRegs,
    lin: u64,
    access: Access,
    privilege: Privilege,
) -> Result<(Translation, Vec<Write>), Exception> {
    let bits = |lo: u32, hi: u32| -> u64 { (u64::MAX >> (64 - hi)) & !((1u64 << lo) - 1) };
    let read = |addr: u64, width: usize| -> u64 {
        if addr.saturating_add(width as u64) > WINDOW {
            return 0; // zero RAM, or outside RAM: not present either way
        }
        let a = addr as usize;
        let mut b = [0u8; 8];
        b[..width].copy_from_slice(&mem[a..a + width]);
        u64::from_le_bytes(b)
    };
    let write = access == Access::Write;
    let fetch = access == Access::Fetch;
    let user = privilege == Privilege::User;
    let nxe = r.efer & EFER_NXE != 0;
    let smep = r.cr4 & CR4_SMEP != 0;
    let mode = r.mode();
    let pf = |present: bool, rsvd: bool| {
        let id = fetch && (smep || (nxe && mode != PagingMode::Bits32));
        Exception::PageFault {
            addr: lin,
            code: present as u32
                | (write as u32) << 1
                | (user as u32) << 2
                | (rsvd as u32) << 3
                | (id as u32) << 4,
        }
    };
    let xd_rsvd = if nxe { 0 } else { 1 << 63 };
    // (address, width, value, carries rights and an A bit)
    let mut used: Vec<(u64, usize, u64, bool)> = Vec::new();
    let (frame, size): (u64, u64);
    match mode {
        PagingMode::Off => unreachable!("the test only walks with paging on"),
        PagingMode::Bits32 => {
            let l = lin & 0xFFFF_FFFF;
            let a = (r.cr3 & 0xFFFF_F000) + (l >> 22) * 4;
            let pde = read(a, 4);
            if pde & 1 == 0 {
                return Err(pf(false, false));
            }
            used.push((a, 4, pde, true));
            if pde & PS != 0 && r.cr4 & CR4_PSE != 0 {
                if pde & (1 << 21) != 0 {
                    return Err(pf(true, true));
                }
                frame = (pde & bits(22, 32)) + ((pde >> 13 & 0xFF) << 32);
                size = 1 << 22;
            } else {
                let a = (pde & bits(12, 32)) + ((l >> 12) & 1023) * 4;
                let pte = read(a, 4);
                if pte & 1 == 0 {
                    return Err(pf(false, false));
                }
                used.push((a, 4, pte, true));
                frame = pte & bits(12, 32);
                size = 1 << 12;
            }
        }
        PagingMode::Pae | PagingMode::FourLevel => {
            let four = mode == PagingMode::FourLevel;
            let l = if four {
                if ((lin as i64) << 16 >> 16) as u64 != lin {
                    return Err(Exception::GeneralProtection(0));
                }
                lin
            } else {
                lin & 0xFFFF_FFFF
            };
            let rsvd_high = if four { bits(40, 52) } else { bits(40, 63) };
            let mut table;
            let shifts: &[u32];
            if four {
                table = r.cr3 & bits(12, 40);
                shifts = &[39, 30, 21, 12];
            } else {
                let a = (r.cr3 & bits(5, 32)) + (l >> 30) * 8;
                let pdpte = read(a, 8);
                if pdpte & 1 == 0 {
                    return Err(pf(false, false));
                }
                if pdpte & (bits(40, 64) | 0b1_1110_0110) != 0 {
                    return Err(pf(true, true));
                }
                used.push((a, 8, pdpte, false));
                table = pdpte & bits(12, 40);
                shifts = &[21, 12];
            }
            let mut found = None;
            for &shift in shifts {
                let a = table + ((l >> shift) & 511) * 8;
                let e = read(a, 8);
                if e & 1 == 0 {
                    return Err(pf(false, false));
                }
                let mut rsvd = rsvd_high | xd_rsvd;
                if shift == 39 {
                    rsvd |= PS;
                }
                let leaf = shift == 12 || (shift != 39 && e & PS != 0);
                if leaf && shift > 12 {
                    rsvd |= bits(13, shift);
                }
                if e & rsvd != 0 {
                    return Err(pf(true, true));
                }
                used.push((a, 8, e, true));
                if leaf {
                    found = Some((e & bits(shift, 40), 1u64 << shift));
                    break;
                }
                table = e & bits(12, 40);
            }
            (frame, size) = found.expect("the last level is always a leaf");
        }
    }
    let rights: Vec<u64> = used.iter().filter(|u| u.3).map(|u| u.2).collect();
    let us = rights.iter().all(|e| e & US != 0);
    let rw = rights.iter().all(|e| e & RW != 0);
    let xd = nxe && rights.iter().any(|e| e & XD != 0);
    let wp = r.cr0 & CR0_WP != 0;
    let smap = r.cr4 & CR4_SMAP != 0 && (r.implicit || !r.ac);
    let may = |acc: Access| -> bool {
        if user {
            return us && (acc != Access::Write || rw) && (acc != Access::Fetch || !xd);
        }
        match acc {
            Access::Fetch => !(xd || (smep && us)),
            Access::Read => !(smap && us),
            Access::Write => !(smap && us) && (rw || !wp),
        }
    };
    if !may(access) {
        return Err(pf(true, false));
    }
    let mut writes = Vec::new();
    let last = used.len() - 1;
    for (i, &(a, w, e, has_a)) in used.iter().enumerate() {
        let mut new = if has_a { e | A } else { e };
        if i == last && write {
            new |= D;
        }
        if new != e {
            writes.push((a, w, new));
        }
    }
    let leaf = used[last].2;
    Ok((
        Translation {
            phys: frame | (lin & (size - 1)),
            writable: may(Access::Write),
            user: us,
            global: r.cr4 & CR4_PGE != 0 && leaf & G != 0,
            page_size: size,
            dirty: leaf & D != 0 || write,
        },
        writes,
    ))
}

#[test]
fn hostile_tables_match_the_reference() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut ram = GuestRam::new(2 << 20).unwrap();
    // Successful walks per mode (32-bit, PAE, 4-level), and faults.
    let (mut oks, mut faults) = ([0; 3], 0);
    for _image in 0..400 {
        let bits32 = rng.chance(3);
        for i in 0..WINDOW / 8 {
            let v = if bits32 {
                random_entry(&mut rng) & 0xFFFF_FFFF | random_entry(&mut rng) << 32
            } else {
                random_entry(&mut rng)
            };
            set(&mut ram, i * 8, 8, v);
        }
        for _ in 0..12 {
            let pick = |rng: &mut Rng, bit: u64| if rng.chance(2) { bit } else { 0 };
            let cr4 = pick(&mut rng, CR4_PSE)
                | pick(&mut rng, CR4_PGE)
                | pick(&mut rng, CR4_SMEP)
                | pick(&mut rng, CR4_SMAP)
                | if bits32 { 0 } else { CR4_PAE };
            let long = !bits32 && rng.chance(2);
            let efer = pick(&mut rng, EFER_NXE) | if long { EFER_LME | EFER_LMA } else { 0 };
            let cr3 = if rng.chance(10) {
                rng.next()
            } else {
                ((rng.next() % (WINDOW / 32)) * 32) | (rng.next() & 0x1F)
            };
            let r = PagingRegs {
                cr0: CR0_PE | CR0_PG | pick(&mut rng, CR0_WP),
                cr3,
                cr4,
                efer,
                ac: rng.chance(2),
                implicit: rng.chance(3),
            };
            let mut lin = rng.next();
            if long && !rng.chance(10) {
                lin = ((lin as i64) << 16 >> 16) as u64;
            } else if !long {
                lin &= 0xFFFF_FFFF;
            }
            let access = [Access::Read, Access::Write, Access::Fetch][(rng.next() % 3) as usize];
            let privilege = if rng.chance(2) { S } else { U };

            let mut before = vec![0u8; WINDOW as usize];
            ram.read(GuestPhys(0), &mut before).unwrap();
            let peeked = walk_peek(&ram, &r, lin, access, privilege);
            let got = walk(&mut ram, &r, lin, access, privilege);
            let want = reference(&before, &r, lin, access, privilege);
            let mut after = vec![0u8; WINDOW as usize];
            ram.read(GuestPhys(0), &mut after).unwrap();
            let ctx = format!("{r:x?} lin={lin:#x} {access:?} {privilege:?}");
            assert_eq!(got, want.clone().map(|w| w.0), "{ctx}");
            assert_eq!(peeked.map(|p| p.translation), got, "{ctx}");
            let mut expect = before.clone();
            for (a, w, v) in want.as_ref().map(|w| w.1.clone()).unwrap_or_default() {
                expect[a as usize..a as usize + w].copy_from_slice(&v.to_le_bytes()[..w]);
            }
            assert!(after == expect, "A/D updates differ: {ctx}");
            match got {
                Ok(t) => {
                    assert!(t.phys < 1 << PHYS_ADDR_BITS, "{ctx}");
                    oks[r.mode() as usize - 1] += 1;
                }
                Err(_) => faults += 1,
            }
        }
    }
    assert!(
        oks.iter().all(|&n| n > 50) && faults > 1000,
        "coverage: {oks:?} ok, {faults} faults"
    );
}
