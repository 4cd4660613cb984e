//! The Multiboot boot information and the boot modules, placed after the kernel image the
//! way QEMU places them: from the first page boundary after the highest loaded byte, each
//! module page-aligned, then the information area. If that would run from conventional
//! memory into the reserved area below 1 MiB, everything goes to 1 MiB instead (nothing
//! of the kernel is loaded there: it all lies below the start).
//!
//! The information area (EBX points at its start):
//!
//! | offset | contents |
//! |--------|----------|
//! | `0x00` | `multiboot_info` (0x80 bytes; fields not listed below are zero) |
//! | `0x80` | memory map: 4 entries of `{size = 20, base_addr: u64, length: u64, type: u32}` |
//! | `0xE0` | boot loader name `"popek\0"` |
//! | `0xF0` | module list: per module `{mod_start, mod_end, string, reserved}` (u32s) |
//! | after  | the command line, then each module's string, NUL-terminated |
//!
//! `flags` = MEM | CMDLINE | MODS | MMAP | BOOT_LOADER_NAME (bits 0, 2, 3, 6, 9);
//! `mem_lower` = 639 (KiB), `mem_upper` = (RAM − 1 MiB) / 1 KiB; the memory map is
//! `[0, 0x9FC00)` available, `[0x9FC00, 0xA0000)` reserved, `[0xF0000, 0x100000)` reserved,
//! `[0x100000, RAM end)` available.
//!
//! Invariants: [`plan`] is pure and checks that everything it places lies in available RAM
//! below 4 GiB; every address written into the area is one it placed.

use super::{MultibootError, ADDRESS_LIMIT, HIGH_MEM, LOW_MEM_END};

/// Info flag: `mem_lower` and `mem_upper` are valid.
pub const INFO_MEMORY: u32 = 1 << 0;
/// Info flag: `cmdline` is valid.
pub const INFO_CMDLINE: u32 = 1 << 2;
/// Info flag: `mods_count` and `mods_addr` are valid.
pub const INFO_MODS: u32 = 1 << 3;
/// Info flag: `mmap_length` and `mmap_addr` are valid.
pub const INFO_MEM_MAP: u32 = 1 << 6;
/// Info flag: `boot_loader_name` is valid.
pub const INFO_BOOT_LOADER_NAME: u32 = 1 << 9;

/// Offset of the memory map in the area.
pub const MMAP_OFFSET: u64 = 0x80;
/// Offset of the boot loader name.
pub const LOADER_NAME_OFFSET: u64 = 0xE0;
/// Offset of the module list.
pub const MODS_OFFSET: u64 = 0xF0;
/// Size of one module-list entry.
pub const MOD_ENTRY_SIZE: u64 = 16;
/// The name in `boot_loader_name`.
pub const LOADER_NAME: &str = "popek";

/// Size of one memory-map entry, its `size` field included.
const MMAP_ENTRY_SIZE: usize = 24;
/// Memory-map entry type: available RAM.
const MMAP_AVAILABLE: u32 = 1;
/// Memory-map entry type: reserved.
const MMAP_RESERVED: u32 = 2;
/// End of the EBDA (start of the VGA hole).
const EBDA_END: u64 = 0xA_0000;
/// Start of the BIOS ROM.
const BIOS_ROM: u64 = 0xF_0000;
/// Page size: modules and the area start on page boundaries.
const PAGE: u64 = 4096;

/// A boot module: its bytes and its string (QEMU: the `-initrd` entry, file name first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Module<'a> {
    /// The module's string (`"file args"`).
    pub cmdline: &'a str,
    /// Its contents.
    pub bytes: &'a [u8],
}

/// Where everything goes and what the information area holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InfoPlan {
    /// Guest-physical address of each module.
    pub modules: Vec<u64>,
    /// Guest-physical address of the information area (EBX).
    pub info: u64,
    /// The area's bytes.
    pub bytes: Vec<u8>,
}

