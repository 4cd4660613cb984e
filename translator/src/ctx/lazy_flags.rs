//! The flags part of [`Ctx`]: lazy descriptors recorded by flag-setting instructions, the
//! readers (one flag, a condition, all six), and their write-back to `CpuState`.
//!
//! Invariants:
//! - Flags written by an instruction are pending until it ends, as registers are.
//! - `FlagState::Stored` means "as in `CpuState`": a descriptor, or the bits in `rflags`
//!   when `flags_op == 0`; `FlagState::Carried` the same of the carried flag variables
//!   (whose `rflags` is the one in `CpuState`). Generated code reads it inline ([`flags::stored_flags`]) for
//!   exactly the flags it needs; nothing in a block changes the stored state except the
//!   write-backs before hypercalls and exits, which reset the caches below.

use iced_x86::ConditionCode;

use super::{Ctx, FlagState};
use crate::emit::Emitter;
use crate::flags::{self, FlagOp, Lazy};
use crate::ir::{BinOp, Cmp, Conv, Ty};
use crate::state::{self, rflags};

impl<E: Emitter> Ctx<E> {
    pub(super) fn current_flags(&self) -> FlagState<E::Value> {
        self.pending_flags.unwrap_or(self.flags)
    }

    /// Record lazily described flags (pending until the instruction ends). `aux` is an `I8`
    /// carry-in or preserved CF (see [`FlagOp`]); pass `None` for zero.
    pub fn set_flags_lazy(
        &mut self,
        op: FlagOp,
        a: E::Value,
        b: E::Value,
        res: E::Value,
        aux: Option<E::Value>,
    ) {
        let ty = self.e.ty(res);
        let aux = match aux {
            Some(v) => self.to_ty(v, Ty::I8, false),
            None => self.e.iconst(Ty::I8, 0),
        };
        self.pending_flags = Some(FlagState::Lazy(Lazy {
            op,
            ty,
            a,
            b,
            res,
            aux,
        }));
        self.writes = self.writes.wrapping_add(1);
    }

    /// Set all six arithmetic flags from an `I64` holding them in their RFLAGS positions
    /// (other bits must be zero).
    pub fn set_flags_bits(&mut self, bits: E::Value) {
        self.pending_flags = Some(FlagState::Computed(bits));
        self.writes = self.writes.wrapping_add(1);
    }

    /// Replace the arithmetic flags in `mask` with the same bits of `bits` (an `I64`),
    /// keeping the others.
    pub fn update_flags(&mut self, mask: u64, bits: E::Value) {
        let mask = mask & rflags::ARITH;
        let m = self.e.iconst(Ty::I64, mask);
        let new = self.e.binop(BinOp::And, bits, m);
        if mask == rflags::ARITH {
            return self.set_flags_bits(new);
        }
        let state = match self.current_flags() {
            FlagState::Stored => FlagState::StoredWith { mask, bits: new },
            FlagState::StoredWith { mask: m0, bits: b0 } => {
                let keep = self.e.iconst(Ty::I64, !mask);
                let b0 = self.e.binop(BinOp::And, b0, keep);
                let bits = self.e.binop(BinOp::Or, b0, new);
                FlagState::StoredWith {
                    mask: m0 | mask,
                    bits,
                }
            }
            _ => {
                let old = self.flags_bits();
                let keep = self.e.iconst(Ty::I64, !mask & rflags::ARITH);
                let old = self.e.binop(BinOp::And, old, keep);
                FlagState::Computed(self.e.binop(BinOp::Or, old, new))
            }
        };
        self.pending_flags = Some(state);
        self.writes = self.writes.wrapping_add(1);
    }

    /// The stored descriptor's fields, loaded once per straight-line stretch.
    fn stored_descriptor(&mut self) -> flags::Stored<E::Value> {
        if let Some(d) = self.entry_desc {
            return d;
        }
        let mut load = |off| self.e.load_state(Ty::I64, off);
        let d = flags::Stored {
            op: load(state::OFF_FLAGS_OP),
            a: load(state::OFF_FLAGS_A),
            b: load(state::OFF_FLAGS_B),
            res: load(state::OFF_FLAGS_RES),
            aux: load(state::OFF_FLAGS_AUX),
            rflags: load(state::OFF_RFLAGS),
        };
        // A value made inside a REP body does not dominate what follows the loop.
        if self.loop_depth == 0 {
            self.entry_desc = Some(d);
        }
        d
    }

