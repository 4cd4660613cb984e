//! The one vCPU loop, [`run`], which drives every engine through [`ExecEngine`], and what it
//! does between blocks, the same for every engine ([`service`]): advance the devices'
//! clocks, feed console input to the UART, take a pending NMI (unless one is being handled:
//! IRET ends the blocking) or interrupt (DESIGN.md: interrupts are taken at block
//! boundaries), sleep while halted (woken early by the machine's doorbell), and deliver
//! guest exceptions through the IDT. Effects that handlers posted while guest code ran
//! become run state in [`settle`], and only there.
//!
//! Invariants:
//! - Generated code returns to the dispatcher at least every [`SLICE`] guest instructions
//!   (`icount_limit` is the end of the current slice, never beyond the user's limit in
//!   [`crate::run_state::RunState::insn_limit`]); a handler that may have unmasked an
//!   interrupt (STI, POPF, MOV CR8, EOI) sets `icount_limit = 0` so the next block entry
//!   returns at once. `CpuState::irq_pending` is whether an interrupt was pending when the
//!   slice opened: with the rule before, in-line STI (which sets IF only) knows from it
//!   and `icount_limit` whether one may be pending now.
//! - The slice, the instruction limit, stop requests, halting, interrupts, debug stepping
//!   and changed mappings are looked at here only; an engine never loops past them (its
//!   `run_block` returns whenever one of them may need the loop).
//! - An exception or interrupt is delivered with the architectural state of an instruction
//!   boundary; a delivery that ends in a triple fault stops the VM with a report.

use std::sync::atomic::Ordering;
use std::time::Duration;

use translator::state::{rflags, NO_SHADOW};
use translator::{CpuState, Exception};

use super::RunOutcome;
use crate::machine::Machine;
use crate::system::delivery::{deliver, DeliveryError, Event};

/// The NMI's interrupt vector.
const NMI_VECTOR: u8 = 2;

/// Guest instructions between two polls of the devices.
pub const SLICE: u64 = 50_000;

/// Longest single host sleep of a halted vCPU (a stop from a signal handler, which cannot
/// ring the doorbell, is noticed by then).
const MAX_SLEEP: Duration = Duration::from_millis(20);

