//! PUSH POP ENTER LEAVE (64-bit mode: 64-bit stack addresses, operand size 64 or, with 66h,
//! 16).
//!
//! Invariants:
//! - PUSH reads its operand before RSP moves (`push rsp` pushes the old value, `push [rsp]`
//!   addresses with the old RSP); the store happens before RSP is (pendingly) updated.
//! - POP loads first; a memory destination is addressed with the incremented RSP, as the
//!   manual specifies, and stored last, so a faulting store leaves RSP as it was. `pop rsp`
//!   ends with the popped value; `pop sp` merges it into the incremented RSP.
//! - ENTER follows the manual's algorithm in its order (push RBP, copy level-1 frame
//!   pointers, push the frame temp, then AMD's write check of the final RSP), so stores
//!   below RSP may precede a fault in a later step, as in the manual's step-by-step
//!   definition; registers stay precise.
//! - No flags are read or written. Segment-register pushes and pops (FS/GS) are not
//!   supported yet.
use iced_x86::{Code, OpKind, Register};

use crate::ctx::Ctx;
use crate::emit::Emitter;
use crate::ir::{BinOp, Ty};
use crate::state::reg;

/// PUSH and POP of registers, memory and (PUSH) immediates.
pub fn push_pop<E: Emitter>(ctx: &mut Ctx<E>) {
    let insn = *ctx.insn();
    if ctx.mode().bitness != 64 || insn.op_count() != 1 {
        return ctx.unsupported();
    }
    if insn.op_kind(0) == OpKind::Register && insn.op_register(0).is_segment_register() {
        return ctx.unsupported();
    }
    // The operand size is how far RSP moves: 8, or 2 with an operand-size prefix.
    let ty = match insn.stack_pointer_increment() {
        -8 | 8 => Ty::I64,
        -2 | 2 => Ty::I16,
        _ => return ctx.unsupported(),
    };
    match insn.code() {
        Code::Push_r16
        | Code::Push_r64
        | Code::Push_rm16
        | Code::Push_rm64
        | Code::Push_imm16
        | Code::Pushw_imm8
        | Code::Pushq_imm8
        | Code::Pushq_imm32 => push(ctx, ty),
        Code::Pop_r16 | Code::Pop_r64 | Code::Pop_rm16 | Code::Pop_rm64 => pop(ctx, ty),
        _ => ctx.unsupported(),
    }
}

fn push<E: Emitter>(ctx: &mut Ctx<E>, ty: Ty) {
    // Immediates arrive sign-extended to the operand size (`Immediate8to64` etc.).
    let v = ctx.read_op_sext(0, ty);
    ctx.push(v);
}

fn pop<E: Emitter>(ctx: &mut Ctx<E>, ty: Ty) {
    let v = ctx.pop(ty);
    // RSP is now pending at its incremented value: memory operands address with it, and a
    // register destination overrides (RSP) or merges into (SP) it.
    ctx.write_op(0, v);
}

/// ENTER and LEAVE.
pub fn frame<E: Emitter>(ctx: &mut Ctx<E>) {
    if ctx.mode().bitness != 64 {
        return ctx.unsupported();
    }
    match ctx.insn().code() {
        Code::Enterq_imm16_imm8 => enter(ctx, Ty::I64),
        Code::Enterw_imm16_imm8 => enter(ctx, Ty::I16),
        Code::Leaveq => leave(ctx, Ty::I64),
        Code::Leavew => leave(ctx, Ty::I16),
        _ => ctx.unsupported(),
    }
}

/// ENTER alloc, level: the manual's algorithm with level mod 32.
fn enter<E: Emitter>(ctx: &mut Ctx<E>, ty: Ty) {
    let insn = *ctx.insn();
    let alloc = insn.immediate16() as u64;
    let level = insn.immediate8_2nd() % 32;
    let rbp = ctx.gpr(reg::RBP);
    let old_bp = ctx.to_ty(rbp, ty, false);
    ctx.push(old_bp);
    let frame_temp = ctx.gpr(reg::RSP);
    if level > 0 {
        let size = ctx.c(Ty::I64, ty.bytes() as u64);
        let mut bp = rbp;
        for _ in 1..level {
            bp = ctx.bin(BinOp::Sub, bp, size);
            let v = ctx.load(ty, bp);
            ctx.push(v);
        }
        let t = ctx.to_ty(frame_temp, ty, false);
        ctx.push(t);
    }
    // BP gets FrameTemp at the operand size (16-bit: merged into RBP).
    ctx.set_gpr_ty(reg::RBP, ty, frame_temp);
    let sp = ctx.gpr(reg::RSP);
    let a = ctx.c(Ty::I64, alloc);
    let sp = ctx.bin(BinOp::Sub, sp, a);
    // AMD's ENTER ends with a write check of the final stack pointer (a read-only or
    // unmapped page there faults; memory is unchanged, checked natively). Rewriting the
    // value read is that check.
    let v = ctx.load(ty, sp);
    ctx.store(sp, v);
    ctx.set_gpr(reg::RSP, sp);
}

