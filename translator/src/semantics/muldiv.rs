//! MUL IMUL (all forms) DIV IDIV.
//!
//! Invariants:
//! - The one-operand forms are widening: the 8-bit form writes AX, the others rDX:rAX. The
//!   two- and three-operand IMUL forms keep the truncated product.
//! - Divides go through [`Helper::DivU`]/[`Helper::DivS`], which evaluate [`divide`] (the one
//!   definition of x86 division, shared with the runtime) and raise #DE. The divisor is loaded
//!   first, so a faulting load or a #DE leaves every register and flag of the instruction's
//!   start.
//!
//! Flags the manuals leave undefined, as measured on the host (AMD Zen 5, see the tests):
//! - MUL/IMUL: CF = OF = "the product does not fit the destination"; SF ZF AF PF are left
//!   unchanged (not computed from the result, as on older CPUs).
//! - DIV/IDIV: CF and OF are left unchanged; SF = ZF = PF = 0 and AF = 1, independent of the
//!   operands and of the incoming flags (24,000 random divisions of every size while probing;
//!   the tests keep 2,400).
use iced_x86::{Mnemonic as M, Register};

use crate::ctx::Ctx;
use crate::emit::Emitter;
use crate::exception::Exception;
use crate::helpers::Helper;
use crate::ir::{BinOp, Cmp, Ty};
use crate::state::{reg, rflags, OFF_HELPER_OUT};

/// MUL and every IMUL form.
pub fn mul<E: Emitter>(ctx: &mut Ctx<E>) {
    let insn = ctx.insn();
    match (insn.mnemonic(), insn.op_count()) {
        (M::Mul, 1) => widening(ctx, false),
        (M::Imul, 1) => widening(ctx, true),
        (M::Imul, 2 | 3) => truncating(ctx),
        _ => ctx.unsupported(),
    }
}

/// The full product of `a` and `b` (both of type `ty`) as (low, high) halves of type `ty`.
fn product<E: Emitter>(ctx: &mut Ctx<E>, a: E::Value, b: E::Value, signed: bool) -> [E::Value; 2] {
    let ty = ctx.e.ty(a);
    if ty == Ty::I64 {
        let lo = ctx.bin(BinOp::Mul, a, b);
        let hi_op = if signed { BinOp::SMulHi } else { BinOp::UMulHi };
        let hi = ctx.bin(hi_op, a, b);
        return [lo, hi];
    }
    // Narrower products fit in 64 bits: one wide multiply, then split.
    let wa = ctx.to_ty(a, Ty::I64, signed);
    let wb = ctx.to_ty(b, Ty::I64, signed);
    let p = ctx.bin(BinOp::Mul, wa, wb);
    let lo = ctx.to_ty(p, ty, false);
    let sh = ctx.c(Ty::I64, ty.bits() as u64);
    let hi = ctx.bin(BinOp::UShr, p, sh);
    let hi = ctx.to_ty(hi, ty, false);
    [lo, hi]
}

/// Whether the product does not fit its low half: the high half is not the extension of
/// the low one.
fn overflows<E: Emitter>(ctx: &mut Ctx<E>, [lo, hi]: [E::Value; 2], signed: bool) -> E::Value {
    let ty = ctx.e.ty(lo);
    let ext = if signed {
        let sh = ctx.c(ty, ty.bits() as u64 - 1);
        ctx.bin(BinOp::SShr, lo, sh)
    } else {
        ctx.c(ty, 0)
    };
    ctx.cmp(Cmp::Ne, hi, ext)
}

/// Flags after a multiply (host-measured): CF = OF = `overflow`; SF ZF AF PF unchanged.
fn mul_flags<E: Emitter>(ctx: &mut Ctx<E>, overflow: E::Value) {
    let both = ctx.c(Ty::I64, rflags::CF | rflags::OF);
    let none = ctx.c(Ty::I64, 0);
    let bits = ctx.select(overflow, both, none);
    ctx.update_flags(rflags::CF | rflags::OF, bits);
}

