//! The DBT engine: find or translate the block at RIP, run it through the entry trampoline,
//! handle its exit, link direct exits, repeat.
//!
//! Invariants:
//! - The entry trampoline and the unlinked exit stub live in their own small executable
//!   memory, outside the code cache, so a cache flush never pulls them away.
//! - A block's link slots are allocated before it is translated (the JIT bakes their
//!   addresses into the code) and are owned by the block from its insertion on. A block with
//!   no linkable exit gives its unused slots to the next translation.
//! - A flush invalidates every slot address: after one, no slot remembered from before it
//!   (the exit we are about to link, a spare range, a half-done translation) is used again.
//! - Generated code runs only inside the engine's `run_block` ([`vcpu::ExecEngine`]), with
//!   `cpu.runtime` pointing at the machine and no Rust reference to the machine or the CPU
//!   state in use meanwhile.
//! - The code cache is this engine's: it is installed in the machine as its
//!   [`crate::machine::CodeTracking`] (so stores, INVLPG, TLB fills and the `Lookup` helper
//!   reach it) and only [`tracking`] looks through that handle to the cache; see there why
//!   no borrow of it can overlap another and why the addresses generated code embeds stay
//!   valid.
//! - Direct links stay on the linking block's own pages while paging is on
//!   (`BlockEnv::link_slot`), a block running onto the next page is never a link target,
//!   and a pending link is dropped when mappings change.
//! - Indirect exits probe the cache's jump cache inline (keyed by guest-virtual PC and the
//!   block's mode) and tail-call a hit; on a miss they call the `Lookup` helper, which fills
//!   the jump cache from the block map. This is sound because the jump cache lives as long as
//!   the cache, never moves, and only names live blocks (the cache purges entries of
//!   invalidated blocks and empties it on a flush), because a block leaves through an
//!   indirect exit in the mode it was translated in, and because virtual PCs are forgotten
//!   when their mapping may have changed: all of them when mappings change
//!   ([`vcpu::ExecEngine::forget_mappings`]) but, after a non-global flush (MOV CR3), those
//!   of blocks lying on one page found through a global translation (which a CPU's TLB
//!   keeps too), and an INVLPG's window through
//!   [`crate::machine::CodeTracking::forget_virtual`].

use cache::exec_mem::ExecMemory;
use cache::{
    BlockId, BlockInfo, BlockKey, CacheConfig, CacheError, CodeCache, HostCode, SlotRange,
};
use translator::decode::{decode_block, MAX_BLOCK_INSNS};
use translator::jit::{Jit, JitConfig, JitError};
use translator::{CpuState, Mode};

use super::exit::{handle_exit, ExitAction};
use super::tier::{
    ColdBlocks, Done, HotCounters, Pending, RecordEnvImpl, Tier, TierStats, Tiering, Worker,
};
use super::vcpu::{self, Exit};
use super::{interp, trap, RunOutcome};
use crate::machine::{not_present, Executing, Machine};
use crate::memory::{Access, PAGE_SIZE};
use env::block_env;
use perf_map::PerfMap;
pub use region::Snapshot as RegionSnapshot;
pub(crate) use tracking::cache;
use tracking::{cache_mut, code_free_pages, memory_model, protect_code};

/// Link slots reserved per block: enough for a conditional branch, its fall-through and a
/// page-boundary continuation. More direct exits than this go back through the dispatcher.
pub const SLOTS_PER_BLOCK: usize = 4;

/// The entry trampoline: calls the block at `block` with `cpu`, returns its exit reason.
pub type EntryFn = unsafe extern "C" fn(cpu: *mut CpuState, block: usize) -> u64;

/// How the DBT engine enters generated code, and what it keeps per compiled block for that:
/// [`Direct`] (hypercalls are calls), or [`trap::Traps`] (the `trap` engine: hypercalls are
/// host traps, emulated by a signal handler that needs each block's trap sites).
pub trait HostEntry: Default {
    /// Hypercalls are compiled as host traps (`int3`), not calls; every block is compiled.
    const TRAPS: bool;
    /// Block `id` was compiled from `block` and installed.
    fn installed(&mut self, id: BlockId, block: &translator::decode::DecodedBlock);
    /// The code cache was flushed: every block is gone.
    fn flushed(&mut self);
    /// Host traps taken so far (hypercalls emulated by the signal handler).
    fn host_traps(&self) -> u64;
    /// Runs compiled code at `host` with `cpu` through the entry trampoline `enter`.
    ///
    /// # Safety
    /// As calling `enter` directly: `host` is live code generated for the machine that
    /// `cpu.runtime` names, and nothing else uses `cpu` or the machine until it returns.
    unsafe fn enter(&self, enter: EntryFn, cpu: *mut CpuState, host: usize) -> u64;
}

