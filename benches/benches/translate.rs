//! Translation cost of one guest block: decode alone, and decode + IR build + Cranelift
//! compile (what the DBT pays on a cache miss, minus installing the code), for a short and a
//! ~25-instruction block from real guest hot loops. Criterion's time is per block; its
//! throughput is guest instructions per second (invert it for time per instruction).
//!
//! `cargo bench -p benches --bench translate`

use std::hint::black_box;
use std::time::Instant;

use benches::blocks::{long_block, short_block, BenchEnv, HotBlock};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use translator::jit::{Jit, JitConfig, OptLevel, Regalloc};
use translator::Mode;

/// Prints a quick breakdown of one block's translation (IR build vs Cranelift, code size),
/// from the JIT's own timers, before criterion measures it.
fn describe(jit: &mut Jit, block: &HotBlock) {
    let mut env = BenchEnv::new();
    let decoded = block.decode();
    let rounds = 200;
    let (mut ir_ns, mut cl_ns) = (0u64, 0u64);
    let mut last = None;
    let t0 = Instant::now();
    for _ in 0..rounds {
        env.reset();
        let c = jit
            .translate(&decoded, Mode::LONG64_CPL0, &mut env)
            .unwrap_or_else(|e| panic!("translating {block}: {e}"));
        ir_ns += c.time_translate_ns;
        cl_ns += c.time_compile_ns;
        last = Some(c);
    }
    let total = t0.elapsed().as_nanos() as f64 / rounds as f64;
    let c = last.expect("at least one round");
    eprintln!(
        "{block}: {:.1} µs/block, {:.2} µs/insn (IR build {:.1} µs, Cranelift {:.1} µs); \
         {} IR insts, {} bytes of host code",
        total / 1e3,
        total / 1e3 / c.guest_insns as f64,
        ir_ns as f64 / rounds as f64 / 1e3,
        cl_ns as f64 / rounds as f64 / 1e3,
        c.ir_insts,
        c.code.len()
    );
}

fn translate(c: &mut Criterion) {
    let blocks = [
        (
            "short",
            short_block().unwrap_or_else(|e| panic!("short block: {e}")),
        ),
        (
            "long",
            long_block().unwrap_or_else(|e| panic!("long block: {e}")),
        ),
    ];
    // The runtime's configuration, and the two knobs that trade code quality for
    // compile time.
    let configs = [
        ("", JitConfig::default()),
        (
            "(opt=none)",
            JitConfig {
                opt_level: OptLevel::None,
                ..JitConfig::default()
            },
        ),
        (
            "(regalloc=single_pass)",
            JitConfig {
                regalloc: Regalloc::SinglePass,
                ..JitConfig::default()
            },
        ),
    ];
    let mut jits: Vec<(&str, Jit)> = configs
        .iter()
        .map(|(name, cfg)| (*name, Jit::with_config(*cfg).expect("a JIT for the host")))
        .collect();
    let mut env = BenchEnv::new();

    let mut g = c.benchmark_group("translate");
    for (label, block) in &blocks {
        describe(&mut jits[0].1, block);
        let id = |what: &str| BenchmarkId::new(what, format!("{label}_{}insns", block.insns));
        g.throughput(Throughput::Elements(block.insns as u64));
        g.bench_function(id("decode"), |b| b.iter(|| black_box(block.decode())));
        for (variant, jit) in &mut jits {
            g.bench_function(id(&format!("decode+translate+compile{variant}")), |b| {
                b.iter(|| {
                    let decoded = block.decode();
                    env.reset();
                    jit.translate(&decoded, Mode::LONG64_CPL0, &mut env)
                        .expect("translates")
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, translate);
criterion_main!(benches);
