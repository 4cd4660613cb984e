//! The bzImage setup header (`Documentation/x86/boot.rst`, "THE REAL-MODE KERNEL HEADER"):
//! the fields a 64-bit boot loader reads, validated.
//!
//! The header sits at file offset 0x1F1 and ends at `0x202 + image[0x201]` (the second
//! byte of the jump at 0x200). Offsets below are file offsets, which are also the offsets
//! of the same fields in the zero page (`struct boot_params`), since the header is copied
//! there verbatim.
//!
//! Invariants: [`parse`] reads only bytes it has checked are in the image, never panics on
//! any input, and accepts only what [`super::load`] can boot: protocol 2.06 or later, a
//! bzImage (LOADED_HIGH), a power-of-two alignment for relocatable kernels, and an
//! `init_size` that covers the protected-mode code.

use super::LinuxError;

/// `setup_sects`: size of the real-mode setup in 512-byte sectors (0 means 4).
pub const SETUP_SECTS: usize = 0x1F1;
/// `syssize`: size of the protected-mode code in 16-byte paragraphs.
pub const SYSSIZE: usize = 0x1F4;
/// `vid_mode`.
pub const VID_MODE: usize = 0x1FA;
/// `boot_flag`: 0xAA55.
pub const BOOT_FLAG: usize = 0x1FE;
/// `jump`: its second byte gives the header's end.
pub const JUMP: usize = 0x200;
/// `header`: the magic `"HdrS"`.
pub const HEADER: usize = 0x202;
/// `version`: the protocol version (major << 8 | minor).
pub const VERSION: usize = 0x206;
/// `type_of_loader`.
pub const TYPE_OF_LOADER: usize = 0x210;
/// `loadflags`.
pub const LOADFLAGS: usize = 0x211;
/// `code32_start`: the 32-bit entry (the protected-mode load address).
pub const CODE32_START: usize = 0x214;
/// `ramdisk_image`.
pub const RAMDISK_IMAGE: usize = 0x218;
/// `ramdisk_size`.
pub const RAMDISK_SIZE: usize = 0x21C;
/// `heap_end_ptr`.
pub const HEAP_END_PTR: usize = 0x224;
/// `cmd_line_ptr`.
pub const CMD_LINE_PTR: usize = 0x228;
/// `initrd_addr_max` (protocol 2.03+).
pub const INITRD_ADDR_MAX: usize = 0x22C;
/// `kernel_alignment` (2.05+).
pub const KERNEL_ALIGNMENT: usize = 0x230;
/// `relocatable_kernel` (2.05+).
pub const RELOCATABLE_KERNEL: usize = 0x234;
/// `xloadflags` (2.12+).
pub const XLOADFLAGS: usize = 0x236;
/// `cmdline_size` (2.06+).
pub const CMDLINE_SIZE: usize = 0x238;
/// `pref_address` (2.10+).
pub const PREF_ADDRESS: usize = 0x258;
/// `init_size` (2.10+).
pub const INIT_SIZE: usize = 0x260;
/// The end of the last field read here.
const FIELDS_END: usize = 0x264;
/// Where the zero page's next structure (`edd_mbr_sig_buffer`) starts: the header copy
/// never goes past it.
pub const HEADER_LIMIT: usize = 0x290;

/// The magic at [`HEADER`].
pub const MAGIC: &[u8; 4] = b"HdrS";
/// The value of [`BOOT_FLAG`].
pub const BOOT_FLAG_VALUE: u16 = 0xAA55;
/// The oldest protocol supported: 2.06 (the first with `cmdline_size`).
pub const MIN_VERSION: u16 = 0x0206;
/// `loadflags`: the protected-mode code is loaded at 0x100000 or above (a bzImage).
pub const LOADED_HIGH: u8 = 1 << 0;
/// `loadflags`: `heap_end_ptr` is valid.
pub const CAN_USE_HEAP: u8 = 1 << 7;
/// `xloadflags`: the kernel has the 64-bit entry point at load address + 0x200.
pub const XLF_KERNEL_64: u16 = 1 << 0;
/// `xloadflags`: the kernel may be loaded above 4 GiB.
pub const XLF_CAN_BE_LOADED_ABOVE_4G: u16 = 1 << 1;
/// Where a protocol-2.06..2.09 bzImage's protected-mode code goes (no `pref_address`).
pub const DEFAULT_LOAD: u64 = 0x10_0000;