/// The plain way into generated code (see [`HostEntry`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Direct;

impl HostEntry for Direct {
    const TRAPS: bool = false;
    fn installed(&mut self, _id: BlockId, _block: &translator::decode::DecodedBlock) {}
    fn flushed(&mut self) {}
    fn host_traps(&self) -> u64 {
        0
    }
    unsafe fn enter(&self, enter: EntryFn, cpu: *mut CpuState, host: usize) -> u64 {
        // SAFETY: the caller's contract.
        unsafe { enter(cpu, host) }
    }
}

/// The trap-and-emulate engine: the DBT engine whose hypercalls are host traps.
pub type Trap = Dbt<trap::Traps>;

/// Errors setting up the DBT engine.
#[derive(Debug, thiserror::Error)]
pub enum DbtError {
    /// Could not set up the JIT: {0}
    #[error("could not set up the JIT: {0}")]
    Jit(#[from] JitError),
    /// Could not set up the code cache: {0}
    #[error("could not set up the code cache: {0}")]
    Cache(#[from] CacheError),
    /// Could not open the perf map.
    #[error("could not open the perf map '{path}': {source}")]
    PerfMap {
        /// The map's path.
        path: String,
        /// Why it could not be opened.
        source: std::io::Error,
    },
}

/// Counters of the DBT engine (the cache keeps its own).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DbtStats {
    /// Blocks translated.
    pub blocks_translated: u64,
    /// Guest instructions in translated blocks.
    pub guest_insns_translated: u64,
    /// Cranelift IR instructions built.
    pub ir_insts: u64,
    /// Nanoseconds building IR.
    pub translate_ns: u64,
    /// Nanoseconds in Cranelift.
    pub compile_ns: u64,
    /// Bytes of host code generated.
    pub code_bytes: u64,
    /// Blocks entered from the dispatcher (not through a link).
    pub dispatches: u64,
    /// Instructions executed by the interpreter on the DBT's behalf.
    pub single_steps: u64,
    /// Of the blocks translated, those compiled quick ([`Tier::Quick`]).
    pub quick: TierCompiles,
    /// Of the blocks translated, those compiled optimized ([`Tier::Optimized`]).
    pub optimized: TierCompiles,
    /// Hot blocks compiled as regions (with other blocks of their loop).
    pub regions: u64,
    /// Blocks in those regions.
    pub region_blocks: u64,
    /// The interpreter tier's counters.
    pub tier: TierStats,
    /// Host traps taken by the `trap` engine.
    pub host_traps: u64,
}

/// Compilations of one compiled tier.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TierCompiles {
    /// Blocks compiled and installed.
    pub blocks: u64,
    /// Guest instructions in them.
    pub guest_insns: u64,
    /// Nanoseconds in Cranelift for them.
    pub compile_ns: u64,
}

/// The DBT engine (every engine: `dbt`, `jit` and `interp` are its tiering policies,
/// [`Trap`] its trapping entry). Its code cache is installed in the machine as the
/// machine's code tracking (see [`tracking`]), where stores and the helpers reach it.
pub struct Dbt<H: HostEntry = Direct> {
    /// The optimizing JIT ([`Tier::Optimized`]).
    jit: Jit,
    /// The quick tier's JIT, if hot blocks are compiled quick first.
    quick: Option<Jit>,
    /// The hotness counters of quick code.
    counters: HotCounters,
    /// Quick blocks that count, and their counters: what a promotion re-arms.
    counting: hashbrown::HashMap<BlockId, usize>,
    /// Keeps the trampoline and the exit stub mapped.
    _stubs: ExecMemory,
    enter: EntryFn,
    /// Link slots allocated but not owned by any block yet.
    spare: Option<SlotRange>,
    /// Flushes this engine performed (to spot stale slot addresses).
    flushes: u64,
    stats: DbtStats,
    /// How generated code is entered.
    entry: H,
    /// When blocks are compiled.
    tiering: Tiering,
    /// The interpreter tier's blocks.
    cold: ColdBlocks,
    /// The background compiler, once started.
    worker: Option<Worker>,
    /// Whose undefined flags the interpreter tier computes (the JIT's).
    vendor: translator::flags::Vendor,
    /// The link slot of the direct exit the last block took, linked to the next block once
    /// it is found (dropped whenever the run loop does anything between the two).
    link_from: Option<u64>,
    /// Where compiled code is named for profilers, if asked.
    perf_map: Option<PerfMap>,
}

