//! Sensitive instructions as hypercall stubs, and the instructions that raise exceptions
//! unconditionally (UD0/UD1/UD2, undefined opcodes).
//!
//! Invariants:
//! - Which instructions are sensitive, and what each one's hypercall is, is data
//!   ([`crate::sensitive`]); this module only marshals operands. Each sensitive instruction
//!   is exactly one [`Ctx::hypercall`], issued before any store of the instruction, so a
//!   handler's exception is precise.
//! - PUSHF and POPF are not stubs where the block's mode rules out virtual-8086 mode, nor
//!   CLI and STI at CPL 0 ([`super::eflags`]).
//! - IN, OUT and MOV to/from CR8 at CPL 0, where no privilege check can fail, call
//!   [`Helper::LeanHypercall`] instead of a hypercall: their handlers need no guest
//!   register, flag or RIP in `CpuState` (except in the trap engine, where every sensitive
//!   instruction traps).
//! - Privileged instructions in CPL > 0 blocks are not stubs: they raise #GP(0) here, at
//!   translation time, as hardware does. IOPL- and CR4-dependent checks are the handler's.
//! - Instructions whose entry ends the block leave right after the handler, which may have
//!   changed RIP, the mode or the address space: to the dispatcher, to the host code the
//!   handler returned, or on in the block when it returned 0 ([`crate::sensitive::Resume`]).
//!   Their entries have no destination operand, so the return value is free for that.

use iced_x86::{Code, Instruction, OpKind, Register};

use crate::ctx::Ctx;
use crate::emit::Emitter;
use crate::exception::Exception;
use crate::helpers::Helper;
use crate::ir::{BinOp, Ty};
use crate::sensitive::{Class, Entry, Hypercall as H, HypercallArgs};

/// An undefined opcode: #UD at the instruction.
pub fn invalid<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.raise(Exception::InvalidOpcode)
}

/// UD0/UD1/UD2: #UD at the instruction.
pub fn trap<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.raise(Exception::InvalidOpcode)
}

