//! Runs of x87 register instructions, which the compiling engines run as one host stub
//! (`translator::semantics::x87run`): every engine ends with the x87 state of the
//! interpreter, which runs them one at a time: registers, status and tag words, FIP and the
//! opcode, and a #MF or a fault right after a run at the same instruction. Runs may span
//! register-only integer and scalar SSE instructions; those end with the interpreter's
//! general and XMM registers too.

use iced_x86::code_asm::*;
use iced_x86::{Decoder, DecoderOptions, Mnemonic};
use runtime::{Engine, RunOutcome, Vm};
use translator::state::FxArea;
use translator::Exception;

use super::{assemble, CODE, DATA};

/// [`super::make`], with RBX pointing at the data.
fn make(engine: Engine, code: &[u8], data: &[u8]) -> Vm {
    let mut vm = super::make(engine, code, data);
    vm.cpu_mut().gpr[3] = DATA;
    vm
}

/// The address and x87 opcode (FOP) of the `nth` instruction `m` of `code`.
fn find(code: &[u8], m: Mnemonic, nth: usize) -> (u64, u16) {
    let i = Decoder::with_ip(64, code, CODE, DecoderOptions::NONE)
        .into_iter()
        .filter(|i| i.mnemonic() == m)
        .nth(nth)
        .expect("the instruction");
    let at = (i.ip() - CODE) as usize;
    (
        i.ip(),
        u16::from(code[at] & 7) << 8 | u16::from(code[at + 1]),
    )
}

/// Run `code` on every engine; each must end with `outcome` and the interpreter's x87
/// state, which is returned.
fn same_on_every_engine(code: &[u8], data: &[u8], outcome: RunOutcome) -> FxArea {
    let mut want: Option<FxArea> = None;
    for engine in Engine::ALL {
        let mut vm = make(engine, code, data);
        assert_eq!(vm.run(), outcome, "{engine:?}");
        let mut fx = vm.cpu().fx;
        // The SSE part is not what these tests are about.
        fx.mxcsr = 0;
        match &want {
            None => want = Some(fx),
            Some(w) => assert_eq!(&fx, w, "{engine:?}: the x87 state of the interpreter"),
        }
    }
    want.expect("an engine ran")
}

#[test]
fn a_fused_run_ends_as_one_instruction_at_a_time() {
    let code = assemble(|a| {
        // Not fusable: it makes the x87 state live for the run, which begins with a load.
        a.fninit()?;
        a.fld(qword_ptr(rbx))?;
        a.fld1()?;
        a.fldpi()?;
        a.fmul_2(st0, st2)?;
        a.fadd_2(st1, st0)?;
        a.fxch(st0, st2)?;
        a.fsqrt()?;
        a.fsubr_2(st0, st1)?;
        a.fchs()?;
        a.fld(st1)?;
        a.fucomp(st0, st1)?;
        a.fxam()?;
        a.fscale()?;
        a.fstp(st1)
    });
    let fx = same_on_every_engine(&code, &2.25f64.to_le_bytes(), RunOutcome::Halted);
    let (ip, op) = find(&code, Mnemonic::Fstp, 0);
    assert_eq!(
        (fx.fip, fx.fop),
        (ip, op),
        "the last instruction's FIP and opcode"
    );
    assert_eq!(fx.fdp, DATA, "FDP: the run's first instruction's operand");
    assert_eq!(fx.ftw.count_ones(), 2, "two registers in use");
}

