//! Regions run exactly as their blocks run one by one: same registers, flags, memory,
//! instruction count, budget stops and faults.

use iced_x86::code_asm::*;

use super::blocks::fuzz_rounds;
use super::{asm, Harness, Observed, Rng, RAM_SIZE};
use crate::jit::{Jit, JitConfig};
use crate::region;
use crate::state::{reg, ExitReason};

/// Run from `pc` until an exit other than `Jump`, with the block at `pc` compiled as a
/// region when `as_region`, the rest block by block (linked).
fn run(code: &[u8], pc: u64, as_region: bool, init: impl Fn(&mut Harness)) -> Observed {
    run_ram(code, pc, as_region, true, init).0
}

/// As [`run`], also returning RAM; `carry` is [`JitConfig::carry_state`].
fn run_ram(
    code: &[u8],
    pc: u64,
    as_region: bool,
    carry: bool,
    init: impl Fn(&mut Harness),
) -> (Observed, Vec<u8>) {
    let mut h = harness(carry);
    h.m.linking = true;
    h.load(pc, code);
    init(&mut h);
    h.cpu.rip = pc;
    if as_region {
        let entry = h.decode(pc, 64);
        let blocks = region::form(entry, |t| {
            (t >= pc && t < pc + code.len() as u64).then(|| h.decode(t, 64))
        });
        assert!(blocks.len() > 1, "the test code must form a region");
        let c = h
            .jit
            .translate_region(&blocks, h.mode, &mut *h.m)
            .expect("translate region");
        let host = h.code.install(&c.code);
        h.m.blocks.insert(pc, host);
    }
    let exit = h.run(10_000);
    let mut o = Observed::of(exit, &h.cpu);
    o.helper_out0 = 0;
    (o, std::mem::take(&mut h.m.ram))
}

/// A harness whose JIT carries loop state or not ([`JitConfig::carry_state`]).
fn harness(carry: bool) -> Harness {
    let mut h = Harness::new();
    if !carry {
        h.jit = Jit::with_config(JitConfig {
            carry_state: false,
            ..JitConfig::default()
        })
        .expect("host JIT");
    }
    h
}

/// `top: [load r8 from rsi in the even arm]; test rcx,1; jz even; add rax,rcx; jmp next;
/// even: mov r8,[rsi]; add rsi,8; sub rbx,r8; next: inc rcx; cmp rcx,rdx; jne top; ud2`
fn loop_with_if() -> Vec<u8> {
    asm(|a| {
        let (mut top, mut even, mut next) = (a.create_label(), a.create_label(), a.create_label());
        a.set_label(&mut top)?;
        a.test(rcx, 1)?;
        a.jz(even)?;
        a.add(rax, rcx)?;
        a.jmp(next)?;
        a.set_label(&mut even)?;
        a.mov(r8, qword_ptr(rsi))?;
        a.add(rsi, 8)?;
        a.sub(rbx, r8)?;
        a.set_label(&mut next)?;
        a.inc(rcx)?;
        a.cmp(rcx, rdx)?;
        a.jne(top)?;
        a.ud2()
    })
}

fn init(limit: u64, src: u64) -> impl Fn(&mut Harness) {
    move |h: &mut Harness| {
        for i in 0..64u64 {
            let at = 0x8000 + 8 * i as usize;
            h.m.ram[at..at + 8].copy_from_slice(&(i * 0x0101_0101).to_le_bytes());
        }
        h.cpu.gpr[reg::RCX] = 0;
        h.cpu.gpr[reg::RDX] = 40;
        h.cpu.gpr[reg::RSI] = src;
        h.cpu.gpr[reg::RAX] = 7;
        h.cpu.icount_limit = limit;
    }
}

#[test]
fn a_region_computes_what_its_blocks_compute() {
    let code = loop_with_if();
    let a = run(&code, 0x1000, false, init(u64::MAX, 0x8000));
    let b = run(&code, 0x1000, true, init(u64::MAX, 0x8000));
    assert_eq!(a.gpr[reg::RCX], 40);
    assert_eq!(a, b);
}

#[test]
fn a_region_stops_at_the_same_block_head_for_every_budget() {
    let code = loop_with_if();
    for limit in (0..200).step_by(7) {
        let a = run(&code, 0x1000, false, init(limit, 0x8000));
        let b = run(&code, 0x1000, true, init(limit, 0x8000));
        assert_eq!(a.exit, ExitReason::Budget, "limit {limit}");
        assert_eq!(a, b, "limit {limit}");
    }
}

