//! The ACPI fixed power-management registers of QEMU's PC chipsets (PIIX4 PM / ICH9 LPC at
//! `PMBASE` 0x600): the PM1a event block (status and enable), the PM1a control block, and
//! the PM timer. The FADT ([`crate::firmware::acpi`]) describes exactly these ports.
//!
//! | port  | width | register |
//! |-------|-------|----------|
//! | 0x600 | 16    | PM1a_STS: write-1-to-clear; TMR_STS (bit 0) is set whenever bit 23 of the timer toggled since it was last cleared |
//! | 0x602 | 16    | PM1a_EN: read/write, no effect (no SCI is ever raised) |
//! | 0x604 | 16    | PM1a_CNT: SCI_EN (bit 0) always reads 1 (the board is in ACPI mode from reset, so the FADT has no SMI command port); writing SLP_EN (bit 13) with SLP_TYP (bits 10–12) = [`S5_SLP_TYP`] powers the machine off |
//! | 0x608 | 32    | PM_TMR: a free-running 24-bit counter at 3.579545 MHz (reads 0 in bits 24–31, as QEMU's) |
//!
//! Time comes from the VM's virtual TSC ([`crate::tsc::Clock`]), so the PM timer and RDTSC
//! agree: Linux calibrates the TSC against it.
//!
//! Invariants: every access of any width at any offset is total (bytes outside a register
//! read 0xFF and ignore writes); only a PM1a_CNT write with SLP_EN set and the S5 sleep
//! type asks for anything beyond [`IoAction::Continue`].

use super::{IoAction, PortIo, PortRange};
use crate::tsc::Clock;

/// First port of the block (`PMBASE`, as SeaBIOS programs it on QEMU's PC machines).
pub const PM_BASE: u16 = 0x600;
/// The ports of the device.
pub const PM_PORTS: PortRange = PortRange {
    base: PM_BASE,
    len: 12,
};
/// PM1a event block (status, then enable): port and length in bytes.
pub const PM1A_EVT: (u16, u8) = (PM_BASE, 4);
/// PM1a control block: port and length.
pub const PM1A_CNT: (u16, u8) = (PM_BASE + 4, 2);
/// PM timer block: port and length.
pub const PM_TMR: (u16, u8) = (PM_BASE + 8, 4);
/// The SCI's ISA interrupt (as QEMU; level-triggered, active high in the MADT).
pub const SCI_IRQ: u8 = 9;
/// SLP_TYP of the S5 (soft-off) state, as the DSDT's `\_S5_` package gives it (QEMU: 0).
pub const S5_SLP_TYP: u16 = 0;
/// PM timer frequency in Hz.
pub const PM_TIMER_HZ: u64 = 3_579_545;

/// PM1 status: the timer's bit 23 toggled.
pub const TMR_STS: u16 = 1 << 0;
/// PM1 status bits a guest can clear (all defined status bits; only TMR_STS is ever set).
const STS_MASK: u16 = 0x8731;
/// PM1 enable bits that exist (TMR, GBL, PWRBTN, SLPBTN, RTC).
const EN_MASK: u16 = 0x0721;
/// PM1 control: SCI enable (ACPI mode).
pub const SCI_EN: u16 = 1 << 0;
/// PM1 control: global lock release (write-only).
const GBL_RLS: u16 = 1 << 2;
/// PM1 control: sleep enable (write-only).
pub const SLP_EN: u16 = 1 << 13;
/// PM1 control: the sleep-type field's shift.
pub const SLP_TYP_SHIFT: u16 = 10;
/// PM1 control: the sleep-type field.
const SLP_TYP_MASK: u16 = 7 << SLP_TYP_SHIFT;

/// Offsets of the registers in the block.
const STS: u16 = 0;
const EN: u16 = 2;
const CNT: u16 = 4;
const TMR: u16 = 8;

/// The PM1a registers and the PM timer.
#[derive(Debug)]
pub struct AcpiPm {
    clock: Clock,
    /// Sticky status bits other than TMR_STS.
    status: u16,
    enable: u16,
    /// PM1a_CNT as last written, without the write-only bits; SCI_EN always set.
    control: u16,
    /// The timer tick at which TMR_STS was last cleared.
    tmr_sts_since: u64,
}

