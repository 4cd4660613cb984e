//! The x87, MMX and SSE instruction classes: which exceptions CR0, CR4 and MXCSR make them
//! raise before they execute, and where each goes (an inline lowering in `sse/`, the x87
//! and state-management instructions in `x87`, everything else through a host stub).
//!
//! The checks follow the manuals' tables (Intel SDM vol. 3, table 2-2 and §13; vol. 2's
//! exception classes), in their priority order:
//! - x87: CR0.EM or CR0.TS → #NM (WAIT/FWAIT: CR0.TS and CR0.MP → #NM);
//! - MMX (an MMX register operand): CR0.EM → #UD, CR0.TS → #NM;
//! - SSE..SSE4.2 (an XMM operand, LDMXCSR/STMXCSR): CR0.EM or !CR4.OSFXSR → #UD,
//!   CR0.TS → #NM;
//! - a pending unmasked x87 exception (#MF) is the runtime's check, made when the
//!   instruction waits (x87 and MMX), because the x87 state lives in the host FPU;
//! - a misaligned 16-byte operand of a legacy SSE instruction that requires alignment:
//!   #GP(0) (`needs_alignment`).
//!
//! Instructions that carry an SSE CPUID feature but touch no x87/XMM state never trap on
//! CR0/CR4: CRC32 is [`FpClass::Plain`] (a host stub, no checks); POPCNT, MOVNTI, the
//! fences, CLFLUSH, PREFETCHh and PAUSE are no class at all (integer, store and NOP
//! semantics).

use iced_x86::{CpuidFeature, Instruction, Mnemonic as M, OpKind};

use super::{host, sse, x87};
use crate::ctx::Ctx;
use crate::emit::Emitter;
use crate::exception::Exception;
use crate::fp_mode;

/// Which checks an instruction takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FpClass {
    /// x87 arithmetic and control (D8..DF, and FXSAVE/FXRSTOR).
    X87,
    /// WAIT/FWAIT.
    Wait,
    /// An MMX register operand and no XMM one.
    Mmx,
    /// An XMM operand (with or without MMX ones), or LDMXCSR/STMXCSR.
    Sse,
    /// CRC32: no floating-point state, no CR0/CR4 check; run by a host stub.
    Plain,
}

fn has_reg(insn: &Instruction, f: impl Fn(iced_x86::Register) -> bool) -> bool {
    (0..insn.op_count()).any(|i| insn.op_kind(i) == OpKind::Register && f(insn.op_register(i)))
}

/// The class of `insn`, or `None` for everything the floating-point and vector rules do not
/// cover.
pub fn classify(insn: &Instruction) -> Option<FpClass> {
    use CpuidFeature as F;
    match insn.mnemonic() {
        M::Wait => return Some(FpClass::Wait),
        M::Fxsave | M::Fxsave64 | M::Fxrstor | M::Fxrstor64 => return Some(FpClass::X87),
        M::Ldmxcsr | M::Stmxcsr => return Some(FpClass::Sse),
        M::Emms => return Some(FpClass::Mmx),
        M::Crc32 => return Some(FpClass::Plain),
        M::Popcnt
        | M::Movnti
        | M::Lfence
        | M::Mfence
        | M::Sfence
        | M::Clflush
        | M::Pause
        | M::Prefetchnta
        | M::Prefetcht0
        | M::Prefetcht1
        | M::Prefetcht2 => return None,
        _ => {}
    }
    let feats = insn.cpuid_features();
    if feats
        .iter()
        .any(|f| matches!(f, F::FPU | F::FPU287 | F::FPU387 | F::FPU387SL_ONLY))
    {
        return Some(FpClass::X87);
    }
    if has_reg(insn, |r| r.is_xmm()) {
        return Some(FpClass::Sse);
    }
    if has_reg(insn, |r| r.is_mm()) {
        return Some(FpClass::Mmx);
    }
    let simd = feats.iter().any(|f| {
        matches!(
            f,
            F::SSE | F::SSE2 | F::SSE3 | F::SSSE3 | F::SSE4_1 | F::SSE4_2 | F::MMX
        )
    });
    simd.then_some(FpClass::Sse)
}

