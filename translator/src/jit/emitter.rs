//! `ClifEmitter`: the [`Emitter`] that builds the Cranelift IR of one block function.
//!
//! Invariants:
//! - Every operation means exactly what [`crate::ir`]'s `eval_*` say: operands of mismatched
//!   types are converted as the concrete evaluator would see them (zero-extended or
//!   truncated to the first operand's type), constants are folded with the `eval_*`
//!   functions themselves.
//! - The emitter owns the Cranelift position. After an exit, jump or branch the position is
//!   dead; emitting anything before the next `bind` goes to a fresh unreachable block that
//!   Cranelift discards, so semantics can never append to a terminated block.
//! - Blocks the emitter makes for itself (memory fast/slow paths, status checks, the entry)
//!   are sealed as soon as their predecessors are known. Labels given to semantics may be loop
//!   heads, so they are sealed at the end.
//! - Misuse that cannot be repaired (a label bound twice, a label jumped to but never bound,
//!   a block that does not end with an exit) makes [`ClifEmitter::end`] fail with
//!   [`JitError::Internal`]; the function is still completed so the builder stays reusable.
//! - CpuState, guest RAM, the code bitmap and link slots are disjoint alias regions, so
//!   Cranelift removes redundant CpuState loads across guest stores; calls are barriers.
//! - Shadow variables: `icount` and the preloaded GPR fields are mirrored in SSA variables
//!   that equal the field's memory at every point (loaded at entry, redefined by every
//!   store). Reading such a field reads the variable, so a self-loop (a direct exit to the
//!   block's own pc jumps back to the loop head) carries registers and `icount` in host
//!   registers instead of through memory. This relies on helpers never writing those fields
//!   (generated code owns them while a block runs). The exception: in a looping function
//!   the shadows of the carried GPRs ([`crate::emit::Carried`]) are the guest registers
//!   themselves, which the semantics define without a store at internal edges; their memory
//!   is current only where the semantics wrote them back (every way out of the function),
//!   and they are never reloaded.
//! - Reloads: reading a semantics variable that still holds a GPR's unmodified value emits a
//!   fresh load of the field (its memory is known to hold it) instead of keeping the entry
//!   value alive across the block; entry loads left unused are deleted before compiling.

use std::collections::HashMap;

use cranelift_codegen::entity::EntitySet;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    types, Block, BlockArg, Inst, InstBuilder, InstructionData, MemFlagsData, Opcode, SigRef, Type,
    Value, ValueDef,
};
use cranelift_codegen::isa::CallConv;
use cranelift_frontend::{FunctionBuilder, Variable};

use super::frame::HeadExits;
use super::{JitEnv, JitError, JumpCacheLayout, MemoryModel};
use crate::emit::{Carried, Emitter, Exit, ValueOps};
use crate::helpers::Helper;
use crate::hostexec::{HostStub, StubCall};
use crate::ir::{eval_binop, eval_cmp, eval_convert, eval_unop, BinOp, Cmp, Conv, Ty, UnOp};
use crate::state::{self, CpuState, ExitReason};

/// Memory flags of each alias region.
#[derive(Clone, Copy)]
pub(super) struct Regions {
    /// `CpuState` fields (aligned where the offset is).
    pub cpu: MemFlagsData,
    /// Guest RAM (unaligned, little-endian, bounds-checked so never trapping).
    pub guest: MemFlagsData,
    /// The code-page bitmap.
    pub bitmap: MemFlagsData,
    /// Link slots.
    pub slot: MemFlagsData,
    /// The hotness counter ([`super::JitEnv::hot_counter`]).
    pub counter: MemFlagsData,
}

