//! The local APIC of the single virtual CPU, in xAPIC mode: a 4 KiB MMIO page at the APIC base
//! (IA32_APIC_BASE, default 0xFEE00000) and the CR8 view of the task-priority register.
//!
//! A pure register model: fixed interrupts arrive through [`LocalApic::accept`] (or as
//! [`InterruptMessage`]s from the I/O APIC), wait in IRR, and the CPU takes the highest one
//! whose priority class beats the processor priority (PPR = max(TPR, class of the highest
//! in-service vector)); EOI retires the highest in-service vector. The timer counts down at
//! 1 GHz (the virtual TSC rate, one count per ns) divided by the divide configuration register,
//! in one-shot or periodic mode; in TSC-deadline mode it fires when the TSC reaches
//! IA32_TSC_DEADLINE (the caller converts the guest's TSC value to the APIC's time base).
//!
//! The reset state is the one PC firmware leaves for the OS ("virtual wire" mode): APIC
//! globally and software enabled with spurious vector 0xFF, LINT0 = ExtINT (the 8259A's INTR
//! passes through), LINT1 = NMI, other LVT entries masked.
//!
//! Deliberate simplifications:
//! - One CPU: IPIs with delivery mode fixed, lowest-priority or NMI reach this APIC when the
//!   shorthand is "self" or "all including self" or the destination matches; other delivery
//!   modes (INIT, SIPI, SMI) and "all excluding self" do nothing. Delivery status is idle.
//! - NMIs (IPIs, I/O APIC messages in NMI mode, and the NMI line on LINT1 when its LVT entry
//!   is unmasked in NMI mode, or directly while the APIC is globally disabled) latch one
//!   pending NMI, whatever the software enable, as the SDM says (§10.4.7.2); the CPU takes
//!   it with [`LocalApic::take_nmi`] when it is not blocking NMIs. A second NMI while one is
//!   pending is lost, as on hardware.
//! - TSC-deadline mode as the SDM says: a non-zero IA32_TSC_DEADLINE arms the timer, zero
//!   disarms it, expiry disarms it and clears the MSR, switching between TSC-deadline and
//!   the other modes disarms it; outside the mode the MSR reads 0 and ignores writes; inside
//!   it the initial count is ignored and the current count reads 0. A new divide value
//!   takes effect at the next initial-count write. Several timer periods that pass
//!   unobserved raise one interrupt.
//! - Thermal and performance-counter LVTs never fire; LINT1's source is the host's NMI
//!   button ([`LocalApic::lint1_edge`]). ExtINT messages from the I/O APIC are dropped.
//! - Register accesses must be 32-bit aligned to take effect when writing; other writes are
//!   ignored (no illegal-register ESR bit); reads of any size return the register bytes.
//!   Errors recorded in ESR: send/receive illegal vector (vectors 0–15).
//!
//! Invariants: IRR/ISR/TMR are indexed by `vector >> 5` of a `u8`, always < 8; timer
//! arithmetic saturates, so no guest count or divider can overflow.

use super::ioapic::{DeliveryMode, InterruptMessage, InterruptSink};

/// The default APIC base address.
pub const DEFAULT_BASE: u64 = 0xFEE0_0000;
/// The size of the APIC's MMIO page.
pub const PAGE_SIZE: u64 = 0x1000;
/// IA32_APIC_BASE: this is the bootstrap processor.
pub const BASE_BSP: u64 = 1 << 8;
/// IA32_APIC_BASE: APIC global enable.
pub const BASE_ENABLE: u64 = 1 << 11;
/// IA32_APIC_BASE: the base address bits (52-bit physical addresses).
pub const BASE_ADDRESS_MASK: u64 = 0x000F_FFFF_FFFF_F000;
/// The version register: version 0x14 (integrated xAPIC), six LVT entries (max LVT 5).
pub const VERSION: u32 = 0x0005_0014;

