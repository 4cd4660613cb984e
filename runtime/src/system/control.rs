//! Control and debug registers, descriptor-table registers, cache and TLB instructions, and
//! the virtualized unprivileged ones (CPUID, RDTSC/RDTSCP/RDPMC, CLAC/STAC, SMSW).
//!
//! Invariants:
//! - Every function either completes the operation or returns the exception it raises with
//!   no guest state changed (the one architectural exception: a debug-register access with
//!   DR7.GD set updates DR6/DR7 as it raises #DB, as hardware does).
//! - What a control register accepts follows the CPUID model ([`crate::cpuid`]): a CR4 bit
//!   whose feature is not reported is reserved (#GP), so the guest cannot turn on anything
//!   the model does not claim.
//! - Changes that can alter linear-to-physical translation flush the TLB through
//!   [`Machine::flush_tlb`] (global entries included for CR0.PG/WP/PE and CR4 paging bits;
//!   non-global for CR3), so no stale translation survives.
//! - Privilege: the hypercall entry point rejects privileged instructions at CPL > 0 before
//!   calling here, except where #UD takes precedence (MOV CR/DR to a nonexistent register,
//!   XSETBV without CR4.OSXSAVE); those functions check the CPL themselves, after their #UD.

use translator::state::{cr, rflags, DescTable};
use translator::{CpuState, Exception};

use crate::cpuid::{self, features};
use crate::machine::{Machine, Privilege};
use crate::memory::Access;
use crate::system::descriptors::{in_64bit, long_mode};
use crate::system::io::request_interrupt_check;
use crate::system::msr::{is_canonical, read_tsc};

const GP0: Exception = Exception::GeneralProtection(0);

/// CR0 bits that exist (everything else in bits 31:0 is ignored and reads as zero; bits
/// 63:32 are reserved and raise #GP).
pub const CR0_DEFINED: u64 = cr::CR0_PE
    | cr::CR0_MP
    | cr::CR0_EM
    | cr::CR0_TS
    | cr::CR0_ET
    | cr::CR0_NE
    | cr::CR0_WP
    | cr::CR0_AM
    | cr::CR0_NW
    | cr::CR0_CD
    | cr::CR0_PG;

/// CR4 bits whose change invalidates translations, global ones included.
const CR4_PAGING_BITS: u64 =
    cr::CR4_PGE | cr::CR4_PAE | cr::CR4_PSE | cr::CR4_SMEP | cr::CR4_SMAP | cr::CR4_PCIDE;

/// DR6 bits software may write (B0..B3, BD, BS, BT); the rest read as fixed values.
const DR6_WRITABLE: u64 = 0xE00F;
/// DR6 bits that always read as one (4..11, 16..31).
const DR6_ONES: u64 = 0xFFFF_0FF0;
/// DR6.BD: the #DB was a general-detect fault.
const DR6_BD: u64 = 1 << 13;
/// DR7 bits software may write (L0..G3, LE, GE, GD, R/W and LEN fields).
const DR7_WRITABLE: u64 = 0xFFFF_23FF;
/// DR7 bit 10 reads as one.
const DR7_ONES: u64 = 1 << 10;
/// DR7.GD: debug-register accesses raise #DB.
const DR7_GD: u64 = 1 << 13;

/// The CR4 bits the model supports (derived from CPUID; PCE is architectural).
pub fn cr4_supported() -> u64 {
    let mut bits = cr::CR4_PCE;
    let leaf1_edx = [
        (features::TSC, cr::CR4_TSD),
        (features::DE, cr::CR4_DE),
        (features::PSE, cr::CR4_PSE),
        (features::PAE, cr::CR4_PAE),
        (features::PGE, cr::CR4_PGE),
        (features::FXSR, cr::CR4_OSFXSR),
        (features::SSE2, cr::CR4_OSXMMEXCPT),
    ];
    for (f, b) in leaf1_edx {
        if cpuid::has_leaf1_edx(f) {
            bits |= b;
        }
    }
    for (f, b) in [
        (features::PCID, cr::CR4_PCIDE),
        (features::XSAVE, cr::CR4_OSXSAVE),
    ] {
        if cpuid::has_leaf1_ecx(f) {
            bits |= b;
        }
    }
    for (f, b) in [
        (features::SMEP, cr::CR4_SMEP),
        (features::SMAP, cr::CR4_SMAP),
    ] {
        if cpuid::has_leaf7_ebx(f) {
            bits |= b;
        }
    }
    if cpuid::has_leaf7_ecx(features::UMIP) {
        bits |= cr::CR4_UMIP;
    }
    bits
}

// ------------------------------------------------------------------ control registers

/// MOV from CRn. CR1, CR5..CR7 and CR9..CR15 do not exist: #UD. CR8 is the local APIC's
/// TPR (which guest MMIO may also have written).
pub fn read_cr(m: &Machine, cpu: &CpuState, n: u8) -> Result<u64, Exception> {
    let v = match n {
        0 => cpu.cr0,
        2 => cpu.cr2,
        3 => cpu.cr3,
        4 => cpu.cr4,
        8 => m.platform.tpr() & 0xF,
        _ => return Err(Exception::InvalidOpcode),
    };
    if cpu.cpl != 0 {
        return Err(GP0);
    }
    Ok(v)
}