/// Lower the sensitive instruction `entry` describes to its hypercall stub.
pub fn sensitive<E: Emitter>(ctx: &mut Ctx<E>, entry: Entry) {
    if entry.class == Class::Privileged && ctx.mode().cpl != 0 {
        return ctx.raise(Exception::GeneralProtection(0));
    }
    if super::eflags::in_line(ctx, entry.call) {
        return;
    }
    let insn = *ctx.insn();
    let mut args = HypercallArgs {
        kind: entry.call,
        len: insn.len() as u8,
        op_size: default_op_size(&insn, ctx.mode().bitness),
        addr_size: ctx.addr_ty().bytes() as u8,
        extra: 0,
        extra2: 0,
        imm: 0,
    };
    let zero = ctx.c(Ty::I64, 0);
    let (mut b, mut c) = (zero, zero);
    match entry.call {
        H::In | H::Out => {
            let (port_op, data_op) = if entry.call == H::In { (1, 0) } else { (0, 1) };
            b = io_port(ctx, port_op);
            let data = insn.op_register(data_op);
            args.op_size = data.size() as u8;
            if entry.call == H::Out {
                c = ctx.reg(data);
            }
            if lean(ctx) {
                // CPL 0 passes every I/O permission check (CPL ≤ IOPL).
                let r = lean_call(ctx, &args, b, c);
                if entry.call == H::In {
                    ctx.set_reg(data, r);
                }
                return;
            }
        }
        H::Ins | H::Outs => {
            args.op_size = string_elem_size(&insn);
            args.extra = u8::from(insn.has_rep_prefix() || insn.has_repne_prefix());
            if entry.call == H::Outs {
                args.extra |= seg_index(insn.memory_segment()) << 4;
            }
        }
        H::Pushf => args.op_size = push_size(&insn, ctx.mode().bitness),
        H::Popf => {
            args.op_size = push_size(&insn, ctx.mode().bitness);
            b = ctx.pop(op_ty(args.op_size));
        }
        H::Int => {
            let (vector, kind) = match insn.code() {
                Code::Int3 => (3, 1),
                Code::Into => (4, 2),
                Code::Int1 => (1, 3),
                _ => (insn.immediate8(), 0),
            };
            args.extra = vector;
            args.extra2 = kind;
        }
        H::MovToCr | H::MovToDr => {
            args.extra = control_number(insn.op0_register());
            args.op_size = insn.op1_register().size() as u8;
            b = ctx.reg(insn.op1_register());
            if entry.call == H::MovToCr && args.extra == 8 && lean(ctx) {
                lean_call(ctx, &args, b, zero);
                return;
            }
        }
        H::MovFromCr | H::MovFromDr => {
            args.extra = control_number(insn.op1_register());
            args.op_size = insn.op0_register().size() as u8;
            if entry.call == H::MovFromCr && args.extra == 8 && lean(ctx) {
                let r = lean_call(ctx, &args, zero, zero);
                ctx.set_reg(insn.op0_register(), r);
                return;
            }
        }
        H::Lgdt | H::Lidt | H::Sgdt | H::Sidt | H::Invlpg => {
            if ctx.mode().bitness == 64 {
                args.op_size = 8;
            }
            b = ctx.op_addr();
        }
        H::Invpcid => {
            b = ctx.op_addr();
            c = ctx.read_op(0);
        }
        H::Lldt | H::Ltr | H::Lmsw | H::Verr | H::Verw => b = selector_operand(ctx, 0),
        H::Sldt | H::Str | H::Smsw => args.op_size = ctx.op_ty(0).bytes() as u8,
        H::Lar | H::Lsl => {
            args.op_size = insn.op0_register().size() as u8;
            args.extra = gpr_number(insn.op0_register());
            b = selector_operand(ctx, 1);
        }
        H::LoadSeg => {
            if insn.op_count() == 1 {
                // POP Sreg: the pop's RSP update commits after the handler accepted it.
                args.extra = seg_index(insn.op0_register());
                args.op_size = push_size(&insn, ctx.mode().bitness);
                let v = ctx.pop(op_ty(args.op_size));
                b = ctx.to_ty(v, Ty::I16, false);
            } else {
                args.extra = seg_index(insn.op0_register());
                b = selector_operand(ctx, 1);
            }
        }
        H::ReadSeg => {
            let seg = if insn.op_count() == 1 {
                insn.op0_register()
            } else {
                insn.op1_register()
            };
            args.extra = seg_index(seg);
            if insn.op_count() == 1 {
                args.op_size = push_size(&insn, ctx.mode().bitness);
            } else {
                args.op_size = ctx.op_ty(0).bytes() as u8;
            }
        }
        H::LoadFarPtr => {
            args.extra = match insn.code().mnemonic() {
                iced_x86::Mnemonic::Les => 0,
                iced_x86::Mnemonic::Lss => 2,
                iced_x86::Mnemonic::Lds => 3,
                iced_x86::Mnemonic::Lfs => 4,
                _ => 5,
            };
            args.extra2 = gpr_number(insn.op0_register());
            args.op_size = insn.op0_register().size() as u8;
            (b, c) = far_pointer(ctx, args.op_size);
        }
        H::JmpFar | H::CallFar => match insn.op0_kind() {
            OpKind::FarBranch16 | OpKind::FarBranch32 => {
                args.op_size = if insn.op0_kind() == OpKind::FarBranch16 {
                    2
                } else {
                    4
                };
                b = ctx.c(Ty::I64, u64::from(insn.far_branch_selector()));
                let off = if insn.op0_kind() == OpKind::FarBranch16 {
                    u64::from(insn.far_branch16())
                } else {
                    u64::from(insn.far_branch32())
                };
                c = ctx.c(Ty::I64, off);
            }
            _ => {
                args.op_size = match insn.code() {
                    Code::Jmp_m1616 | Code::Call_m1616 => 2,
                    Code::Jmp_m1632 | Code::Call_m1632 => 4,
                    _ => 8,
                };
                (b, c) = far_pointer(ctx, args.op_size);
            }
        },
        H::RetFar => {
            args.op_size = match insn.code() {
                Code::Retfw | Code::Retfw_imm16 => 2,
                Code::Retfq | Code::Retfq_imm16 => 8,
                _ => 4,
            };
            if insn.op_count() == 1 {
                args.imm = insn.immediate16();
            }
        }
        H::SetAc => args.extra = u8::from(insn.mnemonic() == iced_x86::Mnemonic::Stac),
        H::Iret => {
            args.op_size = match insn.code() {
                Code::Iretw => 2,
                Code::Iretq => 8,
                _ => 4,
            }
        }
        H::Sysret | H::Sysexit => {
            args.op_size = if matches!(insn.code(), Code::Sysretq | Code::Sysexitq) {
                8
            } else {
                4
            }
        }
        H::Hlt
        | H::Cli
        | H::Sti
        | H::Cpuid
        | H::Rdtsc
        | H::Rdtscp
        | H::Rdpmc
        | H::Rdmsr
        | H::Wrmsr
        | H::Clts
        | H::Invd
        | H::Wbinvd
        | H::Swapgs
        | H::Syscall
        | H::Sysenter
        | H::Xsetbv => {}
    }
    let r = ctx.hypercall(args.encode(), b, c);
    match entry.call {
        H::In => ctx.set_reg(insn.op0_register(), r),
        H::MovFromCr | H::MovFromDr => ctx.set_reg(insn.op0_register(), r),
        H::Sldt | H::Str | H::Smsw => {
            let v = ctx.to_ty(r, op_ty(args.op_size), false);
            ctx.write_op(0, v)
        }
        H::ReadSeg if insn.op_count() == 1 => {
            let v = ctx.to_ty(r, op_ty(args.op_size), false);
            ctx.push(v)
        }
        H::ReadSeg => {
            let v = ctx.to_ty(r, op_ty(args.op_size), false);
            ctx.write_op(0, v)
        }
        H::Pushf => {
            let v = ctx.to_ty(r, op_ty(args.op_size), false);
            ctx.push(v)
        }
        _ => {}
    }
    if entry.ends_block {
        ctx.resume_after_hypercall(entry.call.resume(), r);
    }
}

