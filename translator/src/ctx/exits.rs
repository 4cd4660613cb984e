//! The exits part of [`Ctx`]: leaving a block (jumps, branches, returns to the dispatcher,
//! exceptions), hypercall stubs, and the fault exits emitted when translation ends.
//!
//! Invariants:
//! - Every exit writes back the registers written in the block and the flag state.
//! - A fault exit leaves the state of the start of the faulting instruction, RIP pointing at
//!   it and `icount` uncharged for it and the later instructions.

use super::{Ctx, FaultExit, FlagState, HostExit};
use crate::emit::{Emitter, Exit};
use crate::exception::Exception;
use crate::helpers::Helper;
use crate::ir::Ty;
use crate::sensitive::Resume;
use crate::state::{self, ExitReason};

impl<E: Emitter> Ctx<E> {
    /// End the block: if it did not exit, continue at `next_pc`; emit the fault exits.
    pub fn finish(mut self, next_pc: u64) -> E {
        if !self.terminated {
            let t = self.e.iconst(Ty::I64, next_pc);
            self.exit_jump(t);
        }
        // Fault exits sit after the last instruction but are reached from earlier ones: a
        // value materialized later does not dominate them.
        self.entry_desc = None;
        self.loop_depth += 1;
        self.block_ends.push(self.begun);
        // The heads' budget and promotion exits: nothing of their block ran; the carried
        // state (the variables' values at the head) goes back to `CpuState`.
        for (label, pc, reason) in self.e.take_head_exits() {
            self.e.bind(label);
            let carried = self.carried_gprs();
            self.write_back_regs(carried);
            let f = self.head_flags();
            self.write_back_flags(f);
            let rip = self.e.iconst(Ty::I64, pc);
            self.e.store_state(state::OFF_RIP, rip);
            self.e.exit(Exit::Return(reason));
        }
        for HostExit { at: x, code } in std::mem::take(&mut self.host_exits) {
            self.e.bind(x.label);
            // The hypercall's instruction completed; the later ones of its block did not
            // execute.
            self.e.uncount(self.block_ends[x.block] - x.index - 1);
            self.exit_to_host(x.written, x.xmm, x.flags, code);
        }
        self.emit_fault_tails();
        self.e
    }

    /// Start the next block of a region at `pc` (see
    /// [`crate::semantics::translate_region`]); the previous one, if it did not exit,
    /// continues at `prev_next_pc` first. Every way in wrote back what is not carried, so
    /// the new block starts as a block of its own does, except for the carried state (see
    /// the module invariants): nothing materialized by another block is reused (it would
    /// not dominate this one).
    pub fn begin_region_block(&mut self, pc: u64, prev_next_pc: u64) {
        if !self.terminated {
            let t = self.e.iconst(Ty::I64, prev_next_pc);
            self.exit_jump(t);
        }
        self.block_ends.push(self.begun);
        self.e.begin_region_block(pc);
        self.terminated = false;
        let carried = self.carried_gprs();
        self.flags = self.head_flags();
        self.pending_flags = None;
        self.written = carried;
        self.preloaded = self.entry_preload;
        self.defined = self.entry_preload;
        // Memory holds every other register here: take them from there (in the JIT, the
        // shadows of `CpuState`), so a use may reload a value instead of holding it in a
        // host register across the region.
        for i in 0..16 {
            if self.entry_preload & !carried & (1 << i) != 0 {
                let v = self.e.load_state(Ty::I64, state::off_gpr(i));
                self.e.def_var(self.regs[i], v);
            }
        }
        self.entry_desc = None;
        self.addr_cache = None;
        self.xmm_defined = 0;
        self.xmm_dirty = 0;
        self.xmm_unkept = 0;
        // A head is entered from elsewhere too.
        self.x87_live = false;
    }

    pub(super) fn emit_fault_exit(
        &mut self,
        written: u16,
        xmm: u16,
        fl: FlagState<E::Value>,
        pc: u64,
    ) {
        self.write_back_regs(written);
        self.write_back_xmm(xmm);
        self.write_back_flags(fl);
        let rip = self.e.iconst(Ty::I64, pc);
        self.e.store_state(state::OFF_RIP, rip);
        self.e.exit(Exit::Status);
    }

