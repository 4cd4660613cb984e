//! The zero page (`struct boot_params`, `arch/x86/include/uapi/asm/bootparam.h`): the setup
//! header copied from the image and updated by the loader, the e820 memory map, and the
//! ACPI RSDP address.
//!
//! Invariants: the page is exactly 4 KiB; every field this module writes lies at the offset
//! `bootparam.h` gives it (checked by the tests); the header copy ends before
//! `edd_mbr_sig_buffer`, and the `sentinel` byte (0x1EF) stays 0, so the kernel trusts every
//! field.

use super::header::{self, SetupHeader};

/// Size of the zero page.
pub const ZERO_PAGE_SIZE: usize = 4096;
/// `acpi_rsdp_addr` (u64).
pub const ACPI_RSDP_ADDR: usize = 0x070;
/// `ext_ramdisk_image` (u32): bits 63:32 of `ramdisk_image`.
pub const EXT_RAMDISK_IMAGE: usize = 0x0C0;
/// `ext_ramdisk_size` (u32).
pub const EXT_RAMDISK_SIZE: usize = 0x0C4;
/// `ext_cmd_line_ptr` (u32).
pub const EXT_CMD_LINE_PTR: usize = 0x0C8;
/// `alt_mem_k` (u32): KiB of memory above 1 MiB.
pub const ALT_MEM_K: usize = 0x1E0;
/// `e820_entries` (u8).
pub const E820_ENTRIES: usize = 0x1E8;
/// `sentinel` (u8): must stay 0.
pub const SENTINEL: usize = 0x1EF;
/// `e820_table`: up to [`E820_MAX`] entries of `{addr: u64, size: u64, type: u32}`.
pub const E820_TABLE: usize = 0x2D0;
/// Entries `e820_table` holds.
pub const E820_MAX: usize = 128;
/// Size of one e820 entry.
pub const E820_ENTRY_SIZE: usize = 20;

/// `type_of_loader` of a loader without an assigned ID.
pub const LOADER_UNDEFINED: u8 = 0xFF;
/// `heap_end_ptr` as QEMU sets it: the end of the setup heap, relative to the real-mode code
/// (unused by a 64-bit entry, but given, with CAN_USE_HEAP, as a real-mode loader would).
pub const HEAP_END: u16 = 0xFE00;

/// An e820 range type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum E820Type {
    /// Usable RAM.
    Ram = 1,
    /// Reserved (firmware, holes).
    Reserved = 2,
    /// ACPI tables, reclaimable after they are read.
    Acpi = 3,
}

/// One e820 range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    /// First byte.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// What it is.
    pub kind: E820Type,
}

/// The kernel-visible facts the zero page carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootFacts {
    /// Where the protected-mode code was loaded (`code32_start`).
    pub load_addr: u64,
    /// The initrd: guest-physical address and size, if any.
    pub initrd: Option<(u64, u64)>,
    /// Guest-physical address of the NUL-terminated command line.
    pub cmdline_addr: u64,
    /// The memory map.
    pub e820: Vec<E820Entry>,
    /// Guest-physical address of the ACPI RSDP (0: none).
    pub rsdp: u64,
    /// RAM size in bytes.
    pub ram_bytes: u64,
}

/// Writes the low and high halves of `value` at `lo` (u32) and `hi` (u32).
fn put_split(page: &mut [u8], lo: usize, hi: usize, value: u64) {
    page[lo..lo + 4].copy_from_slice(&(value as u32).to_le_bytes());
    page[hi..hi + 4].copy_from_slice(&((value >> 32) as u32).to_le_bytes());
}

/// Builds the zero page for `image` (whose header `hdr` describes) and `facts`.
pub fn build(image: &[u8], hdr: &SetupHeader, facts: &BootFacts) -> Vec<u8> {
    let mut page = vec![0u8; ZERO_PAGE_SIZE];
    let start = header::SETUP_SECTS;
    if let Some(src) = image.get(start..hdr.header_end) {
        page[start..hdr.header_end].copy_from_slice(src);
    }
    page[header::TYPE_OF_LOADER] = LOADER_UNDEFINED;
    page[header::LOADFLAGS] = hdr.loadflags | header::CAN_USE_HEAP;
    page[header::HEAP_END_PTR..header::HEAP_END_PTR + 2].copy_from_slice(&HEAP_END.to_le_bytes());
    // Below 4 GiB by construction (the loader places it there).
    page[header::CODE32_START..header::CODE32_START + 4]
        .copy_from_slice(&(facts.load_addr as u32).to_le_bytes());
    let (initrd_addr, initrd_size) = facts.initrd.unwrap_or((0, 0));
    put_split(
        &mut page,
        header::RAMDISK_IMAGE,
        EXT_RAMDISK_IMAGE,
        initrd_addr,
    );
    put_split(
        &mut page,
        header::RAMDISK_SIZE,
        EXT_RAMDISK_SIZE,
        initrd_size,
    );
    put_split(
        &mut page,
        header::CMD_LINE_PTR,
        EXT_CMD_LINE_PTR,
        facts.cmdline_addr,
    );
    page[ACPI_RSDP_ADDR..ACPI_RSDP_ADDR + 8].copy_from_slice(&facts.rsdp.to_le_bytes());
    let alt_mem_k =
        u32::try_from(facts.ram_bytes.saturating_sub(1 << 20) >> 10).unwrap_or(u32::MAX);
    page[ALT_MEM_K..ALT_MEM_K + 4].copy_from_slice(&alt_mem_k.to_le_bytes());
    let entries = &facts.e820[..facts.e820.len().min(E820_MAX)];
    page[E820_ENTRIES] = entries.len() as u8;
    for (i, e) in entries.iter().enumerate() {
        let off = E820_TABLE + i * E820_ENTRY_SIZE;
        page[off..off + 8].copy_from_slice(&e.addr.to_le_bytes());
        page[off + 8..off + 16].copy_from_slice(&e.size.to_le_bytes());
        page[off + 16..off + 20].copy_from_slice(&(e.kind as u32).to_le_bytes());
    }
    page
}

