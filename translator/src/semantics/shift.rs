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
use iced_x86::{Mnemonic as M, OpKind};

use crate::ctx::Ctx;
use crate::emit::Emitter;
use crate::flags::{self, Vendor};
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
            ctx.write_op(0, out.res);
            if mask == rflags::ARITH {
                ctx.set_flags_bits(new);
            } else {
                ctx.update_flags(mask, new);
            }
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
mod tests {
    use std::arch::asm;

    use iced_x86::{Code, Encoder, Instruction, Register};

    use crate::flags::Vendor;
    use crate::semantics::system::test_env::*;
    use crate::state::{rflags, CpuState, ExitReason};

    type Native1 = fn(u64, u8, u64) -> (u64, u64);
    type Native2 = fn(u64, u64, u8, u64) -> (u64, u64);

    /// `$ins reg, cl` executed natively: (full 64-bit register after, arithmetic flags).
    macro_rules! native1 {
        ($name:ident, $ins:literal, $m:literal) => {
            fn $name(v: u64, c: u8, fin: u64) -> (u64, u64) {
                let (mut v, fout): (u64, u64) = (v, 0);
                let mut fout = fout;
                // SAFETY: only registers and the stack (push/pop of RFLAGS) are touched; the
                // flags image keeps IF set and TF/DF/AC clear.
                unsafe {
                    asm!(
                        "push {fin}", "popfq",
                        concat!($ins, " {v:", $m, "}, cl"),
                        "pushfq", "pop {fout}",
                        v = inout(reg) v, fin = in(reg) (fin & rflags::ARITH) | 0x202,
                        fout = inout(reg) fout, in("cl") c,
                    );
                }
                (v, fout & rflags::ARITH)
            }
        };
    }
    /// `$ins reg, reg2, cl` executed natively.
    macro_rules! native2 {
        ($name:ident, $ins:literal, $m:literal) => {
            fn $name(v: u64, s: u64, c: u8, fin: u64) -> (u64, u64) {
                let (mut v, mut fout): (u64, u64) = (v, 0);
                // SAFETY: as in `native1`.
                unsafe {
                    asm!(
                        "push {fin}", "popfq",
                        concat!($ins, " {v:", $m, "}, {s:", $m, "}, cl"),
                        "pushfq", "pop {fout}",
                        v = inout(reg) v, s = in(reg) s, fin = in(reg) (fin & rflags::ARITH) | 0x202,
                        fout = inout(reg) fout, in("cl") c,
                    );
                }
                (v, fout & rflags::ARITH)
            }
        };
    }
    macro_rules! natives1 {
        ($($n8:ident $n16:ident $n32:ident $n64:ident $ins:literal;)*) => {$(
            native1!($n8, $ins, "l"); native1!($n16, $ins, "x");
            native1!($n32, $ins, "e"); native1!($n64, $ins, "r");
        )*};
    }
    natives1! {
        shl8 shl16 shl32 shl64 "shl";
        shr8 shr16 shr32 shr64 "shr";
        sar8 sar16 sar32 sar64 "sar";
        rol8 rol16 rol32 rol64 "rol";
        ror8 ror16 ror32 ror64 "ror";
        rcl8 rcl16 rcl32 rcl64 "rcl";
        rcr8 rcr16 rcr32 rcr64 "rcr";
    }
    native2!(shld16, "shld", "x");
    native2!(shld32, "shld", "e");
    native2!(shld64, "shld", "r");
    native2!(shrd16, "shrd", "x");
    native2!(shrd32, "shrd", "e");
    native2!(shrd64, "shrd", "r");

    fn encode(insn: Instruction) -> Vec<u8> {
        let mut enc = Encoder::new(64);
        enc.encode(&insn, CODE).unwrap();
        enc.take_buffer()
    }

    fn acc(bits: u32) -> Register {
        match bits {
            8 => Register::AL,
            16 => Register::AX,
            32 => Register::EAX,
            _ => Register::RAX,
        }
    }
    fn src_reg(bits: u32) -> Register {
        match bits {
            16 => Register::DX,
            32 => Register::EDX,
            _ => Register::RDX,
        }
    }

