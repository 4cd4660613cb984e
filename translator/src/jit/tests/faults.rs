//! Precise faults in blocks with several faulting instructions: the fault exits of a block
//! share code (`ctx::fault_tail`), so each site must still leave the state of its own
//! instruction's start, RIP at it, and `icount` charged for the instructions before it only.

use iced_x86::code_asm::*;

use super::{asm, differential_with, Harness};
use crate::jit::{JitConfig, OptLevel, Regalloc};
use crate::state::{reg, rflags, CpuState, ExitReason};

/// An address outside the harness's RAM: the access takes the slow path, which raises #PF.
const BAD: u64 = 0x7000_0000_0000;

/// Memory instructions (by index in the block, and the register holding their address)
/// between register and flag writes of every kind the fault exits write back: none yet,
/// a lazy descriptor (ADD, SUB), and bits (BT after a lazy state).
/// Nine sites: enough that the JIT shares their exits (blocks with few sites get a full
/// exit each).
fn block() -> (Vec<u8>, [(usize, usize); 9]) {
    let code = asm(|a| {
        a.mov(rax, qword_ptr(rdi))?; // 0: flags as stored
        a.add(rax, rbx)?;
        a.mov(qword_ptr(rsi), rax)?; // 2: lazy ADD, RAX written
        a.lea(rcx, qword_ptr(rax + rcx * 2))?;
        a.bt(rcx, 3)?;
        a.mov(rdx, qword_ptr(r8))?; // 5: bits, RAX RCX written
        a.sub(rdx, 5)?;
        a.mov(qword_ptr(r9), rdx)?; // 7: lazy SUB, RAX RCX RDX written
        a.xor(r10d, r10d)?;
        a.add(r10, qword_ptr(r11))?; // 9: lazy logic, R10 written too
        a.or(r12, qword_ptr(rbp))?; // 10: lazy ADD, R10 written
        a.mov(qword_ptr(r13), rcx)?; // 11: lazy OR, R12 written
        a.sub(rax, qword_ptr(r14))?; // 12
        a.mov(qword_ptr(r15), rbx)?; // 13: lazy SUB, RAX written again
        a.inc(rbx)?;
        let mut out = a.create_label();
        a.jmp(out)?;
        a.set_label(&mut out)?;
        a.nop()
    });
    (code, SITES)
}

/// (instruction index, address register) of each memory access.
const SITES: [(usize, usize); 9] = [
    (0, reg::RDI),
    (2, reg::RSI),
    (5, 8),
    (7, 9),
    (9, 11),
    (10, reg::RBP),
    (11, 13),
    (12, 14),
    (13, 15),
];

fn cpu() -> CpuState {
    let mut cpu = CpuState::default();
    for (i, g) in cpu.gpr.iter_mut().enumerate() {
        *g = 0x1111_1111_1111_1111u64.wrapping_mul(i as u64 + 1);
    }
    cpu.gpr[reg::RSP] = 0x8_0000;
    for (k, (_, r)) in SITES.into_iter().enumerate() {
        cpu.gpr[r] = 0x4_0000 + 0x100 * k as u64;
    }
    cpu.rflags = rflags::FIXED | rflags::CF | rflags::ZF;
    cpu.icount = 100;
    cpu.icount_limit = 1_000;
    cpu
}

#[test]
fn each_of_several_faulting_instructions_faults_precisely() {
    let (code, sites) = block();
    let mut h = Harness::new();
    h.load(0x1000, &code);
    let insns = h.decode(0x1000, 64).insns;
    let fast = JitConfig {
        opt_level: OptLevel::None,
        regalloc: Regalloc::SinglePass,
        ..JitConfig::default()
    };
    for config in [JitConfig::default(), fast] {
        for (index, addr_reg) in sites {
            let mut cpu = cpu();
            cpu.gpr[addr_reg] = BAD;
            let (jit, interp, ram_same) = differential_with(config, &code, 0x1000, &cpu, |_| {});
            let at = format!("fault at instruction {index} ({config:?})");
            assert_eq!(jit, interp, "{at}");
            assert!(ram_same, "{at}: RAM differs");
            assert_eq!(jit.exit, ExitReason::Exception, "{at}");
            assert_eq!(jit.exc.0, 14, "{at}: #PF");
            assert_eq!(jit.rip, insns[index].ip(), "{at}: RIP");
            assert_eq!(jit.icount, 100 + index as u64, "{at}: icount");
        }
        // No fault: the block completes, every instruction charged.
        let (jit, interp, _) = differential_with(config, &code, 0x1000, &cpu(), |_| {});
        assert_eq!(jit, interp);
        assert_eq!(
            (jit.exit, jit.rip),
            (ExitReason::Jump, code.len() as u64 - 1 + 0x1000)
        );
        assert_eq!(jit.icount, 100 + insns.len() as u64);
    }
    // What the interpreter (the reference) leaves at a late fault: the writes of every
    // earlier instruction, none of the faulting one's.
    let mut cpu = cpu();
    cpu.gpr[11] = BAD;
    let (jit, _, _) = differential_with(JitConfig::default(), &code, 0x1000, &cpu, |_| {});
    assert_eq!(jit.gpr[10], 0, "XOR before the fault committed");
    assert_eq!(
        jit.gpr[reg::RBX],
        cpu.gpr[reg::RBX],
        "INC after the fault did not run"
    );
}
