//! SSE data movement, logic and shuffles: whole-register moves, scalar moves, MOVD/MOVQ,
//! the 64-bit half moves, AND/ANDN/OR/XOR, PSHUF*/SHUFP*/UNPCK*/PUNPCK*, PALIGNR, byte
//! shifts, blends with an immediate, inserts and extracts, sign-mask extraction, the SSE3
//! duplicating moves, PMOVSX/PMOVZX. None of these touches MXCSR.

use iced_x86::{Mnemonic as M, OpKind};

use super::{gpr_op, is_xmm, read_v, write_v, xmm_num};
use crate::ctx::Ctx;
use crate::emit::Emitter;
use crate::ir::Ty;
use crate::vector::{Lanes, VBin, VUn};

/// A byte shuffle mask picking lane `src[i]` (of `bytes`-byte lanes) for lane `i`; source
/// lanes at and above `128 / (8 * bytes)` come from the second vector.
fn lane_mask(bytes: u8, src: &[u8]) -> [u8; 16] {
    let mut m = [0u8; 16];
    for (i, &s) in src.iter().enumerate() {
        for b in 0..bytes {
            m[i * bytes as usize + b as usize] = s * bytes + b;
        }
    }
    m
}

/// Take the instruction if it is one of this family's forms.
pub fn translate<E: Emitter>(ctx: &mut Ctx<E>) -> bool {
    let m = ctx.insn().mnemonic();
    match m {
        M::Movaps
        | M::Movups
        | M::Movapd
        | M::Movupd
        | M::Movdqa
        | M::Movdqu
        | M::Lddqu
        | M::Movntps
        | M::Movntpd
        | M::Movntdq
        | M::Movntdqa => {
            let v = read_v(ctx, 1);
            write_v(ctx, v);
        }
        M::Movss | M::Movsd => scalar_move(ctx, if m == M::Movss { 4 } else { 8 }),
        M::Movd | M::Movq => return movd_movq(ctx),
        M::Movhps | M::Movhpd | M::Movlps | M::Movlpd | M::Movhlps | M::Movlhps => half_move(ctx),
        M::Andps | M::Andpd | M::Pand => logic(ctx, VBin::And),
        M::Andnps | M::Andnpd | M::Pandn => logic(ctx, VBin::AndNot),
        M::Orps | M::Orpd | M::Por => logic(ctx, VBin::Or),
        M::Xorps | M::Xorpd | M::Pxor => logic(ctx, VBin::Xor),
        M::Pshufd | M::Pshuflw | M::Pshufhw => pshuf(ctx),
        M::Shufps | M::Shufpd => shufp(ctx),
        M::Unpcklps => binary(ctx, VBin::UnpackLo, Lanes::I32),
        M::Unpckhps => binary(ctx, VBin::UnpackHi, Lanes::I32),
        M::Unpcklpd | M::Punpcklqdq => binary(ctx, VBin::UnpackLo, Lanes::I64),
        M::Unpckhpd | M::Punpckhqdq => binary(ctx, VBin::UnpackHi, Lanes::I64),
        M::Punpcklbw => binary(ctx, VBin::UnpackLo, Lanes::I8),
        M::Punpckhbw => binary(ctx, VBin::UnpackHi, Lanes::I8),
        M::Punpcklwd => binary(ctx, VBin::UnpackLo, Lanes::I16),
        M::Punpckhwd => binary(ctx, VBin::UnpackHi, Lanes::I16),
        M::Punpckldq => binary(ctx, VBin::UnpackLo, Lanes::I32),
        M::Punpckhdq => binary(ctx, VBin::UnpackHi, Lanes::I32),
        M::Pshufb => binary(ctx, VBin::Pshufb, Lanes::I8),
        M::Palignr => palignr(ctx),
        M::Pslldq | M::Psrldq => byte_shift(ctx),
        M::Pblendw | M::Blendps | M::Blendpd => blend(ctx),
        M::Pinsrb | M::Pinsrw | M::Pinsrd | M::Pinsrq => insert(ctx),
        M::Pextrb | M::Pextrw | M::Pextrd | M::Pextrq | M::Extractps => extract(ctx),
        M::Insertps => insertps(ctx),
        M::Movmskps | M::Movmskpd | M::Pmovmskb => movmsk(ctx),
        M::Movddup | M::Movsldup | M::Movshdup => dup(ctx),
        M::Pmovsxbw
        | M::Pmovsxbd
        | M::Pmovsxbq
        | M::Pmovsxwd
        | M::Pmovsxwq
        | M::Pmovsxdq
        | M::Pmovzxbw
        | M::Pmovzxbd
        | M::Pmovzxbq
        | M::Pmovzxwd
        | M::Pmovzxwq
        | M::Pmovzxdq => widen(ctx),
        _ => return false,
    }
    true
}

