//! Data movement: MOV MOVZX MOVSX MOVSXD LEA XCHG CMPXCHG XADD, CBW..CQO, SETcc CMOVcc, NOPs,
//! CLD STD.
//!
//! Invariants:
//! - Only general-purpose registers are handled here; MOV to or from a segment, control or
//!   debug register is a hypercall (`crate::sensitive`), and unsupported if it reaches
//!   `mov`, before any effect.
//! - Every load (and the read of every source) happens before the first store, so faults are
//!   precise; register writes are pending as everywhere.
//! - CMOVcc always reads its source (a memory source faults even when the condition is
//!   false) and its 32-bit form always zero-extends the destination.
//! - CMPXCHG writes its memory destination in both outcomes (the old value on a mismatch),
//!   as hardware does; with a register destination only the register actually written is
//!   touched, so a 32-bit form zero-extends exactly that one. XCHG and LOCKed forms need no
//!   extra work on one vCPU.
//! - CLD/STD change DF in `CpuState::rflags`, where every non-arithmetic flag lives.
//!
//! Flags: CMPXCHG as CMP accumulator, destination; XADD as ADD; nothing else here writes
//! flags (all host-checked in the tests).
use iced_x86::{Mnemonic as M, OpKind, Register};

use crate::ctx::Ctx;
use crate::emit::Emitter;
use crate::exception::Exception;
use crate::flags::FlagOp;
use crate::helpers::Helper;
use crate::ir::{BinOp, Cmp, Ty};
use crate::state::{reg, rflags, OFF_RFLAGS};

/// Whether every register operand is a general-purpose register.
fn gpr_operands<E: Emitter>(ctx: &Ctx<E>) -> bool {
    let i = ctx.insn();
    (0..i.op_count()).all(|n| i.op_kind(n) != OpKind::Register || i.op_register(n).is_gpr())
}

/// The accumulator (AL/AX/EAX/RAX) of an operand size.
fn accumulator(ty: Ty) -> Register {
    match ty {
        Ty::I8 => Register::AL,
        Ty::I16 => Register::AX,
        Ty::I32 => Register::EAX,
        Ty::I64 => Register::RAX,
    }
}

/// MOV between GPRs, memory and immediates (immediates sign-extended to the destination).
pub fn mov<E: Emitter>(ctx: &mut Ctx<E>) {
    if !gpr_operands(ctx) {
        return ctx.unsupported();
    }
    let v = ctx.read_op(1);
    let ty = ctx.op_ty(0);
    let v = ctx.to_ty(v, ty, true);
    ctx.write_op(0, v);
}

/// MOVZX MOVSX MOVSXD.
pub fn mov_extend<E: Emitter>(ctx: &mut Ctx<E>) {
    let signed = ctx.insn().mnemonic() != M::Movzx;
    let ty = ctx.op_ty(0);
    let v = ctx.read_op(1);
    let v = ctx.to_ty(v, ty, signed);
    ctx.write_op(0, v);
}

/// LEA: the effective address (no segment base, no access), truncated to the destination.
pub fn lea<E: Emitter>(ctx: &mut Ctx<E>) {
    if !ctx.op_is_mem(1) || ctx.insn().op_kind(0) != OpKind::Register {
        return ctx.raise(Exception::InvalidOpcode);
    }
    let ea = ctx.op_ea();
    let ty = ctx.op_ty(0);
    let v = ctx.to_ty(ea, ty, false);
    ctx.write_op(0, v);
}

/// XCHG: register/register or register/memory (load, then store).
pub fn xchg<E: Emitter>(ctx: &mut Ctx<E>) {
    let a = ctx.read_op(0);
    let b = ctx.read_op(1);
    // Both values are read before either write; register writes are pending and merge with
    // each other (`xchg al, ah`), and a memory operand is stored before any register changes.
    ctx.write_op(0, b);
    ctx.write_op(1, a);
}

/// CMPXCHG r/m, r: compare the accumulator with the destination; equal: destination = source,
/// else accumulator = destination.
pub fn cmpxchg<E: Emitter>(ctx: &mut Ctx<E>) {
    let ty = ctx.op_ty(0);
    let acc_reg = accumulator(ty);
    let dest = ctx.read_op(0);
    let src = ctx.read_op(1);
    let acc = ctx.reg(acc_reg);
    let eq = ctx.cmp(Cmp::Eq, acc, dest);
    let ne = ctx.cmp(Cmp::Ne, acc, dest);
    if ctx.op_is_mem(0) {
        let v = ctx.select(eq, src, dest);
        ctx.write_op(0, v);
    } else {
        let r = ctx.insn().op0_register();
        ctx.set_reg_if(r, eq, src);
    }
    // Exclusive conditions: with the accumulator as destination only the write above happens.
    ctx.set_reg_if(acc_reg, ne, dest);
    let diff = ctx.bin(BinOp::Sub, acc, dest);
    ctx.set_flags_lazy(FlagOp::Sub, acc, dest, diff, None);
}

