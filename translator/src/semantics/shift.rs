//! SHL/SAL SHR SAR ROL ROR RCL RCR, SHLD SHRD: every operand size, register and memory
//! destinations, counts from an immediate, CL or the 1-forms.
//!
//! Invariants:
//! - The count is masked to 5 bits (6 for 64-bit operands) and is in general only known at
//!   run time, so count-dependent behaviour is written with `select`, never with branches;
//!   a constant count folds the selects away at translation time.
//! - A masked count of 0 changes neither the destination's value nor the flags, but the
//!   destination is still written, as on the host: a 32-bit register has its upper half
//!   cleared, and a read-only memory destination faults (both checked natively).
//! - Results are computed on the zero- (SAR: sign-) extended value in 64 bits, where every
//!   masked count of an 8/16/32-bit operand is a plain shift; `ir` shifts take their amount
//!   modulo the width, so the garbage a formula produces for count 0 is always selected away.
//!
//! Flags for a masked count >= 1, matched bit for bit to the host by the native tests below
//! (each vendor's rules on its own hardware: AMD on an EPYC, Zen 5; Intel on a Xeon, family 6
//! model 0xCF); "undefined" in the manuals is marked (u). Both vendors:
//! - SHL: CF = last bit out (0 once count > width); SF ZF PF from the result.
//! - SHR: CF = last bit out (0 once count > width); SF ZF PF.
//! - SAR: CF = last bit out (the sign once count >= width); OF = 0; SF ZF PF.
//! - ROL: CF = LSB(res); ROR: CF = MSB(res). Only CF and OF change.
//! - RCL/RCR: 8/16-bit counts are then taken mod 9/17. CF = the new carry. Only CF and OF
//!   change.
//! - SHLD/SHRD: CF = last bit out; SF ZF PF.
//!
//! AMD:
//! - AF = 1 (u) after SHL SHR SAR SHLD SHRD.
//! - OF (u for count > 1) is the count-1 formula applied to the *result*: SHL, ROL, RCL and
//!   SHLD MSB(res) ^ CF; SHR, ROR, RCR and SHRD the top two bits of res xored (for SHR: 0
//!   once count > 1).
//! - RCL/RCR: a masked count that is a nonzero multiple of 9/17 leaves the value and CF
//!   alone but still writes that OF.
//! - SHLD/SHRD r16, counts 16..31 (u): the host shifts the 48-bit concatenation dst:src:src
//!   (SHLD) or src:src:dst (SHRD); for count > 16 CF = 0 and SHLD's OF = 0; for SHLD count
//!   16, OF = CF.
//!
//! Intel:
//! - AF = 0 (u) after SHL SHR SAR SHLD SHRD.
//! - OF (u for count > 1) is, for every count, what a count of 1 gives, computed from the
//!   *operands*: SHL, ROL, RCL MSB(src) ^ bit width-2 of src; SHR MSB(src); ROR MSB(src) ^
//!   LSB(src); RCR MSB(src) ^ the incoming CF; SHLD MSB(dst) ^ bit width-2 of dst; SHRD
//!   MSB(dst) ^ LSB(src).
//! - ROL/ROR of a register by an immediate count (C0/C1, not the 1-forms) whose masked value
//!   is above 1: OF unchanged (by CL, or of a memory destination, OF follows the rule above
//!   for every count).
//! - RCL/RCR: a masked count that is a nonzero multiple of 9/17 changes nothing (OF too).
//! - SHLD/SHRD r16, counts 17..31 (u): both shift the 48-bit concatenation dst:src:dst (SHLD
//!   left, keeping the top 16 bits; SHRD right, keeping the low 16); CF is the last bit out of
//!   it, OF follows the rule above.
//!
//! The vendor is chosen at translation time ([`Ctx::vendor`]): only its formulas are emitted.
//! With a constant nonzero count, a shift that defines all six flags leaves them lazy
//! ([`FlagOp::Shift`]: the result, and CF, OF and AF computed here).
use iced_x86::{Mnemonic as M, OpKind};

use crate::ctx::Ctx;
use crate::emit::Emitter;
use crate::flags::{self, FlagOp, Vendor};
use crate::ir::{BinOp, Cmp, Conv, Ty};
use crate::state::rflags;

