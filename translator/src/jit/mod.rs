//! The JIT: one decoded guest block → position-independent host code, through Cranelift.
//!
//! The semantics drive `ClifEmitter`, the [`crate::emit::Emitter`] that builds one Cranelift
//! function per block; [`Jit::translate`] compiles it and returns the bytes. How guest memory,
//! helpers and block links are reached is decided by the runtime through [`JitEnv`].
//! Module map: `emitter` (values, state, variables, control flow, exits), `frame` (the
//! function's entry, heads and end), `memory` (guest
//! memory access per [`MemoryModel`]), `tests` (compiled code run for real against the
//! interpreter).
//!
//! # The code the JIT produces
//!
//! Every block is a function `extern "tail" fn(cpu: *mut CpuState) -> u64` (Cranelift's
//! `tail` calling convention) returning an [`ExitReason`]. It
//! 1. charges its instruction count: if `icount + n > icount_limit` (unsigned; the limit is an
//!    *inclusive* bound on `icount` after the block) it stores `rip = block pc` and returns
//!    [`ExitReason::Budget`] without executing anything; otherwise `icount += n`. Setting
//!    `icount_limit = 0` therefore stops a chain of linked blocks at the next block entry
//!    (how the runtime delivers interrupts). `n` counts the instructions actually translated
//!    (up to the one that ends the block), and is charged in full even if the block leaves
//!    early through a fault.
//!    Before that, with a [`JitEnv::hot_counter`], it decrements the counter and, if that
//!    made it zero, stores `rip = block pc` and returns [`ExitReason::Promote`], again
//!    without executing or charging anything.
//! 2. runs the guest instructions, guest GPRs in SSA variables;
//! 3. leaves through one of the exits below, having written back registers and flags.
//!
//! Exits:
//! - direct jump to the block's own start (a loop): straight back to step 1, registers and
//!   `icount` staying in host registers (nothing is linked, no slot is asked for);
//! - in a region ([`Jit::translate_region`]), direct jump to the start of another of its
//!   blocks: the state written back, a jump to that block's head, which charges that block's
//!   instructions (step 1 for it) and goes on with registers in host registers;
//! - direct jump to another constant target `t`: `rip = t`; if [`JitEnv::link_slot`] gave a
//!   slot, `link_slot = &slot` and the block tail-calls the address the slot holds (the
//!   successor, or the exit stub while unlinked); otherwise `link_slot = 0` and, with a
//!   jump cache, it leaves as an indirect jump to `t` does (a target the runtime will not
//!   link, such as one on another page under paging, is found through the jump cache, not
//!   the dispatcher), without one it returns [`ExitReason::Jump`];
//! - indirect jump: `rip = t`, `link_slot = 0`; if [`JitEnv::jump_cache`] gave a jump cache,
//!   probe it inline for `t` in the block's mode and tail-call the hit; otherwise (and on a
//!   miss) tail-call what [`Helper::Lookup`] returns;
//! - host code chosen at run time (after a hypercall that may end the block, see
//!   [`crate::sensitive::Resume`]): `rip` is the handler's, `link_slot = 0`, and the block
//!   tail-calls the address the hypercall returned (a block from the jump cache, keyed by the
//!   mode the handler left, or the exit stub);
//! - return to the dispatcher with a reason (`rip` stored by the semantics);
//! - fault: a helper that can stop ([`Helper::can_stop`]) left a nonzero `status`: the state
//!   of the start of the faulting instruction is written back, `rip` = that instruction, and
//!   the block returns `status`.
//!
//! What the runtime's helpers must respect (generated code owns these while a block runs):
//! - never write `gpr` or `icount`; results go in the return value or `helper_out` (blocks
//!   keep registers and `icount` in host registers and store them only at exits);
//! - a helper that invalidates the running block (a store into its own code, a flush) must
//!   stop it through `status` ([`ExitReason::CodeModified`]): a self-loop never passes
//!   through a link slot, so unlinking alone does not stop it.
//!
//! The runtime calls blocks through [`Jit::entry_trampoline`] (a C-ABI function) and fills
//! link slots with the address of [`Jit::exit_stub`] until it links them.
//!
//! Invariants:
//! - Generated code has no relocations: helpers, guest RAM, the code bitmap, link slots and
//!   the jump cache are absolute addresses baked in as immediates, so the bytes run wherever they are copied
//!   (at a 16-byte aligned address).
//! - A guest address is only ever used as a host address after the bounds check of the
//!   [`MemoryModel`]; everything else goes through the `MemRead`/`MemWrite` helpers.
//! - No guest input panics the JIT: misuse of the emitter by semantics is reported as
//!   [`JitError::Internal`], Cranelift failures as [`JitError::Verifier`]/[`JitError::Codegen`],
//!   and any panic inside IR building or compilation is caught and reported as
//!   [`JitError::Panic`].

