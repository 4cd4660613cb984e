//! The hypercall entry point: what generated code, the interpreter and the trap handler call
//! for a sensitive instruction ([`translator::sensitive`] has the table and the contract).
//!
//! [`hypercall`] decodes the packed arguments, rejects privileged
//! instructions at CPL > 0, marshals implicit registers (EDX:EAX, ECX, ...) to and from the
//! handlers of the sibling modules, and turns the handler's [`Flow`] into what the block and
//! the run loop see: RIP and `status` for the block, [`Effects`] returned for the run loop
//! (handlers never write [`crate::run_state::RunState`]):
//!
//! | flow | RIP | `status` | also |
//! | --- | --- | --- | --- |
//! | [`Flow::Next`] / [`Flow::Value`] | next instruction | unchanged (0) | value returned for the destination |
//! | [`Flow::Jumped`] | set by the handler | `Jump` unless the entry ends the block | |
//! | [`Flow::Resume`] | the instruction | `Jump` unless the entry ends the block | REP INS/OUTS continues |
//! | [`Flow::Halt`] | next instruction | unchanged | [`Effects::halt`] |
//! | [`Flow::Stop`] | the instruction | `Stop` | [`Effects::stop`] with the device's request |
//! | [`Flow::TripleFault`] | the instruction | `Stop` | [`Effects::stop`] with the report |
//! | `Err(exception)` | the instruction | `Exception` | [`CpuState::raise`] |
//!
//! For entries that end the block and may go on without the dispatcher
//! ([`translator::sensitive::Resume`]), [`entry`] returns where the block goes on instead of a
//! value ([`super::resume`]).
//!
//! Invariants:
//! - On `Err`, RIP is the instruction's address and the handler changed no other state
//!   (REP INS/OUTS keep the registers of their completed iterations, as hardware does).
//! - Entries that end the block always leave with RIP set: the block then exits to the
//!   dispatcher at `cpu.rip` (HLT included: the dispatcher sleeps while `halted`).
//! - Arithmetic flags are settled into `rflags` before any handler runs that may read or
//!   write them (handlers read and write RFLAGS as a whole; the stub reloads the flags
//!   afterwards). The kinds of [`keeps_lazy_flags`] touch at most IF, or (SYSRET) replace
//!   RFLAGS whole and clear the descriptor, and leave the lazy-flag descriptor live
//!   otherwise: generated code reads a live descriptor as well as a settled one, and an
//!   exception they raise is delivered with [`CpuState::full_rflags`].
//! - Nothing here panics on guest input: unknown kinds and out-of-range operands become a
//!   stop with an internal-error report or a guest exception.

use translator::sensitive::{Hypercall, HypercallArgs, Resume, TABLE};
use translator::state::{reg, rflags, ExitReason};
use translator::{CpuState, Exception};

use super::control::{self, TableReg};
use super::debug::AccessKind;
use super::delivery::{deliver, iret, DeliveryError, Event, SoftKind};
use super::descriptors::{in_64bit, protected};
use super::io::{self, request_interrupt_check, IoOutcome, StringIo};
use super::{far, msr, resume, segments, syscall};
use crate::machine::{Machine, StopRequest};
use crate::run_state::Effects;

const GP0: Exception = Exception::GeneralProtection(0);

/// Calls of each hypercall kind, indexed by `Hypercall as usize` (kinds number from 1): a
/// view of [`Machine::hypercalls`] for statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HypercallCounters(pub [u64; 64]);

impl Default for HypercallCounters {
    fn default() -> Self {
        HypercallCounters([0; 64])
    }
}

impl HypercallCounters {
    /// Calls of `kind`.
    pub fn get(&self, kind: Hypercall) -> u64 {
        self.0[kind as usize & 63]
    }
    /// Every kind called at least once, with its count, in numbering order.
    pub fn nonzero(&self) -> impl Iterator<Item = (Hypercall, u64)> + '_ {
        Hypercall::ALL
            .iter()
            .map(|&k| (k, self.get(k)))
            .filter(|&(_, n)| n > 0)
    }
    /// All calls.
    pub fn total(&self) -> u64 {
        self.0.iter().fold(0u64, |a, &n| a.saturating_add(n))
    }
}

/// How a handler completed (see the module table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Done; continue after the instruction.
    Next,
    /// Done; continue after the instruction; the value goes to the destination operand.
    Value(u64),
    /// Done; the handler set RIP (and possibly the mode).
    Jumped,
    /// Not done: execute the same instruction again (a REP string loop in chunks).
    Resume,
    /// HLT: continue after the instruction once an event wakes the vCPU.
    Halt,
    /// A device asked the VM to stop.
    Stop(StopRequest),
    /// Software-interrupt delivery ended in a triple fault; the report.
    TripleFault(String),
}

