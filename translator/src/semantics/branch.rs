//! JMP Jcc CALL RET LOOP LOOPcc JRCXZ.
use crate::ctx::Ctx;
use crate::emit::Emitter;

pub fn jcc<E: Emitter>(ctx: &mut Ctx<E>) {
    let cc = ctx.insn().condition_code();
    let c = ctx.cond(cc);
    let (t, f) = (ctx.insn().near_branch_target(), ctx.next_pc());
    ctx.exit_branch(c, t, f);
}
pub fn jmp<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
pub fn call<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
pub fn ret<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
pub fn loop_jrcxz<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