    const WIDTHS: [u32; 4] = [8, 16, 32, 64];
    const VALUES: [u64; 9] = [
        0,
        1,
        0x81,
        0x8001_4002_8004_c3a5,
        0xffff_ffff_ffff_ffff,
        0x7fff_ffff_ffff_fffe,
        0x5a5a_5a5a_a5a5_a5a5,
        0xdead_beef_8000_0001,
        0x0123_4567_89ab_cdef,
    ];
    /// Counts: 0, 1, width-1, width, > width for every width, and bits above the mask.
    fn counts() -> impl Iterator<Item = u8> {
        (0..=70).chain([96, 127, 128, 129, 160, 200, 255])
    }
    const FLAGS_IN: [u64; 4] = [0, rflags::ARITH, rflags::CF, rflags::OF | rflags::ZF];

    fn cpu_with(v: u64, s: u64, c: u8, fin: u64) -> CpuState {
        let mut cpu = TestEnv::cpu();
        cpu.gpr[0] = v;
        cpu.gpr[1] = 0xffff_ff00 | c as u64;
        cpu.gpr[2] = s;
        cpu.rflags |= fin;
        cpu
    }

    /// Run `code` through the constant-folding interpreter and the opaque one; both must
    /// match `want` (RAX, arithmetic flags).
    fn check(code: &[u8], cpu: &CpuState, want: (u64, u64), what: &str) {
        for opaque in [false, true] {
            let (mut c, mut env) = (cpu.clone(), TestEnv::new());
            if opaque {
                step1_opaque(&mut c, &mut env, code);
            } else {
                assert_eq!(step1(&mut c, &mut env, code), ExitReason::Jump, "{what}");
            }
            let got = (c.gpr[0], c.full_rflags() & rflags::ARITH);
            assert_eq!(
                got, want,
                "{what} (opaque: {opaque}): got {:#x} {:#x}, host {:#x} {:#x}",
                got.0, got.1, want.0, want.1
            );
            assert_eq!(c.rip, CODE + code.len() as u64);
        }
    }

    #[test]
    fn shifts_and_rotates_match_the_host() {
        let table: [(&str, [Code; 4], [Native1; 4]); 7] = [
            (
                "shl",
                [
                    Code::Shl_rm8_CL,
                    Code::Shl_rm16_CL,
                    Code::Shl_rm32_CL,
                    Code::Shl_rm64_CL,
                ],
                [shl8, shl16, shl32, shl64],
            ),
            (
                "shr",
                [
                    Code::Shr_rm8_CL,
                    Code::Shr_rm16_CL,
                    Code::Shr_rm32_CL,
                    Code::Shr_rm64_CL,
                ],
                [shr8, shr16, shr32, shr64],
            ),
            (
                "sar",
                [
                    Code::Sar_rm8_CL,
                    Code::Sar_rm16_CL,
                    Code::Sar_rm32_CL,
                    Code::Sar_rm64_CL,
                ],
                [sar8, sar16, sar32, sar64],
            ),
            (
                "rol",
                [
                    Code::Rol_rm8_CL,
                    Code::Rol_rm16_CL,
                    Code::Rol_rm32_CL,
                    Code::Rol_rm64_CL,
                ],
                [rol8, rol16, rol32, rol64],
            ),
            (
                "ror",
                [
                    Code::Ror_rm8_CL,
                    Code::Ror_rm16_CL,
                    Code::Ror_rm32_CL,
                    Code::Ror_rm64_CL,
                ],
                [ror8, ror16, ror32, ror64],
            ),
            (
                "rcl",
                [
                    Code::Rcl_rm8_CL,
                    Code::Rcl_rm16_CL,
                    Code::Rcl_rm32_CL,
                    Code::Rcl_rm64_CL,
                ],
                [rcl8, rcl16, rcl32, rcl64],
            ),
            (
                "rcr",
                [
                    Code::Rcr_rm8_CL,
                    Code::Rcr_rm16_CL,
                    Code::Rcr_rm32_CL,
                    Code::Rcr_rm64_CL,
                ],
                [rcr8, rcr16, rcr32, rcr64],
            ),
        ];
        for (name, codes, natives) in table {
            for i in 0..4 {
                let w = WIDTHS[i];
                let code = encode(Instruction::with2(codes[i], acc(w), Register::CL).unwrap());
                for v in VALUES {
                    for c in counts() {
                        for fin in FLAGS_IN {
                            let want = natives[i](v, c, fin);
                            let what = format!("{name}{w} v={v:#x} c={c} fin={fin:#x}");
                            check(&code, &cpu_with(v, 0, c, fin), want, &what);
                        }
                    }
                }
            }
        }
    }

