//! Tests of the Multiboot loader.

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
    let boot = load(&mut ram, image, cmdline, &[]).unwrap();
    (ram, boot)
}

/// Loads `image`, expecting failure, and checks RAM was left untouched.
fn load_err(image: &[u8], cmdline: &str) -> MultibootError {
    let mut ram = GuestRam::new(RAM).unwrap();
    let err = load(&mut ram, image, cmdline, &[]).unwrap_err();
    assert!(all_zero(&ram), "{err} but RAM was written");
    assert!(!err.to_string().contains('\n'), "one line: {err}");
    err
}

fn rd(ram: &GuestRam, addr: u64, size: usize) -> u64 {
    ram.read_le(GuestPhys(addr), size).unwrap()
}

/// Checks every field of the boot information in `ram`: it follows the highest loaded byte
/// on a page boundary, with no modules.
fn assert_boot_info(ram: &GuestRam, boot: &MultibootBoot, cmdline: &str) {
    assert_eq!(boot.eax, 0x2BAD_B002);
    let image_end = boot.ranges[..boot.ranges.len() - 1]
        .iter()
        .map(|r| r.1)
        .max()
        .unwrap();
    let info = u64::from(boot.ebx);
    assert_eq!(info, image_end.next_multiple_of(4096));
    assert_eq!(rd(ram, info, 4), 1 | 4 | 8 | 0x40 | 0x200, "flags");
    assert_eq!(rd(ram, info + 4, 4), 639, "mem_lower");
    assert_eq!(rd(ram, info + 8, 4), (RAM - (1 << 20)) / 1024, "mem_upper");
    assert_eq!(rd(ram, info + 12, 4), 0, "boot_device");
    assert_eq!(rd(ram, info + 16, 4), info + 0xF0, "cmdline");
    assert_eq!(rd(ram, info + 20, 4), 0, "mods_count");
    assert_eq!(rd(ram, info + 24, 4), info + 0xF0, "mods_addr");
    assert_eq!(rd(ram, info + 44, 4), 96, "mmap_length");
    assert_eq!(rd(ram, info + 48, 4), info + 0x80, "mmap_addr");
    assert_eq!(rd(ram, info + 64, 4), info + 0xE0, "boot_loader_name");
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
        let e = info + 0x80 + 24 * i as u64;
        assert_eq!(rd(ram, e, 4), 20, "mmap[{i}].size");
        assert_eq!(rd(ram, e + 4, 8), base, "mmap[{i}].base_addr");
        assert_eq!(rd(ram, e + 12, 8), len, "mmap[{i}].length");
        assert_eq!(rd(ram, e + 20, 4), kind, "mmap[{i}].type");
    }
    assert_eq!(ram.slice(GuestPhys(info + 0xE0), 6).unwrap(), b"popek\0");
    let n = cmdline.len();
    assert_eq!(
        ram.slice(GuestPhys(info + 0xF0), n).unwrap(),
        cmdline.as_bytes()
    );
    assert_eq!(rd(ram, info + 0xF0 + n as u64, 1), 0, "cmdline NUL");
    assert_eq!(
        boot.ranges.last(),
        Some(&(info, info + 0xF0 + n as u64 + 1))
    );
}

#[test]
fn loads_elf32_segments_zeroes_bss_and_builds_boot_info() {
    let img = good_elf();
    let mut ram = GuestRam::new(RAM).unwrap();
    ram.write(GuestPhys(0x10_2004), &[0x55; 0x1C]).unwrap();
    let boot = load(&mut ram, &img, "console=ttyS0 quiet", &[]).unwrap();
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
fn the_command_line_is_built_as_qemu_builds_it() {
    assert_eq!(
        qemu_cmdline("/tmp/k.elf", "alpha beta=2"),
        "/tmp/k.elf alpha beta=2"
    );
    // No -append: QEMU's "%s %s" of the name and an empty string.
    assert_eq!(qemu_cmdline("k.elf", ""), "k.elf ");
    assert_eq!(qemu_cmdline("dir/k", " x "), "dir/k  x ");
    let cmdline = qemu_cmdline("kernels/a.elf", "--flag value");
    let (ram, boot) = load_ok(&good_elf(), &cmdline);
    assert_boot_info(&ram, &boot, "kernels/a.elf --flag value");
    let words: Vec<&str> = cmdline.split(' ').skip(1).collect();
    assert_eq!(words, ["--flag", "value"], "argv[1..]");
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
        let boot = load(&mut ram, &img, "root=/dev/vda", &[]).unwrap();
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
        raw(0, [0xA_0010, 0xA_0000, 0, 0, 0xA_0000]),
        E::OverlapsReserved {
            piece,
            addr: 0xA_0000,
            end: 0xA_0040
        }
    );
}