/// The Cranelift emitter of one block. See the module invariants.
pub(crate) struct ClifEmitter<'a> {
    pub(super) b: FunctionBuilder<'a>,
    pub(super) env: &'a mut dyn JitEnv,
    pub(super) links: &'a mut HashMap<u64, Option<usize>>,
    pub(super) mem: MemoryModel,
    /// The `cpu` argument.
    pub(super) cpu: Value,
    pub(super) sig_helper: SigRef,
    pub(super) sig_block: SigRef,
    pub(super) regions: Regions,
    /// Whether the current position may receive instructions.
    pub(super) live: bool,
    /// Whether the current block is an unreachable one made after a terminator.
    pub(super) dead: bool,
    /// Whether the current block is out of line (slow paths, fault exits).
    pub(super) cold: bool,
    pub(super) labels: EntitySet<Block>,
    pub(super) bound: EntitySet<Block>,
    pub(super) targeted: EntitySet<Block>,
    pub(super) fault: Option<Block>,
    pub(super) fault_used: bool,
    /// Types of the variables semantics declared, by variable index.
    pub(super) var_tys: Vec<Option<Ty>>,
    pub(super) insns: u32,
    /// Guest address of the block; a direct exit to it jumps back to `head`.
    pub(super) pc: u64,
    /// [`crate::Mode::key`] of the block's mode.
    pub(super) mode_key: u32,
    /// The runtime's jump cache, probed by indirect exits (see `lookup`).
    pub(super) jump_cache: Option<JumpCacheLayout>,
    /// The loop head: budget check, then the body.
    pub(super) head: Block,
    /// Where a direct exit to the entry jumps: `head`, or with `edge_budget` the body after
    /// its check.
    pub(super) body: Block,
    /// The budget is checked on internal edges, not at the heads (see `internal_edge`).
    pub(super) edge_budget: bool,
    /// In a region, the head of every block after the entry, by guest address (see
    /// [`crate::semantics::translate_region`]); direct exits to them stay in the function.
    pub(super) region_heads: HashMap<u64, (Block, u16)>,
    /// Each budget check's instruction-count `iconst` and the block (by guest address)
    /// whose instructions it charges; patched at the end.
    pub(super) counts: Vec<(Inst, u64)>,
    /// Each block's guest address and the value of `insns` when it began.
    pub(super) block_starts: Vec<(u64, u32)>,
    /// The variable of the shadowed `icount`.
    pub(super) icount_var: Variable,
    /// The block's hotness counter ([`super::JitEnv::hot_counter`]), if it counts.
    pub(super) hot_counter: Option<usize>,
    /// `CpuState` fields (I64 at these offsets) mirrored in variables; see `load_state`.
    pub(super) shadows: Vec<(u32, Variable)>,
    /// Values `load_state` returned from a shadow, and the field they came from.
    pub(super) shadow_vals: HashMap<Value, u32>,
    /// GPRs whose unmodified value is reloaded from `CpuState` at each use.
    pub(super) reload: u16,
    /// Hypercalls are `int3` host traps (see [`super::JitConfig::trap_hypercalls`]).
    pub(super) trap_hypercalls: bool,
    /// Inline soft-TLB hits are counted (see [`super::JitConfig::count_tlb_hits`]).
    pub(super) count_tlb_hits: bool,
    /// The state carried across internal edges, if the function loops (see
    /// [`crate::emit::Carried`]).
    pub(super) carried: Option<Carried<Variable>>,
    /// Head exits left for the semantics to write (see [`super::frame`]); `Some` exactly when
    /// state is carried.
    pub(super) head_exits: Option<HeadExits>,
    /// Tag IR with guest instructions (see [`super::Shape`]'s `srclocs`).
    pub(super) srclocs: bool,
    pub(super) error: Option<JitError>,
}

/// The Cranelift type of `t`.
pub(super) fn clif(t: Ty) -> Type {
    match t {
        Ty::I8 => types::I8,
        Ty::I16 => types::I16,
        Ty::I32 => types::I32,
        Ty::I64 => types::I64,
    }
}

fn int_cc(c: Cmp) -> IntCC {
    match c {
        Cmp::Eq => IntCC::Equal,
        Cmp::Ne => IntCC::NotEqual,
        Cmp::Ult => IntCC::UnsignedLessThan,
        Cmp::Ule => IntCC::UnsignedLessThanOrEqual,
        Cmp::Ugt => IntCC::UnsignedGreaterThan,
        Cmp::Uge => IntCC::UnsignedGreaterThanOrEqual,
        Cmp::Slt => IntCC::SignedLessThan,
        Cmp::Sle => IntCC::SignedLessThanOrEqual,
        Cmp::Sgt => IntCC::SignedGreaterThan,
        Cmp::Sge => IntCC::SignedGreaterThanOrEqual,
    }
}

impl<'a> ClifEmitter<'a> {
    pub(super) fn fail(&mut self, what: &'static str) {
        self.error.get_or_insert(JitError::Internal(what));
    }

    /// Record an internal error (misuse of the emitter, or the runtime refusing something).
    pub(super) fn fail_internal(&mut self, what: &'static str) {
        self.fail(what)
    }

    /// The host address of `stub`, from the runtime.
    pub(super) fn env_host_stub(&mut self, stub: &HostStub) -> Option<usize> {
        self.env.host_stub(stub)
    }

    // ------------------------------------------------------------------ position

    /// Make sure the position can take instructions (see the module invariants).
    pub(super) fn ensure_live(&mut self) {
        if !self.live {
            let blk = self.b.create_block();
            self.b.switch_to_block(blk);
            self.live = true;
            self.dead = true;
        }
    }