/// One-operand MUL/IMUL: AX = AL * src, or rDX:rAX = rAX * src.
fn widening<E: Emitter>(ctx: &mut Ctx<E>, signed: bool) {
    let ty = ctx.op_ty(0);
    let src = ctx.read_op(0);
    let acc = ctx.gpr_ty(reg::RAX, ty);
    let halves = product(ctx, acc, src, signed);
    let overflow = overflows(ctx, halves, signed);
    let [lo, hi] = halves;
    if ty == Ty::I8 {
        ctx.set_reg(Register::AL, lo);
        ctx.set_reg(Register::AH, hi);
    } else {
        ctx.set_gpr_ty(reg::RAX, ty, lo);
        ctx.set_gpr_ty(reg::RDX, ty, hi);
    }
    mul_flags(ctx, overflow);
}

/// Two- and three-operand IMUL: `op0 = op0 * op1` or `op0 = op1 * imm`, truncated.
fn truncating<E: Emitter>(ctx: &mut Ctx<E>) {
    let ty = ctx.op_ty(0);
    let (a, b) = if ctx.insn().op_count() == 3 {
        (ctx.read_op_sext(1, ty), ctx.read_op_sext(2, ty))
    } else {
        (ctx.read_op(0), ctx.read_op_sext(1, ty))
    };
    let halves = product(ctx, a, b, true);
    let overflow = overflows(ctx, halves, true);
    ctx.write_op(0, halves[0]);
    mul_flags(ctx, overflow);
}

/// DIV IDIV: rDX:rAX (AX for bytes) / src → quotient in rAX (AL), remainder in rDX (AH).
pub fn div<E: Emitter>(ctx: &mut Ctx<E>) {
    let signed = ctx.insn().mnemonic() == M::Idiv;
    let ty = ctx.op_ty(0);
    let divisor = ctx.read_op(0);
    let (hi, lo) = if ty == Ty::I8 {
        (ctx.reg(Register::AH), ctx.reg(Register::AL))
    } else {
        (ctx.gpr_ty(reg::RDX, ty), ctx.gpr_ty(reg::RAX, ty))
    };
    let size = ctx.c(Ty::I64, ty.bytes() as u64);
    ctx.e.store_state(OFF_HELPER_OUT + 24, size);
    let helper = if signed { Helper::DivS } else { Helper::DivU };
    let q = ctx.call(helper, &[hi, lo, divisor]);
    let r = ctx.e.load_state(Ty::I64, OFF_HELPER_OUT);
    let q = ctx.to_ty(q, ty, false);
    let r = ctx.to_ty(r, ty, false);
    if ty == Ty::I8 {
        ctx.set_reg(Register::AL, q);
        ctx.set_reg(Register::AH, r);
    } else {
        ctx.set_gpr_ty(reg::RAX, ty, q);
        ctx.set_gpr_ty(reg::RDX, ty, r);
    }
    // Host-measured: CF and OF are kept, SF ZF PF cleared, AF set, whatever the operands.
    let af = ctx.c(Ty::I64, rflags::AF);
    ctx.update_flags(rflags::SF | rflags::ZF | rflags::AF | rflags::PF, af);
}

