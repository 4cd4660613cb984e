//! The recorder's pure value and vector operations ([`ValueOps`], [`VectorOps`]): each
//! folds constants with [`crate::ir`]'s evaluators or records one [`Op`] into a fresh slot.
//! Part of [`Recorder`]; the module invariants of [`super`] hold.

use super::{Op, RVal, RVec, Recorder};
use crate::emit::{ValueOps, VectorOps};
use crate::ir::{eval_binop, eval_cmp, eval_convert, eval_unop, BinOp, Cmp, Conv, Ty, UnOp};
use crate::vector::{Lanes, VBin, VCvt, VShift, VUn};

impl ValueOps for Recorder<'_> {
    type Value = RVal;

    fn ty(&self, v: RVal) -> Ty {
        v.ty
    }
    fn as_const(&self, v: RVal) -> Option<u64> {
        v.konst
    }
    fn iconst(&mut self, ty: Ty, v: u64) -> RVal {
        self.konst(ty, v)
    }
    fn binop(&mut self, op: BinOp, a: RVal, b: RVal) -> RVal {
        let ty = a.ty;
        let shift = matches!(
            op,
            BinOp::Shl | BinOp::UShr | BinOp::SShr | BinOp::Rotl | BinOp::Rotr
        );
        let b = if shift { b } else { self.coerce(b, ty) };
        if let (Some(x), Some(y)) = (a.konst, b.konst) {
            return self.konst(ty, eval_binop(op, ty, x, y));
        }
        // The identities the JIT folds too (`disp + base`, `x << 0`).
        match (op, a.konst, b.konst) {
            (BinOp::Add | BinOp::Or | BinOp::Xor, Some(0), _) => return self.coerce(b, ty),
            (BinOp::Add | BinOp::Sub | BinOp::Or | BinOp::Xor, _, Some(0))
            | (BinOp::Shl | BinOp::UShr | BinOp::SShr | BinOp::Rotl | BinOp::Rotr, _, Some(0))
            | (BinOp::Mul, _, Some(1)) => return a,
            (BinOp::And, _, Some(m)) if m == ty.mask() => return a,
            _ => {}
        }
        let d = self.fresh(ty);
        self.emit(Op::Bin {
            op,
            ty,
            d: d.slot,
            a: a.slot,
            b: b.slot,
        });
        d
    }
    fn unop(&mut self, op: UnOp, a: RVal) -> RVal {
        if let Some(x) = a.konst {
            return self.konst(a.ty, eval_unop(op, a.ty, x));
        }
        let d = self.fresh(a.ty);
        self.emit(Op::Un {
            op,
            ty: a.ty,
            d: d.slot,
            a: a.slot,
        });
        d
    }
    fn icmp(&mut self, cc: Cmp, a: RVal, b: RVal) -> RVal {
        let b = self.coerce(b, a.ty);
        if let (Some(x), Some(y)) = (a.konst, b.konst) {
            return self.konst(Ty::I8, eval_cmp(cc, a.ty, x, y));
        }
        let d = self.fresh(Ty::I8);
        self.emit(Op::Cmp {
            cc,
            ty: a.ty,
            d: d.slot,
            a: a.slot,
            b: b.slot,
        });
        d
    }
    fn select(&mut self, c: RVal, t: RVal, f: RVal) -> RVal {
        let f = self.coerce(f, t.ty);
        if let Some(c) = c.konst {
            return if c != 0 { t } else { f };
        }
        let d = self.fresh(t.ty);
        self.emit(Op::Select {
            ty: t.ty,
            d: d.slot,
            c: c.slot,
            t: t.slot,
            f: f.slot,
        });
        d
    }
    fn convert(&mut self, op: Conv, v: RVal, to: Ty) -> RVal {
        if v.ty == to {
            return v;
        }
        if let Some(x) = v.konst {
            return self.konst(to, eval_convert(op, v.ty, to, x));
        }
        // Slots hold values masked to their type, so a zero extension is the same bits, and
        // so is a truncation to a width the value already fits (a register's low half that
        // was zero-extended into it): share the slot instead of recording a mask.
        let widens = v.ty.bits() < to.bits();
        if (op == Conv::Zext && widens) || (op == Conv::Trunc && v.fits.bits() <= to.bits()) {
            return RVal { ty: to, ..v };
        }
        let key = (v.slot, op as u8, v.ty.bits(), to.bits());
        if let Some(&d) = self.t.convs.get(&key) {
            return d;
        }
        let d = self.fresh(to);
        self.emit(Op::Conv {
            op,
            from: v.ty,
            to,
            d: d.slot,
            a: v.slot,
        });
        if self.live {
            self.t.convs.insert(key, d);
        }
        d
    }
}

