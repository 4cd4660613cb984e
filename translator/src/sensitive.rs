//! The sensitive-instruction table (DESIGN.md "Sensitive instructions"), as data.
//!
//! Every instruction whose behaviour depends on or changes privileged machine state is listed
//! here with its class and the [`Hypercall`] that implements it. Semantics consult this table
//! before anything else: a listed instruction is lowered to a hypercall stub (`dbt`, `interp`)
//! or a host trap (`trap`), both of which reach the same runtime handler. Exception: PUSHF
//! and POPF run in line where the block's mode rules out virtual-8086 mode (64-bit mode or
//! CPL < 3, `semantics::eflags`), and CLI at CPL 0; their hypercalls remain for the other
//! modes.
//!
//! Hypercall contract (the stub, see `semantics::system::hypercall`):
//! - Before the call, every register and the flags are written back to `CpuState` and
//!   `rip` is the instruction's address, so the handler sees the architectural state of the
//!   instruction's start and may raise a precise exception.
//! - Arguments: `a` = [`HypercallArgs::encode`], `b` and `c` as each [`Hypercall`] documents
//!   (explicit operand values or linear addresses, computed by generated code, segment base
//!   included). The handler reads and writes implicit registers (RAX, RDX, RCX, ...) in
//!   `CpuState` directly.
//! - The return value is written to the destination operand when the entry has
//!   [`Entry::dest`]; after the call every register and the flags are reloaded from
//!   `CpuState`.
//! - A handler stops the block by setting `status`: `Exception` (state left at the
//!   instruction's start) or `Jump` (the handler completed the instruction and set `rip` and
//!   any mode change; the dispatcher continues there). Entries with [`Entry::ends_block`]
//!   leave the block after the handler returns, to where [`Hypercall::resume`] and the
//!   handler's return value say: the dispatcher, the host code the runtime found for the new
//!   `rip` and mode, or (when the mode key is unchanged and nothing waits for the
//!   dispatcher) on in the same block.

use iced_x86::{Code, Instruction, Mnemonic};

/// Why an instruction is sensitive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Faults with #GP(0) at CPL > 0.
    Privileged,
    /// Depends on IOPL or the TSS I/O bitmap (checked by the handler).
    IoSensitive,
    /// Runs at any CPL but reads or writes state the VMM virtualizes.
    Unprivileged,
}

