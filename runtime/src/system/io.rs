//! IOPL- and bitmap-sensitive instructions: CLI/STI, PUSHF/POPF, IN/OUT and INS/OUTS.
//!
//! Invariants:
//! - A privilege failure (#GP(0): CPL > IOPL without a permitting TSS I/O bitmap, or
//!   virtual-8086 mode with IOPL < 3 for CLI/STI/PUSHF/POPF) changes nothing.
//! - Port accesses reach devices only after the permission check passed; a write to an exit
//!   device reports [`IoOutcome::Stop`] with [`StopRequest::DebugExit`] (a power-off or reset
//!   request: [`StopRequest::PowerOff`] or [`StopRequest::Reset`]).
//! - INS/OUTS run their whole REP loop here, but at most [`MAX_STRING_ITERATIONS`] per call:
//!   RCX/RSI/RDI always describe the completed iterations, so a fault in the middle raises
//!   precisely (state of the faulting iteration's start) and a capped loop resumes by
//!   re-executing the instruction ([`IoOutcome::Resume`]: RIP stays on it). A huge RCX
//!   therefore never holds the host for long, and interrupts are taken between chunks.
//! - Enabling interrupts (IF 0 → 1) asks the dispatcher for an interrupt check through
//!   [`request_interrupt_check`].

use translator::state::{cr, reg, rflags, seg, seg_attr, Segment};
use translator::{CpuState, Exception};

use crate::devices::platform::Platform;
use crate::devices::IoAction;
use crate::machine::{Machine, Privilege, StopRequest};
use crate::memory::Access;
use crate::run_state::Effects;
use crate::system::descriptors::in_64bit;

const GP0: Exception = Exception::GeneralProtection(0);

/// Iterations of a REP INS/OUTS performed per hypercall before it resumes.
pub const MAX_STRING_ITERATIONS: u64 = 4096;

/// Offset of the I/O map base field in a 32- or 64-bit TSS.
const TSS_IOMAP_BASE: u64 = 0x66;

/// How a port instruction completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IoOutcome {
    /// Done; continue after the instruction.
    Done,
    /// A REP string instruction reached [`MAX_STRING_ITERATIONS`]: RCX/RSI/RDI are updated
    /// and RIP must stay on the instruction, which continues when executed again.
    Resume,
    /// A device asked the VM to stop.
    Stop(StopRequest),
}

/// Ask the dispatcher to look for a deliverable interrupt before the next block runs (the
/// next block entry sees its budget exhausted and returns; the dispatcher restores the
/// budget).
pub fn request_interrupt_check(cpu: &mut CpuState) {
    cpu.icount_limit = 0;
}

/// RFLAGS.IOPL.
fn iopl(cpu: &CpuState) -> u64 {
    (cpu.rflags & rflags::IOPL) >> 12
}

/// Whether IOPL lets the current code run CLI/STI/POPF.IF and unchecked port I/O:
/// always in real mode; CPL ≤ IOPL in protected mode; IOPL = 3 in virtual-8086 mode.
fn iopl_allows(cpu: &CpuState) -> bool {
    if cpu.cr0 & cr::CR0_PE == 0 {
        true
    } else if cpu.rflags & rflags::VM != 0 {
        iopl(cpu) == 3
    } else {
        cpu.cpl <= iopl(cpu)
    }
}

/// CLI: #GP(0) when IOPL does not allow it.
pub fn cli(cpu: &mut CpuState) -> Result<(), Exception> {
    if !iopl_allows(cpu) {
        return Err(GP0);
    }
    cpu.rflags &= !rflags::IF;
    Ok(())
}

/// STI: #GP(0) when IOPL does not allow it. Enabling interrupts opens the interrupt shadow
/// at `next` (the instruction after STI runs before any interrupt;
/// [`crate::run_state::RunState::interrupt_shadow`]) and, if an interrupt is already pending, asks for an interrupt check. A timer that comes
/// due later is taken at a slice boundary, as for any code running with IF set.
pub fn sti(m: &mut Machine, cpu: &mut CpuState, next: u64) -> Result<Effects, Exception> {
    if !iopl_allows(cpu) {
        return Err(GP0);
    }
    let mut fx = Effects::default();
    if cpu.rflags & rflags::IF == 0 {
        cpu.rflags |= rflags::IF;
        fx.shadow = Some(next);
        if m.platform.has_interrupt() {
            request_interrupt_check(cpu);
        }
    }
    Ok(fx)
}

