//! popek's translator: guest x86 bytes + PC + mode → a Cranelift function (or a direct
//! evaluation of the same semantics in the interpreter).
//!
//! The crate is pure: no mmap, no signals, no threads. How memory accesses and runtime calls
//! behave is decided by the runtime through [`jit::JitEnv`] and [`interp::InterpEnv`].
//!
//! ```
//! use translator::{decode::decode_block, Mode};
//! // mov eax, 1 ; add eax, 2 ; hlt
//! let code = [0xB8, 1, 0, 0, 0, 0x83, 0xC0, 0x02, 0xF4];
//! let block = decode_block(&code, 0x1000, Mode::LONG64_CPL0, 64);
//! assert_eq!(block.insns.len(), 3);
//! ```

pub mod ctx;
pub mod decode;
pub mod emit;
pub mod exception;
pub mod flags;
pub mod helpers;
pub mod hostexec;
pub mod interp;
pub mod ir;
pub mod jit;
pub mod record;
pub mod region;
pub mod semantics;
pub mod sensitive;
pub mod state;
pub mod vector;

pub use exception::Exception;
pub use helpers::Helper;
pub use state::{CpuState, ExitReason};

/// The execution mode bits that change what a block means; part of the block key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mode {
    /// Code size in bits: 16, 32 or 64.
    pub bitness: u32,
    /// Current privilege level (0..=3).
    pub cpl: u8,
    /// Stack-pointer width in bits: 64 in 64-bit mode, else 32 or 16 (SS.B).
    pub stack: u8,
    /// Paging is on: guest memory goes through the soft TLB instead of the flat model.
    pub paging: bool,
    /// Outside 64-bit mode, some of CS/DS/ES/SS has a nonzero base, so every access adds its
    /// segment's base (FS and GS bases are always added).
    pub seg_bases: bool,
    /// Outside 64-bit mode CS has a nonzero base (real mode after a far transfer, a based
    /// code segment): code is fetched at CS.base + EIP. The caches keyed by virtual PC (the
    /// jump cache, indirect-branch lookups, block links) know EIP alone, so the runtime
    /// keeps such blocks out of them; this bit keeps their probes from matching entries
    /// made with a zero CS base.
    pub cs_based: bool,
    /// What x87, MMX and SSE instructions may do ([`fp_mode`] bits): decides whether they
    /// raise #UD or #NM and how SIMD floating-point exceptions are reported.
    pub fp: u8,
}

/// Bits of [`Mode::fp`], derived from CR0, CR4 and MXCSR.
pub mod fp_mode {
    /// CR0.EM: x87 instructions raise #NM, MMX and SSE ones #UD.
    pub const EM: u8 = 1 << 0;
    /// CR0.TS: x87, MMX and SSE instructions raise #NM (lazy FPU switching).
    pub const TS: u8 = 1 << 1;
    /// CR0.MP: WAIT/FWAIT raises #NM when TS is set.
    pub const MP: u8 = 1 << 2;
    /// CR4.OSFXSR: SSE instructions are enabled (else #UD).
    pub const OSFXSR: u8 = 1 << 3;
    /// CR4.OSXMMEXCPT: an unmasked SIMD floating-point exception raises #XM (else #UD).
    pub const OSXMMEXCPT: u8 = 1 << 4;
    /// Some MXCSR exception is unmasked: SIMD floating-point instructions take the checked
    /// path (no inline lowering) so they can raise #XM precisely.
    pub const SIMD_UNMASKED: u8 = 1 << 5;
    /// The x87 control word masks all six exceptions and none is pending (FSW.ES clear): no
    /// x87 instruction can find one pending, so waiting ones skip the check (#MF). Only
    /// FLDCW, FLDENV, FRSTOR and FXRSTOR can end that, and FNINIT, FNSAVE, FNSTENV and
    /// FNCLEX (or those) begin it; they end their block without a link where they may.
    pub const X87_MASKED: u8 = 1 << 6;
    /// What an operating system sets up: SSE on with #XM reporting, nothing trapping.
    pub const OS_DEFAULT: u8 = MP | OSFXSR | OSXMMEXCPT;
}

impl Mode {
    /// 64-bit mode at CPL 0 without paging (the foundation's flat machine).
    pub const LONG64_CPL0: Mode = Mode::new(64, 0);

    /// A mode with the given code size and CPL, a stack of the same width, no paging and
    /// flat segments.
    pub const fn new(bitness: u32, cpl: u8) -> Mode {
        Mode {
            bitness,
            cpl,
            stack: bitness as u8,
            paging: false,
            seg_bases: false,
            cs_based: false,
            fp: fp_mode::OS_DEFAULT,
        }
    }

    /// Opaque key bits for the code cache.
    pub const fn key(self) -> u32 {
        (self.bitness << 8)
            | self.cpl as u32
            | (self.cs_based as u32) << 7
            | (self.stack as u32) << 16
            | (self.paging as u32) << 24
            | (self.seg_bases as u32) << 25
            | (self.fp as u32 & 0x3F) << 26
            | (self.fp as u32 >> 6 & 1) << 23
    }
}