/// Runs the sensitive instruction described by `a` ([`HypercallArgs::encode`]) with operands
/// `b` and `c` on `cpu`, as the module table describes. Returns the value for the
/// destination operand (0 when the instruction has none or did not complete) and what the
/// run loop must do.
pub fn hypercall(m: &mut Machine, cpu: &mut CpuState, a: u64, b: u64, c: u64) -> (u64, Effects) {
    match HypercallArgs::decode(a) {
        Some(args) => run(m, cpu, &args, b, c),
        None => unknown(cpu, a),
    }
}

/// An undecodable first argument: never produced by the translator, so an internal error.
#[cold]
pub(super) fn unknown(cpu: &mut CpuState, a: u64) -> (u64, Effects) {
    let why = format!("unknown hypercall {a:#x} at rip {:#x}", cpu.rip);
    cpu.status = ExitReason::Stop as u64;
    (0, Effects::stop(StopRequest::Internal(why)))
}

/// [`hypercall`] with its first argument decoded.
fn run(
    m: &mut Machine,
    cpu: &mut CpuState,
    args: &HypercallArgs,
    b: u64,
    c: u64,
) -> (u64, Effects) {
    if !keeps_lazy_flags(args.kind) {
        cpu.settle_flags();
    }
    let rip = cpu.rip;
    let next = next_rip(cpu, rip, args.len);
    let result = if needs_cpl0(args.kind) && cpu.cpl != 0 {
        Err(GP0)
    } else {
        dispatch(m, cpu, args, b, c, next)
    };
    let (flow, mut fx) = match result {
        Ok((flow, fx)) => (Ok(flow), fx),
        Err(e) => (Err(e), Effects::default()),
    };
    let r = match flow {
        Ok(Flow::Next) => {
            cpu.rip = next;
            0
        }
        Ok(Flow::Value(v)) => {
            cpu.rip = next;
            v
        }
        Ok(Flow::Jumped) => {
            leave_block(cpu, args.kind);
            0
        }
        Ok(Flow::Resume) => {
            cpu.rip = rip;
            leave_block(cpu, args.kind);
            0
        }
        Ok(Flow::Halt) => {
            cpu.rip = next;
            fx.halt = true;
            0
        }
        Ok(Flow::Stop(req)) => {
            cpu.rip = rip;
            cpu.status = ExitReason::Stop as u64;
            fx.stop = Some(req);
            0
        }
        Ok(Flow::TripleFault(report)) => {
            cpu.rip = rip;
            cpu.status = ExitReason::Stop as u64;
            fx.stop = Some(StopRequest::TripleFault(report));
            0
        }
        Err(e) => {
            cpu.rip = rip;
            cpu.raise(e);
            0
        }
    };
    (r, fx)
}

/// The address after the instruction at `rip` of `len` bytes, wrapping as the current code
/// size does.
fn next_rip(cpu: &CpuState, rip: u64, len: u8) -> u64 {
    let n = rip.wrapping_add(u64::from(len));
    if in_64bit(cpu) {
        n
    } else if super::mode::mode(cpu).bitness == 16 {
        n & 0xFFFF
    } else {
        n & 0xFFFF_FFFF
    }
}

/// A handler that moved RIP itself (or wants the instruction again) must leave the block:
/// entries that end the block do; the others stop it through `status`.
fn leave_block(cpu: &mut CpuState, kind: Hypercall) {
    if !ends_block(kind) {
        cpu.status = ExitReason::Jump as u64;
    }
}

/// Whether the table's entry for `kind` ends the block (the entries of one kind agree; MOV
/// CRn's refinement to a read is `MovFromCr`).
fn ends_block(kind: Hypercall) -> bool {
    ENDS_BLOCK[kind as usize & 63]
}

/// [`ends_block`] by kind number, computed from the table once.
static ENDS_BLOCK: [bool; 64] = {
    let mut ends = [false; 64];
    let mut i = 0;
    while i < TABLE.len() {
        if TABLE[i].ends_block {
            ends[TABLE[i].call as usize & 63] = true;
        }
        i += 1;
    }
    ends
};

/// A port access, for the I/O breakpoints of a single-stepped instruction.
pub(super) fn record_port(m: &mut Machine, port: u16, size: u8) {
    m.debug_accesses
        .record(u64::from(port), u64::from(size), AccessKind::Port);
}

/// Kinds whose handlers neither read nor write the arithmetic flags (nor RFLAGS as a whole),
/// or only replace RFLAGS whole (SYSRET, from R11): settling them first is wasted work on
/// the hottest hypercalls (STI, IN/OUT, MOV CRn, the SYSCALL round trip).
fn keeps_lazy_flags(kind: Hypercall) -> bool {
    use Hypercall::*;
    matches!(
        kind,
        Cli | Sti
            | In
            | Out
            | MovToCr
            | MovFromCr
            | Invlpg
            | Rdmsr
            | Wrmsr
            | Rdtsc
            | Cpuid
            | Sysret
    )
}

/// Privileged kinds whose handler has no #UD that takes precedence over the CPL check (the
/// others — MOV CR/DR, SWAPGS, SYSRET, XSETBV — check the CPL themselves, after their #UD).
fn needs_cpl0(kind: Hypercall) -> bool {
    use Hypercall::*;
    matches!(
        kind,
        Hlt | Lgdt
            | Lidt
            | Lldt
            | Ltr
            | Lmsw
            | Clts
            | Invd
            | Wbinvd
            | Invlpg
            | Invpcid
            | Rdmsr
            | Wrmsr
            | Sysexit
    )
}

