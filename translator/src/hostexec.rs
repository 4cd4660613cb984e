//! Host stubs: a guest x87, MMX or SSE instruction re-encoded so the host CPU runs it on
//! operands in [`crate::state::HostFrame`].
//!
//! popek runs on the ISA it emulates, so for the floating-point and vector instructions the
//! host CPU is both the reference and the cheapest exact implementation: NaN payloads,
//! denormals, the x87's 80-bit arithmetic under its precision and rounding control, the
//! transcendentals, the undefined-but-deterministic outputs are the hardware's by
//! construction. A stub is a small host function `extern "C" fn(frame: *mut HostFrame)`:
//!
//! ```text
//! save the registers it uses        (it preserves every register: callers use
//!                                     Cranelift's `preserve_all` convention)
//! [fnstsw ax; test al, 0x80; jnz bail]  (waiting x87/MMX: a pending exception → status = 1)
//! load its XMM and general registers from the frame   [push frame.rflags; popfq]
//! <the guest instruction, re-encoded>
//! [pushfq; pop frame.rflags]        store what it wrote; restore the saved registers; ret
//! ```
//!
//! Re-encoding: explicit XMM operands become XMM1 and XMM2 (in operand order; XMM0 stays for
//! the implicit operand of BLENDV*/PCMPxSTRM), explicit general registers become R8 and R9
//! of the same width (a high-byte register's value is passed shifted down), the memory
//! operand becomes `[rdi + frame::MEM]` (MASKMOVQ/MASKMOVDQU's implicit `[rdi]` becomes the
//! same bytes, RDI pointing there around the instruction; the semantics read and write back
//! all 8/16 bytes), and MMX and x87 stack registers keep their numbers: those instructions
//! operate on the guest's x87/MMX state loaded in the host FPU.
//!
//! Invariants (what makes running guest-chosen instructions on the host safe):
//! - Only legacy-encoded instructions whose every CPUID feature is x87, MMX or SSE..SSE4.2
//!   and that do not transfer control are accepted; the stub is built from the instruction's
//!   `Code` and our own operands, so a guest controls only the opcode and immediates.
//! - A stub changes nothing but the frame, RFLAGS, MXCSR's flags and the x87/MMX state: the
//!   registers it uses (of XMM0..2, RAX, RCX, RDX, R8, R9) are saved on the stack and
//!   restored, so it can be called as a `preserve_all` function (or as System V).
//! - The guest's memory operand never reaches the host instruction: the semantics copy its
//!   bytes into the frame (after translating the guest address) and back.

use iced_x86::code_asm::{
    al, ax, qword_ptr, r8, r9, rax, rcx, rdi, rdx, rsp, xmm0, xmm1, xmm2, xmmword_ptr,
    CodeAssembler,
};
use iced_x86::{
    CpuidFeature, EncodingKind, FlowControl, Instruction, InstructionInfoFactory, Mnemonic,
    OpAccess, OpKind, Register,
};

use crate::state::frame;

mod runs;

pub use runs::{flag_x87, fusable, fusable_first, plan_run, plan_span, writes_rflags};

/// The machine code of one stub (position independent, ends with `ret`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostStub {
    pub code: Vec<u8>,
}

/// How a stub is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StubCall {
    /// An SSE instruction while every SIMD exception is masked: a plain call, no fault.
    Direct,
    /// An SSE instruction while MXCSR unmasks an exception: through the runtime, which runs
    /// it with exceptions masked and raises #XM (or #UD, CR4.OSXMMEXCPT clear) where the
    /// hardware would, leaving the destination unwritten.
    Checked,
    /// An x87 or MMX instruction: through the runtime, which makes the guest's x87 state live
    /// in the host FPU first and raises #MF for a pending unmasked x87 exception if the
    /// instruction waits.
    Fpu(FpuInfo),
}

/// What the runtime needs to know about an x87/MMX instruction (packed into one helper
/// argument by [`FpuInfo::bits`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FpuInfo {
    /// Checks for a pending unmasked x87 exception first (everything but the FN* forms).
    pub waiting: bool,
    /// Only the pending-exception check (#MF, or FERR#) and making the x87 state live, no
    /// stub: made before the operand checks of an instruction whose operand can fault with
    /// #GP first (a misaligned m128), and before a checked SSE run on MMX registers.
    pub check_only: bool,
    /// The stub has no pending-exception check of its own (the block's mode is
    /// [`crate::fp_mode::X87_MASKED`]): called directly, its status need not be read.
    pub unchecked: bool,
}

