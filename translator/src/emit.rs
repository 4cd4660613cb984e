//! The emitter traits: the small interface every instruction's semantics is written against.
//!
//! Two implementations exist: the Cranelift emitter ([`crate::jit`]) builds IR, and the
//! interpreter emitter ([`crate::interp`]) evaluates each operation at once on concrete values.
//! Semantics never see which one they drive; that is what keeps the engines from drifting.
//!
//! Contract for implementations:
//! - Pure operations ([`ValueOps`]) mean exactly what [`crate::ir`]'s `eval_*` functions say.
//! - Memory operations and helper calls may fault. The JIT branches to the current fault label
//!   (see [`Emitter::set_fault_label`]); the interpreter records the fault, turns every later
//!   side effect of the instruction into a no-op, and reports it via [`Emitter::faulted`].
//! - After [`Emitter::exit`], the current code position is terminated; the caller must `bind`
//!   a label before emitting more.

use crate::helpers::Helper;
use crate::hostexec::{HostStub, StubCall};
use crate::ir::{BinOp, Cmp, Conv, Ty, UnOp};
use crate::state::ExitReason;
use crate::vector::{Lanes, VBin, VCvt, VShift, VUn};

/// What a looping function keeps in variables across its internal edges (the back edge to
/// its entry, the edges between a region's blocks), written back to `CpuState` only on the
/// way out: every exit, fault exit, hypercall and head exit. The variables are defined at
/// the function's entry from `CpuState`, so they hold the guest's values at every head.
#[derive(Clone, Copy, Debug)]
pub struct Carried<V> {
    /// The GPRs carried; `gpr[i]` is the variable of GPR `i` for each of them.
    pub gprs: u16,
    pub gpr: [Option<V>; 16],
    /// If the flags are carried too, the variables of the lazy-flag descriptor's five fields
    /// (`flags_op`, `a`, `b`, `res`, `aux`, all `I64`). With `flags_op == 0` the arithmetic
    /// flags are those in `rflags`, which is then current in `CpuState`.
    pub flags: Option<[V; 5]>,
}

/// Pure value operations. Implemented by every emitter and by [`crate::flags::Concrete`].
pub trait ValueOps {
    /// A value: an SSA value in the JIT, a concrete integer in the interpreter.
    type Value: Copy + std::fmt::Debug;

    /// The type of a value.
    fn ty(&self, v: Self::Value) -> Ty;
    /// The value, if it is known at translation time (always, in the interpreter).
    fn as_const(&self, v: Self::Value) -> Option<u64>;
    /// An integer constant (masked to `ty`).
    fn iconst(&mut self, ty: Ty, v: u64) -> Self::Value;
    /// `a op b`; see [`BinOp`].
    fn binop(&mut self, op: BinOp, a: Self::Value, b: Self::Value) -> Self::Value;
    /// `op a`; see [`UnOp`].
    fn unop(&mut self, op: UnOp, a: Self::Value) -> Self::Value;
    /// Compare; the result is an `I8` 0 or 1.
    fn icmp(&mut self, cc: Cmp, a: Self::Value, b: Self::Value) -> Self::Value;
    /// `c != 0 ? t : f`; `c` is any integer type, `t` and `f` share a type.
    fn select(&mut self, c: Self::Value, t: Self::Value, f: Self::Value) -> Self::Value;
    /// Width conversion.
    fn convert(&mut self, op: Conv, v: Self::Value, to: Ty) -> Self::Value;
    /// Whether every value is known at once (the interpreter). Lets `Ctx` read state such
    /// as the lazy-flags descriptor at translation time instead of emitting code for it.
    fn is_concrete(&self) -> bool {
        false
    }
}

/// Pure 128-bit vector operations (XMM values). Their exact meaning is
/// [`crate::vector::eval_bin`] and friends, which the interpreter runs; the JIT lowers each to
/// Cranelift IR with the same bits, and (for floating point) to the same host instruction, so
/// MXCSR's rounding, DAZ, FTZ and exception flags apply as on hardware.
pub trait VectorOps: ValueOps {
    /// A 128-bit vector value.
    type Vec: Copy + std::fmt::Debug;

