//! Exception and interrupt delivery through the IDT (real-mode IVT, 16/32-bit protected-mode
//! gates, IA-32e 64-bit gates with the IST), the double-fault escalation table, the triple
//! fault report, and IRET/IRETD/IRETQ.
//!
//! Invariants:
//! - Delivery of one event checks everything (IDT entry, target code segment, TSS stack,
//!   every slot of the frame, writable) before it writes the frame, and writes memory before
//!   it changes the CPU state: a fault during delivery leaves the [`CpuState`] as it was
//!   (except CR2, which a #PF sets when it is raised), and is then itself delivered per the
//!   SDM's benign/contributory/page-fault table, escalating to #DF and, for a fault while
//!   delivering #DF, to a triple fault ([`DeliveryError::TripleFault`]).
//! - A fault raised while delivering an event is delivered with the return address
//!   `cpu.rip`: the instruction's start for software interrupts and faults (the hypercall
//!   contract leaves RIP there), the interrupted instruction for external interrupts.
//! - Error codes of faults raised during delivery carry EXT (bit 0) for external events and
//!   exceptions (and INT1), and IDT (bit 1) when they name an IDT entry.
//!
//! Deliberately unsupported (each reported, never ignored):
//! - Task gates in the IDT: delivering through one stops the VM with the triple-fault report
//!   naming the unsupported task switch (hardware would switch tasks).
//! - IRET with RFLAGS.NT = 1 outside IA-32e mode (a task return): #GP(0), which is what
//!   IA-32e mode does architecturally.
//! - Virtual-8086 mode: RFLAGS.VM is never set by IRET and never consulted.
//! - The RFLAGS image pushed for a fault-class exception other than #DB has RF set
//!   (SDM vol. 3 18.3.1.1), so that IRET back to the faulting instruction does not take an
//!   instruction breakpoint on it a second time; traps, aborts and interrupts push RF as it is.

use translator::state::{reg, rflags, seg, seg_attr, CpuState};
use translator::Exception;

use super::descriptors::{
    in_64bit, is_null, kind, long_mode, protected, read_desc, read_idt, sel_code, set_type_bit,
    sys, tss64_stack, tss_legacy_stack,
};
use super::far::{
    code_segment, null_inaccessible_data, offset_ok, op_bytes, real_mode_cs, return_target,
    truncate,
};
use super::mode::state_dump;
use super::segments::{check_ss, null_segment, GpOrTs, Stack};
use crate::machine::{Machine, Privilege};
use crate::memory::Access;

/// Which software-interrupt instruction raised an [`Event::Software`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoftKind {
    /// INT n: the gate's DPL must be >= CPL, else #GP(vector * 8 + 2).
    IntN,
    /// INT3 (vector 3), checked like INT n.
    Int3,
    /// INTO (vector 4), checked like INT n; a no-op (RIP moves on) when OF = 0.
    Into,
    /// INT1/ICEBP (vector 1): no DPL check, delivered like an external event.
    Int1,
}

/// An event to deliver through the IDT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// An exception raised by an instruction (its error code, if any, is pushed).
    Exception(Exception),
    /// An external (hardware) interrupt with this vector.
    External(u8),
    /// A software interrupt instruction.
    Software {
        /// The vector (3 for INT3, 4 for INTO, 1 for INT1).
        vector: u8,
        /// The instruction.
        kind: SoftKind,
    },
}

/// How an event combines with a fault raised while delivering it (SDM Vol. 3 Table 6-5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Benign,
    Contributory,
    PageFault,
    DoubleFault,
}

impl Event {
    /// The interrupt vector.
    pub fn vector(&self) -> u8 {
        match *self {
            Event::Exception(e) => e.vector(),
            Event::External(v) | Event::Software { vector: v, .. } => v,
        }
    }

    /// The error code pushed with the event (exceptions that have one).
    pub fn error_code(&self) -> Option<u32> {
        match *self {
            Event::Exception(e) => e.error_code(),
            _ => None,
        }
    }