mod arith;
mod emitter;
mod frame;
mod lookup;
mod memory;
mod vector;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{
    types, AbiParam, Function, InstBuilder, MemFlagsData, Signature, UserFuncName,
};
use cranelift_codegen::isa::{CallConv, OwnedTargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::{CodegenError, Context};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};

use iced_x86::{FlowControl, InstructionInfoFactory, OpAccess, Register};

use crate::decode::DecodedBlock;
use crate::flags::Vendor;
use crate::helpers::Helper;
use crate::state::ExitReason;
use crate::Mode;

use emitter::ClifEmitter;

/// What the JIT needs from the runtime.
pub trait JitEnv {
    /// Host address of the runtime's implementation of `h`, an
    /// `extern "C" fn(cpu: *mut CpuState, a: u64, b: u64, c: u64) -> u64`.
    fn helper_addr(&self, h: Helper) -> usize;
    /// How generated code reaches guest memory.
    fn memory(&self) -> MemoryModel;
    /// A link slot for a direct exit to `target_pc`: the stable address of a `u64` cell that
    /// holds the host address to tail-call (the successor block, or the exit stub while
    /// unlinked). `None`: this exit is not linkable; it returns [`ExitReason::Jump`] to the
    /// dispatcher. Called at most once per target and translation.
    fn link_slot(&mut self, target_pc: u64) -> Option<usize>;
    /// The runtime's jump cache, probed inline by indirect exits before they call
    /// [`Helper::Lookup`]. `None` (the default): indirect exits always call the helper. A
    /// layout that fails [`JumpCacheLayout::is_valid`] is ignored.
    fn jump_cache(&self) -> Option<JumpCacheLayout> {
        None
    }
    /// The host address of a register-preserving trampoline for helper calls, if the runtime
    /// has one: called with `(cpu, a, b, c, helper)` in the System V argument registers, it
    /// saves every caller-saved register (general and XMM), calls `helper(cpu, a, b, c)`,
    /// stores its result in `CpuState::helper_ret` and restores them. Generated code then
    /// calls helpers with Cranelift's `preserve_all` convention, so a helper on a cold path
    /// does not force the hot path to keep its values in memory. `None`: helpers are
    /// called directly (System V).
    fn preserving_trampoline(&self) -> Option<usize> {
        None
    }
    /// The host address of `stub`'s code in executable memory the runtime keeps alive
    /// while code generated with it may run (see [`crate::hostexec`]); `None` if it cannot
    /// provide one (the translation then fails).
    fn host_stub(&mut self, stub: &crate::hostexec::HostStub) -> Option<usize> {
        let _ = stub;
        None
    }
    /// The address of a `u64` cell the block counts its entries in (a tiered runtime's
    /// first compiled tier): each entry, self-loop iterations included, decrements it, and
    /// the entry that brings it to zero leaves at once with [`ExitReason::Promote`]. The
    /// runtime keeps the cell (8-byte aligned) at this address while the code may run and
    /// writes it only while no code runs. `None` (the default): no counting. Asked for
    /// once per build; must answer the same for both builds of one block.
    fn hot_counter(&mut self) -> Option<usize> {
        None
    }
}

/// Where generated code finds the runtime's direct-mapped jump cache (guest-virtual PC + mode
/// key → host code), and how it hashes. Entry `i` of the cache sits at
/// `entries + i * entry_size` and holds, at these offsets, the guest PC (`u64`), the mode key
/// (`u32`) and the host address of the block's code (`u64`, 0 = empty); the entry of `pc` in
/// mode `key` is [`JumpCacheLayout::index`].
///
/// What the runtime guarantees, while code generated with the layout may run:
/// - the entries stay at `entries`, readable, with this layout and hash;
/// - a non-empty entry names the code of a live block translated for that PC and mode (entries
///   of invalidated blocks are emptied before their code can be freed or reused), since a hit
///   is tail-called without asking the runtime;
/// - entries are not written while generated code reads them (helpers write them, on the
///   thread running the code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JumpCacheLayout {
    /// Address of entry 0.
    pub entries: usize,
    /// Number of entries minus one; the number of entries is a power of two.
    pub mask: u64,
    /// Bytes from one entry to the next.
    pub entry_size: u32,
    /// Offset in an entry of the guest PC (`u64`).
    pub off_pc: u32,
    /// Offset in an entry of the mode key (`u32`).
    pub off_mode: u32,
    /// Offset in an entry of the host address (`u64`, 0 = empty).
    pub off_host: u32,
    /// Multiplier of the hash.
    pub hash_mul: u64,
    /// Right shift of the hash's product.
    pub hash_shift: u32,
    /// Left rotation of the mode key before it is mixed into the PC.
    pub mode_rotate: u32,
}

