//! Dead-op removal for recorded blocks: an op with no effect but its destination slot, whose
//! slot no op reads, is dropped before the program first runs.
//!
//! Most of what it removes is the flag arithmetic of an instruction whose flags the next
//! flag-setting instruction replaces (a rotate's CF/OF merge followed by an `add`), and the
//! entry loads of registers the decoder's preload guess named but the block never read. The
//! JIT gets the same from Cranelift's dead-code pass; the recorder emits ops as the semantics
//! ask for them, so without this the interpreter tier pays for every one.
//!
//! Why this is sound without a control-flow analysis: slots are written once (recording is
//! SSA) except the slots of variables at labels, which several edge moves write; a slot that
//! no op anywhere in the program reads cannot influence anything, whichever path runs. Ops
//! that can fault, exit, touch memory or guest state, or change the host's floating-point
//! status (vector arithmetic runs on the host's MXCSR) are never removed, whatever their
//! destination.

use super::{Op, Program, Slot, NO_LABEL};

/// Which register file a slot belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum File {
    Int,
    Vec,
}

/// The working vectors of the finishing passes, kept with the recorder's other tables
/// between recordings ([`super::Recorder`]'s scratch): allocating and zeroing them afresh
/// for every block, and building every compacted program in a new vector, was over a
/// tenth of what recording cold code cost. Each pass sizes and fills what it uses first.
#[derive(Default)]
pub(super) struct Work {
    pub(super) counts: [Vec<u32>; 2],
    heads: [Vec<u32>; 2],
    next: Vec<u32>,
    pub(super) map: Vec<u32>,
    pub(super) keep: Vec<bool>,
    pub(super) target: Vec<bool>,
    queue: Vec<(File, Slot)>,
    to: Vec<Option<Slot>>,
    mask: Vec<Option<(Slot, u32)>>,
}

impl Work {
    /// Empties every vector (keeping their room).
    pub(super) fn clear(&mut self) {
        let Work {
            counts,
            heads,
            next,
            map,
            keep,
            target,
            queue,
            to,
            mask,
        } = self;
        counts
            .iter_mut()
            .chain(heads.iter_mut())
            .for_each(Vec::clear);
        next.clear();
        map.clear();
        keep.clear();
        target.clear();
        queue.clear();
        to.clear();
        mask.clear();
    }
}

/// `v` emptied and refilled with `n` copies of `x`.
pub(super) fn refill<T: Clone>(v: &mut Vec<T>, n: usize, x: T) -> &mut Vec<T> {
    v.clear();
    v.resize(n, x);
    v
}

/// The one slot `op` writes, if `op` has no other effect (so removing it changes nothing
/// once that slot is unread).
fn pure_def(op: &Op) -> Option<(File, Slot)> {
    match *op {
        Op::Bin { d, .. }
        | Op::Un { d, .. }
        | Op::Cmp { d, .. }
        | Op::Test { d, .. }
        | Op::Select { d, .. }
        | Op::Conv { d, .. }
        | Op::Mov { d, .. }
        | Op::LoadState { d, .. }
        | Op::Add64 { d, .. }
        | Op::Sub64 { d, .. }
        | Op::And64 { d, .. }
        | Op::Or64 { d, .. }
        | Op::Xor64 { d, .. }
        | Op::Shl64 { d, .. }
        | Op::UShr64 { d, .. }
        | Op::Add32 { d, .. }
        | Op::Sub32 { d, .. }
        | Op::And32 { d, .. }
        | Op::Or32 { d, .. }
        | Op::Xor32 { d, .. }
        | Op::Shl32 { d, .. }
        | Op::UShr32 { d, .. }
        | Op::Mask { d, .. }
        | Op::Ld64 { d, .. }
        | Op::VExtract { d, .. }
        | Op::VMovmsk { d, .. } => Some((File::Int, d)),
        // Data movement only: no floating-point arithmetic, so no MXCSR flags.
        Op::VMov { d, .. }
        | Op::VLoadState { d, .. }
        | Op::VShuffle { d, .. }
        | Op::VInsert { d, .. }
        | Op::VSplat { d, .. }
        | Op::VSelect { d, .. } => Some((File::Vec, d)),
        _ => None,
    }
}

