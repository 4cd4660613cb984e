//! Debug exceptions, exactly (SDM vol. 3 ch. 18): while RFLAGS.TF or RF is set, or DR7
//! enables a breakpoint, the run loop executes the guest one instruction at a time here
//! instead of running blocks, and raises #DB around each instruction as hardware does.
//!
//! Invariants:
//! - [`active`] is what the run loop checks before every block; everything that can make it
//!   true mid-block (POPF, IRET, SYSRET, MOV DR) ends its block, so no block runs past it.
//! - Instruction breakpoints are fault-class: checked before the instruction, with RIP at
//!   it, suppressed while RF = 1. Single-step and data/I/O breakpoints are trap-class:
//!   reported after the instruction completed, together, in one #DB.
//! - TF is taken from before the instruction (the one that sets TF does not trap, the one
//!   that clears it does), except around SYSCALL and SYSRET, which look at TF after
//!   themselves (SYSCALL's FMASK keeps the kernel entry from trapping; SYSRET restoring TF
//!   traps at once in user mode: QEMU, and Linux's `entry_64.S` relies on it). A software
//!   interrupt (INT n, INT3, INT1) enters its handler with TF clear and reports no step.
//! - MOV SS and POP SS (the first of a run of them) shape #DB for one instruction (SDM
//!   vol. 3 6.8.3): the next one runs first; their data breakpoints are held until after
//!   it, their single-step trap is suppressed (the next instruction traps on its own
//!   account), and an instruction breakpoint on it is suppressed as if RF were 1. Their
//!   interrupt shadow is `RunState::interrupt_shadow`.
//! - RF is cleared once an instruction completes, except by IRET, which loads it; or before
//!   the instruction, when nothing can see the difference ([`drop_moot_rf`]), and the
//!   instruction then runs in a block.
//! - Data breakpoints see the CPU's own accesses as well as the instruction's: stack pops
//!   and pushes of IRET, far transfers and event delivery (`system::segments::Stack`), and
//!   INS/OUTS's memory side. A breakpoint hit by an event's frame push (a fault, INT n, an
//!   interrupt or NMI) is reported once the delivery completes: the #DB's RIP is the
//!   handler's first instruction.
//! - HLT under TF traps like any instruction: the #DB, a debug exception, ends the HLT
//!   state (SDM vol. 2 "HLT"), so the vCPU does not halt. (QEMU 7.2 halts and loses it.)
//! - One iteration of a REP string instruction counts as the instruction: #DB comes after
//!   each, with RIP at the instruction until the last (SDM 18.3.1.4; QEMU).

use iced_x86::{Instruction, Mnemonic, Register};
use translator::state::{rflags, seg};
use translator::{CpuState, Exception};

use super::{interp, vcpu, RunOutcome};
use crate::machine::Machine;
use crate::system::debug::{access_hits, any_enabled, execute_hits, report, DR6_BS};
use crate::system::delivery::{deliver, Event};
use crate::system::descriptors::in_64bit;

/// Whether the next instruction must be executed here, not in a block.
pub fn active(cpu: &CpuState) -> bool {
    cpu.rflags & (rflags::TF | rflags::RF) != 0 || any_enabled(cpu)
}

/// Clears RF before the instruction at RIP instead of after it when nothing can tell the
/// difference, so that the instruction runs in a block instead of being stepped here (the
/// IRET back to a faulting instruction sets RF every time). Without TF and with no
/// breakpoint enabled, RF is only ever seen in an RFLAGS image that an instruction or an
/// event saves: a fault's frame has RF set either way, PUSHF never saves it, and everything
/// else that saves or loads RFLAGS (INT n, SYSCALL, IRET, POPF, MOV SS's shadow, ...) is a
/// sensitive instruction, which keeps RF to be stepped here.
pub fn drop_moot_rf(m: &Machine, cpu: &mut CpuState) {
    if cpu.rflags & (rflags::TF | rflags::RF) != rflags::RF
        || any_enabled(cpu)
        || m.run.step_trap_pending
    {
        return;
    }
    let bytes = m.insn_bytes_for(cpu, cpu.rip);
    let mode = crate::system::mode::mode(cpu);
    let mut decoder = iced_x86::Decoder::with_ip(
        mode.bitness,
        &bytes,
        cpu.rip,
        iced_x86::DecoderOptions::NONE,
    );
    let insn = decoder.decode();
    if !insn.is_invalid() && translator::sensitive::lookup(&insn).is_none() {
        cpu.rflags &= !rflags::RF;
    }
}

