//! PUSH POP PUSHA PUSHAD POPA POPAD ENTER LEAVE in every code size.
//!
//! Invariants:
//! - The operand size (how far the stack pointer moves) comes from the decoder: 8 or 2 in
//!   64-bit mode, 4 or 2 in 32-bit mode, 2 or 4 in 16-bit mode. The stack pointer itself is
//!   SP, ESP or RSP as the stack width says ([`Ctx::stack_ty`]): it wraps at that width and
//!   only that part of RSP is written; every stack access adds the SS base where segments
//!   may have one ([`Ctx::stack_addr`]).
//! - PUSH reads its operand before the stack pointer moves (`push rsp` pushes the old
//!   value, `push [rsp]` addresses with the old RSP); the store happens before the stack
//!   pointer is (pendingly) updated.
//! - POP loads first; a memory destination is addressed with the incremented stack pointer,
//!   as the manual specifies, and stored last, so a faulting store leaves RSP as it was.
//!   `pop rsp` ends with the popped value; `pop sp` merges it into the incremented RSP.
//! - PUSHA/PUSHAD push AX..DI with the stack pointer of the instruction's start in SP's
//!   place; POPA/POPAD load all eight slots (the SP slot is read and discarded) before
//!   anything is written, so a fault leaves every register unchanged. (Both are invalid in
//!   64-bit mode, where the decoder never produces them.)
//! - ENTER follows the manual's algorithm in its order (push rBP, copy level-1 frame
//!   pointers walking rBP at the stack width, push the frame temp, then AMD's write check
//!   of the final stack pointer), so stores below the stack pointer may precede a fault in
//!   a later step, as in the manual's step-by-step definition; registers stay precise. rBP
//!   receives the frame temp at the operand size; the stack pointer moves at the stack
//!   width. LEAVE sets the stack pointer from rBP at the stack width, then pops rBP at the
//!   operand size.
//! - No flags are read or written. Segment-register pushes and pops are hypercalls
//!   (`crate::sensitive`); if one reaches this module it is unsupported.
use iced_x86::{Code, Mnemonic as M, OpKind};

use crate::ctx::Ctx;
use crate::emit::Emitter;
use crate::ir::{BinOp, Ty};
use crate::state::reg;

/// The operand size of a stack instruction moving the stack pointer by `n` bytes.
fn stack_operand(n: i32) -> Option<Ty> {
    match n.unsigned_abs() {
        8 => Some(Ty::I64),
        4 => Some(Ty::I32),
        2 => Some(Ty::I16),
        _ => None,
    }
}

/// PUSH and POP of registers, memory and (PUSH) immediates.
pub fn push_pop<E: Emitter>(ctx: &mut Ctx<E>) {
    let insn = *ctx.insn();
    if insn.op_count() != 1 {
        return ctx.unsupported();
    }
    if insn.op_kind(0) == OpKind::Register && insn.op_register(0).is_segment_register() {
        return ctx.unsupported();
    }
    let Some(ty) = stack_operand(insn.stack_pointer_increment()) else {
        return ctx.unsupported();
    };
    match insn.mnemonic() {
        M::Push => push(ctx, ty),
        M::Pop => pop(ctx, ty),
        _ => ctx.unsupported(),
    }
}

fn push<E: Emitter>(ctx: &mut Ctx<E>, ty: Ty) {
    // Immediates arrive sign-extended to the operand size (`Immediate8to32` etc.).
    let v = ctx.read_op_sext(0, ty);
    ctx.push(v);
}

fn pop<E: Emitter>(ctx: &mut Ctx<E>, ty: Ty) {
    let v = ctx.pop(ty);
    // The stack pointer is now pending at its incremented value: memory operands address
    // with it, and a register destination overrides (RSP/ESP) or merges into (SP) it.
    ctx.write_op(0, v);
}