    /// The current position was terminated.
    pub(super) fn terminated(&mut self) {
        self.live = false;
    }

    /// Continue in `blk`, a block the emitter made, whose predecessors are all known.
    pub(super) fn switch_sealed(&mut self, blk: Block, cold: bool) {
        if cold {
            self.b.set_cold_block(blk);
        }
        self.b.switch_to_block(blk);
        self.b.seal_block(blk);
        self.live = true;
        self.dead = false;
        self.cold = cold;
    }

    /// Whether the current position is out of line.
    pub(super) fn is_cold(&self) -> bool {
        self.cold
    }

    pub(super) fn ret_const(&mut self, v: u64) {
        self.ensure_live();
        let r = self.b.ins().iconst(types::I64, v as i64);
        self.b.ins().return_(&[r]);
        self.terminated();
    }

    // ------------------------------------------------------------------ values

    /// The constant `v` holds, if it is an `iconst` (masked to its type).
    pub(super) fn const_of(&self, v: Value) -> Option<u64> {
        let dfg = &self.b.func.dfg;
        match dfg.value_def(v) {
            ValueDef::Result(inst, 0) => match dfg.insts[inst] {
                InstructionData::UnaryImm {
                    opcode: Opcode::Iconst,
                    imm,
                } => Some(imm.bits() as u64 & self.ty(v).mask()),
                _ => None,
            },
            _ => None,
        }
    }

    /// `v` converted to `to` as the concrete evaluator would see it: zero-extended or
    /// truncated.
    pub(super) fn coerce(&mut self, v: Value, to: Ty) -> Value {
        let from = self.ty(v);
        if from.bits() == to.bits() {
            v
        } else if let Some(c) = self.const_of(v) {
            self.iconst(to, c)
        } else if from.bits() < to.bits() {
            self.ensure_live();
            self.b.ins().uextend(clif(to), v)
        } else {
            self.ensure_live();
            self.b.ins().ireduce(clif(to), v)
        }
    }

    fn fold(&mut self, ty: Ty, v: u64) -> Value {
        self.iconst(ty, v)
    }

    // ------------------------------------------------------------------ CpuState

    pub(super) fn cpu_flags(&self, off: u32, bytes: u32) -> MemFlagsData {
        if off.is_multiple_of(bytes) {
            self.regions.cpu
        } else {
            MemFlagsData::new()
                .with_notrap()
                .with_alias_region(self.regions.cpu.alias_region())
        }
    }

    /// Load an `I64` field of `CpuState`.
    pub(super) fn load_cpu(&mut self, off: u32) -> Value {
        self.load_state(Ty::I64, off)
    }

    /// Store an `I64` constant to a field of `CpuState`.
    pub(super) fn store_cpu_const(&mut self, off: u32, v: u64) {
        let c = self.iconst(Ty::I64, v);
        self.store_state(off, c);
    }

    // ------------------------------------------------------------------ helpers

    /// Call helper `h` with `args` (each converted to `I64`); no status check. Through the
    /// runtime's register-preserving trampoline when there is one.
    pub(super) fn call_raw(&mut self, h: Helper, args: [Value; 3]) -> Value {
        let args = args.map(|a| self.coerce(a, Ty::I64));
        let addr = self.env.helper_addr(h);
        let f = self.iconst(Ty::I64, addr as u64);
        if let Some(t) = self.env.preserving_trampoline() {
            let mut sig = cranelift_codegen::ir::Signature::new(CallConv::PreserveAll);
            for _ in 0..5 {
                sig.params
                    .push(cranelift_codegen::ir::AbiParam::new(types::I64));
            }
            let sig = self.b.import_signature(sig);
            let t = self.iconst(Ty::I64, t as u64);
            self.ensure_live();
            self.b
                .ins()
                .call_indirect(sig, t, &[self.cpu, args[0], args[1], args[2], f]);
            // Not `load_cpu`: `helper_ret` is never shadowed.
            let flags = self.cpu_flags(state::OFF_HELPER_RET, 8);
            return self
                .b
                .ins()
                .load(types::I64, flags, self.cpu, state::OFF_HELPER_RET as i32);
        }
        self.ensure_live();
        let call =
            self.b
                .ins()
                .call_indirect(self.sig_helper, f, &[self.cpu, args[0], args[1], args[2]]);
        self.b.inst_results(call)[0]
    }

