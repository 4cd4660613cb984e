//! MOVS STOS LODS CMPS SCAS in every size (B/W/D/Q), with REP, REPE/REPZ and REPNE/REPNZ.
//!
//! Invariants:
//! - One iteration is one `body`; `Ctx::rep` runs it under the prefix, counting rCX at the
//!   address size and committing each iteration, so a fault in iteration k leaves
//!   the state after k-1 with RIP at the instruction.
//! - A repeated instruction with a 32-bit address size (67h in 64-bit mode, or 32-bit code,
//!   whose upper register halves a later return to 64-bit mode sees) that runs zero
//!   iterations, or faults in its first, follows the vendor (checked natively; a
//!   translation-time choice, [`Ctx::vendor`]): AMD writes nothing, not even the
//!   zero-extension of ECX; Intel zero-extends ECX into RCX, and for MOVS also ESI and EDI,
//!   for STOS EDI (LODS, CMPS and SCAS: ECX only), before the first iteration, whatever the
//!   count.
//! - Within an iteration every load precedes the store, and RSI/RDI/RCX are pending.
//! - Addresses are rSI/rDI at the address size (SI/DI, ESI/EDI or RSI/RDI, from the
//!   decoder's operand kinds: the code size, or the other one with 67h); their updates wrap
//!   at that size, a 32-bit one zero-extending into the 64-bit register, a 16-bit one
//!   merging. The count is CX/ECX/RCX by the same rule. The source is DS or the override,
//!   the destination always ES; each adds its segment's base as `Ctx::seg_base_add` says
//!   (64-bit mode: only an FS/GS source override has one).
//! - The step is +size, or -size when DF is set (read from `CpuState::rflags`, where CLD/STD
//!   and POPF keep it).
//! - CMPS sets the flags of `[RSI] - [RDI]`, SCAS those of `accumulator - [RDI]` (lazily, as
//!   SUB); the others leave the flags alone. No flag is undefined.
//! - F2 on MOVS/STOS/LODS repeats like F3 (as the host does); INS/OUTS are unsupported.
//! - A repeated instruction counts one instruction per iteration (one if it runs none), as
//!   QEMU counts it, and stops between two iterations, restartable with RIP at it, once
//!   `icount` reaches `icount_limit` (`Ctx::rep`): a count of 2^64 - 1 cannot hold off a
//!   slice end, an interrupt, an instruction limit or a stop.
//! - With a 64-bit address size, MOVS STOS CMPS SCAS first call [`Helper::RepString`] (the
//!   bulk fast path, `bulk`): it does whole iterations exactly as the loop would, never
//!   faulting, within the budget, leaving at least one iteration (for CMPS/SCAS one that
//!   cannot fault and sets the flags); RCX, RSI/RDI and `icount` advance by its count and
//!   the loop does the rest. Engines without the helper (it returns 0) lose nothing.
use iced_x86::{Instruction, Mnemonic as M, Register};

use crate::ctx::{Ctx, Rep};
use crate::emit::Emitter;
use crate::flags::{FlagOp, Vendor};
use crate::helpers::{Helper, RepString, StringOp};
use crate::ir::{BinOp, Ty};
use crate::state::{self, reg};

/// The string operations.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Movs,
    Stos,
    Lods,
    Cmps,
    Scas,
}

/// Every string instruction (the dispatch sends those with `is_string_instruction`).
pub fn string_op<E: Emitter>(ctx: &mut Ctx<E>) {
    let insn = *ctx.insn();
    let Some((op, ty)) = classify(&insn) else {
        return ctx.unsupported();
    };
    let sets_flags = matches!(op, Op::Cmps | Op::Scas);
    let rep = match (insn.has_repe_prefix(), insn.has_repne_prefix(), sets_flags) {
        (true, _, true) => Rep::Repe,
        (_, true, true) => Rep::Repne,
        (true, _, false) | (_, true, false) => Rep::Rep,
        _ => Rep::None,
    };
    let aty = ctx.addr_ty();
    // The per-iteration step, computed once (DF cannot change inside the instruction).
    let df = ctx.df();
    let up = ctx.c(aty, ty.bytes() as u64);
    let down = ctx.c(aty, (ty.bytes() as u64).wrapping_neg());
    let step = ctx.select(df, down, up);
    let seg = insn.memory_segment();
    if rep != Rep::None && aty == Ty::I32 && ctx.vendor() == Vendor::Intel {
        let extended: &[usize] = match op {
            Op::Movs => &[reg::RCX, reg::RSI, reg::RDI],
            Op::Stos => &[reg::RCX, reg::RDI],
            Op::Lods | Op::Cmps | Op::Scas => &[reg::RCX],
        };
        // Every iteration writes these at 32 bits anyway; `rep` commits them before the
        // first, so they stay zero-extended after zero iterations or a first-iteration fault.
        for &r in extended {
            let v = ctx.gpr_ty(r, Ty::I32);
            ctx.set_gpr_ty(r, Ty::I32, v);
        }
    }
    if rep != Rep::None && aty == Ty::I64 {
        bulk(ctx, op, ty, rep, df, step, seg);
    }
    ctx.rep(rep, sets_flags, |ctx| {
        iteration(ctx, op, ty, aty, step, seg)
    });
}

