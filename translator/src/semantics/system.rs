//! Sensitive instructions as hypercall stubs (IN OUT HLT CLI STI PUSHF POPF CPUID RDTSC), and
//! the instructions that raise exceptions unconditionally (UD2, INT3, undefined opcodes).
use crate::ctx::Ctx;
use crate::emit::Emitter;
use crate::exception::Exception;

pub fn invalid<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.raise(Exception::InvalidOpcode)
}
pub fn io<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
pub fn hlt<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
pub fn cli_sti<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
pub fn pushf_popf<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
pub fn cpuid<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
pub fn rdtsc<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
pub fn trap<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