/// PUSHF: the RFLAGS image to push (VM and RF read as zero; the caller stores the operand
/// size's low bits). Virtual-8086 mode with IOPL < 3: #GP(0).
pub fn pushf(cpu: &mut CpuState) -> Result<u64, Exception> {
    if cpu.rflags & rflags::VM != 0 && iopl(cpu) < 3 {
        return Err(GP0);
    }
    cpu.settle_flags();
    Ok((cpu.rflags & !(rflags::VM | rflags::RF)) | rflags::FIXED)
}

/// POPF with the popped `value` of `op_size` bytes: the arithmetic flags, TF, DF and NT are
/// always written (and AC, ID for 4/8-byte forms, which also clear RF); IF only when
/// IOPL allows (ignored otherwise, no fault); IOPL only at CPL 0 (or in real mode); VM, VIF
/// and VIP never. Virtual-8086 mode with IOPL < 3: #GP(0).
pub fn popf(cpu: &mut CpuState, value: u64, op_size: u8) -> Result<(), Exception> {
    if cpu.rflags & rflags::VM != 0 && iopl(cpu) < 3 {
        return Err(GP0);
    }
    cpu.settle_flags();
    let old = cpu.rflags;
    let mut mask = rflags::ARITH | rflags::TF | rflags::DF | rflags::NT | rflags::AC | rflags::ID;
    let real = cpu.cr0 & cr::CR0_PE == 0;
    if real || (cpu.cpl == 0 && old & rflags::VM == 0) {
        mask |= rflags::IF | rflags::IOPL;
    } else if iopl_allows(cpu) {
        mask |= rflags::IF;
    }
    let mut new = old;
    if op_size == 2 {
        mask &= 0xFFFF;
    } else {
        new &= !rflags::RF;
    }
    new = (new & !mask) | (value & mask) | rflags::FIXED;
    cpu.rflags = new;
    if old & rflags::IF == 0 && new & rflags::IF != 0 {
        request_interrupt_check(cpu);
    }
    Ok(())
}

// ------------------------------------------------------------------ port I/O

/// Whether the current code may access `size` bytes at `port`: IOPL allows it, or every
/// bit for the ports in the TSS I/O permission bitmap is clear. The TSS must be a 32/64-bit
/// TSS; bitmap bytes beyond its limit deny. Reading the TSS may page-fault.
pub fn check_io_permission(
    m: &mut Machine,
    cpu: &mut CpuState,
    port: u16,
    size: u8,
) -> Result<(), Exception> {
    if iopl_allows(cpu) {
        return Ok(());
    }
    let tr = cpu.tr;
    let ty = tr.attr & seg_attr::TYPE;
    let is_tss32 = tr.attr & seg_attr::S == 0 && (ty == 9 || ty == 11);
    if !is_tss32 || u64::from(tr.limit) < TSS_IOMAP_BASE + 1 {
        return Err(GP0);
    }
    let lma = cpu.efer & cr::EFER_LMA != 0;
    let wrap = |a: u64| if lma { a } else { a & 0xFFFF_FFFF };
    let sup = Privilege::Supervisor;
    let map = m.read_lin(
        cpu,
        wrap(tr.base.wrapping_add(TSS_IOMAP_BASE)),
        2,
        Access::Read,
        sup,
    )?;
    // Two bitmap bytes cover any access of up to 4 ports starting at `port`.
    let byte = map + u64::from(port / 8);
    if byte + 1 > u64::from(tr.limit) {
        return Err(GP0);
    }
    let bits = m.read_lin(cpu, wrap(tr.base.wrapping_add(byte)), 2, Access::Read, sup)?;
    let mask = ((1u64 << size.clamp(1, 4)) - 1) << (port & 7);
    if bits & mask != 0 {
        return Err(GP0);
    }
    Ok(())
}