impl AcpiPm {
    /// The registers after reset, timing from `clock`.
    pub fn new(clock: Clock) -> AcpiPm {
        AcpiPm {
            clock,
            status: 0,
            enable: 0,
            control: SCI_EN,
            tmr_sts_since: 0,
        }
    }

    /// PM timer ticks at virtual time `now_ns` (full width; the register shows 24 bits).
    pub fn ticks_at(now_ns: u64) -> u64 {
        (u128::from(now_ns) * u128::from(PM_TIMER_HZ) / 1_000_000_000) as u64
    }

    /// The 16-bit register at `reg` (STS, EN or CNT) or the 32-bit timer, at `now_ns`.
    fn register(&self, reg: u16, now_ns: u64) -> u32 {
        let ticks = Self::ticks_at(now_ns);
        match reg {
            STS => {
                let toggled = ticks >> 23 != self.tmr_sts_since >> 23;
                u32::from(self.status | if toggled { TMR_STS } else { 0 })
            }
            EN => u32::from(self.enable),
            CNT => u32::from(self.control),
            _ => (ticks & 0xFF_FFFF) as u32,
        }
    }

    /// Reads `data.len()` bytes at `offset` at virtual time `now_ns`.
    pub fn read_at(&mut self, offset: u16, data: &mut [u8], now_ns: u64) {
        for (i, b) in data.iter_mut().enumerate() {
            let off = offset.saturating_add(i as u16);
            *b = match off {
                0..=5 | 8..=11 => {
                    let reg = if off >= TMR { TMR } else { off & !1 };
                    (self.register(reg, now_ns) >> (8 * (off - reg))) as u8
                }
                _ => 0xFF,
            };
        }
    }

    /// Writes `data` at `offset` at virtual time `now_ns`. Bytes of one register are
    /// merged and applied together (a 16-bit write of SLP_TYP | SLP_EN acts once).
    pub fn write_at(&mut self, offset: u16, data: &[u8], now_ns: u64) -> IoAction {
        let mut action = IoAction::Continue;
        for reg in [STS, EN, CNT] {
            let (mut value, mut mask) = (0u16, 0u16);
            for (i, &b) in data.iter().enumerate() {
                let off = offset.saturating_add(i as u16);
                if off & !1 == reg {
                    let shift = 8 * (off - reg);
                    value |= u16::from(b) << shift;
                    mask |= 0xFF << shift;
                }
            }
            if mask == 0 {
                continue;
            }
            match reg {
                STS => {
                    let clear = value & mask & STS_MASK;
                    self.status &= !clear;
                    if clear & TMR_STS != 0 {
                        self.tmr_sts_since = Self::ticks_at(now_ns);
                    }
                }
                EN => self.enable = ((self.enable & !mask) | (value & mask)) & EN_MASK,
                _ => {
                    let v = (self.control & !mask) | (value & mask);
                    if v & SLP_EN != 0 && (v & SLP_TYP_MASK) >> SLP_TYP_SHIFT == S5_SLP_TYP {
                        action = IoAction::PowerOff;
                    }
                    self.control = (v & !(SLP_EN | GBL_RLS)) | SCI_EN;
                }
            }
        }
        action
    }
}

impl PortIo for AcpiPm {
    fn read(&mut self, offset: u16, data: &mut [u8]) {
        let now = self.clock.now_ns();
        self.read_at(offset, data, now);
    }

