//! A small deterministic PRNG (xoshiro256** seeded by SplitMix64) with helpers biased toward
//! the edge values that break integer semantics: 0, 1, -1, the sign bits, the largest
//! positive values, and single set or cleared bits.
//!
//! Invariant: a generator's output depends only on its seed, so a case can be regenerated from
//! `(run seed, case index)` alone (see [`Rng::for_case`]).

/// SplitMix64 step: a good 64-bit mixer, also used to derive per-case seeds.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256** generator.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator seeded from `seed` (any value, including zero).
    pub fn new(seed: u64) -> Rng {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Rng { s }
    }

    /// The generator of case `index` of a run seeded with `seed`.
    pub fn for_case(seed: u64, index: u64) -> Rng {
        let mut sm = seed ^ index.wrapping_mul(0xD605_BBB5_8C8A_BBFD);
        let mixed = splitmix64(&mut sm);
        Rng::new(mixed ^ index)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A uniform value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// A uniform value in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        debug_assert!(lo <= hi);
        lo.wrapping_add(self.below((hi.wrapping_sub(lo) as u64).wrapping_add(1).max(1)) as i64)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A uniformly chosen element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// A value of `bits` bits (8, 16, 32 or 64) biased toward edge values; the result is
    /// zero-extended to 64 bits.
    pub fn edge(&mut self, bits: u32) -> u64 {
        let mask = width_mask(bits);
        let sign = 1u64 << (bits - 1);
        let v = match self.below(16) {
            0 => 0,
            1 => 1,
            2 => mask,                                               // -1
            3 => sign,                                               // most negative
            4 => sign - 1,                                           // most positive
            5 => sign + 1,                                           // most negative + 1
            6 => mask - 1,                                           // -2
            7 => self.below(17),                                     // small positive
            8 => 0u64.wrapping_sub(self.below(17)),                  // small negative
            9 => 1u64 << self.below(bits as u64),                    // one bit set
            10 => !(1u64 << self.below(bits as u64)),                // one bit clear
            11 => (1u64 << self.below(bits as u64)).wrapping_sub(1), // low ones
            12 => self.next_u64() & self.next_u64(),                 // sparse
            13 => self.next_u64() | self.next_u64(),                 // dense
            _ => self.next_u64(),
        };
        v & mask
    }

    /// A 64-bit register value whose low `bits` bits are an [`Rng::edge`] value and whose
    /// upper bits are zero, ones, a sign extension or random garbage (so partial-register
    /// writes that must preserve or clear the upper bits are exercised).
    pub fn reg_value(&mut self, bits: u32) -> u64 {
        let low = self.edge(bits);
        if bits == 64 {
            return low;
        }
        let mask = width_mask(bits);
        let upper = match self.below(4) {
            0 => 0,
            1 => !mask,
            2 => {
                if low >> (bits - 1) & 1 == 1 {
                    !mask
                } else {
                    0
                }
            }
            _ => self.next_u64() & !mask,
        };
        upper | low
    }

    /// A shift or rotate count biased to 0, 1, width-1, width, width+1 and the masking
    /// boundaries of 32- and 64-bit counts, over the full 0..=255 range of CL / imm8.
    pub fn shift_count(&mut self, bits: u32) -> u8 {
        let w = bits as u64;
        (match self.below(12) {
            0 => 0,
            1 => 1,
            2 => w - 1,
            3 => w,
            4 => w + 1,
            5 => 31,
            6 => 32,
            7 => 33,
            8 => 63,
            9 => 64 + self.below(4),
            10 => self.below(256),
            _ => self.below(w + 2),
        }) as u8
    }

    /// Fill `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// The mask of the low `bits` bits (`bits` in 1..=64).
pub const fn width_mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_per_case() {
        let a: Vec<u64> = (0..4).map(|_| Rng::for_case(7, 3).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            Rng::for_case(7, 3).next_u64(),
            Rng::for_case(7, 4).next_u64()
        );
    }

    #[test]
    fn edge_values_fit_width() {
        let mut r = Rng::new(1);
        for bits in [8, 16, 32, 64] {
            for _ in 0..1000 {
                assert_eq!(r.edge(bits) & !width_mask(bits), 0);
            }
        }
        for _ in 0..1000 {
            assert!(r.below(10) < 10);
            let v = r.range(-5, 5);
            assert!((-5..=5).contains(&v));
        }
    }
}