/// Call `f` with every slot `op` reads, which it may replace. Exhaustive: a new op does not compile until its
/// operands are listed here.
fn map_reads(op: &mut Op, f: &mut impl FnMut(File, &mut Slot)) {
    use File::{Int, Vec as V};
    match op {
        Op::Charge { .. }
        | Op::ExitReturn { .. }
        | Op::ExitStatus
        | Op::Uncount { .. }
        | Op::Jump { .. }
        | Op::LoadState { .. }
        | Op::Ld64 { .. }
        | Op::VLoadState { .. } => {}
        Op::Bin { a, b, .. }
        | Op::Cmp { a, b, .. }
        | Op::Test { a, b, .. }
        | Op::BrTest { a, b, .. }
        | Op::Add64 { a, b, .. }
        | Op::Sub64 { a, b, .. }
        | Op::And64 { a, b, .. }
        | Op::Or64 { a, b, .. }
        | Op::Xor64 { a, b, .. }
        | Op::Shl64 { a, b, .. }
        | Op::UShr64 { a, b, .. }
        | Op::Add32 { a, b, .. }
        | Op::Sub32 { a, b, .. }
        | Op::And32 { a, b, .. }
        | Op::Or32 { a, b, .. }
        | Op::Xor32 { a, b, .. }
        | Op::Shl32 { a, b, .. }
        | Op::UShr32 { a, b, .. } => {
            f(Int, a);
            f(Int, b);
        }
        Op::Un { a, .. } | Op::Conv { a, .. } | Op::Mov { a, .. } | Op::Mask { a, .. } => f(Int, a),
        Op::Select { c, t, f: e, .. } => {
            f(Int, c);
            f(Int, t);
            f(Int, e);
        }
        Op::StoreState { a, .. } | Op::St64 { a, .. } => f(Int, a),
        // Their slots are in `Program::runs`: they are formed after the passes here ran
        // (see `remove_dead`), which is why no pass here needs to see them.
        Op::LdRun { .. } | Op::StRun { .. } | Op::StRunExit { .. } => {}
        Op::LoadMem { addr, .. } => f(Int, addr),
        Op::StoreMem { addr, v, .. } => {
            f(Int, addr);
            f(Int, v);
        }
        Op::Helper { args, .. } => args.iter_mut().for_each(|a| f(Int, a)),
        Op::Branch { c, .. } => f(Int, c),
        Op::ExitJump { target } => f(Int, target),
        Op::VMov { a, .. } | Op::VUn { a, .. } | Op::VCvt { a, .. } => f(V, a),
        Op::VStoreState { a, .. } => f(V, a),
        Op::VLoadMem { addr, .. } => f(Int, addr),
        Op::VStoreMem { addr, v, .. } => {
            f(Int, addr);
            f(V, v);
        }
        Op::VBin { a, b, .. } | Op::VShuffle { a, b, .. } | Op::VFcmpFlags { a, b, .. } => {
            f(V, a);
            f(V, b);
        }
        Op::VShift { a, count, .. } => {
            f(V, a);
            f(Int, count);
        }
        Op::VExtract { a, .. } | Op::VMovmsk { a, .. } | Op::VCvttToInt { a, .. } => f(V, a),
        Op::VInsert { a, x, .. } | Op::VCvtFromInt { a, x, .. } => {
            f(V, a);
            f(Int, x);
        }
        Op::VSplat { x, .. } => f(Int, x),
        Op::VSelect { c, t, f: e, .. } => {
            f(Int, c);
            f(V, t);
            f(V, e);
        }
        Op::VBlendv { a, b, m, .. } => {
            f(V, a);
            f(V, b);
            f(V, m);
        }
        // A stub reads and writes guest state and the vector file through its frame.
        Op::Stub { .. } => {}
    }
}

