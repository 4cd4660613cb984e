//! Paging: the guest page-table walker ([`walk()`]) and the soft-TLB policy ([`tlb`]).
//!
//! The [`Machine`](crate::machine::Machine) access paths (`read_lin`, `write_lin`,
//! `read_virt_for`, `write_virt_for`, `fetch_code`, ...) translate through here; this module
//! knows guest RAM and the CPU's paging registers, nothing else.
//!
//! Invariants:
//! - Guest page tables are hostile. A walk never panics, never overflows, and reads or writes
//!   guest memory only through [`GuestRam`]'s bounds-checked accessors. A paging-structure
//!   entry whose address is outside RAM reads as not present (the walk raises a not-present
//!   #PF; nothing is written).
//! - A walk has no side effect unless it succeeds: only then are the accessed (A) bits of the
//!   entries it used set, and the dirty (D) bit of the final entry for a write.
//! - Every physical address a successful walk returns is below 2^[`PHYS_ADDR_BITS`]; it may be
//!   outside RAM (MMIO), which the callers route to devices.
//! - Non-canonical addresses under 4-level paging raise #GP(0) from the walker (before any
//!   entry is read). A stack access must report #SS(0) instead: the caller converts.
//! - The soft TLB only ever holds translations of RAM pages, for data accesses, with the
//!   rights of one privilege (supervisor or user set). See [`tlb`] for what makes an entry
//!   writable and who must flush.

pub mod tlb;
pub mod walk;

use translator::state::{cr, rflags};
use translator::CpuState;

pub use walk::{walk, walk_peek};

#[cfg(doc)]
use crate::memory::GuestRam;

/// Physical-address width the MMU implements (MAXPHYADDR). Entry bits from here to 51 are
/// reserved (to 62 in PAE paging); CPUID leaf 0x8000_0008 should report the same width.
pub const PHYS_ADDR_BITS: u32 = 40;

/// Bits of paging-structure entries.
pub mod pte {
    /// Present.
    pub const P: u64 = 1 << 0;
    /// Read/write (writes allowed when set).
    pub const RW: u64 = 1 << 1;
    /// User/supervisor (user accesses allowed when set).
    pub const US: u64 = 1 << 2;
    /// Accessed.
    pub const A: u64 = 1 << 5;
    /// Dirty (final entries only).
    pub const D: u64 = 1 << 6;
    /// Page size: this entry maps a large page.
    pub const PS: u64 = 1 << 7;
    /// Global (final entries, with CR4.PGE).
    pub const G: u64 = 1 << 8;
    /// Execute-disable (with EFER.NXE; reserved otherwise).
    pub const XD: u64 = 1 << 63;
}

/// Bits of the #PF error code.
pub mod pf {
    /// The fault was a protection violation (or a reserved bit), not a non-present page.
    pub const P: u32 = 1 << 0;
    /// The access was a write.
    pub const W: u32 = 1 << 1;
    /// The access was a user-mode access.
    pub const U: u32 = 1 << 2;
    /// A reserved bit was set in some paging-structure entry.
    pub const RSVD: u32 = 1 << 3;
    /// The access was an instruction fetch (reported only with SMEP, or NXE under PAE or
    /// 4-level paging).
    pub const ID: u32 = 1 << 4;
}

/// The paging mode the registers select.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingMode {
    /// CR0.PG = 0: linear = physical.
    Off,
    /// 32-bit paging (CR4.PAE = 0), with 4 MiB pages when CR4.PSE is set.
    Bits32,
    /// PAE paging (CR4.PAE = 1 outside IA-32e mode).
    Pae,
    /// 4-level paging (IA-32e mode).
    FourLevel,
}

/// What a walk needs of the CPU state, plus whether the access is an implicit supervisor
/// access (descriptor tables, TSS, ... while CPL = 3), which SMAP checks as if AC were 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PagingRegs {
    /// CR0 (PE, WP, PG).
    pub cr0: u64,
    /// CR3 (the root table).
    pub cr3: u64,
    /// CR4 (PSE, PAE, PGE, SMEP, SMAP).
    pub cr4: u64,
    /// EFER (LME/LMA, NXE).
    pub efer: u64,
    /// RFLAGS.AC.
    pub ac: bool,
    /// The access is an implicit supervisor access (SMAP ignores AC).
    pub implicit: bool,
}