    /// Call a runtime helper (see [`Helper`]); arguments are zero-extended to `I64`.
    pub fn call(&mut self, h: Helper, args: &[E::Value]) -> E::Value {
        let mut a = [self.e.iconst(Ty::I64, 0); 3];
        for (slot, &v) in a.iter_mut().zip(args) {
            *slot = self.to_ty(v, Ty::I64, false);
        }
        self.e.call_helper(h, a)
    }

    /// A hypercall stub for a sensitive instruction (contract in [`crate::sensitive`]):
    /// write back the committed registers and flags and RIP = this instruction, call the
    /// runtime, reload every register and the flags it may have changed, and leave through
    /// the fault path if it raised an exception or stopped. Returns the handler's result.
    ///
    /// Call it before this instruction's stores; writes made pending before it (e.g. POP
    /// Sreg's RSP) are committed after it as usual.
    pub fn hypercall(&mut self, args: u64, b: E::Value, c: E::Value) -> E::Value {
        let w = self.written;
        self.write_back_regs(w);
        // The handler sees `CpuState`; the registers stay valid in variables after it.
        self.flush_xmm();
        let f = self.flags;
        self.write_back_flags(f);
        self.flags = FlagState::Stored;
        // `insn_start_flags` stays: a fault of this instruction before the call (its memory
        // operand) leaves through the fault exit before the write-back above ran. A fault the
        // handler raises writes the same flags again, which it left as they were.
        self.entry_desc = None;
        let pc = self.e.iconst(Ty::I64, self.insn_pc);
        self.e.store_state(state::OFF_RIP, pc);
        let a = self.e.iconst(Ty::I64, args);
        let b = self.to_ty(b, Ty::I64, false);
        let c = self.to_ty(c, Ty::I64, false);
        let r = self.e.call_helper(Helper::Hypercall, [a, b, c]);
        for i in 0..16 {
            let v = self.e.load_state(Ty::I64, state::off_gpr(i));
            self.e.def_var(self.regs[i], v);
        }
        self.defined = 0xFFFF;
        self.preloaded = 0xFFFF;
        r
    }

    /// Leave to the dispatcher after a block-ending hypercall: commit this instruction's
    /// pending writes on top of the state the handler left, and continue at the RIP it set
    /// (the dispatcher recomputes the mode, which may have changed).
    pub fn exit_after_hypercall(&mut self) {
        if self.leave_faulted() {
            return;
        }
        self.write_back_all();
        // Not a linkable edge: the target and the mode are the handler's.
        let z = self.e.iconst(Ty::I64, 0);
        self.e.store_state(state::OFF_LINK_SLOT, z);
        self.e.exit(Exit::Return(ExitReason::Jump));
        self.terminated = true;
    }

    /// Go on after a block-ending hypercall as [`Hypercall::resume`] says, with the handler's
    /// return value `r`: leave for the host code `r` names (the runtime's choice for the RIP
    /// and mode the handler left; a non-zero `r` in [`Resume::InBlock`]), or, for
    /// [`Resume::InBlock`] and `r = 0`, go on with the next instruction of this block. The
    /// instruction is complete once the handler returned, so its pending writes commit first.
    ///
    /// [`Hypercall::resume`]: crate::sensitive::Hypercall::resume
    pub fn resume_after_hypercall(&mut self, resume: Resume, r: E::Value) {
        if resume == Resume::Dispatcher {
            return self.exit_after_hypercall();
        }
        if self.leave_faulted() {
            return;
        }
        self.commit();
        let (w, x, f) = (self.written, self.xmm_dirty, self.flags);
        if resume == Resume::Lookup {
            self.exit_to_host(w, x, f, r);
            self.terminated = true;
            return;
        }
        if let Some(r) = self.e.as_const(r) {
            // Concrete values (the interpreter): the decision is known now.
            if r != 0 {
                let r = self.e.iconst(Ty::I64, r);
                self.exit_to_host(w, x, f, r);
                self.terminated = true;
            }
            return;
        }
        // The exit is emitted by `finish`, which knows how many later instructions to
        // take back from the block's charge.
        let (leave, stay) = (self.e.new_label(), self.e.new_label());
        self.e.branch(r, leave, stay);
        self.host_exits.push(HostExit {
            at: FaultExit {
                label: leave,
                index: self.begun - 1,
                block: self.block_ends.len(),
                written: w,
                xmm: x,
                flags: f,
                pc: self.insn_pc,
            },
            code: r,
        });
        self.e.bind(stay);
    }

