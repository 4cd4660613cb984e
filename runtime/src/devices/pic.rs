//! The 8259A programmable interrupt controller pair of a PC: the master at ports 0x20/0x21,
//! the slave at 0xA0/0xA1 cascaded on master IRQ2, and the edge/level control registers
//! (ELCR) at 0x4D0/0x4D1.
//!
//! [`Pic8259`] is one chip as a pure register model; [`PicPair`] wires two of them the PC way
//! and runs the INTA cycle. Both follow the datasheet where guests can tell, with these
//! deliberate simplifications:
//! - Edge-triggered requests are latched in IRR on the rising edge and stay there until INTA
//!   even if the line drops (the chip samples the input again at INTA; here only a
//!   level-triggered line that dropped, a mask, or a request that lost priority makes a request
//!   vanish). When a request vanishes between [`PicPair::has_interrupt`] and
//!   [`PicPair::acknowledge`], INTA returns the spurious IRQ7 (or IRQ15, with master ISR bit 2
//!   set, as on the real pair).
//! - The cascade input (master IR2) is a level copy of the slave's INT output, so a second slave
//!   request pending behind the first is never lost.
//! - ICW1 LTIM (all inputs level-triggered), buffered mode and the 8080 call-address interval
//!   are ignored; the ELCR selects level triggering per line, as on PIIX/ICH chipsets.
//! - Poll mode (OCW3 P) acknowledges on the chip that is read, without following the cascade.
//!
//! Invariants: every register is a `u8` bitmap indexed by `irq & 7`, so no guest value can
//! index out of range; ISA IRQs above 15 are ignored.

/// ICW1/OCW select: a write to the command port with this bit is ICW1.
const ICW1_INIT: u8 = 0x10;
/// ICW1: ICW4 follows.
const ICW1_IC4: u8 = 0x01;
/// ICW1: single chip (no ICW3).
const ICW1_SNGL: u8 = 0x02;
/// Command port, not ICW1: this bit selects OCW3 (else OCW2).
const OCW3_SELECT: u8 = 0x08;
/// OCW3: poll command.
const OCW3_POLL: u8 = 0x04;
/// OCW3: RR, the read-register command is valid.
const OCW3_RR: u8 = 0x02;
/// OCW3: RIS, read ISR (else IRR).
const OCW3_RIS: u8 = 0x01;
/// OCW3: ESMM, the special-mask-mode bit is valid.
const OCW3_ESMM: u8 = 0x40;
/// OCW3: SMM, special mask mode.
const OCW3_SMM: u8 = 0x20;
/// ICW4: automatic EOI.
const ICW4_AEOI: u8 = 0x02;
/// ICW4: special fully nested mode.
const ICW4_SFNM: u8 = 0x10;

/// OCW2 commands (bits 7:5).
mod ocw2 {
    pub const ROTATE_AEOI_CLEAR: u8 = 0;
    pub const NON_SPECIFIC_EOI: u8 = 1;
    pub const SPECIFIC_EOI: u8 = 3;
    pub const ROTATE_AEOI_SET: u8 = 4;
    pub const ROTATE_NON_SPECIFIC_EOI: u8 = 5;
    pub const SET_PRIORITY: u8 = 6;
    pub const ROTATE_SPECIFIC_EOI: u8 = 7;
}

/// The master's IR line the slave is cascaded on.
const CASCADE_IRQ: u8 = 2;
/// The IRQ reported for a request that vanished before INTA.
const SPURIOUS_IRQ: u8 = 7;

/// Master command/status port.
pub const MASTER_CMD: u16 = 0x20;
/// Master data (IMR) port.
pub const MASTER_DATA: u16 = 0x21;
/// Slave command/status port.
pub const SLAVE_CMD: u16 = 0xA0;
/// Slave data (IMR) port.
pub const SLAVE_DATA: u16 = 0xA1;
/// Master ELCR port.
pub const ELCR_MASTER: u16 = 0x4D0;
/// Slave ELCR port.
pub const ELCR_SLAVE: u16 = 0x4D1;

