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
    /// The instruction at `rip` did not execute and runs again once pending interrupts
    /// have been taken (an x87 instruction waiting for the FERR# interrupt handler).
    Retry = 8,
    /// The block's hotness counter ([`crate::jit::JitEnv::hot_counter`]) reached zero at
    /// entry: nothing of the block executed, `rip` is the block start. The runtime
    /// queues an optimized compilation and runs the block again.
    Promote = 9,
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
            8 => ExitReason::Retry,
            9 => ExitReason::Promote,
            _ => return None,
        })
    }
}

/// [`CpuState::sti_shadow`] when there is none (no instruction follows one at the last
/// byte of the address space: STI is not in line there).
pub const NO_SHADOW: u64 = u64::MAX;

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
    /// The interrupt shadow of an in-line STI that set IF: the address of the instruction
    /// after it, which completes before any interrupt is taken ([`NO_SHADOW`]: none). The
    /// run loop takes it as it takes a shadow a handler posted, and resets it.
    pub sti_shadow: u64,
    /// Nonzero when an interrupt may be pending at the interrupt controllers: the run loop
    /// sets it when it opens a slice, and anything that may make one pending later asks
    /// for an interrupt check (`icount_limit = 0`). In-line STI then asks for one too.
    pub irq_pending: u64,
    /// Extra results of helpers with more than one output (CPUID, DIV).
    pub helper_out: [u64; 4],
    /// A helper's result when generated code calls it through the runtime's
    /// register-preserving trampoline (see `JitEnv::preserving_trampoline`).
    pub helper_ret: u64,
    /// Opaque pointer for the runtime's helpers (never dereferenced by generated code).
    pub runtime: usize,
    /// Current privilege level (0..=3). Changes only through the runtime (far transfers,
    /// interrupts, IRET, SYSCALL/SYSRET, ...), which then ends the block.
    pub cpl: u64,
    /// Segment registers in encoding order (see [`seg`]); FS/GS bases are read by generated
    /// code (and, outside 64-bit mode, every base).
    pub seg: [Segment; 6],
    /// LDTR and TR, as loaded (hidden parts included).
    pub ldtr: Segment,
    pub tr: Segment,
    pub gdtr: DescTable,
    pub idtr: DescTable,
    pub cr0: u64,
    /// Faulting linear address of the last #PF.
    pub cr2: u64,
    pub cr3: u64,
    pub cr4: u64,
    /// Task priority (CR8, the local APIC's TPR bits 7:4).
    pub cr8: u64,
    pub efer: u64,
    pub xcr0: u64,
    /// DR0..DR7 (breakpoints are the runtime's: `runtime::engine::debug`).
    pub dr: [u64; 8],
    /// Model-specific registers other than EFER and the FS/GS bases.
    pub msr: Msrs,
    /// Soft-TLB hits of generated code's inline probes, counted only by code compiled with
    /// `JitConfig::count_tlb_hits` (`--stats`).
    pub tlb_inline_hits: u64,
    /// Soft TLB read by generated code when paging is on. See [`Tlb`].
    pub tlb: Tlb,
    /// The x87, MMX and SSE state (see [`FxArea`] for where each part lives while the guest
    /// runs).
    pub fx: FxArea,
    /// The guest's FPU segment selectors of the last x87 instruction (the 32-bit
    /// environment formats store them; the 64-bit FXSAVE layout has no room for them).
    pub fpu_cs: u16,
    pub fpu_ds: u16,
    /// Nonzero while the guest's x87/MMX state is loaded in the host FPU instead of
    /// [`CpuState::fx`] (the runtime owns this flag; generated code never reads it).
    pub fpu_live: u8,
    /// Operands and results of host-executed instructions (see [`HostFrame`]).
    pub hx: HostFrame,
}

