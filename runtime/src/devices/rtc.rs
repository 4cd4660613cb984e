//! The MC146818-compatible CMOS real-time clock of a PC: index port 0x70 (bit 7 masks NMI),
//! data port 0x71, 128 bytes of CMOS, interrupts on ISA IRQ8.
//!
//! The clock is the wall-clock time given at creation plus elapsed virtual time (plus whatever
//! offset the guest sets by writing the time registers); it never reads host time. Time and
//! alarm registers follow register B's format (BCD or binary, 12 or 24 hours). Register C's
//! flags are set by the periodic rate (register A), each second's update-ended cycle and the
//! alarm; reading C clears them. IRQ8 is reported by [`Rtc::update`] when IRQF rises.
//!
//! Deliberate simplifications:
//! - UIP (register A bit 7) always reads 0 and an update cycle takes no time; the update-ended
//!   and alarm checks run at virtual-second boundaries (only the latest second is checked
//!   for the alarm when several passed unobserved).
//! - The periodic interrupt's phase is that of a divider chain started at time 0; register A's
//!   divider bits only stop it when set to the reset values 0b110/0b111.
//! - Daylight-saving (register B DSE) is ignored; the written time of a frozen (SET) clock
//!   counts from the next whole virtual second.
//! - CMOS memory sizes follow QEMU's pc layout; memory above 4 GiB is not reported.
//!
//! Invariants: the register index is 7 bits, so every access is inside the 128-byte RAM; the
//! clock value is clamped to 1970-01-01..9999-12-31, so every conversion stays in range.

/// The index port.
pub const INDEX: u16 = 0x70;
/// The data port.
pub const DATA: u16 = 0x71;

/// Index port: NMI disable.
const INDEX_NMI_MASK: u8 = 0x80;

/// Register indices.
const SECONDS: usize = 0x00;
const SECONDS_ALARM: usize = 0x01;
const MINUTES: usize = 0x02;
const MINUTES_ALARM: usize = 0x03;
const HOURS: usize = 0x04;
const HOURS_ALARM: usize = 0x05;
const WEEKDAY: usize = 0x06;
const DAY: usize = 0x07;
const MONTH: usize = 0x08;
const YEAR: usize = 0x09;
const REG_A: usize = 0x0A;
const REG_B: usize = 0x0B;
const REG_C: usize = 0x0C;
const REG_D: usize = 0x0D;
const CENTURY: usize = 0x32;
/// CMOS checksum over 0x10..=0x2D, big-endian at 0x2E/0x2F.
const CHECKSUM: usize = 0x2E;

/// Register A: update in progress (reads 0 here).
const A_UIP: u8 = 0x80;
/// Register A: divider chain in reset (DV = 0b11x).
const A_DIVIDER_RESET: u8 = 0x60;
/// Register A: rate select.
const A_RATE: u8 = 0x0F;
/// Register B: updates inhibited while the time is set.
const B_SET: u8 = 0x80;
/// Register B: periodic interrupt enable.
const B_PIE: u8 = 0x40;
/// Register B: alarm interrupt enable.
const B_AIE: u8 = 0x20;
/// Register B: update-ended interrupt enable.
const B_UIE: u8 = 0x10;
/// Register B: binary (not BCD) data mode.
const B_DM_BINARY: u8 = 0x04;
/// Register B: 24-hour mode.
const B_24H: u8 = 0x02;
/// Register C: some enabled flag is set.
const C_IRQF: u8 = 0x80;
/// Register C: periodic flag.
const C_PF: u8 = 0x40;
/// Register C: alarm flag.
const C_AF: u8 = 0x20;
/// Register C: update-ended flag.
const C_UF: u8 = 0x10;
/// Register D: valid RAM and time.
const D_VRT: u8 = 0x80;
/// Hours register, 12-hour mode: PM.
const HOUR_PM: u8 = 0x80;
/// Alarm "don't care" value (top two bits set).
const ALARM_ANY: u8 = 0xC0;

/// The time base of the divider chain.
const RTC_HZ: u64 = 32_768;
const NS_PER_SEC: u64 = 1_000_000_000;
/// 9999-12-31 23:59:59 UTC.
const MAX_UNIX: i64 = 253_402_300_799;

