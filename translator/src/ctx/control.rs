//! The control-flow part of [`Ctx`]: REP loops, values computed on one of two paths, and
//! detours that leave the block.
//!
//! Invariants:
//! - A REP iteration commits its writes before looping, so a fault in iteration k leaves the
//!   state after iteration k-1 with RIP at the instruction, as hardware does.
//! - The arms of [`Ctx::if_else`] compute values only (no register or flag writes, no
//!   exits), so a helper faulting in one leaves with the state of the instruction's start.
//! - A [`Ctx::detour`] ends in an exit, and the translation state after it is the one before
//!   it: the straight-line path never sees a value the detour made.

use iced_x86::{Instruction, OpKind};

use super::{Ctx, FaultExit, FlagState, Rep};
use crate::emit::Emitter;
use crate::flags::Stored;
use crate::ir::{BinOp, Cmp, Ty};
use crate::state::{self, rflags, ExitReason};

impl<E: Emitter> Ctx<E> {
    /// Run a string-instruction body under a REP prefix. `body` performs one iteration
    /// (including RSI/RDI updates); this handles RCX (or ECX/CX by address size), the ZF
    /// termination of REPE/REPNE (`sets_flags` must be true for CMPS/SCAS), and commits each
    /// iteration so faults are precise.
    pub fn rep(&mut self, kind: Rep, sets_flags: bool, mut body: impl FnMut(&mut Self)) {
        if kind == Rep::None {
            body(self);
            return;
        }
        let aty = self.addr_ty();
        // Iterations commit their own writes: bring the block to a committed state first.
        self.commit();
        if sets_flags {
            self.flags_to_var();
            self.insn_start_flags = FlagState::InVar;
        }
        self.insn_start_written = self.written;
        let rcx = self.gpr_ty(state::reg::RCX, aty);
        let z = self.e.iconst(aty, 0);
        let nonzero = self.e.icmp(Cmp::Ne, rcx, z);
        // Only an emitter whose every value is concrete may iterate here: a JIT that folds a
        // constant count would otherwise unroll the whole loop at translation time.
        if let (true, Some(c)) = (self.e.is_concrete(), self.e.as_const(nonzero)) {
            // Interpreter: iterate directly.
            if c == 0 {
                return;
            }
            loop {
                body(self);
                if self.e.faulted() || self.terminated {
                    return;
                }
                let go = self.rep_step(kind, aty, sets_flags);
                if self.e.as_const(go) == Some(0) || self.e.faulted() {
                    return;
                }
                // The first iteration is counted when the instruction retires: here it
                // has not yet.
                let (over, _) = self.rep_budget(go, 1);
                if self.e.as_const(over) == Some(1) {
                    // Not retired: it restarts where it stopped, its iterations so far
                    // counted (the first one here).
                    let icount = self.e.load_state(Ty::I64, state::OFF_ICOUNT);
                    let one = self.e.iconst(Ty::I64, 1);
                    let icount = self.e.binop(BinOp::Add, icount, one);
                    self.e.store_state(state::OFF_ICOUNT, icount);
                    let pc = self.insn_pc;
                    return self.exit_with(ExitReason::Retry, pc);
                }
            }
        }
        let head = self.e.new_label();
        let done = self.e.new_label();
        self.e.branch(nonzero, head, done);
        self.e.bind(head);
        self.loop_depth += 1;
        body(self);
        let go = self.rep_step(kind, aty, sets_flags);
        // The block's entry charged the first iteration.
        let (over, go_on) = self.rep_budget(go, 0);
        self.loop_depth -= 1;
        let after = self.e.new_label();
        self.e.branch(go_on, head, after);
        self.e.bind(after);
        let cut = self.e.binop(BinOp::And, go, over);
        let cut_label = self.e.new_label();
        self.e.branch(cut, cut_label, done);
        self.rep_cuts.push(FaultExit {
            label: cut_label,
            index: self.begun - 1,
            block: self.block_ends.len(),
            written: self.written,
            xmm: self.xmm_dirty,
            flags: self.flags,
            pc: self.insn_pc,
        });
        self.e.bind(done);
        self.insn_start_written = self.written;
    }

