//! XMM values in the Cranelift emitter: [`VectorOps`] and the vector parts of [`Emitter`].
//!
//! Invariants:
//! - Every vector value handed to semantics is an `I8X16`; operations bitcast (free on x64)
//!   to the lane type they need and back.
//! - Each operation has exactly the meaning of [`crate::vector`]'s `eval_*`. Floating-point
//!   operations lower to the one SSE instruction the interpreter executes (ADDPS, ADDSD, ...),
//!   never to a sequence that could round or raise flags differently.
//! - No `f32const`/`f64const` is ever created: Cranelift folds float arithmetic on such
//!   constants with Rust's round-to-nearest and no exception flags, which the guest's MXCSR
//!   may not allow. Float operands always come from vectors (registers, memory, bitcasts).

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    types, AbiParam, BlockArg, ConstantData, Endianness, InstBuilder, InstructionData,
    MemFlagsData, Opcode, Signature, Type, Value, ValueDef,
};
use cranelift_codegen::isa::CallConv;
use cranelift_frontend::Variable;

use super::emitter::{clif, ClifEmitter};
use crate::emit::{ValueOps, VectorOps};
use crate::helpers::Helper;
use crate::hostexec::{HostStub, StubCall};
use crate::ir::Ty;
use crate::state::{self, CpuState};
use crate::vector::{Lanes, VBin, VCvt, VShift, VUn};

/// The canonical vector type.
pub(super) const V: Type = types::I8X16;

/// The Cranelift vector type of `l`.
fn vt(l: Lanes) -> Type {
    match l {
        Lanes::I8 => types::I8X16,
        Lanes::I16 => types::I16X8,
        Lanes::I32 => types::I32X4,
        Lanes::I64 => types::I64X2,
        Lanes::F32 | Lanes::F32S => types::F32X4,
        Lanes::F64 | Lanes::F64S => types::F64X2,
    }
}

fn little() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

