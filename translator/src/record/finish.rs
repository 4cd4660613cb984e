//! What `Recorder::finish` does to a program before it runs: the commonest generic ops
//! (by dynamic count on the workload guests) become specialized forms the executor runs
//! without matching on an operation or a width, and every slot, target and table index an
//! op names is checked against the program's sizes once, so the executor can index without
//! bounds checks.

use super::dead::{compact, int_reads, map_targets, refill, Work};
use super::{Op, Program, Slot, NO_LABEL};
use crate::ir::{BinOp, Cmp, Conv, Ty};
use crate::state::CpuState;

/// A comparison the executor evaluates without branching on its condition or width: it
/// flips the sign bits of signed operands (held masked to their width, so signed order
/// becomes unsigned order) and compares unsigned; `take` says which outcomes make it true
/// (bit 0: greater, bit 1: equal, bit 2: less).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmpTest {
    take: u8,
    signed: bool,
    sign_at: u8,
}

impl CmpTest {
    /// `cc` on operands of type `ty`.
    pub fn new(cc: Cmp, ty: Ty) -> CmpTest {
        let (gt, eq, lt) = (1, 2, 4);
        let (take, signed) = match cc {
            Cmp::Eq => (eq, false),
            Cmp::Ne => (gt | lt, false),
            Cmp::Ult => (lt, false),
            Cmp::Ule => (lt | eq, false),
            Cmp::Ugt => (gt, false),
            Cmp::Uge => (gt | eq, false),
            Cmp::Slt => (lt, true),
            Cmp::Sle => (lt | eq, true),
            Cmp::Sgt => (gt, true),
            Cmp::Sge => (gt | eq, true),
        };
        CmpTest {
            take,
            signed,
            sign_at: (ty.bits() - 1) as u8,
        }
    }

    /// Whether the comparison holds of `a` and `b` (masked to its type).
    #[inline(always)]
    pub fn eval(self, a: u64, b: u64) -> bool {
        let flip = u64::from(self.signed) << (self.sign_at & 63);
        let (a, b) = (a ^ flip, b ^ flip);
        let outcome = (u32::from(a < b) << 1) | u32::from(a == b);
        (self.take >> outcome) & 1 != 0
    }
}

/// The specialized form of `op`, if it has one (see the specialized variants of [`Op`]).
pub(super) fn specialize(op: Op) -> Op {
    let in_state = |off: u32| off as usize + 8 <= std::mem::size_of::<CpuState>();
    match op {
        // 32-bit logic reads only the low halves (so truncations forward into it).
        Op::Bin {
            op: op @ (BinOp::And | BinOp::Or | BinOp::Xor),
            ty: Ty::I32,
            d,
            a,
            b,
        } => match op {
            BinOp::And => Op::And32 { d, a, b },
            BinOp::Or => Op::Or32 { d, a, b },
            _ => Op::Xor32 { d, a, b },
        },
        // Both operands are held masked to the type (the second coerced to it), so bitwise
        // logic at any other width is the 64-bit operation.
        Op::Bin {
            op: BinOp::And,
            d,
            a,
            b,
            ..
        } => Op::And64 { d, a, b },
        Op::Bin {
            op: BinOp::Or,
            d,
            a,
            b,
            ..
        } => Op::Or64 { d, a, b },
        Op::Bin {
            op: BinOp::Xor,
            d,
            a,
            b,
            ..
        } => Op::Xor64 { d, a, b },
        Op::Bin {
            op,
            ty: Ty::I64,
            d,
            a,
            b,
        } => match op {
            BinOp::Add => Op::Add64 { d, a, b },
            BinOp::Sub => Op::Sub64 { d, a, b },
            BinOp::Shl => Op::Shl64 { d, a, b },
            BinOp::UShr => Op::UShr64 { d, a, b },
            _ => op_back(op, Ty::I64, d, a, b),
        },
        Op::Bin {
            op,
            ty: Ty::I32,
            d,
            a,
            b,
        } => match op {
            BinOp::Add => Op::Add32 { d, a, b },
            BinOp::Sub => Op::Sub32 { d, a, b },
            BinOp::Shl => Op::Shl32 { d, a, b },
            BinOp::UShr => Op::UShr32 { d, a, b },
            _ => op_back(op, Ty::I32, d, a, b),
        },
        Op::Conv {
            op: Conv::Zext | Conv::Trunc,
            from,
            to,
            d,
            a,
        } => Op::Mask {
            ty: if from.bits() < to.bits() { from } else { to },
            d,
            a,
        },
        Op::Cmp { cc, ty, d, a, b } => Op::Test {
            t: CmpTest::new(cc, ty),
            d,
            a,
            b,
        },
        Op::LoadState {
            ty: Ty::I64,
            d,
            off,
        } if in_state(off) => Op::Ld64 { d, off },
        Op::StoreState {
            ty: Ty::I64,
            off,
            a,
        } if in_state(off) => Op::St64 { off, a },
        op => op,
    }
}