/// CMPXCHG8B m64 / CMPXCHG16B m128: compare rDX:rAX with the memory operand; if equal, ZF
/// is set and rCX:rBX is stored, else ZF is clear and the operand is loaded into rDX:rAX
/// (which is written only then, so a success leaves RAX/RDX's upper halves alone). The
/// operand is written in both cases, as one store (hardware writes the old value back on a
/// mismatch, so a read-only page faults either way). CMPXCHG16B needs a 16-byte aligned
/// operand (#GP(0)). The other flags are unchanged.
pub fn cmpxchg_wide<E: Emitter>(ctx: &mut Ctx<E>) {
    let wide = ctx.insn().mnemonic() == M::Cmpxchg16b;
    let ty = if wide { Ty::I64 } else { Ty::I32 };
    let a = ctx.op_addr();
    if wide {
        super::host::check_alignment(ctx, a, 16);
    }
    let (lo, hi) = if wide {
        let v = ctx.e.vload_mem(a);
        (
            ctx.e.vextract(v, crate::vector::Lanes::I64, 0),
            ctx.e.vextract(v, crate::vector::Lanes::I64, 1),
        )
    } else {
        let v = ctx.load(Ty::I64, a);
        let sh = ctx.c(Ty::I64, 32);
        let h = ctx.bin(BinOp::UShr, v, sh);
        (ctx.to_ty(v, Ty::I32, false), ctx.to_ty(h, Ty::I32, false))
    };
    let ax = ctx.gpr_ty(reg::RAX, ty);
    let dx = ctx.gpr_ty(reg::RDX, ty);
    let bx = ctx.gpr_ty(reg::RBX, ty);
    let cx = ctx.gpr_ty(reg::RCX, ty);
    let eq_lo = ctx.cmp(Cmp::Eq, lo, ax);
    let eq_hi = ctx.cmp(Cmp::Eq, hi, dx);
    let eq = ctx.bin(BinOp::And, eq_lo, eq_hi);
    let new_lo = ctx.select(eq, bx, lo);
    let new_hi = ctx.select(eq, cx, hi);
    if wide {
        let z = ctx.e.vconst(0);
        let v = ctx.e.vinsert(z, crate::vector::Lanes::I64, 0, new_lo);
        let v = ctx.e.vinsert(v, crate::vector::Lanes::I64, 1, new_hi);
        ctx.e.vstore_mem(a, v);
    } else {
        let l = ctx.to_ty(new_lo, Ty::I64, false);
        let h = ctx.to_ty(new_hi, Ty::I64, false);
        let sh = ctx.c(Ty::I64, 32);
        let h = ctx.bin(BinOp::Shl, h, sh);
        let v = ctx.bin(BinOp::Or, l, h);
        ctx.store(a, v);
    }
    let one = ctx.c(Ty::I8, 1);
    let ne = ctx.bin(BinOp::Xor, eq, one);
    let (rax, rdx) = if wide {
        (Register::RAX, Register::RDX)
    } else {
        (Register::EAX, Register::EDX)
    };
    ctx.set_reg_if(rax, ne, lo);
    ctx.set_reg_if(rdx, ne, hi);
    let z = ctx.to_ty(eq, Ty::I64, false);
    let sh = ctx.c(Ty::I64, 6);
    let zf = ctx.bin(BinOp::Shl, z, sh);
    ctx.update_flags(rflags::ZF, zf);
}

/// CLFLUSH m8: there are no caches to flush, but the address is checked as a byte read
/// would be (#PF, #GP), as the manuals say.
pub fn clflush<E: Emitter>(ctx: &mut Ctx<E>) {
    let a = ctx.op_addr();
    ctx.load(Ty::I8, a);
}

/// XADD r/m, r: source = destination, destination = sum; flags of the addition.
pub fn xadd<E: Emitter>(ctx: &mut Ctx<E>) {
    let dest = ctx.read_op(0);
    let src = ctx.read_op(1);
    let sum = ctx.bin(BinOp::Add, dest, src);
    // Source first: with one register as both operands, the sum wins (as on hardware).
    ctx.write_op(1, dest);
    ctx.write_op(0, sum);
    ctx.set_flags_lazy(FlagOp::Add, dest, src, sum, None);
}

/// CBW CWDE CDQE (sign-extend the accumulator in place) and CWD CDQ CQO (into rDX).
pub fn convert<E: Emitter>(ctx: &mut Ctx<E>) {
    let (from, to) = match ctx.insn().mnemonic() {
        M::Cbw => (Ty::I8, Ty::I16),
        M::Cwde => (Ty::I16, Ty::I32),
        M::Cdqe => (Ty::I32, Ty::I64),
        M::Cwd => (Ty::I16, Ty::I16),
        M::Cdq => (Ty::I32, Ty::I32),
        M::Cqo => (Ty::I64, Ty::I64),
        _ => return ctx.unsupported(),
    };
    let v = ctx.gpr_ty(reg::RAX, from);
    if from != to {
        let w = ctx.to_ty(v, to, true);
        ctx.set_gpr_ty(reg::RAX, to, w);
    } else {
        let sh = ctx.c(from, from.bits() as u64 - 1);
        let sign = ctx.bin(BinOp::SShr, v, sh);
        ctx.set_gpr_ty(reg::RDX, from, sign);
    }
}

