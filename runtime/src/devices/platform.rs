//! The PC's interrupt-related platform devices as one unit the run loop talks to: the 8259A
//! pair, the 8254 PIT (with port 0x61), the CMOS RTC, the local APIC, the I/O APIC and COM1's
//! interrupt line.
//!
//! Wiring, as on a PC (QEMU's `pc` machine):
//! - ISA IRQ n goes to PIC input n and to I/O APIC pin n, except IRQ0 (the PIT), which goes
//!   to I/O APIC pin 2. PIT channel 0 edges, RTC IRQF edges and COM1 triggers are pulses
//!   on IRQ0, IRQ8 and IRQ4.
//! - The PIC's INTR reaches the CPU through LAPIC LINT0 when it is ExtINT and unmasked (the
//!   firmware's virtual-wire mode, the reset state), or directly when the LAPIC is globally
//!   disabled. I/O APIC messages go to the LAPIC; its EOIs of level-triggered vectors are
//!   broadcast back to the I/O APIC.
//!
//! Time: every call that can observe time takes `now_ns`, the virtual TSC (1 GHz, so ns ==
//! ticks). The run loop calls [`Platform::update`] at block boundaries, asks
//! [`Platform::has_interrupt`] (and checks RFLAGS.IF itself), runs the INTA cycle with
//! [`Platform::acknowledge`], and sleeps in HLT until [`Platform::next_wake_ns`].
//!
//! Invariants: the platform never reads host time or spawns threads; port and MMIO accesses
//! of any size and alignment are total (no guest value can panic the host); ports it does not
//! claim return `None`/false so the caller can fall back to the port bus.

use super::ioapic::{self, IoApic};
use super::lapic::{self, LocalApic};
use super::pic::PicPair;
use super::pit::Pit;
use super::rtc::Rtc;
use super::serial::{IrqLatch, COM1_IRQ};

/// The PIT's ISA line.
pub const PIT_IRQ: u8 = 0;
/// The RTC's ISA line.
pub const RTC_IRQ: u8 = 8;
/// The I/O APIC pin of ISA IRQ0 (the PIT), as on QEMU's pc machine.
pub const PIT_IOAPIC_PIN: u8 = 2;

/// Interrupt counters, for `--stats`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterruptStats {
    /// INTA cycles that produced a vector.
    pub acknowledged: u64,
    /// Acknowledged interrupts per vector.
    pub per_vector: [u64; 256],
}

impl Default for InterruptStats {
    fn default() -> Self {
        InterruptStats {
            acknowledged: 0,
            per_vector: [0; 256],
        }
    }
}

/// The platform devices.
#[derive(Clone, Debug)]
pub struct Platform {
    pic: PicPair,
    pit: Pit,
    rtc: Rtc,
    lapic: LocalApic,
    ioapic: IoApic,
    com1: IrqLatch,
    stats: InterruptStats,
}

/// Normalizes a port access size: 1 or 2 stay, anything else is 4.
fn io_size(size: u8) -> u16 {
    match size {
        1 | 2 => u16::from(size),
        _ => 4,
    }
}

impl Platform {
    /// The devices in their post-firmware state: PIC uninitialized and masked, PIT channel 0
    /// at 18.2 Hz, the RTC showing `wall_clock_unix_secs` at virtual time 0 with CMOS memory
    /// describing `ram_bytes`, the LAPIC enabled in virtual-wire mode at 0xFEE00000, every
    /// I/O APIC pin masked. COM1's line is a fresh latch (see [`Platform::attach_com1`]).
    pub fn new(ram_bytes: u64, wall_clock_unix_secs: u64) -> Platform {
        Platform {
            pic: PicPair::new(),
            pit: Pit::new(),
            rtc: Rtc::new(ram_bytes, wall_clock_unix_secs),
            lapic: LocalApic::new(),
            ioapic: IoApic::new(),
            com1: IrqLatch::new(),
            stats: InterruptStats::default(),
        }
    }

    /// Connects COM1's interrupt line ([`super::Serial::irq_line`]).
    pub fn attach_com1(&mut self, line: IrqLatch) {
        self.com1 = line;
    }

    /// COM1's interrupt line, to build the UART with ([`super::Serial::with_irq_line`]).
    pub fn com1_line(&self) -> IrqLatch {
        self.com1.clone()
    }

    // ---- port I/O ----

