//! End-to-end runs of guests on both engines through the public [`Vm`] API.

use cache::CacheConfig;
use runtime::{Engine, RunOutcome, SerialSink, Vm, VmConfig};
use translator::Exception;

const ENGINES: [Engine; 4] = Engine::ALL;

fn vm(engine: Engine) -> Vm {
    Vm::new(VmConfig {
        mem_bytes: 16 << 20,
        engine,
        serial: SerialSink::Capture,
        instruction_limit: Some(50_000_000),
        ..VmConfig::default()
    })
    .unwrap()
}

/// What the demo guest prints, computed here independently.
fn expected_demo_output() -> String {
    let primes: Vec<u32> = (2..1000u32)
        .filter(|&n| (2..n).take_while(|d| d * d <= n).all(|d| n % d != 0))
        .collect();
    let checksum = primes
        .iter()
        .fold(0u32, |c, &p| c.wrapping_mul(31).wrapping_add(p));
    let lines: Vec<String> = primes
        .chunks(10)
        .map(|c| c.iter().map(u32::to_string).collect::<Vec<_>>().join(" "))
        .collect();
    format!(
        "popek demo guest: hello from a virtual x86-64 CPU\ncpu vendor: {}\n\
         primes below 1000:\n{}\ncount={} checksum={checksum:#010x}\ngoodbye\n",
        // The model reports the host's vendor.
        String::from_utf8_lossy(runtime::cpuid::vendor_id(runtime::cpuid::vendor())),
        lines.join("\n"),
        primes.len()
    )
}

#[test]
fn demo_guest_runs_on_both_engines() {
    let expected = expected_demo_output();
    let mut states = Vec::new();
    for engine in ENGINES {
        let mut vm = vm(engine);
        let entry = vm.load_elf(runtime::DEMO_KERNEL).unwrap();
        assert_eq!(entry, 0x10_0000);
        assert_eq!(vm.run(), RunOutcome::DebugExit(0), "{engine:?}");
        assert_eq!(
            String::from_utf8_lossy(vm.serial_output()),
            expected,
            "{engine:?}"
        );
        let s = vm.stats();
        assert_eq!(s.exceptions, 0);
        assert_eq!(s.bus.unclaimed_reads + s.bus.unclaimed_writes, 0);
        assert!(s.guest_insns > 50_000, "{engine:?}: {}", s.guest_insns);
        states.push((vm.cpu().gpr, vm.cpu().rip));
    }
    assert!(
        states.windows(2).all(|w| w[0] == w[1]),
        "every engine ends in the same state"
    );
}

/// `--perf-map`: every block the jit engine compiled is named, at a distinct host address,
/// in Linux perf's map format (the only test in this process that writes the map).
#[test]
fn perf_map_names_every_compiled_block() {
    let path = format!("/tmp/perf-{}.map", std::process::id());
    let _ = std::fs::remove_file(&path);
    let mut vm = Vm::new(VmConfig {
        mem_bytes: 16 << 20,
        engine: Engine::Jit,
        serial: SerialSink::Capture,
        perf_map: true,
        ..VmConfig::default()
    })
    .unwrap();
    vm.load_elf(runtime::DEMO_KERNEL).unwrap();
    assert_eq!(vm.run(), RunOutcome::DebugExit(0));
    let blocks = vm.stats().dbt.blocks_translated;
    drop(vm);
    let text = std::fs::read_to_string(&path).expect("the map exists");
    let _ = std::fs::remove_file(&path);
    let mut starts = Vec::new();
    for line in text.lines().filter(|l| l.contains(" guest_")) {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 3, "{line}");
        starts.push(u64::from_str_radix(f[0], 16).expect("hex start"));
        assert!(
            u64::from_str_radix(f[1], 16).expect("hex size") > 0,
            "{line}"
        );
    }
    assert!(blocks > 0);
    assert_eq!(starts.len() as u64, blocks, "{text}");
    starts.sort_unstable();
    starts.dedup();
    assert_eq!(starts.len() as u64, blocks, "distinct addresses: {text}");
}

#[test]
fn demo_guest_survives_a_tiny_code_cache() {
    let mut vm = Vm::new(VmConfig {
        mem_bytes: 16 << 20,
        engine: Engine::Dbt,
        serial: SerialSink::Capture,
        cache: CacheConfig {
            code_bytes: 8192,
            max_slots: 16,
            jump_cache_entries: 8,
        },
        instruction_limit: None,
        count_tlb_hits: false,
        tiering: None,
        stop_on_unsupported: false,
        perf_map: false,
    })
    .unwrap();
    vm.load_elf(runtime::DEMO_KERNEL).unwrap();
    assert_eq!(vm.run(), RunOutcome::DebugExit(0));
    assert_eq!(
        String::from_utf8_lossy(vm.serial_output()),
        expected_demo_output()
    );
    assert!(vm.stats().cache.flushes > 0, "the cache had to be flushed");
}