/// XLAT: AL = the byte at seg:[rBX + zero-extended AL] (iced gives the operand as a memory
/// operand with base rBX and index AL, in the instruction's address size).
pub fn xlat<E: Emitter>(ctx: &mut Ctx<E>) {
    let v = ctx.read_op(0);
    ctx.set_reg(Register::AL, v);
}

/// ARPL r/m16, r16 (0x63 is MOVSXD in 64-bit mode): if the RPL (bits 1:0) of the
/// destination is below the source's, raise it to the source's and set ZF, else clear ZF.
/// Only bits 1:0 change, so a 32-bit register destination keeps its upper half. The
/// destination is written either way (with its own value when unchanged). Real mode's #UD is
/// not modelled: the block key does not tell real from 16-bit protected mode.
pub fn arpl<E: Emitter>(ctx: &mut Ctx<E>) {
    let d = ctx.read_op(0);
    let ty = ctx.e.ty(d);
    let s = ctx.read_op(1);
    let s = ctx.to_ty(s, ty, false);
    let three = ctx.c(ty, 3);
    let (drpl, srpl) = (ctx.bin(BinOp::And, d, three), ctx.bin(BinOp::And, s, three));
    let raise = ctx.cmp(Cmp::Ult, drpl, srpl);
    let keep = ctx.c(ty, !3 & ty.mask());
    let cleared = ctx.bin(BinOp::And, d, keep);
    let raised = ctx.bin(BinOp::Or, cleared, srpl);
    let v = ctx.select(raise, raised, d);
    ctx.write_op(0, v);
    let zf = ctx.to_ty(raise, Ty::I64, false);
    let six = ctx.c(Ty::I64, rflags::ZF.trailing_zeros() as u64);
    let zf = ctx.bin(BinOp::Shl, zf, six);
    ctx.update_flags(rflags::ZF, zf);
}

/// BOUND r, m (outside 64-bit mode): #BR unless lower <= r <= upper, signed, with the bounds
/// the two operand-sized words at the memory operand. Both bounds are read first (their
/// faults come before #BR).
pub fn bound<E: Emitter>(ctx: &mut Ctx<E>) {
    if !ctx.op_is_mem(1) {
        return ctx.raise(Exception::InvalidOpcode);
    }
    let ty = ctx.op_ty(0);
    let r = ctx.read_op(0);
    let at = ctx.op_addr();
    let lo = ctx.load(ty, at);
    let ea = ctx.op_ea();
    let size = ctx.c(Ty::I64, u64::from(ty.bytes()));
    let ea_hi = ctx.bin(BinOp::Add, ea, size);
    let ea_hi = ctx.wrap_ea(ea_hi);
    let at_hi = ctx.seg_base_add(ctx.insn().memory_segment(), ea_hi);
    let hi = ctx.load(ty, at_hi);
    let below = ctx.cmp(Cmp::Slt, r, lo);
    let above = ctx.cmp(Cmp::Sgt, r, hi);
    let out = ctx.bin(BinOp::Or, below, above);
    let vector = ctx.c(Ty::I64, u64::from(Exception::BoundRange.vector()));
    ctx.call(Helper::FaultIf, &[out, vector]);
}

/// NOP and its relatives (PAUSE, ENDBR, PREFETCH*, multi-byte NOP with a memory operand that
/// is never accessed).
pub fn nop<E: Emitter>(_ctx: &mut Ctx<E>) {}

/// CLD STD.
pub fn direction<E: Emitter>(ctx: &mut Ctx<E>) {
    let f = ctx.e.load_state(Ty::I64, OFF_RFLAGS);
    let f = if ctx.insn().mnemonic() == M::Std {
        let df = ctx.c(Ty::I64, rflags::DF);
        ctx.bin(BinOp::Or, f, df)
    } else {
        let keep = ctx.c(Ty::I64, !rflags::DF);
        ctx.bin(BinOp::And, f, keep)
    };
    ctx.e.store_state(OFF_RFLAGS, f);
}

/// SETcc r/m8: 1 if the condition holds, else 0.
pub fn setcc<E: Emitter>(ctx: &mut Ctx<E>) {
    let cc = ctx.insn().condition_code();
    let v = ctx.cond(cc);
    ctx.write_op(0, v);
}

/// CMOVcc r, r/m: the source is always read; the 32-bit form always zero-extends.
pub fn cmovcc<E: Emitter>(ctx: &mut Ctx<E>) {
    let src = ctx.read_op(1);
    let cc = ctx.insn().condition_code();
    let c = ctx.cond(cc);
    let old = ctx.read_op(0);
    let v = ctx.select(c, src, old);
    ctx.write_op(0, v);
}

#[cfg(test)]
mod tests {
    use crate::semantics::alu::probe::{compare, fuzz, fuzz_with, native, run_interp, Rng, MEM};
    use crate::state::{reg, rflags, ExitReason};