/// MOV to CRn (see the per-register functions). Nonexistent registers: #UD.
pub fn write_cr(m: &mut Machine, cpu: &mut CpuState, n: u8, value: u64) -> Result<(), Exception> {
    if !matches!(n, 0 | 2 | 3 | 4 | 8) {
        return Err(Exception::InvalidOpcode);
    }
    if cpu.cpl != 0 {
        return Err(GP0);
    }
    match n {
        0 => write_cr0(m, cpu, value),
        2 => {
            cpu.cr2 = value;
            Ok(())
        }
        3 => write_cr3(m, cpu, value),
        4 => write_cr4(m, cpu, value),
        _ => write_cr8(m, cpu, value),
    }
}

/// CR0: bits 63:32 → #GP; undefined low bits are dropped; ET reads as one; NW without CD,
/// or PG without PE → #GP. Setting PG with EFER.LME enters IA-32e mode (needs CR4.PAE,
/// sets EFER.LMA); clearing PG leaves it (not allowed from 64-bit code, nor with
/// CR4.PCIDE). A change of PG, WP or PE flushes the TLB, global entries included.
pub fn write_cr0(m: &mut Machine, cpu: &mut CpuState, value: u64) -> Result<(), Exception> {
    if value >> 32 != 0 {
        return Err(GP0);
    }
    let new = (value & CR0_DEFINED) | cr::CR0_ET;
    let old = cpu.cr0;
    if new & cr::CR0_NW != 0 && new & cr::CR0_CD == 0 {
        return Err(GP0);
    }
    if new & cr::CR0_PG != 0 && new & cr::CR0_PE == 0 {
        return Err(GP0);
    }
    let mut efer = cpu.efer;
    let paging_on = new & cr::CR0_PG != 0 && old & cr::CR0_PG == 0;
    let paging_off = new & cr::CR0_PG == 0 && old & cr::CR0_PG != 0;
    if paging_on && efer & cr::EFER_LME != 0 {
        if cpu.cr4 & cr::CR4_PAE == 0 {
            return Err(GP0);
        }
        efer |= cr::EFER_LMA;
    }
    if paging_off {
        if in_64bit(cpu) || cpu.cr4 & cr::CR4_PCIDE != 0 {
            return Err(GP0);
        }
        efer &= !cr::EFER_LMA;
    }
    cpu.cr0 = new;
    cpu.efer = efer;
    if (new ^ old) & (cr::CR0_PG | cr::CR0_WP | cr::CR0_PE) != 0 {
        m.flush_tlb(cpu, true);
    }
    Ok(())
}

/// CR3: in IA-32e mode, bits at and above MAXPHYADDR are reserved (#GP), except bit 63,
/// which with CR4.PCIDE is the "keep translations" hint and is not stored (the TLB is
/// flushed anyway: flushing more than asked is always allowed). Outside IA-32e mode CR3 is
/// 32 bits. Flushes non-global translations.
pub fn write_cr3(m: &mut Machine, cpu: &mut CpuState, value: u64) -> Result<(), Exception> {
    let mut v = value;
    if long_mode(cpu) {
        if cpu.cr4 & cr::CR4_PCIDE != 0 {
            v &= !(1 << 63);
        }
        if v >> cpuid::PHYS_ADDR_BITS != 0 {
            return Err(GP0);
        }
    } else {
        v &= 0xFFFF_FFFF;
    }
    cpu.cr3 = v;
    m.flush_tlb(cpu, false);
    Ok(())
}

/// CR4: bits the model does not support → #GP; clearing PAE in IA-32e mode → #GP; setting
/// PCIDE outside IA-32e mode or with CR3[11:0] ≠ 0 → #GP. A change of PGE, PAE, PSE, SMEP,
/// SMAP or PCIDE flushes the TLB, global entries included.
pub fn write_cr4(m: &mut Machine, cpu: &mut CpuState, value: u64) -> Result<(), Exception> {
    if value & !cr4_supported() != 0 {
        return Err(GP0);
    }
    let old = cpu.cr4;
    // (IA-32e mode with paging: the foundation's non-architectural "LMA without PG" reset
    // state may still choose its CR4.)
    if long_mode(cpu) && cpu.cr0 & cr::CR0_PG != 0 && value & cr::CR4_PAE == 0 {
        return Err(GP0);
    }
    if value & cr::CR4_PCIDE != 0
        && old & cr::CR4_PCIDE == 0
        && (!long_mode(cpu) || cpu.cr3 & 0xFFF != 0)
    {
        return Err(GP0);
    }
    cpu.cr4 = value;
    if (value ^ old) & CR4_PAGING_BITS != 0 {
        m.flush_tlb(cpu, true);
    }
    Ok(())
}

/// CR8 (the task-priority class, bits 3:0): bits 63:4 are reserved (#GP). Written through
/// to the local APIC's TPR (and mirrored in `cpu.cr8`); lowering it may unmask a pending
/// interrupt, so the dispatcher is asked to check.
pub fn write_cr8(m: &mut Machine, cpu: &mut CpuState, value: u64) -> Result<(), Exception> {
    if value >> 4 != 0 {
        return Err(GP0);
    }
    if value < m.platform.tpr() {
        request_interrupt_check(cpu);
    }
    m.platform.set_tpr(value);
    cpu.cr8 = value;
    Ok(())
}

