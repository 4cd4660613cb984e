//! The generated half of the `coldcode` guest: thousands of distinct small functions, each
//! called a handful of times by `guests/coldcode.c`, so that nearly all of the program's time
//! goes to code that runs a few times (what a kernel boot or a large program start-up looks
//! like to a translator), not to a hot loop.
//!
//! Invariants:
//! - The text depends only on [`FUNCTIONS`] and [`SEED`]: the generator is a fixed-seed PRNG
//!   over a fixed grammar, so every build, on every host, compiles the same C (and the build
//!   cache hashes the text like any other source).
//! - Functions differ in their constants, operations, branch conditions and loops, so that
//!   no two compile to the same machine code (gcc's identical-code folding would merge them,
//!   and a translator could share their blocks). Every loop runs a bounded, data-dependent
//!   number of times (at most [`MAX_TRIPS`] + 3), so the program's time stays in the many
//!   cold blocks rather than in a few hot ones.
//! - The C is well defined for every input: no division by a variable, shift counts masked
//!   to 0..63, unsigned arithmetic only.

use std::fmt::Write as _;

/// Functions generated.
pub const FUNCTIONS: usize = 3000;
/// The PRNG's seed (any fixed value; changing it changes the golden output).
pub const SEED: u64 = 0x636f_6c64_636f_6465;
/// Largest constant part of a loop's trip count.
const MAX_TRIPS: u64 = 6;

/// splitmix64: small, fixed and good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A constant of a random width, so that encodings (imm8, imm32, movabs) vary too.
    fn constant(&mut self) -> String {
        let v = self.next();
        match self.below(3) {
            0 => format!("{}u", v & 0x7f),
            1 => format!("0x{:x}u", v & 0x7fff_ffff),
            _ => format!("0x{v:016x}ul"),
        }
    }

    fn var(&mut self) -> &'static str {
        ["a", "b", "c"][self.below(3) as usize]
    }

    /// Two different variables.
    fn two_vars(&mut self) -> (&'static str, &'static str) {
        let i = self.below(3) as usize;
        let j = (i + 1 + self.below(2) as usize) % 3;
        (["a", "b", "c"][i], ["a", "b", "c"][j])
    }

    /// A mask and a value under it to compare with: never a comparison gcc can decide
    /// (`-Wtautological-compare`, `-Wtype-limits` are errors).
    fn masked_compare(&mut self) -> (String, String) {
        let mask = (self.next() >> self.below(60)) | 1 << self.below(8);
        let mut value = self.next() & mask;
        if value == 0 {
            value = mask & mask.wrapping_neg();
        }
        (format!("0x{mask:x}ul"), format!("0x{value:x}ul"))
    }
}

/// One assignment `v = expr;` over the variables `a`, `b`, `c`.
fn assignment(r: &mut Rng) -> String {
    let (dst, src) = r.two_vars();
    match r.below(12) {
        0 => format!("{dst} += {src} ^ {};", r.constant()),
        1 => format!("{dst} -= {src} + {};", r.constant()),
        2 => format!("{dst} ^= {src} * {};", r.constant()),
        3 => {
            let s = 1 + r.below(63);
            format!("{dst} = ({dst} << {s}) | ({dst} >> {});", 64 - s)
        }
        4 => format!("{dst} += {src} >> {};", 1 + r.below(63)),
        5 => format!("{dst} ^= {src} << ({} & 63);", r.var()),
        6 => format!("{dst} = {dst} / {} + {src};", 3 + r.below(1000)),
        7 => format!("{dst} += {src} % {};", 3 + r.below(100_000)),
        8 => format!("{dst} = (u32){dst} * (u32){src} + {};", r.constant()),
        9 => format!("{dst} |= {src} & {};", r.constant()),
        10 => format!("{dst} = {src} > {dst} ? {src} - {dst} : {dst} - {src};"),
        _ => format!("{dst} = (u64)(i64)(i32){src} + {};", r.constant()),
    }
}

/// A statement: an assignment, a two-way branch, or a short loop.
fn statement(r: &mut Rng, out: &mut String) {
    match r.below(6) {
        0..=2 => {
            let _ = writeln!(out, "    {}", assignment(r));
        }
        3 | 4 => {
            let cmp = ["<", ">", "==", "!=", "<=", ">="][r.below(6) as usize];
            let (mask, value) = r.masked_compare();
            let _ = writeln!(
                out,
                "    if (({} & {mask}) {cmp} {value}) {{\n        {}\n        {}\n    }} else {{\n        {}\n    }}",
                r.var(),
                assignment(r),
                assignment(r),
                assignment(r)
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "    for (u64 k = 0; k < ({} & 3) + {}; k++) {{\n        {}\n        {} += k;\n    }}",
                r.var(),
                1 + r.below(MAX_TRIPS),
                assignment(r),
                r.var()
            );
        }
    }
}

/// The C source: `FUNCTIONS` functions `u64 cold_N(u64 x, u64 y)` and the table
/// `cold_fns`, which `guests/coldcode.c` declares.
pub fn source() -> String {
    let mut r = Rng(SEED);
    let mut out = String::with_capacity(FUNCTIONS * 600);
    out.push_str(
        "/* Generated by testsuite/src/coldcode.rs: do not edit. */\n#include \"rt.h\"\n\n",
    );
    for i in 0..FUNCTIONS {
        let _ = writeln!(
            out,
            "static NOINLINE u64 cold_{i}(u64 x, u64 y)\n{{\n    u64 a = x ^ {}, b = y + {}, c = x * {};",
            r.constant(),
            r.constant(),
            r.constant() // multiplied, so odd or even matters little
        );
        for _ in 0..3 + r.below(6) {
            statement(&mut r, &mut out);
        }
        let _ = writeln!(out, "    return a ^ (b << 1) ^ (c >> 1);\n}}\n");
    }
    let _ = writeln!(out, "u64 (*const cold_fns[{FUNCTIONS}])(u64, u64) = {{");
    for i in 0..FUNCTIONS {
        let _ = writeln!(out, "    cold_{i},");
    }
    out.push_str("};\n");
    let _ = writeln!(out, "const u32 cold_count = {FUNCTIONS};");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_is_deterministic_and_every_function_is_distinct() {
        let text = source();
        assert_eq!(text, source());
        let bodies: Vec<&str> = text
            .split("static NOINLINE u64 cold_")
            .skip(1)
            .map(|f| f.split_once('\n').map_or("", |(_, body)| body))
            .collect();
        assert_eq!(bodies.len(), FUNCTIONS);
        let unique: std::collections::HashSet<&str> = bodies.iter().copied().collect();
        assert_eq!(unique.len(), FUNCTIONS);
        assert!(text.contains("for (u64 k = 0;") && text.contains("} else {"));
    }
}