/// Join each `Test` whose result only the `Branch` right after it reads with that branch
/// (see [`Op::BrTest`]). The branch must not be a jump or fault target: a jump there would
/// then run the test as well (harmless, as nothing else reads its slot, but a slot read
/// that the recorder never meant).
pub(super) fn join_branches(p: &mut Program, nslots: usize, w: &mut Work) {
    int_reads(p, nslots, &mut w.counts[0]);
    targets(p, &mut w.target);
    let (reads, target) = (&w.counts[0], &w.target);
    let keep = refill(&mut w.keep, p.ops.len(), true);
    for i in 0..p.ops.len().saturating_sub(1) {
        if let (Op::Test { t, d, a, b }, Op::Branch { c, then, els }) = (p.ops[i], p.ops[i + 1]) {
            if c == d && reads.get(d as usize) == Some(&1) && !target[i + 1] {
                p.ops[i] = Op::BrTest { t, a, b, then, els };
                keep[i + 1] = false;
            }
        }
    }
    compact(p, &w.keep, &mut w.map);
}

/// Which ops are jump or fault targets, in `target`.
fn targets(p: &Program, target: &mut Vec<bool>) {
    let target = refill(target, p.ops.len(), false);
    for &op in &p.ops {
        map_targets(&mut { op }, &mut |x| {
            if let Some(t) = target.get_mut(*x as usize) {
                *t = true;
            }
        });
    }
}

/// Join runs of neighbouring `Ld64`s, and of neighbouring `St64`s, into one
/// [`Op::LdRun`] or [`Op::StRun`]: one dispatch for a block's entry loads and one for each
/// exit's stores (they were a third of the ops the workload guests ran). No op of a run but
/// the first may be a jump or fault target, since a jump there would then run the ones
/// before it as well. The ops of a run keep their order. A run of stores followed by the
/// exit jump it leads to (not a target either) becomes one [`Op::StRunExit`].
pub(super) fn join_runs(p: &mut Program, w: &mut Work) {
    targets(p, &mut w.target);
    let target = &w.target;
    let target_at = |i: usize| target.get(i).copied().unwrap_or(false);
    let state_op = |op: Op| match op {
        Op::Ld64 { d, off } => Some((false, off, d)),
        Op::St64 { off, a } => Some((true, off, a)),
        _ => None,
    };
    let keep = refill(&mut w.keep, p.ops.len(), true);
    // Room for every state op (growing it one push at a time showed in recording costs).
    let state_ops = p.ops.iter().filter(|&&op| state_op(op).is_some()).count();
    p.runs.reserve(state_ops);
    let mut i = 0;
    while i < p.ops.len() {
        let Some((store, off, s)) = state_op(p.ops[i]) else {
            i += 1;
            continue;
        };
        let mut end = i + 1;
        while end < p.ops.len()
            && !target[end]
            && state_op(p.ops[end]).is_some_and(|(st, ..)| st == store)
        {
            end += 1;
        }
        if end - i >= 2 {
            let at = p.runs.len() as u32;
            p.runs.push((off, s));
            for &op in &p.ops[i + 1..end] {
                if let Some((_, off, s)) = state_op(op) {
                    p.runs.push((off, s));
                }
            }
            keep[i + 1..end].fill(false);
            let n = (end - i) as u32;
            p.ops[i] = match p.ops.get(end) {
                Some(&Op::ExitJump { target }) if store && !target_at(end) => {
                    keep[end] = false;
                    Op::StRunExit { at, n, target }
                }
                _ if store => Op::StRun { at, n },
                _ => Op::LdRun { at, n },
            };
        }
        i = end;
    }
    p.runs.shrink_to_fit();
    compact(p, &w.keep, &mut w.map);
}

