//! The host's NMI button ([`Vm::nmi`], [`runtime::NmiHandle`]): the NMI arrives through
//! LAPIC LINT1 as vector 2 and wakes a vCPU halted with interrupts off, on every engine.

use std::time::Duration;

use iced_x86::code_asm::*;
use runtime::{Engine, RunOutcome, SerialSink, Vm, VmConfig};

mod common;

const HANDLER: u64 = 0x2000;
const IDT: u64 = 0x8000;
/// The handler counts NMIs here.
const COUNT: u64 = 0x3000;

fn asm(at: u64, f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    f(&mut a).unwrap();
    a.assemble(at).unwrap()
}

/// A VM whose guest halts twice with RFLAGS.IF = 0 (`cli; hlt; hlt`) and then exits through
/// isa-debug-exit with the number of NMIs its vector-2 handler counted.
fn guest(engine: Engine) -> Vm {
    let mut v = Vm::new(VmConfig {
        mem_bytes: 16 << 20,
        engine,
        serial: SerialSink::Capture,
        ..VmConfig::default()
    })
    .unwrap();
    let code = asm(0x1000, |a| {
        a.cli()?;
        a.hlt()?;
        a.hlt()?;
        a.mov(eax, dword_ptr(COUNT))?;
        a.out(0xf4, eax)
    });
    let handler = asm(HANDLER, |a| {
        a.inc(dword_ptr(COUNT))?;
        a.iretq()
    });
    common::with_handler(&mut v, IDT, 2, HANDLER, &handler, &code);
    v
}

fn count(v: &Vm) -> u32 {
    let mut b = [0u8; 4];
    v.read_phys(COUNT, &mut b).unwrap();
    u32::from_le_bytes(b)
}

#[test]
fn an_nmi_from_another_thread_wakes_hlt_with_interrupts_off() {
    for engine in Engine::ALL {
        let mut v = guest(engine);
        let button = v.nmi_handle();
        let (tx, rx) = std::sync::mpsc::channel();
        let runner = std::thread::spawn(move || {
            let outcome = v.run();
            tx.send(()).unwrap();
            (outcome, v)
        });
        for _ in 0..2 {
            // The vCPU sleeps in HLT with IF = 0; only the NMI can wake it.
            std::thread::sleep(Duration::from_millis(100));
            button.nmi();
        }
        rx.recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{engine:?}: the NMIs never woke the vCPU"));
        let (outcome, v) = runner.join().unwrap();
        assert_eq!(outcome, RunOutcome::DebugExit(2), "{engine:?}");
        assert_eq!(count(&v), 2, "{engine:?}");
    }
}

#[test]
fn an_nmi_between_runs_is_taken_first_and_without_a_handle_hlt_ends_the_run() {
    for engine in Engine::ALL {
        let mut v = guest(engine);
        // No NMI source is connected: `cli; hlt` is the guest's way to stop.
        assert_eq!(v.run(), RunOutcome::Halted, "{engine:?}");
        assert_eq!(count(&v), 0, "{engine:?}");
        v.nmi();
        assert_eq!(v.run(), RunOutcome::Halted, "{engine:?}: the second HLT");
        assert_eq!(count(&v), 1, "{engine:?}");
        v.nmi();
        assert_eq!(v.run(), RunOutcome::DebugExit(2), "{engine:?}");
    }
}
