//! The fault exits of a block, emitted when translation ends. Each instruction that can fault
//! (and each REP instruction that can stop between iterations) is a *site*; instead of a
//! write-back of every register, the flags, RIP, the uncharge and an epilogue per site, sites
//! that leave the same way share one *tail*. A site sets what differs (RIP, the instructions
//! to uncharge, the flag values, the registers) in variables and jumps to its tail, which
//! stores them and leaves: in the JIT the variables become the tail's block parameters, so a
//! site costs a jump with arguments. Emitters that do not ask for it
//! ([`Emitter::shares_fault_exits`]) get a full exit per site, as before.
//!
//! Invariants:
//! - A tail is a chain of nodes (see [`Tail`]); a site enters at the first node whose set
//!   of registers holds its written set, and the chain from there stores exactly that
//!   node's set. Should a site not have written one of them (sets that did not nest), it
//!   passes the value its `CpuState` field holds (read afresh, not the block's entry value
//!   kept alive), so the store changes nothing.
//! - Sites share a tail only when they write the same kind of flag state ([`FlagShape`])
//!   and leave the same way ([`SiteKind`]): the flag write-back differs in its stores, not
//!   only in values.
//! - Values a site passes are made in the site's own block, which the faulting instruction
//!   dominates; nothing made by a later instruction or by another site is used.

use super::{Ctx, FaultExit, FlagState};
use crate::emit::{Emitter, Exit};
use crate::ir::Ty;
use crate::state::{self, ExitReason};

/// Fewer sites than this keep a full exit each.
const MIN_SHARED_SITES: usize = 8;

/// How a site leaves the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SiteKind {
    /// A helper stopped: return the status it left in `CpuState`.
    Fault,
    /// A REP instruction stopped between iterations at the end of the budget: return
    /// [`ExitReason::Retry`], not through a link.
    Cut,
}

/// Which stores write a site's flag state back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FlagShape {
    /// None: the flags are as stored at block entry.
    Stored,
    /// The five fields of a lazy descriptor.
    Lazy,
    /// The arithmetic bits merged into `rflags`, the descriptor marked settled.
    Bits,
    /// The five fields of the carried descriptor, from its variables.
    Carried,
}

fn flag_shape<V>(fs: &FlagState<V>) -> FlagShape {
    match fs {
        FlagState::Stored => FlagShape::Stored,
        FlagState::Lazy(_) => FlagShape::Lazy,
        FlagState::Carried => FlagShape::Carried,
        _ => FlagShape::Bits,
    }
}

/// A site: how it leaves, and the state it leaves with.
type Site<E> = (
    SiteKind,
    FaultExit<<E as Emitter>::Label, <E as crate::emit::ValueOps>::Value>,
);

/// One shared exit: a chain of nodes, one per distinct set of registers its sites store.
/// Written sets only grow along a block, so the sets nest; node `j` stores the registers
/// of its set that node `j - 1`'s lacks and continues there, and node 0 stores the rest
/// (its registers, the flags, RIP, the uncharge) and leaves.
struct Tail<L> {
    kind: SiteKind,
    flags: FlagShape,
    /// Each node's label and registers, sets increasing (each the union of the earlier
    /// ones and its own sites' written sets, so a set that did not nest stays correct).
    nodes: Vec<(L, u16)>,
}

/// The nodes of a tail for sites with these written sets: sorted and accumulated.
fn node_sets(mut sets: Vec<u16>) -> Vec<u16> {
    sets.sort_by_key(|&w| (w.count_ones(), w));
    let mut out: Vec<u16> = Vec::with_capacity(sets.len());
    for w in sets {
        let acc = w | out.last().copied().unwrap_or(0);
        if out.last() != Some(&acc) {
            out.push(acc);
        }
    }
    out
}

/// The variables a site sets for its tail (all `I64`), besides the register variables.
struct TailVars<V> {
    rip: V,
    /// Instructions to uncharge.
    skip: V,
    /// Lazy descriptor fields, in the order of `Ctx::descriptor_fields`.
    desc: [V; 5],
    /// Arithmetic flag bits.
    bits: V,
}

