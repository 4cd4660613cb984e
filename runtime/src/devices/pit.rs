//! The 8254 programmable interval timer (ports 0x40–0x43) and the timer bits of system control
//! port B (0x61: channel 2 gate, speaker data, refresh toggle, channel 2 output).
//!
//! A pure register model clocked by virtual time: every access carries `now_ns`, and the
//! counters are derived from the 1.193182 MHz input clock as `ticks = now_ns * 1193182 / 1e9`
//! (u128 math, absolute since time 0), so nothing drifts however often the model is looked at.
//! Channel 0's output drives ISA IRQ0: [`Pit::update`] reports whether it rose since the last
//! call (several missed periods are reported once, as a PIC's edge latch would see them), and
//! [`Pit::next_event_ns`] says when it rises next.
//!
//! Deliberate simplifications:
//! - A count takes effect on the write itself rather than on the next input clock, and in modes
//!   2 and 3 a new count restarts the period at once instead of at the next reload.
//! - Mode 3 with an odd count has the exact high/low durations, but the counter value read back
//!   is only approximate (`N - 2d mod N`).
//! - Counts of 1 in modes 2 and 3 (illegal on the chip) behave as 2.
//! - Port 0x61's refresh toggle flips every 15.085 µs of virtual time; parity/IOCHK bits read 0.
//!
//! Invariants: a channel's state only changes after the IRQ edges it produced up to that
//! moment were collected, so reprogramming never loses a pending edge; all tick arithmetic is
//! saturating or widened, so no guest count can overflow.

/// The input clock, in Hz.
pub const PIT_HZ: u64 = 1_193_182;
/// First channel data port.
pub const CHANNEL0: u16 = 0x40;
/// The mode/command port.
pub const COMMAND: u16 = 0x43;
/// System control port B.
pub const PORT_B: u16 = 0x61;

/// Port B: channel 2 gate.
const PORT_B_GATE2: u8 = 0x01;
/// Port B: speaker data enable.
const PORT_B_SPEAKER: u8 = 0x02;
/// Port B: DRAM refresh toggle (read only).
const PORT_B_REFRESH: u8 = 0x10;
/// Port B: channel 2 output (read only).
const PORT_B_OUT2: u8 = 0x20;
/// Half period of the refresh toggle, in ns.
const REFRESH_HALF_NS: u64 = 15_085;

/// Command: the select field value of the read-back command.
const SELECT_READ_BACK: u8 = 3;
/// Read-back: do not latch the count (active low).
const READ_BACK_NO_COUNT: u8 = 0x20;
/// Read-back: do not latch the status (active low).
const READ_BACK_NO_STATUS: u8 = 0x10;
/// Status byte: the output pin.
const STATUS_OUT: u8 = 0x80;
/// Status byte: null count (a count was written but not loaded yet).
const STATUS_NULL_COUNT: u8 = 0x40;

/// Access modes (command bits 5:4).
const ACCESS_LATCH: u8 = 0;
const ACCESS_LO: u8 = 1;
const ACCESS_HI: u8 = 2;
const ACCESS_LO_HI: u8 = 3;

/// The input-clock tick at `now_ns`.
pub fn tick_at(now_ns: u64) -> u64 {
    (now_ns as u128 * PIT_HZ as u128 / 1_000_000_000) as u64
}

/// The first ns at which [`tick_at`] reaches `tick`.
pub fn ns_at_tick(tick: u64) -> u64 {
    let ns = (tick as u128 * 1_000_000_000).div_ceil(PIT_HZ as u128);
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// What a channel's counting element is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Counting {
    /// No count written since the mode was set.
    Idle,
    /// Modes 1 and 5: count written, waiting for a gate trigger.
    Armed,
    /// Counting since input tick `start`.
    Running { start: u64 },
    /// Gate low: stopped `elapsed` ticks after the start.
    Paused { elapsed: u64 },
}