/// LMSW: loads CR0 bits 3:0 (PE MP EM TS) from `value`; PE can be set but not cleared.
pub fn lmsw(m: &mut Machine, cpu: &mut CpuState, value: u64) -> Result<(), Exception> {
    let new = (cpu.cr0 & !0xF) | (value & 0xF) | (cpu.cr0 & cr::CR0_PE);
    write_cr0(m, cpu, new)
}

/// SMSW: CR0 as seen through an `op_size`-byte destination. #GP(0) at CPL > 0 with
/// CR4.UMIP.
pub fn smsw(cpu: &CpuState, op_size: u8) -> Result<u64, Exception> {
    umip_check(cpu)?;
    Ok(cpu.cr0 & size_mask(op_size))
}

/// CLTS: clears CR0.TS.
pub fn clts(cpu: &mut CpuState) {
    cpu.cr0 &= !cr::CR0_TS;
}

/// User-mode instruction prevention: SGDT, SIDT, SLDT, STR and SMSW raise #GP(0) at CPL > 0
/// when CR4.UMIP is set.
pub fn umip_check(cpu: &CpuState) -> Result<(), Exception> {
    if cpu.cr4 & cr::CR4_UMIP != 0 && cpu.cpl > 0 {
        return Err(GP0);
    }
    Ok(())
}

/// The mask of an `op_size`-byte value.
fn size_mask(op_size: u8) -> u64 {
    match op_size {
        1 => 0xFF,
        2 => 0xFFFF,
        4 => 0xFFFF_FFFF,
        _ => u64::MAX,
    }
}

// ------------------------------------------------------------------ debug registers

/// The DR index `n` names: DR4/DR5 alias DR6/DR7 unless CR4.DE (then #UD); DR8..DR15 #UD.
fn dr_index(cpu: &CpuState, n: u8) -> Result<usize, Exception> {
    match n {
        0..=3 | 6 | 7 => Ok(usize::from(n)),
        4 | 5 if cpu.cr4 & cr::CR4_DE == 0 => Ok(usize::from(n) + 2),
        _ => Err(Exception::InvalidOpcode),
    }
}

/// The checks every MOV DR makes after decoding the register: CPL 0, then DR7.GD (which
/// records a general-detect #DB in DR6 and clears GD, so the handler can use the
/// registers).
fn dr_access(cpu: &mut CpuState, n: u8) -> Result<usize, Exception> {
    let i = dr_index(cpu, n)?;
    if cpu.cpl != 0 {
        return Err(GP0);
    }
    if cpu.dr[7] & DR7_GD != 0 {
        cpu.dr[6] |= DR6_BD;
        cpu.dr[7] &= !DR7_GD;
        return Err(Exception::Debug);
    }
    Ok(i)
}

/// MOV from DRn.
pub fn read_dr(cpu: &mut CpuState, n: u8) -> Result<u64, Exception> {
    let i = dr_access(cpu, n)?;
    Ok(cpu.dr[i])
}

/// MOV to DRn (the breakpoints act through `engine::debug`); DR6/DR7 keep their fixed
/// bits, and bits 63:32 of DR6/DR7 are reserved (#GP).
pub fn write_dr(cpu: &mut CpuState, n: u8, value: u64) -> Result<(), Exception> {
    let i = dr_access(cpu, n)?;
    if i >= 6 && value >> 32 != 0 {
        return Err(GP0);
    }
    cpu.dr[i] = match i {
        6 => (value & DR6_WRITABLE) | DR6_ONES,
        7 => (value & DR7_WRITABLE) | DR7_ONES,
        _ => value,
    };
    Ok(())
}

// ------------------------------------------------------------------ descriptor tables

/// Which descriptor-table register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableReg {
    /// GDTR (LGDT/SGDT).
    Gdtr,
    /// IDTR (LIDT/SIDT).
    Idtr,
}

/// `lin + off`, wrapping at 32 bits outside 64-bit mode.
fn lin_add(cpu: &CpuState, lin: u64, off: u64) -> u64 {
    let a = lin.wrapping_add(off);
    if in_64bit(cpu) {
        a
    } else {
        a & 0xFFFF_FFFF
    }
}

/// LGDT/LIDT: reads the pseudo-descriptor at linear `lin`: a 16-bit limit then a base of 8
/// bytes (64-bit mode; non-canonical → #GP) or 4 bytes (masked to 24 bits with a 16-bit
/// operand size). Nothing changes unless both reads succeed.
pub fn load_table(
    m: &mut Machine,
    cpu: &mut CpuState,
    which: TableReg,
    lin: u64,
    op_size: u8,
) -> Result<(), Exception> {
    let p = Privilege::of_cpl(cpu.cpl);
    let limit = m.read_lin(cpu, lin, 2, Access::Read, p)?;
    let at = lin_add(cpu, lin, 2);
    let base = if in_64bit(cpu) {
        let b = m.read_lin(cpu, at, 8, Access::Read, p)?;
        if !is_canonical(b) {
            return Err(GP0);
        }
        b
    } else {
        let b = m.read_lin(cpu, at, 4, Access::Read, p)?;
        if op_size == 2 {
            b & 0xFF_FFFF
        } else {
            b
        }
    };
    let t = DescTable { base, limit };
    match which {
        TableReg::Gdtr => cpu.gdtr = t,
        TableReg::Idtr => cpu.idtr = t,
    }
    Ok(())
}

