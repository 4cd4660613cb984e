//! Runs of x87 instructions fused into one host stub call.
//!
//! x87 code comes in runs (`fld st(1); fadd st, st(3); fsub st(2), st; fxch st(3)...`), and
//! each instruction through [`super::host`] costs a call with its checks and pointer stores.
//! A run of consecutive [`hostexec::fusable`] instructions (x87 stack registers only: no
//! memory, general register, XMM register or RFLAGS), the first of which may also read a
//! memory operand ([`hostexec::fusable_first`]), becomes one stub ([`hostexec::plan_run`])
//! that the host runs back to back:
//!
//! ```text
//! [copy the first instruction's memory operand into the frame]
//! status = call the run's stub          (if the x87 state is live; else status = 1)
//! if status == 0: FIP/FCS/FOP := the last instruction's      ──► after the run
//! else (cold): k = status - 1 instructions ran, instruction k found an exception pending
//!       (or the state is not live: k = 0): FIP/FCS/FOP := instruction k - 1's, then
//!       instructions k.. one at a time, as if never fused  ──► after the run
//! ```
//!
//! A run may also span instructions between its x87 ones that cannot fault and touch no
//! x87 state ([`inert`]: register-only integer and scalar SSE instructions), and hold one
//! FCOMI-like instruction and FCMOVcc after it ([`hostexec::flag_x87`]). Such a run's stub
//! ([`hostexec::plan_span`]) runs its x87 instructions all or none:
//!
//! ```text
//! [copy the first instruction's memory operand into the frame]
//! status = call the stub   (runs them if FSW.ES is clear and FCW masks every exception;
//!                           1 without the call if the state is not live)
//! if status == 0: FIP/FCS/FOP := the last x87 instruction's; then the instructions in
//!       order: the others translated as usual, the FCOMI's flags taken from the frame
//!       at its place                                                ──► after the run
//! else (cold): every instruction one at a time, then leave the block to the next one
//! ```
//!
//! In a block of [`fp_mode::X87_MASKED`] mode (every x87 exception masked, the common case)
//! neither kind needs a check or a cold path: the run's stub, without checks, is called as
//! one x87 instruction's is (through the runtime while the state is not live, directly once
//! a stub ran in the block: [`Ctx::x87_live`]).
//!
//! Invariants (why the fused run is exact):
//! - A fusable instruction changes nothing `Ctx` tracks (registers, flags, memory, XMM) and
//!   cannot fault but for #MF before it starts, which the stub checks before each one as
//!   the hardware does; so the guest state after `k` instructions of the stub is the state
//!   at instruction `k` of the one-at-a-time path, FIP/FCS/FOP included once stored, and
//!   the two paths join with the same `Ctx` state.
//! - No run is fused while the block's mode makes x87 instructions raise #NM (CR0.EM,
//!   CR0.TS): each then raises it one at a time.
//! - A spanning run's stub runs only when no x87 instruction of it can find an exception
//!   pending (none is, and all are masked: none can become pending), so none raises #MF;
//!   the x87 and the other instructions read and write disjoint state, so running the x87
//!   ones first ends in the state of program order. The FCOMI's RFLAGS reach the semantics
//!   at its place; an FCMOVcc reads them inside the stub, so no other instruction may write
//!   the flags between the two. Its cold path starts from the state of the run's start
//!   (the stub ran nothing) and leaves the block, so the fast path's translation state is
//!   not joined with it ([`Ctx::detour`]).
//! - In masked mode no instruction of a run can raise #MF (none is pending, none can become
//!   pending), so the unchecked stub is the one-at-a-time path; whatever may end that mode
//!   leaves its block without a link (`x87::leave_if_mode_changes`).
//! - Only the first instruction may have a memory operand, and only read it: it is read
//!   before the stub, where a fault is the first instruction's with nothing done, and
//!   not again on the one-at-a-time path. FDP/FDS are then its operand's after any of the
//!   run's instructions; without one they stay.
//! - The one-at-a-time path is the ordinary translation of each instruction (its own
//!   `begin_insn`, fault exit and instruction count), so #MF, FERR# and a state that is not
//!   live are handled exactly as without fusion.

