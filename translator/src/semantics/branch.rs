//! JMP Jcc CALL RET LOOP LOOPE LOOPNE JCXZ/JECXZ/JRCXZ: near control transfer in every code
//! size.
//!
//! Invariants:
//! - Every instruction here ends the block. Direct targets leave through
//!   `exit_jump`/`exit_branch` with constants so the JIT can link them; indirect targets
//!   (JMP/CALL r/m, RET) leave with the computed value, zero-extended from the operand size.
//! - Direct targets are the decoder's, already wrapped to the operand size (a 16-bit JMP at
//!   0xfff0 can land at 0x0002); RIP holds the offset in CS, whose base the runtime adds.
//! - CALL pushes the return address at the operand size (2, 4 or 8 bytes, from the
//!   decoder) and RET pops it at that size; RET imm16 then releases imm16 bytes at the
//!   stack width. Stack accesses go through `Ctx::push`/`Ctx::pop` (stack width, SS base).
//! - An indirect CALL reads its target before pushing, so `call [rsp+8]` and `call rsp` use
//!   the old RSP; the push (the only store) comes after every load.
//! - LOOPcc and JrCXZ use CX, ECX or RCX as the address size says (the decoder names it in
//!   the code); an ECX write zero-extends into RCX (checked natively), a CX write merges.
//!   None of these read or write flags except LOOPE/LOOPNE, which read ZF.
//! - Far forms are sensitive (`crate::sensitive`); here they are unsupported. The decoder
//!   follows Intel for 66h on near branches in 64-bit mode (prefix ignored, 64-bit operand
//!   size); AMD would use 16 bits, but compilers never emit it. Non-canonical targets and
//!   CS limits are not checked here (the fetch at the target faults instead of the branch).
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

/// JMP rel8/rel16/rel32 and JMP r/m16/32/64.
pub fn jmp<E: Emitter>(ctx: &mut Ctx<E>) {
    match ctx.insn().code() {
        Code::Jmp_rel8_16
        | Code::Jmp_rel8_32
        | Code::Jmp_rel8_64
        | Code::Jmp_rel16
        | Code::Jmp_rel32_32
        | Code::Jmp_rel32_64 => {
            let t = ctx.insn().near_branch_target();
            let t = ctx.c(Ty::I64, t);
            ctx.exit_jump(t);
        }
        Code::Jmp_rm16 | Code::Jmp_rm32 | Code::Jmp_rm64 => {
            let t = ctx.read_op(0);
            let t = ctx.to_ty(t, Ty::I64, false);
            ctx.exit_jump(t);
        }
        _ => ctx.unsupported(),
    }
}

/// CALL rel16/rel32 and CALL r/m16/32/64.
pub fn call<E: Emitter>(ctx: &mut Ctx<E>) {
    let (target, ty) = match ctx.insn().code() {
        Code::Call_rel16 | Code::Call_rel32_32 | Code::Call_rel32_64 => {
            let t = ctx.insn().near_branch_target();
            (ctx.c(Ty::I64, t), near_operand(ctx))
        }
        // Read the target (maybe through [rsp+...]) before RSP moves.
        Code::Call_rm16 | Code::Call_rm32 | Code::Call_rm64 => {
            let t = ctx.read_op(0);
            (ctx.to_ty(t, Ty::I64, false), near_operand(ctx))
        }
        _ => return ctx.unsupported(),
    };
    let ret = ctx.next_pc();
    let ret = ctx.c(ty, ret);
    ctx.push(ret);
    ctx.exit_jump(target);
}

/// The operand size of a near CALL: how far it moves the stack pointer.
fn near_operand<E: Emitter>(ctx: &Ctx<E>) -> Ty {
    match ctx.insn().stack_pointer_increment() {
        -2 => Ty::I16,
        -4 => Ty::I32,
        _ => Ty::I64,
    }
}

