//! SSE instructions lowered inline (to Cranelift's vector and float operations in the JIT,
//! to [`crate::vector`]'s evaluation in the interpreter) instead of through a host stub.
//! Each family file states which forms it takes; anything it declines falls back to the
//! exact host stub.

use crate::ctx::Ctx;
use crate::emit::Emitter;

/// Translate the current SSE instruction inline if a family takes it; `false` leaves it to
/// the host stub.
pub fn translate<E: Emitter>(ctx: &mut Ctx<E>) -> bool {
    let _ = ctx;
    false
}