#[cfg(test)]
mod tests {
    use super::super::tests::fake_bzimage;
    use super::*;

    fn facts() -> BootFacts {
        BootFacts {
            load_addr: 0x100_0000,
            initrd: Some((0x1_2345_6000, 0x2000)),
            cmdline_addr: 0x2_0000,
            e820: vec![
                E820Entry {
                    addr: 0,
                    size: 0x9_FC00,
                    kind: E820Type::Ram,
                },
                E820Entry {
                    addr: 0x10_0000,
                    size: 0x7F0_0000,
                    kind: E820Type::Ram,
                },
            ],
            rsdp: 0xE_0000,
            ram_bytes: 128 << 20,
        }
    }

    fn u32_at(p: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(p[off..off + 4].try_into().unwrap())
    }

    #[test]
    fn offsets_match_bootparam_h() {
        // struct boot_params (arch/x86/include/uapi/asm/bootparam.h).
        assert_eq!(ACPI_RSDP_ADDR, 0x070);
        assert_eq!(EXT_RAMDISK_IMAGE, 0x0C0);
        assert_eq!(EXT_RAMDISK_SIZE, 0x0C4);
        assert_eq!(EXT_CMD_LINE_PTR, 0x0C8);
        assert_eq!(ALT_MEM_K, 0x1E0);
        assert_eq!(E820_ENTRIES, 0x1E8);
        assert_eq!(SENTINEL, 0x1EF);
        assert_eq!(header::SETUP_SECTS, 0x1F1, "hdr");
        assert_eq!(E820_TABLE, 0x2D0);
        assert_eq!(
            E820_TABLE + E820_MAX * E820_ENTRY_SIZE,
            0xCD0,
            "eddbuf follows"
        );
    }

    #[test]
    fn header_copied_and_loader_fields_set() {
        let img = fake_bzimage(0x20F, 0x3000);
        let hdr = header::parse(&img).unwrap();
        let p = build(&img, &hdr, &facts());
        assert_eq!(p.len(), ZERO_PAGE_SIZE);
        assert_eq!(&p[header::HEADER..header::HEADER + 4], b"HdrS");
        assert_eq!(p[header::SETUP_SECTS], img[header::SETUP_SECTS]);
        assert_eq!(p[SENTINEL], 0, "the image's sentinel byte is not copied");
        assert_eq!(p[header::TYPE_OF_LOADER], 0xFF);
        assert_eq!(
            p[header::LOADFLAGS],
            header::LOADED_HIGH | header::CAN_USE_HEAP
        );
        assert_eq!(u32_at(&p, header::CODE32_START), 0x100_0000);
        assert_eq!(u32_at(&p, header::RAMDISK_IMAGE), 0x2345_6000);
        assert_eq!(u32_at(&p, EXT_RAMDISK_IMAGE), 1);
        assert_eq!(u32_at(&p, header::RAMDISK_SIZE), 0x2000);
        assert_eq!(u32_at(&p, header::CMD_LINE_PTR), 0x2_0000);
        assert_eq!(u32_at(&p, EXT_CMD_LINE_PTR), 0);
        assert_eq!(u32_at(&p, ACPI_RSDP_ADDR), 0xE_0000);
        assert_eq!(u32_at(&p, ALT_MEM_K), 127 * 1024);
        assert_eq!(p[E820_ENTRIES], 2);
        assert_eq!(u32_at(&p, E820_TABLE + 20 + 8), 0x7F0_0000);
        assert_eq!(u32_at(&p, E820_TABLE + 20 + 16), 1);
        // Nothing past the header copy but the e820 table.
        assert!(p[hdr.header_end..E820_TABLE].iter().all(|&b| b == 0));
    }
}
