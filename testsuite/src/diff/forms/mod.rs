//! The instruction forms under test: every legacy-encoded iced-x86 [`Code`] valid in 64-bit
//! mode whose mnemonic the translator supports (the dispatch in
//! `translator/src/semantics/mod.rs`), and every x87, MMX and SSE..SSE4.2 form ([`fp`]),
//! classified by what its operands need.
//!
//! Invariants:
//! - A form is included only if the generator knows how to make every one of its operands
//!   (see [`operand_supported`]); forms the translator deliberately leaves out (segment
//!   registers, far and 16-bit-truncating branches, privileged and sensitive instructions)
//!   never appear.
//! - [`Family`] names match the semantics modules, so `--filter shift` runs what
//!   `semantics/shift.rs` implements.

use std::sync::OnceLock;

use iced_x86::{Code, EncodingKind, Mnemonic as M, OpCodeOperandKind as K};

pub mod fp;

/// The semantics family of a form (the module of `translator/src/semantics` implementing it;
/// the floating-point and vector forms by kind of operation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Alu,
    Flags,
    MulDiv,
    Shift,
    Bits,
    Data,
    Nop,
    Stack,
    Branch,
    String,
    /// x87 arithmetic, loads/stores, comparisons, constants, transcendentals and control.
    X87,
    /// MMX register forms (MMX and the SSE/SSSE3 forms on MMX registers), EMMS.
    Mmx,
    /// SSE moves, shuffles, blends, inserts/extracts, bitwise logic, non-temporal stores,
    /// fences and CLFLUSH.
    Sse,
    /// SSE packed-integer arithmetic, compares, packs and extensions, PTEST, CRC32.
    SseInt,
    /// SSE floating-point arithmetic, compares, rounding and dot products.
    SseFp,
    /// Conversions between floating-point and integer formats (CVT*).
    SseConv,
    /// SSE4.2 string compares (PCMPESTRI/M, PCMPISTRI/M).
    SseStr,
    /// The state instructions: FXSAVE/FXRSTOR, LDMXCSR/STMXCSR, FNSTENV/FLDENV/FNSAVE/FRSTOR.
    FpState,
}

impl Family {
    /// Lower-case name used by `--filter`.
    pub fn name(self) -> &'static str {
        match self {
            Family::Alu => "alu",
            Family::Flags => "flags",
            Family::MulDiv => "muldiv",
            Family::Shift => "shift",
            Family::Bits => "bits",
            Family::Data => "data",
            Family::Nop => "nop",
            Family::Stack => "stack",
            Family::Branch => "branch",
            Family::String => "string",
            Family::X87 => "x87",
            Family::Mmx => "mmx",
            Family::Sse => "sse",
            Family::SseInt => "sseint",
            Family::SseFp => "ssefp",
            Family::SseConv => "sseconv",
            Family::SseStr => "ssestr",
            Family::FpState => "fpstate",
        }
    }

    /// Whether cases of this family get a random floating-point input state (the others
    /// start from the state after FNINIT with the default MXCSR).
    pub fn is_fp(self) -> bool {
        Family::FP.contains(&self)
    }

    /// The floating-point and vector families.
    pub const FP: [Family; 8] = [
        Family::X87,
        Family::Mmx,
        Family::Sse,
        Family::SseInt,
        Family::SseFp,
        Family::SseConv,
        Family::SseStr,
        Family::FpState,
    ];

    /// Every family, in display order.
    pub const ALL: [Family; 18] = [
        Family::Alu,
        Family::Flags,
        Family::MulDiv,
        Family::Shift,
        Family::Bits,
        Family::Data,
        Family::Nop,
        Family::Stack,
        Family::Branch,
        Family::String,
        Family::X87,
        Family::Mmx,
        Family::Sse,
        Family::SseInt,
        Family::SseFp,
        Family::SseConv,
        Family::SseStr,
        Family::FpState,
    ];
}

