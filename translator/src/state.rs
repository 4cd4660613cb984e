//! The guest CPU state shared by generated code, the interpreter and the runtime.
//!
//! Invariants:
//! - `CpuState` is `#[repr(C)]`; generated code addresses fields by the `OFF_*` constants,
//!   which are checked against `offset_of!` at compile time.
//! - The arithmetic flags (CF PF AF ZF SF OF) live in `rflags` only while `flags_op == 0`;
//!   otherwise they are described lazily by `flags_op/flags_a/flags_b/flags_res/flags_aux`
//!   (see [`crate::flags`]). Every other RFLAGS bit always lives in `rflags`.
//! - `status` is zero while a block runs normally; a helper that must stop the block (guest
//!   exception, device-requested stop) sets it to an [`ExitReason`] and the block exits with
//!   the architectural state of the start of the current instruction.

use std::mem::offset_of;

/// RFLAGS bits.
pub mod rflags {
    pub const CF: u64 = 1 << 0;
    /// Bit 1 reads as one.
    pub const FIXED: u64 = 1 << 1;
    pub const PF: u64 = 1 << 2;
    pub const AF: u64 = 1 << 4;
    pub const ZF: u64 = 1 << 6;
    pub const SF: u64 = 1 << 7;
    pub const TF: u64 = 1 << 8;
    pub const IF: u64 = 1 << 9;
    pub const DF: u64 = 1 << 10;
    pub const OF: u64 = 1 << 11;
    pub const IOPL: u64 = 3 << 12;
    pub const NT: u64 = 1 << 14;
    pub const RF: u64 = 1 << 16;
    pub const VM: u64 = 1 << 17;
    pub const AC: u64 = 1 << 18;
    pub const VIF: u64 = 1 << 19;
    pub const VIP: u64 = 1 << 20;
    pub const ID: u64 = 1 << 21;
    /// The six arithmetic flags, computed lazily.
    pub const ARITH: u64 = CF | PF | AF | ZF | SF | OF;
}

/// Why a block (or one interpreted instruction) returned to the dispatcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitReason {
    /// Continue at `rip`. `link_slot` names the slot of a direct exit (0 for indirect).
    Jump = 1,
    /// A guest exception: `exc_vector/exc_code/exc_addr` describe it, `rip` is the faulting
    /// instruction and the state is that of its start.
    Exception = 2,
    /// HLT executed; `rip` is the next instruction.
    Halt = 3,
    /// `icount` reached `icount_limit` at block entry; `rip` is the block start.
    Budget = 4,
    /// The instruction at `rip` is not supported by the translator.
    Unsupported = 5,
    /// A device asked the VM to stop (e.g. isa-debug-exit); `rip` is the instruction.
    Stop = 6,
    /// A store modified translated code of a running block; `rip` is the storing instruction,
    /// which has not been performed. The dispatcher single-steps it.
    CodeModified = 7,
}

impl ExitReason {
    /// Decode the value a block returned; unknown values give `None`.
    pub fn from_u64(v: u64) -> Option<ExitReason> {
        Some(match v {
            1 => ExitReason::Jump,
            2 => ExitReason::Exception,
            3 => ExitReason::Halt,
            4 => ExitReason::Budget,
            5 => ExitReason::Unsupported,
            6 => ExitReason::Stop,
            7 => ExitReason::CodeModified,
            _ => return None,
        })
    }
}

/// General-purpose register numbers (x86 encoding order).
pub mod reg {
    pub const RAX: usize = 0;
    pub const RCX: usize = 1;
    pub const RDX: usize = 2;
    pub const RBX: usize = 3;
    pub const RSP: usize = 4;
    pub const RBP: usize = 5;
    pub const RSI: usize = 6;
    pub const RDI: usize = 7;
}

