//! The value vocabulary shared by every emitter: integer types, operations, and their exact
//! meaning on concrete values.
//!
//! Invariant: [`eval_binop`], [`eval_unop`], [`eval_cmp`] and [`eval_convert`] define what each
//! operation means. The Cranelift emitter must lower each operation to IR with exactly this
//! meaning (the interpreter uses these functions directly); the two are tested against each other.

/// An integer type of a guest value. Booleans are `I8` holding 0 or 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ty {
    I8,
    I16,
    I32,
    I64,
}

impl Ty {
    /// Width in bits.
    pub const fn bits(self) -> u32 {
        match self {
            Ty::I8 => 8,
            Ty::I16 => 16,
            Ty::I32 => 32,
            Ty::I64 => 64,
        }
    }
    /// Width in bytes.
    pub const fn bytes(self) -> u32 {
        self.bits() / 8
    }
    /// All-ones mask of this width.
    pub const fn mask(self) -> u64 {
        match self {
            Ty::I64 => u64::MAX,
            t => (1u64 << t.bits()) - 1,
        }
    }
    /// The sign bit of this width.
    pub const fn sign_bit(self) -> u64 {
        1u64 << (self.bits() - 1)
    }
    /// The type of an operand of `bytes` bytes.
    pub fn from_bytes(bytes: usize) -> Option<Ty> {
        match bytes {
            1 => Some(Ty::I8),
            2 => Some(Ty::I16),
            4 => Some(Ty::I32),
            8 => Some(Ty::I64),
            _ => None,
        }
    }
}

/// Two-operand integer operations. Both operands have the same type, except the shift amount,
/// which may be any type. Shift and rotate amounts are taken modulo the bit width (as Cranelift
/// does); x86's own count masking is the semantics' job.
///
/// Every operation is total: the divisions give a defined result for a zero divisor and for
/// signed overflow instead of trapping (Cranelift's own `udiv`/`sdiv` trap there; the JIT
/// guards them), so generated code can never raise a host exception. x86's #DE is the
/// semantics' job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    And,
    Or,
    Xor,
    /// Low half of the product.
    Mul,
    /// High half of the unsigned product (I64 only is guaranteed in Cranelift; use it for I64).
    UMulHi,
    /// High half of the signed product.
    SMulHi,
    Shl,
    UShr,
    SShr,
    Rotl,
    Rotr,
    /// Unsigned quotient, truncated. Defined for every input: a zero divisor gives 0.
    UDiv,
    /// Signed quotient, truncated toward zero. A zero divisor gives 0; `MIN / -1` wraps to
    /// `MIN` (the one quotient that does not fit).
    SDiv,
    /// Unsigned remainder. A zero divisor gives 0.
    URem,
    /// Signed remainder, with the sign of the dividend. A zero divisor gives 0; `MIN % -1`
    /// is 0.
    SRem,
}

/// One-operand integer operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    Not,
    Neg,
    /// Number of set bits.
    Popcnt,
    /// Leading zeros; `width` for zero.
    Clz,
    /// Trailing zeros; `width` for zero.
    Ctz,
    /// Byte swap (I16, I32, I64).
    Bswap,
}

/// Integer comparisons; the result is an `I8` 0 or 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Ult,
    Ule,
    Ugt,
    Uge,
    Slt,
    Sle,
    Sgt,
    Sge,
}

/// Width conversions. Converting to the same type is the identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conv {
    /// Zero-extend (to a wider or equal type).
    Zext,
    /// Sign-extend (to a wider or equal type).
    Sext,
    /// Keep the low bits (to a narrower or equal type).
    Trunc,
}

/// Sign-extend the low `ty` bits of `v` to 64 bits.
#[inline(always)]
pub const fn sext64(v: u64, ty: Ty) -> u64 {
    let sh = 64 - ty.bits();
    (((v << sh) as i64) >> sh) as u64
}

/// Evaluate a binary operation on concrete values of type `ty` (inputs need not be masked).
#[inline(always)]
pub fn eval_binop(op: BinOp, ty: Ty, a: u64, b: u64) -> u64 {
    let bits = ty.bits();
    let (a, b) = (a & ty.mask(), b);
    let amt = (b as u32) & (bits - 1);
    let r = match op {
        BinOp::Add => a.wrapping_add(b),
        BinOp::Sub => a.wrapping_sub(b),
        BinOp::And => a & b,
        BinOp::Or => a | b,
        BinOp::Xor => a ^ b,
        BinOp::Mul => a.wrapping_mul(b),
        BinOp::UMulHi => {
            let p = (a as u128) * ((b & ty.mask()) as u128);
            (p >> bits) as u64
        }
        BinOp::SMulHi => {
            let p = (sext64(a, ty) as i64 as i128) * (sext64(b, ty) as i64 as i128);
            (p >> bits) as u64
        }
        BinOp::Shl => a << amt,
        BinOp::UShr => a >> amt,
        BinOp::SShr => (sext64(a, ty) as i64 >> amt) as u64,
        BinOp::Rotl => {
            if amt == 0 {
                a
            } else {
                (a << amt) | (a >> (bits - amt))
            }
        }
        BinOp::Rotr => {
            if amt == 0 {
                a
            } else {
                (a >> amt) | (a << (bits - amt))
            }
        }
        BinOp::UDiv => a.checked_div(b & ty.mask()).unwrap_or(0),
        BinOp::URem => a.checked_rem(b & ty.mask()).unwrap_or(0),
        // Sign-extended to i64, a narrow `MIN / -1` does not overflow; masking wraps it.
        BinOp::SDiv | BinOp::SRem => {
            let (x, y) = (sext64(a, ty) as i64, sext64(b, ty) as i64);
            match (y, op) {
                (0, _) => 0,
                (_, BinOp::SDiv) => x.wrapping_div(y) as u64,
                _ => x.wrapping_rem(y) as u64,
            }
        }
    };
    r & ty.mask()
}