    /// Leave for the host code at `code`, writing back the registers in `written` and the
    /// flags `fl` (`rip` is the handler's).
    fn exit_to_host(&mut self, written: u16, xmm: u16, fl: FlagState<E::Value>, code: E::Value) {
        self.write_back_regs(written);
        self.write_back_xmm(xmm);
        self.write_back_flags(fl);
        // Not a linkable edge: the target and the mode are the handler's.
        let z = self.e.iconst(Ty::I64, 0);
        self.e.store_state(state::OFF_LINK_SLOT, z);
        self.e.exit(Exit::Host(code));
    }

    pub(super) fn write_back_regs(&mut self, written: u16) {
        for i in 0..16 {
            if written & (1 << i) != 0 {
                let v = self.e.use_var(self.regs[i]);
                self.e.store_state(state::off_gpr(i), v);
            }
        }
    }

    fn write_back_all(&mut self) {
        self.commit();
        let w = self.written;
        self.write_back_regs(w);
        let x = self.xmm_dirty;
        self.write_back_xmm(x);
        let f = self.flags;
        self.write_back_flags(f);
    }

    /// Whether a direct jump to `target` is an internal edge that carries state.
    fn carries_to(&self, target: u64) -> bool {
        self.carried.is_some() && self.e.is_internal(target)
    }

    /// At an internal edge: write back what is not carried (the other GPRs, the XMM
    /// registers); the flags go to the carried variables.
    fn write_back_for_edge(&mut self) {
        self.commit();
        let carried = self.carried_gprs();
        let w = self.written & !carried;
        self.write_back_regs(w);
        // XMM registers are not carried: a head reads them from `CpuState`.
        let x = self.xmm_dirty;
        self.write_back_xmm(x);
        let f = self.flags;
        self.flags_to_carried(f);
        self.flags = match self.carried_flags() {
            Some(_) => FlagState::Carried,
            None => FlagState::Stored,
        };
    }

    /// The flag state at a head: carried, or as stored (every way in wrote it back).
    pub(super) fn head_flags(&mut self) -> FlagState<E::Value> {
        match self.carried_flags() {
            Some(_) => FlagState::Carried,
            None => Self::entry_flags(&mut self.e),
        }
    }

    /// Complete the instruction and leave the block, continuing at `target` (an `I64`).
    pub fn exit_jump(&mut self, target: E::Value) {
        if self.leave_faulted() {
            return;
        }
        match self.e.as_const(target) {
            Some(t) if self.carries_to(t) => self.write_back_for_edge(),
            _ => self.write_back_all(),
        }
        self.e.exit(Exit::Jump(target));
        self.terminated = true;
    }

    /// Complete the instruction and leave: to `taken` if `cond`, else to `not_taken`. Both
    /// edges are direct (linkable).
    pub fn exit_branch(&mut self, cond: E::Value, taken: u64, not_taken: u64) {
        if self.leave_faulted() {
            return;
        }
        if let Some(c) = self.e.as_const(cond) {
            let t = self
                .e
                .iconst(Ty::I64, if c != 0 { taken } else { not_taken });
            return self.exit_jump(t);
        }
        // Both edges leave with the same state: write it back once, before the branch,
        // rather than a copy of every store on each edge. Where one edge stays in the
        // function, what it carries is written back on the other edge only.
        let internal = [taken, not_taken].map(|t| self.carries_to(t));
        let carrying = internal[0] || internal[1];
        if carrying {
            self.write_back_for_edge();
        } else {
            self.write_back_all();
        }
        let (lt, lf) = (self.e.new_label(), self.e.new_label());
        self.e.branch(cond, lt, lf);
        for ((l, target), internal) in [(lt, taken), (lf, not_taken)].into_iter().zip(internal) {
            self.e.bind(l);
            if carrying && !internal {
                let carried = self.carried_gprs();
                self.write_back_regs(self.written & carried);
                let f = self.flags;
                self.write_back_flags(f);
            }
            let t = self.e.iconst(Ty::I64, target);
            self.e.exit(Exit::Jump(t));
        }
        self.terminated = true;
    }