use iced_x86::{EncodingKind, FlowControl, Instruction, Mnemonic as M, OpKind};

use super::simd::{self, FpClass};
use super::{host, translate_insn, x87};
use crate::ctx::Ctx;
use crate::emit::Emitter;
use crate::fp_mode;
use crate::hostexec::{self, FpuInfo, StubCall};
use crate::ir::{Cmp, Ty};
use crate::state::{self, frame};
use crate::Mode;

/// The most x87 instructions a run fuses: the cold path compares the status with each
/// position.
const MAX_RUN: usize = 16;

/// The most instructions a run spans, the interleaved ones included.
const MAX_SPAN: usize = 32;

/// How many of `insns` (from the first) form a run worth fusing in a block of `mode`; 0 or
/// 1: none. None while CR0.EM or CR0.TS make x87 instructions fault (#NM). The run ends with
/// an x87 instruction; [`inert`] ones may come between.
pub fn run_len(mode: Mode, insns: &[Instruction]) -> usize {
    if simd::mode_fault(FpClass::X87, mode.fp).is_some() {
        return 0;
    }
    match insns.first() {
        Some(first) if hostexec::fusable_first(first) => {}
        _ => return 0,
    }
    let (mut len, mut x87s) = (1, 1);
    // The run's FCOMI (one at most: the frame holds one RFLAGS), and whether an inert
    // instruction wrote the flags since: an FCMOVcc reads the FCOMI's flags inside the stub.
    let (mut compared, mut clobbered) = (false, false);
    for (i, insn) in insns.iter().enumerate().take(MAX_SPAN).skip(1) {
        if x87s == MAX_RUN {
            break;
        }
        let x87 = if hostexec::fusable(insn) {
            true
        } else if hostexec::flag_x87(insn) {
            if hostexec::writes_rflags(insn) {
                if compared {
                    break;
                }
                compared = true;
            } else if !compared || clobbered {
                break;
            }
            true
        } else if inert(mode, insn) {
            clobbered |= compared && insn.rflags_modified() != 0;
            false
        } else {
            break;
        };
        if x87 {
            x87s += 1;
            len = i + 1;
        }
    }
    len
}

/// Whether `insn` may come between the x87 instructions of a run in a block of `mode`: it
/// cannot fault or leave the block, and it touches nothing an x87 instruction reads or
/// writes (memory, the x87 state, FIP/FDP): general and XMM registers, RFLAGS and MXCSR's
/// flags only. Register-only integer arithmetic and moves, and scalar SSE arithmetic while
/// SSE is enabled with every SIMD exception masked.
fn inert(mode: Mode, insn: &Instruction) -> bool {
    if insn.encoding() != EncodingKind::Legacy
        || insn.flow_control() != FlowControl::Next
        || insn.has_lock_prefix()
        || hostexec::uses_fpu(insn)
    {
        return false;
    }
    let m = insn.mnemonic();
    let operands_ok = (0..insn.op_count()).all(|i| match insn.op_kind(i) {
        OpKind::Register => {
            let r = insn.op_register(i);
            r.is_gpr() || r.is_xmm()
        }
        // LEA computes an address and accesses nothing.
        OpKind::Memory => m == M::Lea,
        OpKind::Immediate8
        | OpKind::Immediate16
        | OpKind::Immediate32
        | OpKind::Immediate64
        | OpKind::Immediate8to16
        | OpKind::Immediate8to32
        | OpKind::Immediate8to64
        | OpKind::Immediate32to64 => true,
        _ => false,
    });
    if !operands_ok {
        return false;
    }
    match m {
        M::Mov
        | M::Movzx
        | M::Movsx
        | M::Movsxd
        | M::Lea
        | M::Add
        | M::Sub
        | M::Adc
        | M::Sbb
        | M::And
        | M::Or
        | M::Xor
        | M::Cmp
        | M::Test
        | M::Inc
        | M::Dec
        | M::Neg
        | M::Not
        | M::Shl
        | M::Shr
        | M::Sar
        | M::Rol
        | M::Ror
        | M::Imul
        | M::Cmove
        | M::Cmovne
        | M::Cmovb
        | M::Cmovae
        | M::Cmovbe
        | M::Cmova
        | M::Cmovl
        | M::Cmovge
        | M::Cmovle
        | M::Cmovg
        | M::Cmovs
        | M::Cmovns
        | M::Sete
        | M::Setne
        | M::Setb
        | M::Setae
        | M::Setbe
        | M::Seta
        | M::Setl
        | M::Setge
        | M::Setle
        | M::Setg
        | M::Cdqe
        | M::Cwde
        | M::Cdq
        | M::Cqo => true,
        M::Movapd
        | M::Movaps
        | M::Movsd
        | M::Movss
        | M::Movd
        | M::Movq
        | M::Pxor
        | M::Xorps
        | M::Xorpd
        | M::Andps
        | M::Andpd
        | M::Andnps
        | M::Andnpd
        | M::Orps
        | M::Orpd
        | M::Addsd
        | M::Subsd
        | M::Mulsd
        | M::Divsd
        | M::Sqrtsd
        | M::Addss
        | M::Subss
        | M::Mulss
        | M::Divss
        | M::Sqrtss
        | M::Cvtsi2sd
        | M::Cvtsi2ss
        | M::Cvtss2sd
        | M::Cvtsd2ss
        | M::Cvttsd2si
        | M::Cvttss2si
        | M::Ucomisd
        | M::Ucomiss => {
            simd::mode_fault(FpClass::Sse, mode.fp).is_none()
                && mode.fp & fp_mode::SIMD_UNMASKED == 0
        }
        _ => false,
    }
}