/// LEAVE: RSP = RBP (64-bit stack addresses), then pop RBP (or BP).
fn leave<E: Emitter>(ctx: &mut Ctx<E>, ty: Ty) {
    let rbp = ctx.gpr(reg::RBP);
    ctx.set_gpr(reg::RSP, rbp);
    let v = ctx.pop(ty);
    ctx.set_reg(
        if ty == Ty::I64 {
            Register::RBP
        } else {
            Register::BP
        },
        v,
    );
}

#[cfg(test)]
mod tests {
    use iced_x86::code_asm::*;

    use crate::semantics::system::test_env::*;
    use crate::state::{reg, ExitReason};

    #[test]
    fn push_registers_immediates_and_memory() {
        let code = asm(|a| {
            a.push(rax)?;
            a.push(ax)?;
            a.push(-2i32)?; // 6A FE: sign-extended to 64
            a.push(0x7fff_0000i32)?;
            a.push(qword_ptr(rbx + 8))?;
            a.push(word_ptr(rbx))?;
            a.push(rsp)?;
            a.push(qword_ptr(rsp))
        });
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        cpu.gpr[reg::RAX] = 0x1122_3344_5566_7788;
        cpu.gpr[reg::RBX] = 0x3000;
        env.write(0x3000, 8, 0xaaaa);
        env.write(0x3008, 8, 0xbbbb_cccc_dddd_eeee);
        assert_eq!(run(&mut cpu, &mut env, &code), ExitReason::Jump);
        assert_eq!(cpu.rip, CODE + code.len() as u64);
        let s = STACK;
        assert_eq!(env.read(s - 8, 8), 0x1122_3344_5566_7788);
        assert_eq!(env.read(s - 10, 2), 0x7788);
        assert_eq!(env.read(s - 18, 8), u64::MAX - 1);
        assert_eq!(env.read(s - 26, 8), 0x7fff_0000);
        assert_eq!(env.read(s - 34, 8), 0xbbbb_cccc_dddd_eeee);
        assert_eq!(env.read(s - 36, 2), 0xaaaa);
        assert_eq!(env.read(s - 44, 8), s - 36, "push rsp pushes the old value");
        assert_eq!(
            env.read(s - 52, 8),
            s - 36,
            "push [rsp] addresses with the old RSP"
        );
        assert_eq!(cpu.gpr[reg::RSP], s - 52);
    }

    #[test]
    fn push_16bit_immediates() {
        let code = [0x66, 0x6a, 0x80, 0x66, 0x68, 0x34, 0x12];
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        run(&mut cpu, &mut env, &code);
        assert_eq!(cpu.gpr[reg::RSP], STACK - 4);
        assert_eq!(env.read(STACK - 2, 2), 0xff80);
        assert_eq!(env.read(STACK - 4, 2), 0x1234);
    }

    #[test]
    fn pop_registers_and_memory() {
        let code = asm(|a| {
            a.pop(rcx)?;
            a.pop(dx)?;
            a.pop(qword_ptr(rsp + 16))?; // addressed with the incremented RSP
            a.pop(word_ptr(rbx))?;
            a.pop(rsp)
        });
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        let s = STACK;
        env.write(s, 8, 0x1111);
        env.write(s + 8, 2, 0x2222);
        env.write(s + 10, 8, 0x3333);
        env.write(s + 18, 2, 0x4444);
        env.write(s + 20, 8, 0x5000);
        cpu.gpr[reg::RDX] = 0xffff_ffff_ffff_ffff;
        cpu.gpr[reg::RBX] = 0x3000;
        run(&mut cpu, &mut env, &code);
        assert_eq!(cpu.gpr[reg::RCX], 0x1111);
        assert_eq!(cpu.gpr[reg::RDX], 0xffff_ffff_ffff_2222);
        assert_eq!(env.read(s + 18 + 16, 8), 0x3333);
        assert_eq!(env.read(0x3000, 2), 0x4444);
        assert_eq!(cpu.gpr[reg::RSP], 0x5000, "pop rsp leaves the popped value");
    }

    #[test]
    fn pop_sp_merges_into_incremented_rsp() {
        let code = [0x66, 0x5c]; // pop sp
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        cpu.gpr[reg::RSP] = 0x7ffe;
        env.write(0x7ffe, 2, 0x1234);
        run(&mut cpu, &mut env, &code);
        assert_eq!(cpu.gpr[reg::RSP], 0x1234);
        cpu.rip = CODE;
        cpu.gpr[reg::RSP] = 0x1_7ffe;
        let mut env = TestEnv::new();
        env.ram.resize(0x2_0000, 0);
        env.write(0x1_7ffe, 2, 0x1234);
        run(&mut cpu, &mut env, &code);
        assert_eq!(cpu.gpr[reg::RSP], 0x1_1234);
    }

    #[test]
    fn faulting_pop_to_memory_keeps_rsp() {
        let code = asm(|a| a.pop(qword_ptr(rbx)));
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        env.ro = 0x3000..0x4000;
        cpu.gpr[reg::RBX] = 0x3000;
        assert_eq!(step1(&mut cpu, &mut env, &code), ExitReason::Exception);
        assert_eq!(
            (cpu.gpr[reg::RSP], cpu.rip, cpu.exc_vector),
            (STACK, CODE, 14)
        );
    }