/// Evaluate a unary operation on a concrete value of type `ty`.
#[inline(always)]
pub fn eval_unop(op: UnOp, ty: Ty, a: u64) -> u64 {
    let a = a & ty.mask();
    let bits = ty.bits();
    let r = match op {
        UnOp::Not => !a,
        UnOp::Neg => a.wrapping_neg(),
        UnOp::Popcnt => a.count_ones() as u64,
        UnOp::Clz => (a.leading_zeros() - (64 - bits)) as u64,
        UnOp::Ctz => {
            if a == 0 {
                bits as u64
            } else {
                a.trailing_zeros() as u64
            }
        }
        UnOp::Bswap => match ty {
            Ty::I8 => a,
            Ty::I16 => (a as u16).swap_bytes() as u64,
            Ty::I32 => (a as u32).swap_bytes() as u64,
            Ty::I64 => a.swap_bytes(),
        },
    };
    r & ty.mask()
}

/// Evaluate a comparison of two concrete values of type `ty`: 1 or 0.
#[inline(always)]
pub fn eval_cmp(cc: Cmp, ty: Ty, a: u64, b: u64) -> u64 {
    let (ua, ub) = (a & ty.mask(), b & ty.mask());
    let (sa, sb) = (sext64(a, ty) as i64, sext64(b, ty) as i64);
    let r = match cc {
        Cmp::Eq => ua == ub,
        Cmp::Ne => ua != ub,
        Cmp::Ult => ua < ub,
        Cmp::Ule => ua <= ub,
        Cmp::Ugt => ua > ub,
        Cmp::Uge => ua >= ub,
        Cmp::Slt => sa < sb,
        Cmp::Sle => sa <= sb,
        Cmp::Sgt => sa > sb,
        Cmp::Sge => sa >= sb,
    };
    r as u64
}

/// Evaluate a conversion of a concrete value from `from` to `to`.
#[inline(always)]
pub fn eval_convert(op: Conv, from: Ty, to: Ty, v: u64) -> u64 {
    match op {
        Conv::Zext | Conv::Trunc => v & from.mask() & to.mask(),
        Conv::Sext => sext64(v, from) & to.mask(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_mask_amount_by_width() {
        assert_eq!(eval_binop(BinOp::Shl, Ty::I32, 1, 33), 2);
        assert_eq!(eval_binop(BinOp::SShr, Ty::I8, 0x80, 1), 0xC0);
        assert_eq!(eval_binop(BinOp::Rotr, Ty::I16, 1, 1), 0x8000);
    }

    #[test]
    fn mulhi_and_bitcounts() {
        assert_eq!(eval_binop(BinOp::UMulHi, Ty::I64, u64::MAX, 2), 1);
        assert_eq!(eval_binop(BinOp::SMulHi, Ty::I64, u64::MAX, 2), u64::MAX);
        assert_eq!(eval_unop(UnOp::Clz, Ty::I16, 1), 15);
        assert_eq!(eval_unop(UnOp::Ctz, Ty::I32, 0), 32);
        assert_eq!(eval_cmp(Cmp::Slt, Ty::I8, 0xFF, 0), 1);
        assert_eq!(
            eval_convert(Conv::Sext, Ty::I8, Ty::I64, 0x80),
            0xFFFF_FFFF_FFFF_FF80
        );
    }

    #[test]
    fn divisions_are_total() {
        use BinOp::*;
        // Ordinary cases: truncation toward zero, remainder with the dividend's sign.
        assert_eq!(eval_binop(UDiv, Ty::I8, 200, 7), 28);
        assert_eq!(eval_binop(URem, Ty::I8, 200, 7), 4);
        assert_eq!(
            eval_binop(SDiv, Ty::I8, (-7i8) as u64, 2),
            (-3i8) as u8 as u64
        );
        assert_eq!(
            eval_binop(SRem, Ty::I8, (-7i8) as u64, 2),
            (-1i8) as u8 as u64
        );
        assert_eq!(
            eval_binop(SDiv, Ty::I32, 7, (-2i32) as u32 as u64),
            0xffff_fffd
        );
        // Bits above the type are ignored, the divisor's included.
        assert_eq!(eval_binop(UDiv, Ty::I16, 0xdead_0010, 0xbeef_0004), 4);
        assert_eq!(eval_binop(UDiv, Ty::I16, 0x10, 0x1_0000), 0);
        for ty in [Ty::I8, Ty::I16, Ty::I32, Ty::I64] {
            let (min, m1) = (ty.sign_bit(), ty.mask());
            for op in [UDiv, SDiv, URem, SRem] {
                assert_eq!(eval_binop(op, ty, 12345, 0), 0, "{op:?} {ty:?} by zero");
                assert_eq!(eval_binop(op, ty, min, 0), 0, "{op:?} {ty:?} by zero");
            }
            assert_eq!(eval_binop(SDiv, ty, min, m1), min, "{ty:?} MIN / -1");
            assert_eq!(eval_binop(SRem, ty, min, m1), 0, "{ty:?} MIN % -1");
            assert_eq!(eval_binop(UDiv, ty, min, m1), 0, "{ty:?}");
            assert_eq!(eval_binop(URem, ty, min, m1), min, "{ty:?}");
            assert_eq!(eval_binop(SDiv, ty, min, 1), min, "{ty:?}");
            assert_eq!(eval_binop(SDiv, ty, 5, m1), m1 - 4, "{ty:?} 5 / -1");
        }
    }
}
