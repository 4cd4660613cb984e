//! [`Stats`]: counters of a VM run, printed by `popek run --stats`.

use std::fmt;

use cache::CacheStats;
use translator::Helper;

use crate::devices::BusStats;
use crate::engine::dbt::DbtStats;
use crate::engine::Engine;
use crate::helpers::HelperCounters;
use crate::machine::TlbCounters;
use translator::sensitive::Hypercall;

/// A snapshot of a VM's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// The engine selected now.
    pub engine: Engine,
    /// Guest instructions executed (`CpuState::icount`). The DBT charges a block's
    /// instructions at its entry, so a block left early through a fault counts in full.
    pub guest_insns: u64,
    /// DBT engine counters (zero if it never ran).
    pub dbt: DbtStats,
    /// Code-cache counters: lookups, hits, misses, links, invalidations, flushes, occupancy.
    pub cache: CacheStats,
    /// Nanoseconds spent in [`crate::Vm::run`].
    pub run_ns: u64,
    /// Helper calls by kind (hypercalls and memory slow paths).
    pub helpers: HelperCounters,
    /// Guest exceptions.
    pub exceptions: u64,
    /// Stores that hit translated code (self-modifying code).
    pub code_modified: u64,
    /// Port bus counters.
    pub bus: BusStats,
    /// Serial bytes that could not be written to stdout.
    pub serial_lost_bytes: u64,
    /// Hypercalls by [`Hypercall`] number (every engine; under `trap` each is a host trap).
    pub hypercalls: Vec<(Hypercall, u64)>,
    /// Host traps taken (the `trap` engine).
    pub host_traps: u64,
    /// Guest exceptions by vector (those delivered or reported).
    pub exceptions_by_vector: [u64; 32],
    /// #UDs raised for instructions popek does not implement, by mnemonic (sorted).
    pub unsupported_uds: Vec<(String, u64)>,
    /// External interrupts delivered.
    pub interrupts: u64,
    /// Soft-TLB counters.
    pub tlb: TlbCounters,
    /// Hits of generated code's inline soft-TLB probes, when counted
    /// ([`crate::VmConfig::count_tlb_hits`]).
    pub tlb_inline_hits: Option<u64>,
    /// Host milliseconds the vCPU slept in HLT.
    pub halted_ns: u64,
    /// Guest MMIO reads and writes.
    pub mmio: [u64; 2],
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (d, c) = (&self.dbt, &self.cache);
        writeln!(f, "engine                 {}", self.engine.name())?;
        writeln!(f, "guest instructions     {}", self.guest_insns)?;
        writeln!(f, "run time               {:.3} ms", ms(self.run_ns))?;
        if self.run_ns > 0 {
            let mips = self.guest_insns as f64 / (self.run_ns as f64 / 1e9) / 1e6;
            writeln!(f, "speed                  {mips:.1} MIPS")?;
        }
        writeln!(f, "exceptions             {}", self.exceptions)?;
        writeln!(f, "code-modifying stores  {}", self.code_modified)?;
        writeln!(
            f,
            "blocks translated      {} ({} guest insns, {} IR insts, {} bytes of host code)",
            d.blocks_translated, d.guest_insns_translated, d.ir_insts, d.code_bytes
        )?;
        writeln!(
            f,
            "translation time       {:.3} ms (IR {:.3} ms, Cranelift {:.3} ms)",
            ms(d.translate_ns + d.compile_ns),
            ms(d.translate_ns),
            ms(d.compile_ns)
        )?;
        for (name, t) in [("quick", &d.quick), ("optimized", &d.optimized)] {
            writeln!(
                f,
                "  {name:<20} {} blocks ({} guest insns), Cranelift {:.3} ms",
                t.blocks,
                t.guest_insns,
                ms(t.compile_ns)
            )?;
        }
        writeln!(
            f,
            "regions                {} hot blocks compiled with their loop ({} blocks in all)",
            d.regions, d.region_blocks
        )?;
        writeln!(
            f,
            "dispatches             {} (+{} interpreted single steps)",
            d.dispatches, d.single_steps
        )?;
        writeln!(
            f,
            "cache lookups          {} ({} hits, {} misses); jump cache {} hits, {} misses",
            c.lookups, c.hits, c.misses, c.jump_cache_hits, c.jump_cache_misses
        )?;
        writeln!(
            f,
            "cache links            {} ({} unlinked); invalidations {}; flushes {}",
            c.links, c.unlinks, c.invalidations, c.flushes
        )?;
        writeln!(
            f,
            "cache occupancy        {} blocks, {} of {} code bytes, {} slots",
            c.blocks_live, c.code_bytes_used, c.code_bytes_capacity, c.slots_used
        )?;
        let t = &d.tier;
        writeln!(
            f,
            "interpreter tier       {} blocks recorded ({} guest insns) in {:.3} ms; {} runs ({} chained)",
            t.blocks_recorded,
            t.guest_insns_recorded,
            ms(t.record_ns),
            t.cold_runs,
            t.chained
        )?;
        writeln!(
            f,
            "tier-up                {} background compilations ({} discarded); {} blocks kept cold; {} promotions of quick code ({} deferred)",
            t.background_jobs, t.background_discarded, t.pinned_cold, t.promotions, t.promotions_deferred
        )?;
        // Hypercalls are listed by kind below; the other helpers by helper.
        let helper_calls = || -> String {
            let v: Vec<String> = Helper::ALL
                .iter()
                .filter(|h| !h.is_hypercall() && self.helpers.get(**h) > 0)
                .map(|&h| format!("{} {}", h.name(), self.helpers.get(h)))
                .collect();
            if v.is_empty() {
                "none".into()
            } else {
                v.join(", ")
            }
        };
        let kinds: Vec<String> = self
            .hypercalls
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(h, n)| format!("{} {n}", h.name()))
            .collect();
        let kinds = if kinds.is_empty() {
            "none".into()
        } else {
            kinds.join(", ")
        };
        writeln!(f, "hypercalls             {kinds}")?;
        writeln!(f, "host traps             {}", self.host_traps)?;
        let vectors: Vec<String> = self
            .exceptions_by_vector
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(v, n)| format!("#{v} {n}"))
            .collect();
        if !vectors.is_empty() {
            writeln!(f, "exceptions by vector   {}", vectors.join(", "))?;
        }
        if !self.unsupported_uds.is_empty() {
            let uds: Vec<String> = self
                .unsupported_uds
                .iter()
                .map(|(name, n)| format!("{name} {n}"))
                .collect();
            writeln!(f, "#UD (unimplemented)    {}", uds.join(", "))?;
        }
        writeln!(
            f,
            "interrupts delivered   {} ({:.3} ms halted)",
            self.interrupts,
            ms(self.halted_ns)
        )?;
        writeln!(
            f,
            "MMIO                   {} reads, {} writes",
            self.mmio[0], self.mmio[1]
        )?;
        let inline = match self.tlb_inline_hits {
            Some(n) => format!("{n} inline hits in generated code"),
            None => "inline hits in generated code not counted".to_string(),
        };
        writeln!(
            f,
            "soft TLB               {inline}, {} runtime hits, {} walks (misses), {} flushes, {} \
             page invalidations",
            self.tlb.hits, self.tlb.misses, self.tlb.flushes, self.tlb.page_invalidations
        )?;
        writeln!(f, "helper calls           {}", helper_calls())?;
        write!(
            f,
            "unclaimed ports        {} reads, {} writes",
            self.bus.unclaimed_reads, self.bus.unclaimed_writes
        )?;
        if self.serial_lost_bytes > 0 {
            write!(f, "\nserial bytes lost      {}", self.serial_lost_bytes)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_lists_hypercalls_by_kind() {
        let mut s = Stats {
            hypercalls: vec![(Hypercall::Out, 12), (Hypercall::Cli, 0)],
            ..Stats::default()
        };
        s.helpers.0[Helper::MemRead as usize] = 3;
        s.exceptions_by_vector[14] = 2;
        s.unsupported_uds = vec![("vmcall".into(), 2), ("xgetbv".into(), 1)];
        let text = s.to_string();
        assert!(
            text.contains("#UD (unimplemented)    vmcall 2, xgetbv 1\n"),
            "{text}"
        );
        assert!(text.contains("hypercalls             out 12\n"), "{text}");
        assert!(text.contains("helper calls           mem_read 3"), "{text}");
        assert!(text.contains("exceptions by vector   #14 2"), "{text}");
        assert!(!text.contains("speed"), "no speed without run time");
    }
}
