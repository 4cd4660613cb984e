//! Tests of event delivery and IRET, and the 64-bit test machine other modules share.

use super::*;
use crate::system::descriptors::Desc;
use crate::system::mode::reset_long_flat64;
use crate::system::segments::ltr;
use crate::system::segments::tests::{put, seg_desc, setup32, GDT};
use translator::state::Segment;

const IDT: u64 = 0x3000;
const TSS: u64 = 0x5000;
/// Where `setup64`'s interrupt gates point: vector v goes to `HANDLER + v`.
pub(crate) const HANDLER: u64 = 0x40_0000;
const GP: fn(u16) -> Exception = Exception::GeneralProtection;

fn gate64(m: &mut Machine, vector: u8, sel: u16, off: u64, typ: u8, dpl: u8, ist: u8) {
    let lo = (off & 0xFFFF)
        | ((sel as u64) << 16)
        | ((ist as u64) << 32)
        | ((0x80 | (dpl as u64) << 5 | typ as u64) << 40)
        | (((off >> 16) & 0xFFFF) << 48);
    let at = IDT + vector as u64 * 16;
    m.write_virt(at, 8, lo).unwrap();
    m.write_virt(at + 8, 8, off >> 32).unwrap();
}

fn gate32(m: &mut Machine, vector: u8, sel: u16, off: u32, typ: u8, dpl: u8) {
    let off = off as u64;
    let lo = (off & 0xFFFF)
        | ((sel as u64) << 16)
        | ((0x80 | (dpl as u64) << 5 | typ as u64) << 40)
        | ((off >> 16) << 48);
    m.write_virt(IDT + vector as u64 * 8, 8, lo).unwrap();
}

fn rd(m: &mut Machine, a: u64) -> u64 {
    m.read_virt(a, 8, Access::Read).unwrap()
}

fn frame(m: &mut Machine, at: u64, n: u64, size: u64) -> Vec<u64> {
    (0..n)
        .map(|i| {
            m.read_virt(at + i * size, size as usize, Access::Read)
                .unwrap()
        })
        .collect()
}

/// Programs the PIC pair as Linux does (vectors 0x20 and 0x28, cascade on IRQ2), with
/// `master_mask` on the master and every slave line masked.
pub(crate) fn init_pic(m: &mut Machine, master_mask: u32) {
    for (port, value) in [
        (0x20, 0x11),
        (0x21, 0x20),
        (0x21, 4),
        (0x21, 1),
        (0x21, master_mask),
        (0xA0, 0x11),
        (0xA1, 0x28),
        (0xA1, 2),
        (0xA1, 1),
        (0xA1, 0xFF),
    ] {
        assert!(m.platform.io_write(port, 1, value, 0));
    }
}

/// 64-bit machine: GDT 0x08 code64/0, 0x10 data/0, 0x18 code32/3, 0x23 data/3, 0x2B
/// code64/3, 0x30 TSS64 (RSP0 = 0x9008, IST1 = 0xA000); every IDT vector an interrupt
/// gate to 0x08:HANDLER + vector; CPL 0 with RSP = 0x8008 and IF set.
pub(crate) fn setup64() -> (Machine, CpuState) {
    let (mut m, mut cpu) = setup32();
    reset_long_flat64(&mut cpu);
    cpu.gdtr.base = GDT;
    cpu.gdtr.limit = 0x1FF;
    put(&mut m, 1, seg_desc(0, 0xFFFFF, 0x9A, 0xA));
    put(&mut m, 2, seg_desc(0, 0xFFFFF, 0x92, 0xC));
    put(&mut m, 3, seg_desc(0, 0xFFFFF, 0xFA, 0xC));
    put(&mut m, 4, seg_desc(0, 0xFFFFF, 0xF2, 0xC));
    put(&mut m, 5, seg_desc(0, 0xFFFFF, 0xFA, 0xA));
    put(&mut m, 6, seg_desc(TSS as u32, 0x67, 0x89, 0));
    put(&mut m, 7, 0);
    m.write_virt(TSS + 4, 8, 0x9008).unwrap();
    m.write_virt(TSS + 0x24, 8, 0xA000).unwrap();
    ltr(&mut m, &mut cpu, 0x30).unwrap();
    cpu.idtr.base = IDT;
    cpu.idtr.limit = 256 * 16 - 1;
    for v in 0..=255u8 {
        gate64(&mut m, v, 0x08, HANDLER + v as u64, sys::INT_GATE, 0, 0);
    }
    cpu.gpr[reg::RSP] = 0x8008;
    cpu.rflags |= rflags::IF;
    (m, cpu)
}

