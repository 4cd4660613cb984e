//! Linux kernels (bzImage) through the x86 boot protocol (`Documentation/x86/boot.rst`),
//! loaded the way a 64-bit boot loader does (as Firecracker and cloud-hypervisor do; QEMU
//! runs the real-mode setup code instead, which ends in the same state): the
//! protected-mode code at its preferred address, the initrd as high as it may go, the
//! command line and the zero page in low memory, and the CPU at the 64-bit entry point
//! (`startup_64`, load address + 0x200) in long mode with identity-mapped paging.
//!
//! # Guest-physical layout
//!
//! | range | contents |
//! |-------|----------|
//! | `0x040E`, `0x0413` | BIOS data area: EBDA segment 0x9FC0, 639 KiB of base memory ([`crate::firmware::bda`]) |
//! | `0x0500..0x0520` | the boot GDT: `__BOOT_CS` 0x10, `__BOOT_DS` 0x18 ([`entry`]) |
//! | `0x6000..0x7000` | a boot stack (RSP = 0x7000; the kernel sets its own at once) |
//! | `0x7000..0x8000` | the zero page (`boot_params`; RSI) ([`zero_page`]) |
//! | `0x20000..` | the command line, NUL-terminated, at most `cmdline_size` bytes |
//! | `0x30000..` | identity-mapping page tables (CR3): PML4, PDPT, one directory per GiB |
//! | `0x9FC00..0x100000` | reserved in the e820 map; the caller's firmware blobs (ACPI tables at 0xE0000) |
//! | `pref_address..+init_size` | the protected-mode kernel, and the room it decompresses in |
//! | below `min(initrd_addr_max + 1, RAM end)` | the initrd, page-aligned, as high as it fits |
//!
//! The e820 map: `[0, 0x9FC00)` RAM, `[0x9FC00, 0x100000)` reserved, `[0x100000, RAM end)`
//! RAM.
//!
//! # Entry state
//! 64-bit entry (protocol 2.12+ with XLF_KERNEL_64): RIP = load address + 0x200, RSI = the
//! zero page, CS = 0x10 (64-bit code), DS/ES/SS/FS/GS = 0x18, CR0 = PE | ET | PG, CR4 = PAE,
//! EFER = LME | LMA, CR3 = the identity map, RFLAGS = 0x2 (interrupts off), CPL 0, no IDT.
//! Otherwise the 32-bit entry: EIP = the load address, ESI = the zero page, CS = 0x10
//! (32-bit code), paging off, EFER = 0. [`crate::system::mode::reset_linux`] applies it.
//!
//! Invariants: [`load`] validates the header, places every piece and checks that each lies
//! in RAM and that no two overlap, before it writes a byte; so a rejected kernel, initrd or
//! command line leaves RAM untouched. It writes only the ranges it returns.

pub mod entry;
pub mod header;
pub mod zero_page;

pub use header::{is_bzimage, SetupHeader};

use crate::firmware::bda;
use crate::memory::{GuestPhys, GuestRam, PAGE_SIZE};
use zero_page::{BootFacts, E820Entry, E820Type};

/// The boot GDT.
pub const GDT_ADDR: u64 = 0x500;
/// Top of the boot stack.
pub const BOOT_STACK_TOP: u64 = 0x7000;
/// The zero page.
pub const ZERO_PAGE_ADDR: u64 = 0x7000;
/// The command line.
pub const CMDLINE_ADDR: u64 = 0x2_0000;
/// Room for the command line and its NUL.
pub const CMDLINE_AREA: u64 = 0x1_0000;
/// The page tables of the 64-bit entry.
pub const PAGE_TABLES_ADDR: u64 = 0x3_0000;
/// End of conventional memory (start of the EBDA).
pub const LOW_MEM_END: u64 = bda::EBDA_START;
/// Start of extended memory (1 MiB).
pub const HIGH_MEM: u64 = 0x10_0000;
/// Where a relocatable kernel goes when its `pref_address` is unusable (Linux's default
/// `LOAD_PHYSICAL_ADDR`).
pub const DEFAULT_RELOCATABLE_LOAD: u64 = 0x100_0000;
/// Offset of the 64-bit entry point from the load address.
pub const STARTUP_64_OFFSET: u64 = 0x200;

