//! PCI configuration mechanism #1 on ports 0xCF8–0xCFF with one device behind it, an Intel
//! 440FX host bridge (8086:1237, class 06/00/00) at bus 0, device 0, function 0, and the
//! chipset's reset control register at 0xCF9, which shares the range as on PIIX and ICH9.
//!
//! - 0xCF8 (32-bit accesses only): CONFIG_ADDRESS, read back as written (bits 1:0 and
//!   30:24 read 0), which is how a kernel detects mechanism #1.
//! - 0xCFC–0xCFF (1, 2 or 4 bytes): the configuration dword CONFIG_ADDRESS selects, at byte
//!   `port & 3`, when its enable bit (31) is set. The host bridge's 256-byte header is
//!   read-only here (writes, BARs included, are ignored); every other bus/device/function
//!   reads all ones, as an empty slot does.
//! - 0xCF9 (8-bit accesses only): the reset control register. Writing a value with bit 2
//!   (reset CPU) set resets the machine ([`IoAction::Reset`]); bit 1 (system reset type)
//!   is kept and read back, as QEMU's PIIX does.
//!
//! Any other access inside the range reads all ones and is ignored. Invariants: accesses of
//! any width at any offset are total; the configuration space is never written.

use super::{IoAction, PortIo, PortRange};

/// The ports of the host bridge.
pub const PCI_PORTS: PortRange = PortRange {
    base: 0xCF8,
    len: 8,
};
/// The reset control register's port.
pub const RESET_CONTROL_PORT: u16 = 0xCF9;
/// Reset control: reset the CPU.
pub const RCR_RESET_CPU: u8 = 1 << 2;
/// Reset control: full (system) reset rather than a soft CPU reset.
const RCR_SYS_RESET: u8 = 1 << 1;
/// The value the FADT's reset register writes (system reset | reset CPU).
pub const RESET_VALUE: u8 = RCR_SYS_RESET | RCR_RESET_CPU;

/// CONFIG_ADDRESS bits that exist: enable, bus, device, function, dword register.
const ADDRESS_MASK: u32 = 0x80FF_FFFC;
const ENABLE: u32 = 1 << 31;

/// Offset of the reset control register in the range.
const RCR: u16 = RESET_CONTROL_PORT - 0xCF8;
/// Offset of CONFIG_DATA.
const DATA: u16 = 4;

/// The host bridge and its configuration mechanism.
#[derive(Debug)]
pub struct PciHost {
    address: u32,
    reset_control: u8,
    /// The host bridge's configuration header.
    config: [u8; 256],
}

impl Default for PciHost {
    fn default() -> Self {
        PciHost::new()
    }
}

impl PciHost {
    /// The host bridge, as QEMU's `pc` machine presents it.
    pub fn new() -> PciHost {
        let mut config = [0u8; 256];
        let mut put =
            |off: usize, bytes: &[u8]| config[off..off + bytes.len()].copy_from_slice(bytes);
        put(0x00, &0x8086u16.to_le_bytes()); // vendor: Intel
        put(0x02, &0x1237u16.to_le_bytes()); // device: 82441FX (440FX)
        put(0x04, &0x0006u16.to_le_bytes()); // command: memory space, bus master
        put(0x06, &0x0280u16.to_le_bytes()); // status: fast back-to-back, medium DEVSEL
        put(0x08, &[0x02, 0x00, 0x00, 0x06]); // revision 2, class 06/00/00 (host bridge)
        put(0x0E, &[0x00]); // header type 0, single function
        put(0x2C, &0x1AF4u16.to_le_bytes()); // subsystem vendor (as QEMU)
        put(0x2E, &0x1100u16.to_le_bytes()); // subsystem
        PciHost {
            address: 0,
            reset_control: 0,
            config,
        }
    }

    /// The byte at `offset` of the configuration space CONFIG_ADDRESS selects, if enabled.
    fn config_byte(&self, offset: u16) -> u8 {
        let a = self.address;
        let (bus, devfn) = ((a >> 16) & 0xFF, (a >> 8) & 0xFF);
        if a & ENABLE == 0 || bus != 0 || devfn != 0 {
            return 0xFF;
        }
        let reg = (a & 0xFC) as usize + usize::from(offset & 3);
        self.config.get(reg).copied().unwrap_or(0xFF)
    }
}

impl PortIo for PciHost {
    fn read(&mut self, offset: u16, data: &mut [u8]) {
        match (offset, data.len()) {
            (0, 4) => data.copy_from_slice(&self.address.to_le_bytes()),
            (RCR, 1) => data[0] = self.reset_control,
            (DATA..=7, _) => {
                for (i, b) in data.iter_mut().enumerate() {
                    let off = offset.saturating_add(i as u16);
                    *b = if off <= 7 {
                        self.config_byte(off)
                    } else {
                        0xFF
                    };
                }
            }
            _ => data.fill(0xFF),
        }
    }

