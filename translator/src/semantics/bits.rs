//! BT BTS BTR BTC, BSF BSR, POPCNT LZCNT TZCNT, BSWAP.
//!
//! Invariants:
//! - BT* with a memory operand and a register bit offset address the operand-sized unit at
//!   `ea + (signed offset >> log2(width)) * width/8`, computed in the address size; an
//!   immediate offset (and any register destination) takes the offset modulo the width.
//!   The unit is loaded before anything is stored, and BT never stores.
//! - BSF/BSR with a zero source leave the destination register entirely unchanged (the
//!   32-bit form does not zero-extend), as AMD documents and Intel does.
//!
//! Flags, as measured on the host (see the tests), undefined ones included; the same on AMD
//! (an EPYC, Zen 5) and Intel (a Xeon, family 6 model 0xCF) except where marked:
//! - BT BTS BTR BTC: CF = the bit; OF SF ZF AF PF unchanged.
//! - BSF BSR: ZF = (source == 0); PF = parity of the bit index, or 1 when the source is 0
//!   (whatever the unchanged destination holds); CF OF SF AF = 0.
//! - POPCNT: ZF = (source == 0); CF OF SF AF PF = 0.
//! - LZCNT TZCNT: CF = (source == 0), ZF = (result == 0); SF AF PF = 0; OF unchanged (AMD)
//!   or 0 (Intel), chosen at translation time ([`Ctx::vendor`]).
//! - BSWAP: no flags. The 16-bit form (undefined) writes 0 to the low 16 bits, as the host.
use iced_x86::{Mnemonic as M, OpKind};

use crate::ctx::Ctx;
use crate::emit::Emitter;
use crate::flags::{self, Vendor};
use crate::ir::{BinOp, Cmp, Ty, UnOp};
use crate::state::rflags;

/// BT BTS BTR BTC: copy the selected bit to CF, then (except BT) set, clear or flip it.
pub fn bit_test<E: Emitter>(ctx: &mut Ctx<E>) {
    let m = ctx.insn().mnemonic();
    let ty = ctx.op_ty(0);
    let bits = ty.bits() as u64;
    let raw = ctx.read_op(1);
    let off = ctx.to_ty(raw, ty, false);
    let idx_mask = ctx.c(ty, bits - 1);
    let bit = ctx.bin(BinOp::And, off, idx_mask);
    // Memory with a register offset: the offset also selects the unit (signed).
    let unit_addr = if ctx.op_is_mem(0) && ctx.insn().op_kind(1) == OpKind::Register {
        let off = ctx.to_ty(raw, Ty::I64, true);
        let sh = ctx.c(Ty::I64, bits.trailing_zeros() as u64);
        let unit = ctx.bin(BinOp::SShr, off, sh);
        let sh = ctx.c(Ty::I64, ty.bytes().trailing_zeros() as u64);
        let disp = ctx.bin(BinOp::Shl, unit, sh);
        Some(displaced_addr(ctx, disp))
    } else {
        None
    };
    let v = match unit_addr {
        Some(a) => ctx.load(ty, a),
        None => ctx.read_op(0),
    };
    let one = ctx.c(ty, 1);
    let cf = ctx.bin(BinOp::UShr, v, bit);
    let cf = ctx.bin(BinOp::And, cf, one);
    let cf = ctx.to_ty(cf, Ty::I64, false);
    let mask = ctx.bin(BinOp::Shl, one, bit);
    let new = match m {
        M::Bts => Some(ctx.bin(BinOp::Or, v, mask)),
        M::Btr => {
            let inv = ctx.un(UnOp::Not, mask);
            Some(ctx.bin(BinOp::And, v, inv))
        }
        M::Btc => Some(ctx.bin(BinOp::Xor, v, mask)),
        _ => None,
    };
    match (new, unit_addr) {
        (Some(n), Some(a)) => ctx.store(a, n),
        (Some(n), None) => ctx.write_op(0, n),
        (None, _) => {}
    }
    ctx.update_flags(rflags::CF, cf);
}

/// Linear address of the memory operand moved by `disp` bytes (an `I64`), wrapping in the
/// instruction's address size as the effective-address computation does.
fn displaced_addr<E: Emitter>(ctx: &mut Ctx<E>, disp: E::Value) -> E::Value {
    let seg = ctx.insn().memory_segment();
    let ea = ctx.op_ea();
    let ea = ctx.bin(BinOp::Add, ea, disp);
    let ea = ctx.wrap_ea(ea);
    ctx.seg_base_add(seg, ea)
}