/// `dst = op(dst, src)` on whole registers.
pub(super) fn binary<E: Emitter>(ctx: &mut Ctx<E>, op: VBin, lanes: Lanes) {
    let a = ctx.xmm(xmm_num(ctx, 0));
    let b = read_v(ctx, 1);
    let r = ctx.e.vbin(op, lanes, a, b);
    let n = xmm_num(ctx, 0);
    ctx.set_xmm(n, r);
}

fn logic<E: Emitter>(ctx: &mut Ctx<E>, op: VBin) {
    binary(ctx, op, Lanes::I64)
}

/// MOVSS/MOVSD: register to register merges lane 0; a load zero-extends; a store writes
/// lane 0.
fn scalar_move<E: Emitter>(ctx: &mut Ctx<E>, bytes: u8) {
    if is_xmm(ctx, 0) && is_xmm(ctx, 1) {
        let a = ctx.xmm(xmm_num(ctx, 0));
        let b = ctx.xmm(xmm_num(ctx, 1));
        let mut mask: [u8; 16] = std::array::from_fn(|i| i as u8);
        for (i, m) in mask.iter_mut().enumerate().take(bytes as usize) {
            *m = 16 + i as u8;
        }
        let r = ctx.e.vshuffle(a, b, mask);
        let n = xmm_num(ctx, 0);
        ctx.set_xmm(n, r);
    } else {
        let v = read_v(ctx, 1);
        write_v(ctx, v);
    }
}

/// MOVD/MOVQ between XMM and general registers or memory, and MOVQ xmm, xmm/m64 (zeroing
/// the high half). MMX forms are not taken here.
fn movd_movq<E: Emitter>(ctx: &mut Ctx<E>) -> bool {
    let lanes = if ctx.insn().mnemonic() == M::Movd {
        Lanes::I32
    } else {
        Lanes::I64
    };
    if is_xmm(ctx, 0) {
        let v = if is_xmm(ctx, 1) || gpr_op(ctx, 1).is_none() {
            read_v(ctx, 1)
        } else {
            let x = ctx.read_op(1);
            let z = ctx.e.vconst(0);
            ctx.e.vinsert(z, lanes, 0, x)
        };
        // MOVQ xmm, xmm keeps only the low quadword.
        let low: [u8; 16] = std::array::from_fn(|i| if i < 8 { i as u8 } else { 16 });
        let z = ctx.e.vconst(0);
        let v = ctx.e.vshuffle(v, z, low);
        let n = xmm_num(ctx, 0);
        ctx.set_xmm(n, v);
        return true;
    }
    if !is_xmm(ctx, 1) {
        return false;
    }
    let v = ctx.xmm(xmm_num(ctx, 1));
    let x = ctx.e.vextract(v, lanes, 0);
    ctx.write_op(0, x);
    true
}

/// MOVHPS/MOVHPD/MOVLPS/MOVLPD (a 64-bit half to or from memory), MOVHLPS, MOVLHPS.
fn half_move<E: Emitter>(ctx: &mut Ctx<E>) {
    let m = ctx.insn().mnemonic();
    let high = matches!(m, M::Movhps | M::Movhpd | M::Movlhps);
    if ctx.insn().op_kind(0) == OpKind::Memory {
        let v = ctx.xmm(xmm_num(ctx, 1));
        let x = ctx.e.vextract(v, Lanes::I64, u8::from(high));
        let a = ctx.op_addr();
        ctx.store(a, x);
        return;
    }
    let d = ctx.xmm(xmm_num(ctx, 0));
    let x = match m {
        M::Movhlps | M::Movlhps => {
            let s = ctx.xmm(xmm_num(ctx, 1));
            ctx.e.vextract(s, Lanes::I64, u8::from(m == M::Movhlps))
        }
        _ => {
            let a = ctx.op_addr();
            ctx.load(Ty::I64, a)
        }
    };
    let r = ctx.e.vinsert(d, Lanes::I64, u8::from(high), x);
    let n = xmm_num(ctx, 0);
    ctx.set_xmm(n, r);
}

