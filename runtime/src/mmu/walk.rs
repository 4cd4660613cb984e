//! The guest page-table walker: 32-bit (with 4 MiB pages and PSE-36), PAE and 4-level paging,
//! the access-rights rules (U/S, R/W with CR0.WP, NX, SMEP, SMAP), reserved-bit checks, #PF
//! error codes and A/D updates.
//!
//! Invariants (see also the [module invariants](super)):
//! - [`walk_peek`] reads guest RAM only; [`walk`] is `walk_peek` plus the A/D writes it asks
//!   for, done only when the translation succeeds.
//! - Table addresses are masked to [`PHYS_ADDR_BITS`] bits and indices to their level, so
//!   entry addresses never overflow; entries outside RAM read as not present.
//! - Fault priority follows the SDM: the first not-present or reserved-bit entry on the way
//!   down faults (P = 0, or P = 1 with RSVD); access rights are checked only on a complete
//!   walk.

use translator::Exception;

use super::{pf, pte, PagingMode, PagingRegs, Translation, PHYS_ADDR_BITS};
use crate::machine::Privilege;
use crate::memory::{is_canonical, Access, GuestPhys, GuestRam, PAGE_SIZE};

/// Physical-address bits `[12, PHYS_ADDR_BITS)` of an entry: the next table or 4 KiB frame.
const ADDR_MASK: u64 = ((1 << PHYS_ADDR_BITS) - 1) & !0xFFF;

/// Bits 51..PHYS_ADDR_BITS: reserved in 4-level entries.
const RSVD_HIGH_4L: u64 = ((1 << 52) - 1) & !((1 << PHYS_ADDR_BITS) - 1);

/// Bits 62..PHYS_ADDR_BITS: reserved in PAE page-directory and page-table entries.
const RSVD_HIGH_PAE: u64 = ((1 << 63) - 1) & !((1 << PHYS_ADDR_BITS) - 1);

/// PAE PDPTE bits that must be zero besides the high ones: 2:1 and 8:5.
const RSVD_PDPTE_PAE: u64 = 0x1E6;

/// A paging-structure entry a walk used, and what a successful walk writes back to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EntryUpdate {
    /// Guest-physical address of the entry (inside RAM: it was read from there).
    pub addr: u64,
    /// 4 (32-bit paging) or 8 bytes.
    pub width: usize,
    /// The entry as read.
    pub old: u64,
    /// The entry with A (and, for the final entry of a write, D) set.
    pub new: u64,
}

/// The result of a side-effect-free walk: the translation and the A/D updates that make it
/// architecturally complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeekedWalk {
    /// The translation.
    pub translation: Translation,
    /// Entries to write back (only those whose value changes are meaningful).
    pub updates: [EntryUpdate; 4],
    /// How many of `updates` are used.
    pub n_updates: usize,
}

/// Translates linear address `lin` for `access` with `privilege`'s rights under `regs`,
/// setting the A bits of the entries used and the final entry's D bit for a write.
///
/// `lin` is taken as given (the caller wraps it to 32 bits outside IA-32e mode). Paging off
/// is the identity. Faults: #PF with the error code and CR2 = `lin`, or #GP(0) for a
/// non-canonical address under 4-level paging.
pub fn walk(
    ram: &mut GuestRam,
    regs: &PagingRegs,
    lin: u64,
    access: Access,
    privilege: Privilege,
) -> Result<Translation, Exception> {
    let peeked = walk_peek(ram, regs, lin, access, privilege)?;
    for u in &peeked.updates[..peeked.n_updates] {
        if u.new != u.old {
            // The entry was just read from RAM, so it is inside RAM; a failure cannot happen
            // and would only lose an A/D update.
            let _ = ram.write_le(GuestPhys(u.addr), u.width, u.new);
        }
    }
    Ok(peeked.translation)
}

/// [`walk`] without writing anything: the translation and the A/D updates it would make.
pub fn walk_peek(
    ram: &GuestRam,
    regs: &PagingRegs,
    lin: u64,
    access: Access,
    privilege: Privilege,
) -> Result<PeekedWalk, Exception> {
    let mut w = Walker {
        ram,
        regs,
        lin,
        access,
        privilege,
        updates: [EntryUpdate::default(); 4],
        n: 0,
        user: true,
        write: true,
        nx: false,
    };
    let (leaf_addr_bits, page_size) = match regs.mode() {
        PagingMode::Off => {
            let translation = Translation {
                phys: lin,
                writable: true,
                user: true,
                global: false,
                page_size: PAGE_SIZE,
                dirty: true,
            };
            return Ok(PeekedWalk {
                translation,
                updates: w.updates,
                n_updates: 0,
            });
        }
        PagingMode::Bits32 => w.bits32()?,
        PagingMode::Pae => w.pae()?,
        PagingMode::FourLevel => w.four_level()?,
    };
    w.finish(leaf_addr_bits, page_size)
}