/// Register offsets in the APIC page.
mod reg {
    pub const ID: u32 = 0x020;
    pub const VERSION: u32 = 0x030;
    pub const TPR: u32 = 0x080;
    pub const APR: u32 = 0x090;
    pub const PPR: u32 = 0x0A0;
    pub const EOI: u32 = 0x0B0;
    pub const LDR: u32 = 0x0D0;
    pub const DFR: u32 = 0x0E0;
    pub const SVR: u32 = 0x0F0;
    pub const ISR: u32 = 0x100;
    pub const TMR: u32 = 0x180;
    pub const IRR: u32 = 0x200;
    pub const ESR: u32 = 0x280;
    pub const ICR_LOW: u32 = 0x300;
    pub const ICR_HIGH: u32 = 0x310;
    pub const LVT_TIMER: u32 = 0x320;
    pub const LVT_ERROR: u32 = 0x370;
    pub const TIMER_INITIAL: u32 = 0x380;
    pub const TIMER_CURRENT: u32 = 0x390;
    pub const TIMER_DIVIDE: u32 = 0x3E0;
}

/// LVT indices, in register order from 0x320.
const LVT_TIMER: usize = 0;
const LVT_LINT0: usize = 3;
const LVT_LINT1: usize = 4;
const LVT_ERROR: usize = 5;
const LVT_COUNT: usize = 6;

/// LVT: vector.
const LVT_VECTOR: u32 = 0xFF;
/// LVT: delivery mode (bits 10:8).
const LVT_DELIVERY: u32 = 0x700;
/// LVT delivery mode NMI.
const LVT_DELIVERY_NMI: u32 = 0x400;
/// LVT delivery mode ExtINT.
const LVT_DELIVERY_EXTINT: u32 = 0x700;
/// LVT: input polarity (LINT).
const LVT_POLARITY: u32 = 1 << 13;
/// LVT: level trigger (LINT).
const LVT_LEVEL: u32 = 1 << 15;
/// LVT: masked.
const LVT_MASKED: u32 = 1 << 16;
/// LVT timer: mode (bits 18:17).
const LVT_TIMER_MODE: u32 = 3 << 17;
/// LVT timer mode periodic.
const LVT_TIMER_PERIODIC: u32 = 1 << 17;
/// LVT timer mode TSC-deadline.
const LVT_TIMER_TSC_DEADLINE: u32 = 2 << 17;
/// Writable bits of each LVT entry (timer, thermal, perf, LINT0, LINT1, error).
const LVT_WRITABLE: [u32; LVT_COUNT] = [
    LVT_VECTOR | LVT_MASKED | LVT_TIMER_MODE,
    LVT_VECTOR | LVT_DELIVERY | LVT_MASKED,
    LVT_VECTOR | LVT_DELIVERY | LVT_MASKED,
    LVT_VECTOR | LVT_DELIVERY | LVT_POLARITY | LVT_LEVEL | LVT_MASKED,
    LVT_VECTOR | LVT_DELIVERY | LVT_POLARITY | LVT_LEVEL | LVT_MASKED,
    LVT_VECTOR | LVT_MASKED,
];

/// SVR: APIC software enable.
const SVR_ENABLE: u32 = 1 << 8;
/// SVR: writable bits (vector, enable, focus checking).
const SVR_WRITABLE: u32 = 0x3FF;
/// DFR: the bits that always read as one.
const DFR_RESERVED_ONES: u32 = 0x0FFF_FFFF;
/// DFR model: flat.
const DFR_FLAT: u32 = 0xF;

/// ESR: an IPI with an illegal vector was sent.
const ESR_SEND_ILLEGAL_VECTOR: u32 = 1 << 5;
/// ESR: an interrupt with an illegal vector was received.
const ESR_RECEIVE_ILLEGAL_VECTOR: u32 = 1 << 6;

/// ICR: delivery status (read as idle).
const ICR_DELIVERY_STATUS: u32 = 1 << 12;
/// ICR: logical destination mode.
const ICR_LOGICAL: u32 = 1 << 11;
/// ICR: level trigger.
const ICR_LEVEL: u32 = 1 << 15;
/// ICR destination shorthands (bits 19:18).
const ICR_SHORTHAND_SHIFT: u32 = 18;
const SHORTHAND_NONE: u32 = 0;
const SHORTHAND_SELF: u32 = 1;
const SHORTHAND_ALL_INCLUDING_SELF: u32 = 2;

