//! Random floating-point input states ([`FxArea`], the 64-bit FXSAVE layout both sides
//! load) and the state images FLDENV, FRSTOR, FXRSTOR and LDMXCSR read from memory.
//!
//! A state has edge values in every XMM lane and x87 register, a random MXCSR (rounding,
//! DAZ, FTZ, sticky flags, sometimes unmasked exceptions), a random FCW (precision and
//! rounding control, sometimes unmasked exceptions), a random TOP and tag word (so stack
//! overflow and underflow happen), and sometimes a pending unmasked x87 exception.
//!
//! Invariants:
//! - MXCSR never has a bit outside [`mxcsr::VALID`] (FXRSTOR64 of the input would #GP in the
//!   native trampoline).
//! - FSW.ES and FSW.B are set exactly when an exception flag is set whose FCW mask is clear
//!   (as FNSTSW shows after a real exception). A host #MF with ES set and no such flag is
//!   "spurious" to Linux, which retries the instruction forever.

use iced_x86::MemorySize;
use translator::state::{mxcsr, FxArea};

use super::fpvalues::{f80_bits, packed, xmm_value, Lane};
use crate::diff::forms::Family;
use crate::diff::rng::Rng;

/// FSW bits.
const FSW_FLAGS: u16 = 0x3F;
const FSW_SF: u16 = 1 << 6;
const FSW_ES: u16 = 1 << 7;
const FSW_B: u16 = 1 << 15;
/// C0, C1, C2, C3.
const FSW_CC: u16 = 0x4700;

/// FCW bits a processor keeps: the masks, bit 6 (reads as 1), PC, RC and IC (bit 12).
const FCW_KEPT: u16 = 0x1F3F;
const FCW_ONE: u16 = 0x40;

/// A random FCW (with the reserved bits as the processor holds them).
fn fcw(r: &mut Rng) -> u16 {
    if r.chance(3) {
        return (r.next_u64() as u16 & FCW_KEPT) | FCW_ONE;
    }
    let masks = if r.chance(75) {
        0x3F
    } else {
        r.next_u64() as u16 & 0x3F
    };
    let pc = match r.below(20) {
        0..=9 => 3,
        10..=14 => 2,
        15..=18 => 0,
        _ => 1,
    };
    masks | 0x40 | pc << 8 | (r.below(4) as u16) << 10
}

/// A random FSW for `fcw` with the given TOP, consistent in ES/B (see the module invariants);
/// `pending` makes an unmasked exception pending when the FCW unmasks one.
fn fsw(r: &mut Rng, fcw: u16, top: u16, pending: bool) -> u16 {
    let mut flags = if r.chance(50) {
        0
    } else {
        (r.next_u64() & r.next_u64()) as u16 & FSW_FLAGS
    };
    let unmasked_bits = !fcw & FSW_FLAGS;
    if pending && unmasked_bits != 0 {
        let choices: Vec<u16> = (0..6).filter(|b| unmasked_bits & (1 << b) != 0).collect();
        flags |= 1 << r.pick(&choices);
    } else {
        flags &= !unmasked_bits;
    }
    let mut sw = flags | (r.next_u64() as u16 & FSW_CC) | (top & 7) << 11;
    if flags & 1 != 0 && r.chance(30) {
        sw |= FSW_SF;
    }
    if flags & unmasked_bits != 0 {
        sw |= FSW_ES | FSW_B;
    }
    sw
}

/// A random MXCSR (only valid bits).
pub fn random_mxcsr(r: &mut Rng) -> u32 {
    let masks = if r.chance(75) {
        mxcsr::MASKS
    } else {
        (r.next_u64() as u32) & mxcsr::MASKS
    };
    let flags = if r.chance(50) {
        0
    } else {
        (r.next_u64() & r.next_u64()) as u32 & mxcsr::FLAGS
    };
    let daz = if r.chance(25) { mxcsr::DAZ } else { 0 };
    let ftz = if r.chance(25) { mxcsr::FTZ } else { 0 };
    masks | flags | daz | ftz | (r.below(4) as u32) << 13
}

/// The abridged tag byte: all empty, all full, or a random mix.
fn tags(r: &mut Rng) -> u8 {
    match r.below(20) {
        0 | 1 => 0,
        2..=4 => 0xFF,
        _ => {
            let mut t = 0u8;
            for i in 0..8 {
                if r.chance(75) {
                    t |= 1 << i;
                }
            }
            t
        }
    }
}

/// An MMX-style register: 64 random packed bits, the exponent usually all ones (as an MMX
/// write leaves it).
fn mmx_reg(r: &mut Rng) -> [u8; 10] {
    let lane = match r.below(4) {
        0 => Lane::Int(1),
        1 => Lane::Int(2),
        2 => Lane::Int(4),
        _ => Lane::Int(8),
    };
    let low = packed(r, lane, 8);
    let mut b = [0u8; 10];
    b[..8].copy_from_slice(&low);
    let se: u16 = if r.chance(70) {
        0xFFFF
    } else {
        r.next_u64() as u16
    };
    b[8..].copy_from_slice(&se.to_le_bytes());
    b
}