    /// EXT: the event is not a software interrupt of the program (INT n, INT3, INTO).
    fn ext(&self) -> u16 {
        match self {
            Event::Software { kind, .. } => (*kind == SoftKind::Int1) as u16,
            _ => 1,
        }
    }

    /// Whether the gate DPL is checked against the CPL.
    fn checks_gate_dpl(&self) -> bool {
        matches!(self, Event::Software { kind, .. } if *kind != SoftKind::Int1)
    }

    /// RF as pushed in the frame: set for faults other than #DB (whose instruction-breakpoint
    /// form must not set it, and whose other forms are traps or general detect, which the
    /// SDM and QEMU treat alike), as it is otherwise.
    fn pushed_rflags(&self, flags: u64) -> u64 {
        match self {
            Event::Exception(e) if is_fault(*e) => flags | rflags::RF,
            _ => flags,
        }
    }

    fn class(&self) -> Class {
        match self {
            Event::Exception(e) => class_of(*e),
            _ => Class::Benign,
        }
    }
}

/// Fault-class exceptions: the saved RIP is the faulting instruction. #BP and #OF are traps,
/// #DF and #MC aborts; #DB is left out (see [`Event::pushed_rflags`]).
fn is_fault(e: Exception) -> bool {
    !matches!(e.vector(), 1 | 3 | 4 | 8 | 18)
}

fn class_of(e: Exception) -> Class {
    match e.vector() {
        0 | 10..=13 => Class::Contributory,
        14 => Class::PageFault,
        8 => Class::DoubleFault,
        _ => Class::Benign,
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Event::Exception(e) => write!(f, "{e}"),
            Event::External(v) => write!(f, "external interrupt {v:#04x}"),
            Event::Software { vector, kind } => match kind {
                SoftKind::IntN => write!(f, "INT {vector:#04x}"),
                SoftKind::Int3 => write!(f, "INT3"),
                SoftKind::Into => write!(f, "INTO"),
                SoftKind::Int1 => write!(f, "INT1"),
            },
        }
    }
}

/// Why an event could not be delivered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Triple fault: {report}
    #[error("triple fault: {report}")]
    TripleFault {
        /// The exception chain that led here and the guest state dump.
        report: String,
    },
}