impl JumpCacheLayout {
    /// Index of the entry of guest PC `pc` in mode `mode_key`:
    /// `(((pc ^ rotl(mode_key as u64, mode_rotate)) * hash_mul) >> hash_shift) & mask`
    /// (wrapping multiplication, logical shift). Generated code computes exactly this.
    pub fn index(&self, pc: u64, mode_key: u32) -> u64 {
        let mixed = pc ^ u64::from(mode_key).rotate_left(self.mode_rotate);
        (mixed.wrapping_mul(self.hash_mul) >> self.hash_shift) & self.mask
    }

    /// Whether the layout is one generated code can use: a non-null, 8-byte aligned array of
    /// a power-of-two number of entries that fits in the address space, naturally aligned
    /// fields inside an entry, a shift below 64.
    pub fn is_valid(&self) -> bool {
        let size = u64::from(self.entry_size);
        let field =
            |off: u32, bytes: u64| u64::from(off) % bytes == 0 && u64::from(off) + bytes <= size;
        let total = self
            .mask
            .checked_add(1)
            .and_then(|n| n.checked_mul(size))
            .and_then(|b| b.checked_add(self.entries as u64));
        self.entries != 0
            && self.entries.is_multiple_of(8)
            && self.mask.wrapping_add(1).is_power_of_two()
            && size.is_multiple_of(8)
            && field(self.off_pc, 8)
            && field(self.off_mode, 4)
            && field(self.off_host, 8)
            && self.hash_shift < 64
            && total.is_some_and(|end| end <= isize::MAX as u64)
    }
}

/// How generated code reaches guest memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemoryModel {
    /// Guest-virtual = guest-physical, RAM at `[0, ram_size)` in one host mapping. An access
    /// that lies wholly inside RAM is done inline at `ram_base + addr`; anything else calls
    /// [`Helper::MemRead`] / [`Helper::MemWrite`]. A store also takes the helper when the
    /// code bitmap marks the page of its first byte, so the runtime sees self-modifying code.
    /// Stores beyond the pages the bitmap covers always take the helper.
    Flat {
        /// Host address of guest-physical 0.
        ram_base: usize,
        /// Bytes of RAM.
        ram_size: u64,
        /// Host address of the code bitmap: one byte per 4 KiB guest page, nonzero = the page
        /// or the next one holds translated code (so a store of up to a page, which touches
        /// at most those two, tests one byte). Must stay valid (and at this address) while
        /// code generated with it may run.
        code_bitmap: usize,
        /// Number of bytes (pages) in the code bitmap.
        code_bitmap_len: u64,
    },
    /// Paging: guest addresses are linear (virtual) and go through the soft TLB in
    /// [`crate::state::CpuState::tlb`], set `set` (the set of the block's CPL,
    /// [`crate::state::Tlb::set_for`]). An access of `n` bytes at `addr` hits when the entry
    /// `(addr >> 12) % TLB_ENTRIES` of the set has `read_tag` (loads) or `write_tag` (stores)
    /// equal to `(addr + n - 1) & !0xFFF` (so page-crossing accesses miss), and is then done
    /// inline at host address `addr + addend`; a miss calls [`Helper::MemRead`] /
    /// [`Helper::MemWrite`] with the linear address, which walk the page tables, may refill
    /// the entry, and may raise #PF. There is no code-bitmap check: the runtime never sets
    /// `write_tag` for a page holding translated code, so such stores reach `MemWrite`.
    /// A `set` that does not exist makes every access call the helpers.
    ///
    /// What the runtime guarantees while code generated with this model may run: a valid tag
    /// names a page whose 4096 bytes at `tag + addend` are host memory the guest may access
    /// that way (guest RAM, never MMIO or `CpuState`), and generated code only reads the TLB
    /// (helpers change it).
    Tlb {
        /// Index of the TLB set: 0 supervisor, 1 user.
        set: usize,
    },
}