#[test]
fn a_pending_exception_inside_a_run_raises_mf_at_the_next_waiting_instruction() {
    let code = assemble(|a| {
        // Divide-by-zero unmasked.
        a.fldcw(word_ptr(rbx))?;
        a.fldz()?;
        a.fld1()?;
        a.fdiv_2(st0, st1)?;
        a.fadd_2(st0, st0)?;
        a.fchs()
    });
    let (fadd, _) = find(&code, Mnemonic::Fadd, 0);
    let fx = same_on_every_engine(
        &code,
        &0x037Bu16.to_le_bytes(),
        RunOutcome::Exception {
            exc: Exception::FloatingPoint,
            rip: fadd,
        },
    );
    let (ip, op) = find(&code, Mnemonic::Fdiv, 0);
    assert_eq!((fx.fip, fx.fop), (ip, op), "the division's FIP and opcode");
    assert_eq!(fx.fsw & 0x84, 0x84, "ZE and ES pending");
    assert_eq!(
        fx.ftw.count_ones(),
        2,
        "fldz and fld1 ran, fadd and fchs did not"
    );
}

#[test]
fn a_run_while_the_state_is_not_live_then_a_faulting_store() {
    // The first x87 instructions of the program (the state not yet in the host FPU), and a
    // store to a non-canonical address after them: #GP there, with the run done.
    let code = assemble(|a| {
        a.fld1()?;
        a.fldl2t()?;
        a.faddp(st1, st0)?;
        a.fld(st0)?;
        a.fstp(qword_ptr(rax))
    });
    let (fstp, _) = find(&code, Mnemonic::Fstp, 0);
    let mut want: Option<FxArea> = None;
    for engine in Engine::ALL {
        let mut vm = make(engine, &code, &[]);
        vm.cpu_mut().gpr[0] = 0x8000_0000_0000_0000;
        assert_eq!(
            vm.run(),
            RunOutcome::Exception {
                exc: Exception::GeneralProtection(0),
                rip: fstp
            },
            "{engine:?}"
        );
        let fx = vm.cpu().fx;
        let (ip, op) = find(&code, Mnemonic::Fld, 0);
        assert_eq!(
            (fx.fip, fx.fop),
            (ip, op),
            "{engine:?}: FIP of the run's last"
        );
        assert_eq!(fx.ftw.count_ones(), 2, "{engine:?}: the store did not pop");
        match &want {
            None => want = Some(fx),
            Some(w) => assert_eq!(fx.st, w.st, "{engine:?}"),
        }
    }
}

#[test]
fn a_run_after_cr0_ts_is_set_raises_nm_with_the_state_live() {
    // fld1 makes the x87 state live in the host FPU; setting CR0.TS then makes every x87
    // instruction raise #NM, a run's first included, though the state is still live.
    let code = assemble(|a| {
        a.fld1()?;
        a.mov(rax, cr0)?;
        a.or(rax, 8)?;
        a.mov(cr0, rax)?;
        a.fldz()?;
        a.fld1()?;
        a.faddp(st1, st0)
    });
    let (fldz, _) = find(&code, Mnemonic::Fldz, 0);
    let fx = same_on_every_engine(
        &code,
        &[],
        RunOutcome::Exception {
            exc: Exception::DeviceNotAvailable,
            rip: fldz,
        },
    );
    assert_eq!(fx.ftw.count_ones(), 1, "only the first fld1 ran");
}

#[test]
fn a_fault_on_the_operand_of_a_runs_first_instruction_leaves_nothing_done() {
    let code = assemble(|a| {
        a.fninit()?;
        a.fld1()?;
        a.fld(qword_ptr(rax))?;
        a.fadd_2(st0, st1)?;
        a.fchs()
    });
    first_operand_gp(&code);
}

/// [`same_on_every_engine`], also requiring the interpreter's general registers.
fn same_registers_on_every_engine(code: &[u8], data: &[u8], outcome: RunOutcome) -> [u64; 16] {
    let mut want: Option<[u64; 16]> = None;
    for engine in Engine::ALL {
        let mut vm = make(engine, code, data);
        assert_eq!(vm.run(), outcome.clone(), "{engine:?}");
        let gpr = vm.cpu().gpr;
        match &want {
            None => want = Some(gpr),
            Some(w) => assert_eq!(&gpr, w, "{engine:?}: the interpreter's registers"),
        }
    }
    same_on_every_engine(code, data, outcome);
    want.expect("an engine ran")
}

