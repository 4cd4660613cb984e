//! The fast system-call instructions: SYSCALL/SYSRET, SYSENTER/SYSEXIT, and SWAPGS.
//!
//! Invariants:
//! - None of these read descriptor tables: CS and SS are loaded with the fixed flat
//!   descriptors the SDM prescribes, selectors coming from IA32_STAR or IA32_SYSENTER_CS.
//! - Each function either completes the transition (RIP, RSP, CS, SS, CPL, RFLAGS as the
//!   instruction defines; the caller ends the block) or raises its exception with nothing
//!   changed.
//! - SYSCALL is available in 64-bit and compatibility mode (target IA32_LSTAR or IA32_CSTAR)
//!   and, as on AMD processors, in legacy protected mode (target IA32_STAR[31:0]); SYSRET
//!   only from 64-bit mode (Intel). SYSENTER/SYSEXIT work in every protected mode.

use translator::state::{cr, reg, rflags, seg, Segment};
use translator::{CpuState, Exception};

use crate::system::descriptors::in_64bit;
use crate::system::io::request_interrupt_check;
use crate::system::msr::is_canonical;

const GP0: Exception = Exception::GeneralProtection(0);

/// Attributes of the flat segments these instructions load (type, S, DPL, P, L, D/B, G).
mod attr {
    /// 64-bit ring-0 code: execute/read, accessed, L.
    pub const CODE64_DPL0: u16 = 0xA09B;
    /// 32-bit ring-0 code.
    pub const CODE32_DPL0: u16 = 0xC09B;
    /// Ring-0 stack: read/write, accessed, big.
    pub const DATA_DPL0: u16 = 0xC093;
    /// 64-bit ring-3 code.
    pub const CODE64_DPL3: u16 = 0xA0FB;
    /// 32-bit ring-3 code.
    pub const CODE32_DPL3: u16 = 0xC0FB;
    /// Ring-3 stack.
    pub const DATA_DPL3: u16 = 0xC0F3;
}

/// The RFLAGS bits SYSRET restores from R11 (everything else reads as fixed).
const SYSRET_RFLAGS: u64 = 0x3C_7FD7;

/// Load CS and SS with flat descriptors and set the CPL.
fn enter(cpu: &mut CpuState, cs: Segment, ss: Segment, cpl: u64) {
    cpu.seg[seg::CS] = cs;
    cpu.seg[seg::SS] = ss;
    cpu.cpl = cpl;
}

/// Install `new` RFLAGS; enabling interrupts asks for an interrupt check.
fn set_rflags(cpu: &mut CpuState, new: u64) {
    let old = cpu.rflags;
    cpu.rflags = new | rflags::FIXED;
    cpu.flags_op = 0;
    if old & rflags::IF == 0 && new & rflags::IF != 0 {
        request_interrupt_check(cpu);
    }
}

/// SYSCALL (`next_rip` = the following instruction). #UD without EFER.SCE or outside
/// protected mode.
pub fn syscall(cpu: &mut CpuState, next_rip: u64) -> Result<(), Exception> {
    if cpu.efer & cr::EFER_SCE == 0 || cpu.cr0 & cr::CR0_PE == 0 {
        return Err(Exception::InvalidOpcode);
    }
    cpu.settle_flags();
    let star = cpu.msr.star;
    let cs_sel = (star >> 32) as u16 & 0xFFFC;
    let ss = Segment::flat(((star >> 32) as u16).wrapping_add(8), attr::DATA_DPL0);
    let flags = cpu.rflags;
    if cpu.efer & cr::EFER_LMA != 0 {
        let target = if in_64bit(cpu) {
            cpu.msr.lstar
        } else {
            cpu.msr.cstar
        };
        cpu.gpr[reg::RCX] = next_rip;
        cpu.gpr[11] = flags;
        set_rflags(cpu, flags & !cpu.msr.sfmask & !rflags::RF);
        enter(cpu, Segment::flat(cs_sel, attr::CODE64_DPL0), ss, 0);
        cpu.rip = target;
    } else {
        cpu.gpr[reg::RCX] = next_rip & 0xFFFF_FFFF;
        set_rflags(cpu, flags & !(rflags::VM | rflags::IF | rflags::RF));
        enter(cpu, Segment::flat(cs_sel, attr::CODE32_DPL0), ss, 0);
        cpu.rip = star & 0xFFFF_FFFF;
    }
    Ok(())
}

