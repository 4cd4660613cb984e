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
    /// The bulk part of a repeated string instruction with a 64-bit address size: (source
    /// linear address, destination linear address, RCX) -> the number of whole iterations
    /// done, as the per-iteration loop would have done them. `helper_out[0]` holds RAX,
    /// `helper_out[1]` the `icount` the loop would see, `helper_out[2]` a [`RepString`].
    /// Never faults: it stops before any iteration it cannot prove plain (a page that does
    /// not translate, is not RAM, holds translated code, an element across a page for the
    /// loop to take, the budget, an overlap it cannot copy exactly), always leaves at least
    /// one iteration to the loop, and for REPE/REPNE does only iterations that continue.
    RepString,
    /// A sensitive instruction whose handler reads and writes no guest register, flag or
    /// RIP in `CpuState`: IN, OUT, MOV to/from CR8, in blocks at CPL 0, where no privilege
    /// check can fail (see [`crate::semantics::system`]). (packed
    /// [`crate::sensitive::HypercallArgs`], operand, value) -> the destination value. The
    /// block need not write its state back nor reload it, unlike [`Helper::Hypercall`]; a
    /// device stop or an exception reports through `status` with the instruction not done.
    LeanHypercall,
}

/// What [`Helper::RepString`] is asked to do (in `helper_out[2]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RepString {
    /// The operation.
    pub op: StringOp,
    /// Element size in bytes: 1, 2, 4 or 8.
    pub size: u8,
    /// For CMPS and SCAS: `Some(true)` continues while equal (REPE), `Some(false)` while not
    /// equal (REPNE). `None` for MOVS and STOS.
    pub while_equal: Option<bool>,
    /// DF = 1: the addresses step down.
    pub backward: bool,
}

/// The string operations [`Helper::RepString`] performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StringOp {
    /// `[RDI] = [RSI]`.
    Movs,
    /// `[RDI] = RAX` (low `size` bytes).
    Stos,
    /// Compare `[RSI]` with `[RDI]`.
    Cmps,
    /// Compare RAX (low `size` bytes) with `[RDI]`.
    Scas,
}

impl RepString {
    /// The bit of the encoding that says DF = 1 (set at run time by generated code).
    pub const BACKWARD: u64 = 1 << 16;

    /// The encoding (`backward` as [`RepString::BACKWARD`]).
    pub fn encode(self) -> u64 {
        let op_bits = match self.op {
            StringOp::Movs => 0,
            StringOp::Stos => 1,
            StringOp::Cmps => 2,
            StringOp::Scas => 3,
        };
        let cond = match self.while_equal {
            None => 0,
            Some(true) => 1,
            Some(false) => 2,
        };
        let backward = if self.backward { Self::BACKWARD } else { 0 };
        op_bits | cond << 2 | u64::from(self.size) << 8 | backward
    }

    /// Decodes [`RepString::encode`]; `None` for anything it does not produce.
    pub fn decode(v: u64) -> Option<RepString> {
        let op = match v & 3 {
            0 => StringOp::Movs,
            1 => StringOp::Stos,
            2 => StringOp::Cmps,
            _ => StringOp::Scas,
        };
        let while_equal = match (v >> 2) & 3 {
            0 => None,
            1 => Some(true),
            2 => Some(false),
            _ => return None,
        };
        let size = ((v >> 8) & 0xff) as u8;
        let compares = matches!(op, StringOp::Cmps | StringOp::Scas);
        if !matches!(size, 1 | 2 | 4 | 8)
            || compares != while_equal.is_some()
            || v & !(0xffff | Self::BACKWARD) != 0
            || v & 0xf0 != 0
        {
            return None;
        }
        Some(RepString {
            op,
            size,
            while_equal,
            backward: v & Self::BACKWARD != 0,
        })
    }
}

impl Helper {
    /// Every helper, in table order.
    pub const ALL: [Helper; 16] = [
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
        Helper::RepString,
        Helper::LeanHypercall,
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
                | Helper::LeanHypercall
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
            Helper::RepString => "rep_string",
            Helper::LeanHypercall => "lean_hypercall",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rep_string_round_trips_and_refuses_garbage() {
        for op in [
            StringOp::Movs,
            StringOp::Stos,
            StringOp::Cmps,
            StringOp::Scas,
        ] {
            let conds: &[Option<bool>] = match op {
                StringOp::Cmps | StringOp::Scas => &[Some(true), Some(false)],
                _ => &[None],
            };
            for &while_equal in conds {
                for size in [1, 2, 4, 8] {
                    for backward in [false, true] {
                        let r = RepString {
                            op,
                            size,
                            while_equal,
                            backward,
                        };
                        assert_eq!(RepString::decode(r.encode()), Some(r));
                    }
                }
            }
        }
        for bad in [0x300, 0x100 | 1 << 2, 0x102, 0x10c, 0x1_0000_0100, 0x110] {
            assert_eq!(RepString::decode(bad), None, "{bad:#x}");
        }
    }
}
