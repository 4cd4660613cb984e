//! The DBT engine's regions: which guest bytes may join a region, and checking, when
//! a background compilation of one finishes, that its bytes are still the guest's.
//!
//! Invariants:
//! - Every block of a region lies wholly in the entry's guest-virtual page, which maps (now,
//!   and for the region's life: the cache finds it through its entry's page) to one
//!   guest-physical RAM page; no block but the entry runs up to the page's end, so none
//!   depends on the next page's mapping. Its bytes are decoded from that RAM page.
//! - [`Region::phys_ranges`] are exactly the bytes of its blocks: the cache invalidates the
//!   region when any of them is written, as it does a block.

use translator::decode::{decode_block, DecodedBlock, MAX_BLOCK_INSNS, PAGE_SIZE};
use translator::Mode;

use super::{by_virtual_pc, Dbt, HostEntry};
use crate::machine::{Fetched, Machine};
use crate::memory::GuestPhys;

/// A region's blocks (`blocks[0]` the entry) and the guest-physical bytes they came from.
pub struct Region {
    /// The blocks, entry first.
    pub blocks: Vec<DecodedBlock>,
    /// Guest-physical `[start, end)` of every block's bytes (the entry's may run onto the
    /// next page: then it has two).
    pub phys_ranges: Vec<(u64, u64)>,
}

impl Region {
    /// Whether the region has blocks besides its entry.
    pub fn is_region(&self) -> bool {
        self.blocks.len() > 1
    }

    /// A copy of the region's bytes, to tell later whether they are still the guest's.
    pub fn snapshot(&self, m: &Machine) -> Option<Snapshot> {
        let mut bytes = Vec::new();
        for &(start, end) in &self.phys_ranges {
            let len = usize::try_from(end - start).ok()?;
            bytes.extend_from_slice(m.ram.slice(GuestPhys(start), len).ok()?);
        }
        Some(Snapshot {
            ranges: self.phys_ranges.clone(),
            bytes,
        })
    }
}

/// A region's guest-physical ranges and the bytes they held when its IR was built.
pub struct Snapshot {
    /// The region's [`Region::phys_ranges`].
    pub ranges: Vec<(u64, u64)>,
    /// Their bytes, in order.
    pub bytes: Vec<u8>,
}

impl Snapshot {
    /// Whether guest RAM still holds the bytes.
    pub fn still_current(&self, m: &Machine) -> bool {
        let mut at = 0;
        for &(start, end) in &self.ranges {
            let Ok(len) = usize::try_from(end - start) else {
                return false;
            };
            let Ok(now) = m.ram.slice(GuestPhys(start), len) else {
                return false;
            };
            if self.bytes.get(at..at + len) != Some(now) {
                return false;
            }
            at += len;
        }
        at == self.bytes.len()
    }
}

/// The region around `entry` (decoded at guest-virtual `entry.pc` from `fetched`): the loop
/// [`translator::region::form`] finds among the blocks of the same page. Just the entry
/// when it runs onto the next page or its page is not RAM.
pub fn form(m: &Machine, fetched: &Fetched, entry: DecodedBlock, mode: Mode) -> Region {
    let entry_ranges = fetched.phys_ranges(entry.byte_len());
    let single = |entry: DecodedBlock| Region {
        blocks: vec![entry],
        phys_ranges: entry_ranges.clone(),
    };
    if entry.byte_len() > fetched.first_len as u64 {
        return single(entry);
    }
    let page_virt = entry.pc & !(PAGE_SIZE - 1);
    let page_phys = fetched.phys & !(PAGE_SIZE - 1);
    let Ok(page) = m.ram.slice(GuestPhys(page_phys), PAGE_SIZE as usize) else {
        return single(entry);
    };
    let page_end = page_virt + PAGE_SIZE;
    let blocks = translator::region::form(entry, |pc| {
        if pc & !(PAGE_SIZE - 1) != page_virt {
            return None;
        }
        let b = decode_block(
            &page[(pc - page_virt) as usize..],
            pc,
            mode,
            MAX_BLOCK_INSNS,
        );
        // A block cut by the page's end (or by bytes that do not decode) would not be the
        // block the guest runs: leave it to its own translation.
        let whole = b.next_pc() < page_end && b.insns.iter().all(|i| !i.is_invalid());
        whole.then_some(b)
    });
    let mut phys_ranges = entry_ranges.clone();
    for b in &blocks[1..] {
        let start = page_phys + (b.pc - page_virt);
        phys_ranges.push((start, start + b.byte_len()));
    }
    Region {
        blocks,
        phys_ranges,
    }
}

impl<H: HostEntry> Dbt<H> {
    /// The region to compile for `entry`: with the loop around it when the engine forms
    /// regions and tiers (then only blocks its cold tier found hot are compiled), enters code
    /// directly (the trap engine's table knows blocks only), and the block is found by
    /// virtual PC.
    pub(super) fn region(
        &self,
        m: &Machine,
        fetched: &Fetched,
        entry: translator::decode::DecodedBlock,
        mode: Mode,
    ) -> Region {
        let tiered = self.tiering.compile_after > 0;
        if self.tiering.regions && tiered && !H::TRAPS && by_virtual_pc(mode) {
            form(m, fetched, entry, mode)
        } else {
            Region {
                phys_ranges: fetched.phys_ranges(entry.byte_len()),
                blocks: vec![entry],
            }
        }
    }

    pub(super) fn count_region(&mut self, region: &Region) {
        if region.is_region() {
            self.stats.regions += 1;
            self.stats.region_blocks += region.blocks.len() as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_current_until_a_byte_changes() {
        let mut m = Machine::new(crate::memory::MIN_RAM, crate::devices::SerialSink::Capture)
            .expect("machine");
        m.ram.slice_mut(GuestPhys(0x2000), 16).unwrap().fill(0x90);
        let r = Region {
            blocks: Vec::new(),
            phys_ranges: vec![(0x2000, 0x2004), (0x2008, 0x200c)],
        };
        let snap = r.snapshot(&m).unwrap();
        assert!(snap.still_current(&m));
        // A byte between the ranges is not the region's.
        m.ram.slice_mut(GuestPhys(0x2005), 1).unwrap()[0] = 0xcc;
        assert!(snap.still_current(&m));
        m.ram.slice_mut(GuestPhys(0x2009), 1).unwrap()[0] = 0xcc;
        assert!(!snap.still_current(&m));
    }
}
