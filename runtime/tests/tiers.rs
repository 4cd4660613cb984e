//! The tiered DBT engine: cold blocks in the interpreter tier, hot blocks compiled, the
//! boundary between them, and byte-exact code tracking — through the public [`Vm`] API.

use iced_x86::code_asm::*;
use runtime::engine::tier::Tiering;
use runtime::{Engine, RunOutcome, SerialSink, Vm, VmConfig};

fn vm(engine: Engine, tiering: Option<Tiering>) -> Vm {
    Vm::new(VmConfig {
        mem_bytes: 16 << 20,
        engine,
        serial: SerialSink::Capture,
        instruction_limit: Some(50_000_000),
        tiering,
        ..VmConfig::default()
    })
    .unwrap()
}

fn asm(at: u64, f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    f(&mut a).unwrap();
    a.assemble(at).unwrap()
}

/// `rax` counts to `n` in a one-block loop, then `out 0xf4, eax`.
fn counting_loop(n: u32) -> Vec<u8> {
    asm(0x1000, |a| {
        let mut top = a.create_label();
        a.set_label(&mut top)?;
        a.add(rax, 1)?;
        a.cmp(eax, n)?;
        a.jb(top)?;
        a.out(0xf4, eax)
    })
}

#[test]
fn hot_blocks_are_compiled_and_cold_ones_are_not() {
    let inline = Tiering {
        compile_after: 10,
        optimize_after: Tiering::DEFAULT_OPTIMIZE_AFTER,
        background: false,
        regions: true,
    };
    for (tiering, compiled) in [
        (Some(inline), true),
        (Some(Tiering::INTERP), false),
        (Some(Tiering::JIT), true),
    ] {
        let mut v = vm(Engine::Dbt, tiering);
        v.write_phys(0x1000, &counting_loop(5)).unwrap();
        v.cpu_mut().rip = 0x1000;
        assert_eq!(v.run(), RunOutcome::DebugExit(5), "{tiering:?}");
        let s = v.stats();
        // Five iterations of the loop block: below the threshold of 10.
        if tiering == Some(inline) {
            assert_eq!(s.dbt.blocks_translated, 0, "{s}");
        } else {
            assert_eq!(s.dbt.blocks_translated > 0, compiled, "{s}");
        }
        // A long loop entered once: its iterations count, so it is compiled.
        let mut v = vm(Engine::Dbt, tiering);
        v.write_phys(0x1000, &counting_loop(100_000)).unwrap();
        v.cpu_mut().rip = 0x1000;
        assert_eq!(v.run(), RunOutcome::DebugExit(100_000), "{tiering:?}");
        assert_eq!(v.stats().dbt.blocks_translated > 0, compiled, "{tiering:?}");
    }
}

#[test]
fn background_compilation_takes_over_a_hot_loop() {
    let background = Tiering {
        compile_after: 2,
        optimize_after: Tiering::DEFAULT_OPTIMIZE_AFTER,
        background: true,
        regions: true,
    };
    let mut v = vm(Engine::Dbt, Some(background));
    // A loop of loops: the inner block is re-entered from the dispatcher often enough to see
    // its compiled code installed.
    let code = asm(0x1000, |a| {
        let mut outer = a.create_label();
        let mut inner = a.create_label();
        a.set_label(&mut outer)?;
        a.mov(ecx, 1000)?;
        a.set_label(&mut inner)?;
        a.add(rax, rcx)?;
        a.dec(ecx)?;
        a.jnz(inner)?;
        a.inc(ebx)?;
        a.cmp(ebx, 2000)?;
        a.jb(outer)?;
        a.mov(eax, ebx)?;
        a.out(0xf4, eax)
    });
    v.write_phys(0x1000, &code).unwrap();
    v.cpu_mut().rip = 0x1000;
    assert_eq!(v.run(), RunOutcome::DebugExit(2000));
    let s = v.stats();
    assert!(s.dbt.tier.background_jobs >= 1, "{s}");
    assert!(s.dbt.blocks_translated >= 1, "installed: {s}");
}