fn to_user64(cpu: &mut CpuState) {
    cpu.cpl = 3;
    cpu.seg[seg::CS] = Segment::flat(0x2B, 0xA0FB);
    for i in [seg::SS, seg::DS, seg::ES] {
        cpu.seg[i] = Segment::flat(0x23, 0xC0F3);
    }
    cpu.gpr[reg::RSP] = 0x7777;
}

#[test]
fn gp_in_64bit_mode_at_cpl0() {
    let (mut m, mut cpu) = setup64();
    cpu.rip = 0x1234;
    let flags = cpu.full_rflags();
    let ev = Event::Exception(GP(0x18));
    assert_eq!(deliver(&mut m, &mut cpu, ev, 0x1234), Ok(()));
    assert_eq!(
        (cpu.rip, cpu.seg[seg::CS].selector, cpu.cpl),
        (HANDLER + 13, 0x08, 0)
    );
    assert_eq!(cpu.gpr[reg::RSP], 0x8000 - 48, "aligned to 16, six slots");
    assert_eq!(
        frame(&mut m, 0x8000 - 48, 6, 8),
        [0x18, 0x1234, 0x08, flags | rflags::RF, 0x8008, 0x10],
        "a fault's frame has RF set"
    );
    assert_eq!(cpu.rflags & rflags::IF, 0, "interrupt gate clears IF");
    assert_eq!(cpu.seg[seg::SS].selector, 0x10, "same privilege keeps SS");
}

#[test]
fn external_interrupt_from_cpl3_through_rsp0_and_iretq_back() {
    let (mut m, mut cpu) = setup64();
    to_user64(&mut cpu);
    cpu.rip = 0x5555;
    cpu.rflags |= rflags::CF | rflags::TF;
    let before = cpu.clone();
    let flags = cpu.full_rflags();
    assert_eq!(
        deliver(&mut m, &mut cpu, Event::External(0x20), 0x5555),
        Ok(())
    );
    assert_eq!((cpu.cpl, cpu.seg[seg::SS].selector), (0, 0));
    assert_eq!(cpu.rflags & (rflags::TF | rflags::IF), 0);
    assert_eq!(cpu.gpr[reg::RSP], 0x9000 - 40);
    assert_eq!(
        frame(&mut m, 0x9000 - 40, 5, 8),
        [0x5555, 0x2B, flags, 0x7777, 0x23]
    );
    assert_eq!(iret(&mut m, &mut cpu, 8), Ok(()));
    assert_eq!(cpu.cpl, 3);
    assert_eq!(cpu.rip, 0x5555);
    assert_eq!(cpu.gpr, before.gpr);
    assert_eq!(cpu.full_rflags(), flags);
    assert_eq!(cpu.seg[seg::SS].selector, 0x23);
    assert_eq!(cpu.seg[seg::CS].selector, 0x2B);
    assert_eq!(cpu.seg[seg::DS], before.seg[seg::DS]);
    assert_eq!(
        crate::system::mode::mode(&cpu),
        crate::system::mode::mode(&before)
    );
}

#[test]
fn ist_stack_is_used_even_at_cpl0() {
    let (mut m, mut cpu) = setup64();
    gate64(&mut m, 2, 0x08, HANDLER, sys::INT_GATE, 0, 1);
    assert_eq!(deliver(&mut m, &mut cpu, Event::External(2), 0x77), Ok(()));
    assert_eq!(cpu.gpr[reg::RSP], 0xA000 - 40);
    assert_eq!(rd(&mut m, 0xA000 - 40), 0x77);
    assert_eq!(rd(&mut m, 0xA000 - 16), 0x8008);
}

#[test]
fn trap_gates_keep_if_and_page_faults_set_cr2() {
    let (mut m, mut cpu) = setup64();
    gate64(&mut m, 14, 0x08, HANDLER, sys::TRAP_GATE, 0, 0);
    let pf = Exception::PageFault {
        addr: 0xDEAD_B000,
        code: 6,
    };
    assert_eq!(
        deliver(&mut m, &mut cpu, Event::Exception(pf), 0x10),
        Ok(())
    );
    assert_eq!(cpu.cr2, 0xDEAD_B000);
    assert_ne!(cpu.rflags & rflags::IF, 0);
    assert_eq!(rd(&mut m, cpu.gpr[reg::RSP]), 6);
}