/// The validated setup header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetupHeader {
    /// Protocol version (major << 8 | minor), at least [`MIN_VERSION`].
    pub version: u16,
    /// Real-mode setup sectors (a 0 in the file reads as 4).
    pub setup_sects: u8,
    /// File offset of the protected-mode code: `(setup_sects + 1) * 512`.
    pub setup_size: usize,
    /// File offset where the header ends (`0x202 + jump[1]`, at most [`HEADER_LIMIT`] and
    /// the file's length).
    pub header_end: usize,
    /// `loadflags`.
    pub loadflags: u8,
    /// `initrd_addr_max` (0x37FFFFFF before protocol 2.03).
    pub initrd_addr_max: u32,
    /// `kernel_alignment` (a power of two when relocatable).
    pub kernel_alignment: u32,
    /// `relocatable_kernel`.
    pub relocatable: bool,
    /// `xloadflags` (0 before 2.12).
    pub xloadflags: u16,
    /// `cmdline_size`: the longest command line, without its NUL.
    pub cmdline_size: u32,
    /// `pref_address`, or [`DEFAULT_LOAD`] before 2.10.
    pub pref_address: u64,
    /// `init_size`, or the protected-mode code's size before 2.10.
    pub init_size: u64,
}

impl SetupHeader {
    /// Whether the kernel has the 64-bit entry point (protocol 2.12+ and XLF_KERNEL_64).
    pub fn has_64bit_entry(&self) -> bool {
        self.version >= 0x020C && self.xloadflags & XLF_KERNEL_64 != 0
    }
}

/// Whether `image` has the boot protocol's magic at 0x202 (a bzImage or zImage).
pub fn is_bzimage(image: &[u8]) -> bool {
    image.get(HEADER..HEADER + 4) == Some(MAGIC.as_slice())
}

fn u8_at(image: &[u8], off: usize) -> u8 {
    image.get(off).copied().unwrap_or(0)
}

fn u16_at(image: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([u8_at(image, off), u8_at(image, off + 1)])
}

fn u32_at(image: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([0, 1, 2, 3].map(|i| u8_at(image, off + i)))
}

fn u64_at(image: &[u8], off: usize) -> u64 {
    u64::from(u32_at(image, off)) | u64::from(u32_at(image, off + 4)) << 32
}