/// One counter.
#[derive(Clone, Debug)]
struct Channel {
    mode: u8,
    access: u8,
    bcd: bool,
    /// The count as written (0 means the maximum).
    reload: u16,
    gate: bool,
    counting: Counting,
    null_count: bool,
    /// Lo/hi access: the low byte written, waiting for the high one.
    write_lo: Option<u8>,
    /// Lo/hi access: the next read returns the high byte.
    read_hi_next: bool,
    /// A latched count.
    latch: Option<u16>,
    /// A latched status byte.
    status: Option<u8>,
    /// Input tick up to which output edges were collected.
    checked: u64,
    /// Rising output edges collected but not yet taken.
    edges: u64,
}

impl Channel {
    /// The PC's post-firmware state: mode 3, count 65536, running from time 0.
    fn new(gate: bool) -> Channel {
        Channel {
            mode: 3,
            access: ACCESS_LO_HI,
            bcd: false,
            reload: 0,
            gate,
            counting: if gate {
                Counting::Running { start: 0 }
            } else {
                Counting::Paused { elapsed: 0 }
            },
            null_count: false,
            write_lo: None,
            read_hi_next: false,
            latch: None,
            status: None,
            checked: 0,
            edges: 0,
        }
    }

    /// The counter's modulus: 65536 in binary, 10000 in BCD.
    fn modulus(&self) -> u64 {
        if self.bcd {
            10_000
        } else {
            0x1_0000
        }
    }

    /// The count N in input ticks.
    fn period(&self) -> u64 {
        let raw = if self.bcd {
            let r = self.reload as u64;
            (r >> 12) * 1000 + ((r >> 8) & 0xF) * 100 + ((r >> 4) & 0xF) * 10 + (r & 0xF)
        } else {
            self.reload as u64
        };
        let n = if raw == 0 { self.modulus() } else { raw };
        if matches!(self.mode, 2 | 3) {
            n.max(2)
        } else {
            n
        }
    }

    /// Ticks counted at input tick `t`, if counting has begun.
    fn elapsed(&self, t: u64) -> Option<u64> {
        match self.counting {
            Counting::Running { start } => Some(t.saturating_sub(start)),
            Counting::Paused { elapsed } => Some(elapsed),
            Counting::Idle | Counting::Armed => None,
        }
    }

    /// The output pin at input tick `t`.
    fn out(&self, t: u64) -> bool {
        let n = self.period();
        let Some(d) = self.elapsed(t) else {
            return self.mode != 0;
        };
        let paused = matches!(self.counting, Counting::Paused { .. });
        match self.mode {
            0 | 1 => d >= n,
            2 if paused => true,
            2 => d % n != n - 1,
            3 if paused => true,
            3 => d % n < n.div_ceil(2),
            _ => d != n,
        }
    }

    /// The counter value (binary) at input tick `t`.
    fn count(&self, t: u64) -> u64 {
        let n = self.period();
        let m = self.modulus();
        let Some(d) = self.elapsed(t) else {
            return n % m;
        };
        let v = match self.mode {
            2 => n - d % n,
            3 => n - (2 * (d % n)) % n,
            _ => n + m - d % m,
        };
        v % m
    }

    /// The first output rising edge after `d` ticks of counting, in ticks from the start.
    fn next_edge_after(&self, d: u64) -> Option<u64> {
        let n = self.period();
        match self.mode {
            0 | 1 => (d < n).then_some(n),
            2 | 3 => Some((d / n).saturating_add(1).saturating_mul(n)),
            _ => (d <= n).then_some(n + 1),
        }
    }

    /// Rising output edges in (a, b] ticks from the start.
    fn edges_between(&self, a: u64, b: u64) -> u64 {
        if b <= a {
            return 0;
        }
        let n = self.period();
        match self.mode {
            2 | 3 => b / n - a / n,
            0 | 1 => u64::from(a < n && n <= b),
            _ => u64::from(a <= n && n < b),
        }
    }

