//! Runs of pushes and pops checked once (`ctx::stack_run`): inside RAM they run as the
//! interpreter does; a run whose range is not plain RAM (outside it, or on a page holding
//! translated code) leaves before its first instruction with that instruction's state, for
//! the dispatcher to single-step.

use iced_x86::code_asm::*;

use super::{asm, differential_with, step_on, Harness};
use crate::jit::{JitConfig, OptLevel, Regalloc};
use crate::state::{reg, CpuState, ExitReason};

/// `ADD RAX, 1`, then a run (PUSH RAX, PUSH RBX, PUSH imm, POP RCX, POP RDX, PUSH RSI),
/// then `ADD RAX, RCX`, and a jump out.
fn code() -> Vec<u8> {
    asm(|a| {
        a.add(rax, 1)?;
        a.push(rax)?;
        a.push(rbx)?;
        a.push(0x1234)?;
        a.pop(rcx)?;
        a.pop(rdx)?;
        a.push(rsi)?;
        a.add(rax, rcx)?;
        let mut out = a.create_label();
        a.jmp(out)?;
        a.set_label(&mut out)?;
        a.nop()
    })
}

fn cpu(top: u64) -> CpuState {
    let mut cpu = CpuState::default();
    for (i, g) in cpu.gpr.iter_mut().enumerate() {
        *g = 0x0101_0101_0101_0101u64.wrapping_mul(i as u64 + 1);
    }
    cpu.gpr[reg::RSP] = top;
    cpu.icount = 100;
    cpu.icount_limit = 1_000;
    cpu
}

fn configs() -> [JitConfig; 2] {
    let quick = JitConfig {
        opt_level: OptLevel::None,
        regalloc: Regalloc::SinglePass,
        ..JitConfig::default()
    };
    [JitConfig::default(), quick]
}

#[test]
fn a_run_inside_ram_runs_as_the_interpreter_does() {
    for config in configs() {
        let cpu = cpu(0x8_0000);
        let (jit, interp, ram_same) = differential_with(config, &code(), 0x1000, &cpu, |_| {});
        assert_eq!(jit, interp, "{config:?}");
        assert!(ram_same, "{config:?}: RAM differs");
        assert_eq!(jit.exit, ExitReason::Jump);
        assert_eq!(jit.gpr[reg::RCX], 0x1234);
        assert_eq!(jit.gpr[reg::RDX], cpu.gpr[reg::RBX]);
        assert_eq!(jit.gpr[reg::RSP], 0x8_0000 - 16);
        assert_eq!(jit.icount, 100 + 9);
    }
}

/// The run leaves before its first PUSH: RIP at it, the ADD before it committed and
/// charged, nothing of the run done; the steps after it then do what the interpreter does.
fn leaves_before_the_run(h: &mut Harness, top: u64) {
    let code = code();
    h.load(0x1000, &code);
    let block = h.decode(0x1000, 64);
    let push = block.insns[1].ip();
    let host = h.install(&block).expect("translate");
    *h.cpu = cpu(top);
    h.cpu.rip = 0x1000;
    let ram = h.m.ram.clone();
    let exit = ExitReason::from_u64(h.enter(host));
    assert_eq!(exit, Some(ExitReason::CodeModified));
    assert_eq!(h.cpu.rip, push, "RIP at the run's first instruction");
    assert_eq!(h.cpu.icount, 101, "only the ADD charged");
    assert_eq!(
        h.cpu.gpr[reg::RAX],
        cpu(top).gpr[reg::RAX] + 1,
        "ADD committed"
    );
    assert_eq!(h.cpu.gpr[reg::RSP], top, "no push committed");
    assert!(h.m.ram == ram, "no push stored");
}

#[test]
fn a_run_outside_ram_leaves_before_it_and_its_first_push_faults() {
    for config in configs() {
        let mut h = Harness::with_config(config);
        leaves_before_the_run(&mut h, 0x7000_0000_0000);
        let (block, mode) = (h.decode(0x1000, 64), h.mode);
        assert_eq!(step_on(&mut h, &block, mode), ExitReason::Exception);
        assert_eq!(h.cpu.exc_vector, 14, "#PF at the first push");
        assert_eq!(h.cpu.rip, block.insns[1].ip());
        // The differential harness agrees with the interpreter on the whole outcome.
        let cpu = cpu(0x7000_0000_0000);
        let (jit, interp, ram_same) = differential_with(config, &code(), 0x1000, &cpu, |_| {});
        assert_eq!(jit, interp, "{config:?}");
        assert!(ram_same);
    }
}

#[test]
fn a_run_onto_a_code_page_leaves_for_the_helpers() {
    for config in configs() {
        let mut h = Harness::with_config(config);
        // The stack's page holds translated code: each store must reach the helper.
        h.m.set_code_page(0x8_0000 >> 12, true);
        leaves_before_the_run(&mut h, 0x8_1000);
        let (block, mode) = (h.decode(0x1000, 64), h.mode);
        assert_eq!(step_on(&mut h, &block, mode), ExitReason::Jump);
        assert_eq!(h.cpu.gpr[reg::RCX], 0x1234);
        assert_eq!(h.cpu.gpr[reg::RSP], 0x8_1000 - 16);
        assert_eq!(h.cpu.icount, 109);
        assert!(
            h.m.smc_writes > 0,
            "stores to the marked page took the helper"
        );
    }
}
