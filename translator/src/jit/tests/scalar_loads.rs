//! Scalars into a zeroed vector (MOVSS/MOVSD/MOVD/MOVQ from memory or a general register),
//! lowered as one `movd`/`movq`: the JIT's XMM results, upper lanes cleared, equal the
//! interpreter's.

use iced_x86::code_asm::*;

use super::{asm, interp_block, Harness};
use crate::state::reg;

#[test]
fn scalar_loads_clear_the_upper_lanes_as_the_interpreter_does() {
    let mut h = Harness::new();
    let code = asm(|a| {
        a.movsd_2(xmm1, qword_ptr(rcx))?;
        a.movss(xmm2, dword_ptr(rcx + 8))?;
        a.movq(xmm3, rax)?;
        a.movd(xmm4, edx)?;
        a.movq(xmm5, qword_ptr(rcx + 12))?;
        a.movd(xmm6, dword_ptr(rcx + 20))?;
        a.addsd(xmm1, qword_ptr(rcx + 24))?;
        a.hlt()
    });
    h.load(0x1000, &code);
    let data: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
    h.load(0x8000, &data);
    let block = h.decode(0x1000, 64);
    let host = h.install(&block).expect("translate");
    let clif = h.jit.last_clif();
    // One per scalar source on the hot path: six moves and ADDSD's m64. (A fault exit
    // stores the registers the block holds: it may make its own copies.)
    let mut cold = false;
    let hot = clif
        .lines()
        .filter(|l| {
            if l.starts_with("block") {
                cold = l.contains("cold");
            }
            !cold && l.contains("scalar_to_vector")
        })
        .count();
    assert_eq!(hot, 7, "{clif}");
    let setup = |cpu: &mut crate::state::CpuState| {
        cpu.rip = 0x1000;
        cpu.gpr[reg::RCX] = 0x8000;
        cpu.gpr[reg::RAX] = 0x0123_4567_89ab_cdef;
        cpu.gpr[reg::RDX] = 0xfedc_ba98_7654_3210;
        cpu.fx.xmm = std::array::from_fn(|i| u128::MAX / (i as u128 + 3));
    };
    setup(&mut h.cpu);
    h.enter(host);
    let jit = h.cpu.fx.xmm;
    let mut cpu = Box::<crate::state::CpuState>::default();
    setup(&mut cpu);
    interp_block(&mut h.m, &mut cpu, &block, h.mode);
    assert_eq!(jit, cpu.fx.xmm);
    let low = |at: usize, n: usize| {
        let mut b = [0u8; 16];
        b[..n].copy_from_slice(&data[at..at + n]);
        u128::from_le_bytes(b)
    };
    assert_eq!(jit[2], low(8, 4));
    assert_eq!(jit[3], 0x0123_4567_89ab_cdef);
    assert_eq!(jit[4], 0x7654_3210);
    assert_eq!(jit[5], low(12, 8));
    assert_eq!(jit[6], low(20, 4));
    assert_eq!(jit[7], u128::MAX / 10);
}
