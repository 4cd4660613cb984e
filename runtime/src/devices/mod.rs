//! Devices and the port-I/O bus.
//!
//! Devices are register models behind the small [`PortIo`] trait: they see an offset into
//! their own port range and the bytes of one access, and know nothing of the bus, the CPU or
//! threads. The [`PortBus`] routes an access to the device whose range holds its first port.
//!
//! Invariants:
//! - Device ranges never overlap (checked by [`PortBus::register`]).
//! - Unclaimed ports read as all ones and ignore writes; both are counted.

pub mod acpi_pm;
pub mod chipset;
pub mod debug_exit;
pub mod i8042;
pub mod ioapic;
pub mod lapic;
pub mod pci;
pub mod pic;
pub mod pit;
pub mod platform;
pub mod rtc;
pub mod serial;

pub use acpi_pm::AcpiPm;
pub use chipset::Chipset;
pub use debug_exit::DebugExit;
pub use i8042::I8042;
pub use ioapic::IoApic;
pub use lapic::LocalApic;
pub use pci::PciHost;
pub use pic::PicPair;
pub use pit::Pit;
pub use platform::{InterruptStats, Platform};
pub use rtc::Rtc;
pub use serial::{IrqLatch, Serial, SerialSink};

use std::any::Any;

/// What the VM should do after a port write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoAction {
    /// Nothing special: the guest continues.
    Continue,
    /// Stop the VM; the guest wrote `value` to an exit device.
    Exit(u32),
    /// The guest asked the board to power off (ACPI S5 through PM1 control).
    PowerOff,
    /// The guest asked the board to reset (the reset control register 0xCF9, the i8042's
    /// reset line, the ACPI reset register).
    Reset,
}

/// A device reached through port I/O (IN/OUT).
pub trait PortIo: Any + Send {
    /// A read of `data.len()` bytes (1, 2 or 4) at `offset` into the device's range. The
    /// device fills `data` (little-endian).
    fn read(&mut self, offset: u16, data: &mut [u8]);
    /// A write of `data` (1, 2 or 4 bytes, little-endian) at `offset` into the device's range.
    fn write(&mut self, offset: u16, data: &[u8]) -> IoAction;
}

/// An inclusive-exclusive range of I/O ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub base: u16,
    /// Number of ports (at least 1).
    pub len: u16,
}

impl PortRange {
    /// Whether `port` is in the range.
    pub fn contains(self, port: u16) -> bool {
        port.wrapping_sub(self.base) < self.len
    }

    fn overlaps(self, other: PortRange) -> bool {
        let (a0, a1) = (self.base as u32, self.base as u32 + self.len as u32);
        let (b0, b1) = (other.base as u32, other.base as u32 + other.len as u32);
        a0 < b1 && b0 < a1
    }
}

/// Errors of bus configuration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    /// Port range {0:?} overlaps a device already on the bus, or is empty.
    #[error("port range {0:?} overlaps a device already on the bus, or is empty")]
    Overlap(PortRange),
}

/// Counters of the port bus.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BusStats {
    /// Reads of ports no device claims.
    pub unclaimed_reads: u64,
    /// Writes to ports no device claims.
    pub unclaimed_writes: u64,
}

/// Handle of a device on a [`PortBus`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceId(usize);

/// Routes port accesses to devices.
#[derive(Default)]
pub struct PortBus {
    devices: Vec<(PortRange, Box<dyn PortIo>)>,
    stats: BusStats,
}

impl PortBus {
    /// An empty bus.
    pub fn new() -> PortBus {
        PortBus::default()
    }

    /// Attaches `dev` at `range`.
    pub fn register(
        &mut self,
        range: PortRange,
        dev: Box<dyn PortIo>,
    ) -> Result<DeviceId, BusError> {
        if range.len == 0 || self.devices.iter().any(|(r, _)| r.overlaps(range)) {
            return Err(BusError::Overlap(range));
        }
        self.devices.push((range, dev));
        Ok(DeviceId(self.devices.len() - 1))
    }

    /// The device `id`, if it is a `T`.
    pub fn device<T: PortIo>(&self, id: DeviceId) -> Option<&T> {
        let dev: &dyn Any = &*self.devices.get(id.0)?.1;
        dev.downcast_ref()
    }

    /// The device `id`, if it is a `T`, mutably.
    pub fn device_mut<T: PortIo>(&mut self, id: DeviceId) -> Option<&mut T> {
        let dev: &mut dyn Any = &mut *self.devices.get_mut(id.0)?.1;
        dev.downcast_mut()
    }