/// The bulk fast path of a repeated instruction with a 64-bit address size (no segment
/// limits, no wrapping but at 2^64): [`Helper::RepString`] does as many whole iterations as
/// it can prove plain, at memory speed; RCX, RSI/RDI and `icount` then advance by their
/// number exactly as that many turns of the loop would have advanced them, and the loop in
/// `Ctx::rep` does the rest (at least one iteration: for CMPS/SCAS the one that sets the
/// flags), so every corner case keeps the loop's behaviour. `df` is DF as an `I8`, `step`
/// the signed element size (`I64`).
fn bulk<E: Emitter>(
    ctx: &mut Ctx<E>,
    op: Op,
    ty: Ty,
    rep: Rep,
    df: E::Value,
    step: E::Value,
    seg: Register,
) {
    let sop = match op {
        Op::Movs => StringOp::Movs,
        Op::Stos => StringOp::Stos,
        Op::Cmps => StringOp::Cmps,
        Op::Scas => StringOp::Scas,
        // Only the last element of REP LODS is seen: nothing to gain.
        Op::Lods => return,
    };
    let uses_src = matches!(op, Op::Movs | Op::Cmps);
    let desc = RepString {
        op: sop,
        size: ty.bytes() as u8,
        while_equal: match rep {
            Rep::Repe => Some(true),
            Rep::Repne => Some(false),
            Rep::Rep | Rep::None => None,
        },
        backward: false,
    }
    .encode();
    let src = if uses_src {
        let ea = index(ctx, reg::RSI, Ty::I64);
        ctx.seg_base_add(seg, ea)
    } else {
        ctx.c(Ty::I64, 0)
    };
    let dst = dst_addr(ctx, Ty::I64);
    let rcx = ctx.gpr_ty(reg::RCX, Ty::I64);
    if matches!(op, Op::Stos | Op::Scas) {
        let rax = ctx.gpr_ty(reg::RAX, Ty::I64);
        ctx.e.store_state(state::OFF_HELPER_OUT, rax);
    }
    let icount = ctx.e.load_state(Ty::I64, state::OFF_ICOUNT);
    ctx.e.store_state(state::OFF_HELPER_OUT + 8, icount);
    let df = ctx.to_ty(df, Ty::I64, false);
    let sh = ctx.c(Ty::I64, RepString::BACKWARD.trailing_zeros().into());
    let backward = ctx.bin(BinOp::Shl, df, sh);
    let desc = ctx.c(Ty::I64, desc);
    let desc = ctx.bin(BinOp::Or, desc, backward);
    ctx.e.store_state(state::OFF_HELPER_OUT + 16, desc);
    let n = ctx.call(Helper::RepString, &[src, dst, rcx]);
    let rcx = ctx.bin(BinOp::Sub, rcx, n);
    ctx.set_gpr_ty(reg::RCX, Ty::I64, rcx);
    let delta = ctx.bin(BinOp::Mul, n, step);
    if uses_src {
        advance(ctx, reg::RSI, Ty::I64, delta);
    }
    advance(ctx, reg::RDI, Ty::I64, delta);
    // Iterations 2..=n+1 are counted here, as the loop counts each iteration after the
    // first when it decides to run it.
    let icount = ctx.e.load_state(Ty::I64, state::OFF_ICOUNT);
    let icount = ctx.bin(BinOp::Add, icount, n);
    ctx.e.store_state(state::OFF_ICOUNT, icount);
}

