//! The DBT engine's tiers: cold blocks run as recorded programs ([`translator::record`], the
//! interpreter tier), hot ones as Cranelift code compiled cheaply ([`Tier::Quick`]), and the
//! blocks that stay hot in quick code are compiled again with full optimization
//! ([`Tier::Optimized`]); each compilation inline or on a background thread.
//!
//! Invariants:
//! - A cold block is a block of the machine's code cache with [`HostCode::NONE`]: its bytes
//!   are tracked, invalidated and write-protected exactly as compiled code's, and generated
//!   code never reaches it (the cache neither links to it nor puts it in the jump cache).
//!   [`ColdBlocks`] holds its program, found by the cache's block id; a program whose block is
//!   no longer live in the cache is never run.
//! - A compiled block replaces the cold block of the same key only if that cold block is still
//!   live and no flush happened since its IR was built: then the bytes it was built from are
//!   still the guest's (any store to them would have invalidated the cold block first).
//! - Optimized code replaces the quick block of the same key under the same condition (that
//!   block still live, no flush since the IR was built): a store into the block's bytes
//!   invalidates the quick block and so drops a pending optimized compilation with it.
//! - Quick code counts its entries in a [`HotCounters`] cell, armed when the code is built
//!   and written by the runtime only while no generated code runs. A flush frees every
//!   cell, after the code that used them is gone.
//! - The background thread takes first-tier compilations (a cold block turning hot) before
//!   promotions (quick code turning hot), each kind in the order queued.
//! - The background thread sees nothing but IR and returns nothing but bytes; everything that
//!   touches the machine (IR building, which asks for link slots and host stubs, and
//!   installation) happens on the vCPU thread.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Condvar, Mutex};

use cache::{BlockId, BlockKey, SlotRange};
use hashbrown::HashMap;
use translator::jit::{
    BuiltBlock, CompiledBlock, Compiler, JitConfig, JitError, MemoryModel, OptLevel, Regalloc,
};

use super::block_slab::BlockSlab;
use super::dbt::cache;
use translator::record::exec::run;
use translator::record::{Program, RecordEnv};
use translator::{CpuState, ExitReason};

use crate::machine::Machine;

/// When blocks are compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiering {
    /// Runs of a block in the interpreter tier after which it is compiled: 0 compiles every
    /// block before it first runs (the `jit` engine), [`Tiering::NEVER`] never compiles (the
    /// `interp` engine).
    pub compile_after: u32,
    /// Runs of a block's quick code after which it is compiled again, optimized: 0 compiles
    /// hot blocks optimized at once (no quick tier), [`Tiering::NEVER`] keeps them quick.
    /// Only for `compile_after > 0` (the `jit` engine compiles everything optimized).
    pub optimize_after: u32,
    /// Compile on a second thread while the interpreter tier keeps running the block.
    pub background: bool,
    /// Compile a hot block with the blocks of the loop around it, as one region
    /// ([`translator::region`]).
    pub regions: bool,
}

impl Tiering {
    /// Background compilations queued (or done and not yet installed) past which quick
    /// code turning hot is put back to counting instead of being queued for optimizing:
    /// one compiling, one waiting, so promotions never hold up the first tier for long.
    pub const MAX_BACKLOG: usize = 2;
    /// First-tier compilations queued (or done and not yet installed) past which a cold
    /// block turning hot is compiled on the vCPU's thread instead. Deep: in the Linux boot
    /// blocks turn hot in bursts while the compile thread is idle most of the time, and
    /// an inline compile stalls the guest for all of its ~0.2 ms where waiting costs only
    /// the block's interpreted runs meanwhile (with 2, a third of the boot's compiles were
    /// inline and the vCPU thread spent 12% more time to `Run /init`).
    pub const MAX_FIRST_TIER_BACKLOG: usize = 64;

