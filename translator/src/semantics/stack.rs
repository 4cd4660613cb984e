//! PUSH POP ENTER LEAVE.
use crate::ctx::Ctx;
use crate::emit::Emitter;

pub fn push_pop<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
pub fn frame<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