/// The operation and element size of a string instruction; `None` for anything else
/// (INS/OUTS, or an SSE MOVSD/CMPSD that reached us by mistake).
fn classify(insn: &Instruction) -> Option<(Op, Ty)> {
    if !insn.is_string_instruction() {
        return None;
    }
    Some(match insn.mnemonic() {
        M::Movsb => (Op::Movs, Ty::I8),
        M::Movsw => (Op::Movs, Ty::I16),
        M::Movsd => (Op::Movs, Ty::I32),
        M::Movsq => (Op::Movs, Ty::I64),
        M::Stosb => (Op::Stos, Ty::I8),
        M::Stosw => (Op::Stos, Ty::I16),
        M::Stosd => (Op::Stos, Ty::I32),
        M::Stosq => (Op::Stos, Ty::I64),
        M::Lodsb => (Op::Lods, Ty::I8),
        M::Lodsw => (Op::Lods, Ty::I16),
        M::Lodsd => (Op::Lods, Ty::I32),
        M::Lodsq => (Op::Lods, Ty::I64),
        M::Cmpsb => (Op::Cmps, Ty::I8),
        M::Cmpsw => (Op::Cmps, Ty::I16),
        M::Cmpsd => (Op::Cmps, Ty::I32),
        M::Cmpsq => (Op::Cmps, Ty::I64),
        M::Scasb => (Op::Scas, Ty::I8),
        M::Scasw => (Op::Scas, Ty::I16),
        M::Scasd => (Op::Scas, Ty::I32),
        M::Scasq => (Op::Scas, Ty::I64),
        _ => return None,
    })
}

/// One iteration of `op` on `ty` elements; `step` (of the address-size type `aty`) is added
/// to each index register used.
fn iteration<E: Emitter>(ctx: &mut Ctx<E>, op: Op, ty: Ty, aty: Ty, step: E::Value, seg: Register) {
    match op {
        Op::Movs => {
            let v = load_src(ctx, ty, aty, seg);
            store_dst(ctx, aty, v);
            advance(ctx, reg::RSI, aty, step);
            advance(ctx, reg::RDI, aty, step);
        }
        Op::Stos => {
            let v = ctx.gpr_ty(reg::RAX, ty);
            store_dst(ctx, aty, v);
            advance(ctx, reg::RDI, aty, step);
        }
        Op::Lods => {
            let v = load_src(ctx, ty, aty, seg);
            ctx.set_gpr_ty(reg::RAX, ty, v);
            advance(ctx, reg::RSI, aty, step);
        }
        Op::Cmps => {
            let a = load_src(ctx, ty, aty, seg);
            let b = load_dst(ctx, ty, aty);
            compare(ctx, a, b);
            advance(ctx, reg::RSI, aty, step);
            advance(ctx, reg::RDI, aty, step);
        }
        Op::Scas => {
            let a = ctx.gpr_ty(reg::RAX, ty);
            let b = load_dst(ctx, ty, aty);
            compare(ctx, a, b);
            advance(ctx, reg::RDI, aty, step);
        }
    }
}

/// Index register `i` at the address size, zero-extended: an effective address.
fn index<E: Emitter>(ctx: &mut Ctx<E>, i: usize, aty: Ty) -> E::Value {
    let v = ctx.gpr_ty(i, aty);
    ctx.to_ty(v, Ty::I64, false)
}

/// Load `[seg:RSI]`.
fn load_src<E: Emitter>(ctx: &mut Ctx<E>, ty: Ty, aty: Ty, seg: Register) -> E::Value {
    let ea = index(ctx, reg::RSI, aty);
    let a = ctx.seg_base_add(seg, ea);
    ctx.load(ty, a)
}

/// Load `[ES:RDI]`.
fn load_dst<E: Emitter>(ctx: &mut Ctx<E>, ty: Ty, aty: Ty) -> E::Value {
    let a = dst_addr(ctx, aty);
    ctx.load(ty, a)
}

/// Store to `[ES:RDI]`.
fn store_dst<E: Emitter>(ctx: &mut Ctx<E>, aty: Ty, v: E::Value) {
    let a = dst_addr(ctx, aty);
    ctx.store(a, v);
}

/// Linear address of `ES:RDI` (ES cannot be overridden).
fn dst_addr<E: Emitter>(ctx: &mut Ctx<E>, aty: Ty) -> E::Value {
    let ea = index(ctx, reg::RDI, aty);
    ctx.seg_base_add(Register::ES, ea)
}

/// Index register `i` += `step`, wrapping at the address size.
fn advance<E: Emitter>(ctx: &mut Ctx<E>, i: usize, aty: Ty, step: E::Value) {
    let v = ctx.gpr_ty(i, aty);
    let v = ctx.bin(BinOp::Add, v, step);
    ctx.set_gpr_ty(i, aty, v);
}

/// Flags of `a - b`, as CMP.
fn compare<E: Emitter>(ctx: &mut Ctx<E>, a: E::Value, b: E::Value) {
    let res = ctx.bin(BinOp::Sub, a, b);
    ctx.set_flags_lazy(FlagOp::Sub, a, b, res, None);
}

