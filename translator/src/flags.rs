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
    /// Shifts by a count known not to be 0 (SHL/SHR/SAR/SHLD/SHRD): SF, ZF and PF of `res`;
    /// CF, OF and AF as computed by the instruction, in `aux` bits 0, 1 and 2. `a` and `b`
    /// are unused. Kept lazy because a shift's flags are mostly read for ZF or CF, or not
    /// at all, and packing all six cost ~25 host instructions per shift.
    Shift = 9,
}

impl FlagOp {
    /// Every operation, in encoding order.
    pub const ALL: [FlagOp; 9] = [
        FlagOp::Add,
        FlagOp::Adc,
        FlagOp::Sub,
        FlagOp::Sbb,
        FlagOp::Logic,
        FlagOp::Inc,
        FlagOp::Dec,
        FlagOp::Mul,
        FlagOp::Shift,
    ];

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
            9 => FlagOp::Shift,
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
/// carry-in (ADC/SBB), preserved CF (INC/DEC), overflow (MUL) or CF/OF/AF bits (shifts),
/// zero otherwise.
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

/// Bit `n` of an `I8` as an `I8` 0/1.
#[inline]
fn bit<E: ValueOps>(e: &mut E, v: E::Value, n: u64) -> E::Value {
    let v = if n == 0 {
        v
    } else {
        let k = e.iconst(Ty::I8, n);
        e.binop(BinOp::UShr, v, k)
    };
    let one = e.iconst(Ty::I8, 1);
    e.binop(BinOp::And, v, one)
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
        FlagOp::Shift => bit(e, l.aux, 0),
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
        FlagOp::Shift => bit(e, l.aux, 1),
    }
}

/// AF as an `I8` 0/1.
#[inline]
pub fn af<E: ValueOps>(e: &mut E, l: &Lazy<E::Value>) -> E::Value {
    match l.op {
        FlagOp::Logic | FlagOp::Mul => return e.iconst(Ty::I8, 0),
        FlagOp::Shift => return bit(e, l.aux, 2),
        _ => {}
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
        aux: c.iconst(Ty::I8, aux & if op == FlagOp::Shift { 7 } else { 1 }),
    };
    compute_all(&mut c, &l).v & rflags::ARITH
}

/// A descriptor as generated code finds it in `CpuState` (`flags_op`, `flags_a`, `flags_b`,
/// `flags_res`, `flags_aux` and `rflags`), every field an `I64`. Generated code stores the
/// operands zero-extended from the operation's type (`Ctx::write_back_flags`), which is what
/// lets [`stored_flags`] evaluate them without knowing the type at translation time.
#[derive(Clone, Copy, Debug)]
pub struct Stored<V> {
    pub op: V,
    pub a: V,
    pub b: V,
    pub res: V,
    pub aux: V,
    pub rflags: V,
}

/// The operations whose OF is the sign rule of an addition or a subtraction.
const ARITH_OPS: [FlagOp; 6] = [
    FlagOp::Add,
    FlagOp::Adc,
    FlagOp::Inc,
    FlagOp::Sub,
    FlagOp::Sbb,
    FlagOp::Dec,
];