/// A calendar time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DateTime {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// 0 = Sunday.
    weekday: u32,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl DateTime {
    fn from_unix(secs: i64) -> DateTime {
        let secs = secs.clamp(0, MAX_UNIX);
        let days = secs / 86_400;
        let rem = (secs % 86_400) as u32;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
        DateTime {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
            weekday: ((days + 4) % 7) as u32,
        }
    }

    fn to_unix(self) -> i64 {
        let days = days_from_civil(self.year, self.month, self.day);
        days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }
}

/// The CMOS RTC.
#[derive(Clone, Debug)]
pub struct Rtc {
    ram: [u8; 128],
    index: u8,
    nmi_masked: bool,
    base_unix: i64,
    /// Seconds the guest moved the clock by.
    offset_secs: i64,
    /// The virtual second (now_ns / 1e9) of the last update.
    last_second: u64,
    /// The 32.768 kHz tick up to which periodic flags were set.
    periodic_checked: u64,
    /// IRQF rose and has not been reported yet.
    irq_edge: bool,
}

fn to_bcd(v: u32) -> u8 {
    (((v / 10 % 10) << 4) | (v % 10)) as u8
}

fn from_bcd(v: u8) -> u32 {
    u32::from(v >> 4) * 10 + u32::from(v & 0xF)
}

/// The 32.768 kHz divider tick at `now_ns`.
fn tick32_at(now_ns: u64) -> u64 {
    (now_ns as u128 * RTC_HZ as u128 / NS_PER_SEC as u128) as u64
}

/// The first ns at which [`tick32_at`] reaches `tick`.
fn ns_at_tick32(tick: u64) -> u64 {
    let ns = (tick as u128 * NS_PER_SEC as u128).div_ceil(RTC_HZ as u128);
    u64::try_from(ns).unwrap_or(u64::MAX)
}

impl Rtc {
    /// An RTC showing `wall_clock_unix_secs` at virtual time 0, 24-hour BCD mode, 1024 Hz
    /// periodic rate selected (not enabled), and CMOS memory describing `ram_bytes` of RAM.
    pub fn new(ram_bytes: u64, wall_clock_unix_secs: u64) -> Rtc {
        let mut rtc = Rtc {
            ram: [0; 128],
            index: 0,
            nmi_masked: false,
            base_unix: i64::try_from(wall_clock_unix_secs)
                .unwrap_or(MAX_UNIX)
                .min(MAX_UNIX),
            offset_secs: 0,
            last_second: 0,
            periodic_checked: 0,
            irq_edge: false,
        };
        rtc.ram[REG_A] = 0x26;
        rtc.ram[REG_B] = B_24H;
        rtc.ram[0x14] = 0x02; // Equipment: math coprocessor present.
        let [lo, hi] = 640u16.to_le_bytes(); // Base memory in KiB.
        rtc.ram[0x15] = lo;
        rtc.ram[0x16] = hi;
        let ext_kib = (ram_bytes / 1024).saturating_sub(1024).min(0xFFFF) as u16;
        let [lo, hi] = ext_kib.to_le_bytes();
        rtc.ram[0x17] = lo;
        rtc.ram[0x18] = hi;
        rtc.ram[0x30] = lo;
        rtc.ram[0x31] = hi;
        let above_16m = ram_bytes.min(1 << 32).saturating_sub(16 << 20) / 0x1_0000;
        let [lo, hi] = (above_16m.min(0xFFFF) as u16).to_le_bytes();
        rtc.ram[0x34] = lo;
        rtc.ram[0x35] = hi;
        let sum: u16 = rtc.ram[0x10..CHECKSUM].iter().map(|&b| u16::from(b)).sum();
        let [lo, hi] = sum.to_le_bytes();
        rtc.ram[CHECKSUM] = hi;
        rtc.ram[CHECKSUM + 1] = lo;
        rtc
    }

    /// Whether `port` is the RTC's.
    pub fn claims(port: u16) -> bool {
        matches!(port, INDEX | DATA)
    }

