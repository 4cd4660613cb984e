//! The byte work of the string bulk on host slices: compares that find where a REPE/REPNE
//! instruction stops, and the copy a MOVS makes when its destination runs ahead of its
//! source by less than the length.
//!
//! Invariants:
//! - Elements are `S` bytes (1, 2, 4 or 8) at offsets that are multiples of `S` from the
//!   slice's start, so every 8-byte word from the start holds whole elements.
//! - "Direction of travel": forward from the slice's start, or backward from its end.

/// How many `S`-byte elements of `dst` (all of them, in the direction of travel) compare
/// with those of `src` (or with `value` when there is none) so that the instruction
/// continues: while equal if `while_equal`, else while not equal.
pub(super) fn continuing<const S: usize>(
    (dst, src, value, backward, while_equal): (&[u8], Option<&[u8]>, u64, bool, bool),
) -> usize {
    let k = dst.len() / S;
    let dst = &dst[..k * S];
    let value = value & (u64::MAX >> (64 - 8 * S));
    let first = match src {
        Some(src) => first_stop::<S>(dst, &&src[..k * S], backward, while_equal),
        None => first_stop::<S>(dst, &Pattern::<S>::new(value), backward, while_equal),
    };
    first.map_or(k, |e| if backward { k - 1 - e } else { e })
}

/// What `dst` is compared with: bytes of another slice, or an element value repeated.
trait Against {
    /// The 8 bytes at `at` (a multiple of 8), little-endian.
    fn word(&self, at: usize) -> u64;
    /// The `S`-byte element at `at` (a multiple of `S`).
    fn element<const S: usize>(&self, at: usize) -> u64;
}

impl Against for &[u8] {
    fn word(&self, at: usize) -> u64 {
        element::<8>(self, at)
    }
    fn element<const S: usize>(&self, at: usize) -> u64 {
        element::<S>(self, at)
    }
}

/// An `S`-byte element value, repeated from offset 0: as a word.
struct Pattern<const S: usize>(u64);

impl<const S: usize> Pattern<S> {
    fn new(value: u64) -> Self {
        Pattern((0..8 / S).fold(0, |w, i| w | value << (8 * S * i)))
    }
}

impl<const S: usize> Against for Pattern<S> {
    fn word(&self, _at: usize) -> u64 {
        self.0
    }
    fn element<const T: usize>(&self, _at: usize) -> u64 {
        self.0 & (u64::MAX >> (64 - 8 * T))
    }
}

/// Whether some `S`-byte lane of `x` is zero (exact: a borrow only ever runs out of a lane
/// that is zero itself).
fn has_zero_lane<const S: usize>(x: u64) -> bool {
    let ones = Pattern::<S>::new(1).0;
    let highs = ones << (8 * S - 1);
    x.wrapping_sub(ones) & !x & highs != 0
}

/// The index of the first element of `dst` in the direction of travel (counted from the
/// slice's start) whose compare with `other`'s stops the instruction. Whole words are
/// compared first; only a word that may hold the stop is looked at element by element.
fn first_stop<const S: usize>(
    dst: &[u8],
    other: &impl Against,
    backward: bool,
    while_equal: bool,
) -> Option<usize> {
    let per_word = 8 / S;
    let words = dst.len() / 8;
    let elements = dst.len() / S;
    let stops = |e: &usize| (element::<S>(dst, e * S) == other.element::<S>(e * S)) != while_equal;
    let scan = |first: usize, end: usize| match backward {
        true => (first..end).rev().find(stops),
        false => (first..end).find(stops),
    };
    let in_word = |w: usize| {
        let x = element::<8>(dst, w * 8) ^ other.word(w * 8);
        let may_stop = if while_equal {
            x != 0
        } else {
            has_zero_lane::<S>(x)
        };
        may_stop
            .then(|| scan(w * per_word, (w + 1) * per_word))
            .flatten()
    };
    let tail = words * per_word;
    if backward {
        scan(tail, elements).or_else(|| (0..words).rev().find_map(in_word))
    } else {
        (0..words)
            .find_map(in_word)
            .or_else(|| scan(tail, elements))
    }
}

/// The `S`-byte little-endian element at `at` of `b`, zero-extended.
#[inline(always)]
fn element<const S: usize>(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v[..S].copy_from_slice(&b[at..at + S]);
    u64::from_le_bytes(v)
}