/// How many ops read each integer slot (`nslots` of them), in `n`.
pub(super) fn int_reads(p: &Program, nslots: usize, n: &mut Vec<u32>) {
    let n = refill(n, nslots, 0);
    for op in &p.ops {
        reads(op, &mut |file, s| {
            if let (File::Int, Some(c)) = (file, n.get_mut(s as usize)) {
                *c = c.saturating_add(1);
            }
        });
    }
}

/// Call `f` with every slot `op` reads.
fn reads(op: &Op, f: &mut impl FnMut(File, Slot)) {
    let mut copy = *op;
    map_reads(&mut copy, &mut |file, s| f(file, *s));
}

/// The integer slots `op` writes. Exhaustive, like [`map_reads`].
fn int_defs(op: &Op, f: &mut impl FnMut(Slot)) {
    match *op {
        Op::Bin { d, .. }
        | Op::Un { d, .. }
        | Op::Cmp { d, .. }
        | Op::Test { d, .. }
        | Op::Select { d, .. }
        | Op::Conv { d, .. }
        | Op::Mov { d, .. }
        | Op::LoadState { d, .. }
        | Op::LoadMem { d, .. }
        | Op::Helper { d, .. }
        | Op::Add64 { d, .. }
        | Op::Sub64 { d, .. }
        | Op::And64 { d, .. }
        | Op::Or64 { d, .. }
        | Op::Xor64 { d, .. }
        | Op::Shl64 { d, .. }
        | Op::UShr64 { d, .. }
        | Op::Add32 { d, .. }
        | Op::Sub32 { d, .. }
        | Op::And32 { d, .. }
        | Op::Or32 { d, .. }
        | Op::Xor32 { d, .. }
        | Op::Shl32 { d, .. }
        | Op::UShr32 { d, .. }
        | Op::Mask { d, .. }
        | Op::Ld64 { d, .. }
        | Op::VExtract { d, .. }
        | Op::VMovmsk { d, .. }
        | Op::VCvttToInt { d, .. }
        | Op::VFcmpFlags { d, .. } => f(d),
        Op::Charge { .. }
        | Op::StoreState { .. }
        | Op::StoreMem { .. }
        | Op::Jump { .. }
        | Op::Branch { .. }
        | Op::BrTest { .. }
        | Op::ExitJump { .. }
        | Op::ExitReturn { .. }
        | Op::ExitStatus
        | Op::Uncount { .. }
        | Op::VMov { .. }
        | Op::VLoadState { .. }
        | Op::VStoreState { .. }
        | Op::VLoadMem { .. }
        | Op::VStoreMem { .. }
        | Op::VBin { .. }
        | Op::VUn { .. }
        | Op::VShift { .. }
        | Op::VShuffle { .. }
        | Op::VInsert { .. }
        | Op::VSplat { .. }
        | Op::VSelect { .. }
        | Op::VBlendv { .. }
        | Op::VCvt { .. }
        | Op::VCvtFromInt { .. }
        | Op::Stub { .. }
        | Op::St64 { .. }
        | Op::LdRun { .. }
        | Op::StRun { .. }
        | Op::StRunExit { .. } => {}
    }
}