#[test]
fn switching_engines_mid_run_keeps_going() {
    let mut v = vm(Engine::Interp);
    v.load_elf(runtime::DEMO_KERNEL).unwrap();
    v.cpu_mut().icount_limit = 20_000;
    assert_eq!(v.run(), RunOutcome::InstructionLimit);
    v.set_engine(Engine::Dbt);
    v.cpu_mut().icount_limit = 40_000;
    assert_eq!(v.run(), RunOutcome::InstructionLimit);
    assert_eq!(v.cpu().icount, 40_000, "the DBT stops exactly at the limit");
    v.set_engine(Engine::Interp);
    v.cpu_mut().icount_limit = u64::MAX;
    assert_eq!(v.run(), RunOutcome::DebugExit(0));
    assert_eq!(
        String::from_utf8_lossy(v.serial_output()),
        expected_demo_output()
    );
}

/// `mov byte [rip+1], 2 ; mov eax, 1 ; out 0xf4, eax ; hlt` at 0x1000: the store rewrites
/// the immediate of the next instruction, in the same block and page.
const SELF_MODIFYING: [u8; 15] = [
    0xC6, 0x05, 0x01, 0x00, 0x00, 0x00, 0x02, // mov byte [rip+1], 2
    0xB8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1
    0xE7, 0xF4, // out 0xf4, eax
    0xF4, // hlt
];

#[test]
fn self_modifying_code_is_seen_by_both_engines() {
    for engine in ENGINES {
        let mut v = vm(engine);
        v.write_phys(0x1000, &SELF_MODIFYING).unwrap();
        v.cpu_mut().rip = 0x1000;
        assert_eq!(v.run(), RunOutcome::DebugExit(2), "{engine:?}");
        // Every engine stops the block at the store and steps through it.
        let s = v.stats();
        assert_eq!(s.code_modified, 1, "{engine:?}");
        assert_eq!(s.dbt.single_steps, 1, "{engine:?}");
        assert!(s.cache.invalidations >= 1, "{engine:?}");
    }
}

/// Stores next to code: the inline store check reads one guard byte covering a page and the
/// next, so stores to the page below a code page go to the exact path. Those that stay on
/// that page must land and count as data; those that straddle into the code page must be
/// seen as code modifications, on every engine, and the code must run as rewritten.
#[test]
fn stores_below_and_straddling_into_a_code_page() {
    use iced_x86::code_asm::*;
    // The function at 0x11000, first on its page: `mov eax, 7 ; ret`.
    let func = [0xB8, 7, 0, 0, 0, 0xC3];
    let mut a = CodeAssembler::new(64).unwrap();
    let mut top = a.create_label();
    (|| -> Result<(), IcedError> {
        a.mov(rsp, 0x8_0000u64)?;
        a.xor(ebx, ebx)?;
        a.mov(ecx, 300u32)?;
        a.set_label(&mut top)?;
        a.mov(eax, 0x11000u32)?;
        a.call(rax)?;
        a.add(ebx, eax)?;
        // Data on the page below the function's (which holds no code).
        a.mov(qword_ptr(0x10800u64), rcx)?;
        // Bytes 0x10ffc..0x11004: four of data, then `B8 imm0 imm1 imm2` = mov eax, ecx.
        a.mov(edx, ecx)?;
        a.shl(edx, 8)?;
        a.or(edx, 0xB8)?;
        a.shl(rdx, 32)?;
        a.mov(qword_ptr(0x10ffcu64), rdx)?;
        a.dec(ecx)?;
        a.jnz(top)?;
        a.mov(eax, ebx)?;
        a.out(0xF4, eax)?;
        a.hlt()
    })()
    .unwrap();
    let main = a.assemble(0x20000).unwrap();
    // The first call returns 7, the one after the store of count c returns c (300..2).
    let expected = 7 + (2..=300u32).sum::<u32>();
    for engine in ENGINES {
        let mut v = vm(engine);
        v.write_phys(0x11000, &func).unwrap();
        v.write_phys(0x20000, &main).unwrap();
        v.cpu_mut().rip = 0x20000;
        assert_eq!(v.run(), RunOutcome::DebugExit(expected), "{engine:?}");
        let mut b = [0u8; 8];
        v.read_phys(0x10800, &mut b).unwrap();
        assert_eq!(
            u64::from_le_bytes(b),
            1,
            "{engine:?}: the data store landed"
        );
        assert_eq!(
            v.stats().code_modified,
            300,
            "{engine:?}: only the straddling stores"
        );
    }
}

