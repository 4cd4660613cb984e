//! Unit tests of the local APIC register model.

use super::*;

fn write(apic: &mut LocalApic, offset: u32, value: u32) {
    apic.write(offset, value, 0);
}

#[test]
fn reset_state_is_virtual_wire() {
    let apic = LocalApic::new();
    assert_eq!(apic.base_msr(), 0xFEE0_0900);
    assert_eq!(apic.read(reg::VERSION, 0), 0x0005_0014);
    assert_eq!(apic.read(reg::SVR, 0), 0x1FF);
    assert_eq!(apic.read(0x350, 0), 0x700, "LINT0 ExtINT");
    assert_eq!(apic.read(0x360, 0), 0x400, "LINT1 NMI");
    assert_eq!(apic.read(reg::LVT_TIMER, 0), LVT_MASKED);
    assert_eq!(apic.read(reg::DFR, 0), u32::MAX);
    assert!(apic.lint0_extint());
}

#[test]
fn priority_tpr_ppr_and_eoi_order() {
    let mut apic = LocalApic::new();
    apic.accept(0x31, false);
    apic.accept(0x52, false);
    apic.accept(0x55, false);
    assert_eq!(apic.acknowledge(), Some(0x55));
    assert_eq!(apic.ppr(), 0x50);
    assert!(!apic.has_interrupt(), "0x52 is in the in-service class");
    assert_eq!(apic.read(reg::ISR + 0x20, 0), 1 << (0x55 - 0x40));
    assert_eq!(apic.read(reg::IRR + 0x20, 0), 1 << (0x52 - 0x40));
    apic.accept(0x61, false);
    assert_eq!(apic.acknowledge(), Some(0x61), "a higher class nests");
    assert_eq!(apic.write(reg::EOI, 0, 0), None);
    assert_eq!(
        apic.read(reg::ISR + 0x20, 0),
        1 << (0x55 - 0x40),
        "0x61 retired first"
    );
    write(&mut apic, reg::EOI, 0);
    // TPR blocks classes at or below it.
    write(&mut apic, reg::TPR, 0x52);
    assert_eq!(apic.ppr(), 0x52);
    assert!(!apic.has_interrupt());
    apic.set_cr8(2);
    assert_eq!(apic.read(reg::TPR, 0), 0x20);
    assert_eq!(apic.cr8(), 2);
    assert_eq!(apic.acknowledge(), Some(0x52));
    write(&mut apic, reg::EOI, 0);
    assert_eq!(
        apic.acknowledge(),
        Some(0x31),
        "class 3 is above TPR class 2"
    );
}

#[test]
fn level_triggered_eoi_is_reported() {
    let mut apic = LocalApic::new();
    apic.accept(0x40, true);
    assert_eq!(apic.read(reg::TMR + 0x20, 0), 1);
    assert_eq!(apic.acknowledge(), Some(0x40));
    assert_eq!(apic.write(reg::EOI, 0, 0), Some(0x40));
    assert_eq!(apic.write(reg::EOI, 0, 0), None, "nothing in service");
}

#[test]
fn software_disable_masks_lvts_and_holds_interrupts() {
    let mut apic = LocalApic::new();
    apic.accept(0x80, false);
    write(&mut apic, reg::SVR, 0xFF);
    assert!(!apic.has_interrupt());
    assert!(!apic.lint0_extint());
    assert_eq!(apic.read(0x350, 0), 0x700 | LVT_MASKED);
    write(&mut apic, 0x350, 0x700);
    assert_eq!(
        apic.read(0x350, 0),
        0x700 | LVT_MASKED,
        "cannot unmask while disabled"
    );
    write(&mut apic, reg::SVR, 0x1FF);
    assert!(apic.has_interrupt(), "held in IRR");
    write(&mut apic, 0x350, 0x700);
    assert!(apic.lint0_extint());
    // Global disable hides everything.
    apic.set_base_msr(DEFAULT_BASE);
    assert!(!apic.hw_enabled());
    assert!(!apic.has_interrupt());
    assert_eq!(apic.base_msr(), DEFAULT_BASE | BASE_BSP);
}