/// A random x87 register for `family`.
fn x87_reg(r: &mut Rng, family: Family) -> [u8; 10] {
    if family == Family::Mmx && r.chance(80) {
        mmx_reg(r)
    } else {
        f80_bits(r)
    }
}

/// The x87 part of a random state: FCW, FSW, FTW, FOP, FIP, FDP and ST0..7.
fn random_x87(r: &mut Rng, fx: &mut FxArea, family: Family) {
    fx.fcw = fcw(r);
    let top = if family == Family::Mmx && r.chance(50) {
        0
    } else {
        r.below(8) as u16
    };
    let pending_percent = if family == Family::X87 || family == Family::Mmx {
        12
    } else {
        5
    };
    let pending = r.chance(pending_percent);
    fx.fsw = fsw(r, fx.fcw, top, pending);
    fx.ftw = if family == Family::Mmx && r.chance(40) {
        0xFF
    } else {
        tags(r)
    };
    fx.fop = r.next_u64() as u16 & 0x7FF;
    fx.fip = pointer(r);
    fx.fdp = pointer(r);
    for st in fx.st.iter_mut() {
        *st = [0; 16];
        st[..10].copy_from_slice(&x87_reg(r, family));
    }
}

/// A previous instruction or data pointer: zero, a small address, or random canonical bits
/// (FXRSTOR64 keeps 48 bits of each, sign-extended).
fn pointer(r: &mut Rng) -> u64 {
    match r.below(4) {
        0 => 0,
        1 => 0x20_0000 + r.below(0x2000),
        2 => r.next_u64() & 0xFFFF_FFFF,
        _ => ((r.next_u64() << 16) as i64 >> 16) as u64,
    }
}

/// A random FP input state for a case of `family`.
pub fn random_state(r: &mut Rng, family: Family) -> FxArea {
    let mut fx = FxArea::default();
    random_x87(r, &mut fx, family);
    fx.mxcsr = random_mxcsr(r);
    for x in fx.xmm.iter_mut() {
        *x = xmm_value(r);
    }
    fx
}

/// The 512-byte FXSAVE image of `fx` (the layout of [`FxArea`]).
pub fn fx_image(fx: &FxArea) -> Vec<u8> {
    let mut b = vec![0u8; 512];
    b[0..2].copy_from_slice(&fx.fcw.to_le_bytes());
    b[2..4].copy_from_slice(&fx.fsw.to_le_bytes());
    b[4] = fx.ftw;
    b[5] = fx._rsvd1;
    b[6..8].copy_from_slice(&fx.fop.to_le_bytes());
    b[8..16].copy_from_slice(&fx.fip.to_le_bytes());
    b[16..24].copy_from_slice(&fx.fdp.to_le_bytes());
    b[24..28].copy_from_slice(&fx.mxcsr.to_le_bytes());
    b[28..32].copy_from_slice(&fx.mxcsr_mask.to_le_bytes());
    for (i, st) in fx.st.iter().enumerate() {
        b[32 + 16 * i..48 + 16 * i].copy_from_slice(st);
    }
    for (i, x) in fx.xmm.iter().enumerate() {
        b[160 + 16 * i..176 + 16 * i].copy_from_slice(&x.to_le_bytes());
    }
    b[416..].copy_from_slice(&fx._rsvd);
    b
}

/// The [`FxArea`] of a 512-byte FXSAVE image (64-bit layout).
pub fn fx_from_image(b: &[u8; 512]) -> FxArea {
    let w = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let d = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let q = |o: usize| u64::from(d(o)) | u64::from(d(o + 4)) << 32;
    let mut fx = FxArea {
        fcw: w(0),
        fsw: w(2),
        ftw: b[4],
        _rsvd1: b[5],
        fop: w(6),
        fip: q(8),
        fdp: q(16),
        mxcsr: d(24),
        mxcsr_mask: d(28),
        ..FxArea::default()
    };
    for (i, st) in fx.st.iter_mut().enumerate() {
        st.copy_from_slice(&b[32 + 16 * i..48 + 16 * i]);
    }
    for (i, x) in fx.xmm.iter_mut().enumerate() {
        *x = u128::from(q(160 + 16 * i)) | u128::from(q(168 + 16 * i)) << 64;
    }
    fx._rsvd.copy_from_slice(&b[416..]);
    fx
}

/// The full (2-bit) tag of an x87 register's contents, as FNSTENV computes it: 0 valid,
/// 1 zero, 2 special (NaN, infinity, denormal, unsupported).
fn full_tag(v: &[u8]) -> u16 {
    let mant = u64::from_le_bytes(v[..8].try_into().unwrap_or([0; 8]));
    let exp = u16::from_le_bytes([v[8], v[9]]) & 0x7FFF;
    match exp {
        0 if mant == 0 => 1,
        0 | 0x7FFF => 2,
        _ if mant >> 63 == 0 => 2,
        _ => 0,
    }
}