#[test]
fn a_run_spanning_integer_and_sse_instructions_ends_as_one_at_a_time() {
    // gcc's mix of long double and double code: the integer and SSE instructions between the
    // x87 ones do not end the run (the last ones, after the last x87 instruction, are not
    // part of it).
    let code = assemble(|a| {
        a.fninit()?;
        a.mov(eax, 7)?;
        a.fld(qword_ptr(rbx))?;
        a.cvtsi2sd(xmm1, rax)?;
        a.fld1()?;
        a.add(eax, 3)?;
        a.divsd(xmm1, xmm1)?;
        a.fdivr_2(st0, st1)?;
        a.lea(rcx, qword_ptr(rax + rax * 2 + 5))?;
        a.movapd(xmm2, xmm1)?;
        a.fadd_2(st1, st0)?;
        a.imul_3(edx, ecx, 9)?;
        a.fxch(st0, st1)?;
        a.fsqrt()?;
        a.cmp(eax, 10)?;
        a.setne(sil)
    });
    let gpr = same_registers_on_every_engine(&code, &2.25f64.to_le_bytes(), RunOutcome::Halted);
    assert_eq!((gpr[0], gpr[1], gpr[2], gpr[6]), (10, 35, 315, 0));
    let fx = same_on_every_engine(&code, &2.25f64.to_le_bytes(), RunOutcome::Halted);
    let (ip, op) = find(&code, Mnemonic::Fsqrt, 0);
    assert_eq!((fx.fip, fx.fop), (ip, op), "the last x87 instruction's");
    assert_eq!(fx.fdp, DATA, "FDP: the run's first instruction's operand");
    assert_eq!(fx.xmm[2], u128::from(1f64.to_bits()));
}

#[test]
fn an_unmasked_exception_in_a_spanning_run_raises_mf_after_the_instructions_before() {
    // Divide-by-zero unmasked: the fdiv leaves it pending, the fadd raises #MF with the
    // integer instructions before it done and those after it not.
    let code = assemble(|a| {
        a.fldcw(word_ptr(rbx))?;
        a.fldz()?;
        a.mov(eax, 1)?;
        a.fld1()?;
        a.add(eax, 1)?;
        a.fdiv_2(st0, st1)?;
        a.add(eax, 1)?;
        a.fadd_2(st0, st0)?;
        a.add(eax, 1)?;
        a.fchs()
    });
    let (fadd, _) = find(&code, Mnemonic::Fadd, 0);
    let outcome = RunOutcome::Exception {
        exc: Exception::FloatingPoint,
        rip: fadd,
    };
    let gpr = same_registers_on_every_engine(&code, &0x037Bu16.to_le_bytes(), outcome.clone());
    assert_eq!(gpr[0], 3, "the additions before the fadd");
    let fx = same_on_every_engine(&code, &0x037Bu16.to_le_bytes(), outcome);
    let (ip, op) = find(&code, Mnemonic::Fdiv, 0);
    assert_eq!((fx.fip, fx.fop), (ip, op), "the division's FIP and opcode");
    assert_eq!(fx.fsw & 0x84, 0x84, "ZE and ES pending");
}

