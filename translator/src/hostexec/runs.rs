//! Host stubs for runs of x87 instructions ([`crate::semantics::x87run`]): one host call
//! runs several guest x87 instructions back to back, with the pending-exception checks the
//! hardware makes before each (or one check for all, or none where the block's mode says no
//! exception can be pending).
//!
//! Invariants: a run's instructions are x87 instructions on stack registers (the first may
//! also read a memory operand, the frame's), so a stub of them changes nothing but the x87
//! state, RFLAGS (saved to the frame after an FCOMI), the frame's status and the saved and
//! restored RAX: callable as `preserve_all`, as any stub ([`super`]).

use iced_x86::code_asm::{al, ax, eax, qword_ptr, rax, rdi, rsp, word_ptr, CodeAssembler};
use iced_x86::{
    CpuidFeature, EncodingKind, FlowControl, Instruction, Mnemonic, OpKind, Register, RflagsBits,
};

use super::{waits, HostStub, PlanError};
use crate::state::frame;

/// iced's x87 condition-code "flags" (the status word's C0..C3, not RFLAGS bits).
const X87_CC: u32 = RflagsBits::C0 | RflagsBits::C1 | RflagsBits::C2 | RflagsBits::C3;

/// Whether `insn` may be one of a fused run ([`plan_run`]): a waiting, non-control x87
/// instruction whose only operands are x87 stack registers, so it reads and writes nothing
/// but the x87 state (no memory, general or XMM register, no RFLAGS) and records only FIP
/// and the opcode. Cheap: asked of every instruction a block has.
pub fn fusable(insn: &Instruction) -> bool {
    fusable_with(insn, false)
}

/// Whether `insn` may begin a fused run: [`fusable`], or such an instruction that also reads
/// (and does not write) a memory operand. Only the first may: its operand is read before the
/// run, where a fault on it is a fault of the first instruction, with nothing done.
pub fn fusable_first(insn: &Instruction) -> bool {
    fusable_with(insn, true)
}

fn fusable_with(insn: &Instruction, mem_read: bool) -> bool {
    use CpuidFeature as F;
    if insn.encoding() != EncodingKind::Legacy
        || insn.flow_control() != FlowControl::Next
        // iced counts the x87 condition codes C0..C3 among the flags: those are allowed.
        || (insn.rflags_read() | insn.rflags_modified()) & !X87_CC != 0
        || insn.has_lock_prefix()
        || !waits(insn)
    {
        return false;
    }
    let feats = insn.cpuid_features();
    !feats.is_empty()
        && feats
            .iter()
            .all(|f| matches!(f, F::FPU | F::FPU287 | F::FPU387))
        && !matches!(
            insn.mnemonic(),
            Mnemonic::Wait
                | Mnemonic::Finit
                | Mnemonic::Fclex
                | Mnemonic::Fldcw
                | Mnemonic::Fstcw
                | Mnemonic::Fstsw
                | Mnemonic::Fstenv
                | Mnemonic::Fldenv
                | Mnemonic::Fsave
                | Mnemonic::Frstor
                | Mnemonic::Feni
                | Mnemonic::Fdisi
                | Mnemonic::Fsetpm
        )
        && (0..insn.op_count()).all(|i| match insn.op_kind(i) {
            OpKind::Register => insn.op_register(i).is_st(),
            OpKind::Memory => {
                mem_read
                    && insn.memory_size().size() > 0
                    && !matches!(
                        insn.mnemonic(),
                        Mnemonic::Fst
                            | Mnemonic::Fstp
                            | Mnemonic::Fist
                            | Mnemonic::Fistp
                            | Mnemonic::Fisttp
                            | Mnemonic::Fbstp
                    )
            }
            _ => false,
        })
}

