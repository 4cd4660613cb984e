//! QEMU's firmware configuration device (`fw_cfg`), the traditional I/O-port interface of
//! its x86 machines: a 16-bit write to the selector port 0x510 picks an item (and rewinds
//! it); 8-bit reads of the data port 0x511 (or of 0x510, as QEMU's combined region allows)
//! return its bytes one after another, then zeros past its end. Unknown items read as
//! zeros. There is no DMA interface: the ID item says so (bit 1 clear), and port 0x514 is
//! left unclaimed.
//!
//! Items (numeric ones little-endian, as QEMU stores them; the file directory big-endian):
//!
//! | key  | item |
//! |------|------|
//! | 0x00 | signature `"QEMU"` |
//! | 0x01 | ID: 1 (traditional interface only) |
//! | 0x02 | UUID (16 zero bytes) |
//! | 0x03 | RAM size (u64) |
//! | 0x04 | no-graphic flag (u16: 1) |
//! | 0x05 | CPU count (u16) |
//! | 0x0F | maximum CPU count (u16) |
//! | 0x07, 0x08 | kernel load address and size (u32), after a Linux boot |
//! | 0x0A, 0x0B | initrd load address and size (u32), after a Linux boot |
//! | 0x13, 0x14, 0x15 | command-line address (u32), size with its NUL (u32), bytes with the NUL |
//! | 0x16, 0x17, 0x18 | real-mode setup address (u32), size (u32), bytes, after a Linux boot |
//! | 0x19 | file directory: a u32 count, then 64-byte entries `{size: u32, select: u16, reserved: u16, name: [u8; 56]}` |
//!
//! Invariants: any access of any width at any offset is total; 16-bit writes (at either
//! port) select, every other write is ignored (QEMU dropped guest writes to items); reads
//! wider than a byte return all ones, as QEMU rejects them.

use std::collections::BTreeMap;

use crate::devices::{IoAction, PortIo, PortRange};

/// The device's ports: the selector (0x510) and the data port (0x511).
pub const FW_CFG_PORTS: PortRange = PortRange {
    base: 0x510,
    len: 2,
};

/// Item keys (QEMU's `FW_CFG_*`).
pub mod key {
    /// The `"QEMU"` signature.
    pub const SIGNATURE: u16 = 0x00;
    /// Interface ID (feature bits: 1 traditional, 2 DMA).
    pub const ID: u16 = 0x01;
    /// Machine UUID.
    pub const UUID: u16 = 0x02;
    /// RAM size in bytes.
    pub const RAM_SIZE: u16 = 0x03;
    /// No graphics (`-nographic`).
    pub const NOGRAPHIC: u16 = 0x04;
    /// Number of CPUs.
    pub const NB_CPUS: u16 = 0x05;
    /// Kernel load address.
    pub const KERNEL_ADDR: u16 = 0x07;
    /// Kernel size.
    pub const KERNEL_SIZE: u16 = 0x08;
    /// Initrd load address.
    pub const INITRD_ADDR: u16 = 0x0A;
    /// Initrd size.
    pub const INITRD_SIZE: u16 = 0x0B;
    /// Maximum number of CPUs.
    pub const MAX_CPUS: u16 = 0x0F;
    /// Command-line load address.
    pub const CMDLINE_ADDR: u16 = 0x13;
    /// Command-line size, NUL included.
    pub const CMDLINE_SIZE: u16 = 0x14;
    /// Command-line bytes, NUL included.
    pub const CMDLINE_DATA: u16 = 0x15;
    /// Real-mode setup load address.
    pub const SETUP_ADDR: u16 = 0x16;
    /// Real-mode setup size.
    pub const SETUP_SIZE: u16 = 0x17;
    /// Real-mode setup bytes.
    pub const SETUP_DATA: u16 = 0x18;
    /// The file directory.
    pub const FILE_DIR: u16 = 0x19;
    /// First key given to a file.
    pub const FILE_FIRST: u16 = 0x20;
}

/// Selector bit: the item is architecture-specific (e.g. 0x8000 ACPI tables on x86).
pub const ARCH_LOCAL: u16 = 0x8000;
/// Selector bit: write channel (no longer supported by QEMU; ignored here).
const WRITE_CHANNEL: u16 = 0x4000;
/// Longest file name, NUL included.
pub const MAX_FILE_PATH: usize = 56;

/// Errors of [`FwCfg::add_file`].
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum FwCfgError {
    /// fw_cfg file name '{0}' is empty, longer than 55 bytes, or holds a NUL.
    #[error("fw_cfg file name '{0}' is empty, longer than 55 bytes, or holds a NUL")]
    BadName(String),
    /// fw_cfg file '{0}' already exists.
    #[error("fw_cfg file '{0}' already exists")]
    Duplicate(String),
    /// fw_cfg has no room for another file.
    #[error("fw_cfg has no room for another file")]
    Full,
}