/// The x87, MMX and SSE state in the layout of a 64-bit FXSAVE image.
///
/// Where each part is authoritative:
/// - `xmm` always: generated code and the interpreter read and write it (and cache it in
///   host registers only within a block);
/// - `mxcsr`: its exception *masks* always; its rounding control, DAZ, FTZ and exception
///   *flags* only while no guest code runs. While a vCPU runs, the host MXCSR holds the
///   guest's control bits with every exception masked, and accumulates the guest's flags;
///   the runtime merges it back when the run ends.
/// - the x87 part (`fcw` .. `fdp`, `st`): here while [`CpuState::fpu_live`] is 0, else in
///   the host FPU, where host-executed x87 and MMX instructions operate on it directly.
///   `fip`, `fdp`, `fop` are always the guest's values of the last x87 instruction (the
///   host FPU's own are host addresses).
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FxArea {
    pub fcw: u16,
    pub fsw: u16,
    /// Abridged tag word: bit i set = physical register i is not empty.
    pub ftw: u8,
    pub _rsvd1: u8,
    /// Last x87 opcode (11 bits).
    pub fop: u16,
    pub fip: u64,
    pub fdp: u64,
    pub mxcsr: u32,
    pub mxcsr_mask: u32,
    /// ST0..ST7 (MM0..MM7 in their low 64 bits), 80 bits in 16-byte slots.
    pub st: [[u8; 16]; 8],
    pub xmm: [u128; 16],
    pub _rsvd: [u8; 96],
}

/// MXCSR bits.
pub mod mxcsr {
    /// Exception flags: invalid, denormal, divide-by-zero, overflow, underflow, precision.
    pub const FLAGS: u32 = 0x3F;
    /// Exception masks (same order, shifted by 7).
    pub const MASKS: u32 = 0x1F80;
    pub const DAZ: u32 = 1 << 6;
    pub const RC: u32 = 3 << 13;
    pub const FTZ: u32 = 1 << 15;
    /// The bits a guest may set (MXCSR_MASK): everything but bits 16 and up.
    pub const VALID: u32 = 0xFFFF;
    /// Value after reset and FNINIT-style initialization.
    pub const DEFAULT: u32 = 0x1F80;
}

/// x87 control- and status-word values.
pub mod fpu {
    /// FCW after FNINIT: every exception masked, 64-bit precision, round to nearest.
    pub const FCW_INIT: u16 = 0x037F;
    /// FSW.ES: an unmasked exception is pending.
    pub const FSW_ES: u16 = 1 << 7;
}

impl Default for FxArea {
    fn default() -> Self {
        FxArea {
            fcw: fpu::FCW_INIT,
            fsw: 0,
            ftw: 0,
            _rsvd1: 0,
            fop: 0,
            fip: 0,
            fdp: 0,
            mxcsr: mxcsr::DEFAULT,
            mxcsr_mask: mxcsr::VALID,
            st: [[0; 16]; 8],
            xmm: [0; 16],
            _rsvd: [0; 96],
        }
    }
}

const _: () = assert!(std::mem::size_of::<FxArea>() == 512);
const _: () = assert!(offset_of!(FxArea, mxcsr) == 24);
const _: () = assert!(offset_of!(FxArea, st) == 32);
const _: () = assert!(offset_of!(FxArea, xmm) == 160);

/// Where generated code and the interpreter hand operands to a *host stub* (an x87, MMX or
/// SSE instruction re-encoded to run on the host, see [`crate::hostexec`]) and find its
/// results. A stub is entered with RDI = the frame; it loads XMM0..XMM2, RAX, RCX, RDX, R8,
/// R9 (and RFLAGS when asked) from here, runs the instruction with its memory operand at
/// `mem`, and stores them back.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostFrame {
    /// XMM0 (the implicit operand of BLENDV*/PCMPxSTRM), XMM1, XMM2 (explicit operands).
    pub xmm: [u128; 3],
    /// RAX, RCX, RDX (implicit operands), R8, R9 (explicit general-register operands).
    pub gpr: [u64; 5],
    /// RFLAGS after the instruction (and before it, for instructions that read flags).
    pub rflags: u64,
    /// Nonzero when a waiting x87/MMX stub found an unmasked exception pending and did
    /// nothing (the runtime's slow path then decides between #MF and FERR).
    pub status: u64,
    pub _pad: u64,
    /// The memory operand (FXSAVE/FXRSTOR images use all 512 bytes).
    pub mem: [u8; 512],
    /// Where the JIT stores a floating-point result nothing else reads, so the computation
    /// (and the MXCSR flags it raises) is not removed as dead code.
    pub sink: u128,
}

impl Default for HostFrame {
    fn default() -> Self {
        HostFrame {
            xmm: [0; 3],
            gpr: [0; 5],
            rflags: rflags::FIXED,
            status: 0,
            _pad: 0,
            mem: [0; 512],
            sink: 0,
        }
    }
}

