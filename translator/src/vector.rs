//! The 128-bit vector vocabulary shared by every emitter (XMM values), and its exact meaning
//! on concrete values.
//!
//! Invariants:
//! - [`eval_bin`], [`eval_un`], [`eval_shift`], [`eval_shuffle`] and the lane helpers define
//!   what each operation means; the interpreter runs them and the Cranelift emitter must lower
//!   each to IR with exactly these bits (they are tested against each other and against the
//!   host CPU by the differential tester).
//! - Floating-point operations are computed by the host's own SSE instruction (inline
//!   assembly, never Rust float arithmetic the compiler could fold or reorder), under
//!   whatever MXCSR the host has: while a vCPU runs that is the guest's (see
//!   [`crate::state::FxArea`]), so rounding, DAZ, FTZ and the exception flags are the
//!   hardware's. The JIT lowers the same operations to the same instructions.
//! - Vectors are little-endian: lane 0 is the least significant.

use std::arch::asm;
use std::arch::x86_64::__m128i;

fn m(v: u128) -> __m128i {
    // SAFETY: u128 and __m128i are both 16 plain bytes; every bit pattern is valid for both.
    unsafe { std::mem::transmute::<u128, __m128i>(v) }
}

fn u(v: __m128i) -> u128 {
    // SAFETY: as in `m`.
    unsafe { std::mem::transmute::<__m128i, u128>(v) }
}

/// One SSE floating-point instruction `insn x, y` on the host (x is the destination).
macro_rules! sse2 {
    ($insn:literal, $a:expr, $b:expr) => {{
        let mut x = m($a);
        let y = m($b);
        // SAFETY: one SSE register-to-register instruction (SSE2 is the x86-64 baseline):
        // it reads and writes only the two named XMM registers and MXCSR's flags. Not
        // `pure`: the MXCSR flags it raises are an effect that must not be dropped.
        unsafe {
            asm!(concat!($insn, " {x}, {y}"), x = inout(xmm_reg) x, y = in(xmm_reg) y,
                 options(nomem, nostack, preserves_flags));
        }
        u(x)
    }};
}

/// The lane shape of a vector operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lanes {
    /// 16 × 8-bit integers.
    I8,
    /// 8 × 16-bit integers.
    I16,
    /// 4 × 32-bit integers.
    I32,
    /// 2 × 64-bit integers.
    I64,
    /// 4 × binary32 (packed single).
    F32,
    /// 2 × binary64 (packed double).
    F64,
    /// Scalar binary32 in lane 0; lanes 1..3 come from the first operand (the SS forms).
    F32S,
    /// Scalar binary64 in lane 0; lane 1 comes from the first operand (the SD forms).
    F64S,
}

impl Lanes {
    /// Bits of one lane.
    pub const fn bits(self) -> u32 {
        match self {
            Lanes::I8 => 8,
            Lanes::I16 => 16,
            Lanes::I32 | Lanes::F32 | Lanes::F32S => 32,
            Lanes::I64 | Lanes::F64 | Lanes::F64S => 64,
        }
    }
    /// Number of lanes.
    pub const fn count(self) -> u32 {
        128 / self.bits()
    }
    /// The integer lanes of the same width.
    pub const fn int(self) -> Lanes {
        match self.bits() {
            8 => Lanes::I8,
            16 => Lanes::I16,
            32 => Lanes::I32,
            _ => Lanes::I64,
        }
    }
    /// The integer type of one lane.
    pub const fn ty(self) -> crate::ir::Ty {
        use crate::ir::Ty;
        match self.bits() {
            8 => Ty::I8,
            16 => Ty::I16,
            32 => Ty::I32,
            _ => Ty::I64,
        }
    }
    /// Whether the lanes are floating point.
    pub const fn is_float(self) -> bool {
        matches!(self, Lanes::F32 | Lanes::F64 | Lanes::F32S | Lanes::F64S)
    }
    /// Whether this is a scalar (lane 0 only) floating-point shape.
    pub const fn is_scalar(self) -> bool {
        matches!(self, Lanes::F32S | Lanes::F64S)
    }
}