/// PUSHA PUSHAD POPA POPAD.
pub fn pusha_popa<E: Emitter>(ctx: &mut Ctx<E>) {
    match ctx.insn().code() {
        Code::Pushaw => pusha(ctx, Ty::I16),
        Code::Pushad => pusha(ctx, Ty::I32),
        Code::Popaw => popa(ctx, Ty::I16),
        Code::Popad => popa(ctx, Ty::I32),
        _ => ctx.unsupported(),
    }
}

/// Push rAX rCX rDX rBX, the original rSP, rBP rSI rDI at operand size `ty`.
fn pusha<E: Emitter>(ctx: &mut Ctx<E>, ty: Ty) {
    let sp = ctx.gpr_ty(reg::RSP, ty);
    for i in 0..8 {
        let v = if i == reg::RSP { sp } else { ctx.gpr_ty(i, ty) };
        ctx.push(v);
    }
}

/// Pop rDI rSI rBP (skip a slot) rBX rDX rCX rAX at operand size `ty`: every load first.
fn popa<E: Emitter>(ctx: &mut Ctx<E>, ty: Ty) {
    let mut vals = [None; 8];
    for i in (0..8).rev() {
        vals[i] = Some(ctx.pop(ty));
    }
    for (i, v) in vals.into_iter().enumerate() {
        if let (Some(v), false) = (v, i == reg::RSP) {
            ctx.set_gpr_ty(i, ty, v);
        }
    }
}

/// ENTER and LEAVE.
pub fn frame<E: Emitter>(ctx: &mut Ctx<E>) {
    match ctx.insn().code() {
        Code::Enterq_imm16_imm8 => enter(ctx, Ty::I64),
        Code::Enterd_imm16_imm8 => enter(ctx, Ty::I32),
        Code::Enterw_imm16_imm8 => enter(ctx, Ty::I16),
        Code::Leaveq => leave(ctx, Ty::I64),
        Code::Leaved => leave(ctx, Ty::I32),
        Code::Leavew => leave(ctx, Ty::I16),
        _ => ctx.unsupported(),
    }
}

/// ENTER alloc, level: the manual's algorithm with level mod 32.
fn enter<E: Emitter>(ctx: &mut Ctx<E>, ty: Ty) {
    let insn = *ctx.insn();
    let alloc = insn.immediate16() as i64;
    let level = insn.immediate8_2nd() % 32;
    let sty = ctx.stack_ty();
    let rbp = ctx.gpr(reg::RBP);
    let old_bp = ctx.to_ty(rbp, ty, false);
    ctx.push(old_bp);
    let frame_temp = ctx.gpr(reg::RSP);
    if level > 0 {
        let size = ctx.c(sty, ty.bytes() as u64);
        let mut bp = ctx.to_ty(rbp, sty, false);
        for _ in 1..level {
            bp = ctx.bin(BinOp::Sub, bp, size);
            let a = ctx.stack_addr(bp);
            let v = ctx.load(ty, a);
            ctx.push(v);
        }
        let t = ctx.to_ty(frame_temp, ty, false);
        ctx.push(t);
    }
    // rBP gets FrameTemp at the operand size (16-bit: merged into RBP).
    ctx.set_gpr_ty(reg::RBP, ty, frame_temp);
    let sp = ctx.stack_ptr_plus(-alloc);
    // AMD's ENTER ends with a write check of the final stack pointer (a read-only or
    // unmapped page there faults; memory is unchanged, checked natively). Rewriting the
    // value read is that check.
    let a = ctx.stack_addr(sp);
    let v = ctx.load(ty, a);
    ctx.store(a, v);
    ctx.set_stack_ptr(sp);
}