/// The #UD/#NM the mode makes `class` raise, if any.
pub fn mode_fault(class: FpClass, fp: u8) -> Option<Exception> {
    let (em, ts) = (fp & fp_mode::EM != 0, fp & fp_mode::TS != 0);
    match class {
        FpClass::X87 if em || ts => Some(Exception::DeviceNotAvailable),
        FpClass::Wait if ts && fp & fp_mode::MP != 0 => Some(Exception::DeviceNotAvailable),
        FpClass::Mmx if em => Some(Exception::InvalidOpcode),
        FpClass::Sse if em || fp & fp_mode::OSFXSR == 0 => Some(Exception::InvalidOpcode),
        FpClass::Mmx | FpClass::Sse if ts => Some(Exception::DeviceNotAvailable),
        _ => None,
    }
}

/// Whether a legacy SSE instruction's 16-byte memory operand must be 16-byte aligned
/// (#GP(0) otherwise): all but the unaligned moves and the SSE4.2 string compares.
pub fn needs_alignment(insn: &Instruction) -> bool {
    insn.op_count() > 0
        && (0..insn.op_count()).any(|i| insn.op_kind(i) == OpKind::Memory)
        && insn.memory_size().size() == 16
        && !matches!(
            insn.mnemonic(),
            M::Movups
                | M::Movupd
                | M::Movdqu
                | M::Lddqu
                | M::Pcmpestri
                | M::Pcmpestrm
                | M::Pcmpistri
                | M::Pcmpistrm
                | M::Pcmpestri64
                | M::Pcmpestrm64
        )
        && !matches!(
            insn.mnemonic(),
            M::Fxsave | M::Fxrstor | M::Fxsave64 | M::Fxrstor64
        )
}

/// Translate an instruction of `class` (see [`classify`]).
pub fn translate<E: Emitter>(ctx: &mut Ctx<E>, class: FpClass) {
    if let Some(e) = mode_fault(class, ctx.mode().fp) {
        return ctx.raise(e);
    }
    let insn = *ctx.insn();
    if class == FpClass::X87 || class == FpClass::Wait {
        return x87::translate(ctx);
    }
    if matches!(insn.mnemonic(), M::Ldmxcsr | M::Stmxcsr) {
        return x87::mxcsr(ctx);
    }
    if class == FpClass::Sse && sse::translate(ctx) {
        return;
    }
    host::exec(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions};

    fn class(bytes: &[u8]) -> Option<FpClass> {
        classify(&Decoder::with_ip(64, bytes, 0, DecoderOptions::NONE).decode())
    }

    #[test]
    fn classes() {
        assert_eq!(class(&[0xD8, 0xC1]), Some(FpClass::X87)); // fadd st, st(1)
        assert_eq!(class(&[0x9B]), Some(FpClass::Wait));
        assert_eq!(class(&[0x0F, 0xFC, 0xC1]), Some(FpClass::Mmx)); // paddb mm0, mm1
        assert_eq!(class(&[0x66, 0x0F, 0xFC, 0xC1]), Some(FpClass::Sse)); // paddb xmm0, xmm1
        assert_eq!(class(&[0x0F, 0x2A, 0xC1]), Some(FpClass::Sse)); // cvtpi2ps xmm0, mm1
        assert_eq!(class(&[0xF2, 0x0F, 0x38, 0xF1, 0xC1]), Some(FpClass::Plain)); // crc32
        assert_eq!(class(&[0x0F, 0xAE, 0xF8]), None); // sfence
        assert_eq!(class(&[0xF3, 0x0F, 0xB8, 0xC1]), None); // popcnt
        assert_eq!(class(&[0x01, 0xC0]), None);
    }

    #[test]
    fn mode_faults_in_priority_order() {
        use fp_mode::*;
        assert_eq!(
            mode_fault(FpClass::Sse, EM | TS),
            Some(Exception::InvalidOpcode)
        );
        assert_eq!(
            mode_fault(FpClass::Sse, OSFXSR | TS),
            Some(Exception::DeviceNotAvailable)
        );
        assert_eq!(mode_fault(FpClass::Sse, 0), Some(Exception::InvalidOpcode));
        assert_eq!(
            mode_fault(FpClass::X87, EM),
            Some(Exception::DeviceNotAvailable)
        );
        assert_eq!(mode_fault(FpClass::Wait, TS), None);
        assert_eq!(
            mode_fault(FpClass::Wait, TS | MP),
            Some(Exception::DeviceNotAvailable)
        );
        assert_eq!(mode_fault(FpClass::Mmx, EM), Some(Exception::InvalidOpcode));
        assert_eq!(mode_fault(FpClass::Mmx, 0), None);
        assert_eq!(mode_fault(FpClass::Plain, EM | TS), None);
    }
}
