//! Unit tests of [`CodeCache`].

use super::*;
use crate::slots::SlotRange;

const STUB: HostCode = HostCode(0x5157_0000);

/// `mov eax, 42; ret`
const RET_42: [u8; 6] = [0xB8, 0x2A, 0x00, 0x00, 0x00, 0xC3];

fn small_cfg() -> CacheConfig {
    CacheConfig {
        code_bytes: 4096,
        max_slots: 16,
        jump_cache_entries: 16,
    }
}

fn cache() -> CodeCache {
    CodeCache::new(small_cfg(), STUB).unwrap()
}

/// `mov eax, imm32; ret`
fn ret_imm(v: u32) -> Vec<u8> {
    let mut code = vec![0xB8];
    code.extend_from_slice(&v.to_le_bytes());
    code.push(0xC3);
    code
}

/// Code that tail-jumps through the slot at `slot`: `movabs rax, slot; jmp [rax]`.
fn jump_through(slot: *mut u64) -> Vec<u8> {
    let mut code = vec![0x48, 0xB8];
    code.extend_from_slice(&(slot as u64).to_le_bytes());
    code.extend_from_slice(&[0xFF, 0x20]);
    code
}

/// Inserts a block at guest-physical `ranges` (key = first byte) with `n_slots` exit slots.
fn add_block(c: &mut CodeCache, ranges: &[(u64, u64)], n_slots: usize) -> BlockId {
    let host = c.alloc_code(&[0xC3]).unwrap();
    let slots = c.alloc_slots(n_slots).unwrap();
    c.insert(BlockInfo {
        key: BlockKey {
            phys_pc: ranges[0].0,
            virt_pc: ranges[0].0,
            mode: 0,
        },
        virt_pc: ranges[0].0 + 0x1_0000_0000,
        host,
        code_len: 1,
        phys_ranges: ranges.to_vec(),
        guest_insns: 1,
        slots,
    })
}

fn slot(c: &CodeCache, id: BlockId, i: usize) -> *mut u64 {
    c.slot_addr(c.block(id).unwrap().slots, i)
}

fn read_slot(p: *mut u64) -> u64 {
    // SAFETY: `p` came from `slot_addr` of a cache that is still alive.
    unsafe { p.read_volatile() }
}

#[test]
#[cfg(target_arch = "x86_64")]
fn alloc_and_execute() {
    let mut c = cache();
    let host = c.alloc_code(&RET_42).unwrap();
    assert_eq!(host.0 % crate::exec_mem::CODE_ALIGN, 0);
    assert!(c.code_contains(host.0));
    // SAFETY: `host` is a complete C-ABI function returning a u32 in eax.
    let f: extern "C" fn() -> u32 = unsafe { std::mem::transmute(host.0) };
    assert_eq!(f(), 42);
}

#[test]
fn code_runs_from_a_different_view_than_it_is_written() {
    let c = cache();
    assert_ne!(c.code.exec_base(), c.code.write_base());
    assert!(c.code_contains(c.code.exec_base()));
    assert!(!c.code_contains(c.code.write_base()));
}

#[test]
fn full_then_flush_then_alloc() {
    let mut c = cache();
    let first = c.alloc_code(&[0x90; 4000]).unwrap();
    assert!(matches!(c.alloc_code(&[0x90; 200]), Err(CacheError::Full)));
    assert!(matches!(
        c.alloc_code(&[0x90; 8192]),
        Err(CacheError::TooLarge { .. })
    ));
    c.alloc_slots(16).unwrap();
    assert!(matches!(c.alloc_slots(1), Err(CacheError::Full)));
    c.flush();
    assert_eq!(
        c.alloc_code(&[0x90; 200]).unwrap(),
        first,
        "offsets restart at 0"
    );
    c.alloc_slots(16).unwrap();
    assert_eq!(c.stats().flushes, 1);
}