impl ClifEmitter<'_> {
    /// `v` as a vector of type `t` (a bitcast unless it already is).
    pub(super) fn vcast(&mut self, v: Value, t: Type) -> Value {
        if self.b.func.dfg.value_type(v) == t {
            return v;
        }
        self.ensure_live();
        self.b.ins().bitcast(t, little(), v)
    }

    /// The low and high 64 bits of a vector.
    pub(super) fn v_halves(&mut self, v: Value) -> (Value, Value) {
        let w = self.vcast(v, types::I64X2);
        (
            self.b.ins().extractlane(w, 0),
            self.b.ins().extractlane(w, 1),
        )
    }

    /// The vector of two 64-bit halves.
    pub(super) fn v_from_halves(&mut self, lo: Value, hi: Value) -> Value {
        let lo = self.coerce(lo, Ty::I64);
        let hi = self.coerce(hi, Ty::I64);
        self.ensure_live();
        let w = self.b.ins().scalar_to_vector(types::I64X2, lo);
        let w = self.b.ins().insertlane(w, hi, 1);
        self.vcast(w, V)
    }

    fn vzero(&mut self, t: Type) -> Value {
        let z = self.vconst(0);
        self.vcast(z, t)
    }

    /// Both operands as `t`.
    fn v2(&mut self, a: Value, b: Value, t: Type) -> (Value, Value) {
        (self.vcast(a, t), self.vcast(b, t))
    }

    /// A scalar floating-point operation on lane 0, merged into `a`.
    fn scalar_float(&mut self, op: VBin, lanes: Lanes, a: Value, b: Value) -> Value {
        let t = vt(lanes);
        let (a, b) = self.v2(a, b, t);
        let x = self.b.ins().extractlane(a, 0);
        let y = self.b.ins().extractlane(b, 0);
        let r = match op {
            VBin::FAdd => self.b.ins().fadd(x, y),
            VBin::FSub => self.b.ins().fsub(x, y),
            VBin::FMul => self.b.ins().fmul(x, y),
            // `x < y ? x : y` is the pattern Cranelift lowers to MINSS/MINSD itself (and
            // `y < x ? x : y` to MAXSS/MAXSD), the exact instruction.
            VBin::FMin => {
                let c = self.b.ins().fcmp(FloatCC::LessThan, x, y);
                self.b.ins().select(c, x, y)
            }
            VBin::FMax => {
                let c = self.b.ins().fcmp(FloatCC::LessThan, y, x);
                self.b.ins().select(c, x, y)
            }
            VBin::FDiv => self.b.ins().fdiv(x, y),
            VBin::FSqrt => self.b.ins().sqrt(y),
            _ => {
                self.fail_internal("a scalar float operation without a lowering");
                x
            }
        };
        let r = self.b.ins().insertlane(a, r, 0);
        self.vcast(r, V)
    }

    /// CVTSS2SD/CVTSD2SS: lane 0 of `b` converted into lane 0 of `a`.
    fn scalar_cvt(&mut self, to_double: bool, a: Value, b: Value) -> Value {
        let (ta, tb) = if to_double {
            (types::F64X2, types::F32X4)
        } else {
            (types::F32X4, types::F64X2)
        };
        let a = self.vcast(a, ta);
        let b = self.vcast(b, tb);
        let x = self.b.ins().extractlane(b, 0);
        let r = if to_double {
            self.b.ins().fpromote(types::F64, x)
        } else {
            self.b.ins().fdemote(types::F32, x)
        };
        let r = self.b.ins().insertlane(a, r, 0);
        self.vcast(r, V)
    }

    /// Store `v` where nothing reads it, so the operation that made it stays (see the
    /// `sink` of `HostFrame`).
    fn sink(&mut self, v: Value) {
        let flags = self.cpu_flags(state::OFF_HX + crate::state::frame::SINK, 16);
        self.ensure_live();
        self.b.ins().store(
            flags,
            v,
            self.cpu,
            (state::OFF_HX + crate::state::frame::SINK) as i32,
        );
    }

    /// The exact host stub of a register-only form of `code` (operands XMM1, XMM2 and R8).
    fn synthetic_stub(
        &mut self,
        code: iced_x86::Code,
        ops: [iced_x86::Register; 2],
    ) -> Option<u64> {
        let insn = iced_x86::Instruction::with2(code, ops[0], ops[1]).ok()?;
        let plan = crate::hostexec::plan(&insn).ok()?;
        self.stub_addr(&plan.stub)
    }

    /// A guarded operation: `fast()` where `ok` holds, else the value the stub for `code`
    /// leaves in the frame at `out` (of type `t`), with `a` (and `b`) as XMM1 (and XMM2).
    #[allow(clippy::too_many_arguments)]
    fn guarded(
        &mut self,
        ok: Value,
        t: Type,
        fast: impl FnOnce(&mut Self) -> Value,
        code: iced_x86::Code,
        ops: [iced_x86::Register; 2],
        a: Value,
        b: Option<Value>,
        out: u32,
    ) -> Value {
        let addr = self.synthetic_stub(code, ops);
        self.ensure_live();
        let cold = self.is_cold();
        let (fast_b, slow_b) = (self.b.create_block(), self.b.create_block());
        let (join, v) = self.join_block_t(t);
        self.b.ins().brif(ok, fast_b, &[], slow_b, &[]);
        self.switch_sealed(fast_b, cold);
        let x = fast(self);
        self.jump_with(join, &[x]);
        self.switch_sealed(slow_b, true);
        let frame = state::OFF_HX + crate::state::frame::XMM;
        use crate::emit::Emitter;
        self.vstore_state(frame + 16, a);
        if let Some(b) = b {
            self.vstore_state(frame + 32, b);
        }
        if let Some(addr) = addr {
            self.call_stub_direct(addr);
        } else {
            self.fail_internal("no host stub for a guarded operation's slow path");
        }
        let flags = self.cpu_flags(out, t.bytes());
        let y = self.b.ins().load(t, flags, self.cpu, out as i32);
        self.jump_with(join, &[y]);
        self.switch_sealed(join, cold);
        v
    }

    /// `hi(a*b)` of 16-bit lanes, through the 32-bit products.
    fn mul_hi16(&mut self, signed: bool, a: Value, b: Value) -> Value {
        let (a, b) = self.v2(a, b, types::I16X8);
        let ins = |e: &mut Self, x: Value, y: Value, hi: bool| {
            let (x, y) = match (signed, hi) {
                (true, false) => (e.b.ins().swiden_low(x), e.b.ins().swiden_low(y)),
                (true, true) => (e.b.ins().swiden_high(x), e.b.ins().swiden_high(y)),
                (false, false) => (e.b.ins().uwiden_low(x), e.b.ins().uwiden_low(y)),
                (false, true) => (e.b.ins().uwiden_high(x), e.b.ins().uwiden_high(y)),
            };
            let p = e.b.ins().imul(x, y);
            if signed {
                e.b.ins().sshr_imm_u(p, 16)
            } else {
                e.b.ins().ushr_imm_u(p, 16)
            }
        };
        let lo = ins(self, a, b, false);
        let hi = ins(self, a, b, true);
        // The high halves fit in 16 bits, so neither narrowing saturates.
        let r = if signed {
            self.b.ins().snarrow(lo, hi)
        } else {
            self.b.ins().unarrow(lo, hi)
        };
        self.vcast(r, V)
    }

    /// The even 32-bit lanes of `a` and `b` widened to 64 bits and multiplied
    /// (PMULUDQ, PMULDQ).
    fn mul_even(&mut self, signed: bool, a: Value, b: Value) -> Value {
        let mask = [0, 1, 2, 3, 8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11];
        let pick = |e: &mut Self, v: Value| {
            let v = e.vshuffle(v, v, mask);
            let v = e.vcast(v, types::I32X4);
            if signed {
                e.b.ins().swiden_low(v)
            } else {
                e.b.ins().uwiden_low(v)
            }
        };
        let (x, y) = (pick(self, a), pick(self, b));
        let r = self.b.ins().imul(x, y);
        self.vcast(r, V)
    }

    /// Whether `v` is a `vconst` of all-zero bytes.
    fn is_zero_vconst(&self, v: Value) -> bool {
        let dfg = &self.b.func.dfg;
        match dfg.value_def(dfg.resolve_aliases(v)) {
            ValueDef::Result(inst, 0) => match dfg.insts[inst] {
                InstructionData::UnaryConst {
                    opcode: Opcode::Vconst,
                    constant_handle,
                } => dfg
                    .constants
                    .get(constant_handle)
                    .as_slice()
                    .iter()
                    .all(|&b| b == 0),
                _ => false,
            },
            _ => false,
        }
    }

    /// The address of `stub`'s code, or a recorded failure.
    fn stub_addr(&mut self, stub: &HostStub) -> Option<u64> {
        match self.env_host_stub(stub) {
            Some(a) => Some(a as u64),
            None => {
                self.fail_internal("the runtime could not provide a host stub");
                None
            }
        }
    }

    /// An x87/MMX stub: called directly while the guest's x87 state is live in the host FPU
    /// with nothing special going on (`CpuState::fpu_live == 1`) and, for a waiting
    /// instruction, no exception pending (the stub checks FSW.ES itself and reports in
    /// `HostFrame::status`); otherwise through the runtime's `FpuExec`, which loads the state,
    /// raises #MF or drives FERR#, and runs the stub.
    fn call_fpu_stub(&mut self, addr: u64, info: crate::hostexec::FpuInfo) {
        use crate::emit::Emitter;
        let live = self.load_state(Ty::I8, state::OFF_FPU_LIVE);
        let one = self.iconst(Ty::I8, 1);
        self.ensure_live();
        let fast_ok = self.b.ins().icmp(IntCC::Equal, live, one);
        let (fast, slow, join) = (
            self.b.create_block(),
            self.b.create_block(),
            self.b.create_block(),
        );
        self.b.ins().brif(fast_ok, fast, &[], slow, &[]);
        let cold = self.is_cold();
        self.switch_sealed(fast, cold);
        self.call_stub_direct(addr);
        if info.waiting && !info.unchecked {
            let st = self.load_state(Ty::I64, state::OFF_HX + crate::state::frame::STATUS);
            self.b.ins().brif(st, slow, &[], join, &[]);
        } else {
            self.b.ins().jump(join, &[]);
        }
        self.terminated();
        self.switch_sealed(slow, true);
        let a = self.iconst(Ty::I64, addr);
        let i = self.iconst(Ty::I64, info.bits());
        let z = self.iconst(Ty::I64, 0);
        self.call_helper(Helper::FpuExec, [a, i, z]);
        self.ensure_live();
        self.b.ins().jump(join, &[]);
        self.terminated();
        self.switch_sealed(join, cold);
    }

    /// A fused x87 run's stub ([`crate::emit::Emitter::call_stub_run`]): called directly
    /// while the x87 state is live (`CpuState::fpu_live == 1`); its status, or 1 without the
    /// call.
    pub(super) fn e_call_stub_run(&mut self, stub: &HostStub) -> Value {
        use crate::emit::Emitter;
        let Some(addr) = self.stub_addr(stub) else {
            return self.iconst(Ty::I64, 1);
        };
        let live = self.load_state(Ty::I8, state::OFF_FPU_LIVE);
        let one = self.iconst(Ty::I8, 1);
        let not_run = self.iconst(Ty::I64, 1);
        self.ensure_live();
        let fast_ok = self.b.ins().icmp(IntCC::Equal, live, one);
        let cold = self.is_cold();
        let fast = self.b.create_block();
        let (join, status) = self.join_block_t(types::I64);
        self.b
            .ins()
            .brif(fast_ok, fast, &[], join, &[BlockArg::Value(not_run)]);
        self.terminated();
        self.switch_sealed(fast, cold);
        self.call_stub_direct(addr);
        let st = self.load_state(Ty::I64, state::OFF_HX + crate::state::frame::STATUS);
        self.jump_with(join, &[st]);
        self.switch_sealed(join, cold);
        status
    }

    /// Call the stub at `addr` directly with the frame's address (no result). Stubs save
    /// every register they change, so the call is `preserve_all`: nothing live around it is
    /// spilled.
    fn call_stub_direct(&mut self, addr: u64) {
        let mut sig = Signature::new(CallConv::PreserveAll);
        sig.params.push(AbiParam::new(types::I64));
        let sig = self.b.import_signature(sig);
        let f = self.iconst(Ty::I64, addr);
        self.ensure_live();
        let frame = self.b.ins().iadd_imm_u(self.cpu, i64::from(state::OFF_HX));
        self.b.ins().call_indirect(sig, f, &[frame]);
    }
}