/// Why a Linux kernel, initrd or command line could not be loaded.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinuxError {
    /// Truncated bzImage: the file has {len} bytes, its setup header and setup code need {need}.
    #[error(
        "truncated bzImage: the file has {len} bytes, its setup header and setup code need {need}"
    )]
    Truncated {
        /// File size.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// No Linux boot protocol header (magic "HdrS" at offset 0x202).
    #[error("no Linux boot protocol header (magic \"HdrS\" at offset 0x202)")]
    BadMagic,
    /// Bad bzImage boot_flag {0:#06x} (expected 0xaa55).
    #[error("bad bzImage boot_flag {0:#06x} (expected 0xaa55)")]
    BadBootFlag(u16),
    /// Linux boot protocol {0:#06x} is too old (2.06 or later is needed).
    #[error("Linux boot protocol {}.{:02} is too old (2.06 or later is needed)", .0 >> 8, .0 & 0xFF)]
    OldProtocol(u16),
    /// The kernel is a zImage (LOADED_HIGH clear): only bzImages are supported.
    #[error("the kernel is a zImage (LOADED_HIGH clear): only bzImages are supported")]
    NotBzImage,
    /// Bad kernel_alignment {0:#x} (a relocatable kernel needs a power of two).
    #[error("bad kernel_alignment {0:#x} (a relocatable kernel needs a power of two)")]
    BadAlignment(u32),
    /// init_size {init_size:#x} is smaller than the kernel's {code_size:#x} bytes of protected-mode code.
    #[error("init_size {init_size:#x} is smaller than the kernel's {code_size:#x} bytes of protected-mode code")]
    BadInitSize {
        /// `init_size`.
        init_size: u64,
        /// Bytes of protected-mode code in the file.
        code_size: u64,
    },
    /// The kernel must be loaded at {0:#x}, below 1 MiB (and it is not relocatable).
    #[error("the kernel must be loaded at {0:#x}, below 1 MiB (and it is not relocatable)")]
    BadLoadAddress(u64),
    /// RAM too small: the kernel needs [{start:#x}, {end:#x}) (init_size {init_size:#x}) but RAM ends at {ram:#x}.
    #[error("RAM too small: the kernel needs [{start:#x}, {end:#x}) (init_size {init_size:#x}) but RAM ends at {ram:#x}")]
    RamTooSmall {
        /// Load address.
        start: u64,
        /// Load address + init_size.
        end: u64,
        /// `init_size`.
        init_size: u64,
        /// RAM size.
        ram: u64,
    },
    /// The initrd ({size:#x} bytes) does not fit in RAM below {limit:#x} outside the kernel's [{kernel_start:#x}, {kernel_end:#x}).
    #[error("the initrd ({size:#x} bytes) does not fit in RAM below {limit:#x} outside the kernel's [{kernel_start:#x}, {kernel_end:#x})")]
    InitrdDoesNotFit {
        /// Initrd size.
        size: u64,
        /// `min(initrd_addr_max + 1, RAM end)`.
        limit: u64,
        /// The kernel's span.
        kernel_start: u64,
        /// The kernel's span.
        kernel_end: u64,
    },
    /// Command line too long: {len} bytes, the kernel takes at most {max}.
    #[error("command line too long: {len} bytes, the kernel takes at most {max}")]
    CmdlineTooLong {
        /// Its length.
        len: usize,
        /// The limit (`cmdline_size`, or the loader's area).
        max: usize,
    },
    /// Command line contains a NUL byte.
    #[error("command line contains a NUL byte")]
    CmdlineHasNul,
    /// {what} [{start:#x}, {end:#x}) lies outside RAM (size {ram:#x}) or overlaps {other}.
    #[error("{what} [{start:#x}, {end:#x}) lies outside RAM (size {ram:#x}) or overlaps {other}")]
    Layout {
        /// What was being placed.
        what: &'static str,
        /// Its start.
        start: u64,
        /// Its end.
        end: u64,
        /// RAM size.
        ram: u64,
        /// What it collides with ("nothing" if it is outside RAM).
        other: &'static str,
    },
}