/// SGDT/SIDT: stores the 16-bit limit and the base (8 bytes in 64-bit mode, else 4) at
/// linear `lin`. Both ends are probed for writability first, so a fault stores nothing.
/// #GP(0) at CPL > 0 with CR4.UMIP.
pub fn store_table(
    m: &mut Machine,
    cpu: &mut CpuState,
    which: TableReg,
    lin: u64,
) -> Result<(), Exception> {
    umip_check(cpu)?;
    let t = match which {
        TableReg::Gdtr => cpu.gdtr,
        TableReg::Idtr => cpu.idtr,
    };
    let base_len = if in_64bit(cpu) { 8 } else { 4 };
    let p = Privilege::of_cpl(cpu.cpl);
    // Probe the first byte of each page the store touches (a fault reports the first
    // inaccessible byte, as the store itself would).
    let last = lin_add(cpu, lin, 1 + base_len as u64);
    m.read_lin(cpu, lin, 1, Access::Write, p)?;
    if last & !0xFFF != lin & !0xFFF {
        m.read_lin(cpu, last & !0xFFF, 1, Access::Write, p)?;
    }
    m.write_lin(cpu, lin, 2, t.limit & 0xFFFF, p)?;
    let at = lin_add(cpu, lin, 2);
    m.write_lin(cpu, at, base_len, t.base, p)
}

// ------------------------------------------------------------------ caches and TLB

/// INVLPG: drops the translation of the page holding `lin` (non-canonical: nothing to do).
pub fn invlpg(m: &mut Machine, cpu: &mut CpuState, lin: u64) {
    m.invlpg(cpu, lin);
}

/// INVPCID: `kind` 0 = one address in one PCID, 1 = one PCID, 2 = everything including
/// global translations, 3 = everything but global ones; other kinds → #GP. The 16-byte
/// descriptor at `desc` holds the PCID (bits 11:0; bits 63:12 reserved) and the address.
/// A PCID other than 0 needs CR4.PCIDE. The soft TLB holds only the current context, so
/// kinds 0 and 1 flush at least what is asked.
pub fn invpcid(m: &mut Machine, cpu: &mut CpuState, kind: u64, desc: u64) -> Result<(), Exception> {
    if kind > 3 {
        return Err(GP0);
    }
    let p = Privilege::of_cpl(cpu.cpl);
    let lo = m.read_lin(cpu, desc, 8, Access::Read, p)?;
    let hi = m.read_lin(cpu, lin_add(cpu, desc, 8), 8, Access::Read, p)?;
    let pcid = lo & 0xFFF;
    if lo >> 12 != 0 {
        return Err(GP0);
    }
    let pcid_ok = pcid == 0 || cpu.cr4 & cr::CR4_PCIDE != 0;
    match kind {
        0 => {
            if !is_canonical(hi) || !pcid_ok {
                return Err(GP0);
            }
            m.invlpg(cpu, hi);
        }
        1 => {
            if !pcid_ok {
                return Err(GP0);
            }
            m.flush_tlb(cpu, false);
        }
        2 => m.flush_tlb(cpu, true),
        _ => m.flush_tlb(cpu, false),
    }
    Ok(())
}

/// XSETBV: #UD without CR4.OSXSAVE; #GP(0) at CPL > 0, for ECX ≠ 0, without bit 0 (x87),
/// or with a bit the model does not support.
pub fn xsetbv(cpu: &mut CpuState, ecx: u32, value: u64) -> Result<(), Exception> {
    if cpu.cr4 & cr::CR4_OSXSAVE == 0 {
        return Err(Exception::InvalidOpcode);
    }
    if cpu.cpl != 0 || ecx != 0 || !xcr0_valid(value) {
        return Err(GP0);
    }
    cpu.xcr0 = value;
    Ok(())
}

/// Whether `v` is a valid XCR0: x87 (bit 0) set, only supported components, and AVX
/// (bit 2) only with SSE (bit 1).
pub fn xcr0_valid(v: u64) -> bool {
    v & 1 != 0 && v & !cpuid::XCR0_SUPPORTED == 0 && (v & 4 == 0 || v & 2 != 0)
}

// ------------------------------------------------------------------ virtualized unprivileged

/// CLAC (`set` false) / STAC (`set` true): #UD without SMAP in the model or at CPL > 0.
pub fn set_ac(cpu: &mut CpuState, set: bool) -> Result<(), Exception> {
    if !cpuid::has_leaf7_ebx(features::SMAP) || cpu.cpl > 0 {
        return Err(Exception::InvalidOpcode);
    }
    // No TLB flush: with SMAP on, supervisor accesses to user pages always walk and see
    // the current AC (crate::mmu::tlb).
    if set {
        cpu.rflags |= rflags::AC;
    } else {
        cpu.rflags &= !rflags::AC;
    }
    Ok(())
}

