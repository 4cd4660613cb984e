use translator::Helper;

use super::tracking::{installed, jit_jump_cache};
use super::*;
use crate::engine::tier::Tiering;
use crate::{Engine, RunOutcome, SerialSink, Vm, VmConfig};

/// A VM compiling every block (these tests are about compiled code and its linking),
/// with `code` pieces written at their guest-physical addresses, RIP at the first.
fn vm_with(code: &[(u64, &[u8])]) -> Vm {
    let mut vm = Vm::new(VmConfig {
        mem_bytes: 4 << 20,
        engine: Engine::Jit,
        serial: SerialSink::Capture,
        instruction_limit: Some(1_000_000),
        ..VmConfig::default()
    })
    .unwrap();
    for &(addr, bytes) in code {
        vm.write_phys(addr, bytes).unwrap();
    }
    vm.cpu_mut().rip = code[0].0;
    vm
}

#[test]
fn an_indirect_loop_hits_the_jump_cache_inline() {
    // 0x1000: add rax, 1; jmp rcx (rcx = 0x1000)
    let mut vm = vm_with(&[(0x1000, &[0x48, 0x83, 0xC0, 0x01, 0xFF, 0xE1])]);
    vm.cpu_mut().gpr[1] = 0x1000;
    vm.cpu_mut().icount_limit = 2 * 1000;
    assert_eq!(vm.run(), RunOutcome::InstructionLimit);
    assert_eq!(vm.cpu().gpr[0], 1000);
    let s = vm.stats();
    // The dispatcher caches the block when it translates it: no lookup at all after that.
    assert!(s.helpers.get(Helper::Lookup) <= 1, "{s}");
    assert!(s.dbt.dispatches <= 2, "{s}");
}

#[test]
fn an_indirect_jump_never_reaches_invalidated_code() {
    // The block at 0x2000 (`mov eax, 5; add rbx, rax; jmp rdx`) is cached in the jump
    // cache, then its immediate is patched to 7 and it is jumped to indirectly again: the
    // invalidation purged the entry, so the new code runs (rbx = 5 + 7).
    let vm = &mut vm_with(&[
        (
            0x1000,
            // mov rcx, 0x2000; mov rdx, 0x1100; jmp rcx
            &[
                0x48, 0xC7, 0xC1, 0x00, 0x20, 0x00, 0x00, 0x48, 0xC7, 0xC2, 0x00, 0x11, 0x00, 0x00,
                0xFF, 0xE1,
            ],
        ),
        (
            0x1100,
            // mov byte [0x2001], 7; mov rdx, 0x1200; jmp rcx
            &[
                0xC6, 0x04, 0x25, 0x01, 0x20, 0x00, 0x00, 0x07, 0x48, 0xC7, 0xC2, 0x00, 0x12, 0x00,
                0x00, 0xFF, 0xE1,
            ],
        ),
        (0x1200, &[0xF4]),
        (
            0x2000,
            &[0xB8, 0x05, 0x00, 0x00, 0x00, 0x48, 0x01, 0xC3, 0xFF, 0xE2],
        ),
    ]);
    assert_eq!(vm.run(), RunOutcome::Halted);
    assert_eq!(vm.cpu().gpr[3], 12);
    assert_eq!(vm.cpu().rip, 0x1201);
    let s = vm.stats();
    assert!(s.cache.invalidations >= 1, "{s}");
}

/// The JIT's index (what generated code computes) is the cache's: the same entry.
#[test]
fn the_jits_jump_cache_index_is_the_caches() {
    for entries in [1, 16, 4096, 1 << 16] {
        let cfg = CacheConfig {
            code_bytes: 1 << 16,
            max_slots: 16,
            jump_cache_entries: entries,
        };
        let cache = CodeCache::new(cfg, HostCode(0x1000)).unwrap();
        let layout = jit_jump_cache(cache.jump_cache_layout());
        assert!(layout.is_valid(), "{layout:?}");
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let pcs = [0, 1, 0x1000, u64::MAX, 1 << 63]
            .into_iter()
            .chain((0..1000).map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            }));
        for pc in pcs {
            for mode in [Mode::LONG64_CPL0.key(), 0, 3, u32::MAX] {
                assert_eq!(
                    layout.index(pc, mode),
                    cache::jump_cache_hash(pc, mode) & (entries as u64 - 1),
                    "pc {pc:#x} mode {mode:#x}"
                );
            }
        }
    }
}

/// A tiered VM compiling in the background, with `code` at 0x1000 installed as quick code
/// and its optimized compile queued; returns the VM and the quick block's key.
fn queued_promotion(code: &[u8]) -> (Vm, BlockKey) {
    let tiering = Tiering {
        compile_after: 1,
        optimize_after: 10,
        background: true,
        regions: false,
    };
    let mut vm = Vm::new(VmConfig {
        mem_bytes: 4 << 20,
        engine: Engine::Dbt,
        serial: SerialSink::Capture,
        tiering: Some(tiering),
        ..VmConfig::default()
    })
    .unwrap();
    vm.write_phys(0x1000, code).unwrap();
    vm.cpu_mut().rip = 0x1000;
    let (dbt, m, cpu) = vm.dbt_parts().unwrap();
    let mode = crate::system::mode::mode(cpu);
    let phys = m.translate_code(cpu, 0x1000).unwrap();
    let key = BlockKey {
        phys_pc: phys.0,
        virt_pc: 0x1000,
        mode: mode.key(),
    };
    let Ok((quick, _)) = dbt.translate(m, cpu, 0x1000, key, mode, Tier::Quick) else {
        panic!("translating the quick block failed");
    };
    assert!(dbt.counting.contains_key(&quick));
    assert!(dbt
        .compile_in_background(m, cpu, quick, key, mode, Tier::Optimized)
        .is_ok());
    (vm, key)
}

