//! The x87 store probe ([`Helper::ProbeWrite`]) lowered inline: bytes the inline store fast
//! path would write (flat: inside RAM and the bitmap's pages, on no code page; Tlb: a
//! write-tag hit) need no helper; anything else calls it, and its #PF or code-page stop
//! leaves the block.

use super::Harness;
use crate::emit::{Emitter, Exit, ValueOps};
use crate::helpers::Helper;
use crate::ir::Ty;
use crate::state::{off_gpr, reg, ExitReason};

const PC: u64 = 0x1000;
const STOP: u64 = ExitReason::Stop as u64;
const CODE_MODIFIED: u64 = ExitReason::CodeModified as u64;
const EXCEPTION: u64 = ExitReason::Exception as u64;

/// A block that probes `bytes` at RCX (or at `konst`), then stops.
fn probe_block(h: &mut Harness, bytes: Option<u64>, konst: Option<u64>) -> usize {
    h.install_raw(PC, |e| {
        let a = match konst {
            Some(c) => e.iconst(Ty::I64, c),
            None => e.load_state(Ty::I64, off_gpr(reg::RCX)),
        };
        let n = match bytes {
            Some(n) => e.iconst(Ty::I64, n),
            None => e.load_state(Ty::I64, off_gpr(reg::RDX)),
        };
        let z = e.iconst(Ty::I64, 0);
        e.call_helper(Helper::ProbeWrite, [a, n, z]);
        e.exit(Exit::Return(ExitReason::Stop));
    })
    .expect("translate")
}

/// Run `host` with RCX = `addr`, RDX = `bytes`: (exit, probe helper calls).
fn run(h: &mut Harness, host: usize, addr: u64, bytes: u64) -> (u64, usize) {
    h.m.calls.clear();
    h.cpu.gpr[reg::RCX] = addr;
    h.cpu.gpr[reg::RDX] = bytes;
    let r = h.enter(host);
    let calls = h.m.calls.iter().filter(|c| c.0 == Helper::ProbeWrite);
    (r, calls.count())
}

#[test]
fn data_pages_in_ram_need_no_helper() {
    let mut h = Harness::new();
    let ram = super::RAM_SIZE as u64;
    for bytes in [2, 10, 28, 108, 512] {
        let host = probe_block(&mut h, Some(bytes), None);
        for addr in [0, 0x5000, 0x5ffc, ram - bytes] {
            assert_eq!(
                run(&mut h, host, addr, bytes),
                (STOP, 0),
                "{bytes} at {addr:#x}"
            );
        }
    }
}

#[test]
fn code_pages_stop_through_the_helper() {
    let mut h = Harness::new();
    let host = probe_block(&mut h, Some(10), None);
    h.m.set_code_page(6, true);
    assert_eq!(run(&mut h, host, 0x6000, 10), (CODE_MODIFIED, 1));
    // The last byte's page holds code.
    assert_eq!(run(&mut h, host, 0x5ff8, 10), (CODE_MODIFIED, 1));
    // Wholly on the page below: the guard sends it to the helper, which finds no code.
    assert_eq!(run(&mut h, host, 0x5ff6, 10), (STOP, 1));
    assert_eq!(run(&mut h, host, 0x4ff6, 10), (STOP, 0));
    assert_eq!(run(&mut h, host, 0x7000, 10), (STOP, 0));
}

#[test]
fn outside_ram_faults_through_the_helper() {
    let mut h = Harness::new();
    let ram = super::RAM_SIZE as u64;
    let host = probe_block(&mut h, Some(10), None);
    for addr in [ram - 9, ram, u64::MAX - 3, 1 << 63] {
        assert_eq!(run(&mut h, host, addr, 10), (EXCEPTION, 1), "{addr:#x}");
    }
}

#[test]
fn constant_addresses_and_sizes_of_no_inline_check() {
    let mut h = Harness::new();
    let ram = super::RAM_SIZE as u64;
    let inside = probe_block(&mut h, Some(8), Some(0x3000));
    assert_eq!(run(&mut h, inside, 0, 0), (STOP, 0));
    h.m.set_code_page(3, true);
    assert_eq!(run(&mut h, inside, 0, 0), (CODE_MODIFIED, 1));
    let beyond = probe_block(&mut h, Some(8), Some(ram));
    assert_eq!(run(&mut h, beyond, 0, 0), (EXCEPTION, 1));
    // A size only known at run time, or larger than a page, always takes the helper.
    let any = probe_block(&mut h, None, None);
    assert_eq!(run(&mut h, any, 0x8000, 10), (STOP, 1));
    let huge = probe_block(&mut h, Some(8192), None);
    assert_eq!(run(&mut h, huge, 0x8000, 8192), (STOP, 1));
}
