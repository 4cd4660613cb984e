//! What a bzImage is entered with: the boot GDT (`__BOOT_CS` = 0x10, `__BOOT_DS` = 0x18,
//! 4 GiB flat) and, for the 64-bit entry, identity-mapping page tables (4-level, 2 MiB
//! pages: one PML4, one PDPT, one page directory per GiB).
//!
//! Invariants: the tables map guest-virtual = guest-physical for every address below
//! [`mapped_bytes`], writable and executable, and nothing else; every entry the tables hold
//! points inside the tables or at a 2 MiB-aligned frame.

/// `__BOOT_CS`: the code selector the boot protocol requires.
pub const BOOT_CS: u16 = 0x10;
/// `__BOOT_DS`: the data selector the boot protocol requires.
pub const BOOT_DS: u16 = 0x18;
/// Bytes of the boot GDT (null, unused, code, data).
pub const GDT_SIZE: usize = 32;
/// A 64-bit code descriptor: base 0, limit 4 GiB, execute/read, L = 1, DPL 0.
pub const CODE64_DESCRIPTOR: u64 = 0x00AF_9B00_0000_FFFF;
/// A 32-bit code descriptor: base 0, limit 4 GiB, execute/read, D = 1, DPL 0.
pub const CODE32_DESCRIPTOR: u64 = 0x00CF_9B00_0000_FFFF;
/// A data descriptor: base 0, limit 4 GiB, read/write, B = 1, DPL 0.
pub const DATA_DESCRIPTOR: u64 = 0x00CF_9300_0000_FFFF;

/// Page-table entry bits: present, writable, 2 MiB page.
const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const LARGE: u64 = 1 << 7;
/// Bytes a page directory maps.
const GIB: u64 = 1 << 30;
/// Bytes a 2 MiB page maps.
const LARGE_PAGE: u64 = 2 << 20;
/// A page-table page.
const PAGE: usize = 4096;
/// One PDPT maps at most this much.
pub const MAX_MAPPED: u64 = 512 * GIB;

/// The boot GDT; `long` picks the 64-bit code descriptor for `__BOOT_CS`.
pub fn gdt(long: bool) -> [u8; GDT_SIZE] {
    let code = if long {
        CODE64_DESCRIPTOR
    } else {
        CODE32_DESCRIPTOR
    };
    let mut g = [0u8; GDT_SIZE];
    g[usize::from(BOOT_CS)..usize::from(BOOT_CS) + 8].copy_from_slice(&code.to_le_bytes());
    g[usize::from(BOOT_DS)..usize::from(BOOT_DS) + 8]
        .copy_from_slice(&DATA_DESCRIPTOR.to_le_bytes());
    g
}

/// How much the identity map covers for `ram_bytes` of RAM: at least 4 GiB (the APICs and
/// everything a 32-bit kernel could name), all of RAM rounded up to a GiB, at most
/// [`MAX_MAPPED`].
pub fn mapped_bytes(ram_bytes: u64) -> u64 {
    ram_bytes
        .max(4 * GIB)
        .div_ceil(GIB)
        .saturating_mul(GIB)
        .min(MAX_MAPPED)
}

/// Bytes of page tables [`page_tables`] builds for `ram_bytes`.
pub fn page_tables_size(ram_bytes: u64) -> usize {
    (2 + (mapped_bytes(ram_bytes) / GIB) as usize) * PAGE
}

/// The identity-mapping tables, to be placed at `base` (4 KiB aligned): PML4 at `base`,
/// PDPT at `base + 0x1000`, page directory `i` at `base + 0x2000 + i * 0x1000`.
pub fn page_tables(base: u64, ram_bytes: u64) -> Vec<u8> {
    let dirs = (mapped_bytes(ram_bytes) / GIB) as usize;
    let mut t = vec![0u8; page_tables_size(ram_bytes)];
    let mut put = |index: usize, value: u64| {
        t[index * 8..index * 8 + 8].copy_from_slice(&value.to_le_bytes())
    };
    let pdpt = base + PAGE as u64;
    put(0, pdpt | PRESENT | WRITABLE);
    for d in 0..dirs {
        let dir = base + ((2 + d) * PAGE) as u64;
        put(PAGE / 8 + d, dir | PRESENT | WRITABLE);
        for e in 0..512 {
            let frame = d as u64 * GIB + e as u64 * LARGE_PAGE;
            put((2 + d) * PAGE / 8 + e, frame | PRESENT | WRITABLE | LARGE);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks `tables` (placed at `base`) for `vaddr` as the MMU would.
    fn walk(tables: &[u8], base: u64, vaddr: u64) -> Option<u64> {
        let entry = |table: u64, index: u64| {
            let off = usize::try_from(table - base).ok()? + index as usize * 8;
            Some(u64::from_le_bytes(
                tables.get(off..off + 8)?.try_into().ok()?,
            ))
        };
        let mask = 0x000F_FFFF_FFFF_F000;
        let pml4e = entry(base, (vaddr >> 39) & 511).filter(|e| e & PRESENT != 0)?;
        let pdpte = entry(pml4e & mask, (vaddr >> 30) & 511).filter(|e| e & PRESENT != 0)?;
        let pde = entry(pdpte & mask, (vaddr >> 21) & 511).filter(|e| e & PRESENT != 0)?;
        assert_ne!(pde & LARGE, 0);
        Some((pde & mask & !(LARGE_PAGE - 1)) | (vaddr & (LARGE_PAGE - 1)))
    }

    #[test]
    fn identity_maps_the_first_4_gib_or_all_ram() {
        let base = 0x3_0000;
        let t = page_tables(base, 128 << 20);
        assert_eq!(t.len(), 6 * 4096);
        for a in [
            0,
            0x1000,
            0x100_0000,
            0x7FF_FFFF,
            0xFEC0_0000,
            0xFEE0_0FFF,
            0xFFFF_FFFF,
        ] {
            assert_eq!(walk(&t, base, a), Some(a), "{a:#x}");
        }
        assert_eq!(walk(&t, base, 1 << 32), None);
        let big = page_tables(base, (6 << 30) + 4096);
        assert_eq!(mapped_bytes((6 << 30) + 4096), 7 << 30);
        assert_eq!(walk(&big, base, (6 << 30) + 5), Some((6 << 30) + 5));
        assert_eq!(mapped_bytes(u64::MAX), MAX_MAPPED);
    }

    #[test]
    fn gdt_has_the_boot_selectors() {
        let g = gdt(true);
        assert_eq!(g[..16], [0; 16]);
        assert_eq!(
            u64::from_le_bytes(g[16..24].try_into().unwrap()),
            CODE64_DESCRIPTOR
        );
        assert_eq!(
            u64::from_le_bytes(g[24..32].try_into().unwrap()),
            DATA_DESCRIPTOR
        );
        let g = gdt(false);
        assert_eq!(
            u64::from_le_bytes(g[16..24].try_into().unwrap()),
            CODE32_DESCRIPTOR
        );
        // Access bytes: present, DPL 0, code execute/read; data read/write; L for 64-bit.
        assert_eq!((CODE64_DESCRIPTOR >> 40) & 0xFF, 0x9B);
        assert_eq!((CODE64_DESCRIPTOR >> 53) & 1, 1, "L");
        assert_eq!((CODE32_DESCRIPTOR >> 54) & 1, 1, "D");
        assert_eq!((DATA_DESCRIPTOR >> 40) & 0xFF, 0x93);
    }
}