/// Options of the JIT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JitConfig {
    /// Run Cranelift's IR verifier on every function before compiling it. Default: on in
    /// debug builds, off in release builds.
    pub verify: bool,
    /// How hard Cranelift optimizes. Default [`OptLevel::Speed`].
    pub opt_level: OptLevel,
    /// Which register allocator Cranelift runs. Default [`Regalloc::Backtracking`].
    pub regalloc: Regalloc,
    /// Lower each hypercall to a real host trap (`int3`) instead of a call: the `trap`
    /// engine's trap-and-emulate. The stub stores the three arguments in
    /// `CpuState::helper_out[0..3]`, traps, and reads the result from `helper_out[0]`; the
    /// runtime's SIGTRAP handler runs the same handler a call would. Default off.
    pub trap_hypercalls: bool,
    /// Count the hits of inline soft-TLB probes in `CpuState::tlb_inline_hits` (one memory
    /// increment per hit: for `--stats`). Default off.
    pub count_tlb_hits: bool,
    /// Whose rules the flags the manuals leave undefined follow. Default
    /// [`Vendor::host`]: every engine must agree with the host.
    pub vendor: Vendor,
    /// In a function that loops (a self-loop, a region), keep the registers it writes and
    /// the flags in SSA values across its internal edges and write them back only on the
    /// way out ([`crate::emit::Carried`]). Off: every internal edge writes the state back.
    /// Default on.
    pub carry_state: bool,
}

impl Default for JitConfig {
    fn default() -> Self {
        JitConfig {
            verify: cfg!(debug_assertions),
            opt_level: OptLevel::Speed,
            regalloc: Regalloc::Backtracking,
            trap_hypercalls: false,
            count_tlb_hits: false,
            vendor: Vendor::host(),
            carry_state: true,
        }
    }
}

/// Cranelift optimization level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptLevel {
    /// No mid-end optimization (fastest compile).
    None,
    /// Optimize for speed (e-graph rewrites, alias analysis, LICM).
    Speed,
    /// As `Speed`, also shrinking code.
    SpeedAndSize,
}

/// Cranelift register allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Regalloc {
    /// Backtracking with live-range splitting: the better code.
    Backtracking,
    /// Single pass: several times faster to compile, more spills and moves (a first tier).
    SinglePass,
}

/// The result of translating one block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledBlock {
    /// Position-independent host code (no relocations); its entry is at offset 0. Place it
    /// at a 16-byte aligned address.
    pub code: Vec<u8>,
    /// Guest instructions translated (the block's prefix up to the one that ends it), which
    /// is what the block charges to `icount`.
    pub guest_insns: u32,
    /// Cranelift IR instructions built (after a retranslation, those of the final build).
    pub ir_insts: usize,
    /// Nanoseconds spent building IR (decoding excluded).
    pub time_translate_ns: u64,
    /// Nanoseconds spent in Cranelift (optimization, lowering, register allocation, emission).
    pub time_compile_ns: u64,
}

