//! Case generation for the floating-point and vector forms: their register operands (XMM,
//! MM, ST(i)), immediates, memory operand addresses (16-byte aligned most of the time where
//! the instruction requires it, misaligned sometimes, so #GP(0) is compared too) and
//! contents (edge values of the operand's type, state images), MASKMOVQ/MASKMOVDQU's
//! implicit rDI, PCMPESTRx's explicit lengths and CMPXCHG8B/16B's comparand.
//!
//! Invariant: encoding choices (registers, immediates, encoded addresses) draw from `Gen::s`,
//! register values from `Gen::v`, memory contents from `Gen::f`, as in the rest of `case`.

use iced_x86::{Instruction, MemorySize, Mnemonic as M, OpCodeOperandKind as K, Register};

use super::fpstate::state_image;
use super::fpvalues::{bcd, f80_bits, lane_of, packed};
use super::{Gen, RAX, RDI, RDX};
use crate::diff::forms::fp::needs_alignment;
use crate::diff::forms::Special;
use crate::diff::layout::{HOT_BASE, HOT_SIZE};

const XMM: [Register; 16] = [
    Register::XMM0,
    Register::XMM1,
    Register::XMM2,
    Register::XMM3,
    Register::XMM4,
    Register::XMM5,
    Register::XMM6,
    Register::XMM7,
    Register::XMM8,
    Register::XMM9,
    Register::XMM10,
    Register::XMM11,
    Register::XMM12,
    Register::XMM13,
    Register::XMM14,
    Register::XMM15,
];
const MM: [Register; 8] = [
    Register::MM0,
    Register::MM1,
    Register::MM2,
    Register::MM3,
    Register::MM4,
    Register::MM5,
    Register::MM6,
    Register::MM7,
];
const ST: [Register; 8] = [
    Register::ST0,
    Register::ST1,
    Register::ST2,
    Register::ST3,
    Register::ST4,
    Register::ST5,
    Register::ST6,
    Register::ST7,
];