/// Offsets inside [`HostFrame`] the stubs use (small enough for 8-bit displacements,
/// except inside `mem`).
pub mod frame {
    use super::HostFrame;
    use std::mem::offset_of;
    pub const XMM: u32 = offset_of!(HostFrame, xmm) as u32;
    pub const GPR: u32 = offset_of!(HostFrame, gpr) as u32;
    pub const RFLAGS: u32 = offset_of!(HostFrame, rflags) as u32;
    pub const STATUS: u32 = offset_of!(HostFrame, status) as u32;
    pub const MEM: u32 = offset_of!(HostFrame, mem) as u32;
    pub const SINK: u32 = offset_of!(HostFrame, sink) as u32;
    const _: () = assert!(XMM == 0 && GPR == 48 && RFLAGS == 88 && STATUS == 96 && MEM == 112);
}

/// Segment register numbers (x86 encoding order: ES CS SS DS FS GS).
pub mod seg {
    pub const ES: usize = 0;
    pub const CS: usize = 1;
    pub const SS: usize = 2;
    pub const DS: usize = 3;
    pub const FS: usize = 4;
    pub const GS: usize = 5;
}

/// A segment register: the visible selector and the hidden descriptor cache.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    pub selector: u16,
    /// Descriptor attribute bits: bits 0..7 are descriptor byte 5 (type, S, DPL, P), bits
    /// 12..15 are the high nibble of byte 6 (AVL, L, D/B, G). See [`seg_attr`].
    pub attr: u16,
    /// Byte-granular limit (already scaled by G).
    pub limit: u32,
    pub base: u64,
}

/// Bits of [`Segment::attr`].
pub mod seg_attr {
    /// Type field (4 bits): bit 3 = code, for code bit 1 = readable, bit 2 = conforming; for
    /// data bit 1 = writable, bit 2 = expand-down; bit 0 = accessed.
    pub const TYPE: u16 = 0xF;
    /// Code or data (not system).
    pub const S: u16 = 1 << 4;
    pub const DPL_SHIFT: u16 = 5;
    pub const DPL: u16 = 3 << 5;
    pub const P: u16 = 1 << 7;
    pub const AVL: u16 = 1 << 12;
    /// 64-bit code segment.
    pub const L: u16 = 1 << 13;
    /// Default operand size / big (32-bit) stack.
    pub const DB: u16 = 1 << 14;
    pub const G: u16 = 1 << 15;
}

impl Segment {
    /// A flat segment with base 0, limit 4 GiB and the given attributes.
    pub const fn flat(selector: u16, attr: u16) -> Segment {
        Segment {
            selector,
            attr,
            limit: 0xFFFF_FFFF,
            base: 0,
        }
    }
    /// Descriptor privilege level.
    pub const fn dpl(&self) -> u8 {
        ((self.attr & seg_attr::DPL) >> seg_attr::DPL_SHIFT) as u8
    }
}

/// GDTR or IDTR.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DescTable {
    pub base: u64,
    pub limit: u64,
}

/// Model-specific registers kept in the CPU state (EFER and FS/GS base have their own
/// fields: [`CpuState::efer`], [`CpuState::seg`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Msrs {
    pub star: u64,
    pub lstar: u64,
    pub cstar: u64,
    pub sfmask: u64,
    pub kernel_gs_base: u64,
    pub sysenter_cs: u64,
    pub sysenter_esp: u64,
    pub sysenter_eip: u64,
    pub pat: u64,
    pub misc_enable: u64,
    pub apic_base: u64,
    pub tsc_aux: u64,
    /// Added to the virtual TSC (IA32_TSC writes set it).
    pub tsc_offset: u64,
    /// IA32_MTRR_DEF_TYPE.
    pub mtrr_def_type: u64,
    /// IA32_MTRR_PHYSBASEn/PHYSMASKn, n = 0..8, interleaved as their MSR indices.
    pub mtrr_var: [u64; 16],
    /// The fixed-range MTRRs (0x250, 0x258, 0x259, 0x268..=0x26F).
    pub mtrr_fixed: [u64; 11],
}