/// Translate `insns` (a run: [`hostexec::plan_run`] accepts it, at least two) as one stub
/// call, falling back to one at a time; each is begun and ended here.
pub fn translate<E: Emitter>(ctx: &mut Ctx<E>, insns: &[Instruction]) {
    if x87::masked(ctx) {
        return translate_masked(ctx, insns);
    }
    if !insns[1..].iter().all(hostexec::fusable) {
        return translate_span(ctx, insns);
    }
    // Each must also have a stub of its own, for the one-at-a-time path.
    let stub = match hostexec::plan_run(insns, !x87::masked(ctx)) {
        Ok(stub) if insns.iter().all(|i| hostexec::plan(i).is_ok()) => stub,
        _ => return one_at_a_time(ctx, insns),
    };
    let n = insns.len();
    ctx.begin_insn(&insns[0]);
    // The first instruction's operand, read as its own stub would (a fault here is its
    // fault, before anything ran); the one-at-a-time path does not read it again.
    let bytes = insns[0].memory_size().size() as u32;
    let mem = (0..insns[0].op_count()).any(|i| insns[0].op_kind(i) == OpKind::Memory);
    if mem {
        let a = ctx.op_addr();
        host::copy_in(ctx, a, bytes);
    }
    let Some(status) = ctx.e.call_stub_run(&stub) else {
        finish_first(ctx, mem);
        return one_at_a_time(ctx, &insns[1..]);
    };
    let (fast, slow, done) = (ctx.e.new_label(), ctx.e.new_label(), ctx.e.new_label());
    ctx.e.mark_cold(slow);
    ctx.e.branch(status, slow, fast);
    ctx.e.bind(fast);
    pointers_after(ctx, &insns[n - 1], mem);
    ctx.e.jump(done);
    // Instructions 0..k ran: the pointers are instruction k - 1's, and the ordinary
    // translation goes on from instruction k.
    ctx.e.bind(slow);
    let entries: Vec<E::Label> = (0..n).map(|_| ctx.e.new_label()).collect();
    for k in 1..n {
        let (hit, next) = (ctx.e.new_label(), ctx.e.new_label());
        ctx.e.mark_cold(hit);
        ctx.e.mark_cold(next);
        let at = ctx.c(Ty::I64, k as u64 + 1);
        let is_k = ctx.e.icmp(Cmp::Eq, status, at);
        ctx.e.branch(is_k, hit, next);
        ctx.e.bind(hit);
        pointers_after(ctx, &insns[k - 1], mem);
        ctx.e.jump(entries[k]);
        ctx.e.bind(next);
    }
    finish_first(ctx, mem);
    for k in 1..n {
        ctx.e.mark_cold(entries[k]);
        ctx.e.bind(entries[k]);
        ctx.begin_insn(&insns[k]);
        translate_insn(ctx);
        ctx.end_insn();
    }
    ctx.e.bind(done);
}

