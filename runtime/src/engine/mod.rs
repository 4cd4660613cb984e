//! Execution engines and the exit handling they share.
//!
//! Both engines run the guest until something stops it and report a [`RunOutcome`]. Every
//! exit — a block returning to the dispatcher, or an interpreted instruction that did not
//! simply fall through — goes through the free function [`exit::handle_exit`], so both
//! engines give a guest the same visible behaviour.

pub mod dbt;
pub mod exit;
pub mod interp;

use translator::Exception;

/// Which engine executes guest code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Engine {
    /// Dynamic binary translation: blocks compiled with Cranelift, cached and linked.
    #[default]
    Dbt,
    /// The interpreter: the same semantics evaluated one instruction at a time.
    Interp,
}

impl Engine {
    /// The engine's short name.
    pub const fn name(self) -> &'static str {
        match self {
            Engine::Dbt => "dbt",
            Engine::Interp => "interp",
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
    /// A guest exception. There is no IDT delivery yet, so any exception stops the VM;
    /// `rip` is the faulting instruction.
    Exception {
        /// The exception.
        exc: Exception,
        /// Address of the faulting instruction.
        rip: u64,
    },
    /// The engine cannot execute the instruction at `rip`.
    Unsupported {
        /// Address of the instruction.
        rip: u64,
        /// Its bytes (up to 15; fewer at the end of memory).
        bytes: Vec<u8>,
        /// What it is and why it is unsupported.
        what: String,
    },
    /// The guest executed the configured number of instructions.
    InstructionLimit,
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
            RunOutcome::InstructionLimit => write!(f, "instruction limit reached"),
            RunOutcome::InternalError(e) => write!(f, "internal error: {e}"),
        }
    }
}