/// Whether `p` can only store into the plain guest registers of the state (see
/// [`Program::keeps_mode`]): the general registers, RIP, RFLAGS and the lazy-flag fields,
/// which come first, and the XMM registers. Helpers and host stubs may change anything.
pub(super) fn keeps_mode(p: &Program) -> bool {
    let plain = std::mem::offset_of!(CpuState, icount);
    let xmm = std::mem::offset_of!(CpuState, fx) + std::mem::offset_of!(crate::state::FxArea, xmm);
    let xmm_end = xmm + 16 * 16;
    let ok = |off: u32, bytes: usize| {
        let (lo, hi) = (off as usize, off as usize + bytes);
        hi <= plain || (lo >= xmm && hi <= xmm_end)
    };
    let run_ok = |at: u32, n: u32| {
        p.runs
            .get(at as usize..(at as usize).saturating_add(n as usize))
            .is_some_and(|r| r.iter().all(|&(off, _)| ok(off, 8)))
    };
    p.ops.iter().all(|op| match *op {
        Op::Helper { .. } | Op::Stub { .. } => false,
        Op::StoreState { ty, off, .. } => ok(off, ty.bytes() as usize),
        Op::St64 { off, .. } => ok(off, 8),
        Op::VStoreState { off, .. } => ok(off, 16),
        Op::StRun { at, n } | Op::StRunExit { at, n, .. } => run_ok(at, n),
        _ => true,
    })
}

fn op_back(op: BinOp, ty: Ty, d: Slot, a: Slot, b: Slot) -> Op {
    Op::Bin { op, ty, d, a, b }
}

/// Whether every slot, jump target, fault target, mask, stub and run index of `p`'s ops is
/// in range of its register files, ops and tables, every `Ld64`/`St64` offset (also in
/// runs) inside [`CpuState`], and the last op one that never falls through (so running
/// from any target ends at an exit or jumps to another target): the executor's license to
/// index, and to fetch ops, without checks. The match is exhaustive: a new op does not
/// compile until it is checked here.
pub(super) fn in_range(p: &Program) -> bool {
    let ends = matches!(
        p.ops.last(),
        Some(
            Op::Jump { .. }
                | Op::Branch { .. }
                | Op::BrTest { .. }
                | Op::ExitJump { .. }
                | Op::StRunExit { .. }
                | Op::ExitReturn { .. }
                | Op::ExitStatus
        )
    );
    ends && ops_in_range(p)
}