    /// Whether the guest masked NMI through the index port.
    pub fn nmi_masked(&self) -> bool {
        self.nmi_masked
    }

    /// The clock in unix seconds at `now_ns`.
    pub fn unix_time(&self, now_ns: u64) -> i64 {
        let elapsed = i64::try_from(now_ns / NS_PER_SEC).unwrap_or(i64::MAX);
        self.base_unix
            .saturating_add(self.offset_secs)
            .saturating_add(elapsed)
            .clamp(0, MAX_UNIX)
    }

    fn binary(&self) -> bool {
        self.ram[REG_B] & B_DM_BINARY != 0
    }

    fn encode(&self, v: u32) -> u8 {
        if self.binary() {
            v as u8
        } else {
            to_bcd(v)
        }
    }

    fn decode(&self, v: u8) -> u32 {
        if self.binary() {
            u32::from(v)
        } else {
            from_bcd(v)
        }
    }

    fn encode_hour(&self, hour: u32) -> u8 {
        if self.ram[REG_B] & B_24H != 0 {
            return self.encode(hour);
        }
        let h12 = if hour.is_multiple_of(12) {
            12
        } else {
            hour % 12
        };
        self.encode(h12) | if hour >= 12 { HOUR_PM } else { 0 }
    }

    fn decode_hour(&self, v: u8) -> u32 {
        if self.ram[REG_B] & B_24H != 0 {
            return self.decode(v);
        }
        self.decode(v & !HOUR_PM) % 12 + if v & HOUR_PM != 0 { 12 } else { 0 }
    }

    /// The value of time register `reg` for `dt`.
    fn time_register(&self, reg: usize, dt: &DateTime) -> u8 {
        match reg {
            SECONDS => self.encode(dt.second),
            MINUTES => self.encode(dt.minute),
            HOURS => self.encode_hour(dt.hour),
            WEEKDAY => self.encode(dt.weekday + 1),
            DAY => self.encode(dt.day),
            MONTH => self.encode(dt.month),
            YEAR => self.encode((dt.year % 100) as u32),
            _ => self.encode((dt.year / 100) as u32),
        }
    }

    fn is_time_register(reg: usize) -> bool {
        matches!(
            reg,
            SECONDS | MINUTES | HOURS | WEEKDAY | DAY | MONTH | YEAR | CENTURY
        )
    }

    /// Copies the running clock into the time registers.
    fn freeze(&mut self, now_ns: u64) {
        let dt = DateTime::from_unix(self.unix_time(now_ns));
        for reg in [SECONDS, MINUTES, HOURS, WEEKDAY, DAY, MONTH, YEAR, CENTURY] {
            self.ram[reg] = self.time_register(reg, &dt);
        }
    }

    /// Sets the running clock from the time registers.
    fn thaw(&mut self, now_ns: u64) {
        let r = |reg| self.decode(self.ram[reg]);
        let dt = DateTime {
            year: i64::from(r(CENTURY).min(99)) * 100 + i64::from(r(YEAR).min(99)),
            month: r(MONTH).clamp(1, 12),
            day: r(DAY).clamp(1, 31),
            hour: self.decode_hour(self.ram[HOURS]).min(23),
            minute: r(MINUTES).min(59),
            second: r(SECONDS).min(59),
            weekday: 0,
        };
        let elapsed = i64::try_from(now_ns / NS_PER_SEC).unwrap_or(i64::MAX);
        self.offset_secs = dt
            .to_unix()
            .saturating_sub(self.base_unix)
            .saturating_sub(elapsed);
    }

    /// Recomputes IRQF; a rising IRQF is an IRQ8 edge.
    fn refresh_irqf(&mut self) {
        let enabled = self.ram[REG_C] & self.ram[REG_B] & (C_PF | C_AF | C_UF);
        if enabled != 0 && self.ram[REG_C] & C_IRQF == 0 {
            self.ram[REG_C] |= C_IRQF;
            self.irq_edge = true;
        }
    }