/// The broadcast destination.
const BROADCAST: u8 = 0xFF;

/// A 256-bit vector bitmap (IRR, ISR, TMR).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct VectorSet([u32; 8]);

impl VectorSet {
    fn set(&mut self, v: u8) {
        self.0[usize::from(v >> 5)] |= 1 << (v & 31);
    }
    fn clear(&mut self, v: u8) {
        self.0[usize::from(v >> 5)] &= !(1 << (v & 31));
    }
    fn contains(&self, v: u8) -> bool {
        self.0[usize::from(v >> 5)] & (1 << (v & 31)) != 0
    }
    fn highest(&self) -> Option<u8> {
        (0..8usize)
            .rev()
            .find(|&i| self.0[i] != 0)
            .map(|i| ((i as u8) << 5) | (31 - self.0[i].leading_zeros()) as u8)
    }
    /// The 32-bit register for `offset` from the bitmap's base (16-byte stride).
    fn word(&self, offset: u32) -> u32 {
        self.0.get((offset >> 4) as usize).copied().unwrap_or(0)
    }
}

/// The local APIC.
#[derive(Clone, Debug)]
pub struct LocalApic {
    base_msr: u64,
    id: u8,
    tpr: u8,
    ldr: u32,
    dfr: u32,
    svr: u32,
    isr: VectorSet,
    tmr: VectorSet,
    irr: VectorSet,
    esr: u32,
    esr_pending: u32,
    icr_low: u32,
    icr_high: u32,
    lvt: [u32; LVT_COUNT],
    timer_initial: u32,
    timer_divide: u32,
    /// When the current count was loaded.
    timer_start_ns: u64,
    /// log2 of the divider captured at the load.
    timer_shift: u32,
    /// The next expiry, while the timer runs.
    timer_next_ns: Option<u64>,
    /// Timer expiries over the VM's life (missed periods included once).
    timer_fires: u64,
    /// IA32_TSC_DEADLINE while armed in TSC-deadline mode, else 0.
    tsc_deadline: u64,
    /// An NMI waits for the CPU.
    nmi_pending: bool,
}

impl Default for LocalApic {
    fn default() -> Self {
        LocalApic::new()
    }
}

impl LocalApic {
    /// The APIC with ID 0 in the post-firmware virtual-wire state.
    pub fn new() -> LocalApic {
        let mut lvt = [LVT_MASKED; LVT_COUNT];
        lvt[LVT_LINT0] = LVT_DELIVERY_EXTINT;
        lvt[LVT_LINT1] = LVT_DELIVERY_NMI;
        LocalApic {
            base_msr: DEFAULT_BASE | BASE_ENABLE | BASE_BSP,
            id: 0,
            tpr: 0,
            ldr: 0,
            dfr: u32::MAX,
            svr: SVR_ENABLE | 0xFF,
            isr: VectorSet::default(),
            tmr: VectorSet::default(),
            irr: VectorSet::default(),
            esr: 0,
            esr_pending: 0,
            icr_low: 0,
            icr_high: 0,
            lvt,
            timer_initial: 0,
            timer_divide: 0,
            timer_start_ns: 0,
            timer_shift: 1,
            timer_next_ns: None,
            timer_fires: 0,
            tsc_deadline: 0,
            nmi_pending: false,
        }
    }

    // ---- IA32_APIC_BASE and CR8 ----

    /// IA32_APIC_BASE.
    pub fn base_msr(&self) -> u64 {
        self.base_msr
    }

    /// Writes IA32_APIC_BASE: the base address and global enable are kept, BSP reads as one
    /// and other bits (x2APIC enable included) are ignored.
    pub fn set_base_msr(&mut self, msr: u64) {
        self.base_msr = msr & (BASE_ADDRESS_MASK | BASE_ENABLE) | BASE_BSP;
    }

