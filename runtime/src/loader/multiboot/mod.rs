//! Multiboot v1 kernels (specification 0.6.96), loaded the way GRUB and
//! `qemu-system-x86_64 -kernel` load them, so one file boots under both.
//!
//! # The image
//! The Multiboot header is the first 4-byte-aligned `0x1BADB002` in the first 8192 bytes whose
//! checksum makes `magic + flags + checksum == 0` (mod 2^32); it must lie wholly inside those
//! 8192 bytes. Flag bits 0–15 are requirements: popek meets bit 0 (page-align modules; it always
//! does) and bit 1 (memory information; always given) and refuses any other, e.g. bit 2 (video
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
//! (`[0, 0x9FC00)` or `[0x100000, RAM end)`).
//!
//! # Boot information and modules
//! The boot modules (QEMU's comma-separated `-initrd` files) and the boot information go
//! after the highest loaded byte, as QEMU puts them ([`info`] has the layout), so they can
//! never collide with the image wherever it is linked.
//!
//! # Machine state
//! [`MultibootBoot`] carries EIP, EAX (`0x2BADB002`) and EBX (the information area). The runtime
//! must also set, as the specification requires:
//! - CS: 32-bit flat execute/read code segment, base 0, limit 4 GiB − 1 (granularity 4 KiB);
//! - DS, ES, FS, GS, SS: 32-bit flat read/write data segments, base 0, limit 4 GiB − 1;
//! - CR0: PE = 1, PG = 0; EFLAGS: VM = 0, IF = 0; the A20 gate enabled;
//! - ESP, GDTR and IDTR are undefined: the kernel must set its own before using them.
//!
//! Invariants: every number read from the image goes through checked arithmetic before use;
//! [`load`] validates the header, every segment, the entry point, the command line and the
//! modules' placement before it writes a byte, so a rejected image leaves RAM untouched; it writes only the ranges it returns.

pub mod info;

pub use info::Module;

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

/// Longest command line (and module string), in bytes, not counting its NUL.
pub const CMDLINE_MAX: usize = 4095;
/// End of conventional memory (start of the EBDA).
const LOW_MEM_END: u64 = 0x9_FC00;
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
    /// EBX: physical address of the `multiboot_info` structure (see [`info`]).
    pub ebx: u32,
    /// Guest-physical `[start, end)` ranges written (kernel bytes, zeroed tails, modules, boot
    /// information).
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
    /// The boot modules and information ({size:#x} bytes of information) do not fit in RAM (size {ram:#x}) below 4 GiB after the kernel, from {start:#x}.
    #[error("the boot modules and information ({size:#x} bytes of information) do not fit in RAM (size {ram:#x}) below 4 GiB after the kernel, from {start:#x}")]
    BootInfoDoesNotFit {
        /// Where placement started (the page after the highest loaded byte).
        start: u64,
        /// Bytes of the information area.
        size: u64,
        /// RAM size.
        ram: u64,
    },
    /// Command line too long: {len} bytes, at most 4095 fit.
    #[error("command line too long: {len} bytes, at most 4095 fit")]
    CmdlineTooLong {
        /// Its length.
        len: usize,
    },
    /// Command line contains a NUL byte.
    #[error("command line contains a NUL byte")]
    CmdlineHasNul,
    /// Module {index}'s string is longer than 4095 bytes or contains a NUL byte.
    #[error("module {index}'s string is longer than 4095 bytes or contains a NUL byte")]
    BadModuleString {
        /// Module index.
        index: usize,
    },
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
/// memory. Returns its end.
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

/// Validates the whole image, command line and module strings against a RAM of `ram` bytes.
fn parse(
    image: &[u8],
    ram: u64,
    cmdline: &str,
    modules: &[Module],
) -> Result<Plan, MultibootError> {
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
    if let Some(index) = modules
        .iter()
        .position(|m| m.cmdline.len() > CMDLINE_MAX || m.cmdline.as_bytes().contains(&0))
    {
        return Err(MultibootError::BadModuleString { index });
    }
    Ok(plan)
}

/// The command line QEMU gives a Multiboot kernel (`hw/i386/multiboot.c`, `"%s %s"`): the
/// kernel's file name as given to `-kernel`, a space, then the `-append` text. Without
/// `-append` QEMU's text is empty, so the line ends with that space; a kernel that splits
/// it into words finds its arguments from the second word on.
pub fn qemu_cmdline(kernel_name: &str, append: &str) -> String {
    format!("{kernel_name} {append}")
}

/// Validates the Multiboot kernel `image`, the command line and the modules, loads the kernel
/// and the modules into `ram`, builds the boot information after them, and returns the entry
/// state. On error RAM is untouched.
pub fn load(
    ram: &mut GuestRam,
    image: &[u8],
    cmdline: &str,
    modules: &[Module],
) -> Result<MultibootBoot, MultibootError> {
    let plan = parse(image, ram.size(), cmdline, modules)?;
    let image_end = plan
        .chunks
        .iter()
        .map(|c| c.addr + c.memsz)
        .max()
        .unwrap_or(0);
    let placed = info::plan(image_end, ram.size(), cmdline, modules)?;
    let mut ranges = Vec::with_capacity(plan.chunks.len() + modules.len() + 1);
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
    // Placed by `info::plan` inside RAM below 4 GiB.
    for (m, &at) in modules.iter().zip(&placed.modules) {
        let wrote = ram.write(GuestPhys(at), m.bytes);
        debug_assert!(wrote.is_ok(), "module placed in RAM: {wrote:?}");
        ranges.push((at, at + m.bytes.len() as u64));
    }
    let wrote = ram.write(GuestPhys(placed.info), &placed.bytes);
    debug_assert!(wrote.is_ok(), "boot information placed in RAM: {wrote:?}");
    ranges.push((placed.info, placed.info + placed.bytes.len() as u64));
    Ok(MultibootBoot {
        entry: plan.entry,
        eax: BOOTLOADER_MAGIC,
        ebx: placed.info as u32,
        ranges,
    })
}

#[cfg(test)]
mod tests;