    /// `compile_after` value that never compiles.
    pub const NEVER: u32 = u32::MAX;
    /// Default hotness threshold (runs). Measured (benches/README.md, "Tier-up threshold"):
    /// over the workload guests 200 and 500 tie (geometric mean 15.5x native at scale 10)
    /// and beat 50 (16.7x), the Linux boot reaches /init a little sooner at 200-500 than at
    /// 50, and the cold-code guest loses 8% at 200 (it never gets hot at any of them: the
    /// difference is blocks run 50-200 times).
    pub const DEFAULT_THRESHOLD: u32 = 200;
    /// Default `optimize_after` (runs of quick code). Measured (benches/README.md, "Tier-up
    /// threshold of the second compiled tier"): 2000 and 10000 tie on the workload guests
    /// and beat 500 and 0 (no quick tier); the lower of the two, since quick code is up to
    /// twice as slow on hot arithmetic.
    pub const DEFAULT_OPTIMIZE_AFTER: u32 = 2000;

    /// Compile everything before it runs (the `jit` and `trap` engines).
    pub const JIT: Tiering = Tiering {
        compile_after: 0,
        optimize_after: 0,
        background: false,
        regions: false,
    };
    /// Never compile (the `interp` engine).
    pub const INTERP: Tiering = Tiering {
        compile_after: Tiering::NEVER,
        optimize_after: 0,
        background: false,
        regions: false,
    };

    /// The tiered default: interpret cold blocks, compile hot ones, in the background when
    /// the host has a second core.
    pub fn tiered() -> Tiering {
        Tiering {
            compile_after: Tiering::DEFAULT_THRESHOLD,
            optimize_after: Tiering::DEFAULT_OPTIMIZE_AFTER,
            background: std::thread::available_parallelism().is_ok_and(|n| n.get() > 1),
            regions: true,
        }
    }
}

/// Counters of the interpreter tier.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TierStats {
    /// Blocks recorded.
    pub blocks_recorded: u64,
    /// Guest instructions in recorded blocks.
    pub guest_insns_recorded: u64,
    /// Nanoseconds spent decoding and recording.
    pub record_ns: u64,
    /// Runs of recorded blocks (entries from the dispatcher or chained).
    pub cold_runs: u64,
    /// Of those, runs chained from another cold block without the dispatcher.
    pub chained: u64,
    /// Blocks handed to the background compiler.
    pub background_jobs: u64,
    /// Background compilations thrown away (their block changed or the cache was flushed).
    pub background_discarded: u64,
    /// Blocks kept in the interpreter tier because their code kept being rewritten.
    pub pinned_cold: u64,
    /// Quick blocks that turned hot ([`translator::ExitReason::Promote`] exits).
    pub promotions: u64,
    /// Of those, put back to counting because the background compiler was busy.
    pub promotions_deferred: u64,
}

/// A compiled tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// Cheap to compile (no mid-end optimization, single-pass register allocation), and
    /// counting its runs to be optimized once it stays hot.
    Quick,
    /// Cranelift's full optimization (the `jit` engine's only tier).
    Optimized,
}

impl Tier {
    /// The JIT settings of the tier (over `base`, the engine's settings).
    pub fn config(self, base: JitConfig) -> JitConfig {
        match self {
            Tier::Quick => JitConfig {
                opt_level: OptLevel::None,
                regalloc: Regalloc::SinglePass,
                ..base
            },
            Tier::Optimized => base,
        }
    }
}

/// Hotness counters of quick code: `u64` cells at stable addresses (see the module
/// invariants), bump-allocated, all freed at once by a flush.
pub struct HotCounters {
    cells: Box<[AtomicU64]>,
    used: usize,
}

impl HotCounters {
    /// Room for `capacity` counters.
    pub fn new(capacity: usize) -> HotCounters {
        HotCounters {
            cells: (0..capacity.max(1)).map(|_| AtomicU64::new(0)).collect(),
            used: 0,
        }
    }

