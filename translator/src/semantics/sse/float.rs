//! SSE floating-point arithmetic lowered inline: ADD/SUB/MUL/DIV and SQRT in their packed
//! and scalar single and double forms. Each becomes the very instruction the guest executes
//! (ADDPS, SQRTSD, ...), under the guest's MXCSR, so results and flags are the hardware's.
//! Only while every MXCSR exception is masked (see the module invariants of `sse`).

use iced_x86::Mnemonic as M;

use super::{float_inline, read_v, xmm_num};
use crate::ctx::Ctx;
use crate::emit::Emitter;
use crate::vector::{Lanes, VBin, VUn};

fn op_of(m: M) -> Option<(VBin, Lanes)> {
    use Lanes::*;
    use VBin::*;
    Some(match m {
        M::Addps => (FAdd, F32),
        M::Addpd => (FAdd, F64),
        M::Addss => (FAdd, F32S),
        M::Addsd => (FAdd, F64S),
        M::Subps => (FSub, F32),
        M::Subpd => (FSub, F64),
        M::Subss => (FSub, F32S),
        M::Subsd => (FSub, F64S),
        M::Mulps => (FMul, F32),
        M::Mulpd => (FMul, F64),
        M::Mulss => (FMul, F32S),
        M::Mulsd => (FMul, F64S),
        M::Divps => (FDiv, F32),
        M::Divpd => (FDiv, F64),
        M::Divss => (FDiv, F32S),
        M::Divsd => (FDiv, F64S),
        _ => return None,
    })
}

/// Take the instruction if it is one of this family's forms.
pub fn translate<E: Emitter>(ctx: &mut Ctx<E>) -> bool {
    if !float_inline(ctx) {
        return false;
    }
    let m = ctx.insn().mnemonic();
    if let Some((op, lanes)) = op_of(m) {
        let a = ctx.xmm(xmm_num(ctx, 0));
        let b = read_v(ctx, 1);
        let r = ctx.e.vbin(op, lanes, a, b);
        let n = xmm_num(ctx, 0);
        ctx.set_xmm_fp(n, r);
        return true;
    }
    let lanes = match m {
        M::Sqrtps => Lanes::F32,
        M::Sqrtpd => Lanes::F64,
        M::Sqrtss => Lanes::F32S,
        M::Sqrtsd => Lanes::F64S,
        _ => return false,
    };
    let r = if lanes.is_scalar() {
        // Lane 0 is the root; the rest of the destination stays.
        let d = ctx.xmm(xmm_num(ctx, 0));
        let src = read_v(ctx, 1);
        ctx.e.vbin(VBin::FSqrt, lanes, d, src)
    } else {
        let src = read_v(ctx, 1);
        ctx.e.vun(VUn::FSqrt, lanes, src)
    };
    let n = xmm_num(ctx, 0);
    ctx.set_xmm_fp(n, r);
    true
}
