//! Input values that give an instruction a meaningful execution: DIV/IDIV operands that
//! mostly do not fault, shift counts at the width boundaries, bounded bit offsets, CMPXCHG
//! comparands that often match, loop counts, landing-pad addresses for indirect branches and
//! returns, frame pointers for ENTER/LEAVE, and whole string-instruction setups.
//!
//! Invariant: everything here draws from the value generator `Gen::v`, except the string
//! instruction's encoding choices (address size, REP prefix), which draw from `Gen::s`.

use iced_x86::{Instruction, Mnemonic as M, OpCodeOperandKind as K, Register, RepPrefixKind};

use super::{gpr_index, operand_bits, Gen, Op, RAX, RBP, RCX, RDI, RDX, RSI, RSP};
use crate::diff::forms::Special;
use crate::diff::layout::{HOT_BASE, HOT_SIZE};
use crate::diff::rng::width_mask;
use translator::state::rflags;

impl Gen<'_> {
    /// A string instruction with its REP prefix, count, pointers and memory contents.
    pub(super) fn build_string(&mut self, k: u64, rflags: u64) -> Option<Instruction> {
        let m = self.form.mnemonic();
        let addr32 = self.s.chance(20);
        let compares = matches!(
            m,
            M::Cmpsb | M::Cmpsw | M::Cmpsd | M::Cmpsq | M::Scasb | M::Scasw | M::Scasd | M::Scasq
        );
        let rep = match self.s.below(10) {
            0..=2 => RepPrefixKind::None,
            3..=5 if compares => RepPrefixKind::Repe,
            _ if compares => RepPrefixKind::Repne,
            9 => RepPrefixKind::Repne,
            _ => RepPrefixKind::Repe, // F3: REP for MOVS/STOS/LODS
        };
        let n = if rep == RepPrefixKind::None {
            1
        } else {
            let n = match self.v.below(8) {
                0 => 0,
                1 => 1,
                2 => 2,
                3 => 3,
                _ => self.v.below(17),
            };
            let upper = if addr32 {
                self.v.next_u64() & !0xFFFF_FFFF
            } else {
                0
            };
            self.regs[RCX] = upper | n;
            n
        };
        let down = rflags & rflags::DF != 0;
        let span = n.max(1) * k + 16;
        let place = |g: &mut Self| {
            let room = HOT_SIZE - span - 16;
            let a = if down {
                HOT_BASE + span + g.v.below(room)
            } else {
                HOT_BASE + 8 + g.v.below(room)
            };
            if g.v.chance(50) {
                a & !(k - 1)
            } else {
                a
            }
        };
        let src = place(self);
        let dst = if self.v.chance(20) {
            (src as i64 + self.v.range(-16, 16)) as u64
        } else {
            place(self)
        };
        let dst = dst.clamp(HOT_BASE + span, HOT_BASE + HOT_SIZE - span);
        for (reg, addr) in [(RSI, src), (RDI, dst)] {
            let upper = if addr32 && self.v.chance(50) {
                self.v.next_u64() & !0xFFFF_FFFF
            } else {
                0
            };
            self.regs[reg] = upper | addr;
        }

        // Memory: random source elements; for compares, destination elements that often equal
        // the source (CMPS) or rAX (SCAS), so REPE/REPNE stop at interesting places.
        let elems = n.max(1);
        let step = |a: u64, i: u64| if down { a - i * k } else { a + i * k };
        let mut src_vals = Vec::new();
        for i in 0..elems {
            let v = self.v.edge(k as u32 * 8);
            src_vals.push(v);
            if matches!(m, M::Cmpsb | M::Cmpsw | M::Cmpsd | M::Cmpsq) {
                self.patch(step(src, i), v, k);
            }
        }
        if compares {
            let rax = self.regs[RAX] & width_mask(k as u32 * 8);
            for (i, &sv) in src_vals.iter().enumerate() {
                let same = if matches!(m, M::Cmpsb | M::Cmpsw | M::Cmpsd | M::Cmpsq) {
                    sv
                } else {
                    rax
                };
                let v = if self.v.chance(70) {
                    same
                } else {
                    self.v.edge(k as u32 * 8)
                };
                self.patch(step(dst, i as u64), v, k);
            }
        }

        let a = if addr32 { 32 } else { 64 };
        let seg = Register::None;
        let r = match m {
            M::Movsb => Instruction::with_movsb(a, seg, rep),
            M::Movsw => Instruction::with_movsw(a, seg, rep),
            M::Movsd => Instruction::with_movsd(a, seg, rep),
            M::Movsq => Instruction::with_movsq(a, seg, rep),
            M::Stosb => Instruction::with_stosb(a, rep),
            M::Stosw => Instruction::with_stosw(a, rep),
            M::Stosd => Instruction::with_stosd(a, rep),
            M::Stosq => Instruction::with_stosq(a, rep),
            M::Lodsb => Instruction::with_lodsb(a, seg, rep),
            M::Lodsw => Instruction::with_lodsw(a, seg, rep),
            M::Lodsd => Instruction::with_lodsd(a, seg, rep),
            M::Lodsq => Instruction::with_lodsq(a, seg, rep),
            M::Cmpsb => Instruction::with_cmpsb(a, seg, rep),
            M::Cmpsw => Instruction::with_cmpsw(a, seg, rep),
            M::Cmpsd => Instruction::with_cmpsd(a, seg, rep),
            M::Cmpsq => Instruction::with_cmpsq(a, seg, rep),
            M::Scasb => Instruction::with_scasb(a, rep),
            M::Scasw => Instruction::with_scasw(a, rep),
            M::Scasd => Instruction::with_scasd(a, rep),
            M::Scasq => Instruction::with_scasq(a, rep),
            _ => return None,
        };
        r.ok()
    }

    /// Register and memory values that give the instruction a meaningful (and non-faulting,
    /// mostly) execution: see [`Special`].
    pub(super) fn semantic_constraints(&mut self, ops: &[Op], target: Option<u64>) {
        let bits = operand_bits(self.form.code);
        match self.form.special {
            Special::Div => self.div_values(ops, bits),
            Special::Shift if self.form.code.op_code().op_kinds().contains(&K::cl) => {
                let c = self.v.shift_count(bits) as u64;
                self.regs[RCX] = (self.regs[RCX] & !0xFF) | c;
            }
            Special::BitTestReg => {
                let (Some(&dst), Some(&Op::Reg(off))) = (ops.first(), ops.get(1)) else {
                    return;
                };
                if matches!(dst, Op::Mem(_)) {
                    let w = bits as i64;
                    let o: i64 = match self.v.below(8) {
                        0 => 0,
                        1 => w - 1,
                        2 => w,
                        3 => -1,
                        4 => -w,
                        5 => self.v.range(-64, 64),
                        _ if bits == 16 => self.v.edge(16) as i16 as i64,
                        _ => self.v.range(-0x7FFF, 0x7FFF),
                    };
                    self.set_reg_part(off, o as u64);
                }
            }
            Special::Cmpxchg if self.v.chance(50) => {
                let dst = match ops.first() {
                    Some(Op::Reg(r)) => self.reg_part(*r),
                    _ => self.target.map_or(0, |t| t.value),
                };
                let m = width_mask(bits);
                self.regs[RAX] = (self.regs[RAX] & !m) | (dst & m);
            }
            Special::CountBranch { ecx } => {
                let n = match self.v.below(8) {
                    0 | 1 => 0,
                    2 => 1,
                    3 => 2,
                    4 => 1 << 32,
                    5 => self.v.edge(64),
                    _ => self.v.below(10),
                };
                self.regs[RCX] = if ecx {
                    (self.v.next_u64() & !0xFFFF_FFFF) | (n & 0xFFFF_FFFF)
                } else {
                    n
                };
            }
            Special::IndirectBranch => {
                let t = target.unwrap_or(0);
                match ops.first() {
                    Some(Op::Reg(r)) => self.regs[gpr_index(*r)] = t,
                    _ => {
                        if let Some(mt) = self.target {
                            self.patch(mt.addr, t, 8);
                        }
                    }
                }
            }
            Special::Ret => {
                let rsp = self.regs[RSP];
                self.patch(rsp, target.unwrap_or(0), 8);
            }
            Special::Enter | Special::Leave => self.regs[RBP] = self.stack_addr(),
            Special::StrLen => self.strlen_values(),
            Special::Cmpxchg8b => self.cmpxchg8b_values(),
            _ => {}
        }
    }

    /// DIV/IDIV operands: usually a dividend and nonzero divisor whose quotient fits (built
    /// as quotient * divisor + remainder); 8% of the time raw edge values that may raise #DE.
    fn div_values(&mut self, ops: &[Op], w: u32) {
        let signed = self.form.mnemonic() == M::Idiv;
        let mask = width_mask(w);
        let (d, dividend): (u64, u128) = if self.v.chance(8) {
            let d = self.v.edge(w);
            let hi = self.v.edge(w) as u128;
            (d, (hi << w) | self.v.edge(w) as u128)
        } else if signed {
            let sx = |v: u64| ((v << (64 - w)) as i64 >> (64 - w)) as i128;
            let mut d = sx(self.v.edge(w));
            if d == 0 {
                d = 1;
            }
            let q = sx(self.v.edge(w));
            let mut r = self.v.below(d.unsigned_abs() as u64) as i128;
            let neg = if q * d != 0 {
                (q * d) < 0
            } else {
                self.v.chance(50)
            };
            if neg {
                r = -r;
            }
            let dividend = q * d + r;
            let dmask = u128::MAX >> (128 - 2 * w);
            (d as u64 & mask, dividend as u128 & dmask)
        } else {
            let d = self.v.edge(w).max(1);
            let q = self.v.edge(w) as u128;
            let r = match self.v.below(3) {
                0 => 0,
                1 => d - 1,
                _ => self.v.below(d),
            } as u128;
            (d, q * d as u128 + r)
        };
        let lo = (dividend as u64) & mask;
        let hi = ((dividend >> w) as u64) & mask;
        if w == 8 {
            self.regs[RAX] = (self.regs[RAX] & !0xFFFF) | (hi << 8) | lo;
        } else {
            self.regs[RAX] = (self.regs[RAX] & !mask) | lo;
            self.regs[RDX] = (self.regs[RDX] & !mask) | hi;
        }
        match ops.first() {
            Some(Op::Reg(r)) if gpr_index(*r) != RAX && gpr_index(*r) != RDX => {
                self.set_reg_part(*r, d)
            }
            Some(Op::Mem(_)) => {
                if let Some(mt) = self.target {
                    self.patch(mt.addr, d, mt.size);
                }
            }
            _ => {}
        }
    }
}