/// The device.
#[derive(Debug, Default)]
pub struct FwCfg {
    items: BTreeMap<u16, Vec<u8>>,
    files: Vec<(String, u16, u32)>,
    selected: Option<u16>,
    offset: usize,
}

impl FwCfg {
    /// The device with the machine's items: signature, ID, UUID, RAM size, no-graphic,
    /// `cpus` CPUs, and an empty file directory.
    pub fn new(ram_bytes: u64, cpus: u16) -> FwCfg {
        let mut f = FwCfg::default();
        f.set(key::SIGNATURE, b"QEMU".to_vec());
        f.set(key::ID, 1u32.to_le_bytes().to_vec());
        f.set(key::UUID, vec![0; 16]);
        f.set(key::RAM_SIZE, ram_bytes.to_le_bytes().to_vec());
        f.set(key::NOGRAPHIC, 1u16.to_le_bytes().to_vec());
        f.set(key::NB_CPUS, cpus.to_le_bytes().to_vec());
        f.set(key::MAX_CPUS, cpus.to_le_bytes().to_vec());
        f.set(key::FILE_DIR, 0u32.to_be_bytes().to_vec());
        f
    }

    /// Sets item `key` (with [`ARCH_LOCAL`] for an architecture item) to `bytes`.
    pub fn set(&mut self, key: u16, bytes: Vec<u8>) {
        self.items.insert(key & !WRITE_CHANNEL, bytes);
    }

    /// Sets item `key` to a little-endian u32.
    pub fn set_u32(&mut self, key: u16, value: u32) {
        self.set(key, value.to_le_bytes().to_vec());
    }

    /// The bytes of item `key`, if it exists.
    pub fn item(&self, key: u16) -> Option<&[u8]> {
        self.items.get(&(key & !WRITE_CHANNEL)).map(Vec::as_slice)
    }

    /// Sets the command-line items: address, size and bytes, each with the NUL.
    pub fn set_cmdline(&mut self, addr: u32, cmdline: &str) {
        let mut bytes = cmdline.as_bytes().to_vec();
        bytes.push(0);
        self.set_u32(key::CMDLINE_ADDR, addr);
        self.set_u32(key::CMDLINE_SIZE, bytes.len() as u32);
        self.set(key::CMDLINE_DATA, bytes);
    }

    /// Adds a named file (e.g. `"etc/e820"`), lists it in the directory and returns its key.
    pub fn add_file(&mut self, name: &str, bytes: Vec<u8>) -> Result<u16, FwCfgError> {
        if name.is_empty() || name.len() >= MAX_FILE_PATH || name.contains('\0') {
            return Err(FwCfgError::BadName(name.to_string()));
        }
        if self.files.iter().any(|(n, _, _)| n == name) {
            return Err(FwCfgError::Duplicate(name.to_string()));
        }
        let key = key::FILE_FIRST
            .checked_add(self.files.len() as u16)
            .filter(|k| k & (WRITE_CHANNEL | ARCH_LOCAL) == 0)
            .ok_or(FwCfgError::Full)?;
        let size = u32::try_from(bytes.len()).map_err(|_| FwCfgError::Full)?;
        self.set(key, bytes);
        self.files.push((name.to_string(), key, size));
        // QEMU keeps the directory sorted by name.
        self.files.sort_by(|a, b| a.0.cmp(&b.0));
        let mut dir = (self.files.len() as u32).to_be_bytes().to_vec();
        for (n, k, s) in &self.files {
            dir.extend_from_slice(&s.to_be_bytes());
            dir.extend_from_slice(&k.to_be_bytes());
            dir.extend_from_slice(&[0, 0]);
            let mut field = [0u8; MAX_FILE_PATH];
            field[..n.len()].copy_from_slice(n.as_bytes());
            dir.extend_from_slice(&field);
        }
        self.set(key::FILE_DIR, dir);
        Ok(key)
    }

    /// Selects item `key` and rewinds it.
    pub fn select(&mut self, key: u16) {
        self.selected = Some(key & !WRITE_CHANNEL);
        self.offset = 0;
    }

    /// The next byte of the selected item (0 past its end or for an unknown item).
    pub fn read_byte(&mut self) -> u8 {
        let byte = self
            .selected
            .and_then(|k| self.items.get(&k))
            .and_then(|v| v.get(self.offset).copied());
        if byte.is_some() {
            self.offset += 1;
        }
        byte.unwrap_or(0)
    }
}