#[test]
fn int_n_checks_the_gate_dpl() {
    let (mut m, mut cpu) = setup64();
    to_user64(&mut cpu);
    cpu.rip = 0x600;
    let int80 = Event::Software {
        vector: 0x80,
        kind: SoftKind::IntN,
    };
    // DPL 0 gate: #GP(0x80 * 8 + 2), reported at the INT instruction.
    assert_eq!(deliver(&mut m, &mut cpu, int80, 0x602), Ok(()));
    assert_eq!(cpu.rip, HANDLER + 13);
    assert_eq!(frame(&mut m, cpu.gpr[reg::RSP], 2, 8), [0x402, 0x600]);
    // DPL 3 gate: delivered, no error code, returns after the INT.
    to_user64(&mut cpu);
    gate64(&mut m, 0x80, 0x08, HANDLER, sys::TRAP_GATE, 3, 0);
    assert_eq!(deliver(&mut m, &mut cpu, int80, 0x602), Ok(()));
    assert_eq!(cpu.rip, HANDLER);
    assert_eq!(frame(&mut m, cpu.gpr[reg::RSP], 2, 8), [0x602, 0x2B]);
    // INT3 is checked too, INT1 is not.
    to_user64(&mut cpu);
    let int3 = Event::Software {
        vector: 3,
        kind: SoftKind::Int3,
    };
    assert_eq!(deliver(&mut m, &mut cpu, int3, 0x601), Ok(()));
    assert_eq!(cpu.rip, HANDLER + 13);
    to_user64(&mut cpu);
    let int1 = Event::Software {
        vector: 1,
        kind: SoftKind::Int1,
    };
    assert_eq!(deliver(&mut m, &mut cpu, int1, 0x601), Ok(()));
    assert_eq!(cpu.rip, HANDLER + 1);
}

#[test]
fn into_without_overflow_is_a_no_op() {
    let (mut m, mut cpu) = setup64();
    let into = Event::Software {
        vector: 4,
        kind: SoftKind::Into,
    };
    assert_eq!(deliver(&mut m, &mut cpu, into, 0x101), Ok(()));
    assert_eq!((cpu.rip, cpu.gpr[reg::RSP]), (0x101, 0x8008));
    cpu.rflags |= rflags::OF;
    assert_eq!(deliver(&mut m, &mut cpu, into, 0x101), Ok(()));
    assert_eq!(cpu.rip, HANDLER + 4);
}

#[test]
fn bad_handler_segment_faults_with_ext() {
    let (mut m, mut cpu) = setup64();
    gate64(&mut m, 0x30, 0x10, HANDLER, sys::INT_GATE, 0, 0);
    assert_eq!(deliver(&mut m, &mut cpu, Event::External(0x30), 0), Ok(()));
    assert_eq!(cpu.rip, HANDLER + 13);
    assert_eq!(rd(&mut m, cpu.gpr[reg::RSP]), 0x11, "selector | EXT");
    // Past the IDT limit: #GP(vector * 8 + 2 + EXT).
    let (mut m, mut cpu) = setup64();
    cpu.idtr.limit = 0x30 * 16 - 1;
    assert_eq!(deliver(&mut m, &mut cpu, Event::External(0x30), 0), Ok(()));
    assert_eq!(rd(&mut m, cpu.gpr[reg::RSP]), 0x30 * 8 + 3);
}

