//! [`RunState`]: the vCPU's run control — whether it is halted, the interrupt shadow, NMI
//! blocking, a pending single-step trap, stop requests (from the guest's devices and from
//! other host threads), the instruction limit, and the run loop's "mappings changed" mark.
//! None of it is a register the guest can read; all of it decides what the run loop
//! (`engine::vcpu`) does between blocks.
//!
//! It lives in [`crate::machine::Machine::run`] because helpers reach nothing else while
//! generated code runs (`CpuState::runtime` names the machine), but it is not machine
//! state: devices and the MMU never read it.
//!
//! Handlers do not write it: a hypercall handler returns its [`Effects`], the helper that ran
//! it hands them over with [`RunState::post`] (which only ends the slice or the block when
//! the loop must look soon), and the run loop applies them when the block or instruction
//! returns (`engine::vcpu::settle`, the one place that does).
//!
//! Invariants:
//! - Only the run loop writes `halted`, `interrupt_shadow`, `nmi_blocked`,
//!   `step_trap_pending` and `stop`, and clears `mappings_changed`; everything else posts
//!   [`Effects`], and [`RunState::pending`] is empty whenever the loop decides what to do
//!   next (it settles after every block exit and every interpreted instruction).
//! - `stop` is looked at after every block exit before anything else: a block that asks to
//!   stop also leaves with `ExitReason::Stop`, so no further guest instruction runs.
//! - `insn_limit` is the user's limit; `CpuState::icount_limit` never exceeds it during a
//!   run (it is the end of the current slice).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use translator::{CpuState, ExitReason};

/// Why a device or a helper asked the VM to stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopRequest {
    /// The guest wrote this value to the isa-debug-exit port.
    DebugExit(u32),
    /// A runtime bug was caught (e.g. a panic inside a helper).
    Internal(String),
    /// A software interrupt's delivery ended in a triple fault; the report.
    TripleFault(String),
    /// The guest powered the board off (ACPI S5).
    PowerOff,
    /// The guest reset the board (reset control register, i8042, ACPI reset register).
    Reset,
}

/// The vCPU's run control. See the module invariants.
#[derive(Debug)]
pub struct RunState {
    /// The vCPU executed HLT and waits for an interrupt.
    pub halted: bool,
    /// The RIP of the instruction in the interrupt shadow of STI, MOV SS or POP SS: no
    /// interrupt is taken before it completes (see `engine::vcpu::service`).
    pub interrupt_shadow: Option<u64>,
    /// NMI blocking: set when an NMI is delivered, cleared by the next IRET that completes
    /// (SDM Vol. 3A §6.7.1); a pending NMI waits meanwhile.
    pub nmi_blocked: bool,
    /// SYSRET restored RFLAGS.TF: the single-step #DB is due before the next instruction
    /// (taken by `engine::debug::step`).
    pub step_trap_pending: bool,
    /// Set when a device or helper asks the VM to stop.
    pub stop: Option<StopRequest>,
    /// Set by another thread to stop the run (the `Vm`'s stop handle); the run loop
    /// polls it before every block it dispatches and while halted.
    pub stop_flag: Arc<AtomicBool>,
    /// The host's NMI button (the `Vm`'s NMI handle): an edge on the board's NMI
    /// line, taken by the run loop between blocks and while halted.
    pub nmi_button: Arc<AtomicBool>,
    /// The user's instruction limit (`u64::MAX` for none); `CpuState::icount_limit` is the
    /// end of the current slice the run loop chose.
    pub insn_limit: u64,
    /// Set when virtual-to-physical mappings may have changed wholesale (a TLB flush, the host
    /// replacing the CPU state); the dispatcher then drops virtual-PC-keyed state (the jump
    /// cache, a pending link) and clears it. INVLPG drops its own window of the jump cache
    /// instead (see `Machine::invlpg`).
    pub mappings_changed: bool,
    /// With `mappings_changed`: global translations may have changed too (a global flush,
    /// the host replacing the CPU state), so nothing found through them may be kept. Cleared
    /// with it.
    pub global_mappings_changed: bool,
    /// A device register write may have made an interrupt deliverable; the helper that
    /// caused it ends the current slice, so the run loop looks. (The one request that is
    /// not returned: it arises deep in the guest memory path, whose callers only see
    /// whether the store was done.)
    pub interrupt_check: bool,
    /// Effects posted by handlers since the run loop last settled (see the module doc).
    pub pending: Effects,
    /// Something was posted since the run loop last settled (settling is then a single
    /// test: it runs after every block).
    pub posted: bool,
}

