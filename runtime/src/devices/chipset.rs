//! The PC chipset's port devices beyond the interrupt controllers and timers, attached to
//! the port bus together: the ACPI PM registers, the PCI host bridge with the reset control
//! register, the i8042 and QEMU's fw_cfg. This is what QEMU's `pc` machine puts behind the
//! ports Linux probes, and what the firmware tables ([`crate::firmware::acpi`]) describe.

use super::acpi_pm::{AcpiPm, PM_PORTS};
use super::i8042::{I8042, I8042_PORTS};
use super::pci::{PciHost, PCI_PORTS};
use super::{BusError, DeviceId, PortBus};
use crate::firmware::fw_cfg::{FwCfg, FW_CFG_PORTS};
use crate::tsc::Clock;

/// Handles of the chipset devices on their bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chipset {
    /// The ACPI PM registers ([`AcpiPm`]).
    pub pm: DeviceId,
    /// The PCI host bridge and reset control register ([`PciHost`]).
    pub pci: DeviceId,
    /// The keyboard controller ([`I8042`]).
    pub i8042: DeviceId,
    /// The firmware configuration device ([`FwCfg`]).
    pub fw_cfg: DeviceId,
}

impl Chipset {
    /// Attaches the devices to `bus`; the PM timer reads `clock`; fw_cfg describes
    /// `ram_bytes` of RAM and one CPU.
    pub fn attach(bus: &mut PortBus, clock: Clock, ram_bytes: u64) -> Result<Chipset, BusError> {
        Ok(Chipset {
            pm: bus.register(PM_PORTS, Box::new(AcpiPm::new(clock)))?,
            pci: bus.register(PCI_PORTS, Box::new(PciHost::new()))?,
            i8042: bus.register(I8042_PORTS, Box::new(I8042::new()))?,
            fw_cfg: bus.register(FW_CFG_PORTS, Box::new(FwCfg::new(ram_bytes, 1)))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::IoAction;

    #[test]
    fn the_devices_answer_on_their_ports() {
        let mut bus = PortBus::new();
        let c = Chipset::attach(&mut bus, crate::tsc::VirtualTsc::new().clock(), 64 << 20).unwrap();
        assert!(bus.device::<FwCfg>(c.fw_cfg).is_some());
        assert!(bus.device::<AcpiPm>(c.pm).is_some());
        bus.write(0x510, 2, 0);
        assert_eq!(bus.read(0x511, 1), u64::from(b'Q'));
        assert_eq!(bus.read(0x604, 2) & 1, 1, "SCI_EN");
        assert_eq!(bus.write(0x604, 2, 1 << 13), IoAction::PowerOff);
        assert_eq!(bus.write(0xCF9, 1, 6), IoAction::Reset);
        assert_eq!(bus.write(0x64, 1, 0xFE), IoAction::Reset);
        bus.write(0xCF8, 4, 0x8000_0000);
        assert_eq!(bus.read(0xCFC, 4), 0x1237_8086);
        assert_eq!(bus.stats().unclaimed_reads, 0);
    }
}