#[test]
fn timer_one_shot() {
    let mut apic = LocalApic::new();
    write(&mut apic, reg::TIMER_DIVIDE, 0x3); // divide by 16
    write(&mut apic, reg::LVT_TIMER, 0x40);
    apic.write(reg::TIMER_INITIAL, 1000, 500);
    assert_eq!(apic.next_event_ns(), Some(500 + 16_000));
    assert_eq!(apic.timer_current(500 + 160), 990);
    apic.update(500 + 15_999);
    assert!(!apic.has_interrupt());
    apic.update(500 + 16_000);
    assert_eq!(apic.acknowledge(), Some(0x40));
    assert_eq!(apic.next_event_ns(), None);
    assert_eq!(apic.read(reg::TIMER_CURRENT, 1_000_000), 0);
    apic.update(1_000_000);
    assert!(!apic.has_interrupt(), "one shot");
    assert_eq!(apic.timer_fires(), 1);
}

#[test]
fn timer_periodic_and_dividers() {
    let mut apic = LocalApic::new();
    write(&mut apic, reg::TIMER_DIVIDE, 0xB); // divide by 1
    write(&mut apic, reg::LVT_TIMER, LVT_TIMER_PERIODIC | 0x40);
    write(&mut apic, reg::TIMER_INITIAL, 100);
    assert_eq!(apic.timer_current(250), 50);
    for k in 1..=3u64 {
        assert_eq!(apic.next_event_ns(), Some(100 * k));
        apic.update(100 * k);
        assert_eq!(apic.acknowledge(), Some(0x40));
        write(&mut apic, reg::EOI, 0);
    }
    // Missed periods coalesce and keep the phase.
    apic.update(1050);
    assert_eq!(apic.next_event_ns(), Some(1100));
    assert_eq!(apic.timer_fires(), 4);
    assert_eq!(apic.acknowledge(), Some(0x40));
    assert!(
        !apic.has_interrupt(),
        "one interrupt for the missed periods"
    );
    write(&mut apic, reg::EOI, 0);
    // Divider codes.
    for (dcr, div) in [
        (0x0, 2),
        (0x1, 4),
        (0x2, 8),
        (0x3, 16),
        (0x8, 32),
        (0x9, 64),
        (0xA, 128),
    ] {
        write(&mut apic, reg::TIMER_DIVIDE, dcr);
        write(&mut apic, reg::TIMER_INITIAL, 10);
        assert_eq!(apic.next_event_ns(), Some(10 * div));
    }
    // Masked timers count but do not interrupt; zero stops the timer.
    write(
        &mut apic,
        reg::LVT_TIMER,
        LVT_TIMER_PERIODIC | LVT_MASKED | 0x40,
    );
    apic.update(10_000);
    assert!(!apic.has_interrupt());
    write(&mut apic, reg::TIMER_INITIAL, 0);
    assert_eq!(apic.next_event_ns(), None);
    // Entering TSC-deadline mode stops the count-down timer.
    write(&mut apic, reg::TIMER_INITIAL, 10);
    write(&mut apic, reg::LVT_TIMER, LVT_TIMER_TSC_DEADLINE | 0x40);
    assert_eq!(apic.next_event_ns(), None);
}

#[test]
fn timer_tsc_deadline_mode() {
    let mut apic = LocalApic::new();
    // Outside the mode the MSR reads 0 and ignores writes.
    write(&mut apic, reg::LVT_TIMER, 0x40);
    apic.set_tsc_deadline(5_000, 500);
    assert_eq!((apic.tsc_deadline(), apic.next_event_ns()), (0, None));
    write(&mut apic, reg::LVT_TIMER, LVT_TIMER_TSC_DEADLINE | 0x40);
    apic.set_tsc_deadline(5_000, 500);
    assert_eq!(
        (apic.tsc_deadline(), apic.next_event_ns()),
        (5_000, Some(500))
    );
    // The initial count is ignored and the current count reads 0.
    write(&mut apic, reg::TIMER_INITIAL, 7);
    assert_eq!(apic.next_event_ns(), Some(500));
    assert_eq!(apic.timer_current(100), 0);
    // Rewriting the LVT in the same mode (e.g. unmasking) keeps it armed.
    write(&mut apic, reg::LVT_TIMER, LVT_TIMER_TSC_DEADLINE | 0x41);
    assert_eq!(apic.next_interrupt_ns(), Some(500));
    apic.update(499);
    assert!(!apic.has_interrupt());
    apic.update(500);
    assert_eq!(apic.acknowledge(), Some(0x41));
    assert_eq!(apic.tsc_deadline(), 0, "expiry disarms and clears the MSR");
    assert_eq!(apic.next_event_ns(), None);
    apic.update(10_000);
    assert_eq!(apic.timer_fires(), 1, "one interrupt per write");
    // Zero disarms; leaving the mode disarms.
    apic.set_tsc_deadline(9_000, 900);
    apic.set_tsc_deadline(0, 0);
    assert_eq!((apic.tsc_deadline(), apic.next_event_ns()), (0, None));
    apic.set_tsc_deadline(9_000, 900);
    write(&mut apic, reg::LVT_TIMER, 0x41);
    assert_eq!((apic.tsc_deadline(), apic.next_event_ns()), (0, None));
}