/// Places the modules and the information area after `image_end` (the end of the highest
/// loaded byte) in a RAM of `ram` bytes, and builds the area.
pub fn plan(
    image_end: u64,
    ram: u64,
    cmdline: &str,
    modules: &[Module],
) -> Result<InfoPlan, MultibootError> {
    let strings_len: u64 = modules
        .iter()
        .map(|m| m.cmdline.len() as u64 + 1)
        .sum::<u64>()
        + cmdline.len() as u64
        + 1;
    let area_len = MODS_OFFSET + MOD_ENTRY_SIZE * modules.len() as u64 + strings_len;
    let layout = |start: u64| -> Option<(Vec<u64>, u64, u64)> {
        let mut cursor = start;
        let mut addrs = Vec::with_capacity(modules.len());
        for m in modules {
            let at = cursor.checked_next_multiple_of(PAGE)?;
            addrs.push(at);
            cursor = at.checked_add(m.bytes.len() as u64)?;
        }
        let info = cursor.checked_next_multiple_of(PAGE)?;
        Some((addrs, info, info.checked_add(area_len)?))
    };
    let start = image_end.checked_next_multiple_of(PAGE).unwrap_or(u64::MAX);
    let mut placed = layout(start);
    if let Some((_, _, end)) = placed {
        if start < HIGH_MEM && end > LOW_MEM_END {
            placed = layout(HIGH_MEM);
        }
    }
    let limit = ram.min(ADDRESS_LIMIT);
    let (modules_at, info, end) =
        placed
            .filter(|&(_, _, end)| end <= limit)
            .ok_or(MultibootError::BootInfoDoesNotFit {
                start,
                size: area_len,
                ram,
            })?;
    let bytes = build(info, ram, cmdline, modules, &modules_at);
    debug_assert_eq!(info + bytes.len() as u64, end);
    Ok(InfoPlan {
        modules: modules_at,
        info,
        bytes,
    })
}