    /// A hypercall as a real host trap: arguments to `helper_out[0..3]`, `int3` (the
    /// runtime's SIGTRAP handler runs the hypercall and resumes after it), the result from
    /// `helper_out[0]`. `debugtrap` is a memory fence for Cranelift's alias analysis, so the
    /// stores happen before it and the load after it.
    fn trap_call(&mut self, args: [Value; 3]) -> Value {
        for (i, a) in args.into_iter().enumerate() {
            let a = self.coerce(a, Ty::I64);
            self.store_state(state::OFF_HELPER_OUT + 8 * i as u32, a);
        }
        self.ensure_live();
        self.b.ins().debugtrap();
        self.load_state(Ty::I64, state::OFF_HELPER_OUT)
    }

    /// Reload every shadowed GPR from `CpuState`.
    fn refresh_gpr_shadows(&mut self) {
        self.ensure_live();
        for i in 0..self.shadows.len() {
            let (off, var) = self.shadows[i];
            if off == state::OFF_ICOUNT {
                continue;
            }
            let v = self
                .b
                .ins()
                .load(types::I64, self.regions.cpu, self.cpu, off as i32);
            self.b.def_var(var, v);
        }
    }

    /// After a helper that can stop: leave through the fault label if `status != 0`.
    pub(super) fn check_status(&mut self) {
        let cont = self.b.create_block();
        let cold = self.cold;
        self.check_status_then(cont, &[]);
        self.switch_sealed(cont, cold);
    }

    /// After a helper that can stop: leave through the fault label if `status != 0`, else
    /// continue at `next` with `args`. Terminates the position.
    pub(super) fn check_status_then(&mut self, next: Block, args: &[Value]) {
        let st = self.load_cpu(state::OFF_STATUS);
        let args: Vec<BlockArg> = args.iter().map(|&v| BlockArg::Value(v)).collect();
        match self.fault.filter(|&l| self.labels.contains(l)) {
            Some(l) => {
                self.fault_used = true;
                self.targeted.insert(l);
                self.b.set_cold_block(l);
                self.b.ins().brif(st, l, &[], next, &args);
                self.terminated();
            }
            None => {
                // No instruction is being emitted, so there is no precise state to restore:
                // return the status as it is.
                let out = self.b.create_block();
                self.b.ins().brif(st, out, &[], next, &args);
                self.switch_sealed(out, true);
                let st = self.load_cpu(state::OFF_STATUS);
                self.b.ins().return_(&[st]);
                self.terminated();
            }
        }
    }

    /// Tail-call the block-convention function at host address `f` (an `I64`).
    pub(super) fn tail_call(&mut self, f: Value) {
        self.ensure_live();
        self.b
            .ins()
            .return_call_indirect(self.sig_block, f, &[self.cpu]);
        self.terminated();
    }

    /// The type of a variable semantics declared.
    fn var_ty(&self, var: Variable) -> Option<Ty> {
        self.var_tys.get(var.as_u32() as usize).copied().flatten()
    }

    /// If `v` is a shadowed GPR's value that memory still holds (the guest register was
    /// not modified), a fresh load of the field: short live ranges instead of a register or
    /// a spill slot held across the block. Only for the GPRs in the reload mask (in a
    /// self-loop, those the loop never writes, so loop-carried values stay in registers).
    fn reload(&mut self, v: Value) -> Option<Value> {
        let v = self.b.func.dfg.resolve_aliases(v);
        let off = *self.shadow_vals.get(&v)?;
        let gpr = (off as usize).checked_sub(state::OFF_GPR)? / 8;
        if gpr >= 16 || self.reload & (1 << gpr) == 0 {
            return None;
        }
        let var = self.shadow(off)?;
        let cur = self.b.use_var(var);
        if self.b.func.dfg.resolve_aliases(cur) != v {
            return None;
        }
        Some(
            self.b
                .ins()
                .load(types::I64, self.regions.cpu, self.cpu, off as i32),
        )
    }

    /// The variable mirroring the `I64` field at `off`, if it is shadowed.
    fn shadow(&self, off: u32) -> Option<Variable> {
        self.shadows.iter().find(|s| s.0 == off).map(|s| s.1)
    }

    fn link_slot(&mut self, target: u64) -> Option<usize> {
        if let Some(&s) = self.links.get(&target) {
            return s;
        }
        let s = self.env.link_slot(target);
        self.links.insert(target, s);
        s
    }
}