    /// The periodic interrupt period in 32.768 kHz ticks, if the rate runs.
    fn periodic_ticks(&self) -> Option<u64> {
        let a = self.ram[REG_A];
        if a & A_DIVIDER_RESET == A_DIVIDER_RESET {
            return None;
        }
        match a & A_RATE {
            0 => None,
            rs @ (1 | 2) => Some(1 << (rs + 6)),
            rs => Some(1 << (rs - 1)),
        }
    }

    /// A byte read of `port` at `now_ns`; `None` if the port is not the RTC's.
    pub fn read(&mut self, port: u16, now_ns: u64) -> Option<u8> {
        match port {
            INDEX => Some(0xFF),
            DATA => Some(self.read_register(now_ns)),
            _ => None,
        }
    }

    fn read_register(&mut self, now_ns: u64) -> u8 {
        let reg = usize::from(self.index);
        match reg {
            _ if Self::is_time_register(reg) && self.ram[REG_B] & B_SET == 0 => {
                let dt = DateTime::from_unix(self.unix_time(now_ns));
                self.time_register(reg, &dt)
            }
            REG_A => self.ram[REG_A] & !A_UIP,
            REG_C => {
                self.update_flags(now_ns);
                std::mem::take(&mut self.ram[REG_C])
            }
            REG_D => D_VRT,
            _ => self.ram[reg],
        }
    }

    /// A byte write of `value` to `port` at `now_ns`; false if the port is not the RTC's.
    pub fn write(&mut self, port: u16, value: u8, now_ns: u64) -> bool {
        match port {
            INDEX => {
                self.nmi_masked = value & INDEX_NMI_MASK != 0;
                self.index = value & !INDEX_NMI_MASK;
            }
            DATA => self.write_register(value, now_ns),
            _ => return false,
        }
        true
    }

    fn write_register(&mut self, value: u8, now_ns: u64) {
        let reg = usize::from(self.index);
        let set = self.ram[REG_B] & B_SET != 0;
        match reg {
            _ if Self::is_time_register(reg) => {
                if !set {
                    self.freeze(now_ns);
                }
                self.ram[reg] = value;
                if !set {
                    self.thaw(now_ns);
                }
            }
            REG_A => {
                self.update_flags(now_ns);
                self.ram[REG_A] = value & !A_UIP;
            }
            REG_B => {
                self.update_flags(now_ns);
                let mut value = value;
                if value & B_SET != 0 {
                    if !set {
                        self.freeze(now_ns);
                    }
                    value &= !B_UIE;
                } else if set {
                    self.thaw(now_ns);
                }
                self.ram[REG_B] = value;
                self.refresh_irqf();
            }
            REG_C | REG_D => {} // Read-only.
            _ => self.ram[reg] = value,
        }
    }

    /// Sets the flags due by `now_ns`.
    fn update_flags(&mut self, now_ns: u64) {
        let t = tick32_at(now_ns);
        if let Some(p) = self.periodic_ticks() {
            if t / p > self.periodic_checked / p {
                self.ram[REG_C] |= C_PF;
            }
        }
        self.periodic_checked = self.periodic_checked.max(t);
        let second = now_ns / NS_PER_SEC;
        if second > self.last_second && self.ram[REG_B] & B_SET == 0 {
            self.ram[REG_C] |= C_UF;
            let dt = DateTime::from_unix(self.unix_time(now_ns));
            let matches = |alarm: u8, now: u8| alarm & ALARM_ANY == ALARM_ANY || alarm == now;
            if matches(self.ram[SECONDS_ALARM], self.time_register(SECONDS, &dt))
                && matches(self.ram[MINUTES_ALARM], self.time_register(MINUTES, &dt))
                && matches(self.ram[HOURS_ALARM], self.time_register(HOURS, &dt))
            {
                self.ram[REG_C] |= C_AF;
            }
        }
        self.last_second = self.last_second.max(second);
        self.refresh_irqf();
    }

    /// Advances to `now_ns`: whether IRQ8 fired (IRQF rose) since the last call.
    pub fn update(&mut self, now_ns: u64) -> bool {
        self.update_flags(now_ns);
        std::mem::take(&mut self.irq_edge)
    }

