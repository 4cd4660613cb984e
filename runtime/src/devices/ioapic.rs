//! The I/O APIC (82093AA-style, version 0x11, 24 pins): an MMIO page at 0xFEC00000 with the
//! index register IOREGSEL at offset 0x00 and the data window IOWIN at 0x10.
//!
//! A pure register model: pins are driven with [`IoApic::set_pin`], and an unmasked pin's
//! redirection entry turns an assertion into an [`InterruptMessage`] handed to an
//! [`InterruptSink`] (the local APIC). Edge-triggered pins send one message per rising edge;
//! level-triggered pins send one while the line is asserted and remote IRR is clear, set
//! remote IRR, and send again after the local APIC's EOI for the vector ([`IoApic::eoi`]) if the
//! line is still asserted.
//!
//! Deliberate simplifications:
//! - Pin levels are logical assertions: the polarity bit is stored but not applied.
//! - Edges on a masked pin are lost (as the datasheet says); a level pin asserted while masked
//!   is delivered when unmasked.
//! - Delivery status always reads idle; arbitration ID reads as the APIC ID.
//! - Only 32-bit (or 64-bit, low half used) writes to IOWIN take effect; IOREGSEL takes any
//!   write at offset 0.
//!
//! Invariants: pin numbers and register indices are checked against the table size before any
//! indexing, so no guest value can index out of range.

/// The default MMIO base.
pub const DEFAULT_BASE: u64 = 0xFEC0_0000;
/// The size of the MMIO page.
pub const PAGE_SIZE: u64 = 0x1000;
/// Number of input pins (redirection entries).
pub const PINS: usize = 24;
/// The version register: version 0x11, maximum redirection entry 23.
pub const VERSION: u32 = 0x0011 | ((PINS as u32 - 1) << 16);

/// MMIO offsets.
const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;

/// Register indices.
const REG_ID: u8 = 0x00;
const REG_VERSION: u8 = 0x01;
const REG_ARBITRATION: u8 = 0x02;
const REG_REDIRECTION: u8 = 0x10;

/// Redirection entry: vector.
const RTE_VECTOR: u64 = 0xFF;
/// Redirection entry: delivery mode shift (bits 10:8).
const RTE_DELIVERY_SHIFT: u32 = 8;
/// Redirection entry: logical destination mode.
const RTE_LOGICAL: u64 = 1 << 11;
/// Redirection entry: remote IRR (read only).
const RTE_REMOTE_IRR: u64 = 1 << 14;
/// Redirection entry: level-triggered.
const RTE_LEVEL: u64 = 1 << 15;
/// Redirection entry: masked.
const RTE_MASKED: u64 = 1 << 16;
/// Redirection entry: destination shift (bits 63:56).
const RTE_DESTINATION_SHIFT: u32 = 56;
/// Redirection entry: the bits software can write (not delivery status or remote IRR).
const RTE_WRITABLE: u64 = 0xFF00_0000_0001_AFFF;

/// How an interrupt message is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryMode {
    /// To the listed destination(s).
    Fixed,
    /// To the lowest-priority CPU among the destinations.
    LowestPriority,
    /// System management interrupt.
    Smi,
    /// Non-maskable interrupt.
    Nmi,
    /// INIT.
    Init,
    /// External (8259A-style) interrupt: the CPU asks the PIC for the vector.
    ExtInt,
    /// A reserved encoding (3 or 6).
    Reserved,
}

impl DeliveryMode {
    /// Decodes a 3-bit delivery-mode field.
    pub fn from_bits(bits: u8) -> DeliveryMode {
        match bits & 7 {
            0 => DeliveryMode::Fixed,
            1 => DeliveryMode::LowestPriority,
            2 => DeliveryMode::Smi,
            4 => DeliveryMode::Nmi,
            5 => DeliveryMode::Init,
            7 => DeliveryMode::ExtInt,
            _ => DeliveryMode::Reserved,
        }
    }
}