/// Runs one decoded hypercall: the handler of `args.kind` with its operands. `next` is the
/// address of the following instruction (return address of calls and interrupts).
pub fn dispatch(
    m: &mut Machine,
    cpu: &mut CpuState,
    args: &HypercallArgs,
    b: u64,
    c: u64,
    next: u64,
) -> Result<(Flow, Effects), Exception> {
    use Hypercall as H;
    let op = args.op_size;
    let ok = |_: ()| Flow::Next;
    // What the run loop must do besides the flow (an interrupt shadow, ...).
    let mut fx = Effects::default();
    let flow = match args.kind {
        // ---- interrupts, halting, flags
        H::Hlt => Flow::Halt,
        H::Cli => io::cli(cpu).map(ok)?,
        H::Sti => {
            fx = io::sti(m, cpu, next)?;
            Flow::Next
        }
        H::Pushf => Flow::Value(io::pushf(cpu)?),
        H::Popf => io::popf(cpu, b, op).map(ok)?,
        H::Iret => {
            let was = cpu.rflags;
            iret(m, cpu, op)?;
            if was & rflags::IF == 0 && cpu.rflags & rflags::IF != 0 {
                request_interrupt_check(cpu);
            }
            // A completed IRET ends NMI blocking; an NMI that waited is taken next.
            fx.end_nmi_blocking = true;
            if m.run.nmi_blocked && m.platform.nmi_pending() {
                request_interrupt_check(cpu);
            }
            Flow::Jumped
        }
        H::Int => software_interrupt(m, cpu, args, next)?,
        // ---- port I/O
        H::In => {
            record_port(m, b as u16, op);
            Flow::Value(io::port_in(m, cpu, b as u16, op)?)
        }
        H::Out => {
            record_port(m, b as u16, op);
            port_flow(io::port_out(m, cpu, b as u16, op, c)?)
        }
        H::Ins | H::Outs => {
            record_port(m, cpu.gpr[reg::RDX] as u16, op.min(4));
            let s = StringIo {
                rep: args.extra & 1 != 0,
                elem: op.min(4),
                addr_size: args.addr_size,
                seg: usize::from(args.extra >> 4),
            };
            let r = if args.kind == H::Ins {
                io::ins(m, cpu, s)?
            } else {
                io::outs(m, cpu, s)?
            };
            port_flow(r)
        }
        // ---- virtualized unprivileged
        H::Cpuid => {
            let r = control::cpuid(m, cpu, cpu.gpr[reg::RAX] as u32, cpu.gpr[reg::RCX] as u32);
            for (i, r) in [reg::RAX, reg::RBX, reg::RCX, reg::RDX].into_iter().zip(r) {
                cpu.gpr[i] = u64::from(r);
            }
            Flow::Next
        }
        H::Rdtsc => {
            let t = control::rdtsc(m, cpu)?;
            set_edx_eax(cpu, t);
            Flow::Next
        }
        H::Rdtscp => {
            let (t, aux) = control::rdtscp(m, cpu)?;
            set_edx_eax(cpu, t);
            cpu.gpr[reg::RCX] = u64::from(aux);
            Flow::Next
        }
        H::Rdpmc => {
            let v = control::rdpmc(cpu, cpu.gpr[reg::RCX] as u32)?;
            set_edx_eax(cpu, v);
            Flow::Next
        }
        H::SetAc => control::set_ac(cpu, args.extra == 1).map(ok)?,
        // ---- model-specific registers
        H::Rdmsr => {
            let v = msr::rdmsr(m, cpu, cpu.gpr[reg::RCX] as u32)?;
            set_edx_eax(cpu, v);
            Flow::Next
        }
        H::Wrmsr => {
            let index = cpu.gpr[reg::RCX] as u32;
            msr::wrmsr(m, cpu, index, edx_eax(cpu)).map(ok)?
        }
        // ---- control and debug registers
        H::MovToCr => control::write_cr(m, cpu, args.extra, b).map(ok)?,
        H::MovFromCr => Flow::Value(control::read_cr(m, cpu, args.extra)?),
        H::MovToDr => control::write_dr(cpu, args.extra, b).map(ok)?,
        H::MovFromDr => Flow::Value(control::read_dr(cpu, args.extra)?),
        H::Smsw => Flow::Value(control::smsw(cpu, op)?),
        H::Lmsw => control::lmsw(m, cpu, b).map(ok)?,
        H::Clts => {
            control::clts(cpu);
            Flow::Next
        }
        H::Xsetbv => {
            let ecx = cpu.gpr[reg::RCX] as u32;
            control::xsetbv(cpu, ecx, edx_eax(cpu)).map(ok)?
        }
        // ---- caches and TLB
        H::Invd | H::Wbinvd => Flow::Next,
        H::Invlpg => {
            control::invlpg(m, cpu, b);
            Flow::Next
        }
        H::Invpcid => control::invpcid(m, cpu, c, b).map(ok)?,
        // ---- descriptor tables and system segments
        H::Lgdt => control::load_table(m, cpu, TableReg::Gdtr, b, op).map(ok)?,
        H::Lidt => control::load_table(m, cpu, TableReg::Idtr, b, op).map(ok)?,
        H::Sgdt => control::store_table(m, cpu, TableReg::Gdtr, b).map(ok)?,
        H::Sidt => control::store_table(m, cpu, TableReg::Idtr, b).map(ok)?,
        H::Lldt => segments::lldt(m, cpu, b as u16).map(ok)?,
        H::Ltr => segments::ltr(m, cpu, b as u16).map(ok)?,
        H::Sldt | H::Str => {
            if !protected(cpu) {
                return Err(Exception::InvalidOpcode);
            }
            control::umip_check(cpu)?;
            let s = if args.kind == H::Sldt {
                cpu.ldtr
            } else {
                cpu.tr
            };
            Flow::Value(u64::from(s.selector))
        }
        H::Lar | H::Lsl => {
            if !protected(cpu) {
                return Err(Exception::InvalidOpcode);
            }
            let sel = b as u16;
            let r = if args.kind == H::Lar {
                segments::lar(m, cpu, sel)
            } else {
                segments::lsl(m, cpu, sel)
            };
            if let Some(v) = r {
                set_gpr(cpu, usize::from(args.extra & 15), u64::from(v), op);
            }
            set_zf(cpu, r.is_some());
            Flow::Next
        }
        H::Verr | H::Verw => {
            if !protected(cpu) {
                return Err(Exception::InvalidOpcode);
            }
            let sel = b as u16;
            let ok = if args.kind == H::Verr {
                segments::verr(m, cpu, sel)
            } else {
                segments::verw(m, cpu, sel)
            };
            set_zf(cpu, ok);
            Flow::Next
        }
        // ---- segment registers and far transfers
        H::LoadSeg => {
            let sreg = usize::from(args.extra);
            segments::load_seg(m, cpu, sreg, b as u16)?;
            if sreg == translator::state::seg::SS {
                // MOV SS / POP SS shadow the next instruction (the `mov ss; mov esp` pair).
                fx.shadow = Some(next);
            }
            Flow::Next
        }
        H::ReadSeg => {
            let s = cpu
                .seg
                .get(usize::from(args.extra))
                .ok_or(Exception::InvalidOpcode)?;
            Flow::Value(u64::from(s.selector))
        }
        H::LoadFarPtr => {
            segments::load_seg(m, cpu, usize::from(args.extra), b as u16)?;
            set_gpr(cpu, usize::from(args.extra2 & 15), c, op);
            Flow::Next
        }
        H::JmpFar => far::jmp_far(m, cpu, b as u16, c, op).map(|_| Flow::Jumped)?,
        H::CallFar => far::call_far(m, cpu, b as u16, c, op, next).map(|_| Flow::Jumped)?,
        H::RetFar => far::ret_far(m, cpu, op, args.imm).map(|_| Flow::Jumped)?,
        // ---- fast system calls
        H::Syscall => syscall::syscall(cpu, next).map(|_| Flow::Jumped)?,
        H::Sysret => {
            syscall::sysret(cpu, op)?;
            // Unlike IRET, SYSRET looks at the TF it restores: the #DB comes at once, before
            // the first user instruction (QEMU; Linux's entry_64.S relies on it).
            // (A trap pending from an earlier SYSRET was taken before this instruction ran.)
            fx.step_trap = cpu.rflags & rflags::TF != 0;
            Flow::Jumped
        }
        H::Sysenter => syscall::sysenter(cpu).map(|_| Flow::Jumped)?,
        H::Sysexit => syscall::sysexit(cpu, op).map(|_| Flow::Jumped)?,
        H::Swapgs => syscall::swapgs(cpu).map(ok)?,
    };
    Ok((flow, fx))
}

