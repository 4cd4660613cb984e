//! Instructions popek does not implement raise #UD in the guest, as a CPU without the
//! feature does, on every engine; `stop_on_unsupported` (`--stop-on-unsupported`) stops
//! the VM instead; `--stats` counts the #UDs by mnemonic.

use runtime::{Engine, RunOutcome, SerialSink, Vm, VmConfig};
use translator::Exception;

mod common;

fn vm(engine: Engine, stop_on_unsupported: bool) -> Vm {
    Vm::new(VmConfig {
        mem_bytes: 16 << 20,
        engine,
        serial: SerialSink::Capture,
        instruction_limit: Some(1_000_000),
        stop_on_unsupported,
        ..VmConfig::default()
    })
    .unwrap()
}

/// `mov eax, 1 ; <insn> ; hlt` at 0x1000.
fn load(v: &mut Vm, insn: &[u8]) {
    let mut code = vec![0xB8, 1, 0, 0, 0];
    code.extend_from_slice(insn);
    code.push(0xF4);
    v.write_phys(0x1000, &code).unwrap();
    v.cpu_mut().rip = 0x1000;
}

fn uds(v: &Vm) -> Vec<(String, u64)> {
    v.stats().unsupported_uds
}

const VMCALL: &[u8] = &[0x0F, 0x01, 0xC1];

/// Without an IDT (IDTR zero) the #UD ends the run as any unhandled exception does, at the
/// instruction, which did not count as executed.
#[test]
fn unimplemented_instructions_raise_ud_at_the_instruction() {
    let cases: [(&str, &[u8]); 6] = [
        ("vmcall", VMCALL),
        ("vmmcall", &[0x0F, 0x01, 0xD9]),
        ("xgetbv", &[0x0F, 0x01, 0xD0]),
        // RDSEED: CPUID.07H:EBX[18] is 0 (QEMU 7.2 executes it anyway; the SDM says #UD).
        ("rdseed", &[0x0F, 0xC7, 0xF8]),
        ("rdrand", &[0x0F, 0xC7, 0xF0]),
        // vaddps ymm0, ymm1, ymm2 (VEX)
        ("vaddps", &[0xC5, 0xF4, 0x58, 0xC2]),
    ];
    for engine in Engine::ALL {
        for (name, insn) in cases {
            let mut v = vm(engine, false);
            load(&mut v, insn);
            assert_eq!(
                v.run(),
                RunOutcome::Exception {
                    exc: Exception::InvalidOpcode,
                    rip: 0x1005
                },
                "{engine:?} {name}"
            );
            assert_eq!(v.cpu().rip, 0x1005, "{engine:?} {name}");
            assert_eq!(v.cpu().gpr[0], 1, "{engine:?} {name}: the mov retired");
            assert_eq!(v.cpu().icount, 1, "{engine:?} {name}: only the mov counted");
            assert_eq!(uds(&v), [(name.to_string(), 1)], "{engine:?} {name}");
            let text = v.stats().to_string();
            assert!(
                text.contains(&format!("#UD (unimplemented)    {name} 1")),
                "{engine:?} {name}: {text}"
            );
        }
    }
}

/// With a #UD handler the guest carries on: it skips the instruction and counts, and each
/// #UD is counted by mnemonic.
#[test]
fn a_guest_handler_sees_each_ud_and_the_count_adds_up() {
    const IDT: u64 = 0x8000;
    const HANDLER: u64 = 0x9000;
    // inc rbx ; add qword [rsp], 3 (every probe below is 3 bytes) ; iretq
    let handler = [0x48, 0xFF, 0xC3, 0x48, 0x83, 0x04, 0x24, 0x03, 0x48, 0xCF];
    // vmcall ; vmmcall ; vmcall ; rdpru ; hlt
    let code = [
        0x0F, 0x01, 0xC1, 0x0F, 0x01, 0xD9, 0x0F, 0x01, 0xC1, 0x0F, 0x01, 0xFD, 0xF4,
    ];
    for engine in Engine::ALL {
        let mut v = vm(engine, false);
        common::with_handler(&mut v, IDT, 6, HANDLER, &handler, &code);
        assert_eq!(v.run(), RunOutcome::Halted, "{engine:?}");
        assert_eq!(v.cpu().gpr[3], 4, "{engine:?}: four #UDs handled");
        assert_eq!(v.cpu().rip, 0x100D, "{engine:?}");
        assert_eq!(
            uds(&v),
            [
                ("rdpru".to_string(), 1),
                ("vmcall".to_string(), 2),
                ("vmmcall".to_string(), 1)
            ],
            "{engine:?}"
        );
        assert_eq!(v.stats().exceptions_by_vector[6], 4, "{engine:?}");
    }
}

/// `stop_on_unsupported` keeps the old stop, precise at the instruction, and raises nothing.
#[test]
fn stop_on_unsupported_stops_at_the_instruction() {
    for engine in Engine::ALL {
        let mut v = vm(engine, true);
        load(&mut v, VMCALL);
        let RunOutcome::Unsupported { rip, bytes, what } = v.run() else {
            panic!("{engine:?}: expected Unsupported");
        };
        assert_eq!(rip, 0x1005, "{engine:?}");
        assert_eq!(&bytes[..3], VMCALL, "{engine:?}");
        assert!(what.contains("vmcall"), "{engine:?}: {what}");
        assert_eq!(v.cpu().icount, 1, "{engine:?}");
        assert!(uds(&v).is_empty(), "{engine:?}");
        assert_eq!(v.stats().exceptions, 0, "{engine:?}");
    }
}

/// Implemented instructions keep working: RDTSCP is offered by CPUID and executes.
#[test]
fn rdtscp_is_offered_and_runs() {
    for engine in Engine::ALL {
        let mut v = vm(engine, false);
        load(&mut v, &[0x0F, 0x01, 0xF9]);
        assert_eq!(v.run(), RunOutcome::Halted, "{engine:?}");
        assert!(uds(&v).is_empty(), "{engine:?}");
    }
}