    /// After an iteration that continues if `go`: each further iteration counts as an
    /// instruction (QEMU counts a repeated string instruction's re-executions so), so
    /// slices, instruction limits and stop requests see a long one advance; once the budget
    /// is spent (`over`), it stops between iterations, restartable, as a CPU takes an
    /// interrupt there. A repeated instruction counts one instruction per iteration (one if
    /// it runs none); `uncounted` of them are not in `icount` yet. Returns `(over, go_on)`,
    /// both `I8`.
    fn rep_budget(&mut self, go: E::Value, uncounted: u64) -> (E::Value, E::Value) {
        let icount = self.e.load_state(Ty::I64, state::OFF_ICOUNT);
        let limit = self.e.load_state(Ty::I64, state::OFF_ICOUNT_LIMIT);
        let pending = self.e.iconst(Ty::I64, uncounted);
        let counted = self.e.binop(BinOp::Add, icount, pending);
        let over = self.e.icmp(Cmp::Uge, counted, limit);
        let one = self.e.iconst(Ty::I8, 1);
        let under = self.e.binop(BinOp::Xor, over, one);
        let go_on = self.e.binop(BinOp::And, go, under);
        let step = self.to_ty(go_on, Ty::I64, false);
        let icount = self.e.binop(BinOp::Add, icount, step);
        self.e.store_state(state::OFF_ICOUNT, icount);
        (over, go_on)
    }

    /// After one iteration: decrement the count, commit, and say whether to continue.
    fn rep_step(&mut self, kind: Rep, aty: Ty, sets_flags: bool) -> E::Value {
        let rcx = self.gpr_ty(state::reg::RCX, aty);
        let one = self.e.iconst(aty, 1);
        let rcx = self.e.binop(BinOp::Sub, rcx, one);
        self.set_gpr_ty(state::reg::RCX, aty, rcx);
        let z = self.e.iconst(aty, 0);
        let mut go = self.e.icmp(Cmp::Ne, rcx, z);
        if matches!(kind, Rep::Repe | Rep::Repne) {
            let zf = self.flag(rflags::ZF);
            let want = if kind == Rep::Repe {
                zf
            } else {
                let one = self.e.iconst(Ty::I8, 1);
                self.e.binop(BinOp::Xor, zf, one)
            };
            go = self.e.binop(BinOp::And, go, want);
        }
        self.commit();
        // A fault in a later iteration must write back what this one committed (the
        // interpreter leaves `rep` early on a fault, before `rep` itself updates this).
        self.insn_start_written = self.written;
        if sets_flags {
            self.flags_to_var();
        }
        go
    }

    /// Values computed on one of two paths: `then`'s if `cond` (any integer type; nonzero is
    /// true), else `els`'s, each converted to its type in `tys` (truncated or zero-extended).
    /// Made for an inline fast path beside a helper slow path.
    ///
    /// The arms compute values only. They must not write registers or flags (`set_*`,
    /// `write_op`, flag updates), exit, or raise: write the results after the construct.
    /// (Debug builds check this.) They may read operands, load, store `CpuState` fields and
    /// call helpers: a helper or load that faults leaves through the instruction's fault
    /// label with the state of the instruction's start, as anywhere else in the instruction,
    /// because nothing is committed inside. Only the returned values may be used after the
    /// construct; anything else an arm computed does not dominate the merge.
    ///
    /// With concrete values (the interpreter) or a constant `cond`, only the taken arm is
    /// evaluated. Otherwise both are emitted behind a branch and merged through variables.
    pub fn if_else<const N: usize>(
        &mut self,
        cond: E::Value,
        tys: [Ty; N],
        then: impl FnOnce(&mut Self) -> [E::Value; N],
        els: impl FnOnce(&mut Self) -> [E::Value; N],
    ) -> [E::Value; N] {
        if let Some(c) = self.e.as_const(cond) {
            return if c != 0 {
                self.arm(tys, then)
            } else {
                self.arm(tys, els)
            };
        }
        let vars = tys.map(|ty| self.e.declare_var(ty));
        let (lt, lf, join) = (self.e.new_label(), self.e.new_label(), self.e.new_label());
        self.e.branch(cond, lt, lf);
        // Values an arm caches (the entry flags, the operand address) would not dominate
        // the other arm or the merge.
        let addr_cache = self.addr_cache;
        self.loop_depth += 1;
        self.e.bind(lt);
        let v = self.arm(tys, then);
        for (&var, v) in vars.iter().zip(v) {
            self.e.def_var(var, v);
        }
        self.e.jump(join);
        self.addr_cache = addr_cache;
        self.e.bind(lf);
        let v = self.arm(tys, els);
        for (&var, v) in vars.iter().zip(v) {
            self.e.def_var(var, v);
        }
        self.e.jump(join);
        self.addr_cache = addr_cache;
        self.loop_depth -= 1;
        self.e.bind(join);
        vars.map(|var| self.e.use_var(var))
    }