    /// When the next enabled interrupt condition occurs (periodic with PIE, the next second
    /// with UIE or AIE), after the last update or access.
    pub fn next_event_ns(&self) -> Option<u64> {
        let b = self.ram[REG_B];
        let periodic = match self.periodic_ticks() {
            Some(p) if b & B_PIE != 0 => {
                let next = (self.periodic_checked / p)
                    .saturating_add(1)
                    .saturating_mul(p);
                Some(ns_at_tick32(next))
            }
            _ => None,
        };
        let second = (b & (B_UIE | B_AIE) != 0 && b & B_SET == 0).then(|| {
            self.last_second
                .saturating_add(1)
                .saturating_mul(NS_PER_SEC)
        });
        match (periodic, second) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-02-29 13:45:30 UTC, a Thursday.
    const LEAP_DAY: u64 = 1_709_214_330;

    fn reg(rtc: &mut Rtc, index: u8, now: u64) -> u8 {
        rtc.write(INDEX, index, now);
        rtc.read(DATA, now).unwrap()
    }

    fn set_reg(rtc: &mut Rtc, index: u8, value: u8, now: u64) {
        rtc.write(INDEX, index, now);
        rtc.write(DATA, value, now);
    }

    #[test]
    fn calendar_conversion_round_trips() {
        for secs in [0, 951_782_400, 1_709_214_330, 4_107_542_399, MAX_UNIX] {
            let dt = DateTime::from_unix(secs);
            assert_eq!(dt.to_unix(), secs);
        }
        let dt = DateTime::from_unix(LEAP_DAY as i64);
        assert_eq!((dt.year, dt.month, dt.day), (2024, 2, 29));
        assert_eq!((dt.hour, dt.minute, dt.second, dt.weekday), (13, 45, 30, 4));
    }

    #[test]
    fn bcd_24h_time_advances_with_virtual_time() {
        let mut rtc = Rtc::new(0, LEAP_DAY);
        let now = 0;
        assert_eq!(reg(&mut rtc, 0x00, now), 0x30);
        assert_eq!(reg(&mut rtc, 0x02, now), 0x45);
        assert_eq!(reg(&mut rtc, 0x04, now), 0x13);
        assert_eq!(reg(&mut rtc, 0x06, now), 0x05, "Thursday is day 5");
        assert_eq!(reg(&mut rtc, 0x07, now), 0x29);
        assert_eq!(reg(&mut rtc, 0x08, now), 0x02);
        assert_eq!(reg(&mut rtc, 0x09, now), 0x24);
        assert_eq!(reg(&mut rtc, 0x32, now), 0x20);
        // 10 h 14 min 31 s later: midnight, March 1st.
        let later = (10 * 3600 + 14 * 60 + 30) * NS_PER_SEC;
        assert_eq!(reg(&mut rtc, 0x00, later), 0x00);
        assert_eq!(reg(&mut rtc, 0x04, later), 0x00);
        assert_eq!(reg(&mut rtc, 0x07, later), 0x01);
        assert_eq!(reg(&mut rtc, 0x08, later), 0x03);
    }

    #[test]
    fn binary_and_12_hour_modes() {
        let mut rtc = Rtc::new(0, LEAP_DAY);
        set_reg(&mut rtc, 0x0B, B_DM_BINARY, 0); // binary, 12 h
        assert_eq!(reg(&mut rtc, 0x04, 0), HOUR_PM | 1);
        assert_eq!(reg(&mut rtc, 0x02, 0), 45);
        assert_eq!(reg(&mut rtc, 0x09, 0), 24);
        set_reg(&mut rtc, 0x0B, 0, 0); // BCD, 12 h
        let midnight = (10 * 3600 + 14 * 60 + 30) * NS_PER_SEC;
        assert_eq!(reg(&mut rtc, 0x04, midnight), 0x12, "12 AM");
    }

    #[test]
    fn guest_sets_the_clock_with_the_set_bit() {
        let mut rtc = Rtc::new(0, LEAP_DAY);
        set_reg(&mut rtc, 0x0B, B_SET | B_24H, 0);
        let frozen = reg(&mut rtc, 0x00, 5 * NS_PER_SEC);
        assert_eq!(frozen, 0x30, "updates are inhibited while SET");
        set_reg(&mut rtc, 0x09, 0x99, 0);
        set_reg(&mut rtc, 0x32, 0x19, 0);
        set_reg(&mut rtc, 0x08, 0x12, 0);
        set_reg(&mut rtc, 0x07, 0x31, 0);
        set_reg(&mut rtc, 0x04, 0x23, 0);
        set_reg(&mut rtc, 0x02, 0x59, 0);
        set_reg(&mut rtc, 0x00, 0x58, 0);
        set_reg(&mut rtc, 0x0B, B_24H, 10 * NS_PER_SEC);
        assert_eq!(reg(&mut rtc, 0x00, 11 * NS_PER_SEC), 0x59);
        assert_eq!(reg(&mut rtc, 0x00, 12 * NS_PER_SEC), 0x00);
        assert_eq!(reg(&mut rtc, 0x32, 12 * NS_PER_SEC), 0x20);
        assert_eq!(reg(&mut rtc, 0x09, 12 * NS_PER_SEC), 0x00);
        assert_eq!(rtc.unix_time(12 * NS_PER_SEC), 946_684_800);
        // A single register written while running moves the clock too.
        set_reg(&mut rtc, 0x04, 0x05, 12 * NS_PER_SEC);
        assert_eq!(rtc.unix_time(12 * NS_PER_SEC), 946_684_800 + 5 * 3600);
    }

    #[test]
    fn periodic_interrupt_rate_and_register_c() {
        let mut rtc = Rtc::new(0, LEAP_DAY);
        assert_eq!(rtc.next_event_ns(), None, "PIE clear");
        set_reg(&mut rtc, 0x0A, 0x26, 0); // 1024 Hz
        set_reg(&mut rtc, 0x0B, B_24H | B_PIE, 0);
        let period = ns_at_tick32(32);
        assert_eq!(rtc.next_event_ns(), Some(period));
        assert!(!rtc.update(period - 1));
        assert!(rtc.update(period));
        assert!(
            !rtc.update(2 * period + 1000),
            "IRQF still set: no new edge"
        );
        assert_eq!(reg(&mut rtc, 0x0C, 2 * period + 1000), C_IRQF | C_PF);
        assert_eq!(reg(&mut rtc, 0x0C, 2 * period + 1000), 0, "read clears");
        assert!(rtc.update(ns_at_tick32(96)));
        // 2 Hz: rate select 15.
        set_reg(&mut rtc, 0x0A, 0x2F, ns_at_tick32(96));
        reg(&mut rtc, 0x0C, ns_at_tick32(96));
        assert_eq!(rtc.next_event_ns(), Some(500_000_000));
        // Rate 1 is 256 Hz.
        set_reg(&mut rtc, 0x0A, 0x21, ns_at_tick32(96));
        assert_eq!(rtc.next_event_ns(), Some(ns_at_tick32(128)));
        // A divider in reset stops it.
        set_reg(&mut rtc, 0x0A, 0x66, ns_at_tick32(96));
        assert_eq!(rtc.next_event_ns(), None);
    }

    #[test]
    fn pf_is_set_without_pie_and_enabling_pie_raises_irq8() {
        let mut rtc = Rtc::new(0, LEAP_DAY);
        assert!(!rtc.update(10_000_000));
        set_reg(&mut rtc, 0x0B, B_24H | B_PIE, 10_000_000);
        assert!(rtc.update(10_000_000));
    }

    #[test]
    fn update_ended_and_alarm() {
        let mut rtc = Rtc::new(0, LEAP_DAY);
        set_reg(&mut rtc, 0x0A, 0x20, 0); // no periodic rate: PF stays clear
        set_reg(&mut rtc, 0x01, 0x32, 0); // alarm at xx:xx:32 ...
        set_reg(&mut rtc, 0x03, 0xC0, 0); // ... any minute
        set_reg(&mut rtc, 0x05, 0xFF, 0); // ... any hour
        set_reg(&mut rtc, 0x0B, B_24H | B_UIE | B_AIE, 0);
        assert_eq!(rtc.next_event_ns(), Some(NS_PER_SEC));
        assert!(rtc.update(NS_PER_SEC));
        assert_eq!(reg(&mut rtc, 0x0C, NS_PER_SEC), C_IRQF | C_UF);
        assert!(rtc.update(2 * NS_PER_SEC));
        assert_eq!(reg(&mut rtc, 0x0C, 2 * NS_PER_SEC), C_IRQF | C_UF | C_AF);
        // SET clears UIE.
        set_reg(&mut rtc, 0x0B, B_SET | B_UIE, 2 * NS_PER_SEC);
        assert_eq!(reg(&mut rtc, 0x0B, 2 * NS_PER_SEC), B_SET);
    }

    #[test]
    fn cmos_memory_layout() {
        let mut rtc = Rtc::new(32 << 20, 0);
        assert_eq!(reg(&mut rtc, 0x15, 0), 0x80);
        assert_eq!(reg(&mut rtc, 0x16, 0), 0x02);
        let ext = 31 * 1024;
        assert_eq!(reg(&mut rtc, 0x17, 0), ext as u8);
        assert_eq!(reg(&mut rtc, 0x18, 0), (ext >> 8) as u8);
        assert_eq!(reg(&mut rtc, 0x30, 0), ext as u8);
        assert_eq!(reg(&mut rtc, 0x31, 0), (ext >> 8) as u8);
        let above = (16u32 << 20) / 0x1_0000;
        assert_eq!(reg(&mut rtc, 0x34, 0), above as u8);
        assert_eq!(reg(&mut rtc, 0x35, 0), (above >> 8) as u8);
        assert_eq!(reg(&mut rtc, 0x0D, 0), D_VRT);
        assert_eq!(reg(&mut rtc, 0x0F, 0), 0, "shutdown status");
        let sum: u32 = (0x10..0x2E).map(|i| u32::from(reg(&mut rtc, i, 0))).sum();
        let stored = (u32::from(reg(&mut rtc, 0x2E, 0)) << 8) | u32::from(reg(&mut rtc, 0x2F, 0));
        assert_eq!(sum, stored);
        // Large memory saturates.
        let mut big = Rtc::new(64 << 30, 0);
        assert_eq!(reg(&mut big, 0x17, 0), 0xFF);
        assert_eq!(reg(&mut big, 0x35, 0), 0xFF);
        assert_eq!(reg(&mut big, 0x34, 0), 0x00);
        // Scratch RAM and the shutdown byte are writable; C and D are not.
        set_reg(&mut rtc, 0x0F, 0x0A, 0);
        assert_eq!(reg(&mut rtc, 0x0F, 0), 0x0A);
        set_reg(&mut rtc, 0x7F, 0x5A, 0);
        assert_eq!(reg(&mut rtc, 0x7F, 0), 0x5A);
        set_reg(&mut rtc, 0x0D, 0, 0);
        assert_eq!(reg(&mut rtc, 0x0D, 0), D_VRT);
    }

    #[test]
    fn index_port_masks_nmi_and_wraps_to_7_bits() {
        let mut rtc = Rtc::new(0, 0);
        rtc.write(INDEX, 0x80 | 0x0F, 0);
        assert!(rtc.nmi_masked());
        rtc.write(DATA, 0x33, 0);
        rtc.write(INDEX, 0x0F, 0);
        assert!(!rtc.nmi_masked());
        assert_eq!(rtc.read(DATA, 0), Some(0x33));
        assert_eq!(rtc.read(0x72, 0), None);
    }

    #[test]
    fn hostile_writes_do_not_panic() {
        let mut rtc = Rtc::new(u64::MAX, u64::MAX);
        for i in 0..=255u8 {
            for v in [0x00, 0x7F, 0x80, 0x99, 0xFF, i] {
                set_reg(&mut rtc, i, v, u64::from(i) * 7_777_777);
                let _ = reg(&mut rtc, i, u64::MAX - u64::from(i));
                rtc.update(u64::from(v) << 40);
                let _ = rtc.next_event_ns();
            }
        }
        rtc.update(u64::MAX);
        assert!(rtc.unix_time(u64::MAX) <= MAX_UNIX);
    }
}