/// How the DBT engine runs (see [`Dbt::with_options`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DbtOptions {
    /// Generated code counts its inline soft-TLB hits in `CpuState::tlb_inline_hits`.
    pub count_tlb_hits: bool,
    /// When blocks are compiled.
    pub tiering: Tiering,
    /// Name every compiled block in `/tmp/perf-<pid>.map` for profilers ([`perf_map`]).
    pub perf_map: bool,
}

impl Default for DbtOptions {
    fn default() -> Self {
        DbtOptions {
            count_tlb_hits: false,
            tiering: Tiering::tiered(),
            perf_map: false,
        }
    }
}

/// The block to run next.
enum Next {
    /// Compiled code.
    Host(HostCode),
    /// A block of the interpreter tier.
    Cold(BlockId),
}

impl<H: HostEntry> Dbt<H> {
    /// Sets up the JIT, the trampoline and exit stub, and the engine's code cache, installed
    /// as `m`'s code tracking.
    pub fn new(m: &mut Machine, cfg: CacheConfig) -> Result<Dbt<H>, DbtError> {
        Dbt::with_options(m, cfg, DbtOptions::default())
    }

    /// As [`Dbt::new`], with options.
    pub fn with_options(
        m: &mut Machine,
        cfg: CacheConfig,
        opts: DbtOptions,
    ) -> Result<Dbt<H>, DbtError> {
        let DbtOptions {
            count_tlb_hits,
            tiering,
            perf_map,
        } = opts;
        let base = JitConfig {
            trap_hypercalls: H::TRAPS,
            count_tlb_hits,
            ..JitConfig::default()
        };
        let mut jit = Jit::with_config(base)?;
        // Trap-and-emulate needs every block as host code: its hypercalls are host traps.
        let tiering = if H::TRAPS { Tiering::JIT } else { tiering };
        let quick = (tiering.compile_after > 0 && tiering.optimize_after > 0)
            .then(|| Jit::with_config(Tier::Quick.config(base)))
            .transpose()?;
        let trampoline = jit.entry_trampoline()?;
        let stub = jit.exit_stub()?;
        let mut stubs = ExecMemory::new(trampoline.len() + stub.len() + 64)?;
        let enter = stubs.alloc(&trampoline)?;
        let stub_len = stub.len();
        let stub = HostCode(stubs.alloc(&stub)?);
        let perf_map = if perf_map {
            let mut map = PerfMap::open().map_err(|source| DbtError::PerfMap {
                path: perf_map::path().display().to_string(),
                source,
            })?;
            map.note_stub(enter, trampoline.len(), "entry_trampoline");
            map.note_stub(stub.0, stub_len, "exit_stub");
            Some(map)
        } else {
            None
        };
        let mut cache = CodeCache::new(cfg, stub)?;
        cache.set_phys_limit(m.ram.size());
        m.set_code_tracking(Some(Box::new(cache)));
        // SAFETY: `enter` is the address, in executable memory that `_stubs` keeps mapped for
        // the engine's life, of the JIT's entry trampoline, whose ABI is exactly `EntryFn`.
        let enter: EntryFn = unsafe { std::mem::transmute::<usize, EntryFn>(enter) };
        Ok(Dbt {
            jit,
            quick,
            counters: HotCounters::new(cfg.max_slots / SLOTS_PER_BLOCK),
            counting: hashbrown::HashMap::new(),
            _stubs: stubs,
            enter,
            spare: None,
            flushes: 0,
            stats: DbtStats::default(),
            entry: H::default(),
            tiering,
            cold: ColdBlocks::default(),
            worker: None,
            vendor: JitConfig::default().vendor,
            link_from: None,
            perf_map,
        })
    }

    /// The engine's counters.
    pub fn stats(&self) -> DbtStats {
        DbtStats {
            tier: self.cold.stats,
            host_traps: self.entry.host_traps(),
            ..self.stats
        }
    }

    /// Runs the guest until something stops it (see [`vcpu::run`]).
    pub fn run(&mut self, m: &mut Machine, cpu: &mut CpuState) -> RunOutcome {
        vcpu::run(self, m, cpu)
    }

