//! Lazy arithmetic flags, written once for every emitter.
//!
//! An instruction that sets flags records *how* they would be computed ([`Lazy`]: the
//! operation, its operands and result) instead of computing them. Readers ask for exactly what
//! they need: a `JL` after `CMP` becomes one signed compare of the original operands, as in
//! native code. At a block exit the descriptor is stored to `CpuState` (see
//! [`crate::state`]); the next block materializes it through [`materialize`] only if it reads
//! flags before writing them.
//!
//! Invariant: `cf/pf/af/zf/sf/of` below are the only definition of the arithmetic flags; the
//! JIT, the interpreter and [`materialize`] all evaluate these functions.
//!
//! Flags the manuals leave undefined follow the host's [`Vendor`] (the guest sees the host's
//! CPUID vendor, so it must see that vendor's flags too), chosen **at translation time**:
//! semantics ask [`Ctx::vendor`](crate::ctx::Ctx::vendor) which formula or which [`FlagOp`]
//! to record. A descriptor's meaning never depends on the vendor (Intel's MUL flags are their
//! own [`FlagOp::Mul`]), so [`materialize`], `CpuState::full_rflags` and the
//! `FlagsMaterialize` helper need no vendor and give the bits the inline evaluation gives.

use std::sync::OnceLock;

use crate::emit::ValueOps;
use crate::ir::{eval_binop, eval_cmp, eval_convert, eval_unop, BinOp, Cmp, Conv, Ty, UnOp};
use crate::state::rflags;

/// The operation whose flags a [`Lazy`] descriptor describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FlagOp {
    /// `res = a + b` (also INC, with `b = 1` and `aux` = the preserved CF).
    Add = 1,
    /// `res = a + b + aux`.
    Adc = 2,
    /// `res = a - b` (CMP, NEG as `0 - b`; DEC with `b = 1` and `aux` = preserved CF).
    Sub = 3,
    /// `res = a - b - aux`.
    Sbb = 4,
    /// AND/OR/XOR/TEST: CF = OF = 0.
    Logic = 5,
    /// INC: as `Add` but CF = `aux`.
    Inc = 6,
    /// DEC: as `Sub` but CF = `aux`.
    Dec = 7,
    /// MUL/IMUL as Intel leaves the flags: CF = OF = `aux` (the product does not fit `res`,
    /// its low half); SF and PF of `res`; ZF = AF = 0. `a` and `b` are unused.
    Mul = 8,
}

impl FlagOp {
    fn from_u8(v: u8) -> Option<FlagOp> {
        Some(match v {
            1 => FlagOp::Add,
            2 => FlagOp::Adc,
            3 => FlagOp::Sub,
            4 => FlagOp::Sbb,
            5 => FlagOp::Logic,
            6 => FlagOp::Inc,
            7 => FlagOp::Dec,
            8 => FlagOp::Mul,
            _ => return None,
        })
    }
}

/// The processor vendor whose rules decide the flags (and the few register effects) the
/// manuals leave undefined. Each family's module header states both vendors' rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Vendor {
    /// `GenuineIntel` (rules measured on a Xeon, family 6 model 0xCF).
    Intel,
    /// `AuthenticAMD` and `HygonGenuine` (rules measured on an EPYC, Zen 5).
    Amd,
}

impl Vendor {
    /// The host's vendor, from CPUID leaf 0, read once per process. Every engine translates
    /// with it, so all of them agree with each other and with the host.
    pub fn host() -> Vendor {
        static HOST: OnceLock<Vendor> = OnceLock::new();
        *HOST.get_or_init(|| {
            let r = std::arch::x86_64::__cpuid(0);
            let mut id = [0u8; 12];
            for (i, reg) in [r.ebx, r.edx, r.ecx].into_iter().enumerate() {
                id[4 * i..4 * i + 4].copy_from_slice(&reg.to_le_bytes());
            }
            Vendor::from_cpuid_id(&id)
        })
    }

    /// The vendor of a CPUID leaf 0 identification string (EBX, EDX, ECX). Anything but
    /// `GenuineIntel` gets the AMD rules, popek's rules before vendors were told apart.
    pub fn from_cpuid_id(id: &[u8; 12]) -> Vendor {
        match id {
            b"GenuineIntel" => Vendor::Intel,
            _ => Vendor::Amd,
        }
    }

    /// Both vendors (for tests that check each one's rules).
    pub const ALL: [Vendor; 2] = [Vendor::Intel, Vendor::Amd];
}

/// A lazily described flag computation. `a`, `b`, `res` have type `ty`; `aux` is an `I8`
/// carry-in (ADC/SBB) or preserved CF (INC/DEC), zero otherwise.
#[derive(Clone, Copy, Debug)]
pub struct Lazy<V> {
    pub op: FlagOp,
    pub ty: Ty,
    pub a: V,
    pub b: V,
    pub res: V,
    pub aux: V,
}

/// The value stored in `CpuState::flags_op` for a descriptor.
pub const fn encode_op(op: FlagOp, ty: Ty) -> u64 {
    ((op as u64) << 8) | ty.bits() as u64
}

