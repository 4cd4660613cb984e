//! Every lowering of a pure operation, run on edge values of every type and compared with
//! [`Concrete`] (which is `ir::eval_*`): the JIT and the interpreter mean the same thing.

use super::{Harness, EDGES};
use crate::emit::{Emitter, Exit, ValueOps};
use crate::flags::{CVal, Concrete};
use crate::ir::{BinOp, Cmp, Conv, Ty, UnOp};
use crate::state::{off_gpr, ExitReason};

const TYS: [Ty; 4] = [Ty::I8, Ty::I16, Ty::I32, Ty::I64];

const BINOPS: [BinOp; 17] = [
    BinOp::Add,
    BinOp::Sub,
    BinOp::And,
    BinOp::Or,
    BinOp::Xor,
    BinOp::Mul,
    BinOp::UMulHi,
    BinOp::SMulHi,
    BinOp::Shl,
    BinOp::UShr,
    BinOp::SShr,
    BinOp::Rotl,
    BinOp::Rotr,
    BinOp::UDiv,
    BinOp::SDiv,
    BinOp::URem,
    BinOp::SRem,
];

const UNOPS: [UnOp; 6] = [
    UnOp::Not,
    UnOp::Neg,
    UnOp::Popcnt,
    UnOp::Clz,
    UnOp::Ctz,
    UnOp::Bswap,
];