/// SYSRET (`op_size` 8: to 64-bit code at RCX, which must be canonical; 4: to 32-bit code
/// at ECX). #UD without EFER.SCE or outside 64-bit mode; #GP(0) at CPL > 0.
pub fn sysret(cpu: &mut CpuState, op_size: u8) -> Result<(), Exception> {
    if cpu.efer & cr::EFER_SCE == 0 || !in_64bit(cpu) {
        return Err(Exception::InvalidOpcode);
    }
    if cpu.cpl != 0 {
        return Err(GP0);
    }
    let base = (cpu.msr.star >> 48) as u16;
    let rcx = cpu.gpr[reg::RCX];
    let (cs, rip) = if op_size == 8 {
        if !is_canonical(rcx) {
            return Err(GP0);
        }
        (
            Segment::flat(base.wrapping_add(16) | 3, attr::CODE64_DPL3),
            rcx,
        )
    } else {
        (
            Segment::flat(base | 3, attr::CODE32_DPL3),
            rcx & 0xFFFF_FFFF,
        )
    };
    let ss = Segment::flat(base.wrapping_add(8) | 3, attr::DATA_DPL3);
    set_rflags(cpu, cpu.gpr[11] & SYSRET_RFLAGS);
    enter(cpu, cs, ss, 3);
    cpu.rip = rip;
    Ok(())
}

/// SYSENTER: to ring 0 at IA32_SYSENTER_EIP with RSP = IA32_SYSENTER_ESP, 64-bit code when
/// IA-32e mode is active. #GP(0) in real mode or with a null IA32_SYSENTER_CS.
pub fn sysenter(cpu: &mut CpuState) -> Result<(), Exception> {
    let cs_sel = cpu.msr.sysenter_cs as u16 & 0xFFFC;
    if cpu.cr0 & cr::CR0_PE == 0 || cs_sel == 0 {
        return Err(GP0);
    }
    cpu.settle_flags();
    let flags = cpu.rflags & !(rflags::VM | rflags::IF | rflags::RF);
    set_rflags(cpu, flags);
    let ss = Segment::flat(cs_sel.wrapping_add(8), attr::DATA_DPL0);
    if cpu.efer & cr::EFER_LMA != 0 {
        enter(cpu, Segment::flat(cs_sel, attr::CODE64_DPL0), ss, 0);
        cpu.rip = cpu.msr.sysenter_eip;
        cpu.gpr[reg::RSP] = cpu.msr.sysenter_esp;
    } else {
        enter(cpu, Segment::flat(cs_sel, attr::CODE32_DPL0), ss, 0);
        cpu.rip = cpu.msr.sysenter_eip & 0xFFFF_FFFF;
        cpu.gpr[reg::RSP] = cpu.msr.sysenter_esp & 0xFFFF_FFFF;
    }
    Ok(())
}

/// SYSEXIT (`op_size` 8: to 64-bit code, RIP = RDX and RSP = RCX, both canonical; 4: to
/// 32-bit code, EIP = EDX, ESP = ECX). #GP(0) in real mode, with a null IA32_SYSENTER_CS,
/// or at CPL > 0.
pub fn sysexit(cpu: &mut CpuState, op_size: u8) -> Result<(), Exception> {
    let cs_base = cpu.msr.sysenter_cs as u16 & 0xFFFC;
    if cpu.cr0 & cr::CR0_PE == 0 || cs_base == 0 || cpu.cpl != 0 {
        return Err(GP0);
    }
    let (rdx, rcx) = (cpu.gpr[reg::RDX], cpu.gpr[reg::RCX]);
    let (cs, ss, rip, rsp) = if op_size == 8 {
        if !is_canonical(rdx) || !is_canonical(rcx) {
            return Err(GP0);
        }
        let cs = Segment::flat(cs_base.wrapping_add(32) | 3, attr::CODE64_DPL3);
        (cs, cs_base.wrapping_add(40), rdx, rcx)
    } else {
        let cs = Segment::flat(cs_base.wrapping_add(16) | 3, attr::CODE32_DPL3);
        (
            cs,
            cs_base.wrapping_add(24),
            rdx & 0xFFFF_FFFF,
            rcx & 0xFFFF_FFFF,
        )
    };
    enter(cpu, cs, Segment::flat(ss | 3, attr::DATA_DPL3), 3);
    cpu.rip = rip;
    cpu.gpr[reg::RSP] = rsp;
    Ok(())
}