    /// A constant vector.
    fn vconst(&mut self, v: u128) -> Self::Vec;
    /// Whether `a` and `b` are known to be the same value (one register read twice, or a
    /// copy of it). Semantics use it where a compiler would fold an operation on equal
    /// operands that the CPU still performs (MINPS x, x raises IE on a NaN and DE on a
    /// denormal, and DAZ flushes). `false` is always safe.
    fn same_vec(&self, a: Self::Vec, b: Self::Vec) -> bool {
        let _ = (a, b);
        false
    }
    /// `a op b` lane-wise; see [`VBin`].
    fn vbin(&mut self, op: VBin, lanes: Lanes, a: Self::Vec, b: Self::Vec) -> Self::Vec;
    /// `op a` lane-wise; see [`VUn`].
    fn vun(&mut self, op: VUn, lanes: Lanes, a: Self::Vec) -> Self::Vec;
    /// Shift every lane by `count` (an `I64`, not masked: x86's PSLL/PSRL give 0 and PSRA
    /// the sign for counts of the lane width or more).
    fn vshift(&mut self, op: VShift, lanes: Lanes, a: Self::Vec, count: Self::Value) -> Self::Vec;
    /// Byte shuffle: result byte `i` is byte `mask[i]` of `a` (0..16) or of `b` (16..32).
    fn vshuffle(&mut self, a: Self::Vec, b: Self::Vec, mask: [u8; 16]) -> Self::Vec;
    /// Lane `idx` of `v` (integer lanes) as a value of the lane's type.
    fn vextract(&mut self, v: Self::Vec, lanes: Lanes, idx: u8) -> Self::Value;
    /// `v` with lane `idx` (integer lanes) replaced by `x` (truncated to the lane).
    fn vinsert(&mut self, v: Self::Vec, lanes: Lanes, idx: u8, x: Self::Value) -> Self::Vec;
    /// `x` (truncated to the lane) in every lane.
    fn vsplat(&mut self, lanes: Lanes, x: Self::Value) -> Self::Vec;
    /// The top bit of every lane, lane 0 in bit 0 (an `I32`): MOVMSKPS/PD, PMOVMSKB.
    fn vmovmsk(&mut self, v: Self::Vec, lanes: Lanes) -> Self::Value;
    /// `c != 0 ? t : f` for a scalar condition.
    fn vselect(&mut self, c: Self::Value, t: Self::Vec, f: Self::Vec) -> Self::Vec;
    /// Lane-wise `mask's top bit ? b : a` ([`crate::vector::eval_blendv`]).
    fn vblendv(&mut self, lanes: Lanes, a: Self::Vec, b: Self::Vec, mask: Self::Vec) -> Self::Vec;
    /// A packed conversion ([`crate::vector::eval_cvt`]).
    fn vcvt(&mut self, op: VCvt, a: Self::Vec) -> Self::Vec;
    /// CVTSI2SS/CVTSI2SD of `x` (an `I32` or `I64`) into lane 0 of `a`
    /// ([`crate::vector::eval_cvt_from_int`]).
    fn vcvt_from_int(&mut self, lanes: Lanes, a: Self::Vec, x: Self::Value) -> Self::Vec;
    /// CVTTSS2SI/CVTTSD2SI of lane 0 of `a` to an integer of type `ty` (`I32` or `I64`),
    /// for every input ([`crate::vector::eval_cvtt_to_int`]).
    fn vcvtt_to_int(&mut self, lanes: Lanes, a: Self::Vec, ty: Ty) -> Self::Value;
    /// (U)COMISS/(U)COMISD of lane 0: ZF, PF, CF as an `I64` in their RFLAGS positions
    /// ([`crate::vector::eval_fcmp_flags`]).
    fn vfcmp_flags(
        &mut self,
        lanes: Lanes,
        a: Self::Vec,
        b: Self::Vec,
        ordered: bool,
    ) -> Self::Value;
}

/// How a block (or an interpreted instruction) leaves.
#[derive(Clone, Copy, Debug)]
pub enum Exit<V> {
    /// Continue at `target` (an `I64`). If `target` is a constant the JIT links it directly.
    Jump(V),
    /// Return to the dispatcher with this reason; `rip` has been stored by the caller.
    Return(ExitReason),
    /// Return to the dispatcher with the reason a helper left in `CpuState::status` (the
    /// fault path); `rip` has been stored by the caller.
    Status,
    /// Continue at the host code at address `code` (an `I64`) that the runtime chose for the
    /// `rip` and mode a hypercall handler left ([`crate::sensitive::Resume`]); `rip` and
    /// `link_slot = 0` have been stored by the caller. Engines without host code return to
    /// the dispatcher with [`ExitReason::Jump`] instead.
    Host(V),
}

/// Everything semantics need beyond pure values: guest CPU state, variables, guest memory,
/// helpers, and control flow.
pub trait Emitter: ValueOps + VectorOps {
    /// A position in the code that can be jumped to (JIT only; the interpreter never
    /// receives a non-constant condition so it never needs labels).
    type Label: Copy + std::fmt::Debug;
    /// A mutable variable (SSA variable in the JIT, a slot in the interpreter).
    type Var: Copy + std::fmt::Debug;
    /// A mutable vector variable.
    type VVar: Copy + std::fmt::Debug;

