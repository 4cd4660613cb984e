//! SSE integer arithmetic on XMM registers: add/subtract (wrapping and saturating), min/max,
//! averages, multiplies, compares, packs, absolute values, shifts, PTEST.

use iced_x86::{Mnemonic as M, OpKind};

use super::mov::binary;
use super::{read_v, xmm_num};
use crate::ctx::Ctx;
use crate::emit::Emitter;
use crate::ir::{BinOp, Cmp, Ty};
use crate::state::rflags;
use crate::vector::{Lanes, VBin, VShift, VUn};

/// The operation and lanes of a two-operand integer instruction.
fn op_of(m: M) -> Option<(VBin, Lanes)> {
    use Lanes::*;
    use VBin::*;
    Some(match m {
        M::Paddb => (Add, I8),
        M::Paddw => (Add, I16),
        M::Paddd => (Add, I32),
        M::Paddq => (Add, I64),
        M::Psubb => (Sub, I8),
        M::Psubw => (Sub, I16),
        M::Psubd => (Sub, I32),
        M::Psubq => (Sub, I64),
        M::Paddsb => (AddSatS, I8),
        M::Paddsw => (AddSatS, I16),
        M::Paddusb => (AddSatU, I8),
        M::Paddusw => (AddSatU, I16),
        M::Psubsb => (SubSatS, I8),
        M::Psubsw => (SubSatS, I16),
        M::Psubusb => (SubSatU, I8),
        M::Psubusw => (SubSatU, I16),
        M::Pminsb => (MinS, I8),
        M::Pminsw => (MinS, I16),
        M::Pminsd => (MinS, I32),
        M::Pminub => (MinU, I8),
        M::Pminuw => (MinU, I16),
        M::Pminud => (MinU, I32),
        M::Pmaxsb => (MaxS, I8),
        M::Pmaxsw => (MaxS, I16),
        M::Pmaxsd => (MaxS, I32),
        M::Pmaxub => (MaxU, I8),
        M::Pmaxuw => (MaxU, I16),
        M::Pmaxud => (MaxU, I32),
        M::Pavgb => (AvgU, I8),
        M::Pavgw => (AvgU, I16),
        M::Pmullw => (MulLo, I16),
        M::Pmulld => (MulLo, I32),
        M::Pmulhw => (MulHiS, I16),
        M::Pmulhuw => (MulHiU, I16),
        M::Pmuludq => (MulEvenU, I64),
        M::Pmuldq => (MulEvenS, I64),
        M::Pmaddwd => (MaddWd, I32),
        M::Pcmpeqb => (CmpEq, I8),
        M::Pcmpeqw => (CmpEq, I16),
        M::Pcmpeqd => (CmpEq, I32),
        M::Pcmpeqq => (CmpEq, I64),
        M::Pcmpgtb => (CmpGtS, I8),
        M::Pcmpgtw => (CmpGtS, I16),
        M::Pcmpgtd => (CmpGtS, I32),
        M::Pcmpgtq => (CmpGtS, I64),
        M::Packsswb => (PackS, I16),
        M::Packssdw => (PackS, I32),
        M::Packuswb => (PackU, I16),
        M::Packusdw => (PackU, I32),
        _ => return None,
    })
}

/// Take the instruction if it is one of this family's forms.
pub fn translate<E: Emitter>(ctx: &mut Ctx<E>) -> bool {
    let m = ctx.insn().mnemonic();
    if let Some((op, lanes)) = op_of(m) {
        binary(ctx, op, lanes);
        return true;
    }
    match m {
        M::Pabsb | M::Pabsw | M::Pabsd => {
            let lanes = match m {
                M::Pabsb => Lanes::I8,
                M::Pabsw => Lanes::I16,
                _ => Lanes::I32,
            };
            let v = read_v(ctx, 1);
            let r = ctx.e.vun(VUn::Abs, lanes, v);
            let n = xmm_num(ctx, 0);
            ctx.set_xmm(n, r);
        }
        M::Psllw | M::Pslld | M::Psllq | M::Psrlw | M::Psrld | M::Psrlq | M::Psraw | M::Psrad => {
            shift(ctx)
        }
        M::Ptest => ptest(ctx),
        _ => return false,
    }
    true
}

/// PSLL/PSRL/PSRA by an immediate or by the low quadword of an XMM/m128 operand.
fn shift<E: Emitter>(ctx: &mut Ctx<E>) {
    let name = format!("{:?}", ctx.insn().mnemonic()).to_ascii_lowercase();
    let op = match &name[..4] {
        "psll" => VShift::Shl,
        "psrl" => VShift::UShr,
        _ => VShift::SShr,
    };
    let lanes = match name.as_bytes()[4] {
        b'w' => Lanes::I16,
        b'd' => Lanes::I32,
        _ => Lanes::I64,
    };
    let count = if ctx.insn().op_kind(1) == OpKind::Immediate8 {
        let c = ctx.insn().immediate(1) & 0xFF;
        ctx.c(Ty::I64, c)
    } else {
        let v = read_v(ctx, 1);
        ctx.e.vextract(v, Lanes::I64, 0)
    };
    let a = ctx.xmm(xmm_num(ctx, 0));
    let r = ctx.e.vshift(op, lanes, a, count);
    let n = xmm_num(ctx, 0);
    ctx.set_xmm(n, r);
}

/// Whether a vector is all zeros (an `I8` 0/1).
fn all_zero<E: Emitter>(ctx: &mut Ctx<E>, v: E::Vec) -> E::Value {
    let lo = ctx.e.vextract(v, Lanes::I64, 0);
    let hi = ctx.e.vextract(v, Lanes::I64, 1);
    let or = ctx.bin(BinOp::Or, lo, hi);
    let z = ctx.c(Ty::I64, 0);
    ctx.cmp(Cmp::Eq, or, z)
}

/// PTEST: ZF = (a & b) == 0, CF = (!a & b) == 0, the other arithmetic flags clear.
fn ptest<E: Emitter>(ctx: &mut Ctx<E>) {
    let a = ctx.xmm(xmm_num(ctx, 0));
    let b = read_v(ctx, 1);
    let and = ctx.e.vbin(VBin::And, Lanes::I64, a, b);
    let andn = ctx.e.vbin(VBin::AndNot, Lanes::I64, a, b);
    let zf = all_zero(ctx, and);
    let cf = all_zero(ctx, andn);
    let zf = ctx.to_ty(zf, Ty::I64, false);
    let cf = ctx.to_ty(cf, Ty::I64, false);
    let six = ctx.c(Ty::I64, 6);
    let zf = ctx.bin(BinOp::Shl, zf, six);
    let bits = ctx.bin(BinOp::Or, zf, cf);
    ctx.update_flags(rflags::ARITH, bits);
}