    /// The physical address of the MMIO page.
    pub fn base_address(&self) -> u64 {
        self.base_msr & BASE_ADDRESS_MASK
    }

    /// Whether the APIC is globally enabled (IA32_APIC_BASE bit 11).
    pub fn hw_enabled(&self) -> bool {
        self.base_msr & BASE_ENABLE != 0
    }

    /// Whether the APIC is software enabled (SVR bit 8).
    pub fn sw_enabled(&self) -> bool {
        self.svr & SVR_ENABLE != 0
    }

    /// CR8: TPR bits 7:4.
    pub fn cr8(&self) -> u64 {
        u64::from(self.tpr >> 4)
    }

    /// MOV to CR8: TPR = CR8[3:0] << 4.
    pub fn set_cr8(&mut self, cr8: u64) {
        self.tpr = ((cr8 & 0xF) as u8) << 4;
    }

    // ---- interrupt acceptance and delivery ----

    fn error(&mut self, bits: u32) {
        self.esr_pending |= bits;
        let lvt = self.lvt[LVT_ERROR];
        if lvt & LVT_MASKED == 0 {
            let v = (lvt & LVT_VECTOR) as u8;
            if v >= 16 {
                self.irr.set(v);
                self.tmr.clear(v);
            }
        }
    }

    /// A fixed interrupt arrives: `vector` waits in IRR; `level` records its trigger mode in
    /// TMR (its EOI must then reach the I/O APIC). Vectors 0–15 are illegal and only set ESR.
    pub fn accept(&mut self, vector: u8, level: bool) {
        if vector < 16 {
            self.error(ESR_RECEIVE_ILLEGAL_VECTOR);
            return;
        }
        self.irr.set(vector);
        if level {
            self.tmr.set(vector);
        } else {
            self.tmr.clear(vector);
        }
    }

    /// Whether `destination` in physical or logical mode addresses this APIC.
    pub fn matches_destination(&self, destination: u8, logical: bool) -> bool {
        if destination == BROADCAST {
            return true;
        }
        if !logical {
            return destination == self.id;
        }
        let ldr = (self.ldr >> 24) as u8;
        if self.dfr >> 28 == DFR_FLAT {
            ldr & destination != 0
        } else {
            ldr >> 4 == destination >> 4 && ldr & destination & 0xF != 0
        }
    }

    /// The processor priority.
    pub fn ppr(&self) -> u8 {
        let isrv = self.isr.highest().unwrap_or(0);
        if self.tpr >> 4 >= isrv >> 4 {
            self.tpr
        } else {
            isrv & 0xF0
        }
    }

    /// The vector the APIC would present to the CPU now, if any.
    pub fn pending_vector(&self) -> Option<u8> {
        if !self.hw_enabled() || !self.sw_enabled() {
            return None;
        }
        let v = self.irr.highest()?;
        (v >> 4 > self.ppr() >> 4).then_some(v)
    }

    /// Whether a fixed interrupt with `vector` would be presented to the CPU once accepted,
    /// given the current TPR and in-service vectors.
    pub fn could_present(&self, vector: u8) -> bool {
        self.hw_enabled() && self.sw_enabled() && vector >> 4 > self.ppr() >> 4
    }

    /// Whether an IRR interrupt is deliverable now.
    pub fn has_interrupt(&self) -> bool {
        self.pending_vector().is_some()
    }

    /// The CPU takes the interrupt: the vector moves from IRR to ISR.
    pub fn acknowledge(&mut self) -> Option<u8> {
        let v = self.pending_vector()?;
        self.irr.clear(v);
        self.isr.set(v);
        Some(v)
    }

    /// The spurious-interrupt vector (SVR bits 7:0).
    pub fn spurious_vector(&self) -> u8 {
        self.svr as u8
    }

    /// Whether LINT0 passes the 8259A's INTR through (ExtINT, unmasked, APIC enabled).
    pub fn lint0_extint(&self) -> bool {
        let lvt = self.lvt[LVT_LINT0];
        self.hw_enabled() && lvt & LVT_MASKED == 0 && lvt & LVT_DELIVERY == LVT_DELIVERY_EXTINT
    }