/// Where a chip is in its initialization sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InitStep {
    /// Initialized: data-port writes are OCW1.
    Ready,
    /// ICW1 seen: ICW2 (vector base) next.
    Icw2,
    /// ICW3 (cascade wiring) next.
    Icw3,
    /// ICW4 (mode) next.
    Icw4,
}

/// One 8259A.
#[derive(Clone, Debug)]
pub struct Pic8259 {
    /// Interrupt request register.
    irr: u8,
    /// In-service register.
    isr: u8,
    /// Interrupt mask register (OCW1).
    imr: u8,
    /// Input levels last seen, for edge detection.
    level: u8,
    /// Level-triggered lines (ELCR).
    elcr: u8,
    /// ELCR bits that exist on this chip.
    elcr_mask: u8,
    /// ICW2 with the low three bits clear.
    vector_base: u8,
    /// The lowest-priority IRQ is `priority_base - 1` (rotation).
    priority_base: u8,
    step: InitStep,
    icw4_needed: bool,
    single: bool,
    auto_eoi: bool,
    rotate_on_auto_eoi: bool,
    special_fully_nested: bool,
    special_mask: bool,
    read_isr: bool,
    poll: bool,
}

impl Pic8259 {
    /// A chip in its power-on state; `elcr_mask` says which lines may be level-triggered.
    pub fn new(elcr_mask: u8) -> Pic8259 {
        Pic8259 {
            irr: 0,
            isr: 0,
            imr: 0xFF,
            level: 0,
            elcr: 0,
            elcr_mask,
            vector_base: 0,
            priority_base: 0,
            step: InitStep::Ready,
            icw4_needed: false,
            single: false,
            auto_eoi: false,
            rotate_on_auto_eoi: false,
            special_fully_nested: false,
            special_mask: false,
            read_isr: false,
            poll: false,
        }
    }

    /// Drives input line `irq` (0–7) to `level`.
    pub fn set_irq(&mut self, irq: u8, level: bool) {
        let bit = 1u8 << (irq & 7);
        if self.elcr & bit != 0 {
            self.irr = if level {
                self.irr | bit
            } else {
                self.irr & !bit
            };
        } else if level && self.level & bit == 0 {
            self.irr |= bit;
        }
        self.level = if level {
            self.level | bit
        } else {
            self.level & !bit
        };
    }

    /// The priority (0 = highest) of the best request in `bits`, 8 if none.
    fn priority(&self, bits: u8) -> u8 {
        (0..8u8)
            .find(|p| bits & (1 << ((p + self.priority_base) & 7)) != 0)
            .unwrap_or(8)
    }

    /// The IRQ the chip would signal now, if any: the best unmasked request with a higher
    /// priority than every in-service IRQ.
    pub fn pending_irq(&self) -> Option<u8> {
        let req = self.priority(self.irr & !self.imr);
        if req == 8 {
            return None;
        }
        (req < self.priority(self.blocking_in_service())).then_some((req + self.priority_base) & 7)
    }

    /// Whether a request on `irq` (0–7) would be signalled with the current mask and
    /// in-service bits (which no EOI can change while the CPU is halted).
    pub fn could_signal(&self, irq: u8) -> bool {
        let bit = 1u8 << (irq & 7);
        self.imr & bit == 0 && self.priority(bit) < self.priority(self.blocking_in_service())
    }

    /// The in-service IRQs that block lower-priority requests: all of ISR, except masked ones
    /// in special mask mode and the cascade in special fully nested mode (a slave's
    /// higher-priority request may interrupt an in-service cascade).
    fn blocking_in_service(&self) -> u8 {
        let mut in_service = self.isr;
        if self.special_mask {
            in_service &= !self.imr;
        }
        if self.special_fully_nested {
            in_service &= !(1 << CASCADE_IRQ);
        }
        in_service
    }

    /// The INT output.
    pub fn int_output(&self) -> bool {
        self.pending_irq().is_some()
    }