/// Polls the devices, delivers a pending interrupt if RFLAGS.IF allows, waits while halted,
/// and opens the next instruction slice. `Err` stops the run.
pub fn service(m: &mut Machine, cpu: &mut CpuState) -> Result<(), RunOutcome> {
    loop {
        if m.run.stop_flag.swap(false, Ordering::Relaxed) {
            return Err(RunOutcome::Stopped);
        }
        pump_console(m);
        super::debug::pending_step_trap(m, cpu)?;
        let now = m.tsc.read();
        m.platform.update(now);
        cpu.cr8 = m.platform.tpr();
        // A shadow a handler posted, or one an in-line STI left in the CPU state: only the
        // one naming the instruction at RIP matters (see `RunState::interrupt_shadow`).
        let posted = m.run.interrupt_shadow.take();
        let inline = std::mem::replace(&mut cpu.sti_shadow, NO_SHADOW);
        let shadowed = posted == Some(cpu.rip) || (inline != NO_SHADOW && inline == cpu.rip);
        if shadowed {
            // MOV SS also blocks NMIs for one instruction (and STI may: SDM Vol. 3A §6.8.3).
            let nmi = !m.run.nmi_blocked && m.platform.nmi_pending();
            let deliverable = nmi || (cpu.rflags & rflags::IF != 0 && m.platform.has_interrupt());
            if !m.run.halted && deliverable {
                // The shadow of STI (or MOV SS): the next instruction completes first
                // (`sti; hlt` then halts and is woken by this interrupt, instead of missing it).
                if super::debug::active(cpu) {
                    super::debug::step(m, cpu)?;
                } else if let Some(outcome) = super::interp::single_step(m, cpu) {
                    return Err(outcome);
                }
            }
        }
        if m.run.nmi_button.swap(false, Ordering::Relaxed) {
            m.platform.nmi_line_edge();
        }
        // An NMI goes before maskable interrupts, whatever RFLAGS.IF, unless an earlier
        // NMI's handler has not yet executed IRET.
        if !m.run.nmi_blocked && m.platform.take_nmi() {
            m.run.halted = false;
            m.run.nmi_blocked = true;
            m.interrupts_delivered += 1;
            let rip = cpu.rip;
            super::debug::deliver_watched(m, cpu, Event::External(NMI_VECTOR), rip)?;
        }
        if cpu.rflags & rflags::IF != 0 && m.platform.has_interrupt() {
            if let Some(vector) = m.platform.acknowledge() {
                m.run.halted = false;
                m.interrupts_delivered += 1;
                let rip = cpu.rip;
                super::debug::deliver_watched(m, cpu, Event::External(vector), rip)?;
            }
        }
        if !m.run.halted {
            break;
        }
        if cpu.idtr.base == 0 && cpu.idtr.limit == 0 {
            // No IDT could take an interrupt (the bare-metal ELF guests): the guest's way
            // to stop.
            return Err(RunOutcome::Halted);
        }
        // With RFLAGS.IF = 0 only an NMI wakes the vCPU: a timer routed as an NMI, or the
        // host's NMI button while someone holds it and LINT1 passes it.
        let maskable = cpu.rflags & rflags::IF != 0;
        let nmi_can_wake = !m.run.nmi_blocked;
        let button = nmi_can_wake
            && std::sync::Arc::strong_count(&m.run.nmi_button) > 1
            && m.platform.nmi_line_open();
        let timer = match (maskable, nmi_can_wake) {
            (true, _) => m.platform.next_wake_ns(),
            (false, true) => m.platform.next_nmi_wake_ns(),
            (false, false) => None,
        };
        // Masks and routes cannot change while no guest code runs: with no open route for a
        // timer, for console input or for an NMI a real CPU would sleep forever, so the run
        // ends instead.
        let wait = match timer {
            Some(next) => Duration::from_nanos(next.saturating_sub(now)).min(MAX_SLEEP),
            None if (maskable && console_can_interrupt(m)) || button => MAX_SLEEP,
            None => return Err(RunOutcome::Halted),
        };
        // Console input and stop requests ring the doorbell: the vCPU wakes at once.
        let t0 = std::time::Instant::now();
        m.doorbell.wait(wait);
        m.halted_ns += u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if let Some(stop) = m.run.stop.take() {
            m.run.stop = Some(stop);
            return Ok(());
        }
    }
    open_slice(m, cpu);
    Ok(())
}

/// Applies the effects handlers posted while the last block or instruction ran (see
/// [`crate::run_state`]): the one place they become run state. Called whenever guest code
/// returns to the engine, before anything looks at that state.
#[inline]
pub fn settle(m: &mut Machine) {
    if std::mem::take(&mut m.run.posted) {
        apply(m);
    }
}

/// Applies the posted effects (see [`settle`]).
#[cold]
fn apply(m: &mut Machine) {
    let fx = std::mem::take(&mut m.run.pending);
    let run = &mut m.run;
    run.halted |= fx.halt;
    if let Some(pc) = fx.shadow {
        run.interrupt_shadow = Some(pc);
    }
    if fx.end_nmi_blocking {
        run.nmi_blocked = false;
    }
    run.step_trap_pending |= fx.step_trap;
    if let Some(req) = fx.stop {
        run.stop = Some(req);
    }
    // `check_interrupts` was applied when it was posted: the slice ended.
}

/// Moves waiting console input into COM1's receive FIFO as it has room (see
/// [`crate::console::ConsoleInput::pump`]).
fn pump_console(m: &mut Machine) {
    if m.console.is_active() {
        let mut input = std::mem::take(&mut m.console);
        input.pump(m.serial_mut());
        m.console = input;
    }
}

/// Whether console input could still wake a halted vCPU: input may arrive, COM1's
/// received-data interrupt is enabled and its line reaches the CPU.
fn console_can_interrupt(m: &Machine) -> bool {
    m.console.is_active()
        && m.serial().rx_interrupt_enabled()
        && m.platform.isa_irq_open(crate::devices::serial::COM1_IRQ)
}

/// What an engine's [`ExecEngine::run_block`] asks of the run loop next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Continue at `cpu.rip`.
    Continue,
    /// Execute the instruction at `cpu.rip` with [`ExecEngine::step`], then continue (a
    /// store hit translated code, or a block would overrun the user's instruction limit).
    SingleStep,
}