/// One stub for a run of [`fusable`] instructions that follow each other in a block: the
/// host runs them back to back with one call. Before each it checks for a pending unmasked
/// exception, as the hardware does before a waiting instruction; finding one before
/// instruction `k` it stops there and sets `HostFrame::status` to `k + 1` (instructions
/// `0..k` ran), otherwise to 0. Called like an x87 instruction's stub, with the guest's x87
/// state live in the host FPU. The first instruction's memory operand, if it has one
/// ([`fusable_first`]), is the frame's, as in a stub of its own.
///
/// With `checked` false (the block's mode is [`crate::fp_mode::X87_MASKED`]: no exception
/// can be pending) there is no check, and the status is 0.
pub fn plan_run(insns: &[Instruction], checked: bool) -> Result<HostStub, PlanError> {
    match insns.split_first() {
        Some((first, rest)) if fusable_first(first) && rest.iter().all(fusable) => {}
        _ => return Err(PlanError::NotAccepted),
    }
    let e = |e: iced_x86::IcedError| PlanError::Encode(e.to_string());
    let mut a = CodeAssembler::new(64).map_err(e)?;
    let mut done = a.create_label();
    // RAX carries the status word; nothing else changes (a `preserve_all` callee).
    a.push(rax).map_err(e)?;
    for (k, insn) in insns.iter().enumerate() {
        if !checked {
            a.add_instruction(frame_operand(insn)).map_err(e)?;
            continue;
        }
        let mut go = a.create_label();
        a.fnstsw(ax).map_err(e)?;
        a.test(al, 0x80).map_err(e)?;
        a.jz(go).map_err(e)?;
        a.mov(qword_ptr(rdi + frame::STATUS), k as i32 + 1)
            .map_err(e)?;
        a.jmp(done).map_err(e)?;
        a.set_label(&mut go).map_err(e)?;
        a.add_instruction(frame_operand(insn)).map_err(e)?;
    }
    a.mov(qword_ptr(rdi + frame::STATUS), 0).map_err(e)?;
    a.set_label(&mut done).map_err(e)?;
    a.pop(rax).map_err(e)?;
    a.ret().map_err(e)?;
    Ok(HostStub {
        code: a.assemble(0).map_err(e)?,
    })
}

/// One stub for the x87 instructions of a run that other instructions interleave
/// (`x87run`): the host runs all of them or none. It runs them only if no exception is
/// pending (FSW.ES clear) and the control word masks all six: then none of them can find
/// one pending, so none would raise #MF. It sets `HostFrame::status` to 0 if they ran, else
/// to 1 (nothing ran). The first instruction's memory operand, if it has one
/// ([`fusable_first`]), is the frame's, as in [`plan_run`]. With `checked` false (as there)
/// it runs them without the check.
pub fn plan_span(insns: &[Instruction], checked: bool) -> Result<HostStub, PlanError> {
    match insns.split_first() {
        Some((first, rest))
            if fusable_first(first) && rest.iter().all(|i| fusable(i) || flag_x87(i)) => {}
        _ => return Err(PlanError::NotAccepted),
    }
    let e = |e: iced_x86::IcedError| PlanError::Encode(e.to_string());
    let mut a = CodeAssembler::new(64).map_err(e)?;
    let (mut bail, mut done) = (a.create_label(), a.create_label());
    if checked {
        // RAX carries the status and control words (the second push is FNSTCW's slot).
        a.push(rax).map_err(e)?;
        a.push(rax).map_err(e)?;
        a.fnstsw(ax).map_err(e)?;
        a.test(al, 0x80).map_err(e)?;
        a.jnz(bail).map_err(e)?;
        a.fnstcw(word_ptr(rsp)).map_err(e)?;
        a.mov(ax, word_ptr(rsp)).map_err(e)?;
        a.not(eax).map_err(e)?;
        a.test(al, 0x3F).map_err(e)?;
        a.jnz(bail).map_err(e)?;
    }
    for insn in insns {
        a.add_instruction(frame_operand(insn)).map_err(e)?;
        if writes_rflags(insn) {
            // For the semantics at the instruction's place among the run's others.
            a.pushfq().map_err(e)?;
            a.pop(qword_ptr(rdi + frame::RFLAGS)).map_err(e)?;
        }
    }
    a.mov(qword_ptr(rdi + frame::STATUS), 0).map_err(e)?;
    if checked {
        a.jmp(done).map_err(e)?;
        a.set_label(&mut bail).map_err(e)?;
        a.mov(qword_ptr(rdi + frame::STATUS), 1).map_err(e)?;
        a.set_label(&mut done).map_err(e)?;
        a.pop(rax).map_err(e)?;
        a.pop(rax).map_err(e)?;
    }
    a.ret().map_err(e)?;
    Ok(HostStub {
        code: a.assemble(0).map_err(e)?,
    })
}