impl FpuInfo {
    /// The helper-argument encoding.
    pub const fn bits(self) -> u64 {
        self.waiting as u64 | (self.check_only as u64) << 2 | (self.unchecked as u64) << 3
    }
    /// Inverse of [`FpuInfo::bits`].
    pub const fn from_bits(b: u64) -> FpuInfo {
        FpuInfo {
            waiting: b & 1 != 0,
            check_only: b & 4 != 0,
            unchecked: b & 8 != 0,
        }
    }
}

/// Read/write use of an operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rw {
    pub read: bool,
    pub write: bool,
}

impl Rw {
    const NONE: Rw = Rw {
        read: false,
        write: false,
    };

    fn of(a: OpAccess) -> Rw {
        use OpAccess as A;
        Rw {
            read: matches!(
                a,
                A::Read | A::CondRead | A::ReadWrite | A::ReadCondWrite | A::CondWrite
            ),
            write: matches!(a, A::Write | A::CondWrite | A::ReadWrite | A::ReadCondWrite),
        }
    }
    fn merge(self, o: Rw) -> Rw {
        Rw {
            read: self.read || o.read,
            write: self.write || o.write,
        }
    }
}

/// A guest XMM register handed to the stub in frame slot `slot`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XmmUse {
    pub slot: usize,
    pub reg: usize,
    pub rw: Rw,
}

/// A guest general register handed to the stub in `frame.gpr[slot]` (0..2: RAX, RCX, RDX
/// themselves; 3, 4: R8, R9 standing for an explicit operand).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GprUse {
    pub slot: usize,
    /// The guest register as the instruction names it (its width matters).
    pub reg: Register,
    pub rw: Rw,
}

/// Everything the semantics need to run one guest instruction through a stub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub stub: HostStub,
    pub xmm: Vec<XmmUse>,
    pub gpr: Vec<GprUse>,
    /// The memory operand: its size in bytes and use.
    pub mem: Option<(u32, Rw)>,
    /// The instruction reads RFLAGS (FCMOVcc).
    pub flags_read: bool,
    /// RFLAGS bits the instruction writes (including ones it leaves undefined).
    pub flags_written: u32,
    /// An x87 or MMX instruction (the host FPU state is involved).
    pub fpu: bool,
    /// An x87/MMX instruction that checks for a pending exception: its stub begins by
    /// testing FSW.ES and, if set, does nothing but set `HostFrame::status`.
    pub waiting: bool,
}

/// Why an instruction cannot be host-executed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// not an x87, MMX or SSE instruction this module accepts
    #[error("not a host-executable floating-point or vector instruction")]
    NotAccepted,
    /// the instruction has an operand the frame cannot carry
    #[error("an operand the host frame cannot carry")]
    Operand,
    /// the re-encoded instruction did not assemble
    #[error("re-encoding failed: {0}")]
    Encode(String),
}

fn accepted(insn: &Instruction) -> bool {
    use CpuidFeature as F;
    if insn.encoding() != EncodingKind::Legacy || insn.flow_control() != FlowControl::Next {
        return false;
    }
    // WAIT/FWAIT is an 8086 instruction by CPUID, but it is the x87's.
    if insn.mnemonic() == Mnemonic::Wait {
        return true;
    }
    let feats = insn.cpuid_features();
    !feats.is_empty()
        && feats.iter().all(|f| {
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
                    | F::POPCNT
            )
        })
}

/// Whether `r` is an x87 stack or MMX register (kept as-is in the stub).
fn is_fpu_reg(r: Register) -> bool {
    r.is_st() || r.is_mm()
}

