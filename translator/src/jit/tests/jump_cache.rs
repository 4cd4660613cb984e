//! Indirect exits probe the runtime's jump cache inline: a hit tail-calls the cached block
//! without any helper call, a miss (other PC, other mode, empty entry) calls `Lookup`.

use super::{FakeJumpCache, Harness, Rng};
use crate::emit::{Emitter, Exit, ValueOps};
use crate::helpers::Helper;
use crate::ir::Ty;
use crate::jit::JumpCacheLayout;
use crate::state::{off_gpr, ExitReason};
use crate::Mode;

/// Guest address of the target block.
const TARGET: u64 = 0x7000;

/// A harness with `jump` as its jump cache; installs the target (writes `0x77` to RBX and
/// halts, not registered for `Lookup`) and a block that jumps to RAX. Returns both host
/// addresses.
fn setup(h: &mut Harness, jump: FakeJumpCache) -> (usize, usize) {
    h.m.jump = Some(jump);
    let target = h
        .install_raw(TARGET, |e| {
            let v = e.iconst(Ty::I64, 0x77);
            e.store_state(off_gpr(3), v);
            e.exit(Exit::Return(ExitReason::Halt));
        })
        .expect("compile");
    let jumper = h
        .install_raw(0x1000, |e| {
            let t = e.load_state(Ty::I64, off_gpr(0));
            e.exit(Exit::Jump(t));
        })
        .expect("compile");
    (target, jumper)
}

/// The harness's jump cache.
fn jc(h: &mut Harness) -> &mut FakeJumpCache {
    h.m.jump.as_mut().expect("a jump cache")
}

/// Jump from `jumper` to `to`; the exit reason, and whether any helper was called.
fn jump(h: &mut Harness, jumper: usize, to: u64) -> (ExitReason, bool) {
    h.m.calls.clear();
    h.cpu.gpr[0] = to;
    h.cpu.gpr[3] = 0;
    h.cpu.link_slot = 5;
    let r = ExitReason::from_u64(h.enter(jumper)).expect("exit reason");
    assert_eq!(h.cpu.rip, to, "RIP is stored before the probe");
    assert_eq!(h.cpu.link_slot, 0, "link_slot is cleared before the probe");
    (r, !h.m.calls.is_empty())
}

#[test]
fn a_hit_tail_calls_the_block_without_lookup() {
    let mut h = Harness::new();
    let (target, jumper) = setup(&mut h, FakeJumpCache::new(64, 4, [0, 1, 2]));
    let key = h.mode.key();
    jc(&mut h).set(TARGET, key, target);
    assert_eq!(jump(&mut h, jumper, TARGET), (ExitReason::Halt, false));
    assert_eq!(h.cpu.gpr[3], 0x77);
    assert!(h.m.calls.is_empty());
}

#[test]
fn a_miss_calls_lookup_which_fills_the_cache() {
    let mut h = Harness::new();
    let (target, jumper) = setup(&mut h, FakeJumpCache::new(64, 4, [0, 1, 2]));
    // Not cached, not known: Lookup returns the exit stub.
    assert_eq!(jump(&mut h, jumper, TARGET), (ExitReason::Jump, true));
    assert_eq!(h.m.calls, vec![(Helper::Lookup, [TARGET, 0, 0])]);
    // Known to the block map: Lookup returns it and caches it; the next jump hits inline.
    h.m.blocks.insert(TARGET, target);
    assert_eq!(jump(&mut h, jumper, TARGET), (ExitReason::Halt, true));
    assert_eq!(h.m.calls, vec![(Helper::Lookup, [TARGET, 0, 0])]);
    assert_eq!(jump(&mut h, jumper, TARGET), (ExitReason::Halt, false));
    assert_eq!(h.cpu.gpr[3], 0x77);
}

#[test]
fn only_an_exact_nonempty_entry_hits() {
    let mut h = Harness::new();
    let (target, jumper) = setup(&mut h, FakeJumpCache::new(64, 4, [0, 1, 2]));
    let key = h.mode.key();
    // The entry TARGET hashes to, holding another PC (a collision).
    jc(&mut h).set_raw((TARGET, key), TARGET + 1, key, target);
    assert_eq!(jump(&mut h, jumper, TARGET), (ExitReason::Jump, true));
    // Same PC, another mode.
    jc(&mut h).set_raw((TARGET, key), TARGET, key ^ 1, target);
    assert_eq!(jump(&mut h, jumper, TARGET), (ExitReason::Jump, true));
    // Same PC and mode, empty.
    jc(&mut h).set_raw((TARGET, key), TARGET, key, 0);
    assert_eq!(jump(&mut h, jumper, TARGET), (ExitReason::Jump, true));
    assert_eq!(h.m.calls, vec![(Helper::Lookup, [TARGET, 0, 0])]);
    // A PC of 0 in mode 0 does not hit an all-zero (empty) entry.
    h.mode = Mode::new(0, 0);
    h.m.mode_key = 0;
    jc(&mut h).clear();
    let jumper0 = h
        .install_raw(0x1000, |e| {
            let t = e.load_state(Ty::I64, off_gpr(0));
            e.exit(Exit::Jump(t));
        })
        .expect("compile");
    assert_eq!(jump(&mut h, jumper0, 0), (ExitReason::Jump, true));
}