impl ValueOps for ClifEmitter<'_> {
    type Value = Value;

    fn ty(&self, v: Value) -> Ty {
        match self.b.func.dfg.value_type(v) {
            types::I8 => Ty::I8,
            types::I16 => Ty::I16,
            types::I32 => Ty::I32,
            _ => Ty::I64,
        }
    }

    fn as_const(&self, v: Value) -> Option<u64> {
        self.const_of(v)
    }

    fn iconst(&mut self, ty: Ty, v: u64) -> Value {
        self.ensure_live();
        self.b.ins().iconst(clif(ty), (v & ty.mask()) as i64)
    }

    fn binop(&mut self, op: BinOp, a: Value, b: Value) -> Value {
        let ty = self.ty(a);
        let shift = matches!(
            op,
            BinOp::Shl | BinOp::UShr | BinOp::SShr | BinOp::Rotl | BinOp::Rotr
        );
        let b = if shift { b } else { self.coerce(b, ty) };
        let (ca, cb) = (self.const_of(a), self.const_of(b));
        if let (Some(x), Some(y)) = (ca, cb) {
            return self.fold(ty, eval_binop(op, ty, x, y));
        }
        // Identities that address arithmetic produces all the time (`disp + base`, `x << 0`).
        match (op, ca, cb) {
            (BinOp::Add | BinOp::Or | BinOp::Xor, Some(0), _) => return b,
            (BinOp::Add | BinOp::Sub | BinOp::Or | BinOp::Xor, _, Some(0))
            | (BinOp::Shl | BinOp::UShr | BinOp::SShr | BinOp::Rotl | BinOp::Rotr, _, Some(0))
            | (BinOp::Mul, _, Some(1)) => return a,
            (BinOp::And, _, Some(m)) if m == ty.mask() => return a,
            (BinOp::And, Some(m), _) if m == ty.mask() => return b,
            _ => {}
        }
        self.ensure_live();
        let i = self.b.ins();
        match op {
            BinOp::Add => i.iadd(a, b),
            BinOp::Sub => i.isub(a, b),
            BinOp::And => i.band(a, b),
            BinOp::Or => i.bor(a, b),
            BinOp::Xor => i.bxor(a, b),
            BinOp::Mul => i.imul(a, b),
            BinOp::UMulHi if ty == Ty::I64 => i.umulhi(a, b),
            BinOp::SMulHi if ty == Ty::I64 => i.smulhi(a, b),
            BinOp::UMulHi => self.mul_hi_narrow(false, ty, a, b),
            BinOp::SMulHi => self.mul_hi_narrow(true, ty, a, b),
            BinOp::Shl => i.ishl(a, b),
            BinOp::UShr => i.ushr(a, b),
            BinOp::SShr => i.sshr(a, b),
            BinOp::Rotl => i.rotl(a, b),
            BinOp::Rotr => i.rotr(a, b),
            BinOp::UDiv | BinOp::SDiv | BinOp::URem | BinOp::SRem => self.div_rem(op, ty, a, b),
        }
    }

    fn unop(&mut self, op: UnOp, a: Value) -> Value {
        let ty = self.ty(a);
        if let Some(x) = self.const_of(a) {
            return self.fold(ty, eval_unop(op, ty, x));
        }
        self.ensure_live();
        let i = self.b.ins();
        match op {
            UnOp::Not => i.bnot(a),
            UnOp::Neg => i.ineg(a),
            UnOp::Popcnt => i.popcnt(a),
            UnOp::Clz => i.clz(a),
            UnOp::Ctz => i.ctz(a),
            UnOp::Bswap if ty == Ty::I8 => a,
            UnOp::Bswap => i.bswap(a),
        }
    }

    fn icmp(&mut self, cc: Cmp, a: Value, b: Value) -> Value {
        let ty = self.ty(a);
        let b = self.coerce(b, ty);
        if let (Some(x), Some(y)) = (self.const_of(a), self.const_of(b)) {
            return self.fold(Ty::I8, eval_cmp(cc, ty, x, y));
        }
        self.ensure_live();
        self.b.ins().icmp(int_cc(cc), a, b)
    }

    fn select(&mut self, c: Value, t: Value, f: Value) -> Value {
        let ty = self.ty(t);
        let f = self.coerce(f, ty);
        if let Some(x) = self.const_of(c) {
            return if x != 0 { t } else { f };
        }
        if t == f {
            return t;
        }
        self.ensure_live();
        self.b.ins().select(c, t, f)
    }

    fn convert(&mut self, op: Conv, v: Value, to: Ty) -> Value {
        let from = self.ty(v);
        if let Some(x) = self.const_of(v) {
            return self.fold(to, eval_convert(op, from, to, x));
        }
        if from.bits() == to.bits() {
            return v;
        }
        self.ensure_live();
        let i = self.b.ins();
        if to.bits() < from.bits() {
            i.ireduce(clif(to), v)
        } else if op == Conv::Sext {
            i.sextend(clif(to), v)
        } else {
            i.uextend(clif(to), v)
        }
    }
}