/// The operation and type of a stored descriptor, if valid.
pub fn decode_op(v: u64) -> Option<(FlagOp, Ty)> {
    let op = FlagOp::from_u8((v >> 8) as u8)?;
    let ty = match v & 0xff {
        8 => Ty::I8,
        16 => Ty::I16,
        32 => Ty::I32,
        64 => Ty::I64,
        _ => return None,
    };
    Some((op, ty))
}

#[inline]
fn sign<E: ValueOps>(e: &mut E, v: E::Value) -> E::Value {
    let ty = e.ty(v);
    let z = e.iconst(ty, 0);
    e.icmp(Cmp::Slt, v, z)
}

/// CF as an `I8` 0/1.
#[inline]
pub fn cf<E: ValueOps>(e: &mut E, l: &Lazy<E::Value>) -> E::Value {
    match l.op {
        FlagOp::Add => e.icmp(Cmp::Ult, l.res, l.a),
        FlagOp::Sub => e.icmp(Cmp::Ult, l.a, l.b),
        FlagOp::Adc => {
            let lt = e.icmp(Cmp::Ult, l.res, l.a);
            let le = e.icmp(Cmp::Ule, l.res, l.a);
            e.select(l.aux, le, lt)
        }
        FlagOp::Sbb => {
            let lt = e.icmp(Cmp::Ult, l.a, l.b);
            let le = e.icmp(Cmp::Ule, l.a, l.b);
            e.select(l.aux, le, lt)
        }
        FlagOp::Logic => e.iconst(Ty::I8, 0),
        FlagOp::Inc | FlagOp::Dec | FlagOp::Mul => l.aux,
    }
}

/// OF as an `I8` 0/1.
#[inline]
pub fn of<E: ValueOps>(e: &mut E, l: &Lazy<E::Value>) -> E::Value {
    match l.op {
        FlagOp::Add | FlagOp::Adc | FlagOp::Inc => {
            let x = e.binop(BinOp::Xor, l.a, l.res);
            let y = e.binop(BinOp::Xor, l.b, l.res);
            let t = e.binop(BinOp::And, x, y);
            sign(e, t)
        }
        FlagOp::Sub | FlagOp::Sbb | FlagOp::Dec => {
            let x = e.binop(BinOp::Xor, l.a, l.b);
            let y = e.binop(BinOp::Xor, l.a, l.res);
            let t = e.binop(BinOp::And, x, y);
            sign(e, t)
        }
        FlagOp::Logic => e.iconst(Ty::I8, 0),
        FlagOp::Mul => l.aux,
    }
}

/// AF as an `I8` 0/1.
#[inline]
pub fn af<E: ValueOps>(e: &mut E, l: &Lazy<E::Value>) -> E::Value {
    if matches!(l.op, FlagOp::Logic | FlagOp::Mul) {
        return e.iconst(Ty::I8, 0);
    }
    let x = e.binop(BinOp::Xor, l.a, l.b);
    let x = e.binop(BinOp::Xor, x, l.res);
    let m = e.iconst(l.ty, 0x10);
    let t = e.binop(BinOp::And, x, m);
    let z = e.iconst(l.ty, 0);
    e.icmp(Cmp::Ne, t, z)
}

/// ZF as an `I8` 0/1.
#[inline]
pub fn zf<E: ValueOps>(e: &mut E, l: &Lazy<E::Value>) -> E::Value {
    if l.op == FlagOp::Mul {
        return e.iconst(Ty::I8, 0);
    }
    let z = e.iconst(l.ty, 0);
    e.icmp(Cmp::Eq, l.res, z)
}

/// SF as an `I8` 0/1.
#[inline]
pub fn sf<E: ValueOps>(e: &mut E, l: &Lazy<E::Value>) -> E::Value {
    sign(e, l.res)
}

/// PF (even parity of the low byte of the result) as an `I8` 0/1.
#[inline]
pub fn pf<E: ValueOps>(e: &mut E, l: &Lazy<E::Value>) -> E::Value {
    parity(e, l.res)
}

/// Even parity of the low byte of `v`, as an `I8` 0/1 (x86 PF).
#[inline]
pub fn parity<E: ValueOps>(e: &mut E, v: E::Value) -> E::Value {
    let lo = e.convert(Conv::Trunc, v, Ty::I8);
    let n = e.unop(UnOp::Popcnt, lo);
    let one = e.iconst(Ty::I8, 1);
    let odd = e.binop(BinOp::And, n, one);
    e.binop(BinOp::Xor, odd, one)
}

/// Combine six `I8` 0/1 flags into their RFLAGS positions (an `I64`).
#[inline]
pub fn pack<E: ValueOps>(e: &mut E, [c, p, a, z, s, o]: [E::Value; 6]) -> E::Value {
    let mut acc = e.convert(Conv::Zext, c, Ty::I64);
    for (bit, v) in [(2u64, p), (4, a), (6, z), (7, s), (11, o)] {
        let w = e.convert(Conv::Zext, v, Ty::I64);
        let sh = e.iconst(Ty::I64, bit);
        let w = e.binop(BinOp::Shl, w, sh);
        acc = e.binop(BinOp::Or, acc, w);
    }
    acc
}