#[test]
fn without_a_jump_cache_every_indirect_exit_calls_lookup() {
    let mut h = Harness::new();
    let (target, jumper) = setup(&mut h, FakeJumpCache::new(64, 4, [0, 1, 2]));
    h.m.jump = None;
    let jumper_plain = h
        .install_raw(0x1000, |e| {
            let t = e.load_state(Ty::I64, off_gpr(0));
            e.exit(Exit::Jump(t));
        })
        .expect("compile");
    h.m.blocks.insert(TARGET, target);
    for _ in 0..2 {
        assert_eq!(jump(&mut h, jumper_plain, TARGET), (ExitReason::Halt, true));
    }
    let _ = jumper;
}

#[test]
fn an_unlinked_direct_exit_probes_the_jump_cache_instead_of_returning() {
    // Under paging the runtime links no direct exit to another page (`link_slot` gives
    // none, as here with linking off): such an exit finds its successor as an indirect one
    // does, inline, rather than returning to the dispatcher with `Jump`.
    let mut h = Harness::new();
    let (target, _) = setup(&mut h, FakeJumpCache::new(64, 4, [0, 1, 2]));
    h.m.linking = false;
    let direct = h
        .install_raw(0x1000, |e| {
            let t = e.iconst(Ty::I64, TARGET);
            e.exit(Exit::Jump(t));
        })
        .expect("compile");
    // A miss: Lookup, which finds nothing, returns the exit stub.
    assert_eq!(jump(&mut h, direct, TARGET), (ExitReason::Jump, true));
    assert_eq!(h.m.calls, vec![(Helper::Lookup, [TARGET, 0, 0])]);
    // Cached: no helper, no dispatcher.
    let key = h.mode.key();
    jc(&mut h).set(TARGET, key, target);
    assert_eq!(jump(&mut h, direct, TARGET), (ExitReason::Halt, false));
    assert_eq!(h.cpu.gpr[3], 0x77);
}

#[test]
fn invalid_layouts_are_ignored() {
    let base = FakeJumpCache::new(16, 4, [0, 1, 2]).layout();
    assert!(base.is_valid());
    let bad = [
        JumpCacheLayout { entries: 0, ..base },
        JumpCacheLayout { mask: 14, ..base },
        JumpCacheLayout {
            mask: u64::MAX,
            ..base
        },
        JumpCacheLayout {
            entry_size: 0,
            ..base
        },
        JumpCacheLayout {
            off_host: 28,
            ..base
        },
        JumpCacheLayout { off_pc: 4, ..base },
        JumpCacheLayout {
            hash_shift: 64,
            ..base
        },
    ];
    for l in bad {
        assert!(!l.is_valid(), "{l:?}");
    }
}

/// The generated probe finds exactly the entry `JumpCacheLayout::index` names (the runtime
/// checks that index against its own hash): for many PCs, modes and layouts (power-of-two
/// and other strides, field orders, hash constants), an entry placed there is hit.
#[test]
fn the_probe_computes_the_layouts_index() {
    let layouts = [
        FakeJumpCache::new(4096, 4, [0, 1, 2]),
        FakeJumpCache::new(1 << 16, 3, [2, 0, 1]),
        FakeJumpCache::new(1, 8, [5, 7, 1]),
        FakeJumpCache::new(256, 3, [1, 2, 0]).with_hash(0x1234_5678_9ABC_DEF1, 48, 7),
        FakeJumpCache::new(32, 16, [3, 9, 15]).with_hash(3, 2, 0),
    ];
    let modes = [Mode::LONG64_CPL0, Mode::new(32, 3), Mode::new(0, 1)];
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for cache in layouts {
        let layout = cache.layout();
        let mut h = Harness::new();
        let (target, _) = setup(&mut h, cache);
        for mode in modes {
            h.mode = mode;
            h.m.mode_key = mode.key();
            let jumper = h
                .install_raw(0x1000, |e| {
                    let t = e.load_state(Ty::I64, off_gpr(0));
                    e.exit(Exit::Jump(t));
                })
                .expect("compile");
            let fixed = [0, 1, TARGET, 0x7fff_ffff_ffff, u64::MAX, 1 << 63];
            let pcs = fixed.into_iter().chain((0..200).map(|_| rng.next()));
            for pc in pcs {
                jc(&mut h).clear();
                jc(&mut h).set(pc, mode.key(), target);
                let (r, called) = jump(&mut h, jumper, pc);
                assert!(
                    r == ExitReason::Halt && !called,
                    "pc {pc:#x} mode {mode:?} layout {layout:?}: index {}",
                    layout.index(pc, mode.key())
                );
            }
        }
    }
}