#[test]
fn stores_outside_ram_fault_precisely_on_both_engines() {
    // mov rbx, 0x1000000 (16 MiB: end of RAM) ; mov [rbx-2], eax  -> straddles the end
    let code = [
        0x48, 0xC7, 0xC3, 0x00, 0x00, 0x00, 0x01, // mov rbx, 0x1000000
        0x89, 0x43, 0xFE, // mov [rbx-2], eax
        0xF4,
    ];
    for engine in ENGINES {
        let mut v = vm(engine);
        v.write_phys(0x2000, &code).unwrap();
        v.write_phys((16 << 20) - 2, &[0xAA, 0xBB]).unwrap();
        v.cpu_mut().rip = 0x2000;
        v.cpu_mut().gpr[0] = 0x1122_3344;
        assert_eq!(
            v.run(),
            RunOutcome::Exception {
                exc: Exception::PageFault {
                    addr: 16 << 20,
                    code: 2
                },
                rip: 0x2007
            },
            "{engine:?}"
        );
        let mut b = [0u8; 2];
        v.read_phys((16 << 20) - 2, &mut b).unwrap();
        assert_eq!(b, [0xAA, 0xBB], "{engine:?}: no partial store");
        assert_eq!(
            v.cpu().gpr[3],
            0x100_0000,
            "{engine:?}: earlier instruction retired"
        );
        assert_eq!(v.stats().exceptions, 1);
    }
}

#[test]
fn halt_with_interrupts_off_is_a_clean_stop() {
    for engine in ENGINES {
        let mut v = vm(engine);
        v.write_phys(0x1000, &[0xFA, 0xF4]).unwrap(); // cli ; hlt
        v.cpu_mut().rip = 0x1000;
        assert_eq!(v.run(), RunOutcome::Halted, "{engine:?}");
        assert_eq!(v.cpu().rip, 0x1002, "{engine:?}: RIP after the HLT");
    }
}

/// Regression: the DBT charges a block's instructions at entry, and once kept the charge
/// when the block left early (a store to its own code, a fault), so with an instruction
/// limit the engines stopped at different places. Repro from the differential fuzzer:
/// `push rbx ; leave ; ...` where the push overwrites the following code.
#[test]
fn early_block_exits_count_only_executed_instructions() {
    let mut seen = Vec::new();
    for engine in ENGINES {
        let mut v = vm(engine);
        v.write_phys(0x18_01da, &[0x53, 0xC9, 0x4D, 0x6D]).unwrap();
        v.cpu_mut().rip = 0x18_01da;
        v.cpu_mut().gpr[4] = 0x18_01e4;
        v.cpu_mut().icount_limit = 3;
        let outcome = v.run();
        seen.push((outcome, v.cpu().rip, v.cpu().icount));
    }
    assert_eq!(seen[0], seen[1], "interp vs dbt (outcome, rip, icount)");

    // mov eax, 1 ; mov [rbx], eax (rbx past RAM: #PF) ; hlt
    let code = [0xB8, 1, 0, 0, 0, 0x89, 0x03, 0xF4];
    for engine in ENGINES {
        let mut v = vm(engine);
        v.write_phys(0x1000, &code).unwrap();
        v.cpu_mut().rip = 0x1000;
        v.cpu_mut().gpr[3] = 1 << 40;
        assert!(
            matches!(v.run(), RunOutcome::Exception { rip: 0x1005, .. }),
            "{engine:?}"
        );
        assert_eq!(
            v.cpu().icount,
            1,
            "{engine:?}: only the first mov completed"
        );
    }
}

/// Identity-maps the first 2 MiB with 4 KiB pages (PML4 at 0x10000, PT at 0x13000), maps
/// `extra` (virtual page, physical page) pairs over it, and turns on 4-level paging at CPL 0.
fn paging_on(v: &mut Vm, extra: &[(u64, u64)]) {
    use translator::state::cr;
    let entry = |phys: u64| (phys | 3).to_le_bytes();
    v.write_phys(0x10000, &entry(0x11000)).unwrap();
    v.write_phys(0x11000, &entry(0x12000)).unwrap();
    v.write_phys(0x12000, &entry(0x13000)).unwrap();
    for page in 0..512u64 {
        let phys = extra
            .iter()
            .find(|&&(virt, _)| virt == page << 12)
            .map_or(page << 12, |&(_, phys)| phys);
        v.write_phys(0x13000 + 8 * page, &entry(phys)).unwrap();
    }
    let cpu = v.cpu_mut();
    cpu.cr3 = 0x10000;
    cpu.cr4 |= cr::CR4_PAE;
    cpu.cr0 |= cr::CR0_PG | cr::CR0_WP;
}