#[test]
fn invalid_configs() {
    let bad = |cfg| matches!(CodeCache::new(cfg, STUB), Err(CacheError::InvalidConfig(_)));
    let ok = small_cfg();
    assert!(bad(CacheConfig {
        jump_cache_entries: 3,
        ..ok
    }));
    assert!(bad(CacheConfig {
        jump_cache_entries: 0,
        ..ok
    }));
    assert!(bad(CacheConfig {
        code_bytes: 0,
        ..ok
    }));
    assert!(bad(CacheConfig { max_slots: 0, ..ok }));
    assert_eq!(CacheConfig::default().jump_cache_entries, 4096);
}

#[test]
fn link_writes_slot_and_invalidate_resets_it() {
    let mut c = cache();
    let a = add_block(&mut c, &[(0x1000, 0x1010)], 2);
    let b = add_block(&mut c, &[(0x2000, 0x2010)], 0);
    let s = slot(&c, a, 1);
    assert_eq!(read_slot(s), STUB.0 as u64);
    assert_eq!(c.slot_owner(s), Some(a));
    assert!(c.link(s, b));
    assert_eq!(read_slot(s), c.block(b).unwrap().host.0 as u64);
    assert_eq!(c.slot_target(s), Some(b));
    assert!(c.link(s, b), "relinking to the same block is fine");
    assert_eq!(c.stats().links, 1);

    assert_eq!(c.invalidate_range(0x2000, 0x2001), 1);
    assert_eq!(read_slot(s), STUB.0 as u64);
    assert_eq!(c.slot_target(s), None);
    assert_eq!(c.slot_owner(s), Some(a), "a is still live");
    assert!(!c.link(s, b), "b is dead");
    assert_eq!(read_slot(s), STUB.0 as u64);
    assert_eq!(c.stats().unlinks, 1);
}

#[test]
#[cfg(target_arch = "x86_64")]
fn generated_code_follows_links() {
    // The stub lives in its own executable memory, as the dispatcher's would.
    let mut stub_mem = crate::exec_mem::ExecMemory::new(4096).unwrap();
    let stub = HostCode(stub_mem.alloc(&ret_imm(1)).unwrap());
    let mut c = CodeCache::new(small_cfg(), stub).unwrap();

    let slots = c.alloc_slots(1).unwrap();
    let s = c.slot_addr(slots, 0);
    let a_host = c.alloc_code(&jump_through(s)).unwrap();
    let a = c.insert(BlockInfo {
        key: BlockKey {
            phys_pc: 0x1000,
            virt_pc: 0x1000,
            mode: 0,
        },
        virt_pc: 0x1000,
        host: a_host,
        code_len: 12,
        phys_ranges: vec![(0x1000, 0x1008)],
        guest_insns: 2,
        slots,
    });
    let b_host = c.alloc_code(&ret_imm(2)).unwrap();
    let b = c.insert(BlockInfo {
        key: BlockKey {
            phys_pc: 0x3000,
            virt_pc: 0x3000,
            mode: 0,
        },
        virt_pc: 0x3000,
        host: b_host,
        code_len: 6,
        phys_ranges: vec![(0x3000, 0x3004)],
        guest_insns: 1,
        slots: SlotRange::EMPTY,
    });
    // SAFETY: block a is a complete C-ABI function: it tail-jumps through its slot to code
    // (the stub or block b) that returns a u32 in eax.
    let run_a: extern "C" fn() -> u32 = unsafe { std::mem::transmute(a_host.0) };
    assert_eq!(run_a(), 1, "unlinked: the stub runs");
    assert!(c.link(s, b));
    assert_eq!(run_a(), 2, "linked: block b runs");
    assert_eq!(c.slot_owner(s), Some(a));
    assert!(c.invalidate(b));
    assert_eq!(run_a(), 1, "b invalidated: back to the stub");
}

#[test]
fn link_rejects_foreign_and_dead_slots() {
    let mut c = cache();
    let a = add_block(&mut c, &[(0x1000, 0x1010)], 1);
    let b = add_block(&mut c, &[(0x2000, 0x2010)], 0);
    let mut not_a_slot = 0u64;
    assert!(!c.link(&mut not_a_slot, b));
    assert_eq!(c.slot_owner(&mut not_a_slot), None);

    // A slot allocated but not yet owned by a block.
    let spare = c.alloc_slots(1).unwrap();
    let spare = c.slot_addr(spare, 0);
    assert!(!c.link(spare, b));
    assert_eq!(read_slot(spare), STUB.0 as u64);

    // The slot of an invalidated block is reset and no longer linkable.
    let s = slot(&c, a, 0);
    assert!(c.link(s, b));
    assert!(c.invalidate(a));
    assert_eq!(read_slot(s), STUB.0 as u64);
    assert_eq!(c.slot_owner(s), None);
    assert!(!c.link(s, b));
    assert!(
        c.live(b).unwrap().incoming.is_empty(),
        "a's link record dropped"
    );
}

