//! Multiboot v1 kernels (specification 0.6.96), loaded the way GRUB and
//! `qemu-system-x86_64 -kernel` load them, so one file boots under both.
//!
//! # The image
//! The Multiboot header is the first 4-byte-aligned `0x1BADB002` in the first 8192 bytes whose
//! checksum makes `magic + flags + checksum == 0` (mod 2^32); it must lie wholly inside those
//! 8192 bytes. Flag bits 0–15 are requirements: popek meets bit 0 (page-align modules; it loads
//! none) and bit 1 (memory information; always given) and refuses any other, e.g. bit 2 (video
//! mode). Bits 16–31 are optional: bit 16 (the "a.out kludge") says the header's address fields
//! describe the image, which is then loaded as a flat binary:
//! - file bytes from `header_offset - (header_addr - load_addr)`, `load_end_addr - load_addr`
//!   of them (or to the end of the file if `load_end_addr` is 0), go to `load_addr`;
//! - from the end of those bytes up to `bss_end_addr` is zeroed (no `.bss` if it is 0);
//! - execution starts at `entry_addr`, which must lie in the loaded bytes.
//!
//! With bit 16 any ELF headers are ignored, as in QEMU and GRUB (this is how 64-bit kernels with
//! a 32-bit entry stub are usually packaged).
//!
//! Without bit 16 the image must be an ELF32 little-endian `EM_386` `ET_EXEC` file (QEMU refuses
//! ELF64 Multiboot kernels, so popek does too): each `PT_LOAD` segment goes to `p_paddr`, its
//! memory-size tail is zeroed, and `e_entry` is translated through the segment whose `p_vaddr`
//! range holds it (as GRUB and QEMU do for higher-half kernels; identity when `p_vaddr ==
//! p_paddr`).
//!
//! Everything loaded must fit in RAM below 4 GiB, inside memory the memory map calls available
//! (`[0, 0x9FC00)` or `[0x100000, RAM end)`), and outside the boot-information area.
//!
//! # Boot information
//! A fixed area `[0x9000, 0xA000)` ([`BOOT_INFO_ADDR`], [`BOOT_INFO_END`]) holds:
//!
//! | address  | contents                                                              |
//! |----------|-----------------------------------------------------------------------|
//! | `0x9000` | `multiboot_info` (0x80 bytes; fields not listed below are zero)         |
//! | `0x9080` | memory map: 4 entries of `{size = 20, base_addr: u64, length: u64, type: u32}` |
//! | `0x90E0` | boot loader name `"popek\0"`                                          |
//! | `0x90F0` | module list (empty, `mods_count = 0`)                                 |
//! | `0x9100` | command line, NUL-terminated, at most [`CMDLINE_MAX`] bytes before the NUL |
//!
//! `flags` = MEM | CMDLINE | MODS | MMAP | BOOT_LOADER_NAME (bits 0, 2, 3, 6, 9);
//! `mem_lower` = 639 (KiB), `mem_upper` = (RAM − 1 MiB) / 1 KiB; the memory map is
//! `[0, 0x9FC00)` available, `[0x9FC00, 0xA0000)` reserved, `[0xF0000, 0x100000)` reserved,
//! `[0x100000, RAM end)` available.
//!
//! # Machine state
//! [`MultibootBoot`] carries EIP, EAX (`0x2BADB002`) and EBX (the info structure). The runtime
//! must also set, as the specification requires:
//! - CS: 32-bit flat execute/read code segment, base 0, limit 4 GiB − 1 (granularity 4 KiB);
//! - DS, ES, FS, GS, SS: 32-bit flat read/write data segments, base 0, limit 4 GiB − 1;
//! - CR0: PE = 1, PG = 0; EFLAGS: VM = 0, IF = 0; the A20 gate enabled;
//! - ESP, GDTR and IDTR are undefined: the kernel must set its own before using them.
//!
//! Invariants: every number read from the image goes through checked arithmetic before use;
//! [`load`] validates the header, every segment, the entry point and the command line before it
//! writes a byte, so a rejected image leaves RAM untouched; it writes only the ranges it returns.

use super::elf::{load_headers, PhClass, PhError};
use crate::memory::{GuestPhys, GuestRam};

/// `magic` of a Multiboot header.
pub const HEADER_MAGIC: u32 = 0x1BAD_B002;
/// EAX at entry: tells the kernel a Multiboot loader started it.
pub const BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;
/// The header must lie wholly within this many bytes at the start of the file.
pub const SEARCH_LIMIT: usize = 8192;

/// Header flag (required): align boot modules on 4 KiB pages.
pub const FLAG_PAGE_ALIGN: u32 = 1 << 0;
/// Header flag (required): provide `mem_*` (and the memory map).
pub const FLAG_MEMORY_INFO: u32 = 1 << 1;
/// Header flag (required): set a video mode (not supported).
pub const FLAG_VIDEO_MODE: u32 = 1 << 2;
/// Header flag (optional): the a.out kludge address fields are valid; load as a flat binary.
pub const FLAG_AOUT_KLUDGE: u32 = 1 << 16;
/// Header flag bits that are requirements.
const REQUIRED_FLAGS: u32 = 0xFFFF;
/// Required bits popek meets.
const SUPPORTED_REQUIRED_FLAGS: u32 = FLAG_PAGE_ALIGN | FLAG_MEMORY_INFO;

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

/// Start of the boot-information area (the `multiboot_info` structure; EBX).
pub const BOOT_INFO_ADDR: u64 = 0x9000;
/// End (exclusive) of the boot-information area.
pub const BOOT_INFO_END: u64 = 0xA000;
/// The memory map.
pub const MMAP_ADDR: u64 = 0x9080;
/// The boot loader name.
pub const LOADER_NAME_ADDR: u64 = 0x90E0;
/// The (empty) module list.
pub const MODS_ADDR: u64 = 0x90F0;
/// The command line.
pub const CMDLINE_ADDR: u64 = 0x9100;
/// Longest command line, in bytes, not counting its NUL.
pub const CMDLINE_MAX: usize = (BOOT_INFO_END - CMDLINE_ADDR - 1) as usize;
/// The name in `boot_loader_name`.
pub const LOADER_NAME: &str = "popek";

/// Size of one memory-map entry, its `size` field included.
const MMAP_ENTRY_SIZE: usize = 24;
/// Memory-map entry type: available RAM.
const MMAP_AVAILABLE: u32 = 1;
/// Memory-map entry type: reserved.
const MMAP_RESERVED: u32 = 2;
/// End of conventional memory (start of the EBDA).
const LOW_MEM_END: u64 = 0x9_FC00;
/// End of the EBDA (start of the VGA hole).
const EBDA_END: u64 = 0xA_0000;
/// Start of the BIOS ROM.
const BIOS_ROM: u64 = 0xF_0000;
/// Start of extended memory (1 MiB).
const HIGH_MEM: u64 = 0x10_0000;
/// Protected mode without paging reaches only the first 4 GiB.
const ADDRESS_LIMIT: u64 = 1 << 32;

const ELFMAG: &[u8; 4] = b"\x7fELF";
/// Size of the ELF32 file header.
const EHDR32_SIZE: usize = 52;
const ELFCLASS32: u8 = 1;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const EV_CURRENT: u8 = 1;
const ET_EXEC: u16 = 2;
const EM_386: u16 = 3;

/// The a.out kludge address fields of a Multiboot header (valid when flag bit 16 is set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AoutKludge {
    /// Physical address of the header itself.
    pub header_addr: u32,
    /// Physical address of the start of the text segment.
    pub load_addr: u32,
    /// Physical address of the end of the data segment (0: to the end of the file).
    pub load_end_addr: u32,
    /// Physical address of the end of `.bss` (0: no `.bss`).
    pub bss_end_addr: u32,
    /// Physical address to jump to.
    pub entry_addr: u32,
}