/// Entries per soft-TLB set. 1024 rather than 256: booting Linux to `/init` (1.4G guest
/// instructions) took 14.4M page walks with 256 and 5.1M with 1024; a flush then clears
/// 64 KiB, which the ~17,000 CR3 writes of that boot do not notice.
pub const TLB_ENTRIES: usize = 1024;

/// A tag that never matches an address (its low bits are set; tags are page aligned).
pub const TLB_INVALID: u64 = u64::MAX;

/// One soft-TLB entry for a 4 KiB virtual page.
///
/// Generated code checks `((addr + size - 1) & !0xFFF) == tag` with the entry indexed by
/// `(addr >> 12) % TLB_ENTRIES`, which also sends page-crossing accesses to the slow path,
/// then accesses host address `addr + addend`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlbEntry {
    /// Page-aligned virtual address readable through this entry, or [`TLB_INVALID`].
    pub read_tag: u64,
    /// Page-aligned virtual address writable through this entry, or [`TLB_INVALID`] (never
    /// set for pages that hold translated code, MMIO, or not-yet-dirty pages).
    pub write_tag: u64,
    /// Host address minus virtual address for the page.
    pub addend: u64,
    /// Guest-physical page address (for invalidation by physical page).
    pub phys: u64,
}

impl TlbEntry {
    pub const EMPTY: TlbEntry = TlbEntry {
        read_tag: TLB_INVALID,
        write_tag: TLB_INVALID,
        addend: 0,
        phys: 0,
    };
}

/// The soft TLB: one set for supervisor accesses (CPL 0..2), one for user (CPL 3).
#[repr(C)]
#[derive(Clone, Debug)]
pub struct Tlb {
    pub sets: [[TlbEntry; TLB_ENTRIES]; 2],
}

impl Default for Tlb {
    fn default() -> Self {
        Tlb {
            sets: [[TlbEntry::EMPTY; TLB_ENTRIES]; 2],
        }
    }
}

impl Tlb {
    /// The set generated code at `cpl` uses.
    pub const fn set_for(cpl: u8) -> usize {
        (cpl == 3) as usize
    }
    /// Invalidate every entry.
    pub fn flush(&mut self) {
        self.sets = [[TlbEntry::EMPTY; TLB_ENTRIES]; 2];
    }
}