    /// The stored flags in `mask` (RFLAGS positions, other bits zero), evaluated inline.
    fn stored_bits(&mut self, mask: u64) -> E::Value {
        let d = self.stored_descriptor();
        flags::stored_flags(&mut self.e, &d, mask)
    }

    /// The flags in `mask` of the descriptor in the carried flag variables, evaluated inline.
    fn carried_bits(&mut self, mask: u64) -> E::Value {
        let Some(vars) = self.carried_flags() else {
            return self.stored_bits(mask);
        };
        let [op, a, b, res, aux] = vars.map(|v| self.e.use_var(v));
        let rflags = self.e.load_state(Ty::I64, state::OFF_RFLAGS);
        let d = flags::Stored {
            op,
            a,
            b,
            res,
            aux,
            rflags,
        };
        flags::stored_flags(&mut self.e, &d, mask)
    }

    /// At an internal edge: make the carried flag variables describe flag state `fs` (see
    /// the `ctx` module invariants). Bits that only `rflags` can hold are stored there, with
    /// the variables' operation 0.
    pub(super) fn flags_to_carried(&mut self, fs: FlagState<E::Value>) {
        let Some(vars) = self.carried_flags() else {
            return self.write_back_flags(fs);
        };
        let d = match fs {
            FlagState::Carried => return,
            FlagState::Lazy(l) => self.descriptor_fields(&l),
            FlagState::Stored => DESCRIPTOR_OFFSETS.map(|off| self.e.load_state(Ty::I64, off)),
            fs => {
                let bits = self.bits_of(fs);
                self.store_flag_bits(bits);
                let z = self.e.iconst(Ty::I64, 0);
                self.e.def_var(vars[0], z);
                return;
            }
        };
        for (&var, v) in vars.iter().zip(d) {
            self.e.def_var(var, v);
        }
    }

    /// The six arithmetic flags as an `I64` in their RFLAGS positions.
    pub fn flags_bits(&mut self) -> E::Value {
        let fs = self.current_flags();
        match fs {
            FlagState::Lazy(l) => flags::compute_all(&mut self.e, &l),
            FlagState::Computed(v) => v,
            FlagState::InVar => self.e.use_var(self.flags_var),
            FlagState::Stored => self.stored_bits(rflags::ARITH),
            FlagState::Carried => self.carried_bits(rflags::ARITH),
            FlagState::StoredWith { mask, bits } => {
                let base = self.stored_bits(!mask & rflags::ARITH);
                self.e.binop(BinOp::Or, base, bits)
            }
        }
    }

    /// One arithmetic flag (an RFLAGS bit mask, e.g. `rflags::CF`) as an `I8` 0/1.
    pub fn flag(&mut self, bit: u64) -> E::Value {
        if let FlagState::Lazy(l) = self.current_flags() {
            return match bit {
                rflags::CF => flags::cf(&mut self.e, &l),
                rflags::PF => flags::pf(&mut self.e, &l),
                rflags::AF => flags::af(&mut self.e, &l),
                rflags::ZF => flags::zf(&mut self.e, &l),
                rflags::SF => flags::sf(&mut self.e, &l),
                _ => flags::of(&mut self.e, &l),
            };
        }
        let bits = match self.current_flags() {
            FlagState::StoredWith { mask, bits } if mask & bit != 0 => bits,
            FlagState::Stored | FlagState::StoredWith { .. } => self.stored_bits(bit),
            FlagState::Carried => self.carried_bits(bit),
            _ => self.flags_bits(),
        };
        let sh = self.e.iconst(Ty::I64, bit.trailing_zeros() as u64);
        let v = self.e.binop(BinOp::UShr, bits, sh);
        let v = self.e.convert(Conv::Trunc, v, Ty::I8);
        let one = self.e.iconst(Ty::I8, 1);
        self.e.binop(BinOp::And, v, one)
    }

