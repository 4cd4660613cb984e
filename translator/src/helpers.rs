//! Runtime helpers that generated code and the interpreter call: the hypercall of every
//! sensitive instruction, the memory slow path, and operations too large to inline.
//!
//! Every helper has one calling shape, `extern "C" fn(cpu: *mut CpuState, a: u64, b: u64,
//! c: u64) -> u64`, so the JIT emits one kind of call and the runtime implements one table.
//! Extra results go to `CpuState::helper_out`. A helper that may stop the block (a guest
//! exception or a device stop) sets `CpuState::status`; the caller checks it afterwards when
//! [`Helper::can_stop`] says so.

/// A helper the runtime implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Helper {
    /// Memory read slow path: (addr, size in bytes) -> zero-extended value.
    MemRead,
    /// Memory write slow path: (addr, size in bytes, value).
    MemWrite,
    /// Materialize lazy arithmetic flags from the descriptor in `CpuState` -> arithmetic bits
    /// (also stores them in `rflags` and clears the descriptor).
    FlagsMaterialize,
    /// Unsigned divide: (dividend high half, dividend low half, divisor), each of the operand
    /// size, which the caller stores in `helper_out[3]` (bytes) before the call. Returns the
    /// quotient; the remainder goes to `helper_out[0]`. Division by zero or a quotient that
    /// does not fit raises #DE through `status`.
    DivU,
    /// Signed divide, as [`Helper::DivU`].
    DivS,
    /// A sensitive instruction: (packed [`crate::sensitive::HypercallArgs`], b, c) -> the
    /// destination value. See the contract in [`crate::sensitive`].
    Hypercall,
    /// Indirect-branch lookup (JIT only): (target pc) -> host address to tail-call: the
    /// translated block, or the unlinked exit stub.
    Lookup,
    /// A conditional fault: (condition, vector) -> 0; raises exception `vector` (one without
    /// an error code) through `status` when the condition is nonzero (BOUND's #BR).
    FaultIf,
}

impl Helper {
    /// Every helper, in table order.
    pub const ALL: [Helper; 8] = [
        Helper::MemRead,
        Helper::MemWrite,
        Helper::FlagsMaterialize,
        Helper::DivU,
        Helper::DivS,
        Helper::Hypercall,
        Helper::Lookup,
        Helper::FaultIf,
    ];

    /// Whether the helper may set `CpuState::status`, so the caller must check it.
    pub const fn can_stop(self) -> bool {
        matches!(
            self,
            Helper::MemRead
                | Helper::MemWrite
                | Helper::DivU
                | Helper::DivS
                | Helper::Hypercall
                | Helper::FaultIf
        )
    }

    /// Whether the helper is a hypercall stub for a sensitive instruction (counted by kind).
    pub const fn is_hypercall(self) -> bool {
        matches!(self, Helper::Hypercall)
    }

    /// Stable short name (statistics, reports).
    pub const fn name(self) -> &'static str {
        match self {
            Helper::MemRead => "mem_read",
            Helper::MemWrite => "mem_write",
            Helper::FlagsMaterialize => "flags",
            Helper::DivU => "div",
            Helper::DivS => "idiv",
            Helper::Hypercall => "hypercall",
            Helper::Lookup => "lookup",
            Helper::FaultIf => "fault_if",
        }
    }
}