#[test]
fn not_present_gates_escalate_to_double_then_triple_fault() {
    let (mut m, mut cpu) = setup64();
    let clear_present = |m: &mut Machine, v: u64| {
        let lo = rd(m, IDT + v * 16);
        m.write_virt(IDT + v * 16, 8, lo & !(1 << 47)).unwrap();
    };
    clear_present(&mut m, 13);
    clear_present(&mut m, 11);
    // #GP -> #NP(13*8+3) (contributory twice) -> #DF, delivered with error code 0 and
    // the faulting instruction's address.
    cpu.rip = 0x99;
    assert_eq!(
        deliver(&mut m, &mut cpu, Event::Exception(GP(0)), 0x99),
        Ok(())
    );
    assert_eq!(cpu.rip, HANDLER + 8);
    assert_eq!(frame(&mut m, cpu.gpr[reg::RSP], 2, 8), [0, 0x99]);
    // Without a #DF handler: triple fault, state untouched.
    let (mut m, mut cpu) = setup64();
    for v in [13, 11, 8] {
        clear_present(&mut m, v);
    }
    cpu.rip = 0x99;
    let before = cpu.clone();
    let Err(DeliveryError::TripleFault { report }) =
        deliver(&mut m, &mut cpu, Event::Exception(GP(0)), 0x99)
    else {
        panic!("expected a triple fault");
    };
    for want in [
        "#GP",
        "#NP",
        "#DF",
        "fault while delivering #DF",
        "rip=0000000000000099",
    ] {
        assert!(report.contains(want), "{want} missing from\n{report}");
    }
    assert_eq!(
        (cpu.rip, cpu.gpr, cpu.seg),
        (before.rip, before.gpr, before.seg)
    );
}

/// Turns on 4-level paging with only the first 2 MiB identity-mapped (supervisor, RW):
/// any access at or above 2 MiB page-faults.
fn identity_map_2mib(m: &mut Machine, cpu: &mut CpuState) {
    use translator::state::cr;
    m.write_virt(0x10000, 8, 0x11000 | 3).unwrap();
    m.write_virt(0x11000, 8, 0x12000 | 3).unwrap();
    m.write_virt(0x12000, 8, 0x83).unwrap();
    cpu.cr3 = 0x10000;
    cpu.cr4 |= cr::CR4_PAE;
    cpu.cr0 |= cr::CR0_PG;
    m.flush_tlb(cpu, true);
}

#[test]
fn page_fault_on_the_stack_goes_to_the_double_fault_ist() {
    let (mut m, mut cpu) = setup64();
    identity_map_2mib(&mut m, &mut cpu);
    gate64(&mut m, 8, 0x08, HANDLER + 8, sys::INT_GATE, 0, 1);
    cpu.gpr[reg::RSP] = 0x4000_0000; // unmapped: the push page-faults
    cpu.rip = 0x20;
    let pf = Exception::PageFault {
        addr: 0x10,
        code: 0,
    };
    assert_eq!(
        deliver(&mut m, &mut cpu, Event::Exception(pf), 0x20),
        Ok(())
    );
    assert_eq!(cpu.rip, HANDLER + 8);
    assert_eq!(cpu.gpr[reg::RSP], 0xA000 - 48);
    assert_eq!(frame(&mut m, 0xA000 - 48, 2, 8), [0, 0x20]);
    assert_eq!(cpu.cr2, 0x4000_0000 - 8, "CR2 of the second #PF");
    // A benign event whose push faults takes the #PF, whose push faults again (#PF twice
    // is #DF), and #DF without an IST uses the same bad stack: triple fault.
    let (mut m, mut cpu) = setup64();
    identity_map_2mib(&mut m, &mut cpu);
    cpu.gpr[reg::RSP] = 0x4000_0000;
    let r = deliver(&mut m, &mut cpu, Event::External(0x40), 0);
    let Err(DeliveryError::TripleFault { report }) = r else {
        panic!("{r:?}");
    };
    let chain = "external interrupt 0x40 -> #PF page fault at 0x3ffffff8 (error code 0x2) -> \
                 #PF page fault at 0x3ffffff8 (error code 0x2) -> #DF double fault";
    assert!(report.contains(chain), "{report}");
    assert_eq!(cpu.cr2, 0x4000_0000 - 8);
    assert_eq!(cpu.gpr[reg::RSP], 0x4000_0000);
}

#[test]
fn non_canonical_handler_and_16_byte_rules() {
    let (mut m, mut cpu) = setup64();
    gate64(
        &mut m,
        0x41,
        0x08,
        0x0000_8000_0000_0000,
        sys::INT_GATE,
        0,
        0,
    );
    assert_eq!(deliver(&mut m, &mut cpu, Event::External(0x41), 0), Ok(()));
    assert_eq!(cpu.rip, HANDLER + 13);
    assert_eq!(rd(&mut m, cpu.gpr[reg::RSP]), 1, "#GP(EXT)");
    // A 32-bit code segment as a 64-bit handler.
    let (mut m, mut cpu) = setup64();
    put(&mut m, 8, seg_desc(0, 0xFFFFF, 0x9A, 0xC));
    gate64(&mut m, 0x41, 0x40, HANDLER, sys::INT_GATE, 0, 0);
    assert_eq!(deliver(&mut m, &mut cpu, Event::External(0x41), 0), Ok(()));
    assert_eq!(rd(&mut m, cpu.gpr[reg::RSP]), 0x41);
}

