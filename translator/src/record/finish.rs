//! What `Recorder::finish` does to a program before it runs: the commonest generic ops
//! (by dynamic count on the workload guests) become specialized forms the executor runs
//! without matching on an operation or a width, and every slot, target and table index an
//! op names is checked against the program's sizes once, so the executor can index without
//! bounds checks.

use super::{Op, Program, Slot, NO_LABEL};
use crate::ir::{BinOp, Conv, Ty};
use crate::state::CpuState;

/// The specialized form of `op`, if it has one (see the specialized variants of [`Op`]).
pub(super) fn specialize(op: Op) -> Op {
    let in_state = |off: u32| off as usize + 8 <= std::mem::size_of::<CpuState>();
    match op {
        Op::Bin {
            op,
            ty: Ty::I64,
            d,
            a,
            b,
        } => match op {
            BinOp::Add => Op::Add64 { d, a, b },
            BinOp::Sub => Op::Sub64 { d, a, b },
            BinOp::And => Op::And64 { d, a, b },
            BinOp::Or => Op::Or64 { d, a, b },
            BinOp::Xor => Op::Xor64 { d, a, b },
            BinOp::Shl => Op::Shl64 { d, a, b },
            _ => op_back(op, d, a, b),
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

/// Pair neighbouring `Ld64`s and `St64`s (see [`Op::Ld64x2`], [`Op::St64x2`]): one
/// dispatch instead of two. The second of a pair must not be a jump or fault target, since
/// a jump there would then run the first as well. Two loads pair only into different slots
/// (a slot is written once anyway), so their order does not matter.
pub(super) fn pair(p: &mut Program) {
    let mut target = vec![false; p.ops.len()];
    for &op in &p.ops {
        super::dead::map_targets(&mut { op }, &mut |x| {
            if let Some(t) = target.get_mut(*x as usize) {
                *t = true;
            }
        });
    }
    let mut keep = vec![true; p.ops.len()];
    let mut i = 0;
    while i + 1 < p.ops.len() {
        let fused = match (p.ops[i], p.ops[i + 1]) {
            _ if target[i + 1] => None,
            (Op::St64 { off, a }, Op::St64 { off: off2, a: b }) => {
                Some(Op::St64x2 { off, off2, a, b })
            }
            (Op::Ld64 { d, off }, Op::Ld64 { d: d2, off: off2 }) if d != d2 => {
                Some(Op::Ld64x2 { d, d2, off, off2 })
            }
            _ => None,
        };
        if let Some(op) = fused {
            p.ops[i] = op;
            keep[i + 1] = false;
            i += 2;
        } else {
            i += 1;
        }
    }
    super::dead::compact(p, keep);
}

fn op_back(op: BinOp, d: Slot, a: Slot, b: Slot) -> Op {
    Op::Bin {
        op,
        ty: Ty::I64,
        d,
        a,
        b,
    }
}

/// Whether every slot, jump target, fault target, mask and stub index of `p`'s ops is in
/// range of its register files, ops and tables (the executor's license to index without
/// checks). The match is exhaustive: a new op does not compile until it is checked here.
pub(super) fn in_range(p: &Program) -> bool {
    let (nr, nv, no) = (p.regs.len(), p.vregs.len(), p.ops.len());
    let ri = |s: Slot| (s as usize) < nr;
    let vi = |s: Slot| (s as usize) < nv;
    let to = |x: u32| (x as usize) < no;
    let fault = |x: u32| x == NO_LABEL || to(x);
    p.ops.iter().all(|op| match *op {
        Op::Charge { .. } | Op::ExitReturn { .. } | Op::ExitStatus | Op::Uncount { .. } => true,
        Op::Bin { d, a, b, .. } | Op::Cmp { d, a, b, .. } => ri(d) && ri(a) && ri(b),
        Op::Add64 { d, a, b }
        | Op::Sub64 { d, a, b }
        | Op::And64 { d, a, b }
        | Op::Or64 { d, a, b }
        | Op::Xor64 { d, a, b }
        | Op::Shl64 { d, a, b } => ri(d) && ri(a) && ri(b),
        Op::Un { d, a, .. } | Op::Conv { d, a, .. } | Op::Mov { d, a } | Op::Mask { d, a, .. } => {
            ri(d) && ri(a)
        }
        Op::Select { d, c, t, f, .. } => ri(d) && ri(c) && ri(t) && ri(f),
        Op::LoadState { d, .. } | Op::Ld64 { d, .. } => ri(d),
        Op::StoreState { a, .. } | Op::St64 { a, .. } => ri(a),
        Op::Ld64x2 { d, d2, .. } => ri(d) && ri(d2),
        Op::St64x2 { a, b, .. } => ri(a) && ri(b),
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
        for op in [
            BinOp::Add,
            BinOp::Sub,
            BinOp::And,
            BinOp::Or,
            BinOp::Xor,
            BinOp::Shl,
        ] {
            for &a in &vals {
                for &b in &vals {
                    let generic = eval_binop(op, Ty::I64, a, b);
                    let fast = match specialize(Op::Bin {
                        op,
                        ty: Ty::I64,
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
                        other => panic!("{op:?} not specialized: {other:?}"),
                    };
                    assert_eq!(fast, generic, "{op:?} {a:#x} {b:#x}");
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
    fn neighbouring_state_accesses_pair_unless_the_second_is_a_target() {
        let exit = Op::ExitReturn {
            reason: crate::state::ExitReason::Jump,
        };
        let mut p = Program {
            ops: vec![
                Op::Charge { n: 1 },
                Op::Ld64 { d: 0, off: 0 },
                Op::Ld64 { d: 1, off: 8 },
                Op::Branch {
                    c: 0,
                    then: 4,
                    els: 5,
                },
                Op::St64 { off: 0, a: 1 },
                Op::St64 { off: 8, a: 0 },
                Op::St64 { off: 16, a: 0 },
                exit,
            ],
            regs: vec![0; 2],
            ..Program::default()
        };
        pair(&mut p);
        assert!(matches!(
            p.ops[1],
            Op::Ld64x2 {
                d: 0,
                d2: 1,
                off: 0,
                off2: 8
            }
        ));
        // Op 5 is a branch target: 4 stays alone, 5 and 6 pair, and the branch follows.
        assert!(matches!(
            p.ops[2],
            Op::Branch {
                then: 3,
                els: 4,
                ..
            }
        ));
        assert!(matches!(p.ops[3], Op::St64 { off: 0, a: 1 }));
        assert!(matches!(
            p.ops[4],
            Op::St64x2 {
                off: 8,
                off2: 16,
                a: 0,
                b: 0
            }
        ));
        assert_eq!(p.ops.len(), 6);
        assert!(in_range(&p));
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