    /// Whether `port` belongs to a platform device.
    pub fn claims_port(port: u16) -> bool {
        PicPair::claims(port) || Pit::claims(port) || Rtc::claims(port)
    }

    fn read_port_byte(&mut self, port: u16, now_ns: u64) -> u8 {
        self.pic
            .read(port)
            .or_else(|| self.pit.read(port, now_ns))
            .or_else(|| self.rtc.read(port, now_ns))
            .unwrap_or(0xFF)
    }

    fn write_port_byte(&mut self, port: u16, value: u8, now_ns: u64) {
        let _ = self.pic.write(port, value)
            || self.pit.write(port, value, now_ns)
            || self.rtc.write(port, value, now_ns);
    }

    /// IN of `size` bytes (1, 2 or 4; anything else is 4) at `port`, zero-extended; `None` if
    /// `port` is not a platform port. Wide accesses are split into byte accesses of
    /// consecutive ports, unclaimed ones reading 0xFF.
    pub fn io_read(&mut self, port: u16, size: u8, now_ns: u64) -> Option<u32> {
        if !Self::claims_port(port) {
            return None;
        }
        let mut value = 0u32;
        for i in 0..io_size(size) {
            let byte = self.read_port_byte(port.wrapping_add(i), now_ns);
            value |= u32::from(byte) << (8 * i);
        }
        Some(value)
    }

    /// OUT of the low `size` bytes (1, 2 or 4; anything else is 4) of `value` to `port`;
    /// false if `port` is not a platform port. Wide accesses are split like reads.
    pub fn io_write(&mut self, port: u16, size: u8, value: u32, now_ns: u64) -> bool {
        if !Self::claims_port(port) {
            return false;
        }
        for i in 0..io_size(size) {
            self.write_port_byte(port.wrapping_add(i), (value >> (8 * i)) as u8, now_ns);
        }
        true
    }

    // ---- MMIO ----

    /// The offset of `phys` in the LAPIC page, if the LAPIC is enabled and `phys` is in it.
    fn lapic_offset(&self, phys: u64) -> Option<u64> {
        let off = phys.wrapping_sub(self.lapic.base_address());
        (self.lapic.hw_enabled() && off < lapic::PAGE_SIZE).then_some(off)
    }

    /// The offset of `phys` in the I/O APIC page, if it is in it.
    fn ioapic_offset(phys: u64) -> Option<u64> {
        let off = phys.wrapping_sub(ioapic::DEFAULT_BASE);
        (off < ioapic::PAGE_SIZE).then_some(off)
    }

    /// Whether `phys` is in a platform MMIO page (the enabled LAPIC's, the I/O APIC's).
    pub fn claims_mmio(&self, phys: u64) -> bool {
        self.lapic_offset(phys).is_some() || Self::ioapic_offset(phys).is_some()
    }

    /// An MMIO read of `size` bytes (1–8) at `phys`; `None` if no platform page holds it.
    /// The LAPIC page wins if the guest moved it over the I/O APIC's.
    pub fn mmio_read(&mut self, phys: u64, size: u8, now_ns: u64) -> Option<u64> {
        if let Some(off) = self.lapic_offset(phys) {
            Some(self.lapic.mmio_read(off, size, now_ns))
        } else {
            Self::ioapic_offset(phys).map(|off| self.ioapic.mmio_read(off, size))
        }
    }

    /// An MMIO write of the low `size` bytes (1–8) of `value` at `phys`; false if no platform
    /// page holds it. A LAPIC EOI of a level-triggered vector reaches the I/O APIC.
    pub fn mmio_write(&mut self, phys: u64, size: u8, value: u64, now_ns: u64) -> bool {
        if let Some(off) = self.lapic_offset(phys) {
            if let Some(vector) = self.lapic.mmio_write(off, size, value, now_ns) {
                self.ioapic.eoi(vector, &mut self.lapic);
            }
            true
        } else if let Some(off) = Self::ioapic_offset(phys) {
            self.ioapic.mmio_write(off, size, value, &mut self.lapic);
            true
        } else {
            false
        }
    }

    // ---- CPU-side registers ----

    /// Writes IA32_APIC_BASE (bit 11 global enable, bit 8 BSP read-only, base bits 12+).
    /// The caller raises #GP for reserved bits if it wants to; here they are ignored.
    pub fn set_apic_base(&mut self, msr: u64) {
        self.lapic.set_base_msr(msr);
    }

