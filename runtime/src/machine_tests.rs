//! Unit tests of the guest memory paths of [`super::Machine`].

use super::*;
use crate::memory::{GuestPhys, MIN_RAM};

fn machine() -> Machine {
    Machine::new(MIN_RAM, SerialSink::Capture).unwrap()
}

#[test]
fn reads_and_writes_cross_pages() {
    let mut m = machine();
    assert_eq!(
        m.write_virt(0x1FFD, 8, 0x1122_3344_5566_7788),
        Ok(WriteOutcome::Done)
    );
    assert_eq!(
        m.read_virt(0x1FFD, 8, Access::Read),
        Ok(0x1122_3344_5566_7788)
    );
    assert_eq!(m.read_virt(0x2000, 1, Access::Read), Ok(0x55));
}

#[test]
fn out_of_ram_accesses_fault_precisely() {
    let mut m = machine();
    let end = MIN_RAM;
    m.ram.write_le(GuestPhys(end - 2), 2, 0xAAAA).unwrap();
    assert_eq!(
        m.write_virt(end - 2, 4, 0),
        Err(Exception::PageFault { addr: end, code: 2 })
    );
    assert_eq!(
        m.ram.read_le(GuestPhys(end - 2), 2).unwrap(),
        0xAAAA,
        "no partial write"
    );
    assert_eq!(
        m.read_virt(end - 1, 2, Access::Read),
        Err(Exception::PageFault { addr: end, code: 0 })
    );
    assert_eq!(
        m.read_virt(u64::MAX, 1, Access::Read),
        Err(Exception::PageFault {
            addr: u64::MAX,
            code: 0
        })
    );
    assert_eq!(
        m.read_virt(1 << 63, 8, Access::Read),
        Err(Exception::GeneralProtection(0))
    );
}

#[test]
fn fetch_takes_the_page_and_a_little_of_the_next() {
    let mut m = machine();
    let cpu = CpuState::default();
    let f = m.fetch_code(&cpu, 0x1FF0).unwrap();
    assert_eq!(
        (f.first_len, f.bytes.len(), f.next_phys),
        (16, 31, Some(0x2000))
    );
    assert_eq!(f.phys_ranges(20), vec![(0x1FF0, 0x2000), (0x2000, 0x2004)]);
    assert_eq!(f.phys_ranges(3), vec![(0x1FF0, 0x1FF3)]);
    let last = m.fetch_code(&cpu, MIN_RAM - 4).unwrap();
    assert_eq!((last.bytes.len(), last.next_phys), (4, None));
    assert_eq!(
        last.next_fault,
        Some(Exception::PageFault {
            addr: MIN_RAM,
            code: 0x10
        })
    );
    assert_eq!(
        m.fetch_code(&cpu, MIN_RAM).unwrap_err(),
        Exception::PageFault {
            addr: MIN_RAM,
            code: 0x10
        }
    );
    assert_eq!(m.insn_bytes(0x1000).len(), MAX_INSN_LEN);
    // Across a page boundary, and at the end of RAM (only what is there).
    m.write_virt(0x1FF8, 8, 0x0807_0605_0403_0201).unwrap();
    m.write_virt(0x2000, 8, 0x100F_0E0D_0C0B_0A09).unwrap();
    assert_eq!(m.insn_bytes(0x1FF8), (1..=15).collect::<Vec<u8>>());
    assert_eq!(m.insn_bytes(MIN_RAM - 4).len(), 4);
    assert!(m.insn_bytes(MIN_RAM).is_empty());
}