    /// [`Ctx::if_else`] of one value of type `ty`.
    pub fn if_else_value(
        &mut self,
        cond: E::Value,
        ty: Ty,
        then: impl FnOnce(&mut Self) -> E::Value,
        els: impl FnOnce(&mut Self) -> E::Value,
    ) -> E::Value {
        let [v] = self.if_else(cond, [ty], |c| [then(c)], |c| [els(c)]);
        v
    }

    /// One arm of `if_else`: run it, check it wrote nothing, convert its values.
    fn arm<const N: usize>(
        &mut self,
        tys: [Ty; N],
        f: impl FnOnce(&mut Self) -> [E::Value; N],
    ) -> [E::Value; N] {
        let (writes, terminated) = (self.writes, self.terminated);
        let mut vals = f(self);
        debug_assert!(
            self.writes == writes && self.terminated == terminated,
            "an if_else arm wrote a register or flags, or exited"
        );
        for (v, &ty) in vals.iter_mut().zip(&tys) {
            *v = self.to_ty(*v, ty, false);
        }
        vals
    }

    /// The address-size type of the current instruction (for RSI/RDI/RCX in string ops).
    pub fn addr_ty(&self) -> Ty {
        let default = match self.mode.bitness {
            64 => Ty::I64,
            32 => Ty::I32,
            _ => Ty::I16,
        };
        // iced exposes the address size through the string operand kinds.
        for i in 0..self.insn.op_count() {
            match self.insn.op_kind(i) {
                OpKind::MemorySegRSI | OpKind::MemoryESRDI => return Ty::I64,
                OpKind::MemorySegESI | OpKind::MemoryESEDI => return Ty::I32,
                OpKind::MemorySegSI | OpKind::MemoryESDI => return Ty::I16,
                _ => {}
            }
        }
        default
    }
}

/// What [`Ctx::detour`] puts back: the translation-time state of the straight-line path.
struct Saved<E: Emitter> {
    flags: FlagState<E::Value>,
    pending_flags: Option<FlagState<E::Value>>,
    pending: [Option<E::Value>; 16],
    written: u16,
    defined: u16,
    preloaded: u16,
    insn: Instruction,
    insn_pc: u64,
    insn_start_flags: FlagState<E::Value>,
    insn_start_written: u16,
    addr_cache: Option<E::Value>,
    begun: u32,
    entry_desc: Option<Stored<E::Value>>,
    writes: u32,
    xmm_defined: u16,
    xmm_pending: [Option<E::Vec>; 16],
    xmm_dirty: u16,
    xmm_pending_fp: u16,
    insn_start_xmm: u16,
    stack_run_last: Option<u32>,
    x87_live: bool,
}

impl<E: Emitter> Ctx<E> {
    /// Emit an out-of-line path that leaves the block (`path` must end in an exit, e.g.
    /// [`Ctx::cut_exit`]) and come back to the translation state of before it, so the
    /// straight-line path goes on as if the detour had not been translated: what the
    /// detour committed, cached or counted is its own (its fault and cut exits stay).
    /// Nothing made on it is reused after it, since none of it dominates what follows.
    pub fn detour(&mut self, path: impl FnOnce(&mut Self)) {
        let saved: Saved<E> = Saved {
            flags: self.flags,
            pending_flags: self.pending_flags,
            pending: self.pending,
            written: self.written,
            defined: self.defined,
            preloaded: self.preloaded,
            insn: self.insn,
            insn_pc: self.insn_pc,
            insn_start_flags: self.insn_start_flags,
            insn_start_written: self.insn_start_written,
            addr_cache: self.addr_cache,
            begun: self.begun,
            entry_desc: self.entry_desc,
            writes: self.writes,
            xmm_defined: self.xmm_defined,
            xmm_pending: self.xmm_pending,
            xmm_dirty: self.xmm_dirty,
            xmm_pending_fp: self.xmm_pending_fp,
            insn_start_xmm: self.insn_start_xmm,
            stack_run_last: self.stack_run_last,
            x87_live: self.x87_live,
        };
        self.loop_depth += 1;
        path(self);
        debug_assert!(self.terminated, "a detour must leave the block");
        self.loop_depth -= 1;
        self.terminated = false;
        self.flags = saved.flags;
        self.pending_flags = saved.pending_flags;
        self.pending = saved.pending;
        self.written = saved.written;
        self.defined = saved.defined;
        self.preloaded = saved.preloaded;
        self.insn = saved.insn;
        self.insn_pc = saved.insn_pc;
        self.insn_start_flags = saved.insn_start_flags;
        self.insn_start_written = saved.insn_start_written;
        self.addr_cache = saved.addr_cache;
        self.begun = saved.begun;
        self.entry_desc = saved.entry_desc;
        self.writes = saved.writes;
        self.xmm_defined = saved.xmm_defined;
        self.xmm_pending = saved.xmm_pending;
        self.xmm_dirty = saved.xmm_dirty;
        self.xmm_pending_fp = saved.xmm_pending_fp;
        self.insn_start_xmm = saved.insn_start_xmm;
        self.stack_run_last = saved.stack_run_last;
        self.x87_live = saved.x87_live;
    }

