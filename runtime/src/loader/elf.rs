//! ELF64 x86-64 `ET_EXEC` kernels: every `PT_LOAD` segment is copied to its physical address
//! (`p_paddr`, as QEMU's ELF loader does; popek's guests are identity-mapped so it equals
//! `p_vaddr`), the rest of its memory size is zeroed (`.bss`), and the entry point is returned.
//!
//! The parser is hand-written rather than rust-vmm's `linux-loader`: that crate needs
//! `vm-memory`'s guest-memory types (a second RAM abstraction beside [`GuestRam`]), does not
//! check the ELF class, machine or type, skips segments with no file bytes (a pure `.bss`
//! segment would not be zeroed), reports "segment outside the file" and "segment outside RAM"
//! as the same error, does not check the entry point, and may write part of an image before it
//! finds a bad segment. The format needs only a few dozen lines to read carefully.
//!
//! The program-header table reader ([`load_headers`]) serves ELF32 too: the Multiboot
//! loader's i386 kernels go through it.
//!
//! Invariants: every offset and size read from the image goes through checked arithmetic
//! before it is used; nothing is written until every segment and the entry point have been
//! validated.

use super::{KernelLoader, LoadInfo};
use crate::memory::{GuestPhys, GuestRam};

/// Size of the ELF64 file header.
const EHDR_SIZE: usize = 64;
/// Size of an ELF64 program header.
const PHDR_SIZE: usize = 56;
const ELFMAG: [u8; 4] = *b"\x7fELF";
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const EV_CURRENT: u8 = 1;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
/// `e_phnum` value meaning "the real count is elsewhere" (not supported).
const PN_XNUM: u16 = 0xFFFF;

/// Why an image could not be loaded.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoadError {
    /// Not an ELF file (bad magic number).
    #[error("not an ELF file (bad magic number)")]
    NotElf,
    /// Truncated ELF header: the file has {len} bytes, the header needs 64.
    #[error("truncated ELF header: the file has {len} bytes, the header needs 64")]
    TruncatedHeader {
        /// File size.
        len: usize,
    },
    /// Not a 64-bit ELF file (EI_CLASS {0}).
    #[error("not a 64-bit ELF file (EI_CLASS {0})")]
    Not64Bit(u8),
    /// Not a little-endian ELF file (EI_DATA {0}).
    #[error("not a little-endian ELF file (EI_DATA {0})")]
    NotLittleEndian(u8),
    /// Unsupported ELF version {0}.
    #[error("unsupported ELF version {0}")]
    BadVersion(u8),
    /// Not an x86-64 ELF file (e_machine {0}).
    #[error("not an x86-64 ELF file (e_machine {0})")]
    NotX86_64(u16),
    /// Not an executable ELF file (e_type {0}; only ET_EXEC kernels are supported).
    #[error("not an executable ELF file (e_type {0}; only ET_EXEC kernels are supported)")]
    NotExecutable(u16),
    /// Bad program header entry size {0} (expected 56).
    #[error("bad program header entry size {0} (expected 56)")]
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
        offset: u64,
        /// `e_phnum`.
        count: u16,
        /// File size.
        len: usize,
    },
    /// No loadable segment in the image.
    #[error("no loadable segment in the image")]
    NoLoadableSegments,
    /// Segment {index}: file size {filesz:#x} exceeds memory size {memsz:#x}.
    #[error("segment {index}: file size {filesz:#x} exceeds memory size {memsz:#x}")]
    FileSizeExceedsMemSize {
        /// Program header index.
        index: usize,
        /// `p_filesz`.
        filesz: u64,
        /// `p_memsz`.
        memsz: u64,
    },
    /// Segment {index}: file bytes {offset:#x}+{filesz:#x} lie outside the {len}-byte file.
    #[error("segment {index}: file bytes {offset:#x}+{filesz:#x} lie outside the {len}-byte file")]
    SegmentOutsideFile {
        /// Program header index.
        index: usize,
        /// `p_offset`.
        offset: u64,
        /// `p_filesz`.
        filesz: u64,
        /// File size.
        len: usize,
    },
    /// Segment {index}: guest memory {addr:#x}+{memsz:#x} lies outside RAM (size {ram:#x}).
    #[error("segment {index}: guest memory {addr:#x}+{memsz:#x} lies outside RAM (size {ram:#x})")]
    SegmentOutsideRam {
        /// Program header index.
        index: usize,
        /// `p_paddr`.
        addr: u64,
        /// `p_memsz`.
        memsz: u64,
        /// RAM size.
        ram: u64,
    },
    /// Segments {first} and {second} overlap in guest memory.
    #[error("segments {first} and {second} overlap in guest memory")]
    OverlappingSegments {
        /// Program header index of one segment.
        first: usize,
        /// Program header index of the other.
        second: usize,
    },
    /// Entry point {entry:#x} lies outside RAM (size {ram:#x}).
    #[error("entry point {entry:#x} lies outside RAM (size {ram:#x})")]
    EntryOutsideRam {
        /// `e_entry`.
        entry: u64,
        /// RAM size.
        ram: u64,
    },
}