/// 32-bit protected mode: IDT of 8-byte interrupt gates to 0x08:HANDLER + vector, a
/// 32-bit TSS (0x48) with SS0:ESP0 = 0x10:0x9000, ESP = 0x8000.
fn setup_pm32() -> (Machine, CpuState) {
    let (mut m, mut cpu) = setup32();
    put(&mut m, 9, seg_desc(TSS as u32, 0x67, 0x89, 0));
    m.write_virt(TSS + 4, 4, 0x9000).unwrap();
    m.write_virt(TSS + 8, 2, 0x10).unwrap();
    ltr(&mut m, &mut cpu, 0x48).unwrap();
    cpu.idtr.base = IDT;
    cpu.idtr.limit = 256 * 8 - 1;
    for v in 0..=255u8 {
        gate32(
            &mut m,
            v,
            0x08,
            (HANDLER + v as u64) as u32,
            sys::INT_GATE,
            0,
        );
    }
    cpu.gpr[reg::RSP] = 0x8000;
    cpu.rflags |= rflags::IF;
    (m, cpu)
}

#[test]
fn gate32_frames_same_and_inner_privilege_and_iretd() {
    let (mut m, mut cpu) = setup_pm32();
    let flags = cpu.full_rflags();
    assert_eq!(
        deliver(&mut m, &mut cpu, Event::Exception(GP(0x28)), 0x700),
        Ok(())
    );
    assert_eq!(cpu.gpr[reg::RSP], 0x8000 - 16);
    assert_eq!(
        frame(&mut m, 0x8000 - 16, 4, 4),
        [0x28, 0x700, 0x08, flags | rflags::RF]
    );
    // From CPL 3 through SS0:ESP0.
    let (mut m, mut cpu) = setup_pm32();
    cpu.cpl = 3;
    cpu.seg[seg::CS] = Segment::flat(0x1B, 0xC0FB);
    for i in [seg::SS, seg::DS, seg::ES] {
        cpu.seg[i] = Segment::flat(0x23, 0xC0F3);
    }
    cpu.seg[seg::GS] = Segment::flat(0x10, 0xC093);
    cpu.gpr[reg::RSP] = 0x7770;
    let before = cpu.clone();
    let flags = cpu.full_rflags();
    assert_eq!(
        deliver(&mut m, &mut cpu, Event::Exception(GP(0)), 0x700),
        Ok(())
    );
    assert_eq!((cpu.cpl, cpu.seg[seg::SS].selector), (0, 0x10));
    assert_eq!(cpu.gpr[reg::RSP], 0x9000 - 24);
    assert_eq!(
        frame(&mut m, 0x9000 - 24, 6, 4),
        [0, 0x700, 0x1B, flags | rflags::RF, 0x7770, 0x23]
    );
    assert_eq!(crate::system::mode::mode(&cpu).bitness, 32);
    // The handler pops the error code and IRETDs.
    cpu.gpr[reg::RSP] += 4;
    assert_eq!(iret(&mut m, &mut cpu, 4), Ok(()));
    assert_eq!((cpu.cpl, cpu.rip, cpu.gpr[reg::RSP]), (3, 0x700, 0x7770));
    assert_eq!(cpu.seg[seg::SS], before.seg[seg::SS]);
    assert_eq!(cpu.seg[seg::DS], before.seg[seg::DS]);
    assert_eq!(
        cpu.seg[seg::GS].selector,
        0,
        "ring-0 GS nulled on the way out"
    );
    assert_eq!(
        cpu.full_rflags(),
        flags | rflags::RF,
        "IRETD loads the frame's RF"
    );
}

