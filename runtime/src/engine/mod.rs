//! Execution engines, the one vCPU loop that drives them, and the exit handling they share.
//!
//! [`vcpu::run`] runs the guest until something stops it and reports a [`RunOutcome`]; an
//! engine ([`vcpu::ExecEngine`]: [`dbt::Dbt`] with its tiering policy for `dbt`, `jit` and
//! `interp`, [`dbt::Trap`] for `trap`) only runs blocks and single instructions for it.
//! Every exit — a block returning to the dispatcher, or an interpreted instruction that did
//! not simply fall through — goes through the free function [`exit::handle_exit`], so every
//! engine gives a guest the same visible behaviour.

mod block_slab;
pub mod dbt;
pub mod debug;
pub mod exit;
pub mod interp;
pub mod tier;
pub mod trap;
pub mod vcpu;

use translator::Exception;

/// Which engine executes guest code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Engine {
    /// Tiered dynamic binary translation: blocks run in the interpreter tier until they are
    /// hot, then as Cranelift code (compiled on a second thread), cached and linked.
    #[default]
    Dbt,
    /// Dynamic binary translation compiling every block with Cranelift before it first runs.
    Jit,
    /// The interpreter: every block recorded once from the same semantics and executed as
    /// a pre-decoded program ([`translator::record`]), never compiled.
    Interp,
    /// Trap-and-emulate: translated as `Jit`, but each sensitive instruction is a real host
    /// trap handled by a signal handler ([`trap`]).
    Trap,
}

impl Engine {
    /// Every engine, in the order reports list them.
    pub const ALL: [Engine; 4] = [Engine::Dbt, Engine::Jit, Engine::Interp, Engine::Trap];

    /// The engine's short name.
    pub const fn name(self) -> &'static str {
        match self {
            Engine::Dbt => "dbt",
            Engine::Jit => "jit",
            Engine::Interp => "interp",
            Engine::Trap => "trap",
        }
    }

    /// The engine named `name`.
    pub fn from_name(name: &str) -> Option<Engine> {
        Engine::ALL.into_iter().find(|e| e.name() == name)
    }

    /// How the engine tiers (all engines are the DBT engine with a policy).
    pub fn tiering(self) -> tier::Tiering {
        match self {
            Engine::Dbt => tier::Tiering::tiered(),
            Engine::Jit | Engine::Trap => tier::Tiering::JIT,
            Engine::Interp => tier::Tiering::INTERP,
        }
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// The guest wrote this value to the isa-debug-exit port.
    DebugExit(u32),
    /// The guest executed HLT. No interrupt source exists yet, so nothing can wake it (with
    /// IF=0 this is the guest's clean way to stop).
    Halted,
    /// A guest exception raised before the guest loaded an IDT (IDTR base and limit both
    /// zero, as at reset for the bare-metal ELF guests): nothing could handle it, so the VM
    /// stops and reports it instead of escalating to a triple fault. `rip` is the faulting
    /// instruction.
    Exception {
        /// The exception.
        exc: Exception,
        /// Address of the faulting instruction.
        rip: u64,
    },
    /// The engine cannot execute the instruction at `rip` and
    /// [`crate::VmConfig::stop_on_unsupported`] asked to stop there (otherwise the guest
    /// gets #UD, as from a CPU without the feature).
    Unsupported {
        /// Address of the instruction.
        rip: u64,
        /// Its bytes (up to 15; fewer at the end of memory).
        bytes: Vec<u8>,
        /// What it is and why it is unsupported.
        what: String,
    },
    /// Delivering an exception or interrupt faulted while delivering #DF: the processor
    /// would shut down. `report` names the exception chain and dumps the guest state.
    TripleFault {
        /// The report.
        report: String,
    },
    /// The guest powered the machine off (ACPI S5 through the PM1 control register).
    PowerOff,
    /// The guest reset the machine (reset control register 0xCF9, the i8042's reset line, the
    /// ACPI reset register). popek does not reboot: the run ends, like QEMU's `-no-reboot`.
    Reset,
    /// The guest executed the configured number of instructions.
    InstructionLimit,
    /// The host asked the VM to stop through a [`crate::vm::StopHandle`] (a watchdog, a
    /// timeout); the guest state is that of an instruction boundary.
    Stopped,
    /// A bug in popek (it should never happen).
    InternalError(String),
}

impl std::fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunOutcome::DebugExit(v) => write!(f, "guest requested exit with value {v:#x}"),
            RunOutcome::Halted => write!(f, "guest halted"),
            RunOutcome::Exception { exc, rip } => {
                write!(f, "unhandled guest exception {exc} at rip {rip:#x}")
            }
            RunOutcome::Unsupported { rip, bytes, what } => {
                write!(f, "unsupported instruction at rip {rip:#x} [")?;
                for (i, b) in bytes.iter().enumerate() {
                    write!(f, "{}{b:02x}", if i == 0 { "" } else { " " })?;
                }
                write!(f, "]: {what}")
            }
            RunOutcome::TripleFault { report } => write!(f, "triple fault: {report}"),
            RunOutcome::PowerOff => write!(f, "guest powered off"),
            RunOutcome::Reset => write!(f, "guest reset the machine"),
            RunOutcome::InstructionLimit => write!(f, "instruction limit reached"),
            RunOutcome::Stopped => write!(f, "stopped by the host"),
            RunOutcome::InternalError(e) => write!(f, "internal error: {e}"),
        }
    }
}