/// The video-mode fields of a Multiboot header (valid when flag bit 2 is set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoMode {
    /// 0: linear graphics, 1: EGA text.
    pub mode_type: u32,
    /// Columns (pixels or characters).
    pub width: u32,
    /// Lines (pixels or characters).
    pub height: u32,
    /// Bits per pixel (0 in text mode).
    pub depth: u32,
}

/// A Multiboot header with a valid checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// `flags`.
    pub flags: u32,
    /// `checksum`.
    pub checksum: u32,
    /// The address fields, if flag bit 16 is set and they lie within the search window and file.
    pub aout: Option<AoutKludge>,
    /// The video fields, if flag bit 2 is set and they lie within the search window and file.
    pub video: Option<VideoMode>,
}

/// The machine state a Multiboot kernel starts in, as data for the runtime to apply (see the
/// module documentation for the state not carried here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultibootBoot {
    /// EIP: the kernel's entry point.
    pub entry: u32,
    /// EAX: [`BOOTLOADER_MAGIC`].
    pub eax: u32,
    /// EBX: physical address of the `multiboot_info` structure ([`BOOT_INFO_ADDR`]).
    pub ebx: u32,
    /// Guest-physical `[start, end)` ranges written (kernel bytes, zeroed tails, boot info).
    pub ranges: Vec<(u64, u64)>,
}

/// The part of an image an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece {
    /// The ELF program header with this index.
    Segment(usize),
    /// The flat image the a.out kludge describes.
    AoutImage,
}

impl std::fmt::Display for Piece {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Piece::Segment(index) => write!(f, "ELF segment {index}"),
            Piece::AoutImage => f.write_str("the a.out kludge image"),
        }
    }
}

/// Why a Multiboot image could not be loaded.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum MultibootError {
    /// No Multiboot header (magic 0x1BADB002) in the first 8192 bytes.
    #[error("no Multiboot header (magic 0x1BADB002) in the first 8192 bytes")]
    NoHeader,
    /// Multiboot header at offset {offset:#x}: bad checksum (magic + flags + checksum = {sum:#x}, must be 0).
    #[error(
        "Multiboot header at offset {offset:#x}: bad checksum (magic + flags + checksum = {sum:#x}, must be 0)"
    )]
    BadChecksum {
        /// File offset of the header.
        offset: usize,
        /// The sum, mod 2^32.
        sum: u32,
    },
    /// The kernel requires Multiboot features popek does not provide (required flag bits {bits:#x}; bit 2 is a video mode).
    #[error(
        "the kernel requires Multiboot features popek does not provide (required flag bits {bits:#x}; bit 2 is a video mode)"
    )]
    UnsupportedFlags {
        /// The unsupported required bits.
        bits: u32,
    },
    /// Multiboot header at offset {offset:#x}: the a.out kludge fields run past the end of the file or of the first 8192 bytes.
    #[error(
        "Multiboot header at offset {offset:#x}: the a.out kludge fields run past the end of the file or of the first 8192 bytes"
    )]
    TruncatedHeader {
        /// File offset of the header.
        offset: usize,
    },
    /// Not an ELF file, and the Multiboot header does not set the a.out kludge (flag bit 16).
    #[error(
        "not an ELF file, and the Multiboot header does not set the a.out kludge (flag bit 16)"
    )]
    NotElf,
    /// ELF64 Multiboot kernels are not supported (QEMU refuses them too): build an ELF32 kernel or use the a.out kludge.
    #[error(
        "ELF64 Multiboot kernels are not supported (QEMU refuses them too): build an ELF32 kernel or use the a.out kludge"
    )]
    Elf64,
    /// Bad ELF class {0} (expected 1, ELFCLASS32).
    #[error("bad ELF class {0} (expected 1, ELFCLASS32)")]
    BadElfClass(u8),
    /// Truncated ELF header: the file has {len} bytes, the header needs 52.
    #[error("truncated ELF header: the file has {len} bytes, the header needs 52")]
    TruncatedElfHeader {
        /// File size.
        len: usize,
    },
    /// Not a little-endian ELF file (EI_DATA {0}).
    #[error("not a little-endian ELF file (EI_DATA {0})")]
    NotLittleEndian(u8),
    /// Unsupported ELF version {0}.
    #[error("unsupported ELF version {0}")]
    BadElfVersion(u8),
    /// Not an i386 ELF file (e_machine {0}; Multiboot ELF kernels must be EM_386).
    #[error("not an i386 ELF file (e_machine {0}; Multiboot ELF kernels must be EM_386)")]
    NotI386(u16),
    /// Not an executable ELF file (e_type {0}; only ET_EXEC kernels are supported).
    #[error("not an executable ELF file (e_type {0}; only ET_EXEC kernels are supported)")]
    NotExecutable(u16),
    /// Bad program header entry size {0} (expected 32).
    #[error("bad program header entry size {0} (expected 32)")]
    BadProgramHeaderSize(u16),
    /// Too many program headers (extended numbering is not supported).
    #[error("too many program headers (extended numbering is not supported)")]
    TooManyProgramHeaders,
    /// Truncated program headers: {count} entries at offset {offset:#x} do not fit in the {len}-byte file.
    #[error(
        "truncated program headers: {count} entries at offset {offset:#x} do not fit in the {len}-byte file"
    )]
    TruncatedProgramHeaders {
        /// `e_phoff`.
        offset: u32,
        /// `e_phnum`.
        count: u16,
        /// File size.
        len: usize,
    },
    /// No loadable segment in the ELF file.
    #[error("no loadable segment in the ELF file")]
    NoLoadableSegments,
    /// ELF segment {index}: file size {filesz:#x} exceeds memory size {memsz:#x}.
    #[error("ELF segment {index}: file size {filesz:#x} exceeds memory size {memsz:#x}")]
    FileSizeExceedsMemSize {
        /// Program header index.
        index: usize,
        /// `p_filesz`.
        filesz: u32,
        /// `p_memsz`.
        memsz: u32,
    },
    /// ELF segment {index}: file bytes {offset:#x}+{filesz:#x} lie outside the {len}-byte file.
    #[error(
        "ELF segment {index}: file bytes {offset:#x}+{filesz:#x} lie outside the {len}-byte file"
    )]
    SegmentOutsideFile {
        /// Program header index.
        index: usize,
        /// `p_offset`.
        offset: u32,
        /// `p_filesz`.
        filesz: u32,
        /// File size.
        len: usize,
    },
    /// {piece}: guest memory {addr:#x}+{size:#x} lies outside RAM (size {ram:#x}) or above 4 GiB.
    #[error(
        "{piece}: guest memory {addr:#x}+{size:#x} lies outside RAM (size {ram:#x}) or above 4 GiB"
    )]
    OutsideRam {
        /// What was being placed.
        piece: Piece,
        /// Guest-physical start.
        addr: u64,
        /// Bytes in memory.
        size: u64,
        /// RAM size.
        ram: u64,
    },
    /// {piece}: guest memory [{addr:#x}, {end:#x}) overlaps the boot information at [0x9000, 0xa000).
    #[error(
        "{piece}: guest memory [{addr:#x}, {end:#x}) overlaps the boot information at [0x9000, 0xa000)"
    )]
    OverlapsBootInfo {
        /// What was being placed.
        piece: Piece,
        /// Guest-physical start.
        addr: u64,
        /// Guest-physical end (exclusive).
        end: u64,
    },
    /// {piece}: guest memory [{addr:#x}, {end:#x}) overlaps the reserved area [0x9fc00, 0x100000).
    #[error("{piece}: guest memory [{addr:#x}, {end:#x}) overlaps the reserved area [0x9fc00, 0x100000)")]
    OverlapsReserved {
        /// What was being placed.
        piece: Piece,
        /// Guest-physical start.
        addr: u64,
        /// Guest-physical end (exclusive).
        end: u64,
    },
    /// ELF segments {first} and {second} overlap in guest memory.
    #[error("ELF segments {first} and {second} overlap in guest memory")]
    OverlappingSegments {
        /// Program header index of one segment.
        first: usize,
        /// Program header index of the other.
        second: usize,
    },
    /// ELF entry point {entry:#x} is not inside any loadable segment.
    #[error("ELF entry point {entry:#x} is not inside any loadable segment")]
    EntryNotInSegment {
        /// `e_entry`.
        entry: u32,
    },
    /// a.out kludge: load_addr {load_addr:#x} is above header_addr {header_addr:#x}.
    #[error("a.out kludge: load_addr {load_addr:#x} is above header_addr {header_addr:#x}")]
    AoutLoadAfterHeader {
        /// `load_addr`.
        load_addr: u32,
        /// `header_addr`.
        header_addr: u32,
    },
    /// a.out kludge: header_addr - load_addr = {distance:#x} exceeds the header's file offset {offset:#x}.
    #[error(
        "a.out kludge: header_addr - load_addr = {distance:#x} exceeds the header's file offset {offset:#x}"
    )]
    AoutStartsBeforeFile {
        /// `header_addr - load_addr`.
        distance: u32,
        /// File offset of the header.
        offset: usize,
    },
    /// a.out kludge: load_end_addr {load_end_addr:#x} is below load_addr {load_addr:#x}.
    #[error("a.out kludge: load_end_addr {load_end_addr:#x} is below load_addr {load_addr:#x}")]
    AoutLoadEndBeforeLoad {
        /// `load_end_addr`.
        load_end_addr: u32,
        /// `load_addr`.
        load_addr: u32,
    },
    /// a.out kludge: {size:#x} bytes to load from file offset {offset:#x} run past the end of the {len}-byte file.
    #[error(
        "a.out kludge: {size:#x} bytes to load from file offset {offset:#x} run past the end of the {len}-byte file"
    )]
    AoutTruncated {
        /// File offset of the first byte to load.
        offset: usize,
        /// Bytes to load.
        size: u64,
        /// File size.
        len: usize,
    },
    /// a.out kludge: bss_end_addr {bss_end_addr:#x} is below the end of the loaded bytes {load_end:#x}.
    #[error(
        "a.out kludge: bss_end_addr {bss_end_addr:#x} is below the end of the loaded bytes {load_end:#x}"
    )]
    AoutBssBeforeLoadEnd {
        /// `bss_end_addr`.
        bss_end_addr: u32,
        /// End of the loaded file bytes.
        load_end: u64,
    },
    /// a.out kludge: entry_addr {entry:#x} is outside the loaded bytes [{start:#x}, {end:#x}).
    #[error(
        "a.out kludge: entry_addr {entry:#x} is outside the loaded bytes [{start:#x}, {end:#x})"
    )]
    AoutEntryOutside {
        /// `entry_addr`.
        entry: u32,
        /// `load_addr`.
        start: u64,
        /// End of the loaded file bytes.
        end: u64,
    },
    /// Command line too long: {len} bytes, at most 3839 fit.
    #[error("command line too long: {len} bytes, at most 3839 fit")]
    CmdlineTooLong {
        /// Its length.
        len: usize,
    },
    /// Command line contains a NUL byte.
    #[error("command line contains a NUL byte")]
    CmdlineHasNul,
}