    /// Runs the cold block `id` and the cold blocks it chains to, then handles the exit.
    fn run_cold(
        &mut self,
        m: &mut Machine,
        cpu: &mut CpuState,
        id: BlockId,
    ) -> Result<Exit, RunOutcome> {
        let threshold = self.tiering.compile_after;
        // Cold blocks chain among themselves as compiled ones do through links: a plain
        // jump to a live cold block that is not due for compiling runs it without the
        // dispatcher, while nothing asks the run loop to look (budget, TF, mappings, or any
        // posted effect: a halt, a stop, ...; `handle_exit` settles them).
        let exit = self.cold.run_chain(id, m, cpu, threshold, |m, cpu, kept| {
            if cpu.icount >= cpu.icount_limit
                || m.run.posted
                || m.run.mappings_changed
                || super::debug::active(cpu)
            {
                return None;
            }
            if kept.is_some() {
                return kept;
            }
            let next_mode = crate::system::mode::mode(cpu);
            by_virtual_pc(next_mode).then(|| next_mode.key())
        });
        let Some(exit) = exit else {
            return Ok(Exit::Continue);
        };
        match handle_exit(m, cpu, exit) {
            ExitAction::Continue { .. } => Ok(Exit::Continue),
            ExitAction::SingleStep => Ok(Exit::SingleStep),
            ExitAction::Stop(outcome) => Err(outcome),
        }
    }

    /// The block at `cpu.rip`, translating or recording it if needed, after linking the
    /// slot `link_from` (if any) to it.
    fn block_for(
        &mut self,
        m: &mut Machine,
        cpu: &mut CpuState,
        link_from: Option<u64>,
    ) -> Result<Option<Next>, RunOutcome> {
        match self.find_block(m, cpu, link_from) {
            Ok(host) => Ok(Some(host)),
            Err(Fetch::Fault(exc)) => vcpu::raise(m, cpu, exc).map(|()| None),
            Err(Fetch::Stop(outcome)) => Err(outcome),
        }
    }

    fn find_block(
        &mut self,
        m: &mut Machine,
        cpu: &mut CpuState,
        link_from: Option<u64>,
    ) -> Result<Next, Fetch> {
        let (pc, mode) = (cpu.rip, crate::system::mode::mode(cpu));
        let flushes = self.flushes;
        let cached = by_virtual_pc(mode);
        let found = cached
            .then(|| cache_mut(m).jump_cache_lookup(pc, mode.key()))
            .flatten();
        let (id, host) = match found {
            Some(hit) => hit,
            None => {
                if let Some(id) = cached
                    .then(|| self.cold.lookup(m, pc, mode.key()))
                    .flatten()
                {
                    return self.run_cold_or_compile(m, cpu, id, mode);
                }
                let (phys, global) = m.translate_code_global(cpu, pc).map_err(Fetch::Fault)?;
                let key = BlockKey {
                    phys_pc: phys.0,
                    virt_pc: pc,
                    mode: mode.key(),
                };
                // A block on one page needs no check of the next page's mapping.
                let (hit, one_page) = match cache_mut(m).lookup_one_page(key) {
                    Some((id, host, one_page))
                        if one_page || straddle_still_mapped(m, cpu, pc, id) =>
                    {
                        ((id, host), one_page)
                    }
                    _ if self.tiering.compile_after > 0 => {
                        let id = self.record(m, cpu, pc, key, mode)?;
                        if cached {
                            let kept = global && on_one_page(m, id);
                            self.cold.remember(pc, mode.key(), id, kept);
                        }
                        return self.run_cold_or_compile(m, cpu, id, mode);
                    }
                    _ => {
                        let hit = self.translate(m, cpu, pc, key, mode, Tier::Optimized)?;
                        (hit, on_one_page(m, hit.0))
                    }
                };
                let kept = global && one_page;
                if hit.1.is_none() {
                    if cached {
                        self.cold.remember(pc, mode.key(), hit.0, kept);
                    }
                    return self.run_cold_or_compile(m, cpu, hit.0, mode);
                }
                if cached {
                    cache_mut(m).jump_cache_set_kept(pc, mode.key(), hit.0, kept);
                }
                hit
            }
        };
        // A flush while translating freed (and may have reused) the slot. Under paging a
        // block that runs onto the next page is never a link target: a link would skip the
        // check of that page's mapping above.
        if let (Some(slot), true) = (link_from, flushes == self.flushes && cached) {
            // (Only now: reading the block's ranges is a cache miss of its own.)
            let straddles = mode.paging
                && cache(m)
                    .and_then(|c| c.block(id))
                    .is_some_and(|b| next_page_range(&b.phys_ranges).is_some());
            if !straddles {
                cache_mut(m).link(slot as *mut u64, id);
            }
        }
        Ok(Next::Host(host))
    }