/// What a form's operands need from the case generator beyond random values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Special {
    /// Nothing: random registers, memory and immediates.
    Plain,
    /// DIV/IDIV: the dividend (rDX:rAX) and divisor are chosen to avoid #DE most of the time.
    Div,
    /// Shift/rotate (incl. SHLD/SHRD): counts biased to the width boundaries.
    Shift,
    /// BT/BTS/BTR/BTC with a register bit offset (bounded when the destination is memory).
    BitTestReg,
    /// CMPXCHG: rAX often equals the destination.
    Cmpxchg,
    /// String instruction (MOVS STOS LODS CMPS SCAS) of the given element size in bytes.
    String(u32),
    /// Direct branch (Jcc JMP CALL rel8/rel32): the target gets a landing pad.
    DirectBranch,
    /// LOOP/LOOPE/LOOPNE/JRCXZ/JECXZ; `ecx` when the count is ECX (address size 32).
    CountBranch { ecx: bool },
    /// JMP/CALL r/m64: the register or memory holds a landing-pad address.
    IndirectBranch,
    /// RET / RET imm16: the stack top holds a landing-pad address.
    Ret,
    /// ENTER: RBP points into the stack area (nesting levels read through it).
    Enter,
    /// LEAVE: RBP points into the stack area.
    Leave,
    /// The memory operand is an address that is not accessed (LEA, NOP r/m, PREFETCHh).
    NoAccess,
    /// A floating-point or vector form: the case gets a random FP state, and its memory
    /// operand holds edge values of the operand's type (see `case::fpvalues`).
    Fp,
    /// FLDENV, FRSTOR, FXRSTOR, LDMXCSR: the memory operand holds a state image (mostly
    /// valid, sometimes with reserved bits set).
    FpImage,
    /// MASKMOVQ/MASKMOVDQU: rDI points into the hot page.
    MaskMove,
    /// PCMPESTRI/PCMPESTRM: explicit lengths in rAX and rDX, often within the vector.
    StrLen,
    /// CMPXCHG8B/CMPXCHG16B: rDX:rAX often equals the memory operand.
    Cmpxchg8b,
}

/// One instruction form under test.
#[derive(Clone, Copy, Debug)]
pub struct Form {
    pub code: Code,
    pub family: Family,
    pub special: Special,
}

impl Form {
    /// The form's mnemonic.
    pub fn mnemonic(&self) -> M {
        self.code.mnemonic()
    }
}

/// Lower-case mnemonic name (`shl`, `cmovne`, `movsb`...).
pub fn mnemonic_name(m: M) -> String {
    format!("{m:?}").to_ascii_lowercase()
}

/// The family of a supported mnemonic; `None` for mnemonics the translator does not support
/// or that the differential tester cannot compare (sensitive instructions).
fn family_of(m: M) -> Option<Family> {
    Some(match m {
        M::Add | M::Adc | M::Sub | M::Sbb | M::Cmp | M::And | M::Or | M::Xor | M::Test => {
            Family::Alu
        }
        M::Inc | M::Dec | M::Neg | M::Not => Family::Alu,
        M::Clc | M::Stc | M::Cmc | M::Lahf | M::Sahf | M::Cld | M::Std => Family::Flags,
        M::Mul | M::Imul | M::Div | M::Idiv => Family::MulDiv,
        M::Shl | M::Sal | M::Shr | M::Sar | M::Rol | M::Ror | M::Rcl | M::Rcr => Family::Shift,
        M::Shld | M::Shrd => Family::Shift,
        M::Bt | M::Bts | M::Btr | M::Btc | M::Bsf | M::Bsr => Family::Bits,
        M::Popcnt | M::Lzcnt | M::Tzcnt | M::Bswap => Family::Bits,
        M::Mov | M::Movzx | M::Movsx | M::Movsxd | M::Lea | M::Xchg | M::Cmpxchg | M::Xadd => {
            Family::Data
        }
        M::Cbw | M::Cwde | M::Cdqe | M::Cwd | M::Cdq | M::Cqo => Family::Data,
        M::Seto
        | M::Setno
        | M::Setb
        | M::Setae
        | M::Sete
        | M::Setne
        | M::Setbe
        | M::Seta
        | M::Sets
        | M::Setns
        | M::Setp
        | M::Setnp
        | M::Setl
        | M::Setge
        | M::Setle
        | M::Setg => Family::Data,
        M::Cmovo
        | M::Cmovno
        | M::Cmovb
        | M::Cmovae
        | M::Cmove
        | M::Cmovne
        | M::Cmovbe
        | M::Cmova
        | M::Cmovs
        | M::Cmovns
        | M::Cmovp
        | M::Cmovnp
        | M::Cmovl
        | M::Cmovge
        | M::Cmovle
        | M::Cmovg => Family::Data,
        M::Nop
        | M::Pause
        | M::Endbr64
        | M::Endbr32
        | M::Prefetchnta
        | M::Prefetcht0
        | M::Prefetcht1
        | M::Prefetcht2
        | M::Prefetchw => Family::Nop,
        M::Push | M::Pop | M::Enter | M::Leave => Family::Stack,
        M::Jo
        | M::Jno
        | M::Jb
        | M::Jae
        | M::Je
        | M::Jne
        | M::Jbe
        | M::Ja
        | M::Js
        | M::Jns
        | M::Jp
        | M::Jnp
        | M::Jl
        | M::Jge
        | M::Jle
        | M::Jg => Family::Branch,
        M::Jmp | M::Call | M::Ret | M::Loop | M::Loope | M::Loopne | M::Jrcxz | M::Jecxz => {
            Family::Branch
        }
        M::Movsb | M::Movsw | M::Movsd | M::Movsq => Family::String,
        M::Stosb | M::Stosw | M::Stosd | M::Stosq => Family::String,
        M::Lodsb | M::Lodsw | M::Lodsd | M::Lodsq => Family::String,
        M::Cmpsb | M::Cmpsw | M::Cmpsd | M::Cmpsq => Family::String,
        M::Scasb | M::Scasw | M::Scasd | M::Scasq => Family::String,
        _ => return None,
    })
}