#[test]
fn a_fault_in_a_later_block_of_a_region_is_precise() {
    let code = loop_with_if();
    // The even arm's load walks off the end of RAM after a few iterations.
    let src = RAM_SIZE as u64 - 5 * 8;
    let a = run(&code, 0x1000, false, init(u64::MAX, src));
    let b = run(&code, 0x1000, true, init(u64::MAX, src));
    // It stopped on the load (not at the final HLT), in the region's third block.
    assert_eq!(a.exit, ExitReason::Exception, "{a:?}");
    // test rcx,1 (7 bytes), jz (2), add (3), jmp (2): the even arm's load.
    let even = 0x1000 + 7 + 2 + 3 + 2;
    assert_eq!(a.rip, even, "{a:?}");
    assert_eq!(a, b);
}

/// Random loops of four blocks (random instructions in the head and both arms, the branch
/// on flags whichever of them set last, memory through R15 and sometimes a faulting access
/// through R14), with random budgets: the region and its blocks one by one agree.
#[test]
fn random_loops_run_as_regions_exactly_as_block_by_block() {
    random_loops(0x5eed_1234, true);
}

/// The same with every internal edge writing the state back (no carried state).
#[test]
fn random_loops_without_carried_state_run_as_block_by_block() {
    random_loops(0x5eed_4321, false);
}

fn random_loops(seed: u64, carry: bool) {
    let mut rng = Rng(seed);
    let regs64 = [rax, rcx, rdx, rbx, rsi, rdi, r8, r9, r10, r11, r12, r13];
    let regs32 = [
        eax, ecx, edx, ebx, esi, edi, r8d, r9d, r10d, r11d, r12d, r13d,
    ];
    for round in 0..fuzz_rounds(60) {
        let mut arms: [Vec<(u64, u64, u64)>; 3] = Default::default();
        for arm in &mut arms {
            for _ in 0..1 + rng.below(6) {
                arm.push((rng.below(16), rng.next(), rng.next()));
            }
        }
        let cond = rng.below(4);
        let code = asm(|a| {
            let emit = |a: &mut CodeAssembler, picks: &[(u64, u64, u64)]| {
                for &(k, x, y) in picks {
                    let (r, s) = (regs64[(x % 12) as usize], regs64[(y % 12) as usize]);
                    let (r32, s32) = (regs32[(x % 12) as usize], regs32[(y % 12) as usize]);
                    let disp = (y % 0x1000) as i32 - 0x800;
                    match k {
                        0 => a.mov(r, s)?,
                        1 => a.add(r, s)?,
                        2 => a.sub(r32, s32)?,
                        3 => a.adc(r, s)?,
                        4 => a.sbb(r32, s32)?,
                        5 => a.cmp(r, s)?,
                        6 => a.inc(r)?,
                        7 => a.shl(r32, (x % 32) as u32)?,
                        8 => a.imul_2(r, s)?,
                        9 => a.add(r, qword_ptr(r15 + disp))?,
                        10 => a.mov(qword_ptr(r15 + disp), r)?,
                        11 => a.lea(r, qword_ptr(s + r * 2))?,
                        12 => a.cmovb(r, s)?,
                        13 => a.mov(r32, (x >> 32) as u32)?,
                        14 => a.neg(r)?,
                        _ if x % 8 == 0 => a.xor(qword_ptr(r14 + disp), r)?,
                        _ => a.xor(r, s)?,
                    }
                }
                Ok::<(), IcedError>(())
            };
            let (mut top, mut even, mut next) =
                (a.create_label(), a.create_label(), a.create_label());
            a.set_label(&mut top)?;
            emit(a, &arms[0])?;
            match cond {
                0 => a.jl(even)?,
                1 => a.jbe(even)?,
                2 => a.js(even)?,
                _ => a.jp(even)?,
            }
            emit(a, &arms[1])?;
            a.jmp(next)?;
            a.set_label(&mut even)?;
            emit(a, &arms[2])?;
            a.set_label(&mut next)?;
            a.dec(ebp)?;
            a.jnz(top)?;
            a.ud2()
        });
        let seed = rng.next();
        let limit = if rng.below(3) == 0 {
            rng.below(300)
        } else {
            u64::MAX
        };
        let init = |h: &mut Harness| {
            let mut r = Rng(seed);
            for g in h.cpu.gpr.iter_mut() {
                *g = r.next() >> (r.below(4) * 16);
            }
            h.cpu.gpr[reg::RBP] = 1 + r.below(30);
            h.cpu.gpr[reg::RSP] = 0x8_0000;
            h.cpu.gpr[15] = 0x4_0000;
            h.cpu.rflags = crate::state::rflags::FIXED | (r.next() & crate::state::rflags::ARITH);
            h.cpu.icount_limit = limit;
            for b in &mut h.m.ram[0x4_0000 - 0x1000..0x4_0000 + 0x1000] {
                *b = r.next() as u8;
            }
        };
        let (a, ram_a) = run_ram(&code, 0x1000, false, false, init);
        let (b, ram_b) = run_ram(&code, 0x1000, true, carry, init);
        assert_eq!(a, b, "round {round}: {code:02x?}");
        assert!(ram_a == ram_b, "round {round}: RAM differs");
    }
}