    #[test]
    fn mov_forms_match_host() {
        fuzz(native!("mov eax, ecx"), 100, 301);
        fuzz(native!("mov al, ch"), 100, 302);
        fuzz(native!("mov ah, byte ptr [rdi]"), 100, 303);
        fuzz(native!("mov rax, -1"), 20, 304);
        fuzz(native!("mov qword ptr [rdi], -2"), 20, 305);
        fuzz(native!("mov eax, 0x80000000"), 20, 306);
        fuzz(native!("movabs rax, 0x123456789abcdef0"), 20, 307);
        fuzz(native!("mov r8w, word ptr [rdi + 6]"), 100, 308);
        fuzz(native!("mov byte ptr [rdi + 3], sil"), 100, 309);
        fuzz(native!("mov dword ptr [rdi], 0xffffffff"), 20, 310);
        fuzz(native!("mov r12, qword ptr [rdi - 16]"), 100, 311);
        fuzz(native!("mov word ptr [rdi], -5"), 20, 312);
        fuzz(native!("mov bh, 0x80"), 20, 313);
    }

    #[test]
    fn mov_with_system_registers_is_a_hypercall() {
        // mov eax, ds ; mov ds, ax ; mov rax, cr0 ; mov dr7, rax: the sensitive-instruction
        // table routes them to the runtime before `mov` sees them.
        for code in [
            &[0x8C, 0xD8][..],
            &[0x8E, 0xD8],
            &[0x0F, 0x20, 0xC0],
            &[0x0F, 0x23, 0xF8],
        ] {
            let insn = iced_x86::Decoder::new(64, code, 0).decode();
            assert!(crate::sensitive::lookup(&insn).is_some(), "{code:02x?}");
        }
    }

    #[test]
    fn extensions_match_host() {
        fuzz(native!("movzx eax, cl"), 100, 321);
        fuzz(native!("movzx rax, word ptr [rdi]"), 100, 322);
        fuzz(native!("movzx si, byte ptr [rdi]"), 100, 323);
        fuzz(native!("movzx ecx, ah"), 100, 324);
        fuzz(native!("movsx ax, bh"), 100, 325);
        fuzz(native!("movsx rcx, byte ptr [rdi]"), 100, 326);
        fuzz(native!("movsx r9d, r10w"), 100, 327);
        fuzz(native!("movsxd rax, ecx"), 100, 328);
        fuzz(native!("movsxd rdx, dword ptr [rdi]"), 100, 329);
        fuzz(native!(".byte 0x63, 0xc1"), 100, 330); // movsxd eax, ecx (no REX.W)
    }

    #[test]
    fn lea_matches_host() {
        fuzz(native!("lea rax, [rcx + rdx*4 + 8]"), 100, 341);
        fuzz(native!("lea eax, [rcx + rdx*8 - 1]"), 100, 342);
        fuzz(native!("lea ax, [rbx + rsi]"), 100, 343);
        fuzz(native!("lea r8d, [ecx + edx*2 + 0x7fffffff]"), 100, 344);
        fuzz(native!("lea rsi, [r13 + 0x40]"), 100, 345);
        fuzz(native!("lea rcx, [rdx*2]"), 100, 346);
        fuzz(native!("lea rbx, fs:[rax + 1]"), 100, 347);
        fuzz(native!("lea rax, [ecx + edx*4 + 0x7fffffff]"), 100, 348);
    }

    #[test]
    fn lea_rip_relative_is_the_absolute_address() {
        // lea rax, [rip + 0x10] at 0x1000 (7 bytes) = 0x1017
        let (exit, out, _) = run_interp(&[0x48, 0x8D, 0x05, 0x10, 0, 0, 0], [0; 16], 0, &[]);
        assert_eq!((exit, out.gpr[0]), (ExitReason::Jump, 0x1017));
    }

    #[test]
    fn xchg_matches_host() {
        fuzz(native!("xchg eax, ecx"), 100, 351);
        fuzz(native!("xchg al, ah"), 100, 352);
        fuzz(native!("xchg r8w, r9w"), 100, 353);
        fuzz(native!("xchg qword ptr [rdi], rax"), 100, 354);
        fuzz(native!("xchg byte ptr [rdi + 1], bl"), 100, 355);
        fuzz(native!("xchg dx, word ptr [rdi]"), 100, 356);
        fuzz(native!(".byte 0x87, 0xc0"), 50, 357); // xchg eax, eax: zero-extends
        fuzz(native!(".byte 0x41, 0x90"), 50, 358); // xchg r8d, eax
        fuzz(native!("xchg rax, rcx"), 50, 359);
    }

    /// Make the accumulator equal to the destination half of the time.
    fn maybe_equal(dest: Option<usize>) -> impl FnMut(&mut [u64; 16], &mut [u8], &mut Rng) {
        move |g, mem, rng| {
            if rng.next().is_multiple_of(2) {
                return;
            }
            let v = match dest {
                Some(r) => g[r],
                None => u64::from_le_bytes(mem[MEM / 2..MEM / 2 + 8].try_into().unwrap()),
            };
            g[reg::RAX] = v ^ (rng.next() & 0xFFFF_FFFF_0000_0000 & rng.next());
            if rng.next().is_multiple_of(2) {
                g[reg::RAX] = v;
            }
        }
    }