    /// A new counter that reaches zero after `runs` entries; `None` when all are in use
    /// (flush and retry).
    pub fn alloc(&mut self, runs: u32) -> Option<usize> {
        let i = self.used;
        self.cells
            .get(i)?
            .store(u64::from(runs.max(1)), Ordering::Relaxed);
        self.used += 1;
        Some(i)
    }

    /// Counts `runs` more entries on counter `i` before it reaches zero again.
    pub fn rearm(&self, i: usize, runs: u32) {
        if let Some(c) = self.cells.get(i) {
            c.store(u64::from(runs.max(1)), Ordering::Relaxed);
        }
    }

    /// The address generated code counts counter `i` at.
    pub fn addr(&self, i: usize) -> usize {
        self.cells.get(i).map_or(0, |c| c.as_ptr() as usize)
    }

    /// Current value of counter `i` (entries left before it turns hot).
    pub fn get(&self, i: usize) -> u64 {
        self.cells.get(i).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Frees every counter (the cache was flushed: no code counts any more).
    pub fn clear(&mut self) {
        self.used = 0;
    }
}

/// A recorded block and how often it ran.
struct Cold {
    program: Program,
    /// Runs counted towards compiling it (not counted in a chain when compiling is off).
    runs: u32,
    /// Handed to the background compiler (do not hand it again).
    queued: bool,
    /// Never compile (its code keeps changing).
    pinned: bool,
    /// The blocks it last chained to, latest first: a block ending in a conditional branch
    /// usually chains to one of its two targets again (with one entry, a fifth of the chains
    /// of `sort` went through the lookup table).
    next: [Option<Successor>; 2],
    /// The mode key of the block's successors, when the block cannot change its own mode
    /// ([`Program::keeps_mode`]) and chains by virtual PC in it: then the mode need not be
    /// worked out again after it ran.
    keeps: Option<u32>,
}

/// A cold block's last successor: what the lookup table gave for `(pc, mode)` in `epoch`.
#[derive(Clone, Copy)]
struct Successor {
    pc: u64,
    mode: u32,
    id: BlockId,
    at: u32,
    epoch: u64,
}

/// Times a block at one physical address may be recorded before it stays cold: each new
/// recording after the first means its code (or a neighbour's on the same bytes) changed.
const MAX_RERECORDS: u8 = 4;

/// Entries of the cold blocks' direct-mapped lookup table.
const JUMP_ENTRIES: usize = 4096;

/// `(virt_pc, mode, block, its position in ColdBlocks::blocks, found through a global
/// translation)`.
type JumpEntry = (u64, u32, BlockId, u32, bool);

/// The interpreter tier's blocks. See the module invariants.
pub struct ColdBlocks {
    blocks: BlockSlab<Cold>,
    /// The dispatcher's fast path to them.
    table: JumpTable,
    /// Times a block was recorded at a physical address (see [`MAX_RERECORDS`]).
    recorded_at: HashMap<u64, u8>,
    /// Counters.
    pub stats: TierStats,
}

/// Cold blocks by guest-virtual PC and mode: a direct-mapped table, and its epoch.
struct JumpTable {
    /// Entries by hash of their `virt_pc` and mode.
    entries: Box<[Option<JumpEntry>]>,
    /// Changes whenever `entries` does: a [`Successor`] of another epoch is not trusted.
    epoch: u64,
    /// [`Machine::invlpgs`] when `entries` was last known valid.
    invlpgs: u64,
}

impl Default for ColdBlocks {
    fn default() -> Self {
        ColdBlocks {
            blocks: BlockSlab::default(),
            table: JumpTable {
                entries: vec![None; JUMP_ENTRIES].into_boxed_slice(),
                epoch: 0,
                invlpgs: 0,
            },
            recorded_at: HashMap::new(),
            stats: TierStats::default(),
        }
    }
}

fn jump_index(pc: u64, mode: u32) -> usize {
    (cache::jump_cache_hash(pc, mode) as usize) & (JUMP_ENTRIES - 1)
}

impl JumpTable {
    /// The block remembered for guest-virtual `pc` in `mode` and its position in
    /// [`ColdBlocks::blocks`], if it is live in `m`'s cache.
    fn find(&mut self, m: &Machine, pc: u64, mode: u32) -> Option<(BlockId, u32)> {
        if m.invlpgs != self.invlpgs {
            self.forget_after_invlpg(m.invlpgs);
            return None;
        }
        let (p, md, id, at, _) = self.entries[jump_index(pc, mode)]?;
        let hit = p == pc && md == mode && cache(m).is_some_and(|c| c.block(id).is_some());
        hit.then_some((id, at))
    }

