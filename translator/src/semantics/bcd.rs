//! The BCD adjustments AAA AAS DAA DAS AAM AAD (legacy modes only: the decoder produces them
//! outside 64-bit mode). See [`adjust`] for their flags.
//!
//! Invariants: only AX (AAA AAS AAM AAD) or AL (DAA DAS) and the arithmetic flags change;
//! AAM 0 raises #DE before anything is written.
use iced_x86::{Mnemonic as M, Register};

use crate::ctx::Ctx;
use crate::emit::Emitter;
use crate::exception::Exception;
use crate::flags::{self, FlagOp};
use crate::ir::{BinOp, Cmp, Ty};
use crate::state::{reg, rflags};

/// AAA AAS DAA DAS AAM AAD.
///
/// Flags as the manual defines them; the ones it leaves undefined follow QEMU (the
/// testsuite's oracle), since the host cannot run these in 64-bit mode:
/// - AAA AAS: AF = CF = adjusted; OF SF ZF PF unchanged.
/// - DAA DAS: CF AF per the manual, SF ZF PF of the result; OF = 0.
/// - AAM AAD: SF ZF PF of the new AL; OF AF CF = 0. AAM 0 raises #DE.
pub fn adjust<E: Emitter>(ctx: &mut Ctx<E>) {
    match ctx.insn().mnemonic() {
        M::Aaa => ascii_adjust(ctx, BinOp::Add),
        M::Aas => ascii_adjust(ctx, BinOp::Sub),
        M::Daa => decimal_adjust(ctx, BinOp::Add),
        M::Das => decimal_adjust(ctx, BinOp::Sub),
        M::Aam => aam(ctx),
        M::Aad => aad(ctx),
        _ => ctx.unsupported(),
    }
}

/// Whether AL's low nibble is above 9 or AF is set (`I8` 0/1): the low-digit adjustment.
fn low_digit_adjust<E: Emitter>(ctx: &mut Ctx<E>, al: E::Value) -> E::Value {
    let m = ctx.c(Ty::I8, 0xf);
    let lo = ctx.bin(BinOp::And, al, m);
    let nine = ctx.c(Ty::I8, 9);
    let big = ctx.cmp(Cmp::Ugt, lo, nine);
    let af = ctx.flag(rflags::AF);
    ctx.bin(BinOp::Or, big, af)
}

/// AAA (`op` = Add) / AAS (Sub): when adjusting, AX ± 0x106 and AF = CF = 1, else
/// AF = CF = 0; then AL &= 0x0f.
fn ascii_adjust<E: Emitter>(ctx: &mut Ctx<E>, op: BinOp) {
    let ax = ctx.gpr_ty(reg::RAX, Ty::I16);
    let al = ctx.to_ty(ax, Ty::I8, false);
    let adjust = low_digit_adjust(ctx, al);
    let k = ctx.c(Ty::I16, 0x106);
    let moved = ctx.bin(op, ax, k);
    let ax = ctx.select(adjust, moved, ax);
    let m = ctx.c(Ty::I16, 0xff0f);
    let ax = ctx.bin(BinOp::And, ax, m);
    ctx.set_gpr_ty(reg::RAX, Ty::I16, ax);
    let set = ctx.c(Ty::I64, rflags::CF | rflags::AF);
    let clear = ctx.c(Ty::I64, 0);
    let bits = ctx.select(adjust, set, clear);
    ctx.update_flags(rflags::CF | rflags::AF, bits);
}

/// DAA (`op` = Add) / DAS (Sub), in the manual's steps: AL ± 6 if the low digit needs it
/// (AF = 1, CF = old CF or the carry/borrow of that step), then AL ± 0x60 if the old AL was
/// above 0x99 or CF was set (CF = 1; DAA clears CF otherwise, DAS keeps the first step's).
fn decimal_adjust<E: Emitter>(ctx: &mut Ctx<E>, op: BinOp) {
    let al = ctx.gpr_ty(reg::RAX, Ty::I8);
    let old_cf = ctx.flag(rflags::CF);
    let low = low_digit_adjust(ctx, al);
    let six = ctx.c(Ty::I8, 6);
    let stepped = ctx.bin(op, al, six);
    let carry = if op == BinOp::Add {
        ctx.cmp(Cmp::Ult, stepped, al)
    } else {
        ctx.cmp(Cmp::Ult, al, six)
    };
    let al1 = ctx.select(low, stepped, al);
    let lim = ctx.c(Ty::I8, 0x99);
    let above = ctx.cmp(Cmp::Ugt, al, lim);
    let high = ctx.bin(BinOp::Or, above, old_cf);
    let k = ctx.c(Ty::I8, 0x60);
    let stepped = ctx.bin(op, al1, k);
    let res = ctx.select(high, stepped, al1);
    let cf = if op == BinOp::Add {
        high
    } else {
        let first = ctx.bin(BinOp::And, low, carry);
        ctx.bin(BinOp::Or, high, first)
    };
    ctx.set_gpr_ty(reg::RAX, Ty::I8, res);
    let bits = byte_result_flags(ctx, res, cf, low);
    ctx.set_flags_bits(bits);
}