/// BSF BSR: index of the lowest or highest set bit; destination unchanged for a zero source.
pub fn bit_scan<E: Emitter>(ctx: &mut Ctx<E>) {
    let dst = ctx.insn().op0_register();
    if ctx.insn().op_kind(0) != OpKind::Register || !dst.is_gpr() {
        return ctx.unsupported();
    }
    let ty = ctx.op_ty(0);
    let src = ctx.read_op(1);
    let zero = ctx.c(ty, 0);
    let is_zero = ctx.cmp(Cmp::Eq, src, zero);
    let idx = if ctx.insn().mnemonic() == M::Bsf {
        ctx.un(UnOp::Ctz, src)
    } else {
        // width-1-clz; for a zero source the value is discarded below.
        let lz = ctx.un(UnOp::Clz, src);
        let top = ctx.c(ty, ty.bits() as u64 - 1);
        ctx.bin(BinOp::Sub, top, lz)
    };
    let nonzero = ctx.cmp(Cmp::Ne, src, zero);
    ctx.set_reg_if(dst, nonzero, idx);
    let p = flags::parity(&mut ctx.e, idx);
    let p = ctx.bin(BinOp::Or, p, is_zero);
    let f0 = ctx.c(Ty::I8, 0);
    let bits = flags::pack(&mut ctx.e, [f0, p, f0, is_zero, f0, f0]);
    ctx.set_flags_bits(bits);
}

/// POPCNT LZCNT TZCNT.
pub fn count<E: Emitter>(ctx: &mut Ctx<E>) {
    let m = ctx.insn().mnemonic();
    let ty = ctx.op_ty(0);
    let src = ctx.read_op(1);
    let zero = ctx.c(ty, 0);
    let src_zero = ctx.cmp(Cmp::Eq, src, zero);
    let f0 = ctx.c(Ty::I8, 0);
    let op = match m {
        M::Popcnt => UnOp::Popcnt,
        M::Lzcnt => UnOp::Clz,
        M::Tzcnt => UnOp::Ctz,
        _ => return ctx.unsupported(),
    };
    let res = ctx.un(op, src);
    ctx.write_op(0, res);
    if m == M::Popcnt {
        let bits = flags::pack(&mut ctx.e, [f0, f0, f0, src_zero, f0, f0]);
        ctx.set_flags_bits(bits);
    } else {
        let res_zero = ctx.cmp(Cmp::Eq, res, zero);
        let bits = flags::pack(&mut ctx.e, [src_zero, f0, f0, res_zero, f0, f0]);
        let written = match ctx.vendor() {
            Vendor::Amd => rflags::CF | rflags::ZF | rflags::SF | rflags::AF | rflags::PF,
            Vendor::Intel => rflags::ARITH,
        };
        ctx.update_flags(written, bits);
    }
}

/// BSWAP r32/r64; the undefined 16-bit form clears the low word (as the host does).
pub fn bswap<E: Emitter>(ctx: &mut Ctx<E>) {
    let ty = ctx.op_ty(0);
    let v = ctx.read_op(0);
    let res = if ty == Ty::I16 {
        ctx.c(ty, 0)
    } else {
        ctx.un(UnOp::Bswap, v)
    };
    ctx.write_op(0, res);
}

#[cfg(test)]
mod tests {
    use crate::semantics::alu::probe::{fuzz, fuzz_with, native, run_interp, MEM};
    use crate::state::{reg, ExitReason};

    #[test]
    fn bt_register_forms_match_host() {
        fuzz(native!("bt eax, ecx"), 300, 201);
        fuzz(native!("bt rax, rcx"), 300, 202);
        fuzz(native!("bt si, dx"), 300, 203);
        fuzz(native!("bts r8d, r9d"), 300, 204);
        fuzz(native!("btr rbx, 63"), 300, 205);
        fuzz(native!("btc dx, 19"), 300, 206);
        fuzz(native!("btc r15, rax"), 300, 207);
        fuzz(native!("btr ecx, 45"), 300, 208);
    }

