//! Recorded blocks: the interpreter tier's code.
//!
//! A block's semantics are run once through [`Recorder`], an [`Emitter`] that writes a
//! compact list of [`Op`]s instead of Cranelift IR; [`exec::run`] then executes that list
//! as often as the block runs, as QEMU's TCI does. The ops are the emitter vocabulary
//! itself, so the recorded tier means exactly what the JIT and the per-instruction
//! interpreter mean (one definition of every instruction), and costs no compilation.
//!
//! Shape of a recorded block (the same contract as a JIT block, see [`crate::jit`]):
//! [`Op::Charge`] first (the budget check and `icount += n`), then the instructions, then
//! exits; fault exits write back the state of the faulting instruction's start.
//!
//! Invariants:
//! - Values live in numbered slots of an integer file and a vector file. A slot is written
//!   by one op (recording is SSA), except the slots of variables at a merge point (a label),
//!   which the jumps to it write with moves (parallel: sources read before any write).
//! - Constants are slots too, set in [`Program::regs`] when recorded and never written, so
//!   every operand is a slot index.
//! - Every integer slot holds its value masked to its type, as [`crate::ir`]'s evaluators
//!   produce it.
//! - A recording never panics on any guest input: misuse of the emitter by semantics marks
//!   the program [`Program::broken`], and such a program only ever returns
//!   [`ExitReason::Unsupported`].

pub mod exec;

mod dead;
mod finish;
mod ops;

pub use finish::CmpTest;

// foldhash, not SipHash: the constant and conversion tables are probed for almost every
// recorded op, and recording is what cold code costs (`coldcode`, the Linux boot).
use hashbrown::HashMap;

use crate::emit::{Emitter, Exit, ValueOps};
use crate::helpers::Helper;
use crate::hostexec::{HostStub, StubCall};
use crate::ir::{BinOp, Cmp, Conv, Ty, UnOp};
use crate::jit::MemoryModel;
use crate::state::ExitReason;
use crate::vector::{Lanes, VBin, VCvt, VShift, VUn};

/// An index into a file of slots.
pub type Slot = u16;

/// "No fault label": an op that can stop returns [`Op::ExitStatus`]-style instead.
pub const NO_LABEL: u32 = u32::MAX;

