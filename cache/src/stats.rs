//! Counters of the code cache.
//!
//! Event counters (`translations` .. `translation_ns`) only grow over the cache's life; a flush
//! does not reset them. The occupancy fields (`code_bytes_used`, `slots_used`, `blocks_live`,
//! `pages_with_code`) describe the cache at the moment [`crate::CodeCache::stats`] was called.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the cache's counters.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CacheStats {
    /// Blocks inserted.
    pub translations: u64,
    /// Block-map lookups.
    pub lookups: u64,
    /// Block-map lookups that found a block.
    pub hits: u64,
    /// Block-map lookups that found nothing.
    pub misses: u64,
    /// Jump-cache probes that found a block.
    pub jump_cache_hits: u64,
    /// Jump-cache probes that found nothing.
    pub jump_cache_misses: u64,
    /// Slots linked to a block.
    pub links: u64,
    /// Linked slots reset to the unlinked stub because their target went away.
    pub unlinks: u64,
    /// Blocks invalidated because their guest code changed.
    pub invalidations: u64,
    /// Blocks dropped because a new block was inserted under the same key.
    pub replaced: u64,
    /// Whole-cache flushes.
    pub flushes: u64,
    /// Nanoseconds spent translating, as reported by the translator.
    pub translation_ns: u64,
    /// Bytes of executable memory in use (code and alignment padding).
    pub code_bytes_used: usize,
    /// Bytes of executable memory in all.
    pub code_bytes_capacity: usize,
    /// Link slots in use (including leaked slots of invalidated blocks).
    pub slots_used: usize,
    /// Blocks currently in the map.
    pub blocks_live: usize,
    /// Guest pages currently holding translated code.
    pub pages_with_code: usize,
}

impl CacheStats {
    /// Fraction of block-map lookups that hit (0 when there were none).
    pub fn hit_rate(&self) -> f64 {
        ratio(self.hits, self.lookups)
    }

    /// Fraction of jump-cache probes that hit (0 when there were none).
    pub fn jump_cache_hit_rate(&self) -> f64 {
        ratio(
            self.jump_cache_hits,
            self.jump_cache_hits + self.jump_cache_misses,
        )
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl fmt::Display for CacheStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "translations {} ({:.3} ms), blocks live {}, code {}/{} bytes, slots {}",
            self.translations,
            self.translation_ns as f64 / 1e6,
            self.blocks_live,
            self.code_bytes_used,
            self.code_bytes_capacity,
            self.slots_used,
        )?;
        writeln!(
            f,
            "lookups {} (hits {}, misses {}, {:.1}%), jump cache hits {} misses {} ({:.1}%)",
            self.lookups,
            self.hits,
            self.misses,
            100.0 * self.hit_rate(),
            self.jump_cache_hits,
            self.jump_cache_misses,
            100.0 * self.jump_cache_hit_rate(),
        )?;
        write!(
            f,
            "links {}, unlinks {}, invalidations {}, replaced {}, flushes {}, code pages {}",
            self.links,
            self.unlinks,
            self.invalidations,
            self.replaced,
            self.flushes,
            self.pages_with_code,
        )
    }
}

/// A counter that `&self` methods can bump cheaply. Increments are a relaxed load and store,
/// not an atomic read-modify-write: concurrent bumps may be lost, which is fine for statistics.
#[derive(Default, Debug)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn bump(&self) {
        self.add(1);
    }

    pub(crate) fn add(&self, n: u64) {
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_add(n), Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The cache's event counters.
#[derive(Default, Debug)]
pub(crate) struct Counters {
    pub translations: Counter,
    pub lookups: Counter,
    pub hits: Counter,
    pub misses: Counter,
    pub jump_cache_hits: Counter,
    pub jump_cache_misses: Counter,
    pub links: Counter,
    pub unlinks: Counter,
    pub invalidations: Counter,
    pub replaced: Counter,
    pub flushes: Counter,
    pub translation_ns: Counter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_display() {
        let s = CacheStats {
            lookups: 4,
            hits: 3,
            misses: 1,
            ..CacheStats::default()
        };
        assert_eq!(s.hit_rate(), 0.75);
        assert_eq!(s.jump_cache_hit_rate(), 0.0);
        let text = s.to_string();
        assert!(
            text.contains("lookups 4 (hits 3, misses 1, 75.0%)"),
            "{text}"
        );
    }

    #[test]
    fn counter_adds() {
        let c = Counter::default();
        c.bump();
        c.add(4);
        assert_eq!(c.get(), 5);
    }
}