/// INT n / INT3 / INTO / INT1 (`extra` = vector, `extra2` = 0 INT n, 1 INT3, 2 INTO,
/// 3 INT1), delivered with the next instruction as the return address. Faults of the
/// delivery itself (#GP for a gate DPL below the CPL, #NP, ...) are delivered in turn by
/// [`deliver`]; only a triple fault comes back.
fn software_interrupt(
    m: &mut Machine,
    cpu: &mut CpuState,
    args: &HypercallArgs,
    next: u64,
) -> Result<Flow, Exception> {
    let kind = match args.extra2 {
        1 => SoftKind::Int3,
        2 => SoftKind::Into,
        3 => SoftKind::Int1,
        _ => SoftKind::IntN,
    };
    if cpu.idtr.base == 0 && cpu.idtr.limit == 0 {
        // No IDT was ever loaded (the bare-metal ELF guests): report the event as the
        // run loop reports exceptions then (`RunOutcome::Exception`), at the instruction.
        return match kind {
            SoftKind::Int3 => Err(Exception::Breakpoint),
            SoftKind::Int1 => Err(Exception::Debug),
            SoftKind::Into if cpu.full_rflags() & translator::state::rflags::OF == 0 => {
                Ok(Flow::Next)
            }
            SoftKind::Into => Err(Exception::Overflow),
            SoftKind::IntN => Err(Exception::GeneralProtection(u16::from(args.extra) * 8 + 2)),
        };
    }
    let event = Event::Software {
        vector: args.extra,
        kind,
    };
    Ok(match deliver(m, cpu, event, next) {
        Ok(()) => Flow::Jumped,
        Err(DeliveryError::TripleFault { report }) => Flow::TripleFault(report),
    })
}