/// Errors of the JIT.
#[derive(Debug, thiserror::Error)]
pub enum JitError {
    /// The host is not supported by Cranelift: {0}
    #[error("the host is not supported by Cranelift: {0}")]
    Host(String),
    /// Invalid Cranelift setting: {0}
    #[error("invalid Cranelift setting: {0}")]
    Setting(String),
    /// The block has no instructions (fetching its first instruction faults).
    #[error("the block has no instructions (fetching its first instruction faults)")]
    EmptyBlock,
    /// The Cranelift IR verifier rejected the function: {0}
    #[error("the Cranelift IR verifier rejected the function: {0}")]
    Verifier(String),
    /// Cranelift failed to compile the function: {0}
    #[error("Cranelift failed to compile the function: {0}")]
    Codegen(String),
    /// The generated code needs {0} relocation(s); it must be position independent.
    #[error("the generated code needs {0} relocation(s); it must be position independent")]
    Relocations(usize),
    /// The semantics misused the emitter: {0}
    #[error("the semantics misused the emitter: {0}")]
    Internal(&'static str),
    /// A panic while building or compiling the function: {0}
    #[error("a panic while building or compiling the function: {0}")]
    Panic(String),
}

/// The JIT compiler: a host ISA and reusable Cranelift contexts.
pub struct Jit {
    isa: OwnedTargetIsa,
    ctx: Context,
    fctx: FunctionBuilderContext,
    trap_hypercalls: bool,
    count_tlb_hits: bool,
    vendor: Vendor,
    carry_state: bool,
    /// Tag each IR instruction with its guest instruction (see [`Shape::srclocs`]); off
    /// outside the code-size profile.
    pub(crate) srclocs: bool,
}

/// What the emitter needs to know about a block before semantics run.
#[derive(Clone, Copy, Debug)]
struct Shape {
    /// Guest address of the block.
    pc: u64,
    /// GPRs the semantics preload (kept in shadow variables).
    preload: u16,
    /// GPRs whose unmodified value is reloaded from `CpuState` at each use.
    reload: u16,
    /// [`Mode::key`] of the mode the block is translated in.
    mode_key: u32,
    /// Hypercalls are host traps (the `trap` engine) instead of calls.
    trap_hypercalls: bool,
    /// Inline soft-TLB hits are counted ([`JitConfig::count_tlb_hits`]).
    count_tlb_hits: bool,
    /// In a looping function, the GPRs carried across its internal edges in variables, and
    /// the flags with them (see [`crate::emit::Carried`]); `None` elsewhere.
    carry: Option<u16>,
    /// With `carry`, the flags are carried too.
    carry_flags: bool,
    /// Tag IR instructions with source locations: guest instruction `k` (1-based) of the
    /// function is `SourceLoc::new(k)`, code between instructions (commits' leftovers,
    /// exits and fault tails emitted at the end) [`SRCLOC_BETWEEN`], the head none. Only
    /// for the code-size profile (`jit::tests::profile`).
    srclocs: bool,
}

/// The source location of IR emitted between guest instructions (see [`Shape::srclocs`]).
pub(crate) const SRCLOC_BETWEEN: u32 = u32::MAX - 1;

/// Whether `block` overwrites all six arithmetic flags, reading none, within its first
/// instructions. Carried flags stay live in host registers from a head to their overwrite
/// (every exit before it writes them back): worth it only when that stretch is short.
/// (callgrind, scale 10: carrying the flags of every loop cost matmul 7.7%, whose inner
/// loop compares at its end; crc32 gained 9%.)
pub(crate) fn flags_overwritten_early(block: &DecodedBlock) -> bool {
    use iced_x86::RflagsBits as R;
    const ARITH: u32 = R::OF | R::SF | R::ZF | R::AF | R::CF | R::PF;
    for insn in block.insns.iter().take(3) {
        if insn.rflags_read() & ARITH != 0 {
            return false;
        }
        if insn.rflags_modified() & ARITH == ARITH {
            return true;
        }
    }
    false
}

/// GPRs any instruction of `block` may write (as iced reports them).
fn written_gprs(block: &DecodedBlock) -> u16 {
    let mut info = InstructionInfoFactory::new();
    let mut mask = 0u16;
    for insn in &block.insns {
        for r in info.info(insn).used_registers() {
            let reg = r.register();
            let reads_only = matches!(
                r.access(),
                OpAccess::Read | OpAccess::CondRead | OpAccess::NoMemAccess | OpAccess::None
            );
            if reg.is_gpr() && !reads_only {
                let i = (reg.full_register() as usize).wrapping_sub(Register::RAX as usize);
                if i < 16 {
                    mask |= 1 << i;
                }
            }
        }
    }
    mask
}

/// What building one function reported.
struct Built {
    /// Guest instructions translated.
    insns: u32,
    /// IR instructions in the layout.
    ir_insts: usize,
}

impl Jit {
    /// A JIT for the host CPU with the default [`JitConfig`].
    pub fn new() -> Result<Jit, JitError> {
        Jit::with_config(JitConfig::default())
    }

    /// A JIT for the host CPU.
    pub fn with_config(config: JitConfig) -> Result<Jit, JitError> {
        let mut flags = settings::builder();
        let set = |f: &mut settings::Builder, k: &str, v: &str| {
            f.set(k, v)
                .map_err(|e| JitError::Setting(format!("{k}={v}: {e}")))
        };
        let opt = match config.opt_level {
            OptLevel::None => "none",
            OptLevel::Speed => "speed",
            OptLevel::SpeedAndSize => "speed_and_size",
        };
        let regalloc = match config.regalloc {
            Regalloc::Backtracking => "backtracking",
            Regalloc::SinglePass => "single_pass",
        };
        set(&mut flags, "opt_level", opt)?;
        set(&mut flags, "regalloc_algorithm", regalloc)?;
        set(&mut flags, "enable_verifier", bool_str(config.verify))?;
        // Blocks are never unwound through; no unwind tables needed.
        set(&mut flags, "unwind_info", "false")?;
        // Cranelift's tail calls rely on frame pointers.
        set(&mut flags, "preserve_frame_pointers", "true")?;
        let isa_builder = cranelift_native::builder().map_err(|e| JitError::Host(e.to_string()))?;
        let isa = isa_builder
            .finish(settings::Flags::new(flags))
            .map_err(|e| JitError::Host(e.to_string()))?;
        Ok(Jit {
            isa,
            ctx: Context::new(),
            fctx: FunctionBuilderContext::new(),
            trap_hypercalls: config.trap_hypercalls,
            count_tlb_hits: config.count_tlb_hits,
            vendor: config.vendor,
            carry_state: config.carry_state,
            srclocs: false,
        })
    }