    /// Whether `s`, found by [`JumpTable::find`], is still what it would find for `pc` in
    /// `mode` (the block's liveness aside).
    #[inline]
    fn still(&self, m: &Machine, s: &Successor, pc: u64, mode: u32) -> bool {
        s.pc == pc && s.mode == mode && s.epoch == self.epoch && m.invlpgs == self.invlpgs
    }

    /// Some page's mapping changed (`invlpgs` INVLPGs so far); which PCs it covered is not
    /// worth working out. Out of line: [`JumpTable::find`] is on the per-block path.
    #[cold]
    #[inline(never)]
    fn forget_after_invlpg(&mut self, invlpgs: u64) {
        self.invlpgs = invlpgs;
        self.forget(false);
    }

    /// Forgets every entry, but with `keep_global` those found through global translations.
    fn forget(&mut self, keep_global: bool) {
        match keep_global {
            true => self
                .entries
                .iter_mut()
                .filter(|e| e.is_some_and(|(.., global)| !global))
                .for_each(|e| *e = None),
            false => self.entries.fill(None),
        }
        self.epoch += 1;
    }
}

impl ColdBlocks {
    /// The cold block cached for guest-virtual `pc` in `mode`, if it is live in `m`'s cache.
    pub fn lookup(&mut self, m: &Machine, pc: u64, mode: u32) -> Option<BlockId> {
        self.table.find(m, pc, mode).map(|(id, _)| id)
    }

    /// Remembers `id` for `pc` in `mode`; with `global` (its code, all on one page, was
    /// found through a global translation) across non-global flushes.
    pub fn remember(&mut self, pc: u64, mode: u32, id: BlockId, global: bool) {
        let at = self.blocks.position(id).unwrap_or(u32::MAX);
        self.table.entries[jump_index(pc, mode)] = Some((pc, mode, id, at, global));
        self.table.epoch += 1;
    }

    /// Forgets every virtual-address lookup (the guest changed its mappings), but with
    /// `keep_global` (a non-global flush) those found through global translations.
    pub fn forget_mappings(&mut self, keep_global: bool) {
        self.table.forget(keep_global);
    }

    /// Forgets everything (the cache was flushed).
    pub fn clear(&mut self) {
        self.blocks.clear();
        self.forget_mappings(false);
    }

    /// Whether `id` is one of ours.
    pub fn contains(&self, id: BlockId) -> bool {
        self.blocks.contains(id)
    }

    /// Adds the program of cold block `id` (recorded at guest-physical `phys_pc`).
    /// `chain_mode`: the key of the mode it runs in, if blocks chain by virtual PC in that
    /// mode.
    pub fn insert(
        &mut self,
        m: &Machine,
        id: BlockId,
        phys_pc: u64,
        program: Program,
        chain_mode: Option<u32>,
    ) {
        self.stats.blocks_recorded += 1;
        self.stats.guest_insns_recorded += u64::from(program.insns);
        let n = self.recorded_at.entry(phys_pc).or_insert(0);
        *n = n.saturating_add(1);
        let pinned = *n > MAX_RERECORDS;
        self.stats.pinned_cold += u64::from(pinned && *n == MAX_RERECORDS + 1);
        let keeps = chain_mode.filter(|_| program.keeps_mode());
        let cold = Cold {
            keeps,
            program,
            runs: 0,
            queued: false,
            pinned,
            next: [None; 2],
        };
        self.blocks.insert(id, cold);
        // Programs of blocks the cache dropped (invalidated, replaced by compiled code) are
        // pruned in bulk, when they outnumber the live ones.
        let live = cache(m).map_or(0, |c| c.stats().blocks_live);
        if self.blocks.len() > 2 * live + 1024 {
            if let Some(c) = cache(m) {
                self.blocks.retain(|id| c.block(id).is_some());
            }
        }
    }