/// An interrupt message on the APIC bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptMessage {
    /// The vector.
    pub vector: u8,
    /// The delivery mode.
    pub delivery: DeliveryMode,
    /// Level-triggered (its EOI must come back to the I/O APIC).
    pub level: bool,
    /// Logical (not physical) destination mode.
    pub logical: bool,
    /// The destination APIC ID or logical mask.
    pub destination: u8,
}

/// Where the I/O APIC sends interrupt messages (the local APIC).
pub trait InterruptSink {
    /// Receives one message; the sink decides whether it is addressed to it.
    fn deliver(&mut self, msg: InterruptMessage);
}

/// The I/O APIC.
#[derive(Clone, Debug)]
pub struct IoApic {
    id: u8,
    select: u8,
    redirection: [u64; PINS],
    /// Asserted pins (bit per pin).
    asserted: u32,
    /// Messages sent over the VM's life.
    messages: u64,
}

impl Default for IoApic {
    fn default() -> Self {
        IoApic::new()
    }
}

impl IoApic {
    /// An I/O APIC with ID 0 and every pin masked.
    pub fn new() -> IoApic {
        IoApic {
            id: 0,
            select: 0,
            redirection: [RTE_MASKED; PINS],
            asserted: 0,
            messages: 0,
        }
    }

    /// Sends `pin`'s message if its entry and line say so.
    fn service(&mut self, pin: usize, sink: &mut impl InterruptSink, edge: bool) {
        let Some(&entry) = self.redirection.get(pin) else {
            return;
        };
        if entry & RTE_MASKED != 0 {
            return;
        }
        let level = entry & RTE_LEVEL != 0;
        if level {
            if self.asserted & (1 << pin) == 0 || entry & RTE_REMOTE_IRR != 0 {
                return;
            }
            self.redirection[pin] |= RTE_REMOTE_IRR;
        } else if !edge {
            return;
        }
        self.messages = self.messages.saturating_add(1);
        sink.deliver(InterruptMessage {
            vector: (entry & RTE_VECTOR) as u8,
            delivery: DeliveryMode::from_bits((entry >> RTE_DELIVERY_SHIFT) as u8),
            level,
            logical: entry & RTE_LOGICAL != 0,
            destination: (entry >> RTE_DESTINATION_SHIFT) as u8,
        });
    }

    /// Drives input `pin` (0–23; others are ignored) to `level`.
    pub fn set_pin(&mut self, pin: u8, level: bool, sink: &mut impl InterruptSink) {
        let pin = usize::from(pin);
        if pin >= PINS {
            return;
        }
        let bit = 1u32 << pin;
        let rising = level && self.asserted & bit == 0;
        if level {
            self.asserted |= bit;
        } else {
            self.asserted &= !bit;
        }
        if level {
            self.service(pin, sink, rising);
        }
    }

    /// The local APIC retired level-triggered `vector`: clears remote IRR of the pins using it
    /// and redelivers those whose line is still asserted.
    pub fn eoi(&mut self, vector: u8, sink: &mut impl InterruptSink) {
        for pin in 0..PINS {
            let entry = self.redirection[pin];
            if entry & RTE_LEVEL != 0
                && entry & RTE_REMOTE_IRR != 0
                && (entry & RTE_VECTOR) as u8 == vector
            {
                self.redirection[pin] &= !RTE_REMOTE_IRR;
                self.service(pin, sink, false);
            }
        }
    }

    /// The redirection entry of `pin` (0 for a pin that does not exist).
    pub fn redirection(&self, pin: usize) -> u64 {
        self.redirection.get(pin).copied().unwrap_or(0)
    }

    /// Messages sent so far.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// Reads indirect register `index`.
    pub fn read_register(&self, index: u8) -> u32 {
        match index {
            REG_ID => u32::from(self.id) << 24,
            REG_VERSION => VERSION,
            REG_ARBITRATION => u32::from(self.id) << 24,
            _ => {
                let i = usize::from(index.wrapping_sub(REG_REDIRECTION));
                match self.redirection.get(i / 2) {
                    Some(&e) if index >= REG_REDIRECTION => (e >> (32 * (i % 2))) as u32,
                    _ => 0,
                }
            }
        }
    }