/// The linear address of the instruction at RIP (what DR0-DR3 hold for an instruction
/// breakpoint).
fn linear_rip(cpu: &CpuState) -> u64 {
    if in_64bit(cpu) {
        cpu.rip
    } else {
        cpu.seg[seg::CS].base.wrapping_add(cpu.rip) & 0xFFFF_FFFF
    }
}

/// MOV SS or POP SS: #DB and interrupts wait for the next instruction.
fn loads_ss(insn: &Instruction) -> bool {
    matches!(insn.mnemonic(), Mnemonic::Mov | Mnemonic::Pop)
        && insn.op0_kind() == iced_x86::OpKind::Register
        && insn.op0_register() == Register::SS
}

/// Whether a completed instruction that started with RFLAGS `before` earned a single-step
/// trap (see the module invariants).
fn steps(insn: &Instruction, before: u64, after: &CpuState) -> bool {
    match insn.mnemonic() {
        // SYSRET's trap is `RunState::step_trap_pending`, as when it runs in a block.
        Mnemonic::Sysret | Mnemonic::Sysretq => false,
        Mnemonic::Syscall => after.rflags & rflags::TF != 0,
        Mnemonic::Int | Mnemonic::Int3 | Mnemonic::Int1 => false,
        // INTO delivers #OF (no step) only when OF was set; otherwise it is a NOP.
        Mnemonic::Into if before & rflags::OF != 0 => false,
        _ => before & rflags::TF != 0,
    }
}

/// Delivers the single-step #DB that SYSRET left due (`RunState::step_trap_pending`), if any:
/// before anything else, an external interrupt included (#DB traps have the higher priority).
pub fn pending_step_trap(m: &mut Machine, cpu: &mut CpuState) -> Result<(), RunOutcome> {
    if std::mem::take(&mut m.run.step_trap_pending) {
        report(cpu, 0, DR6_BS);
        vcpu::raise(m, cpu, Exception::Debug)?;
    }
    Ok(())
}

/// Raises the #DB that data breakpoints hit by an event delivery's frame pushes (or IRET's
/// pops) earned, now that the delivery is complete: RIP is the handler's first instruction
/// (SDM vol. 3 18.3.1.2: data breakpoints are traps, reported after the access completes;
/// an event delivery's accesses complete with the delivery). This #DB's own frame is not
/// watched: hardware would take a #DB for it again and again (Linux refuses breakpoints
/// on its entry stacks for that reason); popek reports the first and goes on.
fn frame_breakpoints(
    m: &mut Machine,
    cpu: &mut CpuState,
    accesses: &[crate::system::debug::Access],
) -> Result<(), RunOutcome> {
    let b = access_hits(cpu, accesses).all;
    if b != 0 {
        report(cpu, b, 0);
        vcpu::raise(m, cpu, Exception::Debug)?;
    }
    Ok(())
}

/// Delivers an external interrupt or NMI (from the run loop, between instructions),
/// watching its frame pushes for the data breakpoints while DR7 enables any.
pub fn deliver_watched(
    m: &mut Machine,
    cpu: &mut CpuState,
    ev: Event,
    rip: u64,
) -> Result<(), RunOutcome> {
    let watching = any_enabled(cpu);
    if watching {
        m.debug_accesses.start();
    }
    let delivered = deliver(m, cpu, ev, rip);
    let accesses = m.debug_accesses.finish();
    delivered.map_err(vcpu::triple_fault)?;
    if watching {
        frame_breakpoints(m, cpu, &accesses)?;
    }
    Ok(())
}