    /// Collects the output edges up to input tick `t`.
    fn collect(&mut self, t: u64) {
        if let Counting::Running { start } = self.counting {
            let a = self.checked.max(start) - start;
            let b = t.saturating_sub(start);
            self.edges = self.edges.saturating_add(self.edges_between(a, b));
        }
        self.checked = self.checked.max(t);
    }

    /// Starts counting from zero at input tick `t`.
    fn start(&mut self, t: u64) {
        self.counting = Counting::Running { start: t };
        self.checked = t;
    }

    /// The count register was written: load it.
    fn load(&mut self, t: u64) {
        self.null_count = false;
        match self.mode {
            1 | 5 => {
                if !matches!(self.counting, Counting::Running { .. }) {
                    self.counting = Counting::Armed;
                }
            }
            _ if self.gate => self.start(t),
            _ => self.counting = Counting::Paused { elapsed: 0 },
        }
    }

    /// A control word selecting this channel with a non-latch access mode.
    fn program(&mut self, access: u8, mode: u8, bcd: bool) {
        self.access = access;
        self.mode = if mode > 5 { mode - 4 } else { mode };
        self.bcd = bcd;
        self.counting = Counting::Idle;
        self.null_count = true;
        self.write_lo = None;
        self.read_hi_next = false;
        self.latch = None;
        self.status = None;
    }

    /// Counter-latch command.
    fn latch_count(&mut self, t: u64) {
        if self.latch.is_none() {
            self.latch = Some(self.count_register(t));
            self.read_hi_next = false;
        }
    }

    /// The counter as the guest reads it (BCD-encoded in BCD mode).
    fn count_register(&self, t: u64) -> u16 {
        let v = self.count(t);
        if self.bcd {
            (((v / 1000 % 10) << 12) | ((v / 100 % 10) << 8) | ((v / 10 % 10) << 4) | (v % 10))
                as u16
        } else {
            v as u16
        }
    }

    /// The read-back status byte.
    fn status_byte(&self, t: u64) -> u8 {
        let mut s = (self.access << 4) | (self.mode << 1) | u8::from(self.bcd);
        if self.out(t) {
            s |= STATUS_OUT;
        }
        if self.null_count {
            s |= STATUS_NULL_COUNT;
        }
        s
    }

    /// A read of the channel's data port.
    fn read(&mut self, t: u64) -> u8 {
        if let Some(s) = self.status.take() {
            return s;
        }
        let (value, from_latch) = match self.latch {
            Some(v) => (v, true),
            None => (self.count_register(t), false),
        };
        let [lo, hi] = value.to_le_bytes();
        let (byte, done) = match self.access {
            ACCESS_LO => (lo, true),
            ACCESS_HI => (hi, true),
            _ if self.read_hi_next => (hi, true),
            _ => (lo, false),
        };
        self.read_hi_next = !done;
        if done && from_latch {
            self.latch = None;
        }
        byte
    }

    /// A write of the channel's data port.
    fn write(&mut self, value: u8, t: u64) {
        self.null_count = true;
        match self.access {
            ACCESS_LO => self.reload = value as u16,
            ACCESS_HI => self.reload = (value as u16) << 8,
            _ => match self.write_lo.take() {
                None => {
                    self.write_lo = Some(value);
                    if self.mode == 0 {
                        // Writing the first byte stops a mode 0 count.
                        self.counting = Counting::Idle;
                    }
                    return;
                }
                Some(lo) => self.reload = u16::from_le_bytes([lo, value]),
            },
        }
        self.load(t);
    }

    /// Drives the gate input.
    fn set_gate(&mut self, gate: bool, t: u64) {
        let rising = gate && !self.gate;
        let falling = !gate && self.gate;
        self.gate = gate;
        match (self.mode, self.counting) {
            (
                1 | 5 | 2 | 3,
                Counting::Armed | Counting::Running { .. } | Counting::Paused { .. },
            ) if rising => self.start(t),
            (0 | 4, Counting::Paused { elapsed }) if rising => {
                self.counting = Counting::Running {
                    start: t.saturating_sub(elapsed),
                };
                self.checked = t;
            }
            (0 | 2 | 3 | 4, Counting::Running { start }) if falling => {
                self.counting = Counting::Paused {
                    elapsed: t.saturating_sub(start),
                };
            }
            _ => {}
        }
    }
}

