//! Any x87, MMX or SSE instruction, run by the host CPU through a stub
//! ([`crate::hostexec`]): the exact implementation every instruction without an inline
//! lowering takes, on every engine.
//!
//! The instruction's inputs go into `CpuState::hx` (XMM and general registers, RFLAGS for
//! FCMOVcc, the bytes of its memory operand), the stub runs, and its outputs come back
//! (registers pending until the instruction ends, arithmetic flags, the memory operand).
//!
//! Invariants (precise exceptions):
//! - Every fault an instruction can take from its operands (#GP for alignment, #PF while
//!   reading the memory operand) happens before the stub runs.
//! - An x87 instruction that writes memory first probes the destination for writing (a #PF,
//!   or a store into translated code, stops it there), so its effect on the x87 state and
//!   its store happen together or not at all. SSE stubs change no state but their frame and
//!   MXCSR's flags, so a store they feed may be retried.
//! - An x87 store's frame operand starts as the destination's current bytes: an unmasked
//!   exception (stack underflow, invalid, overflow...) makes the host instruction store
//!   nothing, and the copy back then rewrites what was there. Where the block's mode masks
//!   every x87 exception ([`crate::fp_mode::X87_MASKED`]) every store writes its whole
//!   operand, and the destination is not read.
//! - Nothing after a stub that raised an exception takes effect (the JIT's fault branch
//!   leaves the block; the interpreter checks [`crate::emit::Emitter::faulted`]).

use iced_x86::{OpKind, Register, RflagsBits};

use super::simd::needs_alignment;
use super::x87;
use crate::ctx::Ctx;
use crate::emit::Emitter;
use crate::exception::Exception;
use crate::fp_mode;
use crate::helpers::Helper;
use crate::hostexec::{self, FpuInfo, StubCall};
use crate::ir::{BinOp, Ty};
use crate::state::{self, frame, rflags};

/// The x86 RFLAGS bits of iced's [`RflagsBits`] set.
pub fn iced_rflags(bits: u32) -> u64 {
    [
        (RflagsBits::OF, rflags::OF),
        (RflagsBits::SF, rflags::SF),
        (RflagsBits::ZF, rflags::ZF),
        (RflagsBits::AF, rflags::AF),
        (RflagsBits::CF, rflags::CF),
        (RflagsBits::PF, rflags::PF),
    ]
    .iter()
    .filter(|(i, _)| bits & i != 0)
    .fold(0, |m, (_, r)| m | r)
}

/// Offset of frame slot `slot`'s XMM register in `CpuState`.
fn xmm_slot(slot: usize) -> u32 {
    state::OFF_HX + frame::XMM + 16 * slot as u32
}

/// Offset of frame slot `slot`'s general register in `CpuState`.
fn gpr_slot(slot: usize) -> u32 {
    state::OFF_HX + frame::GPR + 8 * slot as u32
}

/// Offset of byte `off` of the frame's memory operand in `CpuState`.
pub fn mem_at(off: u32) -> u32 {
    state::OFF_HX + frame::MEM + off
}

/// The chunks (offset, bytes) a memory operand of `bytes` is copied in: 16-byte pieces,
/// then 8, 4, 2, 1.
fn chunks(bytes: u32) -> Vec<(u32, u32)> {
    let mut v = Vec::new();
    let mut off = 0;
    for size in [16, 8, 4, 2, 1] {
        while bytes - off >= size {
            v.push((off, size));
            off += size;
        }
    }
    v
}

fn at<E: Emitter>(ctx: &mut Ctx<E>, addr: E::Value, off: u32) -> E::Value {
    let o = ctx.c(Ty::I64, u64::from(off));
    ctx.bin(BinOp::Add, addr, o)
}

/// Copy `bytes` of guest memory at `addr` into the frame's memory operand.
pub fn copy_in<E: Emitter>(ctx: &mut Ctx<E>, addr: E::Value, bytes: u32) {
    for (off, size) in chunks(bytes) {
        let a = at(ctx, addr, off);
        if size == 16 {
            let v = ctx.e.vload_mem(a);
            ctx.e.vstore_state(mem_at(off), v);
        } else {
            let ty = Ty::from_bytes(size as usize).unwrap_or(Ty::I8);
            let v = ctx.load(ty, a);
            ctx.e.store_state(mem_at(off), v);
        }
    }
}