/// All six arithmetic flags in their RFLAGS positions (an `I64`).
#[inline]
pub fn compute_all<E: ValueOps>(e: &mut E, l: &Lazy<E::Value>) -> E::Value {
    let c = cf(e, l);
    let p = pf(e, l);
    let a = af(e, l);
    let z = zf(e, l);
    let s = sf(e, l);
    let o = of(e, l);
    pack(e, [c, p, a, z, s, o])
}

/// Concrete evaluation of [`ValueOps`]: the meaning of each operation on known values.
/// Used by [`materialize`] and by the interpreter.
#[derive(Default)]
pub struct Concrete;

/// A concrete value with its type (always masked to the type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CVal {
    pub ty: Ty,
    pub v: u64,
}

impl ValueOps for Concrete {
    type Value = CVal;
    #[inline(always)]
    fn ty(&self, v: CVal) -> Ty {
        v.ty
    }
    #[inline(always)]
    fn as_const(&self, v: CVal) -> Option<u64> {
        Some(v.v)
    }
    #[inline(always)]
    fn iconst(&mut self, ty: Ty, v: u64) -> CVal {
        CVal {
            ty,
            v: v & ty.mask(),
        }
    }
    #[inline(always)]
    fn binop(&mut self, op: BinOp, a: CVal, b: CVal) -> CVal {
        CVal {
            ty: a.ty,
            v: eval_binop(op, a.ty, a.v, b.v),
        }
    }
    #[inline(always)]
    fn unop(&mut self, op: UnOp, a: CVal) -> CVal {
        CVal {
            ty: a.ty,
            v: eval_unop(op, a.ty, a.v),
        }
    }
    #[inline(always)]
    fn icmp(&mut self, cc: Cmp, a: CVal, b: CVal) -> CVal {
        CVal {
            ty: Ty::I8,
            v: eval_cmp(cc, a.ty, a.v, b.v),
        }
    }
    #[inline(always)]
    fn select(&mut self, c: CVal, t: CVal, f: CVal) -> CVal {
        if c.v != 0 {
            t
        } else {
            f
        }
    }
    #[inline(always)]
    fn convert(&mut self, op: Conv, v: CVal, to: Ty) -> CVal {
        CVal {
            ty: to,
            v: eval_convert(op, v.ty, to, v.v),
        }
    }
}

/// Arithmetic RFLAGS bits described by a stored descriptor (`CpuState::flags_*`). An invalid
/// descriptor (never produced by popek itself) yields 0 rather than a panic.
pub fn materialize(op: u64, a: u64, b: u64, res: u64, aux: u64) -> u64 {
    let Some((op, ty)) = decode_op(op) else {
        return 0;
    };
    let mut c = Concrete;
    let l = Lazy {
        op,
        ty,
        a: c.iconst(ty, a),
        b: c.iconst(ty, b),
        res: c.iconst(ty, res),
        aux: c.iconst(Ty::I8, aux & 1),
    };
    compute_all(&mut c, &l).v & rflags::ARITH
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::rflags::*;

    #[test]
    fn sub_flags_match_the_manual() {
        // 0 - 1 = 0xFF: CF (borrow), SF, AF, PF (0xFF has 8 ones: even)
        let f = materialize(encode_op(FlagOp::Sub, Ty::I8), 0, 1, 0xFF, 0);
        assert_eq!(f, CF | SF | AF | PF);
        // 0x80 - 1 = 0x7F: OF (signed overflow), AF
        let f = materialize(encode_op(FlagOp::Sub, Ty::I8), 0x80, 1, 0x7F, 0);
        assert_eq!(f, OF | AF);
    }

    #[test]
    fn adc_carry_in_counts() {
        // 0xFF + 0 + 1 = 0 with carry
        let f = materialize(encode_op(FlagOp::Adc, Ty::I8), 0xFF, 0, 0, 1);
        assert_eq!(f & (CF | ZF), CF | ZF);
    }

    #[test]
    fn mul_descriptor_is_intels_mul() {
        // 0x80 * 2 = 0x100: the low byte is 0, yet ZF = 0; CF = OF = 1 (it does not fit).
        let f = materialize(encode_op(FlagOp::Mul, Ty::I8), 0, 0, 0, 1);
        assert_eq!(f, CF | OF | PF);
        let f = materialize(encode_op(FlagOp::Mul, Ty::I32), 0, 0, 0x8000_0001, 0);
        assert_eq!(f, SF);
    }

    #[test]
    fn vendor_ids() {
        assert_eq!(Vendor::from_cpuid_id(b"GenuineIntel"), Vendor::Intel);
        assert_eq!(Vendor::from_cpuid_id(b"AuthenticAMD"), Vendor::Amd);
        assert_eq!(Vendor::from_cpuid_id(b"HygonGenuine"), Vendor::Amd);
        assert_eq!(Vendor::host(), Vendor::host());
    }

    #[test]
    fn bad_descriptor_is_harmless() {
        assert_eq!(materialize(0xdead, 1, 2, 3, 4), 0);
    }
}