impl VectorOps for ClifEmitter<'_> {
    type Vec = Value;

    fn same_vec(&self, a: Value, b: Value) -> bool {
        a == b
    }

    fn vconst(&mut self, v: u128) -> Value {
        let c = self
            .b
            .func
            .dfg
            .constants
            .insert(ConstantData::from(v.to_le_bytes().as_slice()));
        self.ensure_live();
        self.b.ins().vconst(V, c)
    }

    fn vbin(&mut self, op: VBin, lanes: Lanes, a: Value, b: Value) -> Value {
        use VBin::*;
        self.ensure_live();
        if matches!(op, CvtSs2Sd | CvtSd2Ss) {
            return self.scalar_cvt(op == CvtSs2Sd, a, b);
        }
        if lanes.is_scalar() {
            return self.scalar_float(op, lanes, a, b);
        }
        let t = vt(lanes);
        let r = match op {
            MulHiS | MulHiU => return self.mul_hi16(op == MulHiS, a, b),
            CvtSs2Sd | CvtSd2Ss => unreachable!("handled before"),
            // Only through `vblendv`, which has the mask.
            Blendv => return a,
            FMin | FMax => {
                // `bitselect(x < y, x, y)` is MINPS/MINPD to Cranelift, `bitselect(y < x, x,
                // y)` MAXPS/MAXPD: the exact instructions, NaN and signed-zero rules included.
                let (x, y) = self.v2(a, b, t);
                let c = if op == FMin {
                    self.b.ins().fcmp(FloatCC::LessThan, x, y)
                } else {
                    self.b.ins().fcmp(FloatCC::LessThan, y, x)
                };
                let c = self.b.ins().bitcast(t, little(), c);
                let r = self.b.ins().bitselect(c, x, y);
                return self.vcast(r, V);
            }
            MulEvenU | MulEvenS => return self.mul_even(op == MulEvenS, a, b),
            UnpackLo | UnpackHi => {
                let bytes = lanes.bits() / 8;
                let base = if op == UnpackLo { 0 } else { 8 };
                let mut mask = [0u8; 16];
                for (i, m) in mask.iter_mut().enumerate() {
                    let (lane, byte) = (i as u32 / bytes, i as u32 % bytes);
                    let src = base + (lane / 2) * bytes + byte;
                    *m = (src + if lane % 2 == 1 { 16 } else { 0 }) as u8;
                }
                return self.vshuffle(a, b, mask);
            }
            MaddWd => {
                let (a, b) = self.v2(a, b, types::I16X8);
                let (al, bl) = (self.b.ins().swiden_low(a), self.b.ins().swiden_low(b));
                let (ah, bh) = (self.b.ins().swiden_high(a), self.b.ins().swiden_high(b));
                let lo = self.b.ins().imul(al, bl);
                let hi = self.b.ins().imul(ah, bh);
                self.b.ins().iadd_pairwise(lo, hi)
            }
            PackS | PackU => {
                let (a, b) = self.v2(a, b, t);
                if op == PackS {
                    self.b.ins().snarrow(a, b)
                } else {
                    self.b.ins().unarrow(a, b)
                }
            }
            _ => {
                let (a, b) = self.v2(a, b, t);
                let ins = self.b.ins();
                match op {
                    Add => ins.iadd(a, b),
                    Sub => ins.isub(a, b),
                    AddSatS => ins.sadd_sat(a, b),
                    AddSatU => ins.uadd_sat(a, b),
                    SubSatS => ins.ssub_sat(a, b),
                    SubSatU => ins.usub_sat(a, b),
                    MinS => ins.smin(a, b),
                    MinU => ins.umin(a, b),
                    MaxS => ins.smax(a, b),
                    MaxU => ins.umax(a, b),
                    AvgU => ins.avg_round(a, b),
                    MulLo => ins.imul(a, b),
                    CmpEq => ins.icmp(IntCC::Equal, a, b),
                    CmpGtS => ins.icmp(IntCC::SignedGreaterThan, a, b),
                    And => ins.band(a, b),
                    Or => ins.bor(a, b),
                    Xor => ins.bxor(a, b),
                    AndNot => ins.band_not(b, a),
                    Pshufb => ins.x86_pshufb(a, b),
                    FAdd => ins.fadd(a, b),
                    FSub => ins.fsub(a, b),
                    FMul => ins.fmul(a, b),
                    FDiv => ins.fdiv(a, b),
                    FSqrt => ins.sqrt(b),
                    // Handled above.
                    MulHiS | MulHiU | MulEvenU | MulEvenS | UnpackLo | UnpackHi | MaddWd
                    | PackS | PackU | CvtSs2Sd | CvtSd2Ss | Blendv | FMin | FMax => {
                        unreachable!("handled before")
                    }
                }
            }
        };
        self.vcast(r, V)
    }

    fn vun(&mut self, op: VUn, lanes: Lanes, a: Value) -> Value {
        self.ensure_live();
        let t = vt(lanes);
        let r = match op {
            VUn::Abs => {
                let a = self.vcast(a, t);
                self.b.ins().iabs(a)
            }
            VUn::FSqrt if lanes.is_scalar() => {
                let a = self.vcast(a, t);
                let x = self.b.ins().extractlane(a, 0);
                let r = self.b.ins().sqrt(x);
                let z = self.vzero(t);
                self.b.ins().insertlane(z, r, 0)
            }
            VUn::FSqrt => {
                let a = self.vcast(a, t);
                self.b.ins().sqrt(a)
            }
            VUn::WidenLoS => {
                let a = self.vcast(a, t);
                self.b.ins().swiden_low(a)
            }
            VUn::WidenLoU => {
                let a = self.vcast(a, t);
                self.b.ins().uwiden_low(a)
            }
        };
        self.vcast(r, V)
    }

    fn vshift(&mut self, op: VShift, lanes: Lanes, a: Value, count: Value) -> Value {
        let t = vt(lanes.int());
        let bits = u64::from(lanes.bits());
        let a = self.vcast(a, t);
        let count = self.coerce(count, Ty::I64);
        self.ensure_live();
        let r = if let Some(c) = self.const_of(count) {
            match op {
                VShift::Shl | VShift::UShr if c >= bits => self.vzero(t),
                VShift::Shl => self.b.ins().ishl_imm_u(a, c as i64),
                VShift::UShr => self.b.ins().ushr_imm_u(a, c as i64),
                VShift::SShr => self.b.ins().sshr_imm_u(a, c.min(bits - 1) as i64),
            }
        } else {
            let max = self.iconst(Ty::I64, bits - 1);
            let over = self.b.ins().icmp(IntCC::UnsignedGreaterThan, count, max);
            match op {
                VShift::SShr => {
                    let amt = self.b.ins().select(over, max, count);
                    self.b.ins().sshr(a, amt)
                }
                _ => {
                    let shifted = if op == VShift::Shl {
                        self.b.ins().ishl(a, count)
                    } else {
                        self.b.ins().ushr(a, count)
                    };
                    let z = self.vzero(t);
                    self.b.ins().select(over, z, shifted)
                }
            }
        };
        self.vcast(r, V)
    }

    fn vshuffle(&mut self, a: Value, b: Value, mask: [u8; 16]) -> Value {
        let (a, b) = self.v2(a, b, V);
        let m = mask.map(|i| i & 31);
        let imm = self
            .b
            .func
            .dfg
            .immediates
            .push(ConstantData::from(m.as_slice()));
        self.ensure_live();
        self.b.ins().shuffle(a, b, imm)
    }

    fn vextract(&mut self, v: Value, lanes: Lanes, idx: u8) -> Value {
        let l = lanes.int();
        let v = self.vcast(v, vt(l));
        self.ensure_live();
        self.b.ins().extractlane(v, idx % l.count() as u8)
    }

    fn vinsert(&mut self, v: Value, lanes: Lanes, idx: u8, x: Value) -> Value {
        let l = lanes.int();
        if idx == 0 && matches!(l, Lanes::I32 | Lanes::I64) && self.is_zero_vconst(v) {
            // A scalar into an all-zero vector (MOVSS/MOVSD/MOVD/MOVQ loads): one
            // `movd`/`movq`, which zeroes the other lanes, instead of a zeroing and an
            // `pinsr`.
            let x = self.coerce(x, l.ty());
            self.ensure_live();
            let r = self.b.ins().scalar_to_vector(vt(l), x);
            return self.vcast(r, V);
        }
        let v = self.vcast(v, vt(l));
        let x = self.coerce(x, l.ty());
        self.ensure_live();
        let r = self.b.ins().insertlane(v, x, idx % l.count() as u8);
        self.vcast(r, V)
    }

    fn vsplat(&mut self, lanes: Lanes, x: Value) -> Value {
        let l = lanes.int();
        let x = self.coerce(x, l.ty());
        self.ensure_live();
        let r = self.b.ins().splat(vt(l), x);
        self.vcast(r, V)
    }

    fn vmovmsk(&mut self, v: Value, lanes: Lanes) -> Value {
        let v = self.vcast(v, vt(lanes.int()));
        self.ensure_live();
        self.b.ins().vhigh_bits(types::I32, v)
    }

    fn vselect(&mut self, c: Value, t: Value, f: Value) -> Value {
        let (t, f) = self.v2(t, f, V);
        self.ensure_live();
        self.b.ins().select(c, t, f)
    }

    fn vblendv(&mut self, lanes: Lanes, a: Value, b: Value, mask: Value) -> Value {
        let t = vt(lanes.int());
        let (a, b) = self.v2(a, b, t);
        let m = self.vcast(mask, t);
        self.ensure_live();
        let r = self.b.ins().blendv(m, b, a);
        self.vcast(r, V)
    }

    fn vcvt(&mut self, op: VCvt, a: Value) -> Value {
        self.ensure_live();
        let r = match op {
            VCvt::Dq2Ps => {
                let a = self.vcast(a, types::I32X4);
                self.b.ins().fcvt_from_sint(types::F32X4, a)
            }
            VCvt::Ttps2Dq => {
                let a = self.vcast(a, types::F32X4);
                self.b.ins().x86_cvtt2dq(types::I32X4, a)
            }
            VCvt::Ps2Pd => {
                let a = self.vcast(a, types::F32X4);
                self.b.ins().fvpromote_low(a)
            }
            VCvt::Pd2Ps => {
                let a = self.vcast(a, types::F64X2);
                self.b.ins().fvdemote(a)
            }
            VCvt::Dq2Pd => {
                let a = self.vcast(a, types::I32X4);
                let w = self.b.ins().swiden_low(a);
                self.b.ins().fcvt_from_sint(types::F64X2, w)
            }
        };
        self.vcast(r, V)
    }

    fn vcvt_from_int(&mut self, lanes: Lanes, a: Value, x: Value) -> Value {
        let t = vt(lanes);
        let a = self.vcast(a, t);
        self.ensure_live();
        let r = self.b.ins().fcvt_from_sint(t.lane_type(), x);
        let r = self.b.ins().insertlane(a, r, 0);
        self.vcast(r, V)
    }

    fn vcvtt_to_int(&mut self, lanes: Lanes, a: Value, ty: Ty) -> Value {
        use iced_x86::{Code, Register as R};
        let double = lanes.bits() == 64;
        let (shift, emask, bias) = if double {
            (52, 0x7FF, 1023)
        } else {
            (23, 0xFF, 127)
        };
        let n = u64::from(ty.bits());
        // |x| < 2^(n-1): the truncation fits and is not the minimum; NaN, infinities and
        // everything else take the exact stub.
        let bits = self.vextract(a, lanes.int(), 0);
        let bits = self.coerce(bits, Ty::I64);
        self.ensure_live();
        let e = self.b.ins().ushr_imm_u(bits, shift);
        let e = self.b.ins().band_imm_u(e, emask);
        let ok = self
            .b
            .ins()
            .icmp_imm_u(IntCC::UnsignedLessThan, e, (bias + n - 1) as i64);
        let code = match (double, n) {
            (true, 64) => Code::Cvttsd2si_r64_xmmm64,
            (true, _) => Code::Cvttsd2si_r32_xmmm64,
            (false, 64) => Code::Cvttss2si_r64_xmmm32,
            (false, _) => Code::Cvttss2si_r32_xmmm32,
        };
        let r8 = if n == 64 { R::R8 } else { R::R8D };
        let t = clif(ty);
        let out = state::OFF_HX + crate::state::frame::GPR + 3 * 8;
        let r = self.guarded(
            ok,
            t,
            |e| {
                let v = e.vcast(a, vt(lanes));
                let x = e.b.ins().extractlane(v, 0);
                e.b.ins().fcvt_to_sint_sat(t, x)
            },
            code,
            [r8, R::XMM1],
            a,
            None,
            out,
        );
        self.sink(r);
        r
    }

    fn vfcmp_flags(&mut self, lanes: Lanes, a: Value, b: Value, ordered: bool) -> Value {
        use iced_x86::{Code, Register as R};
        let fast = |e: &mut Self| {
            let t = vt(lanes);
            let (va, vb) = e.v2(a, b, t);
            let x = e.b.ins().extractlane(va, 0);
            let y = e.b.ins().extractlane(vb, 0);
            let uno = e.b.ins().fcmp(FloatCC::Unordered, x, y);
            let eq = e.b.ins().fcmp(FloatCC::Equal, x, y);
            let lt = e.b.ins().fcmp(FloatCC::LessThan, x, y);
            let zf = e.b.ins().bor(uno, eq);
            let cf = e.b.ins().bor(uno, lt);
            let (zf, pf, cf) = (
                e.b.ins().uextend(types::I64, zf),
                e.b.ins().uextend(types::I64, uno),
                e.b.ins().uextend(types::I64, cf),
            );
            let zf = e.b.ins().ishl_imm_u(zf, 6);
            let pf = e.b.ins().ishl_imm_u(pf, 2);
            let f = e.b.ins().bor(zf, pf);
            e.b.ins().bor(f, cf)
        };
        self.ensure_live();
        let r = if !ordered {
            // UCOMIS* is the very instruction Cranelift's float compares use.
            fast(self)
        } else {
            // COMIS* also signals on quiet NaNs: operands that are not NaN take the UCOMIS*
            // path (identical flags and exceptions), a NaN the exact stub.
            let l = lanes.int();
            let (abs, inf) = if l == Lanes::I64 {
                (0x7FFF_FFFF_FFFF_FFFFu64, 0x7FF0_0000_0000_0000u64)
            } else {
                (0x7FFF_FFFF, 0x7F80_0000)
            };
            let xa = self.vextract(a, l, 0);
            let xb = self.vextract(b, l, 0);
            let ta = self.b.func.dfg.value_type(xa);
            let na = self.b.ins().band_imm_u(xa, abs as i64);
            let nb = self.b.ins().band_imm_u(xb, abs as i64);
            let m = self.b.ins().umax(na, nb);
            let inf = self.b.ins().iconst(ta, inf as i64);
            let ok = self.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, m, inf);
            let code = if l == Lanes::I64 {
                Code::Comisd_xmm_xmmm64
            } else {
                Code::Comiss_xmm_xmmm32
            };
            let out = state::OFF_HX + crate::state::frame::RFLAGS;
            let f = self.guarded(
                ok,
                types::I64,
                fast,
                code,
                [R::XMM1, R::XMM2],
                a,
                Some(b),
                out,
            );
            self.b.ins().band_imm_u(
                f,
                (crate::state::rflags::ZF | crate::state::rflags::PF | crate::state::rflags::CF)
                    as i64,
            )
        };
        self.sink(r);
        r
    }
}