/// SWAPGS: exchanges GS.base and IA32_KERNEL_GS_BASE. #UD outside 64-bit mode; #GP(0) at
/// CPL > 0.
pub fn swapgs(cpu: &mut CpuState) -> Result<(), Exception> {
    if !in_64bit(cpu) {
        return Err(Exception::InvalidOpcode);
    }
    if cpu.cpl != 0 {
        return Err(GP0);
    }
    std::mem::swap(&mut cpu.seg[seg::GS].base, &mut cpu.msr.kernel_gs_base);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rflags::*;

    const UD: Exception = Exception::InvalidOpcode;

    /// 64-bit user mode with SYSCALL enabled and the selectors of a Linux-like GDT:
    /// kernel CS 0x10 / SS 0x18; user CS32 0x23, SS 0x2B, CS64 0x33.
    fn user64() -> CpuState {
        let mut cpu = CpuState {
            cr0: cr::CR0_PE | cr::CR0_PG | cr::CR0_ET,
            cr4: cr::CR4_PAE,
            efer: cr::EFER_SCE | cr::EFER_LME | cr::EFER_LMA,
            ..Default::default()
        };
        cpu.msr.star = (0x23u64 << 48) | (0x10u64 << 32);
        cpu.msr.lstar = 0xFFFF_FFFF_8100_0000;
        cpu.msr.cstar = 0xFFFF_FFFF_8200_0000;
        cpu.msr.sfmask = IF | TF | DF | AC;
        cpu.seg[seg::CS] = Segment::flat(0x33, attr::CODE64_DPL3);
        cpu.seg[seg::SS] = Segment::flat(0x2B, attr::DATA_DPL3);
        cpu.cpl = 3;
        cpu.rflags = FIXED | IF | DF | CF | RF;
        cpu
    }

    #[test]
    fn syscall_and_sysret_round_trip() {
        let mut cpu = user64();
        syscall(&mut cpu, 0x40_1000).unwrap();
        assert_eq!(cpu.rip, 0xFFFF_FFFF_8100_0000);
        assert_eq!(cpu.gpr[reg::RCX], 0x40_1000);
        assert_eq!(cpu.gpr[11], FIXED | IF | DF | CF | RF);
        assert_eq!(cpu.rflags, FIXED | CF, "SFMASK and RF cleared");
        assert_eq!(cpu.cpl, 0);
        assert_eq!(cpu.seg[seg::CS], Segment::flat(0x10, attr::CODE64_DPL0));
        assert_eq!(cpu.seg[seg::SS], Segment::flat(0x18, attr::DATA_DPL0));
        assert!(in_64bit(&cpu));

        cpu.icount_limit = u64::MAX;
        sysret(&mut cpu, 8).unwrap();
        assert_eq!(cpu.rip, 0x40_1000);
        assert_eq!(cpu.cpl, 3);
        assert_eq!(cpu.seg[seg::CS].selector, 0x33);
        assert_eq!(cpu.seg[seg::SS].selector, 0x2B);
        assert!(in_64bit(&cpu));
        assert_eq!(cpu.rflags, FIXED | IF | DF | CF, "from R11, RF cleared");
        assert_eq!(cpu.icount_limit, 0, "IF came back on");
    }

    #[test]
    fn syscall_from_compatibility_mode_uses_cstar_and_sysret32() {
        let mut cpu = user64();
        cpu.seg[seg::CS] = Segment::flat(0x23, attr::CODE32_DPL3);
        syscall(&mut cpu, 0x8000).unwrap();
        assert_eq!(cpu.rip, 0xFFFF_FFFF_8200_0000);
        cpu.gpr[reg::RCX] = 0xFFFF_FFFF_0000_8000;
        sysret(&mut cpu, 4).unwrap();
        assert_eq!(cpu.rip, 0x8000, "ECX");
        assert_eq!(cpu.seg[seg::CS], Segment::flat(0x23, attr::CODE32_DPL3));
        assert!(!in_64bit(&cpu));
    }

    #[test]
    fn syscall_sysret_faults() {
        let mut cpu = user64();
        cpu.efer &= !cr::EFER_SCE;
        let before = cpu.clone();
        assert_eq!(syscall(&mut cpu, 0), Err(UD));
        assert_eq!(sysret(&mut cpu, 8), Err(UD));
        assert_eq!(cpu.rip, before.rip);
        let mut cpu = user64();
        assert_eq!(sysret(&mut cpu, 8), Err(GP0), "CPL 3");
        cpu.cpl = 0;
        cpu.seg[seg::CS] = Segment::flat(0x10, attr::CODE64_DPL0);
        cpu.gpr[reg::RCX] = 0x0000_8000_0000_0000;
        assert_eq!(sysret(&mut cpu, 8), Err(GP0), "non-canonical RCX");
        assert_eq!(cpu.cpl, 0);
        let mut real = CpuState {
            efer: cr::EFER_SCE,
            ..Default::default()
        };
        assert_eq!(syscall(&mut real, 0), Err(UD));
    }

    #[test]
    fn legacy_syscall_targets_star() {
        let mut cpu = CpuState {
            cr0: cr::CR0_PE,
            efer: cr::EFER_SCE,
            ..Default::default()
        };
        cpu.msr.star = (0x10u64 << 32) | 0xC000_1000;
        cpu.rflags = FIXED | IF;
        cpu.cpl = 3;
        syscall(&mut cpu, 0x1234).unwrap();
        assert_eq!(
            (cpu.rip, cpu.gpr[reg::RCX], cpu.cpl),
            (0xC000_1000, 0x1234, 0)
        );
        assert_eq!(cpu.rflags, FIXED);
        assert_eq!(cpu.seg[seg::CS], Segment::flat(0x10, attr::CODE32_DPL0));
    }

    #[test]
    fn sysenter_and_sysexit() {
        let mut cpu = user64();
        assert_eq!(sysenter(&mut cpu), Err(GP0), "SYSENTER_CS is null");
        cpu.msr.sysenter_cs = 0x10;
        cpu.msr.sysenter_eip = 0xFFFF_FFFF_8300_0000;
        cpu.msr.sysenter_esp = 0xFFFF_FFFF_8400_0000;
        sysenter(&mut cpu).unwrap();
        assert_eq!(cpu.rip, 0xFFFF_FFFF_8300_0000);
        assert_eq!(cpu.gpr[reg::RSP], 0xFFFF_FFFF_8400_0000);
        assert_eq!(cpu.seg[seg::CS], Segment::flat(0x10, attr::CODE64_DPL0));
        assert_eq!(cpu.seg[seg::SS].selector, 0x18);
        assert_eq!(cpu.rflags & IF, 0);
        assert_eq!(cpu.cpl, 0);
        cpu.gpr[reg::RDX] = 0x40_2000;
        cpu.gpr[reg::RCX] = 0x7FFF_F000;
        sysexit(&mut cpu, 8).unwrap();
        assert_eq!(
            (cpu.rip, cpu.gpr[reg::RSP], cpu.cpl),
            (0x40_2000, 0x7FFF_F000, 3)
        );
        assert_eq!(cpu.seg[seg::CS], Segment::flat(0x33, attr::CODE64_DPL3));
        assert_eq!(cpu.seg[seg::SS].selector, 0x3B);
        assert_eq!(sysexit(&mut cpu, 8), Err(GP0), "CPL 3");
        // 32-bit return.
        cpu.cpl = 0;
        cpu.gpr[reg::RDX] = 0xFFFF_FFFF_0000_1000;
        sysexit(&mut cpu, 4).unwrap();
        assert_eq!(cpu.rip, 0x1000);
        assert_eq!(cpu.seg[seg::CS], Segment::flat(0x23, attr::CODE32_DPL3));
        assert_eq!(cpu.seg[seg::SS].selector, 0x2B);
        cpu.cpl = 0;
        cpu.gpr[reg::RDX] = 1 << 47;
        assert_eq!(sysexit(&mut cpu, 8), Err(GP0), "non-canonical RDX");
    }

    #[test]
    fn swapgs_exchanges_bases() {
        let mut cpu = user64();
        cpu.seg[seg::GS].base = 0x1000;
        cpu.msr.kernel_gs_base = 0xFFFF_8880_0000_0000;
        assert_eq!(swapgs(&mut cpu), Err(GP0), "CPL 3");
        cpu.cpl = 0;
        swapgs(&mut cpu).unwrap();
        assert_eq!(cpu.seg[seg::GS].base, 0xFFFF_8880_0000_0000);
        assert_eq!(cpu.msr.kernel_gs_base, 0x1000);
        swapgs(&mut cpu).unwrap();
        assert_eq!(cpu.seg[seg::GS].base, 0x1000);
        cpu.seg[seg::CS] = Segment::flat(0x23, attr::CODE32_DPL3);
        cpu.cpl = 3;
        assert_eq!(
            swapgs(&mut cpu),
            Err(UD),
            "#UD outside 64-bit mode, before #GP"
        );
    }
}