/// What a shift produced: the result (of the operand type) and its CF and OF (`I8` 0/1).
struct Shifted<V> {
    res: V,
    cf: V,
    of: V,
}

/// Which flags a shift defines.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Defines {
    /// All six (shifts, double shifts): SF ZF PF from the result, AF = 1 (AMD) or 0 (Intel).
    All,
    /// Only CF and OF (rotates).
    CarryOverflow,
    /// Only CF (Intel's ROL and ROR by an immediate count above 1).
    Carry,
}

/// SHL SAL SHR SAR ROL ROR RCL RCR.
pub fn shift<E: Emitter>(ctx: &mut Ctx<E>) {
    let mn = ctx.insn().mnemonic();
    if ctx.insn().op_count() != 2 {
        return ctx.unsupported();
    }
    let ty = ctx.op_ty(0);
    let v = ctx.read_op(0);
    let count = masked_count(ctx, ty, 1);
    let (out, defines) = match mn {
        M::Shl | M::Sal => (shl(ctx, v, count), Defines::All),
        M::Shr => (shr(ctx, v, count), Defines::All),
        M::Sar => (sar(ctx, v, count), Defines::All),
        M::Rol => (rol(ctx, v, count), rotate_defines(ctx, ty)),
        M::Ror => (ror(ctx, v, count), rotate_defines(ctx, ty)),
        M::Rcl | M::Rcr => (rcl_rcr(ctx, v, count, mn == M::Rcl), Defines::CarryOverflow),
        _ => return ctx.unsupported(),
    };
    finish(ctx, v, count, out, defines);
}

/// What ROL and ROR write: CF and OF, except on Intel for a register rotated by an immediate
/// count whose masked value is above 1 (not by CL, not the 1-forms, not a memory
/// destination), which keeps OF.
fn rotate_defines<E: Emitter>(ctx: &Ctx<E>, ty: Ty) -> Defines {
    let insn = ctx.insn();
    let mask = if ty == Ty::I64 { 63 } else { 31 };
    let reg_by_imm = insn.op_kind(0) == OpKind::Register && insn.op_kind(1) == OpKind::Immediate8;
    if ctx.vendor() == Vendor::Intel && reg_by_imm && u64::from(insn.immediate8()) & mask > 1 {
        Defines::Carry
    } else {
        Defines::CarryOverflow
    }
}

/// SHLD and SHRD (16/32/64-bit; count from imm8 or CL).
pub fn double_shift<E: Emitter>(ctx: &mut Ctx<E>) {
    let mn = ctx.insn().mnemonic();
    if ctx.insn().op_count() != 3 || ctx.op_ty(0) == Ty::I8 || ctx.op_ty(1) != ctx.op_ty(0) {
        return ctx.unsupported();
    }
    let v = ctx.read_op(0);
    let src = ctx.read_op(1);
    let count = masked_count(ctx, ctx.op_ty(0), 2);
    let out = match mn {
        M::Shld => shld(ctx, v, src, count),
        M::Shrd => shrd(ctx, v, src, count),
        _ => return ctx.unsupported(),
    };
    finish(ctx, v, count, out, Defines::All);
}

/// Operand `op` (imm8 or CL) masked to 5 bits, or 6 for 64-bit operands, as an `I64`.
fn masked_count<E: Emitter>(ctx: &mut Ctx<E>, ty: Ty, op: u32) -> E::Value {
    let c = ctx.read_op(op);
    let c = ctx.to_ty(c, Ty::I64, false);
    let m = ctx.c(Ty::I64, if ty == Ty::I64 { 63 } else { 31 });
    ctx.bin(BinOp::And, c, m)
}