/// An execution engine as the run loop drives it: everything between two visits of the loop
/// is the engine's (finding, translating, linking and running blocks); the slice, the
/// instruction limit, stop requests, interrupts, halting and debug stepping are the loop's.
/// [`run`] is generic over it, so the per-block calls are static.
pub trait ExecEngine {
    /// Runs guest code at `cpu.rip` — a block, or blocks chained without the loop — until it
    /// returns to the loop. `Err` ends the run.
    fn run_block(&mut self, m: &mut Machine, cpu: &mut CpuState) -> Result<Exit, RunOutcome>;

    /// Executes the one instruction at `cpu.rip` (see [`Exit::SingleStep`]).
    fn step(&mut self, m: &mut Machine, cpu: &mut CpuState) -> Result<(), RunOutcome> {
        super::interp::single_step(m, cpu).map_or(Ok(()), Err)
    }

    /// The loop ran something between two blocks (serviced the devices, stepped an
    /// instruction for the debug registers): whatever the engine meant to do with the next
    /// block on the strength of the last one (link them) no longer holds.
    fn interrupted(&mut self) {}

    /// Virtual-to-physical mappings may have changed wholesale: drop what is keyed by
    /// virtual address, but with `keep_global` (a non-global flush) what was found through
    /// global translations.
    fn forget_mappings(&mut self, m: &mut Machine, keep_global: bool);
}

/// Runs the guest on `engine` until something stops it: the one vCPU loop. Between blocks
/// it looks at the slice and the user's instruction limit, stop requests, halting and
/// interrupts ([`service`]), debug stepping, and changed mappings; the engine runs the
/// blocks. `CpuState::icount_limit` is the user's limit outside a run and the end of the
/// current slice inside one. The guest's floating-point environment is the host's for the
/// run (see [`crate::fpu`]).
pub fn run<E: ExecEngine>(engine: &mut E, m: &mut Machine, cpu: &mut CpuState) -> RunOutcome {
    m.run.insn_limit = cpu.icount_limit;
    // A new run resumes a vCPU that an earlier run left halted (the host decides).
    m.run.halted = false;
    crate::fpu::enter(cpu);
    let outcome = match run_slices(engine, m, cpu) {
        Ok(never) => match never {},
        Err(outcome) => outcome,
    };
    crate::fpu::leave(cpu);
    cpu.icount_limit = m.run.insn_limit;
    outcome
}

/// The loop of [`run`]; it ends only with how the run ends.
fn run_slices<E: ExecEngine>(
    engine: &mut E,
    m: &mut Machine,
    cpu: &mut CpuState,
) -> Result<std::convert::Infallible, RunOutcome> {
    open_slice(m, cpu);
    service(m, cpu)?;
    loop {
        // A stop request is looked at before every block the loop enters (one relaxed
        // load), not only at slice ends: a slice of blocks that each need compiling can
        // take seconds.
        let stop_asked = m.run.stop_flag.load(Ordering::Relaxed);
        if cpu.icount >= cpu.icount_limit || m.run.halted || stop_asked {
            if cpu.icount >= m.run.insn_limit {
                return Err(RunOutcome::InstructionLimit);
            }
            engine.interrupted();
            service(m, cpu)?;
            if let Some(stop) = m.run.stop.take() {
                return Err(super::exit::stop_outcome(stop));
            }
        }
        super::debug::drop_moot_rf(m, cpu);
        if super::debug::active(cpu) {
            engine.interrupted();
            super::debug::step(m, cpu)?;
            continue;
        }
        if std::mem::take(&mut m.run.mappings_changed) {
            let keep_global = !std::mem::take(&mut m.run.global_mappings_changed);
            engine.forget_mappings(m, keep_global);
        }
        if engine.run_block(m, cpu)? == Exit::SingleStep {
            engine.step(m, cpu)?;
        }
    }
}

/// Sets `icount_limit` to the end of the next slice, and `irq_pending` to whether an
/// interrupt is pending now (within the slice, whatever may make one pending asks for an
/// interrupt check: see the module invariants).
pub fn open_slice(m: &Machine, cpu: &mut CpuState) {
    cpu.icount_limit = cpu.icount.saturating_add(SLICE).min(m.run.insn_limit);
    cpu.irq_pending = u64::from(m.platform.has_interrupt());
}