    /// Load a field of `CpuState` at byte offset `off`.
    fn load_state(&mut self, ty: Ty, off: u32) -> Self::Value;
    /// Store to a field of `CpuState` at byte offset `off`.
    fn store_state(&mut self, off: u32, v: Self::Value);
    /// [`Emitter::load_state`] as a fresh read of memory where it matters: a JIT that
    /// mirrors fields in variables reads the field here instead of keeping an earlier value
    /// alive up to this point (for cold code that needs a field's value once).
    fn reload_state(&mut self, ty: Ty, off: u32) -> Self::Value {
        self.load_state(ty, off)
    }

    /// Declare a variable of type `ty`.
    fn declare_var(&mut self, ty: Ty) -> Self::Var;
    /// Assign a variable.
    fn def_var(&mut self, var: Self::Var, v: Self::Value);
    /// Read a variable.
    fn use_var(&mut self, var: Self::Var) -> Self::Value;

    /// Read guest memory at virtual address `addr` (`I64`). May fault.
    fn load_mem(&mut self, ty: Ty, addr: Self::Value) -> Self::Value;
    /// Write guest memory at virtual address `addr` (`I64`). May fault.
    fn store_mem(&mut self, addr: Self::Value, v: Self::Value);

    /// Load a 128-bit field of `CpuState` at byte offset `off` (16-byte aligned).
    fn vload_state(&mut self, off: u32) -> Self::Vec;
    /// Store a 128-bit field of `CpuState` at byte offset `off` (16-byte aligned).
    fn vstore_state(&mut self, off: u32, v: Self::Vec);
    /// Read 16 bytes of guest memory at virtual address `addr` (`I64`). May fault.
    fn vload_mem(&mut self, addr: Self::Value) -> Self::Vec;
    /// Read a `ty` (`I32` or `I64`) of guest memory at virtual address `addr` (`I64`) into
    /// lane 0 of a vector whose other lanes are zero (the loads of MOVSS, MOVSD, MOVD and
    /// MOVQ and the scalar operands of SSE arithmetic). May fault.
    fn vload_mem_scalar(&mut self, ty: Ty, addr: Self::Value) -> Self::Vec {
        let x = self.load_mem(ty, addr);
        let z = self.vconst(0);
        let lanes = if ty == Ty::I64 {
            Lanes::I64
        } else {
            Lanes::I32
        };
        self.vinsert(z, lanes, 0, x)
    }
    /// Write 16 bytes of guest memory at virtual address `addr` (`I64`). May fault; nothing
    /// is written then.
    fn vstore_mem(&mut self, addr: Self::Value, v: Self::Vec);
    /// Declare a vector variable.
    fn declare_vvar(&mut self) -> Self::VVar;
    /// Assign a vector variable.
    fn def_vvar(&mut self, var: Self::VVar, v: Self::Vec);
    /// Read a vector variable.
    fn use_vvar(&mut self, var: Self::VVar) -> Self::Vec;

    /// Run a host stub on `CpuState::hx` (see [`crate::hostexec`]). With
    /// [`StubCall::Direct`] it cannot fault; the other kinds go through the runtime, which
    /// may stop the instruction (then the fault label is taken, as for a helper that
    /// [`Helper::can_stop`]).
    fn call_stub(&mut self, stub: &HostStub, how: StubCall);

    /// Run the stub of a fused x87 run ([`crate::hostexec::plan_run`]) if the guest's x87
    /// state is live in the host FPU with nothing special going on, and return
    /// `HostFrame::status` after it (an `I64`: 0, every instruction ran; `k + 1`,
    /// instructions `0..k` ran and instruction `k` found an exception pending), or 1 without
    /// running it. It never faults: the caller runs the rest one instruction at a time.
    /// `None` (the default): the emitter does not fuse, and emitted nothing.
    fn call_stub_run(&mut self, stub: &HostStub) -> Option<Self::Value> {
        let _ = stub;
        None
    }

    /// Call a runtime helper with three `I64` arguments; returns its `I64` result. If
    /// [`Helper::can_stop`], a nonzero `status` afterwards leaves through the fault label.
    fn call_helper(&mut self, h: Helper, args: [Self::Value; 3]) -> Self::Value;

    /// A new, unbound label.
    fn new_label(&mut self) -> Self::Label;
    /// Continue emitting at `l`.
    fn bind(&mut self, l: Self::Label);
    /// Lay `l` out of line: the code from it is rarely run.
    fn mark_cold(&mut self, l: Self::Label) {
        let _ = l;
    }
    /// Unconditional jump; terminates the current position.
    fn jump(&mut self, l: Self::Label);
    /// Conditional branch on `cond != 0`; terminates the current position.
    fn branch(&mut self, cond: Self::Value, then: Self::Label, els: Self::Label);