/// Write the result and flags, keeping both unchanged where the masked count is 0.
fn finish<E: Emitter>(
    ctx: &mut Ctx<E>,
    v: E::Value,
    count: E::Value,
    out: Shifted<E::Value>,
    defines: Defines,
) {
    if defines == Defines::All && ctx.e.as_const(count).is_some_and(|c| c != 0) {
        // Every flag is defined and the count is known not to be 0: a lazy descriptor,
        // evaluated only for the flags something reads.
        ctx.write_op(0, out.res);
        let one = ctx.c(Ty::I8, 1);
        let of = ctx.bin(BinOp::Shl, out.of, one);
        let aux = ctx.bin(BinOp::Or, out.cf, of);
        let aux = if ctx.vendor() == Vendor::Amd {
            let af = ctx.c(Ty::I8, 4);
            ctx.bin(BinOp::Or, aux, af)
        } else {
            aux
        };
        ctx.set_flags_lazy(FlagOp::Shift, out.res, out.res, out.res, Some(aux));
        return;
    }
    let (mask, new) = match defines {
        Defines::All => {
            let ty = ctx.e.ty(out.res);
            let p = flags::parity(&mut ctx.e, out.res);
            let a = ctx.c(Ty::I8, u64::from(ctx.vendor() == Vendor::Amd));
            let zero = ctx.c(ty, 0);
            let z = ctx.cmp(Cmp::Eq, out.res, zero);
            let s = ctx.cmp(Cmp::Slt, out.res, zero);
            let bits = flags::pack(&mut ctx.e, [out.cf, p, a, z, s, out.of]);
            (rflags::ARITH, bits)
        }
        Defines::CarryOverflow => {
            let z = ctx.c(Ty::I8, 0);
            let bits = flags::pack(&mut ctx.e, [out.cf, z, z, z, z, out.of]);
            (rflags::CF | rflags::OF, bits)
        }
        Defines::Carry => {
            let z = ctx.c(Ty::I8, 0);
            let bits = flags::pack(&mut ctx.e, [out.cf, z, z, z, z, z]);
            (rflags::CF, bits)
        }
    };
    match ctx.e.as_const(count) {
        Some(0) => {
            // The value is written back unchanged: a 32-bit register is zero-extended and
            // a read-only memory destination faults, as on the host.
            ctx.write_op(0, v);
        }
        Some(_) => {
            // Rotates: all six flags went lazy above.
            ctx.write_op(0, out.res);
            ctx.update_flags(mask, new);
        }
        None => {
            let zero = ctx.c(Ty::I64, 0);
            let is0 = ctx.cmp(Cmp::Eq, count, zero);
            let res = ctx.select(is0, v, out.res);
            ctx.write_op(0, res);
            let old = ctx.flags_bits();
            let merged = if mask == rflags::ARITH {
                new
            } else {
                let keep = ctx.c(Ty::I64, rflags::ARITH & !mask);
                let kept = ctx.bin(BinOp::And, old, keep);
                ctx.bin(BinOp::Or, kept, new)
            };
            let f = ctx.select(is0, old, merged);
            ctx.set_flags_bits(f);
        }
    }
}

// ---------------------------------------------------------------- small value helpers

/// Bit `n` (a constant) of `v`, as an `I8` 0/1.
fn bit<E: Emitter>(ctx: &mut Ctx<E>, v: E::Value, n: u32) -> E::Value {
    let ty = ctx.e.ty(v);
    let sh = ctx.c(ty, n as u64);
    let x = ctx.bin(BinOp::UShr, v, sh);
    low_bit(ctx, x)
}

/// Bit 0 of `v`, as an `I8` 0/1.
fn low_bit<E: Emitter>(ctx: &mut Ctx<E>, v: E::Value) -> E::Value {
    let x = ctx.e.convert(Conv::Trunc, v, Ty::I8);
    let one = ctx.c(Ty::I8, 1);
    ctx.bin(BinOp::And, x, one)
}

/// The sign bit of `v` (at its own width), as an `I8` 0/1.
fn msb<E: Emitter>(ctx: &mut Ctx<E>, v: E::Value) -> E::Value {
    let ty = ctx.e.ty(v);
    let zero = ctx.c(ty, 0);
    ctx.cmp(Cmp::Slt, v, zero)
}

/// MSB(v) ^ bit width-2 of v: AMD's OF of right shifts and rotates (of the result), Intel's
/// of SHL, ROL, RCL and SHLD (of the source: what a count of 1 gives).
fn top_two_xor<E: Emitter>(ctx: &mut Ctx<E>, res: E::Value) -> E::Value {
    let w = ctx.e.ty(res).bits();
    let m = msb(ctx, res);
    let b = bit(ctx, res, w - 2);
    ctx.bin(BinOp::Xor, m, b)
}

/// `k - count` as an `I64` (the complementary shift amount).
fn minus<E: Emitter>(ctx: &mut Ctx<E>, k: u64, count: E::Value) -> E::Value {
    let k = ctx.c(Ty::I64, k);
    ctx.bin(BinOp::Sub, k, count)
}

