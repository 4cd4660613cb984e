//! Edge values for floating-point and vector operands: the encodings that break FP
//! semantics (signed zeros, infinities, quiet and signalling NaNs with random payloads,
//! denormals, the largest and smallest normals, values at the integer-conversion limits and
//! at rounding ties) and, for the x87's 80-bit format, the encodings no other format has
//! (pseudo-denormals, unnormals, pseudo-NaNs and pseudo-infinities, the indefinite), mixed
//! with ordinary values so arithmetic also meets rounding, overflow and underflow.
//!
//! Invariant: every function draws only from the generator it is given, so a case stays a
//! pure function of its seeds.

use iced_x86::MemorySize;

use crate::diff::rng::Rng;

/// An f32 bit pattern biased toward edge values.
pub fn f32_bits(r: &mut Rng) -> u32 {
    let sign = (r.below(2) as u32) << 31;
    let frac = |r: &mut Rng| r.next_u64() as u32 & 0x7F_FFFF;
    let mag = match r.below(20) {
        0 => 0,
        1 => 0x7F80_0000,
        2 => 0x7FC0_0000 | if r.chance(50) { frac(r) } else { 0 },
        3 => 0x7F80_0000 | (frac(r) & 0x3F_FFFF).max(1),
        4 => frac(r).max(1),
        5 => r.pick(&[1, 0x7F_FFFF, 0x40_0000, 0x80_0000, 0x7F7F_FFFF, 0x0080_0001]),
        6 => 0x3F80_0000,
        // 2^7, 2^8, 2^15, 2^16, 2^31, 2^32, 2^63, 2^64 and their neighbours.
        7 => {
            let e = r.pick(&[7u32, 8, 15, 16, 31, 32, 63, 64]);
            ((127 + e) << 23).wrapping_add(r.range(-1, 1) as u32)
        }
        // Ties and near-ties for rounding: 0.5, 1.5, 2.5, 3.5, ...
        8 => (r.below(8) as f32 + 0.5)
            .to_bits()
            .wrapping_add(r.range(-1, 1) as u32),
        9 => (r.below(20) as f32).to_bits(),
        10 | 11 => ((127 - 20 + r.below(40) as u32) << 23) | frac(r),
        12 => ((0xF0 + r.below(15) as u32) << 23) | frac(r),
        13 => ((1 + r.below(16) as u32) << 23) | frac(r),
        _ => r.next_u64() as u32 & 0x7FFF_FFFF,
    };
    sign | mag
}

/// An f64 bit pattern biased toward edge values.
pub fn f64_bits(r: &mut Rng) -> u64 {
    let sign = r.below(2) << 63;
    let frac = |r: &mut Rng| r.next_u64() & 0xF_FFFF_FFFF_FFFF;
    let mag = match r.below(20) {
        0 => 0,
        1 => 0x7FF0_0000_0000_0000,
        2 => 0x7FF8_0000_0000_0000 | if r.chance(50) { frac(r) } else { 0 },
        3 => 0x7FF0_0000_0000_0000 | (frac(r) & 0x7_FFFF_FFFF_FFFF).max(1),
        4 => frac(r).max(1),
        5 => r.pick(&[
            1,
            0xF_FFFF_FFFF_FFFF,
            0x10_0000_0000_0000,
            0x7FEF_FFFF_FFFF_FFFF,
            0x10_0000_0000_0001,
        ]),
        6 => 0x3FF0_0000_0000_0000,
        // Integer-conversion limits: 2^15, 2^16, 2^31, 2^32, 2^63, 2^64, +-0.5 and +-1 around
        // them (2^31 - 0.5 converts, 2^31 does not; -2^63 converts, the next one does not).
        7 => {
            let e = r.pick(&[15i32, 16, 31, 32, 63, 64]);
            let base = 2f64.powi(e);
            let v = base + r.pick(&[-1.0, -0.5, 0.0, 0.5, 1.0]);
            v.to_bits().wrapping_add(r.range(-1, 1) as u64)
        }
        8 => (r.below(8) as f64 + 0.5)
            .to_bits()
            .wrapping_add(r.range(-1, 1) as u64),
        9 => (r.below(20) as f64).to_bits(),
        10 | 11 => ((1023 - 30 + r.below(60)) << 52) | frac(r),
        12 => ((0x7F0 + r.below(15)) << 52) | frac(r),
        13 => ((1 + r.below(16)) << 52) | frac(r),
        // An f32 value widened: exact in both formats.
        14 => f64::from(f32::from_bits(f32_bits(r) & 0x7FFF_FFFF)).to_bits(),
        _ => r.next_u64() & 0x7FFF_FFFF_FFFF_FFFF,
    };
    sign | mag
}