/// What the runtime does for a sensitive instruction. Arguments `b`/`c` per variant; `-`
/// means unused (zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Hypercall {
    /// HLT. Ends the block.
    Hlt = 1,
    /// CLI.
    Cli,
    /// STI.
    Sti,
    /// IN: b = port; returns the value (operand size) for AL/AX/EAX.
    In,
    /// OUT: b = port, c = value (operand size).
    Out,
    /// INS (with any REP prefix): the handler runs the whole loop on RDI/RCX. `extra` bit 0 =
    /// REP, address size in [`HypercallArgs::addr_size`].
    Ins,
    /// OUTS (with any REP prefix): `extra` bit 0 = REP, bits 4..7 = source segment.
    Outs,
    /// PUSHF where VM86 is possible (elsewhere in line): returns the RFLAGS image to push
    /// (operand size).
    Pushf,
    /// POPF where VM86 is possible (elsewhere in line): b = the popped value; the handler
    /// applies it under the privilege rules.
    Popf,
    /// IRET/IRETD/IRETQ (operand size 2/4/8). Ends the block.
    Iret,
    /// INT n (`extra` = n), INT3 (n = 3, `extra2` bit 0 set), INTO, INT1: software
    /// interrupt delivered by the handler (INTO checks OF). Ends the block.
    Int,
    /// CPUID (EAX, ECX in; EAX, EBX, ECX, EDX out).
    Cpuid,
    /// RDTSC (EDX:EAX).
    Rdtsc,
    /// RDTSCP (EDX:EAX, ECX = TSC_AUX).
    Rdtscp,
    /// RDPMC (ECX in, EDX:EAX out).
    Rdpmc,
    /// RDMSR (ECX in, EDX:EAX out).
    Rdmsr,
    /// WRMSR (ECX, EDX:EAX in). Ends the block.
    Wrmsr,
    /// MOV CRn, r: `extra` = n, b = value. Ends the block.
    MovToCr,
    /// MOV r, CRn: `extra` = n; returns the value.
    MovFromCr,
    /// MOV DRn, r: `extra` = n, b = value.
    MovToDr,
    /// MOV r, DRn: `extra` = n; returns the value.
    MovFromDr,
    /// LGDT m: b = linear address of the pseudo-descriptor. Operand size 8 in 64-bit mode.
    Lgdt,
    /// LIDT m: as LGDT.
    Lidt,
    /// SGDT m: b = linear address; the handler stores.
    Sgdt,
    /// SIDT m: as SGDT.
    Sidt,
    /// LLDT r/m16: b = selector. Ends the block.
    Lldt,
    /// LTR r/m16: b = selector.
    Ltr,
    /// SLDT r/m: returns the selector.
    Sldt,
    /// STR r/m: returns the selector.
    Str,
    /// SMSW r/m: returns CR0's low bits.
    Smsw,
    /// LMSW r/m16: b = value. Ends the block.
    Lmsw,
    /// CLTS.
    Clts,
    /// INVD.
    Invd,
    /// WBINVD.
    Wbinvd,
    /// INVLPG m: b = linear address. Ends the block.
    Invlpg,
    /// INVPCID r, m128: b = linear address of the descriptor, c = type. Ends the block.
    Invpcid,
    /// SWAPGS.
    Swapgs,
    /// SYSCALL. Ends the block.
    Syscall,
    /// SYSRET (operand size 4 or 8). Ends the block.
    Sysret,
    /// SYSENTER. Ends the block.
    Sysenter,
    /// SYSEXIT (operand size 4 or 8). Ends the block.
    Sysexit,
    /// XSETBV (ECX, EDX:EAX).
    Xsetbv,
    /// LAR r, r/m16: b = selector, `extra` = destination GPR; the handler writes it (operand
    /// size) and ZF.
    Lar,
    /// LSL r, r/m16: as LAR.
    Lsl,
    /// VERR r/m16: b = selector; sets ZF.
    Verr,
    /// VERW r/m16: as VERR.
    Verw,
    /// MOV Sreg, r/m16 and POP Sreg: `extra` = segment (ES CS SS DS FS GS = 0..5), b =
    /// selector. Ends the block.
    LoadSeg,
    /// MOV r/m, Sreg and PUSH Sreg: `extra` = segment; returns the selector.
    ReadSeg,
    /// LDS/LES/LFS/LGS/LSS r, m16:xx: `extra` = segment, `extra2` = destination GPR, b =
    /// selector, c = offset; the handler loads the segment and writes the GPR (operand
    /// size). Ends the block.
    LoadFarPtr,
    /// JMP FAR ptr16:xx / m16:xx: b = selector, c = offset. Ends the block.
    JmpFar,
    /// CALL FAR: b = selector, c = offset; the handler pushes the return address (operand
    /// size) and follows call gates. Ends the block.
    CallFar,
    /// RETF [imm16]: `imm` = bytes to release. Ends the block.
    RetFar,
    /// CLAC/STAC (`extra` = 1 for STAC): change RFLAGS.AC (SMAP).
    SetAc,
}

impl Hypercall {
    /// Every hypercall, in numbering order.
    pub const ALL: [Hypercall; 53] = {
        use Hypercall::*;
        [
            Hlt, Cli, Sti, In, Out, Ins, Outs, Pushf, Popf, Iret, Int, Cpuid, Rdtsc, Rdtscp, Rdpmc,
            Rdmsr, Wrmsr, MovToCr, MovFromCr, MovToDr, MovFromDr, Lgdt, Lidt, Sgdt, Sidt, Lldt,
            Ltr, Sldt, Str, Smsw, Lmsw, Clts, Invd, Wbinvd, Invlpg, Invpcid, Swapgs, Syscall,
            Sysret, Sysenter, Sysexit, Xsetbv, Lar, Lsl, Verr, Verw, LoadSeg, ReadSeg, LoadFarPtr,
            JmpFar, CallFar, RetFar, SetAc,
        ]
    };

    /// The hypercall numbered `n` (as in [`HypercallArgs::kind`]).
    pub fn from_u8(n: u8) -> Option<Hypercall> {
        Hypercall::ALL.get(usize::from(n).wrapping_sub(1)).copied()
    }

