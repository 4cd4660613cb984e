//! JMP Jcc CALL RET LOOP LOOPE LOOPNE JRCXZ/JECXZ: near control transfer in 64-bit mode.
//!
//! Invariants:
//! - Every instruction here ends the block. Direct targets leave through
//!   `exit_jump`/`exit_branch` with constants so the JIT can link them; indirect targets
//!   (JMP/CALL r/m, RET) leave with the computed value.
//! - An indirect CALL reads its target before pushing, so `call [rsp+8]` and `call rsp` use
//!   the old RSP; the push (the only store) comes after every load.
//! - LOOPcc and JrCXZ use RCX or, with an address-size prefix, ECX (whose write zero-extends
//!   into RCX, checked natively). None of these read or write flags except LOOPE/LOOPNE,
//!   which read ZF.
//! - Far forms are unsupported for now. The decoder follows Intel for 66h on near branches
//!   in 64-bit mode (prefix ignored, 64-bit operand size); AMD would use 16 bits, but
//!   compilers never emit it. Non-canonical targets are not checked here (the fetch at the
//!   target faults instead of the branch).
use iced_x86::Code;

use crate::ctx::Ctx;
use crate::emit::Emitter;
use crate::ir::{BinOp, Cmp, Ty};
use crate::state::{reg, rflags};

/// Jcc (short and near).
pub fn jcc<E: Emitter>(ctx: &mut Ctx<E>) {
    let cc = ctx.insn().condition_code();
    let c = ctx.cond(cc);
    let (t, f) = (ctx.insn().near_branch_target(), ctx.next_pc());
    ctx.exit_branch(c, t, f);
}

/// JMP rel8/rel32 and JMP r/m64.
pub fn jmp<E: Emitter>(ctx: &mut Ctx<E>) {
    if ctx.mode().bitness != 64 {
        return ctx.unsupported();
    }
    match ctx.insn().code() {
        Code::Jmp_rel8_64 | Code::Jmp_rel32_64 => {
            let t = ctx.insn().near_branch_target();
            let t = ctx.c(Ty::I64, t);
            ctx.exit_jump(t);
        }
        Code::Jmp_rm64 => {
            let t = ctx.read_op(0);
            ctx.exit_jump(t);
        }
        _ => ctx.unsupported(),
    }
}

/// CALL rel32 and CALL r/m64.
pub fn call<E: Emitter>(ctx: &mut Ctx<E>) {
    if ctx.mode().bitness != 64 {
        return ctx.unsupported();
    }
    let target = match ctx.insn().code() {
        Code::Call_rel32_64 => {
            let t = ctx.insn().near_branch_target();
            ctx.c(Ty::I64, t)
        }
        // Read the target (maybe through [rsp+...]) before RSP moves.
        Code::Call_rm64 => ctx.read_op(0),
        _ => return ctx.unsupported(),
    };
    let ret = ctx.next_pc();
    let ret = ctx.c(Ty::I64, ret);
    ctx.push(ret);
    ctx.exit_jump(target);
}

/// RET and RET imm16 (near).
pub fn ret<E: Emitter>(ctx: &mut Ctx<E>) {
    if ctx.mode().bitness != 64 {
        return ctx.unsupported();
    }
    let release = match ctx.insn().code() {
        Code::Retnq => 0,
        Code::Retnq_imm16 => ctx.insn().immediate16() as u64,
        _ => return ctx.unsupported(),
    };
    let target = ctx.pop(Ty::I64);
    if release != 0 {
        let sp = ctx.gpr(reg::RSP);
        let n = ctx.c(Ty::I64, release);
        let sp = ctx.bin(BinOp::Add, sp, n);
        ctx.set_gpr(reg::RSP, sp);
    }
    ctx.exit_jump(target);
}

/// What a LOOP-family instruction tests.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Loop {
    /// Decrement the count; branch while it is nonzero.
    Plain,
    /// ... and ZF = 1.
    WhileZero,
    /// ... and ZF = 0.
    WhileNotZero,
    /// Branch if the count is zero (no decrement).
    IfCountZero,
}

