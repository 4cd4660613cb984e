//! What the JIT gets from the runtime while the dbt engine translates a block: link slots,
//! the memory model, the jump cache, host stubs and helper addresses ([`JitEnv`]).

use cache::SlotRange;
use translator::jit::{JitEnv, JumpCacheLayout, MemoryModel};
use translator::{Helper, Mode};

use super::tracking::{installed, jit_jump_cache, memory_model};
use super::SLOTS_PER_BLOCK;
use crate::helpers::helper_addr;
use crate::machine::Machine;
use crate::memory::PAGE_SIZE;

/// What the JIT gets from the runtime while one block is translated.
pub(super) struct BlockEnv<'a> {
    /// With paging on: the (first, last) page of the block; direct exits elsewhere are not
    /// linked.
    pub(super) same_page_links: Option<(u64, u64)>,
    pub(super) memory: MemoryModel,
    /// The code cache's jump cache, for inline probes on indirect exits.
    pub(super) jump_cache: JumpCacheLayout,
    /// The slots reserved for the block, as addresses.
    pub(super) slots: [usize; SLOTS_PER_BLOCK],
    pub(super) used: usize,
    /// Where host stubs are installed.
    pub(super) stubs: &'a mut crate::stubs::HostStubs,
    /// The block's hotness counter (quick code), as an address.
    pub(super) counter: Option<usize>,
}

impl JitEnv for BlockEnv<'_> {
    fn hot_counter(&mut self) -> Option<usize> {
        self.counter
    }
    fn host_stub(&mut self, stub: &translator::hostexec::HostStub) -> Option<usize> {
        self.stubs.addr(&stub.code)
    }
    fn preserving_trampoline(&self) -> Option<usize> {
        Some(crate::trampoline::address())
    }
    fn helper_addr(&self, h: Helper) -> usize {
        helper_addr(h)
    }
    fn memory(&self) -> MemoryModel {
        self.memory
    }
    fn jump_cache(&self) -> Option<JumpCacheLayout> {
        Some(self.jump_cache)
    }
    fn link_slot(&mut self, target_pc: u64) -> Option<usize> {
        if let Some((first, last)) = self.same_page_links {
            let page = target_pc & !(PAGE_SIZE - 1);
            if page != first && page != last {
                return None;
            }
        }
        let slot = self.slots.get(self.used).copied()?;
        self.used += 1;
        Some(slot)
    }
}

/// What the JIT gets while it translates `block` with link slots `slots`.
pub(super) fn block_env<'a>(
    m: &'a mut Machine,
    block: &translator::decode::DecodedBlock,
    mode: Mode,
    slots: SlotRange,
) -> BlockEnv<'a> {
    let memory = memory_model(m, mode);
    let cache = installed(m);
    let pc = block.pc;
    BlockEnv {
        // While paging is on, a direct link may only stay on the block's own pages: their
        // mapping is the one the dispatcher found the block through.
        same_page_links: mode.paging.then(|| {
            let last = block.insns.last().map_or(pc, |i| i.ip());
            (pc & !(PAGE_SIZE - 1), last & !(PAGE_SIZE - 1))
        }),
        memory,
        jump_cache: jit_jump_cache(cache.jump_cache_layout()),
        slots: std::array::from_fn(|i| cache.slot_addr(slots, i) as usize),
        used: 0,
        stubs: &mut m.stubs,
        counter: None,
    }
}