    /// Stable lower-case name (statistics).
    pub fn name(self) -> &'static str {
        use Hypercall::*;
        match self {
            Hlt => "hlt",
            Cli => "cli",
            Sti => "sti",
            In => "in",
            Out => "out",
            Ins => "ins",
            Outs => "outs",
            Pushf => "pushf",
            Popf => "popf",
            Iret => "iret",
            Int => "int",
            Cpuid => "cpuid",
            Rdtsc => "rdtsc",
            Rdtscp => "rdtscp",
            Rdpmc => "rdpmc",
            Rdmsr => "rdmsr",
            Wrmsr => "wrmsr",
            MovToCr => "mov_to_cr",
            MovFromCr => "mov_from_cr",
            MovToDr => "mov_to_dr",
            MovFromDr => "mov_from_dr",
            Lgdt => "lgdt",
            Lidt => "lidt",
            Sgdt => "sgdt",
            Sidt => "sidt",
            Lldt => "lldt",
            Ltr => "ltr",
            Sldt => "sldt",
            Str => "str",
            Smsw => "smsw",
            Lmsw => "lmsw",
            Clts => "clts",
            Invd => "invd",
            Wbinvd => "wbinvd",
            Invlpg => "invlpg",
            Invpcid => "invpcid",
            Swapgs => "swapgs",
            Syscall => "syscall",
            Sysret => "sysret",
            Sysenter => "sysenter",
            Sysexit => "sysexit",
            Xsetbv => "xsetbv",
            Lar => "lar",
            Lsl => "lsl",
            Verr => "verr",
            Verw => "verw",
            LoadSeg => "load_seg",
            ReadSeg => "read_seg",
            LoadFarPtr => "load_far_ptr",
            JmpFar => "jmp_far",
            CallFar => "call_far",
            RetFar => "ret_far",
            SetAc => "set_ac",
        }
    }
}

/// How a block goes on after the hypercall of an entry that ends the block
/// ([`Entry::ends_block`]), when the handler leaves nothing for the dispatcher to do. The
/// handler's return value says which (these entries have no destination operand): 0 =
/// go on after the instruction in this block; otherwise the host code to continue at (the
/// runtime's choice for the RIP and mode the handler left: a block found in the jump cache,
/// or the exit stub, which returns to the dispatcher).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// Always back to the dispatcher (the return value is ignored).
    Dispatcher,
    /// The instruction completes in place (RIP = the next instruction); the handler returns
    /// 0 when the mode key is unchanged and nothing waits for the dispatcher.
    InBlock,
    /// The handler sets RIP and possibly the mode; the return value is never 0.
    Lookup,
}

impl Hypercall {
    /// How a block goes on after this hypercall when its entry ends the block (see
    /// [`Resume`]).
    pub fn resume(self) -> Resume {
        use Hypercall::*;
        match self {
            // POPF's hypercall form (where it does not run in line, `semantics::eflags`):
            // the runtime leaves when TF or IF changed in a way the run loop must see.
            Sti | Popf | Invlpg | Wrmsr | MovToCr => Resume::InBlock,
            Iret | Int | Syscall | Sysret | Sysenter | Sysexit => Resume::Lookup,
            _ => Resume::Dispatcher,
        }
    }
}

/// The packed first argument of every hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HypercallArgs {
    pub kind: Hypercall,
    /// Instruction length in bytes (the handler's next RIP is `rip + len`).
    pub len: u8,
    /// Operand size in bytes (1, 2, 4 or 8).
    pub op_size: u8,
    /// Address size in bytes (2, 4 or 8).
    pub addr_size: u8,
    /// Per-kind small operand (CR/DR number, vector, segment, register number, flags).
    pub extra: u8,
    /// Per-kind second small operand.
    pub extra2: u8,
    /// Per-kind 16-bit immediate (RETF's release count).
    pub imm: u16,
}

impl HypercallArgs {
    /// Pack: kind | len << 8 | log2(op) << 16 | log2(addr) << 20 | extra << 24 | extra2 <<
    /// 32 | imm << 40.
    pub fn encode(self) -> u64 {
        u64::from(self.kind as u8)
            | u64::from(self.len & 0xF) << 8
            | u64::from(self.op_size.max(1).trailing_zeros() & 0xF) << 16
            | u64::from(self.addr_size.max(1).trailing_zeros() & 0xF) << 20
            | u64::from(self.extra) << 24
            | u64::from(self.extra2) << 32
            | u64::from(self.imm) << 40
    }