    /// Evaluate a condition code (`I8` 0/1), straight from the operands where the flags are
    /// lazily those of a compare or logic operation.
    pub fn cond(&mut self, cc: ConditionCode) -> E::Value {
        use ConditionCode as C;
        if let FlagState::Lazy(l) = self.current_flags() {
            let direct = match l.op {
                FlagOp::Sub => match cc {
                    C::b => Some((Cmp::Ult, l.a, l.b)),
                    C::ae => Some((Cmp::Uge, l.a, l.b)),
                    C::e => Some((Cmp::Eq, l.a, l.b)),
                    C::ne => Some((Cmp::Ne, l.a, l.b)),
                    C::be => Some((Cmp::Ule, l.a, l.b)),
                    C::a => Some((Cmp::Ugt, l.a, l.b)),
                    C::l => Some((Cmp::Slt, l.a, l.b)),
                    C::ge => Some((Cmp::Sge, l.a, l.b)),
                    C::le => Some((Cmp::Sle, l.a, l.b)),
                    C::g => Some((Cmp::Sgt, l.a, l.b)),
                    _ => None,
                },
                FlagOp::Logic => {
                    let z = self.e.iconst(l.ty, 0);
                    match cc {
                        C::e | C::be => Some((Cmp::Eq, l.res, z)),
                        C::ne | C::a => Some((Cmp::Ne, l.res, z)),
                        C::s | C::l => Some((Cmp::Slt, l.res, z)),
                        C::ns | C::ge => Some((Cmp::Sge, l.res, z)),
                        C::le => Some((Cmp::Sle, l.res, z)),
                        C::g => Some((Cmp::Sgt, l.res, z)),
                        _ => None,
                    }
                }
                // ZF = (res == 0) and SF = sign(res), except ZF after Intel's MUL.
                _ => {
                    let z = self.e.iconst(l.ty, 0);
                    let zf_of_res = l.op != FlagOp::Mul;
                    match cc {
                        C::e if zf_of_res => Some((Cmp::Eq, l.res, z)),
                        C::ne if zf_of_res => Some((Cmp::Ne, l.res, z)),
                        C::s => Some((Cmp::Slt, l.res, z)),
                        C::ns => Some((Cmp::Sge, l.res, z)),
                        _ => None,
                    }
                }
            };
            if let Some((c, a, b)) = direct {
                return self.e.icmp(c, a, b);
            }
        }
        let one = self.e.iconst(Ty::I8, 1);
        let (f, negate) = match cc {
            C::o => (self.flag(rflags::OF), false),
            C::no => (self.flag(rflags::OF), true),
            C::b => (self.flag(rflags::CF), false),
            C::ae => (self.flag(rflags::CF), true),
            C::e => (self.flag(rflags::ZF), false),
            C::ne => (self.flag(rflags::ZF), true),
            C::be | C::a => {
                let c = self.flag(rflags::CF);
                let z = self.flag(rflags::ZF);
                (self.e.binop(BinOp::Or, c, z), cc == C::a)
            }
            C::s => (self.flag(rflags::SF), false),
            C::ns => (self.flag(rflags::SF), true),
            C::p => (self.flag(rflags::PF), false),
            C::np => (self.flag(rflags::PF), true),
            C::l | C::ge => {
                let s = self.flag(rflags::SF);
                let o = self.flag(rflags::OF);
                (self.e.binop(BinOp::Xor, s, o), cc == C::ge)
            }
            C::le | C::g => {
                let s = self.flag(rflags::SF);
                let o = self.flag(rflags::OF);
                let l = self.e.binop(BinOp::Xor, s, o);
                let z = self.flag(rflags::ZF);
                (self.e.binop(BinOp::Or, l, z), cc == C::g)
            }
            C::None => return one,
        };
        if negate {
            self.e.binop(BinOp::Xor, f, one)
        } else {
            f
        }
    }

    /// Move the committed flags into the flags variable so they survive control flow.
    pub(super) fn flags_to_var(&mut self) {
        let v = match self.flags {
            FlagState::InVar => return,
            _ => self.flags_bits_committed(),
        };
        self.e.def_var(self.flags_var, v);
        self.flags = FlagState::InVar;
    }

