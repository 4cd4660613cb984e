//! What the fuzz tests (`tests/fuzz.rs`, `tests/fuzz_system.rs`) share: a VM for one fuzzed
//! block at a time, their environment knobs and their reports.

use runtime::{Engine, SerialSink, Vm, VmConfig};

/// A VM of `ram` bytes running `engine`, capturing serial output, with `pristine` copied to
/// guest-physical 0 and an instruction limit of `limit` per run.
pub fn vm_with(engine: Engine, ram: u64, limit: u64, pristine: &[u8]) -> Vm {
    let mut vm = Vm::new(VmConfig {
        mem_bytes: ram,
        engine,
        serial: SerialSink::Capture,
        instruction_limit: Some(limit),
        ..VmConfig::default()
    })
    .expect("vm");
    vm.write_phys(0, pristine).expect("ram");
    vm
}

/// An environment variable as a number, if set and valid.
pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// This process's resident memory in MiB (0 if /proc cannot tell).
pub fn resident_mib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| (pages * 4096) >> 20)
}

/// `b` as space-separated hex bytes.
pub fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// How many times the guest has observed something outside its own state: the TSC
/// (RDTSC, RDTSCP, RDPMC, RDMSR of `IA32_TIME_STAMP_COUNTER`), port and MMIO reads (the
/// PIT counters and port 0x61 follow host time; device registers keep what earlier runs left
/// there) and delivered interrupts. A run during which this grows is not reproducible.
pub fn outside_observations(vm: &Vm) -> u64 {
    use translator::sensitive::Hypercall as H;
    let m = vm.machine();
    let h = &m.hypercalls;
    [H::Rdtsc, H::Rdtscp, H::Rdpmc, H::Rdmsr, H::In, H::Ins]
        .iter()
        .map(|&k| h[k as usize])
        .sum::<u64>()
        + m.mmio[0]
        + m.interrupts_delivered
}