impl Emitter for ClifEmitter<'_> {
    type Label = Block;
    type Var = Variable;
    type VVar = Variable;

    fn vload_state(&mut self, off: u32) -> Value {
        self.e_vload_state(off)
    }
    fn vstore_state(&mut self, off: u32, v: Value) {
        self.e_vstore_state(off, v)
    }
    fn vload_mem(&mut self, addr: Value) -> Value {
        self.e_vload_mem(addr)
    }
    fn vload_mem_scalar(&mut self, ty: Ty, addr: Value) -> Value {
        self.e_vload_mem_scalar(ty, addr)
    }
    fn vstore_mem(&mut self, addr: Value, v: Value) {
        self.e_vstore_mem(addr, v)
    }
    fn declare_vvar(&mut self) -> Variable {
        self.e_declare_vvar()
    }
    fn def_vvar(&mut self, var: Variable, v: Value) {
        self.e_def_vvar(var, v)
    }
    fn use_vvar(&mut self, var: Variable) -> Value {
        self.e_use_vvar(var)
    }
    fn call_stub(&mut self, stub: &HostStub, how: StubCall) {
        self.e_call_stub(stub, how)
    }

    fn call_stub_run(&mut self, stub: &HostStub) -> Option<Value> {
        Some(self.e_call_stub_run(stub))
    }

    fn load_state(&mut self, ty: Ty, off: u32) -> Value {
        if off as usize + ty.bytes() as usize > std::mem::size_of::<CpuState>() {
            // As the interpreter: outside CpuState reads as zero.
            return self.iconst(ty, 0);
        }
        if ty == Ty::I64 {
            if let Some(var) = self.shadow(off) {
                self.ensure_live();
                let v = self.b.use_var(var);
                self.shadow_vals
                    .insert(self.b.func.dfg.resolve_aliases(v), off);
                return v;
            }
        }
        let flags = self.cpu_flags(off, ty.bytes());
        self.ensure_live();
        self.b.ins().load(clif(ty), flags, self.cpu, off as i32)
    }

    fn reload_state(&mut self, ty: Ty, off: u32) -> Value {
        if off as usize + ty.bytes() as usize > std::mem::size_of::<CpuState>() {
            return self.iconst(ty, 0);
        }
        // The field's memory equals its shadow variable (module invariants).
        let flags = self.cpu_flags(off, ty.bytes());
        self.ensure_live();
        self.b.ins().load(clif(ty), flags, self.cpu, off as i32)
    }

    fn store_state(&mut self, off: u32, v: Value) {
        let bytes = self.ty(v).bytes();
        if off as usize + bytes as usize > std::mem::size_of::<CpuState>() {
            return;
        }
        let flags = self.cpu_flags(off, bytes);
        self.ensure_live();
        self.b.ins().store(flags, v, self.cpu, off as i32);
        let end = off + bytes;
        for i in 0..self.shadows.len() {
            let (s, var) = self.shadows[i];
            if off == s && bytes == 8 {
                self.b.def_var(var, v);
            } else if off < s + 8 && s < end {
                // A partial overwrite: the field's value is whatever memory now holds.
                let fresh = self
                    .b
                    .ins()
                    .load(types::I64, self.regions.cpu, self.cpu, s as i32);
                self.b.def_var(var, fresh);
            }
        }
    }

    fn declare_var(&mut self, ty: Ty) -> Variable {
        let var = self.b.declare_var(clif(ty));
        let i = var.as_u32() as usize;
        if self.var_tys.len() <= i {
            self.var_tys.resize(i + 1, None);
        }
        self.var_tys[i] = Some(ty);
        var
    }

    fn def_var(&mut self, var: Variable, v: Value) {
        let Some(ty) = self.var_ty(var) else {
            return self.fail("an undeclared variable was defined");
        };
        let v = self.coerce(v, ty);
        self.ensure_live();
        self.b.def_var(var, v);
    }

    fn use_var(&mut self, var: Variable) -> Value {
        let Some(ty) = self.var_ty(var) else {
            self.fail("an undeclared variable was used");
            return self.iconst(Ty::I64, 0);
        };
        self.ensure_live();
        match self.b.try_use_var(var) {
            Ok(v) => self.reload(v).unwrap_or(v),
            Err(_) => {
                self.fail("an undeclared variable was used");
                self.iconst(ty, 0)
            }
        }
    }

    fn load_mem(&mut self, ty: Ty, addr: Value) -> Value {
        let addr = self.coerce(addr, Ty::I64);
        self.guest_load(ty, addr)
    }

    fn store_mem(&mut self, addr: Value, v: Value) {
        let addr = self.coerce(addr, Ty::I64);
        self.guest_store(addr, v)
    }

    fn checks_ranges(&self) -> bool {
        matches!(self.mem, MemoryModel::Flat { .. })
    }

    fn check_range(&mut self, lo: Value, bytes: u64, write: bool) -> bool {
        let lo = self.coerce(lo, Ty::I64);
        self.check_flat_range(lo, bytes, write)
    }

    fn load_checked(&mut self, ty: Ty, addr: Value) -> Value {
        let addr = self.coerce(addr, Ty::I64);
        self.load_in_checked(ty, addr)
    }

    fn store_checked(&mut self, addr: Value, v: Value) {
        let addr = self.coerce(addr, Ty::I64);
        self.store_in_checked(addr, v)
    }

    fn call_helper(&mut self, h: Helper, args: [Value; 3]) -> Value {
        if h == Helper::ProbeWrite {
            self.probe_write(args);
            return self.iconst(Ty::I64, 0);
        }
        let r = if h == Helper::Hypercall && self.trap_hypercalls {
            self.trap_call(args)
        } else {
            self.call_raw(h, args)
        };
        if h == Helper::Hypercall {
            // The handler may have written any guest register behind the shadows' back.
            self.refresh_gpr_shadows();
        }
        if h.can_stop() {
            self.check_status();
        }
        r
    }

    fn new_label(&mut self) -> Block {
        let l = self.b.create_block();
        self.labels.insert(l);
        l
    }

    fn bind(&mut self, l: Block) {
        if !self.labels.contains(l) || self.bound.contains(l) {
            self.fail("a label was bound twice (or is not a label)");
            self.terminated();
            return;
        }
        if self.live {
            // Fall through into the label.
            self.b.ins().jump(l, &[]);
            self.targeted.insert(l);
        }
        self.bound.insert(l);
        self.b.switch_to_block(l);
        self.live = true;
        self.dead = false;
        self.cold = self.b.func.layout.is_cold(l);
    }

    fn mark_cold(&mut self, l: Block) {
        if self.labels.contains(l) {
            self.b.set_cold_block(l);
        }
    }

    fn jump(&mut self, l: Block) {
        if !self.labels.contains(l) {
            return self.fail("jump to something that is not a label");
        }
        self.ensure_live();
        self.b.ins().jump(l, &[]);
        self.targeted.insert(l);
        self.terminated();
    }

    fn branch(&mut self, cond: Value, then: Block, els: Block) {
        if !self.labels.contains(then) || !self.labels.contains(els) {
            return self.fail("branch to something that is not a label");
        }
        if then == els {
            return self.jump(then);
        }
        if let Some(c) = self.const_of(cond) {
            return self.jump(if c != 0 { then } else { els });
        }
        self.ensure_live();
        self.b.ins().brif(cond, then, &[], els, &[]);
        self.targeted.insert(then);
        self.targeted.insert(els);
        self.terminated();
    }

    fn set_fault_label(&mut self, l: Option<Block>) {
        // `Ctx` clears the label before asking whether it was used, so only a new label
        // resets the flag.
        if l.is_some() {
            self.insns = self.insns.saturating_add(1);
            self.fault_used = false;
        }
        if self.srclocs {
            let loc = l.map_or(super::SRCLOC_BETWEEN, |_| self.insns);
            self.b
                .set_srcloc(cranelift_codegen::ir::SourceLoc::new(loc));
        }
        self.fault = l;
    }

    fn fault_label_used(&self) -> bool {
        self.fault_used
    }

    fn supports_regions(&self) -> bool {
        true
    }

    fn carried(&self) -> Option<Carried<Variable>> {
        self.carried
    }

    fn is_internal(&self, pc: u64) -> bool {
        pc == self.pc || self.region_heads.contains_key(&pc)
    }

    fn take_head_exits(&mut self) -> Vec<(Block, u64, ExitReason)> {
        let exits = self.head_exits.take().unwrap_or_default();
        for &(l, _, _) in &exits {
            // Labels the semantics bind; already jumped to from their heads.
            self.labels.insert(l);
            self.targeted.insert(l);
        }
        exits
    }

    fn begin_region_block(&mut self, pc: u64) {
        let Some(&(head, reload)) = self.region_heads.get(&pc) else {
            return self.fail("a region block without a head");
        };
        if self.live && !self.dead {
            return self.fail("a region block began while the previous one runs on");
        }
        self.b.switch_to_block(head);
        let carried = self.carried.map_or(0, |c| c.gprs);
        self.reload = reload & !carried;
        self.block_starts.push((pc, self.insns));
        self.live = true;
        self.dead = false;
        self.cold = false;
        if self.edge_budget {
            // Its ways in checked the budget.
            return;
        }
        if let Some(counter) = self.hot_counter {
            // Runs inside a region count towards its promotion too, but only the entry may
            // leave with `Promote` (the runtime promotes the block at `rip`): count down
            // while above 1, so the entry's next pass reaches 0 exactly once.
            let p = self.b.ins().iconst(types::I64, counter as i64);
            let c = self.b.ins().load(types::I64, self.regions.counter, p, 0);
            let dec = self.b.ins().iadd_imm_s(c, -1);
            let above = self.b.ins().icmp_imm_s(IntCC::SignedGreaterThan, c, 1);
            let c = self.b.ins().select(above, dec, c);
            self.b.ins().store(self.regions.counter, c, p, 0);
        }
        self.charge(pc);
    }

    fn uncount(&mut self, skipped: u32) {
        if skipped == 0 {
            return;
        }
        // `icount` is a shadowed field: the load reads the variable, the store redefines it.
        let ic = self.load_state(Ty::I64, state::OFF_ICOUNT);
        let n = self.iconst(Ty::I64, u64::from(skipped));
        let v = self.binop(BinOp::Sub, ic, n);
        self.store_state(state::OFF_ICOUNT, v);
    }

    fn shares_fault_exits(&self) -> bool {
        true
    }

    fn hypercalls_only(&self) -> bool {
        self.trap_hypercalls
    }

    fn faulted(&self) -> bool {
        false
    }

    fn exit(&mut self, exit: Exit<Value>) {
        match exit {
            Exit::Jump(t) => {
                let t = self.coerce(t, Ty::I64);
                let internal = self
                    .const_of(t)
                    .and_then(|pc| self.region_heads.get(&pc).map(|h| h.0));
                if self.const_of(t) != Some(self.pc) && internal.is_none() {
                    self.store_state(state::OFF_RIP, t);
                }
                match self.const_of(t) {
                    Some(pc) if pc == self.pc => {
                        // A loop: straight back to the budget check, registers in variables.
                        let to = self.internal_edge(pc, self.head);
                        self.b.ins().jump(to, &[]);
                        self.terminated();
                    }
                    Some(pc) if internal.is_some() => {
                        // Another block of the region: its head, registers in variables.
                        if let Some(h) = internal {
                            let to = self.internal_edge(pc, h);
                            self.b.ins().jump(to, &[]);
                        }
                        self.terminated();
                    }
                    Some(pc) => match self.link_slot(pc) {
                        Some(slot) => {
                            self.store_cpu_const(state::OFF_LINK_SLOT, slot as u64);
                            let p = self.iconst(Ty::I64, slot as u64);
                            let f = self.b.ins().load(types::I64, self.regions.slot, p, 0);
                            self.tail_call(f);
                        }
                        None if self.jump_cache.is_some_and(|l| l.is_valid()) => {
                            // No link (under paging, a target on another page): find the
                            // successor as an indirect jump does, through the jump cache,
                            // which mapping changes clear, without a trip through the
                            // dispatcher.
                            self.store_cpu_const(state::OFF_LINK_SLOT, 0);
                            self.indirect_jump(t);
                        }
                        None => {
                            self.store_cpu_const(state::OFF_LINK_SLOT, 0);
                            self.ret_const(ExitReason::Jump as u64);
                        }
                    },
                    None => {
                        self.store_cpu_const(state::OFF_LINK_SLOT, 0);
                        self.indirect_jump(t);
                    }
                }
            }
            Exit::Return(r) => self.ret_const(r as u64),
            Exit::Status => {
                let st = self.load_cpu(state::OFF_STATUS);
                self.b.ins().return_(&[st]);
                self.terminated();
            }
            Exit::Host(f) => {
                let f = self.coerce(f, Ty::I64);
                self.tail_call(f);
            }
        }
    }
}

impl ClifEmitter<'_> {
    /// A join block with one parameter of Cranelift type `t`, and that parameter.
    pub(super) fn join_block_t(&mut self, t: Type) -> (Block, Value) {
        let j = self.b.create_block();
        let v = self.b.append_block_param(j, t);
        (j, v)
    }

    /// Jump to `target` passing `args`; terminates the position.
    pub(super) fn jump_with(&mut self, target: Block, args: &[Value]) {
        self.ensure_live();
        let args: Vec<BlockArg> = args.iter().map(|&v| BlockArg::Value(v)).collect();
        self.b.ins().jump(target, &args);
        self.terminated();
    }
}
