// TEMPORARY (perf investigation, to be deleted).
use runtime::{Engine, SerialSink, Vm, VmConfig};
use testsuite::guests;
#[test]
fn stats() {
    for name in ["recursion", "bytecode", "sort"] {
        let g = guests::by_name(name).unwrap();
        let elf = guests::build_guest(g, 20).unwrap();
        let image = std::fs::read(&elf).unwrap();
        let mut vm = Vm::new(VmConfig { mem_bytes: 64 << 20, engine: Engine::Dbt, serial: SerialSink::Capture, ..VmConfig::default() }).unwrap();
        vm.load_elf(&image).unwrap();
        let t = std::time::Instant::now();
        let o = vm.run();
        eprintln!("== {name} {o:?} {:?}\n{}", t.elapsed(), vm.stats());
    }
}