/// Whether an operand kind is a general-purpose register (or r/m) of a given width: the
/// operands that fix an instruction form's operand size.
pub fn sized_gpr_kind(k: K) -> bool {
    matches!(
        k,
        K::r8_or_mem
            | K::r16_or_mem
            | K::r32_or_mem
            | K::r64_or_mem
            | K::r8_reg
            | K::r16_reg
            | K::r32_reg
            | K::r64_reg
            | K::r8_opcode
            | K::r16_opcode
            | K::r32_opcode
            | K::r64_opcode
            | K::al
            | K::ax
            | K::eax
            | K::rax
    )
}

/// Whether the generator can produce an operand of this kind.
pub fn operand_supported(k: K) -> bool {
    sized_gpr_kind(k)
        || fp::operand_supported(k)
        || matches!(
            k,
            K::cl
                | K::imm8
                | K::imm16
                | K::imm32
                | K::imm64
                | K::imm8sex16
                | K::imm8sex32
                | K::imm8sex64
                | K::imm32sex64
                | K::imm8_const_1
                | K::br64_1
                | K::br64_4
                | K::mem
                | K::mem_offs
                | K::seg_rSI
                | K::es_rDI
        )
}

/// Forms left out on purpose even though their mnemonic is supported.
fn excluded(code: Code) -> bool {
    matches!(
        code,
        // 16-bit near branches truncate RIP to 16 bits on AMD (Intel ignores 66h): not
        // meaningful for a 64-bit guest, and not placeable natively.
        Code::Call_rm16 | Code::Jmp_rm16 | Code::Retnw | Code::Retnw_imm16
    )
}