    /// Where faulting memory accesses and helpers go (JIT). `None` while no instruction is
    /// being emitted.
    fn set_fault_label(&mut self, l: Option<Self::Label>);
    /// Whether anything branched to the current fault label since it was last set to
    /// `Some` (asked before the label is cleared).
    fn fault_label_used(&self) -> bool;
    /// Interpreter: a fault happened in the current instruction (always false in the JIT).
    fn faulted(&self) -> bool;

    /// Leave the block. The caller has written back registers, flags and (for `Return`) RIP.
    fn exit(&mut self, exit: Exit<Self::Value>);

    /// The exit about to be emitted leaves `skipped` of the block's instructions (the
    /// current one included) unexecuted. An emitter that charges `icount` for the whole block
    /// at entry (the JIT) takes them back; one that counts retired instructions itself (the
    /// interpreter) does nothing.
    fn uncount(&mut self, skipped: u32) {
        let _ = skipped;
    }

    /// Start the next block of a region (see [`crate::semantics::translate_region`]): the
    /// guest block at `pc`, whose head charges its own instructions and checks the budget.
    /// Direct jumps to a region block's `pc` stay inside the function. Only an emitter that
    /// returns true from [`Emitter::supports_regions`] is given regions.
    fn begin_region_block(&mut self, pc: u64) {
        let _ = pc;
    }

    /// Whether this emitter translates regions (several guest blocks in one function).
    fn supports_regions(&self) -> bool {
        false
    }

    /// The state a looping function carries across its internal edges in variables instead
    /// of `CpuState` (see [`Carried`]); `None` (the default) when every edge writes back.
    fn carried(&self) -> Option<Carried<Self::Var>> {
        None
    }

    /// Whether a direct jump to `pc` stays in this function (the entry of a self-loop, a
    /// region's block) rather than leaving it.
    fn is_internal(&self, pc: u64) -> bool {
        let _ = pc;
        false
    }

    /// The exits of the function's heads (budget, promotion) that the semantics must write
    /// the carried state back on: each label to bind once, the head's `pc` (to store as
    /// RIP) and the reason to return. Empty unless [`Emitter::carried`] is `Some`.
    fn take_head_exits(&mut self) -> Vec<(Self::Label, u64, ExitReason)> {
        Vec::new()
    }

    /// Check once, before a run of stack accesses, that the `bytes` bytes of guest memory
    /// at `lo` (an `I64`) are plain RAM an access reaches without a helper (and, with
    /// `write`, hold no translated code); if not, leave through the current instruction's
    /// fault exit with [`ExitReason::CodeModified`], so the dispatcher single-steps the
    /// instruction (precisely, through the helpers) and goes on after it. Returns whether
    /// the check was emitted: only then may [`Emitter::load_checked`] and
    /// [`Emitter::store_checked`] be used, for addresses inside the range, up to the end of
    /// the run. Default: no check (every access is checked by itself).
    fn check_range(&mut self, lo: Self::Value, bytes: u64, write: bool) -> bool {
        let _ = (lo, bytes, write);
        false
    }
    /// Whether [`Emitter::check_range`] can check ranges at all (asked before computing
    /// the range's address, so emitters without it get no dead arithmetic). Default: no.
    fn checks_ranges(&self) -> bool {
        false
    }
    /// [`Emitter::load_mem`] of an address inside a range [`Emitter::check_range`] checked.
    fn load_checked(&mut self, ty: Ty, addr: Self::Value) -> Self::Value {
        self.load_mem(ty, addr)
    }
    /// [`Emitter::store_mem`] to an address inside a range [`Emitter::check_range`]
    /// checked for writing.
    fn store_checked(&mut self, addr: Self::Value, v: Self::Value) {
        self.store_mem(addr, v)
    }

    /// Whether sensitive instructions must reach the runtime as hypercalls (the trap
    /// engine makes each one a host trap), so none takes a cheaper helper. Default: no.
    fn hypercalls_only(&self) -> bool {
        false
    }
    /// Whether the fault exits of a block share code: each faulting instruction jumps with
    /// its values into a common tail (`ctx::fault_tail`) instead of writing the state back
    /// itself. Worth it where every copy costs compilation and code (the JIT); a recorder's
    /// edge moves cost about what the stores they replace do. Default: no.
    fn shares_fault_exits(&self) -> bool {
        false
    }

    /// [`Emitter::uncount`] for a count known only when the exit runs (an `I64`): the fault
    /// exits of a block share one tail that takes it as a value. The default takes a
    /// constant back through `uncount` and any other value from `icount` in `CpuState`.
    fn uncount_value(&mut self, skipped: Self::Value) {
        if let Some(n) = self.as_const(skipped) {
            return self.uncount(u32::try_from(n).unwrap_or(u32::MAX));
        }
        let ic = self.load_state(Ty::I64, crate::state::OFF_ICOUNT);
        let v = self.binop(BinOp::Sub, ic, skipped);
        self.store_state(crate::state::OFF_ICOUNT, v);
    }
}
