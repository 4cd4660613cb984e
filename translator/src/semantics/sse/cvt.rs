//! SSE conversions lowered inline: integer to float (CVTSI2SS/SD, CVTDQ2PS/PD), truncating
//! float to integer (CVTTSS2SI/CVTTSD2SI, CVTTPS2DQ), and between precisions
//! (CVTSS2SD/CVTSD2SS, CVTPS2PD/CVTPD2PS). The conversions that round by MXCSR to an
//! integer (CVTSS2SI, CVTPS2DQ, ...) take their stubs.

use iced_x86::Mnemonic as M;

use super::{float_inline, gpr_op, is_xmm, read_v, xmm_num};
use crate::ctx::Ctx;
use crate::emit::Emitter;
use crate::ir::Ty;
use crate::vector::{Lanes, VBin, VCvt};

/// Take the instruction if it is one of this family's forms.
pub fn translate<E: Emitter>(ctx: &mut Ctx<E>) -> bool {
    if !float_inline(ctx) {
        return false;
    }
    let m = ctx.insn().mnemonic();
    match m {
        M::Cvtsi2ss | M::Cvtsi2sd => {
            let lanes = if m == M::Cvtsi2ss {
                Lanes::F32S
            } else {
                Lanes::F64S
            };
            let x = ctx.read_op(1);
            let a = ctx.xmm(xmm_num(ctx, 0));
            let r = ctx.e.vcvt_from_int(lanes, a, x);
            let n = xmm_num(ctx, 0);
            ctx.set_xmm_fp(n, r);
        }
        M::Cvttss2si | M::Cvttsd2si => {
            let Some(dst) = gpr_op(ctx, 0) else {
                return false;
            };
            let lanes = if m == M::Cvttss2si {
                Lanes::F32S
            } else {
                Lanes::F64S
            };
            let a = read_v(ctx, 1);
            let ty = if dst.size() == 8 { Ty::I64 } else { Ty::I32 };
            let r = ctx.e.vcvtt_to_int(lanes, a, ty);
            ctx.set_reg(dst, r);
        }
        M::Cvtss2sd | M::Cvtsd2ss => {
            let op = if m == M::Cvtss2sd {
                VBin::CvtSs2Sd
            } else {
                VBin::CvtSd2Ss
            };
            let a = ctx.xmm(xmm_num(ctx, 0));
            let b = read_v(ctx, 1);
            let r = ctx.e.vbin(op, Lanes::F64S, a, b);
            let n = xmm_num(ctx, 0);
            ctx.set_xmm_fp(n, r);
        }
        M::Cvtdq2ps | M::Cvttps2dq | M::Cvtps2pd | M::Cvtpd2ps | M::Cvtdq2pd => {
            if !is_xmm(ctx, 0) {
                return false;
            }
            let op = match m {
                M::Cvtdq2ps => VCvt::Dq2Ps,
                M::Cvttps2dq => VCvt::Ttps2Dq,
                M::Cvtps2pd => VCvt::Ps2Pd,
                M::Cvtpd2ps => VCvt::Pd2Ps,
                _ => VCvt::Dq2Pd,
            };
            let a = read_v(ctx, 1);
            let r = ctx.e.vcvt(op, a);
            let n = xmm_num(ctx, 0);
            ctx.set_xmm_fp(n, r);
        }
        _ => return false,
    }
    true
}