    #[test]
    fn cmpxchg_matches_host() {
        use crate::state::reg::{RAX, RCX};
        fuzz_with(
            native!("cmpxchg ecx, edx"),
            300,
            361,
            maybe_equal(Some(RCX)),
        );
        fuzz_with(native!("cmpxchg cl, dl"), 300, 362, maybe_equal(Some(RCX)));
        fuzz_with(native!("cmpxchg r8w, r9w"), 300, 363, maybe_equal(Some(8)));
        fuzz_with(
            native!("cmpxchg rcx, rdx"),
            300,
            364,
            maybe_equal(Some(RCX)),
        );
        fuzz_with(
            native!("lock cmpxchg dword ptr [rdi], esi"),
            300,
            365,
            maybe_equal(None),
        );
        fuzz_with(
            native!("cmpxchg qword ptr [rdi], rbx"),
            300,
            366,
            maybe_equal(None),
        );
        fuzz_with(
            native!("cmpxchg byte ptr [rdi], ah"),
            300,
            367,
            maybe_equal(None),
        );
        fuzz_with(
            native!("lock cmpxchg word ptr [rdi], r11w"),
            300,
            368,
            maybe_equal(None),
        );
        fuzz_with(
            native!("cmpxchg eax, ecx"),
            100,
            369,
            maybe_equal(Some(RAX)),
        );
        fuzz_with(
            native!("cmpxchg ecx, eax"),
            100,
            370,
            maybe_equal(Some(RCX)),
        );
        fuzz_with(native!("cmpxchg ah, al"), 100, 371, maybe_equal(None));
    }

    #[test]
    fn xadd_matches_host() {
        fuzz(native!("xadd eax, ecx"), 200, 381);
        fuzz(native!("xadd byte ptr [rdi], bl"), 200, 382);
        fuzz(native!("lock xadd qword ptr [rdi], rax"), 200, 383);
        fuzz(native!("xadd eax, eax"), 100, 384);
        fuzz(native!("xadd ah, al"), 100, 385);
        fuzz(native!("xadd r9w, r10w"), 200, 386);
    }

    #[test]
    fn sign_conversions_match_host() {
        fuzz(native!("cbw"), 100, 391);
        fuzz(native!("cwde"), 100, 392);
        fuzz(native!("cdqe"), 100, 393);
        fuzz(native!("cwd"), 100, 394);
        fuzz(native!("cdq"), 100, 395);
        fuzz(native!("cqo"), 100, 396);
    }

    #[test]
    fn cld_std_and_nops_match_host() {
        let mut rng = Rng(7);
        for run in [
            native!("cld"),
            native!("std"),
            native!("nop dword ptr [rax + 8]"),
        ] {
            for df in [0, rflags::DF] {
                let (g, f) = rng.state();
                compare(run, g, f | df, &[]).unwrap();
            }
        }
        fuzz(native!("pause"), 10, 397);
        fuzz(native!("nop"), 10, 398);
        fuzz(native!("xchg ax, ax"), 10, 399);
    }

    #[test]
    fn setcc_matches_host() {
        for run in [
            native!("seto al"),
            native!("setno bl"),
            native!("setb ch"),
            native!("setae r9b"),
            native!("sete byte ptr [rdi]"),
            native!("setne dl"),
            native!("setbe sil"),
            native!("seta ah"),
            native!("sets al"),
            native!("setns byte ptr [rdi + 1]"),
            native!("setp cl"),
            native!("setnp dh"),
            native!("setl r15b"),
            native!("setge al"),
            native!("setle bh"),
            native!("setg r10b"),
        ] {
            fuzz(run, 64, 401);
        }
    }

    #[test]
    fn cmovcc_matches_host() {
        for run in [
            native!("cmovo eax, ecx"),
            native!("cmovno rax, qword ptr [rdi]"),
            native!("cmovb cx, dx"),
            native!("cmovae r9d, dword ptr [rdi]"),
            native!("cmove rsi, rbx"),
            native!("cmovne eax, ebx"),
            native!("cmovbe r12w, word ptr [rdi]"),
            native!("cmova edx, r8d"),
            native!("cmovs rax, rcx"),
            native!("cmovns ecx, dword ptr [rdi]"),
            native!("cmovp ax, bx"),
            native!("cmovnp r14, r13"),
            native!("cmovl esi, edx"),
            native!("cmovge rbx, qword ptr [rdi]"),
            native!("cmovle ecx, eax"),
            native!("cmovg dx, word ptr [rdi]"),
        ] {
            fuzz(run, 64, 411);
        }
    }

    #[test]
    fn cmov_memory_source_faults_even_if_false() {
        // cmovo rax, [rbx] with OF = 0 and rbx outside RAM: #PF, nothing written.
        let mut g = [0u64; 16];
        g[reg::RBX] = 0x10_0000;
        let (exit, _, cpu) = run_interp(&[0x48, 0x0F, 0x40, 0x03], g, 0, &[]);
        assert_eq!(
            (exit, cpu.exc_vector, cpu.rip),
            (ExitReason::Exception, 14, 0x1000)
        );
    }