/// An 80-bit extended-precision value (sign, 15-bit exponent, explicit integer bit J and
/// 63-bit fraction) as its 10 little-endian bytes.
pub fn f80(sign: bool, exp: u16, mant: u64) -> [u8; 10] {
    let mut b = [0u8; 10];
    b[..8].copy_from_slice(&mant.to_le_bytes());
    let se = (exp & 0x7FFF) | if sign { 0x8000 } else { 0 };
    b[8..].copy_from_slice(&se.to_le_bytes());
    b
}

const J: u64 = 1 << 63;

/// The 80-bit form of an f64 (exact).
fn f80_of_f64(bits: u64) -> [u8; 10] {
    let sign = bits >> 63 != 0;
    let e = ((bits >> 52) & 0x7FF) as u16;
    let f = bits & 0xF_FFFF_FFFF_FFFF;
    match e {
        0 if f == 0 => f80(sign, 0, 0),
        0 => {
            // Denormal: normalize.
            let shift = f.leading_zeros() - 11;
            f80(sign, 0x3C01 - shift as u16, (f << 11) << shift)
        }
        0x7FF => f80(sign, 0x7FFF, J | (f << 11)),
        _ => f80(sign, e - 1023 + 0x3FFF, J | (f << 11)),
    }
}

/// An 80-bit value biased toward edge values, including the encodings only this format
/// has.
pub fn f80_bits(r: &mut Rng) -> [u8; 10] {
    let sign = r.chance(50);
    let frac = |r: &mut Rng| r.next_u64() & (J - 1);
    match r.below(26) {
        0 => f80(sign, 0, 0),
        1 => f80(sign, 0x7FFF, J),
        2 => f80(
            sign,
            0x7FFF,
            J | 1 << 62 | if r.chance(50) { frac(r) } else { 0 },
        ),
        3 => f80(sign, 0x7FFF, J | (frac(r) & !(1 << 62)).max(1)),
        // Denormal and pseudo-denormal (J set with the minimum exponent).
        4 => f80(sign, 0, frac(r).max(1)),
        5 => f80(sign, 0, J | frac(r)),
        // Unnormal: J clear with a nonzero exponent.
        6 => f80(sign, 1 + r.below(0x7FFE) as u16, frac(r)),
        // Pseudo-infinity and pseudo-NaN: maximum exponent, J clear.
        7 => f80(sign, 0x7FFF, if r.chance(50) { 0 } else { frac(r).max(1) }),
        // The real indefinite (also what an invalid integer store reads back as).
        8 => f80(true, 0x7FFF, J | 1 << 62),
        9 => r.pick(&[
            f80(sign, 1, J),
            f80(sign, 0x7FFE, u64::MAX),
            f80(sign, 0, 1),
            f80(sign, 0x3FFF, J),
        ]),
        // Integer limits of FIST/FISTTP/FBSTP: 2^15, 2^31, 2^63, 10^18 and neighbours.
        10 => {
            let e = r.pick(&[15u16, 16, 31, 32, 59, 63, 64]);
            let m = J.wrapping_add(r.range(-1, 1) as u64);
            let m = if m < J { u64::MAX } else { m };
            f80(sign, 0x3FFF + e - u16::from(m == u64::MAX), m)
        }
        11 => f80(sign, 0x403A, 0xDE0B_6B3A_7640_0000 - r.below(2)), // 10^18 (-1)
        // Ties: 0.5, 1.5, 2.5, 3.5 and a little off them.
        12 => {
            let half = r.below(8) as f64 + 0.5;
            let mut v = f80_of_f64(half.to_bits());
            v[0] = v[0].wrapping_add(r.range(-1, 1) as u8);
            v[9] |= (sign as u8) << 7;
            v
        }
        13 => f80_of_f64((r.below(20) as f64).to_bits() | (sign as u64) << 63),
        // Ordinary values: close exponents (so sums and differences round), large, tiny.
        14..=16 => f80(sign, 0x3FFF - 40 + r.below(80) as u16, J | frac(r)),
        17 => f80(sign, 0x7FF0 + r.below(15) as u16, J | frac(r)),
        18 => f80(sign, 1 + r.below(64) as u16, J | frac(r)),
        // Arguments of the transcendentals: near multiples of pi/4, and beyond 2^63.
        19 => {
            let k = r.below(16) as f64 * std::f64::consts::FRAC_PI_4;
            let mut v = f80_of_f64(k.to_bits() | (sign as u64) << 63);
            v[0] ^= r.below(4) as u8;
            v
        }
        20 => f80(sign, 0x403E + r.below(4) as u16, J | frac(r)),
        // Exact f64 and f32 values (FST m64/m32 of them are exact).
        21 | 22 => f80_of_f64(f64_bits(r)),
        23 => f80_of_f64(f64::from(f32::from_bits(f32_bits(r))).to_bits()),
        _ => {
            let mut b = [0u8; 10];
            r.fill(&mut b);
            b
        }
    }
}