/// `a op b` on `I64` values with a constant `b`.
fn op_k<E: Emitter>(ctx: &mut Ctx<E>, op: BinOp, a: E::Value, b: u64) -> E::Value {
    let b = ctx.c(Ty::I64, b);
    ctx.bin(op, a, b)
}

fn zext64<E: Emitter>(ctx: &mut Ctx<E>, v: E::Value) -> E::Value {
    ctx.to_ty(v, Ty::I64, false)
}

// ---------------------------------------------------------------- shifts and rotates

fn shl<E: Emitter>(ctx: &mut Ctx<E>, v: E::Value, c: E::Value) -> Shifted<E::Value> {
    let ty = ctx.e.ty(v);
    let x = zext64(ctx, v);
    let r = ctx.bin(BinOp::Shl, x, c);
    let res = ctx.to_ty(r, ty, false);
    // The last bit out is the top bit after shifting by count-1 (0 once count > width).
    let cm1 = op_k(ctx, BinOp::Sub, c, 1);
    let t = ctx.bin(BinOp::Shl, x, cm1);
    let cf = bit(ctx, t, ty.bits() - 1);
    let of = match ctx.vendor() {
        Vendor::Amd => {
            let m = msb(ctx, res);
            ctx.bin(BinOp::Xor, m, cf)
        }
        Vendor::Intel => top_two_xor(ctx, v),
    };
    Shifted { res, cf, of }
}

fn shr<E: Emitter>(ctx: &mut Ctx<E>, v: E::Value, c: E::Value) -> Shifted<E::Value> {
    let ty = ctx.e.ty(v);
    let x = zext64(ctx, v);
    let r = ctx.bin(BinOp::UShr, x, c);
    let res = ctx.to_ty(r, ty, false);
    let cm1 = op_k(ctx, BinOp::Sub, c, 1);
    let t = ctx.bin(BinOp::UShr, x, cm1);
    let cf = low_bit(ctx, t);
    let of = match ctx.vendor() {
        Vendor::Amd => top_two_xor(ctx, res),
        Vendor::Intel => msb(ctx, v),
    };
    Shifted { res, cf, of }
}

fn sar<E: Emitter>(ctx: &mut Ctx<E>, v: E::Value, c: E::Value) -> Shifted<E::Value> {
    let ty = ctx.e.ty(v);
    let x = ctx.to_ty(v, Ty::I64, true);
    let r = ctx.bin(BinOp::SShr, x, c);
    let res = ctx.to_ty(r, ty, false);
    let cm1 = op_k(ctx, BinOp::Sub, c, 1);
    let t = ctx.bin(BinOp::SShr, x, cm1);
    let cf = low_bit(ctx, t);
    let of = ctx.c(Ty::I8, 0);
    Shifted { res, cf, of }
}

fn rol<E: Emitter>(ctx: &mut Ctx<E>, v: E::Value, c: E::Value) -> Shifted<E::Value> {
    // `ir` rotates take the amount modulo the width, which is exactly x86's count mod width.
    let res = ctx.bin(BinOp::Rotl, v, c);
    let cf = low_bit(ctx, res);
    let of = match ctx.vendor() {
        Vendor::Amd => {
            let m = msb(ctx, res);
            ctx.bin(BinOp::Xor, m, cf)
        }
        Vendor::Intel => top_two_xor(ctx, v),
    };
    Shifted { res, cf, of }
}

fn ror<E: Emitter>(ctx: &mut Ctx<E>, v: E::Value, c: E::Value) -> Shifted<E::Value> {
    let res = ctx.bin(BinOp::Rotr, v, c);
    let cf = msb(ctx, res);
    let of = match ctx.vendor() {
        Vendor::Amd => top_two_xor(ctx, res),
        Vendor::Intel => {
            let m = msb(ctx, v);
            let l = low_bit(ctx, v);
            ctx.bin(BinOp::Xor, m, l)
        }
    };
    Shifted { res, cf, of }
}

