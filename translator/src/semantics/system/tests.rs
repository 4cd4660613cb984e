use iced_x86::code_asm::*;
use iced_x86::{Decoder, DecoderOptions};

use super::test_env::*;

use crate::helpers::Helper;
use crate::sensitive::Hypercall as H;
use crate::state::{rflags, ExitReason};
use crate::{Exception, Mode};

/// (kind, op_size, extra, b, c) of every hypercall made.
fn calls(env: &TestEnv) -> Vec<(H, u8, u8, u64, u64)> {
    env.hypercalls
        .iter()
        .map(|&(a, b, c)| (a.kind, a.op_size, a.extra, b, c))
        .collect()
}

#[test]
fn in_out_all_sizes_and_port_forms() {
    let code = asm(|a| {
        a.in_(al, 0x60)?;
        a.in_(ax, dx)?;
        a.in_(eax, dx)?;
        a.out(0x80, al)?;
        a.out(dx, ax)?;
        a.out(dx, eax)
    });
    let mut env = TestEnv::new();
    let mut cpu = TestEnv::cpu();
    env.in_value = 0x1234_5678_9abc_def0;
    cpu.gpr[0] = 0xffff_ffff_ffff_ffff;
    cpu.gpr[2] = 0xaaaa_0000_0000_03f8;
    assert_eq!(step1(&mut cpu, &mut env, &code), ExitReason::Jump);
    assert_eq!(cpu.gpr[0], 0xffff_ffff_ffff_fff0);
    step1(&mut cpu, &mut env, &code);
    assert_eq!(cpu.gpr[0], 0xffff_ffff_ffff_def0);
    step1(&mut cpu, &mut env, &code);
    assert_eq!(cpu.gpr[0], 0x9abc_def0, "IN EAX zero-extends");
    cpu.gpr[0] = 0x1122_3344_5566_7788;
    run(&mut cpu, &mut env, &code);
    assert_eq!(
        calls(&env),
        [
            (H::In, 1, 0, 0x60, 0),
            (H::In, 2, 0, 0x3f8, 0),
            (H::In, 4, 0, 0x3f8, 0),
            (H::Out, 1, 0, 0x80, 0x88),
            (H::Out, 2, 0, 0x3f8, 0x7788),
            (H::Out, 4, 0, 0x3f8, 0x5566_7788),
        ]
    );
    // At CPL 0 the permission check cannot fail: the port helper, no hypercall.
    assert!(env.calls.iter().all(|c| c.0 == Helper::LeanHypercall));
}

/// MOV to and from CR8 at CPL 0 take the lean hypercall too, with the register operand.
#[test]
fn cr8_at_cpl0_is_a_lean_hypercall() {
    let code = asm(|a| {
        a.mov(cr8, rax)?;
        a.mov(rbx, cr8)
    });
    let mut env = TestEnv::new();
    let mut cpu = TestEnv::cpu();
    env.in_value = 0xc;
    cpu.gpr[0] = 0x7;
    run(&mut cpu, &mut env, &code);
    assert_eq!(
        calls(&env),
        [(H::MovToCr, 8, 8, 7, 0), (H::MovFromCr, 8, 8, 0, 0)]
    );
    assert_eq!(cpu.gpr[3], 0xc);
    assert!(env.calls.iter().all(|c| c.0 == Helper::LeanHypercall));
}

/// Above CPL 0 the I/O permission check (IOPL, the TSS bitmap) is the handler's: IN and
/// OUT stay hypercalls, which see the instruction's state.
#[test]
fn in_out_above_cpl0_are_hypercalls() {
    let code = asm(|a| {
        a.in_(al, 0x60)?;
        a.out(dx, ax)
    });
    let mut env = TestEnv::new();
    let mut cpu = TestEnv::cpu();
    env.in_value = 0x1234;
    cpu.gpr[0] = 0xffff_ffff_ffff_ffff;
    cpu.gpr[2] = 0x3f8;
    for _ in 0..2 {
        let off = (cpu.rip - CODE) as usize;
        let mut d = Decoder::with_ip(64, &code[off..], cpu.rip, DecoderOptions::NONE);
        let insn = d.decode();
        assert_eq!(
            crate::interp::step(&mut cpu, &mut env, &insn, Mode::new(64, 3)),
            ExitReason::Jump
        );
    }
    assert_eq!(cpu.gpr[0], 0xffff_ffff_ffff_ff34);
    assert_eq!(
        calls(&env),
        [(H::In, 1, 0, 0x60, 0), (H::Out, 2, 0, 0x3f8, 0xff34)]
    );
    assert!(env.calls.iter().all(|c| c.0 == Helper::Hypercall));
}