/// Whether this block's IN/OUT and MOV CR8 take [`Helper::LeanHypercall`]: at CPL 0 (no
/// privilege check can fail), unless every sensitive instruction must trap.
fn lean<E: Emitter>(ctx: &Ctx<E>) -> bool {
    ctx.mode().cpl == 0 && !ctx.e.hypercalls_only()
}

/// The lean hypercall of `args` with operands `b`, `c`: its destination value.
fn lean_call<E: Emitter>(
    ctx: &mut Ctx<E>,
    args: &HypercallArgs,
    b: E::Value,
    c: E::Value,
) -> E::Value {
    let a = ctx.c(Ty::I64, args.encode());
    ctx.call(Helper::LeanHypercall, &[a, b, c])
}

/// The operand size of an instruction without an explicit operand (64-bit mode defaults to
/// 4 unless REX.W, which iced reports through the code).
fn default_op_size(insn: &Instruction, bitness: u32) -> u8 {
    if insn.op_count() > 0 && insn.op0_kind() == OpKind::Register {
        return insn.op0_register().size().clamp(1, 8) as u8;
    }
    if bitness == 16 {
        2
    } else {
        4
    }
}

/// The size PUSH/POP-like forms move (PUSHF/POPF and PUSH/POP Sreg): from the stack
/// operand iced reports.
pub(super) fn push_size(insn: &Instruction, bitness: u32) -> u8 {
    let s = insn.stack_pointer_increment().unsigned_abs();
    if s > 0 {
        s.min(8) as u8
    } else if bitness == 64 {
        8
    } else {
        4
    }
}

/// The element size of INS/OUTS.
fn string_elem_size(insn: &Instruction) -> u8 {
    use iced_x86::Mnemonic as M;
    match insn.mnemonic() {
        M::Insb | M::Outsb => 1,
        M::Insw | M::Outsw => 2,
        _ => 4,
    }
}

/// The port of an IN/OUT: an 8-bit immediate (zero-extended) or DX.
fn io_port<E: Emitter>(ctx: &mut Ctx<E>, op: u32) -> E::Value {
    if ctx.insn().op_kind(op) == OpKind::Register {
        let dx = ctx.reg(Register::DX);
        ctx.to_ty(dx, Ty::I64, false)
    } else {
        let imm = ctx.insn().immediate(op) & 0xff;
        ctx.c(Ty::I64, imm)
    }
}

/// A 16-bit selector operand (register low word or a 16-bit memory read).
fn selector_operand<E: Emitter>(ctx: &mut Ctx<E>, op: u32) -> E::Value {
    let v = if ctx.op_is_mem(op) {
        let a = ctx.op_addr();
        ctx.load(Ty::I16, a)
    } else {
        ctx.read_op(op)
    };
    ctx.to_ty(v, Ty::I16, false)
}

/// (selector, offset) of an m16:16/32/64 far pointer: the offset first, then the selector.
fn far_pointer<E: Emitter>(ctx: &mut Ctx<E>, op_size: u8) -> (E::Value, E::Value) {
    let a = ctx.op_addr();
    let off = ctx.load(op_ty(op_size), a);
    let n = ctx.c(Ty::I64, u64::from(op_size));
    let a2 = ctx.bin(BinOp::Add, a, n);
    let a2 = ctx.wrap_ea(a2);
    let sel = ctx.load(Ty::I16, a2);
    (sel, off)
}

/// The integer type of `bytes` (1, 2, 4 or 8).
pub(super) fn op_ty(bytes: u8) -> Ty {
    Ty::from_bytes(usize::from(bytes)).unwrap_or(Ty::I64)
}

/// Segment register index in encoding order (ES CS SS DS FS GS).
fn seg_index(r: Register) -> u8 {
    match r {
        Register::ES => 0,
        Register::CS => 1,
        Register::SS => 2,
        Register::DS => 3,
        Register::FS => 4,
        Register::GS => 5,
        _ => 3,
    }
}

/// CRn/DRn number.
fn control_number(r: Register) -> u8 {
    if r.is_cr() {
        (r as u32 - Register::CR0 as u32) as u8
    } else {
        (r as u32 - Register::DR0 as u32) as u8
    }
}

/// Number (0..15) of a general-purpose register of any size.
fn gpr_number(r: Register) -> u8 {
    (r.full_register() as u32).wrapping_sub(Register::RAX as u32) as u8 & 15
}

/// A tiny machine for the semantics' unit tests: flat RAM at address 0, recorded hypercalls,
/// and helpers to assemble and interpret code. Shared by the family modules' tests.
#[cfg(test)]
pub(crate) mod test_env;

#[cfg(test)]
mod tests;
