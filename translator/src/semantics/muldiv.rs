//! MUL IMUL (all forms) DIV IDIV.
//!
//! Invariants:
//! - The one-operand forms are widening: the 8-bit form writes AX, the others rDX:rAX. The
//!   two- and three-operand IMUL forms keep the truncated product.
//! - Divides whose dividend is the (zero or sign) extension of its low half, with a divisor
//!   that cannot raise #DE, run inline as one host division at the operand width (what
//!   compilers emit: `xor edx, edx; div` or `cqo; idiv`). Every other divide, #DE included,
//!   goes through [`Helper::DivU`]/[`Helper::DivS`], which evaluate [`divide`] (the one
//!   definition of x86 division, shared with the runtime). The two paths agree bit for bit
//!   wherever the fast one is taken (tests below). The divisor is loaded first, so a faulting
//!   load or a #DE leaves every register and flag of the instruction's start.
//!
//! Flags, as measured on the host (the tests compare with it; each vendor's rules come from
//! its own hardware: AMD on an EPYC, Zen 5; Intel on a Xeon, family 6 model 0xCF). MUL/IMUL
//! define CF = OF = "the product does not fit the destination" (for the one-operand forms:
//! the high half is not the extension of the low one); everything else is undefined:
//! - MUL/IMUL, AMD: SF ZF AF PF are left unchanged (not computed from the result, as on
//!   older CPUs).
//! - MUL/IMUL, Intel: SF and PF from the low half of the product (AL for the 8-bit form, the
//!   destination for the truncating forms), ZF = AF = 0 ([`FlagOp::Mul`], kept lazy).
//! - DIV/IDIV, AMD: CF and OF are left unchanged; SF = ZF = PF = 0 and AF = 1, independent
//!   of the operands and of the incoming flags (24,000 random divisions of every size while
//!   probing; the tests keep 2,400).
//! - DIV/IDIV, Intel: every arithmetic flag is left unchanged (160,000 random divisions of
//!   every size and signedness while probing).
//!
//! The vendor is chosen at translation time ([`Ctx::vendor`]).
use iced_x86::{Mnemonic as M, Register};

use crate::ctx::Ctx;
use crate::emit::Emitter;
use crate::exception::Exception;
use crate::flags::{FlagOp, Vendor};
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

/// Flags after a multiply whose low half is `lo`: CF = OF = `overflow`; SF ZF AF PF
/// unchanged (AMD) or SF PF of `lo`, ZF = AF = 0 (Intel).
fn mul_flags<E: Emitter>(ctx: &mut Ctx<E>, lo: E::Value, overflow: E::Value) {
    if ctx.vendor() == Vendor::Intel {
        return ctx.set_flags_lazy(FlagOp::Mul, lo, lo, lo, Some(overflow));
    }
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
    mul_flags(ctx, lo, overflow);
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
    mul_flags(ctx, halves[0], overflow);
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
    let fast = fits_host_division(ctx, signed, hi, lo, divisor);
    let [q, r] = ctx.if_else(
        fast,
        [ty, ty],
        |ctx| {
            // Exact here: the divisor is nonzero and the quotient of `lo` fits. The remainder
            // comes from the quotient (one host division instead of two: Cranelift divides
            // again for a `urem`/`srem` of the same operands).
            let div = if signed { BinOp::SDiv } else { BinOp::UDiv };
            let q = ctx.bin(div, lo, divisor);
            let qd = ctx.bin(BinOp::Mul, q, divisor);
            [q, ctx.bin(BinOp::Sub, lo, qd)]
        },
        |ctx| {
            let size = ctx.c(Ty::I64, ty.bytes() as u64);
            ctx.e.store_state(OFF_HELPER_OUT + 24, size);
            let helper = if signed { Helper::DivS } else { Helper::DivU };
            let q = ctx.call(helper, &[hi, lo, divisor]);
            let r = ctx.e.load_state(Ty::I64, OFF_HELPER_OUT);
            [q, r]
        },
    );
    if ty == Ty::I8 {
        ctx.set_reg(Register::AL, q);
        ctx.set_reg(Register::AH, r);
    } else {
        ctx.set_gpr_ty(reg::RAX, ty, q);
        ctx.set_gpr_ty(reg::RDX, ty, r);
    }
    // Host-measured, whatever the operands: AMD keeps CF and OF, clears SF ZF PF and sets
    // AF; Intel keeps every flag.
    if ctx.vendor() == Vendor::Amd {
        let af = ctx.c(Ty::I64, rflags::AF);
        ctx.update_flags(rflags::SF | rflags::ZF | rflags::AF | rflags::PF, af);
    }
}