    fn write(&mut self, offset: u16, data: &[u8]) -> IoAction {
        match (offset, data) {
            (0, &[a, b, c, d]) => self.address = u32::from_le_bytes([a, b, c, d]) & ADDRESS_MASK,
            (RCR, &[v]) => {
                self.reset_control = v & RCR_SYS_RESET;
                if v & RCR_RESET_CPU != 0 {
                    return IoAction::Reset;
                }
            }
            // CONFIG_DATA writes and anything else: ignored (read-only host bridge).
            _ => {}
        }
        IoAction::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn select(p: &mut PciHost, bus: u32, dev: u32, func: u32, reg: u32) {
        let a = ENABLE | bus << 16 | dev << 11 | func << 8 | reg;
        p.write(0, &a.to_le_bytes());
    }

    fn read(p: &mut PciHost, offset: u16, size: usize) -> u32 {
        let mut d = [0u8; 4];
        p.read(offset, &mut d[..size]);
        u32::from_le_bytes(d)
    }

    #[test]
    fn mechanism_one_is_detected() {
        // Linux's pci_check_type1: write 0x80000000, read it back.
        let mut p = PciHost::new();
        p.write(0, &0x8000_0000u32.to_le_bytes());
        assert_eq!(read(&mut p, 0, 4), 0x8000_0000);
        p.write(0, &0xFFFF_FFFFu32.to_le_bytes());
        assert_eq!(read(&mut p, 0, 4), ADDRESS_MASK);
        // Narrow accesses do not reach CONFIG_ADDRESS.
        p.write(0, &[0, 0]);
        assert_eq!(read(&mut p, 0, 4), ADDRESS_MASK);
        assert_eq!(read(&mut p, 0, 2), 0xFFFF);
    }

    #[test]
    fn host_bridge_at_00_0_and_nothing_else() {
        let mut p = PciHost::new();
        select(&mut p, 0, 0, 0, 0);
        assert_eq!(read(&mut p, DATA, 4), 0x1237_8086);
        assert_eq!(read(&mut p, DATA + 2, 2), 0x1237);
        select(&mut p, 0, 0, 0, 8);
        assert_eq!(read(&mut p, DATA, 4) >> 8, 0x06_0000, "class: host bridge");
        assert_eq!(read(&mut p, DATA + 3, 1), 0x06);
        for (bus, dev, func) in [(0, 1, 0), (0, 0, 1), (1, 0, 0), (0, 31, 7), (255, 0, 0)] {
            select(&mut p, bus, dev, func, 0);
            assert_eq!(read(&mut p, DATA, 4), 0xFFFF_FFFF, "{bus}:{dev}.{func}");
        }
        // Disabled: all ones.
        p.write(0, &0u32.to_le_bytes());
        assert_eq!(read(&mut p, DATA, 4), 0xFFFF_FFFF);
    }

    #[test]
    fn bar_writes_are_ignored() {
        let mut p = PciHost::new();
        select(&mut p, 0, 0, 0, 0x10);
        p.write(DATA, &0xFFFF_FFFFu32.to_le_bytes());
        assert_eq!(read(&mut p, DATA, 4), 0);
        select(&mut p, 0, 0, 0, 0);
        p.write(DATA, &0u32.to_le_bytes());
        assert_eq!(read(&mut p, DATA, 4), 0x1237_8086);
    }

    #[test]
    fn reset_control_register() {
        let mut p = PciHost::new();
        assert_eq!(p.write(RCR, &[RCR_SYS_RESET]), IoAction::Continue);
        assert_eq!(read(&mut p, RCR, 1), u32::from(RCR_SYS_RESET));
        assert_eq!(p.write(RCR, &[RESET_VALUE]), IoAction::Reset);
        assert_eq!(p.write(RCR, &[0x0E]), IoAction::Reset);
        assert_eq!(p.write(RCR, &[0x0F]), IoAction::Reset);
        // A 16-bit write at 0xCF9 is not the reset register.
        assert_eq!(p.write(RCR, &[0x06, 0]), IoAction::Continue);
    }

    #[test]
    fn odd_accesses_are_total() {
        let mut p = PciHost::new();
        select(&mut p, 0, 0, 0, 0xFC);
        for off in 0..12u16 {
            for size in [1usize, 2, 4] {
                let _ = read(&mut p, off, size);
                let _ = p.write(off, &[0u8; 4][..size]);
            }
        }
        // A 4-byte read at 0xCFE runs past the range: the tail reads all ones.
        select(&mut p, 0, 0, 0, 0);
        assert_eq!(read(&mut p, 6, 4), 0xFFFF_1237);
    }
}