    /// Conditions read straight from a lazy descriptor within one block (the JIT's path).
    #[test]
    fn conditions_after_flag_writers_in_one_block_match_host() {
        for run in [
            native!("cmp eax, ecx; setl dl; setb dh; setle bl; setbe bh; seto sil; setp r8b"),
            native!("cmp al, cl; setg dl; seta dh; setge bl; setae bh; sets sil; setz r8b"),
            native!("cmp rax, rcx; cmovl rdx, rbx; cmova rsi, rbx; cmovge r8, rbx"),
            native!("test esi, r8d; setg al; setle cl; setl dl; setge bl; seta r9b; setbe r10b"),
            native!("test al, bl; sets cl; setns dl; setz r9b; setp r10b; seto r11b"),
            native!("and ax, bx; setg cl; setle dl; setl r9b; setb r10b"),
            native!("sub rax, rbx; cmovbe rcx, rdx; setg r8b; setl r9b; sete r10b"),
            native!("add al, bl; seto cl; setc ch; sets dl; setz dh; setp r9b; setl r10b"),
            native!("inc ecx; cmovl eax, edx; setc bl; setz bh; seto r9b; setle r10b"),
            native!("dec r9w; setbe al; setg bl; sets cl; seto dl"),
            native!("xor eax, eax; sete dl; setbe dh; setl bl; setp bh"),
            native!("neg rcx; setc dl; seto dh; setl bl; setg bh; seta sil"),
            native!("adc eax, ecx; setb dl; setg bl; sbb esi, r8d; seta dh; setle bh"),
            native!("cmpxchg ecx, edx; setl bl; setz bh; setbe r9b"),
            native!("xadd eax, ecx; setl bl; setc bh; seto r9b"),
            native!("bsf eax, ecx; setz dl; setp dh; setc bl; sets bh"),
            native!("popcnt eax, ecx; setz dl; setl dh; setle bl"),
            native!("bt eax, ecx; setc dl; setz dh; setl bl"),
            native!("imul eax, ecx; seto dl; setc dh; setz bl; setl bh"),
            native!("mul ecx; seto bl; setz bh; setp sil"),
            native!("stc; cmc; setc dl; setae dh"),
            native!("sahf; setg dl; setz dh; lahf"),
        ] {
            fuzz(run, 200, 421);
        }
    }

    /// Guest code is hostile: every encoding of these families that iced decodes, in every
    /// mode, must run in the interpreter without a panic (faults and #UD are fine) and
    /// translate in the JIT without an error (checked on a sample: Cranelift is slower).
    #[test]
    fn hostile_encodings_never_panic() {
        use crate::decode::decode_block;
        use crate::interp::step;
        use crate::semantics::alu::probe::{FlatRam, JitRunner};
        use crate::state::CpuState;
        use crate::Mode;
        use iced_x86::Mnemonic as M;
        let mine = |m: M| {
            matches!(
                m,
                M::Add
                    | M::Adc
                    | M::Sub
                    | M::Sbb
                    | M::Cmp
                    | M::And
                    | M::Or
                    | M::Xor
                    | M::Test
                    | M::Inc
                    | M::Dec
                    | M::Neg
                    | M::Not
                    | M::Clc
                    | M::Stc
                    | M::Cmc
                    | M::Lahf
                    | M::Sahf
                    | M::Mul
                    | M::Imul
                    | M::Div
                    | M::Idiv
                    | M::Bt
                    | M::Bts
                    | M::Btr
                    | M::Btc
                    | M::Bsf
                    | M::Bsr
                    | M::Popcnt
                    | M::Lzcnt
                    | M::Tzcnt
                    | M::Bswap
                    | M::Mov
                    | M::Movzx
                    | M::Movsx
                    | M::Movsxd
                    | M::Lea
                    | M::Xchg
                    | M::Cmpxchg
                    | M::Xadd
                    | M::Cbw
                    | M::Cwde
                    | M::Cdqe
                    | M::Cwd
                    | M::Cdq
                    | M::Cqo
                    | M::Nop
                    | M::Cld
                    | M::Std
            ) || format!("{m:?}").starts_with("Set")
                || format!("{m:?}").starts_with("Cmov")
        };
        const PREFIXES: [u8; 8] = [0x66, 0x67, 0xF0, 0xF2, 0xF3, 0x48, 0x41, 0x64];
        let mut rng = Rng(0xBAD);
        let mut ram = FlatRam(vec![0; 0x10000]);
        let mut seen = 0u32;
        let mut jit = JitRunner::new();
        for i in 0..200_000 {
            let mut code = Vec::new();
            while rng.next().is_multiple_of(3) {
                code.push(PREFIXES[(rng.next() % 8) as usize]);
            }
            if rng.next().is_multiple_of(3) {
                code.push(0x0F);
            }
            code.extend((0..15).map(|_| rng.next() as u8));
            let bitness = [64, 64, 32, 16][i % 4];
            let mode = Mode::new(bitness, 0);
            let block = decode_block(&code, 0x1000, mode, 1);
            let Some(insn) = block.insns.first() else {
                continue;
            };
            if !mine(insn.mnemonic()) {
                continue;
            }
            seen += 1;
            let (g, f) = rng.state();
            let mut cpu = CpuState {
                gpr: g,
                rflags: f | rflags::FIXED,
                ..CpuState::default()
            };
            // Small addresses half of the time so memory forms reach RAM.
            if rng.next().is_multiple_of(2) {
                for r in cpu.gpr.iter_mut() {
                    *r &= 0x7FFF;
                }
            }
            step(&mut cpu, &mut ram, insn, mode);
            if seen.is_multiple_of(16) {
                let r = jit.translate(&block, mode);
                assert!(r.is_ok(), "{code:02x?} in {bitness}-bit mode: {r:?}");
            }
        }
        assert!(seen > 30_000, "only {seen} instructions of these families");
    }

