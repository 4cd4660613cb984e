//! What the run loop does between blocks, the same for every engine: advance the devices'
//! clocks, take a pending interrupt (DESIGN.md: interrupts are taken at block boundaries),
//! sleep while halted, and deliver guest exceptions through the IDT.
//!
//! Invariants:
//! - Generated code returns to the dispatcher at least every [`SLICE`] guest instructions
//!   (`icount_limit` is the end of the current slice, never beyond the user's limit in
//!   [`Machine::insn_limit`]); a handler that may have unmasked an interrupt (STI, POPF,
//!   MOV CR8, EOI) sets `icount_limit = 0` so the next block entry returns at once.
//! - An exception or interrupt is delivered with the architectural state of an instruction
//!   boundary; a delivery that ends in a triple fault stops the VM with a report.

use std::sync::atomic::Ordering;
use std::time::Duration;

use translator::state::rflags;
use translator::{CpuState, Exception};

use super::RunOutcome;
use crate::machine::Machine;
use crate::system::delivery::{deliver, DeliveryError, Event};

/// Guest instructions between two polls of the devices.
pub const SLICE: u64 = 50_000;

/// Longest single host sleep of a halted vCPU (so a stop request is noticed).
const MAX_SLEEP: Duration = Duration::from_millis(20);

/// Polls the devices, delivers a pending interrupt if RFLAGS.IF allows, waits while halted,
/// and opens the next instruction slice. `Err` stops the run.
pub fn service(m: &mut Machine, cpu: &mut CpuState) -> Result<(), RunOutcome> {
    loop {
        if m.stop_flag.swap(false, Ordering::Relaxed) {
            return Err(RunOutcome::Stopped);
        }
        let now = m.tsc.read();
        m.platform.update(now);
        cpu.cr8 = m.platform.tpr();
        if let Some(pc) = m.interrupt_shadow.take() {
            let deliverable = cpu.rflags & rflags::IF != 0 && m.platform.has_interrupt();
            if pc == cpu.rip && !m.halted && deliverable {
                // The shadow of STI (or MOV SS): the next instruction completes first
                // (`sti; hlt` then halts and is woken by this interrupt, instead of missing it).
                if let Some(outcome) = super::interp::single_step(m, cpu) {
                    return Err(outcome);
                }
            }
        }
        if cpu.rflags & rflags::IF != 0 && m.platform.has_interrupt() {
            if let Some(vector) = m.platform.acknowledge() {
                m.halted = false;
                m.interrupts_delivered += 1;
                let rip = cpu.rip;
                deliver(m, cpu, Event::External(vector), rip).map_err(triple_fault)?;
            }
        }
        if !m.halted {
            break;
        }
        if cpu.rflags & rflags::IF == 0 || (cpu.idtr.base == 0 && cpu.idtr.limit == 0) {
            // Nothing can wake the vCPU (no NMI source), or no IDT could take the interrupt
            // (the bare-metal ELF guests): the guest's way to stop.
            return Err(RunOutcome::Halted);
        }
        // Masks and routes cannot change while no guest code runs: with no open route a
        // real CPU would sleep forever, so the run ends instead.
        let Some(next) = m.platform.next_wake_ns() else {
            return Err(RunOutcome::Halted);
        };
        let wait = Duration::from_nanos(next.saturating_sub(now)).min(MAX_SLEEP);
        m.halted_ns += wait.as_nanos() as u64;
        std::thread::sleep(wait);
        if let Some(stop) = m.stop.take() {
            m.stop = Some(stop);
            return Ok(());
        }
    }
    open_slice(m, cpu);
    Ok(())
}

/// Runs `body` (an engine's run loop) with `CpuState::icount_limit` as the instruction
/// limit: outside a run it is the user's limit; inside, the end of the current slice. The
/// guest's floating-point environment is the host's for the run (see [`crate::fpu`]).
pub fn with_slices(
    m: &mut Machine,
    cpu: &mut CpuState,
    body: impl FnOnce(&mut Machine, &mut CpuState) -> RunOutcome,
) -> RunOutcome {
    m.insn_limit = cpu.icount_limit;
    // A new run resumes a vCPU that an earlier run left halted (the host decides).
    m.halted = false;
    crate::fpu::enter(cpu);
    let outcome = body(m, cpu);
    crate::fpu::leave(cpu);
    cpu.icount_limit = m.insn_limit;
    outcome
}

/// Sets `icount_limit` to the end of the next slice.
pub fn open_slice(m: &Machine, cpu: &mut CpuState) {
    cpu.icount_limit = cpu.icount.saturating_add(SLICE).min(m.insn_limit);
}

/// Delivers the guest exception `exc` raised by the instruction at `cpu.rip`.
pub fn raise(m: &mut Machine, cpu: &mut CpuState, exc: Exception) -> Result<(), RunOutcome> {
    m.exceptions += 1;
    if let Some(n) = m.exceptions_by_vector.get_mut(usize::from(exc.vector())) {
        *n += 1;
    }
    let rip = cpu.rip;
    cpu.status = 0;
    if cpu.idtr.base == 0 && cpu.idtr.limit == 0 {
        return Err(RunOutcome::Exception { exc, rip });
    }
    deliver(m, cpu, Event::Exception(exc), rip).map_err(triple_fault)
}

/// RFLAGS.TF is set: executes one instruction with the interpreter and, if it completed
/// without an exception, delivers the single-step #DB trap (DR6.BS set, RIP = the next
/// instruction). `Err` stops the run.
pub fn single_step_trap(m: &mut Machine, cpu: &mut CpuState) -> Result<(), RunOutcome> {
    let before = m.exceptions;
    if let Some(outcome) = super::interp::single_step(m, cpu) {
        return Err(outcome);
    }
    if m.exceptions == before {
        cpu.dr[6] |= 1 << 14;
        raise(m, cpu, Exception::Debug)?;
    }
    Ok(())
}

fn triple_fault(e: DeliveryError) -> RunOutcome {
    match e {
        DeliveryError::TripleFault { report } => RunOutcome::TripleFault { report },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::SerialSink;
    use translator::state::DescTable;

    /// Regression: the hostile-guest fuzz hung in `sti; hlt` with the PIC masked, because the
    /// PIT (running from reset) always had a next event even though its IRQ could not arrive.
    #[test]
    fn hlt_with_every_route_masked_stops_instead_of_sleeping_forever() {
        let mut m = Machine::new(4 << 20, SerialSink::Capture).unwrap();
        let mut cpu = CpuState {
            rflags: rflags::FIXED | rflags::IF,
            idtr: DescTable {
                base: 0x1000,
                limit: 0xFFF,
            },
            ..CpuState::default()
        };
        assert!(m.platform.next_event_ns().is_some());
        m.halted = true;
        let t0 = std::time::Instant::now();
        assert_eq!(service(&mut m, &mut cpu), Err(RunOutcome::Halted));
        assert!(t0.elapsed() < Duration::from_secs(1));
        assert_eq!(m.halted_ns, 0, "it never slept");
    }
}
