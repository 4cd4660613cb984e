//! `Ctx`: the translation context semantics are written against. It wraps an [`Emitter`] and
//! owns everything that is the same for every engine: guest register caching in variables,
//! pending (uncommitted) writes, lazy flags, operand decoding, structured control flow (REP
//! loops, values computed on one of two paths), and block exits.
//! Parts: `lazy_flags` (flag descriptors and their readers), `control` (REP loops,
//! `if_else`), `exits` (block exits, hypercall stubs, the fault exits).
//!
//! Invariants (precise exceptions, DESIGN.md):
//! - Register and flag writes made by an instruction are *pending* until the instruction ends
//!   (`end_insn`), so a fault in the middle of an instruction sees the state of its start.
//!   Memory stores happen at once; semantics perform every load and potentially faulting
//!   check before their first store where the architecture allows.
//! - A REP iteration commits its writes before looping, so a fault in iteration k leaves the
//!   state after iteration k-1 with RIP at the instruction, as hardware does.
//! - The arms of [`Ctx::if_else`] compute values only (no register or flag writes, no
//!   exits), so a helper faulting in one leaves with the state of the instruction's start.
//! - Every exit writes back the registers written in the block and the flag state.
//! - In a function that loops and carries state ([`crate::emit::Carried`]), an internal
//!   edge (a direct jump to the function's entry or to another block of its region) writes
//!   back only the registers outside the carried set; the carried registers stay in their
//!   variables and count as written from every head on, and the flags go to the carried
//!   descriptor variables ([`FlagState::Carried`] at every head). Every way out of the
//!   function (exits, fault exits, hypercalls, the heads' budget and promotion exits)
//!   writes them back.
//! - Generated code keeps committed XMM registers in variables; those not written through
//!   (`xmm_dirty`) are stored at exits, hypercalls and `sync_fp`. An inline floating-point
//!   operation raises MXCSR flags Cranelift does not know of, so its result is written
//!   through when its instruction commits (no such operation is dead code, and Cranelift
//!   computes it there, once, rather than in each later exit or arm that uses it); except
//!   where a later instruction is expected to read it into an inline floating-point
//!   operation of its own with nothing on the way using it ([`Ctx::expect_fp_reads`]).
//!   Until that operation (itself kept by this rule) read it, it is *unkept*
//!   (`xmm_unkept`): exits store it as any dirty register, and an instruction that
//!   overwrites it first writes it through. So every path on which the instruction ran
//!   computes it.

use iced_x86::{Instruction, MemorySize, OpKind, Register};

use crate::emit::{Carried, Emitter};
use crate::flags::{self, Lazy, Vendor};
use crate::ir::{BinOp, Cmp, Conv, Ty, UnOp};

use crate::state;
use crate::Mode;

mod control;
mod exits;
mod fault_tail;
mod lazy_flags;
mod stack_run;

/// Where the arithmetic flags currently are, at translation time.
#[derive(Clone, Copy, Debug)]
enum FlagState<V> {
    /// In `CpuState` (lazy descriptor or `rflags`), as at block entry.
    Stored,
    /// Described by a lazy descriptor of values.
    Lazy(Lazy<V>),
    /// Arithmetic bits (an `I64`) known as a value.
    Computed(V),
    /// Arithmetic bits held in the flags variable (used across control flow).
    InVar,
    /// As the descriptor in the carried flag variables says (the state at a head of a
    /// function that carries state; see [`crate::emit::Carried`]).
    Carried,
    /// As at block entry, except the flags in `mask`, which are the same bits of `bits`
    /// (an `I64`). Instructions that write only some flags (rotates, AMD's MUL, BT) leave
    /// this so the entry flags are materialized only if something reads the untouched ones.
    StoredWith { mask: u64, bits: V },
}

/// A REP prefix, as it applies to a string instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rep {
    /// No prefix: one iteration.
    None,
    /// REP: repeat RCX times.
    Rep,
    /// REPE/REPZ: repeat while RCX != 0 and ZF = 1.
    Repe,
    /// REPNE/REPNZ: repeat while RCX != 0 and ZF = 0.
    Repne,
}

/// A fault exit to emit at the end of translation.
struct FaultExit<L, V> {
    label: L,
    /// Index of the faulting instruction in the block (in the function, for a region).
    index: u32,
    /// Which block of the region it is in (0 outside regions).
    block: usize,
    written: u16,
    /// The XMM registers whose committed values `CpuState` lacks there (see `xmm_dirty`).
    xmm: u16,
    flags: FlagState<V>,
    pc: u64,
}