/// The six flags for an AL result: SF ZF PF of `res`, the given CF and AF (`I8` 0/1),
/// OF = 0.
fn byte_result_flags<E: Emitter>(
    ctx: &mut Ctx<E>,
    res: E::Value,
    cf: E::Value,
    af: E::Value,
) -> E::Value {
    let p = flags::parity(&mut ctx.e, res);
    let z8 = ctx.c(Ty::I8, 0);
    let z = ctx.cmp(Cmp::Eq, res, z8);
    let s = ctx.cmp(Cmp::Slt, res, z8);
    flags::pack(&mut ctx.e, [cf, p, af, z, s, z8])
}

/// AAM imm8: AH = AL / imm8, AL = AL % imm8 (#DE for 0).
fn aam<E: Emitter>(ctx: &mut Ctx<E>) {
    let imm = ctx.insn().immediate8() as u64;
    if imm == 0 {
        return ctx.raise(Exception::DivideError);
    }
    let al = ctx.gpr_ty(reg::RAX, Ty::I8);
    let d = ctx.c(Ty::I8, imm);
    let q = ctx.bin(BinOp::UDiv, al, d);
    let r = ctx.bin(BinOp::URem, al, d);
    let hi = ctx.to_ty(q, Ty::I16, false);
    let sh = ctx.c(Ty::I16, 8);
    let hi = ctx.bin(BinOp::Shl, hi, sh);
    let lo = ctx.to_ty(r, Ty::I16, false);
    let ax = ctx.bin(BinOp::Or, hi, lo);
    ctx.set_gpr_ty(reg::RAX, Ty::I16, ax);
    ctx.set_flags_lazy(FlagOp::Logic, r, r, r, None);
}

/// AAD imm8: AL = (AL + AH * imm8) & 0xff, AH = 0.
fn aad<E: Emitter>(ctx: &mut Ctx<E>) {
    let imm = ctx.insn().immediate8() as u64;
    let al = ctx.gpr_ty(reg::RAX, Ty::I8);
    let ah = ctx.reg(Register::AH);
    let k = ctx.c(Ty::I8, imm);
    let p = ctx.bin(BinOp::Mul, ah, k);
    let res = ctx.bin(BinOp::Add, al, p);
    ctx.set_gpr_ty(reg::RAX, Ty::I16, res);
    ctx.set_flags_lazy(FlagOp::Logic, res, res, res, None);
}

#[cfg(test)]
mod tests {
    use crate::semantics::stack::legacy_env::*;
    use crate::semantics::system::test_env::TestEnv;
    use crate::state::{reg, rflags, ExitReason};

    const IP: u64 = 0x1000;
    const CF: u64 = rflags::CF;
    const PF: u64 = rflags::PF;
    const AF: u64 = rflags::AF;
    const ZF: u64 = rflags::ZF;
    const SF: u64 = rflags::SF;
    const OF: u64 = rflags::OF;

    /// Run `code` in 32-bit mode with AX and the arithmetic flags; returns (AX, flags).
    fn run(code: &[u8], ax: u64, flags: u64) -> (ExitReason, u64, u64) {
        let (mut env, mut cpu) = (TestEnv::new(), cpu_at(IP, 0x8000, [0; 6]));
        cpu.gpr[reg::RAX] = 0xdead_beef_0000_0000 | ax;
        cpu.rflags |= flags;
        let r = run_in(mode(32, 32, false), &mut cpu, &mut env, code, IP);
        assert_eq!(cpu.gpr[reg::RAX] >> 16, 0xdead_beef_0000, "only AX changes");
        (
            r,
            cpu.gpr[reg::RAX] & 0xffff,
            cpu.full_rflags() & rflags::ARITH,
        )
    }