#[cfg(test)]
mod tests {
    use crate::decode::decode_block;
    use crate::flags::Vendor;
    use crate::interp::run_block_as;
    use crate::semantics::system::test_env::*;
    use crate::state::{reg, rflags, CpuState, ExitReason};
    use crate::Mode;

    fn setup() -> (TestEnv, CpuState) {
        let mut env = TestEnv::new();
        for i in 0..0x100u64 {
            env.write(0x2000 + i, 1, i);
        }
        let mut cpu = TestEnv::cpu();
        cpu.gpr[reg::RSI] = 0x2000;
        cpu.gpr[reg::RDI] = 0x3000;
        (env, cpu)
    }

    fn arith(cpu: &CpuState) -> u64 {
        cpu.full_rflags() & rflags::ARITH
    }

    #[test]
    fn movs_every_size_both_directions() {
        for (op, size) in [(0xa4u8, 1u64), (0xa5, 4)] {
            for prefix in [&[][..], &[0x66], &[0x48]] {
                let size = match prefix {
                    [0x66] if size == 4 => 2,
                    [0x48] if size == 4 => 8,
                    _ => size,
                };
                let code: Vec<u8> = prefix.iter().copied().chain([op]).collect();
                for df in [false, true] {
                    let (mut env, mut cpu) = setup();
                    if df {
                        cpu.rflags |= rflags::DF;
                    }
                    assert_eq!(step1(&mut cpu, &mut env, &code), ExitReason::Jump);
                    assert_eq!(
                        env.read(0x3000, size as usize),
                        env.read(0x2000, size as usize)
                    );
                    let d = if df { size.wrapping_neg() } else { size };
                    assert_eq!(cpu.gpr[reg::RSI], 0x2000u64.wrapping_add(d), "{code:x?}");
                    assert_eq!(cpu.gpr[reg::RDI], 0x3000u64.wrapping_add(d));
                    assert_eq!(cpu.rip, CODE + code.len() as u64);
                }
            }
        }
    }

    #[test]
    fn rep_movs_and_stos() {
        let (mut env, mut cpu) = setup();
        cpu.gpr[reg::RCX] = 5;
        step1(&mut cpu, &mut env, &[0xf3, 0x48, 0xa5]); // rep movsq
        assert_eq!(env.read(0x3000 + 32, 8), env.read(0x2000 + 32, 8));
        assert_eq!(env.read(0x3000 + 40, 8), 0);
        assert_eq!((cpu.gpr[reg::RCX], cpu.gpr[reg::RSI]), (0, 0x2000 + 40));
        // rep stosw backwards
        cpu.rip = CODE;
        cpu.gpr[reg::RCX] = 3;
        cpu.gpr[reg::RAX] = 0xffff_ffff_ffff_abcd;
        cpu.gpr[reg::RDI] = 0x4004;
        cpu.rflags |= rflags::DF;
        step1(&mut cpu, &mut env, &[0xf3, 0x66, 0xab]);
        assert_eq!(env.read(0x4000, 6), 0xabcd_abcd_abcd);
        assert_eq!(cpu.gpr[reg::RDI], 0x4004 - 6);
        // repne (F2) on MOVS repeats like REP
        let (mut env, mut cpu) = setup();
        cpu.gpr[reg::RCX] = 3;
        step1(&mut cpu, &mut env, &[0xf2, 0xa4]);
        assert_eq!(env.read(0x3000, 4), 0x0002_0100);
        assert_eq!(cpu.gpr[reg::RCX], 0);
    }

    /// Interpret the instruction at [`CODE`] translating for `vendor`.
    fn step_as(vendor: Vendor, cpu: &mut CpuState, env: &mut TestEnv, code: &[u8]) -> ExitReason {
        let block = decode_block(code, CODE, Mode::LONG64_CPL0, 1);
        run_block_as(vendor, cpu, env, &block.insns, Mode::LONG64_CPL0).exit
    }

