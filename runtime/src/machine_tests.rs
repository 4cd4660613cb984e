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

#[test]
fn without_code_tracking_every_store_is_data() {
    // No engine installed code tracking (a bare machine, the host): even with generated
    // code "executing", a store to any page is performed and nothing counts as code.
    let mut m = machine();
    assert!(m.code_tracking().is_none());
    m.executing = Executing::Jit;
    for addr in [0, 0x1000, 0x1FFD, 0x5002, MIN_RAM - 8] {
        assert_eq!(m.write_virt(addr, 8, addr ^ 0xA5), Ok(WriteOutcome::Done));
        assert_eq!(m.read_virt(addr, 8, Access::Read), Ok(addr ^ 0xA5));
    }
    let mut cpu = CpuState::default();
    m.invlpg(&mut cpu, 0x5000);
    m.invalidate_code(0, MIN_RAM);
    assert_eq!((m.code_modified, m.modified.len()), (0, 0));
}

#[test]
fn stores_reach_code_tracking_byte_exactly() {
    use super::code_tracking::fake::{installed, FakeTracking};
    let mut m = machine();
    let code = vec![(0x3010, 0x3020), (0x4000, 0x4004)];
    m.set_code_tracking(Some(Box::new(FakeTracking {
        code,
        ..Default::default()
    })));
    // Data next to code on the same page, and other pages: no invalidation at all.
    for addr in [0x3000, 0x3008, 0x3020, 0x3FF8, 0x5000] {
        assert_eq!(m.write_virt(addr, 8, 1), Ok(WriteOutcome::Done));
    }
    assert_eq!(installed(&m).invalidated, []);
    // A store overlapping code bytes invalidates exactly its bytes, then is performed.
    assert_eq!(m.write_virt(0x300E, 4, 0x1122_3344), Ok(WriteOutcome::Done));
    assert_eq!(installed(&m).invalidated, [(0x300E, 0x3012)]);
    assert_eq!(m.read_virt(0x300E, 4, Access::Read), Ok(0x1122_3344));
    // From generated code, a store into code is refused and reported, not invalidated.
    m.executing = Executing::Jit;
    assert_eq!(m.write_virt(0x4002, 1, 7), Ok(WriteOutcome::CodeModified));
    assert_eq!(m.modified, [(0x4002, 0x4003)]);
    assert_eq!(m.read_virt(0x4002, 1, Access::Read), Ok(0));
    assert_eq!(installed(&m).invalidated.len(), 1);
    assert_eq!(m.write_virt(0x4004, 1, 7), Ok(WriteOutcome::Done));
    // INVLPG forgets the virtual PCs of the page and the one before it (paging off: 4 KiB).
    let mut cpu = CpuState::default();
    m.invlpg(&mut cpu, 0x7123);
    assert_eq!(installed(&m).forgotten, [(0x6000, 0x8000)]);
}