/// Two-operand lane-wise operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VBin {
    /// Wrapping add (integer lanes).
    Add,
    /// Wrapping subtract (integer lanes).
    Sub,
    /// Signed saturating add (I8, I16).
    AddSatS,
    /// Unsigned saturating add (I8, I16).
    AddSatU,
    /// Signed saturating subtract (I8, I16).
    SubSatS,
    /// Unsigned saturating subtract (I8, I16).
    SubSatU,
    MinS,
    MinU,
    MaxS,
    MaxU,
    /// Unsigned rounding average `(a + b + 1) >> 1` (I8, I16).
    AvgU,
    /// Low half of the product (I16, I32, I64).
    MulLo,
    /// High half of the signed product (I16).
    MulHiS,
    /// High half of the unsigned product (I16).
    MulHiU,
    /// Unsigned 32 × 32 → 64 of the even 32-bit lanes (PMULUDQ; lanes = I64).
    MulEvenU,
    /// Signed 32 × 32 → 64 of the even 32-bit lanes (PMULDQ; lanes = I64).
    MulEvenS,
    /// Sum of the signed 16 × 16 → 32 products of adjacent pairs (PMADDWD; lanes = I32).
    MaddWd,
    /// All ones where equal (integer lanes).
    CmpEq,
    /// All ones where `a > b` signed (integer lanes).
    CmpGtS,
    And,
    Or,
    Xor,
    /// `!a & b` (PANDN, ANDNPS).
    AndNot,
    /// Narrow the lanes of `a` (low half of the result) and `b` (high half) to half width
    /// with signed saturation (PACKSSWB: lanes = I16; PACKSSDW: I32).
    PackS,
    /// Narrow with unsigned saturation of signed inputs (PACKUSWB, PACKUSDW).
    PackU,
    /// Interleave the low halves: a0 b0 a1 b1 ... (PUNPCKL*, UNPCKLPS/PD).
    UnpackLo,
    /// Interleave the high halves (PUNPCKH*, UNPCKHPS/PD).
    UnpackHi,
    /// PSHUFB: byte `i` = 0 if bit 7 of `b[i]` is set, else `a[b[i] & 15]` (lanes = I8).
    Pshufb,
    /// Floating-point add (F32, F64, F32S, F64S).
    FAdd,
    FSub,
    FMul,
    FDiv,
    /// Square root of the lanes of `b` (SQRTPS/SQRTPD); in the scalar shapes of lane 0 of
    /// `b`, the other lanes from `a` (SQRTSS/SQRTSD, whose destination is `a`).
    FSqrt,
    /// x86 MIN: `a < b ? a : b` per lane, so the second operand on equality (±0), on a NaN,
    /// on both (MINPS/MINPD/MINSS/MINSD).
    FMin,
    /// x86 MAX: `a > b ? a : b` per lane, likewise.
    FMax,
    /// CVTSS2SD: lane 0 of `b` (single) widened into lane 0 (double) of `a`.
    CvtSs2Sd,
    /// CVTSD2SS: lane 0 of `b` (double) rounded into lane 0 (single) of `a`.
    CvtSd2Ss,
    /// PBLENDVB/BLENDVPS/BLENDVPD: lane from `b` where the top bit of the same lane of the
    /// mask is set, else from `a`. The mask is the third operand of [`eval_blendv`].
    Blendv,
}

/// Packed conversions (the lanes argument is ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VCvt {
    /// CVTDQ2PS: 4 × i32 → 4 × f32 (rounded by MXCSR).
    Dq2Ps,
    /// CVTTPS2DQ: 4 × f32 → 4 × i32, truncating (0x8000_0000 for NaN and out of range).
    Ttps2Dq,
    /// CVTPS2PD: the low 2 × f32 → 2 × f64.
    Ps2Pd,
    /// CVTPD2PS: 2 × f64 → 2 × f32 in the low half, the high half zero.
    Pd2Ps,
    /// CVTDQ2PD: the low 2 × i32 → 2 × f64.
    Dq2Pd,
}