/// Flags are carried across a loop's edges only where every block overwrites them, reading
/// none, within its first three instructions.
#[test]
fn flags_are_carried_only_where_blocks_overwrite_them_early() {
    let mut h = Harness::new();
    let early = asm(|a| {
        a.mov(rax, qword_ptr(rsi))?;
        a.cmp(rax, rbx)?;
        a.jne(0x1000)?;
        a.ud2()
    });
    let late = asm(|a| {
        a.mov(rax, qword_ptr(rsi))?;
        a.add(rsi, 8)?;
        a.adc(rax, rbx)?;
        a.jne(0x1000)?;
        a.ud2()
    });
    h.load(0x1000, &early);
    assert!(crate::jit::flags_overwritten_early(&h.decode(0x1000, 64)));
    h.load(0x1000, &late);
    // ADD overwrites all six, but ADC after it is not reached first: ADD is the second
    // instruction, so the block qualifies; a block starting with ADC would not.
    assert!(crate::jit::flags_overwritten_early(&h.decode(0x1000, 64)));
    let reads = asm(|a| {
        a.adc(rax, rbx)?;
        a.cmp(rax, rbx)?;
        a.jne(0x1000)?;
        a.ud2()
    });
    h.load(0x1000, &reads);
    assert!(!crate::jit::flags_overwritten_early(&h.decode(0x1000, 64)));
    let never = asm(|a| {
        a.mov(rax, qword_ptr(rsi))?;
        a.mov(rbx, rax)?;
        a.mov(rcx, rax)?;
        a.inc(rdx)?;
        a.jmp(0x1000)?;
        a.ud2()
    });
    h.load(0x1000, &never);
    assert!(!crate::jit::flags_overwritten_early(&h.decode(0x1000, 64)));
}

/// XMM registers are not carried across a loop's edges: a back edge stores those its
/// iteration wrote in variables (non-floating-point results are kept there), since the head
/// reads them from `CpuState`. (Regression: a self-loop carrying GPRs and flags left a
/// PADDQ result unstored, and every iteration started from the entry's XMM0.)
#[test]
fn xmm_registers_written_in_a_loop_reach_the_next_iteration() {
    let code = asm(|a| {
        let mut top = a.create_label();
        a.set_label(&mut top)?;
        a.paddq(xmm0, xmm1)?;
        a.add(rax, 1)?;
        a.dec(ecx)?;
        a.jnz(top)?;
        a.ud2()
    });
    for carry in [false, true] {
        let init = |h: &mut Harness| {
            h.cpu.fx.xmm[0] = 5 | 7 << 64;
            h.cpu.fx.xmm[1] = 3 | 1 << 64;
            h.cpu.gpr[reg::RCX] = 10;
            h.cpu.gpr[reg::RAX] = 0;
            h.cpu.icount_limit = u64::MAX;
        };
        let mut h = harness(carry);
        h.load(0x1000, &code);
        init(&mut h);
        h.cpu.rip = 0x1000;
        let block = h.decode(0x1000, 64);
        let host = h.install(&block).expect("translate");
        h.enter(host);
        assert_eq!(h.cpu.gpr[reg::RAX], 10, "carry {carry}");
        assert_eq!(h.cpu.fx.xmm[0], (5 + 30) | (7 + 10) << 64, "carry {carry}");
    }
}