    /// Counts a run of `id`; true if it has now run `threshold` times and should be
    /// compiled (once).
    pub fn count_run(&mut self, id: BlockId, threshold: u32) -> bool {
        let Some(c) = self.blocks.get(id) else {
            return false;
        };
        c.runs = c.runs.saturating_add(1);
        if c.pinned || c.queued || c.runs < threshold {
            return false;
        }
        c.queued = true;
        true
    }

    /// Runs cold block `id` on `cpu`, and then, while `next_mode` gives the mode of a plain
    /// jump's target (`None`: leave to the dispatcher; its last argument is that mode's key
    /// if the block that ran could not have changed it), the live cold block there, unless
    /// its next run (counted here) makes it due for compiling. The last exit reason (as
    /// generated code returns it), or `None` if `id` is gone (a flush since it was found).
    /// A block looping on itself returns after `threshold` iterations, each counted as a
    /// run: a hot loop entered once is compiled like any hot block.
    ///
    /// Each block remembers its last two successors, checked against the lookup table's epoch
    /// and the code cache, so a chain usually costs no table lookup or hashing.
    pub fn run_chain(
        &mut self,
        id: BlockId,
        m: &mut Machine,
        cpu: &mut CpuState,
        threshold: u32,
        mut next_mode: impl FnMut(&Machine, &CpuState, Option<u32>) -> Option<u32>,
    ) -> Option<u64> {
        let ColdBlocks {
            blocks,
            table,
            stats,
            ..
        } = self;
        // The block running, held from one run to the next: finding it again by position
        // cost a bounds check and an id comparison per block.
        let mut c = blocks.get(id)?;
        // With compiling off (the `interp` engine) runs need no counting.
        let counting = threshold != Tiering::NEVER;
        loop {
            // Stores to code stop the block as they stop generated code.
            cpu.status = 0;
            cpu.link_slot = 0;
            stats.cold_runs += 1;
            let max_loops = if c.pinned { u32::MAX } else { threshold };
            let ran = run(&mut c.program, cpu, m, max_loops);
            if counting {
                c.runs = c.runs.saturating_add(ran.loops);
            }
            let exit = ran.exit;
            if exit != ExitReason::Jump as u64 {
                return Some(exit);
            }
            let Some(mode) = next_mode(m, cpu, c.keeps) else {
                return Some(exit);
            };
            let pc = cpu.rip;
            let known = c
                .next
                .iter()
                .flatten()
                .find(|n| table.still(m, n, pc, mode))
                .copied();
            let next = match known {
                Some(n) if cache(m).is_some_and(|c| c.block(n.id).is_some()) => n,
                _ => {
                    let Some((id, at)) = table.find(m, pc, mode) else {
                        return Some(exit);
                    };
                    let n = Successor {
                        pc,
                        mode,
                        id,
                        at,
                        epoch: table.epoch,
                    };
                    // Replace the entry for the same PC (stale), else the older one.
                    if c.next[0].is_some_and(|o| o.pc == pc) {
                        c.next[0] = Some(n);
                    } else {
                        c.next = [Some(n), c.next[0]];
                    }
                    n
                }
            };
            let Some(n) = blocks.get_at(next.at, next.id) else {
                return Some(exit);
            };
            if counting {
                if !n.pinned && !n.queued && n.runs.saturating_add(1) >= threshold {
                    return Some(exit);
                }
                n.runs = n.runs.saturating_add(1);
            }
            stats.chained += 1;
            c = n;
        }
    }
}

/// What the recorder gets from the runtime.
pub struct RecordEnvImpl<'a> {
    /// How guest memory is reached.
    pub memory: MemoryModel,
    /// Where host stubs are installed.
    pub stubs: &'a mut crate::stubs::HostStubs,
}