    /// IA32_APIC_BASE.
    pub fn apic_base(&self) -> u64 {
        self.lapic.base_msr()
    }

    /// IA32_TSC_DEADLINE (the LAPIC's TSC-deadline timer).
    pub fn tsc_deadline(&self) -> u64 {
        self.lapic.tsc_deadline()
    }

    /// WRMSR IA32_TSC_DEADLINE: `value` as the guest wrote it, `deadline_ns` the same
    /// instant in virtual time (see [`LocalApic::set_tsc_deadline`]).
    pub fn set_tsc_deadline(&mut self, value: u64, deadline_ns: u64) {
        self.lapic.set_tsc_deadline(value, deadline_ns);
    }

    /// MOV to CR8: TPR[7:4] = CR8[3:0].
    pub fn set_tpr(&mut self, cr8: u64) {
        self.lapic.set_cr8(cr8);
    }

    /// MOV from CR8: TPR[7:4].
    pub fn tpr(&self) -> u64 {
        self.lapic.cr8()
    }

    // ---- interrupt lines and time ----

    /// Drives ISA line `isa_irq` (0–15) to `level` on both the PIC and the I/O APIC.
    pub fn set_irq(&mut self, isa_irq: u8, level: bool) {
        if isa_irq >= 16 {
            return;
        }
        self.pic.set_irq(isa_irq, level);
        let pin = if isa_irq == PIT_IRQ {
            PIT_IOAPIC_PIN
        } else {
            isa_irq
        };
        self.ioapic.set_pin(pin, level, &mut self.lapic);
    }

    /// An edge on ISA line `isa_irq`.
    fn pulse(&mut self, isa_irq: u8) {
        self.set_irq(isa_irq, true);
        self.set_irq(isa_irq, false);
    }

    /// Advances the timers to `now_ns` and raises the interrupts that became due: PIT channel 0
    /// edges (IRQ0), RTC IRQF (IRQ8), COM1's latch (IRQ4), the LAPIC timer.
    pub fn update(&mut self, now_ns: u64) {
        if self.pit.update(now_ns) {
            self.pulse(PIT_IRQ);
        }
        if self.rtc.update(now_ns) {
            self.pulse(RTC_IRQ);
        }
        if self.com1.take() {
            self.pulse(COM1_IRQ);
        }
        self.lapic.update(now_ns);
    }