    fn write(&mut self, offset: u16, data: &[u8]) -> IoAction {
        let now = self.clock.now_ns();
        self.write_at(offset, data, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pm() -> AcpiPm {
        AcpiPm::new(crate::tsc::VirtualTsc::new().clock())
    }

    fn read(p: &mut AcpiPm, offset: u16, size: usize, now: u64) -> u32 {
        let mut d = [0u8; 4];
        p.read_at(offset, &mut d[..size], now);
        u32::from_le_bytes(d)
    }

    #[test]
    fn ports_match_the_blocks() {
        assert_eq!(PM1A_EVT.0, PM_PORTS.base);
        assert_eq!(PM1A_CNT.0 - PM_BASE, CNT);
        assert_eq!(PM_TMR.0 - PM_BASE, TMR);
        assert_eq!(u16::from(PM_TMR.1) + TMR, PM_PORTS.len);
    }

    #[test]
    fn timer_counts_at_3_579545_mhz_in_24_bits() {
        let mut p = pm();
        assert_eq!(read(&mut p, TMR, 4, 0), 0);
        assert_eq!(read(&mut p, TMR, 4, 1_000_000_000), 3_579_545);
        // One tick is ~279.4 ns.
        assert_eq!(read(&mut p, TMR, 4, 280), 1);
        // Wraps at 2^24 ticks (~4.69 s); bits 24-31 read 0.
        let wrap_ns = (1u64 << 24) * 1_000_000_000 / PM_TIMER_HZ + 1;
        assert!(read(&mut p, TMR, 4, wrap_ns) < 10);
        assert_eq!(read(&mut p, TMR + 3, 1, 3_000_000_000), 0);
        // Byte reads compose the same value.
        let t = 2_000_000_000;
        let whole = read(&mut p, TMR, 4, t);
        let bytes: Vec<u32> = (0..4).map(|i| read(&mut p, TMR + i, 1, t)).collect();
        assert_eq!(
            whole,
            bytes[0] | bytes[1] << 8 | bytes[2] << 16 | bytes[3] << 24
        );
    }

    #[test]
    fn tmr_sts_follows_bit_23_and_clears_on_write_one() {
        let mut p = pm();
        let half_period_ns = (1u64 << 23) * 1_000_000_000 / PM_TIMER_HZ + 1;
        assert_eq!(read(&mut p, STS, 2, 0) & 1, 0);
        assert_eq!(read(&mut p, STS, 2, half_period_ns) & 1, 1);
        p.write_at(STS, &[0, 0], half_period_ns);
        assert_eq!(
            read(&mut p, STS, 2, half_period_ns) & 1,
            1,
            "writing 0 keeps it"
        );
        p.write_at(STS, &[1, 0], half_period_ns);
        assert_eq!(read(&mut p, STS, 2, half_period_ns) & 1, 0);
    }

    #[test]
    fn acpi_mode_from_reset_and_enable_bits_stick() {
        let mut p = pm();
        assert_eq!(read(&mut p, CNT, 2, 0), u32::from(SCI_EN));
        p.write_at(CNT, &[0, 0], 0);
        assert_eq!(
            read(&mut p, CNT, 2, 0),
            u32::from(SCI_EN),
            "SCI_EN is hardwired"
        );
        p.write_at(EN, &[0xFF, 0xFF], 0);
        assert_eq!(read(&mut p, EN, 2, 0), u32::from(EN_MASK));
    }

    #[test]
    fn slp_en_with_s5_powers_off_and_others_do_not() {
        let mut p = pm();
        let cnt = |typ: u16, en: bool| (typ << SLP_TYP_SHIFT) | if en { SLP_EN } else { 0 };
        // ACPICA writes SLP_TYP first, then SLP_TYP | SLP_EN.
        let v = cnt(S5_SLP_TYP, false).to_le_bytes();
        assert_eq!(p.write_at(CNT, &v, 0), IoAction::Continue);
        let v = cnt(S5_SLP_TYP, true).to_le_bytes();
        assert_eq!(p.write_at(CNT, &v, 0), IoAction::PowerOff);
        assert_eq!(
            read(&mut p, CNT, 2, 0) & u32::from(SLP_EN),
            0,
            "SLP_EN reads 0"
        );
        // S3-like types are not supported: nothing happens.
        let v = cnt(1, true).to_le_bytes();
        assert_eq!(p.write_at(CNT, &v, 0), IoAction::Continue);
        // The high byte alone carries SLP_EN and SLP_TYP.
        let mut p = pm();
        let high = (cnt(S5_SLP_TYP, true) >> 8) as u8;
        assert_eq!(p.write_at(CNT + 1, &[high], 0), IoAction::PowerOff);
        // A 32-bit write at the event block does not reach the control block.
        assert_eq!(p.write_at(STS, &[0xFF; 4], 0), IoAction::Continue);
    }

    #[test]
    fn every_access_is_total() {
        let mut p = pm();
        for off in 0..16u16 {
            for size in [1usize, 2, 4] {
                let mut d = [0u8; 4];
                p.read_at(off, &mut d[..size], 123);
                let _ = p.write_at(off, &[0x5A; 4][..size], 456);
            }
        }
        let mut d = [0u8; 2];
        p.read_at(6, &mut d, 0);
        assert_eq!(d, [0xFF, 0xFF], "the gap between CNT and TMR");
        p.read_at(u16::MAX, &mut d, 0);
    }
}