#[test]
fn self_ipi_and_destinations() {
    let mut apic = LocalApic::new();
    write(&mut apic, reg::ICR_LOW, (1 << 18) | 0x99); // self
    assert_eq!(apic.read(reg::IRR + 0x40, 0), 1 << (0x99 - 0x80));
    assert_eq!(apic.acknowledge(), Some(0x99));
    write(&mut apic, reg::EOI, 0);
    // Physical destination: our ID only.
    write(&mut apic, reg::ID, 3 << 24);
    write(&mut apic, reg::ICR_HIGH, 2 << 24);
    write(&mut apic, reg::ICR_LOW, 0x9A);
    assert!(!apic.has_interrupt());
    write(&mut apic, reg::ICR_HIGH, 3 << 24);
    write(&mut apic, reg::ICR_LOW, 0x9A);
    assert_eq!(apic.acknowledge(), Some(0x9A));
    write(&mut apic, reg::EOI, 0);
    // Logical flat.
    write(&mut apic, reg::LDR, 0x04 << 24);
    assert!(apic.matches_destination(0x06, true));
    assert!(!apic.matches_destination(0x01, true));
    // Logical cluster.
    write(&mut apic, reg::DFR, 0);
    write(&mut apic, reg::LDR, 0x21 << 24);
    assert!(apic.matches_destination(0x23, true));
    assert!(!apic.matches_destination(0x13, true));
    // "All excluding self" and INIT reach nobody.
    write(&mut apic, reg::ICR_LOW, (3 << 18) | 0x9B);
    write(&mut apic, reg::ICR_LOW, (1 << 18) | 0x500);
    assert!(!apic.has_interrupt());
    assert_eq!(apic.read(reg::ICR_LOW, 0), (1 << 18) | 0x500);
}

#[test]
fn nmi_ipis_messages_and_lint1_latch_one_nmi() {
    let mut apic = LocalApic::new();
    // Self-IPI in NMI mode: the vector field (0) is ignored, no ESR error.
    write(&mut apic, reg::ICR_LOW, (1 << 18) | 0x400);
    assert!(apic.nmi_pending());
    assert!(!apic.has_interrupt(), "not a fixed interrupt");
    assert_eq!(apic.read(reg::ESR, 0), 0);
    // A second NMI before the CPU takes the first is lost.
    write(&mut apic, reg::ICR_LOW, (1 << 18) | 0x400);
    assert!(apic.take_nmi());
    assert!(!apic.take_nmi());
    // Our own APIC ID with no shorthand; another ID does not reach us.
    write(&mut apic, reg::ICR_HIGH, 1 << 24);
    write(&mut apic, reg::ICR_LOW, 0x400);
    assert!(!apic.nmi_pending());
    write(&mut apic, reg::ICR_HIGH, 0);
    write(&mut apic, reg::ICR_LOW, 0x400);
    assert!(apic.take_nmi());
    // "All excluding self" does not.
    write(&mut apic, reg::ICR_LOW, (3 << 18) | 0x400);
    assert!(!apic.nmi_pending());
    // An I/O APIC message in NMI mode.
    apic.deliver(InterruptMessage {
        vector: 0,
        delivery: DeliveryMode::Nmi,
        level: false,
        logical: false,
        destination: 0,
    });
    assert!(apic.take_nmi());
    // LINT1: NMI at reset (virtual wire); masked: nothing; fixed: a vector.
    assert!(apic.lint1_is_nmi());
    apic.lint1_edge();
    assert!(apic.take_nmi());
    write(&mut apic, 0x360, LVT_MASKED | 0x400);
    assert!(!apic.lint1_is_nmi());
    apic.lint1_edge();
    assert!(!apic.nmi_pending());
    write(&mut apic, 0x360, 0x66);
    apic.lint1_edge();
    assert!(!apic.nmi_pending());
    assert_eq!(apic.acknowledge(), Some(0x66));
    // Software-disabled APIC: LVTs are masked, but NMI IPIs still arrive.
    write(&mut apic, reg::SVR, 0xFF);
    write(&mut apic, reg::ICR_LOW, (1 << 18) | 0x400);
    assert!(apic.take_nmi());
    // Globally disabled: LINT1 is the NMI pin.
    apic.set_base_msr(DEFAULT_BASE);
    apic.lint1_edge();
    assert!(apic.take_nmi());
}