    /// Immediate counts (the tables above use CL): Intel treats ROL/ROR of a register by an
    /// immediate above 1 differently.
    #[test]
    fn immediate_counts_match_the_host() {
        use crate::semantics::alu::probe::{fuzz, native};
        let runs = [
            native!("rol al, 2"),
            native!("rol bx, 9"),
            native!("rol ecx, 33"),
            native!("rol rdx, 63"),
            native!("ror al, 8"),
            native!("ror si, 31"),
            native!("ror r8d, 2"),
            native!("ror r9, 65"),
            native!("rol byte ptr [rdi], 3"),
            native!("ror qword ptr [rdi - 8], 7"),
            native!("shl al, 5"),
            native!("shr ax, 17"),
            native!("sar edx, 31"),
            native!("shl r10, 40"),
            native!("rcl bl, 9"),
            native!("rcr cx, 17"),
            native!("rcl eax, 2"),
            native!("rcr rax, 40"),
            native!("shld ax, dx, 20"),
            native!("shrd eax, ecx, 7"),
            native!("shld rax, rbx, 63"),
        ];
        for (i, run) in runs.into_iter().enumerate() {
            fuzz(run, 300, 300 + i as u64);
        }
    }

    /// One hand-written case per vendor-specific rule of the module header, with both
    /// vendors' results (the host checks its own).
    #[test]
    fn undefined_flags_follow_the_vendor() {
        use crate::semantics::alu::probe::{flags_only as f, native, vendor_rule, Want};
        use crate::state::reg::{RAX, RCX, RDX};
        use rflags::{AF, CF, OF, PF, SF, ZF};
        let both = |what, run, set: &[(usize, u64)], fin, intel, amd| {
            vendor_rule(what, run, set, fin, [f(intel), f(amd)]);
        };
        // AF: 0 on Intel, 1 on AMD. OF for counts > 1: Intel's comes from the source, as for
        // a count of 1 (0x4d: bits 7 and 6 differ), AMD's from the result.
        let shl = native!("shl al, cl");
        both(
            "shl8 by 9",
            shl,
            &[(RAX, 0x4d), (RCX, 9)],
            0,
            PF | ZF | OF,
            PF | AF | ZF,
        );
        let shl = native!("shl eax, 3");
        let v = 0x4000_0000;
        both(
            "shl32 by 3",
            shl,
            &[(RAX, v)],
            0,
            PF | ZF | OF,
            PF | AF | ZF,
        );
        let shr = native!("shr ax, cl");
        both("shr16 by 14", shr, &[(RAX, 0x8000), (RCX, 14)], 0, OF, AF);
        let sar = native!("sar rax, 2");
        both("sar64", sar, &[(RAX, -8i64 as u64)], 0, SF, AF | SF);
        // Rotates: Intel's OF is ROL's MSB ^ bit 6 of the source, ROR's MSB ^ LSB of it.
        both(
            "rol8 by 3",
            native!("rol bl, cl"),
            &[(3, 0x40), (RCX, 3)],
            0,
            OF,
            0,
        );
        both(
            "ror16 by 3",
            native!("ror dx, cl"),
            &[(RDX, 1), (RCX, 3)],
            0,
            OF,
            0,
        );
        // By an immediate above 1, Intel keeps OF (CF as ever); AMD as by CL.
        both("rol8 imm 3", native!("rol bl, 3"), &[(3, 0x40)], 0, 0, 0);
        both(
            "rol8 imm 3, OF",
            native!("rol bl, 3"),
            &[(3, 0x40)],
            OF,
            OF,
            0,
        );
        both("ror16 imm 3", native!("ror dx, 3"), &[(RDX, 1)], OF, OF, 0);
        let ror = native!("ror eax, 2");
        both("ror32 imm 2", ror, &[(RAX, 1)], 0, 0, OF);
        both(
            "ror32 imm 33",
            native!("ror eax, 33"),
            &[(RAX, 1)],
            0,
            CF | OF,
            CF | OF,
        );
        // A memory destination (0x5a) gets OF by the usual rules on both.
        let rol = native!("rol byte ptr [rdi], 3");
        both("rol m8 imm 3", rol, &[], 0, OF, OF);
        // RCL/RCR: a count that is a multiple of 9 (17) changes nothing on Intel; AMD writes
        // OF from the (unchanged) value and CF.
        let rcl = native!("rcl al, cl");
        both("rcl8 by 9", rcl, &[(RAX, 0x80), (RCX, 9)], 0, 0, OF);
        let fin = CF | OF;
        both(
            "rcl8 by 9, CF OF",
            rcl,
            &[(RAX, 0x80), (RCX, 9)],
            fin,
            CF | OF,
            CF,
        );
        let rcr = native!("rcr ax, cl");
        both("rcr16 by 17", rcr, &[(RAX, 0x4000), (RCX, 17)], 0, 0, OF);
        // RCL: MSB ^ bit 30 of the source; RCR: MSB of the source ^ the incoming CF.
        let rcl = native!("rcl eax, 5");
        both("rcl32 by 5", rcl, &[(RAX, 0x4000_0000)], 0, OF, 0);
        both("rcr64 by 2", native!("rcr rax, 2"), &[(RAX, 1)], CF, OF, 0);
        // SHLD: MSB ^ bit 30 of the destination; SHRD: its MSB ^ the source's LSB.
        let shld = native!("shld eax, edx, 5");
        let v = 0x4000_0000;
        both(
            "shld32 by 5",
            shld,
            &[(RAX, v)],
            0,
            PF | ZF | OF,
            PF | AF | ZF,
        );
        let shrd = native!("shrd eax, edx, 3");
        let v = 0x8000_0000;
        both("shrd32 by 3", shrd, &[(RAX, v)], 0, PF | OF, PF | AF);
        // 16-bit counts above 16: Intel shifts dst:src:dst, AMD dst:src:src (SHLD) or
        // src:src:dst (SHRD), with CF = 0 and SHLD's OF = 0; at 16, AMD's SHLD OF is CF.
        let set = [(RAX, 0x1234), (RDX, 0xabcd), (RCX, 20)];
        let want = |flags, ax| Want {
            flags,
            regs: if ax == 0xbcd1 {
                &[(RAX, 0xbcd1)]
            } else if ax == 0xbcda {
                &[(RAX, 0xbcda)]
            } else if ax == 0x4abc {
                &[(RAX, 0x4abc)]
            } else {
                &[(RAX, 0xdabc)]
            },
        };
        let shld = native!("shld ax, dx, cl");
        let intel = want(PF | SF, 0xbcd1);
        vendor_rule(
            "shld16 by 20",
            shld,
            &set,
            0,
            [intel, want(AF | SF, 0xbcda)],
        );
        let shrd = native!("shrd ax, dx, cl");
        let intel = want(CF | OF, 0x4abc);
        vendor_rule(
            "shrd16 by 20",
            shrd,
            &set,
            0,
            [intel, want(AF | SF, 0xdabc)],
        );
        let set = [(RAX, 0x1235), (RDX, 0xabcd), (RCX, 16)];
        both("shld16 by 16", shld, &set, 0, CF | SF, CF | AF | SF | OF);
    }