/// x86 division, the single definition the runtime's DIV/IDIV helpers evaluate.
///
/// The dividend is `high:low`, each half `size_bytes` wide (for the 8-bit form: AH and AL);
/// the divisor is `size_bytes` wide. Returns (quotient, remainder), each masked to the
/// operand size; the remainder has the sign of the dividend (IDIV). A zero divisor, a
/// quotient that does not fit the operand size (including `MIN / -1`) or an invalid size
/// gives [`Exception::DivideError`].
pub fn divide(
    signed: bool,
    size_bytes: u32,
    high: u64,
    low: u64,
    divisor: u64,
) -> Result<(u64, u64), Exception> {
    let ty = Ty::from_bytes(size_bytes as usize).ok_or(Exception::DivideError)?;
    let bits = ty.bits();
    let (high, low, divisor) = (high & ty.mask(), low & ty.mask(), divisor & ty.mask());
    if divisor == 0 {
        return Err(Exception::DivideError);
    }
    let dividend = ((high as u128) << bits) | low as u128;
    if !signed {
        let q = dividend / divisor as u128;
        if q > ty.mask() as u128 {
            return Err(Exception::DivideError);
        }
        return Ok((q as u64, (dividend % divisor as u128) as u64));
    }
    // Sign-extend the 2*bits dividend and the divisor to i128.
    let sh = 128 - 2 * bits;
    let n = ((dividend << sh) as i128) >> sh;
    let d = crate::ir::sext64(divisor, ty) as i64 as i128;
    // Only -2^127 / -1 overflows i128, and that quotient never fits anyway.
    let q = n.checked_div(d).ok_or(Exception::DivideError)?;
    let r = n - q * d;
    let min = -(1i128 << (bits - 1));
    let max = (1i128 << (bits - 1)) - 1;
    if q < min || q > max {
        return Err(Exception::DivideError);
    }
    Ok((q as u64 & ty.mask(), r as u64 & ty.mask()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semantics::alu::probe::{fuzz, fuzz_with, native, run_interp, MEM};
    use crate::state::ExitReason;

    #[test]
    fn divide_reference() {
        assert_eq!(divide(false, 1, 0x01, 0x00, 3), Ok((85, 1))); // 256 / 3
        assert_eq!(divide(false, 1, 0x03, 0x00, 3), Err(Exception::DivideError)); // 256
        assert_eq!(divide(false, 8, 0, 7, 0), Err(Exception::DivideError));
        assert_eq!(divide(false, 8, 1, 0, 2), Ok((1 << 63, 0)));
        assert_eq!(divide(false, 8, 2, 0, 2), Err(Exception::DivideError));
        // IDIV: truncation toward zero, remainder with the dividend's sign.
        assert_eq!(
            divide(true, 4, u32::MAX as u64, (-7i32) as u32 as u64, 2),
            { Ok(((-3i32) as u32 as u64, (-1i32) as u32 as u64)) }
        );
        // -128 fits in a byte quotient; +128 does not.
        assert_eq!(divide(true, 1, 0xFF, 0x00, 2), Ok((0x80, 0)));
        assert_eq!(divide(true, 1, 0x00, 0x80, 1), Err(Exception::DivideError));
        assert_eq!(
            divide(true, 1, 0xFF, 0x80, 0xFF),
            Err(Exception::DivideError)
        );
        // MIN / -1 at every width.
        for (size, min) in [(1u32, 0x80u64), (2, 0x8000), (4, 0x8000_0000), (8, 1 << 63)] {
            let ty = Ty::from_bytes(size as usize).unwrap();
            let r = divide(true, size, ty.mask(), min, ty.mask());
            assert_eq!(r, Err(Exception::DivideError), "size {size}");
        }
        // The largest 128-bit negative dividend.
        assert_eq!(
            divide(true, 8, 1 << 63, 0, u64::MAX),
            Err(Exception::DivideError)
        );
        assert_eq!(divide(true, 3, 0, 1, 1), Err(Exception::DivideError));
    }

    #[test]
    fn one_operand_mul_matches_host() {
        fuzz(native!("mul cl"), 300, 101);
        fuzz(native!("mul bh"), 300, 102);
        fuzz(native!("mul si"), 300, 103);
        fuzz(native!("mul r9d"), 300, 104);
        fuzz(native!("mul qword ptr [rdi]"), 300, 105);
        fuzz(native!("imul cl"), 300, 106);
        fuzz(native!("imul word ptr [rdi + 6]"), 300, 107);
        fuzz(native!("imul ebx"), 300, 108);
        fuzz(native!("imul rdx"), 300, 109);
        fuzz(native!("mul eax"), 300, 110);
    }

    #[test]
    fn truncating_imul_matches_host() {
        fuzz(native!("imul ecx, edx"), 300, 121);
        fuzz(native!("imul si, word ptr [rdi]"), 300, 122);
        fuzz(native!("imul rax, rbx"), 300, 123);
        fuzz(native!("imul r8, qword ptr [rdi], -5"), 300, 124);
        fuzz(native!("imul ecx, ebx, 0x12345"), 300, 125);
        fuzz(native!("imul dx, ax, 100"), 300, 126);
        fuzz(native!("imul rcx, rcx, 0x7fffffff"), 300, 127);
    }

    /// Make rDX:rAX (AX) / divisor fit, so the host does not raise #DE: a nonzero divisor,
    /// and if needed a high half that is the extension of the low one, and no `MIN / -1`.
    pub(super) fn fit(g: &mut [u64; 16], ty: Ty, signed: bool, divisor: usize) {
        let mask = ty.mask();
        if g[divisor] & mask == 0 {
            g[divisor] |= 1;
        }
        let halves = |g: &[u64; 16]| {
            if ty == Ty::I8 {
                ((g[0] >> 8) & 0xFF, g[0] & 0xFF)
            } else {
                (g[2] & mask, g[0] & mask)
            }
        };
        let (hi, lo) = halves(g);
        if divide(signed, ty.bytes(), hi, lo, g[divisor]).is_ok() {
            return;
        }
        let hi = if signed && lo & ty.sign_bit() != 0 {
            mask
        } else {
            0
        };
        if ty == Ty::I8 {
            g[0] = (g[0] & !0xFF00) | (hi << 8);
        } else {
            g[2] = (g[2] & !mask) | hi;
        }
        if divide(signed, ty.bytes(), hi, lo, g[divisor]).is_err() {
            g[divisor] = (g[divisor] & !mask) | 1; // MIN / -1
        }
    }

    #[test]
    fn div_idiv_match_host() {
        use crate::state::reg::{RBX, RCX, RSI};
        fuzz_with(native!("div cl"), 300, 131, |g, _, _| {
            fit(g, Ty::I8, false, RCX)
        });
        fuzz_with(native!("div bx"), 300, 132, |g, _, _| {
            fit(g, Ty::I16, false, RBX)
        });
        fuzz_with(native!("div esi"), 300, 133, |g, _, _| {
            fit(g, Ty::I32, false, RSI)
        });
        fuzz_with(native!("div rcx"), 300, 134, |g, _, _| {
            fit(g, Ty::I64, false, RCX)
        });
        fuzz_with(native!("idiv cl"), 300, 135, |g, _, _| {
            fit(g, Ty::I8, true, RCX)
        });
        fuzz_with(native!("idiv bx"), 300, 136, |g, _, _| {
            fit(g, Ty::I16, true, RBX)
        });
        fuzz_with(native!("idiv esi"), 300, 137, |g, _, _| {
            fit(g, Ty::I32, true, RSI)
        });
        fuzz_with(native!("idiv rcx"), 300, 138, |g, _, _| {
            fit(g, Ty::I64, true, RCX)
        });
    }

    #[test]
    fn memory_divisor() {
        // div word ptr [rdi]: DX:AX = 0x0001:0x0005 / 0x10 = 0x1000 rem 5
        let mut g = [0u64; 16];
        (g[0], g[2]) = (0xAAAA_0005, 0xBBBB_0001);
        let mut mem = vec![0u8; MEM];
        mem[MEM / 2] = 0x10;
        let (exit, out, _) = run_interp(&[0x66, 0xF7, 0x37], g, 0, &mem);
        assert_eq!(exit, ExitReason::Jump);
        assert_eq!((out.gpr[0], out.gpr[2]), (0xAAAA_1000, 0xBBBB_0005));
        assert_eq!(out.flags, rflags::AF);
    }

    #[test]
    fn divide_error_is_precise() {
        // div rcx with rcx = 0: #DE, nothing written.
        let mut g = [7u64; 16];
        g[1] = 0;
        let (exit, out, cpu) = run_interp(&[0x48, 0xF7, 0xF1], g, rflags::CF, &[]);
        assert_eq!(exit, ExitReason::Exception);
        assert_eq!(cpu.exc_vector, 0);
        assert_eq!(cpu.rip, 0x1000);
        assert_eq!((out.gpr[0], out.gpr[2]), (7, 7));
        assert_eq!(out.flags, rflags::CF);
        // idiv ecx with edx:eax = INT_MIN, ecx = -1.
        let mut g = [0u64; 16];
        (g[0], g[1], g[2]) = (0x8000_0000, u32::MAX as u64, u32::MAX as u64);
        let (exit, _, cpu) = run_interp(&[0xF7, 0xF9], g, 0, &[]);
        assert_eq!((exit, cpu.exc_vector), (ExitReason::Exception, 0));
    }
}