/// Regression: compiled code's indirect jump to a block that was only recorded found it
/// through the `Lookup` helper and jumped to its (absent) host code at address 0.
#[test]
fn compiled_code_never_jumps_into_a_cold_block() {
    let tiering = Tiering {
        compile_after: 3,
        optimize_after: Tiering::DEFAULT_OPTIMIZE_AFTER,
        background: false,
        regions: true,
    };
    let mut v = vm(Engine::Dbt, Some(tiering));
    // A at 0x1000: inc rax; jmp rcx
    let a_code = asm(0x1000, |a| {
        a.inc(rax)?;
        a.jmp(rcx)
    });
    // B at 0x2000: loop through A until rax = 20, then send A to C.
    let b_code = asm(0x2000, |a| {
        let mut again = a.create_label();
        a.cmp(rax, 20)?;
        a.jb(again)?;
        a.mov(ecx, 0x3000)?;
        a.set_label(&mut again)?;
        a.mov(edx, 0x1000)?;
        a.jmp(rdx)
    });
    // C at 0x3000: the first time, back to A with B as the target; then exit.
    let c_code = asm(0x3000, |a| {
        let mut done = a.create_label();
        a.cmp(rax, 1)?;
        a.ja(done)?;
        a.mov(ecx, 0x2000)?;
        a.mov(edx, 0x1000)?;
        a.jmp(rdx)?;
        a.set_label(&mut done)?;
        a.out(0xf4, eax)
    });
    v.write_phys(0x1000, &a_code).unwrap();
    v.write_phys(0x2000, &b_code).unwrap();
    v.write_phys(0x3000, &c_code).unwrap();
    let cpu = v.cpu_mut();
    cpu.rip = 0x1000;
    cpu.gpr[1] = 0x3000;
    assert_eq!(v.run(), RunOutcome::DebugExit(21));
    let s = v.stats();
    assert!(s.dbt.blocks_translated >= 1, "A was compiled: {s}");
}

/// Byte-exact code tracking: a loop storing to data on its own code page neither
/// invalidates nor single-steps, in every engine.
#[test]
fn data_next_to_code_is_not_code() {
    // The loop stores its counter 64 bytes past its own last byte, on the same page.
    let code = asm(0x1000, |a| {
        let mut top = a.create_label();
        let mut data = a.create_label();
        a.set_label(&mut top)?;
        a.inc(rax)?;
        a.mov(qword_ptr(data), rax)?;
        a.cmp(rax, 10_000)?;
        a.jb(top)?;
        a.mov(rax, qword_ptr(data))?;
        a.out(0xf4, eax)?;
        a.hlt()?;
        a.zero_bytes()?;
        for _ in 0..64 {
            a.nop()?;
        }
        a.set_label(&mut data)?;
        a.dq(&[0])
    });
    for engine in Engine::ALL {
        let mut v = vm(engine, None);
        v.write_phys(0x1000, &code).unwrap();
        v.cpu_mut().rip = 0x1000;
        assert_eq!(v.run(), RunOutcome::DebugExit(10_000), "{engine:?}");
        let s = v.stats();
        assert_eq!(s.code_modified, 0, "{engine:?}: {s}");
        assert_eq!(s.dbt.single_steps, 0, "{engine:?}: {s}");
        assert_eq!(s.cache.invalidations, 0, "{engine:?}: {s}");
    }
}

/// A block whose code the guest keeps rewriting stays in the interpreter tier instead of
/// being recompiled again and again.
#[test]
fn rewritten_code_stays_cold() {
    let tiering = Tiering {
        compile_after: 2,
        optimize_after: Tiering::DEFAULT_OPTIMIZE_AFTER,
        background: false,
        regions: true,
    };
    // 0x1000: loop 200 times: patch the immediate of `add rbx, imm8` at 0x2000, call it.
    let main = asm(0x1000, |a| {
        let mut top = a.create_label();
        a.mov(ecx, 200)?;
        a.set_label(&mut top)?;
        a.mov(byte_ptr(0x2003), cl)?;
        a.mov(edx, 0x2000)?;
        a.call(rdx)?;
        a.dec(ecx)?;
        a.jnz(top)?;
        a.mov(eax, ebx)?;
        a.out(0xf4, eax)
    });
    let callee = asm(0x2000, |a| {
        a.add(rbx, 0x7f)?;
        a.ret()
    });
    assert_eq!(&callee[..4], &[0x48, 0x83, 0xC3, 0x7F]);
    let mut v = vm(Engine::Dbt, Some(tiering));
    v.write_phys(0x1000, &main).unwrap();
    v.write_phys(0x2000, &callee).unwrap();
    let cpu = v.cpu_mut();
    cpu.rip = 0x1000;
    cpu.gpr[4] = 0x8000;
    // Sum of the low bytes of 200..1, sign-extended (imm8): 1..=127 plus -128..-56.
    let expected: i64 = (1..=200i64).map(|c| c as u8 as i8 as i64).sum();
    assert_eq!(v.run(), RunOutcome::DebugExit(expected as u32));
    let s = v.stats();
    assert!(s.dbt.tier.pinned_cold >= 1, "{s}");
    assert!(
        s.dbt.blocks_translated < 20,
        "the callee is not recompiled for every patch: {s}"
    );
}