/// A validated piece of guest memory to fill: file bytes, then zeros.
#[derive(Clone, Copy, Debug)]
struct Chunk {
    /// Program header index (0 for the a.out image).
    index: usize,
    /// Virtual address of `addr` (`p_vaddr`), for translating the ELF entry point.
    vaddr: u64,
    /// File bytes `[offset, offset + filesz)`, known to be inside the file.
    offset: usize,
    filesz: usize,
    /// Guest memory `[addr, addr + memsz)`, known to be placeable; `filesz <= memsz`.
    addr: u64,
    memsz: u64,
}

/// A fully validated image: what to write and where to start.
#[derive(Debug)]
struct Plan {
    entry: u32,
    chunks: Vec<Chunk>,
}

/// The little-endian `u32` at `off`, if the slice holds it.
fn le32(b: &[u8], off: usize) -> Option<u32> {
    let bytes = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// `N` consecutive little-endian `u32`s from `off`, if the slice holds them.
fn le32s<const N: usize>(b: &[u8], off: usize) -> Option<[u32; N]> {
    let mut out = [0; N];
    for (i, w) in out.iter_mut().enumerate() {
        *w = le32(b, off.checked_add(4 * i)?)?;
    }
    Some(out)
}

/// The little-endian `u16` at `off`, if the slice holds it.
fn le16(b: &[u8], off: usize) -> Option<u16> {
    let bytes = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes(bytes.try_into().ok()?))
}

/// The first 4-byte-aligned header magic in the search window, whether its checksum is valid
/// or not; then the first whose checksum is valid, if any.
fn scan(image: &[u8]) -> (Option<usize>, Option<(usize, Header)>) {
    let window = &image[..image.len().min(SEARCH_LIMIT)];
    let mut first_magic = None;
    for offset in (0..window.len()).step_by(4) {
        let Some([magic, flags, checksum]) = le32s(window, offset) else {
            break;
        };
        if magic != HEADER_MAGIC {
            continue;
        }
        first_magic.get_or_insert(offset);
        if magic.wrapping_add(flags).wrapping_add(checksum) != 0 {
            continue;
        }
        let has = |flag: u32| flags & flag != 0;
        let aout = le32s(window, offset + 12)
            .filter(|_| has(FLAG_AOUT_KLUDGE))
            .map(
                |[header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr]| AoutKludge {
                    header_addr,
                    load_addr,
                    load_end_addr,
                    bss_end_addr,
                    entry_addr,
                },
            );
        let video = le32s(window, offset + 32)
            .filter(|_| has(FLAG_VIDEO_MODE))
            .map(|[mode_type, width, height, depth]| VideoMode {
                mode_type,
                width,
                height,
                depth,
            });
        let header = Header {
            flags,
            checksum,
            aout,
            video,
        };
        return (first_magic, Some((offset, header)));
    }
    (first_magic, None)
}

/// Finds the Multiboot header: its file offset and fields. `None` if no header with a valid
/// checksum lies wholly within the first 8192 bytes.
pub fn find_header(image: &[u8]) -> Option<(usize, Header)> {
    scan(image).1
}

/// Whether `image` carries a Multiboot header (see [`find_header`]).
pub fn is_multiboot(image: &[u8]) -> bool {
    find_header(image).is_some()
}

/// Checks that `[addr, addr + size)` may be loaded: inside RAM below 4 GiB, inside available
/// memory, outside the boot information. Returns its end.
fn place(piece: Piece, addr: u64, size: u64, ram: u64) -> Result<u64, MultibootError> {
    let end = addr
        .checked_add(size)
        .filter(|&end| end <= ram && end <= ADDRESS_LIMIT)
        .ok_or(MultibootError::OutsideRam {
            piece,
            addr,
            size,
            ram,
        })?;
    if addr < BOOT_INFO_END && BOOT_INFO_ADDR < end {
        return Err(MultibootError::OverlapsBootInfo { piece, addr, end });
    }
    if addr < HIGH_MEM && LOW_MEM_END < end {
        return Err(MultibootError::OverlapsReserved { piece, addr, end });
    }
    Ok(end)
}

impl From<PhError> for MultibootError {
    fn from(e: PhError) -> Self {
        use MultibootError as E;
        // ELF32 fields are 32 bits wide, so the narrowing below is lossless.
        match e {
            PhError::TooMany => E::TooManyProgramHeaders,
            PhError::NoLoadable => E::NoLoadableSegments,
            PhError::BadEntrySize(n) => E::BadProgramHeaderSize(n),
            PhError::Truncated { offset, count, len } => E::TruncatedProgramHeaders {
                offset: offset as u32,
                count,
                len,
            },
            PhError::FileSizeExceedsMemSize {
                index,
                filesz,
                memsz,
            } => E::FileSizeExceedsMemSize {
                index,
                filesz: filesz as u32,
                memsz: memsz as u32,
            },
            PhError::OutsideFile {
                index,
                offset,
                filesz,
                len,
            } => E::SegmentOutsideFile {
                index,
                offset: offset as u32,
                filesz: filesz as u32,
                len,
            },
        }
    }
}