/// One walk in progress.
struct Walker<'a> {
    ram: &'a GuestRam,
    regs: &'a PagingRegs,
    lin: u64,
    access: Access,
    privilege: Privilege,
    /// The entries used so far, top level first; the last is the final entry.
    updates: [EntryUpdate; 4],
    n: usize,
    /// U/S, R/W and XD combined over the levels so far.
    user: bool,
    write: bool,
    nx: bool,
}

impl Walker<'_> {
    /// 32-bit paging: the page directory at CR3, then a page table or a 4 MiB page.
    fn bits32(&mut self) -> Result<(u64, u64), Exception> {
        let lin = self.lin & 0xFFFF_FFFF;
        let pd = self.regs.cr3 & 0xFFFF_F000;
        let pde = self.entry(pd + ((lin >> 22) & 0x3FF) * 4, 4, 0, true)?;
        if pde & pte::PS != 0 && self.regs.cr4 & translator::state::cr::CR4_PSE != 0 {
            // PSE-36: bits 20:13 hold physical bits 39:32; bit 21 is reserved.
            if pde & (1 << 21) != 0 {
                return Err(self.fault(pf::P | pf::RSVD));
            }
            let frame = (pde & 0xFFC0_0000) | (((pde >> 13) & 0xFF) << 32);
            return Ok((frame, 4 << 20));
        }
        let pt = pde & 0xFFFF_F000;
        let pte = self.entry(pt + ((lin >> 12) & 0x3FF) * 4, 4, 0, true)?;
        Ok((pte & 0xFFFF_F000, PAGE_SIZE))
    }

    /// PAE paging: one of four PDPTEs at CR3 (read at walk time), then 2 MiB or 4 KiB pages.
    fn pae(&mut self) -> Result<(u64, u64), Exception> {
        let lin = self.lin & 0xFFFF_FFFF;
        let pdpt = self.regs.cr3 & 0xFFFF_FFE0;
        let rsvd = RSVD_HIGH_PAE | self.xd_reserved();
        // PDPTEs carry no rights and no A bit; XD is reserved in them.
        let pdpte = self.entry(
            pdpt + ((lin >> 30) & 3) * 8,
            8,
            RSVD_PDPTE_PAE | RSVD_HIGH_PAE | pte::XD,
            false,
        )?;
        self.lower_levels(pdpte & ADDR_MASK, rsvd)
    }

    /// 4-level paging: PML4, PDPT (1 GiB pages), then [`Walker::lower_levels`].
    fn four_level(&mut self) -> Result<(u64, u64), Exception> {
        let lin = self.lin;
        if !is_canonical(lin) {
            return Err(Exception::GeneralProtection(0));
        }
        let rsvd = RSVD_HIGH_4L | self.xd_reserved();
        let pml4 = self.regs.cr3 & ADDR_MASK;
        // PS is reserved in a PML4E.
        let pml4e = self.entry(pml4 + ((lin >> 39) & 0x1FF) * 8, 8, rsvd | pte::PS, true)?;
        let pdpt = pml4e & ADDR_MASK;
        let at = pdpt + ((lin >> 30) & 0x1FF) * 8;
        let pdpte = self.entry(at, 8, rsvd, true)?;
        if pdpte & pte::PS != 0 {
            return self.large(pdpte, rsvd, 30);
        }
        self.lower_levels(pdpte & ADDR_MASK, rsvd)
    }

    /// The page directory at `pd` (2 MiB pages) and the page table (PAE and 4-level).
    fn lower_levels(&mut self, pd: u64, rsvd: u64) -> Result<(u64, u64), Exception> {
        let lin = self.lin;
        let pde = self.entry(pd + ((lin >> 21) & 0x1FF) * 8, 8, rsvd, true)?;
        if pde & pte::PS != 0 {
            return self.large(pde, rsvd, 21);
        }
        let pt = pde & ADDR_MASK;
        let pte = self.entry(pt + ((lin >> 12) & 0x1FF) * 8, 8, rsvd, true)?;
        Ok((pte & ADDR_MASK, PAGE_SIZE))
    }

    /// A large-page entry already read (2 MiB with `shift` 21, 1 GiB with 30): bits
    /// `shift-1..13` are reserved (bit 12 is PAT).
    fn large(&mut self, entry: u64, rsvd: u64, shift: u32) -> Result<(u64, u64), Exception> {
        let low_rsvd = ((1u64 << shift) - 1) & !((1 << 13) - 1);
        if entry & (rsvd | low_rsvd) != 0 {
            return Err(self.fault(pf::P | pf::RSVD));
        }
        let frame = entry & ADDR_MASK & !((1u64 << shift) - 1);
        Ok((frame, 1 << shift))
    }

    /// Bit 63 when EFER.NXE is off (then XD is reserved).
    fn xd_reserved(&self) -> u64 {
        if self.regs.nxe() {
            0
        } else {
            pte::XD
        }
    }

    /// Reads the `width`-byte entry at `addr`; faults if it is not present or has a bit of
    /// `rsvd` set; otherwise records it (with its rights when `rights`) and returns it.
    fn entry(
        &mut self,
        addr: u64,
        width: usize,
        rsvd: u64,
        rights: bool,
    ) -> Result<u64, Exception> {
        // Outside RAM (or MMIO): reads as not present.
        let e = self.ram.read_le(GuestPhys(addr), width).unwrap_or(0);
        if e & pte::P == 0 {
            return Err(self.fault(0));
        }
        if e & rsvd != 0 {
            return Err(self.fault(pf::P | pf::RSVD));
        }
        if rights {
            self.user &= e & pte::US != 0;
            self.write &= e & pte::RW != 0;
            self.nx |= self.regs.nxe() && e & pte::XD != 0;
        }
        // PAE PDPTEs have no A bit (bit 5 is reserved there).
        let new = if rights { e | pte::A } else { e };
        if let Some(slot) = self.updates.get_mut(self.n) {
            *slot = EntryUpdate {
                addr,
                width,
                old: e,
                new,
            };
            self.n += 1;
        }
        Ok(e)
    }

    /// Checks the access rights of the completed walk, whose final entry maps the frame
    /// `frame` of `page_size` bytes, and builds the result.
    fn finish(mut self, frame: u64, page_size: u64) -> Result<PeekedWalk, Exception> {
        if !self.allowed(self.access) {
            return Err(self.fault(pf::P));
        }
        let last = self.n.checked_sub(1).map(|i| &mut self.updates[i]);
        let (leaf, dirty) = match last {
            Some(u) => {
                if self.access == Access::Write {
                    u.new |= pte::D;
                }
                (u.old, u.new & pte::D != 0)
            }
            None => (0, false),
        };
        let translation = Translation {
            phys: frame | (self.lin & (page_size - 1)),
            writable: self.allowed(Access::Write),
            user: self.user,
            global: self.regs.pge() && leaf & pte::G != 0,
            page_size,
            dirty,
        };
        Ok(PeekedWalk {
            translation,
            updates: self.updates,
            n_updates: self.n,
        })
    }

    /// Whether the walk's privilege may perform `access` on the page (SDM 4.6).
    fn allowed(&self, access: Access) -> bool {
        let regs = self.regs;
        match self.privilege {
            Privilege::User => {
                self.user
                    && match access {
                        Access::Read => true,
                        Access::Write => self.write,
                        Access::Fetch => !self.nx,
                    }
            }
            Privilege::Supervisor => match access {
                Access::Fetch => !(self.nx || (self.user && regs.smep())),
                Access::Read => !(self.user && regs.smap_blocks()),
                Access::Write => !(self.user && regs.smap_blocks()) && (self.write || !regs.wp()),
            },
        }
    }

    /// The #PF for this access with error-code bits `bits` (P, RSVD) plus W, U and I/D.
    fn fault(&self, bits: u32) -> Exception {
        let mut code = bits;
        if self.access == Access::Write {
            code |= pf::W;
        }
        if self.privilege == Privilege::User {
            code |= pf::U;
        }
        let pae_nx = self.regs.nxe() && self.regs.mode() != PagingMode::Bits32;
        if self.access == Access::Fetch && (self.regs.smep() || pae_nx) {
            code |= pf::ID;
        }
        Exception::PageFault {
            addr: self.lin,
            code,
        }
    }
}

#[cfg(test)]
#[path = "walk_tests.rs"]
mod tests;