/// Cold blocks jump to each other without the dispatcher (chained), and a chain still stops
/// exactly at the instruction limit and at a block that is due for compiling.
#[test]
fn cold_blocks_chain_and_the_chain_keeps_every_stop() {
    // Two blocks jumping to each other: `add rax, 1; jmp b` / `b: add rbx, 1; jmp top`.
    let code = asm(0x1000, |a| {
        let mut top = a.create_label();
        let mut b = a.create_label();
        a.set_label(&mut top)?;
        a.add(rax, 1)?;
        a.jmp(b)?;
        a.set_label(&mut b)?;
        a.add(rbx, 1)?;
        a.jmp(top)
    });
    let mut v = vm(Engine::Interp, None);
    v.write_phys(0x1000, &code).unwrap();
    v.cpu_mut().rip = 0x1000;
    v.cpu_mut().icount_limit = 20_001;
    assert_eq!(v.run(), RunOutcome::InstructionLimit);
    // 20,001 instructions: 5,000 of each block pair, and the first block's `add` of the next.
    assert_eq!(v.cpu().icount, 20_001);
    assert_eq!((v.cpu().gpr[0], v.cpu().gpr[3]), (5_001, 5_000));
    let s = v.stats();
    assert!(s.dbt.tier.chained > 9_000, "{s}");
    assert!(s.dbt.dispatches < 100, "{s}");

    // Tiered with a threshold of 10: the chain hands each block back to the dispatcher when
    // it is due, so both get compiled (each alone: as a region the first would take the
    // second in).
    let inline = Tiering {
        compile_after: 10,
        optimize_after: Tiering::DEFAULT_OPTIMIZE_AFTER,
        background: false,
        regions: false,
    };
    let mut v = vm(Engine::Dbt, Some(inline));
    v.write_phys(0x1000, &code).unwrap();
    v.cpu_mut().rip = 0x1000;
    v.cpu_mut().icount_limit = 1_000;
    assert_eq!(v.run(), RunOutcome::InstructionLimit);
    assert_eq!(v.cpu().gpr[0] + v.cpu().gpr[3], 500);
    assert_eq!(v.stats().dbt.blocks_translated, 2, "{}", v.stats());
}

/// Block A (`inc rax; jmp B`) and block B (`cmp rax, n; jb A; out 0xf4, eax`): each runs `n`
/// times, entered through links once compiled.
fn two_block_loop(n: u32) -> (Vec<u8>, Vec<u8>) {
    let a = asm(0x1000, |a| {
        a.inc(rax)?;
        a.jmp(0x2000u64)
    });
    let b = asm(0x2000, |a| {
        a.cmp(eax, n)?;
        a.jb(0x1000u64)?;
        a.out(0xf4, eax)
    });
    (a, b)
}

#[test]
fn a_quick_block_is_optimized_on_its_nth_run() {
    let tiering = Tiering {
        compile_after: 2,
        optimize_after: 5,
        background: false,
        regions: true,
    };
    // Runs 1 cold, 2 compiled quick and run, 3-5 quick, 6 promoted: optimized inline.
    for (n, optimized) in [(5, 0), (6, 2), (100, 2)] {
        let mut v = vm(Engine::Dbt, Some(tiering));
        let (a, b) = two_block_loop(n);
        v.write_phys(0x1000, &a).unwrap();
        v.write_phys(0x2000, &b).unwrap();
        v.cpu_mut().rip = 0x1000;
        assert_eq!(v.run(), RunOutcome::DebugExit(n));
        let s = v.stats();
        assert_eq!(s.dbt.quick.blocks, 2, "n = {n}: {s}");
        assert_eq!(s.dbt.optimized.blocks, optimized, "n = {n}: {s}");
        assert_eq!(s.dbt.tier.promotions, optimized, "n = {n}: {s}");
    }
}

#[test]
fn optimize_after_zero_and_never() {
    for (optimize_after, quick, optimized) in [(0, 0, 2), (Tiering::NEVER, 2, 0)] {
        let tiering = Tiering {
            compile_after: 2,
            optimize_after,
            background: false,
            regions: true,
        };
        let mut v = vm(Engine::Dbt, Some(tiering));
        let (a, b) = two_block_loop(1000);
        v.write_phys(0x1000, &a).unwrap();
        v.write_phys(0x2000, &b).unwrap();
        v.cpu_mut().rip = 0x1000;
        assert_eq!(v.run(), RunOutcome::DebugExit(1000));
        let s = v.stats();
        assert_eq!(s.dbt.quick.blocks, quick, "{s}");
        assert_eq!(s.dbt.optimized.blocks, optimized, "{s}");
        assert_eq!(s.dbt.tier.promotions, 0, "{s}");
    }
}