    /// INTA for `irq`: moves it from IRR to ISR (or straight out with auto-EOI).
    fn acknowledge_irq(&mut self, irq: u8) {
        let bit = 1u8 << (irq & 7);
        if self.auto_eoi {
            if self.rotate_on_auto_eoi {
                self.priority_base = (irq + 1) & 7;
            }
        } else {
            self.isr |= bit;
        }
        if self.elcr & bit == 0 {
            self.irr &= !bit;
        }
    }

    /// The vector of `irq`.
    fn vector(&self, irq: u8) -> u8 {
        self.vector_base | (irq & 7)
    }

    /// ICW1: restart initialization.
    fn init(&mut self, icw1: u8) {
        self.irr &= self.elcr;
        self.level = 0;
        self.isr = 0;
        self.imr = 0;
        self.priority_base = 0;
        self.auto_eoi = false;
        self.rotate_on_auto_eoi = false;
        self.special_fully_nested = false;
        self.special_mask = false;
        self.read_isr = false;
        self.poll = false;
        self.icw4_needed = icw1 & ICW1_IC4 != 0;
        self.single = icw1 & ICW1_SNGL != 0;
        self.step = InitStep::Icw2;
    }

    /// OCW2: end of interrupt and rotation.
    fn ocw2(&mut self, value: u8) {
        let irq = value & 7;
        match value >> 5 {
            ocw2::ROTATE_AEOI_CLEAR => self.rotate_on_auto_eoi = false,
            ocw2::ROTATE_AEOI_SET => self.rotate_on_auto_eoi = true,
            cmd @ (ocw2::NON_SPECIFIC_EOI | ocw2::ROTATE_NON_SPECIFIC_EOI) => {
                let p = self.priority(self.isr);
                if p != 8 {
                    let irq = (p + self.priority_base) & 7;
                    self.isr &= !(1 << irq);
                    if cmd == ocw2::ROTATE_NON_SPECIFIC_EOI {
                        self.priority_base = (irq + 1) & 7;
                    }
                }
            }
            ocw2::SPECIFIC_EOI => self.isr &= !(1 << irq),
            ocw2::ROTATE_SPECIFIC_EOI => {
                self.isr &= !(1 << irq);
                self.priority_base = (irq + 1) & 7;
            }
            ocw2::SET_PRIORITY => self.priority_base = (irq + 1) & 7,
            _ => {} // No operation.
        }
    }

    /// OCW3: read-register select, poll, special mask.
    fn ocw3(&mut self, value: u8) {
        if value & OCW3_POLL != 0 {
            self.poll = true;
        }
        if value & OCW3_RR != 0 {
            self.read_isr = value & OCW3_RIS != 0;
        }
        if value & OCW3_ESMM != 0 {
            self.special_mask = value & OCW3_SMM != 0;
        }
    }

    /// A write to the command port (A0 = 0).
    pub fn write_command(&mut self, value: u8) {
        if value & ICW1_INIT != 0 {
            self.init(value);
        } else if value & OCW3_SELECT != 0 {
            self.ocw3(value);
        } else {
            self.ocw2(value);
        }
    }

    /// A write to the data port (A0 = 1): ICW2–ICW4 during initialization, else OCW1.
    pub fn write_data(&mut self, value: u8) {
        self.step = match self.step {
            InitStep::Ready => {
                self.imr = value;
                InitStep::Ready
            }
            InitStep::Icw2 => {
                self.vector_base = value & 0xF8;
                match (self.single, self.icw4_needed) {
                    (false, _) => InitStep::Icw3,
                    (true, true) => InitStep::Icw4,
                    (true, false) => InitStep::Ready,
                }
            }
            // The cascade wiring is fixed on a PC; ICW3 is accepted and ignored.
            InitStep::Icw3 if self.icw4_needed => InitStep::Icw4,
            InitStep::Icw3 => InitStep::Ready,
            InitStep::Icw4 => {
                self.auto_eoi = value & ICW4_AEOI != 0;
                self.special_fully_nested = value & ICW4_SFNM != 0;
                InitStep::Ready
            }
        };
    }