/// Bytes the caller's firmware wants in guest memory, with the ACPI RSDP's address.
#[derive(Clone, Copy, Debug, Default)]
pub struct Firmware<'a> {
    /// `(guest-physical address, bytes)` blobs, e.g. the ACPI tables at 0xE0000.
    pub blobs: &'a [(u64, &'a [u8])],
    /// The RSDP's address for `boot_params.acpi_rsdp_addr` (0: none).
    pub rsdp: u64,
}

/// What a successful load produced, for the runtime to apply (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinuxBoot {
    /// The first instruction: `startup_64` or the 32-bit entry.
    pub entry: u64,
    /// Whether `entry` is the 64-bit entry (long mode, paging on).
    pub long_mode: bool,
    /// RSI: the zero page.
    pub zero_page: u64,
    /// RSP.
    pub stack: u64,
    /// GDTR base.
    pub gdt_base: u64,
    /// GDTR limit.
    pub gdt_limit: u16,
    /// CR3 of the 64-bit entry (the identity map); 0 for the 32-bit entry.
    pub cr3: u64,
    /// The protected-mode kernel: load address and `init_size`.
    pub kernel: (u64, u64),
    /// The initrd, if any: address and size.
    pub initrd: Option<(u64, u64)>,
    /// The command line's address.
    pub cmdline_addr: u64,
    /// The setup header as validated.
    pub header: SetupHeader,
    /// Guest-physical `[start, end)` ranges written.
    pub ranges: Vec<(u64, u64)>,
}

/// A piece of guest memory to write, validated before anything is.
struct Piece<'a> {
    what: &'static str,
    addr: u64,
    bytes: std::borrow::Cow<'a, [u8]>,
    /// The span it reserves (at least its bytes; the kernel reserves `init_size`).
    span: u64,
}

/// The memory map of a machine with `ram` bytes.
pub fn e820(ram: u64) -> Vec<E820Entry> {
    vec![
        E820Entry {
            addr: 0,
            size: LOW_MEM_END,
            kind: E820Type::Ram,
        },
        E820Entry {
            addr: LOW_MEM_END,
            size: HIGH_MEM - LOW_MEM_END,
            kind: E820Type::Reserved,
        },
        E820Entry {
            addr: HIGH_MEM,
            size: ram.saturating_sub(HIGH_MEM),
            kind: E820Type::Ram,
        },
    ]
}

/// Where the protected-mode kernel goes: `pref_address` when it is at or above 1 MiB and
/// (if relocatable) aligned; else, if relocatable, Linux's default 16 MiB rounded up to
/// the kernel's alignment. The span `[load, load + init_size)` must fit in RAM (and below
/// 4 GiB unless the kernel may be loaded above it).
fn place_kernel(hdr: &SetupHeader, ram: u64) -> Result<u64, LinuxError> {
    let align = u64::from(hdr.kernel_alignment.max(1));
    let pref = hdr.pref_address;
    let usable = pref >= HIGH_MEM && (!hdr.relocatable || pref.is_multiple_of(align));
    let load = match (usable, hdr.relocatable) {
        (true, _) => pref,
        (false, true) => DEFAULT_RELOCATABLE_LOAD.next_multiple_of(align),
        (false, false) => return Err(LinuxError::BadLoadAddress(pref)),
    };
    let limit = if hdr.has_64bit_entry() && hdr.xloadflags & header::XLF_CAN_BE_LOADED_ABOVE_4G != 0
    {
        ram
    } else {
        ram.min(1 << 32)
    };
    match load.checked_add(hdr.init_size) {
        Some(end) if end <= limit => Ok(load),
        end => Err(LinuxError::RamTooSmall {
            start: load,
            end: end.unwrap_or(u64::MAX),
            init_size: hdr.init_size,
            ram,
        }),
    }
}