impl Gen<'_> {
    /// Whether the memory operand is generated the floating-point way.
    pub(super) fn fp_memory_form(&self) -> bool {
        self.form.family.is_fp() || self.form.special == Special::Cmpxchg8b
    }

    /// A register of an XMM, MM or x87 operand kind.
    pub(super) fn vector_reg(&mut self, k: K) -> Register {
        match k {
            K::xmm_reg | K::xmm_rm | K::xmm_or_mem => self.s.pick(&XMM),
            K::mm_reg | K::mm_rm | K::mm_or_mem => self.s.pick(&MM),
            K::st0 => Register::ST0,
            _ => self.s.pick(&ST),
        }
    }

    /// An imm8 of a floating-point or vector form: shift counts around the element width
    /// for the shifts by immediate, else any byte (every PCMPxSTRx mode, every ROUND,
    /// CMP, DPPS, INSERTPS... selector), biased a little toward small values and edges.
    pub(super) fn fp_imm8(&mut self) -> u64 {
        let m = self.form.mnemonic();
        let elem = match m {
            M::Psllw | M::Psrlw | M::Psraw => Some(16),
            M::Pslld | M::Psrld | M::Psrad => Some(32),
            M::Psllq | M::Psrlq => Some(64),
            M::Pslldq | M::Psrldq | M::Palignr => Some(16),
            _ => None,
        };
        if let Some(w) = elem {
            return u64::from(self.s.shift_count(w));
        }
        match self.s.below(10) {
            0..=5 => self.s.below(256),
            6 | 7 => self.s.below(16),
            _ => self.s.edge(8),
        }
    }

    /// The encoded and the register-reached target of a memory operand of `size` bytes:
    /// in the hot page (a large operand may run into the next data page), 16-byte aligned
    /// 90% of the time for forms that require it, else aligned to the operand size half the
    /// time, and now and then straddling the hot page's end.
    pub(super) fn fp_targets(&mut self, size: u64) -> (u64, u64) {
        let room = HOT_SIZE - size.clamp(32, HOT_SIZE / 2);
        let strict = needs_alignment(self.form.code);
        let natural = if size.is_power_of_two() {
            size.min(16)
        } else {
            16
        };
        let place = |r: &mut crate::diff::rng::Rng| {
            let mut t = HOT_BASE + r.below(room);
            if size > 1 && r.chance(3) {
                t = HOT_BASE + HOT_SIZE - 1 - r.below(size.min(64) - 1);
            }
            let aligned = if strict { r.chance(90) } else { r.chance(50) };
            if aligned {
                t &= !(natural - 1);
            }
            t
        };
        (place(self.s), place(self.v))
    }

    /// The contents of a floating-point memory operand of `size` bytes.
    pub(super) fn fp_memory(&mut self, size: u64) -> Vec<u8> {
        let ms = self.form.code.op_code().memory_size();
        let f = &mut *self.f;
        if self.form.special == Special::FpImage {
            return state_image(f, ms, self.form.family);
        }
        match ms {
            MemorySize::Float80 => f80_bits(f).to_vec(),
            MemorySize::Bcd => bcd(f).to_vec(),
            _ => match lane_of(ms) {
                Some(lane) => packed(f, lane, size as usize),
                None => {
                    let mut b = vec![0u8; size as usize];
                    f.fill(&mut b);
                    b
                }
            },
        }
    }

    /// MASKMOVQ/MASKMOVDQU with random registers and rDI (or EDI, with garbage above it)
    /// pointing into the hot page.
    pub(super) fn build_maskmove(&mut self) -> Option<Instruction> {
        let xmm = self.form.mnemonic() == M::Maskmovdqu;
        let addr32 = self.s.chance(15);
        let (a, b) = if xmm {
            (self.s.pick(&XMM), self.s.pick(&XMM))
        } else {
            (self.s.pick(&MM), self.s.pick(&MM))
        };
        let mut di = HOT_BASE + self.v.below(HOT_SIZE - 16);
        if self.v.chance(3) {
            di = HOT_BASE + HOT_SIZE - 1 - self.v.below(15);
        }
        if addr32 && self.v.chance(50) {
            di |= self.v.next_u64() & !0xFFFF_FFFF;
        }
        self.regs[RDI] = di;
        self.reserved |= 1 << RDI;
        let asz = if addr32 { 32 } else { 64 };
        if xmm {
            Instruction::with_maskmovdqu(asz, a, b, Register::None).ok()
        } else {
            Instruction::with_maskmovq(asz, a, b, Register::None).ok()
        }
    }

    /// PCMPESTRI/PCMPESTRM: the explicit lengths in rAX and rDX, mostly near the vector's
    /// element count (they saturate at 16 bytes or 8 words, negative counts by magnitude).
    pub(super) fn strlen_values(&mut self) {
        let wide = matches!(self.form.mnemonic(), M::Pcmpestri64 | M::Pcmpestrm64);
        for r in [RAX, RDX] {
            let v = match self.v.below(10) {
                0..=5 => self.v.range(-20, 20) as u64,
                6 => self.v.range(-20, 20) as u64 ^ (1 << 63),
                _ => self.v.edge(64),
            };
            self.regs[r] = if wide {
                v
            } else {
                (self.v.next_u64() & !0xFFFF_FFFF) | (v & 0xFFFF_FFFF)
            };
        }
    }

    /// CMPXCHG8B/CMPXCHG16B: half the time rDX:rAX equals the memory operand (the exchange
    /// happens), else it holds its random values.
    pub(super) fn cmpxchg8b_values(&mut self) {
        let Some(t) = self.target else {
            return;
        };
        if !self.v.chance(50) {
            return;
        }
        let Some((_, bytes)) = self.mem.iter().rev().find(|(a, _)| *a == t.addr) else {
            return;
        };
        let word = |o: usize| {
            let mut w = [0u8; 8];
            let end = (o + 8).min(bytes.len());
            if o < end {
                w[..end - o].copy_from_slice(&bytes[o..end]);
            }
            u64::from_le_bytes(w)
        };
        if self.form.mnemonic() == M::Cmpxchg16b {
            let (lo, hi) = (word(0), word(8));
            self.regs[RAX] = lo;
            self.regs[RDX] = hi;
        } else {
            let v = word(0);
            let keep = !0xFFFF_FFFFu64;
            self.regs[RAX] = (self.regs[RAX] & keep) | (v & 0xFFFF_FFFF);
            self.regs[RDX] = (self.regs[RDX] & keep) | (v >> 32);
        }
    }
}