/// The 8254 with its three channels (0: IRQ0, 1: refresh, 2: speaker/port B).
#[derive(Clone, Debug)]
pub struct Pit {
    channels: [Channel; 3],
    speaker: bool,
    /// Channel 0 rising edges reported by [`Pit::update`] over the VM's life.
    irq0_edges: u64,
}

impl Default for Pit {
    fn default() -> Self {
        Pit::new()
    }
}

impl Pit {
    /// The state firmware leaves: all channels in mode 3 with count 65536 (18.2 Hz), channels
    /// 0 and 1 running from time 0, channel 2's gate low.
    pub fn new() -> Pit {
        Pit {
            channels: [Channel::new(true), Channel::new(true), Channel::new(false)],
            speaker: false,
            irq0_edges: 0,
        }
    }

    /// Whether `port` is the PIT's (0x40–0x43, 0x61).
    pub fn claims(port: u16) -> bool {
        matches!(port, CHANNEL0..=COMMAND | PORT_B)
    }

    fn collect_all(&mut self, t: u64) {
        for ch in &mut self.channels {
            ch.collect(t);
        }
    }

    /// A byte read of `port` at `now_ns`; `None` if the port is not the PIT's.
    pub fn read(&mut self, port: u16, now_ns: u64) -> Option<u8> {
        let t = tick_at(now_ns);
        match port {
            0x40..=0x42 => Some(self.channels[usize::from(port - CHANNEL0)].read(t)),
            COMMAND => Some(0xFF), // Write-only.
            PORT_B => {
                let mut v = if self.speaker { PORT_B_SPEAKER } else { 0 };
                if self.channels[2].gate {
                    v |= PORT_B_GATE2;
                }
                if (now_ns / REFRESH_HALF_NS) & 1 != 0 {
                    v |= PORT_B_REFRESH;
                }
                if self.channels[2].out(t) {
                    v |= PORT_B_OUT2;
                }
                Some(v)
            }
            _ => None,
        }
    }

    /// A byte write of `value` to `port` at `now_ns`; false if the port is not the PIT's.
    pub fn write(&mut self, port: u16, value: u8, now_ns: u64) -> bool {
        let t = tick_at(now_ns);
        self.collect_all(t);
        match port {
            0x40..=0x42 => self.channels[usize::from(port - CHANNEL0)].write(value, t),
            COMMAND => self.command(value, t),
            PORT_B => {
                self.speaker = value & PORT_B_SPEAKER != 0;
                self.channels[2].set_gate(value & PORT_B_GATE2 != 0, t);
            }
            _ => return false,
        }
        true
    }

    /// A mode/command word.
    fn command(&mut self, value: u8, t: u64) {
        let select = value >> 6;
        if select == SELECT_READ_BACK {
            for (i, ch) in self.channels.iter_mut().enumerate() {
                if value & (2 << i) == 0 {
                    continue;
                }
                if value & READ_BACK_NO_STATUS == 0 && ch.status.is_none() {
                    ch.status = Some(ch.status_byte(t));
                }
                if value & READ_BACK_NO_COUNT == 0 {
                    ch.latch_count(t);
                }
            }
            return;
        }
        let ch = &mut self.channels[usize::from(select)];
        match (value >> 4) & 3 {
            ACCESS_LATCH => ch.latch_count(t),
            access => ch.program(access, (value >> 1) & 7, value & 1 != 0),
        }
    }

    /// Advances to `now_ns`: whether channel 0's output rose (IRQ0 edge) since the last call.
    pub fn update(&mut self, now_ns: u64) -> bool {
        self.collect_all(tick_at(now_ns));
        let ch = &mut self.channels[0];
        let rose = ch.edges != 0;
        self.irq0_edges = self.irq0_edges.saturating_add(ch.edges);
        for ch in &mut self.channels {
            ch.edges = 0;
        }
        rose
    }