/// Control-register and EFER bits the runtime and the block key use.
pub mod cr {
    pub const CR0_PE: u64 = 1 << 0;
    pub const CR0_MP: u64 = 1 << 1;
    pub const CR0_EM: u64 = 1 << 2;
    pub const CR0_TS: u64 = 1 << 3;
    pub const CR0_ET: u64 = 1 << 4;
    pub const CR0_NE: u64 = 1 << 5;
    pub const CR0_WP: u64 = 1 << 16;
    pub const CR0_AM: u64 = 1 << 18;
    pub const CR0_NW: u64 = 1 << 29;
    pub const CR0_CD: u64 = 1 << 30;
    pub const CR0_PG: u64 = 1 << 31;
    pub const CR4_VME: u64 = 1 << 0;
    pub const CR4_PVI: u64 = 1 << 1;
    pub const CR4_TSD: u64 = 1 << 2;
    pub const CR4_DE: u64 = 1 << 3;
    pub const CR4_PSE: u64 = 1 << 4;
    pub const CR4_PAE: u64 = 1 << 5;
    pub const CR4_MCE: u64 = 1 << 6;
    pub const CR4_PGE: u64 = 1 << 7;
    pub const CR4_PCE: u64 = 1 << 8;
    pub const CR4_OSFXSR: u64 = 1 << 9;
    pub const CR4_OSXMMEXCPT: u64 = 1 << 10;
    pub const CR4_UMIP: u64 = 1 << 11;
    pub const CR4_FSGSBASE: u64 = 1 << 16;
    pub const CR4_PCIDE: u64 = 1 << 17;
    pub const CR4_OSXSAVE: u64 = 1 << 18;
    pub const CR4_SMEP: u64 = 1 << 20;
    pub const CR4_SMAP: u64 = 1 << 21;
    pub const EFER_SCE: u64 = 1 << 0;
    pub const EFER_LME: u64 = 1 << 8;
    pub const EFER_LMA: u64 = 1 << 10;
    pub const EFER_NXE: u64 = 1 << 11;
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
            sti_shadow: NO_SHADOW,
            // Unknown until a run loop looks: assume one may be.
            irq_pending: 1,
            helper_out: [0; 4],
            helper_ret: 0,
            runtime: 0,
            cpl: 0,
            seg: [Segment::default(); 6],
            ldtr: Segment::default(),
            tr: Segment::default(),
            gdtr: DescTable::default(),
            idtr: DescTable::default(),
            cr0: 0,
            cr2: 0,
            cr3: 0,
            cr4: 0,
            cr8: 0,
            efer: 0,
            xcr0: 1,
            dr: [0, 0, 0, 0, 0, 0, 0xFFFF_0FF0, 0x400],
            msr: Msrs::default(),
            tlb_inline_hits: 0,
            tlb: Tlb::default(),
            fx: FxArea::default(),
            fpu_cs: 0,
            fpu_ds: 0,
            fpu_live: 0,
            hx: HostFrame::default(),
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
pub const OFF_STI_SHADOW: u32 = offset_of!(CpuState, sti_shadow) as u32;
pub const OFF_IRQ_PENDING: u32 = offset_of!(CpuState, irq_pending) as u32;
pub const OFF_HELPER_OUT: u32 = offset_of!(CpuState, helper_out) as u32;
pub const OFF_HELPER_RET: u32 = offset_of!(CpuState, helper_ret) as u32;
pub const OFF_TLB_INLINE_HITS: u32 = offset_of!(CpuState, tlb_inline_hits) as u32;
pub const OFF_SEG: usize = offset_of!(CpuState, seg);
/// Byte offset of the base of segment register `i` (see [`seg`]).
pub const fn off_seg_base(i: usize) -> u32 {
    (OFF_SEG + i * std::mem::size_of::<Segment>() + offset_of!(Segment, base)) as u32
}
/// Byte offset of the selector of segment register `i` (see [`seg`]).
pub const fn off_seg_selector(i: usize) -> u32 {
    (OFF_SEG + i * std::mem::size_of::<Segment>() + offset_of!(Segment, selector)) as u32
}
pub const OFF_FS_BASE: u32 = off_seg_base(seg::FS);
pub const OFF_GS_BASE: u32 = off_seg_base(seg::GS);
pub const OFF_TLB: u32 = offset_of!(CpuState, tlb) as u32;
pub const OFF_FX: u32 = offset_of!(CpuState, fx) as u32;
/// Byte offset of XMM register `i`.
pub const fn off_xmm(i: usize) -> u32 {
    OFF_FX + offset_of!(FxArea, xmm) as u32 + 16 * (i as u32 & 15)
}
pub const OFF_MXCSR: u32 = OFF_FX + offset_of!(FxArea, mxcsr) as u32;
pub const OFF_FIP: u32 = OFF_FX + offset_of!(FxArea, fip) as u32;
pub const OFF_FDP: u32 = OFF_FX + offset_of!(FxArea, fdp) as u32;
pub const OFF_FOP: u32 = OFF_FX + offset_of!(FxArea, fop) as u32;
pub const OFF_FPU_CS: u32 = offset_of!(CpuState, fpu_cs) as u32;
pub const OFF_FPU_DS: u32 = offset_of!(CpuState, fpu_ds) as u32;
pub const OFF_HX: u32 = offset_of!(CpuState, hx) as u32;
pub const OFF_FPU_LIVE: u32 = offset_of!(CpuState, fpu_live) as u32;
const _: () = assert!(OFF_HX.is_multiple_of(16) && OFF_FX.is_multiple_of(16));
pub const OFF_TLB_READ_TAG: u32 = offset_of!(TlbEntry, read_tag) as u32;
pub const OFF_TLB_WRITE_TAG: u32 = offset_of!(TlbEntry, write_tag) as u32;
pub const OFF_TLB_ADDEND: u32 = offset_of!(TlbEntry, addend) as u32;
/// Size of a [`TlbEntry`] (a power of two, so indexing is a shift).
pub const TLB_ENTRY_BYTES: u32 = std::mem::size_of::<TlbEntry>() as u32;
const _: () = assert!(TLB_ENTRY_BYTES == 32);
/// Byte offset of soft-TLB set `set` within `CpuState`.
pub const fn off_tlb_set(set: usize) -> u32 {
    OFF_TLB + (set * TLB_ENTRIES) as u32 * TLB_ENTRY_BYTES
}