/// Translate a run that [`inert`] instructions interleave: one stub runs its x87
/// instructions, all or none ([`hostexec::plan_span`]), then the others are translated in
/// order. If the stub ran none, an out-of-line path runs the whole run one instruction at a
/// time and leaves the block after it ([`Ctx::detour`], [`Ctx::cut_exit`]): it is taken
/// only while an exception is pending or unmasked, or the state is not live.
fn translate_span<E: Emitter>(ctx: &mut Ctx<E>, insns: &[Instruction]) {
    let x87s: Vec<Instruction> = insns.iter().copied().filter(hostexec::uses_fpu).collect();
    let stub = match hostexec::plan_span(&x87s, !x87::masked(ctx)) {
        Ok(stub) if x87s.iter().all(|i| hostexec::plan(i).is_ok()) => stub,
        _ => return one_at_a_time(ctx, insns),
    };
    ctx.begin_insn(&insns[0]);
    let mem = copy_in_first(ctx, &insns[0]);
    let Some(status) = ctx.e.call_stub_run(&stub) else {
        finish_first(ctx, mem);
        return one_at_a_time(ctx, &insns[1..]);
    };
    let (fast, slow) = (ctx.e.new_label(), ctx.e.new_label());
    ctx.e.mark_cold(slow);
    ctx.e.branch(status, slow, fast);
    ctx.e.bind(slow);
    let after = insns[insns.len() - 1].next_ip();
    ctx.detour(|ctx| {
        finish_first(ctx, mem);
        one_at_a_time(ctx, &insns[1..]);
        if !ctx.terminated() {
            ctx.cut_exit(after);
        }
    });
    ctx.e.bind(fast);
    let last = x87s[x87s.len() - 1];
    pointers_after(ctx, &last, mem);
    ctx.end_insn();
    after_stub(ctx, &insns[1..]);
}

/// Copy the memory operand of a run's first instruction, if it has one, into the frame
/// (read as its own stub would: a fault here is its fault, before anything ran). Returns
/// whether it had one.
fn copy_in_first<E: Emitter>(ctx: &mut Ctx<E>, first: &Instruction) -> bool {
    let mem = (0..first.op_count()).any(|i| first.op_kind(i) == OpKind::Memory);
    if mem {
        let bytes = first.memory_size().size() as u32;
        let a = ctx.op_addr();
        host::copy_in(ctx, a, bytes);
    }
    mem
}

/// Translate a run (spanning or not) in a block of [`fp_mode::X87_MASKED`] mode: no x87
/// instruction of it can raise #MF, so its stub ([`hostexec::plan_span`] without the check)
/// is called as one x87 instruction's is, through the runtime while the state is not live,
/// and nothing is run one at a time.
fn translate_masked<E: Emitter>(ctx: &mut Ctx<E>, insns: &[Instruction]) {
    let x87s: Vec<Instruction> = insns.iter().copied().filter(hostexec::uses_fpu).collect();
    let Ok(stub) = hostexec::plan_span(&x87s, false) else {
        return one_at_a_time(ctx, insns);
    };
    ctx.begin_insn(&insns[0]);
    let mem = copy_in_first(ctx, &insns[0]);
    let info = FpuInfo {
        waiting: true,
        check_only: false,
        unchecked: true,
    };
    let how = if ctx.x87_live() {
        StubCall::Direct
    } else {
        StubCall::Fpu(info)
    };
    ctx.e.call_stub(&stub, how);
    ctx.note_x87_stub();
    if ctx.e.faulted() {
        // Interpreter: the runtime raised (as at the first instruction, nothing ran).
        return ctx.end_insn();
    }
    pointers_after(ctx, &x87s[x87s.len() - 1], mem);
    ctx.end_insn();
    after_stub(ctx, &insns[1..]);
}