/// LEAVE: the stack pointer = rBP (at the stack width), then pop rBP at the operand size.
fn leave<E: Emitter>(ctx: &mut Ctx<E>, ty: Ty) {
    let sty = ctx.stack_ty();
    let bp = ctx.gpr_ty(reg::RBP, sty);
    ctx.set_stack_ptr(bp);
    let v = ctx.pop(ty);
    ctx.set_gpr_ty(reg::RBP, ty, v);
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
    fn segment_pushes_and_pops_are_hypercalls() {
        // push fs, pop gs (64-bit); push es, pop ds (32-bit): the sensitive-instruction
        // table routes them to the runtime before this module sees them.
        for (bitness, code) in [
            (64, [0x0f, 0xa0]),
            (64, [0x0f, 0xa9]),
            (32, [0x06, 0x90]),
            (32, [0x1f, 0x90]),
        ] {
            let insn = iced_x86::Decoder::new(bitness, &code, 0).decode();
            assert!(crate::sensitive::lookup(&insn).is_some(), "{code:x?}");
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

/// Test support for code outside 64-bit mode (shared by the family modules' tests):
/// assemble 16- or 32-bit code and interpret it in a given [`Mode`](crate::Mode).
#[cfg(test)]
pub(crate) mod legacy_env {
    use iced_x86::code_asm::CodeAssembler;
    use iced_x86::IcedError;

    use crate::decode::decode_block;
    use crate::interp::run_block;
    use crate::semantics::system::test_env::TestEnv;
    use crate::state::{CpuState, ExitReason};
    use crate::Mode;

    /// A mode of `bitness`-bit code with a `stack`-bit stack; `bases` sets
    /// [`Mode::seg_bases`].
    pub fn mode(bitness: u32, stack: u8, bases: bool) -> Mode {
        Mode {
            stack,
            seg_bases: bases,
            ..Mode::new(bitness, 0)
        }
    }

    /// Assemble `bitness`-bit code at `ip`.
    pub fn asm_at(
        bitness: u32,
        ip: u64,
        f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
    ) -> Vec<u8> {
        let mut a = CodeAssembler::new(bitness).unwrap();
        f(&mut a).unwrap();
        a.assemble(ip).unwrap()
    }

    /// A CPU at `ip` with the given stack pointer and segment bases (ES CS SS DS FS GS).
    pub fn cpu_at(ip: u64, sp: u64, bases: [u64; 6]) -> CpuState {
        let mut cpu = TestEnv::cpu();
        cpu.rip = ip;
        cpu.gpr[crate::state::reg::RSP] = sp;
        for (i, b) in bases.into_iter().enumerate() {
            cpu.seg[i].base = b;
        }
        cpu
    }

    /// Interpret the block of `code` (placed at `ip`) that starts at `cpu.rip`, in `mode`,
    /// at most `max` instructions; returns how it left.
    pub fn run_n(
        mode: Mode,
        cpu: &mut CpuState,
        env: &mut TestEnv,
        code: &[u8],
        ip: u64,
        max: usize,
    ) -> ExitReason {
        let off = (cpu.rip - ip) as usize;
        let block = decode_block(&code[off..], cpu.rip, mode, max);
        run_block(cpu, env, &block.insns, mode).exit
    }

    /// [`run_n`] of the whole block.
    pub fn run_in(
        mode: Mode,
        cpu: &mut CpuState,
        env: &mut TestEnv,
        code: &[u8],
        ip: u64,
    ) -> ExitReason {
        run_n(mode, cpu, env, code, ip, 64)
    }
}

#[cfg(test)]
mod legacy_tests {
    use iced_x86::code_asm::*;

    use super::legacy_env::*;
    use crate::semantics::system::test_env::TestEnv;
    use crate::state::{reg, ExitReason};

    const IP: u64 = 0x1000;

    #[test]
    fn push_pop_32bit_sizes_and_zero_extension() {
        let code = asm_at(32, IP, |a| {
            a.push(eax)?;
            a.push(-2i32)?; // 6A FE: sign-extended to 32
            a.push(ax)?; // 66 50
            a.push(dword_ptr(ebx + 4))?;
            a.push(esp)?; // the old value
            a.pop(ecx)?;
            a.pop(dword_ptr(esp + 4))?; // addressed with the incremented ESP
            a.pop(dx)?;
            a.hlt()
        });
        let (mut env, mut cpu) = (TestEnv::new(), cpu_at(IP, 0xdead_0000_0000_8000, [0; 6]));
        cpu.gpr[reg::RAX] = 0x1122_3344_5566_7788;
        cpu.gpr[reg::RBX] = 0x3000;
        cpu.gpr[reg::RDX] = 0xffff_ffff_ffff_ffff;
        env.write(0x3004, 4, 0xaabb_ccdd);
        let m = mode(32, 32, false);
        assert_eq!(run_n(m, &mut cpu, &mut env, &code, IP, 5), ExitReason::Jump);
        assert_eq!(env.read(0x7ffc, 4), 0x5566_7788);
        assert_eq!(env.read(0x7ff8, 4), 0xffff_fffe);
        assert_eq!(env.read(0x7ff6, 2), 0x7788);
        assert_eq!(env.read(0x7ff2, 4), 0xaabb_ccdd);
        assert_eq!(env.read(0x7fee, 4), 0x7ff2, "push esp pushes the old ESP");
        assert_eq!(cpu.gpr[reg::RSP], 0x7fee, "ESP writes zero-extend");
        run_in(m, &mut cpu, &mut env, &code, IP);
        assert_eq!(cpu.gpr[reg::RCX], 0x7ff2);
        assert_eq!(
            env.read(0x7ffa, 4),
            0xaabb_ccdd,
            "pop [esp+4] at ESP 0x7ff6 + 4"
        );
        assert_eq!(cpu.gpr[reg::RDX], 0xffff_ffff_ffff_7788);
        assert_eq!(cpu.gpr[reg::RSP], 0x7ff8);
    }

    #[test]
    fn esp_wraps_at_zero_with_the_ss_base() {
        // 32-bit stack at ESP 0, SS base 0x1000: the push lands at (0x1000 + 0xffff_fffc)
        // mod 4 GiB = 0xffc.
        let code = asm_at(32, IP, |a| {
            a.push(eax)?;
            a.pop(ecx)?;
            a.hlt()
        });
        let m = mode(32, 32, true);
        let (mut env, mut cpu) = (TestEnv::new(), cpu_at(IP, 0, [0, 0, 0x1000, 0, 0, 0]));
        cpu.gpr[reg::RAX] = 0xcafe_f00d;
        run_n(m, &mut cpu, &mut env, &code, IP, 1);
        assert_eq!(cpu.gpr[reg::RSP], 0xffff_fffc);
        assert_eq!(env.read(0xffc, 4), 0xcafe_f00d);
        run_n(m, &mut cpu, &mut env, &code, IP, 1);
        assert_eq!((cpu.gpr[reg::RSP], cpu.gpr[reg::RCX]), (0, 0xcafe_f00d));
    }

    #[test]
    fn sixteen_bit_stack_changes_only_sp() {
        let code = asm_at(16, IP, |a| {
            a.push(ax)?;
            a.push(ax)?;
            a.push(eax)?; // 66 50: four bytes
            a.pop(ecx)?;
            a.hlt()
        });
        let m = mode(16, 16, false);
        let rsp0 = 0xdead_beef_1234_0002;
        let (mut env, mut cpu) = (TestEnv::new(), cpu_at(IP, rsp0, [0; 6]));
        cpu.gpr[reg::RAX] = 0x8765_4321;
        run_n(m, &mut cpu, &mut env, &code, IP, 3);
        assert_eq!(cpu.gpr[reg::RSP], 0xdead_beef_1234_fffa);
        assert_eq!(env.read(0x0000, 2), 0x4321);
        assert_eq!(env.read(0xfffe, 2), 0x4321);
        assert_eq!(env.read(0xfffa, 4), 0x8765_4321);
        run_in(m, &mut cpu, &mut env, &code, IP);
        assert_eq!(cpu.gpr[reg::RCX], 0x8765_4321);
        assert_eq!(cpu.gpr[reg::RSP], 0xdead_beef_1234_fffe);
        // 32-bit code on a 16-bit stack: PUSH EAX moves SP by 4; POP wraps SP at 64 KiB.
        let code = asm_at(32, IP, |a| {
            a.push(eax)?;
            a.pop(ecx)
        });
        let (mut env, mut cpu) = (TestEnv::new(), cpu_at(IP, 0x5_0004, [0; 6]));
        cpu.gpr[reg::RAX] = 0x1357_9bdf;
        run_n(mode(32, 16, false), &mut cpu, &mut env, &code, IP, 1);
        assert_eq!(cpu.gpr[reg::RSP], 0x5_0000);
        assert_eq!(env.read(0, 4), 0x1357_9bdf);
        cpu.gpr[reg::RSP] = 0x5_fffc;
        env.write(0xfffc, 4, 0x2468_ace0);
        run_in(mode(32, 16, false), &mut cpu, &mut env, &code, IP);
        assert_eq!(
            (cpu.gpr[reg::RSP], cpu.gpr[reg::RCX]),
            (0x5_0000, 0x2468_ace0)
        );
    }

    #[test]
    fn push_immediates_by_operand_size() {
        // 16-bit code: push -1 (imm8 to 16), 66 push -1 (to 32), push 0x1234.
        let code = [0x6a, 0xff, 0x66, 0x6a, 0xff, 0x68, 0x34, 0x12];
        let (mut env, mut cpu) = (TestEnv::new(), cpu_at(IP, 0x100, [0; 6]));
        run_in(mode(16, 16, false), &mut cpu, &mut env, &code, IP);
        assert_eq!(cpu.gpr[reg::RSP], 0x100 - 8);
        assert_eq!(env.read(0xfe, 2), 0xffff);
        assert_eq!(env.read(0xfa, 4), 0xffff_ffff);
        assert_eq!(env.read(0xf8, 2), 0x1234);
    }

    #[test]
    fn pushad_popad_round_trip_and_popa_skips_sp() {
        let code = asm_at(32, IP, |a| {
            a.pushad()?;
            a.popad()?;
            a.hlt()
        });
        let m = mode(32, 32, false);
        let (mut env, mut cpu) = (TestEnv::new(), cpu_at(IP, 0x8000, [0; 6]));
        for (i, g) in cpu.gpr.iter_mut().enumerate().take(8) {
            if i != reg::RSP {
                *g = (0x1111_1111 * (i as u64 + 1)) | (0xabcd << 48);
            }
        }
        let before = cpu.gpr;
        run_n(m, &mut cpu, &mut env, &code, IP, 1);
        assert_eq!(cpu.gpr[reg::RSP], 0x8000 - 32);
        for (i, &b) in before.iter().enumerate().take(8) {
            let want = if i == reg::RSP {
                0x8000
            } else {
                b & 0xffff_ffff
            };
            assert_eq!(env.read(0x8000 - 4 * (i as u64 + 1), 4), want, "slot {i}");
        }
        // POPAD ignores the SP slot and zero-extends the rest.
        env.write(0x8000 - 20, 4, 0x5555);
        run_in(m, &mut cpu, &mut env, &code, IP);
        assert_eq!(cpu.gpr[reg::RSP], 0x8000);
        for (i, &b) in before.iter().enumerate().take(8) {
            if i != reg::RSP {
                assert_eq!(cpu.gpr[i], b & 0xffff_ffff, "reg {i}");
            }
        }
        // 16-bit: PUSHA / POPA merge into the 64-bit registers.
        let code = asm_at(16, IP, |a| {
            a.pusha()?;
            a.mov(ax, 0)?;
            a.mov(di, 0)?;
            a.popa()?;
            a.hlt()
        });
        let (mut env, mut cpu) = (TestEnv::new(), cpu_at(IP, 0x100, [0; 6]));
        cpu.gpr[reg::RAX] = 0xffff_0000_0000_1234;
        cpu.gpr[reg::RDI] = 0x4444_5678;
        run_in(mode(16, 16, false), &mut cpu, &mut env, &code, IP);
        assert_eq!(env.read(0x100 - 10, 2), 0x100, "SP slot");
        assert_eq!(cpu.gpr[reg::RAX], 0xffff_0000_0000_1234);
        assert_eq!(cpu.gpr[reg::RDI], 0x4444_5678);
        assert_eq!(cpu.gpr[reg::RSP], 0x100);
    }

    #[test]
    fn faulting_popad_changes_no_register() {
        // The last slot (EAX's) lies past the end of RAM: #PF, nothing written.
        let code = asm_at(32, IP, |a| a.popad());
        let ram = crate::semantics::system::test_env::RAM as u64;
        let (mut env, mut cpu) = (TestEnv::new(), cpu_at(IP, ram - 30, [0; 6]));
        cpu.gpr[reg::RDI] = 0x77;
        let before = cpu.gpr;
        assert_eq!(
            run_in(mode(32, 32, false), &mut cpu, &mut env, &code, IP),
            ExitReason::Exception
        );
        assert_eq!((cpu.gpr, cpu.rip, cpu.exc_vector), (before, IP, 14));
        // PUSHAD whose last store faults leaves ESP as it was.
        let code = asm_at(32, IP, |a| a.pushad());
        let mut cpu = cpu_at(IP, 28, [0; 6]);
        let r = run_in(mode(32, 32, false), &mut cpu, &mut env, &code, IP);
        assert_eq!((r, cpu.gpr[reg::RSP]), (ExitReason::Exception, 28));
    }

    #[test]
    fn enter_leave_32bit_and_16bit_stack() {
        // enter 8, 2 with a 32-bit stack: push EBP, copy [EBP-4], push the frame temp.
        let code = asm_at(32, IP, |a| {
            a.enter(8u32, 2u32)?;
            a.leave()?;
            a.hlt()
        });
        let m = mode(32, 32, true);
        let (mut env, mut cpu) = (TestEnv::new(), cpu_at(IP, 0x7000, [0, 0, 0x1000, 0, 0, 0]));
        cpu.gpr[reg::RBP] = 0x6000;
        env.write(0x1000 + 0x6000 - 4, 4, 0xaaaa);
        run_n(m, &mut cpu, &mut env, &code, IP, 1);
        assert_eq!(env.read(0x1000 + 0x7000 - 4, 4), 0x6000);
        assert_eq!(env.read(0x1000 + 0x7000 - 8, 4), 0xaaaa);
        assert_eq!(env.read(0x1000 + 0x7000 - 12, 4), 0x7000 - 4);
        assert_eq!(cpu.gpr[reg::RBP], 0x7000 - 4);
        assert_eq!(cpu.gpr[reg::RSP], 0x7000 - 12 - 8);
        run_in(m, &mut cpu, &mut env, &code, IP);
        assert_eq!((cpu.gpr[reg::RSP], cpu.gpr[reg::RBP]), (0x7000, 0x6000));
        // 16-bit stack: LEAVE takes SP from BP only; ENTER moves only SP.
        let code = asm_at(16, IP, |a| {
            a.enter(4u32, 0u32)?;
            a.leave()?;
            a.hlt()
        });
        let m = mode(16, 16, false);
        let (mut env, mut cpu) = (TestEnv::new(), cpu_at(IP, 0x9_0002, [0; 6]));
        cpu.gpr[reg::RBP] = 0x7_1234;
        run_n(m, &mut cpu, &mut env, &code, IP, 1);
        assert_eq!(env.read(0, 2), 0x1234);
        assert_eq!(cpu.gpr[reg::RBP], 0x7_0000);
        assert_eq!(cpu.gpr[reg::RSP], 0x9_fffc);
        run_in(m, &mut cpu, &mut env, &code, IP);
        assert_eq!((cpu.gpr[reg::RSP], cpu.gpr[reg::RBP]), (0x9_0002, 0x7_1234));
    }
}