    /// Cold block `id` is about to run at `cpu.rip`: run it, or, once it is hot, compile it
    /// (inline: run the code; in the background: run it cold until the code is installed).
    fn run_cold_or_compile(
        &mut self,
        m: &mut Machine,
        cpu: &mut CpuState,
        id: BlockId,
        mode: Mode,
    ) -> Result<Next, Fetch> {
        if !self.cold.count_run(id, self.tiering.compile_after) {
            return Ok(Next::Cold(id));
        }
        let Some(key) = cache(m).and_then(|c| c.block(id)).map(|b| b.key) else {
            return Ok(Next::Cold(id));
        };
        let pc = cpu.rip;
        // A backlog means the compile thread is not keeping up (a burst of blocks turning
        // hot at once, or a machine whose other core is busy): hot blocks would run in the
        // interpreter tier until their turn, so past it the vCPU compiles its own.
        let tier = self.hot_tier();
        if self.background_has_room(true) {
            self.compile_in_background(m, cpu, id, key, mode, tier)?;
            return Ok(Next::Cold(id));
        }
        let (id, host) = self.translate(m, cpu, pc, key, mode, tier)?;
        if by_virtual_pc(mode) {
            cache_mut(m).jump_cache_set(pc, mode.key(), id);
        }
        Ok(Next::Host(host))
    }

    /// Translates and installs the block at guest-virtual `pc` (physical `key.phys_pc`) as
    /// `tier` code; in a tiered engine (where only hot blocks get here) with the loop around
    /// it, as a region.
    fn translate(
        &mut self,
        m: &mut Machine,
        cpu: &mut CpuState,
        pc: u64,
        key: BlockKey,
        mode: Mode,
        tier: Tier,
    ) -> Result<(BlockId, HostCode), Fetch> {
        let (fetched, block) = decode(m, cpu, pc, mode)?;
        let region = self.region(m, &fetched, block, mode);
        let block = &region.blocks[0];
        // Two attempts: the second after a flush made room.
        for attempt in 0..2 {
            let (slots, counter) = self.reserve(m, tier)?;
            let mut env = block_env(m, block, mode, slots);
            env.counter = counter.map(|c| self.counters.addr(c));
            let jit = match (tier, self.quick.as_mut()) {
                (Tier::Quick, Some(quick)) => quick,
                _ => &mut self.jit,
            };
            // Cranelift computes with floats: under the host's MXCSR, not the guest's.
            let host_fp = crate::fpu::HostFp::new();
            let translated = jit.translate_region(&region.blocks, mode, &mut env);
            drop(host_fp);
            let used = env.used;
            let compiled = match translated {
                Ok(c) => c,
                Err(e) => {
                    self.spare = Some(slots);
                    return Err(Fetch::Stop(RunOutcome::InternalError(format!(
                        "translating {pc:#x}: {e}"
                    ))));
                }
            };
            let host = match cache_mut(m).alloc_code(&compiled.code) {
                Ok(host) => host,
                Err(CacheError::Full) if attempt == 0 => {
                    self.flush(m);
                    continue;
                }
                Err(e) => {
                    return Err(Fetch::Stop(RunOutcome::InternalError(format!(
                        "installing the block at {pc:#x}: {e}"
                    ))))
                }
            };
            let byte_len = block.byte_len();
            let phys_ranges = region.phys_ranges.clone();
            let fresh = code_free_pages(m, &phys_ranges);
            let placed = Placed {
                key,
                slots,
                used,
                tier,
                counter,
            };
            self.count_region(&region);
            let id = self.install(m, placed, host, &compiled, phys_ranges);
            self.entry.installed(id, block);
            protect_code(m, cpu, pc, &fetched, byte_len, fresh);
            return Ok((id, host));
        }
        Err(Fetch::Stop(RunOutcome::InternalError(format!(
            "the block at {pc:#x} does not fit in an empty code cache"
        ))))
    }