/// The arithmetic flags in `mask` (RFLAGS positions, other bits zero, an `I64`) of a stored
/// descriptor whose operation is known only when the code runs: what [`materialize`] gives,
/// as straight-line code (compares and selects, no branch, no call), so generated code reads
/// flags an earlier block set without the `FlagsMaterialize` helper. Only the flags in
/// `mask` are evaluated. Each flag is the formula of `cf`/`pf`/... above, written on
/// zero-extended operands: carries and borrows are unsigned compares, which zero extension
/// keeps; ZF, PF and AF do not depend on the width; SF and OF take the sign bit at the
/// width the descriptor names. `flags_op == 0` means the bits are `rflags`'s.
pub fn stored_flags<E: ValueOps>(e: &mut E, d: &Stored<E::Value>, mask: u64) -> E::Value {
    let mask = mask & rflags::ARITH;
    let settled = e.as_const(d.op).is_some_and(|op| op == 0);
    let m = e.iconst(Ty::I64, mask);
    let from_rflags = e.binop(BinOp::And, d.rflags, m);
    if mask == 0 || settled {
        return from_rflags;
    }
    let eight = e.iconst(Ty::I64, 8);
    let op = e.binop(BinOp::UShr, d.op, eight);
    let is = |e: &mut E, f: FlagOp| {
        let k = e.iconst(Ty::I64, f as u64);
        e.icmp(Cmp::Eq, op, k)
    };
    let (add, adc, sub, sbb) = (
        is(e, FlagOp::Add),
        is(e, FlagOp::Adc),
        is(e, FlagOp::Sub),
        is(e, FlagOp::Sbb),
    );
    let (logic, mul, shift) = (
        is(e, FlagOp::Logic),
        is(e, FlagOp::Mul),
        is(e, FlagOp::Shift),
    );
    let zero = e.iconst(Ty::I8, 0);
    let aux = e.convert(Conv::Trunc, d.aux, Ty::I8);
    // The sign bit of the descriptor's width, as an `I8` 0/1 of `v`.
    let width_mask = e.iconst(Ty::I64, 0xff);
    let width = e.binop(BinOp::And, d.op, width_mask);
    let one64 = e.iconst(Ty::I64, 1);
    let top = e.binop(BinOp::Sub, width, one64);
    let sign = |e: &mut E, v: E::Value| {
        let s = e.binop(BinOp::UShr, v, top);
        let s = e.convert(Conv::Trunc, s, Ty::I8);
        let one = e.iconst(Ty::I8, 1);
        e.binop(BinOp::And, s, one)
    };
    let mut out = Vec::with_capacity(6);
    if mask & rflags::CF != 0 {
        let lt_add = e.icmp(Cmp::Ult, d.res, d.a);
        let le_add = e.icmp(Cmp::Ule, d.res, d.a);
        let lt_sub = e.icmp(Cmp::Ult, d.a, d.b);
        let le_sub = e.icmp(Cmp::Ule, d.a, d.b);
        let adc_cf = e.select(aux, le_add, lt_add);
        let sbb_cf = e.select(aux, le_sub, lt_sub);
        // Logic: 0; Inc, Dec, Mul: aux; Shift: aux bit 0.
        let rest = e.select(logic, zero, aux);
        let shift_cf = bit(e, aux, 0);
        let rest = e.select(shift, shift_cf, rest);
        let v = e.select(sbb, sbb_cf, rest);
        let v = e.select(sub, lt_sub, v);
        let v = e.select(adc, adc_cf, v);
        out.push((rflags::CF, e.select(add, lt_add, v)));
    }
    if mask & rflags::PF != 0 {
        out.push((rflags::PF, parity(e, d.res)));
    }
    if mask & rflags::AF != 0 {
        let x = e.binop(BinOp::Xor, d.a, d.b);
        let x = e.binop(BinOp::Xor, x, d.res);
        let four = e.iconst(Ty::I64, 4);
        let x = e.binop(BinOp::UShr, x, four);
        let x = e.convert(Conv::Trunc, x, Ty::I8);
        let one = e.iconst(Ty::I8, 1);
        let x = e.binop(BinOp::And, x, one);
        let none = e.binop(BinOp::Or, logic, mul);
        let x = e.select(none, zero, x);
        let shift_af = bit(e, aux, 2);
        out.push((rflags::AF, e.select(shift, shift_af, x)));
    }
    if mask & rflags::ZF != 0 {
        let z64 = e.iconst(Ty::I64, 0);
        let z = e.icmp(Cmp::Eq, d.res, z64);
        out.push((rflags::ZF, e.select(mul, zero, z)));
    }
    if mask & rflags::SF != 0 {
        out.push((rflags::SF, sign(e, d.res)));
    }
    if mask & rflags::OF != 0 {
        // Add-like: sign((a ^ res) & (b ^ res)); sub-like: sign((a ^ res) & (a ^ b)). One
        // sign, the second operand chosen; the kinds are bit sets indexed by the operation
        // (a shift each, not three compares). An operation past 15 is no descriptor popek
        // makes: it is masked only to keep the shift defined.
        let fifteen = e.iconst(Ty::I64, 15);
        let kind = e.binop(BinOp::And, op, fifteen);
        let in_set = |e: &mut E, ops: &[FlagOp]| {
            let set = e.iconst(Ty::I64, ops.iter().fold(0, |s, &f| s | 1 << f as u64));
            let v = e.binop(BinOp::UShr, set, kind);
            let v = e.convert(Conv::Trunc, v, Ty::I8);
            bit(e, v, 0)
        };
        let add_like = in_set(e, &[FlagOp::Add, FlagOp::Adc, FlagOp::Inc]);
        let arith = in_set(e, &ARITH_OPS);
        let x = e.binop(BinOp::Xor, d.a, d.res);
        let y_add = e.binop(BinOp::Xor, d.b, d.res);
        let y_sub = e.binop(BinOp::Xor, d.a, d.b);
        let y = e.select(add_like, y_add, y_sub);
        let t = e.binop(BinOp::And, x, y);
        let arith_of = sign(e, t);
        let v = e.select(mul, aux, zero);
        let shift_of = bit(e, aux, 1);
        let v = e.select(shift, shift_of, v);
        out.push((rflags::OF, e.select(arith, arith_of, v)));
    }
    let mut acc = e.iconst(Ty::I64, 0);
    for (bit, v) in out {
        let w = e.convert(Conv::Zext, v, Ty::I64);
        let w = if bit == rflags::CF {
            w
        } else {
            let sh = e.iconst(Ty::I64, u64::from(bit.trailing_zeros()));
            e.binop(BinOp::Shl, w, sh)
        };
        acc = e.binop(BinOp::Or, acc, w);
    }
    let z64 = e.iconst(Ty::I64, 0);
    let is_settled = e.icmp(Cmp::Eq, d.op, z64);
    e.select(is_settled, from_rflags, acc)
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

    /// `stored_flags` evaluated on concrete values, for one stored descriptor.
    fn stored(op: u64, a: u64, b: u64, res: u64, aux: u64, rf: u64, mask: u64) -> u64 {
        let mut c = Concrete;
        let d = Stored {
            op: c.iconst(Ty::I64, op),
            a: c.iconst(Ty::I64, a),
            b: c.iconst(Ty::I64, b),
            res: c.iconst(Ty::I64, res),
            aux: c.iconst(Ty::I64, aux),
            rflags: c.iconst(Ty::I64, rf),
        };
        stored_flags(&mut c, &d, mask).v
    }

    /// A small deterministic generator (xorshift64).
    fn next(s: &mut u64) -> u64 {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }

    /// Operands that hit carries, sign bits and zero results more often than uniform ones.
    fn operand(s: &mut u64, ty: Ty) -> u64 {
        let r = next(s);
        let v = match r % 6 {
            0 => 0,
            1 => ty.mask(),
            2 => 1u64 << (ty.bits() - 1),
            3 => (1u64 << (ty.bits() - 1)) - 1,
            4 => r >> 32 & 0x1f,
            _ => next(s),
        };
        v & ty.mask()
    }

    #[test]
    fn stored_flags_equal_materialize_for_every_op_and_width() {
        let ops = FlagOp::ALL;
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for &op in &ops {
            for ty in [Ty::I8, Ty::I16, Ty::I32, Ty::I64] {
                for _ in 0..4000 {
                    let (a, b) = (operand(&mut s, ty), operand(&mut s, ty));
                    let aux = next(&mut s) & if op == FlagOp::Shift { 7 } else { 1 };
                    let res = match op {
                        FlagOp::Add | FlagOp::Inc => a.wrapping_add(b),
                        FlagOp::Adc => a.wrapping_add(b).wrapping_add(aux),
                        FlagOp::Sub | FlagOp::Dec => a.wrapping_sub(b),
                        FlagOp::Sbb => a.wrapping_sub(b).wrapping_sub(aux),
                        _ => operand(&mut s, ty),
                    } & ty.mask();
                    let word = encode_op(op, ty);
                    let want = materialize(word, a, b, res, aux);
                    let rf = next(&mut s);
                    let mask = next(&mut s) & ARITH;
                    assert_eq!(
                        stored(word, a, b, res, aux, rf, ARITH),
                        want,
                        "{op:?} {ty:?} a={a:#x} b={b:#x} res={res:#x} aux={aux}"
                    );
                    assert_eq!(stored(word, a, b, res, aux, rf, mask), want & mask);
                }
            }
        }
    }

    #[test]
    fn settled_stored_flags_are_rflags_bits() {
        let rf = 0x2c3 | ARITH;
        assert_eq!(stored(0, 5, 6, 7, 1, rf, ARITH), ARITH);
        assert_eq!(stored(0, 5, 6, 7, 1, CF | IF, CF | ZF), CF);
    }

    #[test]
    fn bad_descriptor_is_harmless() {
        assert_eq!(materialize(0xdead, 1, 2, 3, 4), 0);
        // Inline evaluation of an operation popek never makes (aux 0/1 as it stores it):
        // arithmetic flags only, and no shift out of range (the operation indexes bit sets).
        for op in [0xdead, 0xff40, u64::MAX, 10 << 8 | 64, 15 << 8 | 8] {
            let v = stored(op, u64::MAX, 1, 0x8000_0000, 1, 0, ARITH);
            assert_eq!(v & !ARITH, 0, "{op:#x}");
        }
    }
}