    #[test]
    fn double_shifts_match_the_host() {
        let table: [(&str, [Code; 3], [Native2; 3]); 2] = [
            (
                "shld",
                [
                    Code::Shld_rm16_r16_CL,
                    Code::Shld_rm32_r32_CL,
                    Code::Shld_rm64_r64_CL,
                ],
                [shld16, shld32, shld64],
            ),
            (
                "shrd",
                [
                    Code::Shrd_rm16_r16_CL,
                    Code::Shrd_rm32_r32_CL,
                    Code::Shrd_rm64_r64_CL,
                ],
                [shrd16, shrd32, shrd64],
            ),
        ];
        for (name, codes, natives) in table {
            for i in 0..3 {
                let w = WIDTHS[i + 1];
                let insn = Instruction::with3(codes[i], acc(w), src_reg(w), Register::CL).unwrap();
                let code = encode(insn);
                for v in VALUES {
                    for s in [VALUES[3], VALUES[6], VALUES[8], !VALUES[8]] {
                        for c in counts() {
                            for fin in FLAGS_IN {
                                let want = natives[i](v, s, c, fin);
                                let what =
                                    format!("{name}{w} v={v:#x} s={s:#x} c={c} fin={fin:#x}");
                                check(&code, &cpu_with(v, s, c, fin), want, &what);
                            }
                        }
                    }
                }
            }
        }
    }