/// Copy and mask forwarding, in one pass over the program.
///
/// Copies: a `Mov { d, a }` that is the only write of `d`, from a slot written at most once
/// (a recorded value or a constant), makes every read of `d` a read of `a`, and the move
/// then dies. These are the moves of an edge into a label with one incoming edge (a block's
/// exit paths), which the recorder cannot tell from a merge when it records the edge.
///
/// Masks: likewise a `Mask { ty, d, a }`, but only for the reads of `d` by ops that look
/// at no more than its low `ty.bits()` bits ([`low_reads`]). These are mostly the
/// truncations of 64-bit registers to the operands of 32-bit arithmetic and logic (3-4% of
/// the host instructions of `bits` and `crc32` in the interpreter). Runs after
/// [`super::finish::specialize`]: its bitwise forms (`And64`, ...) need masked operands and
/// take none forwarded, while the 32-bit forms and the generic ones look only at their
/// width's bits. Each slot still holds its value masked to its own type; only what a
/// reader reads changes, never a result.
///
/// Sound because every read of `d` is dominated by its one write (recording never reads a
/// slot on a path that did not write it), and `a`, written at most once and before the
/// move, cannot change between the move and such a read: a path from its write to the read
/// that skipped the move would reach the read undominated.
pub(super) fn forward(p: &mut Program, nslots: usize, w: &mut Work) {
    if !p.runs.is_empty() {
        return; // The ops do not name the slots of its runs (see `map_reads`).
    }
    let writes = refill(&mut w.counts[0], nslots, 0);
    let mut candidates = false;
    for op in &p.ops {
        candidates |= matches!(op, Op::Mov { .. } | Op::Mask { .. });
        int_defs(op, &mut |d| {
            if let Some(w) = writes.get_mut(d as usize) {
                *w = w.saturating_add(1);
            }
        });
    }
    if !candidates {
        return;
    }
    let once = |s: Slot| writes.get(s as usize).is_some_and(|&w| w <= 1);
    // to[d] = a for each forwardable move, mask[d] = (a, width) for each mask (chains
    // resolved below).
    let writes = &*writes;
    let to = refill(&mut w.to, nslots, None);
    let mask = refill(&mut w.mask, nslots, None);
    for op in &p.ops {
        match *op {
            Op::Mov { d, a } if d != a && writes.get(d as usize) == Some(&1) && once(a) => {
                to[d as usize] = Some(a);
            }
            Op::Mask { ty, d, a } if d != a && writes.get(d as usize) == Some(&1) && once(a) => {
                mask[d as usize] = Some((a, ty.bits()));
            }
            _ => {}
        }
    }
    // A chain is at most as long as the number of moves or masks; no cycle can form (each
    // link goes to a slot whose one write is earlier), but stay bounded anyway.
    let resolve = |mut s: Slot| {
        for _ in 0..nslots {
            match to.get(s as usize).copied().flatten() {
                Some(a) => s = a,
                None => break,
            }
        }
        s
    };
    for op in &mut p.ops {
        map_reads(op, &mut |file, s| {
            if file == File::Int {
                *s = resolve(*s);
            }
        });
        low_reads(op, &mut |s, bits| {
            for _ in 0..nslots {
                match mask.get(*s as usize).copied().flatten() {
                    Some((a, width)) if bits <= width => *s = resolve(a),
                    _ => break,
                }
            }
        });
    }
}

/// Call `f` with each integer operand of `op` whose value matters to it only in its low
/// `bits` bits, with that number (which it may replace).
fn low_reads(op: &mut Op, f: &mut impl FnMut(&mut Slot, u32)) {
    match op {
        Op::Add32 { a, b, .. }
        | Op::Sub32 { a, b, .. }
        | Op::And32 { a, b, .. }
        | Op::Or32 { a, b, .. }
        | Op::Xor32 { a, b, .. } => {
            f(a, 32);
            f(b, 32);
        }
        // Shift counts: the executor masks them to 5 or 6 bits.
        Op::Shl32 { a, b, .. } => {
            f(a, 32);
            f(b, 8);
        }
        Op::UShr32 { b, .. } | Op::Shl64 { b, .. } | Op::UShr64 { b, .. } => f(b, 8),
        // The evaluators mask their operands to the type, or use only their low bits (see
        // `eval_binop`: "inputs need not be masked").
        Op::Bin { ty, a, b, .. } => {
            f(a, ty.bits());
            f(b, ty.bits());
        }
        Op::Un { ty, a, .. } | Op::Mask { ty, a, .. } => f(a, ty.bits()),
        _ => {}
    }
}

/// Aim every jump, branch and fault target that lands on a plain `Jump` at that jump's
/// target (the edges left empty by [`forward`] and [`remove_dead`]).
pub(super) fn thread_jumps(p: &mut Program) {
    let dest = |ops: &[Op], mut x: u32| {
        for _ in 0..8 {
            match ops.get(x as usize) {
                Some(Op::Jump { to }) if *to != x => x = *to,
                _ => break,
            }
        }
        x
    };
    for i in 0..p.ops.len() {
        let mut op = p.ops[i];
        map_targets(&mut op, &mut |x| *x = dest(&p.ops, *x));
        p.ops[i] = op;
    }
}

