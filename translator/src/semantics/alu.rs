//! ADD ADC SUB SBB CMP AND OR XOR TEST INC DEC NEG NOT, and the flag instructions CLC STC CMC
//! LAHF SAHF.
use crate::ctx::Ctx;
use crate::emit::Emitter;

pub fn binary<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
pub fn inc_dec<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
pub fn neg<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
pub fn not<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
pub fn flag_op<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