/// Regression: blocks are keyed by the physical address of their start, so a block whose last
/// instruction runs onto the next page ran the old bytes after the guest remapped only that
/// page (and the decoder's lookahead set A bits on pages no instruction reached).
#[test]
fn a_remapped_second_page_retranslates_the_straddling_block() {
    // lea r12, [rip+7]; mov ecx, 0x20FFD; jmp rcx
    // back1: mov ebx, eax; mov edi, 0x13108; mov qword [rdi], 0x31003  (0x21000 -> 0x31000)
    // mov esi, 0x21000; invlpg [rsi]; lea r12, [rip+2]; jmp rcx
    // back2: out 0xf4, eax
    const MAIN: [u8; 47] = [
        0x4c, 0x8d, 0x25, 0x07, 0x00, 0x00, 0x00, 0xb9, 0xfd, 0x0f, 0x02, 0x00, 0xff, 0xe1, 0x89,
        0xc3, 0xbf, 0x08, 0x31, 0x01, 0x00, 0x48, 0xc7, 0x07, 0x03, 0x10, 0x03, 0x00, 0xbe, 0x00,
        0x10, 0x02, 0x00, 0x0f, 0x01, 0x3e, 0x4c, 0x8d, 0x25, 0x02, 0x00, 0x00, 0x00, 0xff, 0xe1,
        0xe7, 0xf4,
    ];
    for engine in Engine::ALL {
        let mut v = vm(engine);
        // MAIN ends exactly at a page end: decoding its blocks looks ahead onto page 2.
        let main = 0x2000 - MAIN.len() as u64;
        v.write_phys(main, &MAIN).unwrap();
        // mov eax, imm32 at 0x20FFD: two immediate bytes on each page; then jmp r12.
        v.write_phys(0x20FFD, &[0xB8, 0x11, 0x22]).unwrap();
        v.write_phys(0x30000, &[0x33, 0x44, 0x41, 0xFF, 0xE4])
            .unwrap();
        v.write_phys(0x31000, &[0x55, 0x66, 0x41, 0xFF, 0xE4])
            .unwrap();
        paging_on(&mut v, &[(0x21000, 0x30000)]);
        v.cpu_mut().rip = main;
        assert_eq!(v.run(), RunOutcome::DebugExit(0x6655_2211), "{engine:?}");
        assert_eq!(v.cpu().gpr[3], 0x4433_2211, "{engine:?}: the first mapping");
        let mut pte = [0u8; 8];
        v.read_phys(0x13000 + 8 * 2, &mut pte).unwrap();
        assert_eq!(
            pte[0] & 0x20,
            0,
            "{engine:?}: A set on page 2, never fetched"
        );
        v.read_phys(0x13000 + 8 * 0x21, &mut pte).unwrap();
        assert_eq!(
            pte[0] & 0x20,
            0x20,
            "{engine:?}: A clear on the fetched page"
        );
    }
}

/// Regression (Linux's early boot, which runs its code at the physical address and then at
/// the kernel's virtual one): one physical page of code reached through two virtual
/// addresses ran the translation made for the first, with its RIP-relative results and
/// branch targets.
#[test]
fn the_same_code_at_two_virtual_addresses_gets_two_translations() {
    use iced_x86::code_asm::*;
    // At physical 0x30000, mapped at 0x21000 and 0x22000: rax = the address after the lea,
    // then back to r12.
    let mut a = CodeAssembler::new(64).unwrap();
    let mut here = a.create_label();
    a.lea(rax, qword_ptr(here)).unwrap();
    a.set_label(&mut here).unwrap();
    a.jmp(r12).unwrap();
    let alias = a.assemble(0x21000).unwrap();
    let mut a = CodeAssembler::new(64).unwrap();
    let mut back1 = a.create_label();
    let mut back2 = a.create_label();
    a.lea(r12, qword_ptr(back1)).unwrap();
    a.mov(ecx, 0x21000u32).unwrap();
    a.jmp(rcx).unwrap();
    a.set_label(&mut back1).unwrap();
    a.mov(rbx, rax).unwrap();
    a.lea(r12, qword_ptr(back2)).unwrap();
    a.mov(ecx, 0x22000u32).unwrap();
    a.jmp(rcx).unwrap();
    a.set_label(&mut back2).unwrap();
    a.hlt().unwrap();
    let main = a.assemble(0x1000).unwrap();
    for engine in Engine::ALL {
        let mut v = vm(engine);
        v.write_phys(0x1000, &main).unwrap();
        v.write_phys(0x30000, &alias).unwrap();
        paging_on(&mut v, &[(0x21000, 0x30000), (0x22000, 0x30000)]);
        v.cpu_mut().rip = 0x1000;
        assert_eq!(v.run(), RunOutcome::Halted, "{engine:?}");
        let cpu = v.cpu();
        assert_eq!((cpu.gpr[3], cpu.gpr[0]), (0x21007, 0x22007), "{engine:?}");
    }
}