/// Whether `insn` is an x87 instruction on stack registers that writes or reads RFLAGS:
/// FCOMI, FCOMIP, FUCOMI, FUCOMIP (ZF, PF, CF; OF, SF, AF cleared) or FCMOVcc. A spanning
/// run ([`plan_span`]) may hold them where the semantics know the flags they read.
pub fn flag_x87(insn: &Instruction) -> bool {
    use Mnemonic as M;
    insn.encoding() == EncodingKind::Legacy
        && !insn.has_lock_prefix()
        && matches!(
            insn.mnemonic(),
            M::Fcomi
                | M::Fcomip
                | M::Fucomi
                | M::Fucomip
                | M::Fcmovb
                | M::Fcmove
                | M::Fcmovbe
                | M::Fcmovu
                | M::Fcmovnb
                | M::Fcmovne
                | M::Fcmovnbe
                | M::Fcmovnu
        )
        && (0..insn.op_count())
            .all(|i| insn.op_kind(i) == OpKind::Register && insn.op_register(i).is_st())
}

/// Whether the x87 instruction `insn` writes RFLAGS (FCOMI and its kin).
pub fn writes_rflags(insn: &Instruction) -> bool {
    insn.rflags_modified() & !X87_CC != 0
}

/// `insn` at address 0 with its memory operand, if any, the frame's.
fn frame_operand(insn: &Instruction) -> Instruction {
    let mut re = *insn;
    re.set_ip(0);
    if (0..re.op_count()).any(|i| re.op_kind(i) == OpKind::Memory) {
        re.set_segment_prefix(Register::None);
        re.set_memory_base(Register::RDI);
        re.set_memory_index(Register::None);
        re.set_memory_index_scale(1);
        re.set_memory_displacement64(u64::from(frame::MEM));
        re.set_memory_displ_size(1);
    }
    re
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions};

    /// The stub's machine code, decoded.
    fn stub_insns(stub: &HostStub) -> Vec<Instruction> {
        Decoder::with_ip(64, &stub.code, 0, DecoderOptions::NONE)
            .into_iter()
            .collect()
    }

    fn decode(bytes: &[u8]) -> Instruction {
        Decoder::with_ip(64, bytes, 0x1000, DecoderOptions::NONE).decode()
    }

    #[test]
    fn only_x87_stack_register_instructions_fuse() {
        // fadd st(0), st(3); fxch st(1); fsin; fucomp st(1); fld1
        for bytes in [
            &[0xD8, 0xC3][..],
            &[0xD9, 0xC9],
            &[0xD9, 0xFE],
            &[0xDD, 0xE9],
            &[0xD9, 0xE8],
        ] {
            assert!(fusable(&decode(bytes)), "{bytes:02x?}");
        }
        // fld qword [rax] (memory), fcomi st, st(1) (RFLAGS), fcmovb (RFLAGS), fnstsw ax and
        // fnclex (control), wait, fldcw [rax], emms (MMX), addps
        for bytes in [
            &[0xDD, 0x00][..],
            &[0xDB, 0xF1],
            &[0xDA, 0xC1],
            &[0xDF, 0xE0],
            &[0xDB, 0xE2],
            &[0x9B],
            &[0xD9, 0x28],
            &[0x0F, 0x77],
            &[0x0F, 0x58, 0xC1],
        ] {
            assert!(!fusable(&decode(bytes)), "{bytes:02x?}");
            assert_eq!(
                fusable_first(&decode(bytes)),
                bytes == [0xDD, 0x00],
                "{bytes:02x?}"
            );
        }
    }

    #[test]
    fn a_run_checks_before_each_instruction_and_reports_where_it_stopped() {
        let run = [
            decode(&[0xD9, 0xE8]),
            decode(&[0xD8, 0xC3]),
            decode(&[0xD9, 0xC9]),
        ];
        let stub = plan_run(&run, true).unwrap();
        let insns = stub_insns(&stub);
        let mnemonics: Vec<Mnemonic> = insns.iter().map(|i| i.mnemonic()).collect();
        let at: Vec<usize> = [Mnemonic::Fld1, Mnemonic::Fadd, Mnemonic::Fxch]
            .iter()
            .map(|m| mnemonics.iter().position(|x| x == m).unwrap())
            .collect();
        assert!(
            at.windows(2).all(|w| w[0] < w[1]),
            "in order: {mnemonics:?}"
        );
        // Before each: fnstsw ax; test al, 0x80; jz; mov [rdi+STATUS], k + 1.
        for (k, &i) in at.iter().enumerate() {
            let check = &insns[i - 5..i];
            assert_eq!(check[0].mnemonic(), Mnemonic::Fnstsw, "{k}");
            assert_eq!(check[3].memory_displacement64(), u64::from(frame::STATUS));
            assert_eq!(check[3].immediate(1), k as u64 + 1);
        }
        // A memory operand only on the first: fld1; fld qword [rax] is no run.
        assert!(plan_run(&[decode(&[0xD9, 0xE8]), decode(&[0xDD, 0x00])], true).is_err());
        // fadd qword [rax+rbx*8+16]; fsqrt: the operand is the frame's.
        let stub = plan_run(
            &[decode(&[0xDC, 0x44, 0xD8, 0x10]), decode(&[0xD9, 0xFA])],
            true,
        )
        .unwrap();
        let fadd = stub_insns(&stub)
            .into_iter()
            .find(|i| i.mnemonic() == Mnemonic::Fadd)
            .unwrap();
        assert_eq!(fadd.memory_base(), Register::RDI);
        assert_eq!(fadd.memory_index(), Register::None);
        assert_eq!(fadd.memory_displacement64(), u64::from(frame::MEM));
        // A store does not begin one: fstp qword [rax]; fld1.
        assert!(plan_run(&[decode(&[0xDD, 0x18]), decode(&[0xD9, 0xE8])], true).is_err());
        assert!(plan_run(&[], true).is_err());
    }

    #[test]
    fn a_spanning_run_checks_once_and_saves_the_flags_of_its_fcomi() {
        // fld qword [rax]; fcomip st, st(1); fcmovb st, st(1); fchs
        let run = [
            decode(&[0xDD, 0x00]),
            decode(&[0xDF, 0xF1]),
            decode(&[0xDA, 0xC1]),
            decode(&[0xD9, 0xE0]),
        ];
        let stub = plan_span(&run, true).unwrap();
        let insns = stub_insns(&stub);
        let m: Vec<Mnemonic> = insns.iter().map(|i| i.mnemonic()).collect();
        let at = |x: Mnemonic| m.iter().position(|&y| y == x).unwrap();
        assert_eq!(m.iter().filter(|&&x| x == Mnemonic::Fnstsw).count(), 1);
        assert!(at(Mnemonic::Fnstcw) < at(Mnemonic::Fld));
        assert_eq!(at(Mnemonic::Pushfq), at(Mnemonic::Fcomip) + 1);
        assert!(at(Mnemonic::Fcmovb) < at(Mnemonic::Fchs));
        assert_eq!(insns[at(Mnemonic::Fld)].memory_base(), Register::RDI);
        // A store or an SSE instruction is no part of one.
        assert!(plan_span(&[decode(&[0xD9, 0xE8]), decode(&[0xDD, 0x18])], true).is_err());
        assert!(plan_span(&[decode(&[0xD9, 0xE8]), decode(&[0x0F, 0x58, 0xC1])], true).is_err());
    }
}