#[test]
fn a_spanning_run_while_the_state_is_not_live_then_a_faulting_store() {
    // The program's first x87 instructions: the stub cannot run, so the run goes one at a
    // time and the block ends after it; the store after it faults there.
    let code = assemble(|a| {
        a.fld1()?;
        a.mov(ecx, 5)?;
        a.fldl2t()?;
        a.shl(ecx, 2)?;
        a.faddp(st1, st0)?;
        a.mov(qword_ptr(rax), rcx)
    });
    let mut want: Option<(FxArea, u64)> = None;
    let (faddp, _) = find(&code, Mnemonic::Faddp, 0);
    for engine in Engine::ALL {
        let mut vm = make(engine, &code, &[]);
        vm.cpu_mut().gpr[0] = 0x8000_0000_0000_0000;
        let RunOutcome::Exception { exc, rip } = vm.run() else {
            panic!("{engine:?}: no exception");
        };
        assert_eq!(exc, Exception::GeneralProtection(0), "{engine:?}");
        assert!(rip > faddp, "{engine:?}: at the store");
        let mut fx = vm.cpu().fx;
        fx.mxcsr = 0;
        let got = (fx, vm.cpu().gpr[1]);
        assert_eq!(got.1, 20, "{engine:?}");
        match &want {
            None => want = Some(got),
            Some(w) => assert_eq!(&got, w, "{engine:?}"),
        }
    }
}

#[test]
fn a_fault_on_a_spanning_runs_operand_leaves_nothing_done() {
    let code = assemble(|a| {
        a.fninit()?;
        a.fld1()?;
        a.fld(qword_ptr(rax))?;
        a.mov(ecx, 1)?;
        a.fadd_2(st0, st1)?;
        a.add(ecx, 1)?;
        a.fchs()
    });
    for vm in first_operand_gp(&code) {
        assert_eq!(vm.cpu().gpr[1], 0x55, "nothing after the fld ran");
    }
}

/// Run `code` (`fld1`, then an `fld qword [rax]` that starts a run) on every engine with
/// RAX non-canonical and RCX = 0x55: #GP(0) at the `fld`, FIP/FOP those of `fld1`, only
/// `fld1`'s register tagged. Returns the VMs for more checks.
fn first_operand_gp(code: &[u8]) -> Vec<Vm> {
    let (fld, _) = find(code, Mnemonic::Fld, 0);
    let (fld1, op) = find(code, Mnemonic::Fld1, 0);
    let mut vms = Vec::new();
    for engine in Engine::ALL {
        let mut vm = make(engine, code, &[]);
        vm.cpu_mut().gpr[0] = 0x8000_0000_0000_0000;
        vm.cpu_mut().gpr[1] = 0x55;
        assert_eq!(
            vm.run(),
            RunOutcome::Exception {
                exc: Exception::GeneralProtection(0),
                rip: fld
            },
            "{engine:?}"
        );
        let fx = vm.cpu().fx;
        assert_eq!((fx.fip, fx.fop), (fld1, op), "{engine:?}: FIP of fld1");
        assert_eq!(fx.ftw.count_ones(), 1, "{engine:?}: only fld1 ran");
        vms.push(vm);
    }
    vms
}

#[test]
fn an_fcomi_and_the_fcmov_after_it_in_a_spanning_run() {
    // The integer instructions around the fcomip see the flags of their place: the cmp's
    // before it, the fcomip's after it (setb, adc, the fcmovb inside the stub).
    let code = assemble(|a| {
        a.fninit()?;
        a.xor(eax, eax)?;
        a.fld(qword_ptr(rbx))?;
        a.fld1()?;
        a.cmp(eax, 1)?;
        a.setb(dl)?;
        a.fcomip(st0, st1)?;
        a.setb(cl)?;
        a.fldz()?;
        a.fcmovb(st0, st1)?;
        a.adc(eax, 0)?;
        a.fadd_2(st0, st1)?;
        a.fldpi()?;
        a.fucomip(st0, st1)?;
        a.seta(sil)
    });
    let gpr = same_registers_on_every_engine(&code, &2.25f64.to_le_bytes(), RunOutcome::Halted);
    assert_eq!((gpr[0], gpr[1], gpr[2], gpr[6]), (1, 1, 1, 0));
    let fx = same_on_every_engine(&code, &2.25f64.to_le_bytes(), RunOutcome::Halted);
    let (ip, op) = find(&code, Mnemonic::Fucomip, 0);
    assert_eq!((fx.fip, fx.fop), (ip, op), "the last x87 instruction's");
    assert_eq!(fx.ftw.count_ones(), 2);
}