impl PortIo for FwCfg {
    fn read(&mut self, _offset: u16, data: &mut [u8]) {
        match data {
            [b] => *b = self.read_byte(),
            _ => data.fill(0xFF),
        }
    }

    fn write(&mut self, _offset: u16, data: &[u8]) -> IoAction {
        if let &[lo, hi] = data {
            self.select(u16::from_le_bytes([lo, hi]));
        }
        IoAction::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_item(f: &mut FwCfg, key: u16, len: usize) -> Vec<u8> {
        f.write(0, &key.to_le_bytes());
        (0..len)
            .map(|_| {
                let mut b = [0u8];
                f.read(1, &mut b);
                b[0]
            })
            .collect()
    }

    #[test]
    fn signature_id_ram_and_cpus() {
        let mut f = FwCfg::new(128 << 20, 1);
        assert_eq!(read_item(&mut f, key::SIGNATURE, 4), b"QEMU");
        assert_eq!(read_item(&mut f, key::ID, 4), [1, 0, 0, 0]);
        assert_eq!(
            read_item(&mut f, key::RAM_SIZE, 8),
            (128u64 << 20).to_le_bytes()
        );
        assert_eq!(read_item(&mut f, key::NB_CPUS, 2), [1, 0]);
        assert_eq!(read_item(&mut f, key::FILE_DIR, 4), [0, 0, 0, 0]);
        // Past the end, and unknown items: zeros.
        assert_eq!(read_item(&mut f, key::SIGNATURE, 6), b"QEMU\0\0");
        assert_eq!(read_item(&mut f, 0x7777, 2), [0, 0]);
        assert_eq!(read_item(&mut f, ARCH_LOCAL, 2), [0, 0]);
    }

    #[test]
    fn selecting_rewinds_and_port_0x510_reads_data_too() {
        let mut f = FwCfg::new(64 << 20, 1);
        assert_eq!(read_item(&mut f, key::SIGNATURE, 2), b"QE");
        let mut b = [0u8];
        f.read(0, &mut b);
        assert_eq!(b[0], b'M');
        assert_eq!(read_item(&mut f, key::SIGNATURE, 1), b"Q");
    }

    #[test]
    fn command_line_items() {
        let mut f = FwCfg::new(64 << 20, 1);
        f.set_cmdline(0x20000, "console=ttyS0");
        assert_eq!(read_item(&mut f, key::CMDLINE_SIZE, 4), [14, 0, 0, 0]);
        assert_eq!(read_item(&mut f, key::CMDLINE_DATA, 14), b"console=ttyS0\0");
        assert_eq!(
            read_item(&mut f, key::CMDLINE_ADDR, 4),
            0x20000u32.to_le_bytes()
        );
    }

    #[test]
    fn file_directory_is_big_endian_and_sorted() {
        let mut f = FwCfg::new(64 << 20, 1);
        assert_eq!(f.add_file("etc/b", vec![1, 2, 3]), Ok(0x20));
        assert_eq!(f.add_file("etc/a", vec![9]), Ok(0x21));
        assert!(matches!(
            f.add_file("etc/a", vec![]),
            Err(FwCfgError::Duplicate(_))
        ));
        assert!(matches!(
            f.add_file("", vec![]),
            Err(FwCfgError::BadName(_))
        ));
        assert!(matches!(
            f.add_file(&"x".repeat(56), vec![]),
            Err(FwCfgError::BadName(_))
        ));
        let dir = read_item(&mut f, key::FILE_DIR, 4 + 2 * 64);
        assert_eq!(dir[..4], [0, 0, 0, 2]);
        assert_eq!(dir[4..8], [0, 0, 0, 1], "etc/a first: size 1");
        assert_eq!(dir[8..10], [0, 0x21]);
        assert_eq!(&dir[12..17], b"etc/a");
        assert_eq!(dir[68..72], [0, 0, 0, 3]);
        assert_eq!(read_item(&mut f, 0x20, 3), [1, 2, 3]);
    }

    #[test]
    fn odd_accesses_are_total() {
        let mut f = FwCfg::new(64 << 20, 1);
        let mut d = [0u8; 4];
        f.read(1, &mut d);
        assert_eq!(d, [0xFF; 4]);
        f.read(1, &mut d[..2]);
        assert_eq!(f.write(1, &[0x12]), IoAction::Continue);
        assert_eq!(f.write(0, &[1, 2, 3, 4]), IoAction::Continue);
        // A 16-bit write with the write-channel bit still selects the item.
        assert_eq!(read_item(&mut f, WRITE_CHANNEL, 1), b"Q");
    }
}