/// Whether an instruction involves the x87/MMX state.
pub fn uses_fpu(insn: &Instruction) -> bool {
    use CpuidFeature as F;
    if insn.mnemonic() == Mnemonic::Wait {
        return true;
    }
    let f = insn.cpuid_features();
    f.iter().any(|f| {
        matches!(
            f,
            F::FPU | F::FPU287 | F::FPU387 | F::FPU387SL_ONLY | F::MMX
        )
    }) || (0..insn.op_count())
        .any(|i| insn.op_kind(i) == OpKind::Register && is_fpu_reg(insn.op_register(i)))
}

/// Whether operand `i` is a register the opcode fixes, which a stub cannot rename: among the
/// accepted instructions only FNSTSW/FSTSW AX has one.
fn fixed_register(insn: &Instruction, i: u32) -> bool {
    matches!(insn.mnemonic(), Mnemonic::Fnstsw | Mnemonic::Fstsw)
        && insn.op_register(i) == Register::AX
}

/// The register of the same width as `r` among R8's or R9's family.
fn renamed_gpr(r: Register, slot: usize) -> Register {
    let fam = if slot == 3 {
        [Register::R8L, Register::R8W, Register::R8D, Register::R8]
    } else {
        [Register::R9L, Register::R9W, Register::R9D, Register::R9]
    };
    match r.size() {
        1 => fam[0],
        2 => fam[1],
        4 => fam[2],
        _ => fam[3],
    }
}

/// Plan the host execution of `insn`.
pub fn plan(insn: &Instruction) -> Result<Plan, PlanError> {
    plan_with(insn, true)
}