    /// Enters compiled code at `host` into the cache for `placed.key` (replacing a cold or
    /// quick block of the same key), giving unused slots back, and counts it.
    fn install(
        &mut self,
        m: &mut Machine,
        placed: Placed,
        host: HostCode,
        compiled: &translator::jit::CompiledBlock,
        phys_ranges: Vec<(u64, u64)>,
    ) -> BlockId {
        let Placed {
            key,
            slots,
            used,
            tier,
            counter,
        } = placed;
        let slots = if used == 0 {
            if self.spare.is_none() {
                self.spare = Some(slots);
            }
            SlotRange::EMPTY
        } else {
            slots
        };
        let cache = cache_mut(m);
        let id = cache.insert(BlockInfo {
            key,
            virt_pc: key.virt_pc,
            host,
            code_len: compiled.code.len(),
            phys_ranges,
            guest_insns: compiled.guest_insns,
            slots,
        });
        if let Some(map) = self.perf_map.as_mut() {
            map.note_block(
                host.0,
                compiled.code.len(),
                tier,
                key.virt_pc,
                compiled.guest_insns,
            );
        }
        let ns = compiled.time_translate_ns + compiled.time_compile_ns;
        cache.note_translation_time(ns);
        let s = &mut self.stats;
        s.blocks_translated += 1;
        s.guest_insns_translated += compiled.guest_insns as u64;
        s.ir_insts += compiled.ir_insts as u64;
        s.translate_ns += compiled.time_translate_ns;
        s.compile_ns += compiled.time_compile_ns;
        s.code_bytes += compiled.code.len() as u64;
        let t = match tier {
            Tier::Quick => &mut s.quick,
            Tier::Optimized => &mut s.optimized,
        };
        t.blocks += 1;
        t.guest_insns += u64::from(compiled.guest_insns);
        t.compile_ns += compiled.time_compile_ns;
        if let Some(c) = counter {
            self.counting.insert(id, c);
        }
        id
    }

    /// Records the block at guest-virtual `pc` for the interpreter tier and enters it into
    /// the cache as a cold block.
    fn record(
        &mut self,
        m: &mut Machine,
        cpu: &mut CpuState,
        pc: u64,
        key: BlockKey,
        mode: Mode,
    ) -> Result<BlockId, Fetch> {
        let t0 = std::time::Instant::now();
        let (fetched, block) = decode(m, cpu, pc, mode)?;
        let mut env = RecordEnvImpl {
            memory: memory_model(m, mode),
            stubs: &mut m.stubs,
        };
        let program = translator::record::record(&mut env, &block, mode, self.vendor);
        if let Some(what) = program.broken {
            // A translator bug, not the guest's: its program would leave as Unsupported,
            // which the guest would now see as a #UD.
            return Err(Fetch::Stop(RunOutcome::InternalError(format!(
                "the block at {pc:#x} could not be recorded: {what}"
            ))));
        }
        let byte_len = block.byte_len();
        let phys_ranges = fetched.phys_ranges(byte_len);
        let fresh = code_free_pages(m, &phys_ranges);
        let id = cache_mut(m).insert(BlockInfo {
            key,
            virt_pc: pc,
            host: HostCode::NONE,
            code_len: 0,
            phys_ranges,
            guest_insns: program.insns,
            slots: SlotRange::EMPTY,
        });
        protect_code(m, cpu, pc, &fetched, byte_len, fresh);
        let chain_mode = by_virtual_pc(mode).then_some(key.mode);
        self.cold.insert(m, id, key.phys_pc, program, chain_mode);
        self.cold.stats.record_ns += u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        Ok(id)
    }

    /// Builds the IR of hot block `cold` (key `key`, cold or quick code) as `tier` code and
    /// hands it to the background compiler; on any trouble the block simply stays as it is.
    fn compile_in_background(
        &mut self,
        m: &mut Machine,
        cpu: &mut CpuState,
        cold: BlockId,
        key: BlockKey,
        mode: Mode,
        tier: Tier,
    ) -> Result<(), Fetch> {
        if self.worker.is_none() {
            let quick = self.quick.as_ref().unwrap_or(&self.jit).compiler();
            match Worker::start(quick, self.jit.compiler()) {
                Ok(w) => self.worker = Some(w),
                Err(_) => {
                    // No thread: compile inline from now on.
                    self.tiering.background = false;
                    return Ok(());
                }
            }
        }
        let (fetched, block) = decode(m, cpu, key.virt_pc, mode)?;
        let region = self.region(m, &fetched, block, mode);
        // The cold (or quick) block guards the entry's bytes until the code is installed;
        // the rest of a region's are compared then (a region whose bytes cannot be read back
        // is not compiled: it would be installed with only its entry's bytes tracked).
        let snapshot = match region.is_region() {
            false => None,
            true => match region.snapshot(m) {
                Some(s) => Some(s),
                None => return Ok(()),
            },
        };
        let (slots, counter) = self.reserve(m, tier)?;
        let mut env = block_env(m, &region.blocks[0], mode, slots);
        env.counter = counter.map(|c| self.counters.addr(c));
        let host_fp = crate::fpu::HostFp::new();
        // Both JITs build the same IR; only their compilers differ.
        let built = self.jit.build_region(&region.blocks, mode, &mut env);
        drop(host_fp);
        let used = env.used;
        let Ok(built) = built else {
            self.spare = Some(slots);
            return Ok(());
        };
        self.count_region(&region);
        let pending = Pending {
            key,
            first_tier: self.cold.contains(cold),
            cold,
            tier,
            counter,
            slots,
            used,
            flushes: self.flushes,
            region: snapshot,
        };
        if let Some(w) = self.worker.as_mut() {
            if w.submit(built, pending) {
                self.cold.stats.background_jobs += 1;
            }
        }
        Ok(())
    }