/// What a handler asks of the run loop, returned instead of written into [`RunState`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct Effects {
    /// HLT: the vCPU waits for an interrupt after this instruction.
    pub halt: bool,
    /// STI, MOV SS or POP SS: the instruction at this RIP runs before any interrupt.
    pub shadow: Option<u64>,
    /// A completed IRET ends NMI blocking.
    pub end_nmi_blocking: bool,
    /// SYSRET restored RFLAGS.TF: a single-step #DB is due before the next instruction.
    pub step_trap: bool,
    /// A device or the runtime asks the VM to stop.
    pub stop: Option<StopRequest>,
    /// An interrupt may have become deliverable: the run loop should look before the next
    /// block.
    pub check_interrupts: bool,
}

impl Effects {
    /// Asks the VM to stop.
    pub fn stop(req: StopRequest) -> Effects {
        Effects {
            stop: Some(req),
            ..Effects::default()
        }
    }

    /// Nothing for the run loop to do.
    pub fn is_empty(&self) -> bool {
        !(self.halt
            || self.shadow.is_some()
            || self.end_nmi_blocking
            || self.step_trap
            || self.stop.is_some()
            || self.check_interrupts)
    }

    /// `later`'s effects after these (a later shadow or stop replaces an earlier one).
    pub fn merge(&mut self, later: Effects) {
        self.halt |= later.halt;
        self.shadow = later.shadow.or(self.shadow);
        self.end_nmi_blocking |= later.end_nmi_blocking;
        self.step_trap |= later.step_trap;
        self.stop = later.stop.or(self.stop.take());
        self.check_interrupts |= later.check_interrupts;
    }
}

impl RunState {
    /// Hands a handler's effects to the run loop from inside a block (a helper, the trap
    /// handler): they wait in [`RunState::pending`] until the block returns; an interrupt
    /// check ends the slice (the next block entry returns at once) and a stop ends the block
    /// (`ExitReason::Stop`), so the loop sees them before any further guest instruction.
    pub fn post(&mut self, cpu: &mut CpuState, fx: Effects) {
        // Nothing to apply: most hypercalls return no effect, and settling one is not free.
        if fx.is_empty() {
            return;
        }
        if fx.check_interrupts {
            cpu.icount_limit = 0;
        }
        if fx.stop.is_some() {
            cpu.status = ExitReason::Stop as u64;
        }
        self.pending.merge(fx);
        self.posted = true;
    }
}

impl Default for RunState {
    fn default() -> Self {
        RunState {
            halted: false,
            interrupt_shadow: None,
            nmi_blocked: false,
            step_trap_pending: false,
            stop: None,
            stop_flag: Default::default(),
            nmi_button: Default::default(),
            insn_limit: u64::MAX,
            mappings_changed: false,
            global_mappings_changed: false,
            interrupt_check: false,
            pending: Effects::default(),
            posted: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_default_effects_are_empty_and_posting_them_marks_nothing() {
        assert!(Effects::default().is_empty());
        let each = [
            Effects {
                halt: true,
                ..Effects::default()
            },
            Effects {
                shadow: Some(0),
                ..Effects::default()
            },
            Effects {
                end_nmi_blocking: true,
                ..Effects::default()
            },
            Effects {
                step_trap: true,
                ..Effects::default()
            },
            Effects::stop(StopRequest::PowerOff),
            Effects {
                check_interrupts: true,
                ..Effects::default()
            },
        ];
        for fx in each {
            assert!(!fx.is_empty(), "{fx:?}");
        }
        let (mut run, mut cpu) = (RunState::default(), CpuState::default());
        run.post(&mut cpu, Effects::default());
        assert!(!run.posted);
        assert_eq!(cpu.icount_limit, u64::MAX);
        run.post(
            &mut cpu,
            Effects {
                check_interrupts: true,
                ..Effects::default()
            },
        );
        assert!(run.posted);
        assert_eq!(cpu.icount_limit, 0);
    }
}