/// The form of `code`, if it is one under test.
pub fn classify(code: Code) -> Option<Form> {
    let oc = code.op_code();
    if !oc.is_instruction() || !oc.mode64() || oc.encoding() != EncodingKind::Legacy {
        return None;
    }
    let m = code.mnemonic();
    let kinds = oc.op_kinds();
    if let Some(family) = fp::family(code) {
        // FSTENV, FINIT... are assembler names for WAIT followed by FNSTENV, FNINIT...: two
        // instructions to the CPU and the decoder, each a form of its own.
        if oc.fwait() {
            return None;
        }
        return kinds.iter().all(|&k| operand_supported(k)).then(|| Form {
            code,
            family,
            special: fp::special(code),
        });
    }
    let family = family_of(m)?;
    if excluded(code) || !kinds.iter().all(|&k| operand_supported(k)) {
        return None;
    }
    let is_string = kinds.contains(&K::seg_rSI) || kinds.contains(&K::es_rDI);
    if family == Family::String && !is_string {
        return None; // MOVSD/CMPSD of SSE share the mnemonic
    }
    // Far JMP/CALL through memory (m16:xx) use the `mem` kind.
    if matches!(m, M::Jmp | M::Call) && kinds.contains(&K::mem) {
        return None;
    }
    let special = match m {
        _ if is_string => Special::String(oc.memory_size().size() as u32),
        M::Div | M::Idiv => Special::Div,
        M::Shl | M::Sal | M::Shr | M::Sar | M::Rol | M::Ror | M::Rcl | M::Rcr => Special::Shift,
        M::Shld | M::Shrd => Special::Shift,
        M::Bt | M::Bts | M::Btr | M::Btc if kinds.get(1).is_some_and(|k| is_reg_kind(*k)) => {
            Special::BitTestReg
        }
        M::Cmpxchg => Special::Cmpxchg,
        M::Loop | M::Loope | M::Loopne | M::Jrcxz | M::Jecxz => Special::CountBranch {
            ecx: format!("{code:?}").ends_with("ECX") || m == M::Jecxz,
        },
        M::Jmp | M::Call if kinds.iter().any(|k| matches!(k, K::br64_1 | K::br64_4)) => {
            Special::DirectBranch
        }
        M::Jmp | M::Call => Special::IndirectBranch,
        M::Ret => Special::Ret,
        M::Enter => Special::Enter,
        M::Leave => Special::Leave,
        M::Lea => Special::NoAccess,
        _ if family == Family::Nop => Special::NoAccess,
        _ if family == Family::Branch => Special::DirectBranch,
        _ => Special::Plain,
    };
    Some(Form {
        code,
        family,
        special,
    })
}

fn is_reg_kind(k: K) -> bool {
    matches!(
        k,
        K::r8_reg | K::r16_reg | K::r32_reg | K::r64_reg | K::al | K::ax | K::eax | K::rax | K::cl
    )
}

/// Every form under test, in `Code` order.
pub fn all_forms() -> &'static [Form] {
    static FORMS: OnceLock<Vec<Form>> = OnceLock::new();
    FORMS.get_or_init(|| Code::values().filter_map(classify).collect())
}

/// The forms a `--filter` selects: a comma-separated list of terms, each a mnemonic
/// (`shl`, `cmovne`, `movsb`, `addps`), a family (`alu flags muldiv shift bits data nop stack
/// branch string x87 mmx sse sseint ssefp sseconv ssestr fpstate`), a group (`jcc setcc
/// cmovcc`, `fp` for every floating-point and vector family, `int` for every other one), or
/// an iced `Code` name (`Shl_rm8_CL`), all case-insensitive. A term starting with `-`
/// removes what it matches from the rest (`fp,-minps`; a filter of only removals starts
/// from every form). `None` or an empty filter selects every form.
pub fn select(filter: Option<&str>) -> Result<Vec<Form>, String> {
    let all = all_forms();
    let Some(filter) = filter.map(str::trim).filter(|f| !f.is_empty()) else {
        return Ok(all.to_vec());
    };
    let terms: Vec<String> = filter
        .split(',')
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    let (removals, additions): (Vec<String>, Vec<String>) =
        terms.into_iter().partition(|t| t.starts_with('-'));
    let mut out = if additions.is_empty() {
        all.to_vec()
    } else {
        Vec::new()
    };
    for term in additions {
        let matched: Vec<Form> = all
            .iter()
            .filter(|f| term_matches(&term, f))
            .copied()
            .collect();
        if matched.is_empty() {
            return Err(format!(
                "--filter term `{term}` matches no supported form (try a mnemonic such as \
                 `shl` or `addps`, a family such as `shift` or `ssefp`, `fp`, `int`, or \
                 `jcc`/`setcc`/`cmovcc`)"
            ));
        }
        for f in matched {
            if !out.iter().any(|o: &Form| o.code == f.code) {
                out.push(f);
            }
        }
    }
    for term in removals {
        let term = term.trim_start_matches('-').trim();
        if !all.iter().any(|f| term_matches(term, f)) {
            return Err(format!("--filter term `-{term}` matches no supported form"));
        }
        out.retain(|f| !term_matches(term, f));
    }
    if out.is_empty() {
        return Err("--filter selects no form".into());
    }
    Ok(out)
}