/// Guest CPU state. See the module invariants.
#[repr(C)]
#[derive(Clone, Debug)]
pub struct CpuState {
    /// RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8..R15.
    pub gpr: [u64; 16],
    pub rip: u64,
    pub rflags: u64,
    /// Lazy arithmetic-flags descriptor; 0 means `rflags` holds them.
    pub flags_op: u64,
    pub flags_a: u64,
    pub flags_b: u64,
    pub flags_res: u64,
    pub flags_aux: u64,
    /// Guest instructions retired (counted per block, at block entry).
    pub icount: u64,
    /// Blocks exit with [`ExitReason::Budget`] at entry once `icount >= icount_limit`.
    pub icount_limit: u64,
    /// Nonzero (an [`ExitReason`]) after a helper asked the block to stop.
    pub status: u64,
    /// Exception recorded by a helper or engine (vector, error code, CR2-style address).
    pub exc_vector: u64,
    pub exc_code: u64,
    pub exc_addr: u64,
    /// Address of the link slot the last direct exit went through (0: none).
    pub link_slot: u64,
    /// Extra results of helpers with more than one output (CPUID, DIV).
    pub helper_out: [u64; 4],
    pub fs_base: u64,
    pub gs_base: u64,
    /// Opaque pointer for the runtime's helpers (never dereferenced by generated code).
    pub runtime: usize,
}

impl Default for CpuState {
    fn default() -> Self {
        CpuState {
            gpr: [0; 16],
            rip: 0,
            rflags: rflags::FIXED,
            flags_op: 0,
            flags_a: 0,
            flags_b: 0,
            flags_res: 0,
            flags_aux: 0,
            icount: 0,
            icount_limit: u64::MAX,
            status: 0,
            exc_vector: 0,
            exc_code: 0,
            exc_addr: 0,
            link_slot: 0,
            helper_out: [0; 4],
            fs_base: 0,
            gs_base: 0,
            runtime: 0,
        }
    }
}

impl CpuState {
    /// RFLAGS with the arithmetic flags materialized from the lazy descriptor.
    pub fn full_rflags(&self) -> u64 {
        let arith = if self.flags_op == 0 {
            self.rflags & rflags::ARITH
        } else {
            crate::flags::materialize(
                self.flags_op,
                self.flags_a,
                self.flags_b,
                self.flags_res,
                self.flags_aux,
            )
        };
        (self.rflags & !rflags::ARITH) | arith | rflags::FIXED
    }

    /// Materialize the lazy flags into `rflags` (clears the descriptor).
    pub fn settle_flags(&mut self) {
        self.rflags = self.full_rflags();
        self.flags_op = 0;
    }

    /// Record a guest exception and the stop status.
    pub fn raise(&mut self, e: crate::Exception) {
        self.exc_vector = e.vector() as u64;
        self.exc_code = e.error_code().unwrap_or(0) as u64;
        self.exc_addr = e.fault_addr();
        self.status = ExitReason::Exception as u64;
    }

    /// The exception recorded by [`CpuState::raise`].
    pub fn exception(&self) -> Option<crate::Exception> {
        crate::Exception::from_parts(self.exc_vector as u8, self.exc_code as u32, self.exc_addr)
    }
}

/// Byte offset of `gpr[i]`.
pub const fn off_gpr(i: usize) -> u32 {
    (OFF_GPR + 8 * i) as u32
}

pub const OFF_GPR: usize = offset_of!(CpuState, gpr);
pub const OFF_RIP: u32 = offset_of!(CpuState, rip) as u32;
pub const OFF_RFLAGS: u32 = offset_of!(CpuState, rflags) as u32;
pub const OFF_FLAGS_OP: u32 = offset_of!(CpuState, flags_op) as u32;
pub const OFF_FLAGS_A: u32 = offset_of!(CpuState, flags_a) as u32;
pub const OFF_FLAGS_B: u32 = offset_of!(CpuState, flags_b) as u32;
pub const OFF_FLAGS_RES: u32 = offset_of!(CpuState, flags_res) as u32;
pub const OFF_FLAGS_AUX: u32 = offset_of!(CpuState, flags_aux) as u32;
pub const OFF_ICOUNT: u32 = offset_of!(CpuState, icount) as u32;
pub const OFF_ICOUNT_LIMIT: u32 = offset_of!(CpuState, icount_limit) as u32;
pub const OFF_STATUS: u32 = offset_of!(CpuState, status) as u32;
pub const OFF_LINK_SLOT: u32 = offset_of!(CpuState, link_slot) as u32;
pub const OFF_HELPER_OUT: u32 = offset_of!(CpuState, helper_out) as u32;
pub const OFF_FS_BASE: u32 = offset_of!(CpuState, fs_base) as u32;
pub const OFF_GS_BASE: u32 = offset_of!(CpuState, gs_base) as u32;