    /// Translate `block` (decoded in `mode`) to host code. See the module documentation for
    /// what the code does.
    pub fn translate(
        &mut self,
        block: &DecodedBlock,
        mode: Mode,
        env: &mut dyn JitEnv,
    ) -> Result<CompiledBlock, JitError> {
        self.translate_region(std::slice::from_ref(block), mode, env)
    }

    /// Translate a region: the blocks of `blocks` as one function entered at `blocks[0]`
    /// (see [`crate::semantics::translate_region`]). `guest_insns` is the sum of what each
    /// block charges.
    pub fn translate_region(
        &mut self,
        blocks: &[DecodedBlock],
        mode: Mode,
        env: &mut dyn JitEnv,
    ) -> Result<CompiledBlock, JitError> {
        let t0 = Instant::now();
        let built = self.translate_ir(blocks, mode, env)?;
        let t1 = Instant::now();
        let code = self.compile()?;
        let t2 = Instant::now();
        Ok(CompiledBlock {
            code,
            guest_insns: built.insns,
            ir_insts: built.ir_insts,
            time_translate_ns: nanos(t1 - t0),
            time_compile_ns: nanos(t2 - t1),
        })
    }

    /// Builds the function of `blocks` (a block, or a region entered at `blocks[0]`) in
    /// `self.ctx`.
    fn translate_ir(
        &mut self,
        blocks: &[DecodedBlock],
        mode: Mode,
        env: &mut dyn JitEnv,
    ) -> Result<Built, JitError> {
        let Some(block) = blocks.first() else {
            return Err(JitError::EmptyBlock);
        };
        if blocks.iter().any(|b| b.insns.is_empty()) {
            return Err(JitError::EmptyBlock);
        }
        // Link slots are asked for once per target, even if the block is built twice.
        let mut links = HashMap::new();
        let preload = blocks.iter().fold(0, |m, b| m | b.gpr_mask());
        // Unmodified registers are reloaded at each use (short live ranges); in a self-loop
        // only those the loop never writes, so loop-carried values stay in registers. In a
        // region every way into a block stored the registers, so the rule is the block's own:
        // values carried from block to block are reloaded rather than held in host registers
        // across the whole region (which spilled inside its inner loops).
        let self_loop = |b: &DecodedBlock| {
            b.insns.iter().any(|i| {
                matches!(
                    i.flow_control(),
                    FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch
                ) && i.near_branch_target() == b.pc
            })
        };
        let reload_of = |b: &DecodedBlock| {
            if self_loop(b) {
                !written_gprs(b)
            } else {
                0xffff
            }
        };
        let reload = reload_of(block);
        let heads: Vec<(u64, u16)> = blocks[1..].iter().map(|b| (b.pc, reload_of(b))).collect();
        // A function loops when it has more than one block (a region's blocks all reach its
        // entry again) or its block jumps back to itself.
        let loops = blocks.len() > 1 || self_loop(block);
        let carry =
            (self.carry_state && loops).then(|| blocks.iter().fold(0, |m, b| m | written_gprs(b)));
        let shape = Shape {
            pc: block.pc,
            preload,
            reload,
            mode_key: mode.key(),
            trap_hypercalls: self.trap_hypercalls,
            count_tlb_hits: self.count_tlb_hits,
            carry,
            carry_flags: carry.is_some() && blocks.iter().all(flags_overwritten_early),
            srclocs: self.srclocs,
        };
        let vendor = self.vendor;
        let (mut built, missing) = self.build_block(shape, &heads, env, &mut links, |e| {
            crate::semantics::translate_region(e, blocks, mode, preload, vendor)
        })?;
        if missing && preload != 0xffff {
            let shape = Shape {
                preload: 0xffff,
                ..shape
            };
            (built, _) = self.build_block(shape, &heads, env, &mut links, |e| {
                crate::semantics::translate_region(e, blocks, mode, 0xffff, vendor)
            })?;
        }
        Ok(built)
    }