/// Regression (hostile-guest fuzz): a fault in a sensitive instruction's memory operand,
/// before its hypercall, left through a fault exit that the hypercall had told to keep the
/// stored flags, so the flags of the instructions before it in the block were lost.
#[test]
fn a_fault_before_a_hypercall_keeps_the_blocks_flags() {
    // add ebx, ebx ; mov es, [rdi+0x28]  (rdi non-canonical: #GP before the segment load)
    let code = [0x01, 0xDB, 0x8E, 0x47, 0x28];
    for engine in Engine::ALL {
        let mut vm = vm(engine);
        vm.write_phys(0x1000, &code).unwrap();
        let cpu = vm.cpu_mut();
        cpu.rip = 0x1000;
        cpu.gpr[3] = 0x8000_0000;
        cpu.gpr[7] = 0xCCCC_CCCC_CCCC_CCCC;
        let o = vm.run();
        assert!(
            matches!(o, RunOutcome::Exception { rip: 0x1002, .. }),
            "{engine:?}: {o}"
        );
        // 0x80000000 + 0x80000000 = 0: CF PF ZF OF.
        assert_eq!(vm.cpu().full_rflags(), 0x847, "{engine:?}");
    }
}

/// INVLPG drops the jump-cache entries of the page it names (and no longer the whole jump
/// cache): a remapped code page reached again through an indirect jump runs its new bytes.
#[test]
fn invlpg_of_a_remapped_code_page_reaches_its_new_code() {
    // lea r12, [rip+7]; mov ecx, 0x21000; jmp rcx
    // back1: mov ebx, eax; mov edi, 0x13108; mov qword [rdi], 0x31003  (0x21000 -> 0x31000)
    // mov esi, 0x21000; invlpg [rsi]; lea r12, [rip+2]; jmp rcx
    // back2: out 0xf4, eax
    let main = [
        0x4c, 0x8d, 0x25, 0x07, 0x00, 0x00, 0x00, 0xb9, 0x00, 0x10, 0x02, 0x00, 0xff, 0xe1, 0x89,
        0xc3, 0xbf, 0x08, 0x31, 0x01, 0x00, 0x48, 0xc7, 0x07, 0x03, 0x10, 0x03, 0x00, 0xbe, 0x00,
        0x10, 0x02, 0x00, 0x0f, 0x01, 0x3e, 0x4c, 0x8d, 0x25, 0x02, 0x00, 0x00, 0x00, 0xff, 0xe1,
        0xe7, 0xf4,
    ];
    for engine in Engine::ALL {
        let mut v = vm(engine);
        v.write_phys(0x1000, &main).unwrap();
        // mov eax, imm32; jmp r12 — on each of the two frames.
        v.write_phys(0x30000, &[0xB8, 1, 0, 0, 0, 0x41, 0xFF, 0xE4])
            .unwrap();
        v.write_phys(0x31000, &[0xB8, 2, 0, 0, 0, 0x41, 0xFF, 0xE4])
            .unwrap();
        paging_on(&mut v, &[(0x21000, 0x30000)]);
        v.cpu_mut().rip = 0x1000;
        assert_eq!(v.run(), RunOutcome::DebugExit(2), "{engine:?}");
        assert_eq!(v.cpu().gpr[3], 1, "{engine:?}: the first mapping");
    }
}

/// With `count_tlb_hits` (what `--stats` sets) generated code counts its inline soft-TLB
/// hits; without it nothing is counted or reported.
#[test]
fn inline_tlb_hits_are_counted_on_request() {
    // mov ecx, 1000; 1: mov eax, [0x5000]; dec ecx; jnz 1b; out 0xf4, eax
    let code = [
        0xB9, 0xE8, 0x03, 0, 0, 0x8B, 0x04, 0x25, 0x00, 0x50, 0, 0, 0xFF, 0xC9, 0x75, 0xF5, 0xE7,
        0xF4,
    ];
    for count in [false, true] {
        let mut v = Vm::new(VmConfig {
            mem_bytes: 16 << 20,
            engine: Engine::Jit,
            serial: SerialSink::Capture,
            count_tlb_hits: count,
            ..VmConfig::default()
        })
        .unwrap();
        v.write_phys(0x1000, &code).unwrap();
        v.write_phys(0x5000, &7u32.to_le_bytes()).unwrap();
        paging_on(&mut v, &[]);
        v.cpu_mut().rip = 0x1000;
        assert_eq!(v.run(), RunOutcome::DebugExit(7));
        let s = v.stats();
        if count {
            let hits = s.tlb_inline_hits.unwrap();
            assert!((990..=1000).contains(&hits), "{hits}");
        } else {
            assert_eq!(s.tlb_inline_hits, None);
        }
        assert!(s.tlb.misses >= 1, "the first load walks");
    }
}