    /// With 67h and ECX = 0: AMD writes nothing; Intel zero-extends ECX, and for MOVS ESI
    /// and EDI, for STOS EDI.
    #[test]
    fn rep_with_zero_count_follows_the_vendor() {
        let (rcx, rsi, rdi) = (reg::RCX, reg::RSI, reg::RDI);
        let cases: [(&[u8], &[usize]); 6] = [
            (&[0x67, 0xf3, 0xa4], &[rcx, rsi, rdi]),       // rep movsb
            (&[0x67, 0xf2, 0x48, 0xa5], &[rcx, rsi, rdi]), // repne movsq
            (&[0x67, 0xf3, 0xab], &[rcx, rdi]),            // rep stosd
            (&[0x67, 0xf3, 0xac], &[rcx]),                 // rep lodsb
            (&[0x67, 0xf3, 0xa6], &[rcx]),                 // repe cmpsb
            (&[0x67, 0xf2, 0x66, 0xaf], &[rcx]),           // repne scasw
        ];
        for (code, extended) in cases {
            for vendor in Vendor::ALL {
                let (mut env, mut cpu) = setup();
                cpu.gpr[rcx] = 0xdead_0000_0000_0000;
                cpu.gpr[rsi] |= 0xbbbb_0000_0000_0000;
                cpu.gpr[rdi] |= 0xcccc_0000_0000_0000;
                cpu.rflags |= rflags::CF | rflags::ZF;
                let before = cpu.clone();
                let r = step_as(vendor, &mut cpu, &mut env, code);
                assert_eq!((r, cpu.rip), (ExitReason::Jump, CODE + code.len() as u64));
                for i in 0..16 {
                    let want = match vendor {
                        Vendor::Intel if extended.contains(&i) => before.gpr[i] as u32 as u64,
                        _ => before.gpr[i],
                    };
                    assert_eq!(cpu.gpr[i], want, "{vendor:?} {code:x?} r{i}");
                }
                assert_eq!(arith(&cpu), rflags::CF | rflags::ZF);
                assert_eq!(env.read(0x3000, 8), 0);
            }
        }
    }

    /// Intel writes those registers before the first iteration: a fault there leaves them
    /// zero-extended (AMD: the state of the instruction's start).
    #[test]
    fn rep_first_iteration_fault_follows_the_vendor() {
        for vendor in Vendor::ALL {
            let (mut env, mut cpu) = setup();
            env.ro = 0x3000..0x4000;
            cpu.gpr[reg::RCX] = 0xdead_0000_0000_0005;
            cpu.gpr[reg::RSI] = 0xbbbb_0000_0000_2000;
            cpu.gpr[reg::RDI] = 0xcccc_0000_0000_3000;
            let before = cpu.clone();
            let r = step_as(vendor, &mut cpu, &mut env, &[0x67, 0xf3, 0xa4]);
            assert_eq!((r, cpu.rip), (ExitReason::Exception, CODE));
            let want = |v: u64| match vendor {
                Vendor::Intel => v as u32 as u64,
                Vendor::Amd => v,
            };
            for i in [reg::RCX, reg::RSI, reg::RDI] {
                assert_eq!(cpu.gpr[i], want(before.gpr[i]), "{vendor:?} r{i}");
            }
        }
    }

    /// The same through the interpreter's block path and the JIT (RSI's low half points
    /// past the probe's RAM: the first load faults).
    #[test]
    fn rep_first_iteration_fault_in_both_engines() {
        use crate::semantics::alu::probe::{run_interp_as, JitRunner, MEM};
        let mut g = [0u64; 16];
        g[reg::RCX] = 0xdead_0000_0000_0005;
        g[reg::RSI] = 0xbbbb_0000_00ff_0000;
        g[reg::RDI] = 0xcccc_0000_0000_0000; // the window's middle, plus upper bits
        let code = [0x67, 0xf3, 0xa4];
        let mem = vec![0; MEM];
        for vendor in Vendor::ALL {
            let want = |v: u64| match vendor {
                Vendor::Intel => v as u32 as u64,
                Vendor::Amd => v,
            };
            let (exit, interp, _) = run_interp_as(vendor, &code, g, 0, &mem);
            let (jexit, jitted, _) = JitRunner::for_vendor(vendor).run(&code, g, 0, &mem);
            for (name, exit, out) in [("interp", exit, interp), ("jit", jexit, jitted)] {
                assert_eq!(exit, ExitReason::Exception, "{vendor:?} {name}");
                assert_eq!(out.gpr[reg::RCX], want(g[reg::RCX]), "{vendor:?} {name}");
                assert_eq!(out.gpr[reg::RSI], want(g[reg::RSI]), "{vendor:?} {name}");
                let rdi = if vendor == Vendor::Intel {
                    0
                } else {
                    g[reg::RDI]
                };
                assert_eq!(out.gpr[reg::RDI], rdi, "{vendor:?} {name}");
            }
        }
    }