/// A packed-BCD operand of FBLD: 18 digits and a sign byte, usually valid.
pub fn bcd(r: &mut Rng) -> [u8; 10] {
    let mut b = [0u8; 10];
    let digits = match r.below(4) {
        0 => 18,
        1 => r.below(4) as usize,
        _ => r.below(19) as usize,
    };
    for i in 0..digits {
        let d = r.below(10) as u8;
        b[i / 2] |= d << (4 * (i % 2));
    }
    if r.chance(10) {
        // An invalid digit (A..F).
        let i = r.below(18) as usize;
        b[i / 2] |= (10 + r.below(6) as u8) << (4 * (i % 2));
    }
    b[9] = match r.below(8) {
        0 => r.next_u64() as u8,
        1..=3 => 0x80,
        _ => 0,
    };
    b
}

/// Lane types of packed data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    F32,
    F64,
    /// Integers of this many bytes (1, 2, 4, 8, 16).
    Int(u32),
}

/// `bytes` bytes of packed `lane` values.
pub fn packed(r: &mut Rng, lane: Lane, bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 16);
    while out.len() < bytes {
        match lane {
            Lane::F32 => out.extend_from_slice(&f32_bits(r).to_le_bytes()),
            Lane::F64 => out.extend_from_slice(&f64_bits(r).to_le_bytes()),
            Lane::Int(16) => {
                out.extend_from_slice(&r.edge(64).to_le_bytes());
                out.extend_from_slice(&r.edge(64).to_le_bytes());
            }
            Lane::Int(n) => out.extend_from_slice(&r.edge(n * 8).to_le_bytes()[..n as usize]),
        }
    }
    out.truncate(bytes);
    out
}

/// A random lane type for data whose type the instruction does not fix.
pub fn any_lane(r: &mut Rng) -> Lane {
    match r.below(10) {
        0..=2 => Lane::F32,
        3..=5 => Lane::F64,
        6 => Lane::Int(1),
        7 => Lane::Int(2),
        8 => Lane::Int(4),
        _ => Lane::Int(8),
    }
}

