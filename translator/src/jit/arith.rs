//! Integer operations of [`ClifEmitter`] that take more than one Cranelift instruction: the
//! high half of a narrow product and divisions that never trap on the host.
//!
//! Invariant: each means exactly what [`crate::ir::eval_binop`] says, for every operand
//! (no host trap, no undefined result).

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};

use super::emitter::{clif, ClifEmitter};
use crate::emit::ValueOps;
use crate::ir::{BinOp, Ty};

impl ClifEmitter<'_> {
    /// `(a op b) >> bits` of the double-width product, for narrow types.
    pub(super) fn mul_hi_narrow(&mut self, signed: bool, ty: Ty, a: Value, b: Value) -> Value {
        let ext = |e: &mut Self, v| {
            if signed {
                e.b.ins().sextend(types::I64, v)
            } else {
                e.b.ins().uextend(types::I64, v)
            }
        };
        let (wa, wb) = (ext(self, a), ext(self, b));
        let p = self.b.ins().imul(wa, wb);
        let hi = if signed {
            self.b.ins().sshr_imm_u(p, i64::from(ty.bits()))
        } else {
            self.b.ins().ushr_imm_u(p, i64::from(ty.bits()))
        };
        self.b.ins().ireduce(clif(ty), hi)
    }

    /// A division with exactly [`crate::ir::eval_binop`]'s meaning that never traps on the host:
    /// Cranelift's `udiv`/`sdiv`/`urem`/`srem` trap (host SIGFPE) on a zero divisor and
    /// `sdiv` on `MIN / -1`, so such divisors are replaced by 1 and the quotient fixed up.
    /// With the divisor 1, `a % 1 = 0` is already the defined remainder in both cases and
    /// `MIN / 1 = MIN` the defined wrapped quotient; only a zero divisor's quotient (0) needs
    /// a `select`. (`srem` itself gives 0 for `MIN % -1`.)
    pub(super) fn div_rem(&mut self, op: BinOp, ty: Ty, a: Value, b: Value) -> Value {
        let signed = matches!(op, BinOp::SDiv | BinOp::SRem);
        let rem = matches!(op, BinOp::URem | BinOp::SRem);
        let zero = self.iconst(ty, 0);
        match self.const_of(b) {
            Some(0) => return zero,
            Some(m) if signed && m == ty.mask() => {
                // `x / -1 = -x` (wrapping: `MIN` stays), `x % -1 = 0`.
                return if rem { zero } else { self.b.ins().ineg(a) };
            }
            // A divisor that cannot trap: no guard (and Cranelift turns a constant divisor
            // into a multiplication).
            Some(_) => {
                let i = self.b.ins();
                return match op {
                    BinOp::UDiv => i.udiv(a, b),
                    BinOp::SDiv => i.sdiv(a, b),
                    BinOp::URem => i.urem(a, b),
                    _ => i.srem(a, b),
                };
            }
            None => {}
        }
        let one = self.iconst(ty, 1);
        let b_zero = self.b.ins().icmp(IntCC::Equal, b, zero);
        let mut bad = b_zero;
        if signed && !rem {
            let min = self.iconst(ty, ty.sign_bit());
            let m1 = self.iconst(ty, ty.mask());
            let a_min = self.b.ins().icmp(IntCC::Equal, a, min);
            let b_m1 = self.b.ins().icmp(IntCC::Equal, b, m1);
            let ovf = self.b.ins().band(a_min, b_m1);
            bad = self.b.ins().bor(b_zero, ovf);
        }
        let d = self.b.ins().select(bad, one, b);
        let i = self.b.ins();
        match op {
            BinOp::UDiv => {
                let q = i.udiv(a, d);
                self.b.ins().select(b_zero, zero, q)
            }
            BinOp::SDiv => {
                let q = i.sdiv(a, d);
                self.b.ins().select(b_zero, zero, q)
            }
            BinOp::URem => i.urem(a, d),
            _ => i.srem(a, d),
        }
    }
}