/// An exit after a hypercall that may go on in place: where it is, and the host code the
/// handler named.
struct HostExit<L, V> {
    at: FaultExit<L, V>,
    code: V,
}

/// The translation context. See the module documentation.
pub struct Ctx<E: Emitter> {
    /// The emitter; semantics may use it directly for pure operations.
    pub e: E,
    mode: Mode,
    vendor: Vendor,
    regs: [E::Var; 16],
    /// The GPRs loaded at function entry (defined on every path of a region).
    entry_preload: u16,
    preloaded: u16,
    defined: u16,
    written: u16,
    pending: [Option<E::Value>; 16],
    flags: FlagState<E::Value>,
    pending_flags: Option<FlagState<E::Value>>,
    flags_var: E::Var,
    insn: Instruction,
    insn_pc: u64,
    insn_start_flags: FlagState<E::Value>,
    insn_start_written: u16,
    fault_label: Option<E::Label>,
    fault_exits: Vec<FaultExit<E::Label, E::Value>>,
    /// Exits of repeated string instructions that stopped between iterations at the end of
    /// the budget (`index`: the instruction; `pc`: where it restarts).
    rep_cuts: Vec<FaultExit<E::Label, E::Value>>,
    /// Exits after a hypercall that went on in place, taken when its handler named host code
    /// instead (`index`: the instruction; `pc` unused), with that code.
    host_exits: Vec<HostExit<E::Label, E::Value>>,
    addr_cache: Option<E::Value>,
    terminated: bool,
    /// Nesting of structured control flow being emitted (REP bodies).
    loop_depth: u32,
    /// Instructions begun so far (the block's instruction count once translation ends).
    begun: u32,
    /// In a region, `begun` at the end of each block before the current one (and, once
    /// translation ends, of the last): a fault exit of block `k` takes back the instructions
    /// up to `block_ends[k]`, which that block's head charged.
    block_ends: Vec<u32>,
    /// The stored flag descriptor once loaded in straight-line code.
    entry_desc: Option<flags::Stored<E::Value>>,
    /// Count of register and flag writes made pending (wrapping): `if_else` checks that its
    /// arms make none.
    writes: u32,
    /// Set when semantics touched a register the block did not preload; the JIT then
    /// retranslates with every register preloaded.
    pub missing_regs: bool,
    /// The state carried across internal edges (see the module invariants), if any.
    carried: Option<Carried<E::Var>>,
    /// XMM registers (see `xmm`): variables declared on first use (JIT only), which of them
    /// hold the register's value, and this instruction's pending writes.
    xmm_vars: [Option<E::VVar>; 16],
    xmm_defined: u16,
    xmm_pending: [Option<E::Vec>; 16],
    /// Committed XMM registers not yet stored to `CpuState` (never in the interpreter, which
    /// writes through): every exit, hypercall and [`Ctx::sync_fp`] stores them.
    xmm_dirty: u16,
    /// This instruction's pending writes made by [`Ctx::set_xmm_fp`].
    xmm_pending_fp: u16,
    /// The registers whose committed value this instruction read.
    insn_xmm_read: u16,
    /// The registers a later instruction is expected to read into an inline floating-point
    /// operation ([`Ctx::expect_fp_reads`]).
    next_fp_reads: u16,
    /// Dirty registers holding a floating-point result left unstored because a later
    /// instruction was expected to read it (see the module invariants).
    xmm_unkept: u16,
    /// `xmm_dirty` when the current instruction began (what its fault exit stores).
    insn_start_xmm: u16,
    /// The last instruction (a `begun` index) of the run of stack accesses whose range was
    /// checked at its start, if one is under way (see `stack_run`).
    stack_run_last: Option<u32>,
    /// A waiting x87/MMX stub ran earlier on every path here in a block whose mode masks
    /// every x87 exception: the x87 state is live with FERR# deasserted (`fpu_live` = 1), and
    /// nothing in the block changes that (see [`Ctx::x87_live`]).
    x87_live: bool,
}