    /// Complete the instruction and return to the dispatcher to continue at `rip`, not
    /// through a link: for instructions that may change the block mode (LDMXCSR, FXRSTOR).
    pub fn exit_unlinked(&mut self, rip: u64) {
        if self.leave_faulted() {
            return;
        }
        self.write_back_all();
        let r = self.e.iconst(Ty::I64, rip);
        self.e.store_state(state::OFF_RIP, r);
        let z = self.e.iconst(Ty::I64, 0);
        self.e.store_state(state::OFF_LINK_SLOT, z);
        self.e.exit(Exit::Return(ExitReason::Jump));
        self.terminated = true;
    }

    /// Raise `exc` if `cond` (any integer type) is nonzero: a branch to an out-of-line
    /// call of [`Helper::FaultIf`], so the common case costs a compare and a branch.
    pub fn fault_if(&mut self, cond: E::Value, exc: Exception) {
        let vector = self.e.iconst(Ty::I64, u64::from(exc.vector()));
        let code = self
            .e
            .iconst(Ty::I64, u64::from(exc.error_code().unwrap_or(0)));
        if let Some(c) = self.e.as_const(cond) {
            if c != 0 {
                let one = self.e.iconst(Ty::I64, 1);
                self.e.call_helper(Helper::FaultIf, [one, vector, code]);
            }
            return;
        }
        let (bad, ok) = (self.e.new_label(), self.e.new_label());
        self.e.branch(cond, bad, ok);
        self.e.bind(bad);
        // Nothing made on this path may be reused after it.
        self.loop_depth += 1;
        let one = self.e.iconst(Ty::I64, 1);
        self.e.call_helper(Helper::FaultIf, [one, vector, code]);
        self.e.jump(ok);
        self.loop_depth -= 1;
        self.e.bind(ok);
    }

    /// Complete the instruction and return to the dispatcher with `reason`, RIP = `rip`.
    pub fn exit_with(&mut self, reason: ExitReason, rip: u64) {
        if self.leave_faulted() {
            return;
        }
        self.write_back_all();
        let r = self.e.iconst(Ty::I64, rip);
        self.e.store_state(state::OFF_RIP, r);
        self.e.exit(Exit::Return(reason));
        self.terminated = true;
    }

    /// Interpreter: the instruction already faulted, so it must not commit its writes or
    /// exit normally; `end_insn` emits the fault exit. (Always false in the JIT, where the
    /// fault branched away.)
    fn leave_faulted(&mut self) -> bool {
        let f = self.e.faulted();
        self.terminated |= f;
        f
    }

    /// The instruction cannot be translated: leave with the state of its start and
    /// [`ExitReason::Unsupported`]. Call before any store of the instruction.
    pub fn unsupported(&mut self) {
        self.pending = [None; 16];
        self.pending_flags = None;
        self.xmm_pending = [None; 16];
        // Translation stops here, so only this instruction is left unexecuted.
        self.e.uncount(1);
        let pc = self.insn_pc;
        self.exit_with(ExitReason::Unsupported, pc);
    }

    /// Raise a guest exception at the current instruction (state of its start).
    pub fn raise(&mut self, exc: Exception) {
        self.pending = [None; 16];
        self.pending_flags = None;
        self.xmm_pending = [None; 16];
        // A fault: this instruction (the block's last) does not complete.
        self.e.uncount(1);
        let pc = self.insn_pc;
        self.leave_with_exception(exc, pc);
    }

    /// Raise a trap-class exception (INT3, INT1): the instruction completes and the saved
    /// RIP is the next instruction.
    pub fn raise_trap(&mut self, exc: Exception) {
        let next = self.next_pc();
        self.leave_with_exception(exc, next);
    }

    fn leave_with_exception(&mut self, exc: Exception, rip: u64) {
        for (off, v) in [
            (
                std::mem::offset_of!(state::CpuState, exc_vector) as u32,
                exc.vector() as u64,
            ),
            (
                std::mem::offset_of!(state::CpuState, exc_code) as u32,
                exc.error_code().unwrap_or(0) as u64,
            ),
            (
                std::mem::offset_of!(state::CpuState, exc_addr) as u32,
                exc.fault_addr(),
            ),
            (state::OFF_STATUS, ExitReason::Exception as u64),
        ] {
            let v = self.e.iconst(Ty::I64, v);
            self.e.store_state(off, v);
        }
        self.exit_with(ExitReason::Exception, rip);
    }
}