    /// Writes indirect register `index`.
    pub fn write_register(&mut self, index: u8, value: u32, sink: &mut impl InterruptSink) {
        match index {
            REG_ID => self.id = ((value >> 24) & 0xF) as u8,
            REG_VERSION | REG_ARBITRATION => {} // Read-only.
            _ if index >= REG_REDIRECTION => {
                let i = usize::from(index - REG_REDIRECTION);
                let pin = i / 2;
                let Some(&old) = self.redirection.get(pin) else {
                    return;
                };
                let shift = 32 * (i % 2);
                let merged = (old & !(0xFFFF_FFFF << shift)) | (u64::from(value) << shift);
                let mut entry = merged & RTE_WRITABLE | old & RTE_REMOTE_IRR;
                if entry & RTE_LEVEL == 0 {
                    entry &= !RTE_REMOTE_IRR;
                }
                self.redirection[pin] = entry;
                self.service(pin, sink, false);
            }
            _ => {}
        }
    }

    /// An MMIO read of `size` bytes at `offset` into the page: IOREGSEL at 0x00, IOWIN at 0x10,
    /// zeros elsewhere.
    pub fn mmio_read(&self, offset: u64, size: u8) -> u64 {
        let mut value = 0u64;
        for i in 0..u64::from(size.min(8)) {
            let byte = match offset.checked_add(i) {
                Some(IOREGSEL) => self.select,
                Some(off @ IOWIN..=0x13) => {
                    (self.read_register(self.select) >> ((off - IOWIN) * 8)) as u8
                }
                _ => 0,
            };
            value |= u64::from(byte) << (i * 8);
        }
        value
    }

