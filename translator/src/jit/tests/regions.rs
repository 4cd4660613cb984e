//! Regions run exactly as their blocks run one by one: same registers, flags, memory,
//! instruction count, budget stops and faults.

use iced_x86::code_asm::*;

use super::{asm, Harness, Observed, RAM_SIZE};
use crate::region;
use crate::state::{reg, ExitReason};

/// Run from `pc` until an exit other than `Jump`, with the block at `pc` compiled as a
/// region when `as_region`, the rest block by block (linked).
fn run(code: &[u8], pc: u64, as_region: bool, init: impl Fn(&mut Harness)) -> Observed {
    let mut h = Harness::new();
    h.m.linking = true;
    h.load(pc, code);
    init(&mut h);
    h.cpu.rip = pc;
    if as_region {
        let entry = h.decode(pc, 64);
        let blocks = region::form(entry, |t| {
            (t >= pc && t < pc + code.len() as u64).then(|| h.decode(t, 64))
        });
        assert!(blocks.len() > 1, "the test code must form a region");
        let c = h
            .jit
            .translate_region(&blocks, h.mode, &mut *h.m)
            .expect("translate region");
        let host = h.code.install(&c.code);
        h.m.blocks.insert(pc, host);
    }
    let exit = h.run(10_000);
    let mut o = Observed::of(exit, &h.cpu);
    o.helper_out0 = 0;
    o
}

/// `top: [load r8 from rsi in the even arm]; test rcx,1; jz even; add rax,rcx; jmp next;
/// even: mov r8,[rsi]; add rsi,8; sub rbx,r8; next: inc rcx; cmp rcx,rdx; jne top; hlt`
fn loop_with_if() -> Vec<u8> {
    asm(|a| {
        let (mut top, mut even, mut next) = (a.create_label(), a.create_label(), a.create_label());
        a.set_label(&mut top)?;
        a.test(rcx, 1)?;
        a.jz(even)?;
        a.add(rax, rcx)?;
        a.jmp(next)?;
        a.set_label(&mut even)?;
        a.mov(r8, qword_ptr(rsi))?;
        a.add(rsi, 8)?;
        a.sub(rbx, r8)?;
        a.set_label(&mut next)?;
        a.inc(rcx)?;
        a.cmp(rcx, rdx)?;
        a.jne(top)?;
        a.hlt()
    })
}

fn init(limit: u64, src: u64) -> impl Fn(&mut Harness) {
    move |h: &mut Harness| {
        for i in 0..64u64 {
            let at = 0x8000 + 8 * i as usize;
            h.m.ram[at..at + 8].copy_from_slice(&(i * 0x0101_0101).to_le_bytes());
        }
        h.cpu.gpr[reg::RCX] = 0;
        h.cpu.gpr[reg::RDX] = 40;
        h.cpu.gpr[reg::RSI] = src;
        h.cpu.gpr[reg::RAX] = 7;
        h.cpu.icount_limit = limit;
    }
}

#[test]
fn a_region_computes_what_its_blocks_compute() {
    let code = loop_with_if();
    let a = run(&code, 0x1000, false, init(u64::MAX, 0x8000));
    let b = run(&code, 0x1000, true, init(u64::MAX, 0x8000));
    assert_eq!(a.gpr[reg::RCX], 40);
    assert_eq!(a, b);
}

#[test]
fn a_region_stops_at_the_same_block_head_for_every_budget() {
    let code = loop_with_if();
    for limit in 0..200 {
        let a = run(&code, 0x1000, false, init(limit, 0x8000));
        let b = run(&code, 0x1000, true, init(limit, 0x8000));
        assert_eq!(a.exit, ExitReason::Budget, "limit {limit}");
        assert_eq!(a, b, "limit {limit}");
    }
}

#[test]
fn a_fault_in_a_later_block_of_a_region_is_precise() {
    let code = loop_with_if();
    // The even arm's load walks off the end of RAM after a few iterations.
    let src = RAM_SIZE as u64 - 5 * 8;
    let a = run(&code, 0x1000, false, init(u64::MAX, src));
    let b = run(&code, 0x1000, true, init(u64::MAX, src));
    // It stopped on the load (not at the final HLT), in the region's third block.
    assert_eq!(a.exit, ExitReason::Exception, "{a:?}");
    // test rcx,1 (7 bytes), jz (2), add (3), jmp (2): the even arm's load.
    let even = 0x1000 + 7 + 2 + 3 + 2;
    assert_eq!(a.rip, even, "{a:?}");
    assert_eq!(a, b);
}