fn imm8<E: Emitter>(ctx: &Ctx<E>) -> u8 {
    let i = ctx.insn();
    (0..i.op_count())
        .find(|&k| i.op_kind(k) == OpKind::Immediate8)
        .map_or(0, |k| i.immediate(k) as u8)
}

fn pshuf<E: Emitter>(ctx: &mut Ctx<E>) {
    let imm = imm8(ctx);
    let sel = |k: u8| (imm >> (2 * k)) & 3;
    let src = read_v(ctx, 1);
    let mask = match ctx.insn().mnemonic() {
        M::Pshufd => lane_mask(4, &[sel(0), sel(1), sel(2), sel(3)]),
        M::Pshuflw => lane_mask(2, &[sel(0), sel(1), sel(2), sel(3), 4, 5, 6, 7]),
        _ => lane_mask(
            2,
            &[0, 1, 2, 3, 4 + sel(0), 4 + sel(1), 4 + sel(2), 4 + sel(3)],
        ),
    };
    let r = ctx.e.vshuffle(src, src, mask);
    let n = xmm_num(ctx, 0);
    ctx.set_xmm(n, r);
}

fn shufp<E: Emitter>(ctx: &mut Ctx<E>) {
    let imm = imm8(ctx);
    let a = ctx.xmm(xmm_num(ctx, 0));
    let b = read_v(ctx, 1);
    let mask = if ctx.insn().mnemonic() == M::Shufps {
        let s = |k: u8| (imm >> (2 * k)) & 3;
        lane_mask(4, &[s(0), s(1), 4 + s(2), 4 + s(3)])
    } else {
        lane_mask(8, &[imm & 1, 2 + ((imm >> 1) & 1)])
    };
    let r = ctx.e.vshuffle(a, b, mask);
    let n = xmm_num(ctx, 0);
    ctx.set_xmm(n, r);
}

/// PALIGNR: bytes `imm..imm+16` of the 32-byte `dst:src`, zeros past its end.
fn palignr<E: Emitter>(ctx: &mut Ctx<E>) {
    let imm = u32::from(imm8(ctx));
    let dst = ctx.xmm(xmm_num(ctx, 0));
    let src = read_v(ctx, 1);
    let z = ctx.e.vconst(0);
    let r = if imm < 16 {
        // src is bytes 0..16, dst 16..32.
        let mask = std::array::from_fn(|i| (i as u32 + imm) as u8);
        ctx.e.vshuffle(src, dst, mask)
    } else {
        let mask = std::array::from_fn(|i| (i as u32 + imm - 16).min(16) as u8);
        ctx.e.vshuffle(dst, z, mask)
    };
    let n = xmm_num(ctx, 0);
    ctx.set_xmm(n, r);
}

/// PSLLDQ/PSRLDQ: whole-register byte shifts (counts above 15 give zero).
fn byte_shift<E: Emitter>(ctx: &mut Ctx<E>) {
    let imm = i32::from(imm8(ctx));
    let left = ctx.insn().mnemonic() == M::Pslldq;
    let a = ctx.xmm(xmm_num(ctx, 0));
    let z = ctx.e.vconst(0);
    let mask = std::array::from_fn(|i| {
        let src = if left { i as i32 - imm } else { i as i32 + imm };
        if (0..16).contains(&src) {
            src as u8
        } else {
            16
        }
    });
    let r = ctx.e.vshuffle(a, z, mask);
    let n = xmm_num(ctx, 0);
    ctx.set_xmm(n, r);
}

/// PBLENDW/BLENDPS/BLENDPD: lane `i` from the source where immediate bit `i` is set.
fn blend<E: Emitter>(ctx: &mut Ctx<E>) {
    let imm = imm8(ctx);
    let bytes = match ctx.insn().mnemonic() {
        M::Pblendw => 2,
        M::Blendps => 4,
        _ => 8,
    };
    let a = ctx.xmm(xmm_num(ctx, 0));
    let b = read_v(ctx, 1);
    let lanes: Vec<u8> = (0..16 / bytes)
        .map(|i| if imm >> i & 1 != 0 { 16 / bytes + i } else { i })
        .collect();
    let r = ctx.e.vshuffle(a, b, lane_mask(bytes, &lanes));
    let n = xmm_num(ctx, 0);
    ctx.set_xmm(n, r);
}

fn lanes_of(m: M) -> Lanes {
    match m {
        M::Pinsrb | M::Pextrb => Lanes::I8,
        M::Pinsrw | M::Pextrw => Lanes::I16,
        M::Pinsrq | M::Pextrq => Lanes::I64,
        _ => Lanes::I32,
    }
}