    /// The first half of [`Jit::translate`]: `block`'s Cranelift IR, to be compiled by a
    /// [`Compiler`] (possibly on another thread). Everything the code will bake in (link
    /// slots, stubs, the memory model) is asked of `env` now.
    pub fn build(
        &mut self,
        block: &DecodedBlock,
        mode: Mode,
        env: &mut dyn JitEnv,
    ) -> Result<BuiltBlock, JitError> {
        self.build_region(std::slice::from_ref(block), mode, env)
    }

    /// [`Jit::build`] for a region (see [`Jit::translate_region`]).
    pub fn build_region(
        &mut self,
        blocks: &[DecodedBlock],
        mode: Mode,
        env: &mut dyn JitEnv,
    ) -> Result<BuiltBlock, JitError> {
        let t0 = Instant::now();
        // As `translate`, without the compilation (the same function, built the same way).
        let built = self.translate_ir(blocks, mode, env)?;
        Ok(BuiltBlock {
            func: std::mem::replace(&mut self.ctx.func, Function::new()),
            guest_insns: built.insns,
            ir_insts: built.ir_insts,
            time_translate_ns: nanos(t0.elapsed()),
        })
    }

    /// A compiler for the functions [`Jit::build`] makes, with this JIT's settings.
    pub fn compiler(&self) -> Compiler {
        Compiler {
            isa: self.isa.clone(),
            ctx: Context::new(),
        }
    }

    /// Code of `extern "C" fn(cpu: *mut CpuState, block: usize) -> u64`: clears
    /// `cpu.status`, calls the block (or exit stub) at host address `block` with `cpu` and
    /// returns its exit reason.
    pub fn entry_trampoline(&mut self) -> Result<Vec<u8>, JitError> {
        let mut sig = Signature::new(CallConv::SystemV);
        sig.params.push(AbiParam::new(types::I64));
        sig.params.push(AbiParam::new(types::I64));
        sig.returns.push(AbiParam::new(types::I64));
        let block_sig = block_signature();
        self.build_stub(sig, |b| {
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            b.seal_block(entry);
            let (cpu, callee) = (b.block_params(entry)[0], b.block_params(entry)[1]);
            // Blocks treat a nonzero status after a helper as a fault: start clean.
            let zero = b.ins().iconst(types::I64, 0);
            b.ins().store(
                MemFlagsData::trusted(),
                zero,
                cpu,
                crate::state::OFF_STATUS as i32,
            );
            let sig = b.import_signature(block_sig);
            let call = b.ins().call_indirect(sig, callee, &[cpu]);
            let r = b.inst_results(call)[0];
            b.ins().return_(&[r]);
        })
    }

    /// Code of the unlinked exit stub, a block-convention function that returns
    /// [`ExitReason::Jump`]: the value every link slot holds until it is linked.
    pub fn exit_stub(&mut self) -> Result<Vec<u8>, JitError> {
        self.build_stub(block_signature(), |b| {
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            b.seal_block(entry);
            let r = b.ins().iconst(types::I64, ExitReason::Jump as i64);
            b.ins().return_(&[r]);
        })
    }

    /// The Cranelift IR of the last function built (optimized, if it was compiled), for
    /// debugging.
    pub fn last_clif(&self) -> String {
        self.ctx.func.display().to_string()
    }

    /// Build one block function with `body` driving the emitter; `body` returns the emitter
    /// and whether semantics touched a register outside the preload mask.
    fn build_block(
        &mut self,
        shape: Shape,
        heads: &[(u64, u16)],
        env: &mut dyn JitEnv,
        links: &mut HashMap<u64, Option<usize>>,
        body: impl FnOnce(ClifEmitter<'_>) -> (ClifEmitter<'_>, bool),
    ) -> Result<(Built, bool), JitError> {
        self.ctx.clear();
        self.ctx.func.signature = block_signature();
        let frontend = self.isa.frontend_config();
        let (ctx, fctx) = (&mut self.ctx, &mut self.fctx);
        let run = catch_unwind(AssertUnwindSafe(|| {
            let b = FunctionBuilder::new(&mut ctx.func, fctx);
            let e = ClifEmitter::begin(b, env, links, shape, heads);
            let (e, missing) = body(e);
            e.end(frontend).map(|insns| (insns, missing))
        }));
        let (insns, missing) = self.settle(run)??;
        let ir_insts = self
            .ctx
            .func
            .layout
            .blocks()
            .map(|b| self.ctx.func.layout.block_insts(b).count())
            .sum();
        Ok((Built { insns, ir_insts }, missing))
    }