#[test]
fn bad_tss_stack_is_an_invalid_tss_fault() {
    let (mut m, mut cpu) = setup_pm32();
    cpu.cpl = 3;
    cpu.seg[seg::CS] = Segment::flat(0x1B, 0xC0FB);
    cpu.seg[seg::SS] = Segment::flat(0x23, 0xC0F3);
    m.write_virt(TSS + 8, 2, 0x23).unwrap();
    // #TS(0x20 | EXT) while delivering #GP: contributory twice, so #DF; the #DF handler
    // (DPL 0) also needs SS0 and faults the same way: triple fault.
    let r = deliver(&mut m, &mut cpu, Event::Exception(GP(0)), 0);
    let Err(DeliveryError::TripleFault { report }) = r else {
        panic!("{r:?}");
    };
    assert!(
        report.contains("#TS invalid TSS (error code 0x21)"),
        "{report}"
    );
    // An external interrupt takes the #TS itself, which then double-faults.
    let (mut m, mut cpu) = setup_pm32();
    cpu.cpl = 3;
    cpu.seg[seg::CS] = Segment::flat(0x1B, 0xC0FB);
    cpu.seg[seg::SS] = Segment::flat(0x23, 0xC0F3);
    m.write_virt(TSS + 8, 2, 0x23).unwrap();
    assert!(deliver(&mut m, &mut cpu, Event::External(0x20), 0).is_err());
    assert_eq!(cpu.cpl, 3);
}

#[test]
fn iret_privilege_and_flag_rules() {
    let (mut m, mut cpu) = setup64();
    to_user64(&mut cpu);
    // At CPL 3, IRETQ to CPL 3 may not change IF or IOPL, must pop SS:RSP.
    let sp = 0x6000;
    cpu.gpr[reg::RSP] = sp;
    let popped = rflags::IOPL | rflags::CF | rflags::FIXED;
    for (i, v) in [0x1000, 0x2B, popped, 0x6100, 0x23].iter().enumerate() {
        m.write_virt(sp + i as u64 * 8, 8, *v).unwrap();
    }
    assert_eq!(iret(&mut m, &mut cpu, 8), Ok(()));
    assert_eq!(cpu.full_rflags() & (rflags::IOPL | rflags::IF), rflags::IF);
    assert_ne!(cpu.full_rflags() & rflags::CF, 0);
    assert_eq!((cpu.rip, cpu.gpr[reg::RSP]), (0x1000, 0x6100));
    // IRET to an inner level faults, changing nothing.
    cpu.gpr[reg::RSP] = sp;
    m.write_virt(sp + 8, 8, 0x08).unwrap();
    let before = cpu.clone();
    assert_eq!(iret(&mut m, &mut cpu, 8), Err(GP(0x08)));
    assert_eq!(
        (cpu.rip, cpu.gpr, cpu.seg),
        (before.rip, before.gpr, before.seg)
    );
    // Null SS to CPL 3 is #GP(0); NT set is #GP(0).
    m.write_virt(sp + 8, 8, 0x2B).unwrap();
    m.write_virt(sp + 32, 8, 0).unwrap();
    assert_eq!(iret(&mut m, &mut cpu, 8), Err(GP(0)));
    cpu.rflags |= rflags::NT;
    assert_eq!(iret(&mut m, &mut cpu, 8), Err(GP(0)));
    // CPL 0 IRETQ to CPL 0 with a null SS is fine in 64-bit mode.
    let (mut m, mut cpu) = setup64();
    cpu.gpr[reg::RSP] = sp;
    for (i, v) in [0x1000, 0x08, rflags::FIXED, 0x6100, 0].iter().enumerate() {
        m.write_virt(sp + i as u64 * 8, 8, *v).unwrap();
    }
    assert_eq!(iret(&mut m, &mut cpu, 8), Ok(()));
    assert_eq!((cpu.seg[seg::SS].selector, cpu.cpl), (0, 0));
    assert_eq!(cpu.rflags & rflags::IF, 0, "IF loaded at CPL 0");
}

