//! The machine's access paths with paging on: TLB fill and use, flushes, page-crossing
//! accesses, MMIO, the user and supervisor sets, SMAP through `read_lin`, fetches and the
//! memory helpers.

use translator::state::cr::*;
use translator::state::{rflags, TLB_INVALID};
use translator::{CpuState, Exception, Helper};

use super::pte::{A, D, G, P, RW, US, XD};
use super::tlb::{entry_phys_page, index};
use crate::devices::SerialSink;
use crate::helpers::run_helper;
use crate::machine::{Machine, Privilege, WriteOutcome};
use crate::memory::{Access, GuestPhys};

const ALL: u64 = P | RW | US;
const RAM: u64 = 4 << 20;

/// 4-level tables at CR3 = 0x1000, new tables taken from 0x2000 on.
struct Tables {
    next: u64,
}

impl Tables {
    /// Maps the 4 KiB page at `lin` to `phys` with final-entry flags `leaf` (upper levels
    /// `ALL`); returns the final entry's address.
    fn map(&mut self, m: &mut Machine, lin: u64, phys: u64, leaf: u64) -> u64 {
        let mut table = 0x1000;
        for shift in [39, 30, 21] {
            let at = table + ((lin >> shift) & 0x1FF) * 8;
            let e = m.ram.read_le(GuestPhys(at), 8).unwrap();
            table = if e & P != 0 {
                e & 0xF_FFFF_FFFF_F000
            } else {
                let t = self.next;
                self.next += 0x1000;
                m.ram.write_le(GuestPhys(at), 8, t | ALL).unwrap();
                t
            };
        }
        let at = table + ((lin >> 12) & 0x1FF) * 8;
        m.ram.write_le(GuestPhys(at), 8, phys | leaf).unwrap();
        at
    }
}

const DATA: u64 = 0x40_0000; // → 0x20_0000, user RW
const NEXT: u64 = 0x40_1000; // → 0x5000, user RW, XD
const HOLE: u64 = 0x40_2000; // not mapped
const MMIO: u64 = 0x50_3000; // → 0xE000_0000 (no device there)
const KERNEL: u64 = 0x60_4000; // → 0x21_0000, supervisor RW
const GLOBAL: u64 = 0xFFFF_8000_0000_5000; // → 0x22_0000, supervisor, global
                                           // (Each in its own TLB slot.)

struct Paged {
    m: Box<Machine>,
    cpu: Box<CpuState>,
    /// Final-entry address of DATA.
    data_pte: u64,
}

fn paged() -> Paged {
    let mut m = Box::new(Machine::new(RAM, SerialSink::Capture).unwrap());
    let mut t = Tables { next: 0x2000 };
    let data_pte = t.map(&mut m, DATA, 0x20_0000, ALL);
    t.map(&mut m, NEXT, 0x5000, ALL | XD);
    t.map(&mut m, MMIO, 0xE000_0000, P | RW);
    t.map(&mut m, KERNEL, 0x21_0000, P | RW);
    t.map(&mut m, GLOBAL, 0x22_0000, P | RW | G);
    let cpu = Box::new(CpuState {
        cr0: CR0_PE | CR0_PG | CR0_WP,
        cr3: 0x1000,
        cr4: CR4_PAE | CR4_PGE,
        efer: EFER_LME | EFER_LMA | EFER_NXE,
        ..CpuState::default()
    });
    Paged { m, cpu, data_pte }
}

fn pf(addr: u64, code: u32) -> Exception {
    Exception::PageFault { addr, code }
}

#[test]
fn accesses_translate_and_fill_the_tlb() {
    let Paged {
        mut m,
        mut cpu,
        data_pte,
    } = paged();
    m.ram.write_le(GuestPhys(0x20_0010), 8, 0x1122).unwrap();
    assert_eq!(
        m.read_virt_for(&mut cpu, DATA + 0x10, 8, Access::Read),
        Ok(0x1122)
    );
    let e = cpu.tlb.sets[0][index(DATA)];
    assert_eq!(
        (e.read_tag, e.write_tag),
        (DATA, TLB_INVALID),
        "clean page: no write tag"
    );
    assert_eq!(entry_phys_page(&e), 0x20_0000);
    assert_eq!(
        e.addend.wrapping_add(DATA + 0x10),
        m.ram.host_base() as u64 + 0x20_0010,
        "the fast path reaches the right host byte"
    );
    assert_eq!(
        m.ram.read_le(GuestPhys(data_pte), 8).unwrap(),
        0x20_0000 | ALL | A
    );

    assert_eq!(
        m.write_virt_for(&mut cpu, DATA + 0x10, 8, 0x3344),
        Ok(WriteOutcome::Done)
    );
    assert_eq!(m.ram.read_le(GuestPhys(0x20_0010), 8).unwrap(), 0x3344);
    assert_eq!(
        m.ram.read_le(GuestPhys(data_pte), 8).unwrap(),
        0x20_0000 | ALL | A | D
    );
    assert_eq!(
        cpu.tlb.sets[0][index(DATA)].write_tag,
        DATA,
        "dirty now: writable"
    );
    assert_eq!(
        cpu.tlb.sets[1][index(DATA)].read_tag,
        TLB_INVALID,
        "user set untouched"
    );
}

