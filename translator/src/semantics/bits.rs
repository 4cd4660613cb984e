//! BT BTS BTR BTC, BSF BSR, POPCNT LZCNT TZCNT, BSWAP.
use crate::ctx::Ctx;
use crate::emit::Emitter;

pub fn bit_test<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
pub fn bit_scan<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
pub fn count<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
pub fn bswap<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.unsupported()
}
