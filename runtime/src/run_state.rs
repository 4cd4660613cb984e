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
//! Invariants:
//! - Only the run loop clears `halted`, takes `interrupt_shadow`, `stop` and
//!   `step_trap_pending`, sets `nmi_blocked`, and clears `mappings_changed`; handlers only
//!   request (see [`crate::system::hypercall::Effects`] once it exists).
//! - `stop` is looked at after every block exit before anything else: a block that asks to
//!   stop also leaves with `ExitReason::Stop`, so no further guest instruction runs.
//! - `insn_limit` is the user's limit; `CpuState::icount_limit` never exceeds it during a
//!   run (it is the end of the current slice).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

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
    /// A device register write may have made an interrupt deliverable; the helper that
    /// caused it ends the current slice, so the run loop looks.
    pub interrupt_check: bool,
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
            interrupt_check: false,
        }
    }
}