/// The information area's bytes for an area at `base` (below 4 GiB: checked by [`plan`]).
fn build(base: u64, ram: u64, cmdline: &str, modules: &[Module], modules_at: &[u64]) -> Vec<u8> {
    let mods_len = MOD_ENTRY_SIZE as usize * modules.len();
    let cmdline_off = MODS_OFFSET as usize + mods_len;
    let mut b = vec![0u8; cmdline_off];
    let addr = |off: usize| (base + off as u64) as u32;
    let put = |b: &mut Vec<u8>, off: usize, bytes: &[u8]| {
        b[off..off + bytes.len()].copy_from_slice(bytes)
    };
    let flags = INFO_MEMORY | INFO_CMDLINE | INFO_MODS | INFO_MEM_MAP | INFO_BOOT_LOADER_NAME;
    let mem_upper = u32::try_from(ram.saturating_sub(HIGH_MEM) / 1024).unwrap_or(u32::MAX);
    let map = [
        (0, LOW_MEM_END, MMAP_AVAILABLE),
        (LOW_MEM_END, EBDA_END - LOW_MEM_END, MMAP_RESERVED),
        (BIOS_ROM, HIGH_MEM - BIOS_ROM, MMAP_RESERVED),
        (HIGH_MEM, ram.saturating_sub(HIGH_MEM), MMAP_AVAILABLE),
    ];
    let fields: [(usize, u32); 9] = [
        (0, flags),
        (4, (LOW_MEM_END / 1024) as u32),
        (8, mem_upper),
        (16, addr(cmdline_off)),
        (20, modules.len() as u32),
        (24, addr(MODS_OFFSET as usize)),
        (44, (map.len() * MMAP_ENTRY_SIZE) as u32),
        (48, addr(MMAP_OFFSET as usize)),
        (64, addr(LOADER_NAME_OFFSET as usize)),
    ];
    for (off, value) in fields {
        put(&mut b, off, &value.to_le_bytes());
    }
    for (i, (start, length, kind)) in map.into_iter().enumerate() {
        let off = MMAP_OFFSET as usize + i * MMAP_ENTRY_SIZE;
        put(&mut b, off, &((MMAP_ENTRY_SIZE - 4) as u32).to_le_bytes());
        put(&mut b, off + 4, &start.to_le_bytes());
        put(&mut b, off + 12, &length.to_le_bytes());
        put(&mut b, off + 20, &kind.to_le_bytes());
    }
    put(&mut b, LOADER_NAME_OFFSET as usize, LOADER_NAME.as_bytes());
    b.extend_from_slice(cmdline.as_bytes());
    b.push(0);
    for (i, (m, &at)) in modules.iter().zip(modules_at).enumerate() {
        let string = addr(b.len());
        b.extend_from_slice(m.cmdline.as_bytes());
        b.push(0);
        let entry = MODS_OFFSET as usize + i * MOD_ENTRY_SIZE as usize;
        let end = (at + m.bytes.len() as u64) as u32;
        for (k, v) in [at as u32, end, string, 0].into_iter().enumerate() {
            put(&mut b, entry + 4 * k, &v.to_le_bytes());
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM: u64 = 4 << 20;

    fn u32_at(b: &[u8], off: u64) -> u32 {
        let off = off as usize;
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    #[test]
    fn area_follows_the_image_on_a_page_boundary() {
        let p = plan(0x10_2020, RAM, "ro", &[]).unwrap();
        assert_eq!(p.info, 0x10_3000);
        assert!(p.modules.is_empty());
        assert_eq!(
            u32_at(&p.bytes, 16),
            0x10_3000 + MODS_OFFSET as u32,
            "cmdline"
        );
        assert_eq!(&p.bytes[MODS_OFFSET as usize..], b"ro\0");
    }

    #[test]
    fn modules_page_aligned_then_the_area_with_their_strings() {
        let (a, b) = (vec![1u8; 0x1001], vec![2u8; 3]);
        let mods = [
            Module {
                cmdline: "/boot/a.bin arg=1",
                bytes: &a,
            },
            Module {
                cmdline: "b",
                bytes: &b,
            },
        ];
        let p = plan(0x10_0008, RAM, "kernel.elf x", &mods).unwrap();
        assert_eq!(p.modules, [0x10_1000, 0x10_3000]);
        assert_eq!(p.info, 0x10_4000);
        let info = &p.bytes;
        assert_eq!(u32_at(info, 20), 2, "mods_count");
        assert_eq!(u32_at(info, 24), 0x10_40F0, "mods_addr");
        let entry = |i: u64, k: u64| u32_at(info, MODS_OFFSET + 16 * i + 4 * k);
        assert_eq!([entry(0, 0), entry(0, 1)], [0x10_1000, 0x10_2001]);
        assert_eq!([entry(1, 0), entry(1, 1)], [0x10_3000, 0x10_3003]);
        let string = |i: u64| {
            let off = (entry(i, 2) - 0x10_4000) as usize;
            let end = off + info[off..].iter().position(|&c| c == 0).unwrap();
            std::str::from_utf8(&info[off..end]).unwrap().to_string()
        };
        assert_eq!(string(0), "/boot/a.bin arg=1");
        assert_eq!(string(1), "b");
        assert_eq!(entry(0, 3), 0);
    }

    #[test]
    fn low_kernels_get_the_area_right_after_them_or_at_1_mib() {
        // A kernel at 0x8000: the area follows it in conventional memory.
        let p = plan(0x8100, RAM, "", &[]).unwrap();
        assert_eq!(p.info, 0x9000);
        // Too big to fit below the EBDA: moved to 1 MiB.
        let m = vec![0u8; 0x9_7000];
        let p = plan(
            0x8100,
            RAM,
            "",
            &[Module {
                cmdline: "m",
                bytes: &m,
            }],
        )
        .unwrap();
        assert_eq!((p.modules[0], p.info), (0x10_0000, 0x19_7000));
    }

    #[test]
    fn what_does_not_fit_is_an_error() {
        let m = vec![0u8; RAM as usize];
        assert!(matches!(
            plan(
                0x10_0000,
                RAM,
                "",
                &[Module {
                    cmdline: "m",
                    bytes: &m
                }]
            ),
            Err(MultibootError::BootInfoDoesNotFit { .. })
        ));
        assert!(matches!(
            plan(RAM - 0x10, RAM, "", &[]),
            Err(MultibootError::BootInfoDoesNotFit { .. })
        ));
        assert!(
            plan(u64::MAX - 5, RAM, "", &[]).is_err(),
            "no overflow panic"
        );
    }
}