    fn flags_bits_committed(&mut self) -> E::Value {
        let saved = self.pending_flags.take();
        let v = self.flags_bits();
        self.pending_flags = saved;
        v
    }

    /// The direction flag as an `I8` 0/1 (read from `CpuState::rflags`).
    pub fn df(&mut self) -> E::Value {
        let f = self.e.load_state(Ty::I64, state::OFF_RFLAGS);
        let sh = self.e.iconst(Ty::I64, 10);
        let f = self.e.binop(BinOp::UShr, f, sh);
        let f = self.e.convert(Conv::Trunc, f, Ty::I8);
        let one = self.e.iconst(Ty::I8, 1);
        self.e.binop(BinOp::And, f, one)
    }

    /// Store flag state `fs` to `CpuState` (nothing for [`FlagState::Stored`]; the carried
    /// descriptor for [`FlagState::Carried`]).
    pub(super) fn write_back_flags(&mut self, fs: FlagState<E::Value>) {
        match fs {
            FlagState::Stored => {}
            FlagState::Lazy(l) => {
                let d = self.descriptor_fields(&l);
                self.store_descriptor(d);
            }
            FlagState::Carried => {
                if let Some(vars) = self.carried_flags() {
                    let d = vars.map(|v| self.e.use_var(v));
                    self.store_descriptor(d);
                }
            }
            _ => {
                let bits = self.bits_of(fs);
                self.store_flag_bits(bits);
            }
        }
    }

    /// The five `I64` fields of the stored form of `l`, in the order of
    /// [`DESCRIPTOR_OFFSETS`].
    pub(super) fn descriptor_fields(&mut self, l: &Lazy<E::Value>) -> [E::Value; 5] {
        let op = self.e.iconst(Ty::I64, flags::encode_op(l.op, l.ty));
        let mut wide = |v| self.to_ty(v, Ty::I64, false);
        [op, wide(l.a), wide(l.b), wide(l.res), wide(l.aux)]
    }

    /// Store a lazy descriptor (fields as [`Ctx::descriptor_fields`] gives them).
    pub(super) fn store_descriptor(&mut self, d: [E::Value; 5]) {
        for (off, v) in DESCRIPTOR_OFFSETS.into_iter().zip(d) {
            self.e.store_state(off, v);
        }
    }

    /// The six arithmetic flags of a state that is neither stored nor lazy, as an `I64` in
    /// their RFLAGS positions.
    pub(super) fn bits_of(&mut self, fs: FlagState<E::Value>) -> E::Value {
        match fs {
            FlagState::Computed(v) => v,
            FlagState::InVar => self.e.use_var(self.flags_var),
            _ => {
                let saved = (self.flags, self.pending_flags.take());
                self.flags = fs;
                let v = self.flags_bits();
                (self.flags, self.pending_flags) = saved;
                v
            }
        }
    }

    /// Store the arithmetic flags `bits` (see [`Ctx::bits_of`]) in `rflags` and mark the
    /// descriptor settled.
    pub(super) fn store_flag_bits(&mut self, bits: E::Value) {
        let old = self.e.load_state(Ty::I64, state::OFF_RFLAGS);
        let keep = self.e.iconst(Ty::I64, !rflags::ARITH);
        let old = self.e.binop(BinOp::And, old, keep);
        let new = self.e.binop(BinOp::Or, old, bits);
        self.e.store_state(state::OFF_RFLAGS, new);
        let z = self.e.iconst(Ty::I64, 0);
        self.e.store_state(state::OFF_FLAGS_OP, z);
    }
}

/// Offsets of the lazy descriptor's fields: operation, `a`, `b`, `res`, `aux`.
pub(super) const DESCRIPTOR_OFFSETS: [u32; 5] = [
    state::OFF_FLAGS_OP,
    state::OFF_FLAGS_A,
    state::OFF_FLAGS_B,
    state::OFF_FLAGS_RES,
    state::OFF_FLAGS_AUX,
];