/// IRETQ reads its frame in one access where it can (`Stack::frame`); elsewhere slot by
/// slot. Both give the same result, fault order and data accesses for DR0-DR3.
#[test]
fn iretq_frame_in_one_page_across_two_and_at_the_canonical_edge() {
    let frame = |m: &mut Machine, sp: u64, cs: u64| {
        for (i, v) in [0x1000, cs, rflags::FIXED, 0x6100, 0x23].iter().enumerate() {
            m.write_virt(sp + i as u64 * 8, 8, *v).unwrap();
        }
    };
    for sp in [0x6000, 0x6FF0] {
        let (mut m, mut cpu) = setup64();
        to_user64(&mut cpu);
        cpu.gpr[reg::RSP] = sp;
        frame(&mut m, sp, 0x2B);
        m.debug_accesses.start();
        assert_eq!(iret(&mut m, &mut cpu, 8), Ok(()), "sp {sp:#x}");
        let reads: Vec<u64> = m.debug_accesses.finish().iter().map(|a| a.addr).collect();
        assert_eq!(reads, [sp, sp + 8, sp + 16, sp + 24, sp + 32], "sp {sp:#x}");
        assert_eq!((cpu.rip, cpu.gpr[reg::RSP], cpu.cpl), (0x1000, 0x6100, 3));
    }
    // The frame's SS:RSP half lies past the end of RAM (unclaimed MMIO): the CS check,
    // before those reads, faults first, and no device was read.
    let (mut m, mut cpu) = setup64();
    to_user64(&mut cpu);
    let sp = crate::memory::MIN_RAM - 24;
    cpu.gpr[reg::RSP] = sp;
    for (i, v) in [0x1000, 0x08, rflags::FIXED].iter().enumerate() {
        m.write_virt(sp + i as u64 * 8, 8, *v).unwrap();
    }
    let before = cpu.clone();
    assert_eq!(iret(&mut m, &mut cpu, 8), Err(GP(0x08)));
    assert_eq!((cpu.rip, cpu.gpr), (before.rip, before.gpr));
    assert_eq!(m.mmio, [0, 0]);
}

/// A 16-byte gate is read in one access on one page and quadword by quadword across two:
/// the same gate either way.
#[test]
fn a_gate_across_a_page_boundary_delivers_as_one_within_a_page() {
    for base in [IDT, 0x7FF8] {
        let (mut m, mut cpu) = setup64();
        for i in 0..2 {
            let q = m
                .read_virt(IDT + 8 * i, 8, crate::memory::Access::Read)
                .unwrap();
            m.write_virt(base + 8 * i, 8, q).unwrap();
        }
        cpu.idtr.base = base;
        cpu.rip = 0x1234;
        let ev = Event::Exception(Exception::DivideError);
        assert_eq!(deliver(&mut m, &mut cpu, ev, 0x1234), Ok(()), "{base:#x}");
        assert_eq!((cpu.rip, cpu.cpl), (HANDLER, 0), "{base:#x}");
    }
}

#[test]
fn real_mode_ivt() {
    let (mut m, mut cpu) = setup32();
    cpu.cr0 = 0;
    cpu.idtr.base = 0;
    cpu.idtr.limit = 0x3FF;
    cpu.seg[seg::CS] = Segment {
        selector: 0x100,
        attr: 0x9B,
        limit: 0xFFFF,
        base: 0x1000,
    };
    cpu.seg[seg::SS] = Segment {
        selector: 0,
        attr: 0x93,
        limit: 0xFFFF,
        base: 0,
    };
    cpu.gpr[reg::RSP] = 0x7000;
    cpu.rflags |= rflags::IF;
    m.write_virt(0x21 * 4, 4, 0xF000_1234).unwrap();
    let ev = Event::Software {
        vector: 0x21,
        kind: SoftKind::IntN,
    };
    assert_eq!(deliver(&mut m, &mut cpu, ev, 0x50), Ok(()));
    assert_eq!((cpu.seg[seg::CS].base, cpu.rip), (0xF0000, 0x1234));
    assert_eq!(frame(&mut m, 0x7000 - 6, 3, 2), [0x50, 0x100, 0x202]);
    assert_eq!(cpu.rflags & rflags::IF, 0);
    assert_eq!(iret(&mut m, &mut cpu, 2), Ok(()));
    assert_eq!(
        (cpu.seg[seg::CS].base, cpu.rip, cpu.gpr[reg::RSP]),
        (0x1000, 0x50, 0x7000)
    );
    assert_ne!(cpu.rflags & rflags::IF, 0);
}

#[test]
fn task_gates_are_reported() {
    let (mut m, mut cpu) = setup_pm32();
    m.write_virt(IDT + 0x50 * 8, 8, 0x0000_8500_0048_0000)
        .unwrap();
    let r = deliver(&mut m, &mut cpu, Event::External(0x50), 0);
    let Err(DeliveryError::TripleFault { report }) = r else {
        panic!("{r:?}");
    };
    assert!(report.contains("task gate"), "{report}");
    let _ = Desc::default();
}