#[test]
fn illegal_vectors_set_esr_and_raise_the_error_lvt() {
    let mut apic = LocalApic::new();
    write(&mut apic, reg::LVT_ERROR, 0xFE);
    write(&mut apic, reg::ICR_LOW, (1 << 18) | 0x05);
    apic.accept(0x0F, false);
    assert_eq!(apic.read(reg::ESR, 0), 0, "ESR updates on write");
    write(&mut apic, reg::ESR, 0);
    assert_eq!(
        apic.read(reg::ESR, 0),
        ESR_SEND_ILLEGAL_VECTOR | ESR_RECEIVE_ILLEGAL_VECTOR
    );
    write(&mut apic, reg::ESR, 0);
    assert_eq!(apic.read(reg::ESR, 0), 0);
    assert_eq!(apic.acknowledge(), Some(0xFE));
}

#[test]
fn mmio_access_sizes() {
    let mut apic = LocalApic::new();
    assert_eq!(apic.mmio_read(0x30, 4, 0), 0x0005_0014);
    assert_eq!(apic.mmio_read(0x30, 1, 0), 0x14);
    assert_eq!(apic.mmio_read(0x32, 2, 0), 0x0005);
    assert_eq!(
        apic.mmio_read(0x30, 8, 0),
        0x0005_0014,
        "upper half reserved"
    );
    assert_eq!(apic.mmio_read(0xFFF, 8, 0), 0, "past the page");
    assert_eq!(apic.mmio_read(u64::MAX, 8, 0), 0);
    apic.mmio_write(0x80, 4, 0x30, 0);
    assert_eq!(apic.read(reg::TPR, 0), 0x30);
    apic.mmio_write(0x80, 1, 0x40, 0);
    apic.mmio_write(0x84, 4, 0x40, 0);
    apic.mmio_write(u64::MAX, 4, 0x40, 0);
    assert_eq!(apic.read(reg::TPR, 0), 0x30, "odd writes are ignored");
    apic.mmio_write(0x80, 8, 0xFFFF_FFFF_0000_0050, 0);
    assert_eq!(apic.read(reg::TPR, 0), 0x50);
}

#[test]
fn hostile_register_writes_do_not_panic() {
    let mut apic = LocalApic::new();
    let mut now = 0u64;
    for off in (0..0x1000u64).step_by(4) {
        for v in [0u32, u32::MAX, 0x1_0000, 0xB, 0x2_00FF, 0x0C_0010] {
            apic.mmio_write(off, 4, u64::from(v), now);
            let _ = apic.mmio_read(off, 4, now);
            now = now.wrapping_add(u64::from(v) << 7);
            apic.update(now);
            let _ = apic.acknowledge();
        }
    }
    apic.update(u64::MAX);
    let _ = apic.timer_current(u64::MAX);
    // The shortest periodic timer, observed at the end of time.
    let mut apic = LocalApic::new();
    write(&mut apic, reg::TIMER_DIVIDE, 0xB);
    write(&mut apic, reg::LVT_TIMER, LVT_TIMER_PERIODIC | 0x40);
    write(&mut apic, reg::TIMER_INITIAL, 1);
    apic.update(u64::MAX);
    assert_eq!(apic.next_event_ns(), Some(u64::MAX));
    assert_eq!(apic.acknowledge(), Some(0x40));
}