impl<E: Emitter> Ctx<E> {
    /// Bind every recorded fault label and REP cut, and emit the tails they share.
    pub(super) fn emit_fault_tails(&mut self) {
        let sites: Vec<Site<E>> = std::mem::take(&mut self.fault_exits)
            .into_iter()
            .map(|f| (SiteKind::Fault, f))
            .chain(
                std::mem::take(&mut self.rep_cuts)
                    .into_iter()
                    .map(|c| (SiteKind::Cut, c)),
            )
            .collect();
        // A block with few sites gains little, and its hot path can lose: the tails' block
        // parameters raise register pressure over the whole function (callgrind, the
        // recursion guest's hottest block: +3.5% host instructions when shared from 4 sites
        // on, unchanged from 8).
        if !self.e.shares_fault_exits() || sites.len() < MIN_SHARED_SITES {
            for (kind, s) in sites {
                self.e.bind(s.label);
                self.e
                    .uncount(skipped(kind, self.block_ends[s.block], s.index));
                self.write_back_regs(s.written);
                self.write_back_xmm(s.xmm);
                self.write_back_flags(s.flags);
                let rip = self.e.iconst(Ty::I64, s.pc);
                self.e.store_state(state::OFF_RIP, rip);
                self.leave(kind);
            }
            return;
        }
        if sites.is_empty() {
            return;
        }
        let mut tails: Vec<Tail<E::Label>> = Vec::new();
        let mut sets: Vec<Vec<u16>> = Vec::new();
        let mut tail_of = Vec::with_capacity(sites.len());
        for (kind, s) in &sites {
            let flags = flag_shape(&s.flags);
            let i = match tails
                .iter()
                .position(|t| t.kind == *kind && t.flags == flags)
            {
                Some(i) => i,
                None => {
                    tails.push(Tail {
                        kind: *kind,
                        flags,
                        nodes: Vec::new(),
                    });
                    sets.push(Vec::new());
                    tails.len() - 1
                }
            };
            sets[i].push(s.written);
            tail_of.push(i);
        }
        for (t, sets) in tails.iter_mut().zip(sets) {
            for w in node_sets(sets) {
                t.nodes.push((self.e.new_label(), w));
            }
        }
        let mut var = || self.e.declare_var(Ty::I64);
        let vars = TailVars {
            rip: var(),
            skip: var(),
            desc: [var(), var(), var(), var(), var()],
            bits: var(),
        };
        for ((kind, s), &t) in sites.iter().zip(&tail_of) {
            self.e.bind(s.label);
            // The first node whose set holds the site's (the sets only grow).
            let nodes = &tails[t].nodes;
            let (node, set) = nodes
                .iter()
                .copied()
                .find(|&(_, w)| s.written & !w == 0)
                .unwrap_or(nodes[nodes.len() - 1]);
            // XMM registers are few in a fault exit: the site stores its own.
            self.write_back_xmm(s.xmm);
            let unwritten = set & !s.written;
            for i in (0..16).filter(|i| unwritten & (1 << i) != 0) {
                let v = self.e.reload_state(Ty::I64, state::off_gpr(i));
                self.e.def_var(self.regs[i], v);
            }
            match s.flags {
                // The tail reads the carried variables, which hold the site's values.
                FlagState::Stored | FlagState::Carried => {}
                FlagState::Lazy(l) => {
                    let d = self.descriptor_fields(&l);
                    for (&var, v) in vars.desc.iter().zip(d) {
                        self.e.def_var(var, v);
                    }
                }
                fs => {
                    let b = self.bits_of(fs);
                    self.e.def_var(vars.bits, b);
                }
            }
            let skip = self.e.iconst(
                Ty::I64,
                u64::from(skipped(*kind, self.block_ends[s.block], s.index)),
            );
            self.e.def_var(vars.skip, skip);
            let rip = self.e.iconst(Ty::I64, s.pc);
            self.e.def_var(vars.rip, rip);
            self.e.jump(node);
        }
        for t in tails {
            for j in (1..t.nodes.len()).rev() {
                let ((label, w), (prev, pw)) = (t.nodes[j], t.nodes[j - 1]);
                self.e.bind(label);
                self.write_back_regs(w & !pw);
                self.e.jump(prev);
            }
            let (label, w) = t.nodes[0];
            self.e.bind(label);
            let skip = self.e.use_var(vars.skip);
            self.e.uncount_value(skip);
            self.write_back_regs(w);
            match t.flags {
                FlagShape::Stored => {}
                FlagShape::Lazy => {
                    let d = vars.desc.map(|v| self.e.use_var(v));
                    self.store_descriptor(d);
                }
                FlagShape::Bits => {
                    let b = self.e.use_var(vars.bits);
                    self.store_flag_bits(b);
                }
                FlagShape::Carried => self.write_back_flags(FlagState::Carried),
            }
            let rip = self.e.use_var(vars.rip);
            self.e.store_state(state::OFF_RIP, rip);
            self.leave(t.kind);
        }
    }

    /// The last part of a fault exit or REP cut, after RIP is stored.
    fn leave(&mut self, kind: SiteKind) {
        match kind {
            SiteKind::Fault => self.e.exit(Exit::Status),
            SiteKind::Cut => {
                let z = self.e.iconst(Ty::I64, 0);
                self.e.store_state(state::OFF_LINK_SLOT, z);
                self.e.exit(Exit::Return(ExitReason::Retry));
            }
        }
    }
}

/// The instructions a site leaves unexecuted, of the `begun` at the end of its block (of a
/// region's blocks, its own), the site being
/// instruction `index`. A fault: it and every later one. A cut: only the later ones; the
/// string instruction keeps its charge (its iterations so far are counted), and the block
/// it restarts in charges its next iteration.
fn skipped(kind: SiteKind, begun: u32, index: u32) -> u32 {
    match kind {
        SiteKind::Fault => begun - index,
        SiteKind::Cut => begun - index - 1,
    }
}