/// Where an initrd of `size` bytes goes: page-aligned, as high as possible below
/// `min(initrd_addr_max + 1, RAM end)`; below the kernel if it would overlap the kernel's
/// `init_size` span; never below 1 MiB.
fn place_initrd(
    hdr: &SetupHeader,
    ram: u64,
    kernel: (u64, u64),
    size: u64,
) -> Result<u64, LinuxError> {
    let limit = (u64::from(hdr.initrd_addr_max) + 1).min(ram);
    let (k_start, k_end) = (kernel.0, kernel.0 + kernel.1);
    let below = |top: u64| {
        top.checked_sub(size)
            .map(|a| a & !(PAGE_SIZE - 1))
            .filter(|&a| a >= HIGH_MEM)
    };
    let fits_above = |a: u64| a >= k_end || a + size <= k_start;
    below(limit)
        .filter(|&a| fits_above(a))
        .or_else(|| below(limit.min(k_start)))
        .ok_or(LinuxError::InitrdDoesNotFit {
            size,
            limit,
            kernel_start: k_start,
            kernel_end: k_end,
        })
}

/// Checks that every piece lies in RAM and that no two spans overlap.
fn check_layout(pieces: &[Piece], ram: u64) -> Result<(), LinuxError> {
    for (i, p) in pieces.iter().enumerate() {
        let end = p.addr.checked_add(p.span).filter(|&e| e <= ram);
        let other = pieces[..i]
            .iter()
            .find(|q| p.addr < q.addr + q.span && q.addr < p.addr + p.span)
            .map(|q| q.what);
        if end.is_none() || other.is_some() {
            return Err(LinuxError::Layout {
                what: p.what,
                start: p.addr,
                end: p.addr.saturating_add(p.span),
                ram,
                other: other.unwrap_or("nothing"),
            });
        }
    }
    Ok(())
}