#[test]
fn tlb_hits_skip_the_walk_until_invlpg_or_a_flush() {
    let Paged {
        mut m,
        mut cpu,
        data_pte,
    } = paged();
    m.ram.write_le(GuestPhys(0x20_0000), 1, 0xAA).unwrap();
    m.ram.write_le(GuestPhys(0x23_0000), 1, 0xBB).unwrap();
    assert_eq!(m.read_virt_for(&mut cpu, DATA, 1, Access::Read), Ok(0xAA));
    m.ram
        .write_le(GuestPhys(data_pte), 8, 0x23_0000 | ALL)
        .unwrap();
    assert_eq!(
        m.read_virt_for(&mut cpu, DATA, 1, Access::Read),
        Ok(0xAA),
        "stale until invalidated, as on hardware"
    );
    m.run.mappings_changed = false;
    m.invlpg(&mut cpu, DATA + 0x123);
    assert!(
        !m.run.mappings_changed,
        "INVLPG drops only its window of the jump cache"
    );
    assert_eq!(m.read_virt_for(&mut cpu, DATA, 1, Access::Read), Ok(0xBB));

    // Global pages survive a non-global flush.
    m.read_virt_for(&mut cpu, GLOBAL, 1, Access::Read).unwrap();
    m.flush_tlb(&mut cpu, false);
    assert_eq!(cpu.tlb.sets[0][index(DATA)].read_tag, TLB_INVALID);
    assert_eq!(cpu.tlb.sets[0][index(GLOBAL)].read_tag, GLOBAL);
    m.flush_tlb(&mut cpu, true);
    assert_eq!(cpu.tlb.sets[0][index(GLOBAL)].read_tag, TLB_INVALID);
}

/// Code lookups say whether their translation is global (what a MOV CR3 keeps), and a
/// flush says whether it dropped global translations too.
#[test]
fn code_translations_report_global_pages_and_flushes_their_kind() {
    let Paged { mut m, mut cpu, .. } = paged();
    cpu.seg[translator::state::seg::CS].attr |= translator::state::seg_attr::L;
    let global = |m: &mut Machine, cpu: &CpuState, lin| m.translate_code_global(cpu, lin);
    assert_eq!(
        global(&mut m, &cpu, GLOBAL + 4),
        Ok((GuestPhys(0x22_0004), true))
    );
    assert_eq!(
        global(&mut m, &cpu, KERNEL),
        Ok((GuestPhys(0x21_0000), false))
    );
    cpu.cr4 &= !CR4_PGE;
    assert_eq!(
        global(&mut m, &cpu, GLOBAL),
        Ok((GuestPhys(0x22_0000), false)),
        "G without CR4.PGE"
    );
    cpu.cr0 &= !CR0_PG;
    cpu.efer &= !(EFER_LME | EFER_LMA);
    assert_eq!(global(&mut m, &cpu, 0x5000), Ok((GuestPhys(0x5000), false)));

    m.run.mappings_changed = false;
    m.flush_tlb(&mut cpu, false);
    assert!(m.run.mappings_changed && !m.run.global_mappings_changed);
    m.flush_tlb(&mut cpu, true);
    assert!(m.run.mappings_changed && m.run.global_mappings_changed);
}

#[test]
fn page_crossing_accesses_are_precise() {
    let Paged { mut m, mut cpu, .. } = paged();
    m.ram.write_le(GuestPhys(0x5FFC), 4, 0xDDCC_BBAA).unwrap();
    assert_eq!(
        m.write_virt_for(&mut cpu, NEXT + 0xFFC, 8, u64::MAX),
        Err(pf(HOLE, 0b10)),
        "the second page faults, with its own address"
    );
    assert_eq!(
        m.ram.read_le(GuestPhys(0x5FFC), 4).unwrap(),
        0xDDCC_BBAA,
        "nothing written"
    );
    // DATA's last bytes then NEXT's first: two different physical pages.
    m.ram.write_le(GuestPhys(0x20_0FFE), 2, 0x2211).unwrap();
    m.ram.write_le(GuestPhys(0x5000), 2, 0x4433).unwrap();
    assert_eq!(
        m.read_virt_for(&mut cpu, DATA + 0xFFE, 4, Access::Read),
        Ok(0x4433_2211)
    );
    m.write_virt_for(&mut cpu, DATA + 0xFFF, 2, 0x6655).unwrap();
    assert_eq!(m.ram.read_le(GuestPhys(0x20_0FFF), 1).unwrap(), 0x55);
    assert_eq!(m.ram.read_le(GuestPhys(0x5000), 1).unwrap(), 0x66);
}