/// IN: the `size`-byte value of `port` after the permission check.
pub fn port_in(m: &mut Machine, cpu: &mut CpuState, port: u16, size: u8) -> Result<u64, Exception> {
    check_io_permission(m, cpu, port, size)?;
    Ok(read_port(m, port, size))
}

/// OUT: writes `size` bytes of `value` to `port` after the permission check.
pub fn port_out(
    m: &mut Machine,
    cpu: &mut CpuState,
    port: u16,
    size: u8,
    value: u64,
) -> Result<IoOutcome, Exception> {
    check_io_permission(m, cpu, port, size)?;
    Ok(write_port(m, cpu, port, size, value))
}

/// A device read: the platform's interrupt controllers, timer and RTC, else the port bus.
/// Only the platform's ports read the clock (a host system call's worth on a POST-code or
/// UART access otherwise).
fn read_port(m: &mut Machine, port: u16, size: u8) -> u64 {
    if Platform::claims_port(port) {
        let now = m.tsc.read();
        if let Some(v) = m.platform.io_read(port, size, now) {
            return u64::from(v);
        }
    }
    m.bus.read(port, usize::from(size))
}

/// A device write. A platform write (PIC mask or EOI, timer programming) may make an
/// interrupt deliverable, so it asks for an interrupt check; an exit device stops the VM.
fn write_port(m: &mut Machine, cpu: &mut CpuState, port: u16, size: u8, value: u64) -> IoOutcome {
    if Platform::claims_port(port) {
        let now = m.tsc.read();
        if m.platform.io_write(port, size, value as u32, now) {
            request_interrupt_check(cpu);
            return IoOutcome::Done;
        }
    }
    match m.bus.write(port, usize::from(size), value) {
        IoAction::Exit(v) => IoOutcome::Stop(StopRequest::DebugExit(v)),
        IoAction::PowerOff => IoOutcome::Stop(StopRequest::PowerOff),
        IoAction::Reset => IoOutcome::Stop(StopRequest::Reset),
        IoAction::Continue => IoOutcome::Done,
    }
}

// ------------------------------------------------------------------ string I/O

/// The operands of an INS or OUTS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StringIo {
    /// A REP prefix (REPE or REPNE: both simply repeat).
    pub rep: bool,
    /// Element size in bytes (1, 2 or 4).
    pub elem: u8,
    /// Address size in bytes (2, 4 or 8): the width of RCX, RSI and RDI.
    pub addr_size: u8,
    /// OUTS source segment (DS unless overridden); INS always writes ES.
    pub seg: usize,
}

/// The mask of an `size`-byte address.
fn addr_mask(size: u8) -> u64 {
    match size {
        2 => 0xFFFF,
        4 => 0xFFFF_FFFF,
        _ => u64::MAX,
    }
}

/// Write `v` to GPR `r` as an `addr_size` register (16-bit writes merge, 32-bit writes
/// zero-extend).
fn set_addr_reg(cpu: &mut CpuState, r: usize, v: u64, addr_size: u8) {
    cpu.gpr[r] = match addr_size {
        2 => (cpu.gpr[r] & !0xFFFF) | (v & 0xFFFF),
        4 => v & 0xFFFF_FFFF,
        _ => v,
    };
}

/// The linear address of `size` bytes at `offset` in segment `s`, with the segment checks
/// outside 64-bit mode (usable, readable/writable, within the limit: #GP(0), or #SS(0) for
/// SS). In 64-bit mode only FS and GS have a base.
fn seg_lin(cpu: &CpuState, s: usize, offset: u64, size: u8, write: bool) -> Result<u64, Exception> {
    let sg: Segment = cpu.seg[s];
    if in_64bit(cpu) {
        let base = if s == seg::FS || s == seg::GS {
            sg.base
        } else {
            0
        };
        return Ok(base.wrapping_add(offset));
    }
    let fault = if s == seg::SS {
        Exception::StackFault(0)
    } else {
        GP0
    };
    let protected = cpu.cr0 & cr::CR0_PE != 0 && cpu.rflags & rflags::VM == 0;
    if protected {
        let ty = sg.attr & seg_attr::TYPE;
        let code = ty & 8 != 0;
        let usable = sg.attr & seg_attr::P != 0 && sg.attr & seg_attr::S != 0;
        let allowed = if write {
            !code && ty & 2 != 0
        } else {
            !code || ty & 2 != 0
        };
        if !usable || !allowed {
            return Err(fault);
        }
        let last = offset + u64::from(size) - 1;
        let expand_down = !code && ty & 4 != 0;
        let in_limit = if expand_down {
            let top = if sg.attr & seg_attr::DB != 0 {
                0xFFFF_FFFF
            } else {
                0xFFFF
            };
            offset > u64::from(sg.limit) && last <= top
        } else {
            last <= u64::from(sg.limit)
        };
        if !in_limit {
            return Err(fault);
        }
    } else if offset + u64::from(size) - 1 > u64::from(sg.limit) {
        return Err(fault);
    }
    Ok(sg.base.wrapping_add(offset) & 0xFFFF_FFFF)
}

