//! The floating-point and vector forms: every legacy-encoded x87, MMX, SSE..SSE4.2 form valid
//! in 64-bit mode, the x87/SSE state instructions, and the other instructions of the
//! x86-64-v2 level that came with them (CRC32, CMPXCHG8B/16B, MOVNTI, the fences, CLFLUSH).
//!
//! Invariants:
//! - Every form this module claims has at least one x87, MMX or XMM operand, or is named in
//!   [`special_mnemonic`]; so integer forms (CMOVcc, POPCNT, LAHF...) stay with
//!   [`super::family_of`].
//! - A family is decided by the form alone (never by the operands a case picks), so
//!   `--filter ssefp` selects the same forms on every run.

use iced_x86::{Code, CpuidFeature as F, Instruction, Mnemonic as M, OpCodeOperandKind as K};

use super::{Family, Special};

/// Whether the form has an operand of one of these kinds.
fn has_kind(code: Code, f: impl Fn(K) -> bool) -> bool {
    code.op_code().op_kinds().iter().any(|&k| f(k))
}

fn is_xmm_kind(k: K) -> bool {
    matches!(k, K::xmm_reg | K::xmm_rm | K::xmm_or_mem)
}

fn is_mm_kind(k: K) -> bool {
    matches!(k, K::mm_reg | K::mm_rm | K::mm_or_mem)
}

/// The CPUID features of a form.
fn features(code: Code) -> Vec<F> {
    let mut i = Instruction::default();
    i.set_code(code);
    i.cpuid_features().to_vec()
}

/// Mnemonics placed by name: the state instructions and the instructions without an x87,
/// MMX or XMM operand.
fn special_mnemonic(m: M) -> Option<Family> {
    Some(match m {
        M::Fxsave | M::Fxsave64 | M::Fxrstor | M::Fxrstor64 | M::Ldmxcsr | M::Stmxcsr => {
            Family::FpState
        }
        M::Fnstenv | M::Fstenv | M::Fldenv | M::Fnsave | M::Fsave | M::Frstor => Family::FpState,
        M::Wait => Family::X87,
        M::Crc32 => Family::SseInt,
        M::Movnti | M::Lfence | M::Mfence | M::Sfence | M::Clflush => Family::Sse,
        M::Cmpxchg8b | M::Cmpxchg16b => Family::Data,
        _ => return None,
    })
}

/// Floating-point arithmetic, comparisons and rounding on XMM registers.
fn is_sse_fp(m: M) -> bool {
    matches!(
        m,
        M::Addps
            | M::Addpd
            | M::Addss
            | M::Addsd
            | M::Subps
            | M::Subpd
            | M::Subss
            | M::Subsd
            | M::Mulps
            | M::Mulpd
            | M::Mulss
            | M::Mulsd
            | M::Divps
            | M::Divpd
            | M::Divss
            | M::Divsd
            | M::Minps
            | M::Minpd
            | M::Minss
            | M::Minsd
            | M::Maxps
            | M::Maxpd
            | M::Maxss
            | M::Maxsd
            | M::Sqrtps
            | M::Sqrtpd
            | M::Sqrtss
            | M::Sqrtsd
            | M::Rcpps
            | M::Rcpss
            | M::Rsqrtps
            | M::Rsqrtss
            | M::Haddps
            | M::Haddpd
            | M::Hsubps
            | M::Hsubpd
            | M::Addsubps
            | M::Addsubpd
            | M::Cmpps
            | M::Cmppd
            | M::Cmpss
            | M::Cmpsd
            | M::Comiss
            | M::Comisd
            | M::Ucomiss
            | M::Ucomisd
            | M::Roundps
            | M::Roundpd
            | M::Roundss
            | M::Roundsd
            | M::Dpps
            | M::Dppd
    )
}

