//! MUL IMUL (all forms) DIV IDIV.
use crate::ctx::Ctx;
use crate::emit::Emitter;

pub fn mul<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
pub fn div<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
