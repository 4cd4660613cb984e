//! Which floating-point results the next instructions read before anything else uses them:
//! what [`Ctx::expect_fp_reads`](crate::ctx::Ctx::expect_fp_reads) is told, so that a result
//! read by a later floating-point operation need not be written through to `CpuState`.
//!
//! The scan looks at the instructions after the current one while each is *plain*: it
//! computes in registers, loads at most, and stores nothing (SSE arithmetic, data movement
//! into an XMM register, simple integer instructions into a general register). A load's
//! slow path and fault exit are cold and use no XMM value of generated code except in the
//! fault exit's write-back, which runs instead of the rest of the block; a store's fast
//! path would use the value it stores in an arm that does not dominate what follows, and
//! Cranelift would then compute it (and whatever it came from) twice. An XMM register is
//! expected to be read if the first plain instruction that touches it reads it into an
//! inline floating-point operation. Full-register copies (MOVAPS and the like, one SSA value
//! under a second name) do not touch their source.
//!
//! The guess only saves stores: [`crate::ctx::Ctx`] keeps every result exactly whatever
//! happens (see its module invariants).

use iced_x86::{Instruction, Mnemonic as M, OpKind};

use crate::fp_mode;
use crate::Mode;

/// How many instructions after the current one are looked at.
const WINDOW: usize = 16;

/// What a plain instruction does to the XMM registers.
enum Touch {
    /// An inline floating-point operation into operand 0, reading its XMM operands
    /// (operand 0 too unless `writes_only`).
    Float { writes_only: bool },
    /// A full copy into operand 0 (from a register or memory).
    Copy,
    /// Other SSE data movement, logic or shuffling into operand 0.
    Other,
    /// No XMM register.
    Integer,
}

fn touch(insn: &Instruction) -> Option<Touch> {
    use M::*;
    let m = insn.mnemonic();
    let xmm_dest =
        insn.op_count() > 0 && insn.op0_kind() == OpKind::Register && insn.op0_register().is_xmm();
    let t = match m {
        Addps | Addpd | Addss | Addsd | Subps | Subpd | Subss | Subsd | Mulps | Mulpd | Mulss
        | Mulsd | Divps | Divpd | Divss | Divsd | Sqrtss | Sqrtsd | Minps | Minpd | Minss
        | Minsd | Maxps | Maxpd | Maxss | Maxsd | Cvtsi2ss | Cvtsi2sd | Cvtss2sd | Cvtsd2ss => {
            Touch::Float { writes_only: false }
        }
        Sqrtps | Sqrtpd | Cvtdq2ps | Cvttps2dq | Cvtps2pd | Cvtpd2ps | Cvtdq2pd => {
            Touch::Float { writes_only: true }
        }
        Movaps | Movapd | Movups | Movupd | Movdqa | Movdqu => Touch::Copy,
        Movss | Movsd | Movq | Movd | Movhlps | Movlhps | Movddup | Unpcklps | Unpckhps
        | Unpcklpd | Unpckhpd | Shufps | Shufpd | Pshufd | Andps | Andpd | Andnps | Andnpd
        | Orps | Orpd | Xorps | Xorpd | Pand | Pandn | Por | Pxor => Touch::Other,
        Add | Sub | And | Or | Xor | Cmp | Test | Mov | Movzx | Movsx | Movsxd | Lea | Inc
        | Dec => {
            let gpr_dest = insn.op_count() > 0
                && insn.op0_kind() == OpKind::Register
                && insn.op0_register().is_gpr();
            return gpr_dest.then_some(Touch::Integer);
        }
        _ => return None,
    };
    // Into an XMM register (a store would not be plain), no MMX operand (stubs).
    let mmx = (0..insn.op_count())
        .any(|i| insn.op_kind(i) == OpKind::Register && insn.op_register(i).is_mm());
    (xmm_dest && !mmx).then_some(t)
}

/// The XMM registers the instructions of `next` (those after the current one, in the same
/// straight-line code) are expected to read into inline floating-point operations before
/// anything else uses them (see the module documentation).
pub fn fp_reads_ahead(mode: Mode, next: &[Instruction]) -> u16 {
    if mode.fp & fp_mode::SIMD_UNMASKED != 0 {
        // Floating-point forms take their stubs.
        return 0;
    }
    let (mut expected, mut touched) = (0u16, 0u16);
    for insn in next.iter().take(WINDOW) {
        let Some(t) = touch(insn) else {
            break;
        };
        let mut reads = 0u16;
        for i in 0..insn.op_count() {
            if insn.op_kind(i) == OpKind::Register && insn.op_register(i).is_xmm() {
                reads |= 1 << insn.op_register(i).number();
            }
        }
        let dest = if insn.op0_register().is_xmm() {
            1u16 << insn.op0_register().number()
        } else {
            0
        };
        match t {
            Touch::Float { writes_only } => {
                let read = if writes_only { reads & !dest } else { reads };
                expected |= read & !touched;
                touched |= reads;
            }
            Touch::Copy => touched |= dest,
            Touch::Other => touched |= reads,
            Touch::Integer => {}
        }
        if touched == u16::MAX {
            break;
        }
    }
    expected
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::code_asm::*;

    fn decode(f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<Instruction> {
        let mut a = CodeAssembler::new(64).unwrap();
        f(&mut a).unwrap();
        let bytes = a.assemble(0).unwrap();
        let mut d = iced_x86::Decoder::new(64, &bytes, 0);
        let mut v = Vec::new();
        while d.can_decode() {
            v.push(d.decode());
        }
        v
    }

    fn ahead(insns: &[Instruction]) -> u16 {
        fp_reads_ahead(Mode::LONG64_CPL0, insns)
    }

    #[test]
    fn a_result_read_by_a_later_operation_is_expected() {
        // nbody's pattern: copies and integer work between, a load, then the reads.
        let insns = decode(|a| {
            a.movapd(xmm0, xmm1)?;
            a.add(rax, 0x38)?;
            a.movsd_2(xmm3, qword_ptr(rax))?;
            a.mulsd(xmm2, xmm1)?;
            a.addsd(xmm4, qword_ptr(rax + 8))
        });
        assert_eq!(ahead(&insns), 1 << 1 | 1 << 2 | 1 << 4);
    }

    #[test]
    fn other_uses_stores_and_overwrites_come_first() {
        // Read by a shuffle first, overwritten first, or after a store: not expected.
        let insns = decode(|a| {
            a.unpckhpd(xmm0, xmm1)?;
            a.movapd(xmm2, xmm3)?;
            a.sqrtpd(xmm5, xmm6)?;
            a.mulsd(xmm1, xmm2)?;
            a.movsd_2(qword_ptr(rax), xmm7)?;
            a.addsd(xmm7, xmm4)
        });
        // xmm5 is written by SQRTPD, not read; xmm6 is read.
        assert_eq!(ahead(&insns), 1 << 6);
    }

    #[test]
    fn nothing_is_expected_with_unmasked_exceptions() {
        let insns = decode(|a| a.addsd(xmm0, xmm1));
        let mut mode = Mode::LONG64_CPL0;
        mode.fp |= fp_mode::SIMD_UNMASKED;
        assert_eq!(fp_reads_ahead(mode, &insns), 0);
        assert_eq!(ahead(&insns), 0b11);
    }
}
