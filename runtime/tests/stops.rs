//! Stops are prompt: a stop request (what `--timeout` sends) and an instruction limit take
//! effect within 100 ms whatever the guest does: a storm of blocks that each need compiling,
//! a repeated string instruction with a count of 2^64 - 1, a HLT nothing will wake for hours.
//! Every engine. The tests run one at a time (a lock): each measures a latency.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use iced_x86::code_asm::*;
use runtime::{Engine, RunOutcome, SerialSink, Vm, VmConfig};

mod common;

/// The promise: a stop takes effect within this.
const PROMPT: Duration = Duration::from_millis(100);
/// How long the guest runs before the stop is asked for.
const RUN_FIRST: Duration = Duration::from_millis(300);

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn vm(engine: Engine, limit: Option<u64>) -> Vm {
    Vm::new(VmConfig {
        mem_bytes: 64 << 20,
        engine,
        serial: SerialSink::Capture,
        instruction_limit: limit,
        ..VmConfig::default()
    })
    .unwrap()
}

fn asm(at: u64, f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    f(&mut a).unwrap();
    a.assemble(at).unwrap()
}

/// Runs `vm` on another thread, asks it to stop after [`RUN_FIRST`], and returns the
/// outcome and how long the stop took.
fn stop_latency(mut vm: Vm) -> (RunOutcome, Duration, Vm) {
    let stop = vm.stop_handle();
    let (tx, rx) = std::sync::mpsc::channel();
    let runner = std::thread::spawn(move || {
        let outcome = vm.run();
        tx.send(Instant::now()).unwrap();
        (outcome, vm)
    });
    std::thread::sleep(RUN_FIRST);
    let asked = Instant::now();
    stop.stop();
    let ended = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the VM never stopped");
    let (outcome, vm) = runner.join().unwrap();
    (outcome, ended.saturating_duration_since(asked), vm)
}

/// `rep stosb` with RCX = 2^64 - 1 from 2 MiB.
fn endless_rep() -> Vec<u8> {
    asm(0x1000, |a| {
        a.mov(rdi, 0x20_0000u64)?;
        a.mov(rcx, u64::MAX)?;
        a.xor(eax, eax)?;
        a.rep().stosb()?;
        a.out(0xf4, eax)
    })
}

/// 4-level paging where the first 2 MiB are identity-mapped and every other canonical
/// lower-half address maps onto the 2 MiB page at 2 MiB: a store sweep that would take
/// days stays in RAM.
fn alias_everything(v: &mut Vm) {
    const PML4: u64 = 0x10000;
    const PDPT0: u64 = 0x11000;
    const PD0: u64 = 0x12000;
    const PDPT_ALL: u64 = 0x13000;
    const PD_ALL: u64 = 0x14000;
    let table = |first: u64, rest: u64| -> Vec<u8> {
        (0..512u64)
            .flat_map(|i| if i == 0 { first } else { rest }.to_le_bytes())
            .collect()
    };
    let (present_rw, big) = (0b11u64, 0x83u64);
    v.write_phys(PML4, &table(PDPT0 | present_rw, PDPT_ALL | present_rw))
        .unwrap();
    v.write_phys(PDPT0, &table(PD0 | present_rw, PD_ALL | present_rw))
        .unwrap();
    v.write_phys(PDPT_ALL, &table(PD_ALL | present_rw, PD_ALL | present_rw))
        .unwrap();
    v.write_phys(PD0, &table(big, 0x20_0000 | big)).unwrap();
    v.write_phys(PD_ALL, &table(0x20_0000 | big, 0x20_0000 | big))
        .unwrap();
    let cpu = v.cpu_mut();
    cpu.cr3 = PML4;
    cpu.cr4 |= 1 << 5; // PAE
    cpu.cr0 |= 1 << 31; // PG
}

#[test]
fn a_stop_ends_an_endless_rep_promptly() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for engine in Engine::ALL {
        let mut v = vm(engine, None);
        alias_everything(&mut v);
        v.write_phys(0x1000, &endless_rep()).unwrap();
        v.cpu_mut().rip = 0x1000;
        let (outcome, took, v) = stop_latency(v);
        assert_eq!(outcome, RunOutcome::Stopped, "{engine:?}");
        assert!(took < PROMPT, "{engine:?}: the stop took {took:?}");
        // Stopped between iterations, restartable: RIP at the REP, RCX counted down.
        assert!(v.cpu().gpr[1] < u64::MAX, "{engine:?}");
        println!("{engine:?}: endless REP stopped in {took:?}");
    }
}