/// The instructions of a spanning run after its first, once its stub ran them: the others
/// translated as usual, the FCOMI's flags taken from the frame at its place.
fn after_stub<E: Emitter>(ctx: &mut Ctx<E>, insns: &[Instruction]) {
    for insn in insns {
        ctx.begin_insn(insn);
        if !hostexec::uses_fpu(insn) {
            translate_insn(ctx);
        } else if hostexec::writes_rflags(insn) {
            let f = ctx.e.load_state(Ty::I64, state::OFF_HX + frame::RFLAGS);
            ctx.update_flags(host::iced_rflags(insn.rflags_modified()), f);
        }
        ctx.end_insn();
    }
}

/// FIP, FCS and the opcode after the run's instruction `last` (while the first instruction
/// is the current one: FDP and FDS are its operand's, if it has one).
fn pointers_after<E: Emitter>(ctx: &mut Ctx<E>, last: &Instruction, mem: bool) {
    x87::store_pointers(ctx, last, last.ip());
    if mem {
        x87::store_data_pointer(ctx);
    }
}

/// The first instruction of a run, one at a time (begun, its operand in the frame).
fn finish_first<E: Emitter>(ctx: &mut Ctx<E>, mem: bool) {
    if mem {
        host::exec_copied(ctx);
    } else {
        translate_insn(ctx);
    }
    ctx.end_insn();
}

fn one_at_a_time<E: Emitter>(ctx: &mut Ctx<E>, insns: &[Instruction]) {
    for insn in insns {
        ctx.begin_insn(insn);
        translate_insn(ctx);
        ctx.end_insn();
        if ctx.terminated() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions};

    fn decode(bytes: &[u8]) -> Vec<Instruction> {
        Decoder::with_ip(64, bytes, 0x1000, DecoderOptions::NONE)
            .into_iter()
            .collect()
    }

    const OS: Mode = Mode {
        fp: fp_mode::OS_DEFAULT,
        ..Mode::LONG64_CPL0
    };

    #[test]
    fn runs_span_inert_instructions_and_end_with_an_x87_one() {
        // fildll [rsp+8]; cvtsi2sd xmm3, r8; fdivr st, st(1); divsd xmm0, xmm3;
        // lea rcx, [rax+rax*2]; fadd st(4), st; cmp edi, eax; jae
        let insns = decode(&[
            0xDF, 0x6C, 0x24, 0x08, 0xF2, 0x49, 0x0F, 0x2A, 0xD8, 0xDC, 0xF1, 0xF2, 0x0F, 0x5E,
            0xC3, 0x48, 0x8D, 0x0C, 0x40, 0xDC, 0xC4, 0x39, 0xC7, 0x73, 0x00,
        ]);
        assert_eq!(run_len(OS, &insns), 6);
        // SSE unmasked (#XM possible) or disabled (#UD): the SSE instruction ends the run.
        for fp in [
            fp_mode::OS_DEFAULT | fp_mode::SIMD_UNMASKED,
            fp_mode::OS_DEFAULT & !fp_mode::OSFXSR,
        ] {
            assert_eq!(run_len(Mode { fp, ..OS }, &insns), 1, "{fp:#x}");
        }
        // CR0.TS: no run at all.
        let ts = Mode {
            fp: fp_mode::OS_DEFAULT | fp_mode::TS,
            ..OS
        };
        assert_eq!(run_len(ts, &insns), 0);
    }

    #[test]
    fn memory_accesses_and_faulting_instructions_end_a_run() {
        // fld1; X; fld1 for X = mov [rsp+8], r8; div ecx; push rax; mov ds, ax; cpuid.
        for x in [
            &[0x4C, 0x89, 0x44, 0x24, 0x08][..],
            &[0xF7, 0xF1],
            &[0x50],
            &[0x8E, 0xD8],
            &[0x0F, 0xA2],
        ] {
            let mut bytes = vec![0xD9, 0xE8];
            bytes.extend_from_slice(x);
            bytes.extend_from_slice(&[0xD9, 0xE8]);
            assert_eq!(run_len(OS, &decode(&bytes)), 1, "{x:02x?}");
        }
        // fld1; add eax, 1; fld1: one run.
        assert_eq!(
            run_len(OS, &decode(&[0xD9, 0xE8, 0x83, 0xC0, 0x01, 0xD9, 0xE8])),
            3
        );
    }
}