/// Regression: the boot information used to sit at a fixed 0x9000, so a valid kernel linked at
/// 0x8000 with more than 4 KiB was refused. It now follows the image.
#[test]
fn a_kernel_at_0x8000_loads_and_the_boot_information_follows_it() {
    let off = payload_at(1);
    let phs = [(PT_LOAD, off, 0x8000, 0x8000, 8, 0x1001)];
    let img = elf32(0x8000, &phs, &mb_header(0, &[]), &CODE);
    let (ram, boot) = load_ok(&img, "low");
    assert_eq!((boot.entry, boot.ebx), (0x8000, 0xA000));
    assert_eq!(ram.slice(GuestPhys(0x8000), 8).unwrap(), &CODE);
    assert_boot_info(&ram, &boot, "low");
    // An a.out image at 0x9000 too.
    let (_, boot) = load_ok(&aout_raw(0, [0x9010, 0x9000, 0, 0, 0x9000]), "");
    assert_eq!(boot.entry, 0x9000);
}

#[test]
fn modules_are_loaded_after_the_kernel_with_their_strings() {
    let (a, b) = (vec![0xA1u8; 5000], vec![0xB2u8; 10]);
    let mods = [
        Module {
            cmdline: "a.bin one",
            bytes: &a,
        },
        Module {
            cmdline: "b.bin",
            bytes: &b,
        },
    ];
    let mut ram = GuestRam::new(RAM).unwrap();
    let boot = load(&mut ram, &good_elf(), "k.elf ro", &mods).unwrap();
    let info = u64::from(boot.ebx);
    assert_eq!(rd(&ram, info + 20, 4), 2, "mods_count");
    let list = rd(&ram, info + 24, 4);
    let (start, end) = (rd(&ram, list, 4), rd(&ram, list + 4, 4));
    assert_eq!((start % 4096, end - start), (0, 5000));
    assert!(start >= 0x10_2020, "after the kernel");
    assert_eq!(rd(&ram, start, 1), 0xA1);
    let string = rd(&ram, list + 8, 4);
    assert_eq!(ram.slice(GuestPhys(string), 10).unwrap(), b"a.bin one\0");
    assert_eq!(rd(&ram, rd(&ram, list + 16, 4), 1), 0xB2);
    let cmdline = rd(&ram, info + 16, 4);
    assert_eq!(ram.slice(GuestPhys(cmdline), 9).unwrap(), b"k.elf ro\0");
    // A module string with a NUL, or modules that do not fit: refused, RAM untouched.
    let mut ram = GuestRam::new(RAM).unwrap();
    let bad = [Module {
        cmdline: "x\0y",
        bytes: &b,
    }];
    assert_eq!(
        load(&mut ram, &good_elf(), "", &bad),
        Err(MultibootError::BadModuleString { index: 0 })
    );
    let huge = vec![0u8; RAM as usize];
    let too_big = [Module {
        cmdline: "huge",
        bytes: &huge,
    }];
    assert!(matches!(
        load(&mut ram, &good_elf(), "", &too_big),
        Err(MultibootError::BootInfoDoesNotFit { .. })
    ));
    assert!(all_zero(&ram));
}

#[test]
fn rejects_bad_command_lines() {
    let long = "x".repeat(CMDLINE_MAX + 1);
    assert_eq!(
        load_err(&good_elf(), &long),
        MultibootError::CmdlineTooLong { len: 4096 }
    );
    assert_eq!(load_err(&good_elf(), "a\0b"), MultibootError::CmdlineHasNul);
    let longest = "y".repeat(CMDLINE_MAX);
    let (ram, boot) = load_ok(&good_elf(), &longest);
    assert_boot_info(&ram, &boot, &longest);
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
        let flags = [0, FLAG_AOUT_KLUDGE, FLAG_AOUT_KLUDGE | 3, rng.next() as u32][rng.below(4)];
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
        match load(&mut ram, &img, &cmdline, &[]) {
            Ok(boot) => {
                loaded += 1;
                assert_eq!(boot.eax, BOOTLOADER_MAGIC, "round {round}");
                let ebx = u64::from(boot.ebx);
                assert_eq!(boot.ranges.last().map(|r| r.0), Some(ebx), "round {round}");
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