/// A validated `PT_LOAD` segment.
#[derive(Clone, Copy, Debug)]
struct Segment {
    index: usize,
    /// File bytes `[offset, offset + filesz)`, known to be inside the file.
    offset: usize,
    filesz: usize,
    /// Guest memory `[addr, addr + memsz)`, known to be inside RAM.
    addr: u64,
    memsz: u64,
}

/// The class of an ELF file's program headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PhClass {
    /// 32-byte ELF32 headers (the Multiboot loader's i386 kernels).
    Elf32,
    /// 56-byte ELF64 headers.
    Elf64,
}

impl PhClass {
    /// Bytes in one program header.
    pub(crate) const fn size(self) -> usize {
        match self {
            PhClass::Elf32 => 32,
            PhClass::Elf64 => PHDR_SIZE,
        }
    }
}

/// A `PT_LOAD` program header with a nonzero memory size, fields widened to 64 bits, its file
/// bytes known to lie inside the file (where it goes in guest memory is the caller's check).
#[derive(Clone, Copy, Debug)]
pub(crate) struct LoadHeader {
    pub index: usize,
    pub offset: usize,
    pub filesz: usize,
    pub vaddr: u64,
    pub paddr: u64,
    pub memsz: u64,
}

/// What [`load_headers`] finds wrong; each loader reports it in its own error type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PhError {
    TooMany,
    NoLoadable,
    BadEntrySize(u16),
    Truncated {
        offset: u64,
        count: u16,
        len: usize,
    },
    FileSizeExceedsMemSize {
        index: usize,
        filesz: u64,
        memsz: u64,
    },
    OutsideFile {
        index: usize,
        offset: u64,
        filesz: u64,
        len: usize,
    },
}

/// The loadable segments of the program-header table of `phnum` entries of `phentsize`
/// bytes at `phoff`, for ELF32 and ELF64 alike: the table inside the file, the entry size the
/// class's, every `PT_LOAD` with `filesz <= memsz` and its file bytes inside the file, and at
/// least one with memory (empty ones are skipped).
pub(crate) fn load_headers(
    image: &[u8],
    class: PhClass,
    phoff: u64,
    phentsize: u16,
    phnum: u16,
) -> Result<Vec<LoadHeader>, PhError> {
    if phnum == PN_XNUM {
        return Err(PhError::TooMany);
    }
    if phnum == 0 {
        return Err(PhError::NoLoadable);
    }
    let size = class.size();
    if usize::from(phentsize) != size {
        return Err(PhError::BadEntrySize(phentsize));
    }
    let table = usize::try_from(phoff)
        .ok()
        .and_then(|start| image.get(start..start.checked_add(usize::from(phnum) * size)?))
        .ok_or(PhError::Truncated {
            offset: phoff,
            count: phnum,
            len: image.len(),
        })?;
    let mut headers = Vec::new();
    for (index, ph) in table.chunks_exact(size).enumerate() {
        if u32_at(ph, 0) != PT_LOAD {
            continue;
        }
        let w = |o: usize| u64::from(u32_at(ph, o));
        let (offset, vaddr, paddr, filesz, memsz) = match class {
            PhClass::Elf32 => (w(4), w(8), w(12), w(16), w(20)),
            PhClass::Elf64 => (
                u64_at(ph, 8),
                u64_at(ph, 16),
                u64_at(ph, 24),
                u64_at(ph, 32),
                u64_at(ph, 40),
            ),
        };
        if filesz > memsz {
            return Err(PhError::FileSizeExceedsMemSize {
                index,
                filesz,
                memsz,
            });
        }
        if memsz == 0 {
            continue;
        }
        if offset
            .checked_add(filesz)
            .is_none_or(|end| end > image.len() as u64)
        {
            return Err(PhError::OutsideFile {
                index,
                offset,
                filesz,
                len: image.len(),
            });
        }
        headers.push(LoadHeader {
            index,
            // Both are <= image.len(), so they fit in usize.
            offset: offset as usize,
            filesz: filesz as usize,
            vaddr,
            paddr,
            memsz,
        });
    }
    if headers.is_empty() {
        return Err(PhError::NoLoadable);
    }
    Ok(headers)
}