/// Validates the bzImage `image`, the initrd and the command line against `ram`, loads them
/// with the zero page, GDT, page tables, BIOS data area words and `firmware`'s blobs, and
/// returns the entry state. On error RAM is untouched.
pub fn load(
    ram: &mut GuestRam,
    image: &[u8],
    initrd: Option<&[u8]>,
    cmdline: &str,
    firmware: &Firmware,
) -> Result<LinuxBoot, LinuxError> {
    let hdr = header::parse(image)?;
    let ram_size = ram.size();
    if cmdline.as_bytes().contains(&0) {
        return Err(LinuxError::CmdlineHasNul);
    }
    let max = (hdr.cmdline_size as usize).min(CMDLINE_AREA as usize - 1);
    if cmdline.len() > max {
        return Err(LinuxError::CmdlineTooLong {
            len: cmdline.len(),
            max,
        });
    }
    let load_addr = place_kernel(&hdr, ram_size)?;
    let kernel = (load_addr, hdr.init_size);
    let initrd = match initrd.filter(|b| !b.is_empty()) {
        Some(bytes) => {
            let size = bytes.len() as u64;
            Some((place_initrd(&hdr, ram_size, kernel, size)?, bytes))
        }
        None => None,
    };
    let long_mode = hdr.has_64bit_entry();
    let facts = BootFacts {
        load_addr,
        initrd: initrd.map(|(a, b)| (a, b.len() as u64)),
        cmdline_addr: CMDLINE_ADDR,
        e820: e820(ram_size),
        rsdp: firmware.rsdp,
        ram_bytes: ram_size,
    };
    fn piece<'a>(what: &'static str, addr: u64, bytes: std::borrow::Cow<'a, [u8]>) -> Piece<'a> {
        let span = bytes.len() as u64;
        Piece {
            what,
            addr,
            bytes,
            span,
        }
    }
    let mut cmdline_bytes = cmdline.as_bytes().to_vec();
    cmdline_bytes.push(0);
    let mut pieces = vec![
        Piece {
            what: "the kernel",
            addr: load_addr,
            bytes: image[hdr.setup_size..].into(),
            span: hdr.init_size,
        },
        piece("the command line", CMDLINE_ADDR, cmdline_bytes.into()),
        piece(
            "the zero page",
            ZERO_PAGE_ADDR,
            zero_page::build(image, &hdr, &facts).into(),
        ),
        piece(
            "the boot GDT",
            GDT_ADDR,
            entry::gdt(long_mode).to_vec().into(),
        ),
    ];
    if let Some((addr, bytes)) = initrd {
        pieces.push(piece("the initrd", addr, bytes.into()));
    }
    if long_mode {
        let tables = entry::page_tables(PAGE_TABLES_ADDR, ram_size);
        pieces.push(piece("the page tables", PAGE_TABLES_ADDR, tables.into()));
    }
    for (addr, bytes) in bda::words() {
        pieces.push(piece("the BIOS data area", addr, bytes.to_vec().into()));
    }
    for &(addr, bytes) in firmware.blobs {
        pieces.push(piece("a firmware blob", addr, bytes.into()));
    }
    check_layout(&pieces, ram_size)?;

    let mut ranges = Vec::with_capacity(pieces.len());
    for p in &pieces {
        let wrote = ram.write(GuestPhys(p.addr), &p.bytes);
        debug_assert!(wrote.is_ok(), "{} validated against RAM: {wrote:?}", p.what);
        ranges.push((p.addr, p.addr + p.bytes.len() as u64));
    }
    Ok(LinuxBoot {
        entry: if long_mode {
            load_addr + STARTUP_64_OFFSET
        } else {
            load_addr
        },
        long_mode,
        zero_page: ZERO_PAGE_ADDR,
        stack: BOOT_STACK_TOP,
        gdt_base: GDT_ADDR,
        gdt_limit: entry::GDT_SIZE as u16 - 1,
        cr3: if long_mode { PAGE_TABLES_ADDR } else { 0 },
        kernel,
        initrd: facts.initrd,
        cmdline_addr: CMDLINE_ADDR,
        header: hdr,
        ranges,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::header::*;
    use super::*;

    /// A synthetic bzImage: 4 setup sectors, protocol `version`, `code_len` bytes of
    /// protected-mode code, relocatable, 64-bit, pref_address 16 MiB, init_size 4 MiB.
    pub(crate) fn fake_bzimage(version: u16, code_len: usize) -> Vec<u8> {
        let mut v = vec![0u8; 5 * 512 + code_len];
        let mut put = |off: usize, bytes: &[u8]| v[off..off + bytes.len()].copy_from_slice(bytes);
        put(SETUP_SECTS, &[4]);
        put(zero_page::SENTINEL, &[0xFF]);
        put(BOOT_FLAG, &BOOT_FLAG_VALUE.to_le_bytes());
        put(JUMP, &[0xEB, 0x6A]);
        put(HEADER, MAGIC);
        put(VERSION, &version.to_le_bytes());
        put(LOADFLAGS, &[LOADED_HIGH]);
        put(CODE32_START, &0x10_0000u32.to_le_bytes());
        put(INITRD_ADDR_MAX, &0x7FFF_FFFFu32.to_le_bytes());
        put(KERNEL_ALIGNMENT, &0x20_0000u32.to_le_bytes());
        put(RELOCATABLE_KERNEL, &[1]);
        put(XLOADFLAGS, &0x7Fu16.to_le_bytes());
        put(CMDLINE_SIZE, &2047u32.to_le_bytes());
        put(PREF_ADDRESS, &0x100_0000u64.to_le_bytes());
        put(INIT_SIZE, &0x40_0000u32.to_le_bytes());
        for (i, b) in v[5 * 512..].iter_mut().enumerate() {
            *b = (i % 251) as u8 + 1;
        }
        v
    }

    const RAM: u64 = 64 << 20;

    fn ram() -> GuestRam {
        GuestRam::new(RAM).unwrap()
    }

    fn all_zero(ram: &GuestRam) -> bool {
        ram.slice(GuestPhys(0), RAM as usize)
            .unwrap()
            .iter()
            .all(|&b| b == 0)
    }

    fn rd(ram: &GuestRam, addr: u64, n: usize) -> Vec<u8> {
        ram.slice(GuestPhys(addr), n).unwrap().to_vec()
    }

    fn u32_at(ram: &GuestRam, addr: u64) -> u32 {
        u32::from_le_bytes(rd(ram, addr, 4).try_into().unwrap())
    }

    #[test]
    fn loads_kernel_initrd_cmdline_and_zero_page() {
        let img = fake_bzimage(0x20F, 0x3000);
        let initrd = vec![0xAB; 0x1800];
        let acpi = [0x5Au8; 64];
        let blobs = [(0xE_0000, &acpi[..])];
        let fw = Firmware {
            blobs: &blobs,
            rsdp: 0xE_0000,
        };
        let mut ram = ram();
        let b = load(&mut ram, &img, Some(&initrd), "console=ttyS0", &fw).unwrap();
        assert!(b.long_mode);
        assert_eq!(b.kernel, (0x100_0000, 0x40_0000));
        assert_eq!(b.entry, 0x100_0200);
        assert_eq!(
            (b.zero_page, b.cr3, b.gdt_base, b.gdt_limit),
            (0x7000, 0x3_0000, 0x500, 31)
        );
        assert_eq!(rd(&ram, 0x100_0000, 16), img[2560..2576]);
        // The initrd at the top of RAM, page-aligned.
        assert_eq!(b.initrd, Some((RAM - 0x2000, 0x1800)));
        assert_eq!(rd(&ram, RAM - 0x2000, 4), [0xAB; 4]);
        assert_eq!(rd(&ram, CMDLINE_ADDR, 14), b"console=ttyS0\0");
        assert_eq!(rd(&ram, 0xE_0000, 4), [0x5A; 4]);
        assert_eq!(rd(&ram, 0x40E, 2), [0xC0, 0x9F]);
        // The zero page.
        let zp = ZERO_PAGE_ADDR;
        assert_eq!(rd(&ram, zp + HEADER as u64, 4), b"HdrS");
        assert_eq!(
            u32_at(&ram, zp + RAMDISK_IMAGE as u64),
            (RAM - 0x2000) as u32
        );
        assert_eq!(u32_at(&ram, zp + RAMDISK_SIZE as u64), 0x1800);
        assert_eq!(u32_at(&ram, zp + CMD_LINE_PTR as u64), CMDLINE_ADDR as u32);
        assert_eq!(
            u32_at(&ram, zp + zero_page::ACPI_RSDP_ADDR as u64),
            0xE_0000
        );
        assert_eq!(rd(&ram, zp + zero_page::E820_ENTRIES as u64, 1), [3]);
        assert_eq!(rd(&ram, zp + TYPE_OF_LOADER as u64, 1), [0xFF]);
        // The GDT's code descriptor and the first page-table entry.
        assert_eq!(rd(&ram, 0x510, 8), entry::CODE64_DESCRIPTOR.to_le_bytes());
        assert_eq!(u32_at(&ram, PAGE_TABLES_ADDR), 0x3_1003);
        let total: u64 = b.ranges.iter().map(|(s, e)| e - s).sum();
        assert!(total > 0x3000 + 0x1800);
    }

    #[test]
    fn e820_marks_low_ram_the_legacy_hole_and_high_ram() {
        let m = e820(128 << 20);
        assert_eq!(
            m.iter()
                .map(|e| (e.addr, e.addr + e.size, e.kind))
                .collect::<Vec<_>>(),
            [
                (0, 0x9_FC00, E820Type::Ram),
                (0x9_FC00, 0x10_0000, E820Type::Reserved),
                (0x10_0000, 128 << 20, E820Type::Ram)
            ]
        );
    }

    #[test]
    fn thirty_two_bit_entry_for_old_protocols() {
        let img = fake_bzimage(0x20B, 0x1000);
        let mut ram = ram();
        let b = load(&mut ram, &img, None, "", &Firmware::default()).unwrap();
        assert!(!b.long_mode);
        assert_eq!((b.entry, b.cr3), (0x100_0000, 0));
        assert_eq!(rd(&ram, 0x510, 8), entry::CODE32_DESCRIPTOR.to_le_bytes());
        assert_eq!(b.initrd, None);
        assert_eq!(rd(&ram, PAGE_TABLES_ADDR, 8), [0; 8], "no page tables");
    }

    #[test]
    fn unusable_pref_address_relocates_to_16_mib() {
        let mut img = fake_bzimage(0x20F, 0x1000);
        img[PREF_ADDRESS..PREF_ADDRESS + 8].copy_from_slice(&0x1234u64.to_le_bytes());
        let mut ram = ram();
        let b = load(&mut ram, &img, None, "", &Firmware::default()).unwrap();
        assert_eq!(b.kernel.0, 0x100_0000);
        img[RELOCATABLE_KERNEL] = 0;
        assert_eq!(
            load(
                &mut GuestRam::new(RAM).unwrap(),
                &img,
                None,
                "",
                &Firmware::default()
            ),
            Err(LinuxError::BadLoadAddress(0x1234))
        );
    }

    #[test]
    fn initrd_goes_below_the_kernel_when_the_top_is_taken() {
        let img = fake_bzimage(0x20F, 0x1000);
        let hdr = header::parse(&img).unwrap();
        // initrd_addr_max just above the kernel's end: the space above is too small.
        let kernel = (0x100_0000, 0x40_0000);
        let mut h = hdr;
        h.initrd_addr_max = 0x140_0FFF;
        assert_eq!(
            place_initrd(&h, RAM, kernel, 0x2000),
            Ok(0x100_0000 - 0x2000)
        );
        assert!(place_initrd(&h, RAM, kernel, 0x100_0000).is_err());
        assert_eq!(place_initrd(&hdr, RAM, kernel, 0x1000), Ok(RAM - 0x1000));
    }

    #[test]
    fn bad_input_is_a_typed_error_and_ram_stays_untouched() {
        let img = fake_bzimage(0x20F, 0x3000);
        let fw = Firmware::default();
        let big_initrd = vec![1u8; (RAM - (17 << 20)) as usize];
        let mut old = img.clone();
        old[VERSION..VERSION + 2].copy_from_slice(&0x204u16.to_le_bytes());
        let mut huge = img.clone();
        huge[INIT_SIZE..INIT_SIZE + 4].copy_from_slice(&0x400_0000u32.to_le_bytes());
        let long_cmdline = "x".repeat(2048);
        type Case<'a> = (&'a [u8], Option<&'a [u8]>, &'a str);
        let cases: Vec<Case> = vec![
            (&img[..1000], None, ""),
            (&img[..2560], None, ""),
            (&old, None, ""),
            (&huge, None, ""),
            (&img, Some(&big_initrd), ""),
            (&img, None, &long_cmdline),
            (&img, None, "a\0b"),
        ];
        for (i, (image, initrd, cmdline)) in cases.into_iter().enumerate() {
            let mut ram = ram();
            let e = load(&mut ram, image, initrd, cmdline, &fw).unwrap_err();
            assert!(all_zero(&ram), "case {i}: {e}");
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "{msg}");
        }
        let mut ram = ram();
        assert!(matches!(
            load(&mut ram, &huge, None, "", &fw),
            Err(LinuxError::RamTooSmall {
                end: 0x500_0000,
                ..
            })
        ));
        assert!(matches!(
            load(&mut ram, &img, Some(&big_initrd), "", &fw),
            Err(LinuxError::InitrdDoesNotFit { .. })
        ));
        assert_eq!(
            load(&mut ram, &old, None, "", &fw).unwrap_err().to_string(),
            "Linux boot protocol 2.04 is too old (2.06 or later is needed)"
        );
        // The longest command line the kernel takes is fine.
        assert!(load(&mut ram, &img, None, &"x".repeat(2047), &fw).is_ok());
    }

    #[test]
    fn firmware_blobs_that_collide_are_refused() {
        let img = fake_bzimage(0x20F, 0x1000);
        let blob = [1u8; 16];
        let blobs = [(ZERO_PAGE_ADDR + 8, &blob[..])];
        let fw = Firmware {
            blobs: &blobs,
            rsdp: 0,
        };
        let mut ram = ram();
        assert!(matches!(
            load(&mut ram, &img, None, "", &fw),
            Err(LinuxError::Layout {
                other: "the zero page",
                ..
            })
        ));
        assert!(all_zero(&ram));
        let blobs = [(RAM - 8, &blob[..])];
        let fw = Firmware {
            blobs: &blobs,
            rsdp: 0,
        };
        assert!(matches!(
            load(&mut ram, &img, None, "", &fw),
            Err(LinuxError::Layout {
                other: "nothing",
                ..
            })
        ));
    }
}