/// RDTSC: the guest TSC; #GP(0) at CPL > 0 with CR4.TSD.
pub fn rdtsc(m: &mut Machine, cpu: &CpuState) -> Result<u64, Exception> {
    if cpu.cr4 & cr::CR4_TSD != 0 && cpu.cpl > 0 {
        return Err(GP0);
    }
    Ok(read_tsc(m, cpu))
}

/// RDTSCP: the guest TSC and IA32_TSC_AUX; #GP(0) at CPL > 0 with CR4.TSD.
pub fn rdtscp(m: &mut Machine, cpu: &CpuState) -> Result<(u64, u32), Exception> {
    let t = rdtsc(m, cpu)?;
    Ok((t, cpu.msr.tsc_aux as u32))
}

/// RDPMC: #GP(0) at CPL > 0 without CR4.PCE, and for a counter the model does not have
/// ([`cpuid::PERF_COUNTERS`] general-purpose counters, no fixed ones); counters read 0.
pub fn rdpmc(cpu: &CpuState, ecx: u32) -> Result<u64, Exception> {
    if cpu.cr4 & cr::CR4_PCE == 0 && cpu.cpl > 0 {
        return Err(GP0);
    }
    if !(0..cpuid::PERF_COUNTERS).contains(&ecx) {
        return Err(GP0);
    }
    Ok(0)
}