    /// When channel 0's output next rises after the last [`Pit::update`] (or access), if it
    /// is counting towards an edge.
    pub fn next_event_ns(&self) -> Option<u64> {
        let ch = &self.channels[0];
        let Counting::Running { start } = ch.counting else {
            return None;
        };
        let from = ch.checked.max(start) - start;
        let edge = ch.next_edge_after(from)?;
        Some(ns_at_tick(start.saturating_add(edge)))
    }

    /// The output pin of `channel` (0–2) at `now_ns`.
    pub fn output(&self, channel: usize, now_ns: u64) -> bool {
        self.channels
            .get(channel)
            .is_some_and(|ch| ch.out(tick_at(now_ns)))
    }

    /// The counter of `channel` (0–2) at `now_ns` (binary, 0 for a bad channel).
    pub fn count(&self, channel: usize, now_ns: u64) -> u16 {
        self.channels
            .get(channel)
            .map_or(0, |ch| ch.count_register(tick_at(now_ns)))
    }

    /// Channel 0 rising edges over the VM's life (missed ones included).
    pub fn irq0_edges(&self) -> u64 {
        self.irq0_edges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Programs `channel` with `mode`, lo/hi access, binary, count `n`.
    fn program(pit: &mut Pit, channel: u8, mode: u8, n: u16, now: u64) {
        pit.write(COMMAND, (channel << 6) | 0x30 | (mode << 1), now);
        let [lo, hi] = n.to_le_bytes();
        pit.write(CHANNEL0 + channel as u16, lo, now);
        pit.write(CHANNEL0 + channel as u16, hi, now);
    }

    /// Latches and reads channel `c`'s count (lo/hi access).
    fn latched(pit: &mut Pit, c: u8, now: u64) -> u16 {
        pit.write(COMMAND, c << 6, now);
        let lo = pit.read(CHANNEL0 + c as u16, now).unwrap();
        let hi = pit.read(CHANNEL0 + c as u16, now).unwrap();
        u16::from_le_bytes([lo, hi])
    }

    #[test]
    fn tick_conversion_has_no_drift() {
        assert_eq!(tick_at(1_000_000_000), PIT_HZ);
        assert_eq!(tick_at(3_600_000_000_000), PIT_HZ * 3600);
        for t in [0, 1, 1193, 1_193_182, 123_456_789] {
            let ns = ns_at_tick(t);
            assert_eq!(tick_at(ns), t);
            assert!(ns == 0 || tick_at(ns - 1) < t);
        }
        assert_eq!(
            tick_at(u64::MAX),
            (u64::MAX as u128 * 1_193_182 / 1_000_000_000) as u64
        );
        assert_eq!(ns_at_tick(u64::MAX), u64::MAX);
    }

    #[test]
    fn reset_state_is_the_bios_18_2_hz_square_wave() {
        let mut pit = Pit::new();
        let period = ns_at_tick(65_536);
        assert_eq!(pit.next_event_ns(), Some(period));
        assert!(!pit.update(period - 1));
        assert!(pit.update(period));
        assert!(
            pit.output(2, 0),
            "channel 2's gate is low: mode 3 holds the output high"
        );
    }

    #[test]
    fn mode2_rate_generator_period() {
        let mut pit = Pit::new();
        pit.update(0);
        // 1193 ticks: ~1 kHz (Linux HZ=1000's LATCH).
        program(&mut pit, 0, 2, 1193, 1000);
        let start = tick_at(1000);
        let first = ns_at_tick(start + 1193);
        assert_eq!(pit.next_event_ns(), Some(first));
        assert!(!pit.update(first - 1));
        assert!(
            !pit.output(0, first - 1),
            "low for the tick before the reload"
        );
        assert!(pit.update(first));
        let second = ns_at_tick(start + 2 * 1193);
        assert_eq!(pit.next_event_ns(), Some(second));
        // Output low for exactly one tick before each reload.
        assert!(!pit.output(0, ns_at_tick(start + 2 * 1193 - 1)));
        assert!(pit.output(0, ns_at_tick(start + 2 * 1193 - 2)));
        // Counter counts down N..1.
        assert_eq!(latched(&mut pit, 0, ns_at_tick(start + 1193 + 10)), 1183);
        // Ten missed periods are one edge (one IRQ0), counted.
        assert!(pit.update(ns_at_tick(start + 12 * 1193)));
        assert_eq!(pit.irq0_edges(), 1 + 11);
        assert!(!pit.update(ns_at_tick(start + 12 * 1193)));
    }

    #[test]
    fn mode0_interrupt_on_terminal_count_fires_once() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 0, 100, 0);
        assert!(!pit.output(0, 0));
        assert_eq!(pit.next_event_ns(), Some(ns_at_tick(100)));
        assert!(!pit.update(ns_at_tick(99)));
        assert!(pit.update(ns_at_tick(100)));
        assert!(pit.output(0, ns_at_tick(100)));
        assert_eq!(pit.next_event_ns(), None);
        assert!(!pit.update(ns_at_tick(1_000_000)));
        // The counter keeps wrapping.
        assert_eq!(pit.count(0, ns_at_tick(101)), 0xFFFF);
    }

    #[test]
    fn mode3_square_wave_duty_cycle() {
        let mut pit = Pit::new();
        program(&mut pit, 1, 3, 5, 0);
        let out = |pit: &Pit, t| pit.output(1, ns_at_tick(t));
        let wave: Vec<bool> = (0..10).map(|t| out(&pit, t)).collect();
        assert_eq!(
            wave,
            [true, true, true, false, false, true, true, true, false, false]
        );
    }

    #[test]
    fn mode4_strobe_and_mode1_one_shot_on_gate() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 4, 10, 0);
        assert!(pit.output(0, ns_at_tick(9)));
        assert!(!pit.output(0, ns_at_tick(10)));
        assert!(pit.output(0, ns_at_tick(11)));
        assert_eq!(pit.next_event_ns(), Some(ns_at_tick(11)));
        assert!(pit.update(ns_at_tick(11)));

        // Mode 1 on channel 2, triggered through port B.
        program(&mut pit, 2, 1, 50, 0);
        assert!(pit.output(2, ns_at_tick(100)), "armed, not triggered");
        pit.write(PORT_B, PORT_B_GATE2, ns_at_tick(100));
        assert!(!pit.output(2, ns_at_tick(100)));
        assert!(!pit.output(2, ns_at_tick(149)));
        assert!(pit.output(2, ns_at_tick(150)));
        assert_eq!(pit.read(PORT_B, ns_at_tick(150)).unwrap() & 0x21, 0x21);
    }

    #[test]
    fn channel2_gate_pauses_mode0_like_tsc_calibration() {
        let mut pit = Pit::new();
        pit.write(PORT_B, 0, 0);
        program(&mut pit, 2, 0, 0xFFFF, 0);
        assert_eq!(
            pit.count(2, ns_at_tick(500)),
            0xFFFF,
            "gate low: not counting"
        );
        pit.write(PORT_B, PORT_B_GATE2, ns_at_tick(500));
        assert_eq!(pit.count(2, ns_at_tick(600)), 0xFFFF - 100);
        pit.write(PORT_B, 0, ns_at_tick(600));
        assert_eq!(pit.count(2, ns_at_tick(900)), 0xFFFF - 100, "paused");
        pit.write(PORT_B, PORT_B_GATE2, ns_at_tick(900));
        assert_eq!(pit.count(2, ns_at_tick(1000)), 0xFFFF - 200);
        assert_eq!(pit.read(PORT_B, ns_at_tick(1000)).unwrap() & PORT_B_OUT2, 0);
        assert_ne!(
            pit.read(PORT_B, ns_at_tick(900 + 0xFFFF)).unwrap() & PORT_B_OUT2,
            0
        );
    }

    #[test]
    fn access_modes_and_latch() {
        let mut pit = Pit::new();
        // Lobyte only.
        pit.write(COMMAND, 0x10 | (2 << 1), 0);
        pit.write(0x40, 200, 0);
        assert_eq!(pit.count(0, ns_at_tick(50)), 150);
        assert_eq!(pit.read(0x40, ns_at_tick(50)), Some(150));
        // Hibyte only: count 0x0200.
        pit.write(COMMAND, 0x20 | (2 << 1), 0);
        pit.write(0x40, 2, 0);
        assert_eq!(pit.read(0x40, ns_at_tick(1)), Some(0x01));
        // Lo/hi live reads alternate; a latch freezes the value until both bytes are read.
        program(&mut pit, 0, 2, 0x1234, 0);
        pit.write(COMMAND, 0x00, ns_at_tick(0x34));
        assert_eq!(pit.read(0x40, ns_at_tick(0x200)), Some(0x00));
        pit.write(COMMAND, 0x00, ns_at_tick(0x300)); // ignored: already latched
        assert_eq!(pit.read(0x40, ns_at_tick(0x400)), Some(0x12));
        assert_eq!(latched(&mut pit, 0, ns_at_tick(0x1000)), 0x0234);
    }

    #[test]
    fn read_back_status_and_count() {
        let mut pit = Pit::new();
        pit.write(COMMAND, 0xB0 | (2 << 1), 0); // channel 2, lo/hi, mode 2
                                                // Status with null count before the count is written.
        pit.write(COMMAND, 0xE8, 0); // read-back status only, channel 2
        assert_eq!(
            pit.read(0x42, 0),
            Some(STATUS_OUT | STATUS_NULL_COUNT | 0x34)
        );
        pit.write(0x42, 0x10, 0);
        pit.write(0x42, 0x00, 0);
        pit.write(PORT_B, PORT_B_GATE2, 0);
        // Status and count together: status first.
        pit.write(COMMAND, 0xC8, ns_at_tick(4));
        assert_eq!(pit.read(0x42, ns_at_tick(9)), Some(STATUS_OUT | 0x34));
        assert_eq!(pit.read(0x42, ns_at_tick(9)), Some(12));
        assert_eq!(pit.read(0x42, ns_at_tick(9)), Some(0));
    }

    #[test]
    fn bcd_counting() {
        let mut pit = Pit::new();
        pit.write(COMMAND, 0x30 | (2 << 1) | 1, 0);
        pit.write(0x40, 0x00, 0);
        pit.write(0x40, 0x10, 0); // 1000 decimal
        assert_eq!(pit.count(0, ns_at_tick(1)), 0x0999);
        assert_eq!(pit.next_event_ns(), Some(ns_at_tick(1000)));
    }

    #[test]
    fn reprogramming_keeps_an_edge_already_due() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 2, 100, 0);
        pit.update(0);
        program(&mut pit, 0, 2, 100, ns_at_tick(150));
        assert!(
            pit.update(ns_at_tick(160)),
            "the edge at tick 100 was collected"
        );
    }

    #[test]
    fn hostile_sequences_do_not_panic() {
        let mut pit = Pit::new();
        let mut now = 0u64;
        for i in 0..5000u32 {
            let v = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
            let port = [0x40, 0x41, 0x42, 0x43, 0x61][(i % 5) as usize];
            if i % 3 == 0 {
                pit.read(port, now);
            } else {
                pit.write(port, v, now);
            }
            now = now.wrapping_add(u64::from(v) * 997);
            pit.update(now);
            let _ = pit.next_event_ns();
        }
        pit.update(u64::MAX);
        pit.write(COMMAND, 0x34, u64::MAX);
        pit.write(0x40, 0, u64::MAX);
        pit.write(0x40, 0, u64::MAX);
        let _ = pit.next_event_ns();
        assert_eq!(pit.read(0x44, 0), None);
    }
}