/// The memory operand of FLDENV, FRSTOR, FXRSTOR or LDMXCSR (`size` bytes): an image of a
/// random state in the instruction's format, usually valid; sometimes with random padding,
/// random full tags or (FXRSTOR, LDMXCSR) reserved MXCSR bits, which must #GP.
pub fn state_image(r: &mut Rng, size: MemorySize, family: Family) -> Vec<u8> {
    let fx = random_state(r, family);
    let mut b = match size {
        MemorySize::UInt32 => fx.mxcsr.to_le_bytes().to_vec(),
        MemorySize::Fxsave_512Byte | MemorySize::Fxsave64_512Byte => {
            let mut b = fx_image(&fx);
            if r.chance(50) {
                r.fill(&mut b[464..]);
            }
            if r.chance(5) {
                b[5] = r.next_u64() as u8;
            }
            if r.chance(5) {
                // Reserved FCW bits, a non-canonical FIP or FDP: what does a load keep?
                let o = r.pick(&[0usize, 1, 15, 23]);
                b[o] ^= 1 << r.below(8);
            }
            b
        }
        _ => env_image(r, &fx, size),
    };
    if matches!(
        size,
        MemorySize::UInt32 | MemorySize::Fxsave_512Byte | MemorySize::Fxsave64_512Byte
    ) && r.chance(6)
    {
        // A reserved MXCSR bit: #GP(0).
        let off = if size == MemorySize::UInt32 { 0 } else { 24 };
        b[off + 2] |= 1 << r.below(8);
    }
    b
}

/// A protected-mode FNSTENV/FNSAVE image (14/28 bytes, plus the registers for 94/108).
fn env_image(r: &mut Rng, fx: &FxArea, size: MemorySize) -> Vec<u8> {
    let wide = matches!(size, MemorySize::FpuEnv28 | MemorySize::FpuState108);
    let top = (fx.fsw >> 11) & 7;
    let mut tw = 0u16;
    for phys in 0..8u16 {
        let st = ((phys + 8 - top) & 7) as usize;
        let t = if fx.ftw & (1 << phys) == 0 {
            3
        } else if r.chance(10) {
            r.below(3) as u16
        } else {
            full_tag(&fx.st[st])
        };
        tw |= t << (2 * phys);
    }
    let mut b = Vec::new();
    let pad = |r: &mut Rng| -> [u8; 2] {
        if r.chance(80) {
            [0xFF, 0xFF]
        } else {
            (r.next_u64() as u16).to_le_bytes()
        }
    };
    let sel = |r: &mut Rng| -> u16 {
        if r.chance(50) {
            0
        } else {
            r.next_u64() as u16
        }
    };
    if wide {
        for v in [fx.fcw, fx.fsw, tw] {
            b.extend_from_slice(&v.to_le_bytes());
            b.extend_from_slice(&pad(r));
        }
        b.extend_from_slice(&(fx.fip as u32).to_le_bytes());
        b.extend_from_slice(&sel(r).to_le_bytes());
        b.extend_from_slice(&fx.fop.to_le_bytes());
        b.extend_from_slice(&(fx.fdp as u32).to_le_bytes());
        b.extend_from_slice(&sel(r).to_le_bytes());
        b.extend_from_slice(&pad(r));
    } else {
        for v in [
            fx.fcw,
            fx.fsw,
            tw,
            fx.fip as u16,
            sel(r),
            fx.fdp as u16,
            sel(r),
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
    }
    if matches!(size, MemorySize::FpuState94 | MemorySize::FpuState108) {
        for st in &fx.st {
            b.extend_from_slice(&st[..10]);
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_consistent() {
        let mut r = Rng::new(9);
        let mut pending = 0;
        for i in 0..4000 {
            let fam = Family::FP[i % Family::FP.len()];
            let fx = random_state(&mut r, fam);
            assert_eq!(fx.mxcsr & !mxcsr::VALID, 0);
            let unmasked = fx.fsw & !fx.fcw & FSW_FLAGS;
            assert_eq!(
                fx.fsw & FSW_ES != 0,
                unmasked != 0,
                "{:04x} {:04x}",
                fx.fcw,
                fx.fsw
            );
            assert_eq!(fx.fsw & FSW_B != 0, fx.fsw & FSW_ES != 0);
            pending += usize::from(unmasked != 0);
            let back = fx_from_image(fx_image(&fx).as_slice().try_into().unwrap());
            assert_eq!(back, fx);
        }
        assert!(pending > 40, "{pending}");
    }

    #[test]
    fn image_sizes() {
        let mut r = Rng::new(1);
        for (size, n) in [
            (MemorySize::FpuEnv14, 14),
            (MemorySize::FpuEnv28, 28),
            (MemorySize::FpuState94, 94),
            (MemorySize::FpuState108, 108),
            (MemorySize::Fxsave64_512Byte, 512),
            (MemorySize::UInt32, 4),
        ] {
            assert_eq!(state_image(&mut r, size, Family::FpState).len(), n);
        }
    }
}