    /// Installs a finished background compilation if its cold block is still current.
    fn install_background(&mut self, m: &mut Machine, done: Done) {
        let Done { pending, result } = done;
        let current = pending.flushes == self.flushes
            && cache(m)
                .and_then(|c| c.block(pending.cold))
                .is_some_and(|b| b.key == pending.key);
        let compiled = match result {
            Ok(c) if current => c,
            // Stale (the block was replaced or invalidated meanwhile) or failed: the block
            // stays as it is. A compile error is a bug worth seeing in the stats but not worth
            // stopping a guest that runs fine in the interpreter tier.
            _ => {
                self.cold.stats.background_discarded += 1;
                return;
            }
        };
        let phys_ranges = match &pending.region {
            Some(snap) if snap.still_current(m) => snap.ranges.clone(),
            Some(_) => {
                // Bytes of the region outside its entry changed while it compiled.
                self.cold.stats.background_discarded += 1;
                return;
            }
            None => cache(m)
                .and_then(|c| c.block(pending.cold))
                .map(|b| b.phys_ranges.clone())
                .unwrap_or_default(),
        };
        let host = match cache_mut(m).alloc_code(&compiled.code) {
            Ok(host) => host,
            Err(_) => {
                // Full: make room for later compilations; this one is lost with the rest.
                self.flush(m);
                self.cold.stats.background_discarded += 1;
                return;
            }
        };
        self.install(m, Placed::from(&pending), host, &compiled, phys_ranges);
    }

    /// The slots for the next block: the spare range, or a new one (flushing if full).
    fn reserve_slots(&mut self, m: &mut Machine) -> Result<SlotRange, Fetch> {
        if let Some(r) = self.spare.take() {
            return Ok(r);
        }
        match cache_mut(m).alloc_slots(SLOTS_PER_BLOCK) {
            Ok(r) => Ok(r),
            Err(CacheError::Full) => {
                self.flush(m);
                cache_mut(m).alloc_slots(SLOTS_PER_BLOCK).map_err(|e| {
                    Fetch::Stop(RunOutcome::InternalError(format!(
                        "allocating link slots: {e}"
                    )))
                })
            }
            Err(e) => Err(Fetch::Stop(RunOutcome::InternalError(format!(
                "allocating link slots: {e}"
            )))),
        }
    }

    /// Empties the code cache.
    fn flush(&mut self, m: &mut Machine) {
        cache_mut(m).flush();
        self.cold.clear();
        self.counters.clear();
        self.counting.clear();
        self.entry.flushed();
        self.spare = None;
        self.flushes += 1;
    }
}

impl<H: HostEntry> vcpu::ExecEngine for Dbt<H> {
    fn run_block(&mut self, m: &mut Machine, cpu: &mut CpuState) -> Result<Exit, RunOutcome> {
        if let Some(done) = self.worker.as_mut().and_then(Worker::poll) {
            self.install_background(m, done);
        }
        let link_from = self.link_from.take();
        let Some(next) = self.block_for(m, cpu, link_from)? else {
            return Ok(Exit::Continue);
        };
        self.stats.dispatches += 1;
        m.executing = Executing::Jit;
        let host = match next {
            Next::Host(host) => host,
            Next::Cold(id) => return self.run_cold(m, cpu, id),
        };
        cpu.status = 0;
        cpu.link_slot = 0;
        cpu.runtime = m as *mut Machine as usize;
        let cpu_ptr: *mut CpuState = cpu;
        // SAFETY: `host` is a live block (or the exit stub) in the cache's executable
        // memory, generated for this machine: it reaches guest RAM only behind bounds
        // checks, the code bitmap and link slots the cache keeps alive, and the machine
        // only through helpers given `cpu.runtime`, set just above. Neither `m` nor `cpu`
        // is used until the call returns.
        let exit = unsafe { self.entry.enter(self.enter, cpu_ptr, host.0) };
        if exit == translator::ExitReason::Promote as u64 {
            self.promote(m, cpu)?;
        }
        match handle_exit(m, cpu, exit) {
            ExitAction::Continue { link_from } => {
                self.link_from = link_from;
                Ok(Exit::Continue)
            }
            ExitAction::SingleStep => Ok(Exit::SingleStep),
            ExitAction::Stop(outcome) => Err(outcome),
        }
    }

