//! Runs of stack accesses checked once. A run is a sequence of consecutive 64-bit
//! `PUSH r64`/`PUSH imm`/`POP r64` (not `POP RSP`), optionally ended by a near `CALL rel32`
//! or `RET`: RSP moves only by their own pushes and pops, so every address the run touches
//! is RSP at the run's start plus an offset known now. At the first instruction one check
//! covers the whole range ([`Emitter::check_range`]), and the accesses go without checks or
//! slow paths of their own: in generated code a push or pop is then a store or load in the
//! same basic block instead of a bounds check, a bitmap check, a cold helper call, a fault
//! site and a join. Blocks are what the quick tier's single-pass register allocator pays
//! for (every value live across one is spilled and reloaded), so this is most of the code
//! of push-heavy blocks (`jit::tests::profile`: the `flags` guest's quick code went from 27
//! to 12 IR instructions and from 363 to 99 host bytes per guest instruction).
//!
//! Invariants:
//! - The check is made right after the run's first instruction began, before it did
//!   anything: its failure leaves with the state of that instruction's start, which the
//!   dispatcher then single-steps (each instruction of a run whose range is not plain RAM
//!   runs through the helpers, precisely).
//! - `stack_run_last` is the index (in `begun` terms, 0-based) of the run's last
//!   instruction; `push`/`pop` use the unchecked accesses only up to it, only at 64 bits, and
//!   only in 64-bit mode (SS has no base, the stack is RSP).

use iced_x86::{Code, Instruction, Register};

use super::Ctx;
use crate::emit::Emitter;
use crate::ir::{BinOp, Ty};
use crate::state;

/// How an instruction of a run moves RSP: `Some((delta, accesses))`, where the access is at
/// RSP - 8 for a push and RSP for a pop; `None` for an instruction that cannot be in a run.
/// The second value says whether the instruction ends the run (it ends the block).
fn run_step(insn: &Instruction) -> Option<(i64, bool)> {
    match insn.code() {
        Code::Push_r64 | Code::Pushq_imm8 | Code::Pushq_imm32 => Some((-8, false)),
        Code::Pop_r64 if insn.op0_register() != Register::RSP => Some((8, false)),
        Code::Call_rel32_64 => Some((-8, true)),
        Code::Retnq => Some((8, true)),
        _ => None,
    }
}

impl<E: Emitter> Ctx<E> {
    /// At the start of an instruction (`rest` is it and the block's instructions after it):
    /// if a run of stack accesses starts here, check its range once.
    pub fn check_stack_run(&mut self, rest: &[Instruction]) {
        let index = self.begun - 1;
        if self.stack_run_last.is_some_and(|last| index <= last) {
            return;
        }
        self.stack_run_last = None;
        if self.mode.bitness != 64 || self.mode.stack != 64 || !self.e.checks_ranges() {
            return;
        }
        let (mut off, mut lo, mut hi, mut write, mut len) = (0i64, 0i64, 0i64, false, 0u32);
        for insn in rest {
            let Some((delta, ends)) = run_step(insn) else {
                break;
            };
            let at = if delta < 0 { off + delta } else { off };
            lo = lo.min(at);
            hi = hi.max(at + 8);
            write |= delta < 0;
            off += delta;
            len += 1;
            if ends {
                break;
            }
        }
        if len == 0 {
            return;
        }
        let sp = self.gpr(state::reg::RSP);
        let d = self.e.iconst(Ty::I64, lo as u64);
        let base = self.e.binop(BinOp::Add, sp, d);
        if self.e.check_range(base, (hi - lo) as u64, write) {
            self.stack_run_last = Some(index + len - 1);
        }
    }

    /// Whether the current instruction's 64-bit stack access was checked with its run.
    pub(super) fn in_stack_run(&self, ty: Ty) -> bool {
        ty == Ty::I64
            && self
                .stack_run_last
                .is_some_and(|last| self.begun - 1 <= last)
    }
}