/// RCL/RCR: a rotation of the (width+1)-bit value CF:v. Each formula below is exact for
/// 1 <= count <= width; count 0 (possible after mod 9/17) is handled by its terms vanishing
/// in the truncation and by a select for CF.
fn rcl_rcr<E: Emitter>(
    ctx: &mut Ctx<E>,
    v: E::Value,
    c: E::Value,
    left: bool,
) -> Shifted<E::Value> {
    let ty = ctx.e.ty(v);
    let w = ty.bits() as u64;
    let cc = match ty {
        Ty::I8 => reduce_mod(ctx, c, 9),
        Ty::I16 => reduce_mod(ctx, c, 17),
        _ => c,
    };
    let x = zext64(ctx, v);
    let cf_in = ctx.flag(rflags::CF);
    let cf64 = zext64(ctx, cf_in);
    let wmc = minus(ctx, w, cc);
    let cm1 = op_k(ctx, BinOp::Sub, cc, 1);
    let (r, out_bit) = if left {
        // (x << cc) | (CF << cc-1) | (x >> (w-cc+1)), the last split so no shift reaches 64.
        let a = ctx.bin(BinOp::Shl, x, cc);
        let b = ctx.bin(BinOp::Shl, cf64, cm1);
        let t = ctx.bin(BinOp::UShr, x, wmc);
        let d = op_k(ctx, BinOp::UShr, t, 1);
        let ab = ctx.bin(BinOp::Or, a, b);
        (ctx.bin(BinOp::Or, ab, d), t)
    } else {
        // (x >> cc) | (CF << w-cc) | (x << (w-cc+1)).
        let a = ctx.bin(BinOp::UShr, x, cc);
        let b = ctx.bin(BinOp::Shl, cf64, wmc);
        let t = ctx.bin(BinOp::Shl, x, wmc);
        let d = op_k(ctx, BinOp::Shl, t, 1);
        let ab = ctx.bin(BinOp::Or, a, b);
        let out = ctx.bin(BinOp::UShr, x, cm1);
        (ctx.bin(BinOp::Or, ab, d), out)
    };
    let res = ctx.to_ty(r, ty, false);
    let out_bit = low_bit(ctx, out_bit);
    let zero = ctx.c(Ty::I64, 0);
    let none = ctx.cmp(Cmp::Eq, cc, zero);
    let cf = ctx.select(none, cf_in, out_bit);
    let of = match ctx.vendor() {
        Vendor::Amd if left => {
            let m = msb(ctx, res);
            ctx.bin(BinOp::Xor, m, cf)
        }
        Vendor::Amd => top_two_xor(ctx, res),
        Vendor::Intel => {
            let of = if left {
                top_two_xor(ctx, v)
            } else {
                let m = msb(ctx, v);
                ctx.bin(BinOp::Xor, m, cf_in)
            };
            // A reduced count of 0 (a masked count that is a multiple of 9/17) keeps OF.
            match ctx.e.as_const(none) {
                Some(0) => of,
                _ if w > 16 => of,
                _ => {
                    let old = ctx.flag(rflags::OF);
                    ctx.select(none, old, of)
                }
            }
        }
    };
    Shifted { res, cf, of }
}

/// `c mod m` for a masked count `c` in 0..=31 (`ir` has no remainder: subtract multiples).
fn reduce_mod<E: Emitter>(ctx: &mut Ctx<E>, c: E::Value, m: u64) -> E::Value {
    let mut r = c;
    let mut k = m;
    while k <= 31 {
        let kv = ctx.c(Ty::I64, k);
        let ge = ctx.cmp(Cmp::Uge, c, kv);
        let sub = ctx.bin(BinOp::Sub, c, kv);
        r = ctx.select(ge, sub, r);
        k += m;
    }
    r
}

// ---------------------------------------------------------------- double shifts