#[test]
fn mmio_is_routed_and_never_cached() {
    let Paged { mut m, mut cpu, .. } = paged();
    assert_eq!(
        m.read_virt_for(&mut cpu, MMIO + 0x30, 4, Access::Read),
        Ok(0xFFFF_FFFF)
    );
    assert_eq!(
        m.write_virt_for(&mut cpu, MMIO + 0x30, 4, 7),
        Ok(WriteOutcome::Done)
    );
    assert_eq!(cpu.tlb.sets[0][index(MMIO)].read_tag, TLB_INVALID);
    // Paging off in protected mode: identity, MMIO beyond RAM, 32-bit wrap.
    cpu.cr0 = CR0_PE;
    cpu.efer = 0;
    m.ram.write_le(GuestPhys(0x1234), 2, 0xBEEF).unwrap();
    assert_eq!(
        m.read_virt_for(&mut cpu, 0x1_0000_1234, 2, Access::Read),
        Ok(0xBEEF)
    );
    assert_eq!(
        m.read_virt_for(&mut cpu, 0xE000_0020, 8, Access::Read),
        Ok(u64::MAX)
    );
    assert_eq!(
        cpu.tlb.sets[0][index(0x1234)].read_tag,
        TLB_INVALID,
        "no TLB without paging"
    );
}

#[test]
fn user_accesses_use_the_user_set_and_rights() {
    let Paged { mut m, mut cpu, .. } = paged();
    cpu.cpl = 3;
    m.read_virt_for(&mut cpu, DATA, 8, Access::Read).unwrap();
    assert_eq!(cpu.tlb.sets[1][index(DATA)].read_tag, DATA);
    assert_eq!(cpu.tlb.sets[0][index(DATA)].read_tag, TLB_INVALID);
    assert_eq!(
        m.read_virt_for(&mut cpu, KERNEL, 8, Access::Read),
        Err(pf(KERNEL, 0b101))
    );
    // The supervisor may use KERNEL; then the user still may not (separate sets).
    cpu.cpl = 0;
    m.read_virt_for(&mut cpu, KERNEL, 8, Access::Read).unwrap();
    cpu.cpl = 3;
    assert_eq!(
        m.write_virt_for(&mut cpu, KERNEL, 1, 0),
        Err(pf(KERNEL, 0b111))
    );
}

#[test]
fn smap_through_explicit_and_implicit_accesses() {
    let Paged { mut m, mut cpu, .. } = paged();
    cpu.cr4 |= CR4_SMAP;
    assert_eq!(
        m.read_virt_for(&mut cpu, DATA, 4, Access::Read),
        Err(pf(DATA, 0b1))
    );
    cpu.rflags |= rflags::AC;
    assert_eq!(m.read_virt_for(&mut cpu, DATA, 4, Access::Read), Ok(0));
    assert_eq!(
        cpu.tlb.sets[0][index(DATA)].read_tag,
        TLB_INVALID,
        "user pages stay out of the supervisor set under SMAP"
    );
    // Clearing AC needs no flush.
    cpu.rflags &= !rflags::AC;
    assert!(m.read_virt_for(&mut cpu, DATA, 4, Access::Read).is_err());
    // Supervisor accesses from CPL 3 (descriptor tables, ...) are implicit: AC is ignored.
    cpu.rflags |= rflags::AC;
    cpu.cpl = 3;
    assert_eq!(
        m.read_lin(&mut cpu, DATA, 8, Access::Read, Privilege::Supervisor),
        Err(pf(DATA, 0b1))
    );
    assert!(m.write_lin(&mut cpu, DATA, 8, 1, Privilege::User).is_ok());
    cpu.cpl = 0;
    assert_eq!(
        m.read_lin(&mut cpu, DATA, 8, Access::Read, Privilege::Supervisor),
        Ok(1)
    );
}

#[test]
fn fetches_walk_with_fetch_rights() {
    let Paged { mut m, mut cpu, .. } = paged();
    m.ram.write(GuestPhys(0x20_0FF8), &[0x90; 8]).unwrap();
    let f = m.fetch_code(&cpu, DATA + 0xFF8).unwrap();
    assert_eq!((f.phys, f.first_len, f.next_phys), (0x20_0FF8, 8, None));
    assert_eq!(
        f.next_fault,
        Some(pf(NEXT, 0b1_0001)),
        "NEXT is execute-disabled"
    );
    assert_eq!(m.fetch_code(&cpu, NEXT).unwrap_err(), pf(NEXT, 0b1_0001));
    assert_eq!(m.fetch_code(&cpu, HOLE).unwrap_err(), pf(HOLE, 0b1_0000));
    assert_eq!(m.translate_code(&cpu, DATA + 5), Ok(GuestPhys(0x20_0005)));
    cpu.cr4 |= CR4_SMEP;
    assert_eq!(m.fetch_code(&cpu, DATA).unwrap_err(), pf(DATA, 0b1_0001));
    cpu.cpl = 3;
    assert!(m.fetch_code(&cpu, DATA).is_ok());
    assert_eq!(m.insn_bytes_for(&cpu, DATA + 0xFF8), vec![0x90; 8]);
}