#[test]
fn stale_ids_after_flush_are_dead() {
    let mut c = cache();
    let a = add_block(&mut c, &[(0x1000, 0x1010)], 1);
    let s = slot(&c, a, 0);
    assert!(c.link(s, a), "a self-loop");
    c.flush();
    assert_eq!(read_slot(s), STUB.0 as u64);
    assert!(c.block(a).is_none());
    let b = add_block(&mut c, &[(0x1000, 0x1010)], 1);
    assert_ne!(a, b);
    assert!(c.block(a).is_none());
    assert!(!c.invalidate(a));
    assert!(c.block(b).is_some());
    assert!(!c.page_has_code(0x2000));
}

#[test]
fn relink_moves_the_record() {
    let mut c = cache();
    let a = add_block(&mut c, &[(0x1000, 0x1010)], 1);
    let b = add_block(&mut c, &[(0x2000, 0x2010)], 0);
    let d = add_block(&mut c, &[(0x3000, 0x3010)], 0);
    let s = slot(&c, a, 0);
    assert!(c.link(s, b));
    assert!(c.link(s, d));
    assert!(c.live(b).unwrap().incoming.is_empty());
    assert!(c.invalidate(b));
    assert_eq!(read_slot(s), c.block(d).unwrap().host.0 as u64, "untouched");
    assert!(c.unlink(s));
    assert!(!c.unlink(s));
    assert_eq!(read_slot(s), STUB.0 as u64);
    assert!(c.live(d).unwrap().incoming.is_empty());
}

#[test]
fn self_loop_invalidation() {
    let mut c = cache();
    let a = add_block(&mut c, &[(0x1000, 0x1010)], 1);
    let s = slot(&c, a, 0);
    assert!(c.link(s, a));
    assert_eq!(c.invalidate_range(0x1000, 0x1001), 1);
    assert_eq!(read_slot(s), STUB.0 as u64);
    assert_eq!(c.slot_owner(s), None);
}

#[test]
fn invalidate_range_hits_only_overlapping_blocks() {
    let mut c = cache();
    let a = add_block(&mut c, &[(0x1000, 0x1010)], 0);
    // Crosses from page 1 into page 2.
    let b = add_block(&mut c, &[(0x1ff8, 0x2000), (0x2000, 0x2008)], 0);
    let d = add_block(&mut c, &[(0x2100, 0x2120)], 0);
    let e = add_block(&mut c, &[(0x5000, 0x5010)], 0);
    for addr in [0x1000, 0x1fff, 0x2000, 0x2fff, 0x5000] {
        assert!(c.page_has_code(addr), "{addr:#x}");
    }
    assert!(!c.page_has_code(0x3000));
    assert!(c.bytes_have_code(0x100f, 0x1010) && !c.bytes_have_code(0x1010, 0x1ff8));
    assert!(!c.bytes_have_code(0x2008, 0x2100), "data between b and d");

    assert_eq!(c.invalidate_range(0x1010, 0x1020), 0, "a ends at 0x1010");
    assert_eq!(
        c.invalidate_range(0x2008, 0x2100),
        0,
        "the gap between b and d"
    );
    assert_eq!(c.invalidate_range(0x3000, 0x5000), 0);
    assert_eq!(
        c.invalidate_range(0x2004, 0x2005),
        1,
        "the second half of b"
    );
    assert!(c.block(b).is_none());
    assert!(c.block(a).is_some() && c.block(d).is_some() && c.block(e).is_some());
    assert!(c.page_has_code(0x1000), "a is still on page 1");
    assert!(c.page_has_code(0x2000), "d is still on page 2");

    assert!(!c.bytes_have_code(0x2000, 0x2008), "b's bytes are gone");
    assert!(c.bytes_have_code(0x1000, 0x1001) && c.bytes_have_code(0x211f, 0x2200));
    assert_eq!(c.invalidate_range(0x2110, 0x2111), 1);
    assert!(!c.page_has_code(0x2000));
    // A huge range walks the code pages rather than the range.
    assert_eq!(c.invalidate_range(0, u64::MAX), 2);
    assert!(!c.page_has_code(0x1000) && !c.page_has_code(0x5000));
    assert_eq!(c.stats().invalidations, 4);
    assert_eq!(c.stats().pages_with_code, 0);
    assert_eq!(c.invalidate_range(0x10, 0x10), 0, "empty range");
}