/// A 128-bit register value: packed lanes of a random type, or random bits.
pub fn xmm_value(r: &mut Rng) -> u128 {
    let b = if r.chance(10) {
        let mut b = vec![0u8; 16];
        r.fill(&mut b);
        b
    } else {
        let lane = any_lane(r);
        packed(r, lane, 16)
    };
    u128::from_le_bytes(b.try_into().unwrap_or([0; 16]))
}

/// The lane type of a memory operand of size `m` (`None`: not packed or scalar data).
pub fn lane_of(m: MemorySize) -> Option<Lane> {
    use MemorySize as S;
    Some(match m {
        S::Float32 | S::Packed64_Float32 | S::Packed128_Float32 => Lane::F32,
        S::Float64 | S::Packed128_Float64 => Lane::F64,
        S::UInt8 | S::Int8 => Lane::Int(1),
        S::Packed16_Int8 | S::Packed16_UInt8 | S::Packed32_Int8 | S::Packed32_UInt8 => Lane::Int(1),
        S::Packed64_Int8 | S::Packed64_UInt8 | S::Packed128_Int8 | S::Packed128_UInt8 => {
            Lane::Int(1)
        }
        S::UInt16 | S::Int16 | S::Packed32_Int16 | S::Packed32_UInt16 => Lane::Int(2),
        S::Packed64_Int16 | S::Packed64_UInt16 | S::Packed128_Int16 | S::Packed128_UInt16 => {
            Lane::Int(2)
        }
        S::UInt32 | S::Int32 | S::Packed64_Int32 | S::Packed64_UInt32 => Lane::Int(4),
        S::Packed128_Int32 | S::Packed128_UInt32 => Lane::Int(4),
        S::UInt64 | S::Int64 | S::Packed128_Int64 | S::Packed128_UInt64 => Lane::Int(8),
        S::UInt128 => Lane::Int(16),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(b: [u8; 10]) -> (bool, u16, u64) {
        let se = u16::from_le_bytes([b[8], b[9]]);
        (
            se >> 15 != 0,
            se & 0x7FFF,
            u64::from_le_bytes(b[..8].try_into().unwrap()),
        )
    }

    #[test]
    fn f80_conversion_is_exact() {
        assert_eq!(parts(f80_of_f64(1f64.to_bits())), (false, 0x3FFF, J));
        assert_eq!(
            parts(f80_of_f64((-2.5f64).to_bits())),
            (true, 0x4000, J | J >> 2)
        );
        // The smallest f64 denormal is 2^-1074.
        assert_eq!(parts(f80_of_f64(1)), (false, 0x3FFF - 1074, J));
        assert_eq!(
            parts(f80_of_f64(f64::INFINITY.to_bits())),
            (false, 0x7FFF, J)
        );
    }

    #[test]
    fn edge_values_cover_the_classes() {
        let mut r = Rng::new(3);
        let (mut pseudo_denormal, mut unnormal, mut pseudo_nan, mut snan) = (0, 0, 0, 0);
        for _ in 0..5000 {
            let (_, e, m) = parts(f80_bits(&mut r));
            match (e, m & J != 0) {
                (0, true) => pseudo_denormal += 1,
                (0x7FFF, false) => pseudo_nan += 1,
                (0x7FFF, true) if m & (1 << 62) == 0 && m << 1 != 0 => snan += 1,
                (1..=0x7FFE, false) => unnormal += 1,
                _ => {}
            }
        }
        assert!(pseudo_denormal > 50 && unnormal > 50 && pseudo_nan > 50 && snan > 50);
        let mut nans = 0;
        for _ in 0..1000 {
            if f32::from_bits(f32_bits(&mut r)).is_nan()
                && f64::from_bits(f64_bits(&mut r)).is_nan()
            {
                nans += 1;
            }
        }
        assert!(nans > 0);
        assert_eq!(packed(&mut r, Lane::F64, 16).len(), 16);
        assert_eq!(packed(&mut r, Lane::Int(2), 6).len(), 6);
    }
}