    /// The earliest future timer event (PIT channel 0 edge, LAPIC timer expiry, RTC interrupt
    /// condition), if any timer runs.
    pub fn next_event_ns(&self) -> Option<u64> {
        [
            self.pit.next_event_ns(),
            self.lapic.next_event_ns(),
            self.rtc.next_event_ns(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The earliest future timer event whose interrupt can reach the CPU through the current
    /// masks, in-service bits and routing (PIC IMR/ISR, I/O APIC redirection masks, the
    /// LAPIC's LVT, TPR and ISR). `None` means no timer can interrupt the CPU: a halted vCPU
    /// would never wake, since only guest code (which does not run) could open a route.
    pub fn next_wake_ns(&self) -> Option<u64> {
        let pit = self
            .pit
            .next_event_ns()
            .filter(|_| self.isa_irq_open(PIT_IRQ));
        let rtc = self
            .rtc
            .next_event_ns()
            .filter(|_| self.isa_irq_open(RTC_IRQ));
        [pit, rtc, self.lapic.next_interrupt_ns()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether an edge on ISA line `isa_irq` (0–15) would reach the CPU through the current
    /// masks, in-service bits and routing: the PIC (if its INTR is routed) or the line's
    /// I/O APIC pin.
    pub fn isa_irq_open(&self, isa_irq: u8) -> bool {
        const IOAPIC_MASKED: u64 = 1 << 16;
        const IOAPIC_MODE: u64 = 7 << 8;
        if isa_irq >= 16 {
            return false;
        }
        let pin = if isa_irq == PIT_IRQ {
            PIT_IOAPIC_PIN
        } else {
            isa_irq
        };
        let r = self.ioapic.redirection(usize::from(pin));
        let fixed_or_lowest = r & IOAPIC_MODE <= 1 << 8;
        let ioapic_open = r & IOAPIC_MASKED == 0
            && self.lapic.hw_enabled()
            && (!fixed_or_lowest || self.lapic.could_present(r as u8));
        ioapic_open || (self.pic_routed() && self.pic.could_signal(isa_irq))
    }

    /// The earliest future timer event that would raise an NMI (its I/O APIC pin unmasked
    /// in NMI mode): what can still wake a CPU halted with RFLAGS.IF = 0.
    pub fn next_nmi_wake_ns(&self) -> Option<u64> {
        let nmi_route = |isa_irq: u8| {
            let pin = if isa_irq == PIT_IRQ {
                PIT_IOAPIC_PIN
            } else {
                isa_irq
            };
            let r = self.ioapic.redirection(usize::from(pin));
            let nmi_mode = (r >> 8) & 7 == 4;
            r & (1 << 16) == 0 && nmi_mode && self.lapic.hw_enabled()
        };
        let pit = self.pit.next_event_ns().filter(|_| nmi_route(PIT_IRQ));
        let rtc = self.rtc.next_event_ns().filter(|_| nmi_route(RTC_IRQ));
        [pit, rtc].into_iter().flatten().min()
    }

    /// Whether an NMI waits for the CPU (blocking is the CPU's business).
    pub fn nmi_pending(&self) -> bool {
        self.lapic.nmi_pending()
    }

    /// The CPU takes the pending NMI, if any.
    pub fn take_nmi(&mut self) -> bool {
        self.lapic.take_nmi()
    }

    /// An edge on the board's NMI line, which reaches the CPU through LAPIC LINT1 (the
    /// ACPI MADT says so): what the host's NMI button does.
    pub fn nmi_line_edge(&mut self) {
        self.lapic.lint1_edge();
    }

    /// Whether an edge on the NMI line would raise an NMI now.
    pub fn nmi_line_open(&self) -> bool {
        self.lapic.lint1_is_nmi()
    }

    /// Whether the PIC's INTR reaches the CPU (LINT0 ExtINT, or the LAPIC globally off).
    fn pic_routed(&self) -> bool {
        !self.lapic.hw_enabled() || self.lapic.lint0_extint()
    }

    /// Whether an interrupt is deliverable to the CPU now (RFLAGS.IF is the caller's).
    pub fn has_interrupt(&self) -> bool {
        self.lapic.has_interrupt() || (self.pic_routed() && self.pic.has_interrupt())
    }

    /// The INTA cycle: the vector to deliver, moved from IRR to ISR — the LAPIC's best
    /// interrupt if one beats its priority, else the PIC's through LINT0 (or directly when
    /// the LAPIC is off). `None` if nothing is deliverable.
    pub fn acknowledge(&mut self) -> Option<u8> {
        let vector = match self.lapic.acknowledge() {
            Some(v) => v,
            None if self.pic_routed() && self.pic.has_interrupt() => self.pic.acknowledge(),
            None => return None,
        };
        self.stats.acknowledged = self.stats.acknowledged.saturating_add(1);
        let n = &mut self.stats.per_vector[usize::from(vector)];
        *n = n.saturating_add(1);
        Some(vector)
    }

    // ---- inspection ----

    /// The interrupt counters.
    pub fn stats(&self) -> &InterruptStats {
        &self.stats
    }

    /// The 8259A pair.
    pub fn pic(&self) -> &PicPair {
        &self.pic
    }

    /// The PIT.
    pub fn pit(&self) -> &Pit {
        &self.pit
    }

    /// The RTC.
    pub fn rtc(&self) -> &Rtc {
        &self.rtc
    }

    /// The local APIC.
    pub fn lapic(&self) -> &LocalApic {
        &self.lapic
    }

    /// The I/O APIC.
    pub fn ioapic(&self) -> &IoApic {
        &self.ioapic
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::pit::{ns_at_tick, tick_at};
    use crate::devices::{PortIo, Serial, SerialSink};

    const LAPIC: u64 = lapic::DEFAULT_BASE;
    const IOAPIC: u64 = ioapic::DEFAULT_BASE;

    fn out(p: &mut Platform, port: u16, value: u8) {
        assert!(p.io_write(port, 1, u32::from(value), 0));
    }

    /// ICW1–ICW4 for the pair (bases 0x20/0x28), then the masks.
    fn init_pic(p: &mut Platform, master_imr: u8, slave_imr: u8) {
        for (cmd, base, icw3, imr) in [(0x20, 0x20, 4, master_imr), (0xA0, 0x28, 2, slave_imr)] {
            out(p, cmd, 0x11);
            out(p, cmd + 1, base);
            out(p, cmd + 1, icw3);
            out(p, cmd + 1, 0x01);
            out(p, cmd + 1, imr);
        }
    }

    fn lapic_write(p: &mut Platform, reg: u64, value: u32) {
        assert!(p.mmio_write(LAPIC + reg, 4, u64::from(value), 0));
    }

    fn ioapic_route(p: &mut Platform, pin: u8, low: u32) {
        assert!(p.mmio_write(IOAPIC, 4, u64::from(0x10 + 2 * pin), 0));
        assert!(p.mmio_write(IOAPIC + 0x10, 4, u64::from(low), 0));
    }

    #[test]
    fn pit_mode2_through_the_pic() {
        let mut p = Platform::new(64 << 20, 0);
        init_pic(&mut p, 0xFE, 0xFF);
        let t0 = 1_000_000;
        p.io_write(0x43, 1, 0x34, t0); // channel 0, lo/hi, mode 2
        p.io_write(0x40, 1, 0x9B, t0); // count 11931 = 0x2E9B (100 Hz), low byte
        p.io_write(0x40, 1, 0x2E, t0); // high byte
        let start = tick_at(t0);
        let first = ns_at_tick(start + 11_931);
        assert_eq!(p.next_event_ns(), Some(first));
        p.update(first - 1);
        assert!(!p.has_interrupt());
        p.update(first + 10);
        assert!(p.has_interrupt());
        assert_eq!(p.acknowledge(), Some(0x20));
        assert!(!p.has_interrupt());
        assert_eq!(p.pic().master().isr(), 0x01);
        out(&mut p, 0x20, 0x20); // EOI
        assert_eq!(p.pic().master().isr(), 0);
        assert_eq!(p.next_event_ns(), Some(ns_at_tick(start + 2 * 11_931)));
        p.update(ns_at_tick(start + 2 * 11_931));
        assert_eq!(p.acknowledge(), Some(0x20));
        assert_eq!(p.stats().acknowledged, 2);
        assert_eq!(p.stats().per_vector[0x20], 2);
    }

    #[test]
    fn a_halted_cpu_wakes_only_through_an_open_route() {
        let mut p = Platform::new(64 << 20, 0);
        assert!(p.next_event_ns().is_some(), "the PIT runs from reset");
        assert_eq!(
            p.next_wake_ns(),
            None,
            "the PIC is masked, every I/O APIC pin too"
        );
        init_pic(&mut p, 0xFE, 0xFF);
        assert_eq!(p.next_wake_ns(), p.next_event_ns());
        init_pic(&mut p, 0xFF, 0xFF);
        ioapic_route(&mut p, PIT_IOAPIC_PIN, 0x30);
        assert_eq!(
            p.next_wake_ns(),
            p.next_event_ns(),
            "IRQ0 through the I/O APIC"
        );
        ioapic_route(&mut p, PIT_IOAPIC_PIN, 0x1_0030);
        assert_eq!(p.next_wake_ns(), None);
        lapic_write(&mut p, 0xF0, 0x1FF);
        lapic_write(&mut p, 0x3E0, 0xB);
        lapic_write(&mut p, 0x320, (1 << 16) | 0x40); // masked one-shot
        p.mmio_write(LAPIC + 0x380, 4, 1000, 5000);
        assert_eq!(
            p.next_wake_ns(),
            None,
            "a masked LVT timer counts but cannot wake"
        );
        lapic_write(&mut p, 0x320, 0x40);
        assert_eq!(p.next_wake_ns(), Some(6000));
        p.set_tpr(4);
        assert_eq!(p.next_wake_ns(), None, "class 4 is not above TPR 4");
        p.set_tpr(0);
        // An IRQ0 in service and never EOI'd blocks the next one.
        lapic_write(&mut p, 0x320, 1 << 16);
        init_pic(&mut p, 0xFE, 0xFF);
        let edge = p.pit().next_event_ns().unwrap();
        p.update(edge);
        assert_eq!(p.acknowledge(), Some(0x20));
        assert_eq!(p.next_wake_ns(), None, "IRQ0 is in service");
        out(&mut p, 0x20, 0x20); // EOI
        assert!(p.next_wake_ns().is_some());
    }

    #[test]
    fn lapic_periodic_timer_and_tpr() {
        let mut p = Platform::new(0, 0);
        lapic_write(&mut p, 0xF0, 0x1FF); // SVR: enabled
        lapic_write(&mut p, 0x3E0, 0xB); // divide by 1
        lapic_write(&mut p, 0x320, (1 << 17) | 0x40); // periodic, vector 0x40
        p.mmio_write(LAPIC + 0x380, 4, 1000, 5000); // initial count at t = 5000
        assert_eq!(p.next_event_ns(), Some(6000));
        assert_eq!(p.mmio_read(LAPIC + 0x390, 4, 5250), Some(750));
        p.update(6000);
        assert!(p.has_interrupt());
        assert_eq!(p.acknowledge(), Some(0x40));
        lapic_write(&mut p, 0xB0, 0); // EOI
        assert_eq!(p.next_event_ns(), Some(7000));
        p.set_tpr(4);
        assert_eq!(p.tpr(), 4);
        assert_eq!(p.mmio_read(LAPIC + 0x80, 4, 0), Some(0x40));
        p.update(7000);
        assert!(!p.has_interrupt(), "class 4 is not above TPR 4");
        p.set_tpr(3);
        assert_eq!(p.acknowledge(), Some(0x40));
    }

    #[test]
    fn uart_interrupt_through_ioapic_pin4() {
        let mut p = Platform::new(0, 0);
        let mut com1 = Serial::with_irq_line(SerialSink::Capture, p.com1_line());
        ioapic_route(&mut p, 4, 0x34); // fixed, physical, edge, unmasked, to APIC 0
        com1.write(1, &[0x02]); // IER: THRE interrupt
        assert!(!p.has_interrupt(), "sampled at the next update");
        p.update(0);
        assert!(p.has_interrupt());
        assert_eq!(p.acknowledge(), Some(0x34));
        assert_eq!(
            p.pic().master().irr(),
            0x10,
            "the PIC saw the edge too (masked)"
        );
        lapic_write(&mut p, 0xB0, 0);
        p.update(0);
        assert!(!p.has_interrupt());
        // The other constructor order works too.
        let serial = Serial::new(SerialSink::Capture);
        p.attach_com1(serial.irq_line());
        assert!(!p.com1_line().is_raised());
    }

    #[test]
    fn pit_reaches_ioapic_pin2_and_isa_lines_are_identity() {
        let mut p = Platform::new(0, 0);
        ioapic_route(&mut p, 2, 0x30);
        ioapic_route(&mut p, 1, 0x31);
        p.update(ns_at_tick(65_536)); // reset 18.2 Hz square wave
        assert_eq!(p.acknowledge(), Some(0x30));
        p.set_irq(1, true);
        p.set_irq(1, false);
        assert!(
            !p.has_interrupt(),
            "0x31 waits behind in-service 0x30's class"
        );
        lapic_write(&mut p, 0xB0, 0);
        assert_eq!(p.acknowledge(), Some(0x31));
        p.set_irq(16, true);
        p.set_irq(200, true);
    }

    #[test]
    fn level_pin_eoi_broadcast_redelivers() {
        let mut p = Platform::new(0, 0);
        ioapic_route(&mut p, 10, (1 << 15) | 0x50); // level
        p.set_irq(10, true);
        assert_eq!(p.acknowledge(), Some(0x50));
        lapic_write(&mut p, 0xB0, 0);
        assert_eq!(p.acknowledge(), Some(0x50), "still asserted after EOI");
        p.set_irq(10, false);
        lapic_write(&mut p, 0xB0, 0);
        assert!(!p.has_interrupt());
        assert_eq!(
            p.ioapic().redirection(10) & (1 << 14),
            0,
            "remote IRR clear"
        );
    }

    #[test]
    fn rtc_periodic_through_the_cascade() {
        let mut p = Platform::new(0, 0);
        init_pic(&mut p, 0xFB, 0xFE);
        out(&mut p, 0x70, 0x0B);
        out(&mut p, 0x71, 0x42); // PIE, 24 h
        let due = p.next_event_ns().unwrap();
        assert_eq!(due, 976_563, "1024 Hz");
        p.update(due);
        assert_eq!(p.acknowledge(), Some(0x28));
        out(&mut p, 0x70, 0x0C);
        assert_eq!(p.io_read(0x71, 1, due), Some(0xC0));
        out(&mut p, 0xA0, 0x20);
        out(&mut p, 0x20, 0x20);
        assert_eq!(p.pic().slave().isr() | p.pic().master().isr(), 0);
    }

    #[test]
    fn lapic_disabled_routes_the_pic_directly() {
        let mut p = Platform::new(0, 0);
        init_pic(&mut p, 0xFD, 0xFF);
        // Software-disable the LAPIC: LINT0 gets masked, so the PIC cannot get through.
        lapic_write(&mut p, 0xF0, 0xFF);
        p.set_irq(1, true);
        assert!(!p.has_interrupt());
        // Globally disable it: the PIC goes straight to the CPU and the page disappears.
        p.set_apic_base(lapic::DEFAULT_BASE);
        assert_eq!(p.apic_base(), 0xFEE0_0100);
        assert!(p.has_interrupt());
        assert_eq!(p.acknowledge(), Some(0x21));
        assert_eq!(p.mmio_read(LAPIC + 0x30, 4, 0), None);
        assert!(!p.claims_mmio(LAPIC));
        // Re-enable it elsewhere.
        p.set_apic_base(0xFED0_0000 | lapic::BASE_ENABLE);
        assert_eq!(
            p.mmio_read(0xFED0_0030, 4, 0),
            Some(u64::from(lapic::VERSION))
        );
        assert!(p.claims_mmio(IOAPIC));
    }

    #[test]
    fn port_sizes_and_foreign_ports() {
        let mut p = Platform::new(0, 0);
        assert_eq!(p.io_read(0x3F8, 1, 0), None);
        assert!(!p.io_write(0x80, 1, 0, 0));
        assert!(p.io_write(0x4D0, 2, 0x0CF8, 0));
        assert_eq!(p.io_read(0x4D0, 2, 0), Some(0x0CF8));
        assert_eq!(
            p.io_read(0x21, 4, 0),
            Some(0xFFFF_FFFF),
            "IMR then unclaimed ports"
        );
        assert_eq!(p.io_read(0x71, 0, 0).map(|v| v >> 8), Some(0x00FF_FFFF));
        assert_eq!(p.mmio_read(0x1000, 4, 0), None);
        assert!(!p.mmio_write(0xFEBF_FFFF, 4, 0, 0));
        assert_eq!(p.mmio_read(LAPIC + 0xFFF, 8, 0), Some(0));
        assert_eq!(p.mmio_read(IOAPIC + 0xFFC, 8, 0), Some(0));
        assert_eq!(p.mmio_read(u64::MAX, 8, 0), None);
    }

    #[test]
    fn next_event_is_the_earliest_timer() {
        let mut p = Platform::new(0, 0);
        assert_eq!(
            p.next_event_ns(),
            Some(ns_at_tick(65_536)),
            "the PIT's reset wave"
        );
        lapic_write(&mut p, 0x3E0, 0xB);
        lapic_write(&mut p, 0x380, 500);
        assert_eq!(p.next_event_ns(), Some(500));
        p.io_write(0x43, 1, 0x30, 0); // channel 0, mode 0, count not written: stopped
        lapic_write(&mut p, 0x380, 0);
        assert_eq!(p.next_event_ns(), None);
    }

    #[test]
    fn hostile_guest_cannot_panic_the_platform() {
        let mut p = Platform::new(u64::MAX, u64::MAX);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut now = 0u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let port = [
                0x20, 0x21, 0xA0, 0xA1, 0x40, 0x41, 0x42, 0x43, 0x61, 0x70, 0x71, 0x4D0,
            ][(x % 12) as usize];
            let size = (x >> 8) as u8 % 9;
            let phys = [LAPIC, IOAPIC][(x >> 12) as usize % 2] + (x >> 16) % 0x1001;
            match (x >> 40) % 4 {
                0 => {
                    let _ = p.io_read(port, size, now);
                }
                1 => {
                    let _ = p.io_write(port, size, (x >> 20) as u32, now);
                }
                2 => {
                    let _ = p.mmio_read(phys, size, now);
                }
                _ => {
                    let _ = p.mmio_write(phys, size, x.rotate_left(7), now);
                }
            }
            now = now.saturating_add((x >> 50) * 1000);
            p.update(now);
            p.set_irq((x >> 33) as u8 % 20, x & 1 != 0);
            if p.has_interrupt() {
                assert!(p.acknowledge().is_some());
            }
            let _ = p.next_event_ns();
        }
        p.update(u64::MAX);
        p.set_tpr(u64::MAX);
        p.set_apic_base(u64::MAX);
        let _ = p.mmio_read(u64::MAX - 3, 8, u64::MAX);
    }
}