#[test]
fn invalidated_blocks_leave_the_maps() {
    let mut c = cache();
    let a = add_block(&mut c, &[(0x1000, 0x1010)], 0);
    let key = c.block(a).unwrap().key;
    let host = c.block(a).unwrap().host;
    c.jump_cache_set(0x77_1000, 0, a);
    assert_eq!(c.jump_cache_get(0x77_1000, 0), Some(host));
    assert_eq!(c.block_at_host(host.0), Some(a));
    assert_eq!(c.invalidate_range(0x1008, 0x1009), 1);
    assert_eq!(c.lookup(key), None);
    assert_eq!(c.jump_cache_get(0x77_1000, 0), None);
    assert_eq!(c.block_at_host(host.0), None);
    c.jump_cache_set(0x77_1000, 0, a);
    assert_eq!(
        c.jump_cache_get(0x77_1000, 0),
        None,
        "dead ids are not cached"
    );
}

#[test]
fn store_guard_tracks_pages() {
    let mut c = cache();
    add_block(&mut c, &[(0x1ff8, 0x2000), (0x2000, 0x2008)], 0);
    c.set_phys_limit(0x10_000);
    assert_eq!(c.phys_limit(), 0x10_000);
    // Guard byte p: page p or p + 1 holds code.
    let bit = |c: &CodeCache, page: usize| {
        assert!(page < 16);
        // SAFETY: the bitmap covers 16 pages after `set_phys_limit(0x10_000)`.
        unsafe { c.store_guard().add(page).read_volatile() }
    };
    assert_eq!(
        (bit(&c, 0), bit(&c, 1), bit(&c, 2), bit(&c, 3)),
        (1, 1, 1, 0)
    );
    add_block(&mut c, &[(0x3000, 0x3001)], 0);
    assert_eq!(bit(&c, 3), 1);
    assert!(c.page_has_code(0x3fff));
    assert!(!c.page_has_code(0x0fff), "the guard is not the code map");
    c.invalidate_range(0x2000, 0x2001);
    assert_eq!(
        (bit(&c, 0), bit(&c, 1), bit(&c, 2), bit(&c, 3)),
        (0, 0, 1, 1)
    );
    c.flush();
    assert_eq!((bit(&c, 2), bit(&c, 3)), (0, 0));
    // Beyond the bitmap the map still answers.
    add_block(&mut c, &[(0x100_0000, 0x100_0010)], 0);
    assert!(c.page_has_code(0x100_0000));
}

#[test]
fn jump_cache_collisions_and_clear() {
    let mut c = cache();
    let a = add_block(&mut c, &[(0x1000, 0x1010)], 0);
    let b = add_block(&mut c, &[(0x2000, 0x2010)], 0);
    let pc_a = 0x40_1000;
    let pc_b = (pc_a + 1..)
        .find(|&pc| c.jump.index(pc, 0) == c.jump.index(pc_a, 0))
        .unwrap();
    c.jump_cache_set(pc_a, 0, a);
    assert_eq!(
        c.jump_cache_lookup(pc_a, 0),
        Some((a, c.block(a).unwrap().host))
    );
    assert_eq!(c.jump_cache_get(pc_a, 1), None, "other mode");
    c.jump_cache_set(pc_b, 0, b);
    assert_eq!(c.jump_cache_get(pc_a, 0), None, "evicted by a collision");
    assert_eq!(c.jump_cache_get(pc_b, 0), Some(c.block(b).unwrap().host));
    c.jump_cache_clear();
    assert_eq!(c.jump_cache_get(pc_b, 0), None);
    let s = c.stats();
    assert_eq!((s.jump_cache_hits, s.jump_cache_misses), (2, 3));
}