/// Call `f` with every jump, branch and fault target of `op` (not [`NO_LABEL`]), which it
/// may replace.
pub(super) fn map_targets(op: &mut Op, f: &mut impl FnMut(&mut u32)) {
    let mut at = |x: &mut u32| {
        if *x != NO_LABEL {
            f(x)
        }
    };
    match op {
        Op::Jump { to } => at(to),
        Op::Branch { then, els, .. } | Op::BrTest { then, els, .. } => {
            at(then);
            at(els);
        }
        Op::LoadMem { fault, .. }
        | Op::StoreMem { fault, .. }
        | Op::Helper { fault, .. }
        | Op::VLoadMem { fault, .. }
        | Op::VStoreMem { fault, .. }
        | Op::Stub { fault, .. } => at(fault),
        _ => {}
    }
}

/// Point every jump and fault target of `op` through `map` (old op index → new).
fn retarget(op: &mut Op, map: &[u32]) {
    map_targets(op, &mut |x| {
        if let Some(&n) = map.get(*x as usize) {
            *x = n;
        }
    });
}

/// Remove the ops whose only effect is a slot nothing reads, repeatedly (a removed op's
/// operands may become unread in turn).
///
/// Linear in the program's size: each slot keeps a count of the kept ops that read it and
/// a list of the pure ops that define it; a count that drops to zero queues the slot, and
/// removing its definitions decrements the counts of what they read. (Rescanning the whole
/// program until nothing changed was quadratic in the length of a dead chain, and recording
/// is what cold code costs.) An op that reads its own destination keeps itself alive, as a
/// rescan would.
pub(super) fn remove_dead(p: &mut Program, nslots: usize, nvslots: usize, w: &mut Work) {
    if !p.runs.is_empty() {
        return; // As in `forward`.
    }
    const NONE: u32 = u32::MAX;
    let sizes = [nslots, nvslots];
    let Work {
        counts: count,
        heads: head,
        next,
        map,
        keep,
        queue: work,
        ..
    } = w;
    for f in 0..2 {
        refill(&mut count[f], sizes[f], 0);
        // head[file][slot]: the last pure op defining the slot; next[op]: the one before it.
        refill(&mut head[f], sizes[f], NONE);
    }
    refill(next, p.ops.len(), NONE);
    for (i, op) in p.ops.iter().enumerate() {
        reads(op, &mut |file, s| {
            if let Some(c) = count[file as usize].get_mut(s as usize) {
                *c += 1;
            }
        });
        if let Some((file, d)) = pure_def(op) {
            // Out-of-range slots are left for `in_range` to reject.
            if let Some(h) = head[file as usize].get_mut(d as usize) {
                next[i] = *h;
                *h = i as u32;
            }
        }
    }
    work.clear();
    for (f, file) in [File::Int, File::Vec].into_iter().enumerate() {
        for s in 0..sizes[f] {
            if count[f][s] == 0 && head[f][s] != NONE {
                work.push((file, s as Slot));
            }
        }
    }
    let keep = refill(keep, p.ops.len(), true);
    while let Some((file, s)) = work.pop() {
        let mut i = std::mem::replace(&mut head[file as usize][s as usize], NONE);
        while i != NONE {
            let op = &p.ops[i as usize];
            keep[i as usize] = false;
            reads(op, &mut |f, r| {
                if let Some(c) = count[f as usize].get_mut(r as usize) {
                    *c -= 1;
                    if *c == 0 && head[f as usize][r as usize] != NONE {
                        work.push((f, r));
                    }
                }
            });
            i = next[i as usize];
        }
    }
    compact(p, keep, map);
}