/// LOOP LOOPE LOOPNE JRCXZ JECXZ.
pub fn loop_jrcxz<E: Emitter>(ctx: &mut Ctx<E>) {
    // The count register's width is the address size, which the code names (`addr_ty`
    // only sees it for string operands).
    let (kind, ty) = match ctx.insn().code() {
        Code::Loop_rel8_64_RCX => (Loop::Plain, Ty::I64),
        Code::Loop_rel8_64_ECX => (Loop::Plain, Ty::I32),
        Code::Loope_rel8_64_RCX => (Loop::WhileZero, Ty::I64),
        Code::Loope_rel8_64_ECX => (Loop::WhileZero, Ty::I32),
        Code::Loopne_rel8_64_RCX => (Loop::WhileNotZero, Ty::I64),
        Code::Loopne_rel8_64_ECX => (Loop::WhileNotZero, Ty::I32),
        Code::Jrcxz_rel8_64 => (Loop::IfCountZero, Ty::I64),
        Code::Jecxz_rel8_64 => (Loop::IfCountZero, Ty::I32),
        _ => return ctx.unsupported(),
    };
    let count = ctx.gpr_ty(reg::RCX, ty);
    let zero = ctx.c(ty, 0);
    let cond = if kind == Loop::IfCountZero {
        ctx.cmp(Cmp::Eq, count, zero)
    } else {
        let one = ctx.c(ty, 1);
        let count = ctx.bin(BinOp::Sub, count, one);
        ctx.set_gpr_ty(reg::RCX, ty, count);
        let go = ctx.cmp(Cmp::Ne, count, zero);
        match kind {
            Loop::WhileZero => {
                let zf = ctx.flag(rflags::ZF);
                ctx.bin(BinOp::And, go, zf)
            }
            Loop::WhileNotZero => {
                let zf = ctx.flag(rflags::ZF);
                let one = ctx.c(Ty::I8, 1);
                let nz = ctx.bin(BinOp::Xor, zf, one);
                ctx.bin(BinOp::And, go, nz)
            }
            _ => go,
        }
    };
    let (t, f) = (ctx.insn().near_branch_target(), ctx.next_pc());
    ctx.exit_branch(cond, t, f);
}

#[cfg(test)]
mod tests {
    use iced_x86::code_asm::*;

    use crate::semantics::system::test_env::*;
    use crate::state::{reg, rflags, CpuState, ExitReason};

    /// Step the single instruction at CODE; return (exit, RIP).
    fn go(code: &[u8], cpu: &mut CpuState, env: &mut TestEnv) -> (ExitReason, u64) {
        cpu.rip = CODE;
        let r = step1(cpu, env, code);
        (r, cpu.rip)
    }

    #[test]
    fn jmp_direct_and_indirect() {
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        let code = asm(|a| {
            let mut l = a.create_label();
            a.jmp(l)?;
            a.nop()?;
            a.set_label(&mut l)?;
            a.nop()
        });
        assert_eq!(go(&code, &mut cpu, &mut env), (ExitReason::Jump, CODE + 3));
        let code = asm(|a| a.jmp(0x12_3456u64));
        assert_eq!(go(&code, &mut cpu, &mut env).1, 0x12_3456);
        cpu.gpr[reg::RAX] = 0xdead_beef_0000;
        let code = asm(|a| a.jmp(rax));
        assert_eq!(go(&code, &mut cpu, &mut env).1, 0xdead_beef_0000);
        env.write(0x3010, 8, 0x4444);
        cpu.gpr[reg::RBX] = 0x3000;
        let code = asm(|a| a.jmp(qword_ptr(rbx + 0x10)));
        assert_eq!(go(&code, &mut cpu, &mut env).1, 0x4444);
    }

    #[test]
    fn jcc_follows_flags() {
        let code = asm(|a| a.jz(0x20_0000u64));
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        assert_eq!(go(&code, &mut cpu, &mut env).1, CODE + code.len() as u64);
        cpu.rflags |= rflags::ZF;
        assert_eq!(go(&code, &mut cpu, &mut env).1, 0x20_0000);
        let code = asm(|a| a.jl(0x20_0000u64));
        cpu.rflags |= rflags::SF;
        assert_eq!(go(&code, &mut cpu, &mut env).1, 0x20_0000);
        cpu.rflags |= rflags::OF;
        assert_eq!(go(&code, &mut cpu, &mut env).1, CODE + code.len() as u64);
    }

    #[test]
    fn call_pushes_return_address() {
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        let code = asm(|a| a.call(0x20_0000u64));
        assert_eq!(go(&code, &mut cpu, &mut env).1, 0x20_0000);
        assert_eq!(cpu.gpr[reg::RSP], STACK - 8);
        assert_eq!(env.read(STACK - 8, 8), CODE + 5);
        // call [rsp+8]: the target is read with the old RSP.
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        env.write(STACK + 8, 8, 0x5555);
        let code = asm(|a| a.call(qword_ptr(rsp + 8)));
        assert_eq!(go(&code, &mut cpu, &mut env).1, 0x5555);
        assert_eq!(env.read(STACK - 8, 8), CODE + code.len() as u64);
        // call rsp jumps to the old RSP.
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        let code = asm(|a| a.call(rsp));
        assert_eq!(go(&code, &mut cpu, &mut env).1, STACK);
    }