#[test]
fn a_self_loop_entered_once_is_promoted() {
    for background in [false, true] {
        let tiering = Tiering {
            compile_after: 10,
            optimize_after: 100,
            background,
            regions: true,
        };
        let mut v = vm(Engine::Dbt, Some(tiering));
        v.write_phys(0x1000, &counting_loop(10_000_000)).unwrap();
        v.cpu_mut().rip = 0x1000;
        assert_eq!(v.run(), RunOutcome::DebugExit(10_000_000));
        let s = v.stats();
        // The back edge runs through the counting prologue: the loop leaves once to be
        // promoted, and its optimized code (installed between two slices in the background
        // case) finishes it.
        assert!(s.dbt.tier.promotions >= 1, "background {background}: {s}");
        assert_eq!(s.dbt.optimized.blocks, 1, "background {background}: {s}");
    }
}

/// A loop of five blocks in one page (head and odd arm at 0x1100, even arm 0x1800, latch
/// 0x1900) counting `ecx` to 1000; at `ecx` = 501 the odd arm stores `cl` to `target` (the
/// even arm's immediate at 0x1802: code; 0x1F00: data in the same page), and the even arm
/// adds that immediate to `ebx`.
fn loop_of_five_blocks(v: &mut Vm, target: u64) {
    let entry = asm(0x1000, |a| {
        a.xor(ecx, ecx)?;
        a.xor(ebx, ebx)?;
        a.jmp(0x1100u64)
    });
    let head = asm(0x1100, |a| {
        let mut store = a.create_label();
        a.test(ecx, 1)?;
        a.jz(0x1800u64)?;
        a.cmp(ecx, 501)?;
        a.je(store)?;
        a.jmp(0x1900u64)?;
        a.set_label(&mut store)?;
        a.mov(byte_ptr(target), cl)?;
        a.jmp(0x1900u64)
    });
    let even = asm(0x1800, |a| {
        a.add(ebx, 5)?;
        a.jmp(0x1900u64)
    });
    let latch = asm(0x1900, |a| {
        a.inc(ecx)?;
        a.cmp(ecx, 1000)?;
        a.jne(0x1100u64)?;
        a.mov(eax, ebx)?;
        a.out(0xf4, eax)
    });
    assert_eq!(&even[..3], &[0x83, 0xc3, 0x05], "add ebx, imm8");
    for (at, code) in [
        (0x1000, entry),
        (0x1100, head),
        (0x1800, even),
        (0x1900, latch),
    ] {
        v.write_phys(at, &code).unwrap();
    }
    v.cpu_mut().rip = 0x1000;
}

#[test]
fn a_hot_loop_of_several_blocks_runs_as_one_region_as_exactly_as_block_by_block() {
    let tiered = |regions| Tiering {
        compile_after: 10,
        optimize_after: 0,
        background: false,
        regions,
    };
    // 500 even iterations adding 5.
    for regions in [true, false] {
        let mut v = vm(Engine::Dbt, Some(tiered(regions)));
        loop_of_five_blocks(&mut v, 0x1f00);
        assert_eq!(v.run(), RunOutcome::DebugExit(2500));
        let mut byte = [0];
        v.read_phys(0x1f00, &mut byte).unwrap();
        assert_eq!(byte, [0xf5]);
        let s = v.stats();
        assert_eq!(s.dbt.regions > 0, regions, "{s}");
        // Data next to the region's code costs nothing.
        assert_eq!(s.cache.invalidations, 0, "{s}");
    }
}

#[test]
fn a_store_into_a_later_block_of_a_region_takes_effect_at_once() {
    // Half way, an odd iteration of the compiled region rewrites the immediate the next
    // even one adds (in another block of the region).
    let mut results = Vec::new();
    for (engine, tiering) in [
        (Engine::Interp, None),
        (Engine::Jit, None),
        (
            Engine::Dbt,
            Some(Tiering {
                compile_after: 10,
                optimize_after: 0,
                background: false,
                regions: true,
            }),
        ),
        (
            // Quick code first, promoted to optimized code along the way.
            Engine::Dbt,
            Some(Tiering {
                compile_after: 10,
                optimize_after: 20,
                background: false,
                regions: true,
            }),
        ),
        (
            Engine::Dbt,
            Some(Tiering {
                compile_after: 10,
                optimize_after: 20,
                background: true,
                regions: true,
            }),
        ),
    ] {
        let mut v = vm(engine, tiering);
        loop_of_five_blocks(&mut v, 0x1802);
        results.push(v.run());
        let s = v.stats();
        if tiering.is_some_and(|t| !t.background) {
            assert!(s.dbt.regions > 0, "{s}");
            assert!(s.cache.invalidations > 0, "{s}");
        }
    }
    // 5 at the 251 even i up to 500, then 501 = 0xf5 sign-extended (-11) at the other 249.
    let expect = (251 * 5 - 249 * 11) as u32;
    for r in results {
        assert_eq!(r, RunOutcome::DebugExit(expect));
    }
}