/// Parses and validates the setup header of `image`.
pub fn parse(image: &[u8]) -> Result<SetupHeader, LinuxError> {
    if image.len() < FIELDS_END {
        return Err(LinuxError::Truncated {
            len: image.len(),
            need: FIELDS_END,
        });
    }
    if !is_bzimage(image) {
        return Err(LinuxError::BadMagic);
    }
    let boot_flag = u16_at(image, BOOT_FLAG);
    if boot_flag != BOOT_FLAG_VALUE {
        return Err(LinuxError::BadBootFlag(boot_flag));
    }
    let version = u16_at(image, VERSION);
    if version < MIN_VERSION {
        return Err(LinuxError::OldProtocol(version));
    }
    let setup_sects = match u8_at(image, SETUP_SECTS) {
        0 => 4,
        n => n,
    };
    let setup_size = (usize::from(setup_sects) + 1) * 512;
    if image.len() <= setup_size {
        return Err(LinuxError::Truncated {
            len: image.len(),
            need: setup_size + 1,
        });
    }
    let loadflags = u8_at(image, LOADFLAGS);
    if loadflags & LOADED_HIGH == 0 {
        return Err(LinuxError::NotBzImage);
    }
    let relocatable = u8_at(image, RELOCATABLE_KERNEL) != 0;
    let kernel_alignment = u32_at(image, KERNEL_ALIGNMENT);
    if relocatable && !kernel_alignment.is_power_of_two() {
        return Err(LinuxError::BadAlignment(kernel_alignment));
    }
    let code_size = (image.len() - setup_size) as u64;
    let (pref_address, init_size) = if version >= 0x020A {
        (
            u64_at(image, PREF_ADDRESS),
            u64::from(u32_at(image, INIT_SIZE)),
        )
    } else {
        (DEFAULT_LOAD, code_size)
    };
    if init_size < code_size {
        return Err(LinuxError::BadInitSize {
            init_size,
            code_size,
        });
    }
    let header_end = (JUMP + 2 + usize::from(u8_at(image, JUMP + 1)))
        .clamp(FIELDS_END, HEADER_LIMIT)
        .min(image.len());
    Ok(SetupHeader {
        version,
        setup_sects,
        setup_size,
        header_end,
        loadflags,
        initrd_addr_max: if version >= 0x0203 {
            u32_at(image, INITRD_ADDR_MAX)
        } else {
            0x37FF_FFFF
        },
        kernel_alignment,
        relocatable,
        xloadflags: if version >= 0x020C {
            u16_at(image, XLOADFLAGS)
        } else {
            0
        },
        cmdline_size: u32_at(image, CMDLINE_SIZE),
        pref_address,
        init_size,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::fake_bzimage;
    use super::*;

    #[test]
    fn field_offsets_match_boot_rst() {
        // The offsets of Documentation/x86/boot.rst's header table.
        let table = [
            (SETUP_SECTS, 0x1F1),
            (SYSSIZE, 0x1F4),
            (VID_MODE, 0x1FA),
            (BOOT_FLAG, 0x1FE),
            (HEADER, 0x202),
            (VERSION, 0x206),
            (TYPE_OF_LOADER, 0x210),
            (LOADFLAGS, 0x211),
            (CODE32_START, 0x214),
            (RAMDISK_IMAGE, 0x218),
            (RAMDISK_SIZE, 0x21C),
            (HEAP_END_PTR, 0x224),
            (CMD_LINE_PTR, 0x228),
            (INITRD_ADDR_MAX, 0x22C),
            (KERNEL_ALIGNMENT, 0x230),
            (RELOCATABLE_KERNEL, 0x234),
            (XLOADFLAGS, 0x236),
            (CMDLINE_SIZE, 0x238),
            (PREF_ADDRESS, 0x258),
            (INIT_SIZE, 0x260),
        ];
        for (ours, spec) in table {
            assert_eq!(ours, spec);
        }
    }

    #[test]
    fn parses_a_64bit_relocatable_kernel() {
        let img = fake_bzimage(0x20F, 0x3000);
        let h = parse(&img).unwrap();
        assert_eq!(h.version, 0x20F);
        assert_eq!(h.setup_size, 5 * 512);
        assert!(h.has_64bit_entry() && h.relocatable);
        assert_eq!((h.pref_address, h.init_size), (0x100_0000, 0x40_0000));
        assert_eq!(h.kernel_alignment, 0x20_0000);
        assert_eq!(h.cmdline_size, 2047);
        assert_eq!(h.header_end, 0x26C);
    }

    #[test]
    fn rejects_bad_headers_with_typed_errors() {
        let good = fake_bzimage(0x20F, 0x3000);
        let with = |off: usize, bytes: &[u8]| {
            let mut v = good.clone();
            v[off..off + bytes.len()].copy_from_slice(bytes);
            v
        };
        assert!(matches!(
            parse(&good[..0x100]),
            Err(LinuxError::Truncated { .. })
        ));
        assert!(matches!(
            parse(&good[..0x800]),
            Err(LinuxError::Truncated { .. })
        ));
        assert_eq!(parse(&with(HEADER, b"HdrZ")), Err(LinuxError::BadMagic));
        assert_eq!(
            parse(&with(BOOT_FLAG, &[0, 0])),
            Err(LinuxError::BadBootFlag(0))
        );
        assert_eq!(
            parse(&with(VERSION, &0x205u16.to_le_bytes())),
            Err(LinuxError::OldProtocol(0x205))
        );
        assert_eq!(parse(&with(LOADFLAGS, &[0])), Err(LinuxError::NotBzImage));
        assert_eq!(
            parse(&with(KERNEL_ALIGNMENT, &0x30_0000u32.to_le_bytes())),
            Err(LinuxError::BadAlignment(0x30_0000))
        );
        assert!(matches!(
            parse(&with(INIT_SIZE, &16u32.to_le_bytes())),
            Err(LinuxError::BadInitSize { .. })
        ));
    }

    #[test]
    fn old_protocols_default_what_they_lack() {
        let img = fake_bzimage(0x206, 0x3000);
        let h = parse(&img).unwrap();
        assert!(!h.has_64bit_entry());
        assert_eq!(h.pref_address, DEFAULT_LOAD);
        assert_eq!(h.init_size, (img.len() - h.setup_size) as u64);
        // A huge jump offset is clamped to the zero page's header area.
        let mut img = fake_bzimage(0x20F, 0x3000);
        img[JUMP + 1] = 0xFF;
        assert_eq!(parse(&img).unwrap().header_end, HEADER_LIMIT);
    }

    #[test]
    fn never_panics_on_prefixes() {
        let img = fake_bzimage(0x20F, 0x3000);
        for n in 0..img.len() {
            let _ = parse(&img[..n]);
        }
    }
}