/// [`plan`]; with `checked` false, a waiting x87/MMX instruction's stub does not check for
/// a pending exception (the block's mode says none can be, [`crate::fp_mode::X87_MASKED`])
/// and sets `HostFrame::status` to 0.
pub fn plan_with(insn: &Instruction, checked: bool) -> Result<Plan, PlanError> {
    if !accepted(insn) {
        return Err(PlanError::NotAccepted);
    }
    let mut info = InstructionInfoFactory::new();
    let info = info.info(insn);
    let mut re = *insn;
    re.set_ip(0);
    re.set_has_lock_prefix(false);
    re.set_has_repe_prefix(false);
    re.set_has_repne_prefix(false);
    re.set_segment_prefix(Register::None);
    let mut xmm: Vec<XmmUse> = Vec::new();
    let mut gpr: Vec<GprUse> = Vec::new();
    let mut mem = None;
    let mut next_xmm = 1;
    let mut next_gpr = 3;
    for i in 0..insn.op_count() {
        let rw = Rw::of(info.op_access(i));
        match insn.op_kind(i) {
            OpKind::Register => {
                let r = insn.op_register(i);
                if r.is_xmm() {
                    // An explicit XMM0 in the third position is BLENDV's implicit mask.
                    let slot = if r == Register::XMM0 && i == 2 {
                        0
                    } else {
                        let s = next_xmm;
                        next_xmm += 1;
                        s
                    };
                    if slot > 2 {
                        return Err(PlanError::Operand);
                    }
                    let new = [Register::XMM0, Register::XMM1, Register::XMM2][slot];
                    re.set_op_register(i, new);
                    xmm.push(XmmUse {
                        slot,
                        reg: r.number(),
                        rw,
                    });
                } else if r.is_gpr() && fixed_register(insn, i) {
                    // An operand the encoding fixes (FNSTSW AX): it stays, as an implicit one.
                    let slot = match r.full_register() {
                        Register::RAX => 0,
                        Register::RCX => 1,
                        Register::RDX => 2,
                        _ => return Err(PlanError::Operand),
                    };
                    gpr.push(GprUse { slot, reg: r, rw });
                } else if r.is_gpr() {
                    if next_gpr > 4 {
                        return Err(PlanError::Operand);
                    }
                    re.set_op_register(i, renamed_gpr(r, next_gpr));
                    gpr.push(GprUse {
                        slot: next_gpr,
                        reg: r,
                        rw,
                    });
                    next_gpr += 1;
                } else if !is_fpu_reg(r) {
                    return Err(PlanError::Operand);
                }
            }
            OpKind::Memory => {
                let bytes = insn.memory_size().size() as u32;
                if bytes == 0 || bytes as usize > std::mem::size_of::<[u8; 512]>() {
                    return Err(PlanError::Operand);
                }
                re.set_memory_base(Register::RDI);
                re.set_memory_index(Register::None);
                re.set_memory_index_scale(1);
                re.set_memory_displacement64(u64::from(frame::MEM));
                re.set_memory_displ_size(1);
                mem = Some((bytes, rw));
            }
            // MASKMOVQ/MASKMOVDQU's [rDI]: read and written back whole (the bytes the mask
            // leaves out are rewritten with their own values).
            OpKind::MemorySegRDI | OpKind::MemorySegEDI => {
                re.set_op_kind(i, OpKind::MemorySegRDI);
                let bytes = insn.memory_size().size() as u32;
                mem = Some((
                    bytes,
                    Rw {
                        read: true,
                        write: true,
                    },
                ));
            }
            OpKind::Immediate8
            | OpKind::Immediate8_2nd
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64 => {}
            _ => return Err(PlanError::Operand),
        }
    }
    // The implicit XMM0 of the variable blends (read) and PCMPxSTRM (written): iced lists a
    // register once even when it is also an explicit operand, so these come from the
    // mnemonic.
    let implicit_xmm0 = match insn.mnemonic() {
        Mnemonic::Blendvps | Mnemonic::Blendvpd | Mnemonic::Pblendvb => Some(Rw {
            read: true,
            write: false,
        }),
        Mnemonic::Pcmpestrm | Mnemonic::Pcmpistrm | Mnemonic::Pcmpestrm64 => Some(Rw {
            read: false,
            write: true,
        }),
        _ => None,
    };
    if let Some(rw) = implicit_xmm0 {
        match xmm.iter_mut().find(|x| x.slot == 0) {
            Some(x) => x.rw = x.rw.merge(rw),
            None => xmm.push(XmmUse {
                slot: 0,
                reg: 0,
                rw,
            }),
        }
    }
    // Implicit general registers: RAX/RCX/RDX (PCMPESTRx).
    for u in info.used_registers() {
        let r = u.register();
        // A 32-bit register operand is also reported as its 64-bit register (written by the
        // zero extension).
        let explicit = (0..insn.op_count()).any(|i| {
            insn.op_kind(i) == OpKind::Register
                && insn.op_register(i).full_register() == r.full_register()
        });
        if explicit && r.is_gpr() {
            continue;
        }
        let rw = Rw::of(u.access());
        if r.is_segment_register() {
            continue;
        }
        if r.is_xmm() {
            // Explicit XMM operands are renamed above; the implicit XMM0 is the mnemonic's.
            continue;
        } else if r.is_gpr() {
            let slot = match r.full_register() {
                Register::RAX => 0,
                Register::RCX => 1,
                Register::RDX => 2,
                // The memory operand's address registers: the semantics compute the address.
                _ if r == insn.memory_base() || r == insn.memory_index() => continue,
                Register::RDI if implicit_rdi(insn) => continue,
                _ => return Err(PlanError::Operand),
            };
            gpr.push(GprUse { slot, reg: r, rw });
        } else if !(is_fpu_reg(r) || r.is_xmm()) {
            return Err(PlanError::Operand);
        }
    }
    let fpu = uses_fpu(insn);
    let waiting = fpu && waits(insn);
    let uses = Uses {
        xmm: std::array::from_fn(|slot| {
            xmm.iter()
                .filter(|x| x.slot == slot)
                .fold(Rw::NONE, |a, x| a.merge(x.rw))
        }),
        gpr: std::array::from_fn(|slot| {
            gpr.iter()
                .filter(|g| g.slot == slot)
                .fold(Rw::NONE, |a, g| a.merge(g.rw))
        }),
        flags_in: insn.rflags_read() != 0,
        flags_out: insn.rflags_modified() != 0,
        es_check: waiting && checked,
        clear_status: waiting && !checked,
        rdi_mem: implicit_rdi(insn),
    };
    let code = assemble(&re, &uses).map_err(PlanError::Encode)?;
    Ok(Plan {
        stub: HostStub { code },
        xmm,
        gpr,
        mem,
        flags_read: insn.rflags_read() != 0,
        flags_written: insn.rflags_modified(),
        fpu,
        waiting,
    })
}