/// The flow of a completed port instruction.
fn port_flow(r: IoOutcome) -> Flow {
    match r {
        IoOutcome::Done => Flow::Next,
        IoOutcome::Resume => Flow::Resume,
        IoOutcome::Stop(req) => Flow::Stop(req),
    }
}

/// EDX:EAX as one 64-bit value.
fn edx_eax(cpu: &CpuState) -> u64 {
    (cpu.gpr[reg::RDX] << 32) | (cpu.gpr[reg::RAX] & 0xFFFF_FFFF)
}

/// EDX:EAX = `v` (each half zero-extended into its 64-bit register).
fn set_edx_eax(cpu: &mut CpuState, v: u64) {
    cpu.gpr[reg::RAX] = v & 0xFFFF_FFFF;
    cpu.gpr[reg::RDX] = v >> 32;
}

/// Write GPR `r` with an `size`-byte value: 1 and 2 bytes merge into the low bits, 4 bytes
/// zero-extend, 8 bytes replace.
fn set_gpr(cpu: &mut CpuState, r: usize, v: u64, size: u8) {
    let old = cpu.gpr[r];
    cpu.gpr[r] = match size {
        1 => (old & !0xFF) | (v & 0xFF),
        2 => (old & !0xFFFF) | (v & 0xFFFF),
        4 => v & 0xFFFF_FFFF,
        _ => v,
    };
}

/// RFLAGS.ZF = `set` (flags are settled).
fn set_zf(cpu: &mut CpuState, set: bool) {
    if set {
        cpu.rflags |= rflags::ZF;
    } else {
        cpu.rflags &= !rflags::ZF;
    }
}

// ------------------------------------------------------------------ wiring to Machine

/// The hypercall counters of `m` (counted by [`entry`] in
/// [`Machine::hypercalls`], indexed by kind number).
pub fn counters(m: &Machine) -> HypercallCounters {
    HypercallCounters(m.hypercalls)
}

/// Whether the table marks `kind` privileged (for the consistency test).
/// Runs a hypercall for generated code, the interpreter or the trap handler (see
/// [`translator::sensitive`] for the contract), and returns its value and its effects for the
/// run loop (the caller posts them: [`crate::run_state::RunState::post`]): HLT parks the
/// vCPU, a possibly unmasked interrupt ends the slice.
///
/// For an entry that ends the block with a [`Resume`] other than `Dispatcher`, the value is
/// where the block goes on ([`resume::token`]).
pub fn entry(m: &mut Machine, cpu: &mut CpuState, args: [u64; 3]) -> (u64, Effects) {
    let Some(a) = HypercallArgs::decode(args[0]) else {
        return unknown(cpu, args[0]);
    };
    m.hypercalls[a.kind as usize & 63] += 1;
    let resumable = a.kind.resume() != Resume::Dispatcher && ends_block(a.kind);
    let before = resumable.then(|| resume::Before::of(m, cpu, &a));
    let (r, mut fx) = run(m, cpu, &a, args[1], args[2]);
    if cpu.status == translator::ExitReason::Halt as u64 {
        cpu.status = 0;
        fx.halt = true;
        fx.check_interrupts = true;
    }
    fx.check_interrupts |= std::mem::take(&mut m.run.interrupt_check);
    let r = match before {
        Some(before) => resume::token(m, cpu, before, a.kind, a.len, args[1], &fx),
        None => r,
    };
    (r, fx)
}