/// Executes the instruction at RIP (two after MOV SS / POP SS) with the step interpreter,
/// delivering the #DB hardware would raise before or after it. `Err` stops the run.
pub fn step(m: &mut Machine, cpu: &mut CpuState) -> Result<(), RunOutcome> {
    // DR6 bits earned by an instruction whose #DB is held (MOV SS): B0-B3, and BS.
    let (mut held_b, mut held_bs) = (0, 0);
    let mut after_ss = false;
    if m.run.step_trap_pending {
        return pending_step_trap(m, cpu);
    }
    loop {
        // After MOV SS / POP SS an instruction breakpoint on the next instruction is
        // suppressed, as if RF were 1 (SDM vol. 3 6.8.3).
        if cpu.rflags & rflags::RF == 0 && !after_ss && any_enabled(cpu) {
            let h = execute_hits(cpu, linear_rip(cpu));
            if h.enabled {
                report(cpu, h.all | held_b, held_bs);
                return vcpu::raise(m, cpu, Exception::Debug);
            }
        }
        let before = cpu.full_rflags();
        let exceptions = m.exceptions;
        let watching = any_enabled(cpu);
        if watching {
            m.debug_accesses.start();
        }
        // A budget of one: a REP string instruction stops after one iteration (restartable,
        // RIP still at it), and the step trap or data breakpoint comes after each iteration
        // as on hardware.
        let limit = cpu.icount_limit;
        let one = cpu.icount.saturating_add(1).min(limit);
        cpu.icount_limit = one;
        let stepped = interp::step_decoded(m, cpu);
        if cpu.icount_limit >= one {
            // Unless a handler lowered it to ask for an interrupt check (STI, POPF, ...).
            cpu.icount_limit = limit;
        }
        let accesses = m.debug_accesses.finish();
        let Some(insn) = stepped? else {
            return Ok(());
        };
        if m.exceptions != exceptions {
            // It faulted: the fault was delivered (RF in its frame), and the log holds only
            // its frame pushes (`vcpu::raise` restarted it): a data breakpoint they hit is
            // a #DB at the handler's first instruction.
            return if watching {
                frame_breakpoints(m, cpu, &accesses)
            } else {
                Ok(())
            };
        }
        if before & rflags::RF != 0
            && !matches!(
                insn.mnemonic(),
                Mnemonic::Iret | Mnemonic::Iretd | Mnemonic::Iretq
            )
        {
            cpu.rflags &= !rflags::RF;
        }
        if watching {
            held_b |= access_hits(cpu, &accesses).all;
        }
        let shadows = loads_ss(&insn) && !after_ss && !m.run.halted;
        // MOV SS's own single-step trap is suppressed, not held (SDM vol. 3 6.8.3): the
        // next instruction reports BS only if it earns a step itself (INT n does not).
        if (steps(&insn, before, cpu) && !shadows) || std::mem::take(&mut m.run.step_trap_pending) {
            held_bs = DR6_BS;
        }
        if shadows {
            after_ss = true;
            continue;
        }
        break;
    }
    if held_b | held_bs != 0 {
        // A debug exception ends the HLT state (SDM vol. 2 HLT): HLT under TF takes its
        // #DB at once, RIP after it, and the handler's IRET resumes there, not halted.
        m.run.halted = false;
        report(cpu, held_b, held_bs);
        vcpu::raise(m, cpu, Exception::Debug)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::debug::DR6_BS;
    use crate::system::delivery::tests::{setup64, HANDLER};
    use translator::state::{cr, reg, Segment};

    const USER: u64 = 0x2_0000;
    const KERNEL: u64 = 0x2_1000;

    /// A 64-bit machine with SYSCALL enabled: kernel 0x08/0x10, SYSRET to 0x2B/0x23,
    /// LSTAR = `KERNEL`, FMASK = TF | IF (as Linux and the test kernels set it).
    fn setup() -> (Machine, CpuState) {
        let (m, mut cpu) = setup64();
        cpu.efer |= cr::EFER_SCE;
        cpu.msr.star = (0x18 << 48) | (0x08 << 32);
        cpu.msr.lstar = KERNEL;
        cpu.msr.sfmask = rflags::TF | rflags::IF;
        (m, cpu)
    }

    fn user_mode(cpu: &mut CpuState) {
        cpu.cpl = 3;
        cpu.seg[seg::CS] = Segment::flat(0x2B, 0xA0FB);
        cpu.seg[seg::SS] = Segment::flat(0x23, 0xC0F3);
    }

    /// RF is dropped before an ordinary instruction (it then runs in a block), kept for a
    /// sensitive one (INT n pushes it) and whenever TF or a breakpoint makes it matter.
    #[test]
    fn rf_is_dropped_early_only_where_nothing_sees_it() {
        let (mut m, mut cpu) = setup();
        m.write_virt(KERNEL, 2, 0xF1F7).unwrap(); // div ecx
        m.write_virt(KERNEL + 0x10, 2, 0x80CD).unwrap(); // int 0x80
        let cases: [(u64, u64, u64, bool); 4] = [
            (KERNEL, 0, 0, true),
            (KERNEL + 0x10, 0, 0, false),
            (KERNEL, rflags::TF, 0, false),
            (KERNEL, 0, 1, false), // DR7.L0
        ];
        for (i, &(rip, tf, dr7, dropped)) in cases.iter().enumerate() {
            cpu.rip = rip;
            cpu.rflags = rflags::FIXED | rflags::RF | tf;
            cpu.dr[7] = dr7;
            drop_moot_rf(&m, &mut cpu);
            assert_eq!(cpu.rflags & rflags::RF == 0, dropped, "case {i}");
            assert_eq!(cpu.rflags & rflags::TF, tf, "case {i}");
        }
    }

    /// Regression (issue 12): single-stepping SYSCALL delivered a #DB at the kernel entry
    /// (CS 0x08) although FMASK had cleared TF; hardware delivers none there.
    #[test]
    fn syscall_under_tf_enters_the_kernel_without_a_db() {
        let (mut m, mut cpu) = setup();
        user_mode(&mut cpu);
        m.write_virt(USER, 2, 0x050F).unwrap(); // syscall
        m.write_virt(KERNEL, 1, 0x90).unwrap(); // nop
        cpu.rip = USER;
        cpu.rflags |= rflags::TF;
        assert!(active(&cpu));
        step(&mut m, &mut cpu).unwrap();
        assert_eq!(
            (cpu.rip, cpu.cpl),
            (KERNEL, 0),
            "at the entry, no #DB handler"
        );
        assert_eq!(m.exceptions, 0);
        assert_eq!(cpu.dr[6] & DR6_BS, 0);
        assert_eq!(cpu.rflags & rflags::TF, 0, "FMASK cleared TF");
        assert_ne!(cpu.gpr[11] & rflags::TF, 0, "R11 keeps the user's TF");
        assert!(!active(&cpu), "the kernel runs in blocks again");
    }

    /// Without TF in FMASK the kernel entry is single-stepped like any instruction: the #DB
    /// comes after SYSCALL, at the entry point.
    #[test]
    fn syscall_keeping_tf_traps_at_the_kernel_entry() {
        let (mut m, mut cpu) = setup();
        cpu.msr.sfmask = rflags::IF;
        user_mode(&mut cpu);
        m.write_virt(USER, 2, 0x050F).unwrap();
        cpu.rip = USER;
        cpu.rflags |= rflags::TF;
        step(&mut m, &mut cpu).unwrap();
        assert_eq!(cpu.rip, HANDLER + 1, "#DB delivered");
        assert_eq!(
            m.read_virt(cpu.gpr[reg::RSP], 8, crate::memory::Access::Read),
            Ok(KERNEL)
        );
        assert_ne!(cpu.dr[6] & DR6_BS, 0);
    }

    /// SYSRET restoring TF traps at once: the #DB's RIP is the user instruction SYSRET
    /// returns to, not yet executed (QEMU; Linux avoids SYSRET with TF for this reason).
    #[test]
    fn sysret_restoring_tf_traps_before_the_first_user_instruction() {
        let (mut m, mut cpu) = setup();
        m.write_virt(KERNEL, 3, 0x07_0F48).unwrap(); // sysretq
        m.write_virt(USER, 1, 0x90).unwrap();
        cpu.rip = KERNEL;
        cpu.gpr[reg::RCX] = USER;
        cpu.gpr[11] = rflags::FIXED | rflags::TF;
        // A kernel single-stepped only because of a breakpoint elsewhere.
        cpu.dr[0] = 0xDEAD_0000;
        cpu.dr[7] = 0x401;
        step(&mut m, &mut cpu).unwrap();
        assert_eq!(cpu.rip, HANDLER + 1, "#DB delivered");
        let sp = cpu.gpr[reg::RSP];
        let rd = |m: &mut Machine, at| m.read_virt(at, 8, crate::memory::Access::Read).unwrap();
        assert_eq!((rd(&mut m, sp), rd(&mut m, sp + 8)), (USER, 0x2B));
        assert_ne!(rd(&mut m, sp + 16) & rflags::TF, 0);
        assert_ne!(cpu.dr[6] & DR6_BS, 0);
        assert!(!m.run.step_trap_pending);
    }

    /// An instruction breakpoint is a fault before the instruction; RF = 1 lets it run once,
    /// and is cleared after it.
    #[test]
    fn rf_suppresses_one_instruction_breakpoint() {
        let (mut m, mut cpu) = setup();
        m.write_virt(USER, 2, 0x9090).unwrap();
        cpu.rip = USER;
        cpu.dr[0] = USER;
        cpu.dr[7] = 0x401;
        cpu.rflags |= rflags::RF;
        step(&mut m, &mut cpu).unwrap();
        assert_eq!((cpu.rip, m.exceptions), (USER + 1, 0), "ran once");
        assert_eq!(cpu.rflags & rflags::RF, 0, "cleared after it");
        cpu.rip = USER;
        step(&mut m, &mut cpu).unwrap();
        assert_eq!(cpu.rip, HANDLER + 1, "breaks now");
        assert_eq!(cpu.dr[6] & 0xF, 1);
    }

    /// SDM 18.3.1.1: RF is set in the image pushed for faults, except #DB (an instruction
    /// breakpoint must not set it); traps, aborts and interrupts push it as it is.
    #[test]
    fn rf_is_pushed_for_faults_only() {
        use crate::system::delivery::{deliver, Event};
        for (ev, rf) in [
            (Event::Exception(Exception::InvalidOpcode), rflags::RF),
            (
                Event::Exception(Exception::PageFault { addr: 0, code: 0 }),
                rflags::RF,
            ),
            (Event::Exception(Exception::DivideError), rflags::RF),
            (Event::Exception(Exception::Debug), 0),
            (Event::Exception(Exception::Breakpoint), 0),
            (Event::External(0x20), 0),
        ] {
            let (mut m, mut cpu) = setup64();
            let flags = cpu.full_rflags();
            assert!(deliver(&mut m, &mut cpu, ev, 0x1234).is_ok());
            let at = cpu.gpr[reg::RSP] + 16 + 8 * u64::from(ev.error_code().is_some());
            let pushed = m.read_virt(at, 8, crate::memory::Access::Read).unwrap();
            assert_eq!(pushed, flags | rf, "{ev}");
            assert_eq!(
                cpu.rflags & rflags::RF,
                0,
                "{ev}: the handler runs with RF clear"
            );
        }
    }

    /// INT1 (ICEBP) is a trap-class #DB delivered like a hardware exception: through a
    /// DPL 0 gate from CPL 3, RIP after it, DR6 untouched. (QEMU 7.2 raises #UD: the debug
    /// kernel's `~icebp` lines.) Under TF it reports no single step either.
    #[test]
    fn icebp_at_cpl3_is_a_db_trap_without_a_dpl_check() {
        let (mut m, mut cpu) = setup();
        user_mode(&mut cpu);
        m.write_virt(USER, 1, 0xF1).unwrap();
        cpu.rip = USER;
        cpu.rflags |= rflags::TF;
        let dr6 = cpu.dr[6];
        step(&mut m, &mut cpu).unwrap();
        assert_eq!(cpu.rip, HANDLER + 1);
        let sp = cpu.gpr[reg::RSP];
        let rd = |m: &mut Machine, at| m.read_virt(at, 8, crate::memory::Access::Read).unwrap();
        assert_eq!((rd(&mut m, sp), rd(&mut m, sp + 8)), (USER + 1, 0x2B));
        assert_eq!(cpu.dr[6], dr6);
    }

    /// DR7.GD: a MOV DR is a fault-class #DB with DR6.BD, and GD is cleared so the handler
    /// can use the registers. (QEMU 7.2 has no general detect: `~dr7.gd`.)
    #[test]
    fn general_detect_faults_the_mov_dr() {
        let (mut m, mut cpu) = setup();
        m.write_virt(KERNEL, 3, 0xC0_210F).unwrap(); // mov rax, dr0
        cpu.rip = KERNEL;
        cpu.dr[7] = 0x2400;
        assert!(!active(&cpu), "GD alone single-steps nothing");
        step(&mut m, &mut cpu).unwrap();
        assert_eq!(cpu.rip, HANDLER + 1);
        let saved = m.read_virt(cpu.gpr[reg::RSP], 8, crate::memory::Access::Read);
        assert_eq!(saved, Ok(KERNEL), "fault: RIP at the MOV");
        assert_eq!((cpu.dr[6] & 0x2000, cpu.dr[7]), (0x2000, 0x400));
    }

    /// The #DB SYSRET left due is delivered before the run loop services anything else (an
    /// interrupt at a slice end would otherwise enter its handler first and leave the trap
    /// stale for later).
    #[test]
    fn a_pending_sysret_trap_comes_before_servicing() {
        let (mut m, mut cpu) = setup();
        user_mode(&mut cpu);
        cpu.rip = USER;
        cpu.rflags |= rflags::TF;
        m.run.step_trap_pending = true;
        assert_eq!(vcpu::service(&mut m, &mut cpu), Ok(()));
        assert_eq!(cpu.rip, HANDLER + 1);
        assert!(!m.run.step_trap_pending);
        assert_ne!(cpu.dr[6] & DR6_BS, 0);
    }

    /// A write breakpoint on the RFLAGS slot of a 64-bit frame at RSP 0x8008 (aligned to
    /// 0x8000: SS 0x7FF8, RSP 0x7FF0, RFLAGS 0x7FE8), DR0 LEN 8.
    fn frame_watch(cpu: &mut CpuState) {
        cpu.dr[0] = 0x7FE8;
        cpu.dr[7] = 0x400 | 1 | (0b10_01 << 16);
    }

    /// The #DB that a frame push earns comes after the delivery: at the handler's first
    /// instruction, with B0 and without BS. For INT n (a trap) and a fault (#UD) alike.
    #[test]
    fn a_frame_push_hitting_a_write_breakpoint_traps_at_the_handler() {
        for (code, len, vector) in [(0x41CD_u64, 2, 0x41_u64), (0x0B0F, 2, 6)] {
            let (mut m, mut cpu) = setup();
            m.write_virt(KERNEL, len, code).unwrap();
            cpu.rip = KERNEL;
            frame_watch(&mut cpu);
            step(&mut m, &mut cpu).unwrap();
            assert_eq!(cpu.rip, HANDLER + 1, "vector {vector:#x}: #DB delivered");
            let saved = m.read_virt(cpu.gpr[reg::RSP], 8, crate::memory::Access::Read);
            assert_eq!(
                saved,
                Ok(HANDLER + vector),
                "at the first handler instruction"
            );
            assert_eq!(cpu.dr[6] & (0xF | DR6_BS), 1, "vector {vector:#x}");
        }
    }

    /// An external interrupt's frame is watched as well; a frame elsewhere hits nothing.
    #[test]
    fn an_interrupt_frame_is_watched_between_instructions() {
        let (mut m, mut cpu) = setup();
        cpu.rip = KERNEL;
        frame_watch(&mut cpu);
        deliver_watched(&mut m, &mut cpu, Event::External(0x30), KERNEL).unwrap();
        assert_eq!(cpu.rip, HANDLER + 1);
        assert_eq!(cpu.dr[6] & 0xF, 1);
        let (mut m, mut cpu) = setup();
        cpu.rip = KERNEL;
        frame_watch(&mut cpu);
        cpu.gpr[reg::RSP] = 0x6008;
        deliver_watched(&mut m, &mut cpu, Event::External(0x30), KERNEL).unwrap();
        assert_eq!((cpu.rip, cpu.dr[6] & 0xF), (HANDLER + 0x30, 0));
    }

    /// IRET's stack reads are data reads: a read/write breakpoint on the popped RIP traps
    /// after the IRET, at the instruction it returned to.
    #[test]
    fn iret_pops_hit_read_write_breakpoints() {
        let (mut m, mut cpu) = setup();
        m.write_virt(KERNEL, 2, 0xCF48).unwrap(); // iretq
        let sp = 0x7000;
        for (i, v) in [USER, 0x08, rflags::FIXED, 0x7800, 0x10].iter().enumerate() {
            m.write_virt(sp + 8 * i as u64, 8, *v).unwrap();
        }
        cpu.gpr[reg::RSP] = sp;
        cpu.rip = KERNEL;
        cpu.dr[1] = sp;
        cpu.dr[7] = 0x400 | 4 | (0b10_11 << 20);
        step(&mut m, &mut cpu).unwrap();
        assert_eq!(cpu.rip, HANDLER + 1);
        let saved = m.read_virt(cpu.gpr[reg::RSP], 8, crate::memory::Access::Read);
        assert_eq!(saved, Ok(USER));
        assert_eq!(cpu.dr[6] & 0xF, 2);
    }

    /// SDM vol. 3 6.8.3: after MOV SS an instruction breakpoint on the next instruction is
    /// suppressed (as if RF were 1); one on the instruction after that fires. Under TF, MOV
    /// SS's own step trap is suppressed: `mov ss; int 0x41` takes no #DB, `mov ss; nop`
    /// one #DB after the NOP.
    #[test]
    fn mov_ss_suppresses_the_next_instruction_breakpoint_and_its_own_step() {
        // mov ss, eax (8E D0); nop; nop
        let code = 0x9090_D08E_u64;
        let (mut m, mut cpu) = setup();
        m.write_virt(KERNEL, 4, code).unwrap();
        cpu.gpr[reg::RAX] = 0x10;
        cpu.rip = KERNEL;
        cpu.dr[0] = KERNEL + 2;
        cpu.dr[7] = 0x401;
        step(&mut m, &mut cpu).unwrap();
        assert_eq!(
            (cpu.rip, m.exceptions),
            (KERNEL + 3, 0),
            "no #DB at the NOP"
        );
        cpu.dr[0] = KERNEL + 3;
        cpu.rip = KERNEL;
        step(&mut m, &mut cpu).unwrap();
        assert_eq!((cpu.rip, m.exceptions), (KERNEL + 3, 0));
        step(&mut m, &mut cpu).unwrap();
        assert_eq!(cpu.rip, HANDLER + 1, "the second NOP's breakpoint fires");
        assert_eq!(cpu.dr[6] & (0xF | DR6_BS), 1);

        for (next, db) in [(0x41CD_u64, false), (0x9090, true)] {
            let (mut m, mut cpu) = setup();
            m.write_virt(KERNEL, 2, 0xD08E).unwrap();
            m.write_virt(KERNEL + 2, 2, next).unwrap();
            cpu.gpr[reg::RAX] = 0x10;
            cpu.rip = KERNEL;
            cpu.rflags |= rflags::TF;
            step(&mut m, &mut cpu).unwrap();
            assert_eq!(cpu.dr[6] & DR6_BS != 0, db, "next {next:#x}");
            let expected = if db { HANDLER + 1 } else { HANDLER + 0x41 };
            assert_eq!(cpu.rip, expected, "next {next:#x}");
        }
    }

    /// HLT under TF: the single-step #DB comes at once, RIP after the HLT, and ends the HLT
    /// state (a debug exception resumes execution, SDM vol. 2 "HLT"): the vCPU is not left
    /// halted behind the handler, even with IF = 0.
    #[test]
    fn hlt_under_tf_traps_at_once_and_does_not_halt() {
        for interrupts in [rflags::IF, 0] {
            let (mut m, mut cpu) = setup();
            m.write_virt(KERNEL, 2, 0x90F4).unwrap(); // hlt; nop
            cpu.rip = KERNEL;
            cpu.rflags = (cpu.rflags & !rflags::IF) | interrupts | rflags::TF;
            step(&mut m, &mut cpu).unwrap();
            assert_eq!(cpu.rip, HANDLER + 1, "#DB delivered");
            let saved = m.read_virt(cpu.gpr[reg::RSP], 8, crate::memory::Access::Read);
            assert_eq!(saved, Ok(KERNEL + 1), "trap: RIP after the HLT");
            assert_ne!(cpu.dr[6] & DR6_BS, 0);
            assert!(
                !m.run.halted,
                "IF={interrupts:#x}: the #DB ended the HLT state"
            );
        }
    }
}