/// Copy `bytes` of the frame's memory operand to guest memory at `addr`.
pub fn copy_out<E: Emitter>(ctx: &mut Ctx<E>, addr: E::Value, bytes: u32) {
    for (off, size) in chunks(bytes) {
        let a = at(ctx, addr, off);
        if size == 16 {
            let v = ctx.e.vload_state(mem_at(off));
            ctx.e.vstore_mem(a, v);
        } else {
            let ty = Ty::from_bytes(size as usize).unwrap_or(Ty::I8);
            let v = ctx.e.load_state(ty, mem_at(off));
            ctx.store(a, v);
        }
    }
}

/// Probe `bytes` at `addr` for writing: #PF, or a stop for a store into translated code,
/// before anything happens.
pub fn probe_write<E: Emitter>(ctx: &mut Ctx<E>, addr: E::Value, bytes: u32) {
    let n = ctx.c(Ty::I64, u64::from(bytes));
    let z = ctx.c(Ty::I64, 0);
    ctx.call(Helper::ProbeWrite, &[addr, n, z]);
}

/// #GP(0) unless `addr` is a multiple of `align`.
pub fn check_alignment<E: Emitter>(ctx: &mut Ctx<E>, addr: E::Value, align: u64) {
    let m = ctx.c(Ty::I64, align - 1);
    let low = ctx.bin(BinOp::And, addr, m);
    ctx.fault_if(low, Exception::GeneralProtection(0));
}

/// How an SSE stub is called in this block's mode.
pub fn sse_call<E: Emitter>(ctx: &Ctx<E>) -> StubCall {
    if ctx.mode().fp & fp_mode::SIMD_UNMASKED != 0 {
        StubCall::Checked
    } else {
        StubCall::Direct
    }
}

/// The linear address of the instruction's memory operand: its ModRM operand, or
/// MASKMOVQ/MASKMOVDQU's implicit rDI (EDI with an address-size prefix) in DS or the
/// override segment.
fn mem_addr<E: Emitter>(ctx: &mut Ctx<E>) -> E::Value {
    let insn = *ctx.insn();
    if !hostexec::implicit_rdi(&insn) {
        return ctx.op_addr();
    }
    let edi = (0..insn.op_count()).any(|i| insn.op_kind(i) == OpKind::MemorySegEDI);
    let di = ctx.reg(if edi { Register::EDI } else { Register::RDI });
    let di = ctx.to_ty(di, Ty::I64, false);
    ctx.seg_base_add(insn.memory_segment(), di)
}

/// Run the current instruction through a host stub.
pub fn exec<E: Emitter>(ctx: &mut Ctx<E>) {
    exec_with(ctx, false)
}

/// [`exec`] for an x87 instruction whose memory operand is already in the frame (read by a
/// fused run that did not run it, [`super::x87run`]): it is not read twice.
pub fn exec_copied<E: Emitter>(ctx: &mut Ctx<E>) {
    exec_with(ctx, true)
}