/// STI's interrupt shadow: with an interrupt already pending, the instruction after STI
/// completes before the interrupt is taken, and not more than that one.
#[test]
fn sti_shadows_exactly_one_instruction() {
    // mov dword [0x1FF0F0], 0x1FF        LAPIC SVR: enabled
    // mov dword [0x1FF300], 0x40040      ICR: fixed self-IPI, vector 0x40 (pending, IF = 0)
    // xor eax, eax; sti; mov eax, 1; mov eax, 2; out 0xf4, eax
    let code = [
        0xC7, 0x04, 0x25, 0xF0, 0xF0, 0x1F, 0x00, 0xFF, 0x01, 0x00, 0x00, //
        0xC7, 0x04, 0x25, 0x00, 0xF3, 0x1F, 0x00, 0x40, 0x00, 0x04, 0x00, //
        0x31, 0xC0, 0xFB, 0xB8, 1, 0, 0, 0, 0xB8, 2, 0, 0, 0, 0xE7, 0xF4,
    ];
    for engine in Engine::ALL {
        // The handler adds 0x100 to EAX: 1 + 0x100 says exactly one instruction ran.
        let o = run_with_handler(engine, 0x40, &code);
        assert_eq!(o, RunOutcome::DebugExit(0x101), "{engine:?}");
    }
}

/// A 64-bit VM at CPL 0 with paging on, the LAPIC at 0x1FF000, RSP = 0x8000, running
/// `code` at 0x1000 with IF = 0; IDT gate `vector` leads to `add eax, 0x100; out 0xf4, eax`.
fn run_with_handler(engine: Engine, vector: u64, code: &[u8]) -> RunOutcome {
    let mut v = vm(engine);
    v.write_phys(0x1000, code).unwrap();
    v.write_phys(0x4008, &0x00AF_9B00_0000_FFFFu64.to_le_bytes())
        .unwrap();
    let gate = 0x6000u64 | 0x08 << 16 | 0x8E << 40;
    v.write_phys(0x5000 + 16 * vector, &gate.to_le_bytes())
        .unwrap();
    v.write_phys(0x6000, &[0x05, 0, 1, 0, 0, 0xE7, 0xF4])
        .unwrap();
    paging_on(&mut v, &[(0x1FF000, 0xFEE0_0000)]);
    let cpu = v.cpu_mut();
    cpu.gdtr = translator::state::DescTable {
        base: 0x4000,
        limit: 0xF,
    };
    cpu.idtr = translator::state::DescTable {
        base: 0x5000,
        limit: 0xFFF,
    };
    cpu.gpr[4] = 0x8000;
    cpu.rip = 0x1000;
    v.run()
}

/// POPF (in line in 64-bit mode) that turns IF on takes an interrupt already pending
/// before the next instruction: unlike STI, it opens no interrupt shadow.
#[test]
fn popf_enabling_interrupts_takes_a_pending_one_at_the_next_instruction() {
    // LAPIC on, self-IPI vector 0x40 pending; xor eax, eax; push 0x202; popfq;
    // mov eax, 1; mov eax, 2; out 0xf4, eax
    let code = [
        0xC7, 0x04, 0x25, 0xF0, 0xF0, 0x1F, 0x00, 0xFF, 0x01, 0x00, 0x00, //
        0xC7, 0x04, 0x25, 0x00, 0xF3, 0x1F, 0x00, 0x40, 0x00, 0x04, 0x00, //
        0x31, 0xC0, 0x68, 0x02, 0x02, 0, 0, 0x9D, //
        0xB8, 1, 0, 0, 0, 0xB8, 2, 0, 0, 0, 0xE7, 0xF4,
    ];
    for engine in Engine::ALL {
        let o = run_with_handler(engine, 0x40, &code);
        assert_eq!(o, RunOutcome::DebugExit(0x100), "{engine:?}");
    }
}

/// POPF (in line in 64-bit mode) that sets TF does not trap itself; the next instruction
/// runs and traps (#DB after it).
#[test]
fn popf_setting_tf_traps_after_the_next_instruction() {
    // xor eax, eax; push 0x102; popfq; mov eax, 1; mov eax, 2; out 0xf4, eax
    let code = [
        0x31, 0xC0, 0x68, 0x02, 0x01, 0, 0, 0x9D, //
        0xB8, 1, 0, 0, 0, 0xB8, 2, 0, 0, 0, 0xE7, 0xF4,
    ];
    for engine in Engine::ALL {
        let o = run_with_handler(engine, 1, &code);
        assert_eq!(o, RunOutcome::DebugExit(0x101), "{engine:?}");
    }
}