    fn find(&mut self, port: u16) -> Option<(u16, &mut dyn PortIo)> {
        self.devices
            .iter_mut()
            .find(|(r, _)| r.contains(port))
            .map(|(r, d)| (port - r.base, &mut **d))
    }

    /// IN of `size` bytes (1, 2 or 4; anything else is treated as 4) from `port`; the value is
    /// zero-extended.
    pub fn read(&mut self, port: u16, size: usize) -> u64 {
        let size = io_size(size);
        let mut data = [0xFFu8; 4];
        match self.find(port) {
            Some((off, dev)) => dev.read(off, &mut data[..size]),
            None => self.stats.unclaimed_reads += 1,
        }
        let mut b = [0u8; 8];
        b[..size].copy_from_slice(&data[..size]);
        u64::from_le_bytes(b)
    }

    /// OUT of the low `size` bytes (1, 2 or 4) of `value` to `port`.
    pub fn write(&mut self, port: u16, size: usize, value: u64) -> IoAction {
        let size = io_size(size);
        let bytes = (value as u32).to_le_bytes();
        match self.find(port) {
            Some((off, dev)) => dev.write(off, &bytes[..size]),
            None => {
                self.stats.unclaimed_writes += 1;
                IoAction::Continue
            }
        }
    }

    /// The bus counters.
    pub fn stats(&self) -> BusStats {
        self.stats
    }
}

fn io_size(size: usize) -> usize {
    match size {
        1 | 2 => size,
        _ => 4,
    }
}

/// The POST diagnostic port (0x80): writes are kept as the last POST code, reads return all
/// ones, as on a board without a POST card.
#[derive(Debug, Default)]
pub struct PostCode {
    /// The last byte written.
    pub last: Option<u8>,
}

impl PortIo for PostCode {
    fn read(&mut self, _offset: u16, data: &mut [u8]) {
        data.fill(0xFF);
    }
    fn write(&mut self, _offset: u16, data: &[u8]) -> IoAction {
        self.last = data.first().copied();
        IoAction::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes seen by a [`Probe`]: (offset, bytes).
    type WriteLog = std::sync::Arc<std::sync::Mutex<Vec<(u16, Vec<u8>)>>>;

    /// Reads return the offset; writes are logged.
    #[derive(Default)]
    struct Probe(WriteLog);
    impl PortIo for Probe {
        fn read(&mut self, offset: u16, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&mut self, offset: u16, data: &[u8]) -> IoAction {
            self.0.lock().unwrap().push((offset, data.to_vec()));
            IoAction::Continue
        }
    }

    #[test]
    fn routes_by_range_and_counts_unclaimed() {
        let log = WriteLog::default();
        let mut bus = PortBus::new();
        bus.register(
            PortRange {
                base: 0x100,
                len: 4,
            },
            Box::new(Probe(std::sync::Arc::clone(&log))),
        )
        .unwrap();
        assert_eq!(bus.read(0x102, 1), 2);
        assert_eq!(bus.read(0x101, 2), 0x0101);
        assert_eq!(bus.write(0x103, 2, 0xABCD), IoAction::Continue);
        assert_eq!(log.lock().unwrap()[0], (3, vec![0xCD, 0xAB]));
        assert_eq!(bus.read(0x104, 4), 0xFFFF_FFFF);
        assert_eq!(bus.read(0x99, 1), 0xFF);
        bus.write(0x200, 1, 7);
        assert_eq!(
            bus.stats(),
            BusStats {
                unclaimed_reads: 2,
                unclaimed_writes: 1
            }
        );
    }

    #[test]
    fn overlapping_or_empty_ranges_are_refused() {
        let mut bus = PortBus::new();
        bus.register(
            PortRange {
                base: 0x3F8,
                len: 8,
            },
            Box::new(PostCode::default()),
        )
        .unwrap();
        let r = PortRange {
            base: 0x3FF,
            len: 1,
        };
        assert_eq!(
            bus.register(r, Box::new(PostCode::default())),
            Err(BusError::Overlap(r))
        );
        let r = PortRange { base: 0x10, len: 0 };
        assert!(bus.register(r, Box::new(PostCode::default())).is_err());
        let top = PortRange {
            base: 0xFFFF,
            len: 1,
        };
        bus.register(top, Box::new(PostCode::default())).unwrap();
        assert_eq!(bus.read(0xFFFF, 1), 0xFF);
    }

    #[test]
    fn post_port_keeps_the_code() {
        let mut p = PostCode::default();
        assert_eq!(p.write(0, &[0x42]), IoAction::Continue);
        assert_eq!(p.last, Some(0x42));
        let mut d = [0u8; 2];
        p.read(0, &mut d);
        assert_eq!(d, [0xFF, 0xFF]);
    }
}