#[test]
fn an_instruction_limit_ends_an_endless_rep_exactly() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for engine in Engine::ALL {
        // Each iteration after the first counts as an instruction (as in QEMU).
        let mut v = vm(engine, Some(1_000_000));
        v.write_phys(0x1000, &endless_rep()).unwrap();
        v.cpu_mut().rip = 0x1000;
        let t0 = Instant::now();
        assert_eq!(v.run(), RunOutcome::InstructionLimit, "{engine:?}");
        let took = t0.elapsed();
        assert_eq!(v.cpu().icount, 1_000_000, "{engine:?}");
        // Three instructions before the REP, then its iterations.
        assert_eq!(u64::MAX - v.cpu().gpr[1], 1_000_000 - 3, "{engine:?}");
        assert_eq!(v.cpu().gpr[7], 0x20_0000 + 1_000_000 - 3, "{engine:?}");
        println!("{engine:?}: 1,000,000 instructions of REP in {took:?}");
    }
}

/// Forty thousand distinct blocks (`add rax, 1; jmp next`), each needing a compilation under
/// the jit engine: the dispatcher looks at a stop request between any two.
#[test]
fn a_stop_ends_a_translation_storm_promptly() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let code = asm(0x1000, |a| {
        for _ in 0..40_000 {
            let mut next = a.create_label();
            a.add(rax, 1)?;
            a.jmp(next)?;
            a.set_label(&mut next)?;
        }
        a.out(0xf4, eax)
    });
    for engine in Engine::ALL {
        let mut v = vm(engine, None);
        v.write_phys(0x1000, &code).unwrap();
        v.cpu_mut().rip = 0x1000;
        let (outcome, took, v) = stop_latency(v);
        let done = v.cpu().gpr[0];
        if outcome == RunOutcome::DebugExit(40_000) {
            // A cheap tier got through all of it before the stop: nothing to measure.
            println!("{engine:?}: finished the storm before the stop");
            continue;
        }
        assert_eq!(outcome, RunOutcome::Stopped, "{engine:?}");
        assert!(
            took < PROMPT,
            "{engine:?}: the stop took {took:?} ({done} blocks run)"
        );
        println!("{engine:?}: translation storm stopped in {took:?} after {done} blocks");
    }
}

/// `sti; hlt` in a loop with the PIT ticking every 55 ms (its slowest rate) into an
/// `iretq` handler: the vCPU sleeps between ticks, and the stop wakes it.
#[test]
fn a_stop_ends_a_long_halt_promptly() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    const HANDLER: u64 = 0x2000;
    const IDT: u64 = 0x8000;
    let code = asm(0x1000, |a| {
        // 8259 master: ICW1-4 (vectors from 0x20), only IRQ 0 unmasked.
        for (port, v) in [
            (0x20u8, 0x11u8),
            (0x21, 0x20),
            (0x21, 0x04),
            (0x21, 0x01),
            (0x21, 0xFE),
        ] {
            a.mov(al, v as u32)?;
            a.out(port as u32, al)?;
        }
        // PIT channel 0: rate generator, the longest period (65536 counts).
        for (port, v) in [(0x43u8, 0x34u8), (0x40, 0), (0x40, 0)] {
            a.mov(al, v as u32)?;
            a.out(port as u32, al)?;
        }
        a.sti()?;
        let mut idle = a.create_label();
        a.set_label(&mut idle)?;
        a.hlt()?;
        a.jmp(idle)
    });
    let handler = asm(HANDLER, |a| {
        a.mov(al, 0x20u32)?;
        a.out(0x20u32, al)?; // EOI
        a.iretq()
    });
    for engine in Engine::ALL {
        let mut v = vm(engine, None);
        common::with_handler(&mut v, IDT, 0x20, HANDLER, &handler, &code);
        let (outcome, took, v) = stop_latency(v);
        assert_eq!(outcome, RunOutcome::Stopped, "{engine:?}");
        assert!(took < PROMPT, "{engine:?}: the stop took {took:?}");
        let s = v.stats();
        // The ticks were taken (woken from HLT each time): about 5 in 300 ms.
        assert!(s.interrupts >= 2, "{engine:?}: {s}");
        println!("{engine:?}: HLT stopped in {took:?}");
    }
}