    /// Unpack; `None` for an unknown kind (never produced by the translator).
    pub fn decode(a: u64) -> Option<HypercallArgs> {
        Some(HypercallArgs {
            kind: Hypercall::from_u8(a as u8)?,
            len: (a >> 8) as u8 & 0xF,
            op_size: 1 << ((a >> 16) as u8 & 0x3),
            addr_size: 1 << ((a >> 20) as u8 & 0x3),
            extra: (a >> 24) as u8,
            extra2: (a >> 32) as u8,
            imm: (a >> 40) as u16,
        })
    }
}

/// One row of the table.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    pub mnemonic: Mnemonic,
    pub class: Class,
    pub call: Hypercall,
    /// The handler's return value goes to operand 0.
    pub dest: bool,
    /// The block always ends after the instruction (control flow or mode may change).
    pub ends_block: bool,
}

const fn row(
    mnemonic: Mnemonic,
    class: Class,
    call: Hypercall,
    dest: bool,
    ends_block: bool,
) -> Entry {
    Entry {
        mnemonic,
        class,
        call,
        dest,
        ends_block,
    }
}

use Class::{IoSensitive as Io, Privileged as Priv, Unprivileged as Unpriv};
use Hypercall as H;

/// The table, by mnemonic. Forms that share a mnemonic but differ in meaning (MOV to/from
/// CR, DR and segment registers; PUSH/POP of segment registers; far JMP/CALL) are
/// refined by [`lookup`].
pub static TABLE: &[Entry] = &[
    // privileged (#GP(0) at CPL > 0)
    row(Mnemonic::Hlt, Priv, H::Hlt, false, true),
    row(Mnemonic::Lgdt, Priv, H::Lgdt, false, false),
    row(Mnemonic::Lidt, Priv, H::Lidt, false, false),
    row(Mnemonic::Lldt, Priv, H::Lldt, false, true),
    row(Mnemonic::Ltr, Priv, H::Ltr, false, false),
    row(Mnemonic::Lmsw, Priv, H::Lmsw, false, true),
    row(Mnemonic::Clts, Priv, H::Clts, false, true),
    row(Mnemonic::Invd, Priv, H::Invd, false, false),
    row(Mnemonic::Wbinvd, Priv, H::Wbinvd, false, false),
    row(Mnemonic::Invlpg, Priv, H::Invlpg, false, true),
    row(Mnemonic::Invpcid, Priv, H::Invpcid, false, true),
    row(Mnemonic::Rdmsr, Priv, H::Rdmsr, false, false),
    row(Mnemonic::Wrmsr, Priv, H::Wrmsr, false, true),
    row(Mnemonic::Swapgs, Priv, H::Swapgs, false, false),
    row(Mnemonic::Sysret, Priv, H::Sysret, false, true),
    row(Mnemonic::Sysexit, Priv, H::Sysexit, false, true),
    row(Mnemonic::Sysretq, Priv, H::Sysret, false, true),
    row(Mnemonic::Sysexitq, Priv, H::Sysexit, false, true),
    row(Mnemonic::Xsetbv, Priv, H::Xsetbv, false, false),
    // MOV CRn/DRn: refined by operand in `lookup`.
    row(Mnemonic::Mov, Priv, H::MovToCr, false, true),
    // IOPL- or bitmap-sensitive
    row(Mnemonic::Cli, Io, H::Cli, false, false),
    row(Mnemonic::Sti, Io, H::Sti, false, true),
    row(Mnemonic::In, Io, H::In, true, false),
    row(Mnemonic::Out, Io, H::Out, false, false),
    row(Mnemonic::Insb, Io, H::Ins, false, true),
    row(Mnemonic::Insw, Io, H::Ins, false, true),
    row(Mnemonic::Insd, Io, H::Ins, false, true),
    row(Mnemonic::Outsb, Io, H::Outs, false, true),
    row(Mnemonic::Outsw, Io, H::Outs, false, true),
    row(Mnemonic::Outsd, Io, H::Outs, false, true),
    row(Mnemonic::Popf, Io, H::Popf, false, true),
    row(Mnemonic::Popfd, Io, H::Popf, false, true),
    row(Mnemonic::Popfq, Io, H::Popf, false, true),
    row(Mnemonic::Iret, Io, H::Iret, false, true),
    row(Mnemonic::Iretd, Io, H::Iret, false, true),
    row(Mnemonic::Iretq, Io, H::Iret, false, true),
    // sensitive but unprivileged
    row(Mnemonic::Sgdt, Unpriv, H::Sgdt, false, false),
    row(Mnemonic::Sidt, Unpriv, H::Sidt, false, false),
    row(Mnemonic::Sldt, Unpriv, H::Sldt, true, false),
    row(Mnemonic::Str, Unpriv, H::Str, true, false),
    row(Mnemonic::Smsw, Unpriv, H::Smsw, true, false),
    row(Mnemonic::Pushf, Unpriv, H::Pushf, false, false),
    row(Mnemonic::Pushfd, Unpriv, H::Pushf, false, false),
    row(Mnemonic::Pushfq, Unpriv, H::Pushf, false, false),
    row(Mnemonic::Lar, Unpriv, H::Lar, false, false),
    row(Mnemonic::Lsl, Unpriv, H::Lsl, false, false),
    row(Mnemonic::Verr, Unpriv, H::Verr, false, false),
    row(Mnemonic::Verw, Unpriv, H::Verw, false, false),
    row(Mnemonic::Push, Unpriv, H::ReadSeg, false, false),
    row(Mnemonic::Pop, Unpriv, H::LoadSeg, false, true),
    row(Mnemonic::Lds, Unpriv, H::LoadFarPtr, false, true),
    row(Mnemonic::Les, Unpriv, H::LoadFarPtr, false, true),
    row(Mnemonic::Lfs, Unpriv, H::LoadFarPtr, false, true),
    row(Mnemonic::Lgs, Unpriv, H::LoadFarPtr, false, true),
    row(Mnemonic::Lss, Unpriv, H::LoadFarPtr, false, true),
    row(Mnemonic::Jmp, Unpriv, H::JmpFar, false, true),
    row(Mnemonic::Call, Unpriv, H::CallFar, false, true),
    row(Mnemonic::Retf, Unpriv, H::RetFar, false, true),
    row(Mnemonic::Int, Unpriv, H::Int, false, true),
    row(Mnemonic::Int3, Unpriv, H::Int, false, true),
    row(Mnemonic::Into, Unpriv, H::Int, false, true),
    row(Mnemonic::Int1, Unpriv, H::Int, false, true),
    row(Mnemonic::Syscall, Unpriv, H::Syscall, false, true),
    row(Mnemonic::Sysenter, Unpriv, H::Sysenter, false, true),
    row(Mnemonic::Cpuid, Unpriv, H::Cpuid, false, false),
    row(Mnemonic::Rdtsc, Unpriv, H::Rdtsc, false, false),
    row(Mnemonic::Rdtscp, Unpriv, H::Rdtscp, false, false),
    row(Mnemonic::Rdpmc, Unpriv, H::Rdpmc, false, false),
    row(Mnemonic::Clac, Unpriv, H::SetAc, false, false),
    row(Mnemonic::Stac, Unpriv, H::SetAc, false, false),
];