/// RET and RET imm16 (near).
pub fn ret<E: Emitter>(ctx: &mut Ctx<E>) {
    let imm = || ctx.insn().immediate16() as i64;
    let (ty, release) = match ctx.insn().code() {
        Code::Retnq => (Ty::I64, 0),
        Code::Retnd => (Ty::I32, 0),
        Code::Retnw => (Ty::I16, 0),
        Code::Retnq_imm16 => (Ty::I64, imm()),
        Code::Retnd_imm16 => (Ty::I32, imm()),
        Code::Retnw_imm16 => (Ty::I16, imm()),
        _ => return ctx.unsupported(),
    };
    let target = ctx.pop(ty);
    if release != 0 {
        let sp = ctx.stack_ptr_plus(release);
        ctx.set_stack_ptr(sp);
    }
    let target = ctx.to_ty(target, Ty::I64, false);
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

/// What a LOOP/JrCXZ code does and its count register's width (the address size, which
/// the code names: `Loop_rel8_16_ECX` is 16-bit operand size, ECX count).
fn loop_kind(code: Code) -> Option<(Loop, Ty)> {
    use Code as C;
    use Loop::*;
    Some(match code {
        C::Loop_rel8_16_CX | C::Loop_rel8_32_CX => (Plain, Ty::I16),
        C::Loop_rel8_16_ECX | C::Loop_rel8_32_ECX | C::Loop_rel8_64_ECX => (Plain, Ty::I32),
        C::Loop_rel8_64_RCX => (Plain, Ty::I64),
        C::Loope_rel8_16_CX | C::Loope_rel8_32_CX => (WhileZero, Ty::I16),
        C::Loope_rel8_16_ECX | C::Loope_rel8_32_ECX | C::Loope_rel8_64_ECX => (WhileZero, Ty::I32),
        C::Loope_rel8_64_RCX => (WhileZero, Ty::I64),
        C::Loopne_rel8_16_CX | C::Loopne_rel8_32_CX => (WhileNotZero, Ty::I16),
        C::Loopne_rel8_16_ECX | C::Loopne_rel8_32_ECX | C::Loopne_rel8_64_ECX => {
            (WhileNotZero, Ty::I32)
        }
        C::Loopne_rel8_64_RCX => (WhileNotZero, Ty::I64),
        C::Jcxz_rel8_16 | C::Jcxz_rel8_32 => (IfCountZero, Ty::I16),
        C::Jecxz_rel8_16 | C::Jecxz_rel8_32 | C::Jecxz_rel8_64 => (IfCountZero, Ty::I32),
        C::Jrcxz_rel8_16 | C::Jrcxz_rel8_64 => (IfCountZero, Ty::I64),
        _ => return None,
    })
}

/// LOOP LOOPE LOOPNE JCXZ JECXZ JRCXZ.
pub fn loop_jrcxz<E: Emitter>(ctx: &mut Ctx<E>) {
    let Some((kind, ty)) = loop_kind(ctx.insn().code()) else {
        return ctx.unsupported();
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
    fn far_forms_are_hypercalls_not_branches_here() {
        // retf, retf 4, jmp far [rbx], call far [rbx]: the sensitive-instruction table
        // routes them to the runtime before this module sees them. (66h near branches
        // decode, as on Intel, with the prefix ignored.)
        for code in [&[0xcb][..], &[0xca, 4, 0], &[0xff, 0x2b], &[0xff, 0x1b]] {
            let insn = iced_x86::Decoder::new(64, code, 0).decode();
            assert!(crate::sensitive::lookup(&insn).is_some(), "{code:x?}");
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

#[cfg(test)]
mod legacy_tests {
    use iced_x86::code_asm::*;

    use crate::semantics::stack::legacy_env::*;
    use crate::semantics::system::test_env::TestEnv;
    use crate::state::{reg, rflags, ExitReason};

    #[test]
    fn sixteen_bit_near_jump_wraps_at_64k() {
        // jmp short +0x10 at 0xfff0: 0xfff2 + 0x10 wraps to 0x0002.
        let code = [0xeb, 0x10];
        let (mut env, mut cpu) = (TestEnv::new(), cpu_at(0xfff0, 0x100, [0; 6]));
        let r = run_in(mode(16, 16, false), &mut cpu, &mut env, &code, 0xfff0);
        assert_eq!((r, cpu.rip), (ExitReason::Jump, 2));
        // jmp near (rel16) and a taken jcc wrap the same way; with 66h the target is 32-bit.
        for (code, want) in [
            (&[0xe9, 0x10, 0x00][..], 0x0003),
            (&[0x74, 0x10], 0x0002),
            (&[0x66, 0xe9, 0x10, 0, 0, 0], 0x1_0006),
        ] {
            let mut cpu = cpu_at(0xfff0, 0x100, [0; 6]);
            cpu.rflags |= rflags::ZF;
            run_in(mode(16, 16, false), &mut cpu, &mut env, code, 0xfff0);
            assert_eq!(cpu.rip, want, "{code:02x?}");
        }
        // 32-bit code: EIP wraps at 4 GiB.
        let mut cpu = cpu_at(0xffff_fff0, 0x100, [0; 6]);
        run_in(
            mode(32, 32, false),
            &mut cpu,
            &mut env,
            &[0xeb, 0x10],
            0xffff_fff0,
        );
        assert_eq!(cpu.rip, 2);
    }

    #[test]
    fn call_and_ret_16bit() {
        let ip = 0x1000;
        let code = asm_at(16, ip, |a| {
            a.call(0x2000u64)?; // e8 rel16: pushes 2 bytes
            a.nop()
        });
        let m = mode(16, 16, false);
        let (mut env, mut cpu) = (TestEnv::new(), cpu_at(ip, 0x3_0002, [0; 6]));
        run_in(m, &mut cpu, &mut env, &code, ip);
        assert_eq!(cpu.rip, 0x2000);
        assert_eq!(cpu.gpr[reg::RSP], 0x3_0000);
        assert_eq!(env.read(0, 2), ip + 3);
        // ret 4 pops 2 bytes and releases 4 more, SP wrapping.
        let code = [0xc2, 0x04, 0x00];
        cpu.rip = 0x2000;
        cpu.gpr[reg::RSP] = 0x3_fffe;
        env.write(0xfffe, 2, 0x1234);
        run_in(m, &mut cpu, &mut env, &code, 0x2000);
        assert_eq!((cpu.rip, cpu.gpr[reg::RSP]), (0x1234, 0x3_0004));
        // call word [bx+si]: the target is zero-extended; 66h call pushes 4 bytes.
        let code = asm_at(16, ip, |a| a.call(word_ptr(bx + si)));
        let mut cpu = cpu_at(ip, 0x100, [0; 6]);
        (cpu.gpr[reg::RBX], cpu.gpr[reg::RSI]) = (0x300, 0x10);
        env.write(0x310, 2, 0xfedc);
        run_in(m, &mut cpu, &mut env, &code, ip);
        assert_eq!((cpu.rip, cpu.gpr[reg::RSP]), (0xfedc, 0xfe));
        let code = [0x66, 0xe8, 0x00, 0x01, 0x00, 0x00];
        let mut cpu = cpu_at(ip, 0x100, [0; 6]);
        run_in(m, &mut cpu, &mut env, &code, ip);
        assert_eq!((cpu.rip, cpu.gpr[reg::RSP]), (ip + 6 + 0x100, 0xfc));
        assert_eq!(env.read(0xfc, 4), ip + 6);
    }

    #[test]
    fn call_and_ret_32bit_with_ss_base() {
        let ip = 0x40_0000;
        let code = asm_at(32, ip, |a| a.call(dword_ptr(esp + 4)));
        let m = mode(32, 32, true);
        let (mut env, mut cpu) = (TestEnv::new(), cpu_at(ip, 0x100, [0, 0, 0x2000, 0, 0, 0]));
        env.write(0x2104, 4, 0x1234_5678);
        run_in(m, &mut cpu, &mut env, &code, ip);
        assert_eq!((cpu.rip, cpu.gpr[reg::RSP]), (0x1234_5678, 0xfc));
        assert_eq!(env.read(0x20fc, 4), ip + code.len() as u64);
        // ret 8 (32-bit), and a 66h ret popping 2 bytes.
        let mut cpu = cpu_at(ip, 0xfc, [0, 0, 0x2000, 0, 0, 0]);
        run_in(m, &mut cpu, &mut env, &[0xc2, 0x08, 0x00], ip);
        let ret = ip + code.len() as u64;
        assert_eq!((cpu.rip, cpu.gpr[reg::RSP]), (ret, 0x108));
        let mut cpu = cpu_at(ip, 0xfc, [0, 0, 0x2000, 0, 0, 0]);
        run_in(m, &mut cpu, &mut env, &[0x66, 0xc3], ip);
        assert_eq!((cpu.rip, cpu.gpr[reg::RSP]), (ret & 0xffff, 0xfe));
        // jmp eax and jmp ax.
        let mut cpu = cpu_at(ip, 0xfc, [0; 6]);
        cpu.gpr[reg::RAX] = 0xdead_8765_4321;
        run_in(m, &mut cpu, &mut env, &[0xff, 0xe0], ip);
        assert_eq!(cpu.rip, 0x8765_4321);
        cpu.rip = ip;
        run_in(m, &mut cpu, &mut env, &[0x66, 0xff, 0xe0], ip);
        assert_eq!(cpu.rip, 0x4321);
    }

    #[test]
    fn loop_and_jcxz_by_address_size() {
        let ip = 0x1000;
        let next = |code: &[u8]| ip + code.len() as u64;
        let target = |code: &[u8]| next(code) - 0x10;
        // 16-bit: LOOP counts CX (merging); 67h LOOP counts ECX.
        let m = mode(16, 16, false);
        let code = [0xe2, 0xf0];
        let (mut env, mut cpu) = (TestEnv::new(), cpu_at(ip, 0x100, [0; 6]));
        cpu.gpr[reg::RCX] = 0xdead_0001_0001;
        run_in(m, &mut cpu, &mut env, &code, ip);
        assert_eq!(
            (cpu.rip, cpu.gpr[reg::RCX]),
            (next(&code), 0xdead_0001_0000)
        );
        cpu.rip = ip;
        run_in(m, &mut cpu, &mut env, &code, ip);
        assert_eq!(
            (cpu.rip, cpu.gpr[reg::RCX]),
            (target(&code), 0xdead_0001_ffff)
        );
        let code = [0x67, 0xe2, 0xf0];
        cpu.rip = ip;
        cpu.gpr[reg::RCX] = 0xdead_0001_0000;
        run_in(m, &mut cpu, &mut env, &code, ip);
        assert_eq!((cpu.rip, cpu.gpr[reg::RCX]), (target(&code), 0xffff));
        // 32-bit: JECXZ tests ECX, 67h JCXZ tests CX.
        let m = mode(32, 32, false);
        for (code, count, taken) in [
            (&[0xe3, 0xf0][..], 0x1_0000_0000u64, true),
            (&[0xe3, 0xf0], 0x1_0000, false),
            (&[0x67, 0xe3, 0xf0], 0x1_0000, true),
            (&[0x67, 0xe3, 0xf0], 0x1, false),
        ] {
            let mut cpu = cpu_at(ip, 0x100, [0; 6]);
            cpu.gpr[reg::RCX] = count;
            run_in(m, &mut cpu, &mut env, code, ip);
            let want = if taken { target(code) } else { next(code) };
            assert_eq!(cpu.rip, want, "{code:02x?} rcx {count:#x}");
            assert_eq!(cpu.gpr[reg::RCX], count);
        }
        // 32-bit LOOPNE with ECX: the write zero-extends.
        let code = [0xe0, 0xf0];
        let mut cpu = cpu_at(ip, 0x100, [0; 6]);
        cpu.gpr[reg::RCX] = 0xdead_0000_0003;
        run_in(m, &mut cpu, &mut env, &code, ip);
        assert_eq!((cpu.rip, cpu.gpr[reg::RCX]), (target(&code), 2));
    }
}