fn shld<E: Emitter>(ctx: &mut Ctx<E>, v: E::Value, s: E::Value, c: E::Value) -> Shifted<E::Value> {
    let ty = ctx.e.ty(v);
    let w = ty.bits() as u64;
    let (x, y) = (zext64(ctx, v), zext64(ctx, s));
    let (res, cf) = if ty == Ty::I64 {
        // (v << c) | (s >> 64-c), exact for 1 <= c <= 63.
        let a = ctx.bin(BinOp::Shl, x, c);
        let k = minus(ctx, 64, c);
        let b = ctx.bin(BinOp::UShr, y, k);
        let res = ctx.bin(BinOp::Or, a, b);
        let t = ctx.bin(BinOp::UShr, x, k);
        (res, low_bit(ctx, t))
    } else {
        // v:s (32-bit), or v:s:s (16-bit AMD) / v:s:v (16-bit Intel), in bits 0..32+w; the
        // result is bits 32.. of cat << c and CF is bit 32+w-c of cat.
        let hi = op_k(ctx, BinOp::Shl, x, 32);
        let mid = op_k(ctx, BinOp::Shl, y, 32 - w);
        let mut cat = ctx.bin(BinOp::Or, hi, mid);
        if ty == Ty::I16 {
            let low = if ctx.vendor() == Vendor::Intel { x } else { y };
            cat = ctx.bin(BinOp::Or, cat, low);
        }
        let t = ctx.bin(BinOp::Shl, cat, c);
        let t = op_k(ctx, BinOp::UShr, t, 32);
        let res = ctx.to_ty(t, ty, false);
        let k = minus(ctx, 32 + w, c);
        let o = ctx.bin(BinOp::UShr, cat, k);
        (res, low_bit(ctx, o))
    };
    let res = ctx.to_ty(res, ty, false);
    if ctx.vendor() == Vendor::Intel {
        let of = top_two_xor(ctx, v);
        return Shifted { res, cf, of };
    }
    let m = msb(ctx, res);
    let mut of = ctx.bin(BinOp::Xor, m, cf);
    let mut cf = cf;
    if ty == Ty::I16 {
        // AMD's behaviour for the undefined counts 16..31.
        let sixteen = ctx.c(Ty::I64, 16);
        let is16 = ctx.cmp(Cmp::Eq, c, sixteen);
        of = ctx.select(is16, cf, of);
        let over = ctx.cmp(Cmp::Ugt, c, sixteen);
        let zero = ctx.c(Ty::I8, 0);
        of = ctx.select(over, zero, of);
        cf = ctx.select(over, zero, cf);
    }
    Shifted { res, cf, of }
}

fn shrd<E: Emitter>(ctx: &mut Ctx<E>, v: E::Value, s: E::Value, c: E::Value) -> Shifted<E::Value> {
    let ty = ctx.e.ty(v);
    let w = ty.bits() as u64;
    let (x, y) = (zext64(ctx, v), zext64(ctx, s));
    let cm1 = op_k(ctx, BinOp::Sub, c, 1);
    let (res, cf) = if ty == Ty::I64 {
        // (v >> c) | (s << 64-c), exact for 1 <= c <= 63.
        let a = ctx.bin(BinOp::UShr, x, c);
        let k = minus(ctx, 64, c);
        let b = ctx.bin(BinOp::Shl, y, k);
        let res = ctx.bin(BinOp::Or, a, b);
        let t = ctx.bin(BinOp::UShr, x, cm1);
        (res, low_bit(ctx, t))
    } else {
        // s:v (32-bit), or s:s:v (16-bit AMD) / v:s:v (16-bit Intel); the result is the low
        // bits of cat >> c.
        let hi = op_k(ctx, BinOp::Shl, y, w);
        let mut cat = ctx.bin(BinOp::Or, hi, x);
        if ty == Ty::I16 {
            let top = if ctx.vendor() == Vendor::Intel { x } else { y };
            let top = op_k(ctx, BinOp::Shl, top, 32);
            cat = ctx.bin(BinOp::Or, cat, top);
        }
        let t = ctx.bin(BinOp::UShr, cat, c);
        let res = ctx.to_ty(t, ty, false);
        let o = ctx.bin(BinOp::UShr, cat, cm1);
        (res, low_bit(ctx, o))
    };
    let res = ctx.to_ty(res, ty, false);
    if ctx.vendor() == Vendor::Intel {
        let m = msb(ctx, v);
        let l = low_bit(ctx, s);
        let of = ctx.bin(BinOp::Xor, m, l);
        return Shifted { res, cf, of };
    }
    let of = top_two_xor(ctx, res);
    let mut cf = cf;
    if ty == Ty::I16 {
        // AMD's behaviour for the undefined counts 17..31.
        let sixteen = ctx.c(Ty::I64, 16);
        let over = ctx.cmp(Cmp::Ugt, c, sixteen);
        let zero = ctx.c(Ty::I8, 0);
        cf = ctx.select(over, zero, cf);
    }
    Shifted { res, cf, of }
}

#[cfg(test)]
mod tests;
