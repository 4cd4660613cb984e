//! Tiny guests for the dispatch benchmark: endless two-instruction loops written straight into
//! guest RAM, run for an exact number of block executions through the instruction budget.
//!
//! Every block is `add rax, 1` and a jump, so a block execution is two guest instructions and
//! ends in one block-to-block transfer of the kind the jump makes:
//! - [`Loop::Direct`]: two blocks that `jmp rel8` to each other: direct exits that the DBT
//!   links, so blocks chain through link slots without leaving generated code (a block that
//!   jumps to itself would not do: the JIT may turn it into a loop inside one function);
//! - [`Loop::Indirect`]: one block ending in `jmp rcx` back to itself, an indirect exit:
//!   generated code probes the jump cache inline and tail-calls the block it finds (the
//!   [`translator::Helper::Lookup`] helper runs only on a miss).
//!
//! [`run_blocks`] runs a loop for many blocks in one [`Vm::run`]; [`run_dispatched`] runs one
//! block per [`Vm::run`], so each block is entered from the dispatcher (jump-cache lookup,
//! entry trampoline, exit handling) and leaves through the budget check.

use std::time::{Duration, Instant};

use runtime::{Engine, RunOutcome, SerialSink, Vm, VmConfig};

/// Guest-physical (= virtual) address of the loop.
pub const LOOP_PC: u64 = 0x1000;
/// Guest instructions per block of every loop.
pub const INSNS_PER_BLOCK: u64 = 2;

/// `add rax, 1`
const ADD_RAX_1: [u8; 4] = [0x48, 0x83, 0xC0, 0x01];
/// Offset of the second block of [`Loop::Direct`] from [`LOOP_PC`].
const SECOND_BLOCK: usize = 0x10;
/// `jmp` from offset 4 to [`SECOND_BLOCK`].
const JMP_TO_SECOND: [u8; 2] = [0xEB, (SECOND_BLOCK - 6) as u8];
/// `jmp` from `SECOND_BLOCK + 4` back to offset 0.
const JMP_TO_FIRST: [u8; 2] = [0xEB, (-(SECOND_BLOCK as i8) - 6) as u8];
/// `jmp rcx`
const JMP_RCX: [u8; 2] = [0xFF, 0xE1];
/// Index of RCX in `CpuState::gpr`.
const RCX: usize = 1;

/// Which kind of jump closes the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loop {
    /// A direct jump (linked by the DBT).
    Direct,
    /// An indirect jump through RCX (a jump-cache lookup per iteration in the DBT).
    Indirect,
}

impl Loop {
    /// The loop's machine code, to be placed at [`LOOP_PC`].
    pub fn code(self) -> Vec<u8> {
        let mut code = ADD_RAX_1.to_vec();
        match self {
            Loop::Direct => {
                code.extend(JMP_TO_SECOND);
                code.resize(SECOND_BLOCK, 0xCC);
                code.extend(ADD_RAX_1);
                code.extend(JMP_TO_FIRST);
            }
            Loop::Indirect => code.extend(JMP_RCX),
        }
        code
    }

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Loop::Direct => "direct",
            Loop::Indirect => "indirect",
        }
    }
}

/// A 4 MiB VM on `engine` with `kind` at [`LOOP_PC`] and RIP on it, warmed up: the block is
/// translated (and linked to itself) before this returns.
pub fn loop_vm(engine: Engine, kind: Loop) -> Vm {
    let mut vm = Vm::new(VmConfig {
        mem_bytes: 4 << 20,
        engine,
        serial: SerialSink::Capture,
        ..VmConfig::default()
    })
    .expect("a 4 MiB VM");
    vm.write_phys(LOOP_PC, &kind.code())
        .expect("the loop fits in RAM");
    let cpu = vm.cpu_mut();
    cpu.rip = LOOP_PC;
    cpu.gpr[RCX] = LOOP_PC;
    run_blocks(&mut vm, 16);
    vm
}

/// Lets the guest execute exactly `blocks` more blocks of its loop in one [`Vm::run`];
/// returns the wall time of the run.
pub fn run_blocks(vm: &mut Vm, blocks: u64) -> Duration {
    let cpu = vm.cpu_mut();
    cpu.icount_limit = cpu.icount + blocks * INSNS_PER_BLOCK;
    let t0 = Instant::now();
    let outcome = vm.run();
    let elapsed = t0.elapsed();
    assert_eq!(
        outcome,
        RunOutcome::InstructionLimit,
        "the loop stopped early"
    );
    elapsed
}

/// Runs `blocks` blocks of the loop, one [`Vm::run`] each, so that every block is entered from
/// the dispatcher; returns the total wall time.
pub fn run_dispatched(vm: &mut Vm, blocks: u64) -> Duration {
    let t0 = Instant::now();
    for _ in 0..blocks {
        let cpu = vm.cpu_mut();
        cpu.icount_limit = cpu.icount + INSNS_PER_BLOCK;
        let outcome = vm.run();
        debug_assert_eq!(outcome, RunOutcome::InstructionLimit);
        std::hint::black_box(outcome);
    }
    t0.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_count_exactly_in_every_engine() {
        for engine in Engine::ALL {
            for kind in [Loop::Direct, Loop::Indirect] {
                let mut vm = loop_vm(engine, kind);
                let before = vm.cpu().gpr[0];
                run_blocks(&mut vm, 1000);
                run_dispatched(&mut vm, 10);
                assert_eq!(vm.cpu().gpr[0] - before, 1010, "{engine:?} {kind:?}");
                assert!((LOOP_PC..LOOP_PC + 0x20).contains(&vm.cpu().rip));
            }
        }
    }

    #[test]
    fn the_direct_loop_is_linked_and_the_indirect_one_is_not() {
        let mut direct = loop_vm(Engine::Jit, Loop::Direct);
        let mut indirect = loop_vm(Engine::Jit, Loop::Indirect);
        run_blocks(&mut direct, 1000);
        run_blocks(&mut indirect, 1000);
        let (d, i) = (direct.stats(), indirect.stats());
        assert_eq!((d.cache.links, d.dbt.blocks_translated), (2, 2), "{d}");
        assert!(d.dbt.dispatches <= 4, "{d}");
        assert_eq!((i.cache.links, i.dbt.blocks_translated), (0, 1), "{i}");
        assert!(
            i.helpers.get(translator::Helper::Lookup) <= 1,
            "inline probe hits: {i}"
        );
        assert!(i.dbt.dispatches <= 4, "{i}");
    }
}
