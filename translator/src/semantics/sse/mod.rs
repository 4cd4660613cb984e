//! SSE instructions lowered inline (to Cranelift's vector and float operations in the JIT,
//! to [`crate::vector`]'s evaluation in the interpreter) instead of through a host stub:
//! data movement, logic and shuffles (`mov`), integer arithmetic (`int`), floating-point
//! arithmetic (`float`), compares, MIN/MAX and blends (`cmp`), conversions (`cvt`). A family function returns `false` for a form it does not take, which
//! then runs through its exact host stub ([`super::host`]).
//!
//! Invariants:
//! - Operands are read before anything is written, and every fault (a misaligned 16-byte
//!   operand's #GP(0), a #PF) happens before the first store, as in [`super::host`].
//! - Floating-point forms are lowered inline only while every MXCSR exception is masked
//!   ([`crate::fp_mode::SIMD_UNMASKED`] clear); otherwise the checked stub raises #XM.

mod ahead;
mod cmp;
mod cvt;
mod float;
mod int;
mod mov;

use iced_x86::{OpKind, Register};

pub use ahead::fp_reads_ahead;

use super::host::check_alignment;
use super::simd::needs_alignment;
use crate::ctx::Ctx;
use crate::emit::Emitter;
use crate::fp_mode;
use crate::ir::Ty;
use crate::vector::Lanes;

/// Translate the current SSE instruction inline if a family takes it; `false` leaves it to
/// the host stub.
pub fn translate<E: Emitter>(ctx: &mut Ctx<E>) -> bool {
    // MMX register forms keep the x87 state's side effects: they go through stubs.
    if (0..ctx.insn().op_count()).any(|i| is_reg(ctx, i) && ctx.insn().op_register(i).is_mm()) {
        return false;
    }
    mov::translate(ctx)
        || int::translate(ctx)
        || float::translate(ctx)
        || cmp::translate(ctx)
        || cvt::translate(ctx)
}

pub(super) fn is_reg<E: Emitter>(ctx: &Ctx<E>, i: u32) -> bool {
    ctx.insn().op_kind(i) == OpKind::Register
}

/// Whether operand `i` is an XMM register.
pub(super) fn is_xmm<E: Emitter>(ctx: &Ctx<E>, i: u32) -> bool {
    is_reg(ctx, i) && ctx.insn().op_register(i).is_xmm()
}

/// The XMM register number of operand `i` (an XMM register operand).
pub(super) fn xmm_num<E: Emitter>(ctx: &Ctx<E>, i: u32) -> usize {
    ctx.insn().op_register(i).number()
}

/// The linear address of the memory operand, after the alignment check its form needs.
pub(super) fn mem_addr<E: Emitter>(ctx: &mut Ctx<E>) -> E::Value {
    let a = ctx.op_addr();
    if needs_alignment(ctx.insn()) {
        check_alignment(ctx, a, 16);
    }
    a
}

/// Operand `i` as a vector: an XMM register, or the memory operand (16 bytes, or a smaller
/// operand zero-extended into lane 0).
pub(super) fn read_v<E: Emitter>(ctx: &mut Ctx<E>, i: u32) -> E::Vec {
    match ctx.insn().op_kind(i) {
        OpKind::Register => {
            let r = ctx.insn().op_register(i);
            ctx.xmm(r.number())
        }
        _ => {
            let bytes = ctx.insn().memory_size().size();
            let a = mem_addr(ctx);
            match Ty::from_bytes(bytes) {
                Some(ty @ (Ty::I32 | Ty::I64)) => ctx.e.vload_mem_scalar(ty, a),
                Some(ty) => {
                    let v = ctx.load(ty, a);
                    let z = ctx.e.vconst(0);
                    let lanes = match ty {
                        Ty::I8 => Lanes::I8,
                        Ty::I16 => Lanes::I16,
                        Ty::I32 => Lanes::I32,
                        Ty::I64 => Lanes::I64,
                    };
                    ctx.e.vinsert(z, lanes, 0, v)
                }
                None => ctx.e.vload_mem(a),
            }
        }
    }
}

/// Write operand 0 (an XMM register, or 16 bytes / the low bytes of `v` to memory).
pub(super) fn write_v<E: Emitter>(ctx: &mut Ctx<E>, v: E::Vec) {
    match ctx.insn().op_kind(0) {
        OpKind::Register => {
            let n = ctx.insn().op_register(0).number();
            ctx.set_xmm(n, v);
        }
        _ => {
            let bytes = ctx.insn().memory_size().size();
            let a = mem_addr(ctx);
            match Ty::from_bytes(bytes) {
                Some(ty) => {
                    let lanes = match ty {
                        Ty::I8 => Lanes::I8,
                        Ty::I16 => Lanes::I16,
                        Ty::I32 => Lanes::I32,
                        Ty::I64 => Lanes::I64,
                    };
                    let x = ctx.e.vextract(v, lanes, 0);
                    ctx.store(a, x);
                }
                None => ctx.e.vstore_mem(a, v),
            }
        }
    }
}

/// Whether floating-point forms may be lowered inline in this block's mode.
pub(super) fn float_inline<E: Emitter>(ctx: &Ctx<E>) -> bool {
    ctx.mode().fp & fp_mode::SIMD_UNMASKED == 0
}

/// The general register operand `i` (for MOVD/MOVQ, PEXTR*, PINSR*, MOVMSK*).
pub(super) fn gpr_op<E: Emitter>(ctx: &Ctx<E>, i: u32) -> Option<Register> {
    let r = ctx.insn().op_register(i);
    (is_reg(ctx, i) && r.is_gpr()).then_some(r)
}
