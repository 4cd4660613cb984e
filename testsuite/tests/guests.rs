//! Every guest program, on every engine, prints exactly what the same C (or assembly)
//! compiled for the host prints when run natively — the native twin is the oracle.

use runtime::{Engine, RunOutcome, SerialSink, Vm, VmConfig};
use testsuite::guests::{self, Guest};
use testsuite::native::run_native;

/// Run `g`'s guest image under `engine`; returns the outcome and the serial output.
fn run_guest(g: &Guest, engine: Engine) -> (RunOutcome, Vec<u8>) {
    let elf = guests::build_guest(g, 1).unwrap_or_else(|e| panic!("build {}: {e}", g.name));
    let image = std::fs::read(&elf).expect("read guest image");
    let mut vm = Vm::new(VmConfig {
        mem_bytes: 64 << 20,
        engine,
        serial: SerialSink::Capture,
        // SCALE=1 runs take at most ~20 million instructions; a runaway stops cleanly.
        instruction_limit: Some(200_000_000),
        ..VmConfig::default()
    })
    .expect("create VM");
    vm.load_elf(&image).expect("load guest");
    let outcome = vm.run();
    (outcome, vm.serial_output().to_vec())
}

fn check(name: &str) {
    let g = guests::by_name(name).expect("guest exists");
    let (native, _) = run_native(g, 1).unwrap_or_else(|e| panic!("native {name}: {e}"));
    for engine in Engine::ALL {
        let (outcome, serial) = run_guest(g, engine);
        assert_eq!(
            String::from_utf8_lossy(&serial),
            String::from_utf8_lossy(&native),
            "{name} under {engine:?} (outcome {outcome:?}) differs from the native twin"
        );
        assert_eq!(outcome, RunOutcome::DebugExit(0), "{name} under {engine:?}");
    }
}

macro_rules! guest_tests {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { check(stringify!($name)); })*

        /// The list above covers every guest in the table.
        #[test]
        fn every_guest_has_a_test() {
            let mut listed = vec![$(stringify!($name)),*];
            let mut all: Vec<&str> = guests::all().iter().map(|g| g.name).collect();
            listed.sort_unstable();
            all.sort_unstable();
            assert_eq!(listed, all);
        }
    };
}

guest_tests!(
    sieve, crc32, sha256, sort, bytecode, muldiv, recursion, bits, lzss, matmul, strings, flags,
    vecmath, nbody, pcmpstr, x87, coldcode
);
