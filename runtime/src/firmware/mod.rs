//! What firmware leaves behind for a kernel booted the way QEMU's direct kernel boot does:
//! the ACPI tables ([`acpi`], with the AML of [`aml`]) in the BIOS area, the BIOS data area
//! words a kernel reads ([`bda`]), and QEMU's fw_cfg interface ([`fw_cfg`]).
//!
//! Nothing here writes guest memory: builders return bytes and where they go, and the loader
//! that uses them writes them after it has validated everything else.

pub mod acpi;
pub mod aml;
pub mod fw_cfg;

pub use acpi::{AcpiConfig, AcpiTables};
pub use fw_cfg::FwCfg;

/// The BIOS data area (BDA) words that kernels read on a PC with a BIOS.
pub mod bda {
    /// Guest-physical address of the EBDA segment word (the EBDA starts at segment << 4).
    pub const EBDA_SEGMENT_ADDR: u64 = 0x40E;
    /// Guest-physical address of the base-memory size word, in KiB.
    pub const BASE_MEMORY_KIB_ADDR: u64 = 0x413;
    /// Where the EBDA starts: the end of conventional memory, as SeaBIOS leaves it.
    pub const EBDA_START: u64 = 0x9_FC00;

    /// The BDA bytes to write, as `(address, bytes)`: the EBDA segment (0x9FC0) and 639 KiB
    /// of base memory. Linux's decompressor places its 5-level paging trampoline below
    /// the smaller of the two.
    pub fn words() -> [(u64, [u8; 2]); 2] {
        [
            (EBDA_SEGMENT_ADDR, ((EBDA_START >> 4) as u16).to_le_bytes()),
            (
                BASE_MEMORY_KIB_ADDR,
                ((EBDA_START >> 10) as u16).to_le_bytes(),
            ),
        ]
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn seabios_values() {
            let w = super::words();
            assert_eq!(w[0], (0x40E, [0xC0, 0x9F]));
            assert_eq!(w[1], (0x413, [0x7F, 0x02]));
        }
    }
}