/// Waits for the background compiler's next result and hands it to the engine.
fn install_next(dbt: &mut Dbt, m: &mut Machine) {
    let t0 = std::time::Instant::now();
    let done = loop {
        let w = dbt.worker.as_mut().expect("the worker started");
        if let Some(d) = w.poll() {
            break d;
        }
        assert!(
            t0.elapsed().as_secs() < 60,
            "the background compile never finished"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    dbt.install_background(m, done);
}

// mov eax, 5; add rbx, rax; out 0xf4, eax
const SMALL: [u8; 10] = [0xB8, 0x05, 0x00, 0x00, 0x00, 0x48, 0x01, 0xC3, 0xE7, 0xF4];

#[test]
fn optimized_code_replaces_the_quick_block() {
    let (mut vm, key) = queued_promotion(&SMALL);
    let (dbt, m, _) = vm.dbt_parts().unwrap();
    let (quick, quick_host) = cache_mut(m).lookup(key).unwrap();
    install_next(dbt, m);
    let (opt, opt_host) = cache_mut(m).lookup(key).unwrap();
    assert_ne!((opt, opt_host), (quick, quick_host));
    assert!(installed(m).block(quick).is_none());
    let s = dbt.stats();
    assert_eq!((s.quick.blocks, s.optimized.blocks), (1, 1));
    assert_eq!(s.tier.background_discarded, 0);
    assert_eq!(vm.run(), RunOutcome::DebugExit(5));
}

#[test]
fn invalidating_a_quick_block_drops_its_pending_optimized_compile() {
    let (mut vm, key) = queued_promotion(&SMALL);
    // The guest changes the block's immediate while its optimized code compiles.
    vm.write_phys(0x1001, &[7]).unwrap();
    let (dbt, m, _) = vm.dbt_parts().unwrap();
    assert!(cache_mut(m).lookup(key).is_none());
    install_next(dbt, m);
    assert!(cache_mut(m).lookup(key).is_none(), "nothing installed");
    let s = dbt.stats();
    assert_eq!(s.optimized.blocks, 0);
    assert_eq!(s.tier.background_discarded, 1);
    assert_eq!(vm.run(), RunOutcome::DebugExit(7), "the new code runs");
}

#[test]
fn an_invalidation_through_the_machines_handle_drops_the_engines_block() {
    // 0x1000: mov eax, 5; hlt — translated, run, and cached by physical and virtual PC.
    let mut vm = vm_with(&[(0x1000, &[0xB8, 0x05, 0x00, 0x00, 0x00, 0xF4])]);
    assert_eq!(vm.run(), RunOutcome::Halted);
    let (_, m, cpu) = vm.dbt_parts().unwrap();
    let mode = crate::system::mode::mode(cpu).key();
    let key = BlockKey {
        phys_pc: 0x1000,
        virt_pc: 0x1000,
        mode,
    };
    let tracking = m.code_tracking().unwrap();
    assert!(tracking.bytes_have_code(0x1001, 0x1002));
    assert!(tracking.jump_target(0x1000, mode).is_some());
    // Bytes after the block on its page are data: nothing happens.
    m.invalidate_code(0x1006, 0x1100);
    assert_eq!(installed(m).stats().invalidations, 0);
    assert!(cache_mut(m).lookup(key).is_some());
    // One byte of its immediate: the block is gone from every index.
    m.invalidate_code(0x1001, 0x1002);
    assert!(cache_mut(m).lookup(key).is_none());
    let tracking = m.code_tracking_mut().unwrap();
    assert!(!tracking.page_has_code(0x1000));
    assert!(tracking.jump_target(0x1000, mode).is_none());
    assert!(tracking.find_compiled(key).is_none());
    assert_eq!(installed(m).stats().invalidations, 1);
}

#[test]
fn the_engine_finds_only_its_own_cache_behind_the_handle() {
    use crate::machine::code_tracking::fake::FakeTracking;
    let mut vm = vm_with(&[(0x1000, &[0xF4])]);
    assert_eq!(vm.run(), RunOutcome::Halted);
    let (_, m, _) = vm.dbt_parts().unwrap();
    assert!(cache(m).is_some());
    assert!(m.code_tracking_as::<FakeTracking>().is_none());
    let ours = m.set_code_tracking(Some(Box::<FakeTracking>::default()));
    assert!(
        cache(m).is_none(),
        "another tracking is not taken for the cache"
    );
    assert!(m.code_tracking_as_mut::<CodeCache>().is_none());
    assert!(m.code_tracking_as::<FakeTracking>().is_some());
    m.set_code_tracking(ours);
    assert!(cache(m).is_some());
    m.set_code_tracking(None);
    assert!(cache(m).is_none() && m.code_tracking().is_none());
}