    fn step(&mut self, m: &mut Machine, cpu: &mut CpuState) -> Result<(), RunOutcome> {
        self.stats.single_steps += 1;
        interp::single_step(m, cpu).map_or(Ok(()), Err)
    }

    fn interrupted(&mut self) {
        self.link_from = None;
    }

    fn forget_mappings(&mut self, m: &mut Machine, keep_global: bool) {
        // Virtual-PC-keyed state is stale: the jump cache, and any pending link (links
        // never cross pages while paging is on, see `BlockEnv::link_slot`). After a
        // non-global flush what was found through global translations stays, as those
        // translations stay in a CPU's TLB.
        match keep_global {
            true => cache_mut(m).jump_cache_clear_non_global(),
            false => cache_mut(m).jump_cache_clear(),
        }
        self.cold.forget_mappings(keep_global);
        self.link_from = None;
    }
}

/// Whether blocks of `mode` may be found by virtual PC (the jump cache, the cold tier's
/// lookups, links): not while CS has a base outside 64-bit mode, where EIP alone does not
/// name the code (the same EIP in another code segment is other code).
fn by_virtual_pc(mode: Mode) -> bool {
    !mode.cs_based
}

/// Fetches and decodes the block at guest-virtual `pc`.
fn decode(
    m: &mut Machine,
    cpu: &CpuState,
    pc: u64,
    mode: Mode,
) -> Result<(crate::machine::Fetched, translator::decode::DecodedBlock), Fetch> {
    let fetched = m.fetch_code(cpu, pc).map_err(Fetch::Fault)?;
    let block = decode_block(&fetched.bytes, pc, mode, MAX_BLOCK_INSNS);
    if block.insns.is_empty() {
        let lin = crate::system::mode::code_linear(cpu, pc);
        let exc = not_present(lin.wrapping_add(fetched.bytes.len() as u64), Access::Fetch);
        return Err(Fetch::Fault(exc));
    }
    Ok((fetched, block))
}

/// Where a block whose last instruction runs onto the next page has its bytes there: the
/// first of `ranges` on another page than the first range's (a region's other ranges share
/// its entry's page).
fn next_page_range(ranges: &[(u64, u64)]) -> Option<u64> {
    let page = |a: u64| a & !(PAGE_SIZE - 1);
    let first = page(ranges.first()?.0);
    ranges.iter().map(|r| r.0).find(|&s| page(s) != first)
}

/// Whether all the code of block `id` lies on one page: then a global translation of that
/// page, which a non-global flush keeps, is all that finding it by virtual PC needs.
fn on_one_page(m: &Machine, id: BlockId) -> bool {
    cache(m)
        .and_then(|c| c.block(id))
        .is_some_and(BlockInfo::on_one_page)
}

/// Whether the cached block `id` found for guest-virtual `pc` may run: a block whose last
/// instruction runs onto the next page needs that page to map where it did at translation.
fn straddle_still_mapped(m: &mut Machine, cpu: &CpuState, pc: u64, id: BlockId) -> bool {
    let next = cache(m)
        .and_then(|c| c.block(id))
        .and_then(|b| next_page_range(&b.phys_ranges));
    next.is_none_or(|phys| m.next_code_page_is(cpu, pc, phys))
}

/// Why no block could be found at `cpu.rip`.
enum Fetch {
    /// Fetching the code raised a guest exception (delivered by the caller).
    Fault(translator::Exception),
    /// The run must stop.
    Stop(RunOutcome),
}

/// Where and as what a compilation is installed (see [`Dbt::install`]).
struct Placed {
    key: BlockKey,
    /// The block's link slots, and how many of them the code uses.
    slots: SlotRange,
    used: usize,
    tier: Tier,
    /// Its hotness counter ([`HotCounters`] index), for quick code that counts.
    counter: Option<usize>,
}

impl From<&Pending> for Placed {
    fn from(p: &Pending) -> Placed {
        Placed {
            key: p.key,
            slots: p.slots,
            used: p.used,
            tier: p.tier,
            counter: p.counter,
        }
    }
}

mod env;
mod perf_map;
mod promote;
mod region;
#[cfg(test)]
mod tests;
mod tracking;
