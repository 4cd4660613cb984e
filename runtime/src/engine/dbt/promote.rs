//! The DBT engine's compiled tiers: which tier a hot block gets, the hotness counters of
//! quick code, and the promotion of quick code that stays hot to optimized code.
//!
//! Invariants (those of [`super::super::tier`], and):
//! - A block is in `Dbt::counting` from the installation of its counting quick code until
//!   it is promoted (or a flush); its counter is never shared with another block.
//! - A promotion never stops the guest: the quick block keeps running until optimized code
//!   of the same key replaces it, and if that never happens (the compile failed, the block
//!   was invalidated), it simply stays quick.

use cache::{BlockKey, SlotRange};
use translator::CpuState;

use super::{by_virtual_pc, cache, cache_mut, Dbt, Fetch, HostEntry};
use crate::engine::tier::{Tier, Tiering};
use crate::engine::RunOutcome;
use crate::machine::Machine;

impl<H: HostEntry> Dbt<H> {
    /// The tier a block turning hot in the interpreter tier is compiled in.
    pub(super) fn hot_tier(&self) -> Tier {
        if self.quick.is_some() {
            Tier::Quick
        } else {
            Tier::Optimized
        }
    }

    /// Whether a compilation may go to the background compiler now: a first-tier one
    /// (`first_tier`) counts only the first-tier ones ahead of it, since the compiler takes
    /// those before promotions (see [`Tiering::MAX_FIRST_TIER_BACKLOG`] and
    /// [`Tiering::MAX_BACKLOG`]).
    pub(super) fn background_has_room(&self, first_tier: bool) -> bool {
        let (backlog, max) = match first_tier {
            true => (
                self.worker.as_ref().map_or(0, |w| w.first_in_flight()),
                Tiering::MAX_FIRST_TIER_BACKLOG,
            ),
            false => (
                self.worker.as_ref().map_or(0, |w| w.in_flight()),
                Tiering::MAX_BACKLOG,
            ),
        };
        self.tiering.background && backlog < max
    }

    /// The link slots for the next `tier` block, and its hotness counter if it counts
    /// (flushing if the counters ran out: a flush frees them all).
    pub(super) fn reserve(
        &mut self,
        m: &mut Machine,
        tier: Tier,
    ) -> Result<(SlotRange, Option<usize>), Fetch> {
        let slots = self.reserve_slots(m)?;
        let runs = self.tiering.optimize_after;
        if tier == Tier::Optimized || runs == Tiering::NEVER {
            return Ok((slots, None));
        }
        if let Some(c) = self.counters.alloc(runs) {
            return Ok((slots, Some(c)));
        }
        self.flush(m);
        let slots = self.reserve_slots(m)?;
        Ok((slots, self.counters.alloc(runs)))
    }

    /// The quick block at `cpu.rip` left with [`translator::ExitReason::Promote`]: compile
    /// it optimized, in the background if the compiler has room (the guest goes on in the
    /// quick code meanwhile), inline without a background compiler. A busy background
    /// compiler puts the block back to counting instead of compiling inline: the block
    /// already runs compiled code, so an inline compile would stall the guest for a speed-up
    /// that can wait.
    pub(super) fn promote(
        &mut self,
        m: &mut Machine,
        cpu: &mut CpuState,
    ) -> Result<(), RunOutcome> {
        self.cold.stats.promotions += 1;
        let (pc, mode) = (cpu.rip, crate::system::mode::mode(cpu));
        let hit = by_virtual_pc(mode)
            .then(|| cache_mut(m).jump_cache_lookup(pc, mode.key()))
            .flatten();
        let id = match hit {
            Some((id, _)) => Some(id),
            None => m.translate_code(cpu, pc).ok().and_then(|phys| {
                let key = BlockKey {
                    phys_pc: phys.0,
                    virt_pc: pc,
                    mode: mode.key(),
                };
                cache_mut(m).lookup(key).map(|(id, _)| id)
            }),
        };
        let Some(id) = id else {
            return Ok(());
        };
        let key = cache(m).and_then(|c| c.block(id)).map(|b| b.key);
        let (Some(key), Some(&counter)) = (key, self.counting.get(&id)) else {
            return Ok(());
        };
        let started = if self.tiering.background {
            if !self.background_has_room(false) {
                self.counters.rearm(counter, self.tiering.optimize_after);
                self.cold.stats.promotions_deferred += 1;
                return Ok(());
            }
            self.compile_in_background(m, cpu, id, key, mode, Tier::Optimized)
        } else {
            self.translate(m, cpu, pc, key, mode, Tier::Optimized)
                .map(|_| ())
        };
        self.counting.remove(&id);
        match started {
            // The block runs again from its start: if its code cannot be fetched now, it
            // faults there, as the guest should see it.
            Ok(()) | Err(Fetch::Fault(_)) => Ok(()),
            Err(Fetch::Stop(outcome)) => Err(outcome),
        }
    }
}