    /// Leave the block after the instruction just ended, to continue at `pc` through the
    /// dispatcher (a cut: the later instructions of the block are uncharged).
    pub fn cut_exit(&mut self, pc: u64) {
        let label = self.e.new_label();
        self.rep_cuts.push(FaultExit {
            label,
            index: self.begun - 1,
            block: self.block_ends.len(),
            written: self.written,
            xmm: self.xmm_dirty,
            flags: self.flags,
            pc,
        });
        self.e.jump(label);
        self.terminated = true;
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::flags::CVal;
    use crate::helpers::Helper;
    use crate::interp::{InterpEmitter, InterpEnv};
    use crate::state::CpuState;
    use crate::Mode;

    struct NoHelpers;
    impl InterpEnv for NoHelpers {
        fn helper(&mut self, _: &mut CpuState, _: Helper, _: [u64; 3]) -> u64 {
            0
        }
    }

    fn with_ctx(f: impl FnOnce(&mut Ctx<InterpEmitter<'_>>)) {
        let (mut cpu, mut env) = (CpuState::default(), NoHelpers);
        let mut ctx = Ctx::new(
            InterpEmitter::new(&mut cpu, &mut env),
            Mode::LONG64_CPL0,
            0xffff,
        );
        f(&mut ctx);
    }

    #[test]
    fn if_else_evaluates_only_the_taken_arm_when_concrete() {
        with_ctx(|ctx| {
            for (ty, c, taken) in [
                (Ty::I8, 1, true),
                (Ty::I8, 0, false),
                (Ty::I64, 1 << 40, true),
            ] {
                let ran = Cell::new((false, false));
                let cond = ctx.c(ty, c);
                let [a, b] = ctx.if_else(
                    cond,
                    [Ty::I8, Ty::I64],
                    |ctx| {
                        ran.set((true, ran.get().1));
                        [ctx.c(Ty::I16, 0x1ff), ctx.c(Ty::I8, 0xfe)]
                    },
                    |ctx| {
                        ran.set((ran.get().0, true));
                        [ctx.c(Ty::I8, 2), ctx.c(Ty::I32, 0xffff_ffff)]
                    },
                );
                assert_eq!(ran.get(), (taken, !taken));
                // Each value converted to its type: truncated or zero-extended.
                let want = if taken {
                    (0xff, 0xfe)
                } else {
                    (2, 0xffff_ffff)
                };
                assert_eq!(
                    (a, b),
                    (
                        CVal {
                            ty: Ty::I8,
                            v: want.0
                        },
                        CVal {
                            ty: Ty::I64,
                            v: want.1
                        }
                    )
                );
            }
        });
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "if_else arm")]
    fn if_else_arms_must_not_write_registers() {
        with_ctx(|ctx| {
            let c = ctx.c(Ty::I8, 1);
            ctx.if_else_value(
                c,
                Ty::I64,
                |ctx| {
                    let v = ctx.c(Ty::I64, 1);
                    ctx.set_gpr(0, v);
                    v
                },
                |ctx| ctx.c(Ty::I64, 0),
            );
        });
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "if_else arm")]
    fn if_else_arms_must_not_write_flags() {
        with_ctx(|ctx| {
            let c = ctx.c(Ty::I8, 0);
            ctx.if_else_value(
                c,
                Ty::I64,
                |ctx| ctx.c(Ty::I64, 0),
                |ctx| {
                    let v = ctx.c(Ty::I64, rflags::CF);
                    ctx.update_flags(rflags::CF, v);
                    v
                },
            );
        });
    }
}