/// One-operand lane-wise operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VUn {
    /// Absolute value of signed integer lanes (the minimum stays itself, as PABS*).
    Abs,
    /// Square root (F32, F64; for the scalar shapes lane 0 of the operand, the other lanes
    /// of the result are zero: callers merge).
    FSqrt,
    /// Sign-extend the low half's lanes to twice their width (lanes = the source lanes).
    WidenLoS,
    /// Zero-extend the low half's lanes to twice their width.
    WidenLoU,
}

/// Lane shifts by a count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VShift {
    Shl,
    UShr,
    SShr,
}

// ------------------------------------------------------------------ lanes of a u128

/// Lane `i` of `v` (zero-extended), `bits` wide.
#[inline(always)]
pub fn lane(v: u128, bits: u32, i: u32) -> u64 {
    let m = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    ((v >> (bits * i)) as u64) & m
}

/// `v` with lane `i` (`bits` wide) replaced by `x`.
#[inline(always)]
pub fn with_lane(v: u128, bits: u32, i: u32, x: u64) -> u128 {
    let m: u128 = if bits == 64 {
        u64::MAX as u128
    } else {
        (1u128 << bits) - 1
    };
    let sh = bits * i;
    (v & !(m << sh)) | ((x as u128 & m) << sh)
}

/// Sign-extend the low `bits` of `x`.
#[inline(always)]
fn sext(x: u64, bits: u32) -> i64 {
    let sh = 64 - bits;
    ((x << sh) as i64) >> sh
}

/// Apply `f` to each pair of lanes.
#[inline(always)]
fn map2(a: u128, b: u128, bits: u32, f: impl Fn(u64, u64) -> u64) -> u128 {
    let mut r = 0u128;
    for i in 0..128 / bits {
        r = with_lane(r, bits, i, f(lane(a, bits, i), lane(b, bits, i)));
    }
    r
}

fn sat_s(x: i64, bits: u32) -> u64 {
    let (lo, hi) = (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1);
    x.clamp(lo, hi) as u64
}

fn sat_u(x: i64, bits: u32) -> u64 {
    x.clamp(0, ((1u64 << bits) - 1) as i64) as u64
}