impl<E: Emitter> Ctx<E> {
    /// Start a block. `preload` is a bit mask of the GPRs the block may touch; they are loaded
    /// from `CpuState` into variables at entry.
    pub fn new(mut e: E, mode: Mode, preload: u16) -> Self {
        let carried = e.carried();
        let carried_gprs = carried.map_or(0, |c| c.gprs);
        // A carried register's variable is the emitter's, defined before the loop head.
        let regs: [E::Var; 16] = std::array::from_fn(|i| match carried.and_then(|c| c.gpr[i]) {
            Some(v) => v,
            None => e.declare_var(Ty::I64),
        });
        let flags_var = e.declare_var(Ty::I64);
        for (i, &var) in regs.iter().enumerate() {
            if preload & !carried_gprs & (1 << i) != 0 {
                let v = e.load_state(Ty::I64, state::off_gpr(i));
                e.def_var(var, v);
            }
        }
        let zero = e.iconst(Ty::I64, 0);
        e.def_var(flags_var, zero);
        let flags = match carried.and_then(|c| c.flags) {
            Some(_) => FlagState::Carried,
            None => Self::entry_flags(&mut e),
        };
        Ctx {
            e,
            mode,
            vendor: Vendor::host(),
            regs,
            entry_preload: preload,
            preloaded: preload,
            defined: preload | carried_gprs,
            written: carried_gprs,
            pending: [None; 16],
            flags,
            pending_flags: None,
            flags_var,
            insn: Instruction::default(),
            insn_pc: 0,
            insn_start_flags: FlagState::Stored,
            insn_start_written: 0,
            fault_label: None,
            fault_exits: Vec::new(),
            rep_cuts: Vec::new(),
            host_exits: Vec::new(),
            addr_cache: None,
            terminated: false,
            loop_depth: 0,
            begun: 0,
            block_ends: Vec::new(),
            entry_desc: None,
            writes: 0,
            missing_regs: false,
            carried,
            xmm_vars: [None; 16],
            xmm_defined: 0,
            xmm_pending: [None; 16],
            xmm_dirty: 0,
            xmm_pending_fp: 0,
            insn_xmm_read: 0,
            next_fp_reads: 0,
            xmm_unkept: 0,
            insn_start_xmm: 0,
            stack_run_last: None,
            x87_live: false,
        }
    }

    /// The flag state at entry. With concrete values (the interpreter) the stored lazy
    /// descriptor is read now, so `CMP; Jcc` compares operands instead of materializing
    /// flags through a helper; generated code must treat it as unknown.
    fn entry_flags(e: &mut E) -> FlagState<E::Value> {
        if !e.is_concrete() {
            return FlagState::Stored;
        }
        let op = e.load_state(Ty::I64, state::OFF_FLAGS_OP);
        let Some((op, ty)) = e.as_const(op).and_then(flags::decode_op) else {
            return FlagState::Stored;
        };
        let mut field = |off| {
            let v = e.load_state(Ty::I64, off);
            e.convert(Conv::Trunc, v, ty)
        };
        let (a, b, res) = (
            field(state::OFF_FLAGS_A),
            field(state::OFF_FLAGS_B),
            field(state::OFF_FLAGS_RES),
        );
        let aux = e.load_state(Ty::I8, state::OFF_FLAGS_AUX);
        FlagState::Lazy(Lazy {
            op,
            ty,
            a,
            b,
            res,
            aux,
        })
    }

    /// Translate for `vendor`'s undefined flags instead of the host's (tests that check
    /// each vendor's rules on any host).
    pub fn with_vendor(mut self, vendor: Vendor) -> Self {
        self.vendor = vendor;
        self
    }

    /// The execution mode of the block.
    pub fn mode(&self) -> Mode {
        self.mode
    }
    /// Whose rules the flags the manuals leave undefined follow ([`Vendor::host`] unless a
    /// test chose otherwise): a translation-time choice, never a run-time branch.
    pub fn vendor(&self) -> Vendor {
        self.vendor
    }
    /// The instruction being translated.
    pub fn insn(&self) -> &Instruction {
        &self.insn
    }
    /// Address of the current instruction.
    pub fn pc(&self) -> u64 {
        self.insn_pc
    }
    /// Address of the next instruction.
    pub fn next_pc(&self) -> u64 {
        self.insn.next_ip()
    }
    /// Whether the x87 state is known live here, so x87/MMX stubs may be called directly.
    /// A waiting instruction's stub call makes it so in a block of
    /// [`crate::fp_mode::X87_MASKED`] mode: the runtime loads the state and, no exception
    /// being pending, deasserts FERR#; only the end of the run (outside any block) and
    /// FXRSTOR (which ends its block) undo that.
    pub fn x87_live(&self) -> bool {
        self.x87_live
    }

    /// Record that a waiting x87/MMX stub was just called (see [`Ctx::x87_live`]).
    pub fn note_x87_stub(&mut self) {
        self.x87_live |= self.mode.fp & crate::fp_mode::X87_MASKED != 0;
    }

    /// Whether the block has exited (no further instructions may be emitted).
    pub fn terminated(&self) -> bool {
        self.terminated
    }

    // ---------------------------------------------------------------- instruction lifecycle

