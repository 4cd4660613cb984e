//! Runs of x87 register instructions, which the compiling engines run as one host stub
//! (`translator::semantics::x87run`): every engine ends with the x87 state of the
//! interpreter, which runs them one at a time: registers, status and tag words, FIP and the
//! opcode, and a #MF or a fault right after a run at the same instruction.

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
    for engine in [Engine::Interp, Engine::Jit, Engine::Dbt, Engine::Trap] {
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
    for engine in [Engine::Interp, Engine::Jit, Engine::Dbt, Engine::Trap] {
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
    let (fld, _) = find(&code, Mnemonic::Fld, 0);
    let (fld1, op) = find(&code, Mnemonic::Fld1, 0);
    for engine in [Engine::Interp, Engine::Jit, Engine::Dbt, Engine::Trap] {
        let mut vm = make(engine, &code, &[]);
        vm.cpu_mut().gpr[0] = 0x8000_0000_0000_0000;
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
    }
}
