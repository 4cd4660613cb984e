//! Whole blocks through the JIT: against the interpreter, and the block protocol itself
//! (budget, faults, linking, indirect exits, the memory paths, misuse, hostile bytes).

use iced_x86::code_asm::*;

use super::{asm, differential, differential_with, Harness, Rng, RAM_SIZE};
use crate::emit::{Emitter, Exit, ValueOps};
use crate::helpers::Helper;
use crate::ir::Ty;
use crate::jit::{JitConfig, JitError, OptLevel, Regalloc};
use crate::state::{off_gpr, reg, rflags, CpuState, ExitReason};

/// Rounds of the random tests: `default`, or `POPEK_FUZZ_ROUNDS` for a longer run.
pub(super) fn fuzz_rounds(default: usize) -> usize {
    std::env::var("POPEK_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A CPU with distinct register values, RSP in RAM, R15 pointing at a data area.
fn cpu_with(rng: &mut Rng) -> CpuState {
    let mut cpu = CpuState::default();
    for (i, g) in cpu.gpr.iter_mut().enumerate() {
        *g = match rng.below(4) {
            0 => rng.below(0x100),
            1 => super::EDGES[rng.below(super::EDGES.len() as u64) as usize],
            _ => rng.next(),
        } ^ (i as u64);
    }
    cpu.gpr[reg::RSP] = 0x8_0000;
    cpu.gpr[15] = 0x4_0000;
    cpu.rflags = rflags::FIXED | (rng.next() & rflags::ARITH);
    cpu
}

fn data(ram: &mut [u8]) {
    let mut r = Rng(77);
    for b in &mut ram[0x4_0000 - 0x1000..0x4_0000 + 0x1000] {
        *b = r.next() as u8;
    }
}

fn assert_same(code: &[u8], cpu: &CpuState) {
    let (jit, interp, ram_same) = differential(code, 0x1000, cpu, data);
    assert_eq!(jit, interp, "code {code:02x?}");
    assert!(ram_same, "RAM differs for {code:02x?}");
}

#[test]
fn mov_forms_match_the_interpreter() {
    let codes = [
        asm(|a| {
            a.mov(rax, 0x1122_3344_5566_7788u64)?;
            a.mov(ecx, eax)?;
            a.mov(dx, ax)?;
            a.mov(bl, al)?;
            a.mov(bh, al)?;
            a.mov(r8, rbx)?;
            a.mov(r9d, 0x8000_0000u32)?;
            a.hlt()
        }),
        asm(|a| {
            a.mov(rax, qword_ptr(r15))?;
            a.mov(ecx, dword_ptr(r15 + 3))?;
            a.mov(dx, word_ptr(r15 - 0x7ff))?;
            a.mov(bl, byte_ptr(r15 - 0x40))?;
            a.mov(qword_ptr(r15 + 8), rax)?;
            a.mov(dword_ptr(r15 + 0x11), 0x1234_5678u32)?;
            a.mov(word_ptr(r15 + 0xffe), dx)?;
            a.mov(byte_ptr(r15 - 1), bl)?;
            a.mov(rbx, r15)?;
            a.mov(ah, byte_ptr(rbx + 9))?;
            a.hlt()
        }),
    ];
    let mut rng = Rng(3);
    for code in &codes {
        for _ in 0..8 {
            assert_same(code, &cpu_with(&mut rng));
        }
    }
}

#[test]
fn compare_and_branch_match_the_interpreter() {
    let mut rng = Rng(11);
    type Jcc = fn(&mut CodeAssembler, CodeLabel) -> Result<(), IcedError>;
    let jccs: [Jcc; 16] = [
        |a, l| a.jo(l),
        |a, l| a.jno(l),
        |a, l| a.jb(l),
        |a, l| a.jae(l),
        |a, l| a.je(l),
        |a, l| a.jne(l),
        |a, l| a.jbe(l),
        |a, l| a.ja(l),
        |a, l| a.js(l),
        |a, l| a.jns(l),
        |a, l| a.jp(l),
        |a, l| a.jnp(l),
        |a, l| a.jl(l),
        |a, l| a.jge(l),
        |a, l| a.jle(l),
        |a, l| a.jg(l),
    ];
    for (i, jcc) in jccs.iter().enumerate() {
        for width in 0..4 {
            let code = asm(|a| {
                let mut t = a.create_label();
                match width {
                    0 => a.cmp(al, cl)?,
                    1 => a.cmp(ax, cx)?,
                    2 => a.cmp(eax, ecx)?,
                    _ => a.cmp(rax, rcx)?,
                }
                jcc(a, t)?;
                a.nop()?;
                a.set_label(&mut t)?;
                a.nop()
            });
            for _ in 0..6 {
                let mut cpu = cpu_with(&mut rng);
                if rng.below(3) == 0 {
                    cpu.gpr[1] = cpu.gpr[0];
                }
                let (jit, interp, _) = differential(&code, 0x1000, &cpu, data);
                assert_eq!(jit, interp, "jcc #{i} width {width}");
            }
        }
    }
    // Flags of an earlier block (stored lazily or materialized) feed a branch.
    let code = asm(|a| {
        let mut t = a.create_label();
        a.jl(t)?;
        a.nop()?;
        a.set_label(&mut t)?;
        a.nop()
    });
    for _ in 0..16 {
        assert_same(&code, &cpu_with(&mut rng));
    }
}

/// Random straight-line blocks of integer instructions, ending in a compare and branch.
#[test]
fn random_blocks_match_the_interpreter() {
    random_blocks(JitConfig::default(), 2024);
}

/// The same with the fast-compile configuration and the verifier on.
#[test]
fn random_blocks_match_the_interpreter_with_fast_compile() {
    let fast = JitConfig {
        verify: true,
        opt_level: OptLevel::None,
        regalloc: Regalloc::SinglePass,
        trap_hypercalls: false,
        count_tlb_hits: false,
        vendor: crate::flags::Vendor::host(),
        carry_state: true,
    };
    random_blocks(fast, 7);
}

fn random_blocks(config: JitConfig, seed: u64) {
    let mut rng = Rng(seed);
    let regs64 = [rax, rcx, rdx, rbx, rsi, rdi, r8, r9, r10, r11, r12, r13];
    let regs32 = [
        eax, ecx, edx, ebx, esi, edi, r8d, r9d, r10d, r11d, r12d, r13d,
    ];
    let regs8 = [al, cl, dl, bl, sil, dil, r8b, r9b];
    for round in 0..120 {
        let n = 1 + rng.below(24) as usize;
        let mut picks = Vec::new();
        for _ in 0..n {
            picks.push((rng.below(27), rng.next(), rng.next()));
        }
        let code = asm(|a| {
            for &(k, x, y) in &picks {
                let (r, s) = (regs64[(x % 12) as usize], regs64[(y % 12) as usize]);
                let (r32, s32) = (regs32[(x % 12) as usize], regs32[(y % 12) as usize]);
                let (b8, c8) = (regs8[(x % 8) as usize], regs8[(y % 8) as usize]);
                let disp = (y % 0x1000) as i32 - 0x800;
                let imm = (x >> 32) as i32;
                match k {
                    0 => a.mov(r, s)?,
                    1 => a.mov(r32, imm as u32)?,
                    2 => a.add(r, s)?,
                    3 => a.sub(r32, s32)?,
                    4 => a.and(r, imm)?,
                    5 => a.or(b8, c8)?,
                    6 => a.xor(r32, s32)?,
                    7 => a.cmp(r, s)?,
                    8 => a.adc(r32, s32)?,
                    9 => a.sbb(r, s)?,
                    10 => a.inc(r32)?,
                    11 => a.dec(r8)?,
                    12 => a.neg(r)?,
                    13 => a.not(r32)?,
                    14 => a.test(r, s)?,
                    15 => a.add(r, qword_ptr(r15 + disp))?,
                    16 => a.mov(qword_ptr(r15 + disp), r)?,
                    17 => a.sub(dword_ptr(r15 + disp), s32)?,
                    18 => a.lea(r, qword_ptr(s + r15 * 2 + disp))?,
                    19 => a.movzx(r32, c8)?,
                    20 => a.shl(r, (x % 64) as u32)?,
                    21 => a.sar(r32, cl)?,
                    22 => a.imul_2(r, s)?,
                    23 => a.push(r)?,
                    24 => a.pop(r)?,
                    25 => a.cmovl(r, s)?,
                    // R14 holds an arbitrary value: usually a faulting access.
                    _ => a.xor(qword_ptr(r14 + disp), r)?,
                }
            }
            let mut t = a.create_label();
            a.cmp(rax, rcx)?;
            a.jle(t)?;
            a.nop()?;
            a.set_label(&mut t)?;
            a.nop()
        });
        let cpu = cpu_with(&mut rng);
        let (jit, interp, ram_same) = differential_with(config, &code, 0x1000, &cpu, data);
        assert_eq!(jit, interp, "round {round}: {code:02x?}");
        assert!(ram_same, "round {round}: RAM differs");
    }
}

/// Random bytes: whatever the decoder makes of them translates without panicking, and the
/// JIT and the interpreter agree on the outcome.
#[test]
fn hostile_bytes_translate_and_agree() {
    let mut rng = Rng(99);
    for round in 0..fuzz_rounds(300) {
        let len = 1 + rng.below(48) as usize;
        let code: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let mut cpu = cpu_with(&mut rng);
        cpu.icount_limit = 1000;
        let (jit, interp, ram_same) = differential(&code, 0x1000, &cpu, data);
        assert_eq!(jit, interp, "round {round}: {code:02x?}");
        assert!(ram_same, "round {round}: RAM differs for {code:02x?}");
    }
}

#[test]
fn budget_exit_leaves_before_the_block_runs() {
    let mut h = Harness::new();
    let code = asm(|a| {
        a.mov(rax, 1u64)?;
        a.mov(rcx, 2u64)?;
        a.mov(rdx, 3u64)?;
        a.hlt()
    });
    h.load(0x1000, &code);
    let b = h.decode(0x1000, 3);
    let host = h.install(&b).expect("translate");
    // The limit is an inclusive bound on icount after the block: 10 + 3 <= 13 runs.
    h.cpu.icount = 10;
    h.cpu.icount_limit = 12;
    h.cpu.rip = 0x5555;
    assert_eq!(h.enter(host), ExitReason::Budget as u64);
    assert_eq!((h.cpu.rip, h.cpu.icount, h.cpu.gpr[0]), (0x1000, 10, 0));
    h.cpu.icount_limit = 13;
    assert_eq!(h.enter(host), ExitReason::Jump as u64);
    assert_eq!((h.cpu.icount, h.cpu.gpr[0], h.cpu.gpr[2]), (13, 1, 3));
    assert_eq!((h.cpu.rip, h.cpu.link_slot), (b.next_pc(), 0));
    h.cpu.icount_limit = 0;
    assert_eq!(h.enter(host), ExitReason::Budget as u64);
}

#[test]
fn a_counting_block_leaves_once_when_its_counter_reaches_zero() {
    let mut h = Harness::new();
    h.m.hot_counter = Some(Box::new(3));
    // A self-loop: `inc rax; cmp rax, 10; jb self`: the back edge counts too.
    let code = asm(|a| {
        let mut top = a.create_label();
        a.set_label(&mut top)?;
        a.inc(rax)?;
        a.cmp(rax, 10)?;
        a.jb(top)
    });
    h.load(0x1000, &code);
    let b = h.decode(0x1000, 3);
    let host = h.install(&b).expect("translate");
    h.cpu.icount_limit = u64::MAX;
    // Entries 1 and 2 (the entry and one back edge) run; the third leaves before the body,
    // rip at the block, nothing charged for it.
    assert_eq!(h.enter(host), ExitReason::Promote as u64);
    assert_eq!((h.cpu.rip, h.cpu.gpr[0], h.cpu.icount), (0x1000, 2, 6));
    assert_eq!(h.m.hot_counter.as_deref(), Some(&0));
    // Only once: the counter went past zero, the loop now runs to its end.
    assert_eq!(h.enter(host), ExitReason::Jump as u64);
    assert_eq!((h.cpu.rip, h.cpu.gpr[0]), (b.next_pc(), 10));
}

#[test]
fn block_ending_hypercalls_go_on_where_the_handler_says() {
    // WRMSR and INVLPG end the block unless the handler returns 0 (go on in place); SYSCALL
    // always leaves for the host code the handler names (here the exit stub). (STI at CPL 0
    // is in line and ends its decoded block: `semantics::eflags`.)
    let code = asm(|a| {
        a.wrmsr()?;
        a.mov(rax, 1u64)?;
        a.invlpg(qword_ptr(rbx))?;
        a.mov(rcx, 2u64)?;
        a.syscall()?;
        a.mov(rdx, 3u64)?;
        a.hlt()
    });
    for leave in [false, true] {
        let mut h = Harness::new();
        h.m.leave_after_hypercalls = leave;
        h.load(0x1000, &code);
        let b = h.decode(0x1000, 64);
        assert_eq!(b.insns.len(), 5, "SYSCALL ends the block");
        let host = h.install(&b).expect("translate");
        h.cpu.icount_limit = 1000;
        assert_eq!(h.enter(host), ExitReason::Jump as u64);
        let (rip, link) = (h.cpu.rip, h.cpu.link_slot);
        let regs = [
            h.cpu.gpr[reg::RAX],
            h.cpu.gpr[reg::RCX],
            h.cpu.gpr[reg::RDX],
        ];
        let ran = h.cpu.icount;
        if leave {
            assert_eq!(
                (rip, regs, ran),
                (b.insns[1].ip(), [0, 0, 0], 1),
                "left after WRMSR"
            );
        } else {
            let want = (b.next_pc(), [1, 2, 0], 5);
            assert_eq!((rip, regs, ran), want, "on to SYSCALL's stub");
        }
        assert_eq!(link, 0, "not a linkable edge");
    }
}

#[test]
fn fault_exit_restores_the_faulting_instruction_start() {
    let mut h = Harness::new();
    let code = asm(|a| {
        a.mov(rax, 0x1234u64)?;
        a.mov(rcx, rax)?;
        a.mov(qword_ptr(rbx), rcx)?;
        a.mov(rdx, 7u64)?;
        a.hlt()
    });
    h.load(0x1000, &code);
    let b = h.decode(0x1000, 64);
    let host = h.install(&b).expect("translate");
    h.cpu.gpr[reg::RBX] = 0x1_0000_0000;
    h.cpu.gpr[reg::RDX] = 0x99;
    let r = h.enter(host);
    assert_eq!(r, ExitReason::Exception as u64);
    assert_eq!(h.cpu.rip, b.insns[2].ip());
    assert_eq!(h.cpu.gpr[reg::RAX], 0x1234);
    assert_eq!(h.cpu.gpr[reg::RCX], 0x1234);
    assert_eq!(h.cpu.gpr[reg::RDX], 0x99);
    assert_eq!((h.cpu.exc_vector, h.cpu.exc_addr), (14, 0x1_0000_0000));
    assert_eq!(h.m.calls.last().map(|c| c.0), Some(Helper::MemWrite));
}

#[test]
fn memory_fast_path_ends_exactly_at_ram_end() {
    let mut h = Harness::new();
    let host = h
        .install_raw(0, |e| {
            let a = e.load_state(Ty::I64, off_gpr(1));
            let v = e.load_mem(Ty::I64, a);
            e.store_state(off_gpr(0), v);
            let v32 = e.convert(crate::ir::Conv::Trunc, v, Ty::I32);
            let a2 = e.load_state(Ty::I64, off_gpr(2));
            e.store_mem(a2, v32);
            e.exit(Exit::Status);
        })
        .expect("compile");
    let end = RAM_SIZE as u64;
    h.m.ram[RAM_SIZE - 8..].copy_from_slice(&0x0807_0605_0403_0201u64.to_le_bytes());
    h.cpu.gpr[1] = end - 8;
    h.cpu.gpr[2] = end - 4;
    assert_eq!(h.enter(host), 0);
    assert_eq!(h.cpu.gpr[0], 0x0807_0605_0403_0201);
    assert!(
        h.m.calls.is_empty(),
        "inline path expected: {:?}",
        h.m.calls
    );
    // One byte further: the helper is asked and faults.
    h.cpu.gpr[1] = end - 7;
    assert_eq!(h.enter(host), ExitReason::Exception as u64);
    assert_eq!(h.m.calls, vec![(Helper::MemRead, [end - 7, 8, 0])]);
    h.m.calls.clear();
    h.cpu.gpr[1] = end - 8;
    h.cpu.gpr[2] = end - 3;
    assert_eq!(h.enter(host), ExitReason::Exception as u64);
    assert_eq!(
        h.m.calls,
        vec![(Helper::MemWrite, [end - 3, 4, 0x0403_0201])]
    );
    // Wrapping addresses never pass the bounds check.
    h.m.calls.clear();
    h.cpu.gpr[1] = u64::MAX - 2;
    assert_eq!(h.enter(host), ExitReason::Exception as u64);
    assert_eq!(h.m.calls.len(), 1);
}

#[test]
fn stores_to_code_pages_take_the_helper() {
    let mut h = Harness::new();
    let host = h
        .install_raw(0, |e| {
            let a = e.load_state(Ty::I64, off_gpr(1));
            let v = e.load_state(Ty::I64, off_gpr(0));
            e.store_mem(a, v);
            e.exit(Exit::Status);
        })
        .expect("compile");
    h.m.clear_code_pages();
    h.m.set_code_page(5, true);
    h.cpu.gpr[0] = 0x1122_3344_5566_7788;
    for (addr, via_helper) in [
        (0x3ff8, false),
        // The page below a code page: one guard byte covers both, so the helper decides
        // (and finds no code: not an SMC write).
        (0x4ff0, true),
        (0x4ffc, true), // straddles into page 5
        (0x5000, true),
        (0x5ff8, true),
        (0x6000, false),
    ] {
        h.m.calls.clear();
        h.cpu.gpr[1] = addr;
        assert_eq!(h.enter(host), 0);
        assert_eq!(
            h.m.calls.len(),
            usize::from(via_helper),
            "store at {addr:#x}"
        );
        let a = addr as usize;
        assert_eq!(h.m.ram[a..a + 8], 0x1122_3344_5566_7788u64.to_le_bytes());
    }
    assert_eq!(h.m.smc_writes, 3);
}

#[test]
fn direct_exits_link_through_slots() {
    let mut h = Harness::new();
    h.m.linking = true;
    // Two blocks split by the instruction cap: the first falls through into the second.
    let code = asm(|a| {
        a.mov(rax, 1u64)?;
        a.mov(rcx, 2u64)?;
        a.mov(rdx, 3u64)?;
        a.hlt()
    });
    h.load(0x1000, &code);
    let first = h.decode(0x1000, 2);
    let host = h.install(&first).expect("translate");
    h.cpu.rip = 0x1000;
    // Unlinked: the slot holds the exit stub, which returns Jump with the slot recorded.
    assert_eq!(h.enter(host), ExitReason::Jump as u64);
    assert_eq!(h.cpu.rip, first.next_pc());
    let slot = h.cpu.link_slot;
    assert_eq!(slot, &h.m.slots[0] as *const u64 as u64);
    let second = h.decode(first.next_pc(), 1);
    let second_host = h.install(&second).expect("translate");
    h.m.slots[0] = second_host as u64;
    // Linked: one entry runs both blocks; the second leaves through its own unlinked slot.
    *h.cpu = CpuState::default();
    assert_eq!(h.enter(host), ExitReason::Jump as u64);
    assert_eq!(h.cpu.gpr[..3], [1, 2, 3]);
    assert_eq!(h.cpu.icount, 3);
    assert_eq!(h.cpu.rip, second.next_pc());
    assert_eq!(h.cpu.link_slot, &h.m.slots[1] as *const u64 as u64);
    assert!(h.m.calls.iter().all(|c| c.0 != Helper::Lookup));
}

#[test]
fn self_loops_run_until_the_budget_ends_them() {
    let mut h = Harness::new();
    h.m.linking = true;
    // A block that branches back to its own start: the loop stays inside one entry.
    let code = asm(|a| {
        let mut top = a.create_label();
        a.set_label(&mut top)?;
        a.mov(rax, rcx)?;
        a.cmp(rax, rcx)?;
        a.je(top)
    });
    h.load(0x2000, &code);
    let b = h.decode(0x2000, 64);
    assert_eq!(b.insns.len(), 3);
    h.install(&b).expect("translate");
    h.cpu.rip = 0x2000;
    h.cpu.icount_limit = 3 * 1000;
    // Only the first exit goes through the dispatcher, every later one stays in code.
    let r = h.run(10);
    assert_eq!(r, ExitReason::Budget);
    assert_eq!(h.cpu.icount, 3000);
    assert_eq!(h.cpu.rip, 0x2000);
}

#[test]
fn indirect_exits_go_through_lookup() {
    let mut h = Harness::new();
    let target = h
        .install_raw(0x7000, |e| {
            let v = e.iconst(Ty::I64, 0x77);
            e.store_state(off_gpr(3), v);
            e.exit(Exit::Return(ExitReason::Halt));
        })
        .expect("compile");
    h.m.blocks.insert(0x7000, target);
    let host = h
        .install_raw(0x1000, |e| {
            let t = e.load_state(Ty::I64, off_gpr(0));
            e.exit(Exit::Jump(t));
        })
        .expect("compile");
    h.cpu.gpr[0] = 0x7000;
    assert_eq!(h.enter(host), ExitReason::Halt as u64);
    assert_eq!(h.cpu.gpr[3], 0x77);
    assert_eq!(h.m.calls, vec![(Helper::Lookup, [0x7000, 0, 0])]);
    // Unknown target: the stub returns Jump, RIP set, no link slot.
    h.cpu.gpr[0] = 0x9000;
    h.cpu.link_slot = 5;
    assert_eq!(h.enter(host), ExitReason::Jump as u64);
    assert_eq!((h.cpu.rip, h.cpu.link_slot), (0x9000, 0));
}

#[test]
fn emitter_misuse_is_an_error_not_a_panic() {
    let mut h = Harness::new();
    let r = h.install_raw(0, |e| {
        let l = e.new_label();
        e.jump(l);
        e.bind(l);
        e.bind(l);
        e.exit(Exit::Return(ExitReason::Stop));
    });
    assert!(matches!(r, Err(JitError::Internal(_))), "{r:?}");
    let r = h.install_raw(0, |e| {
        let l = e.new_label();
        e.jump(l);
    });
    assert!(matches!(r, Err(JitError::Internal(_))), "{r:?}");
    let r = h.install_raw(0, |e| {
        let v = e.iconst(Ty::I8, 1);
        e.store_state(off_gpr(0), v);
    });
    assert!(matches!(r, Err(JitError::Internal(_))), "{r:?}");
    // Emitting after an exit goes nowhere; out-of-range state offsets are ignored.
    let host = h
        .install_raw(0, |e| {
            e.exit(Exit::Return(ExitReason::Stop));
            let v = e.iconst(Ty::I64, 5);
            e.store_state(off_gpr(0), v);
            e.store_state(u32::MAX - 3, v);
            let _ = e.load_state(Ty::I64, 100_000);
            e.exit(Exit::Return(ExitReason::Halt));
        })
        .expect("compile");
    h.cpu.gpr[0] = 1;
    assert_eq!(h.enter(host), ExitReason::Stop as u64);
    assert_eq!(h.cpu.gpr[0], 1);
    // The JIT stays usable after errors.
    let code = asm(|a| a.hlt());
    h.load(0x1000, &code);
    let b = h.decode(0x1000, 1);
    h.install(&b).expect("translate after errors");
}

#[test]
fn empty_blocks_are_refused() {
    let mut h = Harness::new();
    let b = crate::decode::decode_block(&[0x48], 0x1000, h.mode, 8);
    assert!(matches!(
        h.jit.translate(&b, h.mode, &mut *h.m),
        Err(JitError::EmptyBlock)
    ));
}

#[test]
fn helpers_that_stop_leave_through_the_fault_exit() {
    let mut h = Harness::new();
    let host = h
        .install_raw(0x3000, |e| {
            let f = e.new_label();
            e.set_fault_label(Some(f));
            // DivU by zero: the helper raises #DE through `status`.
            let z = e.iconst(Ty::I64, 0);
            e.call_helper(Helper::DivU, [z, z, z]);
            assert!(e.fault_label_used());
            e.set_fault_label(None);
            e.exit(Exit::Return(ExitReason::Stop));
            e.bind(f);
            let pc = e.iconst(Ty::I64, 0x3000);
            e.store_state(crate::state::OFF_RIP, pc);
            e.exit(Exit::Status);
        })
        .expect("compile");
    assert_eq!(h.enter(host), ExitReason::Exception as u64);
    assert_eq!(h.cpu.rip, 0x3000);
}

/// A loop that branches back to its own start runs inside one block entry and agrees with
/// the interpreter stepping it.
#[test]
fn self_loops_match_the_interpreter() {
    let code = asm(|a| {
        let mut top = a.create_label();
        a.set_label(&mut top)?;
        a.add(rax, rcx)?;
        a.mov(qword_ptr(r15 + rdx * 8), rax)?;
        a.xor(rcx, rax)?;
        a.dec(rdx)?;
        a.jnz(top)?;
        a.hlt()
    });
    let mut rng = Rng(5);
    for iterations in [1u64, 2, 7, 100] {
        let mut h = Harness::new();
        data(&mut h.m.ram);
        h.load(0x1000, &code);
        *h.cpu = cpu_with(&mut rng);
        h.cpu.gpr[reg::RDX] = iterations;
        h.cpu.rip = 0x1000;
        let start = (*h.cpu).clone();
        let block = h.decode(0x1000, 64);
        let host = h.install(&block).expect("translate");
        let r = h.enter(host);
        assert_eq!(r, ExitReason::Jump as u64);
        assert_eq!(h.cpu.icount, 5 * iterations, "charged per iteration");

        let mut m = super::Machine::new(0);
        data(&mut m.ram);
        m.ram[0x1000..0x1000 + code.len()].copy_from_slice(&code);
        let mut cpu = start;
        let mut steps = 0;
        while let Some(insn) = block.insns.iter().find(|i| i.ip() == cpu.rip) {
            if insn.mnemonic() == iced_x86::Mnemonic::Hlt || steps > 10_000 {
                break;
            }
            assert_eq!(
                crate::interp::step(&mut cpu, &mut *m, insn, h.mode),
                ExitReason::Jump
            );
            steps += 1;
        }
        cpu.icount = 5 * iterations;
        let jit = super::Observed::of(ExitReason::Jump, &h.cpu);
        assert_eq!(
            jit,
            super::Observed::of(ExitReason::Jump, &cpu),
            "{iterations}"
        );
        assert!(
            m.ram == h.m.ram,
            "RAM differs after {iterations} iterations"
        );
    }
}

/// The budget stops a self-loop at an iteration boundary with consistent state.
#[test]
fn budget_stops_a_self_loop_between_iterations() {
    let code = asm(|a| {
        let mut top = a.create_label();
        a.set_label(&mut top)?;
        a.inc(rax)?;
        a.cmp(rax, rcx)?;
        a.jne(top)?;
        a.hlt()
    });
    let mut h = Harness::new();
    h.load(0x1000, &code);
    let block = h.decode(0x1000, 64);
    let host = h.install(&block).expect("translate");
    h.cpu.gpr[reg::RCX] = 1000;
    h.cpu.icount_limit = 3 * 10 + 2;
    assert_eq!(h.enter(host), ExitReason::Budget as u64);
    assert_eq!((h.cpu.gpr[0], h.cpu.icount, h.cpu.rip), (10, 30, 0x1000));
    // Flags of the last compare are in the CPU state.
    assert_eq!(h.cpu.full_rflags() & rflags::ZF, 0);
    h.cpu.icount_limit = u64::MAX;
    assert_eq!(h.enter(host), ExitReason::Jump as u64);
    assert_eq!(h.cpu.gpr[0], 1000);
    assert_ne!(h.cpu.full_rflags() & rflags::ZF, 0);
    assert_eq!(h.cpu.rip, block.next_pc());
}

/// A self-loop whose first instruction overwrites every flag checks its budget on the back
/// edge: the flags are not carried into the head, yet a budget stop still leaves those of
/// the last compare, at every limit.
#[test]
fn budget_stops_on_the_back_edge_with_the_edge_flags() {
    let code = asm(|a| {
        let mut top = a.create_label();
        a.set_label(&mut top)?;
        a.add(rax, 1)?;
        a.cmp(rax, rcx)?;
        a.jne(top)?;
        a.hlt()
    });
    for limit in [0u64, 2, 3, 5, 30, 31, 32] {
        let mut h = Harness::new();
        h.load(0x1000, &code);
        let block = h.decode(0x1000, 64);
        let host = h.install(&block).expect("translate");
        h.cpu.gpr[reg::RCX] = 1000;
        h.cpu.icount_limit = limit;
        assert_eq!(h.enter(host), ExitReason::Budget as u64, "limit {limit}");
        let iterations = limit / 3;
        assert_eq!(
            (h.cpu.gpr[0], h.cpu.icount, h.cpu.rip),
            (iterations, 3 * iterations, 0x1000),
            "limit {limit}"
        );
        if iterations > 0 {
            // `cmp rax, rcx` with rax < rcx: a borrow, negative, nonzero.
            let f = h.cpu.full_rflags();
            assert_eq!(
                f & (rflags::CF | rflags::SF | rflags::ZF),
                rflags::CF | rflags::SF
            );
        }
        h.cpu.icount_limit = u64::MAX;
        assert_eq!(h.enter(host), ExitReason::Jump as u64);
        assert_eq!((h.cpu.gpr[0], h.cpu.icount), (1000, 3000));
        assert_ne!(h.cpu.full_rflags() & rflags::ZF, 0);
    }
}

#[test]
fn the_jit_can_move_to_a_vcpu_thread() {
    fn send<T: Send>() {}
    send::<crate::jit::Jit>();
    send::<crate::jit::CompiledBlock>();
}

/// Two blocks linked into a cycle run hundreds of thousands of tail calls in one entry
/// without growing the host stack.
#[test]
fn linked_cycles_do_not_grow_the_stack() {
    let mut h = Harness::new();
    h.m.linking = true;
    // 0x1000: inc rax ; (cap) -> 0x1003: cmp rax, rcx ; jne 0x1000 ; hlt
    let code = asm(|a| {
        let mut top = a.create_label();
        a.set_label(&mut top)?;
        a.inc(rax)?;
        a.cmp(rax, rcx)?;
        a.jne(top)?;
        a.hlt()
    });
    h.load(0x1000, &code);
    let first = h.decode(0x1000, 1);
    let second = h.decode(first.next_pc(), 64);
    let a = h.install(&first).expect("translate");
    let b = h.install(&second).expect("translate");
    // first → second through slot 0, second → first (taken) through slot 1.
    h.m.slots[0] = b as u64;
    h.m.slots[1] = a as u64;
    h.cpu.gpr[reg::RCX] = 300_000;
    h.cpu.rip = 0x1000;
    assert_eq!(h.enter(a), ExitReason::Jump as u64);
    assert_eq!(h.cpu.gpr[0], 300_000);
    assert_eq!(h.cpu.icount, 3 * 300_000);
    assert_eq!(h.cpu.rip, second.next_pc());
    assert_eq!(h.cpu.link_slot, &h.m.slots[2] as *const u64 as u64);
}

/// Random bytes in every code size and privilege level translate (no error, no panic).
#[test]
fn hostile_bytes_translate_in_every_mode() {
    let mut h = Harness::new();
    let mut rng = Rng(4242);
    for round in 0..fuzz_rounds(400) {
        let mode = crate::Mode::new(
            [16, 32, 64][rng.below(3) as usize],
            [0, 3][rng.below(2) as usize],
        );
        let len = 1 + rng.below(64) as usize;
        let code: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let block = crate::decode::decode_block(&code, 0x1000 + rng.below(0x1000), mode, 64);
        if block.insns.is_empty() {
            continue;
        }
        if let Err(e) = h.jit.translate(&block, mode, &mut *h.m) {
            panic!("round {round} {mode:?} {code:02x?}: {e}");
        }
    }
}

/// Regression: `Ctx::rep` once took "the count is a constant" to mean "interpreter" and
/// unrolled a constant-count REP at translation time (the guest start-up's `rep stosq` over
/// .bss produced 4.3 million IR instructions and took minutes to compile).
#[test]
fn constant_count_rep_is_a_loop_not_an_unrolling() {
    let code = asm(|a| {
        a.mov(ecx, 0x2_0000u32)?;
        a.mov(edi, 0x1_0000u32)?;
        a.xor(eax, eax)?;
        a.rep().stosq()?;
        a.hlt()
    });
    let mut h = Harness::with_config(JitConfig::default());
    h.load(0x1000, &code);
    let block = h.decode(0x1000, 64);
    let c = h
        .jit
        .translate(&block, h.mode, &mut *h.m)
        .expect("translate");
    assert!(
        c.ir_insts < 2000,
        "REP unrolled: {} IR instructions",
        c.ir_insts
    );
    let mut cpu = CpuState::default();
    cpu.gpr[reg::RSP] = 0x8_0000;
    assert_same(&code[..code.len() - 1], &cpu);
}

/// Instructions that write only some flags (ROR: CF OF; BT: CF; MUL: CF OF) at the start of a
/// block keep the entry flags lazily (`StoredWith`); reads of the untouched flags, a
/// conditional exit and the write-back must still see the entry flags. Entry flags come
/// from a lazy descriptor, as a previous block leaves them.
#[test]
fn partial_flag_writers_keep_the_entry_flags() {
    let codes = [
        asm(|a| {
            a.ror(eax, 1)?;
            a.setz(bl)?;
            a.sets(bh)?;
            a.setp(cl)?;
            a.setc(ch)?;
            a.hlt()
        }),
        asm(|a| {
            a.bt(eax, 3)?;
            a.rol(edx, 5)?;
            a.mul(esi)?;
            a.hlt()
        }),
        asm(|a| {
            a.ror(rax, 7)?;
            let mut l = a.create_label();
            a.jz(l)?;
            a.mov(ebx, 1)?;
            a.set_label(&mut l)?;
            a.nop()
        }),
    ];
    let mut rng = Rng(41);
    for code in &codes {
        for i in 0..16 {
            let mut cpu = cpu_with(&mut rng);
            // Alternate between flags held in RFLAGS and a lazy SUB descriptor.
            if i % 2 == 0 {
                cpu.flags_op = crate::flags::encode_op(crate::flags::FlagOp::Sub, Ty::I32);
                cpu.flags_a = rng.next() & 0xffff_ffff;
                cpu.flags_b = rng.next() & 0xff;
                cpu.flags_res = cpu.flags_a.wrapping_sub(cpu.flags_b) & 0xffff_ffff;
            }
            assert_same(code, &cpu);
        }
    }
}