    /// An MMIO write of `size` bytes at `offset`: any write at 0x00 selects a register; 4- or
    /// 8-byte writes at 0x10 write it; anything else is ignored.
    pub fn mmio_write(&mut self, offset: u64, size: u8, value: u64, sink: &mut impl InterruptSink) {
        match offset {
            IOREGSEL if size != 0 => self.select = value as u8,
            IOWIN if matches!(size, 4 | 8) => self.write_register(self.select, value as u32, sink),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records messages.
    #[derive(Default)]
    struct Log(Vec<InterruptMessage>);
    impl InterruptSink for Log {
        fn deliver(&mut self, msg: InterruptMessage) {
            self.0.push(msg);
        }
    }

    fn program(io: &mut IoApic, pin: u8, entry: u64, log: &mut Log) {
        io.mmio_write(IOREGSEL, 4, u64::from(REG_REDIRECTION + 2 * pin + 1), log);
        io.mmio_write(IOWIN, 4, entry >> 32, log);
        io.mmio_write(IOREGSEL, 4, u64::from(REG_REDIRECTION + 2 * pin), log);
        io.mmio_write(IOWIN, 4, entry & 0xFFFF_FFFF, log);
    }

    fn read(io: &mut IoApic, index: u8) -> u32 {
        io.mmio_write(IOREGSEL, 1, u64::from(index), &mut Log::default());
        io.mmio_read(IOWIN, 4) as u32
    }

    #[test]
    fn identification_registers() {
        let mut io = IoApic::new();
        assert_eq!(read(&mut io, REG_VERSION), 0x0017_0011);
        io.mmio_write(IOREGSEL, 4, 0, &mut Log::default());
        io.mmio_write(IOWIN, 4, 0x0F00_0000, &mut Log::default());
        assert_eq!(read(&mut io, REG_ID), 0x0F00_0000);
        assert_eq!(read(&mut io, REG_ARBITRATION), 0x0F00_0000);
        assert_eq!(io.mmio_read(IOREGSEL, 4), u64::from(REG_ARBITRATION));
        assert_eq!(read(&mut io, 0x10), 0x1_0000, "pin 0 masked at reset");
        assert_eq!(read(&mut io, 0x3F), 0, "entry 23 high half");
        assert_eq!(read(&mut io, 0x40), 0, "past the table");
        assert_eq!(read(&mut io, 0xFF), 0);
    }

    #[test]
    fn edge_pin_delivers_on_rising_edges_only() {
        let mut io = IoApic::new();
        let mut log = Log::default();
        io.set_pin(4, true, &mut log);
        io.set_pin(4, false, &mut log);
        assert!(log.0.is_empty(), "masked at reset: the edge is lost");
        program(&mut io, 4, 0x0300_0000_0000_0034, &mut log);
        assert!(log.0.is_empty());
        io.set_pin(4, true, &mut log);
        io.set_pin(4, true, &mut log);
        io.set_pin(4, false, &mut log);
        assert_eq!(
            log.0,
            [InterruptMessage {
                vector: 0x34,
                delivery: DeliveryMode::Fixed,
                level: false,
                logical: false,
                destination: 3,
            }]
        );
        assert_eq!(io.messages(), 1);
    }

    #[test]
    fn level_pin_remote_irr_and_eoi() {
        let mut io = IoApic::new();
        let mut log = Log::default();
        // Level, logical, lowest priority, vector 0x41, destination mask 1.
        program(
            &mut io,
            9,
            0x0100_0000_0000_0000 | RTE_LEVEL | RTE_LOGICAL | 0x141,
            &mut log,
        );
        io.set_pin(9, true, &mut log);
        assert_eq!(log.0.len(), 1);
        assert_eq!(log.0[0].delivery, DeliveryMode::LowestPriority);
        assert!(log.0[0].level && log.0[0].logical);
        assert_ne!(io.redirection(9) & RTE_REMOTE_IRR, 0);
        io.set_pin(9, true, &mut log);
        assert_eq!(log.0.len(), 1, "remote IRR blocks");
        io.eoi(0x42, &mut log);
        assert_eq!(log.0.len(), 1, "another vector's EOI");
        io.eoi(0x41, &mut log);
        assert_eq!(log.0.len(), 2, "still asserted: sent again");
        io.set_pin(9, false, &mut log);
        io.eoi(0x41, &mut log);
        assert_eq!(log.0.len(), 2);
        assert_eq!(io.redirection(9) & RTE_REMOTE_IRR, 0);
        // Remote IRR is read-only.
        io.mmio_write(IOREGSEL, 4, u64::from(REG_REDIRECTION + 18), &mut log);
        io.mmio_write(IOWIN, 4, RTE_LEVEL | RTE_REMOTE_IRR | 0x41, &mut log);
        assert_eq!(io.redirection(9) & RTE_REMOTE_IRR, 0);
    }

    #[test]
    fn unmasking_an_asserted_level_pin_delivers() {
        let mut io = IoApic::new();
        let mut log = Log::default();
        program(&mut io, 11, RTE_MASKED | RTE_LEVEL | 0x50, &mut log);
        io.set_pin(11, true, &mut log);
        assert!(log.0.is_empty());
        program(&mut io, 11, RTE_LEVEL | 0x50, &mut log);
        assert_eq!(log.0.len(), 1);
        assert_eq!(log.0[0].vector, 0x50);
    }

    #[test]
    fn odd_accesses_and_bad_pins_are_harmless() {
        let mut io = IoApic::new();
        let mut log = Log::default();
        program(&mut io, 1, 0x30, &mut log);
        io.mmio_write(IOREGSEL, 1, u64::from(REG_REDIRECTION + 2), &mut log);
        io.mmio_write(IOWIN, 2, 0x31, &mut log);
        io.mmio_write(IOWIN + 1, 4, 0x31, &mut log);
        io.mmio_write(u64::MAX, 8, 0x31, &mut log);
        assert_eq!(io.redirection(1), 0x30);
        assert_eq!(io.mmio_read(IOWIN + 1, 1), 0);
        assert_eq!(io.mmio_read(IOWIN, 1), 0x30);
        assert_eq!(io.mmio_read(0x20, 8), 0);
        assert_eq!(io.mmio_read(u64::MAX, 8), 0);
        io.set_pin(24, true, &mut log);
        io.set_pin(255, true, &mut log);
        for index in 0..=255u8 {
            io.write_register(index, u32::MAX, &mut log);
            let _ = io.read_register(index);
        }
        assert_eq!(io.redirection(24), 0);
    }
}