    /// The count-0 rule on the host (RDI is the probe's window pointer: not compared).
    #[test]
    fn rep_with_zero_count_matches_the_host() {
        use crate::semantics::alu::probe::{native, vendor_rule, Want};
        let set = [
            (reg::RCX, 0xdead_0000_0000_0000),
            (reg::RSI, 0xbbbb_0000_0000_1000),
        ];
        let amd = Want {
            flags: 0,
            regs: &[
                (reg::RCX, 0xdead_0000_0000_0000),
                (reg::RSI, 0xbbbb_0000_0000_1000),
            ],
        };
        let movs = Want {
            flags: 0,
            regs: &[(reg::RCX, 0), (reg::RSI, 0x1000)],
        };
        let lods = Want {
            flags: 0,
            regs: &[(reg::RCX, 0), (reg::RSI, 0xbbbb_0000_0000_1000)],
        };
        let run = native!(".byte 0x67, 0xf3, 0xa4");
        vendor_rule("rep movsb a32", run, &set, 0, [movs, amd]);
        let run = native!(".byte 0x67, 0xf3, 0xac");
        vendor_rule("rep lodsb a32", run, &set, 0, [lods, amd]);
        let run = native!(".byte 0x67, 0xf3, 0xa6");
        vendor_rule("repe cmpsb a32", run, &set, 0, [lods, amd]);
    }

    #[test]
    fn address_size_32_wraps_and_zero_extends() {
        let (mut env, mut cpu) = setup();
        cpu.gpr[reg::RSI] = 0xdead_0000_0000_2000;
        cpu.gpr[reg::RDI] = 0xbeef_0000_0000_3000;
        cpu.gpr[reg::RCX] = 0xcafe_0000_0000_0002;
        step1(&mut cpu, &mut env, &[0x67, 0xf3, 0xa4]);
        assert_eq!(cpu.gpr[reg::RSI], 0x2002);
        assert_eq!(cpu.gpr[reg::RDI], 0x3002);
        assert_eq!(cpu.gpr[reg::RCX], 0);
        assert_eq!(env.read(0x3000, 2), 0x0100);
        // ESI = 0 stepping down wraps to 0xffff_ffff (zero-extended).
        cpu.rip = CODE;
        cpu.gpr[reg::RSI] = 0x1_0000_0000;
        cpu.rflags |= rflags::DF;
        step1(&mut cpu, &mut env, &[0x67, 0xac]); // lodsb, a32
        assert_eq!(cpu.gpr[reg::RSI], 0xffff_ffff);
    }

    #[test]
    fn lods_merges_and_zero_extends() {
        let (mut env, mut cpu) = setup();
        cpu.gpr[reg::RAX] = 0xffff_ffff_ffff_ffff;
        step1(&mut cpu, &mut env, &[0xac]);
        assert_eq!(cpu.gpr[reg::RAX], 0xffff_ffff_ffff_ff00);
        cpu.rip = CODE;
        step1(&mut cpu, &mut env, &[0xad]);
        assert_eq!(cpu.gpr[reg::RAX], 0x0403_0201);
        // rep lodsw: the last element stays.
        cpu.rip = CODE;
        cpu.gpr[reg::RCX] = 2;
        step1(&mut cpu, &mut env, &[0xf3, 0x66, 0xad]);
        assert_eq!(cpu.gpr[reg::RAX], 0x0403_0807, "AX merges");
        assert_eq!(cpu.gpr[reg::RSI], 0x2009);
    }

    #[test]
    fn segment_override_adds_the_base_to_the_source_only() {
        let (mut env, mut cpu) = setup();
        cpu.seg[crate::state::seg::FS].base = 0x10;
        cpu.seg[crate::state::seg::GS].base = 0x20;
        step1(&mut cpu, &mut env, &[0x64, 0xa4]); // movs byte [rdi], fs:[rsi]
        assert_eq!(env.read(0x3000, 1), 0x10);
        cpu.rip = CODE;
        step1(&mut cpu, &mut env, &[0x65, 0xac]); // lods al, gs:[rsi]
        assert_eq!(cpu.gpr[reg::RAX] & 0xff, 0x21);
        // ES cannot be overridden: stos with an FS prefix still writes at RDI.
        cpu.rip = CODE;
        step1(&mut cpu, &mut env, &[0x64, 0xaa]);
        assert_eq!(env.read(0x3001, 1), 0x21);
    }