/// Evaluate `a op b` on concrete vectors.
pub fn eval_bin(op: VBin, lanes: Lanes, a: u128, b: u128) -> u128 {
    let bits = lanes.bits();
    let ones = |c: bool| if c { u64::MAX } else { 0 };
    match op {
        VBin::Add => map2(a, b, bits, |x, y| x.wrapping_add(y)),
        VBin::Sub => map2(a, b, bits, |x, y| x.wrapping_sub(y)),
        VBin::AddSatS => map2(a, b, bits, |x, y| {
            sat_s(sext(x, bits) + sext(y, bits), bits)
        }),
        VBin::AddSatU => map2(a, b, bits, |x, y| sat_u((x + y) as i64, bits)),
        VBin::SubSatS => map2(a, b, bits, |x, y| {
            sat_s(sext(x, bits) - sext(y, bits), bits)
        }),
        VBin::SubSatU => map2(a, b, bits, |x, y| x.saturating_sub(y)),
        VBin::MinS => map2(a, b, bits, |x, y| {
            if sext(x, bits) <= sext(y, bits) {
                x
            } else {
                y
            }
        }),
        VBin::MinU => map2(a, b, bits, |x, y| x.min(y)),
        VBin::MaxS => map2(a, b, bits, |x, y| {
            if sext(x, bits) >= sext(y, bits) {
                x
            } else {
                y
            }
        }),
        VBin::MaxU => map2(a, b, bits, |x, y| x.max(y)),
        VBin::AvgU => map2(a, b, bits, |x, y| (x + y + 1) >> 1),
        VBin::MulLo => map2(a, b, bits, |x, y| x.wrapping_mul(y)),
        VBin::MulHiS => map2(a, b, bits, |x, y| {
            ((sext(x, bits) * sext(y, bits)) >> bits) as u64
        }),
        VBin::MulHiU => map2(a, b, bits, |x, y| (x * y) >> bits),
        VBin::MulEvenU => map2(a, b, 64, |x, y| (x & 0xFFFF_FFFF) * (y & 0xFFFF_FFFF)),
        VBin::MulEvenS => map2(a, b, 64, |x, y| {
            (i64::from(x as u32 as i32) * i64::from(y as u32 as i32)) as u64
        }),
        VBin::MaddWd => map2(a, b, 32, |x, y| {
            let p = |s: u32| i64::from((x >> s) as u16 as i16) * i64::from((y >> s) as u16 as i16);
            (p(0) + p(16)) as u64
        }),
        VBin::CmpEq => map2(a, b, bits, |x, y| ones(x == y)),
        VBin::CmpGtS => map2(a, b, bits, |x, y| ones(sext(x, bits) > sext(y, bits))),
        VBin::And => a & b,
        VBin::Or => a | b,
        VBin::Xor => a ^ b,
        VBin::AndNot => !a & b,
        VBin::PackS | VBin::PackU => {
            let half = bits / 2;
            let n = 128 / bits;
            let mut r = 0u128;
            for (k, src) in [a, b].into_iter().enumerate() {
                for i in 0..n {
                    let x = sext(lane(src, bits, i), bits);
                    let y = if op == VBin::PackS {
                        sat_s(x, half)
                    } else {
                        sat_u(x, half)
                    };
                    r = with_lane(r, half, k as u32 * n + i, y);
                }
            }
            r
        }
        VBin::UnpackLo | VBin::UnpackHi => {
            let n = 128 / bits;
            let base = if op == VBin::UnpackLo { 0 } else { n / 2 };
            let mut r = 0u128;
            for i in 0..n / 2 {
                r = with_lane(r, bits, 2 * i, lane(a, bits, base + i));
                r = with_lane(r, bits, 2 * i + 1, lane(b, bits, base + i));
            }
            r
        }
        VBin::Pshufb => {
            let mut r = 0u128;
            for i in 0..16 {
                let s = lane(b, 8, i);
                if s & 0x80 == 0 {
                    r = with_lane(r, 8, i, lane(a, 8, (s & 15) as u32));
                }
            }
            r
        }
        VBin::FAdd
        | VBin::FSub
        | VBin::FMul
        | VBin::FDiv
        | VBin::FSqrt
        | VBin::FMin
        | VBin::FMax
        | VBin::CvtSs2Sd
        | VBin::CvtSd2Ss => host_float(op, lanes, a, b),
        // Blendv needs its mask: see `eval_blendv`.
        VBin::Blendv => a,
    }
}

/// PBLENDVB/BLENDVPS/BLENDVPD: lane `i` of `b` where the top bit of lane `i` of `mask` is
/// set, else of `a`.
pub fn eval_blendv(lanes: Lanes, a: u128, b: u128, mask: u128) -> u128 {
    let bits = lanes.bits();
    let mut r = a;
    for i in 0..128 / bits {
        if lane(mask, bits, i) >> (bits - 1) != 0 {
            r = with_lane(r, bits, i, lane(b, bits, i));
        }
    }
    r
}

/// A packed conversion, by the host's instruction.
pub fn eval_cvt(op: VCvt, a: u128) -> u128 {
    match op {
        VCvt::Dq2Ps => sse2!("cvtdq2ps", 0, a),
        VCvt::Ttps2Dq => sse2!("cvttps2dq", 0, a),
        VCvt::Ps2Pd => sse2!("cvtps2pd", 0, a),
        VCvt::Pd2Ps => sse2!("cvtpd2ps", 0, a),
        VCvt::Dq2Pd => sse2!("cvtdq2pd", 0, a),
    }
}