    /// A read of the command port: the poll word after a poll command, else IRR or ISR as
    /// selected by OCW3.
    pub fn read_command(&mut self) -> u8 {
        if self.poll {
            self.poll = false;
            return match self.pending_irq() {
                Some(irq) => {
                    self.acknowledge_irq(irq);
                    0x80 | irq
                }
                None => 0,
            };
        }
        if self.read_isr {
            self.isr
        } else {
            self.irr
        }
    }

    /// A read of the data port: the IMR.
    pub fn read_data(&self) -> u8 {
        self.imr
    }

    /// The ELCR (level-triggered lines).
    pub fn elcr(&self) -> u8 {
        self.elcr
    }

    /// Sets the ELCR; bits for lines that cannot be level-triggered are ignored.
    pub fn set_elcr(&mut self, value: u8) {
        self.elcr = value & self.elcr_mask;
    }

    /// The interrupt request register.
    pub fn irr(&self) -> u8 {
        self.irr
    }

    /// The in-service register.
    pub fn isr(&self) -> u8 {
        self.isr
    }

    /// The interrupt mask register.
    pub fn imr(&self) -> u8 {
        self.imr
    }

    /// The vector base from ICW2.
    pub fn vector_base(&self) -> u8 {
        self.vector_base
    }
}

/// The PC's master/slave 8259A pair.
#[derive(Clone, Debug)]
pub struct PicPair {
    master: Pic8259,
    slave: Pic8259,
    /// INTA cycles that returned a spurious IRQ7/IRQ15.
    spurious: u64,
}

impl Default for PicPair {
    fn default() -> Self {
        PicPair::new()
    }
}

impl PicPair {
    /// Both chips in their power-on state (all lines masked until initialized). As on PIIX,
    /// IRQ0–2 and IRQ8/IRQ13 are always edge-triggered.
    pub fn new() -> PicPair {
        PicPair {
            master: Pic8259::new(0xF8),
            slave: Pic8259::new(0xDE),
            spurious: 0,
        }
    }

    /// Copies the slave's INT output onto the master's cascade input.
    fn sync_cascade(&mut self) {
        let bit = 1 << CASCADE_IRQ;
        if self.slave.int_output() {
            self.master.irr |= bit;
        } else {
            self.master.irr &= !bit;
        }
    }

    /// Drives ISA line `irq` (0–15) to `level`. IRQ2 is the cascade and higher lines do not
    /// exist; both are ignored.
    pub fn set_irq(&mut self, irq: u8, level: bool) {
        match irq {
            0..=7 if irq != CASCADE_IRQ => self.master.set_irq(irq, level),
            8..=15 => {
                self.slave.set_irq(irq - 8, level);
                self.sync_cascade();
            }
            _ => {}
        }
    }

    /// Whether a request on ISA line `irq` (0–15) would reach the master's INT output with
    /// the current masks and in-service bits.
    pub fn could_signal(&self, irq: u8) -> bool {
        match irq {
            0..=7 => irq != CASCADE_IRQ && self.master.could_signal(irq),
            8..=15 => self.slave.could_signal(irq - 8) && self.master.could_signal(CASCADE_IRQ),
            _ => false,
        }
    }

    /// Whether the master's INT output (the CPU's INTR) is asserted.
    pub fn has_interrupt(&self) -> bool {
        self.master.int_output()
    }

    /// The INTA cycle: the vector of the best request, moved from IRR to ISR. A request that
    /// vanished gives the spurious IRQ7 of the chip concerned.
    pub fn acknowledge(&mut self) -> u8 {
        let vector = match self.master.pending_irq() {
            Some(CASCADE_IRQ) => {
                self.master.acknowledge_irq(CASCADE_IRQ);
                match self.slave.pending_irq() {
                    Some(irq) => {
                        self.slave.acknowledge_irq(irq);
                        self.slave.vector(irq)
                    }
                    None => {
                        self.spurious += 1;
                        self.slave.vector(SPURIOUS_IRQ)
                    }
                }
            }
            Some(irq) => {
                self.master.acknowledge_irq(irq);
                self.master.vector(irq)
            }
            None => {
                self.spurious += 1;
                self.master.vector(SPURIOUS_IRQ)
            }
        };
        self.sync_cascade();
        vector
    }