    /// Keep a register bit offset inside the memory window (±MEM/2 bytes around RDI).
    fn bound(
        r: usize,
    ) -> impl FnMut(&mut [u64; 16], &mut [u8], &mut crate::semantics::alu::probe::Rng) {
        move |g, _, rng| {
            let span = (MEM as i64 / 2 - 8) * 8;
            let off = (rng.next() % (2 * span as u64)) as i64 - span;
            // Keep the random upper bits for the 16/32-bit forms only where they are ignored.
            g[r] = off as u64;
        }
    }

    #[test]
    fn bt_memory_forms_match_host() {
        fuzz(native!("bt dword ptr [rdi], 5"), 300, 211);
        fuzz(native!("bts word ptr [rdi + 2], 17"), 300, 212);
        fuzz(native!("lock btr qword ptr [rdi - 8], 40"), 300, 213);
        fuzz_with(
            native!("bt dword ptr [rdi], ecx"),
            300,
            215,
            bound(reg::RCX),
        );
        fuzz_with(
            native!("bts qword ptr [rdi + 16], rdx"),
            300,
            216,
            bound(reg::RDX),
        );
        fuzz_with(
            native!("lock btr word ptr [rdi], si"),
            300,
            217,
            bound(reg::RSI),
        );
        fuzz_with(
            native!("btc qword ptr [rdi - 3], rax"),
            300,
            218,
            bound(reg::RAX),
        );
        fuzz_with(
            native!("lock btc dword ptr [rdi + 1], r10d"),
            300,
            219,
            bound(10),
        );
    }

    #[test]
    fn bt_memory_offset_is_signed_and_scaled() {
        // bt word ptr [rdi], cx with cx = -1: the word at rdi-2, bit 15.
        let mut mem = vec![0u8; MEM];
        mem[MEM / 2 - 1] = 0x80;
        let mut g = [0u64; 16];
        g[reg::RCX] = 0xFFFF;
        let (exit, out, _) = run_interp(&[0x66, 0x0F, 0xA3, 0x0F], g, 0, &mem);
        assert_eq!(exit, ExitReason::Jump);
        assert_eq!(out.flags & 1, 1);
    }

    #[test]
    fn bit_scans_match_host() {
        fuzz(native!("bsf eax, ecx"), 300, 221);
        fuzz(native!("bsf rax, rcx"), 300, 222);
        fuzz(native!("bsf dx, word ptr [rdi]"), 300, 223);
        fuzz(native!("bsr r8d, r9d"), 300, 224);
        fuzz(native!("bsr rsi, qword ptr [rdi]"), 300, 225);
        fuzz(native!("bsr bx, si"), 300, 226);
    }

    #[test]
    fn counts_match_host() {
        fuzz(native!("popcnt eax, ecx"), 300, 231);
        fuzz(native!("popcnt r9w, word ptr [rdi]"), 300, 232);
        fuzz(native!("popcnt rdx, rbx"), 300, 233);
        fuzz(native!("lzcnt eax, ecx"), 300, 234);
        fuzz(native!("lzcnt si, bx"), 300, 235);
        fuzz(native!("lzcnt r12, qword ptr [rdi]"), 300, 236);
        fuzz(native!("tzcnt eax, dword ptr [rdi]"), 300, 237);
        fuzz(native!("tzcnt cx, dx"), 300, 238);
        fuzz(native!("tzcnt r11, r13"), 300, 239);
    }

    /// LZCNT/TZCNT's OF: cleared on Intel, kept on AMD (the host checks its own).
    #[test]
    fn count_overflow_flag_follows_the_vendor() {
        use crate::semantics::alu::probe::{flags_only as f, vendor_rule};
        use crate::state::rflags::{CF, OF, ZF};
        let set = [(reg::RCX, 0x10)];
        let lz = native!("lzcnt eax, ecx");
        vendor_rule("lzcnt32", lz, &set, OF, [f(0), f(OF)]);
        let tz = native!("tzcnt rax, rcx");
        vendor_rule("tzcnt64", tz, &[], OF | ZF, [f(CF), f(CF | OF)]);
    }

    #[test]
    fn bswap_matches_host_including_16_bit_form() {
        fuzz(native!("bswap eax"), 100, 241);
        fuzz(native!("bswap r10"), 100, 242);
        fuzz(native!("bswap r11d"), 100, 243);
        fuzz(native!(".byte 0x66, 0x0f, 0xc9"), 100, 244); // bswap cx
        fuzz(native!(".byte 0x66, 0x41, 0x0f, 0xcc"), 100, 245); // bswap r12w
    }
}