impl RecordEnv for RecordEnvImpl<'_> {
    fn memory(&self) -> MemoryModel {
        self.memory
    }
    fn host_stub(&mut self, stub: &translator::hostexec::HostStub) -> Option<usize> {
        self.stubs.addr(&stub.code)
    }
}

/// What must be true to install a background compilation, and how.
pub struct Pending {
    /// The block's key (the replaced block's).
    pub key: BlockKey,
    /// The block it replaces: cold, or quick code.
    pub cold: BlockId,
    /// The tier compiled.
    pub tier: Tier,
    /// Whether it replaces a cold block (a first-tier compilation), not quick code (a
    /// promotion): first-tier ones are compiled first.
    pub first_tier: bool,
    /// Its hotness counter ([`HotCounters`] index), for quick code that counts.
    pub counter: Option<usize>,
    /// Its link slots, and how many the code uses.
    pub slots: SlotRange,
    /// How many of `slots` the code uses.
    pub used: usize,
    /// The engine's flush count when the IR was built.
    pub flushes: u64,
    /// For a region: its guest-physical ranges and their bytes when the IR was built (the
    /// cold block guards only the entry's).
    pub region: Option<super::dbt::RegionSnapshot>,
}

/// A finished background compilation.
pub struct Done {
    /// What it was for.
    pub pending: Pending,
    /// The code.
    pub result: Result<CompiledBlock, JitError>,
}

/// A compilation job: the IR, and what installing it needs.
type Job = (BuiltBlock, Pending);

/// The background compiler's queue: first-tier compilations (a cold block turning hot) go
/// before promotions (quick code turning hot), which only make running code faster while
/// a first-tier block waiting behind them keeps running in the interpreter tier.
struct Queue<J = Job> {
    first: VecDeque<J>,
    promotions: VecDeque<J>,
    /// The engine is gone: the thread ends (after its current job).
    closed: bool,
}

impl<J> Default for Queue<J> {
    fn default() -> Self {
        Queue {
            first: VecDeque::new(),
            promotions: VecDeque::new(),
            closed: false,
        }
    }
}

impl<J> Queue<J> {
    /// Queues `job`, a first-tier compilation or a promotion.
    fn push(&mut self, job: J, first_tier: bool) {
        match first_tier {
            true => self.first.push_back(job),
            false => self.promotions.push_back(job),
        }
    }

    /// The next job, first-tier ones first.
    fn pop(&mut self) -> Option<J> {
        self.first
            .pop_front()
            .or_else(|| self.promotions.pop_front())
    }
}

/// The queue and the signal that it changed.
type Shared = (Mutex<Queue>, Condvar);

