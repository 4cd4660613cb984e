//! The step interpreter: [`translator::interp::run_block`] on one freshly decoded
//! instruction, which evaluates its semantics directly. The DBT engine (every engine) takes
//! this way through an instruction a block cannot run: a store to translated code, and
//! single-stepping under RFLAGS.TF. The `interp` engine itself runs recorded blocks (see
//! [`super::tier`]).
//!
//! Invariants:
//! - Nothing is cached: the instruction is decoded from guest memory as it is now.
//! - `icount` counts retired instructions exactly: one per instruction that completed
//!   (including HLT), none for one that faulted or stopped the VM.

use std::sync::Arc;

use iced_x86::Instruction;
use translator::decode::decode_block;
use translator::interp::{run_block, InterpEnv};
use translator::{CpuState, Exception, ExitReason, Helper, Mode};

use super::exit::{handle_exit, ExitAction};
use super::vcpu;
use super::RunOutcome;
use crate::helpers::run_helper;
use crate::machine::{not_present, Executing, Machine};
use crate::memory::Access;

impl InterpEnv for Machine {
    fn helper(&mut self, cpu: &mut CpuState, h: Helper, args: [u64; 3]) -> u64 {
        run_helper(self, cpu, h, args)
    }

    fn run_stub(
        &mut self,
        cpu: &mut CpuState,
        stub: &translator::hostexec::HostStub,
        how: translator::hostexec::StubCall,
    ) {
        match self.stubs.addr(&stub.code) {
            Some(addr) => crate::fpu::run_stub(self, cpu, addr, how),
            None => {
                let why = "the host-stub cache is full".into();
                let fx =
                    crate::run_state::Effects::stop(crate::machine::StopRequest::Internal(why));
                self.run.post(cpu, fx);
            }
        }
    }
}

/// Decodes the instruction at guest-virtual `vpc`.
fn decode_at(
    m: &mut Machine,
    cpu: &CpuState,
    vpc: u64,
    mode: Mode,
) -> Result<Arc<[Instruction]>, Exception> {
    let f = m.fetch_code(cpu, vpc)?;
    let block = decode_block(&f.bytes, vpc, mode, 1);
    if block.insns.is_empty() {
        // The instruction runs past readable memory: its fetch faults there.
        return Err(not_present(
            crate::system::mode::code_linear(cpu, vpc).wrapping_add(f.bytes.len() as u64),
            Access::Fetch,
        ));
    }
    if let (true, Some(next)) = (block.byte_len() > f.first_len as u64, f.next_phys) {
        // The instruction runs onto the next page: now it is fetched (A bits).
        m.next_code_page_is(cpu, vpc, next);
    }
    Ok(block.insns.into())
}

/// Interprets `insns`; `None` to continue, or how the run ends.
fn execute(
    m: &mut Machine,
    cpu: &mut CpuState,
    insns: &[Instruction],
    mode: Mode,
) -> Option<RunOutcome> {
    let r = run_block(cpu, m, insns, mode);
    cpu.icount += r.retired;
    vcpu::settle(m);
    if r.exit == ExitReason::Jump {
        return None;
    }
    match handle_exit(m, cpu, r.exit as u64) {
        // The interpreter performs stores to code itself, so SingleStep cannot come back.
        ExitAction::Continue { .. } | ExitAction::SingleStep => None,
        ExitAction::Stop(outcome) => Some(outcome),
    }
}

/// A failed instruction fetch at `cpu.rip`: delivered to the guest; `Some` if that stops
/// the run.
fn fetch_fault(m: &mut Machine, cpu: &mut CpuState, exc: Exception) -> Option<RunOutcome> {
    vcpu::raise(m, cpu, exc).err()
}

/// Executes the single instruction at `cpu.rip` with the interpreter, without caching its
/// decoding (the DBT engine's way through a store to translated code). `None` to continue.
pub fn single_step(m: &mut Machine, cpu: &mut CpuState) -> Option<RunOutcome> {
    step_decoded(m, cpu).err()
}

/// [`single_step`], returning the instruction it decoded (`None` if its fetch faulted, the
/// fault delivered), or how the run ends.
pub fn step_decoded(
    m: &mut Machine,
    cpu: &mut CpuState,
) -> Result<Option<Instruction>, RunOutcome> {
    m.executing = Executing::Interp;
    let mode = crate::system::mode::mode(cpu);
    let insns = match decode_at(m, cpu, cpu.rip, mode) {
        Ok(insns) => insns,
        Err(exc) => return fetch_fault(m, cpu, exc).map_or(Ok(None), Err),
    };
    match execute(m, cpu, &insns[..1], mode) {
        Some(outcome) => Err(outcome),
        None => Ok(Some(insns[0])),
    }
}