impl From<PhError> for LoadError {
    fn from(e: PhError) -> Self {
        match e {
            PhError::TooMany => LoadError::TooManyProgramHeaders,
            PhError::NoLoadable => LoadError::NoLoadableSegments,
            PhError::BadEntrySize(n) => LoadError::BadProgramHeaderSize(n),
            PhError::Truncated { offset, count, len } => {
                LoadError::TruncatedProgramHeaders { offset, count, len }
            }
            PhError::FileSizeExceedsMemSize {
                index,
                filesz,
                memsz,
            } => LoadError::FileSizeExceedsMemSize {
                index,
                filesz,
                memsz,
            },
            PhError::OutsideFile {
                index,
                offset,
                filesz,
                len,
            } => LoadError::SegmentOutsideFile {
                index,
                offset,
                filesz,
                len,
            },
        }
    }
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

/// The ELF64 x86-64 loader.
pub struct Elf;

impl Elf {
    /// Validates the header and program headers against the file and a RAM of `ram` bytes;
    /// returns the entry point and the loadable segments.
    fn parse(image: &[u8], ram: u64) -> Result<(u64, Vec<Segment>), LoadError> {
        if image.len() < ELFMAG.len() || image[..4] != ELFMAG {
            return Err(LoadError::NotElf);
        }
        if image.len() < EHDR_SIZE {
            return Err(LoadError::TruncatedHeader { len: image.len() });
        }
        let h = &image[..EHDR_SIZE];
        if h[4] != ELFCLASS64 {
            return Err(LoadError::Not64Bit(h[4]));
        }
        if h[5] != ELFDATA2LSB {
            return Err(LoadError::NotLittleEndian(h[5]));
        }
        if h[6] != EV_CURRENT {
            return Err(LoadError::BadVersion(h[6]));
        }
        let (e_type, e_machine) = (u16_at(h, 16), u16_at(h, 18));
        if e_machine != EM_X86_64 {
            return Err(LoadError::NotX86_64(e_machine));
        }
        if e_type != ET_EXEC {
            return Err(LoadError::NotExecutable(e_type));
        }
        let entry = u64_at(h, 24);
        let phoff = u64_at(h, 32);
        let (phentsize, phnum) = (u16_at(h, 54), u16_at(h, 56));
        let headers = load_headers(image, PhClass::Elf64, phoff, phentsize, phnum)?;
        let mut segments: Vec<Segment> = Vec::new();
        for ph in headers {
            let (index, addr, memsz) = (ph.index, ph.paddr, ph.memsz);
            if addr.checked_add(memsz).is_none_or(|end| end > ram) {
                return Err(LoadError::SegmentOutsideRam {
                    index,
                    addr,
                    memsz,
                    ram,
                });
            }
            if let Some(other) = segments
                .iter()
                .find(|o| o.addr < addr + memsz && addr < o.addr + o.memsz)
            {
                return Err(LoadError::OverlappingSegments {
                    first: other.index,
                    second: index,
                });
            }
            segments.push(Segment {
                index,
                offset: ph.offset,
                filesz: ph.filesz,
                addr,
                memsz,
            });
        }
        if entry >= ram {
            return Err(LoadError::EntryOutsideRam { entry, ram });
        }
        Ok((entry, segments))
    }
}

impl KernelLoader for Elf {
    fn load(ram: &mut GuestRam, image: &[u8]) -> Result<LoadInfo, LoadError> {
        let (entry, segments) = Elf::parse(image, ram.size())?;
        let mut ranges = Vec::with_capacity(segments.len());
        for s in segments {
            let bytes = &image[s.offset..s.offset + s.filesz];
            // Validated in `parse`: [addr, addr + memsz) is inside RAM and filesz <= memsz.
            let wrote = ram.write(GuestPhys(s.addr), bytes).and_then(|()| {
                ram.zero(
                    GuestPhys(s.addr + s.filesz as u64),
                    s.memsz - s.filesz as u64,
                )
            });
            debug_assert!(wrote.is_ok(), "segment validated against RAM: {wrote:?}");
            ranges.push((s.addr, s.addr + s.memsz));
        }
        Ok(LoadInfo { entry, ranges })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MIN_RAM;

    /// A program header: (type, offset, paddr, filesz, memsz).
    type Ph = (u32, u64, u64, u64, u64);

    /// Builds an ELF64 image with `phs` program headers right after the file header and
    /// `payload` after them.
    fn image(entry: u64, phs: &[Ph], payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; EHDR_SIZE];
        v[..4].copy_from_slice(&ELFMAG);
        v[4] = ELFCLASS64;
        v[5] = ELFDATA2LSB;
        v[6] = EV_CURRENT;
        v[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
        v[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        v[20..24].copy_from_slice(&1u32.to_le_bytes());
        v[24..32].copy_from_slice(&entry.to_le_bytes());
        v[32..40].copy_from_slice(&(EHDR_SIZE as u64).to_le_bytes());
        v[52..54].copy_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
        v[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        v[56..58].copy_from_slice(&(phs.len() as u16).to_le_bytes());
        for &(ty, off, paddr, filesz, memsz) in phs {
            let mut ph = [0u8; PHDR_SIZE];
            ph[0..4].copy_from_slice(&ty.to_le_bytes());
            ph[4..8].copy_from_slice(&5u32.to_le_bytes());
            ph[8..16].copy_from_slice(&off.to_le_bytes());
            ph[16..24].copy_from_slice(&paddr.to_le_bytes());
            ph[24..32].copy_from_slice(&paddr.to_le_bytes());
            ph[32..40].copy_from_slice(&filesz.to_le_bytes());
            ph[40..48].copy_from_slice(&memsz.to_le_bytes());
            v.extend_from_slice(&ph);
        }
        v.extend_from_slice(payload);
        v
    }

    /// Offset of the payload in an image with `n` program headers.
    fn payload_at(n: usize) -> u64 {
        (EHDR_SIZE + n * PHDR_SIZE) as u64
    }

    fn load(img: &[u8]) -> Result<LoadInfo, LoadError> {
        let mut ram = GuestRam::new(MIN_RAM).unwrap();
        Elf::load(&mut ram, img)
    }

    #[test]
    fn loads_segments_zeroes_bss_and_returns_entry() {
        let off = payload_at(2);
        let img = image(
            0x1000,
            &[
                (PT_LOAD, off, 0x1000, 4, 4),
                (PT_LOAD, off + 4, 0x3000, 2, 0x10),
            ],
            &[0xF4, 0x90, 0x90, 0x90, 0xAA, 0xBB],
        );
        let mut ram = GuestRam::new(MIN_RAM).unwrap();
        ram.write(GuestPhys(0x3002), &[0x55; 14]).unwrap();
        let info = Elf::load(&mut ram, &img).unwrap();
        assert_eq!(info.entry, 0x1000);
        assert_eq!(info.ranges, vec![(0x1000, 0x1004), (0x3000, 0x3010)]);
        assert_eq!(ram.read_le(GuestPhys(0x1000), 4).unwrap(), 0x909090F4);
        assert_eq!(ram.read_le(GuestPhys(0x3000), 2).unwrap(), 0xBBAA);
        assert_eq!(
            ram.slice(GuestPhys(0x3002), 14).unwrap(),
            &[0u8; 14],
            ".bss zeroed"
        );
    }

    #[test]
    fn pure_bss_segments_and_other_types_are_handled() {
        let img = image(
            0x2000,
            &[
                (4 /* PT_NOTE */, 0, 0, 0, 0),
                (PT_LOAD, 0, 0x2000, 0, 0x100),
            ],
            &[],
        );
        assert_eq!(load(&img).unwrap().ranges, vec![(0x2000, 0x2100)]);
    }

    #[test]
    fn rejects_non_elf_and_short_files() {
        assert_eq!(load(b""), Err(LoadError::NotElf));
        assert_eq!(load(b"\x7fEL"), Err(LoadError::NotElf));
        assert_eq!(load(b"#!/bin/sh\necho hi\n"), Err(LoadError::NotElf));
        let img = image(0x1000, &[], &[]);
        assert_eq!(
            load(&img[..40]),
            Err(LoadError::TruncatedHeader { len: 40 })
        );
    }

    #[test]
    fn rejects_wrong_class_endianness_version_machine_and_type() {
        let good = image(0x1000, &[(PT_LOAD, payload_at(1), 0x1000, 1, 1)], &[0xF4]);
        let with = |off: usize, bytes: &[u8]| {
            let mut v = good.clone();
            v[off..off + bytes.len()].copy_from_slice(bytes);
            load(&v)
        };
        assert_eq!(with(4, &[1]), Err(LoadError::Not64Bit(1)));
        assert_eq!(with(5, &[2]), Err(LoadError::NotLittleEndian(2)));
        assert_eq!(with(6, &[0]), Err(LoadError::BadVersion(0)));
        assert_eq!(with(18, &3u16.to_le_bytes()), Err(LoadError::NotX86_64(3)));
        assert_eq!(
            with(16, &3u16.to_le_bytes()),
            Err(LoadError::NotExecutable(3))
        );
        assert_eq!(
            with(54, &32u16.to_le_bytes()),
            Err(LoadError::BadProgramHeaderSize(32))
        );
        assert_eq!(
            with(56, &0u16.to_le_bytes()),
            Err(LoadError::NoLoadableSegments)
        );
        assert_eq!(
            with(56, &0xFFFFu16.to_le_bytes()),
            Err(LoadError::TooManyProgramHeaders)
        );
        assert!(load(&good).is_ok());
    }

    #[test]
    fn rejects_truncated_program_headers() {
        let img = image(0x1000, &[(PT_LOAD, 0, 0x1000, 0, 1)], &[]);
        assert!(matches!(
            load(&img[..EHDR_SIZE + 10]),
            Err(LoadError::TruncatedProgramHeaders { count: 1, .. })
        ));
        let mut far = img.clone();
        far[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            load(&far),
            Err(LoadError::TruncatedProgramHeaders { .. })
        ));
    }

    #[test]
    fn rejects_bad_segments() {
        let off = payload_at(1);
        let seg = |ph: Ph| load(&image(0x1000, &[ph], &[0; 8]));
        assert_eq!(
            seg((PT_LOAD, off, 0x1000, 9, 8)),
            Err(LoadError::FileSizeExceedsMemSize {
                index: 0,
                filesz: 9,
                memsz: 8
            })
        );
        assert!(matches!(
            seg((PT_LOAD, off, 0x1000, 9, 9)),
            Err(LoadError::SegmentOutsideFile { index: 0, .. })
        ));
        assert!(matches!(
            seg((PT_LOAD, u64::MAX, 0x1000, 2, 2)),
            Err(LoadError::SegmentOutsideFile { .. })
        ));
        assert!(matches!(
            seg((PT_LOAD, off, MIN_RAM - 4, 8, 8)),
            Err(LoadError::SegmentOutsideRam { .. })
        ));
        assert!(matches!(
            seg((PT_LOAD, off, u64::MAX - 2, 8, 8)),
            Err(LoadError::SegmentOutsideRam { .. })
        ));
        assert!(matches!(
            seg((PT_LOAD, off, 0, 0, u64::MAX)),
            Err(LoadError::SegmentOutsideRam { .. })
        ));
    }

    #[test]
    fn rejects_overlaps_and_bad_entry_without_touching_ram() {
        let off = payload_at(2);
        let img = image(
            0x1000,
            &[
                (PT_LOAD, off, 0x1000, 4, 0x100),
                (PT_LOAD, off, 0x10F0, 4, 4),
            ],
            &[1, 2, 3, 4],
        );
        let mut ram = GuestRam::new(MIN_RAM).unwrap();
        assert_eq!(
            Elf::load(&mut ram, &img),
            Err(LoadError::OverlappingSegments {
                first: 0,
                second: 1
            })
        );
        assert_eq!(
            ram.read_le(GuestPhys(0x1000), 4).unwrap(),
            0,
            "nothing written"
        );
        let img = image(MIN_RAM, &[(PT_LOAD, payload_at(1), 0x1000, 1, 1)], &[0xF4]);
        assert_eq!(
            load(&img),
            Err(LoadError::EntryOutsideRam {
                entry: MIN_RAM,
                ram: MIN_RAM
            })
        );
    }
}
