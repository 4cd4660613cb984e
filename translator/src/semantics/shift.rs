//! SHL SAL SHR SAR ROL ROR RCL RCR SHLD SHRD.
use crate::ctx::Ctx;
use crate::emit::Emitter;

pub fn shift<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
pub fn double_shift<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