#[test]
fn same_key_replaces() {
    let mut c = cache();
    let a = add_block(&mut c, &[(0x1000, 0x1010)], 1);
    let b = add_block(&mut c, &[(0x2000, 0x2010)], 1);
    let s = slot(&c, b, 0);
    assert!(c.link(s, a));
    let own = slot(&c, a, 0);
    assert!(c.link(own, a), "a self-link");
    let virt = c.block(a).unwrap().virt_pc;
    c.jump_cache_set(virt, 0, a);
    let a2 = add_block(&mut c, &[(0x1000, 0x1020)], 1);
    assert!(c.block(a).is_none());
    let host2 = c.block(a2).unwrap().host.0 as u64;
    assert_eq!(
        read_slot(s),
        host2,
        "links to the old code now reach the new code"
    );
    assert_eq!(c.slot_target(s), Some(a2));
    assert_eq!(
        read_slot(own),
        STUB.0 as u64,
        "the old block's own slots are reset"
    );
    assert_eq!(
        c.jump_cache_lookup(virt, 0),
        Some((a2, HostCode(host2 as usize)))
    );
    let key = c.block(a2).unwrap().key;
    assert_eq!(c.lookup(key).map(|(id, _)| id), Some(a2));
    // The relinked slot is recorded at the new block: invalidating it resets the slot.
    assert!(c.invalidate(a2));
    assert_eq!(read_slot(s), STUB.0 as u64);
    let st = c.stats();
    assert_eq!((st.replaced, st.invalidations, st.blocks_live), (1, 1, 1));
}

#[test]
fn code_replacing_a_cold_block_is_not_linked_to_anything() {
    let mut c = cache();
    let slots = c.alloc_slots(0).unwrap();
    let key = BlockKey {
        phys_pc: 0x1000,
        virt_pc: 0x1000,
        mode: 0,
    };
    let info = |host, slots| BlockInfo {
        key,
        virt_pc: 0x1000,
        host,
        code_len: 1,
        phys_ranges: vec![(0x1000, 0x1010)],
        guest_insns: 1,
        slots,
    };
    let cold = c.insert(info(HostCode::NONE, slots));
    let b = add_block(&mut c, &[(0x2000, 0x2010)], 1);
    assert!(
        !c.link(slot(&c, b, 0), cold),
        "cold blocks are never link targets"
    );
    let host = c.alloc_code(&[0xC3]).unwrap();
    let hot = c.insert(info(host, SlotRange::EMPTY));
    assert_eq!(c.slot_target(slot(&c, b, 0)), None);
    assert_eq!(c.jump_cache_lookup(0x1000, 0), None);
    assert_eq!(c.lookup(key).map(|(id, _)| id), Some(hot));
}

#[test]
fn counters() {
    let mut c = cache();
    let a = add_block(&mut c, &[(0x1000, 0x1010)], 1);
    let b = add_block(&mut c, &[(0x2000, 0x2010)], 0);
    let key = c.block(a).unwrap().key;
    assert!(c.lookup(key).is_some());
    assert!(c.lookup(BlockKey { mode: 9, ..key }).is_none());
    assert!(c.link(slot(&c, a, 0), b));
    c.note_translation_time(1500);
    c.note_translation_time(500);
    c.invalidate_range(0x2000, 0x2001);
    c.flush();
    let s = c.stats();
    assert_eq!(s.translations, 2);
    assert_eq!((s.lookups, s.hits, s.misses), (2, 1, 1));
    assert_eq!(
        (s.links, s.unlinks, s.invalidations, s.flushes),
        (1, 1, 1, 1)
    );
    assert_eq!(s.translation_ns, 2000);
    assert_eq!((s.code_bytes_used, s.slots_used, s.blocks_live), (0, 0, 0));
    assert_eq!(s.code_bytes_capacity, 4096);
}

