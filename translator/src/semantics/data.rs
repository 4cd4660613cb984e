//! Data movement: MOV MOVZX MOVSX MOVSXD LEA XCHG CMPXCHG XADD, CBW..CQO, SETcc CMOVcc, NOPs,
//! CLD STD.
use crate::ctx::Ctx;
use crate::emit::Emitter;

pub fn mov<E: Emitter>(ctx: &mut Ctx<E>) {
    let v = ctx.read_op(1);
    let ty = ctx.op_ty(0);
    let v = ctx.to_ty(v, ty, true);
    ctx.write_op(0, v);
}
pub fn mov_extend<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
pub fn lea<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
pub fn xchg<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
pub fn cmpxchg<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
pub fn xadd<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
pub fn convert<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
pub fn nop<E: Emitter>(_ctx: &mut Ctx<E>) {}
pub fn direction<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
pub fn setcc<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
pub fn cmovcc<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