/// Drop the ops `keep` says to drop and re-aim jumps at the compacted positions. A jump to
/// a dropped op lands on the next op kept, which is where running the dropped ones would
/// have led (dead ops have no effect; a paired op's partner is never a target). In place;
/// `map` is working room.
pub(super) fn compact(p: &mut Program, keep: &[bool], map: &mut Vec<u32>) {
    if keep.iter().all(|&k| k) {
        return;
    }
    // map[i]: the new index of old op i, or of the next kept op after it.
    map.clear();
    let mut n = 0u32;
    for &k in keep {
        map.push(n);
        n += u32::from(k);
    }
    map.push(n);
    // Op `i` moves down to `kept` <= `i`, after it was read.
    let mut kept = 0;
    for (i, &k) in keep.iter().enumerate().take(p.ops.len()) {
        if k {
            let mut op = p.ops[i];
            retarget(&mut op, map);
            p.ops[kept] = op;
            kept += 1;
        }
    }
    p.ops.truncate(kept);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{BinOp, Ty};
    use crate::state::ExitReason;

    #[test]
    fn a_long_dead_chain_goes_and_a_self_reader_stays() {
        // 0: load; 1..N: each adds the previous slot to itself; nothing reads the last one.
        const N: u16 = 5_000;
        let mut ops = vec![
            Op::Charge { n: 1 },
            Op::LoadState {
                ty: Ty::I64,
                d: 0,
                off: 0,
            },
        ];
        for d in 1..N {
            ops.push(Op::Bin {
                op: BinOp::Add,
                ty: Ty::I64,
                d,
                a: d - 1,
                b: d - 1,
            });
        }
        // A slot whose only reader is its own definition (a loop counter nothing else
        // uses) stays, as rescanning to a fixed point keeps it.
        ops.push(Op::Bin {
            op: BinOp::Add,
            ty: Ty::I64,
            d: N,
            a: N,
            b: 0,
        });
        ops.push(Op::ExitReturn {
            reason: ExitReason::Jump,
        });
        let mut p = Program {
            ops,
            regs: vec![0; N as usize + 1],
            ..Program::default()
        };
        remove_dead(&mut p, N as usize + 1, 0, &mut Work::default());
        assert_eq!(p.ops.len(), 4, "{:?}", &p.ops[..p.ops.len().min(6)]);
        assert!(matches!(p.ops[1], Op::LoadState { d: 0, .. }));
        assert!(matches!(p.ops[2], Op::Bin { d: N, a: N, .. }));
    }

    #[test]
    fn unread_chains_go_and_targets_follow() {
        let mut p = Program {
            ops: vec![
                Op::Charge { n: 1 },
                // 1, 2: a chain nothing reads in the end.
                Op::LoadState {
                    ty: Ty::I64,
                    d: 0,
                    off: 0,
                },
                Op::Bin {
                    op: BinOp::Add,
                    ty: Ty::I64,
                    d: 1,
                    a: 0,
                    b: 0,
                },
                // 3: the branch reads slot 2, defined at 4 only on the way round.
                Op::Branch {
                    c: 2,
                    then: 1,
                    els: 6,
                },
                Op::Mov { d: 2, a: 3 },
                Op::Jump { to: 1 },
                Op::StoreState {
                    ty: Ty::I64,
                    off: 8,
                    a: 2,
                },
                Op::ExitReturn {
                    reason: ExitReason::Jump,
                },
            ],
            regs: vec![0; 4],
            ..Program::default()
        };
        remove_dead(&mut p, 4, 0, &mut Work::default());
        assert_eq!(p.ops.len(), 6, "{:?}", p.ops);
        assert!(matches!(
            p.ops[1],
            Op::Branch {
                then: 1,
                els: 4,
                ..
            }
        ));
        assert!(matches!(p.ops[2], Op::Mov { d: 2, a: 3 }));
        assert!(matches!(p.ops[3], Op::Jump { to: 1 }));
        assert!(matches!(p.ops[4], Op::StoreState { .. }));
    }

    #[test]
    fn masks_forward_into_narrow_readers_only() {
        let add32 = |d, a, b| Op::Add32 { d, a, b };
        let mut p = Program {
            ops: vec![
                Op::Charge { n: 1 },
                Op::Ld64 { d: 0, off: 0 },
                // 2: a 32-bit truncation read by 32-bit additions only: it dies.
                Op::Mask {
                    ty: Ty::I32,
                    d: 1,
                    a: 0,
                },
                add32(2, 1, 1),
                // 4: a byte truncation: a 32-bit reader needs its zeroed bits.
                Op::Mask {
                    ty: Ty::I8,
                    d: 3,
                    a: 0,
                },
                add32(4, 3, 2),
                // 6: read by a right shift's shifted operand, which needs the high half
                // zero, and as its count, which does not.
                Op::Mask {
                    ty: Ty::I32,
                    d: 5,
                    a: 0,
                },
                Op::UShr32 { d: 6, a: 5, b: 5 },
                Op::St64 { off: 8, a: 4 },
                Op::St64 { off: 16, a: 6 },
                Op::ExitReturn {
                    reason: ExitReason::Jump,
                },
            ],
            regs: vec![0; 7],
            ..Program::default()
        };
        forward(&mut p, 7, &mut Work::default());
        remove_dead(&mut p, 7, 0, &mut Work::default());
        assert_eq!(p.ops.len(), 10, "{:?}", p.ops);
        assert!(matches!(p.ops[2], Op::Add32 { d: 2, a: 0, b: 0 }));
        assert!(matches!(p.ops[3], Op::Mask { d: 3, .. }));
        assert!(matches!(p.ops[4], Op::Add32 { d: 4, a: 3, b: 2 }));
        assert!(matches!(p.ops[5], Op::Mask { d: 5, .. }));
        assert!(matches!(p.ops[6], Op::UShr32 { d: 6, a: 5, b: 0 }));
    }

    #[test]
    fn single_edge_copies_forward_and_the_emptied_edge_is_threaded() {
        let st = |off, a| Op::StoreState {
            ty: Ty::I64,
            off,
            a,
        };
        let mut p = Program {
            ops: vec![
                Op::Charge { n: 1 },
                Op::LoadState {
                    ty: Ty::I64,
                    d: 0,
                    off: 0,
                },
                // 2: to the edge at 5 (one incoming edge: slot 1 is written once).
                Op::Branch {
                    c: 0,
                    then: 5,
                    els: 7,
                },
                st(8, 1),
                Op::ExitReturn {
                    reason: ExitReason::Jump,
                },
                Op::Mov { d: 1, a: 0 },
                Op::Jump { to: 3 },
                // 7: a merge slot (two writes) keeps its moves.
                Op::Mov { d: 2, a: 0 },
                Op::Mov { d: 2, a: 3 },
                st(16, 2),
                Op::ExitReturn {
                    reason: ExitReason::Jump,
                },
            ],
            regs: vec![0; 4],
            ..Program::default()
        };
        forward(&mut p, 4, &mut Work::default());
        assert!(
            matches!(p.ops[3], Op::StoreState { a: 0, .. }),
            "{:?}",
            p.ops[3]
        );
        remove_dead(&mut p, 4, 0, &mut Work::default());
        thread_jumps(&mut p);
        // The edge's move is gone and the branch goes straight to the store.
        assert!(
            matches!(
                p.ops[2],
                Op::Branch {
                    then: 3,
                    els: 6,
                    ..
                }
            ),
            "{:?}",
            p.ops
        );
        assert!(matches!(p.ops[6], Op::Mov { d: 2, a: 0 }));
        assert!(matches!(p.ops[8], Op::StoreState { a: 2, .. }));
    }

    #[test]
    fn effects_stay_even_when_their_result_is_unread() {
        let ops = vec![
            Op::Charge { n: 1 },
            Op::LoadMem {
                ty: Ty::I64,
                d: 0,
                addr: 1,
                fault: NO_LABEL,
            },
            Op::VBin {
                op: crate::vector::VBin::FAdd,
                lanes: crate::vector::Lanes::F32,
                d: 0,
                a: 1,
                b: 1,
            },
            Op::ExitReturn {
                reason: ExitReason::Jump,
            },
        ];
        let mut p = Program {
            ops: ops.clone(),
            regs: vec![0; 2],
            vregs: vec![0; 2],
            ..Program::default()
        };
        remove_dead(&mut p, 2, 2, &mut Work::default());
        assert_eq!(p.ops.len(), ops.len());
    }
}