    /// Begin translating `insn`.
    pub fn begin_insn(&mut self, insn: &Instruction) {
        self.insn = *insn;
        self.insn_pc = insn.ip();
        self.begun += 1;
        self.addr_cache = None;
        self.pending = [None; 16];
        self.pending_flags = None;
        self.xmm_pending = [None; 16];
        self.xmm_pending_fp = 0;
        self.insn_xmm_read = 0;
        self.next_fp_reads = 0;
        self.insn_start_xmm = self.xmm_dirty;
        self.insn_start_flags = self.flags;
        self.insn_start_written = self.written;
        let l = self.e.new_label();
        self.fault_label = Some(l);
        self.e.set_fault_label(Some(l));
    }

    /// Finish the current instruction: commit its writes and register its fault exit.
    pub fn end_insn(&mut self) {
        if !self.terminated && !self.e.faulted() {
            self.commit();
        }
        let used = self.e.fault_label_used();
        self.e.set_fault_label(None);
        if let Some(label) = self.fault_label.take() {
            if used {
                self.fault_exits.push(FaultExit {
                    label,
                    index: self.begun - 1,
                    block: self.block_ends.len(),
                    written: self.insn_start_written,
                    xmm: self.insn_start_xmm,
                    flags: self.insn_start_flags,
                    pc: self.insn_pc,
                });
            }
        }
        if self.e.faulted() {
            // Interpreter: the instruction faulted; leave with the state of its start.
            self.pending = [None; 16];
            self.pending_flags = None;
            self.xmm_pending = [None; 16];
            self.flags = self.insn_start_flags;
            let (written, fl, pc) = (self.insn_start_written, self.insn_start_flags, self.insn_pc);
            let xmm = self.insn_start_xmm;
            self.emit_fault_exit(written, xmm, fl, pc);
            self.terminated = true;
        }
    }

    fn commit(&mut self) {
        for i in 0..16 {
            if let Some(v) = self.pending[i].take() {
                self.e.def_var(self.regs[i], v);
                self.defined |= 1 << i;
                self.written |= 1 << i;
            }
        }
        if let Some(f) = self.pending_flags.take() {
            self.flags = f;
        }
        let fp = std::mem::take(&mut self.xmm_pending_fp);
        if fp != 0 {
            // Read into this instruction's own floating-point operation: kept with it.
            self.xmm_unkept &= !self.insn_xmm_read;
        }
        for i in 0..16 {
            let Some(v) = self.xmm_pending[i].take() else {
                continue;
            };
            let bit = 1u16 << i;
            if self.e.is_concrete() {
                // The interpreter writes through: `CpuState` holds the committed registers.
                self.e.vstore_state(state::off_xmm(i), v);
                continue;
            }
            let var = self.xmm_var(i);
            if self.xmm_unkept & bit != 0 {
                // Overwritten before the expected read: written through now.
                self.write_back_xmm(bit);
                self.xmm_unkept &= !bit;
            }
            self.e.def_vvar(var, v);
            self.xmm_defined |= bit;
            let expected = self.next_fp_reads & bit != 0;
            if self.loop_depth > 0 || (fp & bit != 0 && !expected) {
                // Written through: a floating-point result, so that Cranelift computes it
                // here, once (its flags are MXCSR's; with its only uses in later exits it
                // would be computed in each of them), or inside structured control flow,
                // where the variable's value does not dominate what follows.
                self.e.vstore_state(state::off_xmm(i), v);
                self.xmm_dirty &= !bit;
            } else {
                self.xmm_dirty |= bit;
                self.xmm_unkept |= fp & bit;
            }
        }
    }

    /// Store the XMM registers of `mask` (committed values) to `CpuState`.
    pub(super) fn write_back_xmm(&mut self, mask: u16) {
        for i in (0..16).filter(|i| mask & (1 << i) != 0) {
            let var = self.xmm_var(i);
            let v = self.e.use_vvar(var);
            self.e.vstore_state(state::off_xmm(i), v);
        }
    }

    /// Store every dirty XMM register now and go on with `CpuState` holding them all.
    fn flush_xmm(&mut self) {
        let d = self.xmm_dirty;
        self.write_back_xmm(d);
        self.xmm_dirty = 0;
        self.xmm_unkept = 0;
    }

    /// Later instructions of the block are expected to read the XMM registers of `regs`
    /// into inline floating-point operations, with nothing before that using them where it
    /// would not dominate those operations (see [`crate::semantics::sse::fp_reads_ahead`]).
    /// This instruction's floating-point results in those registers are then left for those
    /// operations to keep (see the module invariants). A wrong guess costs speed only.
    pub fn expect_fp_reads(&mut self, regs: u16) {
        if !self.e.is_concrete() && self.loop_depth == 0 {
            self.next_fp_reads = regs;
        }
    }