    fn code(name: &str) -> Code {
        Code::values()
            .find(|c| format!("{c:?}") == name)
            .unwrap_or_else(|| panic!("no code {name}"))
    }

    fn run_one(code: &[u8], cpu: &CpuState, env: &mut TestEnv) -> (CpuState, ExitReason) {
        let mut c = cpu.clone();
        let r = step1(&mut c, env, code);
        (c, r)
    }

    /// Register state and flags that must agree between two forms of an instruction.
    fn visible(c: &CpuState) -> ([u64; 16], u64) {
        (c.gpr, c.full_rflags() & rflags::ARITH)
    }

    #[test]
    fn immediate_one_and_memory_forms_agree_with_cl_form() {
        const ADDR: u64 = 0x3000;
        for op in ["Shl", "Shr", "Sar", "Rol", "Ror", "Rcl", "Rcr"] {
            for w in WIDTHS {
                let cl = code(&format!("{op}_rm{w}_CL"));
                let reg_cl = encode(Instruction::with2(cl, acc(w), Register::CL).unwrap());
                let mem = iced_x86::MemoryOperand::with_base(Register::RBX);
                let mem_cl = encode(Instruction::with2(cl, mem, Register::CL).unwrap());
                let imm = code(&format!("{op}_rm{w}_imm8"));
                let one = code(&format!("{op}_rm{w}_1"));
                for c in [0u32, 1, 2, w - 1, w, w + 1, 31, 33, 200] {
                    for v in [VALUES[3], VALUES[7]] {
                        for fin in [0, rflags::ARITH] {
                            let mut cpu = cpu_with(v, 0, c as u8, fin);
                            cpu.gpr[3] = ADDR;
                            let what = format!("{op}{w} c={c} v={v:#x} fin={fin:#x}");
                            let mut env = TestEnv::new();
                            let (want, _) = run_one(&reg_cl, &cpu, &mut env);
                            let imm_code = encode(Instruction::with2(imm, acc(w), c).unwrap());
                            let (got, _) = run_one(&imm_code, &cpu, &mut env);
                            // Except that Intel's ROL/ROR by an immediate above 1 keep OF.
                            let mut want_imm = visible(&want);
                            let masked = c & if w == 64 { 63 } else { 31 };
                            let rotate = matches!(op, "Rol" | "Ror"); // of a register
                            if Vendor::host() == Vendor::Intel && rotate && masked > 1 {
                                want_imm.1 = (want_imm.1 & !rflags::OF) | (fin & rflags::OF);
                            }
                            assert_eq!(visible(&got), want_imm, "imm8 {what}");
                            if c == 1 {
                                let one_code = encode(Instruction::with2(one, acc(w), 1).unwrap());
                                let (got, _) = run_one(&one_code, &cpu, &mut env);
                                assert_eq!(visible(&got), visible(&want), "1-form {what}");
                            }
                            // Memory destination: same value (at the operand width) and flags.
                            env.write(ADDR, 8, v);
                            let (got, r) = run_one(&mem_cl, &cpu, &mut env);
                            assert_eq!(r, ExitReason::Jump);
                            let m = if w == 64 { !0 } else { (1u64 << w) - 1 };
                            assert_eq!(
                                env.read(ADDR, 8),
                                (v & !m) | (want.gpr[0] & m),
                                "mem {what}"
                            );
                            assert_eq!(visible(&got).1, visible(&want).1, "mem flags {what}");
                            assert_eq!(got.gpr[0], v, "mem form leaves RAX alone");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn double_shift_immediate_and_memory_forms() {
        const ADDR: u64 = 0x3000;
        for op in ["Shld", "Shrd"] {
            for w in [16u32, 32, 64] {
                let cl = code(&format!("{op}_rm{w}_r{w}_CL"));
                let imm = code(&format!("{op}_rm{w}_r{w}_imm8"));
                let reg_cl =
                    encode(Instruction::with3(cl, acc(w), src_reg(w), Register::CL).unwrap());
                let mem = iced_x86::MemoryOperand::with_base(Register::RBX);
                let mem_cl = encode(Instruction::with3(cl, mem, src_reg(w), Register::CL).unwrap());
                for c in [0u32, 1, w - 1, w, w + 1, 31, 63, 64, 255] {
                    let mut cpu = cpu_with(VALUES[3], VALUES[8], c as u8, rflags::ARITH);
                    cpu.gpr[3] = ADDR;
                    let what = format!("{op}{w} c={c}");
                    let mut env = TestEnv::new();
                    let (want, _) = run_one(&reg_cl, &cpu, &mut env);
                    let i = Instruction::with3(imm, acc(w), src_reg(w), c).unwrap();
                    let (got, _) = run_one(&encode(i), &cpu, &mut env);
                    assert_eq!(visible(&got), visible(&want), "imm8 {what}");
                    env.write(ADDR, 8, VALUES[3]);
                    let (got, _) = run_one(&mem_cl, &cpu, &mut env);
                    let m = if w == 64 { !0 } else { (1u64 << w) - 1 };
                    assert_eq!(
                        env.read(ADDR, 8),
                        (VALUES[3] & !m) | (want.gpr[0] & m),
                        "mem {what}"
                    );
                    assert_eq!(visible(&got).1, visible(&want).1, "mem flags {what}");
                }
            }
        }
    }

    #[test]
    fn high_byte_register_destination() {
        // shl ah, cl ; rcr bh, 3
        let code = asm(|a| {
            use iced_x86::code_asm::*;
            a.shl(ah, cl)?;
            a.rcr(bh, 3)
        });
        let mut cpu = TestEnv::cpu();
        let mut env = TestEnv::new();
        cpu.gpr[0] = 0x1234_5678_9abc_c3a5;
        cpu.gpr[1] = 3;
        cpu.gpr[3] = 0xffff_0000_0000_81ff;
        cpu.rflags |= rflags::CF;
        step1(&mut cpu, &mut env, &code);
        assert_eq!(cpu.gpr[0], 0x1234_5678_9abc_18a5);
        assert_eq!(
            cpu.full_rflags() & rflags::CF,
            0,
            "last bit out of 0xc3 << 3 is 0"
        );
        step1(&mut cpu, &mut env, &code);
        // CF:BH = 0_1000_0001 rotated right by 3 (9 bits): 0_0101_0000, so BH = 0x50, CF = 0.
        assert_eq!(cpu.gpr[3], 0xffff_0000_0000_50ff);
        assert_eq!(cpu.full_rflags() & rflags::CF, 0);
    }

    #[test]
    fn faulting_memory_destination_is_precise() {
        // shl dword [rbx], 0 on a read-only page faults (the host writes even for count 0),
        // and the flags and registers are those of the instruction's start.
        let code = asm(|a| {
            use iced_x86::code_asm::*;
            a.shl(dword_ptr(rbx), 0)?;
            a.rcl(qword_ptr(rbx), cl)
        });
        for (rip, count) in [(CODE, 0), (CODE + 3, 5)] {
            let mut env = TestEnv::new();
            env.ro = 0x3000..0x4000;
            let mut cpu = TestEnv::cpu();
            cpu.rip = rip;
            cpu.gpr[1] = count;
            cpu.gpr[3] = 0x3000;
            cpu.rflags |= rflags::ZF;
            assert_eq!(step1(&mut cpu, &mut env, &code), ExitReason::Exception);
            assert_eq!((cpu.rip, cpu.exc_vector, cpu.exc_code), (rip, 14, 2));
            assert_eq!(cpu.full_rflags() & rflags::ARITH, rflags::ZF);
        }
    }
}