/// A fault in the middle of REP INS / REP OUTS keeps the iterations done before it: RCX,
/// RDI/RSI and memory say how far it got (the instruction restarts from there).
#[test]
fn rep_ins_and_outs_fault_with_their_progress() {
    const END: u64 = 16 << 20;
    // rep insb (dx = 0x80: reads 0xFF) ; rep outsb
    for (code, index) in [([0xF3u8, 0x6C], 7usize), ([0xF3, 0x6E], 6)] {
        for engine in Engine::ALL {
            let mut v = vm(engine);
            v.write_phys(0x1000, &code).unwrap();
            v.write_phys(END - 4, &[0; 4]).unwrap();
            let cpu = v.cpu_mut();
            cpu.rip = 0x1000;
            cpu.gpr[1] = 10;
            cpu.gpr[2] = 0x80;
            cpu.gpr[index] = END - 4;
            let o = v.run();
            assert!(
                matches!(o, RunOutcome::Exception { rip: 0x1000, .. }),
                "{engine:?}: {o}"
            );
            assert_eq!(
                v.cpu().gpr[1],
                6,
                "{engine:?} {code:x?}: RCX after 4 iterations"
            );
            assert_eq!(v.cpu().gpr[index], END, "{engine:?} {code:x?}");
            if index == 7 {
                let mut got = [0u8; 4];
                v.read_phys(END - 4, &mut got).unwrap();
                assert_eq!(
                    got, [0xFF; 4],
                    "{engine:?}: the bytes read before the fault"
                );
            }
        }
    }
}

/// Builds a second address space like [`paging_on`]'s (tables from `base`: PML4, PDPT, PD,
/// PT) with `extra` mapped over the identity map; returns its CR3.
fn address_space(v: &mut Vm, base: u64, extra: &[(u64, u64)]) -> u64 {
    let entry = |phys: u64| (phys | 3).to_le_bytes();
    for level in 0..3 {
        let table = base + level * 0x1000;
        v.write_phys(table, &entry(table + 0x1000)).unwrap();
    }
    for page in 0..512u64 {
        let phys = extra
            .iter()
            .find(|&&(virt, _)| virt == page << 12)
            .map_or(page << 12, |&(_, phys)| phys);
        v.write_phys(base + 0x3000 + 8 * page, &entry(phys))
            .unwrap();
    }
    base
}

/// MOV CR3 goes on in the block when the code stays mapped where it was: the data read right
/// after each switch comes from the new address space (the TLB and the jump cache were
/// flushed), and when the switch remaps the code's own page the next instruction comes from
/// the new mapping.
#[test]
fn mov_cr3_goes_on_in_place_only_while_the_code_stays_mapped() {
    // 0x1000 (mapped alike in both spaces), rcx times:
    //   mov cr3, rsi; add rbx, [0x5000]; mov cr3, rdi; add rbp, [0x5000]; dec rcx; jnz
    // then: mov eax, 0x3000; jmp rax
    const LOOP: [u8; 34] = [
        0x0f, 0x22, 0xde, 0x48, 0x03, 0x1c, 0x25, 0x00, 0x50, 0x00, 0x00, 0x0f, 0x22, 0xdf, 0x48,
        0x03, 0x2c, 0x25, 0x00, 0x50, 0x00, 0x00, 0x48, 0xff, 0xc9, 0x75, 0xe5, 0xb8, 0x00, 0x30,
        0x00, 0x00, 0xff, 0xe0,
    ];
    // At virtual 0x3000, one copy per space: mov cr3, rsi; mov edx, 1 (2 in space B); hlt
    let tail = |n: u8| [0x0f, 0x22, 0xde, 0xba, n, 0x00, 0x00, 0x00, 0xf4];
    const ROUNDS: u64 = 2000;
    for engine in ENGINES {
        let mut v = vm(engine);
        v.write_phys(0x1000, &LOOP).unwrap();
        v.write_phys(0x3000, &tail(1)).unwrap();
        v.write_phys(0x8000, &tail(2)).unwrap();
        v.write_phys(0x6000, &1u64.to_le_bytes()).unwrap();
        v.write_phys(0x7000, &100u64.to_le_bytes()).unwrap();
        paging_on(&mut v, &[(0x5000, 0x6000)]);
        let b = address_space(&mut v, 0x40000, &[(0x5000, 0x7000), (0x3000, 0x8000)]);
        let cpu = v.cpu_mut();
        cpu.rip = 0x1000;
        cpu.gpr[1] = ROUNDS; // rcx
        cpu.gpr[6] = b; // rsi
        cpu.gpr[7] = 0x10000; // rdi: space A
        assert_eq!(v.run(), RunOutcome::Halted, "{engine:?}");
        let cpu = v.cpu();
        assert_eq!(cpu.gpr[3], 100 * ROUNDS, "{engine:?}: rbx, space B's data");
        assert_eq!(cpu.gpr[5], ROUNDS, "{engine:?}: rbp, space A's data");
        assert_eq!(cpu.gpr[2], 2, "{engine:?}: edx, space B's code at 0x3000");
        assert_eq!(cpu.cr3, b, "{engine:?}");
        assert_eq!(cpu.rip, 0x3009, "{engine:?}");
        if engine == Engine::Jit {
            let s = v.stats();
            assert!(
                s.dbt.dispatches < ROUNDS / 4,
                "{engine:?}: the switches went through the dispatcher: {s}"
            );
        }
    }
}

