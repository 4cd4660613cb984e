//! MOVS STOS LODS CMPS SCAS in every size, with REP/REPE/REPNE.
use crate::ctx::Ctx;
use crate::emit::Emitter;

pub fn string_op<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