    // ---- NMI ----

    /// Whether an NMI waits for the CPU.
    pub fn nmi_pending(&self) -> bool {
        self.nmi_pending
    }

    /// The CPU takes the pending NMI (vector 2), if there is one.
    pub fn take_nmi(&mut self) -> bool {
        std::mem::take(&mut self.nmi_pending)
    }

    /// What an edge on LINT1 does through its LVT entry: an NMI in NMI mode, a fixed
    /// interrupt in fixed mode, nothing while masked (or in another mode). With the APIC
    /// globally disabled the pin is the CPU's NMI input itself.
    pub fn lint1_edge(&mut self) {
        let lvt = self.lvt[LVT_LINT1];
        if !self.hw_enabled() {
            self.nmi_pending = true;
        } else if lvt & LVT_MASKED == 0 {
            match lvt & LVT_DELIVERY {
                LVT_DELIVERY_NMI => self.nmi_pending = true,
                0 => self.accept((lvt & LVT_VECTOR) as u8, false),
                _ => {}
            }
        }
    }

    /// Whether an edge on LINT1 would raise an NMI now.
    pub fn lint1_is_nmi(&self) -> bool {
        let lvt = self.lvt[LVT_LINT1];
        !self.hw_enabled() || (lvt & LVT_MASKED == 0 && lvt & LVT_DELIVERY == LVT_DELIVERY_NMI)
    }

    /// End of interrupt: retires the highest in-service vector. Returns it if it was
    /// level-triggered (the EOI must be broadcast to the I/O APIC).
    pub fn eoi(&mut self) -> Option<u8> {
        let v = self.isr.highest()?;
        self.isr.clear(v);
        self.tmr.contains(v).then_some(v)
    }

    /// The ICR was written: send the IPI.
    fn send_ipi(&mut self) {
        let low = self.icr_low;
        let vector = (low & LVT_VECTOR) as u8;
        let fixed = matches!(low & LVT_DELIVERY, 0 | 0x100);
        let nmi = low & LVT_DELIVERY == LVT_DELIVERY_NMI;
        let to_self = match (low >> ICR_SHORTHAND_SHIFT) & 3 {
            SHORTHAND_NONE => {
                self.matches_destination((self.icr_high >> 24) as u8, low & ICR_LOGICAL != 0)
            }
            SHORTHAND_SELF | SHORTHAND_ALL_INCLUDING_SELF => true,
            _ => false,
        };
        if nmi {
            // The vector field is ignored for NMIs.
            self.nmi_pending |= to_self;
            return;
        }
        if !fixed {
            return;
        }
        if vector < 16 {
            self.error(ESR_SEND_ILLEGAL_VECTOR);
        } else if to_self {
            self.accept(vector, low & ICR_LEVEL != 0);
        }
    }

    // ---- timer ----

    fn timer_mode(&self) -> u32 {
        self.lvt[LVT_TIMER] & LVT_TIMER_MODE
    }

    /// The timer period in ns: initial count × divider.
    fn timer_period_ns(&self) -> u64 {
        u64::from(self.timer_initial) << self.timer_shift
    }

    /// log2 of the divider selected by the divide configuration register.
    fn divide_shift(&self) -> u32 {
        let code = (self.timer_divide >> 1) & 4 | self.timer_divide & 3;
        (code + 1) & 7
    }

    /// The current-count register at `now_ns`.
    pub fn timer_current(&self, now_ns: u64) -> u32 {
        if self.timer_next_ns.is_none()
            || self.timer_initial == 0
            || self.timer_mode() == LVT_TIMER_TSC_DEADLINE
        {
            return 0;
        }
        let elapsed = now_ns.saturating_sub(self.timer_start_ns) >> self.timer_shift;
        let initial = u64::from(self.timer_initial);
        let current = if self.timer_mode() == LVT_TIMER_PERIODIC {
            initial - elapsed % initial
        } else {
            initial.saturating_sub(elapsed)
        };
        current as u32
    }