#[cfg(test)]
fn table_privileged(kind: Hypercall) -> bool {
    use Hypercall as H;
    matches!(kind, H::MovFromCr | H::MovToDr | H::MovFromDr)
        || TABLE
            .iter()
            .any(|e| e.call == kind && e.class == translator::sensitive::Class::Privileged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::SerialSink;
    use crate::machine::Privilege;
    use translator::state::{cr, seg, Segment};

    fn setup() -> (Machine, CpuState) {
        let m = Machine::new(4 << 20, SerialSink::Capture).unwrap();
        let mut cpu = CpuState::default();
        msr::reset(&mut cpu);
        cpu.rip = 0x1000;
        (m, cpu)
    }

    /// 64-bit mode at `cpl`, SYSCALL enabled, without paging (the foundation's flat IA-32e
    /// state: guest-virtual = guest-physical).
    fn long64(cpu: &mut CpuState, cpl: u64) {
        cpu.cr0 = cr::CR0_PE | cr::CR0_ET;
        cpu.cr4 = cr::CR4_PAE;
        cpu.efer = cr::EFER_SCE | cr::EFER_LME | cr::EFER_LMA;
        let dpl = (cpl as u16) << 5;
        cpu.seg[seg::CS] = Segment::flat(0x10 | cpl as u16, 0xA09B | dpl);
        cpu.seg[seg::SS] = Segment::flat(0x18 | cpl as u16, 0xC093 | dpl);
        cpu.cpl = cpl;
    }

    fn args(kind: Hypercall, len: u8) -> HypercallArgs {
        HypercallArgs {
            kind,
            len,
            op_size: 4,
            addr_size: 8,
            extra: 0,
            extra2: 0,
            imm: 0,
        }
    }

    /// Runs the hypercall and posts its effects as the helper does (see `m.run.pending`).
    fn call(m: &mut Machine, cpu: &mut CpuState, a: HypercallArgs, b: u64, c: u64) -> u64 {
        let (r, fx) = hypercall(m, cpu, a.encode(), b, c);
        m.run.post(cpu, fx);
        r
    }

    #[test]
    fn privileged_table_and_cpl_checks_agree() {
        use Hypercall as H;
        let own = [
            H::MovToCr,
            H::MovFromCr,
            H::MovToDr,
            H::MovFromDr,
            H::Swapgs,
            H::Sysret,
            H::Xsetbv,
        ];
        for k in Hypercall::ALL {
            assert_eq!(
                needs_cpl0(k) || own.contains(&k),
                table_privileged(k),
                "{k:?}"
            );
        }
        // Every privileged kind raises #GP(0) at CPL 3 in 64-bit mode (XSETBV needs OSXSAVE
        // first, which the model cannot enable: its #UD comes first).
        for k in Hypercall::ALL
            .into_iter()
            .filter(|&k| table_privileged(k) && k != H::Xsetbv)
        {
            let (mut m, mut cpu) = setup();
            long64(&mut cpu, 3);
            let before = cpu.clone();
            call(&mut m, &mut cpu, args(k, 3), 0, 0);
            assert_eq!(cpu.exception(), Some(GP0), "{k:?}");
            assert_eq!(
                (cpu.rip, cpu.gpr, cpu.cr0, cpu.cpl),
                (before.rip, before.gpr, before.cr0, 3)
            );
            assert!(!m.run.pending.halt);
        }
    }

    /// SYSRET runs with the lazy-flag descriptor live (`keeps_lazy_flags`): it replaces
    /// RFLAGS from R11 and clears the descriptor; when it faults, the flags are untouched.
    #[test]
    fn sysret_replaces_live_lazy_flags_and_leaves_them_on_a_fault() {
        use translator::flags::{encode_op, FlagOp};
        use translator::ir::Ty;
        let live = |cpu: &mut CpuState| {
            // 1 + 0xFF as bytes: CF, AF, ZF, PF set.
            cpu.flags_op = encode_op(FlagOp::Add, Ty::I8);
            (cpu.flags_a, cpu.flags_b, cpu.flags_res) = (1, 0xFF, 0);
        };
        let (mut m, mut cpu) = setup();
        long64(&mut cpu, 0);
        live(&mut cpu);
        cpu.msr.star = 0x0023_0010_0000_0000;
        cpu.gpr[reg::RCX] = 0x4000;
        cpu.gpr[11] = rflags::FIXED | rflags::OF | rflags::IF;
        let mut a = args(Hypercall::Sysret, 3);
        a.op_size = 8;
        call(&mut m, &mut cpu, a, 0, 0);
        assert_eq!(cpu.status, 0);
        assert_eq!((cpu.rip, cpu.cpl, cpu.flags_op), (0x4000, 3, 0));
        assert_eq!(cpu.full_rflags(), rflags::FIXED | rflags::OF | rflags::IF);
        // At CPL 3: #GP(0), the live flags as they were.
        live(&mut cpu);
        let flags = cpu.full_rflags();
        call(&mut m, &mut cpu, a, 0, 0);
        assert_eq!(cpu.exception(), Some(GP0));
        assert_ne!(cpu.flags_op, 0);
        assert_eq!(cpu.full_rflags(), flags);
        assert_ne!(flags & rflags::CF, 0);
    }

    #[test]
    fn unknown_kind_stops_with_an_internal_error() {
        let (mut m, mut cpu) = setup();
        let (r, fx) = hypercall(&mut m, &mut cpu, 0xFF, 0, 0);
        assert_eq!(r, 0);
        assert_eq!(cpu.status, ExitReason::Stop as u64);
        assert!(matches!(fx.stop, Some(StopRequest::Internal(_))));
    }

    #[test]
    fn cpuid_rdmsr_wrmsr_use_implicit_registers() {
        let (mut m, mut cpu) = setup();
        cpu.gpr[reg::RAX] = 0xFFFF_FFFF_0000_0000;
        cpu.gpr[reg::RCX] = 0xFFFF_FFFF_0000_0000;
        call(&mut m, &mut cpu, args(Hypercall::Cpuid, 2), 0, 0);
        assert_eq!(cpu.gpr[reg::RAX], u64::from(crate::cpuid::MAX_BASIC_LEAF));
        assert_eq!(cpu.rip, 0x1002);
        cpu.gpr[reg::RCX] = msr::index::LSTAR.into();
        cpu.gpr[reg::RDX] = 0xFFFF_FFFF;
        cpu.gpr[reg::RAX] = 0x8000_1000;
        call(&mut m, &mut cpu, args(Hypercall::Wrmsr, 2), 0, 0);
        assert_eq!(cpu.msr.lstar, 0xFFFF_FFFF_8000_1000);
        cpu.gpr[reg::RAX] = u64::MAX;
        cpu.gpr[reg::RDX] = u64::MAX;
        call(&mut m, &mut cpu, args(Hypercall::Rdmsr, 2), 0, 0);
        assert_eq!(
            (cpu.gpr[reg::RDX], cpu.gpr[reg::RAX]),
            (0xFFFF_FFFF, 0x8000_1000)
        );
        // An unknown MSR: #GP with RIP on the instruction.
        let rip = cpu.rip;
        cpu.gpr[reg::RCX] = 0x1234_5678;
        call(&mut m, &mut cpu, args(Hypercall::Rdmsr, 2), 0, 0);
        assert_eq!((cpu.exception(), cpu.rip), (Some(GP0), rip));
        m.hypercalls[Hypercall::Rdmsr as usize] = 2;
        assert_eq!(counters(&m).get(Hypercall::Rdmsr), 2);
        assert_eq!(
            counters(&m).nonzero().collect::<Vec<_>>(),
            [(Hypercall::Rdmsr, 2)]
        );
    }

    #[test]
    fn hlt_sets_halted_and_moves_on() {
        let (mut m, mut cpu) = setup();
        call(&mut m, &mut cpu, args(Hypercall::Hlt, 1), 0, 0);
        assert!(m.run.pending.halt);
        assert_eq!((cpu.rip, cpu.status), (0x1001, 0));
    }

    #[test]
    fn debug_exit_stops_at_the_instruction() {
        let (mut m, mut cpu) = setup();
        call(&mut m, &mut cpu, args(Hypercall::Out, 1), 0xF4, 7);
        assert_eq!((cpu.status, cpu.rip), (ExitReason::Stop as u64, 0x1000));
        assert_eq!(m.run.pending.stop, Some(StopRequest::DebugExit(7)));
    }

    #[test]
    fn in_returns_the_value_and_cli_faults_at_cpl3() {
        let (mut m, mut cpu) = setup();
        let a = HypercallArgs {
            op_size: 1,
            ..args(Hypercall::In, 1)
        };
        assert_ne!(call(&mut m, &mut cpu, a, 0x3FD, 0) & 0x20, 0);
        long64(&mut cpu, 3);
        let rip = cpu.rip;
        call(&mut m, &mut cpu, args(Hypercall::Cli, 1), 0, 0);
        assert_eq!((cpu.exception(), cpu.rip), (Some(GP0), rip));
    }

    #[test]
    fn capped_rep_outs_resumes_through_the_dispatcher() {
        let (mut m, mut cpu) = setup();
        long64(&mut cpu, 0);
        cpu.gpr[reg::RDX] = 0x80;
        cpu.gpr[reg::RCX] = io::MAX_STRING_ITERATIONS + 5;
        let a = HypercallArgs {
            op_size: 1,
            extra: 1 | (seg::DS as u8) << 4,
            ..args(Hypercall::Outs, 2)
        };
        call(&mut m, &mut cpu, a, 0, 0);
        assert_eq!(cpu.rip, 0x1000, "the instruction runs again");
        assert_eq!(
            cpu.status, 0,
            "OUTS ends its block, so the dispatcher resumes it without a status"
        );
        assert_eq!(cpu.gpr[reg::RCX], 5);
        cpu.status = 0;
        call(&mut m, &mut cpu, a, 0, 0);
        assert_eq!((cpu.rip, cpu.status, cpu.gpr[reg::RCX]), (0x1002, 0, 0));
    }

    #[test]
    fn mov_cr_and_lar_marshalling() {
        let (mut m, mut cpu) = setup();
        let to_cr0 = HypercallArgs {
            extra: 0,
            ..args(Hypercall::MovToCr, 3)
        };
        call(&mut m, &mut cpu, to_cr0, cr::CR0_PG, 0);
        assert_eq!(cpu.exception(), Some(GP0), "PG without PE");
        assert_eq!(cpu.rip, 0x1000);
        cpu.status = 0;
        call(&mut m, &mut cpu, to_cr0, cr::CR0_PE, 0);
        assert_eq!((cpu.status, cpu.rip), (0, 0x1003));
        let from_cr0 = HypercallArgs {
            extra: 0,
            ..args(Hypercall::MovFromCr, 3)
        };
        assert_eq!(
            call(&mut m, &mut cpu, from_cr0, 0, 0),
            cr::CR0_PE | cr::CR0_ET
        );
        // LAR of a null selector: ZF clear, destination untouched.
        cpu.rflags |= rflags::ZF;
        cpu.gpr[reg::RBX] = 0xAA;
        let lar = HypercallArgs {
            extra: reg::RBX as u8,
            ..args(Hypercall::Lar, 3)
        };
        call(&mut m, &mut cpu, lar, 0, 0);
        assert_eq!((cpu.rflags & rflags::ZF, cpu.gpr[reg::RBX]), (0, 0xAA));
        // Real mode: LAR is #UD.
        cpu.cr0 = 0;
        call(&mut m, &mut cpu, lar, 0, 0);
        assert_eq!(cpu.exception(), Some(Exception::InvalidOpcode));
    }

    #[test]
    fn syscall_jumps_to_lstar() {
        let (mut m, mut cpu) = setup();
        long64(&mut cpu, 3);
        cpu.msr.star = 0x0023_0010_0000_0000;
        cpu.msr.lstar = 0xFFFF_8000_0000_2000;
        call(&mut m, &mut cpu, args(Hypercall::Syscall, 2), 0, 0);
        assert_eq!(
            (cpu.rip, cpu.gpr[reg::RCX], cpu.cpl),
            (0xFFFF_8000_0000_2000, 0x1002, 0)
        );
        assert_eq!(cpu.status, 0, "SYSCALL ends the block by itself");
    }

    #[test]
    fn int_in_real_mode_goes_through_the_ivt() {
        let (mut m, mut cpu) = setup();
        let sup = Privilege::Supervisor;
        m.write_lin(&mut cpu, 0x21 * 4, 4, 0x0000_5000, sup)
            .unwrap();
        cpu.idtr.limit = 0x3FF;
        cpu.seg[seg::SS] = Segment {
            selector: 0,
            attr: 0x93,
            limit: 0xFFFF,
            base: 0,
        };
        cpu.seg[seg::CS] = Segment {
            selector: 0,
            attr: 0x9B,
            limit: 0xFFFF,
            base: 0,
        };
        cpu.gpr[reg::RSP] = 0x7000;
        let int = HypercallArgs {
            extra: 0x21,
            op_size: 2,
            addr_size: 2,
            ..args(Hypercall::Int, 2)
        };
        call(&mut m, &mut cpu, int, 0, 0);
        assert_eq!((cpu.status, cpu.rip), (0, 0x5000));
        assert_eq!(cpu.gpr[reg::RSP], 0x7000 - 6);
        assert_eq!(
            m.read_lin(&mut cpu, 0x7000 - 6, 2, crate::memory::Access::Read, sup),
            Ok(0x1002)
        );
    }

    #[test]
    fn mov_ss_shadows_the_next_instruction() {
        let (mut m, mut cpu) = setup();
        long64(&mut cpu, 0);
        // A null SS is legal at CPL 0 in 64-bit mode.
        let mov_ss = HypercallArgs {
            extra: seg::SS as u8,
            ..args(Hypercall::LoadSeg, 2)
        };
        call(&mut m, &mut cpu, mov_ss, 0, 0);
        assert_eq!((cpu.status, cpu.rip), (0, 0x1002));
        assert_eq!(m.run.pending.shadow, Some(0x1002));
        let mov_ds = HypercallArgs {
            extra: seg::DS as u8,
            ..args(Hypercall::LoadSeg, 2)
        };
        m.run.pending = Default::default();
        call(&mut m, &mut cpu, mov_ds, 0, 0);
        assert_eq!(m.run.pending.shadow, None, "only SS loads shadow");
    }

    #[test]
    fn int_through_a_too_small_idt_triple_faults() {
        let (mut m, mut cpu) = setup();
        long64(&mut cpu, 0);
        cpu.idtr = translator::state::DescTable {
            base: 0x2000,
            limit: 0xF,
        };
        let int = HypercallArgs {
            extra: 0x80,
            ..args(Hypercall::Int, 2)
        };
        call(&mut m, &mut cpu, int, 0, 0);
        assert_eq!((cpu.status, cpu.rip), (ExitReason::Stop as u64, 0x1000));
        let Some(StopRequest::TripleFault(report)) = &m.run.pending.stop else {
            panic!("{:?}", m.run.pending.stop);
        };
        assert!(report.contains("#DF"), "{report}");
    }

    #[test]
    fn int_before_any_idt_is_reported_as_an_exception() {
        let (mut m, mut cpu) = setup();
        long64(&mut cpu, 0);
        cpu.idtr = Default::default();
        let int3 = HypercallArgs {
            extra: 3,
            extra2: 1,
            ..args(Hypercall::Int, 1)
        };
        call(&mut m, &mut cpu, int3, 0, 0);
        assert_eq!(cpu.rip, 0x1000);
        assert_eq!(cpu.exception(), Some(Exception::Breakpoint));
    }
}