/// Validates an ELF32 i386 executable against a RAM of `ram` bytes.
fn parse_elf(image: &[u8], ram: u64) -> Result<Plan, MultibootError> {
    use MultibootError as E;
    if image.get(..4) != Some(ELFMAG.as_slice()) {
        return Err(E::NotElf);
    }
    match image.get(4).copied() {
        Some(ELFCLASS32) => {}
        Some(ELFCLASS64) => return Err(E::Elf64),
        Some(class) => return Err(E::BadElfClass(class)),
        None => return Err(E::TruncatedElfHeader { len: image.len() }),
    }
    let h = image
        .get(..EHDR32_SIZE)
        .ok_or(E::TruncatedElfHeader { len: image.len() })?;
    // `h` has 52 bytes, so every fixed-offset read below succeeds.
    let (h16, h32) = (|o| le16(h, o).unwrap_or(0), |o| le32(h, o).unwrap_or(0));
    if h[5] != ELFDATA2LSB {
        return Err(E::NotLittleEndian(h[5]));
    }
    if h[6] != EV_CURRENT {
        return Err(E::BadElfVersion(h[6]));
    }
    let (e_type, e_machine) = (h16(16), h16(18));
    if e_machine != EM_386 {
        return Err(E::NotI386(e_machine));
    }
    if e_type != ET_EXEC {
        return Err(E::NotExecutable(e_type));
    }
    let (e_entry, phoff) = (h32(24), h32(28));
    let (phentsize, phnum) = (h16(42), h16(44));
    let headers = load_headers(image, PhClass::Elf32, u64::from(phoff), phentsize, phnum)?;
    let mut chunks: Vec<Chunk> = Vec::new();
    for ph in headers {
        let (index, addr, size) = (ph.index, ph.paddr, ph.memsz);
        let end = place(Piece::Segment(index), addr, size, ram)?;
        if let Some(other) = chunks
            .iter()
            .find(|o| o.addr < end && addr < o.addr + o.memsz)
        {
            return Err(E::OverlappingSegments {
                first: other.index,
                second: index,
            });
        }
        chunks.push(Chunk {
            index,
            vaddr: ph.vaddr,
            offset: ph.offset,
            filesz: ph.filesz,
            addr,
            memsz: size,
        });
    }
    let want = u64::from(e_entry);
    let entry = chunks
        .iter()
        .find(|c| c.vaddr <= want && want - c.vaddr < c.memsz)
        // In RAM below 4 GiB: the chunk was placed there.
        .and_then(|c| u32::try_from(c.addr + (want - c.vaddr)).ok())
        .ok_or(E::EntryNotInSegment { entry: e_entry })?;
    Ok(Plan { entry, chunks })
}

/// Validates a flat image described by the a.out kludge fields of the header at `offset`.
fn parse_aout(
    image: &[u8],
    offset: usize,
    k: AoutKludge,
    ram: u64,
) -> Result<Plan, MultibootError> {
    use MultibootError as E;
    let distance = k
        .header_addr
        .checked_sub(k.load_addr)
        .ok_or(E::AoutLoadAfterHeader {
            load_addr: k.load_addr,
            header_addr: k.header_addr,
        })?;
    let file_offset = offset
        .checked_sub(distance as usize)
        .ok_or(E::AoutStartsBeforeFile { distance, offset })?;
    let load_size = if k.load_end_addr == 0 {
        // file_offset <= offset < image.len().
        image.len().saturating_sub(file_offset) as u64
    } else {
        u64::from(
            k.load_end_addr
                .checked_sub(k.load_addr)
                .ok_or(E::AoutLoadEndBeforeLoad {
                    load_end_addr: k.load_end_addr,
                    load_addr: k.load_addr,
                })?,
        )
    };
    if (file_offset as u64)
        .checked_add(load_size)
        .is_none_or(|end| end > image.len() as u64)
    {
        return Err(E::AoutTruncated {
            offset: file_offset,
            size: load_size,
            len: image.len(),
        });
    }
    let start = u64::from(k.load_addr);
    // Both terms are below 2^33.
    let load_end = start + load_size;
    let memsz = if k.bss_end_addr == 0 {
        load_size
    } else {
        u64::from(k.bss_end_addr)
            .checked_sub(load_end)
            .ok_or(E::AoutBssBeforeLoadEnd {
                bss_end_addr: k.bss_end_addr,
                load_end,
            })?
            + load_size
    };
    place(Piece::AoutImage, start, memsz, ram)?;
    if !(start..load_end).contains(&u64::from(k.entry_addr)) {
        return Err(E::AoutEntryOutside {
            entry: k.entry_addr,
            start,
            end: load_end,
        });
    }
    Ok(Plan {
        entry: k.entry_addr,
        chunks: vec![Chunk {
            index: 0,
            vaddr: start,
            offset: file_offset,
            // load_size <= image.len() - file_offset, so it fits in usize.
            filesz: load_size as usize,
            addr: start,
            memsz,
        }],
    })
}

/// Validates the whole image and command line against a RAM of `ram` bytes.
fn parse(image: &[u8], ram: u64, cmdline: &str) -> Result<Plan, MultibootError> {
    let (offset, header) = match scan(image) {
        (_, Some(found)) => found,
        (None, None) => return Err(MultibootError::NoHeader),
        (Some(offset), None) => {
            // The first magic's checksum is bad (a later one may be truncated: report the first).
            let field = |o| le32(image, offset + o).unwrap_or(0);
            let sum = HEADER_MAGIC.wrapping_add(field(4)).wrapping_add(field(8));
            return Err(MultibootError::BadChecksum { offset, sum });
        }
    };
    let unsupported = header.flags & REQUIRED_FLAGS & !SUPPORTED_REQUIRED_FLAGS;
    if unsupported != 0 {
        return Err(MultibootError::UnsupportedFlags { bits: unsupported });
    }
    let plan = if header.flags & FLAG_AOUT_KLUDGE != 0 {
        let k = header
            .aout
            .ok_or(MultibootError::TruncatedHeader { offset })?;
        parse_aout(image, offset, k, ram)?
    } else {
        parse_elf(image, ram)?
    };
    if cmdline.len() > CMDLINE_MAX {
        return Err(MultibootError::CmdlineTooLong { len: cmdline.len() });
    }
    if cmdline.as_bytes().contains(&0) {
        return Err(MultibootError::CmdlineHasNul);
    }
    Ok(plan)
}