/// One recorded operation. Slots `d` are destinations.
#[derive(Clone, Copy, Debug)]
#[rustfmt::skip] // one line per op reads as a table
// A plain tag byte: a niche-encoded tag cost the executor four instructions per op.
#[repr(u8)]
pub enum Op {
    /// The block's entry: if `icount + n > icount_limit`, `rip = pc` and return
    /// [`ExitReason::Budget`]; else `icount += n`.
    Charge { n: u32 },
    Bin { op: BinOp, ty: Ty, d: Slot, a: Slot, b: Slot },
    Un { op: UnOp, ty: Ty, d: Slot, a: Slot },
    Cmp { cc: Cmp, ty: Ty, d: Slot, a: Slot, b: Slot },
    Select { ty: Ty, d: Slot, c: Slot, t: Slot, f: Slot },
    Conv { op: Conv, from: Ty, to: Ty, d: Slot, a: Slot },
    Mov { d: Slot, a: Slot },
    LoadState { ty: Ty, d: Slot, off: u32 },
    StoreState { ty: Ty, off: u32, a: Slot },
    /// Guest memory; on a fault (status set by the slow path) continue at `fault`.
    LoadMem { ty: Ty, d: Slot, addr: Slot, fault: u32 },
    StoreMem { ty: Ty, addr: Slot, v: Slot, fault: u32 },
    Helper { h: Helper, d: Slot, args: [Slot; 3], fault: u32 },
    Jump { to: u32 },
    Branch { c: Slot, then: u32, els: u32 },
    ExitJump { target: Slot },
    ExitReturn { reason: ExitReason },
    ExitStatus,
    Uncount { n: u32 },
    VMov { d: Slot, a: Slot },
    VLoadState { d: Slot, off: u32 },
    VStoreState { off: u32, a: Slot },
    VLoadMem { d: Slot, addr: Slot, fault: u32 },
    VStoreMem { addr: Slot, v: Slot, fault: u32 },
    VBin { op: VBin, lanes: Lanes, d: Slot, a: Slot, b: Slot },
    VUn { op: VUn, lanes: Lanes, d: Slot, a: Slot },
    VShift { op: VShift, lanes: Lanes, d: Slot, a: Slot, count: Slot },
    /// `mask` indexes [`Program::masks`].
    VShuffle { d: Slot, a: Slot, b: Slot, mask: u32 },
    VExtract { lanes: Lanes, idx: u8, d: Slot, a: Slot },
    VInsert { lanes: Lanes, idx: u8, d: Slot, a: Slot, x: Slot },
    VSplat { lanes: Lanes, d: Slot, x: Slot },
    VMovmsk { lanes: Lanes, d: Slot, a: Slot },
    VSelect { d: Slot, c: Slot, t: Slot, f: Slot },
    VBlendv { lanes: Lanes, d: Slot, a: Slot, b: Slot, m: Slot },
    VCvt { op: VCvt, d: Slot, a: Slot },
    /// `xty`: the integer's width (`I32` or `I64`).
    VCvtFromInt { lanes: Lanes, xty: Ty, d: Slot, a: Slot, x: Slot },
    VCvttToInt { lanes: Lanes, ty: Ty, d: Slot, a: Slot },
    VFcmpFlags { lanes: Lanes, ordered: bool, d: Slot, a: Slot, b: Slot },
    /// Run host stub `stub` (an index into [`Program::stubs`]).
    Stub { stub: u32, how: StubCall, fault: u32 },
    // The specialized forms `finish` turns the commonest generic ops into (by dynamic
    // count on the workload guests: 64-bit state traffic, 64-bit add/sub/logic/shift, and
    // width changes, which are masks of values already held masked to their type).
    Add64 { d: Slot, a: Slot, b: Slot },
    Sub64 { d: Slot, a: Slot, b: Slot },
    And64 { d: Slot, a: Slot, b: Slot },
    Or64 { d: Slot, a: Slot, b: Slot },
    Xor64 { d: Slot, a: Slot, b: Slot },
    /// 32-bit logic: as `And64`.. on masked operands, but reading only their low halves,
    /// so a truncation feeding them forwards (see `dead::forward`).
    And32 { d: Slot, a: Slot, b: Slot },
    Or32 { d: Slot, a: Slot, b: Slot },
    Xor32 { d: Slot, a: Slot, b: Slot },
    Shl64 { d: Slot, a: Slot, b: Slot },
    UShr64 { d: Slot, a: Slot, b: Slot },
    Add32 { d: Slot, a: Slot, b: Slot },
    Sub32 { d: Slot, a: Slot, b: Slot },
    Shl32 { d: Slot, a: Slot, b: Slot },
    UShr32 { d: Slot, a: Slot, b: Slot },
    /// A [`Op::Cmp`] in the form [`CmpTest`] evaluates without branching.
    Test { t: CmpTest, d: Slot, a: Slot, b: Slot },
    /// A `Test` whose only reader is the `Branch` after it, joined by `finish`: one
    /// dispatch for a block's closing compare-and-branch.
    BrTest { t: CmpTest, a: Slot, b: Slot, then: u32, els: u32 },
    /// `d = a & ty.mask()` (zero extension or truncation).
    Mask { ty: Ty, d: Slot, a: Slot },
    /// `LoadState`/`StoreState` of 8 bytes at an offset checked by `finish`.
    Ld64 { d: Slot, off: u32 },
    St64 { off: u32, a: Slot },
    /// `n` (two or more) `Ld64`s in a row, joined by `finish` (a block's entry loads its
    /// registers): `(off, d)` pairs `at..at + n` of [`Program::runs`], done in order.
    LdRun { at: u32, n: u32 },
    /// `n` (two or more) `St64`s in a row, joined by `finish` (a block's exits store its
    /// registers and the five fields of the lazy-flag descriptor): `(off, a)` pairs
    /// `at..at + n` of [`Program::runs`], done in order.
    StRun { at: u32, n: u32 },
    /// A `StRun` followed by the `ExitJump` it leads to, joined by `finish`.
    StRunExit { at: u32, n: u32, target: Slot },
}