    /// Build and compile a small function outside the block protocol.
    fn build_stub(
        &mut self,
        sig: Signature,
        body: impl FnOnce(&mut FunctionBuilder<'_>),
    ) -> Result<Vec<u8>, JitError> {
        self.ctx.clear();
        self.ctx.func = Function::with_name_signature(UserFuncName::default(), sig);
        let frontend = self.isa.frontend_config();
        let (ctx, fctx) = (&mut self.ctx, &mut self.fctx);
        let run = catch_unwind(AssertUnwindSafe(|| {
            let mut b = FunctionBuilder::new(&mut ctx.func, fctx);
            body(&mut b);
            b.finalize(frontend);
        }));
        self.settle(run)?;
        self.compile()
    }

    /// Compile the function in `self.ctx` to relocation-free bytes.
    fn compile(&mut self) -> Result<Vec<u8>, JitError> {
        let run = compile_ctx(&mut self.ctx, &*self.isa);
        self.settle(run)?
    }

    /// Turn a caught panic into [`JitError::Panic`], resetting the contexts it may have left
    /// half-used.
    fn settle<T>(&mut self, run: std::thread::Result<T>) -> Result<T, JitError> {
        run.map_err(|p| {
            self.ctx = Context::new();
            self.fctx = FunctionBuilderContext::new();
            JitError::Panic(panic_message(&*p))
        })
    }
}

/// Compiles the function in `ctx` to relocation-free bytes, catching Cranelift panics.
fn compile_ctx(
    ctx: &mut Context,
    isa: &dyn cranelift_codegen::isa::TargetIsa,
) -> std::thread::Result<Result<Vec<u8>, JitError>> {
    catch_unwind(AssertUnwindSafe(|| {
        match ctx.compile(isa, &mut ControlPlane::default()) {
            Ok(code) => {
                let relocs = code.buffer.relocs().len();
                if relocs != 0 {
                    return Err(JitError::Relocations(relocs));
                }
                Ok(code.code_buffer().to_vec())
            }
            Err(e) => Err(match e.inner {
                CodegenError::Verifier(v) => JitError::Verifier(v.to_string()),
                other => JitError::Codegen(other.to_string()),
            }),
        }
    }))
}

/// A block's Cranelift IR, built by [`Jit::build`] and not compiled yet.
pub struct BuiltBlock {
    func: Function,
    /// Guest instructions translated (what the block charges).
    pub guest_insns: u32,
    /// Cranelift IR instructions built.
    pub ir_insts: usize,
    /// Nanoseconds spent building the IR.
    pub time_translate_ns: u64,
}

impl std::fmt::Debug for BuiltBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltBlock")
            .field("guest_insns", &self.guest_insns)
            .field("ir_insts", &self.ir_insts)
            .finish_non_exhaustive()
    }
}

/// Compiles [`BuiltBlock`]s; `Send`, so compilation can run on another thread than the one
/// building IR (the tiered engine's background compiler).
pub struct Compiler {
    isa: OwnedTargetIsa,
    ctx: Context,
}

impl Compiler {
    /// `b`'s host code.
    pub fn compile(&mut self, b: BuiltBlock) -> Result<CompiledBlock, JitError> {
        let t0 = Instant::now();
        self.ctx.clear();
        self.ctx.func = b.func;
        let code = compile_ctx(&mut self.ctx, &*self.isa).unwrap_or_else(|p| {
            self.ctx = Context::new();
            Err(JitError::Panic(panic_message(&p)))
        })?;
        Ok(CompiledBlock {
            code,
            guest_insns: b.guest_insns,
            ir_insts: b.ir_insts,
            time_translate_ns: b.time_translate_ns,
            time_compile_ns: nanos(t0.elapsed()),
        })
    }
}

/// The message of a caught panic.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_string())
}

/// Signature of a block: `tail fn(cpu: i64) -> i64`.
fn block_signature() -> Signature {
    let mut sig = Signature::new(CallConv::Tail);
    sig.params.push(AbiParam::new(types::I64));
    sig.returns.push(AbiParam::new(types::I64));
    sig
}

fn bool_str(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Disassemble host x86-64 code (GNU syntax), one instruction per line with its offset from
/// `base`. For debugging and reports.
pub fn disassemble(code: &[u8], base: u64) -> String {
    use iced_x86::{Decoder, DecoderOptions, Formatter, GasFormatter, Instruction};
    use std::fmt::Write;
    let mut decoder = Decoder::with_ip(64, code, base, DecoderOptions::NONE);
    let mut formatter = GasFormatter::new();
    let mut insn = Instruction::default();
    let mut text = String::new();
    let mut out = String::new();
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        text.clear();
        formatter.format(&insn, &mut text);
        let _ = writeln!(out, "{:6x}  {text}", insn.ip());
    }
    out
}