#[test]
fn stats_track_occupancy() {
    let mut c = cache();
    add_block(&mut c, &[(0x1000, 0x1010)], 3);
    add_block(&mut c, &[(0x2000, 0x2010)], 0);
    let s = c.stats();
    assert_eq!(s.code_bytes_used, 17, "two 1-byte blocks, 16-byte aligned");
    assert_eq!((s.slots_used, s.blocks_live, s.pages_with_code), (3, 2, 2));
}

#[test]
fn block_at_host_finds_containing_block() {
    let mut c = cache();
    let host = c.alloc_code(&RET_42).unwrap();
    let id = c.insert(BlockInfo {
        key: BlockKey {
            phys_pc: 0x1000,
            virt_pc: 0x1000,
            mode: 0,
        },
        virt_pc: 0x1000,
        host,
        code_len: RET_42.len(),
        phys_ranges: vec![(0x1000, 0x1005)],
        guest_insns: 1,
        slots: SlotRange::EMPTY,
    });
    assert_eq!(c.block_at_host(host.0), Some(id));
    assert_eq!(c.block_at_host(host.0 + 5), Some(id));
    assert_eq!(c.block_at_host(host.0 + 6), None);
    assert_eq!(c.block_at_host(host.0 - 1), None);
}

#[test]
#[should_panic(expected = "not allocated")]
fn insert_rejects_unallocated_slots() {
    let mut c = cache();
    let slots = c.alloc_slots(2).unwrap();
    c.flush();
    let host = c.alloc_code(&[0xC3]).unwrap();
    c.insert(BlockInfo {
        key: BlockKey {
            phys_pc: 0,
            virt_pc: 0,
            mode: 0,
        },
        virt_pc: 0,
        host,
        code_len: 1,
        phys_ranges: vec![(0, 1)],
        guest_insns: 1,
        slots,
    });
}

#[test]
#[should_panic(expected = "out of a range")]
fn slot_addr_checks_index() {
    let mut c = cache();
    let r = c.alloc_slots(2).unwrap();
    c.slot_addr(r, 2);
}

#[test]
fn cache_can_move_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CodeCache>();
}

/// The host address generated code would read for `pc` in `mode` through the raw layout.
fn raw_host(c: &CodeCache, pc: u64, mode: u32) -> usize {
    let l = c.jump_cache_layout();
    let i = crate::jump_cache_hash(pc, mode) & l.mask;
    let e = l.entries + i as usize * l.entry_size as usize + l.off_host as usize;
    // SAFETY: `i <= mask` names an entry of the cache's jump cache, alive as long as `c`;
    // `off_host` is the offset of its host-address field, a `usize`.
    unsafe { (e as *const usize).read() }
}

#[test]
fn removed_blocks_leave_no_raw_jump_cache_entry() {
    let mut c = cache();
    let layout = c.jump_cache_layout();
    let a = add_block(&mut c, &[(0x1000, 0x1010)], 0);
    c.jump_cache_set(0x77_1000, 0, a);
    assert_eq!(raw_host(&c, 0x77_1000, 0), c.block(a).unwrap().host.0);
    c.invalidate_range(0x1000, 0x1001);
    assert_eq!(raw_host(&c, 0x77_1000, 0), 0, "invalidation");

    let b = add_block(&mut c, &[(0x2000, 0x2010)], 0);
    c.jump_cache_set(0x77_2000, 0, b);
    let b2 = add_block(&mut c, &[(0x2000, 0x2020)], 0);
    assert_ne!(b, b2);
    assert_eq!(raw_host(&c, 0x77_2000, 0), 0, "replacement by the same key");

    c.jump_cache_set(0x77_2000, 0, b2);
    assert_ne!(raw_host(&c, 0x77_2000, 0), 0);
    c.flush();
    assert_eq!(raw_host(&c, 0x77_2000, 0), 0, "flush");
    assert_eq!(c.jump_cache_layout(), layout, "the entries never move");
}