fn exec_with<E: Emitter>(ctx: &mut Ctx<E>, copied: bool) {
    let insn = *ctx.insn();
    let masked = x87::masked(ctx);
    let Ok(plan) = hostexec::plan_with(&insn, !masked) else {
        return ctx.raise(Exception::InvalidOpcode);
    };
    // An SSE instruction on MMX registers (CVTPI2PS, CVTPS2PI...) while MXCSR unmasks an
    // exception takes the checked run, once the x87 check below made its state live.
    let simd_on_mmx = plan.fpu && !x87::is_x87(&insn) && sse_call(ctx) == StubCall::Checked;
    let info = FpuInfo {
        waiting: plan.waiting,
        check_only: false,
        unchecked: masked,
    };
    let how = if simd_on_mmx {
        StubCall::Checked
    } else if plan.fpu && masked && ctx.x87_live() {
        StubCall::Direct
    } else if plan.fpu {
        StubCall::Fpu(info)
    } else {
        sse_call(ctx)
    };
    let addr = plan.mem.map(|_| mem_addr(ctx));
    let aligned = addr.is_some() && needs_alignment(&insn);
    if simd_on_mmx || (plan.fpu && aligned) {
        // The pending-x87-exception check (#MF) first: it comes before a misaligned m128's
        // #GP (CVT(T)PD2PI), and it makes the x87 state live for a checked run.
        let check = FpuInfo {
            check_only: true,
            ..info
        };
        let z = ctx.c(Ty::I64, 0);
        let bits = ctx.c(Ty::I64, check.bits());
        ctx.call(Helper::FpuExec, &[z, bits]);
    }
    if let (Some(a), true) = (addr, aligned) {
        check_alignment(ctx, a, 16);
    }
    for x in &plan.xmm {
        if x.rw.read {
            let v = ctx.xmm(x.reg);
            ctx.e.vstore_state(xmm_slot(x.slot), v);
        }
    }
    for g in &plan.gpr {
        if g.rw.read {
            let v = ctx.reg(g.reg);
            let v = ctx.to_ty(v, Ty::I64, false);
            ctx.e.store_state(gpr_slot(g.slot), v);
        }
    }
    if plan.flags_read {
        let f = ctx.flags_bits();
        let fixed = ctx.c(Ty::I64, rflags::FIXED);
        let f = ctx.bin(BinOp::Or, f, fixed);
        ctx.e.store_state(state::OFF_HX + frame::RFLAGS, f);
    }
    if let (Some(a), Some((bytes, rw))) = (addr, plan.mem) {
        if rw.write && plan.fpu {
            probe_write(ctx, a, bytes);
        }
        // An x87/MMX store's operand starts as the destination's bytes (an unmasked
        // exception stores nothing), except in a block where every exception is masked:
        // then the instruction stores it whole.
        if !copied && (rw.read || (rw.write && plan.fpu && !masked)) {
            copy_in(ctx, a, bytes);
        }
    }
    ctx.e.call_stub(&plan.stub, how);
    if plan.waiting && !simd_on_mmx {
        ctx.note_x87_stub();
    }
    if ctx.e.faulted() {
        // Interpreter: the stub raised (#MF, #XM...); the instruction ends with the state of
        // its start (the JIT branched to the fault exit inside `call_stub`).
        return;
    }
    for x in &plan.xmm {
        if x.rw.write {
            let v = ctx.e.vload_state(xmm_slot(x.slot));
            ctx.set_xmm(x.reg, v);
        }
    }
    for g in &plan.gpr {
        if g.rw.write {
            let v = ctx.e.load_state(Ty::I64, gpr_slot(g.slot));
            ctx.set_reg(g.reg, v);
        }
    }
    let written = iced_rflags(plan.flags_written);
    if written != 0 {
        let f = ctx.e.load_state(Ty::I64, state::OFF_HX + frame::RFLAGS);
        ctx.update_flags(written, f);
    }
    if let (Some(a), Some((bytes, rw))) = (addr, plan.mem) {
        if rw.write {
            if plan.fpu {
                x87::patch_env(ctx, bytes);
            }
            copy_out(ctx, a, bytes);
        }
    }
    if plan.fpu {
        x87::after(ctx, addr.is_some());
        x87::leave_if_mode_changes(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_operand_size() {
        for bytes in [1, 2, 4, 8, 10, 14, 16, 28, 94, 108, 512] {
            let c = chunks(bytes);
            assert_eq!(c.iter().map(|&(_, n)| n).sum::<u32>(), bytes);
            assert!(c.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0));
        }
        assert_eq!(chunks(10), vec![(0, 8), (8, 2)]);
    }

    #[test]
    fn rflags_conversion() {
        assert_eq!(
            iced_rflags(RflagsBits::ZF | RflagsBits::PF | RflagsBits::CF),
            rflags::ZF | rflags::PF | rflags::CF
        );
        assert_eq!(iced_rflags(RflagsBits::C0 | RflagsBits::DF), 0);
    }
}