#[test]
fn the_handler_sees_the_state_of_the_instructions_start() {
    // The flags of the ADD and the MOV to RBX are in CpuState when CPUID runs.
    let code = asm(|a| {
        a.mov(ebx, 7)?;
        a.add(ecx, ecx)?;
        a.cpuid()?;
        a.hlt()
    });
    let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
    cpu.gpr[0] = 1;
    cpu.gpr[1] = 0x8000_0000;
    run(&mut cpu, &mut env, &code);
    assert_eq!(cpu.gpr[0], 0x1111_0001);
    assert_eq!(cpu.gpr[3], 0x2222_0000, "ECX was 0 after the ADD");
    assert_ne!(
        cpu.full_rflags() & rflags::CF,
        0,
        "the ADD's carry survives"
    );
}

#[test]
fn block_ending_hypercalls_continue_where_the_handler_says() {
    let code = asm(|a| {
        a.hlt()?;
        a.int(0x80)
    });
    let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
    assert_eq!(step1(&mut cpu, &mut env, &code), ExitReason::Jump);
    assert_eq!(cpu.rip, CODE + 1, "HLT: the handler set the next RIP");
    assert_eq!(step1(&mut cpu, &mut env, &code), ExitReason::Jump);
    assert_eq!(cpu.rip, 0x5080, "INT n: the handler's target");
    assert_eq!(calls(&env)[1], (H::Int, 4, 0x80, 0, 0));
}

#[test]
fn privileged_instructions_at_cpl3_raise_gp_without_a_stub() {
    for bytes in [
        &[0xF4][..],         // hlt
        &[0x0F, 0x22, 0xD8], // mov cr3, rax
        &[0x0F, 0x32],       // rdmsr
        &[0x0F, 0x01, 0x10], // lgdt [rax]
        &[0x0F, 0x01, 0xF8], // swapgs
    ] {
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        let insn =
            iced_x86::Decoder::with_ip(64, bytes, CODE, iced_x86::DecoderOptions::NONE).decode();
        let r = crate::interp::step(&mut cpu, &mut env, &insn, Mode::new(64, 3));
        assert_eq!(r, ExitReason::Exception, "{bytes:x?}");
        assert_eq!(cpu.exception(), Some(Exception::GeneralProtection(0)));
        assert_eq!(cpu.rip, CODE);
        assert!(env.hypercalls.is_empty());
    }
}

#[test]
fn control_register_moves_pass_the_number_and_value() {
    let code = asm(|a| {
        a.mov(cr3, rcx)?;
        a.mov(rdx, cr3)
    });
    let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
    cpu.gpr[1] = 0x12_3000;
    assert_eq!(step1(&mut cpu, &mut env, &code), ExitReason::Jump);
    assert_eq!(cpu.cr3, 0x12_3000);
    step1(&mut cpu, &mut env, &code);
    assert_eq!(cpu.gpr[2], 0x12_3000);
    assert_eq!(
        calls(&env),
        [(H::MovToCr, 8, 3, 0x12_3000, 0), (H::MovFromCr, 8, 3, 0, 0)]
    );
}

#[test]
fn pop_sreg_commits_rsp_only_when_the_load_succeeds() {
    let code = [0x1F]; // pop ds (32-bit code)
    let insn = iced_x86::Decoder::with_ip(32, &code, CODE, iced_x86::DecoderOptions::NONE).decode();
    let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
    env.write(STACK, 4, 0x2b);
    crate::interp::step(&mut cpu, &mut env, &insn, Mode::new(32, 0));
    assert_eq!(cpu.seg[crate::state::seg::DS].selector, 0x2b);
    assert_eq!(cpu.gpr[4], STACK + 4);
    assert_eq!(cpu.rip, CODE + 1);
    // A selector the handler refuses: #GP, RSP unchanged.
    let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
    env.write(STACK, 4, 0xfff8);
    let r = crate::interp::step(&mut cpu, &mut env, &insn, Mode::new(32, 0));
    assert_eq!(r, ExitReason::Exception);
    assert_eq!(cpu.gpr[4], STACK);
    assert_eq!(cpu.rip, CODE);
}