    /// Whether `port` belongs to the pair (command, data or ELCR ports).
    pub fn claims(port: u16) -> bool {
        matches!(
            port,
            MASTER_CMD | MASTER_DATA | SLAVE_CMD | SLAVE_DATA | ELCR_MASTER | ELCR_SLAVE
        )
    }

    /// A byte read of `port`; `None` if the port is not the pair's.
    pub fn read(&mut self, port: u16) -> Option<u8> {
        let value = match port {
            MASTER_CMD => self.master.read_command(),
            MASTER_DATA => self.master.read_data(),
            SLAVE_CMD => self.slave.read_command(),
            SLAVE_DATA => self.slave.read_data(),
            ELCR_MASTER => self.master.elcr(),
            ELCR_SLAVE => self.slave.elcr(),
            _ => return None,
        };
        self.sync_cascade();
        Some(value)
    }

    /// A byte write of `value` to `port`; false if the port is not the pair's.
    pub fn write(&mut self, port: u16, value: u8) -> bool {
        match port {
            MASTER_CMD => self.master.write_command(value),
            MASTER_DATA => self.master.write_data(value),
            SLAVE_CMD => self.slave.write_command(value),
            SLAVE_DATA => self.slave.write_data(value),
            ELCR_MASTER => self.master.set_elcr(value),
            ELCR_SLAVE => self.slave.set_elcr(value),
            _ => return false,
        }
        self.sync_cascade();
        true
    }

    /// The master chip.
    pub fn master(&self) -> &Pic8259 {
        &self.master
    }

    /// The slave chip.
    pub fn slave(&self) -> &Pic8259 {
        &self.slave
    }