    // ---------------------------------------------------------------- XMM registers

    fn xmm_var(&mut self, i: usize) -> E::VVar {
        match self.xmm_vars[i] {
            Some(v) => v,
            None => {
                let v = self.e.declare_vvar();
                self.xmm_vars[i] = Some(v);
                v
            }
        }
    }

    /// XMM register `i` as the current instruction sees it. The JIT loads a register on
    /// its first use in straight-line code and keeps it in a variable for the rest of the
    /// block (a first use inside a REP body or an `if_else` arm reads `CpuState` without
    /// caching, since that position does not dominate what follows).
    pub fn xmm(&mut self, i: usize) -> E::Vec {
        let i = i & 15;
        if let Some(v) = self.xmm_pending[i] {
            return v;
        }
        self.insn_xmm_read |= 1 << i;
        if self.xmm_defined & (1 << i) != 0 {
            let var = self.xmm_var(i);
            return self.e.use_vvar(var);
        }
        let v = self.e.vload_state(state::off_xmm(i));
        if self.loop_depth == 0 && !self.e.is_concrete() {
            let var = self.xmm_var(i);
            self.e.def_vvar(var, v);
            self.xmm_defined |= 1 << i;
        }
        v
    }

    /// Set XMM register `i` (pending until the instruction ends).
    pub fn set_xmm(&mut self, i: usize, v: E::Vec) {
        self.xmm_pending[i & 15] = Some(v);
        self.writes = self.writes.wrapping_add(1);
    }

    /// Set XMM register `i` to the result of an inline floating-point operation. (Such an
    /// operation raises MXCSR flags, which Cranelift does not know: the result is written
    /// through when the instruction commits, so it is never removed as dead code.)
    pub fn set_xmm_fp(&mut self, i: usize, v: E::Vec) {
        self.set_xmm(i, v);
        self.xmm_pending_fp |= 1 << (i & 15);
    }

    /// Make every inline floating-point operation so far happen before what follows (a
    /// helper that reads MXCSR or the XMM registers in `CpuState`): Cranelift computes pure
    /// values where they are used, so the XMM registers and flags they feed are stored now.
    pub fn sync_fp(&mut self) {
        self.flush_xmm();
        let f = self.flags;
        self.write_back_flags(f);
        self.flags = FlagState::Stored;
        self.entry_desc = None;
    }

    /// Forget the cached XMM registers (after a helper that wrote the XMM state in
    /// `CpuState`, FXRSTOR's): later reads load them afresh, and no exit stores the old
    /// values over the new ones.
    pub fn forget_xmm(&mut self) {
        self.xmm_defined = 0;
        self.xmm_dirty = 0;
        self.xmm_unkept = 0;
    }

    // ---------------------------------------------------------------- registers

    /// The GPRs carried across internal edges (see the module invariants).
    fn carried_gprs(&self) -> u16 {
        self.carried.map_or(0, |c| c.gprs)
    }

    /// The variables of the carried flag descriptor, if the flags are carried.
    fn carried_flags(&self) -> Option<[E::Var; 5]> {
        self.carried.and_then(|c| c.flags)
    }

    /// Full 64-bit value of GPR `i` as seen by the current instruction.
    pub fn gpr(&mut self, i: usize) -> E::Value {
        let i = i & 15;
        if let Some(v) = self.pending[i] {
            return v;
        }
        if self.defined & (1 << i) != 0 {
            return self.e.use_var(self.regs[i]);
        }
        self.missing_regs = true;
        self.e.load_state(Ty::I64, state::off_gpr(i))
    }

    /// Set the full 64-bit value of GPR `i` (pending until the instruction ends).
    pub fn set_gpr(&mut self, i: usize, v: E::Value) {
        let i = i & 15;
        if self.preloaded & (1 << i) == 0 {
            self.missing_regs = true;
        }
        let v = self.to_ty(v, Ty::I64, false);
        self.pending[i] = Some(v);
        self.writes = self.writes.wrapping_add(1);
    }

    /// Read an iced register (8/16/32/64-bit GPR, including AH..BH).
    pub fn reg(&mut self, r: Register) -> E::Value {
        let (i, ty, high) = gpr_parts(r);
        let full = self.gpr(i);
        if high {
            let sh = self.e.iconst(Ty::I64, 8);
            let v = self.e.binop(BinOp::UShr, full, sh);
            return self.e.convert(Conv::Trunc, v, Ty::I8);
        }
        self.e.convert(Conv::Trunc, full, ty)
    }