/// Whether `hi:lo / divisor` is `lo / divisor` at the operand width, with a quotient that
/// fits (an `I8` 0/1): the dividend is the extension of `lo` (`hi` is zero, or for IDIV the
/// copies of `lo`'s sign bit), the divisor is nonzero, and for IDIV it is not `MIN / -1`.
fn fits_host_division<E: Emitter>(
    ctx: &mut Ctx<E>,
    signed: bool,
    hi: E::Value,
    lo: E::Value,
    divisor: E::Value,
) -> E::Value {
    let ty = ctx.e.ty(lo);
    let zero = ctx.c(ty, 0);
    let nonzero = ctx.cmp(Cmp::Ne, divisor, zero);
    let ext = if signed {
        let sh = ctx.c(ty, ty.bits() as u64 - 1);
        ctx.bin(BinOp::SShr, lo, sh)
    } else {
        zero
    };
    let extended = ctx.cmp(Cmp::Eq, hi, ext);
    let ok = ctx.bin(BinOp::And, extended, nonzero);
    if !signed {
        return ok;
    }
    let min = ctx.c(ty, ty.sign_bit());
    let m1 = ctx.c(ty, ty.mask());
    let lo_min = ctx.cmp(Cmp::Eq, lo, min);
    let d_m1 = ctx.cmp(Cmp::Eq, divisor, m1);
    let overflow = ctx.bin(BinOp::And, lo_min, d_m1);
    let one = ctx.c(Ty::I8, 1);
    let no_overflow = ctx.bin(BinOp::Xor, overflow, one);
    ctx.bin(BinOp::And, ok, no_overflow)
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
    use crate::semantics::alu::probe::{
        fuzz, fuzz_with, native, run_interp, run_interp_as, Native, MEM,
    };
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

    /// Where a form's divisor comes from.
    #[derive(Clone, Copy)]
    enum Src {
        /// The low bits of a GPR (possibly RAX or RDX themselves).
        Gpr(usize),
        /// AH CH DH BH: bits 8..16 of a GPR.
        High(usize),
        /// The memory window's middle, where RDI points.
        Mem,
    }

    /// Values at the edges of a `ty` division: 0, ±1, ±2, MIN, MAX and their neighbours.
    fn div_edges(ty: Ty) -> Vec<u64> {
        let (min, m) = (ty.sign_bit(), ty.mask());
        let v = [
            0,
            1,
            2,
            7,
            min - 1,
            min,
            min + 1,
            m - 1,
            m,
            0x5a3c_96e1_0f2d_4b87,
        ];
        v.iter().map(|x| x & m).collect()
    }

    /// Every dividend high half, low half and divisor among `div_edges` (fast path, helper
    /// path, #DE), through the interpreter and the JIT: against the host where the host does
    /// not fault, else a precise #DE (nothing written) in both engines.
    fn div_on_edges(run: fn(&mut Native), ty: Ty, signed: bool, src: Src) {
        use crate::semantics::alu::probe::{compare_with, run_native, JitRunner};
        use crate::state::reg::{RAX, RDX};
        let mask = ty.mask();
        let edges = div_edges(ty);
        // A state per (divisor, high, low): registers, memory window, and the actual
        // operands (the divisor may be part of the dividend, as in `div al` or `idiv rdx`).
        let setup = |n: u64, d: u64, hi: u64, lo: u64| {
            // Garbage in every bit the instruction must keep.
            let mut g = [0x3c3c_a5a5_5a5a_c3c3u64.rotate_left(n as u32 % 64); 16];
            g[reg::RSP] = 0;
            g[reg::RDI] = 0;
            let mut mem = vec![0xa5u8; MEM];
            match src {
                Src::Gpr(i) => g[i] = (g[i] & !mask) | d,
                Src::High(i) => g[i] = (g[i] & !0xff00) | (d << 8),
                Src::Mem => mem[MEM / 2..MEM / 2 + 8].copy_from_slice(&d.to_le_bytes()),
            }
            if ty == Ty::I8 {
                g[RAX] = (g[RAX] & !0xffff) | (hi << 8) | lo;
            } else {
                g[RAX] = (g[RAX] & !mask) | lo;
                g[RDX] = (g[RDX] & !mask) | hi;
            }
            let (hi, lo) = if ty == Ty::I8 {
                ((g[RAX] >> 8) & 0xff, g[RAX] & 0xff)
            } else {
                (g[RDX] & mask, g[RAX] & mask)
            };
            let d = match src {
                Src::Gpr(i) => g[i] & mask,
                Src::High(i) => (g[i] >> 8) & 0xff,
                Src::Mem => d,
            };
            (g, mem, [hi, lo, d])
        };
        let mut combos = Vec::new();
        for &d in &edges {
            for &hi in &edges {
                for &lo in &edges {
                    combos.push([d, hi, lo]);
                }
            }
        }
        // The instruction's bytes, from a native run that does not fault.
        let bytes = combos
            .iter()
            .find_map(|&[d, hi, lo]| {
                let (g, mem, [hi, lo, d]) = setup(0, d, hi, lo);
                let ok = divide(signed, ty.bytes(), hi, lo, d).is_ok();
                ok.then(|| run_native(run, g, 0, &mem).1)
            })
            .expect("a divide that does not fault");
        let mut jit = JitRunner::new();
        let mut failures = Vec::new();
        let mut n = 0u64;
        for &[d, hi, lo] in &combos {
            n += 1;
            let (g, mem, [hi, lo, d]) = setup(n, d, hi, lo);
            let flags = if n.is_multiple_of(2) {
                rflags::ARITH
            } else {
                rflags::ZF
            };
            let case = format!("{bytes:02x?} {hi:#x}:{lo:#x} / {d:#x}");
            if divide(signed, ty.bytes(), hi, lo, d).is_ok() {
                if let Err(e) = compare_with(&mut jit, run, g, flags, &mem) {
                    failures.push(e);
                }
                continue;
            }
            let (exit, interp, icpu) = run_interp(&bytes, g, flags, &mem);
            let (jexit, jitted, jcpu) = jit.run(&bytes, g, flags, &mem);
            for (name, exit, out, cpu) in [
                ("interp", exit, &interp, &icpu),
                ("jit", jexit, &jitted, &jcpu),
            ] {
                let precise = out.gpr == g && out.flags == flags && out.mem == mem;
                if exit != ExitReason::Exception || cpu.exc_vector != 0 || !precise {
                    failures.push(format!("{case}: {name} {exit:?} {out:x?}"));
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {n} differ; first: {}",
            failures.len(),
            failures[0]
        );
    }

    #[test]
    fn div_edges_match_host_in_both_engines() {
        use crate::state::reg::{RAX, RBX, RCX, RSI};
        div_on_edges(native!("div cl"), Ty::I8, false, Src::Gpr(RCX));
        div_on_edges(native!("div bh"), Ty::I8, false, Src::High(RBX));
        div_on_edges(native!("div al"), Ty::I8, false, Src::Gpr(RAX));
        div_on_edges(native!("div byte ptr [rdi]"), Ty::I8, false, Src::Mem);
        div_on_edges(native!("div bx"), Ty::I16, false, Src::Gpr(RBX));
        div_on_edges(native!("div ax"), Ty::I16, false, Src::Gpr(RAX));
        div_on_edges(native!("div esi"), Ty::I32, false, Src::Gpr(RSI));
        div_on_edges(native!("div eax"), Ty::I32, false, Src::Gpr(RAX));
        div_on_edges(native!("div dword ptr [rdi]"), Ty::I32, false, Src::Mem);
        div_on_edges(native!("div rcx"), Ty::I64, false, Src::Gpr(RCX));
        div_on_edges(native!("div qword ptr [rdi]"), Ty::I64, false, Src::Mem);
    }

    #[test]
    fn idiv_edges_match_host_in_both_engines() {
        use crate::state::reg::{RAX, RBX, RCX, RDX, RSI};
        div_on_edges(native!("idiv cl"), Ty::I8, true, Src::Gpr(RCX));
        div_on_edges(native!("idiv bh"), Ty::I8, true, Src::High(RBX));
        div_on_edges(native!("idiv ah"), Ty::I8, true, Src::High(RAX));
        div_on_edges(native!("idiv al"), Ty::I8, true, Src::Gpr(RAX));
        div_on_edges(native!("idiv word ptr [rdi]"), Ty::I16, true, Src::Mem);
        div_on_edges(native!("idiv bx"), Ty::I16, true, Src::Gpr(RBX));
        div_on_edges(native!("idiv ax"), Ty::I16, true, Src::Gpr(RAX));
        div_on_edges(native!("idiv esi"), Ty::I32, true, Src::Gpr(RSI));
        div_on_edges(native!("idiv edx"), Ty::I32, true, Src::Gpr(RDX));
        div_on_edges(native!("idiv r9"), Ty::I64, true, Src::Gpr(9));
        div_on_edges(native!("idiv rax"), Ty::I64, true, Src::Gpr(RAX));
        div_on_edges(native!("idiv rdx"), Ty::I64, true, Src::Gpr(RDX));
        div_on_edges(native!("idiv qword ptr [rdi]"), Ty::I64, true, Src::Mem);
    }

    /// Divisors the JIT sees as constants (set earlier in the block): folded fast-path
    /// conditions, and Cranelift's own division by a constant.
    #[test]
    fn constant_divisors_match_host() {
        use crate::state::reg::{RAX, RDX};
        let fit_hi = |g: &mut [u64; 16], ty: Ty, signed: bool, d: u64| {
            let mask = ty.mask();
            let lo = g[RAX] & mask;
            let ext = if signed && lo & ty.sign_bit() != 0 {
                mask
            } else {
                0
            };
            if divide(signed, ty.bytes(), g[RDX] & mask, lo, d).is_err() {
                g[RDX] = (g[RDX] & !mask) | ext;
            }
            if divide(signed, ty.bytes(), g[RDX] & mask, lo, d).is_err() {
                // MIN / -1
                g[RAX] &= !mask;
                g[RDX] &= !mask;
            }
        };
        fuzz_with(native!("mov ecx, 7; div ecx"), 300, 141, |g, _, _| {
            fit_hi(g, Ty::I32, false, 7)
        });
        fuzz_with(native!("mov rcx, 1; div rcx"), 100, 142, |g, _, _| {
            fit_hi(g, Ty::I64, false, 1)
        });
        fuzz_with(native!("mov rcx, -1; idiv rcx"), 300, 143, |g, _, _| {
            fit_hi(g, Ty::I64, true, u64::MAX)
        });
        fuzz_with(native!("mov ecx, -10; idiv ecx"), 300, 144, |g, _, _| {
            fit_hi(g, Ty::I32, true, (-10i32) as u32 as u64)
        });
        fuzz_with(native!("mov bx, 0x8000; idiv bx"), 300, 145, |g, _, _| {
            fit_hi(g, Ty::I16, true, 0x8000)
        });
        fuzz_with(native!("mov cl, 3; idiv cl"), 300, 146, |g, _, _| {
            let lo = g[RAX] & 0xff;
            g[RAX] = (g[RAX] & !0xff00) | if lo & 0x80 != 0 { 0xff00 } else { 0 };
        });
        // Known dividends too: the whole division folds (or the fast path is not taken).
        fuzz(
            native!("mov eax, 100; xor edx, edx; mov ecx, 7; div ecx"),
            20,
            147,
        );
        fuzz(
            native!("mov rax, 100; mov rdx, 1; mov rcx, 7; div rcx"),
            20,
            148,
        );
        fuzz(native!("mov rax, -100; cqo; mov rcx, 7; idiv rcx"), 20, 149);
    }

    /// One hand-written case per vendor-specific rule of the module header, with both
    /// vendors' results (the host checks its own).
    #[test]
    fn undefined_flags_follow_the_vendor() {
        use crate::semantics::alu::probe::{flags_only as f, vendor_rule, Want};
        use crate::state::reg::{RAX, RBX, RCX, RDX};
        use rflags::{AF, CF, OF, PF, SF, ZF};
        let both = |what, run, set: &[(usize, u64)], fin, intel, amd| {
            vendor_rule(what, run, set, fin, [f(intel), f(amd)]);
        };
        // MUL/IMUL: Intel sets SF PF from the low half and clears ZF AF (even for a zero low
        // half); AMD keeps them.
        let set = [(RAX, 0x80), (RBX, 2)];
        let fin = ZF | SF | AF;
        both(
            "mul8",
            native!("mul bl"),
            &set,
            fin,
            CF | PF | OF,
            CF | ZF | SF | AF | OF,
        );
        let set = [(RAX, 3), (RBX, 5)];
        both("mul64", native!("mul rbx"), &set, SF, PF, SF);
        let set = [(RAX, 0xffff_ffff), (RBX, 1)];
        both(
            "imul32",
            native!("imul eax, ebx"),
            &set,
            ZF | AF,
            SF | PF,
            ZF | AF,
        );
        let imul = native!("imul cx, bx, 100");
        both("imul16 zero", imul, &[(RBX, 0)], CF | OF, PF, 0);
        // Read in the same block (the lazy descriptor's inline path) and after it.
        let set = [(RAX, 0x1_0000), (RBX, 0x1_0000)];
        let run = native!("imul eax, ebx; setz cl; sets dl");
        let intel = Want {
            flags: CF | PF | OF,
            regs: &[(RCX, 0), (RDX, 0)],
        };
        let amd = Want {
            flags: CF | ZF | OF,
            regs: &[(RCX, 1), (RDX, 0)],
        };
        vendor_rule("imul32; setz; sets", run, &set, ZF, [intel, amd]);
        // DIV/IDIV: Intel keeps every flag; AMD keeps CF OF, clears SF ZF PF, sets AF.
        let set = [(RAX, 100), (RBX, 7)];
        let fin = CF | PF | ZF | SF | OF;
        both("div16", native!("div bx"), &set, fin, fin, CF | AF | OF);
        let set = [(RAX, 0xff9c), (RCX, 7)];
        both("idiv8", native!("idiv cl"), &set, 0, 0, AF);
    }

    #[test]
    fn memory_divisor() {
        // div word ptr [rdi]: DX:AX = 0x0001:0x0005 / 0x10 = 0x1000 rem 5
        let mut g = [0u64; 16];
        (g[0], g[2]) = (0xAAAA_0005, 0xBBBB_0001);
        let mut mem = vec![0u8; MEM];
        mem[MEM / 2] = 0x10;
        // AMD keeps CF OF, clears SF ZF PF and sets AF; Intel keeps every flag.
        let fin = rflags::CF | rflags::ZF;
        for (vendor, want) in [
            (Vendor::Amd, rflags::CF | rflags::AF),
            (Vendor::Intel, rflags::CF | rflags::ZF),
        ] {
            let (exit, out, _) = run_interp_as(vendor, &[0x66, 0xF7, 0x37], g, fin, &mem);
            assert_eq!(exit, ExitReason::Jump);
            assert_eq!((out.gpr[0], out.gpr[2]), (0xAAAA_1000, 0xBBBB_0005));
            assert_eq!(out.flags, want, "{vendor:?}");
        }
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
