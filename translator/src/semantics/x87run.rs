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
//! Invariants (why the fused run is exact):
//! - A fusable instruction changes nothing `Ctx` tracks (registers, flags, memory, XMM) and
//!   cannot fault but for #MF before it starts, which the stub checks before each one as
//!   the hardware does; so the guest state after `k` instructions of the stub is the state
//!   at instruction `k` of the one-at-a-time path, FIP/FCS/FOP included once stored, and
//!   the two paths join with the same `Ctx` state.
//! - No run is fused while the block's mode makes x87 instructions raise #NM (CR0.EM,
//!   CR0.TS): each then raises it one at a time.
//! - Only the first instruction may have a memory operand, and only read it: it is read
//!   before the stub, where a fault is the first instruction's with nothing done, and
//!   not again on the one-at-a-time path. FDP/FDS are then its operand's after any of the
//!   run's instructions; without one they stay.
//! - The one-at-a-time path is the ordinary translation of each instruction (its own
//!   `begin_insn`, fault exit and instruction count), so #MF, FERR# and a state that is not
//!   live are handled exactly as without fusion.

use iced_x86::{Instruction, OpKind};

use super::simd::{self, FpClass};
use super::{host, translate_insn, x87};
use crate::ctx::Ctx;
use crate::emit::Emitter;
use crate::hostexec;
use crate::ir::{Cmp, Ty};
use crate::Mode;

/// The longest run fused: the cold path compares the status with each position.
const MAX_RUN: usize = 16;

/// How many of `insns` (from the first) form a run worth fusing in a block of `mode`; 0 or
/// 1: none. None while CR0.EM or CR0.TS make x87 instructions fault (#NM).
pub fn run_len(mode: Mode, insns: &[Instruction]) -> usize {
    if simd::mode_fault(FpClass::X87, mode.fp).is_some() {
        return 0;
    }
    match insns.split_first() {
        Some((first, rest)) if hostexec::fusable_first(first) => {
            1 + rest
                .iter()
                .take(MAX_RUN - 1)
                .take_while(|i| hostexec::fusable(i))
                .count()
        }
        _ => 0,
    }
}

/// Translate `insns` (a run: [`hostexec::plan_run`] accepts it, at least two) as one stub
/// call, falling back to one at a time; each is begun and ended here.
pub fn translate<E: Emitter>(ctx: &mut Ctx<E>, insns: &[Instruction]) {
    // Each must also have a stub of its own, for the one-at-a-time path.
    let stub = match hostexec::plan_run(insns) {
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