/// [`in_range`] of each op.
fn ops_in_range(p: &Program) -> bool {
    let (nr, nv, no) = (p.regs.len(), p.vregs.len(), p.ops.len());
    let ri = |s: Slot| (s as usize) < nr;
    let vi = |s: Slot| (s as usize) < nv;
    let to = |x: u32| (x as usize) < no;
    let fault = |x: u32| x == NO_LABEL || to(x);
    let state = |off: u32| off as usize + 8 <= std::mem::size_of::<CpuState>();
    let run = |at: u32, n: u32| {
        p.runs
            .get(at as usize..(at as usize).saturating_add(n as usize))
            .is_some_and(|r| r.iter().all(|&(off, s)| state(off) && ri(s)))
    };
    p.ops.iter().all(|op| match *op {
        Op::Charge { .. } | Op::ExitReturn { .. } | Op::ExitStatus | Op::Uncount { .. } => true,
        Op::Bin { d, a, b, .. } | Op::Cmp { d, a, b, .. } | Op::Test { d, a, b, .. } => {
            ri(d) && ri(a) && ri(b)
        }
        Op::BrTest {
            a, b, then, els, ..
        } => ri(a) && ri(b) && to(then) && to(els),
        Op::Add64 { d, a, b }
        | Op::Sub64 { d, a, b }
        | Op::And64 { d, a, b }
        | Op::Or64 { d, a, b }
        | Op::Xor64 { d, a, b }
        | Op::Shl64 { d, a, b }
        | Op::UShr64 { d, a, b }
        | Op::Add32 { d, a, b }
        | Op::Sub32 { d, a, b }
        | Op::And32 { d, a, b }
        | Op::Or32 { d, a, b }
        | Op::Xor32 { d, a, b }
        | Op::Shl32 { d, a, b }
        | Op::UShr32 { d, a, b } => ri(d) && ri(a) && ri(b),
        Op::Un { d, a, .. } | Op::Conv { d, a, .. } | Op::Mov { d, a } | Op::Mask { d, a, .. } => {
            ri(d) && ri(a)
        }
        Op::Select { d, c, t, f, .. } => ri(d) && ri(c) && ri(t) && ri(f),
        Op::LoadState { d, .. } => ri(d),
        Op::StoreState { a, .. } => ri(a),
        Op::Ld64 { d, off } => ri(d) && state(off),
        Op::St64 { off, a } => ri(a) && state(off),
        Op::LdRun { at, n } | Op::StRun { at, n } => run(at, n),
        Op::StRunExit { at, n, target } => run(at, n) && ri(target),
        Op::LoadMem {
            d, addr, fault: f, ..
        } => ri(d) && ri(addr) && fault(f),
        Op::StoreMem {
            addr, v, fault: f, ..
        } => ri(addr) && ri(v) && fault(f),
        Op::Helper {
            d, args, fault: f, ..
        } => ri(d) && args.iter().all(|&a| ri(a)) && fault(f),
        Op::Jump { to: t } => to(t),
        Op::Branch { c, then, els } => ri(c) && to(then) && to(els),
        Op::ExitJump { target } => ri(target),
        Op::VMov { d, a } | Op::VUn { d, a, .. } | Op::VCvt { d, a, .. } => vi(d) && vi(a),
        Op::VLoadState { d, .. } => vi(d),
        Op::VStoreState { a, .. } => vi(a),
        Op::VLoadMem { d, addr, fault: f } => vi(d) && ri(addr) && fault(f),
        Op::VStoreMem { addr, v, fault: f } => ri(addr) && vi(v) && fault(f),
        Op::VBin { d, a, b, .. } => vi(d) && vi(a) && vi(b),
        Op::VShift { d, a, count, .. } => vi(d) && vi(a) && ri(count),
        Op::VShuffle { d, a, b, mask } => {
            vi(d) && vi(a) && vi(b) && (mask as usize) < p.masks.len()
        }
        Op::VExtract { d, a, .. } | Op::VMovmsk { d, a, .. } | Op::VCvttToInt { d, a, .. } => {
            ri(d) && vi(a)
        }
        Op::VInsert { d, a, x, .. } | Op::VCvtFromInt { d, a, x, .. } => vi(d) && vi(a) && ri(x),
        Op::VSplat { d, x, .. } => vi(d) && ri(x),
        Op::VSelect { d, c, t, f } => vi(d) && ri(c) && vi(t) && vi(f),
        Op::VBlendv { d, a, b, m, .. } => vi(d) && vi(a) && vi(b) && vi(m),
        Op::VFcmpFlags { d, a, b, .. } => ri(d) && vi(a) && vi(b),
        Op::Stub { stub, fault: f, .. } => (stub as usize) < p.stubs.len() && fault(f),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{eval_binop, eval_convert};

    /// Each specialized form computes what its generic form does, on values held masked
    /// to their type as the executor holds them.
    #[test]
    fn specialized_forms_agree_with_the_generic_ones() {
        let vals = [
            0u64,
            1,
            63,
            64,
            0x7f,
            0x80,
            0xffff_ffff,
            1 << 63,
            u64::MAX,
            0x1234_5678_9abc_def0,
        ];
        let ops = [
            BinOp::Add,
            BinOp::Sub,
            BinOp::And,
            BinOp::Or,
            BinOp::Xor,
            BinOp::Shl,
            BinOp::UShr,
        ];
        for ty in [Ty::I8, Ty::I16, Ty::I32, Ty::I64] {
            for op in ops {
                for &a in &vals {
                    for &b in &vals {
                        // Operands as the executor holds them: masked to their type (a
                        // shift's count is not coerced, so it may be wider).
                        let a = a & ty.mask();
                        let (b, narrow) = match op {
                            BinOp::Shl | BinOp::UShr => (b, b & Ty::I8.mask()),
                            _ => (b & ty.mask(), b & ty.mask()),
                        };
                        for b in [b, narrow] {
                            let generic = eval_binop(op, ty, a, b);
                            let fast = match specialize(Op::Bin {
                                op,
                                ty,
                                d: 0,
                                a: 1,
                                b: 2,
                            }) {
                                Op::Add64 { .. } => a.wrapping_add(b),
                                Op::Sub64 { .. } => a.wrapping_sub(b),
                                Op::And64 { .. } => a & b,
                                Op::Or64 { .. } => a | b,
                                Op::Xor64 { .. } => a ^ b,
                                Op::Shl64 { .. } => a << (b & 63),
                                Op::UShr64 { .. } => a >> (b & 63),
                                Op::Add32 { .. } => u64::from((a as u32).wrapping_add(b as u32)),
                                Op::Sub32 { .. } => u64::from((a as u32).wrapping_sub(b as u32)),
                                Op::And32 { .. } => u64::from(a as u32 & b as u32),
                                Op::Or32 { .. } => u64::from(a as u32 | b as u32),
                                Op::Xor32 { .. } => u64::from(a as u32 ^ b as u32),
                                Op::Shl32 { .. } => u64::from((a as u32) << (b & 31)),
                                Op::UShr32 { .. } => a >> (b & 31),
                                Op::Bin { .. } if ty.bits() < 32 => generic,
                                other => panic!("{op:?} {ty:?} not specialized: {other:?}"),
                            };
                            assert_eq!(fast, generic, "{op:?} {ty:?} {a:#x} {b:#x}");
                        }
                    }
                }
            }
        }
        let tys = [Ty::I8, Ty::I16, Ty::I32, Ty::I64];
        for conv in [Conv::Zext, Conv::Trunc] {
            for from in tys {
                for to in tys {
                    let Op::Mask { ty, .. } = specialize(Op::Conv {
                        op: conv,
                        from,
                        to,
                        d: 0,
                        a: 1,
                    }) else {
                        panic!("{conv:?} not specialized");
                    };
                    for &v in &vals {
                        let v = v & from.mask();
                        assert_eq!(v & ty.mask(), eval_convert(conv, from, to, v));
                    }
                }
            }
        }
    }

    #[test]
    fn tests_agree_with_the_generic_comparison() {
        let ccs = [
            Cmp::Eq,
            Cmp::Ne,
            Cmp::Ult,
            Cmp::Ule,
            Cmp::Ugt,
            Cmp::Uge,
            Cmp::Slt,
            Cmp::Sle,
            Cmp::Sgt,
            Cmp::Sge,
        ];
        let vals = [
            0u64,
            1,
            2,
            0x7f,
            0x80,
            0xff,
            0x7fff,
            0x8000,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_ffff,
            1 << 63,
            u64::MAX,
            u64::MAX - 1,
        ];
        for ty in [Ty::I8, Ty::I16, Ty::I32, Ty::I64] {
            for cc in ccs {
                let t = CmpTest::new(cc, ty);
                for &a in &vals {
                    for &b in &vals {
                        let (a, b) = (a & ty.mask(), b & ty.mask());
                        assert_eq!(
                            u64::from(t.eval(a, b)),
                            crate::ir::eval_cmp(cc, ty, a, b),
                            "{cc:?} {ty:?} {a:#x} {b:#x}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_test_joins_the_branch_that_alone_reads_it() {
        let exit = Op::ExitReturn {
            reason: crate::state::ExitReason::Jump,
        };
        let t = CmpTest::new(Cmp::Eq, Ty::I64);
        let test = |d| Op::Test { t, d, a: 0, b: 1 };
        let branch = |c, then| Op::Branch { c, then, els: 9 };
        let mut p = Program {
            ops: vec![
                Op::Charge { n: 1 },
                test(2),
                branch(2, 4),
                test(3),
                branch(3, 5),
                test(4),
                Op::Mov { d: 5, a: 4 },
                branch(4, 8),
                branch(4, 7),
                exit,
            ],
            regs: vec![0; 6],
            ..Program::default()
        };
        join_branches(&mut p, 6, &mut Work::default());
        // 1-2 join; 3-4 do not (4 is a target); 5 is read three times.
        assert!(matches!(
            p.ops[1],
            Op::BrTest {
                then: 3,
                els: 8,
                a: 0,
                b: 1,
                ..
            }
        ));
        assert!(matches!(p.ops[2], Op::Test { d: 3, .. }));
        assert!(matches!(p.ops[3], Op::Branch { c: 3, then: 4, .. }));
        assert!(matches!(p.ops[4], Op::Test { d: 4, .. }));
        assert_eq!(p.ops.len(), 9);
        assert!(in_range(&p));
    }

    #[test]
    fn neighbouring_state_accesses_join_unless_one_is_a_target() {
        let exit = Op::ExitReturn {
            reason: crate::state::ExitReason::Jump,
        };
        let mut p = Program {
            ops: vec![
                Op::Charge { n: 1 },
                Op::Ld64 { d: 0, off: 0 },
                Op::Ld64 { d: 1, off: 8 },
                Op::Ld64 { d: 2, off: 16 },
                Op::Branch {
                    c: 0,
                    then: 5,
                    els: 6,
                },
                Op::St64 { off: 0, a: 1 },
                Op::St64 { off: 8, a: 0 },
                Op::St64 { off: 16, a: 0 },
                Op::St64 { off: 24, a: 2 },
                Op::Ld64 { d: 3, off: 32 },
                exit,
            ],
            regs: vec![0; 4],
            ..Program::default()
        };
        join_runs(&mut p, &mut Work::default());
        assert!(matches!(p.ops[1], Op::LdRun { at: 0, n: 3 }));
        // Op 6 is a branch target: 5 stays alone, 6 to 8 join (a load ends them), and the
        // branch follows.
        assert!(matches!(
            p.ops[2],
            Op::Branch {
                then: 3,
                els: 4,
                ..
            }
        ));
        assert!(matches!(p.ops[3], Op::St64 { off: 0, a: 1 }));
        assert!(matches!(p.ops[4], Op::StRun { at: 3, n: 3 }));
        assert!(matches!(p.ops[5], Op::Ld64 { d: 3, off: 32 }));
        assert_eq!(p.ops.len(), 7);
        assert_eq!(
            p.runs,
            [(0, 0), (8, 1), (16, 2), (8, 0), (16, 0), (24, 2)],
            "in program order"
        );
        assert!(in_range(&p));
        p.runs[4].0 = std::mem::size_of::<CpuState>() as u32 - 4;
        assert!(!in_range(&p), "a run's offset past the state");
        p.runs.pop();
        assert!(!in_range(&p), "a run past the table");
    }

    #[test]
    fn stores_join_the_exit_jump_they_lead_to_unless_it_is_a_target() {
        let stores = [Op::St64 { off: 0, a: 0 }, Op::St64 { off: 8, a: 1 }];
        let exit = Op::ExitJump { target: 1 };
        let mut ops = vec![Op::Charge { n: 1 }];
        ops.extend(stores);
        ops.push(exit);
        ops.extend(stores);
        ops.push(exit);
        ops.push(Op::Jump { to: 6 });
        let mut p = Program {
            ops,
            regs: vec![0; 2],
            ..Program::default()
        };
        join_runs(&mut p, &mut Work::default());
        assert!(matches!(
            p.ops[1],
            Op::StRunExit {
                at: 0,
                n: 2,
                target: 1
            }
        ));
        assert!(matches!(p.ops[2], Op::StRun { at: 2, n: 2 }));
        assert!(matches!(p.ops[3], Op::ExitJump { target: 1 }));
        assert!(matches!(p.ops[4], Op::Jump { to: 3 }));
        assert!(in_range(&p));
        p.ops[1] = Op::StRunExit {
            at: 0,
            n: 2,
            target: 2,
        };
        assert!(!in_range(&p), "a target slot out of range");
    }

    #[test]
    fn a_slot_out_of_range_fails_the_check() {
        let mut p = Program {
            ops: vec![
                Op::Charge { n: 1 },
                Op::Mov { d: 0, a: 1 },
                Op::ExitReturn {
                    reason: crate::state::ExitReason::Jump,
                },
            ],
            regs: vec![0; 2],
            ..Program::default()
        };
        assert!(in_range(&p));
        p.ops[1] = Op::Mov { d: 0, a: 2 };
        assert!(!in_range(&p));
        p.ops[1] = Op::Jump { to: 3 };
        assert!(!in_range(&p));
        p.ops[1] = Op::VMov { d: 0, a: 0 };
        assert!(!in_range(&p), "no vector slots");
    }

    #[test]
    fn only_stores_to_plain_registers_keep_the_mode() {
        let cr0 = std::mem::offset_of!(CpuState, cr0) as u32;
        let xmm0 = (std::mem::offset_of!(CpuState, fx)
            + std::mem::offset_of!(crate::state::FxArea, xmm)) as u32;
        let mxcsr = (std::mem::offset_of!(CpuState, fx)
            + std::mem::offset_of!(crate::state::FxArea, mxcsr)) as u32;
        let exit = Op::ExitJump { target: 0 };
        let with = |op: Op| Program {
            ops: vec![Op::Charge { n: 1 }, op, exit],
            runs: vec![(0, 0), (cr0, 0)],
            regs: vec![0; 1],
            ..Program::default()
        };
        assert!(keeps_mode(&with(Op::St64 { off: 8, a: 0 })));
        assert!(keeps_mode(&with(Op::VStoreState { off: xmm0, a: 0 })));
        assert!(keeps_mode(&with(Op::StRun { at: 0, n: 1 })));
        assert!(!keeps_mode(&with(Op::St64 { off: cr0, a: 0 })));
        assert!(!keeps_mode(&with(Op::StoreState {
            ty: Ty::I32,
            off: mxcsr,
            a: 0
        })));
        assert!(!keeps_mode(&with(Op::StRun { at: 0, n: 2 })));
        assert!(!keeps_mode(&with(Op::Stub {
            stub: 0,
            how: crate::hostexec::StubCall::Direct,
            fault: NO_LABEL
        })));
        assert!(!keeps_mode(&with(Op::StRunExit {
            at: 1,
            n: 1,
            target: 0
        })));
        let icount = std::mem::offset_of!(CpuState, icount) as u32;
        assert!(!keeps_mode(&with(Op::St64 {
            off: icount - 4,
            a: 0
        })));
    }

    #[test]
    fn a_program_that_can_run_off_its_end_fails_the_check() {
        let mut p = Program {
            ops: vec![
                Op::Charge { n: 1 },
                Op::Branch {
                    c: 0,
                    then: 2,
                    els: 3,
                },
                Op::ExitStatus,
                Op::Mov { d: 0, a: 0 },
            ],
            regs: vec![0; 1],
            ..Program::default()
        };
        assert!(!in_range(&p), "the last op falls through");
        p.ops[3] = Op::Jump { to: 0 };
        assert!(in_range(&p));
        p.ops.truncate(1);
        assert!(!in_range(&p), "a lone charge");
        p.ops.clear();
        assert!(!in_range(&p), "no ops");
    }

    #[test]
    fn state_accesses_outside_the_state_stay_generic() {
        let past = std::mem::size_of::<CpuState>() as u32 - 4;
        assert!(matches!(
            specialize(Op::LoadState {
                ty: Ty::I64,
                d: 0,
                off: past
            }),
            Op::LoadState { .. }
        ));
        assert!(matches!(
            specialize(Op::StoreState {
                ty: Ty::I64,
                off: 0,
                a: 0
            }),
            Op::St64 { .. }
        ));
    }
}