impl PagingRegs {
    /// The paging registers of `cpu`, for an explicit access.
    pub fn of(cpu: &CpuState) -> PagingRegs {
        PagingRegs {
            cr0: cpu.cr0,
            cr3: cpu.cr3,
            cr4: cpu.cr4,
            efer: cpu.efer,
            ac: cpu.rflags & rflags::AC != 0,
            implicit: false,
        }
    }

    /// The same registers for an implicit (`true`) or explicit access.
    pub fn implicit(self, implicit: bool) -> PagingRegs {
        PagingRegs { implicit, ..self }
    }

    /// The paging mode. IA-32e mode is EFER.LMA (or LME: with CR0.PG set they are equal).
    pub fn mode(&self) -> PagingMode {
        if self.cr0 & cr::CR0_PG == 0 {
            PagingMode::Off
        } else if self.efer & (cr::EFER_LMA | cr::EFER_LME) != 0 {
            PagingMode::FourLevel
        } else if self.cr4 & cr::CR4_PAE != 0 {
            PagingMode::Pae
        } else {
            PagingMode::Bits32
        }
    }

    /// Whether paging is on.
    pub fn paging(&self) -> bool {
        self.mode() != PagingMode::Off
    }

    /// Whether CR0.PE is clear. The foundation machine runs its flat 64-bit model with the
    /// reset value of CR0, so this selects [`crate::memory::Mmu`]'s flat rules.
    pub fn unprotected(&self) -> bool {
        self.cr0 & cr::CR0_PE == 0
    }

    /// The largest page this paging mode can map (what an INVLPG of one address may drop).
    pub fn largest_page(&self) -> u64 {
        match self.mode() {
            PagingMode::Off => 1 << 12,
            PagingMode::Bits32 => 4 << 20,
            PagingMode::Pae => 2 << 20,
            PagingMode::FourLevel => 1 << 30,
        }
    }

    /// Linear addresses wrap here: all 64 bits in IA-32e mode (and the foundation's flat
    /// model), 32 bits in protected mode otherwise.
    pub fn lin_mask(&self) -> u64 {
        if self.unprotected()
            || self.efer & cr::EFER_LMA != 0
            || self.mode() == PagingMode::FourLevel
        {
            u64::MAX
        } else {
            0xFFFF_FFFF
        }
    }

    /// CR0.WP: supervisor writes honour R/W.
    pub fn wp(&self) -> bool {
        self.cr0 & cr::CR0_WP != 0
    }

    /// EFER.NXE: bit 63 of entries is execute-disable (else reserved).
    pub fn nxe(&self) -> bool {
        self.efer & cr::EFER_NXE != 0
    }

    /// CR4.SMEP.
    pub fn smep(&self) -> bool {
        self.cr4 & cr::CR4_SMEP != 0
    }

    /// CR4.SMAP.
    pub fn smap(&self) -> bool {
        self.cr4 & cr::CR4_SMAP != 0
    }

    /// CR4.PGE: global pages survive non-global flushes.
    pub fn pge(&self) -> bool {
        self.cr4 & cr::CR4_PGE != 0
    }

    /// Whether SMAP forbids this supervisor data access to a user page.
    pub fn smap_blocks(&self) -> bool {
        self.smap() && (self.implicit || !self.ac)
    }
}

/// A successful translation of one linear address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// Guest-physical address of the translated byte.
    pub phys: u64,
    /// A write with the walk's privilege (and CR0.WP, SMAP) would be allowed.
    pub writable: bool,
    /// Every level allows user accesses (U/S set throughout).
    pub user: bool,
    /// The final entry is global (G set and CR4.PGE on).
    pub global: bool,
    /// Bytes mapped by the final entry: 4 KiB, 2 MiB, 4 MiB or 1 GiB (for paging off, 4 KiB).
    pub page_size: u64,
    /// The final entry's D bit is set (after this walk: always for writes).
    pub dirty: bool,
}

#[cfg(test)]
mod tests;
