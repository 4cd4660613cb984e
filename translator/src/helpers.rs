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
    /// Memory read slow path: (addr, size in bytes) -> zero-extended value. Size 16 returns
    /// the low half and leaves the high half in `helper_out[0]`.
    MemRead,
    /// Memory write slow path: (addr, size in bytes, value). Size 16 takes the high half
    /// from `helper_out[0]`.
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
    /// A conditional fault: (condition, vector, error code) -> 0; raises exception `vector`
    /// (with the error code where the vector has one) through `status` when the condition is
    /// nonzero (BOUND's #BR, the #GP of a misaligned SSE operand).
    FaultIf,
    /// An SSE host stub while MXCSR unmasks an exception: (stub address) -> 0. Runs it with
    /// every exception masked; if it raised an unmasked one, undoes its frame results and
    /// raises #XM (#UD with CR4.OSXMMEXCPT clear). See [`crate::hostexec::StubCall`].
    SimdChecked,
    /// An x87/MMX host stub: (stub address, [`crate::hostexec::FpuInfo`] bits) -> 0. Loads
    /// the guest's x87 state into the host FPU if it is not there, raises #MF (or asserts
    /// FERR) for a pending unmasked exception if the instruction waits, then runs it.
    FpuExec,
    /// MXCSR access: (0) -> the guest's MXCSR; (1, value) -> 0, loads it, #GP(0) if it sets
    /// a reserved bit. The live value is in the host while the vCPU runs.
    Mxcsr,
    /// FXSAVE: (64-bit layout?) -> 0; the 512-byte image into `hx.mem`.
    FxSave,
    /// FXRSTOR: (64-bit layout?, bytes of the image: 416 with XMM8..15, else 288) -> 0;
    /// from the image in `hx.mem`. #GP(0) if its MXCSR sets a reserved bit (nothing is
    /// loaded then).
    FxRstor,
    /// Probe a store: (addr, bytes) -> 0. Translates every page for writing (#PF) and, from
    /// generated code, stops with [`crate::ExitReason::CodeModified`] if the bytes hold
    /// translated code; writes nothing.
    ProbeWrite,
}

impl Helper {
    /// Every helper, in table order.
    pub const ALL: [Helper; 14] = [
        Helper::MemRead,
        Helper::MemWrite,
        Helper::FlagsMaterialize,
        Helper::DivU,
        Helper::DivS,
        Helper::Hypercall,
        Helper::Lookup,
        Helper::FaultIf,
        Helper::SimdChecked,
        Helper::FpuExec,
        Helper::Mxcsr,
        Helper::FxSave,
        Helper::FxRstor,
        Helper::ProbeWrite,
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
                | Helper::SimdChecked
                | Helper::FpuExec
                | Helper::Mxcsr
                | Helper::FxSave
                | Helper::FxRstor
                | Helper::ProbeWrite
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
            Helper::SimdChecked => "simd_checked",
            Helper::FpuExec => "fpu_exec",
            Helper::Mxcsr => "mxcsr",
            Helper::FxSave => "fxsave",
            Helper::FxRstor => "fxrstor",
            Helper::ProbeWrite => "probe_write",
        }
    }
}
