//! SSE floating-point compares into RFLAGS (COMISS/COMISD, UCOMISS/UCOMISD), MIN/MAX in
//! every shape, and the variable blends (BLENDVPS/BLENDVPD/PBLENDVB, mask in XMM0).
//!
//! Invariant: the flag results of inline compares are sunk (see `VectorOps::vfcmp_flags`
//! in the JIT), so a compare whose flags are overwritten unread still raises its MXCSR flags.

use iced_x86::Mnemonic as M;

use super::{float_inline, is_reg, read_v, xmm_num};
use crate::ctx::Ctx;
use crate::emit::Emitter;
use crate::state::rflags;
use crate::vector::{Lanes, VBin};

/// Take the instruction if it is one of this family's forms.
pub fn translate<E: Emitter>(ctx: &mut Ctx<E>) -> bool {
    let m = ctx.insn().mnemonic();
    match m {
        M::Blendvps | M::Blendvpd | M::Pblendvb => {
            let lanes = match m {
                M::Blendvps => Lanes::I32,
                M::Blendvpd => Lanes::I64,
                _ => Lanes::I8,
            };
            let a = ctx.xmm(xmm_num(ctx, 0));
            let b = read_v(ctx, 1);
            let mask = ctx.xmm(0);
            let r = ctx.e.vblendv(lanes, a, b, mask);
            let n = xmm_num(ctx, 0);
            ctx.set_xmm(n, r);
            return true;
        }
        _ if !float_inline(ctx) => return false,
        M::Comiss | M::Comisd | M::Ucomiss | M::Ucomisd => {
            let lanes = if matches!(m, M::Comiss | M::Ucomiss) {
                Lanes::F32S
            } else {
                Lanes::F64S
            };
            let a = ctx.xmm(xmm_num(ctx, 0));
            let b = read_v(ctx, 1);
            let ordered = matches!(m, M::Comiss | M::Comisd);
            let f = ctx.e.vfcmp_flags(lanes, a, b, ordered);
            // OF, SF and AF are cleared.
            ctx.update_flags(rflags::ARITH, f);
        }
        _ => {
            let (op, lanes) = match m {
                M::Minps => (VBin::FMin, Lanes::F32),
                M::Minpd => (VBin::FMin, Lanes::F64),
                M::Minss => (VBin::FMin, Lanes::F32S),
                M::Minsd => (VBin::FMin, Lanes::F64S),
                M::Maxps => (VBin::FMax, Lanes::F32),
                M::Maxpd => (VBin::FMax, Lanes::F64),
                M::Maxss => (VBin::FMax, Lanes::F32S),
                M::Maxsd => (VBin::FMax, Lanes::F64S),
                _ => return false,
            };
            let a = ctx.xmm(xmm_num(ctx, 0));
            let b_reg = is_reg(ctx, 1).then(|| ctx.xmm(xmm_num(ctx, 1)));
            if b_reg.is_some_and(|b| ctx.e.same_vec(a, b)) {
                // MIN/MAX of a value with itself: Cranelift folds the select to the value,
                // but the CPU still flushes a denormal under DAZ and raises IE/DE. The
                // host stub runs the instruction itself.
                return false;
            }
            let b = read_v(ctx, 1);
            let r = ctx.e.vbin(op, lanes, a, b);
            let n = xmm_num(ctx, 0);
            ctx.set_xmm_fp(n, r);
        }
    }
    true
}