/// The bytes of the boot-information area from [`BOOT_INFO_ADDR`] up to the command line's NUL.
fn boot_info(ram: u64, cmdline: &str) -> Vec<u8> {
    let at = |addr: u64| (addr - BOOT_INFO_ADDR) as usize;
    let mut b = vec![0u8; at(CMDLINE_ADDR) + cmdline.len() + 1];
    let mut put = |off: usize, bytes: &[u8]| {
        if let Some(dst) = b.get_mut(off..off + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    };
    let flags = INFO_MEMORY | INFO_CMDLINE | INFO_MODS | INFO_MEM_MAP | INFO_BOOT_LOADER_NAME;
    let mem_upper = u32::try_from(ram.saturating_sub(HIGH_MEM) / 1024).unwrap_or(u32::MAX);
    let map = [
        (0, LOW_MEM_END, MMAP_AVAILABLE),
        (LOW_MEM_END, EBDA_END - LOW_MEM_END, MMAP_RESERVED),
        (BIOS_ROM, HIGH_MEM - BIOS_ROM, MMAP_RESERVED),
        (HIGH_MEM, ram.saturating_sub(HIGH_MEM), MMAP_AVAILABLE),
    ];
    // The addresses are constants below 0xA000.
    let fields: [(usize, u32); 9] = [
        (0, flags),
        (4, (LOW_MEM_END / 1024) as u32),
        (8, mem_upper),
        (16, CMDLINE_ADDR as u32),
        (20, 0),
        (24, MODS_ADDR as u32),
        (44, (map.len() * MMAP_ENTRY_SIZE) as u32),
        (48, MMAP_ADDR as u32),
        (64, LOADER_NAME_ADDR as u32),
    ];
    for (off, value) in fields {
        put(off, &value.to_le_bytes());
    }
    for (i, (base, length, kind)) in map.into_iter().enumerate() {
        let off = at(MMAP_ADDR) + i * MMAP_ENTRY_SIZE;
        put(off, &((MMAP_ENTRY_SIZE - 4) as u32).to_le_bytes());
        put(off + 4, &base.to_le_bytes());
        put(off + 12, &length.to_le_bytes());
        put(off + 20, &kind.to_le_bytes());
    }
    put(at(LOADER_NAME_ADDR), LOADER_NAME.as_bytes());
    put(at(CMDLINE_ADDR), cmdline.as_bytes());
    b
}

/// Validates the Multiboot kernel `image` and the command line, loads the kernel into `ram`,
/// builds the boot information, and returns the entry state. On error RAM is untouched.
pub fn load(
    ram: &mut GuestRam,
    image: &[u8],
    cmdline: &str,
) -> Result<MultibootBoot, MultibootError> {
    let plan = parse(image, ram.size(), cmdline)?;
    let mut ranges = Vec::with_capacity(plan.chunks.len() + 1);
    for c in plan.chunks {
        let bytes = image.get(c.offset..c.offset + c.filesz).unwrap_or_default();
        // Validated in `parse`: [addr, addr + memsz) is inside RAM and filesz <= memsz.
        let wrote = ram.write(GuestPhys(c.addr), bytes).and_then(|()| {
            ram.zero(
                GuestPhys(c.addr + bytes.len() as u64),
                c.memsz - bytes.len() as u64,
            )
        });
        debug_assert!(wrote.is_ok(), "chunk validated against RAM: {wrote:?}");
        ranges.push((c.addr, c.addr + c.memsz));
    }
    let info = boot_info(ram.size(), cmdline);
    // The area is below 0xA000 and RAM is at least 2 MiB.
    let wrote = ram.write(GuestPhys(BOOT_INFO_ADDR), &info);
    debug_assert!(wrote.is_ok(), "boot information fits in RAM: {wrote:?}");
    ranges.push((BOOT_INFO_ADDR, BOOT_INFO_ADDR + info.len() as u64));
    Ok(MultibootBoot {
        entry: plan.entry,
        eax: BOOTLOADER_MAGIC,
        ebx: BOOT_INFO_ADDR as u32,
        ranges,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Size of an ELF32 program header.
    const PHDR32_SIZE: usize = 32;
    const PT_LOAD: u32 = 1;

    const RAM: u64 = 4 << 20;

    /// A program header: (type, offset, vaddr, paddr, filesz, memsz).
    type Ph = (u32, u32, u32, u32, u32, u32);

    fn words(ws: &[u32]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    /// A Multiboot header with a valid checksum, followed by `rest` (address/video fields).
    fn mb_header(flags: u32, rest: &[u32]) -> Vec<u8> {
        let checksum = 0u32.wrapping_sub(HEADER_MAGIC).wrapping_sub(flags);
        let mut v = words(&[HEADER_MAGIC, flags, checksum]);
        v.extend(words(rest));
        v
    }

    /// An ELF32 i386 executable: file header, `phs`, the Multiboot header `mb`, then `payload`.
    fn elf32(entry: u32, phs: &[Ph], mb: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; EHDR32_SIZE];
        v[..4].copy_from_slice(ELFMAG);
        v[4] = ELFCLASS32;
        v[5] = ELFDATA2LSB;
        v[6] = EV_CURRENT;
        v[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
        v[18..20].copy_from_slice(&EM_386.to_le_bytes());
        v[20..24].copy_from_slice(&1u32.to_le_bytes());
        v[24..28].copy_from_slice(&entry.to_le_bytes());
        v[28..32].copy_from_slice(&(EHDR32_SIZE as u32).to_le_bytes());
        v[40..42].copy_from_slice(&(EHDR32_SIZE as u16).to_le_bytes());
        v[42..44].copy_from_slice(&(PHDR32_SIZE as u16).to_le_bytes());
        v[44..46].copy_from_slice(&(phs.len() as u16).to_le_bytes());
        for &(ty, off, vaddr, paddr, filesz, memsz) in phs {
            v.extend(words(&[ty, off, vaddr, paddr, filesz, memsz, 5, 0x1000]));
        }
        v.extend_from_slice(mb);
        v.extend_from_slice(payload);
        v
    }

    /// File offset of the payload of an [`elf32`] image with `n` program headers and a
    /// 12-byte Multiboot header.
    fn payload_at(n: usize) -> u32 {
        (EHDR32_SIZE + n * PHDR32_SIZE + 12) as u32
    }

    const CODE: [u8; 8] = [0xFA, 0xF4, 0xEB, 0xFD, 1, 2, 3, 4];
    const DATA: [u8; 4] = [0xAA, 0xBB, 0xCC, 0xDD];

    /// Two segments: text at 1 MiB, data with a `.bss` tail at 1 MiB + 8 KiB.
    fn good_elf() -> Vec<u8> {
        let off = payload_at(2);
        let phs = [
            (PT_LOAD, off, 0x10_0000, 0x10_0000, 8, 8),
            (PT_LOAD, off + 8, 0x10_2000, 0x10_2000, 4, 0x20),
        ];
        let payload: Vec<u8> = CODE.iter().chain(&DATA).copied().collect();
        elf32(
            0x10_0000,
            &phs,
            &mb_header(FLAG_PAGE_ALIGN | FLAG_MEMORY_INFO, &[]),
            &payload,
        )
    }

    const LOAD: u32 = 0x20_0000;

    /// A flat a.out-kludge image: `prefix` junk bytes, then 64 bytes of text (code at 0, the
    /// Multiboot header at 16, data at 48) meant for `LOAD`, with the given address fields
    /// `[load_end_addr, bss_end_addr, entry_addr]` and `header_addr - load_addr = 16`.
    fn aout(prefix: usize, fields: [u32; 3]) -> Vec<u8> {
        aout_raw(prefix, [LOAD + 16, LOAD, fields[0], fields[1], fields[2]])
    }

    /// As [`aout`], with all five address fields given.
    fn aout_raw(prefix: usize, fields: [u32; 5]) -> Vec<u8> {
        let mut v = vec![0x90u8; prefix];
        v.extend_from_slice(&CODE);
        v.extend_from_slice(&[0x90; 8]);
        v.extend(mb_header(FLAG_AOUT_KLUDGE | FLAG_MEMORY_INFO, &fields));
        v.extend(std::iter::repeat_n(0x5A, 16));
        v
    }

    fn all_zero(ram: &GuestRam) -> bool {
        let bytes = ram.slice(GuestPhys(0), ram.size() as usize).unwrap();
        bytes.iter().fold(0u8, |acc, &b| acc | b) == 0
    }

    fn load_ok(image: &[u8], cmdline: &str) -> (GuestRam, MultibootBoot) {
        let mut ram = GuestRam::new(RAM).unwrap();
        let boot = load(&mut ram, image, cmdline).unwrap();
        (ram, boot)
    }

    /// Loads `image`, expecting failure, and checks RAM was left untouched.
    fn load_err(image: &[u8], cmdline: &str) -> MultibootError {
        let mut ram = GuestRam::new(RAM).unwrap();
        let err = load(&mut ram, image, cmdline).unwrap_err();
        assert!(all_zero(&ram), "{err} but RAM was written");
        assert!(!err.to_string().contains('\n'), "one line: {err}");
        err
    }

    fn rd(ram: &GuestRam, addr: u64, size: usize) -> u64 {
        ram.read_le(GuestPhys(addr), size).unwrap()
    }

    /// Checks every field of the boot information in `ram`.
    fn assert_boot_info(ram: &GuestRam, boot: &MultibootBoot, cmdline: &str) {
        assert_eq!(boot.eax, 0x2BAD_B002);
        assert_eq!(boot.ebx, 0x9000);
        let info = 0x9000;
        assert_eq!(rd(ram, info, 4), 1 | 4 | 8 | 0x40 | 0x200, "flags");
        assert_eq!(rd(ram, info + 4, 4), 639, "mem_lower");
        assert_eq!(rd(ram, info + 8, 4), (RAM - (1 << 20)) / 1024, "mem_upper");
        assert_eq!(rd(ram, info + 12, 4), 0, "boot_device");
        assert_eq!(rd(ram, info + 16, 4), 0x9100, "cmdline");
        assert_eq!(rd(ram, info + 20, 4), 0, "mods_count");
        assert_eq!(rd(ram, info + 24, 4), 0x90F0, "mods_addr");
        assert_eq!(rd(ram, info + 44, 4), 96, "mmap_length");
        assert_eq!(rd(ram, info + 48, 4), 0x9080, "mmap_addr");
        assert_eq!(rd(ram, info + 64, 4), 0x90E0, "boot_loader_name");
        for off in (28..44).chain(52..64).chain(68..0x80).step_by(4) {
            assert_eq!(rd(ram, info + off, 4), 0, "unused field at +{off}");
        }
        let map = [
            (0, 0x9_FC00, 1),
            (0x9_FC00, 0x400, 2),
            (0xF_0000, 0x1_0000, 2),
            (0x10_0000, RAM - 0x10_0000, 1),
        ];
        for (i, (base, len, kind)) in map.into_iter().enumerate() {
            let e = 0x9080 + 24 * i as u64;
            assert_eq!(rd(ram, e, 4), 20, "mmap[{i}].size");
            assert_eq!(rd(ram, e + 4, 8), base, "mmap[{i}].base_addr");
            assert_eq!(rd(ram, e + 12, 8), len, "mmap[{i}].length");
            assert_eq!(rd(ram, e + 20, 4), kind, "mmap[{i}].type");
        }
        assert_eq!(ram.slice(GuestPhys(0x90E0), 6).unwrap(), b"popek\0");
        let n = cmdline.len();
        assert_eq!(ram.slice(GuestPhys(0x9100), n).unwrap(), cmdline.as_bytes());
        assert_eq!(rd(ram, 0x9100 + n as u64, 1), 0, "cmdline NUL");
        assert_eq!(boot.ranges.last(), Some(&(0x9000, 0x9100 + n as u64 + 1)));
    }

    #[test]
    fn loads_elf32_segments_zeroes_bss_and_builds_boot_info() {
        let img = good_elf();
        let mut ram = GuestRam::new(RAM).unwrap();
        ram.write(GuestPhys(0x10_2004), &[0x55; 0x1C]).unwrap();
        let boot = load(&mut ram, &img, "console=ttyS0 quiet").unwrap();
        assert_eq!(boot.entry, 0x10_0000);
        assert_eq!(
            &boot.ranges[..2],
            &[(0x10_0000, 0x10_0008), (0x10_2000, 0x10_2020)]
        );
        assert_eq!(ram.slice(GuestPhys(0x10_0000), 8).unwrap(), &CODE);
        assert_eq!(ram.slice(GuestPhys(0x10_2000), 4).unwrap(), &DATA);
        assert_eq!(
            ram.slice(GuestPhys(0x10_2004), 0x1C).unwrap(),
            &[0; 0x1C],
            ".bss zeroed"
        );
        assert_boot_info(&ram, &boot, "console=ttyS0 quiet");
        assert!(is_multiboot(&img));
        let (offset, header) = find_header(&img).unwrap();
        assert_eq!(offset, payload_at(2) as usize - 12);
        assert_eq!(header.flags, 3);
        assert_eq!((header.aout, header.video), (None, None));
    }

    #[test]
    fn elf_entry_is_translated_from_virtual_to_physical() {
        let off = payload_at(1);
        let phs = [(PT_LOAD, off, 0xC010_0000, 0x10_0000, 8, 0x100)];
        let img = elf32(0xC010_0004, &phs, &mb_header(0, &[]), &CODE);
        let (ram, boot) = load_ok(&img, "");
        assert_eq!(boot.entry, 0x10_0004);
        assert_eq!(ram.slice(GuestPhys(0x10_0000), 8).unwrap(), &CODE);
        assert_boot_info(&ram, &boot, "");
    }

    #[test]
    fn loads_aout_kludge_image_with_bss() {
        for (prefix, load_end) in [(0, LOAD + 64), (0, 0), (0x200, LOAD + 56), (0x1F00, 0)] {
            let img = aout(prefix, [load_end, LOAD + 0x100, LOAD + 1]);
            let mut ram = GuestRam::new(RAM).unwrap();
            ram.write(GuestPhys(u64::from(LOAD) + 56), &[0x77; 0xA8])
                .unwrap();
            let boot = load(&mut ram, &img, "root=/dev/vda").unwrap();
            let loaded = if load_end == 0 {
                64
            } else {
                u64::from(load_end - LOAD)
            };
            assert_eq!(boot.entry, LOAD + 1);
            assert_eq!(boot.ranges[0], (u64::from(LOAD), u64::from(LOAD) + 0x100));
            let text = ram.slice(GuestPhys(LOAD.into()), 0x100).unwrap();
            assert_eq!(
                &text[..loaded as usize],
                &img[prefix..prefix + loaded as usize]
            );
            assert_eq!(
                &text[16..20],
                &HEADER_MAGIC.to_le_bytes(),
                "header at header_addr"
            );
            assert!(
                text[loaded as usize..].iter().all(|&b| b == 0),
                ".bss zeroed"
            );
            assert_boot_info(&ram, &boot, "root=/dev/vda");
        }
        // No .bss: only the file bytes are written.
        let (_, boot) = load_ok(&aout(0, [0, 0, LOAD]), "");
        assert_eq!(boot.ranges[0], (u64::from(LOAD), u64::from(LOAD) + 64));
        let (_, header) = find_header(&aout(4, [0, 0, LOAD])).unwrap();
        assert_eq!(
            header.aout,
            Some(AoutKludge {
                header_addr: LOAD + 16,
                load_addr: LOAD,
                load_end_addr: 0,
                bss_end_addr: 0,
                entry_addr: LOAD,
            })
        );
    }

    #[test]
    fn aout_kludge_wins_over_elf_headers_so_elf64_kernels_can_use_it() {
        // An ELF64 file whose Multiboot header sets bit 16: the ELF headers are ignored.
        let mut img = vec![0u8; 64];
        img[..4].copy_from_slice(ELFMAG);
        img[4] = ELFCLASS64;
        img.extend(mb_header(
            FLAG_AOUT_KLUDGE,
            &[LOAD + 64, LOAD, 0, 0, LOAD + 0x50],
        ));
        img.extend_from_slice(&[0xF4; 16]);
        let (ram, boot) = load_ok(&img, "");
        assert_eq!(boot.entry, LOAD + 0x50);
        assert_eq!(ram.slice(GuestPhys(LOAD.into()), 4).unwrap(), ELFMAG);
        img[68..72].fill(0); // flags: no kludge, so it is read as ELF64
        let sum = 0u32.wrapping_sub(HEADER_MAGIC);
        img[72..76].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(load_err(&img, ""), MultibootError::Elf64);
    }

    #[test]
    fn header_search_follows_the_specification() {
        let at = |offset: usize, flags: u32| {
            let mut v = vec![0u8; offset];
            v.extend(mb_header(flags, &[]));
            v
        };
        assert_eq!(find_header(&at(8180, 0)).map(|h| h.0), Some(8180));
        assert_eq!(
            find_header(&at(8184, 0)),
            None,
            "header must fit in 8192 bytes"
        );
        let mut unaligned = vec![0u8; 2];
        unaligned.extend(mb_header(0, &[]));
        assert!(!is_multiboot(&unaligned));
        assert!(!is_multiboot(b""));
        assert!(!is_multiboot(&HEADER_MAGIC.to_le_bytes()));
        // A bad checksum is skipped in favour of a later good header.
        let mut two = words(&[HEADER_MAGIC, 0, 0]);
        two.extend(mb_header(0, &[]));
        assert_eq!(find_header(&two).map(|h| h.0), Some(12));
        let (_, header) = find_header(&at(0, FLAG_VIDEO_MODE)).unwrap();
        assert_eq!(header.video, None, "video fields past the end of the file");
        let mut video = mb_header(FLAG_VIDEO_MODE, &[0; 5]);
        video.extend(words(&[1, 80, 25, 0]));
        let (_, header) = find_header(&video).unwrap();
        let mode = VideoMode {
            mode_type: 1,
            width: 80,
            height: 25,
            depth: 0,
        };
        assert_eq!(header.video, Some(mode));
    }

    #[test]
    fn rejects_bad_headers_and_flags() {
        use MultibootError as E;
        assert_eq!(load_err(b"", ""), E::NoHeader);
        assert_eq!(load_err(b"#!/bin/sh\necho hi\n", ""), E::NoHeader);
        let mut far = vec![0u8; 8192];
        far.extend(mb_header(0, &[]));
        assert_eq!(load_err(&far, ""), E::NoHeader);
        let mut img = good_elf();
        let off = payload_at(2) as usize - 12;
        img[off + 8] += 1; // low byte 0xFB: no carry
        assert!(matches!(load_err(&img, ""), E::BadChecksum { offset, sum: 1 } if offset == off));
        let with_flags = |flags: u32| {
            let mut v = good_elf();
            v[off..off + 12].copy_from_slice(&mb_header(flags, &[]));
            v
        };
        assert_eq!(
            load_err(&with_flags(7), ""),
            E::UnsupportedFlags { bits: 4 }
        );
        assert_eq!(
            load_err(&with_flags(0x8001), ""),
            E::UnsupportedFlags { bits: 0x8000 }
        );
        assert!(
            load_ok(&with_flags(0xFFFE_0003), "").1.entry == 0x10_0000,
            "optional bits"
        );
        let mut short = vec![0u8; 16];
        short.extend(mb_header(FLAG_AOUT_KLUDGE, &[0, 0, 0]));
        assert_eq!(load_err(&short, ""), E::TruncatedHeader { offset: 16 });
        let mut edge = vec![0u8; 8164];
        edge.extend(mb_header(FLAG_AOUT_KLUDGE, &[0; 5]));
        edge.extend([0u8; 64]);
        assert_eq!(load_err(&edge, ""), E::TruncatedHeader { offset: 8164 });
        assert_eq!(load_err(&mb_header(0, &[0; 8]), ""), E::NotElf);
    }

    #[test]
    fn rejects_unsuitable_elf_files() {
        use MultibootError as E;
        let good = good_elf();
        let with = |off: usize, bytes: &[u8]| {
            let mut v = good.clone();
            v[off..off + bytes.len()].copy_from_slice(bytes);
            load_err(&v, "")
        };
        assert_eq!(with(4, &[2]), E::Elf64);
        assert_eq!(with(4, &[0]), E::BadElfClass(0));
        assert_eq!(with(5, &[2]), E::NotLittleEndian(2));
        assert_eq!(with(6, &[0]), E::BadElfVersion(0));
        assert_eq!(with(18, &62u16.to_le_bytes()), E::NotI386(62));
        assert_eq!(with(16, &3u16.to_le_bytes()), E::NotExecutable(3));
        assert_eq!(with(42, &56u16.to_le_bytes()), E::BadProgramHeaderSize(56));
        assert_eq!(with(44, &0u16.to_le_bytes()), E::NoLoadableSegments);
        assert_eq!(with(44, &0xFFFFu16.to_le_bytes()), E::TooManyProgramHeaders);
        assert!(matches!(
            with(28, &u32::MAX.to_le_bytes()),
            E::TruncatedProgramHeaders { count: 2, .. }
        ));
        assert_eq!(
            with(52, &2u32.to_le_bytes()),
            E::EntryNotInSegment { entry: 0x10_0000 }
        );
        let mut tiny = good[..20].to_vec();
        tiny.extend(mb_header(0, &[]));
        assert_eq!(load_err(&tiny, ""), E::TruncatedElfHeader { len: 32 });
    }

    #[test]
    fn rejects_bad_segments() {
        use MultibootError as E;
        let off = payload_at(1);
        let seg = |ph: Ph| load_err(&elf32(ph.2, &[ph], &mb_header(0, &[]), &[0; 16]), "");
        let piece = Piece::Segment(0);
        assert_eq!(
            seg((PT_LOAD, off, 0x10_0000, 0x10_0000, 9, 8)),
            E::FileSizeExceedsMemSize {
                index: 0,
                filesz: 9,
                memsz: 8
            }
        );
        assert!(matches!(
            seg((PT_LOAD, off, 0x10_0000, 0x10_0000, 17, 17)),
            E::SegmentOutsideFile {
                index: 0,
                filesz: 17,
                ..
            }
        ));
        assert!(matches!(
            seg((PT_LOAD, u32::MAX, 0x10_0000, 0x10_0000, 2, 2)),
            E::SegmentOutsideFile { .. }
        ));
        let ram_end = RAM as u32;
        assert_eq!(
            seg((PT_LOAD, off, ram_end - 4, ram_end - 4, 8, 8)),
            E::OutsideRam {
                piece,
                addr: RAM - 4,
                size: 8,
                ram: RAM
            }
        );
        assert!(matches!(
            seg((PT_LOAD, off, u32::MAX, u32::MAX, 8, u32::MAX)),
            E::OutsideRam { .. }
        ));
        assert_eq!(
            seg((PT_LOAD, off, 0x8000, 0x8000, 8, 0x1001)),
            E::OverlapsBootInfo {
                piece,
                addr: 0x8000,
                end: 0x9001
            }
        );
        assert_eq!(
            seg((PT_LOAD, off, 0x9_F000, 0x9_F000, 8, 0xC01)),
            E::OverlapsReserved {
                piece,
                addr: 0x9_F000,
                end: 0x9_FC01
            }
        );
        assert!(matches!(
            seg((PT_LOAD, off, 0xF_FFFF, 0xF_FFFF, 1, 1)),
            E::OverlapsReserved { .. }
        ));
        // Low memory outside the boot information is fine.
        let low = elf32(
            0x1000,
            &[(PT_LOAD, off, 0x1000, 0x1000, 8, 8)],
            &mb_header(0, &[]),
            &CODE,
        );
        assert_eq!(load_ok(&low, "").1.ranges[0], (0x1000, 0x1008));
        let two = elf32(
            0x10_0000,
            &[
                (PT_LOAD, payload_at(2), 0x10_0000, 0x10_0000, 4, 0x100),
                (PT_LOAD, payload_at(2), 0x10_00F0, 0x10_00F0, 4, 4),
            ],
            &mb_header(0, &[]),
            &CODE,
        );
        assert_eq!(
            load_err(&two, ""),
            E::OverlappingSegments {
                first: 0,
                second: 1
            }
        );
        let outside = elf32(
            0x10_0008,
            &[(PT_LOAD, off, 0x10_0000, 0x10_0000, 8, 8)],
            &mb_header(0, &[]),
            &CODE,
        );
        assert_eq!(
            load_err(&outside, ""),
            E::EntryNotInSegment { entry: 0x10_0008 }
        );
        let only_bss = elf32(
            0x10_0000,
            &[(PT_LOAD, off, 0x10_0000, 0x10_0000, 0, 0)],
            &mb_header(0, &[]),
            &[],
        );
        assert_eq!(load_err(&only_bss, ""), E::NoLoadableSegments);
    }

    #[test]
    fn rejects_inconsistent_aout_fields() {
        use MultibootError as E;
        let raw = |prefix, fields| load_err(&aout_raw(prefix, fields), "");
        assert_eq!(
            raw(0, [LOAD, LOAD + 1, 0, 0, LOAD + 1]),
            E::AoutLoadAfterHeader {
                load_addr: LOAD + 1,
                header_addr: LOAD
            }
        );
        assert_eq!(
            raw(0, [LOAD + 17, LOAD, 0, 0, LOAD]),
            E::AoutStartsBeforeFile {
                distance: 17,
                offset: 16
            }
        );
        assert_eq!(
            raw(0, [LOAD + 16, LOAD, LOAD - 1, 0, LOAD]),
            E::AoutLoadEndBeforeLoad {
                load_end_addr: LOAD - 1,
                load_addr: LOAD
            }
        );
        assert_eq!(
            load_err(&aout(0, [LOAD + 65, 0, LOAD]), ""),
            E::AoutTruncated {
                offset: 0,
                size: 65,
                len: 64
            }
        );
        assert_eq!(
            load_err(&aout(0, [u32::MAX, 0, LOAD]), ""),
            E::AoutTruncated {
                offset: 0,
                size: u64::from(u32::MAX - LOAD),
                len: 64
            }
        );
        assert_eq!(
            load_err(&aout(0, [LOAD + 64, LOAD + 63, LOAD]), ""),
            E::AoutBssBeforeLoadEnd {
                bss_end_addr: LOAD + 63,
                load_end: u64::from(LOAD) + 64
            }
        );
        let (start, end) = (u64::from(LOAD), u64::from(LOAD) + 32);
        assert_eq!(
            load_err(&aout(0, [LOAD + 32, LOAD + 64, LOAD + 32]), ""),
            E::AoutEntryOutside {
                entry: LOAD + 32,
                start,
                end
            }
        );
        assert_eq!(
            load_err(&aout(0, [0, 0, LOAD - 1]), ""),
            E::AoutEntryOutside {
                entry: LOAD - 1,
                start,
                end: start + 64
            }
        );
        let piece = Piece::AoutImage;
        assert_eq!(
            load_err(&aout(0, [0, RAM as u32 + 1, LOAD]), ""),
            E::OutsideRam {
                piece,
                addr: start,
                size: RAM + 1 - start,
                ram: RAM
            }
        );
        assert!(matches!(
            raw(0, [u32::MAX, u32::MAX - 16, 0, 0, u32::MAX - 16]),
            E::OutsideRam { .. }
        ));
        assert_eq!(
            raw(0, [0x9010, 0x9000, 0, 0, 0x9000]),
            E::OverlapsBootInfo {
                piece,
                addr: 0x9000,
                end: 0x9040
            }
        );
        assert_eq!(
            raw(0, [0xA_0010, 0xA_0000, 0, 0, 0xA_0000]),
            E::OverlapsReserved {
                piece,
                addr: 0xA_0000,
                end: 0xA_0040
            }
        );
    }

    #[test]
    fn rejects_bad_command_lines() {
        let long = "x".repeat(CMDLINE_MAX + 1);
        assert_eq!(
            load_err(&good_elf(), &long),
            MultibootError::CmdlineTooLong { len: 3840 }
        );
        assert_eq!(load_err(&good_elf(), "a\0b"), MultibootError::CmdlineHasNul);
        let longest = "y".repeat(CMDLINE_MAX);
        let (ram, boot) = load_ok(&good_elf(), &longest);
        assert_boot_info(&ram, &boot, &longest);
        assert_eq!(boot.ranges.last(), Some(&(BOOT_INFO_ADDR, BOOT_INFO_END)));
    }

    /// xorshift64*: deterministic, good enough to mutate images.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Makes the first aligned magic's checksum valid again, so mutations reach the loaders.
    fn fix_checksum(img: &mut [u8]) {
        let window = img.len().min(SEARCH_LIMIT);
        let Some(off) = (0..window.saturating_sub(11))
            .step_by(4)
            .find(|&o| le32(img, o) == Some(HEADER_MAGIC))
        else {
            return;
        };
        let flags = le32(img, off + 4).unwrap_or(0);
        let checksum = 0u32.wrapping_sub(HEADER_MAGIC).wrapping_sub(flags);
        img[off + 8..off + 12].copy_from_slice(&checksum.to_le_bytes());
    }

    fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
        const INTERESTING: [u32; 12] = [
            0,
            1,
            2,
            3,
            0x20,
            0x9000,
            0x9_FC00,
            0x10_0000,
            0x3F_FFFC,
            0x40_0000,
            0x8000_0000,
            u32::MAX,
        ];
        let mut img = seeds[rng.below(seeds.len())].clone();
        if rng.below(8) == 0 {
            // A random file with a planted header and random address fields.
            img = (0..rng.below(512)).map(|_| rng.next() as u8).collect();
            let at = rng.below(img.len() / 4 + 1) * 4;
            let flags =
                [0, FLAG_AOUT_KLUDGE, FLAG_AOUT_KLUDGE | 3, rng.next() as u32][rng.below(4)];
            let fields: Vec<u32> = (0..5).map(|_| LOAD + rng.below(0x200) as u32).collect();
            let header = mb_header(flags, &fields);
            let end = (at + header.len()).min(img.len());
            img[at..end].copy_from_slice(&header[..end - at]);
        }
        for _ in 0..1 + rng.below(4) {
            match rng.below(5) {
                0 if !img.is_empty() => {
                    let i = rng.below(img.len());
                    img[i] = rng.next() as u8;
                }
                1 if img.len() >= 4 => {
                    let i = rng.below(img.len().min(256) / 4) * 4;
                    let v = if rng.below(2) == 0 {
                        INTERESTING[rng.below(INTERESTING.len())]
                    } else {
                        le32(&img, i)
                            .unwrap_or(0)
                            .wrapping_add(rng.below(64) as u32)
                            .wrapping_sub(32)
                    };
                    img[i..i + 4].copy_from_slice(&v.to_le_bytes());
                }
                2 => img.truncate(rng.below(img.len() + 1)),
                3 => img.extend((0..rng.below(64)).map(|_| rng.next() as u8)),
                _ => {}
            }
        }
        if rng.below(4) != 0 {
            fix_checksum(&mut img);
        }
        img
    }

    #[test]
    fn hostile_images_never_panic_and_failed_loads_write_nothing() {
        let seeds = [
            good_elf(),
            aout(0, [0, LOAD + 0x100, LOAD]),
            aout(0x100, [LOAD + 48, LOAD + 0x80, LOAD + 4]),
        ];
        let mut rng = Rng(0x5EED_B007);
        let mut ram = GuestRam::new(RAM).unwrap();
        let (mut loaded, mut failed) = (0, 0);
        for round in 0..4000 {
            let img = mutate(&mut rng, &seeds);
            let cmdline = if rng.below(50) == 0 {
                "z".repeat(CMDLINE_MAX + 1)
            } else {
                "ro".into()
            };
            match load(&mut ram, &img, &cmdline) {
                Ok(boot) => {
                    loaded += 1;
                    assert_eq!(
                        (boot.eax, boot.ebx),
                        (BOOTLOADER_MAGIC, 0x9000),
                        "round {round}"
                    );
                    let entry = u64::from(boot.entry);
                    assert!(boot.ranges.iter().any(|&(s, e)| (s..e).contains(&entry)));
                    for &(start, end) in &boot.ranges {
                        assert!(
                            start <= end && end <= RAM,
                            "round {round}: {start:#x}..{end:#x}"
                        );
                        ram.zero(GuestPhys(start), end - start).unwrap();
                    }
                    assert!(
                        all_zero(&ram),
                        "round {round}: wrote outside the reported ranges"
                    );
                }
                Err(err) => {
                    failed += 1;
                    assert!(all_zero(&ram), "round {round}: {err} but RAM was written");
                }
            }
        }
        assert!(
            loaded > 100 && failed > 1000,
            "{loaded} loaded, {failed} failed"
        );
    }
}