/// Moves, shuffles, blends, inserts/extracts and bitwise logic on XMM registers.
fn is_sse_move(m: M) -> bool {
    matches!(
        m,
        M::Movaps
            | M::Movapd
            | M::Movups
            | M::Movupd
            | M::Movss
            | M::Movsd
            | M::Movhlps
            | M::Movlhps
            | M::Movlps
            | M::Movlpd
            | M::Movhps
            | M::Movhpd
            | M::Movddup
            | M::Movsldup
            | M::Movshdup
            | M::Movd
            | M::Movq
            | M::Movdqa
            | M::Movdqu
            | M::Lddqu
            | M::Movntps
            | M::Movntpd
            | M::Movntdq
            | M::Movntdqa
            | M::Maskmovdqu
            | M::Movmskps
            | M::Movmskpd
            | M::Pmovmskb
            | M::Movq2dq
            | M::Movdq2q
            | M::Unpcklps
            | M::Unpcklpd
            | M::Unpckhps
            | M::Unpckhpd
            | M::Shufps
            | M::Shufpd
            | M::Pshufd
            | M::Pshufhw
            | M::Pshuflw
            | M::Pshufb
            | M::Palignr
            | M::Punpcklbw
            | M::Punpcklwd
            | M::Punpckldq
            | M::Punpcklqdq
            | M::Punpckhbw
            | M::Punpckhwd
            | M::Punpckhdq
            | M::Punpckhqdq
            | M::Andps
            | M::Andpd
            | M::Andnps
            | M::Andnpd
            | M::Orps
            | M::Orpd
            | M::Xorps
            | M::Xorpd
            | M::Pand
            | M::Pandn
            | M::Por
            | M::Pxor
            | M::Blendps
            | M::Blendpd
            | M::Blendvps
            | M::Blendvpd
            | M::Pblendw
            | M::Pblendvb
            | M::Insertps
            | M::Extractps
            | M::Pextrb
            | M::Pextrw
            | M::Pextrd
            | M::Pextrq
            | M::Pinsrb
            | M::Pinsrw
            | M::Pinsrd
            | M::Pinsrq
            | M::Pslldq
            | M::Psrldq
    )
}

/// The family of a floating-point or vector form, `None` for everything else.
pub fn family(code: Code) -> Option<Family> {
    let m = code.mnemonic();
    if let Some(f) = special_mnemonic(m) {
        return Some(f);
    }
    let feats = features(code);
    // The x86-64-v2 level popek's CPUID reports (no SSE4A, AES, PCLMULQDQ, SHA, 3DNow!...).
    let v2 = |f: &F| {
        matches!(
            f,
            F::FPU
                | F::FPU287
                | F::FPU387
                | F::FPU387SL_ONLY
                | F::CMOV
                | F::MMX
                | F::SSE
                | F::SSE2
                | F::SSE3
                | F::SSSE3
                | F::SSE4_1
                | F::SSE4_2
        )
    };
    if !feats.iter().all(v2) {
        return None;
    }
    if feats
        .iter()
        .any(|f| matches!(f, F::FPU | F::FPU287 | F::FPU387 | F::FPU387SL_ONLY))
    {
        return Some(Family::X87);
    }
    let xmm = has_kind(code, is_xmm_kind);
    let mm = has_kind(code, is_mm_kind);
    if m == M::Emms || (mm && !xmm) {
        return Some(Family::Mmx);
    }
    if !xmm {
        return None;
    }
    let name = format!("{m:?}");
    Some(if name.starts_with("Cvt") {
        Family::SseConv
    } else if name.starts_with("Pcmpestr") || name.starts_with("Pcmpistr") {
        Family::SseStr
    } else if is_sse_fp(m) {
        Family::SseFp
    } else if is_sse_move(m) {
        Family::Sse
    } else {
        Family::SseInt
    })
}

/// What a floating-point or vector form's operands need from the case generator.
pub fn special(code: Code) -> Special {
    match code.mnemonic() {
        M::Fldenv | M::Frstor | M::Fxrstor | M::Fxrstor64 | M::Ldmxcsr => Special::FpImage,
        M::Maskmovq | M::Maskmovdqu => Special::MaskMove,
        M::Pcmpestri | M::Pcmpestri64 | M::Pcmpestrm | M::Pcmpestrm64 => Special::StrLen,
        M::Cmpxchg8b | M::Cmpxchg16b => Special::Cmpxchg8b,
        _ => Special::Fp,
    }
}