#[test]
fn reports_peek_without_setting_accessed_bits() {
    let Paged {
        m, cpu, data_pte, ..
    } = paged();
    assert_eq!(m.insn_bytes_for(&cpu, DATA).len(), 15);
    assert_eq!(m.ram.read_le(GuestPhys(data_pte), 8).unwrap() & A, 0);
}

#[test]
fn code_pages_lose_their_write_tags() {
    let Paged { mut m, mut cpu, .. } = paged();
    m.write_virt_for(&mut cpu, DATA, 8, 1).unwrap();
    m.write_virt_for(&mut cpu, DATA + 8, 8, 2).unwrap();
    assert_eq!(cpu.tlb.sets[0][index(DATA)].write_tag, DATA);
    m.protect_code_page(&mut cpu, 0x20_0000);
    assert_eq!(cpu.tlb.sets[0][index(DATA)].write_tag, TLB_INVALID);
    assert_eq!(cpu.tlb.sets[0][index(DATA)].read_tag, DATA);
}

#[test]
fn bits32_addresses_wrap_at_4_gib() {
    let mut m = Machine::new(RAM, SerialSink::Capture).unwrap();
    // PD at 0x1000: PDE 1023 → PT 0x2000, PDE 0 → PT 0x3000.
    m.ram
        .write_le(GuestPhys(0x1000 + 1023 * 4), 4, 0x2000 | ALL)
        .unwrap();
    m.ram.write_le(GuestPhys(0x1000), 4, 0x3000 | ALL).unwrap();
    m.ram
        .write_le(GuestPhys(0x2000 + 1023 * 4), 4, 0x6000 | ALL)
        .unwrap();
    m.ram.write_le(GuestPhys(0x3000), 4, 0x7000 | ALL).unwrap();
    let mut cpu = CpuState {
        cr0: CR0_PE | CR0_PG,
        cr3: 0x1000,
        ..CpuState::default()
    };
    m.write_virt_for(&mut cpu, 0xFFFF_FFFE, 4, 0x4433_2211)
        .unwrap();
    assert_eq!(m.ram.read_le(GuestPhys(0x6FFE), 2).unwrap(), 0x2211);
    assert_eq!(m.ram.read_le(GuestPhys(0x7000), 2).unwrap(), 0x4433);
    assert_eq!(
        m.read_virt_for(&mut cpu, 0x1_FFFF_FFFE, 4, Access::Read),
        Ok(0x4433_2211)
    );
    assert_eq!(
        m.read_virt_for(&mut cpu, 0x40_0000, 1, Access::Read),
        Err(pf(0x40_0000, 0))
    );
}

#[test]
fn memory_helpers_use_paging() {
    let Paged { mut m, mut cpu, .. } = paged();
    run_helper(&mut m, &mut cpu, Helper::MemWrite, [DATA + 0x40, 4, 0xCAFE]);
    assert_eq!(cpu.status, 0);
    assert_eq!(
        run_helper(&mut m, &mut cpu, Helper::MemRead, [DATA + 0x40, 4, 0]),
        0xCAFE
    );
    assert_eq!(cpu.tlb.sets[0][index(DATA)].write_tag, DATA);
    run_helper(&mut m, &mut cpu, Helper::MemWrite, [HOLE + 8, 8, 0]);
    assert_eq!(cpu.exception(), Some(pf(HOLE + 8, 0b10)));
}

#[test]
fn the_flat_model_is_unchanged_without_protection() {
    let mut m = Machine::new(RAM, SerialSink::Capture).unwrap();
    let mut cpu = CpuState::default();
    assert_eq!(
        m.read_virt_for(&mut cpu, RAM, 1, Access::Read),
        Err(pf(RAM, 0)),
        "beyond RAM is not present, not MMIO"
    );
    assert_eq!(
        m.read_virt_for(&mut cpu, 1 << 63, 1, Access::Read),
        Err(Exception::GeneralProtection(0))
    );
    m.write_virt_for(&mut cpu, 0x1000, 8, 5).unwrap();
    assert_eq!(m.read_virt(0x1000, 8, Access::Read), Ok(5));
    assert_eq!(cpu.tlb.sets[0][index(0x1000)].read_tag, TLB_INVALID);
}