    #[test]
    fn faulting_indirect_call_is_precise() {
        let code = asm(|a| a.call(qword_ptr(rbx)));
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        cpu.gpr[reg::RBX] = 0x100_0000;
        assert_eq!(go(&code, &mut cpu, &mut env), (ExitReason::Exception, CODE));
        assert_eq!(cpu.gpr[reg::RSP], STACK);
        assert_eq!(
            env.read(STACK - 8, 8),
            0,
            "nothing pushed before the target load"
        );
        // The push faults: RSP unchanged.
        cpu.gpr[reg::RSP] = 4;
        cpu.gpr[reg::RBX] = 0x3000;
        assert_eq!(go(&code, &mut cpu, &mut env), (ExitReason::Exception, CODE));
        assert_eq!(cpu.gpr[reg::RSP], 4);
    }

    #[test]
    fn ret_and_ret_imm() {
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        env.write(STACK, 8, 0x7777);
        let code = asm(|a| a.ret());
        assert_eq!(go(&code, &mut cpu, &mut env).1, 0x7777);
        assert_eq!(cpu.gpr[reg::RSP], STACK + 8);
        cpu.gpr[reg::RSP] = STACK;
        let code = asm(|a| a.ret_1(0x18));
        assert_eq!(go(&code, &mut cpu, &mut env).1, 0x7777);
        assert_eq!(cpu.gpr[reg::RSP], STACK + 8 + 0x18);
    }

    #[test]
    fn far_and_16bit_forms_are_unsupported() {
        // retf, retf 4, jmp far [rbx], call far [rbx]. (66h near branches decode, as on
        // Intel, with the prefix ignored.)
        for code in [&[0xcb][..], &[0xca, 4, 0], &[0xff, 0x2b], &[0xff, 0x1b]] {
            let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
            assert_eq!(
                go(code, &mut cpu, &mut env),
                (ExitReason::Unsupported, CODE),
                "{code:x?}"
            );
            assert_eq!(cpu.gpr[reg::RSP], STACK);
        }
    }

    #[test]
    fn loop_family() {
        let target = CODE - 0x10;
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        let next = |code: &[u8]| CODE + code.len() as u64;
        // LOOP: decrement, branch while nonzero; flags untouched.
        let code = asm(|a| a.loop_(target));
        cpu.gpr[reg::RCX] = 2;
        cpu.rflags |= rflags::CF;
        assert_eq!(go(&code, &mut cpu, &mut env).1, target);
        assert_eq!(go(&code, &mut cpu, &mut env).1, next(&code));
        assert_eq!(cpu.gpr[reg::RCX], 0);
        assert_eq!(cpu.full_rflags() & rflags::ARITH, rflags::CF);
        assert_eq!(
            go(&code, &mut cpu, &mut env).1,
            target,
            "0 wraps to all ones"
        );
        assert_eq!(cpu.gpr[reg::RCX], u64::MAX);
        // 67h LOOP uses ECX; its write zero-extends.
        let code = [0x67, 0xe2, 0xfe];
        cpu.gpr[reg::RCX] = 0xdead_0000_0000_0001;
        assert_eq!(go(&code, &mut cpu, &mut env).1, CODE + 3);
        assert_eq!(cpu.gpr[reg::RCX], 0);
        // LOOPE / LOOPNE.
        let code = asm(|a| a.loope(target));
        cpu.gpr[reg::RCX] = 5;
        assert_eq!(go(&code, &mut cpu, &mut env).1, next(&code), "ZF = 0");
        cpu.rflags |= rflags::ZF;
        assert_eq!(go(&code, &mut cpu, &mut env).1, target);
        let code = asm(|a| a.loopne(target));
        assert_eq!(go(&code, &mut cpu, &mut env).1, next(&code));
        assert_eq!(cpu.gpr[reg::RCX], 2);
        cpu.rflags &= !rflags::ZF;
        assert_eq!(go(&code, &mut cpu, &mut env).1, target);
        assert_eq!(
            go(&code, &mut cpu, &mut env).1,
            next(&code),
            "count reached 0"
        );
    }

    #[test]
    fn jrcxz_and_jecxz() {
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        let code = asm(|a| a.jrcxz(0x20_0000u64));
        cpu.gpr[reg::RCX] = 0x1_0000_0000;
        assert_eq!(go(&code, &mut cpu, &mut env).1, CODE + 2);
        let code = [0x67, 0xe3, 0x10]; // jecxz +0x10
        assert_eq!(go(&code, &mut cpu, &mut env).1, CODE + 3 + 0x10);
        assert_eq!(cpu.gpr[reg::RCX], 0x1_0000_0000, "JECXZ does not write RCX");
    }
}