    #[test]
    fn cmps_and_scas_flags() {
        let (mut env, mut cpu) = setup();
        env.write(0x3000, 1, 0x05);
        step1(&mut cpu, &mut env, &[0xa6]); // cmpsb: [rsi]=0 - [rdi]=5 = 0xfb
        assert_eq!(arith(&cpu), rflags::CF | rflags::SF | rflags::AF);
        assert_eq!((cpu.gpr[reg::RSI], cpu.gpr[reg::RDI]), (0x2001, 0x3001));
        cpu.rip = CODE;
        cpu.gpr[reg::RAX] = 0x7766_5544_3322_1100;
        cpu.gpr[reg::RDI] = 0x2000;
        step1(&mut cpu, &mut env, &[0x48, 0xaf]); // scasq: rax - [rdi]
        let m = env.read(0x2000, 8);
        assert_eq!(m, 0x0706_0504_0302_0100);
        assert_eq!(arith(&cpu) & (rflags::ZF | rflags::CF | rflags::SF), 0);
        assert_eq!(cpu.gpr[reg::RDI], 0x2008);
    }

    #[test]
    fn repe_cmps_stops_at_first_difference() {
        let (mut env, mut cpu) = setup();
        for i in 0..8 {
            env.write(0x3000 + i, 1, i);
        }
        env.write(0x3005, 1, 0x99);
        cpu.gpr[reg::RCX] = 100;
        step1(&mut cpu, &mut env, &[0xf3, 0xa6]);
        assert_eq!(cpu.gpr[reg::RCX], 100 - 6);
        assert_eq!(cpu.gpr[reg::RSI], 0x2006);
        assert_eq!(arith(&cpu) & rflags::ZF, 0);
        assert_eq!(arith(&cpu) & rflags::CF, rflags::CF, "5 < 0x99");
        // All equal: runs out of count with ZF = 1.
        let (mut env, mut cpu) = setup();
        for i in 0..8 {
            env.write(0x3000 + i, 1, i);
        }
        cpu.gpr[reg::RCX] = 8;
        step1(&mut cpu, &mut env, &[0xf3, 0xa6]);
        assert_eq!(cpu.gpr[reg::RCX], 0);
        assert_eq!(arith(&cpu) & rflags::ZF, rflags::ZF);
    }

    #[test]
    fn repne_scas_finds_a_byte() {
        let (mut env, mut cpu) = setup();
        cpu.gpr[reg::RDI] = 0x2000;
        cpu.gpr[reg::RAX] = 0x42;
        cpu.gpr[reg::RCX] = u64::MAX;
        step1(&mut cpu, &mut env, &[0xf2, 0xae]);
        assert_eq!(cpu.gpr[reg::RDI], 0x2043);
        assert_eq!(cpu.gpr[reg::RCX], u64::MAX - 0x43);
        assert_eq!(arith(&cpu) & rflags::ZF, rflags::ZF);
    }

    #[test]
    fn rep_fault_leaves_state_after_completed_iterations() {
        let (mut env, mut cpu) = setup();
        env.ro = 0x3003..0x4000;
        cpu.gpr[reg::RCX] = 10;
        assert_eq!(
            step1(&mut cpu, &mut env, &[0xf3, 0xa4]),
            ExitReason::Exception
        );
        assert_eq!(cpu.rip, CODE);
        assert_eq!(cpu.gpr[reg::RCX], 7);
        assert_eq!((cpu.gpr[reg::RSI], cpu.gpr[reg::RDI]), (0x2003, 0x3003));
        assert_eq!(env.read(0x3000, 3), 0x02_0100);
        // Resuming after the fault is cleared completes the copy.
        env.ro = 0..0;
        assert_eq!(step1(&mut cpu, &mut env, &[0xf3, 0xa4]), ExitReason::Jump);
        assert_eq!(cpu.gpr[reg::RCX], 0);
        assert_eq!(env.read(0x3009, 1), 9);
    }

    #[test]
    fn faulting_cmps_keeps_flags() {
        let (mut env, mut cpu) = setup();
        cpu.gpr[reg::RDI] = 0x100_0000;
        cpu.rflags |= rflags::ZF | rflags::CF;
        assert_eq!(step1(&mut cpu, &mut env, &[0xa6]), ExitReason::Exception);
        assert_eq!(arith(&cpu), rflags::ZF | rflags::CF);
        assert_eq!(cpu.gpr[reg::RSI], 0x2000);
    }

    #[test]
    fn ins_outs_and_sse_lookalikes_are_not_strings_here() {
        // insb, outsb: hypercalls, routed by the sensitive-instruction table; classify
        // refuses them. (SSE movsd xmm0, xmm1 is not a string instruction, so the dispatch
        // never sends it here; if it did, classify refuses it.)
        for code in [&[0x6c][..], &[0x6e]] {
            let insn = iced_x86::Decoder::new(64, code, 0).decode();
            assert!(crate::sensitive::lookup(&insn).is_some());
            assert!(super::classify(&insn).is_none());
        }
        let mut d = iced_x86::Decoder::new(64, &[0xf2, 0x0f, 0x10, 0xc1], 0);
        assert!(super::classify(&d.decode()).is_none());
    }
}