/// The table entry for `insn`, if it is sensitive. MOV, PUSH, POP, JMP and CALL are
/// sensitive only in their control-register, debug-register, segment-register and far forms.
pub fn lookup(insn: &Instruction) -> Option<Entry> {
    let m = insn.mnemonic();
    let e = *TABLE.iter().find(|e| e.mnemonic == m)?;
    let refined = match m {
        Mnemonic::Mov => {
            let (d, s) = (insn.op0_register(), insn.op1_register());
            let to_seg = insn.op0_kind() == iced_x86::OpKind::Register && d.is_segment_register();
            let from_seg = insn.op_count() == 2
                && insn.op1_kind() == iced_x86::OpKind::Register
                && s.is_segment_register();
            if d.is_cr() {
                e
            } else if s.is_cr() {
                row(m, Priv, H::MovFromCr, true, false)
            } else if d.is_dr() {
                // Ends the block: new breakpoints or enables apply from the next instruction,
                // which the run loop must then see (runtime `engine::debug`).
                row(m, Priv, H::MovToDr, false, true)
            } else if s.is_dr() {
                row(m, Priv, H::MovFromDr, true, false)
            } else if to_seg {
                row(m, Unpriv, H::LoadSeg, false, true)
            } else if from_seg {
                row(m, Unpriv, H::ReadSeg, true, false)
            } else {
                return None;
            }
        }
        Mnemonic::Push | Mnemonic::Pop => {
            let r = insn.op0_register();
            if insn.op0_kind() != iced_x86::OpKind::Register || !r.is_segment_register() {
                return None;
            }
            e
        }
        Mnemonic::Jmp | Mnemonic::Call => {
            let far = matches!(
                insn.op0_kind(),
                iced_x86::OpKind::FarBranch16 | iced_x86::OpKind::FarBranch32
            ) || is_far_indirect(insn.code());
            if !far {
                return None;
            }
            e
        }
        Mnemonic::Int3 | Mnemonic::Into | Mnemonic::Int1 | Mnemonic::Int => e,
        _ => e,
    };
    Some(refined)
}