/// CVTSI2SS/CVTSI2SD: `x` (a 32- or 64-bit signed integer, `bits` wide) converted into
/// lane 0 of `a` (`lanes` F32S or F64S), by the host's instruction.
pub fn eval_cvt_from_int(lanes: Lanes, a: u128, x: u64, bits: u32) -> u128 {
    let mut v = m(a);
    // SAFETY: one SSE conversion from a general register into the named XMM register; no
    // memory, MXCSR flags only.
    unsafe {
        match (lanes, bits) {
            (Lanes::F32S, 64) => asm!("cvtsi2ss {v}, {x}", v = inout(xmm_reg) v, x = in(reg) x,
                                      options(nomem, nostack, preserves_flags)),
            (Lanes::F32S, _) => asm!("cvtsi2ss {v}, {x:e}", v = inout(xmm_reg) v, x = in(reg) x,
                                     options(nomem, nostack, preserves_flags)),
            (_, 64) => asm!("cvtsi2sd {v}, {x}", v = inout(xmm_reg) v, x = in(reg) x,
                            options(nomem, nostack, preserves_flags)),
            _ => asm!("cvtsi2sd {v}, {x:e}", v = inout(xmm_reg) v, x = in(reg) x,
                      options(nomem, nostack, preserves_flags)),
        }
    }
    u(v)
}

/// CVTTSS2SI/CVTTSD2SI: lane 0 of `a` truncated to a `bits`-wide signed integer (the
/// "integer indefinite" `1 << (bits - 1)` for NaN and out of range), by the host.
pub fn eval_cvtt_to_int(lanes: Lanes, a: u128, bits: u32) -> u64 {
    let v = m(a);
    let r: u64;
    // SAFETY: one SSE conversion from the named XMM register into a general register.
    unsafe {
        match (lanes, bits) {
            (Lanes::F32S, 64) => asm!("cvttss2si {r}, {v}", r = out(reg) r, v = in(xmm_reg) v,
                                      options(nomem, nostack, preserves_flags)),
            (Lanes::F32S, _) => asm!("cvttss2si {r:e}, {v}", r = out(reg) r, v = in(xmm_reg) v,
                                     options(nomem, nostack, preserves_flags)),
            (_, 64) => asm!("cvttsd2si {r}, {v}", r = out(reg) r, v = in(xmm_reg) v,
                            options(nomem, nostack, preserves_flags)),
            _ => asm!("cvttsd2si {r:e}, {v}", r = out(reg) r, v = in(xmm_reg) v,
                      options(nomem, nostack, preserves_flags)),
        }
    }
    if bits == 64 {
        r
    } else {
        r & 0xFFFF_FFFF
    }
}

/// UCOMISS/UCOMISD (`ordered`: COMISS/COMISD, which also signal on quiet NaNs) of lane 0:
/// ZF, PF and CF in their RFLAGS positions (OF, SF, AF clear), by the host.
pub fn eval_fcmp_flags(lanes: Lanes, a: u128, b: u128, ordered: bool) -> u64 {
    let (x, y) = (m(a), m(b));
    let f: u64;
    // SAFETY: one SSE compare of two XMM registers and a PUSHFQ/POP of the flags it set
    // (the stack is used: not `nostack`).
    unsafe {
        match (lanes, ordered) {
            (Lanes::F32S, false) => asm!("ucomiss {x}, {y}", "pushfq", "pop {f}",
                                         x = in(xmm_reg) x, y = in(xmm_reg) y, f = out(reg) f),
            (Lanes::F32S, true) => asm!("comiss {x}, {y}", "pushfq", "pop {f}",
                                        x = in(xmm_reg) x, y = in(xmm_reg) y, f = out(reg) f),
            (_, false) => asm!("ucomisd {x}, {y}", "pushfq", "pop {f}",
                               x = in(xmm_reg) x, y = in(xmm_reg) y, f = out(reg) f),
            _ => asm!("comisd {x}, {y}", "pushfq", "pop {f}",
                      x = in(xmm_reg) x, y = in(xmm_reg) y, f = out(reg) f),
        }
    }
    f & (crate::state::rflags::ZF | crate::state::rflags::PF | crate::state::rflags::CF)
}