/// One REP string loop: `count` iterations to run, how far to move the pointer per element.
struct Loop {
    remaining: u64,
    step: u64,
    mask: u64,
}

/// The loop of `s`, or `None` when a REP count of zero makes it a no-op.
fn string_loop(cpu: &CpuState, s: &StringIo) -> Option<Loop> {
    let mask = addr_mask(s.addr_size);
    let remaining = if s.rep { cpu.gpr[reg::RCX] & mask } else { 1 };
    if remaining == 0 {
        return None;
    }
    let elem = u64::from(s.elem);
    let step = if cpu.rflags & rflags::DF != 0 {
        elem.wrapping_neg()
    } else {
        elem
    };
    Some(Loop {
        remaining,
        step,
        mask,
    })
}

/// Commit one completed iteration: advance pointer register `ptr` and count RCX down.
fn advance(cpu: &mut CpuState, s: &StringIo, l: &mut Loop, ptr: usize) {
    let next = cpu.gpr[ptr].wrapping_add(l.step) & l.mask;
    set_addr_reg(cpu, ptr, next, s.addr_size);
    l.remaining -= 1;
    if s.rep {
        set_addr_reg(cpu, reg::RCX, l.remaining, s.addr_size);
    }
}

/// INS: reads elements from port DX into ES:rDI (see the module invariants). Each element's
/// destination is checked writable before the port is read, so a fault loses no data.
pub fn ins(m: &mut Machine, cpu: &mut CpuState, s: StringIo) -> Result<IoOutcome, Exception> {
    let Some(mut l) = string_loop(cpu, &s) else {
        return Ok(IoOutcome::Done);
    };
    let port = cpu.gpr[reg::RDX] as u16;
    check_io_permission(m, cpu, port, s.elem)?;
    let p = Privilege::of_cpl(cpu.cpl);
    let size = usize::from(s.elem);
    for _ in 0..MAX_STRING_ITERATIONS {
        let lin = seg_lin(cpu, seg::ES, cpu.gpr[reg::RDI] & l.mask, s.elem, true)?;
        m.read_lin(cpu, lin, size, Access::Write, p)?;
        let v = read_port(m, port, s.elem);
        m.write_lin(cpu, lin, size, v, p)?;
        // INS's memory side is a data write for DR0-DR3 (its port side is logged with it).
        m.debug_accesses
            .record(lin, u64::from(s.elem), super::debug::AccessKind::Write);
        advance(cpu, &s, &mut l, reg::RDI);
        if l.remaining == 0 {
            return Ok(IoOutcome::Done);
        }
    }
    Ok(IoOutcome::Resume)
}