/// CPUID: the model's EAX, EBX, ECX, EDX for leaf `eax`, subleaf `ecx`.
pub fn cpuid(m: &Machine, cpu: &CpuState, eax: u32, ecx: u32) -> [u32; 4] {
    cpuid::cpuid_for(cpu, m.platform.apic_base(), eax, ecx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::SerialSink;
    use translator::state::{seg, Segment};

    fn setup() -> (Machine, CpuState) {
        let m = Machine::new(4 << 20, SerialSink::Capture).unwrap();
        (m, CpuState::default())
    }

    /// Turn on 4-level paging (from `long64_flat`) with the first 2 MiB identity-mapped,
    /// except page 0x5000, which is not present. Tables at 0x10000..0x14000.
    fn identity_map_but_page_5(m: &mut Machine, cpu: &mut CpuState) {
        let sup = Privilege::Supervisor;
        for (at, next) in [(0x10000, 0x11000), (0x11000, 0x12000), (0x12000, 0x13000)] {
            m.write_lin(cpu, at, 8, next | 3, sup).unwrap();
        }
        for i in 0..512u64 {
            let pte = if i == 5 { 0 } else { (i << 12) | 3 };
            m.write_lin(cpu, 0x13000 + 8 * i, 8, pte, sup).unwrap();
        }
        write_cr3(m, cpu, 0x10000).unwrap();
        cpu.cr0 |= cr::CR0_PG;
        m.flush_tlb(cpu, true);
    }

    /// 64-bit mode at CPL 0 without paging (the foundation's flat IA-32e state), for tests
    /// that touch memory.
    fn long64_flat(cpu: &mut CpuState) {
        long64(cpu);
        cpu.cr0 &= !cr::CR0_PG;
    }

    /// 64-bit mode at CPL 0 with paging on.
    fn long64(cpu: &mut CpuState) {
        cpu.cr0 = cr::CR0_PE | cr::CR0_PG | cr::CR0_ET;
        cpu.cr4 = cr::CR4_PAE;
        cpu.efer = cr::EFER_LME | cr::EFER_LMA;
        cpu.seg[seg::CS] = Segment::flat(8, 0xA09B);
    }

    const UD: Exception = Exception::InvalidOpcode;

    #[test]
    fn entering_long_mode_through_cr0_pg() {
        let (mut m, mut cpu) = setup();
        write_cr0(&mut m, &mut cpu, cr::CR0_PE).unwrap();
        assert_eq!(cpu.cr0, cr::CR0_PE | cr::CR0_ET, "ET reads as one");
        cpu.efer = cr::EFER_LME;
        // Paging with LME but without PAE: #GP, nothing changes.
        assert_eq!(
            write_cr0(&mut m, &mut cpu, cr::CR0_PE | cr::CR0_PG),
            Err(GP0)
        );
        assert_eq!((cpu.cr0 & cr::CR0_PG, cpu.efer), (0, cr::EFER_LME));
        write_cr4(&mut m, &mut cpu, cr::CR4_PAE).unwrap();
        m.run.mappings_changed = false;
        write_cr0(&mut m, &mut cpu, cr::CR0_PE | cr::CR0_PG | cr::CR0_WP).unwrap();
        assert_eq!(cpu.efer, cr::EFER_LME | cr::EFER_LMA, "LMA set");
        assert!(m.run.mappings_changed, "PG change flushes");
        // Compatibility mode (CS.L = 0): clearing PG leaves IA-32e mode.
        write_cr0(&mut m, &mut cpu, cr::CR0_PE).unwrap();
        assert_eq!(cpu.efer, cr::EFER_LME);
    }

    #[test]
    fn cr0_invalid_combinations() {
        let (mut m, mut cpu) = setup();
        assert_eq!(
            write_cr0(&mut m, &mut cpu, cr::CR0_PG),
            Err(GP0),
            "PG without PE"
        );
        assert_eq!(
            write_cr0(&mut m, &mut cpu, cr::CR0_NW),
            Err(GP0),
            "NW without CD"
        );
        assert_eq!(
            write_cr0(&mut m, &mut cpu, 1 << 32 | 1),
            Err(GP0),
            "bits 63:32"
        );
        assert_eq!(cpu.cr0, 0);
        write_cr0(&mut m, &mut cpu, 0xFFFF_FFFF & !(cr::CR0_NW | cr::CR0_PG)).unwrap();
        assert_eq!(
            cpu.cr0,
            CR0_DEFINED & !(cr::CR0_NW | cr::CR0_PG),
            "undefined bits drop"
        );
        // In 64-bit mode PG cannot be cleared.
        long64(&mut cpu);
        assert_eq!(write_cr0(&mut m, &mut cpu, cr::CR0_PE), Err(GP0));
        assert_eq!(cpu.efer & cr::EFER_LMA, cr::EFER_LMA);
    }

    #[test]
    fn cr3_and_cr4_rules() {
        let (mut m, mut cpu) = setup();
        long64(&mut cpu);
        assert_eq!(
            write_cr3(&mut m, &mut cpu, 1 << 40),
            Err(GP0),
            "above MAXPHYADDR"
        );
        assert_eq!(
            write_cr3(&mut m, &mut cpu, 1 << 63),
            Err(GP0),
            "bit 63 without PCIDE"
        );
        m.run.mappings_changed = false;
        write_cr3(&mut m, &mut cpu, 0x1000).unwrap();
        assert!(m.run.mappings_changed);
        assert_eq!(write_cr4(&mut m, &mut cpu, 0), Err(GP0), "PAE in long mode");
        assert_eq!(
            write_cr4(&mut m, &mut cpu, cr::CR4_PAE | cr::CR4_OSXSAVE),
            Err(GP0)
        );
        assert_eq!(write_cr4(&mut m, &mut cpu, cr::CR4_PAE | 1 << 32), Err(GP0));
        assert_eq!(
            write_cr4(&mut m, &mut cpu, cr::CR4_PAE | cr::CR4_VME),
            Err(GP0)
        );
        write_cr3(&mut m, &mut cpu, 0x1005).unwrap();
        let pcide = cr::CR4_PAE | cr::CR4_PCIDE;
        assert_eq!(
            write_cr4(&mut m, &mut cpu, pcide),
            Err(GP0),
            "CR3[11:0] != 0"
        );
        write_cr3(&mut m, &mut cpu, 0x1000).unwrap();
        write_cr4(
            &mut m,
            &mut cpu,
            pcide | cr::CR4_SMEP | cr::CR4_SMAP | cr::CR4_PGE,
        )
        .unwrap();
        write_cr3(&mut m, &mut cpu, 1 << 63 | 0x2003).unwrap();
        assert_eq!(cpu.cr3, 0x2003, "no-flush hint is not stored");
        // Legacy mode: PCIDE cannot be set.
        let (mut m, mut cpu) = setup();
        assert_eq!(write_cr4(&mut m, &mut cpu, cr::CR4_PCIDE), Err(GP0));
        write_cr4(&mut m, &mut cpu, cr4_supported() & !cr::CR4_PCIDE).unwrap();
    }

    #[test]
    fn cr4_supported_matches_cpuid() {
        let s = cr4_supported();
        for b in [
            cr::CR4_TSD,
            cr::CR4_DE,
            cr::CR4_PSE,
            cr::CR4_PAE,
            cr::CR4_PGE,
            cr::CR4_PCE,
            cr::CR4_OSFXSR,
            cr::CR4_OSXMMEXCPT,
        ] {
            assert_ne!(s & b, 0, "{b:#x}");
        }
        for b in [cr::CR4_SMEP, cr::CR4_SMAP, cr::CR4_UMIP, cr::CR4_PCIDE] {
            assert_ne!(s & b, 0, "{b:#x}");
        }
        let absent = cr::CR4_VME | cr::CR4_PVI | cr::CR4_MCE | cr::CR4_FSGSBASE | cr::CR4_OSXSAVE;
        assert_eq!(s & absent, 0);
    }

    #[test]
    fn cr8_and_nonexistent_crs() {
        let (mut m, mut cpu) = setup();
        write_cr(&mut m, &mut cpu, 8, 0xF).unwrap();
        assert_eq!(read_cr(&m, &cpu, 8), Ok(0xF));
        assert_eq!(m.platform.tpr(), 0xF, "the LAPIC TPR follows");
        assert_eq!(write_cr(&mut m, &mut cpu, 8, 0x10), Err(GP0));
        write_cr(&mut m, &mut cpu, 8, 2).unwrap();
        assert_eq!(
            cpu.icount_limit, 0,
            "lowering the TPR asks for an interrupt check"
        );
        for n in [1, 5, 6, 7, 9, 15] {
            assert_eq!(read_cr(&m, &cpu, n), Err(UD));
            assert_eq!(write_cr(&mut m, &mut cpu, n, 0), Err(UD));
        }
        write_cr(&mut m, &mut cpu, 2, 0xDEAD_BEEF_0000).unwrap();
        assert_eq!(read_cr(&m, &cpu, 2), Ok(0xDEAD_BEEF_0000));
        cpu.cpl = 3;
        assert_eq!(read_cr(&m, &cpu, 0), Err(GP0));
        assert_eq!(read_cr(&m, &cpu, 5), Err(UD), "#UD before #GP");
    }

    #[test]
    fn lmsw_smsw_clts() {
        let (mut m, mut cpu) = setup();
        lmsw(&mut m, &mut cpu, 0xFFFF).unwrap();
        assert_eq!(cpu.cr0, 0xF | cr::CR0_ET);
        lmsw(&mut m, &mut cpu, 0).unwrap();
        assert_eq!(cpu.cr0, cr::CR0_PE | cr::CR0_ET, "PE cannot be cleared");
        cpu.cr0 |= cr::CR0_TS | cr::CR0_PG;
        clts(&mut cpu);
        assert_eq!(cpu.cr0 & cr::CR0_TS, 0);
        assert_eq!(smsw(&cpu, 2), Ok(0x11));
        assert_eq!(smsw(&cpu, 4), Ok(0x8000_0011));
        cpu.cpl = 3;
        cpu.cr4 = cr::CR4_UMIP;
        assert_eq!(smsw(&cpu, 2), Err(GP0));
    }

    #[test]
    fn debug_registers() {
        let (_, mut cpu) = setup();
        write_dr(&mut cpu, 0, 0x1234).unwrap();
        assert_eq!(read_dr(&mut cpu, 0), Ok(0x1234));
        write_dr(&mut cpu, 6, 0).unwrap();
        assert_eq!(cpu.dr[6], 0xFFFF_0FF0);
        write_dr(&mut cpu, 7, 0).unwrap();
        assert_eq!(read_dr(&mut cpu, 5), Ok(0x400), "DR5 aliases DR7");
        assert_eq!(write_dr(&mut cpu, 7, 1 << 32), Err(GP0));
        cpu.cr4 = cr::CR4_DE;
        assert_eq!(read_dr(&mut cpu, 4), Err(UD));
        assert_eq!(read_dr(&mut cpu, 8), Err(UD));
        write_dr(&mut cpu, 7, DR7_GD).unwrap();
        assert_eq!(
            read_dr(&mut cpu, 0),
            Err(Exception::Debug),
            "general detect"
        );
        assert_eq!((cpu.dr[6] & DR6_BD, cpu.dr[7] & DR7_GD), (DR6_BD, 0));
        cpu.cpl = 3;
        assert_eq!(read_dr(&mut cpu, 0), Err(GP0));
    }

    #[test]
    fn descriptor_table_registers() {
        let (mut m, mut cpu) = setup();
        // 32-bit form with a 16-bit operand size: base masked to 24 bits.
        m.write_lin(&mut cpu, 0x100, 2, 0x27, Privilege::Supervisor)
            .unwrap();
        m.write_lin(&mut cpu, 0x102, 4, 0xAABB_CCDD, Privilege::Supervisor)
            .unwrap();
        load_table(&mut m, &mut cpu, TableReg::Gdtr, 0x100, 2).unwrap();
        assert_eq!(
            cpu.gdtr,
            DescTable {
                base: 0xBB_CCDD,
                limit: 0x27
            }
        );
        load_table(&mut m, &mut cpu, TableReg::Idtr, 0x100, 4).unwrap();
        assert_eq!(
            cpu.idtr,
            DescTable {
                base: 0xAABB_CCDD,
                limit: 0x27
            }
        );
        // 64-bit mode: 10-byte form, canonical base.
        long64_flat(&mut cpu);
        m.write_lin(
            &mut cpu,
            0x202,
            8,
            0xFFFF_8000_0000_1000,
            Privilege::Supervisor,
        )
        .unwrap();
        m.write_lin(&mut cpu, 0x200, 2, 0xFFF, Privilege::Supervisor)
            .unwrap();
        load_table(&mut m, &mut cpu, TableReg::Idtr, 0x200, 8).unwrap();
        assert_eq!(
            cpu.idtr,
            DescTable {
                base: 0xFFFF_8000_0000_1000,
                limit: 0xFFF
            }
        );
        m.write_lin(&mut cpu, 0x202, 8, 0x8000_0000_0000, Privilege::Supervisor)
            .unwrap();
        assert_eq!(
            load_table(&mut m, &mut cpu, TableReg::Gdtr, 0x200, 8),
            Err(GP0)
        );
        store_table(&mut m, &mut cpu, TableReg::Idtr, 0x300).unwrap();
        assert_eq!(
            m.read_lin(&mut cpu, 0x300, 2, Access::Read, Privilege::Supervisor),
            Ok(0xFFF)
        );
        assert_eq!(
            m.read_lin(&mut cpu, 0x302, 8, Access::Read, Privilege::Supervisor),
            Ok(0xFFFF_8000_0000_1000)
        );
        // With 4-level paging and page 0x5000 not present, a store crossing into it faults
        // before anything is stored.
        identity_map_but_page_5(&mut m, &mut cpu);
        m.write_lin(&mut cpu, 0x4FFC, 4, 0x1234_5678, Privilege::Supervisor)
            .unwrap();
        let r = store_table(&mut m, &mut cpu, TableReg::Idtr, 0x4FFC);
        assert!(
            matches!(r, Err(Exception::PageFault { addr: 0x5000, .. })),
            "{r:?}"
        );
        assert_eq!(
            m.read_lin(&mut cpu, 0x4FFC, 4, Access::Read, Privilege::Supervisor),
            Ok(0x1234_5678)
        );
        cpu.cpl = 3;
        cpu.cr4 |= cr::CR4_UMIP;
        assert_eq!(
            store_table(&mut m, &mut cpu, TableReg::Gdtr, 0x300),
            Err(GP0)
        );
    }

    #[test]
    fn invpcid_kinds() {
        let (mut m, mut cpu) = setup();
        long64_flat(&mut cpu);
        let sup = Privilege::Supervisor;
        m.write_lin(&mut cpu, 0x400, 8, 0, sup).unwrap();
        m.write_lin(&mut cpu, 0x408, 8, 0x7000, sup).unwrap();
        for kind in 0..4 {
            m.run.mappings_changed = false;
            invpcid(&mut m, &mut cpu, kind, 0x400).unwrap();
            // Kind 0 is one address: an INVLPG, which spares the rest of the jump cache.
            assert_eq!(m.run.mappings_changed, kind != 0, "kind {kind}");
        }
        assert_eq!(invpcid(&mut m, &mut cpu, 4, 0x400), Err(GP0));
        m.write_lin(&mut cpu, 0x400, 8, 5, sup).unwrap();
        assert_eq!(
            invpcid(&mut m, &mut cpu, 1, 0x400),
            Err(GP0),
            "PCID without PCIDE"
        );
        invpcid(&mut m, &mut cpu, 2, 0x400).unwrap();
        m.write_lin(&mut cpu, 0x400, 8, 1 << 12, sup).unwrap();
        assert_eq!(
            invpcid(&mut m, &mut cpu, 2, 0x400),
            Err(GP0),
            "reserved bits"
        );
        m.write_lin(&mut cpu, 0x400, 8, 0, sup).unwrap();
        m.write_lin(&mut cpu, 0x408, 8, 1 << 47, sup).unwrap();
        assert_eq!(
            invpcid(&mut m, &mut cpu, 0, 0x400),
            Err(GP0),
            "non-canonical"
        );
    }

    #[test]
    fn xsetbv_follows_the_model() {
        let (_, mut cpu) = setup();
        assert_eq!(xsetbv(&mut cpu, 0, 1), Err(UD), "no CR4.OSXSAVE (no XSAVE)");
        assert!(xcr0_valid(1));
        assert!(!xcr0_valid(0), "x87 bit must be set");
        assert!(!xcr0_valid(3), "SSE state not supported");
        assert!(!xcr0_valid(5));
        // With OSXSAVE forced on (the model cannot get there), the other checks apply.
        cpu.cr4 = cr::CR4_OSXSAVE;
        assert_eq!(xsetbv(&mut cpu, 1, 1), Err(GP0));
        assert_eq!(xsetbv(&mut cpu, 0, 3), Err(GP0));
        xsetbv(&mut cpu, 0, 1).unwrap();
        cpu.cpl = 3;
        assert_eq!(xsetbv(&mut cpu, 0, 1), Err(GP0));
    }

    #[test]
    fn clac_stac() {
        let (_, mut cpu) = setup();
        set_ac(&mut cpu, true).unwrap();
        assert_ne!(cpu.rflags & rflags::AC, 0);
        set_ac(&mut cpu, false).unwrap();
        assert_eq!(cpu.rflags & rflags::AC, 0);
        cpu.cpl = 3;
        assert_eq!(set_ac(&mut cpu, true), Err(UD));
    }

    #[test]
    fn rdtsc_rdtscp_rdpmc() {
        let (mut m, mut cpu) = setup();
        cpu.msr.tsc_aux = 3;
        let a = rdtsc(&mut m, &cpu).unwrap();
        let (b, aux) = rdtscp(&mut m, &cpu).unwrap();
        assert!(b > a);
        assert_eq!(aux, 3);
        cpu.cpl = 3;
        assert!(rdtsc(&mut m, &cpu).is_ok(), "TSD clear: allowed at CPL 3");
        cpu.cr4 = cr::CR4_TSD;
        assert_eq!(rdtsc(&mut m, &cpu), Err(GP0));
        assert_eq!(rdtscp(&mut m, &cpu), Err(GP0));
        cpu.cpl = 0;
        assert!(rdtsc(&mut m, &cpu).is_ok(), "TSD does not apply at CPL 0");
        assert_eq!(rdpmc(&cpu, 0), Err(GP0), "no counters in the model");
        cpu.cpl = 3;
        assert_eq!(rdpmc(&cpu, 0), Err(GP0));
    }
}