// The vector parts of `Emitter`, called from `emitter.rs`'s impl.
impl ClifEmitter<'_> {
    pub(super) fn e_vload_state(&mut self, off: u32) -> Value {
        if off as usize + 16 > std::mem::size_of::<CpuState>() {
            return self.vconst(0);
        }
        let flags = self.cpu_flags(off, 16);
        self.ensure_live();
        self.b.ins().load(V, flags, self.cpu, off as i32)
    }

    pub(super) fn e_vstore_state(&mut self, off: u32, v: Value) {
        if off as usize + 16 > std::mem::size_of::<CpuState>() {
            return;
        }
        let v = self.vcast(v, V);
        let flags = self.cpu_flags(off, 16);
        self.ensure_live();
        self.b.ins().store(flags, v, self.cpu, off as i32);
    }

    pub(super) fn e_declare_vvar(&mut self) -> Variable {
        self.b.declare_var(V)
    }

    pub(super) fn e_def_vvar(&mut self, var: Variable, v: Value) {
        let v = self.vcast(v, V);
        self.ensure_live();
        self.b.def_var(var, v);
    }

    pub(super) fn e_use_vvar(&mut self, var: Variable) -> Value {
        self.ensure_live();
        match self.b.try_use_var(var) {
            Ok(v) => v,
            Err(_) => {
                self.fail_internal("an undeclared vector variable was used");
                self.vconst(0)
            }
        }
    }

    pub(super) fn e_vload_mem(&mut self, addr: Value) -> Value {
        let addr = self.coerce(addr, Ty::I64);
        self.guest_load_t(V, addr)
    }

    /// The JIT's [`crate::emit::Emitter::vload_mem_scalar`]: the vector is made where the
    /// load is, so the two are one `movss`/`movsd` from memory.
    pub(super) fn e_vload_mem_scalar(&mut self, ty: Ty, addr: Value) -> Value {
        let addr = self.coerce(addr, Ty::I64);
        let lo = if ty == Ty::I64 {
            types::I64X2
        } else {
            types::I32X4
        };
        let v = self.guest_load_lo(clif(ty), addr, Some(lo));
        self.vcast(v, V)
    }

    pub(super) fn e_vstore_mem(&mut self, addr: Value, v: Value) {
        let addr = self.coerce(addr, Ty::I64);
        let v = self.vcast(v, V);
        self.guest_store(addr, v)
    }

    pub(super) fn e_call_stub(&mut self, stub: &HostStub, how: StubCall) {
        let Some(addr) = self.stub_addr(stub) else {
            return;
        };
        match how {
            StubCall::Direct => self.call_stub_direct(addr),
            StubCall::Fpu(info) => self.call_fpu_stub(addr, info),
            StubCall::Checked => {
                let a = self.iconst(Ty::I64, addr);
                let z = self.iconst(Ty::I64, 0);
                <Self as crate::emit::Emitter>::call_helper(self, Helper::SimdChecked, [a, z, z]);
            }
        }
    }
}