/// The background compiler: a thread compiling IR the vCPU thread built.
pub struct Worker {
    queue: Arc<Shared>,
    done: Receiver<Done>,
    in_flight: usize,
    /// Of `in_flight`, first-tier compilations ([`Pending::first_tier`]).
    first_in_flight: usize,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    /// Starts the thread, compiling each job with the compiler of its [`Pending::tier`].
    pub fn start(mut quick: Compiler, mut optimized: Compiler) -> std::io::Result<Worker> {
        let queue: Arc<Shared> = Arc::default();
        let (tx, done) = channel();
        let theirs = Arc::clone(&queue);
        let thread = std::thread::Builder::new()
            .name("popek-compile".into())
            .spawn(move || {
                while let Some((built, pending)) = next_job(&theirs) {
                    let compiler = match pending.tier {
                        Tier::Quick => &mut quick,
                        Tier::Optimized => &mut optimized,
                    };
                    let result = compiler.compile(built);
                    if tx.send(Done { pending, result }).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Worker {
            queue,
            done,
            in_flight: 0,
            first_in_flight: 0,
            thread: Some(thread),
        })
    }

    /// Queues a compilation (first-tier ones ahead of promotions); false if the thread is
    /// gone.
    pub fn submit(&mut self, built: BuiltBlock, pending: Pending) -> bool {
        let first = pending.first_tier;
        {
            let Ok(mut q) = self.queue.0.lock() else {
                return false; // The thread panicked holding the lock.
            };
            if q.closed {
                return false;
            }
            q.push((built, pending), first);
        }
        self.queue.1.notify_one();
        self.in_flight += 1;
        self.first_in_flight += usize::from(first);
        true
    }

    /// A finished compilation, if any (never blocks).
    pub fn poll(&mut self) -> Option<Done> {
        if self.in_flight == 0 {
            return None;
        }
        let d = self.done.try_recv().ok()?;
        self.in_flight -= 1;
        self.first_in_flight -= usize::from(d.pending.first_tier);
        Some(d)
    }

    /// Compilations queued and not collected yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Of [`Worker::in_flight`], the first-tier ones (which promotions do not delay).
    pub fn first_in_flight(&self) -> usize {
        self.first_in_flight
    }
}

/// The thread's next job, waiting for one; `None` once the queue is closed (or its lock
/// poisoned, which only a panic on the thread itself could do).
fn next_job(shared: &Shared) -> Option<Job> {
    let (lock, changed) = shared;
    let mut q = lock.lock().ok()?;
    loop {
        if q.closed {
            return None;
        }
        if let Some(job) = q.pop() {
            return Some(job);
        }
        q = changed.wait(q).ok()?;
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the queue ends the thread after its current job.
        if let Ok(mut q) = self.queue.0.lock() {
            q.closed = true;
        }
        self.queue.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A non-global flush keeps the cold blocks found through global translations; a
    /// global one (and an INVLPG) forgets them too; either way successors are re-checked.
    #[test]
    fn cold_lookups_of_global_pages_survive_non_global_flushes() {
        let cfg = cache::CacheConfig {
            code_bytes: 1 << 16,
            max_slots: 64,
            jump_cache_entries: 16,
        };
        let mut cc = cache::CodeCache::new(cfg, cache::HostCode(0x1000)).unwrap();
        let mut block = |pc: u64| {
            cc.insert(cache::BlockInfo {
                key: BlockKey {
                    phys_pc: pc & 0xFFFF,
                    virt_pc: pc,
                    mode: 0,
                },
                virt_pc: pc,
                host: cache::HostCode::NONE,
                code_len: 0,
                phys_ranges: vec![(pc & 0xFFFF, (pc & 0xFFFF) + 1)],
                guest_insns: 1,
                slots: SlotRange::EMPTY,
            })
        };
        let mut cold = ColdBlocks::default();
        let (kernel, user) = (0xffff_ffff_8100_0000u64, 0x40_1000u64);
        let (k, u) = (block(kernel), block(user));
        cold.remember(kernel, 1, k, true);
        cold.remember(user, 3, u, false);
        let entry = |c: &ColdBlocks, pc, mode| c.table.entries[jump_index(pc, mode)];
        let epoch = cold.table.epoch;
        cold.forget_mappings(true);
        assert!(entry(&cold, kernel, 1).is_some());
        assert!(entry(&cold, user, 3).is_none());
        assert_ne!(
            cold.table.epoch, epoch,
            "successors are not trusted any more"
        );
        cold.forget_mappings(false);
        assert!(entry(&cold, kernel, 1).is_none());
        cold.remember(kernel, 1, k, true);
        cold.table.forget_after_invlpg(1);
        assert!(
            entry(&cold, kernel, 1).is_none(),
            "INVLPG forgets global ones too"
        );
    }

    #[test]
    fn first_tier_jobs_go_before_promotions_each_in_order() {
        let mut q: Queue<u32> = Queue::default();
        q.push(1, false);
        q.push(2, true);
        q.push(3, false);
        q.push(4, true);
        let order: Vec<u32> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, [2, 4, 1, 3]);
    }
}
