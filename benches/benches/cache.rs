//! Code-cache lookups: the block map (`CodeCache::lookup`, hit and miss) at two occupancies,
//! and the direct-mapped jump cache in front of it (`jump_cache_get`, hit and miss). Times
//! are per lookup.
//!
//! `cargo bench -p benches --bench cache`

use std::hint::black_box;

use cache::{BlockInfo, BlockKey, CacheConfig, CodeCache, HostCode, SlotRange};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use translator::Mode;

/// Guest bytes per fake block (blocks are laid out back to back from 1 MiB).
const BLOCK_BYTES: u64 = 0x40;
/// Where the fake blocks start, guest-physical and virtual.
const BASE: u64 = 0x10_0000;

/// A cache holding `n` fake blocks (a `ret` each; nothing is run), and their keys.
fn filled_cache(n: usize) -> (CodeCache, Vec<BlockKey>) {
    let cfg = CacheConfig {
        code_bytes: 16 << 20,
        max_slots: 1 << 10,
        jump_cache_entries: 4096,
    };
    // The unlinked stub is never called here.
    let mut cache = CodeCache::new(cfg, HostCode(0x1000)).expect("a cache");
    let mode = Mode::LONG64_CPL0.key();
    let keys: Vec<BlockKey> = (0..n as u64)
        .map(|i| BlockKey {
            phys_pc: BASE + i * BLOCK_BYTES,
            virt_pc: BASE + i * BLOCK_BYTES,
            mode,
        })
        .collect();
    for key in &keys {
        let host = cache.alloc_code(&[0xC3; 64]).expect("room for the code");
        let pc = key.phys_pc;
        cache.insert(BlockInfo {
            key: *key,
            virt_pc: pc,
            host,
            code_len: 64,
            phys_ranges: vec![(pc, pc + BLOCK_BYTES)],
            guest_insns: 10,
            slots: SlotRange::EMPTY,
        });
    }
    (cache, keys)
}

/// Cycles through `v` (not empty) forever.
fn cycle<T: Copy>(v: &[T]) -> impl FnMut() -> T + '_ {
    assert!(!v.is_empty());
    let mut i = 0;
    move || {
        i += 1;
        if i == v.len() {
            i = 0;
        }
        v[i]
    }
}

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("cache");
    for n in [1 << 10, 1 << 16] {
        let (mut cache, keys) = filled_cache(n);
        let misses: Vec<BlockKey> = keys
            .iter()
            .map(|k| BlockKey {
                phys_pc: k.phys_pc + 1,
                ..*k
            })
            .collect();
        let mut next = cycle(&keys);
        g.bench_function(BenchmarkId::new("lookup_hit", n), |b| {
            b.iter(|| black_box(cache.lookup(next())))
        });
        let mut next = cycle(&misses);
        g.bench_function(BenchmarkId::new("lookup_miss", n), |b| {
            b.iter(|| black_box(cache.lookup(next())))
        });
    }

    // The jump cache: 4096 entries, filled with the first 4096 blocks (one per entry when
    // the index function spreads them; only the resident ones are looked up).
    let (mut cache, keys) = filled_cache(4096);
    let mode = Mode::LONG64_CPL0.key();
    for k in &keys {
        let (id, _) = cache.lookup(*k).expect("inserted");
        cache.jump_cache_set(k.phys_pc, mode, id);
    }
    let resident: Vec<u64> = keys
        .iter()
        .map(|k| k.phys_pc)
        .filter(|&pc| cache.jump_cache_get(pc, mode).is_some())
        .collect();
    let absent: Vec<u64> = (0..1024).map(|i| BASE + i * BLOCK_BYTES + 1).collect();
    let mut next = cycle(&resident);
    g.bench_function(
        BenchmarkId::new("jump_cache_get_hit", resident.len()),
        |b| b.iter(|| black_box(cache.jump_cache_get(next(), mode))),
    );
    let mut next = cycle(&absent);
    g.bench_function("jump_cache_get_miss", |b| {
        b.iter(|| black_box(cache.jump_cache_get(next(), mode)))
    });
    g.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