#[test]
fn pushf_popf_round_trip_and_sizes() {
    let code = asm(|a| {
        a.pushfq()?;
        a.popfq()?;
        a.pushf()?;
        a.popf()
    });
    let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
    cpu.rflags |= rflags::CF | rflags::ZF;
    step1(&mut cpu, &mut env, &code);
    assert_eq!(cpu.gpr[4], STACK - 8);
    let image = env.read(STACK - 8, 8);
    assert_eq!(
        image & (rflags::CF | rflags::ZF | rflags::IF),
        rflags::CF | rflags::ZF | rflags::IF
    );
    env.write(STACK - 8, 8, image & !rflags::CF);
    assert_eq!(step1(&mut cpu, &mut env, &code), ExitReason::Jump);
    assert_eq!(cpu.full_rflags() & rflags::CF, 0);
    assert_eq!(cpu.gpr[4], STACK);
    step1(&mut cpu, &mut env, &code);
    assert_eq!(cpu.gpr[4], STACK - 2);
    step1(&mut cpu, &mut env, &code);
    assert_eq!(cpu.gpr[4], STACK);
    assert!(
        calls(&env).is_empty(),
        "inline in 64-bit mode (semantics::eflags)"
    );
}

#[test]
fn popf_fault_is_precise() {
    let code = asm(|a| a.popfq());
    let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
    cpu.gpr[4] = RAM as u64 - 4;
    assert_eq!(step1(&mut cpu, &mut env, &code), ExitReason::Exception);
    assert_eq!(cpu.gpr[4], RAM as u64 - 4);
    assert_eq!(cpu.rip, CODE);
    assert!(env.hypercalls.is_empty());
}

#[test]
fn ud_faults_and_int3_is_a_software_interrupt() {
    let code = asm(|a| a.ud2());
    let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
    assert_eq!(step1(&mut cpu, &mut env, &code), ExitReason::Exception);
    assert_eq!(cpu.exception(), Some(Exception::InvalidOpcode));
    assert_eq!(cpu.rip, CODE);
    let code = asm(|a| a.int3());
    step1(&mut cpu, &mut env, &code);
    assert_eq!(calls(&env), [(H::Int, 4, 3, 0, 0)]);
    assert_eq!(env.hypercalls[0].0.extra2, 1, "INT3 is marked");
}

#[test]
fn hostile_encodings_of_our_opcodes_never_panic() {
    const OPCODES: &[&[u8]] = &[
        &[0xc0],
        &[0xc1],
        &[0xd0],
        &[0xd1],
        &[0xd2],
        &[0xd3],
        &[0x0f, 0xa4],
        &[0x0f, 0xa5],
        &[0x0f, 0xac],
        &[0x0f, 0xad],
        &[0x50],
        &[0x5c],
        &[0x58],
        &[0x5c],
        &[0x8f],
        &[0xff],
        &[0x6a],
        &[0x68],
        &[0xc8],
        &[0xc9],
        &[0xe8],
        &[0xe9],
        &[0xeb],
        &[0xc2],
        &[0xc3],
        &[0xca],
        &[0xcb],
        &[0xe0],
        &[0xe1],
        &[0xe2],
        &[0xe3],
        &[0xa4],
        &[0xa5],
        &[0xa6],
        &[0xa7],
        &[0xaa],
        &[0xab],
        &[0xac],
        &[0xad],
        &[0xae],
        &[0xaf],
        &[0x6c],
        &[0x6f],
        &[0xe4],
        &[0xe5],
        &[0xe6],
        &[0xe7],
        &[0xec],
        &[0xed],
        &[0xee],
        &[0xef],
        &[0xf4],
        &[0xfa],
        &[0xfb],
        &[0x9c],
        &[0x9d],
        &[0x0f, 0xa2],
        &[0x0f, 0x31],
        &[0xcc],
        &[0xf1],
        &[0x0f, 0x0b],
        &[0x0f, 0xb9],
        &[0x0f, 0xff],
        &[0x0f, 0xa0],
        &[0x0f, 0xa1],
        &[0x0f, 0xa8],
        &[0x0f, 0xa9],
        &[0x74],
        &[0x0f, 0x8c],
    ];
    const PREFIXES: &[u8] = &[
        0x66, 0x67, 0xf2, 0xf3, 0x64, 0x65, 0x2e, 0x26, 0x48, 0x41, 0x4f,
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..40_000 {
        let mut code = Vec::new();
        for _ in 0..rnd() % 4 {
            code.push(PREFIXES[(rnd() % PREFIXES.len() as u64) as usize]);
        }
        code.extend_from_slice(OPCODES[i % OPCODES.len()]);
        code.extend((0..12).map(|_| rnd() as u8));
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        for r in 0..16 {
            let v = rnd();
            cpu.gpr[r] = if v & 1 == 0 { v } else { v % RAM as u64 };
        }
        cpu.gpr[1] %= 64; // keep REP counts short
        cpu.rflags |= rnd() & (rflags::ARITH | rflags::DF);
        cpu.seg[crate::state::seg::FS].base = rnd() % 0x100;
        let _ = step1(&mut cpu, &mut env, &code);
    }
}