/// Whether an x87/MMX instruction checks for a pending unmasked x87 exception first (all
/// but the FN* control forms).
pub fn waits(insn: &Instruction) -> bool {
    !matches!(
        insn.mnemonic(),
        Mnemonic::Fninit
            | Mnemonic::Fnclex
            | Mnemonic::Fnstcw
            | Mnemonic::Fnstsw
            | Mnemonic::Fnstenv
            | Mnemonic::Fnsave
            | Mnemonic::Fneni
            | Mnemonic::Fndisi
            | Mnemonic::Fnsetpm
    )
}

/// What a stub moves between the frame and the registers.
struct Uses {
    xmm: [Rw; 3],
    gpr: [Rw; 5],
    flags_in: bool,
    flags_out: bool,
    /// Begin with the pending-exception check of a waiting x87/MMX instruction.
    es_check: bool,
    /// Set `HostFrame::status` to 0 without the check.
    clear_status: bool,
    /// The memory operand is the implicit `[rdi]` (MASKMOVQ/MASKMOVDQU).
    rdi_mem: bool,
}

/// Whether the instruction's memory operand is the implicit `[rDI]` (MASKMOVQ/MASKMOVDQU).
pub fn implicit_rdi(insn: &Instruction) -> bool {
    (0..insn.op_count())
        .any(|i| matches!(insn.op_kind(i), OpKind::MemorySegRDI | OpKind::MemorySegEDI))
}