/// Whether `code` is an indirect far JMP or CALL (m16:16/32/64).
fn is_far_indirect(code: Code) -> bool {
    matches!(
        code,
        Code::Jmp_m1616
            | Code::Jmp_m1632
            | Code::Jmp_m1664
            | Code::Call_m1616
            | Code::Call_m1632
            | Code::Call_m1664
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions};

    fn decode(bitness: u32, bytes: &[u8]) -> Instruction {
        Decoder::with_ip(bitness, bytes, 0x1000, DecoderOptions::NONE).decode()
    }

    #[test]
    fn args_round_trip() {
        for &kind in &Hypercall::ALL {
            let a = HypercallArgs {
                kind,
                len: 15,
                op_size: 8,
                addr_size: 4,
                extra: 0xAB,
                extra2: 0xCD,
                imm: 0xFFFE,
            };
            assert_eq!(HypercallArgs::decode(a.encode()), Some(a));
        }
        assert_eq!(HypercallArgs::decode(0), None);
        assert_eq!(HypercallArgs::decode(200), None);
    }

    #[test]
    fn numbering_matches_all() {
        for (i, &h) in Hypercall::ALL.iter().enumerate() {
            assert_eq!(h as usize, i + 1, "{h:?}");
            assert_eq!(Hypercall::from_u8(h as u8), Some(h));
        }
    }

    #[test]
    fn refines_mov_push_pop_and_far_branches() {
        let call = |b: u32, bytes: &[u8]| lookup(&decode(b, bytes)).map(|e| e.call);
        assert_eq!(call(64, &[0x0F, 0x22, 0xD8]), Some(H::MovToCr)); // mov cr3, rax
        assert_eq!(call(64, &[0x0F, 0x20, 0xC0]), Some(H::MovFromCr)); // mov rax, cr0
        assert_eq!(call(64, &[0x0F, 0x23, 0xC0]), Some(H::MovToDr)); // mov dr0, rax
        assert_eq!(call(64, &[0x8E, 0xD8]), Some(H::LoadSeg)); // mov ds, ax
        assert_eq!(call(64, &[0x8C, 0xC8]), Some(H::ReadSeg)); // mov eax, cs
        assert_eq!(call(64, &[0x89, 0xC8]), None); // mov eax, ecx
        assert_eq!(call(32, &[0x1E]), Some(H::ReadSeg)); // push ds
        assert_eq!(call(32, &[0x1F]), Some(H::LoadSeg)); // pop ds
        assert_eq!(call(64, &[0x50]), None); // push rax
        assert_eq!(call(32, &[0xEA, 0, 0, 0, 0, 8, 0]), Some(H::JmpFar)); // jmp 8:0
        assert_eq!(call(64, &[0xFF, 0x28]), Some(H::JmpFar)); // jmp far [rax]
        assert_eq!(call(64, &[0xEB, 0xFE]), None); // jmp short
        assert_eq!(call(64, &[0xFF, 0x18]), Some(H::CallFar)); // call far [rax]
        assert_eq!(call(64, &[0xCC]), Some(H::Int));
        assert_eq!(call(64, &[0xF4]), Some(H::Hlt));
    }

    #[test]
    fn every_listed_mnemonic_is_a_sensitive_instruction_of_design_md() {
        // The privileged ones are exactly those that fault at CPL > 0 unconditionally.
        for e in TABLE.iter().filter(|e| e.class == Priv) {
            assert!(
                !matches!(e.call, H::Rdtsc | H::Rdpmc | H::Cpuid),
                "{:?}",
                e.mnemonic
            );
        }
    }
}