impl VectorOps for Recorder<'_> {
    type Vec = RVec;

    fn same_vec(&self, a: RVec, b: RVec) -> bool {
        a.slot == b.slot
    }

    fn vconst(&mut self, v: u128) -> RVec {
        self.vkonst(v)
    }
    fn vbin(&mut self, op: VBin, lanes: Lanes, a: RVec, b: RVec) -> RVec {
        let d = self.vfresh();
        self.emit(Op::VBin {
            op,
            lanes,
            d: d.slot,
            a: a.slot,
            b: b.slot,
        });
        d
    }
    fn vun(&mut self, op: VUn, lanes: Lanes, a: RVec) -> RVec {
        let d = self.vfresh();
        self.emit(Op::VUn {
            op,
            lanes,
            d: d.slot,
            a: a.slot,
        });
        d
    }
    fn vshift(&mut self, op: VShift, lanes: Lanes, a: RVec, count: RVal) -> RVec {
        let count = self.coerce(count, Ty::I64);
        let d = self.vfresh();
        self.emit(Op::VShift {
            op,
            lanes,
            d: d.slot,
            a: a.slot,
            count: count.slot,
        });
        d
    }
    fn vshuffle(&mut self, a: RVec, b: RVec, mask: [u8; 16]) -> RVec {
        let d = self.vfresh();
        let m = self.p.masks.len() as u32;
        self.p.masks.push(mask);
        self.emit(Op::VShuffle {
            d: d.slot,
            a: a.slot,
            b: b.slot,
            mask: m,
        });
        d
    }
    fn vextract(&mut self, v: RVec, lanes: Lanes, idx: u8) -> RVal {
        let d = self.fresh(lanes.int().ty());
        self.emit(Op::VExtract {
            lanes,
            idx,
            d: d.slot,
            a: v.slot,
        });
        d
    }
    fn vinsert(&mut self, v: RVec, lanes: Lanes, idx: u8, x: RVal) -> RVec {
        let d = self.vfresh();
        self.emit(Op::VInsert {
            lanes,
            idx,
            d: d.slot,
            a: v.slot,
            x: x.slot,
        });
        d
    }
    fn vsplat(&mut self, lanes: Lanes, x: RVal) -> RVec {
        let d = self.vfresh();
        self.emit(Op::VSplat {
            lanes,
            d: d.slot,
            x: x.slot,
        });
        d
    }
    fn vmovmsk(&mut self, v: RVec, lanes: Lanes) -> RVal {
        let d = self.fresh(Ty::I32);
        self.emit(Op::VMovmsk {
            lanes,
            d: d.slot,
            a: v.slot,
        });
        d
    }
    fn vselect(&mut self, c: RVal, t: RVec, f: RVec) -> RVec {
        if let Some(c) = c.konst {
            return if c != 0 { t } else { f };
        }
        let d = self.vfresh();
        self.emit(Op::VSelect {
            d: d.slot,
            c: c.slot,
            t: t.slot,
            f: f.slot,
        });
        d
    }
    fn vblendv(&mut self, lanes: Lanes, a: RVec, b: RVec, mask: RVec) -> RVec {
        let d = self.vfresh();
        self.emit(Op::VBlendv {
            lanes,
            d: d.slot,
            a: a.slot,
            b: b.slot,
            m: mask.slot,
        });
        d
    }
    fn vcvt(&mut self, op: VCvt, a: RVec) -> RVec {
        let d = self.vfresh();
        self.emit(Op::VCvt {
            op,
            d: d.slot,
            a: a.slot,
        });
        d
    }
    fn vcvt_from_int(&mut self, lanes: Lanes, a: RVec, x: RVal) -> RVec {
        let d = self.vfresh();
        self.emit(Op::VCvtFromInt {
            lanes,
            xty: x.ty,
            d: d.slot,
            a: a.slot,
            x: x.slot,
        });
        d
    }
    fn vcvtt_to_int(&mut self, lanes: Lanes, a: RVec, ty: Ty) -> RVal {
        let d = self.fresh(ty);
        self.emit(Op::VCvttToInt {
            lanes,
            ty,
            d: d.slot,
            a: a.slot,
        });
        d
    }
    fn vfcmp_flags(&mut self, lanes: Lanes, a: RVec, b: RVec, ordered: bool) -> RVal {
        let d = self.fresh(Ty::I64);
        self.emit(Op::VFcmpFlags {
            lanes,
            ordered,
            d: d.slot,
            a: a.slot,
            b: b.slot,
        });
        d
    }
}