#[test]
fn fldcw_unmasking_an_exception_mid_block_ends_the_masked_mode() {
    // From FNINIT every exception is masked (the blocks skip the pending-exception checks);
    // gcc's rounding-mode switch keeps it so, the second FLDCW unmasks divide-by-zero,
    // after which the division's pending exception raises #MF at the next instruction.
    let code = assemble(|a| {
        a.fninit()?;
        a.fld(qword_ptr(rbx))?;
        a.fnstcw(word_ptr(rbx + 16))?;
        a.movzx(eax, word_ptr(rbx + 16))?;
        a.or(eax, 0xC00)?;
        a.mov(word_ptr(rbx + 18), ax)?;
        a.fldcw(word_ptr(rbx + 18))?;
        a.fist(dword_ptr(rbx + 24))?;
        a.fldcw(word_ptr(rbx + 16))?;
        a.fldcw(word_ptr(rbx + 8))?;
        a.fldz()?;
        a.fdivr_2(st0, st1)?;
        a.fld1()?;
        a.fchs()
    });
    let mut data = 2.75f64.to_le_bytes().to_vec();
    data.extend_from_slice(&0x037Bu16.to_le_bytes());
    let (fld1, _) = find(&code, Mnemonic::Fld1, 0);
    let fx = same_on_every_engine(
        &code,
        &data,
        RunOutcome::Exception {
            exc: Exception::FloatingPoint,
            rip: fld1,
        },
    );
    assert_eq!(fx.fsw & 0x84, 0x84, "ZE and ES pending");
    assert_eq!(fx.fcw, 0x037B);
    for engine in [Engine::Interp, Engine::Jit] {
        let mut vm = make(engine, &code, &data);
        vm.run();
        let mut v = [0u8; 4];
        vm.read_phys(DATA + 24, &mut v).unwrap();
        assert_eq!(
            i32::from_le_bytes(v),
            2,
            "{engine:?}: truncated under RC = 11b"
        );
    }
}

#[test]
fn fldenv_with_a_pending_exception_ends_the_masked_mode() {
    // Every exception masked, then an environment loaded that unmasks divide-by-zero with
    // its flag set (the host sets ES, as it clears ES for a flag whose exception is masked):
    // the next waiting instruction raises #MF on every engine.
    let mut env = [0u8; 28];
    env[0..2].copy_from_slice(&0x037Bu16.to_le_bytes());
    env[4..6].copy_from_slice(&0x0004u16.to_le_bytes());
    env[8..10].copy_from_slice(&0xFFFFu16.to_le_bytes());
    let code = assemble(|a| {
        a.fninit()?;
        a.fld1()?;
        a.fstp(st0)?;
        a.fldenv(ptr(rbx))?;
        a.fld1()?;
        a.fchs()
    });
    let (fld1, _) = find(&code, Mnemonic::Fld1, 1);
    same_on_every_engine(
        &code,
        &env,
        RunOutcome::Exception {
            exc: Exception::FloatingPoint,
            rip: fld1,
        },
    );
}

#[test]
fn a_spanning_run_checked_in_a_block_translated_with_an_exception_unmasked() {
    // The block after the FLDCW is translated with divide-by-zero unmasked, so its run's
    // stub checks the state first; after the FNINIT every exception is masked again and the
    // stub runs the run whole.
    let code = assemble(|a| {
        a.fldcw(word_ptr(rbx + 8))?;
        a.fninit()?;
        a.xor(eax, eax)?;
        a.fld(qword_ptr(rbx))?;
        a.add(eax, 5)?;
        a.fld1()?;
        a.fcomi(st0, st1)?;
        a.setb(cl)?;
        a.fcmovb(st0, st1)?;
        a.lea(edx, qword_ptr(rax + rax))?;
        a.fmulp(st1, st0)?;
        a.fsqrt()
    });
    let mut data = 2.25f64.to_le_bytes().to_vec();
    data.extend_from_slice(&0x037Bu16.to_le_bytes());
    let gpr = same_registers_on_every_engine(&code, &data, RunOutcome::Halted);
    assert_eq!((gpr[0], gpr[1], gpr[2]), (5, 1, 10));
    let fx = same_on_every_engine(&code, &data, RunOutcome::Halted);
    // ST0 = sqrt(2.25 * 2.25) = 2.25: significand 0x9000..., exponent 0x4000.
    assert_eq!(fx.st[0][..8], 0x9000_0000_0000_0000u64.to_le_bytes());
    assert_eq!(fx.st[0][8..10], 0x4000u16.to_le_bytes());
}