/// Evaluate `op a` on a concrete vector.
pub fn eval_un(op: VUn, lanes: Lanes, a: u128) -> u128 {
    let bits = lanes.bits();
    match op {
        VUn::Abs => map2(a, 0, bits, |x, _| sext(x, bits).unsigned_abs()),
        VUn::FSqrt => host_sqrt(lanes, a),
        VUn::WidenLoS | VUn::WidenLoU => {
            let mut r = 0u128;
            for i in 0..64 / bits {
                let x = lane(a, bits, i);
                let x = if op == VUn::WidenLoS {
                    sext(x, bits) as u64
                } else {
                    x
                };
                r = with_lane(r, 2 * bits, i, x);
            }
            r
        }
    }
}

/// Evaluate a lane shift by `count` (not masked).
pub fn eval_shift(op: VShift, lanes: Lanes, a: u128, count: u64) -> u128 {
    let bits = lanes.bits();
    map2(a, 0, bits, |x, _| match op {
        VShift::Shl if count >= u64::from(bits) => 0,
        VShift::UShr if count >= u64::from(bits) => 0,
        VShift::Shl => x << count,
        VShift::UShr => x >> count,
        VShift::SShr => (sext(x, bits) >> count.min(u64::from(bits) - 1)) as u64,
    })
}

/// Evaluate a byte shuffle of `a` and `b` (see [`crate::emit::VectorOps::vshuffle`]).
pub fn eval_shuffle(a: u128, b: u128, mask: [u8; 16]) -> u128 {
    let mut r = 0u128;
    for (i, &m) in mask.iter().enumerate() {
        let src = if m & 16 == 0 { a } else { b };
        r = with_lane(r, 8, i as u32, lane(src, 8, u32::from(m & 15)));
    }
    r
}

/// The top bit of each lane, lane 0 in bit 0.
pub fn eval_movmsk(v: u128, lanes: Lanes) -> u64 {
    let bits = lanes.bits();
    (0..128 / bits).fold(0, |m, i| m | ((lane(v, bits, i) >> (bits - 1)) << i))
}

// ------------------------------------------------------------------ host floating point

fn host_float(op: VBin, lanes: Lanes, a: u128, b: u128) -> u128 {
    use Lanes::*;
    use VBin::*;
    match (op, lanes) {
        (FAdd, F32) => sse2!("addps", a, b),
        (FAdd, F64) => sse2!("addpd", a, b),
        (FAdd, F32S) => sse2!("addss", a, b),
        (FAdd, F64S) => sse2!("addsd", a, b),
        (FSub, F32) => sse2!("subps", a, b),
        (FSub, F64) => sse2!("subpd", a, b),
        (FSub, F32S) => sse2!("subss", a, b),
        (FSub, F64S) => sse2!("subsd", a, b),
        (FMul, F32) => sse2!("mulps", a, b),
        (FMul, F64) => sse2!("mulpd", a, b),
        (FMul, F32S) => sse2!("mulss", a, b),
        (FMul, F64S) => sse2!("mulsd", a, b),
        (FDiv, F32) => sse2!("divps", a, b),
        (FDiv, F64) => sse2!("divpd", a, b),
        (FDiv, F32S) => sse2!("divss", a, b),
        (FDiv, F64S) => sse2!("divsd", a, b),
        (FSqrt, F32) => sse2!("sqrtps", a, b),
        (FSqrt, F64) => sse2!("sqrtpd", a, b),
        (FSqrt, F32S) => sse2!("sqrtss", a, b),
        (FSqrt, F64S) => sse2!("sqrtsd", a, b),
        (FMin, F32) => sse2!("minps", a, b),
        (FMin, F64) => sse2!("minpd", a, b),
        (FMin, F32S) => sse2!("minss", a, b),
        (FMin, F64S) => sse2!("minsd", a, b),
        (FMax, F32) => sse2!("maxps", a, b),
        (FMax, F64) => sse2!("maxpd", a, b),
        (FMax, F32S) => sse2!("maxss", a, b),
        (FMax, F64S) => sse2!("maxsd", a, b),
        (CvtSs2Sd, _) => sse2!("cvtss2sd", a, b),
        (CvtSd2Ss, _) => sse2!("cvtsd2ss", a, b),
        // Integer shapes never reach here (the emitters only pass float lanes).
        _ => 0,
    }
}