/// OUTS: writes elements from seg:rSI to port DX (see the module invariants).
pub fn outs(m: &mut Machine, cpu: &mut CpuState, s: StringIo) -> Result<IoOutcome, Exception> {
    let Some(mut l) = string_loop(cpu, &s) else {
        return Ok(IoOutcome::Done);
    };
    let port = cpu.gpr[reg::RDX] as u16;
    check_io_permission(m, cpu, port, s.elem)?;
    let p = Privilege::of_cpl(cpu.cpl);
    let src = if s.seg < 6 { s.seg } else { seg::DS };
    for _ in 0..MAX_STRING_ITERATIONS {
        let lin = seg_lin(cpu, src, cpu.gpr[reg::RSI] & l.mask, s.elem, false)?;
        let v = m.read_lin(cpu, lin, usize::from(s.elem), Access::Read, p)?;
        m.debug_accesses
            .record(lin, u64::from(s.elem), super::debug::AccessKind::Read);
        let out = write_port(m, cpu, port, s.elem, v);
        advance(cpu, &s, &mut l, reg::RSI);
        if let IoOutcome::Stop(_) = out {
            return Ok(out);
        }
        if l.remaining == 0 {
            return Ok(IoOutcome::Done);
        }
    }
    Ok(IoOutcome::Resume)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::SerialSink;
    use rflags::*;

    fn setup() -> (Machine, CpuState) {
        let m = Machine::new(4 << 20, SerialSink::Capture).unwrap();
        (m, CpuState::default())
    }

    /// Flat protected mode at `cpl` with IOPL `iopl`.
    fn protected(cpu: &mut CpuState, cpl: u64, iopl: u64) {
        cpu.cr0 = cr::CR0_PE | cr::CR0_ET;
        cpu.cpl = cpl;
        cpu.rflags = FIXED | (iopl << 12);
        let dpl = (cpl as u16) << seg_attr::DPL_SHIFT;
        cpu.seg[seg::CS] = Segment::flat(0x8 | cpl as u16, 0xC09B | dpl);
        for s in [seg::ES, seg::SS, seg::DS, seg::FS, seg::GS] {
            cpu.seg[s] = Segment::flat(0x10 | cpl as u16, 0xC093 | dpl);
        }
    }

    /// A 32-bit TSS at 0x5000 whose I/O bitmap (at +0x68) allows only ports 0x3F8..0x3FF
    /// and 0x80, with a limit covering the bitmap for ports below 0x400.
    fn tss_with_bitmap(m: &mut Machine, cpu: &mut CpuState) {
        let sup = Privilege::Supervisor;
        m.write_lin(cpu, 0x5066, 2, 0x68, sup).unwrap();
        for i in 0..0x80 + 1 {
            m.write_lin(cpu, 0x5068 + i, 1, 0xFF, sup).unwrap();
        }
        m.write_lin(cpu, 0x5068 + 0x3F8 / 8, 1, 0x00, sup).unwrap();
        m.write_lin(cpu, 0x5068 + 0x80 / 8, 1, 0xFE, sup).unwrap();
        cpu.tr = Segment {
            selector: 0x28,
            attr: 0x8B,
            limit: 0x68 + 0x80,
            base: 0x5000,
        };
    }

    #[test]
    fn cli_sti_follow_iopl() {
        let (mut m, mut cpu) = setup();
        protected(&mut cpu, 3, 0);
        cpu.rflags |= IF;
        assert_eq!(cli(&mut cpu), Err(GP0));
        assert_eq!(sti(&mut m, &mut cpu, 0x101), Err(GP0));
        assert_ne!(cpu.rflags & IF, 0, "unchanged");
        protected(&mut cpu, 3, 3);
        cli(&mut cpu).unwrap();
        assert_eq!(cpu.rflags & IF, 0);
        cpu.icount_limit = u64::MAX;
        let fx = sti(&mut m, &mut cpu, 0x101).unwrap();
        assert_ne!(cpu.rflags & IF, 0);
        assert_eq!(fx.shadow, Some(0x101), "the next instruction is shadowed");
        assert_eq!(
            cpu.icount_limit,
            u64::MAX,
            "nothing pending: no interrupt check"
        );
        // Real mode: always allowed.
        let (_, mut cpu) = setup();
        cli(&mut cpu).unwrap();
    }

    #[test]
    fn pushf_hides_vm_and_rf_and_settles_flags() {
        let (_, mut cpu) = setup();
        cpu.rflags = FIXED | IF | RF | CF;
        assert_eq!(pushf(&mut cpu), Ok(FIXED | IF | CF));
        cpu.rflags = FIXED | VM;
        assert_eq!(pushf(&mut cpu), Err(GP0), "VM86 with IOPL 0");
    }

    #[test]
    fn popf_rules_by_cpl_and_iopl() {
        let (_, mut cpu) = setup();
        // CPL 0: everything writable but VM/VIF/VIP; RF cleared.
        protected(&mut cpu, 0, 0);
        cpu.rflags |= RF | VIP;
        popf(&mut cpu, u64::MAX, 8).unwrap();
        let all = ARITH | TF | IF | DF | IOPL | NT | AC | ID;
        assert_eq!(cpu.rflags, FIXED | all | VIP);
        // CPL 3, IOPL 0: IF and IOPL silently kept.
        protected(&mut cpu, 3, 0);
        cpu.icount_limit = u64::MAX;
        popf(&mut cpu, u64::MAX, 8).unwrap();
        assert_eq!(cpu.rflags, FIXED | (all & !(IF | IOPL)));
        assert_eq!(cpu.icount_limit, u64::MAX, "IF did not change");
        // CPL 3, IOPL 3: IF writable, IOPL still not.
        protected(&mut cpu, 3, 3);
        popf(&mut cpu, IF, 8).unwrap();
        assert_eq!(cpu.rflags, FIXED | IF | IOPL);
        assert_eq!(cpu.icount_limit, 0, "IF 0 -> 1 asks for an interrupt check");
        // 16-bit POPF: AC, ID and RF survive.
        protected(&mut cpu, 0, 0);
        cpu.rflags |= AC | ID | RF;
        popf(&mut cpu, 0, 2).unwrap();
        assert_eq!(cpu.rflags, FIXED | AC | ID | RF);
        // VM86 with IOPL < 3 faults.
        cpu.rflags = FIXED | VM;
        assert_eq!(popf(&mut cpu, 0, 4), Err(GP0));
    }

    #[test]
    fn tss_io_bitmap_allows_and_denies() {
        let (mut m, mut cpu) = setup();
        protected(&mut cpu, 3, 0);
        // No usable TSS: denied.
        assert_eq!(port_in(&mut m, &mut cpu, 0x3F8, 1), Err(GP0));
        tss_with_bitmap(&mut m, &mut cpu);
        port_out(&mut m, &mut cpu, 0x3F8, 1, b'k' as u64).unwrap();
        assert_eq!(m.serial().captured(), b"k");
        assert!(port_in(&mut m, &mut cpu, 0x3FD, 1).is_ok());
        assert!(port_in(&mut m, &mut cpu, 0x3FC, 4).is_ok());
        assert_eq!(
            port_in(&mut m, &mut cpu, 0x3FE, 4),
            Err(GP0),
            "crosses into 0x400"
        );
        assert_eq!(port_in(&mut m, &mut cpu, 0x3F7, 1), Err(GP0));
        assert!(port_in(&mut m, &mut cpu, 0x80, 1).is_ok());
        assert_eq!(port_in(&mut m, &mut cpu, 0x80, 2), Err(GP0), "0x81 denied");
        assert_eq!(
            port_in(&mut m, &mut cpu, 0x1000, 1),
            Err(GP0),
            "beyond the limit"
        );
        // IOPL 3 bypasses the bitmap.
        cpu.rflags |= IOPL;
        assert!(port_in(&mut m, &mut cpu, 0x1000, 1).is_ok());
    }

    #[test]
    fn out_to_debug_exit_stops() {
        let (mut m, mut cpu) = setup();
        assert_eq!(
            port_out(&mut m, &mut cpu, 0xF4, 4, 3),
            Ok(IoOutcome::Stop(StopRequest::DebugExit(3)))
        );
    }

    #[test]
    fn rep_outs_writes_the_string_and_updates_registers() {
        let (mut m, mut cpu) = setup();
        let sup = Privilege::Supervisor;
        for (i, b) in b"hello".iter().enumerate() {
            m.write_lin(&mut cpu, 0x2000 + i as u64, 1, u64::from(*b), sup)
                .unwrap();
        }
        // Real mode, 16-bit addresses: DS:SI.
        cpu.seg[seg::DS] = Segment {
            selector: 0x200,
            attr: 0x93,
            limit: 0xFFFF,
            base: 0x2000,
        };
        cpu.gpr[reg::RSI] = 0xFFFF_0000;
        cpu.gpr[reg::RCX] = 0xAAAA_0005;
        cpu.gpr[reg::RDX] = 0x3F8;
        let s = StringIo {
            rep: true,
            elem: 1,
            addr_size: 2,
            seg: seg::DS,
        };
        assert_eq!(outs(&mut m, &mut cpu, s), Ok(IoOutcome::Done));
        assert_eq!(m.serial().captured(), b"hello");
        assert_eq!(cpu.gpr[reg::RSI], 0xFFFF_0005, "SI only");
        assert_eq!(cpu.gpr[reg::RCX], 0xAAAA_0000, "CX only");
        // REP with a zero count does nothing (not even the permission check).
        assert_eq!(outs(&mut m, &mut cpu, s), Ok(IoOutcome::Done));
    }

    #[test]
    fn rep_ins_backwards_and_fault_mid_loop_is_precise() {
        let (mut m, mut cpu) = setup();
        let end = 4u64 << 20;
        // 32-bit addresses: the second element would cross the end of RAM.
        cpu.gpr[reg::RDX] = 0x1234; // unclaimed port: reads as all ones
        cpu.gpr[reg::RDI] = end - 2;
        cpu.gpr[reg::RCX] = 3;
        cpu.seg[seg::ES] = Segment {
            selector: 0,
            attr: 0x93,
            limit: 0xFFFF_FFFF,
            base: 0,
        };
        let s = StringIo {
            rep: true,
            elem: 2,
            addr_size: 4,
            seg: seg::DS,
        };
        let r = ins(&mut m, &mut cpu, s);
        assert_eq!(r, Err(Exception::PageFault { addr: end, code: 2 }));
        assert_eq!((cpu.gpr[reg::RDI], cpu.gpr[reg::RCX]), (end, 2), "one done");
        assert_eq!(
            m.read_lin(&mut cpu, end - 2, 2, Access::Read, Privilege::Supervisor),
            Ok(0xFFFF)
        );
        // DF set: downwards.
        cpu.rflags |= DF;
        cpu.gpr[reg::RDI] = end - 2;
        assert_eq!(ins(&mut m, &mut cpu, s), Ok(IoOutcome::Done));
        assert_eq!((cpu.gpr[reg::RDI], cpu.gpr[reg::RCX]), (end - 6, 0));
    }

    #[test]
    fn huge_counts_resume_in_chunks() {
        let (mut m, mut cpu) = setup();
        cpu.gpr[reg::RDX] = 0x80;
        cpu.gpr[reg::RCX] = u64::MAX;
        cpu.seg[seg::DS] = Segment {
            selector: 0,
            attr: 0x93,
            limit: 0xFFFF_FFFF,
            base: 0,
        };
        let s = StringIo {
            rep: true,
            elem: 1,
            addr_size: 8,
            seg: seg::DS,
        };
        assert_eq!(outs(&mut m, &mut cpu, s), Ok(IoOutcome::Resume));
        assert_eq!(cpu.gpr[reg::RCX], u64::MAX - MAX_STRING_ITERATIONS);
        assert_eq!(cpu.gpr[reg::RSI], MAX_STRING_ITERATIONS);
    }

    #[test]
    fn string_io_checks_segments_outside_64bit_mode() {
        let (mut m, mut cpu) = setup();
        protected(&mut cpu, 0, 0);
        cpu.gpr[reg::RDX] = 0x80;
        cpu.seg[seg::ES].limit = 0xFFF;
        cpu.gpr[reg::RDI] = 0xFFF;
        let s = StringIo {
            rep: false,
            elem: 2,
            addr_size: 4,
            seg: seg::DS,
        };
        assert_eq!(ins(&mut m, &mut cpu, s), Err(GP0), "beyond ES limit");
        cpu.seg[seg::ES].attr = 0xC09B; // code: not writable
        cpu.gpr[reg::RDI] = 0;
        assert_eq!(ins(&mut m, &mut cpu, s), Err(GP0));
        let s = StringIo { seg: seg::SS, ..s };
        cpu.seg[seg::SS].limit = 0;
        assert_eq!(outs(&mut m, &mut cpu, s), Err(Exception::StackFault(0)));
    }
}