#[test]
fn stores_with_every_exception_masked_write_their_whole_operand() {
    // Stack underflow, masked: FSTP stores the real indefinite, FISTP the integer one, over
    // whatever the destination held (the blocks do not read it first).
    let code = assemble(|a| {
        a.fninit()?;
        a.fstp(qword_ptr(rbx))?;
        a.fistp(dword_ptr(rbx + 8))?;
        a.fld1()?;
        a.fstp(tword_ptr(rbx + 16))
    });
    for engine in Engine::ALL {
        let mut vm = make(engine, &code, &[0x55; 32]);
        assert_eq!(vm.run(), RunOutcome::Halted, "{engine:?}");
        let mut m = [0u8; 32];
        vm.read_phys(DATA, &mut m).unwrap();
        assert_eq!(m[..8], 0xFFF8_0000_0000_0000u64.to_le_bytes(), "{engine:?}");
        assert_eq!(m[8..12], 0x8000_0000u32.to_le_bytes(), "{engine:?}");
        assert_eq!(m[12..16], [0x55; 4], "{engine:?}");
        assert_eq!(
            m[16..24],
            0x8000_0000_0000_0000u64.to_le_bytes(),
            "{engine:?}"
        );
        assert_eq!(m[24..26], 0x3FFFu16.to_le_bytes(), "{engine:?}");
        assert_eq!(m[26..], [0x55; 6], "{engine:?}");
    }
}

#[test]
fn no_link_leads_from_a_block_of_one_x87_mode_into_the_other() {
    // Each pass clears the flags and unmasks divide-by-zero, then loads a control word from
    // a table: the first masks all (the block after it is then chosen in masked mode), the
    // second keeps it unmasked. Had the first pass linked the FLDCW's block to the masked block after it,
    // the second would run the division's pending exception into an unchecked stub.
    let mut data = [0u8; 16];
    data[0..2].copy_from_slice(&0x037Fu16.to_le_bytes());
    data[2..4].copy_from_slice(&0x037Bu16.to_le_bytes());
    data[8..10].copy_from_slice(&0x037Bu16.to_le_bytes());
    let code = assemble(|a| {
        let mut top = a.create_label();
        let mut next = a.create_label();
        a.fninit()?;
        a.xor(ecx, ecx)?;
        a.set_label(&mut top)?;
        a.fnclex()?;
        a.fldcw(word_ptr(rbx + 8))?;
        a.fldcw(word_ptr(rbx + rcx * 2))?;
        a.jmp(next)?;
        a.set_label(&mut next)?;
        a.fldz()?;
        a.fld1()?;
        a.fdiv_2(st0, st1)?;
        a.fchs()?;
        a.fstp(st0)?;
        a.fstp(st0)?;
        a.inc(ecx)?;
        a.cmp(ecx, 2)?;
        a.jne(top)
    });
    let (fchs, _) = find(&code, Mnemonic::Fchs, 0);
    let gpr = same_registers_on_every_engine(
        &code,
        &data,
        RunOutcome::Exception {
            exc: Exception::FloatingPoint,
            rip: fchs,
        },
    );
    assert_eq!(gpr[1], 1, "in the second pass");
}