fn insert<E: Emitter>(ctx: &mut Ctx<E>) {
    let lanes = lanes_of(ctx.insn().mnemonic());
    let idx = imm8(ctx) % lanes.count() as u8;
    let x = ctx.read_op(1);
    let d = ctx.xmm(xmm_num(ctx, 0));
    let r = ctx.e.vinsert(d, lanes, idx, x);
    let n = xmm_num(ctx, 0);
    ctx.set_xmm(n, r);
}

fn extract<E: Emitter>(ctx: &mut Ctx<E>) {
    let lanes = lanes_of(ctx.insn().mnemonic());
    let idx = imm8(ctx) % lanes.count() as u8;
    let v = ctx.xmm(xmm_num(ctx, 1));
    let x = ctx.e.vextract(v, lanes, idx);
    // A register destination is zero-extended to its (32- or 64-bit) width.
    let x = match gpr_op(ctx, 0) {
        Some(r) => ctx.to_ty(x, Ty::from_bytes(r.size()).unwrap_or(Ty::I64), false),
        None => x,
    };
    ctx.write_op(0, x);
}

/// INSERTPS: one single from the source lane (or memory) into the destination lane, then
/// the zero mask.
fn insertps<E: Emitter>(ctx: &mut Ctx<E>) {
    let imm = imm8(ctx);
    let x = if is_xmm(ctx, 1) {
        let s = ctx.xmm(xmm_num(ctx, 1));
        ctx.e.vextract(s, Lanes::I32, imm >> 6)
    } else {
        let a = ctx.op_addr();
        ctx.load(Ty::I32, a)
    };
    let d = ctx.xmm(xmm_num(ctx, 0));
    let t = ctx.e.vinsert(d, Lanes::I32, (imm >> 4) & 3, x);
    let z = ctx.e.vconst(0);
    let lanes: Vec<u8> = (0..4)
        .map(|i| if imm >> i & 1 != 0 { 4 } else { i })
        .collect();
    let r = ctx.e.vshuffle(t, z, lane_mask(4, &lanes));
    let n = xmm_num(ctx, 0);
    ctx.set_xmm(n, r);
}

fn movmsk<E: Emitter>(ctx: &mut Ctx<E>) {
    let lanes = match ctx.insn().mnemonic() {
        M::Movmskps => Lanes::I32,
        M::Movmskpd => Lanes::I64,
        _ => Lanes::I8,
    };
    let v = ctx.xmm(xmm_num(ctx, 1));
    let m = ctx.e.vmovmsk(v, lanes);
    let r = ctx.insn().op0_register();
    let m = ctx.to_ty(m, Ty::from_bytes(r.size()).unwrap_or(Ty::I64), false);
    ctx.set_reg(r, m);
}

fn dup<E: Emitter>(ctx: &mut Ctx<E>) {
    let v = read_v(ctx, 1);
    let mask = match ctx.insn().mnemonic() {
        M::Movddup => lane_mask(8, &[0, 0]),
        M::Movsldup => lane_mask(4, &[0, 0, 2, 2]),
        _ => lane_mask(4, &[1, 1, 3, 3]),
    };
    let r = ctx.e.vshuffle(v, v, mask);
    let n = xmm_num(ctx, 0);
    ctx.set_xmm(n, r);
}

/// PMOVSX/PMOVZX: widen the low lanes, through each intermediate width.
fn widen<E: Emitter>(ctx: &mut Ctx<E>) {
    let name = format!("{:?}", ctx.insn().mnemonic()).to_ascii_lowercase();
    let signed = name.starts_with("pmovsx");
    let (from, to) = match &name[6..] {
        "bw" => (8, 16),
        "bd" => (8, 32),
        "bq" => (8, 64),
        "wd" => (16, 32),
        "wq" => (16, 64),
        _ => (32, 64),
    };
    let op = if signed { VUn::WidenLoS } else { VUn::WidenLoU };
    let mut v = read_v(ctx, 1);
    let mut bits = from;
    while bits < to {
        let lanes = match bits {
            8 => Lanes::I8,
            16 => Lanes::I16,
            _ => Lanes::I32,
        };
        v = ctx.e.vun(op, lanes, v);
        bits *= 2;
    }
    let n = xmm_num(ctx, 0);
    ctx.set_xmm(n, v);
}