/// A recorded block.
#[derive(Clone, Debug, Default)]
pub struct Program {
    ops: Vec<Op>,
    /// The integer slots: constants where the recorder put them (never written), and the
    /// values of the last run elsewhere.
    regs: Vec<u64>,
    /// The vector slots, likewise.
    vregs: Vec<u128>,
    /// Shuffle masks.
    masks: Vec<[u8; 16]>,
    /// Host addresses of the stubs the block calls.
    stubs: Vec<usize>,
    /// The `(state offset, slot)` pairs of [`Op::LdRun`] and [`Op::StRun`].
    runs: Vec<(u32, Slot)>,
    /// How guest memory is reached (as the JIT's [`MemoryModel`]).
    memory: Option<MemoryModel>,
    /// Guest address of the block.
    pub pc: u64,
    /// Guest instructions recorded (what `Charge` charges).
    pub insns: u32,
    /// Semantics misused the emitter (a bug, reported, never a panic).
    pub broken: Option<&'static str>,
    /// Set by `finish` once [`finish::in_range`] holds and nothing broke: the executor runs,
    /// indexing without bounds checks, only a program with this set (fields are private so
    /// it stays true).
    checked: bool,
    /// Set by `finish` when [`finish::keeps_mode`] holds (see [`Program::keeps_mode`]).
    keeps_mode: bool,
}

impl Program {
    /// Whether running the program leaves every part of the CPU state outside the general
    /// registers, RIP, RFLAGS, the lazy-flag descriptor and the XMM registers as it was: it
    /// calls no helper and no host stub, and stores nowhere else in the state. Such a block
    /// cannot change the mode it ran in (control registers, EFER, CPL, segments, MXCSR), so
    /// a caller chaining blocks may skip working the mode out again after it.
    pub fn keeps_mode(&self) -> bool {
        self.keeps_mode
    }
}

/// An integer value while recording: its slot, type, and constant value if known.
#[derive(Clone, Copy, Debug)]
pub struct RVal {
    slot: Slot,
    ty: Ty,
    konst: Option<u64>,
    /// The narrowest type whose mask the slot's value is known to satisfy (`ty` or
    /// narrower): a zero extension shares its operand's slot, so truncating it back to
    /// this width needs no op either.
    fits: Ty,
}

/// A vector value while recording.
#[derive(Clone, Copy, Debug)]
pub struct RVec {
    slot: Slot,
}

/// A variable: integer or vector, with its current value.
#[derive(Clone, Copy, Debug)]
enum VarVal {
    Int(RVal),
    Vec(RVec),
}

/// A label: where it is bound (op index) and the slots variables live in on entry.
#[derive(Clone, Debug, Default)]
struct LabelInfo {
    at: Option<u32>,
    /// Variable slots on entry, fixed by the first edge to it (each variable a fresh slot,
    /// written only by edges' moves).
    map: Option<Vec<Option<VarVal>>>,
    /// Jump fields that target it before it is bound (op index, field), patched at bind.
    fixups: Vec<(usize, u8)>,
}

/// An edge whose moves are recorded out of line at the end: the op field to point at the
/// moves, the moves, and the label they lead to.
struct Edge {
    from: (usize, u8),
    moves: Vec<(VarVal, VarVal)>,
    to: u32,
}

/// What the recorder needs from the runtime.
pub trait RecordEnv {
    /// How guest memory is reached (see [`MemoryModel`]).
    fn memory(&self) -> MemoryModel;
    /// The host address of `stub`'s code (see [`crate::jit::JitEnv::host_stub`]).
    fn host_stub(&mut self, stub: &HostStub) -> Option<usize>;
}

/// The recording emitter. See the module documentation.
pub struct Recorder<'a> {
    env: &'a mut dyn RecordEnv,
    p: Program,
    nslots: u32,
    nvslots: u32,
    /// The working tables, borrowed from [`SCRATCH`] for the recording.
    t: Scratch,
    live: bool,
    fault: Option<u32>,
    fault_used: bool,
}

/// Starting capacity of a program's ops and registers, sized so a typical block grows
/// neither while it is recorded (growing them one push at a time was a tenth of what
/// recording cold code cost).
const TYPICAL_OPS: usize = 256;