/// Why one delivery attempt failed.
enum Fail {
    /// A fault raised while delivering (to be combined with the event).
    Fault(Exception),
    /// A feature popek does not implement (task gates).
    Unsupported(&'static str),
}

impl From<Exception> for Fail {
    fn from(e: Exception) -> Fail {
        Fail::Fault(e)
    }
}

/// Most events tried before giving up (each step escalates or changes the event; this only
/// guards the loop).
const MAX_CHAIN: usize = 8;

/// Delivers `event` through the IDT with `return_rip` as the RIP pushed (the faulting
/// instruction for faults, the next instruction for traps, INT n and external interrupts).
/// On success the CPU is at the handler (CS:RIP, SS:RSP, CPL, RFLAGS with TF/NT/RF/VM and,
/// for interrupt gates, IF cleared). A #PF sets CR2. Faults during delivery are delivered
/// in turn, escalating to #DF; a fault while delivering #DF, or a task gate, gives
/// [`DeliveryError::TripleFault`] with a report of the event chain and [`state_dump`].
pub fn deliver(
    m: &mut Machine,
    cpu: &mut CpuState,
    event: Event,
    return_rip: u64,
) -> Result<(), DeliveryError> {
    if let Event::Software {
        kind: SoftKind::Into,
        ..
    } = event
    {
        if cpu.full_rflags() & rflags::OF == 0 {
            cpu.rip = return_rip;
            return Ok(());
        }
    }
    let mut chain: Vec<Event> = Vec::new();
    let (mut event, mut rip) = (event, return_rip);
    loop {
        chain.push(event);
        if let Event::Exception(Exception::PageFault { addr, .. }) = event {
            cpu.cr2 = addr;
        }
        let fault = match deliver_once(m, cpu, &event, rip) {
            Ok(()) => return Ok(()),
            Err(Fail::Unsupported(what)) => return Err(triple(cpu, &chain, what)),
            Err(Fail::Fault(f)) => f,
        };
        // CR2 is loaded when a #PF is detected, even one that escalates to #DF.
        if let Exception::PageFault { addr, .. } = fault {
            cpu.cr2 = addr;
        }
        event = match (event.class(), class_of(fault)) {
            (Class::DoubleFault, _) => {
                chain.push(Event::Exception(fault));
                return Err(triple(cpu, &chain, "fault while delivering #DF"));
            }
            (Class::Contributory, Class::Contributory)
            | (Class::PageFault, Class::Contributory | Class::PageFault) => {
                chain.push(Event::Exception(fault));
                Event::Exception(Exception::DoubleFault)
            }
            _ => Event::Exception(fault),
        };
        rip = cpu.rip;
        if chain.len() >= MAX_CHAIN {
            return Err(triple(cpu, &chain, "exception chain too long"));
        }
    }
}

fn triple(cpu: &CpuState, chain: &[Event], why: &str) -> DeliveryError {
    let events: Vec<String> = chain.iter().map(|e| e.to_string()).collect();
    DeliveryError::TripleFault {
        report: format!(
            "{why}; event chain: {}\n{}",
            events.join(" -> "),
            state_dump(cpu)
        ),
    }
}

/// One delivery attempt, all-or-nothing.
fn deliver_once(m: &mut Machine, cpu: &mut CpuState, ev: &Event, rip: u64) -> Result<(), Fail> {
    let vector = ev.vector();
    if !protected(cpu) {
        return Ok(deliver_real(m, cpu, vector, rip)?);
    }
    let ext = ev.ext();
    let cpl = cpu.cpl as u8;
    let lm = long_mode(cpu);
    let idt_code = (vector as u16) * 8 + 2 + ext;
    let gp_idt = Exception::GeneralProtection(idt_code);
    let gate = read_idt(m, cpu, vector)?.ok_or(gp_idt)?;
    let size: u8 = match (gate.is_system(), gate.typ(), lm) {
        (true, sys::TASK_GATE, false) => 0,
        (true, sys::INT_GATE16 | sys::TRAP_GATE16, false) => 2,
        (true, sys::INT_GATE | sys::TRAP_GATE, false) => 4,
        (true, sys::INT_GATE | sys::TRAP_GATE, true) => 8,
        _ => return Err(gp_idt.into()),
    };
    if ev.checks_gate_dpl() && gate.dpl() < cpl {
        return Err(Exception::GeneralProtection(vector as u16 * 8 + 2).into());
    }
    if !gate.present() {
        return Err(Exception::SegmentNotPresent(idt_code).into());
    }
    if size == 0 {
        return Err(Fail::Unsupported(
            "task gate in the IDT (task switches are not supported)",
        ));
    }
    let sel = gate.gate_selector();
    if is_null(sel) {
        return Err(Exception::GeneralProtection(ext).into());
    }
    let bad = Exception::GeneralProtection(sel_code(sel) | ext);
    let d = read_desc(m, cpu, sel)?.ok_or(bad)?;
    if !d.is_code() || d.dpl() > cpl || (lm && !d.is_code64()) {
        return Err(bad.into());
    }
    if !d.present() {
        return Err(Exception::SegmentNotPresent(sel_code(sel) | ext).into());
    }
    let target = truncate(gate.gate_offset(), size);
    if !offset_ok(cpu, &d, target) {
        return Err(Exception::GeneralProtection(ext).into());
    }
    let inner = !d.is_conforming() && d.dpl() < cpl;
    let new_cpl = if inner { d.dpl() } else { cpl };
    let privilege = Privilege::of_cpl(new_cpl as u64);
    let old_ss = cpu.seg[seg::SS];
    let old_sp = cpu.gpr[reg::RSP];
    let flags = ev.pushed_rflags(cpu.full_rflags());
    let old_cs = cpu.seg[seg::CS].selector as u64;
    let mut frame: Vec<u64> = Vec::with_capacity(6);
    let (stack, new_ss) = if lm {
        let ist = gate.gate_ist();
        let sp = if inner || ist != 0 {
            tss64_stack(m, cpu, new_cpl, ist, ext)?
        } else {
            old_sp
        };
        let ss = if inner {
            null_segment(new_cpl as u16)
        } else {
            old_ss
        };
        frame.extend([old_ss.selector as u64, old_sp]);
        let stack = Stack {
            ss,
            sp: sp & !0xF,
            width: 8,
            privilege,
            fault: Exception::StackFault(ext),
        };
        (stack, inner.then_some((ss, None)))
    } else if inner {
        let (ss_sel, esp) = tss_legacy_stack(m, cpu, new_cpl, ext)?;
        let (ss, ss_desc) = check_ss(m, cpu, ss_sel, new_cpl, false, GpOrTs::Ts(ext))?;
        frame.extend([old_ss.selector as u64, old_sp]);
        let stack = Stack {
            ss,
            sp: esp,
            width: if ss.attr & seg_attr::DB != 0 { 4 } else { 2 },
            privilege,
            fault: Exception::StackFault(sel_code(ss_sel) | ext),
        };
        (stack, Some((ss, ss_desc)))
    } else {
        let mut stack = Stack::current(cpu);
        stack.fault = Exception::StackFault(ext);
        (stack, None)
    };
    frame.extend([flags, old_cs, rip]);
    frame.extend(ev.error_code().map(|c| c as u64));
    for v in &mut frame {
        *v = truncate(*v, size);
    }
    let sp = stack.push(m, cpu, &frame, size)?;
    set_type_bit(m, cpu, &d, kind::ACCESSED)?;
    if let Some((ss, ss_desc)) = new_ss {
        if let Some(sd) = ss_desc {
            set_type_bit(m, cpu, &sd, kind::ACCESSED)?;
        }
        cpu.seg[seg::SS] = ss;
    }
    cpu.gpr[reg::RSP] = sp;
    cpu.seg[seg::CS] = code_segment(&d, sel, new_cpl);
    cpu.cpl = new_cpl as u64;
    cpu.rip = target;
    let mut f = flags & !(rflags::TF | rflags::NT | rflags::RF | rflags::VM);
    if gate.typ() & 1 == 0 {
        f &= !rflags::IF;
    }
    cpu.rflags = f;
    cpu.flags_op = 0;
    Ok(())
}

/// Real-mode delivery through the IVT (4-byte CS:IP entries at IDTR.base).
fn deliver_real(
    m: &mut Machine,
    cpu: &mut CpuState,
    vector: u8,
    rip: u64,
) -> Result<(), Exception> {
    let off = vector as u64 * 4;
    if off + 3 > cpu.idtr.limit {
        return Err(Exception::GeneralProtection(0));
    }
    let at = cpu.idtr.base.wrapping_add(off) & 0xFFFF_FFFF;
    let entry = m.read_lin(cpu, at, 4, Access::Read, Privilege::Supervisor)?;
    let flags = cpu.full_rflags();
    let frame = [
        flags & 0xFFFF,
        cpu.seg[seg::CS].selector as u64,
        rip & 0xFFFF,
    ];
    let sp = Stack::current(cpu).push(m, cpu, &frame, 2)?;
    cpu.gpr[reg::RSP] = sp;
    cpu.seg[seg::CS] = real_mode_cs((entry >> 16) as u16);
    cpu.rip = entry & 0xFFFF;
    cpu.rflags = flags & !(rflags::IF | rflags::TF | rflags::AC | rflags::RF);
    cpu.flags_op = 0;
    Ok(())
}

/// The RFLAGS bits IRET loads from `popped` at privilege `cpl` with operand size `op`.
fn iret_flags(old: u64, popped: u64, op: u8, cpl: u8) -> u64 {
    use rflags::*;
    let mut mask = ARITH | TF | DF | NT;
    if op >= 4 {
        mask |= RF | AC | ID;
    }
    let iopl = ((old & IOPL) >> 12) as u8;
    if cpl <= iopl {
        mask |= IF;
    }
    if cpl == 0 {
        mask |= IOPL;
        if op >= 4 {
            mask |= VIF | VIP;
        }
    }
    if op == 2 {
        mask &= 0xFFFF;
    }
    (old & !mask) | (popped & mask) | FIXED
}

/// IRET/IRETD/IRETQ (`op_size` 2/4/8) in real, protected and IA-32e mode: pops RIP, CS and
/// RFLAGS, plus RSP and SS when returning to an outer privilege level or from 64-bit mode
/// (IRETQ always). RFLAGS: IF only if CPL <= IOPL, IOPL and VIF/VIP only at CPL 0, VM
/// never. Data segment registers the outer level may not use are nulled. NT = 1 (task
/// return) raises #GP(0). On `Err` the CPU state is unchanged.
pub fn iret(m: &mut Machine, cpu: &mut CpuState, op_size: u8) -> Result<(), Exception> {
    let op = op_bytes(op_size);
    let o = op as i64;
    let stack = Stack::current(cpu);
    let frame = stack.frame(m, cpu, op);
    let rip = frame.read(m, cpu, 0, op)?;
    let sel = frame.read(m, cpu, o, op)? as u16;
    let popped = frame.read(m, cpu, 2 * o, op)?;
    let old = cpu.full_rflags();
    if !protected(cpu) {
        let mask = if op == 2 { 0xFFFF } else { 0x257FD5 };
        cpu.gpr[reg::RSP] = stack.moved(3 * o);
        cpu.seg[seg::CS] = real_mode_cs(sel);
        cpu.rip = rip;
        cpu.rflags = (old & !mask) | (popped & mask) | rflags::FIXED;
        cpu.flags_op = 0;
        return Ok(());
    }
    if old & rflags::NT != 0 {
        return Err(Exception::GeneralProtection(0));
    }
    let cpl = cpu.cpl as u8;
    let (d, rpl) = return_target(m, cpu, sel)?;
    let to_64 = long_mode(cpu) && d.long();
    let rip = if to_64 { rip } else { truncate(rip, 4) };
    let new_ss = if in_64bit(cpu) || rpl > cpl {
        let sp = frame.read(m, cpu, 3 * o, op)?;
        let ss_sel = frame.read(m, cpu, 4 * o, op)? as u16;
        let (ss, ss_desc) = check_ss(m, cpu, ss_sel, rpl, to_64, GpOrTs::Gp)?;
        Some((ss, ss_desc, sp))
    } else {
        None
    };
    if !offset_ok(cpu, &d, rip) {
        return Err(Exception::GeneralProtection(0));
    }
    set_type_bit(m, cpu, &d, kind::ACCESSED)?;
    if let Some((_, Some(sd), _)) = &new_ss {
        set_type_bit(m, cpu, sd, kind::ACCESSED)?;
    }
    match new_ss {
        Some((ss, _, sp)) => {
            let width = if to_64 {
                8
            } else if ss.attr & seg_attr::DB != 0 {
                4
            } else {
                2
            };
            let new_stack = Stack {
                ss,
                sp,
                width,
                privilege: Privilege::of_cpl(rpl as u64),
                fault: Exception::StackFault(0),
            };
            cpu.gpr[reg::RSP] = new_stack.moved(0);
            cpu.seg[seg::SS] = ss;
        }
        None => cpu.gpr[reg::RSP] = stack.moved(3 * o),
    }
    cpu.rflags = iret_flags(old, popped, op, cpl);
    cpu.flags_op = 0;
    cpu.seg[seg::CS] = code_segment(&d, sel, rpl);
    cpu.cpl = rpl as u64;
    cpu.rip = rip;
    if rpl > cpl {
        null_inaccessible_data(cpu, rpl);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