#[test]
fn blocks_without_host_code_are_tracked_but_never_reached() {
    let mut c = cache();
    let a = add_block(&mut c, &[(0x1000, 0x1010)], 1);
    let key = BlockKey {
        phys_pc: 0x3000,
        virt_pc: 0x3000,
        mode: 0,
    };
    let cold = c.insert(BlockInfo {
        key,
        virt_pc: 0x3000,
        host: HostCode::NONE,
        code_len: 0,
        phys_ranges: vec![(0x3000, 0x3008)],
        guest_insns: 2,
        slots: SlotRange::EMPTY,
    });
    assert_eq!(c.lookup(key), Some((cold, HostCode::NONE)));
    assert!(c.page_has_code(0x3000) && c.bytes_have_code(0x3007, 0x3008));
    assert!(
        !c.link(slot(&c, a, 0), cold),
        "generated code never jumps to it"
    );
    c.jump_cache_set(0x3000, 0, cold);
    assert_eq!(c.jump_cache_lookup(0x3000, 0), None);
    assert_eq!(c.block_at_host(0), None);
    assert_eq!(c.invalidate_range(0x3004, 0x3005), 1);
    assert!(c.block(cold).is_none() && !c.page_has_code(0x3000));
}

/// Removing a block purges exactly its own jump-cache entries: the one entry it was cached
/// in (a colliding block cached there since stays), or all of them for a block cached in
/// several.
#[test]
fn removal_purges_the_blocks_own_jump_cache_entries() {
    let mut c = cache();
    let a = add_block(&mut c, &[(0x1000, 0x1010)], 0);
    let b = add_block(&mut c, &[(0x2000, 0x2010)], 0);
    let pc_a = 0x40_1000;
    let pc_b = (pc_a + 1..)
        .find(|&pc| c.jump.index(pc, 0) == c.jump.index(pc_a, 0))
        .unwrap();
    c.jump_cache_set(pc_a, 0, a);
    c.jump_cache_set(pc_b, 0, b);
    assert_eq!(c.invalidate_range(0x1000, 0x1001), 1);
    assert_eq!(
        c.jump_cache_get(pc_b, 0),
        Some(c.block(b).unwrap().host),
        "the entry a was cached in now holds b"
    );
    let d = add_block(&mut c, &[(0x3000, 0x3010)], 0);
    let pcs = [0x50_0000, 0x60_0000, 0x70_0000];
    for pc in pcs {
        c.jump_cache_set(pc, 0, d);
    }
    let taken: Vec<usize> = pcs.iter().map(|&pc| c.jump.index(pc, 0)).collect();
    let pc_b2 = (0x80_0000..)
        .find(|&pc| !taken.contains(&c.jump.index(pc, 1)) && c.jump.index(pc, 1) != taken[0])
        .unwrap();
    c.jump_cache_set(pc_b2, 1, b);
    let d_host = c.block(d).unwrap().host.0;
    assert_eq!(c.invalidate_range(0x3000, 0x3001), 1);
    for pc in pcs {
        assert_ne!(raw_host(&c, pc, 0), d_host, "entry of {pc:#x}");
    }
    assert_eq!(c.jump_cache_get(pc_b2, 1), Some(c.block(b).unwrap().host));
    assert_eq!(c.invalidate_range(0x2000, 0x2001), 1);
    assert_eq!(raw_host(&c, pc_b, 0), 0);
    assert_eq!(
        raw_host(&c, pc_b2, 1),
        0,
        "b, cached twice, is purged from both"
    );
}

/// A lookup tells from the key map alone whether the block lies on one page.
#[test]
fn lookups_say_whether_the_block_lies_on_one_page() {
    let mut c = cache();
    let one = add_block(&mut c, &[(0x1000, 0x1ff8), (0x1ff8, 0x2000)], 0);
    let two = add_block(&mut c, &[(0x2ffc, 0x3000), (0x7000, 0x7003)], 0);
    let across = add_block(&mut c, &[(0x4ffc, 0x5004)], 0);
    for (id, want) in [(one, true), (two, false), (across, false)] {
        let b = c.block(id).unwrap();
        assert_eq!(b.on_one_page(), want);
        let (key, host) = (b.key, b.host);
        assert_eq!(c.lookup_one_page(key), Some((id, host, want)));
    }
}