fn term_matches(term: &str, f: &Form) -> bool {
    let m = mnemonic_name(f.mnemonic());
    let cc = |prefix: &str, group: &str| term == group && m.starts_with(prefix);
    m == term
        || f.family.name() == term
        || format!("{:?}", f.code).to_ascii_lowercase() == term
        || (term == "fp" && f.family.is_fp())
        || (term == "int" && !f.family.is_fp())
        || cc("set", "setcc")
        || cc("cmov", "cmovcc")
        || (term == "jcc" && f.code.is_jcc_short_or_near())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_forms() {
        for fam in Family::ALL {
            assert!(
                all_forms().iter().any(|f| f.family == fam),
                "no form for {fam:?}"
            );
        }
        assert!(all_forms().len() > 1000, "{}", all_forms().len());
    }

    #[test]
    fn fp_forms() {
        let x87 = select(Some("x87")).unwrap();
        // Every D8..DF form, the undocumented aliases included.
        for c in [
            Code::Fstpnce_sti,
            Code::Fcom_st0_sti_DCD0,
            Code::Fxch_st0_sti_DFC8,
            Code::Fstp_sti_DFD8,
            Code::Ffreep_sti,
            Code::Fcmovnbe_st0_sti,
            Code::Fbstp_m80bcd,
            Code::Fisttp_m16int,
            Code::Wait,
        ] {
            assert!(x87.iter().any(|f| f.code == c), "{c:?}");
        }
        let state = select(Some("fpstate")).unwrap();
        // FXSAVE/FXRSTOR (and 64), LDMXCSR/STMXCSR, FNSTENV/FLDENV/FNSAVE/FRSTOR x 2 sizes.
        assert_eq!(state.len(), 4 + 2 + 8);
        assert!(!all_forms().iter().any(|f| f.code == Code::Fstenv_m28byte));
        let addps = select(Some("addps")).unwrap();
        assert_eq!(addps.len(), 1);
        assert_eq!(addps[0].family, Family::SseFp);
        // SSE MOVSD/CMPSD are not string instructions, and the string ones stay.
        assert_eq!(select(Some("movsd")).unwrap().len(), 3);
        assert!(select(Some("fp")).unwrap().iter().all(|f| f.family.is_fp()));
        for c in [
            Code::Maskmovdqu_rDI_xmm_xmm,
            Code::Pcmpestrm64_xmm_xmmm128_imm8,
            Code::Cmpxchg16b_m128,
            Code::Movq_rm64_mm,
            Code::Pblendvb_xmm_xmmm128,
        ] {
            assert!(all_forms().iter().any(|f| f.code == c), "{c:?}");
        }
    }

    #[test]
    fn filters() {
        let shl = select(Some("shl")).unwrap();
        assert!(shl.iter().all(|f| f.mnemonic() == M::Shl));
        assert_eq!(shl.len(), 12); // 4 sizes x (imm8, 1, CL)
        assert_eq!(select(Some("jcc")).unwrap().len(), 32);
        assert!(select(Some("nosuch")).is_err());
        assert!(select(Some("Shl_rm8_CL,sar")).unwrap().len() == 13);
        // Removals: from the rest, or from everything.
        let no_shl8 = select(Some("-Shl_rm8_CL,shl")).unwrap();
        assert_eq!(no_shl8.len(), 11);
        assert!(!no_shl8.iter().any(|f| f.code == Code::Shl_rm8_CL));
        assert_eq!(
            select(Some("-fp")).unwrap().len(),
            select(Some("int")).unwrap().len()
        );
        assert!(select(Some("shl,-shl")).is_err());
        assert!(select(Some("shl,-nosuch")).is_err());
        assert!(select(Some("string")).unwrap().len() == 20);
        assert!(!all_forms().iter().any(|f| matches!(
            f.code,
            Code::Pushq_FS | Code::Mov_Sreg_rm16 | Code::Jo_rel16 | Code::Call_m1664
        )));
    }
}