fn assemble(insn: &Instruction, u: &Uses) -> Result<Vec<u8>, String> {
    let e = |e: iced_x86::IcedError| e.to_string();
    let mut a = CodeAssembler::new(64).map_err(e)?;
    let x = [xmm0, xmm1, xmm2];
    let g = [rax, rcx, rdx, r8, r9];
    let xmm_used: Vec<usize> = (0..3)
        .filter(|&i| u.xmm[i].read || u.xmm[i].write)
        .collect();
    // RAX also carries the pending-exception check's status word.
    let gpr_used: Vec<usize> = (0..5)
        .filter(|&i| u.gpr[i].read || u.gpr[i].write || (i == 0 && u.es_check))
        .collect();
    // Every register the stub changes is saved and restored: generated code calls stubs
    // with Cranelift's `preserve_all` convention, so nothing live is spilled around them.
    for &i in &gpr_used {
        a.push(g[i]).map_err(e)?;
    }
    if !xmm_used.is_empty() {
        a.sub(rsp, 16 * xmm_used.len() as i32).map_err(e)?;
        for (k, &i) in xmm_used.iter().enumerate() {
            a.movdqu(xmmword_ptr(rsp + 16 * k as u32), x[i])
                .map_err(e)?;
        }
    }
    let mut done = a.create_label();
    if u.es_check {
        // FSW.ES set: an unmasked exception is pending; the instruction must not run on the
        // host (it would trap). Report it in `status` and let the runtime decide.
        let mut go = a.create_label();
        a.fnstsw(ax).map_err(e)?;
        a.test(al, 0x80).map_err(e)?;
        a.jz(go).map_err(e)?;
        a.mov(qword_ptr(rdi + frame::STATUS), 1).map_err(e)?;
        a.jmp(done).map_err(e)?;
        a.set_label(&mut go).map_err(e)?;
        a.mov(qword_ptr(rdi + frame::STATUS), 0).map_err(e)?;
    } else if u.clear_status {
        a.mov(qword_ptr(rdi + frame::STATUS), 0).map_err(e)?;
    }
    for &i in &xmm_used {
        // A register that is only written still gets its old value: a stub never leaves an
        // output undefined.
        a.movdqu(x[i], xmmword_ptr(rdi + (frame::XMM + 16 * i as u32)))
            .map_err(e)?;
    }
    for (i, r) in g.iter().enumerate() {
        if u.gpr[i].read || u.gpr[i].write {
            a.mov(*r, qword_ptr(rdi + (frame::GPR + 8 * i as u32)))
                .map_err(e)?;
        }
    }
    if u.flags_in {
        a.push(qword_ptr(rdi + frame::RFLAGS)).map_err(e)?;
        a.popfq().map_err(e)?;
    }
    if u.rdi_mem {
        a.lea(rdi, qword_ptr(rdi + frame::MEM)).map_err(e)?;
    }
    a.add_instruction(*insn).map_err(e)?;
    if u.rdi_mem {
        a.lea(rdi, qword_ptr(rdi - frame::MEM)).map_err(e)?;
    }
    if u.flags_out {
        a.pushfq().map_err(e)?;
        a.pop(qword_ptr(rdi + frame::RFLAGS)).map_err(e)?;
    }
    for (i, r) in g.iter().enumerate() {
        if u.gpr[i].write {
            a.mov(qword_ptr(rdi + (frame::GPR + 8 * i as u32)), *r)
                .map_err(e)?;
        }
    }
    for &i in &xmm_used {
        if u.xmm[i].write {
            a.movdqu(xmmword_ptr(rdi + (frame::XMM + 16 * i as u32)), x[i])
                .map_err(e)?;
        }
    }
    a.set_label(&mut done).map_err(e)?;
    if !xmm_used.is_empty() {
        for (k, &i) in xmm_used.iter().enumerate() {
            a.movdqu(x[i], xmmword_ptr(rsp + 16 * k as u32))
                .map_err(e)?;
        }
        a.add(rsp, 16 * xmm_used.len() as i32).map_err(e)?;
    }
    for &i in gpr_used.iter().rev() {
        a.pop(g[i]).map_err(e)?;
    }
    a.ret().map_err(e)?;
    a.assemble(0).map_err(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions};

    fn decode(bytes: &[u8]) -> Instruction {
        Decoder::with_ip(64, bytes, 0x1000, DecoderOptions::NONE).decode()
    }

    /// The re-encoded guest instruction inside the stub, found by its mnemonic.
    fn middle(p: &Plan, m: Mnemonic) -> Instruction {
        let mut d = Decoder::with_ip(64, &p.stub.code, 0, DecoderOptions::NONE);
        (&mut d)
            .into_iter()
            .find(|i| i.mnemonic() == m)
            .expect("the guest instruction")
    }

    #[test]
    fn xmm_and_memory_operands_are_renamed() {
        // addps xmm3, [rax+rbx*4+0x10]
        let p = plan(&decode(&[0x0F, 0x58, 0x5C, 0x98, 0x10])).unwrap();
        assert_eq!(
            p.xmm,
            vec![XmmUse {
                slot: 1,
                reg: 3,
                rw: Rw {
                    read: true,
                    write: true
                }
            }]
        );
        assert_eq!(p.mem.map(|m| m.0), Some(16));
        let m = middle(&p, Mnemonic::Addps);
        assert_eq!(m.op0_register(), Register::XMM1);
        assert_eq!(m.memory_base(), Register::RDI);
        assert_eq!(m.memory_displacement64(), u64::from(frame::MEM));
        assert!(!p.fpu);
    }

    #[test]
    fn gprs_go_to_r8_and_implicit_ones_stay() {
        // pcmpestri xmm1, xmm2, 0x0c: implicit EAX, EDX read, ECX written.
        let p = plan(&decode(&[0x66, 0x0F, 0x3A, 0x61, 0xCA, 0x0C])).unwrap();
        let slots: Vec<usize> = p.gpr.iter().map(|g| g.slot).collect();
        assert!(slots.contains(&0) && slots.contains(&1) && slots.contains(&2));
        assert_ne!(p.flags_written, 0);
        // cvttsd2si eax, xmm5
        let p = plan(&decode(&[0xF2, 0x0F, 0x2C, 0xC5])).unwrap();
        assert_eq!(
            middle(&p, Mnemonic::Cvttsd2si).op0_register(),
            Register::R8D
        );
        assert_eq!(p.gpr[0].reg, Register::EAX);
    }

    #[test]
    fn implicit_xmm0_even_when_also_explicit() {
        // pcmpistrm xmm0, xmm1, 0x40: reads XMM0 as operand 1, writes XMM0 implicitly.
        let p = plan(&decode(&[0x66, 0x0F, 0x3A, 0x62, 0xC1, 0x40])).unwrap();
        assert!(p
            .xmm
            .iter()
            .any(|x| x.slot == 0 && x.reg == 0 && x.rw.write));
        assert!(p.xmm.iter().any(|x| x.slot == 1 && x.reg == 0 && x.rw.read));
        // blendvps xmm0, xmm1: the mask XMM0 is read into slot 0.
        let p = plan(&decode(&[0x66, 0x0F, 0x38, 0x14, 0xC1])).unwrap();
        assert!(p.xmm.iter().any(|x| x.slot == 0 && x.reg == 0 && x.rw.read));
        // cvttsd2si r8d, xmm1: the zero-extended R8 is the explicit operand.
        assert!(plan(&decode(&[0xF2, 0x44, 0x0F, 0x2C, 0xC1])).is_ok());
    }

    #[test]
    fn fixed_registers_stay() {
        // fnstsw ax
        let p = plan(&decode(&[0xDF, 0xE0])).unwrap();
        assert_eq!(middle(&p, Mnemonic::Fnstsw).op0_register(), Register::AX);
        assert_eq!(p.gpr[0].slot, 0);
    }

    #[test]
    fn x87_keeps_its_stack_registers() {
        // fadd st(0), st(3)
        let p = plan(&decode(&[0xD8, 0xC3])).unwrap();
        assert!(p.fpu);
        let m = middle(&p, Mnemonic::Fadd);
        assert_eq!(
            (m.op0_register(), m.op1_register()),
            (Register::ST0, Register::ST3)
        );
        // fstp tword [rsi]
        let p = plan(&decode(&[0xDB, 0x3E])).unwrap();
        assert_eq!(p.mem.map(|m| m.0), Some(10));
    }

    #[test]
    fn zero_extended_and_other_explicit_gprs_are_not_implicit() {
        // cvttsd2si edx, xmm13: iced also lists RDX (the zero-extension) as written; it must
        // not become a stale implicit RDX. cvtss2si r8d, xmm14; pextrw r13d, mm7, 0x6c;
        // pmovmskb esi, mm7: their full registers are no implicit operand either.
        let p = plan(&decode(&[0xF2, 0x41, 0x0F, 0x2C, 0xD5])).unwrap();
        assert_eq!(p.gpr.len(), 1, "{:?}", p.gpr);
        assert_eq!((p.gpr[0].slot, p.gpr[0].reg), (3, Register::EDX));
        for bytes in [
            &[0xF3, 0x45, 0x0F, 0x2D, 0xC6][..],
            &[0x44, 0x0F, 0xC5, 0xEF, 0x6C],
            &[0x0F, 0xD7, 0xF7],
        ] {
            let p = plan(&decode(bytes)).unwrap();
            assert_eq!(p.gpr.len(), 1, "{:?}", p.gpr);
        }
    }

    #[test]
    fn refuses_what_is_not_fp_or_vector() {
        // add eax, ebx; jmp
        assert!(plan(&decode(&[0x01, 0xD8])).is_err());
        assert!(plan(&decode(&[0xEB, 0x00])).is_err());
    }

    #[test]
    fn maskmov_reads_and_writes_its_rdi_bytes() {
        // maskmovdqu xmm1, xmm2 (and with a 67h prefix: [edi]); maskmovq mm0, mm3
        for (bytes, n, m) in [
            (&[0x66, 0x0F, 0xF7, 0xCA][..], 16, Mnemonic::Maskmovdqu),
            (&[0x67, 0x66, 0x0F, 0xF7, 0xCA], 16, Mnemonic::Maskmovdqu),
            (&[0x0F, 0xF7, 0xC3], 8, Mnemonic::Maskmovq),
        ] {
            let p = plan(&decode(bytes)).unwrap();
            assert_eq!(
                p.mem,
                Some((
                    n,
                    Rw {
                        read: true,
                        write: true
                    }
                ))
            );
            assert!(p.gpr.is_empty(), "{:?}", p.gpr);
            assert_eq!(middle(&p, m).op0_kind(), OpKind::MemorySegRDI);
            let mut d = Decoder::with_ip(64, &p.stub.code, 0, DecoderOptions::NONE);
            let insns: Vec<Instruction> = (&mut d).into_iter().collect();
            let at = insns.iter().position(|i| i.mnemonic() == m).unwrap();
            assert_eq!(insns[at - 1].mnemonic(), Mnemonic::Lea);
            assert_eq!(insns[at + 1].mnemonic(), Mnemonic::Lea);
        }
    }
}