/// Whether the generator can produce this floating-point or vector operand kind.
pub fn operand_supported(k: K) -> bool {
    is_xmm_kind(k) || is_mm_kind(k) || matches!(k, K::st0 | K::sti_opcode | K::seg_rDI)
}

/// Whether a legacy SSE form's memory operand must be 16-byte aligned (#GP(0) otherwise):
/// every 16-byte operand but the unaligned loads and stores and the string compares, plus
/// FXSAVE/FXRSTOR and CMPXCHG16B. (The same rule the translator implements; the host is the
/// judge.)
pub fn needs_alignment(code: Code) -> bool {
    let m = code.mnemonic();
    if matches!(
        m,
        M::Fxsave | M::Fxsave64 | M::Fxrstor | M::Fxrstor64 | M::Cmpxchg16b
    ) {
        return true;
    }
    let oc = code.op_code();
    oc.memory_size().size() == 16
        && has_kind(code, |k| matches!(k, K::xmm_or_mem | K::mem))
        && !matches!(
            m,
            M::Movups
                | M::Movupd
                | M::Movdqu
                | M::Lddqu
                | M::Pcmpestri
                | M::Pcmpestri64
                | M::Pcmpestrm
                | M::Pcmpestrm64
                | M::Pcmpistri
                | M::Pcmpistrm
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_of_known_forms() {
        let fam = |c| family(c);
        assert_eq!(fam(Code::Fadd_m32fp), Some(Family::X87));
        assert_eq!(fam(Code::Fisttp_m64int), Some(Family::X87));
        assert_eq!(fam(Code::Fnstsw_AX), Some(Family::X87));
        assert_eq!(fam(Code::Fnsave_m108byte), Some(Family::FpState));
        assert_eq!(fam(Code::Emms), Some(Family::Mmx));
        assert_eq!(fam(Code::Movd_mm_rm32), Some(Family::Mmx));
        assert_eq!(fam(Code::Pshufw_mm_mmm64_imm8), Some(Family::Mmx));
        assert_eq!(fam(Code::Movsd_xmm_xmmm64), Some(Family::Sse));
        assert_eq!(fam(Code::Cmpsd_xmm_xmmm64_imm8), Some(Family::SseFp));
        assert_eq!(fam(Code::Cvtpi2ps_xmm_mmm64), Some(Family::SseConv));
        assert_eq!(fam(Code::Pcmpistri_xmm_xmmm128_imm8), Some(Family::SseStr));
        assert_eq!(fam(Code::Pmulld_xmm_xmmm128), Some(Family::SseInt));
        assert_eq!(fam(Code::Crc32_r32_rm8), Some(Family::SseInt));
        assert_eq!(fam(Code::Cmpxchg16b_m128), Some(Family::Data));
        assert_eq!(fam(Code::Cmovo_r32_rm32), None);
        assert_eq!(fam(Code::Popcnt_r32_rm32), None);
        assert_eq!(fam(Code::Movsd_m32_m32), None);
        assert_eq!(fam(Code::Extrq_xmm_imm8_imm8), None);
        assert_eq!(fam(Code::Aesenc_xmm_xmmm128), None);
    }

    #[test]
    fn alignment_rule() {
        assert!(needs_alignment(Code::Addps_xmm_xmmm128));
        assert!(needs_alignment(Code::Movntdqa_xmm_m128));
        assert!(needs_alignment(Code::Fxsave64_m512byte));
        assert!(!needs_alignment(Code::Movups_xmm_xmmm128));
        assert!(!needs_alignment(Code::Addss_xmm_xmmm32));
        assert!(!needs_alignment(Code::Pcmpestri_xmm_xmmm128_imm8));
        assert!(!needs_alignment(Code::Paddb_mm_mmm64));
    }
}