    /// INTA cycles that returned a spurious vector.
    pub fn spurious(&self) -> u64 {
        self.spurious
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Programs the pair the way a PC BIOS/Linux does: master base `m`, slave base `s`,
    /// 8086 mode, optionally auto-EOI; everything unmasked except what `imr` says.
    fn init(p: &mut PicPair, m: u8, s: u8, aeoi: bool, imr: [u8; 2]) {
        let icw4 = if aeoi { 0x03 } else { 0x01 };
        for (cmd, data, base, icw3, mask) in [
            (MASTER_CMD, MASTER_DATA, m, 0x04, imr[0]),
            (SLAVE_CMD, SLAVE_DATA, s, 0x02, imr[1]),
        ] {
            p.write(cmd, 0x11);
            p.write(data, base);
            p.write(data, icw3);
            p.write(data, icw4);
            p.write(data, mask);
        }
    }

    fn pulse(p: &mut PicPair, irq: u8) {
        p.set_irq(irq, true);
        p.set_irq(irq, false);
    }

    #[test]
    fn icw_sequence_sets_vector_base_and_masks() {
        let mut p = PicPair::new();
        assert_eq!(p.read(MASTER_DATA), Some(0xFF), "masked at power-on");
        init(&mut p, 0x20, 0x28, false, [0xFA, 0xFF]);
        assert_eq!(p.master().vector_base(), 0x20);
        assert_eq!(p.slave().vector_base(), 0x28);
        assert_eq!(p.read(MASTER_DATA), Some(0xFA));
        assert_eq!(p.read(SLAVE_DATA), Some(0xFF));
        // The low three bits of ICW2 are ignored.
        p.write(MASTER_CMD, 0x11);
        p.write(MASTER_DATA, 0x37);
        p.write(MASTER_DATA, 0x04);
        p.write(MASTER_DATA, 0x01);
        assert_eq!(p.master().vector_base(), 0x30);
        // ICW1 unmasks everything until OCW1.
        assert_eq!(p.read(MASTER_DATA), Some(0x00));
    }

    #[test]
    fn single_mode_without_icw4_skips_icw3_and_icw4() {
        let mut pic = Pic8259::new(0);
        pic.write_command(0x12); // ICW1: single, no ICW4
        pic.write_data(0x40); // ICW2
        pic.write_data(0xFE); // OCW1 already
        assert_eq!(pic.imr(), 0xFE);
        assert_eq!(pic.vector_base(), 0x40);
    }

    #[test]
    fn edge_latching_priority_and_eoi() {
        let mut p = PicPair::new();
        init(&mut p, 0x08, 0x70, false, [0, 0]);
        assert!(!p.has_interrupt());
        pulse(&mut p, 3);
        pulse(&mut p, 1);
        assert_eq!(
            p.master().irr(),
            0x0A,
            "edges stay latched after the line drops"
        );
        assert!(p.has_interrupt());
        assert_eq!(p.acknowledge(), 0x09, "IRQ1 beats IRQ3");
        assert_eq!(p.master().isr(), 0x02);
        assert!(!p.has_interrupt(), "IRQ3 waits behind in-service IRQ1");
        // A higher-priority request nests.
        pulse(&mut p, 0);
        assert_eq!(p.acknowledge(), 0x08);
        assert_eq!(p.master().isr(), 0x03);
        p.write(MASTER_CMD, 0x20); // non-specific EOI: the highest, IRQ0
        assert_eq!(p.master().isr(), 0x02);
        p.write(MASTER_CMD, 0x20);
        assert_eq!(p.master().isr(), 0x00);
        assert_eq!(p.acknowledge(), 0x0B);
        p.write(MASTER_CMD, 0x63); // specific EOI for IRQ3
        assert_eq!(p.master().isr(), 0);
        assert!(!p.has_interrupt());
    }

    #[test]
    fn held_line_gives_one_edge() {
        let mut p = PicPair::new();
        init(&mut p, 0x20, 0x28, false, [0, 0]);
        p.set_irq(4, true);
        assert_eq!(p.acknowledge(), 0x24);
        p.write(MASTER_CMD, 0x20);
        p.set_irq(4, true);
        assert!(!p.has_interrupt(), "no new edge while the line stays high");
        p.set_irq(4, false);
        p.set_irq(4, true);
        assert!(p.has_interrupt());
    }

    #[test]
    fn masking_holds_the_request() {
        let mut p = PicPair::new();
        init(&mut p, 0x20, 0x28, false, [0x01, 0xFF]);
        pulse(&mut p, 0);
        assert!(!p.has_interrupt());
        assert_eq!(p.master().irr(), 0x01);
        p.write(MASTER_DATA, 0x00);
        assert!(p.has_interrupt());
        assert_eq!(p.acknowledge(), 0x20);
    }

    #[test]
    fn cascade_delivers_slave_vectors_and_needs_two_eois() {
        let mut p = PicPair::new();
        init(&mut p, 0x20, 0x28, false, [0, 0]);
        pulse(&mut p, 12);
        pulse(&mut p, 8);
        assert!(p.has_interrupt());
        assert_eq!(p.acknowledge(), 0x28, "IRQ8 first");
        assert_eq!(p.master().isr(), 0x04);
        assert_eq!(p.slave().isr(), 0x01);
        assert!(!p.has_interrupt());
        p.write(SLAVE_CMD, 0x20);
        assert!(!p.has_interrupt(), "master IRQ2 still in service");
        p.write(MASTER_CMD, 0x20);
        assert!(p.has_interrupt(), "the second slave request was kept");
        assert_eq!(p.acknowledge(), 0x2C);
        // A master IRQ0 beats the cascade.
        p.write(SLAVE_CMD, 0x20);
        p.write(MASTER_CMD, 0x20);
        pulse(&mut p, 9);
        pulse(&mut p, 0);
        assert_eq!(p.acknowledge(), 0x20);
    }

    #[test]
    fn auto_eoi_leaves_isr_clear() {
        let mut p = PicPair::new();
        init(&mut p, 0x20, 0x28, true, [0, 0]);
        pulse(&mut p, 5);
        pulse(&mut p, 6);
        assert_eq!(p.acknowledge(), 0x25);
        assert_eq!(p.master().isr(), 0);
        assert!(p.has_interrupt(), "no EOI needed");
        assert_eq!(p.acknowledge(), 0x26);
    }

    #[test]
    fn ocw3_selects_irr_or_isr() {
        let mut p = PicPair::new();
        init(&mut p, 0x20, 0x28, false, [0x02, 0]);
        pulse(&mut p, 0);
        pulse(&mut p, 1); // masked: still in IRR
        p.write(MASTER_CMD, 0x0A); // read IRR
        assert_eq!(p.read(MASTER_CMD), Some(0x03));
        assert_eq!(p.acknowledge(), 0x20);
        assert_eq!(p.read(MASTER_CMD), Some(0x02), "the selection persists");
        p.write(MASTER_CMD, 0x0B); // read ISR
        assert_eq!(p.read(MASTER_CMD), Some(0x01));
    }

    #[test]
    fn spurious_irq7_and_irq15() {
        let mut p = PicPair::new();
        init(&mut p, 0x20, 0x28, false, [0, 0]);
        p.write(ELCR_SLAVE, 0x04);
        // Level-triggered IRQ10 vanishes before INTA.
        p.set_irq(10, true);
        assert!(p.has_interrupt());
        p.set_irq(10, false);
        assert_eq!(p.acknowledge(), 0x27, "master sees nothing: IRQ7");
        assert_eq!(p.master().isr(), 0, "spurious IRQ7 is not in service");
        // Slave request vanishes after the master latched the cascade: emulate by masking
        // the slave between the two halves through the poll-free path.
        p.set_irq(10, true);
        let master_irq = p.master().pending_irq();
        assert_eq!(master_irq, Some(2));
        p.slave.imr = 0xFF; // masked without resyncing the cascade: request vanished
        assert_eq!(p.acknowledge(), 0x2F, "IRQ15");
        assert_eq!(p.master().isr(), 0x04, "the master still needs an EOI");
        assert_eq!(p.spurious(), 2);
    }

    #[test]
    fn level_lines_through_the_elcr() {
        let mut p = PicPair::new();
        init(&mut p, 0x20, 0x28, false, [0, 0]);
        p.write(ELCR_MASTER, 0xFF);
        assert_eq!(p.read(ELCR_MASTER), Some(0xF8), "IRQ0-2 are edge only");
        p.write(ELCR_SLAVE, 0xFF);
        assert_eq!(p.read(ELCR_SLAVE), Some(0xDE));
        p.set_irq(5, true);
        assert_eq!(p.acknowledge(), 0x25);
        p.write(MASTER_CMD, 0x20);
        assert!(p.has_interrupt(), "a level line still high asks again");
        p.set_irq(5, false);
        assert!(!p.has_interrupt());
    }

    #[test]
    fn rotation_and_poll() {
        let mut pic = Pic8259::new(0);
        pic.write_command(0x13); // single, ICW4
        pic.write_data(0x40);
        pic.write_data(0x01);
        pic.write_data(0x00);
        pic.write_command(0xC4); // set priority: IRQ4 lowest, IRQ5 highest
        pic.set_irq(0, true);
        pic.set_irq(6, true);
        assert_eq!(pic.pending_irq(), Some(6));
        pic.write_command(0x0C); // poll
        assert_eq!(pic.read_command(), 0x86);
        assert_eq!(pic.isr(), 0x40);
        pic.write_command(0xA0); // rotate on non-specific EOI: IRQ6 becomes lowest
        assert_eq!(pic.isr(), 0);
        assert_eq!(pic.pending_irq(), Some(0));
        pic.write_command(0x0C);
        assert_eq!(pic.read_command(), 0x80, "poll acknowledges IRQ0");
        pic.write_command(0x0C);
        pic.write_command(0x20); // EOI IRQ0
        assert_eq!(pic.read_command(), 0, "nothing pending");
    }

    #[test]
    fn unknown_ports_and_lines_are_ignored() {
        let mut p = PicPair::new();
        assert_eq!(p.read(0x22), None);
        assert!(!p.write(0x22, 0));
        p.set_irq(16, true);
        p.set_irq(255, true);
        p.set_irq(2, true);
        assert_eq!(p.master().irr(), 0);
    }
}