fn host_sqrt(lanes: Lanes, a: u128) -> u128 {
    match lanes {
        Lanes::F32 => sse2!("sqrtps", 0, a),
        Lanes::F64 => sse2!("sqrtpd", 0, a),
        Lanes::F32S => sse2!("sqrtss", 0, a),
        Lanes::F64S => sse2!("sqrtsd", 0, a),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_round_trip() {
        let v = with_lane(0, 16, 3, 0xBEEF);
        assert_eq!(lane(v, 16, 3), 0xBEEF);
        assert_eq!(v, 0xBEEF << 48);
        assert_eq!(with_lane(u128::MAX, 64, 1, 0), u64::MAX as u128);
    }

    #[test]
    fn integer_ops_match_x86() {
        // PADDSB saturates, PADDUSB too, PAVGB rounds up.
        assert_eq!(eval_bin(VBin::AddSatS, Lanes::I8, 0x70, 0x70), 0x7F);
        assert_eq!(eval_bin(VBin::AddSatU, Lanes::I8, 0xF0, 0x20), 0xFF);
        assert_eq!(eval_bin(VBin::AvgU, Lanes::I8, 1, 2), 2);
        // PACKUSWB: -1 -> 0, 300 -> 255.
        let a = with_lane(with_lane(0, 16, 0, 0xFFFF), 16, 1, 300);
        assert_eq!(eval_bin(VBin::PackU, Lanes::I16, a, 0) & 0xFFFF, 0xFF00);
        // PSHUFB zeroes bytes whose index has bit 7.
        let idx = 0x8080_8080_8080_8080_8080_8080_8080_8001;
        assert_eq!(eval_bin(VBin::Pshufb, Lanes::I8, 0x1234, idx), 0x12);
        // Shifts past the width: logical gives 0, arithmetic the sign.
        assert_eq!(eval_shift(VShift::Shl, Lanes::I16, 0xFFFF, 16), 0);
        assert_eq!(eval_shift(VShift::SShr, Lanes::I16, 0x8000, 99), 0xFFFF);
        assert_eq!(eval_un(VUn::Abs, Lanes::I8, 0x80), 0x80);
        assert_eq!(eval_movmsk(0x80 << 8, Lanes::I8), 2);
        assert_eq!(
            eval_bin(VBin::MaddWd, Lanes::I32, 0x8000_8000, 0x8000_8000),
            0x8000_0000
        );
    }

    #[test]
    fn float_ops_use_the_host() {
        let one = f64::to_bits(1.0) as u128;
        let two = f64::to_bits(2.0) as u128;
        let hi = 0xDEAD_u128 << 64;
        assert_eq!(
            eval_bin(VBin::FAdd, Lanes::F64S, one | hi, two),
            f64::to_bits(3.0) as u128 | hi
        );
        assert_eq!(
            eval_un(VUn::FSqrt, Lanes::F64, (f64::to_bits(4.0) as u128) << 64),
            (f64::to_bits(2.0) as u128) << 64
        );
        // SQRTSD: lane 0 from the root of the second operand's, lane 1 from the first.
        assert_eq!(
            eval_bin(
                VBin::FSqrt,
                Lanes::F64S,
                hi | one,
                0x77 << 64 | f64::to_bits(4.0) as u128
            ),
            hi | f64::to_bits(2.0) as u128
        );
    }
}