    /// Advances the timer to `now_ns`, raising its LVT interrupt on expiry.
    pub fn update(&mut self, now_ns: u64) {
        let Some(next) = self.timer_next_ns else {
            return;
        };
        if now_ns < next {
            return;
        }
        self.timer_fires = self.timer_fires.saturating_add(1);
        let lvt = self.lvt[LVT_TIMER];
        if lvt & LVT_MASKED == 0 {
            self.accept((lvt & LVT_VECTOR) as u8, false);
        }
        let period = self.timer_period_ns();
        self.timer_next_ns = match self.timer_mode() {
            LVT_TIMER_PERIODIC if period != 0 => {
                let periods = ((now_ns - self.timer_start_ns) / period).saturating_add(1);
                Some(
                    self.timer_start_ns
                        .saturating_add(periods.saturating_mul(period)),
                )
            }
            _ => None,
        };
        if self.timer_next_ns.is_none() {
            self.tsc_deadline = 0;
        }
    }

    /// IA32_TSC_DEADLINE: the armed deadline in TSC-deadline mode, else 0.
    pub fn tsc_deadline(&self) -> u64 {
        self.tsc_deadline
    }

    /// WRMSR IA32_TSC_DEADLINE: `value` is the guest's TSC value, `deadline_ns` the same
    /// instant in the APIC's time base. Ignored outside TSC-deadline mode; zero disarms.
    pub fn set_tsc_deadline(&mut self, value: u64, deadline_ns: u64) {
        if self.timer_mode() != LVT_TIMER_TSC_DEADLINE {
            return;
        }
        self.tsc_deadline = value;
        self.timer_next_ns = (value != 0).then_some(deadline_ns);
    }

    /// When the timer expires next, if it runs.
    pub fn next_event_ns(&self) -> Option<u64> {
        self.timer_next_ns
    }

    /// When the timer next interrupts the CPU: its next expiry, if the timer's LVT entry is
    /// unmasked and its vector would be presented (see [`LocalApic::could_present`]).
    pub fn next_interrupt_ns(&self) -> Option<u64> {
        let lvt = self.lvt[LVT_TIMER];
        let open = lvt & LVT_MASKED == 0 && self.could_present((lvt & LVT_VECTOR) as u8);
        self.timer_next_ns.filter(|_| open)
    }

    /// Timer expiries so far.
    pub fn timer_fires(&self) -> u64 {
        self.timer_fires
    }

    // ---- registers ----

    /// Reads the 32-bit register at `offset` (16-byte aligned) of the page.
    pub fn read(&self, offset: u32, now_ns: u64) -> u32 {
        match offset & 0xFF0 {
            reg::ID => u32::from(self.id) << 24,
            reg::VERSION => VERSION,
            reg::TPR => u32::from(self.tpr),
            reg::PPR => u32::from(self.ppr()),
            reg::LDR => self.ldr,
            reg::DFR => self.dfr,
            reg::SVR => self.svr,
            o @ reg::ISR..=0x170 => self.isr.word(o - reg::ISR),
            o @ reg::TMR..=0x1F0 => self.tmr.word(o - reg::TMR),
            o @ reg::IRR..=0x270 => self.irr.word(o - reg::IRR),
            reg::ESR => self.esr,
            reg::ICR_LOW => self.icr_low,
            reg::ICR_HIGH => self.icr_high,
            o @ reg::LVT_TIMER..=reg::LVT_ERROR => self.lvt[((o - reg::LVT_TIMER) >> 4) as usize],
            reg::TIMER_INITIAL => self.timer_initial,
            reg::TIMER_CURRENT => self.timer_current(now_ns),
            reg::TIMER_DIVIDE => self.timer_divide,
            reg::APR | reg::EOI => 0, // Arbitration is not modelled; EOI is write-only.
            _ => 0,                   // RRD and reserved registers.
        }
    }