    /// Write an iced register with x86 merge rules: 32-bit writes zero-extend, 8/16-bit writes
    /// keep the other bits.
    pub fn set_reg(&mut self, r: Register, v: E::Value) {
        let (i, ty, high) = gpr_parts(r);
        self.merge_write(i, ty, high, v);
    }

    /// Write register `r` (x86 merge and zero-extension rules) only where `cond` (an `I8`
    /// 0/1) holds; otherwise the whole 64-bit register keeps its value (no zero-extension),
    /// as CMPXCHG's accumulator and BSF/BSR with a zero source require.
    pub fn set_reg_if(&mut self, r: Register, cond: E::Value, v: E::Value) {
        let i = gpr_parts(r).0;
        let old = self.gpr(i);
        self.set_reg(r, v);
        let new = self.gpr(i);
        let full = self.e.select(cond, new, old);
        self.set_gpr(i, full);
    }

    /// Read GPR `i` at width `ty` (low bits).
    pub fn gpr_ty(&mut self, i: usize, ty: Ty) -> E::Value {
        let v = self.gpr(i);
        self.e.convert(Conv::Trunc, v, ty)
    }

    /// Write the low `ty` bits of GPR `i` with x86 merge rules (never a high-byte register).
    pub fn set_gpr_ty(&mut self, i: usize, ty: Ty, v: E::Value) {
        self.merge_write(i, ty, false, v);
    }

    fn merge_write(&mut self, i: usize, ty: Ty, high: bool, v: E::Value) {
        let v = self.to_ty(v, ty, false);
        let new = match (ty, high) {
            (Ty::I64, _) => v,
            (Ty::I32, _) => self.e.convert(Conv::Zext, v, Ty::I64),
            (_, high) => {
                let (mask, shift) = if high { (0xff00u64, 8) } else { (ty.mask(), 0) };
                let old = self.gpr(i);
                let keep = self.e.iconst(Ty::I64, !mask);
                let old = self.e.binop(BinOp::And, old, keep);
                let mut w = self.e.convert(Conv::Zext, v, Ty::I64);
                if shift != 0 {
                    let sh = self.e.iconst(Ty::I64, shift);
                    w = self.e.binop(BinOp::Shl, w, sh);
                }
                self.e.binop(BinOp::Or, old, w)
            }
        };
        self.set_gpr(i, new);
    }

    // ---------------------------------------------------------------- operands

    /// The type of operand `i` of the current instruction.
    pub fn op_ty(&self, i: u32) -> Ty {
        let insn = &self.insn;
        match insn.op_kind(i) {
            OpKind::Register => gpr_parts(insn.op_register(i)).1,
            OpKind::Memory => mem_ty(insn.memory_size()),
            OpKind::Immediate8 | OpKind::Immediate8_2nd => Ty::I8,
            OpKind::Immediate16 => Ty::I16,
            OpKind::Immediate32 => Ty::I32,
            OpKind::Immediate64 => Ty::I64,
            OpKind::Immediate8to16 => Ty::I16,
            OpKind::Immediate8to32 => Ty::I32,
            OpKind::Immediate8to64 | OpKind::Immediate32to64 => Ty::I64,
            _ => Ty::I64,
        }
    }

    /// Whether operand `i` is a memory operand.
    pub fn op_is_mem(&self, i: u32) -> bool {
        self.insn.op_kind(i) == OpKind::Memory
    }

    /// Read operand `i` (register, memory or immediate) at its own type.
    pub fn read_op(&mut self, i: u32) -> E::Value {
        let ty = self.op_ty(i);
        match self.insn.op_kind(i) {
            OpKind::Register => {
                let r = self.insn.op_register(i);
                self.reg(r)
            }
            OpKind::Memory => {
                let a = self.op_addr();
                self.load(ty, a)
            }
            _ => {
                let v = self.insn.immediate(i);
                self.e.iconst(ty, v)
            }
        }
    }

    /// Read operand `i` and convert it to `ty` (sign-extending immediates and sources, as x86
    /// does for the `Immediate8to32`-style forms).
    pub fn read_op_sext(&mut self, i: u32, ty: Ty) -> E::Value {
        let v = self.read_op(i);
        self.to_ty(v, ty, true)
    }

    /// Write operand `i` (register or memory) at its own type.
    pub fn write_op(&mut self, i: u32, v: E::Value) {
        match self.insn.op_kind(i) {
            OpKind::Register => {
                let r = self.insn.op_register(i);
                self.set_reg(r, v)
            }
            OpKind::Memory => {
                let ty = self.op_ty(i);
                let v = self.to_ty(v, ty, false);
                let a = self.op_addr();
                self.store(a, v)
            }
            _ => self.unsupported(),
        }
    }