    #[test]
    fn aaa_and_aas() {
        // Low nibble 0xf > 9: AX + 0x106, then AL &= 0xf.
        assert_eq!(run(&[0x37], 0x010f, 0), (ExitReason::Jump, 0x0205, CF | AF));
        // AL = 0xfa: AX + 0x106 = 0x200, the carry reaching AH.
        assert_eq!(run(&[0x37], 0x00fa, 0).1, 0x0200);
        assert_eq!(
            run(&[0x37], 0x00fa, SF | ZF | PF | OF).2,
            CF | AF | SF | ZF | PF | OF
        );
        // No adjustment: AF = CF = 0, AL's high nibble cleared, other flags kept.
        assert_eq!(
            run(&[0x37], 0x0139, CF | ZF),
            (ExitReason::Jump, 0x0109, ZF)
        );
        // AF set forces it.
        assert_eq!(run(&[0x37], 0x0002, AF).1, 0x0108);
        // AAS: AX - 0x106 when adjusting.
        assert_eq!(run(&[0x3f], 0x020b, 0), (ExitReason::Jump, 0x0105, CF | AF));
        assert_eq!(run(&[0x3f], 0x0003, AF).1, 0xfe0d);
        assert_eq!(run(&[0x3f], 0x0255, CF).2, 0);
    }

    #[test]
    fn daa_and_das() {
        // 0x79 + 0x35 = 0xae: DAA gives 0x14, CF AF (PF of 0x14).
        assert_eq!(
            run(&[0x27], 0x00ae, 0),
            (ExitReason::Jump, 0x0014, CF | AF | PF)
        );
        // 0x38 + 0x45 = 0x7d -> 0x83: AF, SF.
        assert_eq!(run(&[0x27], 0x007d, 0).1, 0x0083);
        assert_eq!(run(&[0x27], 0x007d, 0).2, AF | SF);
        // 0x9a: both steps, result 0 with ZF PF.
        assert_eq!(run(&[0x27], 0x009a, 0).1, 0x0000);
        assert_eq!(run(&[0x27], 0x009a, 0).2, CF | AF | ZF | PF);
        // AL 0xfa: the +6 carries, old AL > 0x99: +0x60 as well.
        assert_eq!(run(&[0x27], 0x00fa, 0).1, 0x0060);
        // No adjustment clears CF, OF = 0.
        assert_eq!(run(&[0x27], 0x0012, CF | OF).2, CF | PF);
        assert_eq!(run(&[0x27], 0x0012, OF).2, PF);
        // DAS: 0x35 - 0x47 = 0xee (CF AF from the SUB): 0x88, CF AF SF PF.
        assert_eq!(
            run(&[0x2f], 0x00ee, CF | AF),
            (ExitReason::Jump, 0x0088, CF | AF | SF | PF)
        );
        // AL 0x03 with AF: the -6 borrows; the high step does not run, CF stays 1.
        assert_eq!(
            run(&[0x2f], 0x0003, AF),
            (ExitReason::Jump, 0x00fd, CF | AF | SF)
        );
        assert_eq!(run(&[0x2f], 0x0042, 0).2, PF);
    }

    #[test]
    fn aam_and_aad() {
        // AAM: 0x3f = 63 -> AH 6, AL 3.
        assert_eq!(
            run(&[0xd4, 0x0a], 0xff3f, CF | AF | OF),
            (ExitReason::Jump, 0x0603, PF)
        );
        assert_eq!(run(&[0xd4, 0x10], 0x00f0, 0).1, 0x0f00);
        assert_eq!(run(&[0xd4, 0x10], 0x00f0, 0).2, ZF | PF);
        // AAD: AH 6, AL 3 -> 63; base 0x10 wraps: 0xff * 0x10 + 0xff = 0xfef -> 0xef.
        assert_eq!(
            run(&[0xd5, 0x0a], 0x0603, CF),
            (ExitReason::Jump, 0x003f, PF)
        );
        assert_eq!(
            run(&[0xd5, 0x10], 0xffff, 0),
            (ExitReason::Jump, 0x00ef, SF)
        );
    }

    #[test]
    fn aam_zero_is_a_divide_error() {
        let (mut env, mut cpu) = (TestEnv::new(), cpu_at(IP, 0x8000, [0; 6]));
        cpu.gpr[reg::RAX] = 0x1234;
        let r = run_in(mode(16, 16, false), &mut cpu, &mut env, &[0xd4, 0x00], IP);
        assert_eq!((r, cpu.exc_vector, cpu.rip), (ExitReason::Exception, 0, IP));
        assert_eq!(cpu.gpr[reg::RAX], 0x1234);
    }
}