    /// LOCK is only valid on read-modify-write memory forms; elsewhere it is #UD (the decoder
    /// marks those encodings invalid).
    #[test]
    fn misplaced_lock_is_invalid_opcode() {
        // lock add eax, ebx ; lock cmpxchg eax, ecx ; lock xchg eax, ecx ; lock bt eax, ecx ;
        // lock mov [rdi], eax ; lock test [rdi], eax ; lock cmp [rdi], al ; lock bt [rdi], eax
        for code in [
            &[0xF0u8, 0x01, 0xD8][..],
            &[0xF0, 0x0F, 0xB1, 0xC8],
            &[0xF0, 0x87, 0xC8],
            &[0xF0, 0x0F, 0xA3, 0xC8],
            &[0xF0, 0x89, 0x07],
            &[0xF0, 0x85, 0x07],
            &[0xF0, 0x38, 0x07],
            &[0xF0, 0x0F, 0xA3, 0x07],
        ] {
            let (exit, _, cpu) = run_interp(code, [0; 16], 0, &[]);
            assert_eq!(
                (exit, cpu.exc_vector),
                (ExitReason::Exception, 6),
                "{code:02x?}"
            );
        }
    }
}

/// Addressing outside 64-bit mode: 16- and 32-bit effective addresses and their wrap, the
/// default segment by base register, overrides, and linear addresses wrapping at 4 GiB.
#[cfg(test)]
mod legacy_tests {
    use iced_x86::code_asm::*;

    use crate::semantics::stack::legacy_env::*;
    use crate::semantics::system::test_env::{asm, TestEnv};
    use crate::state::{reg, CpuState, ExitReason};
    use crate::Mode;

    const IP: u64 = 0x1000;

    /// Run `code` in `m` from a CPU with segment `bases` and registers `set`.
    fn go(
        m: Mode,
        code: &[u8],
        bases: [u64; 6],
        set: &[(usize, u64)],
        env: &mut TestEnv,
    ) -> CpuState {
        let mut cpu = cpu_at(IP, 0x8000, bases);
        for &(r, v) in set {
            cpu.gpr[r] = v;
        }
        assert_eq!(
            run_in(m, &mut cpu, env, code, IP),
            ExitReason::Jump,
            "{code:02x?}"
        );
        cpu
    }

    #[test]
    fn sixteen_bit_addresses_wrap_at_64k() {
        let m = mode(16, 16, true);
        let bases = [0, 0, 0x3000, 0x500, 0, 0];
        let mut env = TestEnv::new();
        env.write(0xffff, 1, 0x77);
        env.write(0x3008, 2, 0x1234);
        env.write(0x500, 2, 0xabcd);
        // [bx+si-1] with BX = SI = 0: EA 0xffff.
        let code = asm_at(16, IP, |a| a.mov(al, byte_ptr(bx + si - 1)));
        let cpu = go(
            m,
            &code,
            [0; 6],
            &[(reg::RBX, 0x1_0000), (reg::RSI, 0)],
            &mut env,
        );
        assert_eq!(cpu.gpr[reg::RAX] & 0xff, 0x77);
        // [bp+si+0x10]: SS by default; (0xfff0 + 8 + 0x10) mod 64 KiB = 8.
        let code = asm_at(16, IP, |a| a.mov(ax, word_ptr(bp + si + 0x10)));
        let cpu = go(
            m,
            &code,
            bases,
            &[(reg::RBP, 0xfff0), (reg::RSI, 8)],
            &mut env,
        );
        assert_eq!(cpu.gpr[reg::RAX] & 0xffff, 0x1234);
        // [bx+di+2] = 0xffff + 0xffff + 2 mod 64 KiB = 0: DS base 0x500.
        let code = asm_at(16, IP, |a| a.mov(cx, word_ptr(bx + di + 2)));
        let cpu = go(
            m,
            &code,
            bases,
            &[(reg::RBX, 0xffff), (reg::RDI, 0xffff)],
            &mut env,
        );
        assert_eq!(cpu.gpr[reg::RCX] & 0xffff, 0xabcd);
        // LEA: the wrapped EA, no base.
        let code = asm_at(16, IP, |a| a.lea(ax, word_ptr(bx + si + 5)));
        let cpu = go(
            m,
            &code,
            bases,
            &[(reg::RBX, 0xfffe), (reg::RSI, 0), (reg::RAX, 0)],
            &mut env,
        );
        assert_eq!(cpu.gpr[reg::RAX], 3);
        // 66h 67h: a 32-bit load through a 32-bit address in 16-bit code (SS by ESP).
        let code = [0x66, 0x67, 0x8b, 0x44, 0x24, 0x04]; // mov eax, [esp+4]
        let cpu = go(
            m,
            &code,
            [0, 0, 0x10, 0, 0, 0],
            &[(reg::RSP, 0x2ff4)],
            &mut env,
        );
        assert_eq!(cpu.gpr[reg::RAX], 0x1234);
    }