/// The hypercalls that leave the lazy flags unsettled (STI, MOV CRn, OUT) keep the flags of
/// the instruction before them: PUSHFQ after them sees ADD's.
#[test]
fn flags_survive_the_hypercalls_that_do_not_settle_them() {
    // mov al, 1; add al, 0xff; sti; mov cr8, rbx; out 0x80, al; mov cr3, rcx; pushfq;
    // pop rdx; cli; hlt
    const CODE: [u8; 18] = [
        0xb0, 0x01, 0x04, 0xff, 0xfb, 0x44, 0x0f, 0x22, 0xc3, 0xe6, 0x80, 0x0f, 0x22, 0xd9, 0x9c,
        0x5a, 0xfa, 0xf4,
    ];
    use translator::state::rflags;
    for engine in ENGINES {
        let mut v = vm(engine);
        v.write_phys(0x1000, &CODE).unwrap();
        let cpu = v.cpu_mut();
        cpu.rip = 0x1000;
        cpu.gpr[1] = 0; // rcx: CR3
        cpu.gpr[3] = 0; // rbx: CR8
        cpu.gpr[4] = 0x8000; // rsp
        assert_eq!(v.run(), RunOutcome::Halted, "{engine:?}");
        let pushed = v.cpu().gpr[2];
        let arith = rflags::CF | rflags::PF | rflags::AF | rflags::ZF | rflags::SF | rflags::OF;
        assert_eq!(
            pushed & arith,
            rflags::CF | rflags::PF | rflags::AF | rflags::ZF,
            "{engine:?}: {pushed:#x}"
        );
        assert_ne!(pushed & rflags::IF, 0, "{engine:?}");
    }
}

/// IN/OUT and MOV CR8 at CPL 0 take the lean hypercall (no state round trip): CR8 reaches
/// the local APIC's TPR and reads back, IN from an unclaimed port reads all ones, and a
/// reserved CR8 bit raises #GP(0) at its instruction with the earlier ones retired; every
/// engine alike.
#[test]
fn cr8_and_port_io_at_cpl0_take_the_lean_hypercall() {
    let code = [
        0x48, 0xC7, 0xC0, 0x05, 0x00, 0x00, 0x00, // mov rax, 5
        0x44, 0x0F, 0x22, 0xC0, // mov cr8, rax
        0x44, 0x0F, 0x20, 0xC3, // mov rbx, cr8
        0x66, 0xBA, 0x34, 0x12, // mov dx, 0x1234
        0xED, // in eax, dx
        0x48, 0xC7, 0xC1, 0x10, 0x00, 0x00, 0x00, // mov rcx, 0x10
        0x44, 0x0F, 0x22, 0xC1, // mov cr8, rcx: a reserved bit
        0xF4,
    ];
    for engine in ENGINES {
        let mut v = vm(engine);
        v.write_phys(0x2000, &code).unwrap();
        v.cpu_mut().rip = 0x2000;
        assert_eq!(
            v.run(),
            RunOutcome::Exception {
                exc: Exception::GeneralProtection(0),
                rip: 0x2000 + 27
            },
            "{engine:?}"
        );
        let cpu = v.cpu();
        assert_eq!(cpu.gpr[3], 5, "{engine:?}: CR8 reads back");
        assert_eq!(cpu.gpr[0], 0xFFFF_FFFF, "{engine:?}: an unclaimed port");
        assert_eq!(cpu.gpr[1], 0x10, "{engine:?}: earlier instructions retired");
        assert_eq!(v.machine().platform.tpr(), 5, "{engine:?}: the TPR kept 5");
    }
}