/// The recorder's working tables, kept per thread between recordings so that recording a
/// block allocates little beyond its program (allocation was a tenth of recording cold
/// code). Empty whenever it is stored.
#[derive(Default)]
struct Scratch {
    const_slots: HashMap<u64, Slot>,
    vconst_slots: HashMap<u128, Slot>,
    /// Conversions recorded since the last label, by operand slot, conversion and source
    /// and target widths. Only straight-line code after the last bound label is known to
    /// run after them, so `bind` forgets them.
    convs: HashMap<(Slot, u8, u32, u32), RVal>,
    vars: Vec<Option<VarVal>>,
    var_tys: Vec<Option<Ty>>,
    labels: Vec<LabelInfo>,
    edges: Vec<Edge>,
    /// The finishing passes' working vectors.
    work: dead::Work,
}

impl Scratch {
    fn clear(&mut self) {
        self.const_slots.clear();
        self.vconst_slots.clear();
        self.convs.clear();
        self.vars.clear();
        self.var_tys.clear();
        self.labels.clear();
        self.edges.clear();
        self.work.clear();
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// Slots a program may use (indices are `u16`).
const MAX_SLOTS: u32 = 60_000;

impl<'a> Recorder<'a> {
    /// Start recording the block at `pc`.
    pub fn new(env: &'a mut dyn RecordEnv, pc: u64) -> Self {
        let memory = env.memory();
        let mut ops = Vec::with_capacity(TYPICAL_OPS);
        ops.push(Op::Charge { n: 0 });
        Recorder {
            env,
            p: Program {
                ops,
                regs: Vec::with_capacity(TYPICAL_OPS),
                memory: Some(memory),
                pc,
                ..Program::default()
            },
            nslots: 0,
            nvslots: 0,
            t: SCRATCH.with(|c| c.take()),
            live: true,
            fault: None,
            fault_used: false,
        }
    }

    /// Finish: the recorded program (out-of-line edges placed, labels resolved).
    pub fn finish(mut self) -> Program {
        if self.live {
            self.fail("the block does not end with an exit");
            self.p.ops.push(Op::ExitReturn {
                reason: ExitReason::Unsupported,
            });
        }
        let edges = std::mem::take(&mut self.t.edges);
        for e in &edges {
            let at = self.p.ops.len() as u32;
            patch(&mut self.p.ops[e.from.0], e.from.1, at);
            self.emit_moves(&e.moves);
            let idx = self.p.ops.len();
            self.p.ops.push(Op::Jump { to: 0 });
            self.label_fixup(e.to, (idx, 0));
        }
        self.t.edges = edges;
        for l in &self.t.labels {
            if l.at.is_none() && !l.fixups.is_empty() {
                self.p
                    .broken
                    .get_or_insert("a label was jumped to but never bound");
            }
        }
        for op in &mut self.p.ops {
            *op = finish::specialize(*op);
        }
        let (nslots, nvslots, w) = (
            self.nslots as usize,
            self.nvslots as usize,
            &mut self.t.work,
        );
        dead::forward(&mut self.p, nslots, w);
        dead::remove_dead(&mut self.p, nslots, nvslots, w);
        dead::thread_jumps(&mut self.p);
        let n = self.p.insns.max(1);
        self.p.ops[0] = Op::Charge { n };
        finish::join_branches(&mut self.p, nslots, w);
        finish::join_runs(&mut self.p, w);
        self.p.regs.resize(self.nslots as usize, 0);
        self.p.vregs.resize(self.nvslots as usize, 0);
        // The program lives as long as its block is cached: give back the starting capacity.
        self.p.ops.shrink_to_fit();
        self.p.regs.shrink_to_fit();
        self.p.keeps_mode = finish::keeps_mode(&self.p);
        let in_range = finish::in_range(&self.p);
        if !in_range {
            self.fail("an op names a slot or target out of range");
        }
        self.p.checked = in_range && self.p.broken.is_none();
        std::mem::take(&mut self.p)
    }

    fn fail(&mut self, what: &'static str) {
        self.p.broken.get_or_insert(what);
    }

    fn slot(&mut self) -> Slot {
        if self.nslots >= MAX_SLOTS {
            self.fail("too many slots");
            return (MAX_SLOTS - 1) as Slot;
        }
        self.nslots += 1;
        (self.nslots - 1) as Slot
    }

    fn vslot(&mut self) -> Slot {
        if self.nvslots >= MAX_SLOTS {
            self.fail("too many vector slots");
            return (MAX_SLOTS - 1) as Slot;
        }
        self.nvslots += 1;
        (self.nvslots - 1) as Slot
    }

    fn emit(&mut self, op: Op) {
        // After an exit or a jump the position is unreachable until the next bind: nothing
        // recorded there could run.
        if self.live {
            self.p.ops.push(op);
        }
    }

    fn konst(&mut self, ty: Ty, v: u64) -> RVal {
        let v = v & ty.mask();
        let slot = match self.t.const_slots.get(&v) {
            Some(&s) => s,
            None => {
                let s = self.slot();
                if self.p.regs.len() <= s as usize {
                    self.p.regs.resize(s as usize + 1, 0);
                }
                self.p.regs[s as usize] = v;
                self.t.const_slots.insert(v, s);
                s
            }
        };
        RVal {
            slot,
            ty,
            konst: Some(v),
            fits: ty,
        }
    }

    fn vkonst(&mut self, v: u128) -> RVec {
        let slot = match self.t.vconst_slots.get(&v) {
            Some(&s) => s,
            None => {
                let s = self.vslot();
                if self.p.vregs.len() <= s as usize {
                    self.p.vregs.resize(s as usize + 1, 0);
                }
                self.p.vregs[s as usize] = v;
                self.t.vconst_slots.insert(v, s);
                s
            }
        };
        RVec { slot }
    }

    fn fresh(&mut self, ty: Ty) -> RVal {
        RVal {
            slot: self.slot(),
            ty,
            konst: None,
            fits: ty,
        }
    }

    fn vfresh(&mut self) -> RVec {
        RVec { slot: self.vslot() }
    }

    /// `v` as a value of type `to` (zero-extended or truncated), as the JIT coerces.
    fn coerce(&mut self, v: RVal, to: Ty) -> RVal {
        if v.ty == to {
            return v;
        }
        let op = if v.ty.bits() < to.bits() {
            Conv::Zext
        } else {
            Conv::Trunc
        };
        self.convert(op, v, to)
    }

    // ---------------------------------------------------------------- control flow

    fn label_ok(&mut self, l: u32) -> bool {
        if (l as usize) < self.t.labels.len() {
            true
        } else {
            self.fail("jump to something that is not a label");
            false
        }
    }

    /// Point jump field `f` at label `l` now if it is bound, else when it is.
    fn label_fixup(&mut self, l: u32, f: (usize, u8)) {
        let info = &mut self.t.labels[l as usize];
        match info.at {
            Some(at) => patch(&mut self.p.ops[f.0], f.1, at),
            None => info.fixups.push(f),
        }
    }

    /// The moves that put the current variables where label `l` expects them, fixing its
    /// map (fresh slots for every defined variable) at its first edge.
    fn edge_moves(&mut self, l: u32) -> Vec<(VarVal, VarVal)> {
        let l = l as usize;
        let map = match &self.t.labels[l].map {
            Some(m) => m.clone(),
            None => {
                let mut map = Vec::with_capacity(self.t.vars.len());
                for i in 0..self.t.vars.len() {
                    map.push(match self.t.vars[i] {
                        None => None,
                        Some(VarVal::Int(v)) => Some(VarVal::Int(self.fresh(v.ty))),
                        Some(VarVal::Vec(_)) => Some(VarVal::Vec(self.vfresh())),
                    });
                }
                self.t.labels[l].map = Some(map.clone());
                map
            }
        };
        let mut moves = Vec::with_capacity(map.len());
        for (i, m) in map.iter().enumerate() {
            match (m, self.t.vars.get(i).copied().flatten()) {
                (Some(VarVal::Int(d)), Some(VarVal::Int(s))) if d.slot != s.slot => {
                    moves.push((VarVal::Int(*d), VarVal::Int(s)))
                }
                (Some(VarVal::Vec(d)), Some(VarVal::Vec(s))) if d.slot != s.slot => {
                    moves.push((VarVal::Vec(*d), VarVal::Vec(s)))
                }
                _ => {}
            }
        }
        moves
    }

    /// Parallel moves: when a destination is also a source, every source is copied to a
    /// temporary first.
    fn emit_moves(&mut self, moves: &[(VarVal, VarVal)]) {
        let slot_of = |v: &VarVal| match v {
            VarVal::Int(x) => (false, x.slot),
            VarVal::Vec(x) => (true, x.slot),
        };
        let overlap = moves
            .iter()
            .any(|(d, _)| moves.iter().any(|(_, s)| slot_of(d) == slot_of(s)));
        let mut staged = Vec::with_capacity(moves.len());
        for &(d, s) in moves {
            let s = if overlap {
                match s {
                    VarVal::Int(v) => {
                        let t = self.fresh(v.ty);
                        self.p.ops.push(Op::Mov {
                            d: t.slot,
                            a: v.slot,
                        });
                        VarVal::Int(t)
                    }
                    VarVal::Vec(v) => {
                        let t = self.vfresh();
                        self.p.ops.push(Op::VMov {
                            d: t.slot,
                            a: v.slot,
                        });
                        VarVal::Vec(t)
                    }
                }
            } else {
                s
            };
            staged.push((d, s));
        }
        for (d, s) in staged {
            match (d, s) {
                (VarVal::Int(d), VarVal::Int(s)) => self.p.ops.push(Op::Mov {
                    d: d.slot,
                    a: s.slot,
                }),
                (VarVal::Vec(d), VarVal::Vec(s)) => self.p.ops.push(Op::VMov {
                    d: d.slot,
                    a: s.slot,
                }),
                _ => {}
            }
        }
    }

    /// Aim jump field `f` (of an op just recorded) at label `l` through its moves: directly
    /// when there are none, else through an out-of-line edge.
    fn edge(&mut self, f: (usize, u8), l: u32) {
        let moves = self.edge_moves(l);
        if moves.is_empty() {
            self.label_fixup(l, f);
        } else {
            self.t.edges.push(Edge {
                from: f,
                moves,
                to: l,
            });
        }
    }

    /// The fault field for an op that can stop, to be aimed by `aim_fault` once recorded.
    fn fault_target(&self) -> u32 {
        NO_LABEL
    }

    /// After recording an op that can stop: aim its fault field at the current fault label.
    fn aim_fault(&mut self) {
        if !self.live {
            return;
        }
        let idx = self.p.ops.len() - 1;
        if let Some(l) = self.fault {
            self.fault_used = true;
            self.edge((idx, 0), l);
        }
    }

    fn set_var(&mut self, var: usize, v: VarVal) {
        if let Some(slot) = self.t.vars.get_mut(var) {
            *slot = Some(v);
        } else {
            self.fail("an undeclared variable was defined");
        }
    }
}

/// Set jump field `which` (0: `to`/`then`/`fault`, 1: `els`) of `op` to `at`.
fn patch(op: &mut Op, which: u8, at: u32) {
    match op {
        Op::Jump { to } => *to = at,
        Op::Branch { then, els, .. } => {
            if which == 0 {
                *then = at
            } else {
                *els = at
            }
        }
        Op::LoadMem { fault, .. }
        | Op::StoreMem { fault, .. }
        | Op::Helper { fault, .. }
        | Op::VLoadMem { fault, .. }
        | Op::VStoreMem { fault, .. }
        | Op::Stub { fault, .. } => *fault = at,
        _ => {}
    }
}

impl Emitter for Recorder<'_> {
    type Label = u32;
    type Var = usize;
    type VVar = usize;

    fn load_state(&mut self, ty: Ty, off: u32) -> RVal {
        if off as usize + ty.bytes() as usize > std::mem::size_of::<crate::state::CpuState>() {
            return self.konst(ty, 0);
        }
        let d = self.fresh(ty);
        self.emit(Op::LoadState { ty, d: d.slot, off });
        d
    }
    fn store_state(&mut self, off: u32, v: RVal) {
        if off as usize + v.ty.bytes() as usize > std::mem::size_of::<crate::state::CpuState>() {
            return;
        }
        self.emit(Op::StoreState {
            ty: v.ty,
            off,
            a: v.slot,
        });
    }
    fn vload_state(&mut self, off: u32) -> RVec {
        if off as usize + 16 > std::mem::size_of::<crate::state::CpuState>() {
            return self.vkonst(0);
        }
        let d = self.vfresh();
        self.emit(Op::VLoadState { d: d.slot, off });
        d
    }
    fn vstore_state(&mut self, off: u32, v: RVec) {
        if off as usize + 16 > std::mem::size_of::<crate::state::CpuState>() {
            return;
        }
        self.emit(Op::VStoreState { off, a: v.slot });
    }
    fn vload_mem(&mut self, addr: RVal) -> RVec {
        let addr = self.coerce(addr, Ty::I64);
        let d = self.vfresh();
        self.emit(Op::VLoadMem {
            d: d.slot,
            addr: addr.slot,
            fault: self.fault_target(),
        });
        self.aim_fault();
        d
    }
    fn vstore_mem(&mut self, addr: RVal, v: RVec) {
        let addr = self.coerce(addr, Ty::I64);
        self.emit(Op::VStoreMem {
            addr: addr.slot,
            v: v.slot,
            fault: self.fault_target(),
        });
        self.aim_fault();
    }
    fn declare_vvar(&mut self) -> usize {
        self.t.vars.push(None);
        self.t.var_tys.push(None);
        self.t.vars.len() - 1
    }
    fn def_vvar(&mut self, var: usize, v: RVec) {
        self.set_var(var, VarVal::Vec(v));
    }
    fn use_vvar(&mut self, var: usize) -> RVec {
        match self.t.vars.get(var).copied().flatten() {
            Some(VarVal::Vec(v)) => v,
            _ => {
                self.fail("an undefined vector variable was used");
                self.vkonst(0)
            }
        }
    }
    fn call_stub(&mut self, stub: &HostStub, how: StubCall) {
        let Some(addr) = self.env.host_stub(stub) else {
            self.fail("the runtime could not provide a host stub");
            return;
        };
        let idx = self.p.stubs.len() as u32;
        self.p.stubs.push(addr);
        self.emit(Op::Stub {
            stub: idx,
            how,
            fault: self.fault_target(),
        });
        if how != StubCall::Direct {
            self.aim_fault();
        }
    }

    fn declare_var(&mut self, ty: Ty) -> usize {
        self.t.vars.push(None);
        self.t.var_tys.push(Some(ty));
        self.t.vars.len() - 1
    }
    fn def_var(&mut self, var: usize, v: RVal) {
        let Some(Some(ty)) = self.t.var_tys.get(var).copied() else {
            return self.fail("an undeclared variable was defined");
        };
        let v = self.coerce(v, ty);
        self.set_var(var, VarVal::Int(v));
    }
    fn use_var(&mut self, var: usize) -> RVal {
        match self.t.vars.get(var).copied().flatten() {
            Some(VarVal::Int(v)) => v,
            _ => {
                self.fail("an undefined variable was used");
                let ty = self
                    .t
                    .var_tys
                    .get(var)
                    .copied()
                    .flatten()
                    .unwrap_or(Ty::I64);
                self.konst(ty, 0)
            }
        }
    }

    fn load_mem(&mut self, ty: Ty, addr: RVal) -> RVal {
        let addr = self.coerce(addr, Ty::I64);
        let d = self.fresh(ty);
        self.emit(Op::LoadMem {
            ty,
            d: d.slot,
            addr: addr.slot,
            fault: self.fault_target(),
        });
        self.aim_fault();
        d
    }
    fn store_mem(&mut self, addr: RVal, v: RVal) {
        let addr = self.coerce(addr, Ty::I64);
        self.emit(Op::StoreMem {
            ty: v.ty,
            addr: addr.slot,
            v: v.slot,
            fault: self.fault_target(),
        });
        self.aim_fault();
    }

    fn call_helper(&mut self, h: Helper, args: [RVal; 3]) -> RVal {
        let args = args.map(|a| self.coerce(a, Ty::I64));
        let d = self.fresh(Ty::I64);
        self.emit(Op::Helper {
            h,
            d: d.slot,
            args: args.map(|a| a.slot),
            fault: self.fault_target(),
        });
        if h.can_stop() {
            self.aim_fault();
        }
        d
    }

    fn new_label(&mut self) -> u32 {
        self.t.labels.push(LabelInfo::default());
        (self.t.labels.len() - 1) as u32
    }
    fn bind(&mut self, l: u32) {
        if !self.label_ok(l) {
            return;
        }
        if self.t.labels[l as usize].at.is_some() {
            self.fail("a label was bound twice");
            return;
        }
        if self.live {
            // Falling through: this position's moves run inline.
            let moves = self.edge_moves(l);
            self.emit_moves(&moves);
        }
        self.t.convs.clear();
        let at = self.p.ops.len() as u32;
        let info = &mut self.t.labels[l as usize];
        info.at = Some(at);
        for (idx, which) in std::mem::take(&mut info.fixups) {
            patch(&mut self.p.ops[idx], which, at);
        }
        if let Some(map) = self.t.labels[l as usize].map.clone() {
            for (i, m) in map.into_iter().enumerate() {
                if let Some(v) = self.t.vars.get_mut(i) {
                    *v = m;
                }
            }
        }
        self.live = true;
    }
    fn jump(&mut self, l: u32) {
        if !self.live || !self.label_ok(l) {
            self.live = false;
            return;
        }
        let moves = self.edge_moves(l);
        self.emit_moves(&moves);
        let idx = self.p.ops.len();
        self.p.ops.push(Op::Jump { to: 0 });
        self.label_fixup(l, (idx, 0));
        self.live = false;
    }
    fn branch(&mut self, cond: RVal, then: u32, els: u32) {
        if !self.live || !self.label_ok(then) || !self.label_ok(els) {
            self.live = false;
            return;
        }
        if let Some(c) = cond.konst {
            return self.jump(if c != 0 { then } else { els });
        }
        let idx = self.p.ops.len();
        self.p.ops.push(Op::Branch {
            c: cond.slot,
            then: 0,
            els: 0,
        });
        self.edge((idx, 0), then);
        self.edge((idx, 1), els);
        self.live = false;
    }

    fn set_fault_label(&mut self, l: Option<u32>) {
        if l.is_some() {
            self.p.insns = self.p.insns.saturating_add(1);
            self.fault_used = false;
        }
        self.fault = l;
    }
    fn fault_label_used(&self) -> bool {
        self.fault_used
    }
    fn faulted(&self) -> bool {
        false
    }

    fn exit(&mut self, exit: Exit<RVal>) {
        let op = match exit {
            Exit::Jump(t) => {
                let t = self.coerce(t, Ty::I64);
                Op::ExitJump { target: t.slot }
            }
            Exit::Return(r) => Op::ExitReturn { reason: r },
            Exit::Status => Op::ExitStatus,
            // Recorded code has no host code to go to: the dispatcher finds it.
            Exit::Host(_) => Op::ExitReturn {
                reason: ExitReason::Jump,
            },
        };
        self.emit(op);
        self.live = false;
    }

    fn uncount(&mut self, skipped: u32) {
        if skipped != 0 {
            self.emit(Op::Uncount { n: skipped });
        }
    }
}

impl Drop for Recorder<'_> {
    /// Gives the working tables back, emptied, for the next recording on this thread.
    fn drop(&mut self) {
        let mut t = std::mem::take(&mut self.t);
        t.clear();
        // A recording started inside another (none today) keeps the outer one's tables.
        SCRATCH.with(|c| {
            if let Ok(mut slot) = c.try_borrow_mut() {
                *slot = t;
            }
        });
    }
}

/// Record `block` in `mode`.
pub fn record(
    env: &mut dyn RecordEnv,
    block: &crate::decode::DecodedBlock,
    mode: crate::Mode,
    vendor: crate::flags::Vendor,
) -> Program {
    let preload = block.gpr_mask();
    let (r, missing) = crate::semantics::translate_block(
        Recorder::new(env, block.pc),
        block,
        mode,
        preload,
        vendor,
    );
    if !missing {
        return r.finish();
    }
    // A register the block uses was not preloaded (the mask is a guess from the decoder):
    // record again loading all of them, as the JIT compiles again.
    drop(r);
    let r = Recorder::new(env, block.pc);
    let (r, _) = crate::semantics::translate_block(r, block, mode, 0xffff, vendor);
    r.finish()
}