const CMPS: [Cmp; 10] = [
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

/// Inputs of a tiny function: operands from `gpr[1..=3]` (at their types), or constants.
#[derive(Clone, Copy)]
enum Input {
    Reg(Ty),
    Const(Ty, u64),
}

/// An operation under test, applicable to any [`ValueOps`].
trait Op {
    fn apply<V: ValueOps>(&self, e: &mut V, args: &[V::Value]) -> V::Value;
}

struct Bin(BinOp);
impl Op for Bin {
    fn apply<V: ValueOps>(&self, e: &mut V, a: &[V::Value]) -> V::Value {
        e.binop(self.0, a[0], a[1])
    }
}
struct Un(UnOp);
impl Op for Un {
    fn apply<V: ValueOps>(&self, e: &mut V, a: &[V::Value]) -> V::Value {
        e.unop(self.0, a[0])
    }
}
struct Icmp(Cmp);
impl Op for Icmp {
    fn apply<V: ValueOps>(&self, e: &mut V, a: &[V::Value]) -> V::Value {
        e.icmp(self.0, a[0], a[1])
    }
}
struct Convert(Conv, Ty);
impl Op for Convert {
    fn apply<V: ValueOps>(&self, e: &mut V, a: &[V::Value]) -> V::Value {
        e.convert(self.0, a[0], self.1)
    }
}
struct Select;
impl Op for Select {
    fn apply<V: ValueOps>(&self, e: &mut V, a: &[V::Value]) -> V::Value {
        e.select(a[0], a[1], a[2])
    }
}

/// Check `op` over `inputs` against [`Concrete`] for every combination of `values` (register
/// inputs take the values; constant inputs keep theirs).
fn check(h: &mut Harness, what: &str, op: &impl Op, inputs: &[Input], values: &[u64]) {
    let host = h
        .install_raw(0x1000, |e| {
            let args: Vec<_> = inputs
                .iter()
                .enumerate()
                .map(|(i, inp)| match *inp {
                    Input::Reg(ty) => e.load_state(ty, off_gpr(i + 1)),
                    Input::Const(ty, v) => e.iconst(ty, v),
                })
                .collect();
            let r = op.apply(e, &args);
            let r = e.convert(Conv::Zext, r, Ty::I64);
            e.store_state(off_gpr(0), r);
            e.exit(Exit::Return(ExitReason::Stop));
        })
        .unwrap_or_else(|err| panic!("{what}: {err}"));
    let regs = inputs.iter().filter(|i| matches!(i, Input::Reg(_))).count();
    let combos = values.len().pow(regs as u32);
    for n in 0..combos {
        let mut k = n;
        let mut vals = Vec::new();
        for inp in inputs {
            vals.push(match *inp {
                Input::Reg(ty) => {
                    let v = values[k % values.len()];
                    k /= values.len();
                    CVal {
                        ty,
                        v: v & ty.mask(),
                    }
                }
                Input::Const(ty, v) => CVal {
                    ty,
                    v: v & ty.mask(),
                },
            });
        }
        let want = op.apply(&mut Concrete, &vals).v;
        for (i, v) in vals.iter().enumerate() {
            // Garbage above the operand's width must not matter.
            h.cpu.gpr[i + 1] = v.v | (!v.ty.mask() & 0x5a5a_5a5a_5a5a_5a5a);
        }
        h.cpu.gpr[0] = 0xdead_beef;
        let r = h.enter(host);
        assert_eq!(r, ExitReason::Stop as u64, "{what}");
        assert_eq!(
            h.cpu.gpr[0],
            want,
            "{what} on {:x?}",
            vals.iter().map(|v| v.v).collect::<Vec<_>>()
        );
    }
}

#[test]
fn binops_match_eval_on_edge_values() {
    let mut h = Harness::new();
    for op in BINOPS {
        for ty in TYS {
            let what = format!("{op:?} {ty:?}");
            check(
                &mut h,
                &what,
                &Bin(op),
                &[Input::Reg(ty), Input::Reg(ty)],
                &EDGES,
            );
        }
    }
}

#[test]
fn shift_amounts_of_other_types() {
    let mut h = Harness::new();
    for op in [
        BinOp::Shl,
        BinOp::UShr,
        BinOp::SShr,
        BinOp::Rotl,
        BinOp::Rotr,
    ] {
        for ty in TYS {
            for aty in TYS {
                let what = format!("{op:?} {ty:?} by {aty:?}");
                check(
                    &mut h,
                    &what,
                    &Bin(op),
                    &[Input::Reg(ty), Input::Reg(aty)],
                    &EDGES,
                );
            }
        }
    }
}

#[test]
fn mismatched_operand_types_follow_the_evaluator() {
    let mut h = Harness::new();
    for op in [
        BinOp::Add,
        BinOp::Sub,
        BinOp::Mul,
        BinOp::UMulHi,
        BinOp::SMulHi,
        BinOp::UDiv,
        BinOp::SDiv,
        BinOp::URem,
        BinOp::SRem,
    ] {
        for (a, b) in [(Ty::I32, Ty::I64), (Ty::I8, Ty::I16), (Ty::I64, Ty::I8)] {
            let what = format!("{op:?} {a:?} with {b:?}");
            check(
                &mut h,
                &what,
                &Bin(op),
                &[Input::Reg(a), Input::Reg(b)],
                &EDGES,
            );
        }
    }
    for (a, b) in [(Ty::I32, Ty::I64), (Ty::I16, Ty::I8)] {
        check(
            &mut h,
            "icmp slt mixed",
            &Icmp(Cmp::Slt),
            &[Input::Reg(a), Input::Reg(b)],
            &EDGES,
        );
    }
}

#[test]
fn unops_match_eval_on_edge_values() {
    let mut h = Harness::new();
    for op in UNOPS {
        for ty in TYS {
            let what = format!("{op:?} {ty:?}");
            check(&mut h, &what, &Un(op), &[Input::Reg(ty)], &EDGES);
        }
    }
}

#[test]
fn compares_match_eval_on_edge_values() {
    let mut h = Harness::new();
    for cc in CMPS {
        for ty in TYS {
            let what = format!("{cc:?} {ty:?}");
            check(
                &mut h,
                &what,
                &Icmp(cc),
                &[Input::Reg(ty), Input::Reg(ty)],
                &EDGES,
            );
        }
    }
}

#[test]
fn conversions_match_eval_on_edge_values() {
    let mut h = Harness::new();
    for op in [Conv::Zext, Conv::Sext, Conv::Trunc] {
        for from in TYS {
            for to in TYS {
                let what = format!("{op:?} {from:?} -> {to:?}");
                check(&mut h, &what, &Convert(op, to), &[Input::Reg(from)], &EDGES);
            }
        }
    }
}

#[test]
fn select_matches_eval() {
    let mut h = Harness::new();
    let vals = [0, 1, 0x80, 0x100, u64::MAX, 0x1234_5678_9abc_def0];
    for cty in [Ty::I8, Ty::I64] {
        for ty in TYS {
            let what = format!("select {cty:?} {ty:?}");
            let inputs = [Input::Reg(cty), Input::Reg(ty), Input::Reg(ty)];
            check(&mut h, &what, &Select, &inputs, &vals);
        }
    }
}

#[test]
fn constant_folding_matches_eval() {
    let mut h = Harness::new();
    let picks = [
        0u64,
        1,
        0x80,
        0xffff_ffff,
        u64::MAX,
        0x8000_0000_0000_0000,
        63,
    ];
    for ty in TYS {
        for op in BINOPS {
            for &a in &picks {
                for &b in &picks[..4] {
                    let inputs = [Input::Const(ty, a), Input::Const(ty, b)];
                    check(
                        &mut h,
                        &format!("const {op:?} {ty:?}"),
                        &Bin(op),
                        &inputs,
                        &[],
                    );
                }
            }
        }
        for op in UNOPS {
            for &a in &picks {
                let inputs = [Input::Const(ty, a)];
                check(
                    &mut h,
                    &format!("const {op:?} {ty:?}"),
                    &Un(op),
                    &inputs,
                    &[],
                );
            }
        }
        for cc in [Cmp::Slt, Cmp::Ugt, Cmp::Eq] {
            for &a in &picks {
                let inputs = [Input::Const(ty, a), Input::Const(ty, 0x80)];
                check(
                    &mut h,
                    &format!("const {cc:?} {ty:?}"),
                    &Icmp(cc),
                    &inputs,
                    &[],
                );
            }
        }
        for to in TYS {
            for &a in &picks {
                let inputs = [Input::Const(ty, a)];
                let what = format!("const sext {ty:?}->{to:?}");
                check(&mut h, &what, &Convert(Conv::Sext, to), &inputs, &[]);
            }
        }
    }
}

#[test]
fn folded_values_are_constants() {
    let mut h = Harness::new();
    h.install_raw(0, |e| {
        let a = e.iconst(Ty::I32, 0xffff_ffff);
        let b = e.iconst(Ty::I32, 1);
        let s = e.binop(BinOp::Add, a, b);
        assert_eq!(e.as_const(s), Some(0));
        let x = e.load_state(Ty::I64, off_gpr(1));
        assert_eq!(e.as_const(x), None);
        let w = e.convert(Conv::Sext, a, Ty::I64);
        assert_eq!(e.as_const(w), Some(u64::MAX));
        assert_eq!(e.ty(w), Ty::I64);
        e.exit(Exit::Return(ExitReason::Stop));
    })
    .expect("compile");
}

#[test]
fn one_constant_operand_matches_eval() {
    let mut h = Harness::new();
    for ty in TYS {
        for op in BINOPS {
            for k in [0, 1, 2, ty.mask(), ty.bits() as u64] {
                let what = format!("{op:?} {ty:?} reg, {k:#x}");
                let inputs = [Input::Reg(ty), Input::Const(ty, k)];
                check(&mut h, &what, &Bin(op), &inputs, &EDGES);
                let what = format!("{op:?} {ty:?} {k:#x}, reg");
                let inputs = [Input::Const(ty, k), Input::Reg(ty)];
                check(&mut h, &what, &Bin(op), &inputs, &EDGES);
            }
        }
    }
}

/// The divisions never trap on the host, whatever the operands: a zero divisor, `MIN / -1`
/// and `MIN % -1` of every type, with the divisor in a register, a constant, or the same
/// value as the dividend. (A trap would kill the test process with SIGFPE.)
#[test]
fn divisions_never_trap() {
    let mut h = Harness::new();
    let ops = [BinOp::UDiv, BinOp::SDiv, BinOp::URem, BinOp::SRem];
    for op in ops {
        for ty in TYS {
            let (min, m1) = (ty.sign_bit(), ty.mask());
            let vals = [0, 1, 2, min, m1, min | 1, m1 - 1];
            let what = format!("{op:?} {ty:?}");
            check(
                &mut h,
                &what,
                &Bin(op),
                &[Input::Reg(ty), Input::Reg(ty)],
                &vals,
            );
            for k in [0, 1, m1, min, 7] {
                let inputs = [Input::Reg(ty), Input::Const(ty, k)];
                check(
                    &mut h,
                    &format!("{what} by {k:#x}"),
                    &Bin(op),
                    &inputs,
                    &vals,
                );
                let inputs = [Input::Const(ty, min), Input::Const(ty, k)];
                check(
                    &mut h,
                    &format!("{what} const by {k:#x}"),
                    &Bin(op),
                    &inputs,
                    &[],
                );
            }
            // The same value as dividend and divisor.
            check(
                &mut h,
                &format!("{what} x/x"),
                &SelfDiv(op),
                &[Input::Reg(ty)],
                &vals,
            );
        }
    }
}

struct SelfDiv(BinOp);
impl Op for SelfDiv {
    fn apply<V: ValueOps>(&self, e: &mut V, a: &[V::Value]) -> V::Value {
        e.binop(self.0, a[0], a[0])
    }
}