    /// Effective address of the instruction's memory operand, without segment base (LEA),
    /// wrapped to the address size.
    pub fn op_ea(&mut self) -> E::Value {
        let insn = self.insn;
        let base = insn.memory_base();
        let index = insn.memory_index();
        let disp = insn.memory_displacement64();
        if base == Register::RIP {
            return self.e.iconst(Ty::I64, disp);
        }
        if base == Register::EIP {
            return self.e.iconst(Ty::I64, disp & 0xffff_ffff);
        }
        let mut addr = self.e.iconst(Ty::I64, disp);
        if base != Register::None {
            let b = self.reg(base);
            let b = self.e.convert(Conv::Zext, b, Ty::I64);
            addr = self.e.binop(BinOp::Add, addr, b);
        }
        if index != Register::None {
            let x = self.reg(index);
            let x = self.e.convert(Conv::Zext, x, Ty::I64);
            let scale = insn.memory_index_scale() as u64;
            let x = if scale > 1 {
                let s = self.e.iconst(Ty::I64, scale.trailing_zeros() as u64);
                self.e.binop(BinOp::Shl, x, s)
            } else {
                x
            };
            addr = self.e.binop(BinOp::Add, addr, x);
        }
        self.wrap_ea(addr)
    }

    /// The address size of the memory operand: that of its base (or index) register, or
    /// for an absolute address that of its displacement (iced sizes it by the address
    /// size: 2, 4 or 8 bytes).
    fn mem_addr_ty(&self) -> Ty {
        let i = &self.insn;
        let r = match i.memory_base() {
            Register::None => i.memory_index(),
            b => b,
        };
        let bytes = match r {
            Register::None => i.memory_displ_size() as usize,
            r => r.size(),
        };
        Ty::from_bytes(bytes).unwrap_or(match self.mode.bitness {
            64 => Ty::I64,
            32 => Ty::I32,
            _ => Ty::I16,
        })
    }

    /// Wrap an effective address (an `I64`) to the memory operand's address size (16, 32
    /// or 64 bits: `[bx+si-1]` wraps at 64 KiB, `[eax+4]` at 4 GiB).
    pub fn wrap_ea(&mut self, ea: E::Value) -> E::Value {
        let ty = self.mem_addr_ty();
        if ty == Ty::I64 {
            return ea;
        }
        let m = self.e.iconst(Ty::I64, ty.mask());
        self.e.binop(BinOp::And, ea, m)
    }

    /// Linear address of the instruction's memory operand (effective address plus the
    /// base of its segment, see [`Ctx::seg_base_add`]). Computed once per instruction.
    pub fn op_addr(&mut self) -> E::Value {
        if let Some(a) = self.addr_cache {
            return a;
        }
        let ea = self.op_ea();
        let a = self.seg_base_add(self.insn.memory_segment(), ea);
        self.addr_cache = Some(a);
        a
    }

    /// Linear address of effective address `ea` (an `I64`) in segment `seg`: in 64-bit mode
    /// only FS and GS have a base; outside it FS and GS always add theirs, ES CS SS DS only
    /// when [`Mode::seg_bases`] says some may be nonzero, and the sum wraps at 4 GiB.
    pub fn seg_base_add(&mut self, seg: Register, ea: E::Value) -> E::Value {
        let i = match seg {
            Register::ES => state::seg::ES,
            Register::CS => state::seg::CS,
            Register::SS => state::seg::SS,
            Register::DS => state::seg::DS,
            Register::FS => state::seg::FS,
            Register::GS => state::seg::GS,
            _ => return ea,
        };
        let long = self.mode.bitness == 64;
        let fs_gs = i == state::seg::FS || i == state::seg::GS;
        if !fs_gs && (long || !self.mode.seg_bases) {
            return ea;
        }
        let base = self.e.load_state(Ty::I64, state::off_seg_base(i));
        let a = self.e.binop(BinOp::Add, ea, base);
        if long {
            return a;
        }
        let m = self.e.iconst(Ty::I64, 0xffff_ffff);
        self.e.binop(BinOp::And, a, m)
    }

    // ---------------------------------------------------------------- memory

    /// Load from guest memory (may fault).
    pub fn load(&mut self, ty: Ty, addr: E::Value) -> E::Value {
        self.e.load_mem(ty, addr)
    }
    /// Store to guest memory (may fault).
    pub fn store(&mut self, addr: E::Value, v: E::Value) {
        self.e.store_mem(addr, v)
    }