    #[test]
    fn faulting_push_keeps_rsp() {
        let code = asm(|a| a.push(rax));
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        cpu.gpr[reg::RSP] = 4;
        assert_eq!(step1(&mut cpu, &mut env, &code), ExitReason::Exception);
        assert_eq!((cpu.gpr[reg::RSP], cpu.rip), (4, CODE));
    }

    #[test]
    fn segment_pushes_are_unsupported() {
        for code in [[0x0f, 0xa0], [0x0f, 0xa9]] {
            let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
            assert_eq!(step1(&mut cpu, &mut env, &code), ExitReason::Unsupported);
            assert_eq!((cpu.gpr[reg::RSP], cpu.rip), (STACK, CODE));
        }
    }

    #[test]
    fn enter_level_zero_and_leave() {
        let code = asm(|a| {
            a.enter(0x20u32, 0u32)?;
            a.leave()
        });
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        cpu.gpr[reg::RBP] = 0x7777;
        step1(&mut cpu, &mut env, &code);
        assert_eq!(env.read(STACK - 8, 8), 0x7777);
        assert_eq!(cpu.gpr[reg::RBP], STACK - 8);
        assert_eq!(cpu.gpr[reg::RSP], STACK - 8 - 0x20);
        step1(&mut cpu, &mut env, &code);
        assert_eq!((cpu.gpr[reg::RBP], cpu.gpr[reg::RSP]), (0x7777, STACK));
    }

    #[test]
    fn enter_nested_copies_frame_pointers() {
        // enter 16, 35: level 35 mod 32 = 3: push rbp, copy [rbp-8] and [rbp-16], push temp.
        let code = [0xc8, 0x10, 0x00, 35];
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        cpu.gpr[reg::RBP] = 0x9000;
        env.write(0x9000 - 8, 8, 0xaaaa);
        env.write(0x9000 - 16, 8, 0xbbbb);
        step1(&mut cpu, &mut env, &code);
        let t = STACK - 8;
        assert_eq!(env.read(STACK - 8, 8), 0x9000);
        assert_eq!(env.read(STACK - 16, 8), 0xaaaa);
        assert_eq!(env.read(STACK - 24, 8), 0xbbbb);
        assert_eq!(env.read(STACK - 32, 8), t);
        assert_eq!(cpu.gpr[reg::RBP], t);
        assert_eq!(cpu.gpr[reg::RSP], STACK - 32 - 16);
    }

    #[test]
    fn enter_and_leave_16bit() {
        // enterw 4, 1 ; leavew
        let code = [0x66, 0xc8, 0x04, 0x00, 0x01, 0x66, 0xc9];
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        cpu.gpr[reg::RBP] = 0xdead_0000_0000_1234;
        step1(&mut cpu, &mut env, &code);
        assert_eq!(env.read(STACK - 2, 2), 0x1234);
        assert_eq!(env.read(STACK - 4, 2), STACK - 2);
        assert_eq!(cpu.gpr[reg::RBP], 0xdead_0000_0000_0000 | (STACK - 2));
        assert_eq!(cpu.gpr[reg::RSP], STACK - 4 - 4);
        // leavew: RSP = RBP (all 64 bits), BP = pop16.
        cpu.gpr[reg::RBP] = STACK - 2;
        step1(&mut cpu, &mut env, &code);
        assert_eq!(cpu.gpr[reg::RSP], STACK);
        assert_eq!(cpu.gpr[reg::RBP], ((STACK - 2) & !0xffff) | 0x1234);
    }

    #[test]
    fn enter_checks_the_final_stack_pointer() {
        // enter 0x1000, 0 with [RSP - 8 - 0x1000] read-only: faults, registers unchanged.
        let code = [0xc8, 0x00, 0x10, 0x00];
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        env.ro = 0x9000..0xa000;
        cpu.gpr[reg::RSP] = 0xa008;
        cpu.gpr[reg::RBP] = 0x1234;
        env.write(0x9000, 8, 0x5555);
        assert_eq!(step1(&mut cpu, &mut env, &code), ExitReason::Exception);
        assert_eq!((cpu.exc_vector, cpu.exc_addr), (14, 0x9000));
        assert_eq!((cpu.gpr[reg::RSP], cpu.gpr[reg::RBP]), (0xa008, 0x1234));
        // Writable: the check leaves memory as it was.
        env.ro = 0..0;
        assert_eq!(step1(&mut cpu, &mut env, &code), ExitReason::Jump);
        assert_eq!(env.read(0x9000, 8), 0x5555);
        assert_eq!(cpu.gpr[reg::RSP], 0x9000);
    }

    #[test]
    fn enter_fault_keeps_registers() {
        let code = [0xc8, 0x00, 0x00, 0x02]; // enter 0, 2: reads [rbp-8]
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        cpu.gpr[reg::RBP] = 0x10_0000;
        assert_eq!(step1(&mut cpu, &mut env, &code), ExitReason::Exception);
        assert_eq!((cpu.gpr[reg::RSP], cpu.gpr[reg::RBP]), (STACK, 0x10_0000));
    }
}