#[cfg(test)]
mod legacy_tests {
    use crate::semantics::stack::legacy_env::*;
    use crate::semantics::system::test_env::TestEnv;
    use crate::state::{reg, rflags};

    const IP: u64 = 0x1000;

    fn env_with_pattern() -> TestEnv {
        let mut env = TestEnv::new();
        for i in 0..0x100u64 {
            env.write(0x3000 + i, 1, i ^ 0x5a);
        }
        env
    }

    #[test]
    fn rep_movsb_32bit_with_ds_and_es_bases() {
        // DS base 0x1000, ES base 0x4000: copy DS:[0x2000..] to ES:[0x10..].
        let m = mode(32, 32, true);
        let mut env = env_with_pattern();
        let mut cpu = cpu_at(IP, 0x8000, [0x4000, 0, 0, 0x1000, 0, 0]);
        cpu.gpr[reg::RSI] = 0xdead_0000_0000_2000;
        cpu.gpr[reg::RDI] = 0x10;
        cpu.gpr[reg::RCX] = 0xffff_0000_0000_0005;
        run_in(m, &mut cpu, &mut env, &[0xf3, 0xa4], IP);
        for i in 0..5 {
            assert_eq!(env.read(0x4010 + i, 1), i ^ 0x5a);
        }
        assert_eq!(env.read(0x4015, 1), 0);
        assert_eq!(cpu.gpr[reg::RSI], 0x2005, "ESI writes zero-extend");
        assert_eq!((cpu.gpr[reg::RDI], cpu.gpr[reg::RCX]), (0x15, 0));
        assert_eq!(cpu.rip, IP + 2);
        // A source override with FS adds its base even without `seg_bases`; ES stays flat.
        let m = mode(32, 32, false);
        let mut cpu = cpu_at(IP, 0x8000, [0x4000, 0, 0, 0x1000, 0x3000, 0]);
        cpu.gpr[reg::RSI] = 0x7;
        cpu.gpr[reg::RDI] = 0x20;
        run_in(m, &mut cpu, &mut env, &[0x64, 0xa4], IP);
        assert_eq!(env.read(0x20, 1), 7 ^ 0x5a, "FS source, flat ES");
    }

    #[test]
    fn rep_movsw_16bit_wraps_si_and_di() {
        // 16-bit addressing: SI steps from 0xfffe to 0, DI from 0x10 (ES base 0x200); CX
        // counts.
        let m = mode(16, 16, true);
        let mut env = TestEnv::new();
        let mut cpu = cpu_at(IP, 0x100, [0x200, 0, 0, 0, 0, 0]);
        env.write(0xfffe, 2, 0xbeef); // DS:0xfffe
        env.write(0, 2, 0xcafe); // DS:0x0000
        cpu.gpr[reg::RSI] = 0x1234_fffe;
        cpu.gpr[reg::RDI] = 0x5678_0010;
        cpu.gpr[reg::RCX] = 0x9999_0002;
        run_in(m, &mut cpu, &mut env, &[0xf3, 0xa5], IP);
        assert_eq!(env.read(0x210, 4), 0xcafe_beef);
        assert_eq!(cpu.gpr[reg::RSI], 0x1234_0002, "SI wraps and merges");
        assert_eq!(cpu.gpr[reg::RDI], 0x5678_0014);
        assert_eq!(cpu.gpr[reg::RCX], 0x9999_0000);
    }

    #[test]
    fn address_size_prefix_in_32bit_code_uses_si_di_cx() {
        let m = mode(32, 32, false);
        let mut env = env_with_pattern();
        let mut cpu = cpu_at(IP, 0x8000, [0; 6]);
        cpu.gpr[reg::RSI] = 0x7777_3000;
        cpu.gpr[reg::RDI] = 0x1_4000;
        cpu.gpr[reg::RCX] = 0x1_0003;
        cpu.rflags |= rflags::DF;
        run_in(m, &mut cpu, &mut env, &[0x67, 0xf3, 0xa4], IP);
        // Backwards from SI 0x3000 / DI 0x4000 (only [0x3000] is nonzero).
        assert_eq!(env.read(0x3ffe, 3), 0x5a_0000);
        assert_eq!(cpu.gpr[reg::RSI], 0x7777_2ffd);
        assert_eq!(cpu.gpr[reg::RDI], 0x1_3ffd);
        assert_eq!(cpu.gpr[reg::RCX], 0x1_0000);
    }
}