    /// The stack-pointer type: RSP in 64-bit mode, else ESP or SP as SS.B says
    /// ([`Mode::stack`]).
    pub fn stack_ty(&self) -> Ty {
        match self.mode.stack {
            64 => Ty::I64,
            32 => Ty::I32,
            _ => Ty::I16,
        }
    }

    /// The stack pointer at the stack width (SP, ESP or RSP).
    pub fn stack_ptr(&mut self) -> E::Value {
        let ty = self.stack_ty();
        self.gpr_ty(state::reg::RSP, ty)
    }

    /// Set the stack pointer at the stack width (pending): with a 16-bit stack only SP
    /// changes, with a 32-bit one ESP (zero-extended into RSP).
    pub fn set_stack_ptr(&mut self, sp: E::Value) {
        let ty = self.stack_ty();
        self.set_gpr_ty(state::reg::RSP, ty, sp);
    }

    /// The stack pointer moved by `delta` bytes (wrapping at the stack width).
    pub fn stack_ptr_plus(&mut self, delta: i64) -> E::Value {
        let sp = self.stack_ptr();
        let ty = self.e.ty(sp);
        let d = self.e.iconst(ty, delta as u64);
        self.e.binop(BinOp::Add, sp, d)
    }

    /// Linear address of stack offset `sp` (any width, zero-extended): SS's base added
    /// where it may be nonzero.
    pub fn stack_addr(&mut self, sp: E::Value) -> E::Value {
        let ea = self.to_ty(sp, Ty::I64, false);
        self.seg_base_add(Register::SS, ea)
    }

    /// Push `v` (its type gives the size) on the stack: store first, the stack pointer
    /// pending.
    pub fn push(&mut self, v: E::Value) {
        let n = self.e.ty(v).bytes() as i64;
        let sp = self.stack_ptr_plus(-n);
        let a = self.stack_addr(sp);
        if self.in_stack_run(self.e.ty(v)) {
            self.e.store_checked(a, v);
        } else {
            self.store(a, v);
        }
        self.set_stack_ptr(sp);
    }

    /// Pop a value of type `ty` from the stack: load first, the stack pointer pending.
    pub fn pop(&mut self, ty: Ty) -> E::Value {
        let sp = self.stack_ptr();
        let a = self.stack_addr(sp);
        let v = if self.in_stack_run(ty) {
            self.e.load_checked(ty, a)
        } else {
            self.load(ty, a)
        };
        let sp = self.stack_ptr_plus(ty.bytes() as i64);
        self.set_stack_ptr(sp);
        v
    }

    // ---------------------------------------------------------------- values

    /// A constant.
    pub fn c(&mut self, ty: Ty, v: u64) -> E::Value {
        self.e.iconst(ty, v)
    }
    /// `a op b`.
    pub fn bin(&mut self, op: BinOp, a: E::Value, b: E::Value) -> E::Value {
        self.e.binop(op, a, b)
    }
    /// `op a`.
    pub fn un(&mut self, op: UnOp, a: E::Value) -> E::Value {
        self.e.unop(op, a)
    }
    /// Compare (`I8` 0/1).
    pub fn cmp(&mut self, cc: Cmp, a: E::Value, b: E::Value) -> E::Value {
        self.e.icmp(cc, a, b)
    }
    /// `c ? t : f`.
    pub fn select(&mut self, c: E::Value, t: E::Value, f: E::Value) -> E::Value {
        self.e.select(c, t, f)
    }
    /// Convert `v` to `ty`: truncate if narrower, zero- or sign-extend if wider.
    pub fn to_ty(&mut self, v: E::Value, ty: Ty, signed: bool) -> E::Value {
        let from = self.e.ty(v);
        if from.bits() > ty.bits() {
            self.e.convert(Conv::Trunc, v, ty)
        } else if from.bits() < ty.bits() {
            let op = if signed { Conv::Sext } else { Conv::Zext };
            self.e.convert(op, v, ty)
        } else {
            v
        }
    }
}

/// (register number, type, is high byte) of an iced GPR.
fn gpr_parts(r: Register) -> (usize, Ty, bool) {
    let full = r.full_register();
    let i = (full as usize).wrapping_sub(Register::RAX as usize) & 15;
    let ty = Ty::from_bytes(r.size()).unwrap_or(Ty::I64);
    let high = matches!(r, Register::AH | Register::CH | Register::DH | Register::BH);
    (i, ty, high)
}

fn mem_ty(m: MemorySize) -> Ty {
    Ty::from_bytes(m.size()).unwrap_or(Ty::I64)
}