/// Delivers the guest exception `exc` raised by the instruction at `cpu.rip`.
pub fn raise(m: &mut Machine, cpu: &mut CpuState, exc: Exception) -> Result<(), RunOutcome> {
    m.exceptions += 1;
    if let Some(n) = m.exceptions_by_vector.get_mut(usize::from(exc.vector())) {
        *n += 1;
    }
    let rip = cpu.rip;
    cpu.status = 0;
    // While single-stepping for the debug registers, only the frame pushes count from here
    // on (`engine::debug::step` matches them after the delivery).
    m.debug_accesses.restart();
    if cpu.idtr.base == 0 && cpu.idtr.limit == 0 {
        return Err(RunOutcome::Exception { exc, rip });
    }
    deliver(m, cpu, Event::Exception(exc), rip).map_err(triple_fault)
}

pub(super) fn triple_fault(e: DeliveryError) -> RunOutcome {
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
        m.run.halted = true;
        let t0 = std::time::Instant::now();
        assert_eq!(service(&mut m, &mut cpu), Err(RunOutcome::Halted));
        assert!(t0.elapsed() < Duration::from_secs(1));
        assert_eq!(m.halted_ns, 0, "it never slept");
    }

    /// The shadow an in-line STI leaves in `CpuState::sti_shadow` is taken as a posted one:
    /// the instruction it names completes before the pending interrupt is delivered, and
    /// the shadow is used up. A slice opens knowing whether an interrupt is pending.
    #[test]
    fn an_inline_sti_shadow_delays_a_pending_interrupt_by_one_instruction() {
        use crate::memory::Access;
        use crate::system::delivery::tests::{init_pic, setup64, HANDLER};
        for shadow in [true, false] {
            let (mut m, mut cpu) = setup64();
            // PIC: only IRQ1 unmasked, and IRQ1 raised.
            init_pic(&mut m, 0xFD);
            m.platform.set_irq(1, true);
            assert!(m.platform.has_interrupt());
            // mov eax, 1
            m.write_virt(0x1000, 5, 0xB8 | 1 << 8).unwrap();
            cpu.rip = 0x1000;
            cpu.sti_shadow = if shadow { 0x1000 } else { NO_SHADOW };
            assert_eq!(service(&mut m, &mut cpu), Ok(()));
            assert_eq!(cpu.rip, HANDLER + 0x21, "shadow {shadow}");
            assert_eq!(cpu.gpr[0], u64::from(shadow), "shadow {shadow}");
            let pushed = m.read_virt(cpu.gpr[4], 8, Access::Read).unwrap();
            assert_eq!(pushed, if shadow { 0x1005 } else { 0x1000 });
            assert_eq!(cpu.sti_shadow, NO_SHADOW);
            assert_eq!(cpu.irq_pending, 0, "acknowledged: nothing pending");
        }
    }

    /// A byte typed while the guest halts with no timer armed wakes it within milliseconds:
    /// the console's doorbell ends the sleep and the UART's interrupt is delivered.
    #[test]
    fn console_input_wakes_a_halted_vcpu_at_once() {
        use crate::devices::PortIo;
        let (mut m, mut cpu) = crate::system::delivery::tests::setup64();
        // PIC: only IRQ4 (COM1) unmasked; the PIT's IRQ0 is masked.
        crate::system::delivery::tests::init_pic(&mut m, 0xEF);
        m.serial_mut().write(1, &[1]); // IER: received-data interrupt
        m.serial_mut().write(4, &[0x0B]); // MCR: DTR, RTS, OUT2
        assert_eq!(m.platform.next_wake_ns(), None, "no timer can wake it");
        m.run.halted = true;
        assert_eq!(
            service(&mut m, &mut cpu),
            Err(RunOutcome::Halted),
            "no input"
        );
        let bell = m.doorbell.clone();
        let writer = m.console.connect(bell);
        m.run.halted = true;
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let t = std::time::Instant::now();
            writer.send(b"k").unwrap();
            t
        });
        assert_eq!(service(&mut m, &mut cpu), Ok(()));
        let woke = std::time::Instant::now();
        let sent = sender.join().unwrap();
        let latency = woke.duration_since(sent);
        assert!(
            latency < Duration::from_millis(10),
            "woke {latency:?} after the byte"
        );
        assert!(!m.run.halted);
        assert_eq!(m.interrupts_delivered, 1);
        assert_eq!(cpu.rip, crate::system::delivery::tests::HANDLER + 0x24);
        let mut b = [0];
        m.serial_mut().read(0, &mut b);
        assert_eq!(b, *b"k");
    }
}