/// The bytes a MOVS of `span` bytes leaves in `buf` when it copies forward from offset 0 to
/// offset `ahead` (backward: from the end down to `ahead` bytes below), `ahead` being at
/// least the element size and less than `span`, where `buf` covers the source's first
/// element to the destination's last. Each element reads only bytes already final (the
/// ones `ahead` back), so the destination becomes the first `ahead` bytes repeated (the
/// x86 byte replication); done by doubling the repeated run, a whole number of periods at a
/// time. False (nothing written) if `buf` is not `ahead + span` bytes.
pub(super) fn replicate(buf: &mut [u8], ahead: usize, span: usize, backward: bool) -> bool {
    let total = buf.len();
    if ahead == 0 || ahead >= span || ahead.checked_add(span) != Some(total) {
        return false;
    }
    let mut done = ahead;
    while done < total {
        let n = done.min(total - done);
        if backward {
            buf.copy_within(total - n..total, total - done - n);
        } else {
            buf.copy_within(0..n, done);
        }
        done += n;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loop `continuing` stands for, one element at a time.
    fn reference<const S: usize>(
        dst: &[u8],
        src: Option<&[u8]>,
        value: u64,
        backward: bool,
        while_equal: bool,
    ) -> usize {
        let k = dst.len() / S;
        let value = value & (u64::MAX >> (64 - 8 * S));
        (0..k)
            .find(|&i| {
                let at = if backward { (k - 1 - i) * S } else { i * S };
                let a = src.map_or(value, |s| element::<S>(s, at));
                (a == element::<S>(dst, at)) != while_equal
            })
            .unwrap_or(k)
    }

    fn check<const S: usize>(dst: &[u8], src: &[u8], value: u64) {
        for backward in [false, true] {
            for while_equal in [false, true] {
                for src in [Some(src), None] {
                    let got = continuing::<S>((dst, src, value, backward, while_equal));
                    let want = reference::<S>(dst, src, value, backward, while_equal);
                    let what = format!("S={S} len={} back={backward} eq={while_equal}", dst.len());
                    assert_eq!(got, want, "{what} src={}", src.is_some());
                }
            }
        }
    }

    #[test]
    fn compares_stop_where_one_element_at_a_time_stops() {
        let value = 0x8877_6655_4433_2211u64;
        for len in [0usize, 1, 7, 8, 9, 16, 23, 24, 40, 63, 64, 65, 200] {
            // Every single differing byte, in equal slices and in slices equal to the value.
            let base: Vec<u8> = (0..len).map(|i| (i * 13 + 5) as u8).collect();
            let filled: Vec<u8> = (0..len).map(|i| (value >> (8 * (i % 8))) as u8).collect();
            for at in (0..len).chain([usize::MAX]) {
                for start in [&base, &filled] {
                    let mut dst = start.to_vec();
                    if let Some(b) = dst.get_mut(at) {
                        *b ^= 0x40;
                    }
                    check::<1>(&dst, start, value);
                    check::<2>(&dst, start, value);
                    check::<4>(&dst, start, value);
                    check::<8>(&dst, start, value);
                }
            }
        }
    }

    /// The MOVS loop `replicate` stands for: element by element, `s` bytes each, each read
    /// whole before it is written.
    fn movs(buf: &mut [u8], ahead: usize, span: usize, s: usize, backward: bool) {
        for e in 0..span / s {
            let (from, to) = if backward {
                let to = buf.len() - ahead - (e + 1) * s;
                (to + ahead, to)
            } else {
                (e * s, ahead + e * s)
            };
            let mut v = [0u8; 8];
            v[..s].copy_from_slice(&buf[from..from + s]);
            buf[to..to + s].copy_from_slice(&v[..s]);
        }
    }

    #[test]
    fn overlapping_copies_replicate_as_the_loop_does() {
        for s in [1usize, 2, 4, 8] {
            for backward in [false, true] {
                for ahead in (s..40).chain([63, 100, 255]) {
                    for elements in [1usize, 2, 3, 5, 8, 50, 100, 300] {
                        let span = elements * s;
                        let mut got: Vec<u8> = (0..ahead + span).map(|i| i as u8 ^ 0x5a).collect();
                        let mut want = got.clone();
                        let done = replicate(&mut got, ahead, span, backward);
                        assert_eq!(done, ahead < span, "s={s} ahead={ahead} span={span}");
                        if done {
                            movs(&mut want, ahead, span, s, backward);
                            assert_eq!(got, want, "s={s} ahead={ahead} span={span} {backward}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn replicate_refuses_what_it_does_not_describe() {
        let mut buf = [1u8, 2, 3, 4, 5, 6];
        assert!(!replicate(&mut buf, 0, 6, false));
        assert!(!replicate(&mut buf, 3, 2, false));
        assert!(!replicate(&mut buf, 2, 3, true));
        assert_eq!(buf, [1, 2, 3, 4, 5, 6]);
    }
}