    /// Writes the 32-bit register at `offset` (16-byte aligned) of the page. Returns the
    /// vector of a level-triggered interrupt an EOI retired (to broadcast to the I/O APIC).
    pub fn write(&mut self, offset: u32, value: u32, now_ns: u64) -> Option<u8> {
        match offset & 0xFF0 {
            reg::ID => self.id = (value >> 24) as u8,
            reg::TPR => self.tpr = value as u8,
            reg::EOI => return self.eoi(),
            reg::LDR => self.ldr = value & 0xFF00_0000,
            reg::DFR => self.dfr = value | DFR_RESERVED_ONES,
            reg::SVR => {
                self.svr = value & SVR_WRITABLE;
                if !self.sw_enabled() {
                    for lvt in &mut self.lvt {
                        *lvt |= LVT_MASKED;
                    }
                }
            }
            reg::ESR => self.esr = std::mem::take(&mut self.esr_pending),
            reg::ICR_LOW => {
                self.icr_low = value & !ICR_DELIVERY_STATUS;
                self.send_ipi();
            }
            reg::ICR_HIGH => self.icr_high = value & 0xFF00_0000,
            o @ reg::LVT_TIMER..=reg::LVT_ERROR => {
                let i = ((o - reg::LVT_TIMER) >> 4) as usize;
                let mut v = value & LVT_WRITABLE[i];
                if !self.sw_enabled() {
                    v |= LVT_MASKED;
                }
                let deadline = |lvt: u32| lvt & LVT_TIMER_MODE == LVT_TIMER_TSC_DEADLINE;
                if i == LVT_TIMER && deadline(v) != deadline(self.lvt[i]) {
                    // Entering or leaving TSC-deadline mode disarms the timer.
                    self.timer_next_ns = None;
                    self.tsc_deadline = 0;
                }
                self.lvt[i] = v;
            }
            reg::TIMER_INITIAL if self.timer_mode() == LVT_TIMER_TSC_DEADLINE => {}
            reg::TIMER_INITIAL => {
                self.timer_initial = value;
                self.timer_start_ns = now_ns;
                self.timer_shift = self.divide_shift();
                self.timer_next_ns = (value != 0 && self.timer_mode() != LVT_TIMER_TSC_DEADLINE)
                    .then(|| now_ns.saturating_add(self.timer_period_ns()));
            }
            reg::TIMER_DIVIDE => self.timer_divide = value & 0xB,
            _ => {} // Read-only and reserved registers.
        }
        None
    }

    /// An MMIO read of `size` bytes at `offset` into the page: each byte comes from the
    /// 32-bit register of its 16-byte slot (bytes 4–15 of a slot read 0).
    pub fn mmio_read(&self, offset: u64, size: u8, now_ns: u64) -> u64 {
        let mut value = 0u64;
        for i in 0..u64::from(size.min(8)) {
            let byte = match offset.checked_add(i) {
                Some(off) if off < PAGE_SIZE && off & 0xF < 4 => {
                    (self.read(off as u32, now_ns) >> ((off & 0xF) * 8)) as u8
                }
                _ => 0,
            };
            value |= u64::from(byte) << (i * 8);
        }
        value
    }

    /// An MMIO write of `size` bytes at `offset`: 4- or 8-byte writes at a register's offset
    /// write its 32 bits; anything else is ignored. Returns what [`LocalApic::write`] does.
    pub fn mmio_write(&mut self, offset: u64, size: u8, value: u64, now_ns: u64) -> Option<u8> {
        if offset < PAGE_SIZE && offset & 0xF == 0 && matches!(size, 4 | 8) {
            self.write(offset as u32, value as u32, now_ns)
        } else {
            None
        }
    }
}

impl InterruptSink for LocalApic {
    /// Fixed and lowest-priority messages addressed to this (globally enabled) APIC land in
    /// IRR, NMI messages make an NMI pending; other delivery modes are dropped.
    fn deliver(&mut self, msg: InterruptMessage) {
        if !self.hw_enabled() || !self.matches_destination(msg.destination, msg.logical) {
            return;
        }
        match msg.delivery {
            DeliveryMode::Fixed | DeliveryMode::LowestPriority => {
                self.accept(msg.vector, msg.level)
            }
            DeliveryMode::Nmi => self.nmi_pending = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