    #[test]
    fn thirty_two_bit_addresses_and_segment_bases() {
        let mut env = TestEnv::new();
        env.write(0x1000, 4, 0x1111_1111);
        env.write(0x2008, 4, 0x2222_2222);
        env.write(0x3000, 4, 0x3333_3333);
        env.write(0x4000, 4, 0x4444_4444);
        let bases = [0, 0, 0x2000, 0x1001, 0x3000, 0];
        // [eax-1] with EAX = 0: EA 0xffff_ffff; + DS base 0x1001 wraps to 0x1000.
        let code = asm_at(32, IP, |a| a.mov(ecx, dword_ptr(eax - 1)));
        let m = mode(32, 32, true);
        let cpu = go(m, &code, bases, &[(reg::RAX, 0xdead_0000_0000)], &mut env);
        assert_eq!(cpu.gpr[reg::RCX], 0x1111_1111);
        // [esp+8] and [ebp+8] default to SS.
        let code = asm_at(32, IP, |a| {
            a.mov(ecx, dword_ptr(esp + 8))?;
            a.mov(edx, dword_ptr(ebp + 8))
        });
        let cpu = go(m, &code, bases, &[(reg::RSP, 0), (reg::RBP, 0)], &mut env);
        assert_eq!(
            (cpu.gpr[reg::RCX], cpu.gpr[reg::RDX]),
            (0x2222_2222, 0x2222_2222)
        );
        // Without `seg_bases` only FS and GS add theirs.
        let m = mode(32, 32, false);
        let code = asm_at(32, IP, |a| {
            a.mov(ecx, dword_ptr(ebx))?;
            a.mov(edx, dword_ptr(ebx).fs())
        });
        let cpu = go(m, &code, bases, &[(reg::RBX, 0x1000)], &mut env);
        assert_eq!(
            (cpu.gpr[reg::RCX], cpu.gpr[reg::RDX]),
            (0x1111_1111, 0x4444_4444)
        );
        // 67h: 16-bit addressing in 32-bit code; LEA with a 32-bit EA wraps at 4 GiB.
        let code = [0x67, 0x8b, 0x00]; // mov eax, [bx+si]
        let cpu = go(
            m,
            &code,
            bases,
            &[(reg::RBX, 0x1_0f00), (reg::RSI, 0x100)],
            &mut env,
        );
        assert_eq!(cpu.gpr[reg::RAX], 0x1111_1111);
        let code = asm_at(32, IP, |a| a.lea(eax, dword_ptr(ebx + esi * 4 + 8)));
        let cpu = go(
            m,
            &code,
            bases,
            &[(reg::RBX, 0xffff_fff0), (reg::RSI, 5)],
            &mut env,
        );
        assert_eq!(cpu.gpr[reg::RAX], 0xc);
        // 64-bit mode: the DS base is ignored, FS's is added without wrapping.
        let code = asm(|a| {
            a.mov(ecx, dword_ptr(rbx))?;
            a.mov(edx, dword_ptr(rbx).fs())
        });
        let m = Mode {
            seg_bases: true,
            ..Mode::LONG64_CPL0
        };
        let cpu = go(m, &code, bases, &[(reg::RBX, 0x1000)], &mut env);
        assert_eq!(
            (cpu.gpr[reg::RCX], cpu.gpr[reg::RDX]),
            (0x1111_1111, 0x4444_4444)
        );
    }

    #[test]
    fn short_inc_dec_forms_outside_64bit_mode() {
        // 40 = inc eax, 4b = dec ebx (32-bit); 66 40 = inc ax.
        let mut env = TestEnv::new();
        let m = mode(32, 32, false);
        let code = [0x40, 0x4b, 0x66, 0x41];
        let cpu = go(
            m,
            &code,
            [0; 6],
            &[(reg::RAX, 0xffff_ffff), (reg::RBX, 0), (reg::RCX, 0x1_ffff)],
            &mut env,
        );
        assert_eq!(cpu.gpr[reg::RAX], 0);
        assert_eq!(cpu.gpr[reg::RBX], 0xffff_ffff);
        assert_eq!(cpu.gpr[reg::RCX], 0x1_0000);
    }
}
